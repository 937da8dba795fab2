package vm

import (
	"context"
	"fmt"
	"regexp"
	"testing"
)

// nestedQEMU starts a paused nested qemu whose 256 MiB of guest RAM is
// preallocated under the given backend options, and leaves its pid in $pid.
// -daemonize returns once the machine is built, so the RAM is in place when
// the shell goes on.
func nestedQEMU(prefix, backend string) string {
	return fmt.Sprintf(`%s qemu-system-x86_64 -S -daemonize -pidfile /tmp/q.pid -display none -nodefaults \
	-accel tcg -m 256M -object memory-backend-ram,id=ram0,size=256M,%s -numa node,nodeid=0,memdev=ram0 \
	|| die "nested qemu failed to start"
pid=$(cat /tmp/q.pid)
`, prefix, backend)
}

// The placement check scenario tests build on, proven without qnuma: a
// nested qemu bound by numactl, its RAM bound by the backend, and the
// guest RAM found on the bound node in /proc/PID/numa_maps.
func TestPlacementVisibleInNumaMaps(t *testing.T) {
	Require(t)
	tests := []struct {
		name      string
		hostNodes int
		wantExit  int
	}{
		{name: "bound to node 1", hostNodes: 1, wantExit: 0},
		// Negative control: the RAM is bound to node 0, so the same check of
		// node 1 must fail.
		{name: "bound to node 0, checked on node 1", hostNodes: 0, wantExit: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			script := nestedQEMU("numactl --membind=1",
				fmt.Sprintf("host-nodes=%d,policy=bind,prealloc=on", tt.hostNodes)) + `
echo "heap: $(grep -w heap /proc/$pid/numa_maps | head -1)"
echo "guest ram: $(biggest_mapping $pid)"
expect_mem_on $pid 1 256
`
			res, err := Run(context.Background(), Options{Topology: TwoNodes()}, script)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("output:\n%s", res.Output)
			if res.ExitCode != tt.wantExit {
				t.Fatalf("exit status %d, want %d; output:\n%s", res.ExitCode, tt.wantExit, res.Output)
			}
			// The backend's binding: all 65536 pages of guest RAM on its node.
			ram := regexp.MustCompile(fmt.Sprintf(`guest ram: [0-9a-f]+ bind:%d anon=65536 .*N%d=65536 `, tt.hostNodes, tt.hostNodes))
			if !ram.MatchString(res.Output) {
				t.Errorf("numa_maps shows no guest RAM bound to node %d:\n%s", tt.hostNodes, res.Output)
			}
			// numactl's binding: qemu's own memory (its heap) is bound to node 1.
			if !regexp.MustCompile(`heap: [0-9a-f]+ bind:1 heap `).MatchString(res.Output) {
				t.Errorf("qemu's heap is not bound to node 1 by numactl:\n%s", res.Output)
			}
		})
	}
}
