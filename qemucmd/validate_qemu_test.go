package qemucmd

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/qemutest"
)

// hostHasNode reports whether this host has NUMA node n.
func hostHasNode(n int) bool {
	_, err := os.Stat(filepath.Join("/sys/devices/system/node", "node"+strconv.Itoa(n)))
	return err == nil
}

// memdevWant is what query-memdev must report for one backend.
type memdevWant struct {
	nodes    []int
	policy   string
	prealloc bool
	share    bool
	size     uint64
}

// TestValidatedInQEMU starts the real QEMU with what Render writes and checks it
// took them as meant: query-memdev shows the host nodes and policy.
// Host nodes other than 0 are only named next to node 0 (a set that holds
// a present node binds) or in the error rows, so this runs on one node.
func TestValidatedInQEMU(t *testing.T) {
	qemutest.Require(t)
	dir := t.TempDir()
	tests := []struct {
		name    string
		opts    []Option
		want    map[string]memdevWant
		wantErr string // in what QEMU printed when it refused
		needs   func() string
	}{
		{
			name: "bound main ram",
			opts: []Option{
				Memory{Size: 64 * mib},
				Backend{Type: "ram", ID: "qnuma-ram0", Size: 64 * mib, HostNodes: cpuset.New(0), HasHostNodes: true, Policy: "bind"},
				Machine{MemoryBackend: "qnuma-ram0"},
			},
			want: map[string]memdevWant{"qnuma-ram0": {nodes: []int{0}, policy: "bind", size: 64 * mib}},
		},
		{
			name: "node list ranges and repeats",
			opts: []Option{
				Memory{Size: 64 * mib},
				Backend{Type: "ram", ID: "m", Size: 64 * mib, HostNodes: cpuset.New(0, 1, 3, 5, 6), HasHostNodes: true, Policy: "preferred"},
				Machine{MemoryBackend: "m"},
			},
			want: map[string]memdevWant{"m": {nodes: []int{0, 1, 3, 5, 6}, policy: "preferred", size: 64 * mib}},
		},
		{
			name: "prealloc in a thread context",
			opts: []Option{
				Memory{Size: 32 * mib},
				ThreadContext{ID: "qnuma-tc0", NodeAffinity: cpuset.New(0), HasNodes: true},
				Backend{Type: "ram", ID: "qnuma-ram0", Size: 32 * mib, HostNodes: cpuset.New(0), HasHostNodes: true, Policy: "bind",
					Prealloc: ptr(true), PreallocThreads: ptr(2), PreallocContext: "qnuma-tc0"},
				Machine{MemoryBackend: "qnuma-ram0"},
			},
			want: map[string]memdevWant{"qnuma-ram0": {nodes: []int{0}, policy: "bind", prealloc: true, size: 32 * mib}},
		},
		{
			name: "memfd and file backends on two guest nodes with distances",
			opts: []Option{
				SMP{CPUs: 4, Sockets: 2, Cores: 2, Threads: 1},
				Memory{Size: 96 * mib},
				Backend{Type: "memfd", ID: "a", Size: 64 * mib, HostNodes: cpuset.New(0), HasHostNodes: true, Policy: "interleave", Share: ptr(true)},
				Backend{Type: "file", ID: "b", Size: 32 * mib, MemPath: dir, HostNodes: cpuset.New(0), HasHostNodes: true, Policy: "bind"},
				NumaNode{NodeID: ptr(0), Memdev: "a"},
				NumaNode{NodeID: ptr(1), Memdev: "b"},
				NumaNode{NodeID: ptr(2)},
				NumaCPU{NodeID: ptr(0), SocketID: ptr(0)},
				NumaCPU{NodeID: ptr(1), SocketID: ptr(1), CoreID: ptr(0)},
				NumaCPU{NodeID: ptr(2), SocketID: ptr(1), CoreID: ptr(1), ThreadID: ptr(0)},
				NumaDist{Src: 0, Dst: 1, Val: 21}, NumaDist{Src: 1, Dst: 0, Val: 31},
				NumaDist{Src: 0, Dst: 2, Val: 22}, NumaDist{Src: 2, Dst: 0, Val: 32},
				NumaDist{Src: 1, Dst: 2, Val: 23}, NumaDist{Src: 2, Dst: 1, Val: 33},
			},
			want: map[string]memdevWant{
				"a": {nodes: []int{0}, policy: "interleave", share: true, size: 64 * mib},
				"b": {nodes: []int{0}, policy: "bind", size: 32 * mib},
			},
		},
		{
			name: "binding to a node the host lacks",
			opts: []Option{
				Memory{Size: 64 * mib},
				Backend{Type: "ram", ID: "m", Size: 64 * mib, HostNodes: cpuset.New(1), HasHostNodes: true, Policy: "bind"},
				Machine{MemoryBackend: "m"},
			},
			wantErr: "cannot bind memory to host NUMA nodes",
			needs: func() string {
				if hostHasNode(1) {
					return "this host has node 1"
				}
				return ""
			},
		},
		{
			name: "thread context on a node the host lacks",
			opts: []Option{
				Memory{Size: 32 * mib},
				ThreadContext{ID: "tc", NodeAffinity: cpuset.New(1), HasNodes: true},
				Backend{Type: "ram", ID: "m", Size: 32 * mib, HostNodes: cpuset.New(0), HasHostNodes: true, Policy: "bind", Prealloc: ptr(true), PreallocContext: "tc"},
				Machine{MemoryBackend: "m"},
			},
			wantErr: "The nodes select no CPUs",
			needs: func() string {
				if hostHasNode(1) {
					return "this host has node 1"
				}
				return ""
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.needs != nil {
				if why := tc.needs(); why != "" {
					t.Skip(why)
				}
			}
			args, err := Render(tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			vm, err := qemutest.Start(t, args...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("qemu with %q: err = %v, want it to refuse with %q", args, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			devs, err := vm.Memdevs()
			if err != nil {
				t.Fatal(err)
			}
			if len(devs) != len(tc.want) {
				t.Fatalf("query-memdev lists %d backends (%+v), want %d", len(devs), devs, len(tc.want))
			}
			for _, d := range devs {
				w, ok := tc.want[d.ID]
				if !ok {
					t.Errorf("unexpected backend %+v", d)
					continue
				}
				if !slices.Equal(d.HostNodes, w.nodes) || d.Policy != w.policy || d.Prealloc != w.prealloc || d.Share != w.share || d.Size != w.size {
					t.Errorf("backend %s: qemu has host-nodes %v policy %s prealloc %v share %v size %d; want %v %s %v %v %d",
						d.ID, d.HostNodes, d.Policy, d.Prealloc, d.Share, d.Size, w.nodes, w.policy, w.prealloc, w.share, w.size)
				}
			}
		})
	}
}
