package vm

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseVerdict(t *testing.T) {
	const nonce = "0123456789abcdef"
	tests := []struct {
		name    string
		console string
		want    verdict
		wantErr bool
	}{
		{name: "exit 0", console: "[    4.08] qnuma-vm 0123456789abcdef exit 0\n[ 4.1] reboot: Power down\n", want: verdict{exitCode: 0}},
		{name: "exit 3 with CRLF", console: "noise\r\n[    4.08] qnuma-vm 0123456789abcdef exit 3\r\n", want: verdict{exitCode: 3}},
		{name: "setup failed", console: "[ 1.0] qnuma-vm 0123456789abcdef setup-failed mount share s0 at /usr\n", want: verdict{setupFailed: "mount share s0 at /usr"}},
		{name: "other boot's nonce", console: "[ 1.0] qnuma-vm 00000000000000ff exit 0\n", wantErr: true},
		{name: "no verdict", console: "[ 1.0] Kernel panic - not syncing: Attempted to kill init!\n", wantErr: true},
		{name: "empty", console: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseVerdict(tt.console, nonce)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parseVerdict() = %+v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseVerdict(): %v", err)
			}
			if got != tt.want {
				t.Errorf("parseVerdict() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestShareValidate(t *testing.T) {
	tests := []struct {
		share   Share
		wantErr string
	}{
		{share: Share{HostPath: "/srv/data", GuestPath: "/data"}},
		{share: Share{HostPath: "/srv/out", GuestPath: "/mnt/out-1", Writable: true}},
		{share: Share{HostPath: "/", GuestPath: "/host"}, wantErr: "never shared"},
		{share: Share{HostPath: "/srv/..", GuestPath: "/host"}, wantErr: "never shared"},
		{share: Share{HostPath: "/srv", GuestPath: "/"}, wantErr: "never shared"},
		{share: Share{HostPath: "srv", GuestPath: "/srv"}, wantErr: "absolute host path"},
		{share: Share{HostPath: "/a,b", GuestPath: "/srv"}, wantErr: "without commas"},
		{share: Share{HostPath: "/srv", GuestPath: "srv"}, wantErr: "absolute guest path"},
		{share: Share{HostPath: "/srv", GuestPath: "/a b"}, wantErr: "absolute guest path"},
		{share: Share{HostPath: "/srv", GuestPath: "/mnt/../etc"}, wantErr: "absolute guest path"},
		{share: Share{HostPath: "/srv", GuestPath: "/proc"}, wantErr: "test host's own"},
		{share: Share{HostPath: "/srv", GuestPath: "/job"}, wantErr: "test host's own"},
	}
	for _, tt := range tests {
		t.Run(tt.share.HostPath+"→"+tt.share.GuestPath, func(t *testing.T) {
			err := tt.share.validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("validate(): %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("validate() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestWriteJobRejectsBadEnvName(t *testing.T) {
	err := writeJob(t.TempDir(), nil, map[string]string{"NOT-A-NAME": "x"}, "true")
	if err == nil || !strings.Contains(err.Error(), "NOT-A-NAME") {
		t.Fatalf("writeJob() = %v, want an error naming the variable", err)
	}
}

// The env file is sourced by a real shell, so quoting is checked by one.
func TestWriteJobEnvQuoting(t *testing.T) {
	if testing.Short() {
		t.Skip("starts /bin/sh; skipped under -short")
	}
	dir := t.TempDir()
	values := map[string]string{"PLAIN": "a b", "QUOTES": `it's "x" $HOME ; exit 9`, "EMPTY": ""}
	if err := writeJob(dir, nil, values, ""); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("/bin/sh", "-c", `. "$1/env" && printf '%s|%s|%s' "$PLAIN" "$QUOTES" "$EMPTY"`, "sh", dir).Output()
	if err != nil {
		t.Fatalf("source env: %v", err)
	}
	want := values["PLAIN"] + "|" + values["QUOTES"] + "|"
	if string(out) != want {
		t.Errorf("sourced env gives %q, want %q", out, want)
	}
}

func note(name string, typ uint32, desc []byte) []byte {
	var b bytes.Buffer
	le := binary.LittleEndian
	_ = binary.Write(&b, le, uint32(len(name)+1))
	_ = binary.Write(&b, le, uint32(len(desc)))
	_ = binary.Write(&b, le, typ)
	b.Write(pad4(append([]byte(name), 0)))
	b.Write(pad4(desc))
	return b.Bytes()
}

func TestHasNote(t *testing.T) {
	pvh := note("Xen", xenElfNotePhys32Entry, []byte{1, 2, 3, 4, 5, 6, 7, 8})
	other := note("Xen", 6, []byte("linux\x00"))
	gnu := note("GNU", xenElfNotePhys32Entry, []byte{1, 2, 3, 4})
	tests := []struct {
		name  string
		notes []byte
		want  bool
	}{
		{"pvh alone", pvh, true},
		{"pvh after others", append(append(append([]byte{}, other...), gnu...), pvh...), true},
		{"same type, other owner", gnu, false},
		{"other xen notes only", other, false},
		{"truncated pvh", pvh[:len(pvh)-4], false},
		{"empty", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hasNote(tt.notes, "Xen", xenElfNotePhys32Entry); got != tt.want {
				t.Errorf("hasNote() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestModuleName(t *testing.T) {
	for file, want := range map[string]string{
		"9pnet_virtio.ko": "9pnet_virtio", "kvm-amd.ko": "kvm_amd", "virtio.ko.xz": "virtio",
	} {
		if got := moduleName(file); got != want {
			t.Errorf("moduleName(%q) = %q, want %q", file, got, want)
		}
	}
}

// The archive is read back by GNU cpio, an independent reader.
func TestWriteCPIOReadByCpio(t *testing.T) {
	if testing.Short() {
		t.Skip("starts cpio; skipped under -short")
	}
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("cpio not installed: ", err)
	}
	entries := map[string]cpioEntry{
		"bin":         {Link: "usr/bin"},
		"etc":         {Mode: 0o755, Dir: true},
		"etc/motd":    {Mode: 0o644, Data: []byte("hello\n")},
		"init":        {Mode: 0o755, Data: []byte("#!/bin/sh\nexit 0\n")},
		"dev":         {Mode: 0o755, Dir: true},
		"dev/console": {Mode: 0o600, Char: true, Major: 5, Minor: 1},
		"odd":         {Mode: 0o644, Data: []byte("abc")}, // not a multiple of 4
	}
	var buf bytes.Buffer
	if err := writeCPIO(&buf, entries); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("cpio", "-itv", "--quiet")
	cmd.Stdin = bytes.NewReader(buf.Bytes())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -itv: %v\n%s", err, out)
	}
	listing := string(out)
	for _, want := range []string{
		"lrwxrwxrwx", "bin -> usr/bin",
		"drwxr-xr-x", " etc\n",
		"-rw-r--r--", "6 Jan  1  1970 etc/motd",
		"-rwxr-xr-x", "init",
		"crw-------", "5,   1", "dev/console",
		"3 Jan  1  1970 odd",
	} {
		if !strings.Contains(listing, want) {
			t.Errorf("cpio listing lacks %q:\n%s", want, listing)
		}
	}
	// Contents survive the round trip.
	dir := t.TempDir()
	ex := exec.Command("cpio", "-idm", "--quiet", "--no-absolute-filenames", "etc/motd", "odd", "init")
	ex.Dir = dir
	ex.Stdin = bytes.NewReader(buf.Bytes())
	if out, err := ex.CombinedOutput(); err != nil {
		t.Fatalf("cpio -id: %v\n%s", err, out)
	}
	for name, e := range entries {
		if e.Data == nil {
			continue
		}
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, e.Data) {
			t.Errorf("%s: got %q (%v), want %q", name, got, err, e.Data)
		}
	}
}

func TestWriteCPIOErrors(t *testing.T) {
	for name, e := range map[string]cpioEntry{
		"/abs":       {Data: []byte("x")},
		"a/../b":     {Data: []byte("x")},
		"":           {Data: []byte("x")},
		"dir-and-ln": {Dir: true, Link: "x"},
	} {
		if err := writeCPIO(&bytes.Buffer{}, map[string]cpioEntry{name: e}); err == nil {
			t.Errorf("writeCPIO(%q) succeeded, want an error", name)
		}
	}
}

// A bzImage without an xz payload or whose payload is not a PVH ELF yields
// an error and no vmlinux (Prepare then boots the bzImage).
func TestExtractVmlinuxRejects(t *testing.T) {
	if testing.Short() {
		t.Skip("starts xz; skipped under -short")
	}
	if _, err := exec.LookPath("xz"); err != nil {
		t.Skip("xz not installed: ", err)
	}
	dir := t.TempDir()
	notELF, err := exec.Command("sh", "-c", "printf 'not an elf' | xz -c").Output()
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"no payload":      []byte("MZ this is no kernel"),
		"payload not elf": append([]byte("setup code"), notELF...),
	} {
		t.Run(name, func(t *testing.T) {
			bz := filepath.Join(dir, "bzImage")
			if err := os.WriteFile(bz, data, 0o644); err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(dir, "vmlinux")
			if err := extractVmlinux(context.Background(), bz, dst); err == nil {
				t.Fatal("extractVmlinux succeeded")
			}
			if _, err := os.Stat(dst); err == nil {
				t.Errorf("%s left behind after the failure", dst)
			}
		})
	}
}

// fakeHostQEMU puts a qemu-system-x86_64 first in PATH that plays the test
// host: on the boots listed in hangOn (1-based) it prints a kernel stall
// before init would start the script and waits to be killed; on the others
// it starts the script (creates started in the job share), prints stall
// after the start if stallAfterStart, and reports exit 7. It returns the
// file counting the boots.
func fakeHostQEMU(t *testing.T, hangOn string, stallAfterStart bool) string {
	t.Helper()
	dir := t.TempDir()
	count := filepath.Join(dir, "boots")
	after := ""
	if stallAfterStart {
		after = `echo "[   30.1] watchdog: BUG: soft lockup - CPU#2 stuck for 22s! [kworker/2:1:43]"; sleep 1`
	}
	script := `#!/bin/sh
n=$(( $(cat ` + count + ` 2>/dev/null || echo 0) + 1 )); echo $n > ` + count + `
job=; nonce=
for a in "$@"; do
	case $a in
	*mount_tag=job,*) job=${a#local,path=}; job=${job%%,*} ;;
	*qnuma.nonce=*) nonce=${a##*qnuma.nonce=} ;;
	esac
done
case " ` + hangOn + ` " in *" $n "*)
	echo "[   22.0] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:"
	exec sleep 60 ;;
esac
: > "$job/started"
` + after + `
echo "script ran on boot $n" > "$job/output"
echo "[    5.0] qnuma-vm $nonce exit 7"
`
	if err := os.WriteFile(filepath.Join(dir, "qemu-system-x86_64"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	return count
}

func boots(t *testing.T, count string) string {
	t.Helper()
	b, err := os.ReadFile(count)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// A kernel that stalls before the script starts is booted again, and the
// result says so; a stall after the start is the scenario's (no second
// boot); two hung boots are an error that names both.
func TestBootRetriesAHungKernel(t *testing.T) {
	a := &Assets{Dir: t.TempDir(), Kernel: "/nonexistent/vmlinuz", Initrd: "/nonexistent/initrd"}
	opts := Options{Topology: TwoNodes(), Timeout: 30 * time.Second}
	var said bytes.Buffer
	hangLog = &said
	t.Cleanup(func() { hangLog = os.Stderr })

	t.Run("hung first boot", func(t *testing.T) {
		count := fakeHostQEMU(t, "1", false)
		res, err := boot(context.Background(), a, opts, "true")
		if err != nil {
			t.Fatal(err)
		}
		if res.ExitCode != 7 || !strings.Contains(res.Output, "boot 2") {
			t.Errorf("exit %d, output %q; want exit 7 from boot 2", res.ExitCode, res.Output)
		}
		if len(res.BootHangs) != 1 || !strings.Contains(res.BootHangs[0], "rcu_preempt detected stalls") {
			t.Errorf("BootHangs = %q, want the first boot's stall", res.BootHangs)
		}
		if got := boots(t, count); got != "2" {
			t.Errorf("%s boots, want 2", got)
		}
		if !strings.HasPrefix(said.String(), "qnuma test host: boot 1 of 2: test host kernel hung before the script started: the kernel reported a stall") {
			t.Errorf("said %q, want the hung boot named", said.String())
		}
		if b, err := os.ReadFile(filepath.Join(a.Dir, "boot-hangs.log")); err != nil || !strings.Contains(string(b), " boot 1 of 2: test host kernel hung") {
			t.Errorf("boot-hangs.log: %q, %v; want the hung boot kept", b, err)
		}
	})
	t.Run("stall after the script started", func(t *testing.T) {
		said.Reset()
		count := fakeHostQEMU(t, "", true)
		res, err := boot(context.Background(), a, opts, "true")
		if err != nil {
			t.Fatal(err)
		}
		if res.ExitCode != 7 || len(res.BootHangs) != 0 || said.Len() != 0 {
			t.Errorf("exit %d, BootHangs %q, said %q; want exit 7 and no hang", res.ExitCode, res.BootHangs, said.String())
		}
		if got := boots(t, count); got != "1" {
			t.Errorf("%s boots, want 1", got)
		}
	})
	t.Run("every boot hung", func(t *testing.T) {
		count := fakeHostQEMU(t, "1 2 3", false)
		res, err := boot(context.Background(), a, opts, "true")
		if err == nil || !strings.Contains(err.Error(), "2 boots hung") {
			t.Fatalf("boot() = %+v, %v; want an error naming 2 hung boots", res, err)
		}
		if got := boots(t, count); got != "2" {
			t.Errorf("%s boots, want 2", got)
		}
	})
}

// vcpuWhereabouts reads every vCPU's instruction pointer from a real QEMU's
// monitor: a paused 2-vCPU machine is at the reset vector, the second vCPU
// halted until it is started.
func TestVCPUWhereabouts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts qemu: skipped under -short")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("no qemu-system-x86_64")
	}
	sock := filepath.Join(t.TempDir(), "hmp.sock")
	cmd := exec.Command("qemu-system-x86_64", "-S", "-accel", "tcg", "-display", "none", "-nodefaults", "-smp", "2",
		"-monitor", "unix:"+sock+",server=on,wait=off")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if i == 600 {
			t.Fatal("qemu made no monitor socket in 60 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	got := vcpuWhereabouts(sock)
	if want := "vCPUs: CPU 0 at 0000fff0, CPU 1 at 0000fff0 halted"; got != want {
		t.Errorf("vcpuWhereabouts = %q, want %q", got, want)
	}
	if got := vcpuWhereabouts(filepath.Join(t.TempDir(), "none.sock")); !strings.Contains(got, "monitor:") {
		t.Errorf("vcpuWhereabouts of no socket = %q, want the dial error", got)
	}
}
