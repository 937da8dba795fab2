package plan

import (
	"errors"
	"strings"
	"testing"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/topology"
)

// A dedicated VM is never given a CPU another VM's threads may run on: a
// shared VM's vCPUs float over their node's CPUs, and its emulator threads
// run there too (issue 11, item 7).
func TestDedicatedAvoidsSharedVMs(t *testing.T) {
	h := genHost(2, 4, 1, 8*gib)
	shared, err := Make(h, Spec{VCPUs: 2, MemoryBytes: gib}, nil)
	if err != nil {
		t.Fatal(err)
	}
	placed := []Placed{placedOf("shared", shared)}
	if !placed[0].CPUs.Equals(h.Nodes[0].CPUs) {
		t.Fatalf("shared vm's threads may run on %s, want node 0's CPUs %s", placed[0].CPUs, h.Nodes[0].CPUs)
	}
	p, err := Make(h, Spec{VCPUs: 2, MemoryBytes: gib, Dedicated: true}, placed)
	if err != nil {
		t.Fatal(err)
	}
	checkPlan(t, h, p.Spec, placed, p)
	if p.HostNodes[0] != 1 {
		t.Errorf("dedicated vm on node %v, want node 1, clear of the shared vm", p.HostNodes)
	}

	// With every node floated over, a dedicated VM does not fit, and the
	// error says CPUs are short, not memory.
	one := genHost(1, 2, 1, 8*gib)
	shared, err = Make(one, Spec{VCPUs: 1, MemoryBytes: gib}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Make(one, Spec{VCPUs: 1, MemoryBytes: gib, Dedicated: true}, []Placed{placedOf("shared", shared)})
	if !errors.Is(err, ErrDoesNotFit) || !strings.Contains(err.Error(), "CPUs are short") ||
		!strings.Contains(err.Error(), "in use by other VMs' threads") {
		t.Errorf("dedicated vm beside a shared vm on a one-node host: %v\nwant does-not-fit saying CPUs are short", err)
	}
	// A shared VM still floats beside another shared VM.
	if _, err := Make(one, Spec{VCPUs: 1, MemoryBytes: gib}, []Placed{placedOf("shared", shared)}); err != nil {
		t.Errorf("shared vm beside a shared vm: %v", err)
	}
}

// A dedicated VM's emulator threads run on its own dedicated CPUs, so they
// never land on a later dedicated VM's vCPU CPU; emulator CPUs the ledger
// records (--emulator-cpus) are avoided too (issue 11, item 8).
func TestDedicatedEmulatorCPUs(t *testing.T) {
	h := genHost(1, 8, 1, 64*gib)
	var placed []Placed
	for i := 0; ; i++ {
		p, err := Make(h, Spec{VCPUs: 2, MemoryBytes: gib, Dedicated: true}, placed)
		if errors.Is(err, ErrDoesNotFit) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		checkPlan(t, h, p.Spec, placed, p)
		pl := placedOf(string(rune('a'+i)), p)
		if !p.EmulatorCPUs.Equals(pl.DedicatedCPUs) {
			t.Errorf("vm %s: emulator cpus %s, want its own dedicated cpus %s", pl.Name, p.EmulatorCPUs, pl.DedicatedCPUs)
		}
		for _, o := range placed {
			if both := p.EmulatorCPUs.Intersection(o.DedicatedCPUs); !both.IsEmpty() {
				t.Errorf("vm %s's emulator threads on cpus %s, dedicated to vm %s", pl.Name, both, o.Name)
			}
			if both := pl.DedicatedCPUs.Intersection(o.CPUs); !both.IsEmpty() {
				t.Errorf("vm %s dedicated cpus %s, where vm %s's threads run", pl.Name, both, o.Name)
			}
		}
		placed = append(placed, pl)
	}
	if len(placed) != 4 {
		t.Errorf("%d dedicated 2-vcpu vms on 8 cores, want 4", len(placed))
	}

	// A VM whose emulator threads were moved to CPU 5 keeps CPU 5 from
	// dedicated vCPUs, but not from shared ones.
	moved := []Placed{{Name: "moved", DedicatedCPUs: cpuset.New(0), CPUs: cpuset.New(0, 5)}}
	p, err := Make(h, Spec{VCPUs: 6, MemoryBytes: gib, Dedicated: true}, moved)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range p.VCPUs {
		if v.HostCPUs.Contains(5) || v.HostCPUs.Contains(0) {
			t.Errorf("dedicated vcpu %d on %s, where vm moved's threads run (0,5)", v.ID, v.HostCPUs)
		}
	}
	if _, err := Make(h, Spec{VCPUs: 7, MemoryBytes: gib, Dedicated: true}, moved); !errors.Is(err, ErrDoesNotFit) {
		t.Errorf("7 dedicated vcpus on the 6 cpus clear of vm moved: err %v, want does not fit", err)
	}
	p, err = Make(h, Spec{VCPUs: 2, MemoryBytes: gib}, moved)
	if err != nil {
		t.Fatal(err)
	}
	if !p.VCPUs[0].HostCPUs.Equals(cpuset.New(1, 2, 3, 4, 5, 6, 7)) {
		t.Errorf("shared vcpu floats over %s, want every cpu but vm moved's dedicated 0", p.VCPUs[0].HostCPUs)
	}
}

// roomOn is node n's room as Make saw it.
func roomOn(t *testing.T, h *topology.Host, spec Spec, placed []Placed, n int) Room {
	t.Helper()
	p, err := Make(h, spec, placed)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range p.Rooms {
		if r.Node == n {
			return r
		}
	}
	t.Fatalf("no room for node %d", n)
	return Room{}
}

// Memory a running VM already touched has left MemFree (free hugepages):
// only the rest of its promise is taken from the room again (issue 11,
// item 9).
func TestRoomCountsUntouchedMemoryOnce(t *testing.T) {
	h := genHost(2, 4, 1, 0)
	for i := range h.Nodes {
		h.Nodes[i].MemFree, h.Nodes[i].InactiveFile = 20*gib, 4*gib
		h.Nodes[i].Hugepages = []topology.Hugepages{
			{SizeBytes: 2 << 20, Total: 2048, Free: 2048},
			{SizeBytes: gib, Total: 8, Free: 8},
		}
	}
	spec := Spec{VCPUs: 1, MemoryBytes: gib}
	huge := Spec{VCPUs: 1, MemoryBytes: 2 * gib, HugepageBytes: 2 << 20}
	promise := map[int]uint64{0: 3 * gib}
	tests := []struct {
		name   string
		spec   Spec
		placed Placed
		mem    uint64 // node 0's memory room
		pages  uint64 // node 0's free hugepages of spec's size
	}{
		{"nothing placed", spec, Placed{}, 24 * gib, 0},
		{"started, nothing touched", spec, Placed{MemoryBytes: promise}, 21 * gib, 0},
		{"preallocated: counted by MemFree alone", spec, Placed{MemoryBytes: promise, ResidentBytes: promise}, 24 * gib, 0},
		{"a third touched", spec, Placed{MemoryBytes: promise, ResidentBytes: map[int]uint64{0: gib}}, 22 * gib, 0},
		{"more resident than promised", spec, Placed{MemoryBytes: promise, ResidentBytes: map[int]uint64{0: 4 * gib}}, 24 * gib, 0},
		{"resident on another node", spec, Placed{MemoryBytes: promise, ResidentBytes: map[int]uint64{1: 3 * gib}}, 21 * gib, 0},
		{"hugepage vm takes no ordinary memory", spec, Placed{MemoryBytes: promise, HugepageBytes: 2 << 20}, 24 * gib, 0},
		{"hugepage vm untouched takes its pages", huge, Placed{MemoryBytes: promise, HugepageBytes: 2 << 20}, 24 * gib, 2048 - 1536},
		{"hugepage vm half touched", huge, Placed{MemoryBytes: promise, ResidentBytes: map[int]uint64{0: 1536 << 20}, HugepageBytes: 2 << 20}, 24 * gib, 2048 - 768},
		{"hugepages of another size", huge, Placed{MemoryBytes: promise, HugepageBytes: gib}, 24 * gib, 2048},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var placed []Placed
			if tt.placed.MemoryBytes != nil {
				placed = []Placed{tt.placed}
			}
			r := roomOn(t, h, tt.spec, placed, 0)
			if r.MemoryBytes != tt.mem {
				t.Errorf("node 0 memory room %s, want %s", sizeString(r.MemoryBytes), sizeString(tt.mem))
			}
			if r.Hugepages != tt.pages {
				t.Errorf("node 0 free hugepages %d, want %d", r.Hugepages, tt.pages)
			}
		})
	}
}

// When no node has both a usable CPU and memory, the error says which is
// short.
func TestNoSeedSaysWhatIsShort(t *testing.T) {
	h := genHost(2, 2, 1, 8*gib)
	allCPUs := []Placed{{Name: "big", DedicatedCPUs: h.OnlineCPUs, CPUs: h.OnlineCPUs}}
	allMem := []Placed{{Name: "fat", MemoryBytes: map[int]uint64{0: 8 * gib, 1: 8 * gib}}}
	both := append(append([]Placed{}, allCPUs...), allMem...)
	hugeless := genHost(2, 2, 1, 8*gib)
	split := genHost(2, 2, 1, 8*gib)
	split.Nodes[1].MemFree = 0
	node0 := []Placed{{Name: "n0", DedicatedCPUs: split.Nodes[0].CPUs, CPUs: split.Nodes[0].CPUs}}
	tests := []struct {
		name   string
		host   *topology.Host
		spec   Spec
		placed []Placed
		want   string
	}{
		{"cpus short", h, Spec{VCPUs: 1, MemoryBytes: gib}, allCPUs, "CPUs are short: no node has a usable CPU left"},
		{"memory short", h, Spec{VCPUs: 1, MemoryBytes: gib}, allMem, "memory is short: no node has free memory"},
		{"both short", h, Spec{VCPUs: 1, MemoryBytes: gib}, both, "no node has a usable CPU or free memory"},
		{"cpus on one node, memory on the other", split, Spec{VCPUs: 1, MemoryBytes: gib}, node0, "no node has both a usable CPU and free memory"},
		{"no hugepages", hugeless, Spec{VCPUs: 1, MemoryBytes: gib, HugepageBytes: 2 << 20}, nil, "memory is short: no node has free 2 MiB hugepages"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Make(tt.host, tt.spec, tt.placed)
			if !errors.Is(err, ErrDoesNotFit) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %v\nwant does-not-fit saying %q", err, tt.want)
			}
		})
	}
}
