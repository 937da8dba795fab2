package memobj

import (
	"runtime"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Each policy's mode is the kernel's: set on this thread, get_mempolicy
// reads the same mode back (MPOL_PREFERRED_MANY needs Linux 5.15).
func TestPolicyModesAreTheKernels(t *testing.T) {
	for _, p := range []Policy{PolicyPreferred, PolicyBind, PolicyInterleave, PolicyPreferredMany} {
		t.Run(string(p), func(t *testing.T) {
			mode, err := p.Mode()
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			var got int32
			var setErr, getErr unix.Errno
			go func() {
				defer close(done)
				// The thread keeps the policy: lock it and never unlock,
				// so it dies with the goroutine.
				runtime.LockOSThread()
				mask := uint64(1) // node 0
				_, _, setErr = unix.Syscall(unix.SYS_SET_MEMPOLICY, uintptr(mode), uintptr(unsafe.Pointer(&mask)), 64)
				if setErr != 0 {
					return
				}
				var back uint64
				_, _, getErr = unix.Syscall6(unix.SYS_GET_MEMPOLICY, uintptr(unsafe.Pointer(&got)), uintptr(unsafe.Pointer(&back)), 64, 0, 0, 0)
			}()
			<-done
			if setErr == unix.EINVAL && p == PolicyPreferredMany {
				t.Skipf("this kernel has no MPOL_PREFERRED_MANY: %v", setErr)
			}
			if setErr != 0 || getErr != 0 {
				t.Fatalf("set_mempolicy(%d): %v; get_mempolicy: %v", mode, setErr, getErr)
			}
			if int(got) != mode {
				t.Errorf("%s: set mode %d, the kernel says %d", p, mode, got)
			}
		})
	}
	if _, err := ParsePolicy(string(PolicyPreferredMany)); err == nil {
		t.Errorf("ParsePolicy accepts %s, a process policy QEMU's backends do not take", PolicyPreferredMany)
	}
}
