package plan

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/topology"
)

var (
	diffSeed  = flag.Uint64("diff.seed", 16, "seed of TestSearchMatchesReference's random cases")
	diffCases = flag.Int("diff.cases", 0, "number of random cases (0: 4000, 1000 with -short)")
)

// Make's search gives the very plan (or the very error) the search it
// replaced gives (refMake in ref_search_test.go), on the shapes qnuma knows
// and on random hosts, ledgers and specs. A failure names the seed and case
// to rerun: go test ./plan -run TestSearchMatchesReference -diff.seed=S.
func TestSearchMatchesReference(t *testing.T) {
	n := *diffCases
	if n == 0 {
		n = 4000
		if testing.Short() {
			n = 1000
		}
	}
	rng := rand.New(rand.NewPCG(*diffSeed, 0x716e756d61))

	var fixed []diffHost
	for name, m := range machines {
		h, err := topology.Read(m().Write(t))
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		fixed = append(fixed, diffHost{"shape " + name, h})
	}
	slices.SortFunc(fixed, func(a, b diffHost) int { return strings.Compare(a.name, b.name) })
	fixed = append(fixed,
		diffHost{"intel2p", intel2p()},
		diffHost{"bench 8", benchHost(8)},
		diffHost{"bench 64", benchHost(64)},
		diffHost{"2 nodes + memory-only", withMemoryOnly(genHost(2, 4, 2, 16*gib), 2, 32*gib, 30)},
	)

	var plans, fits, stats [3]int // searched automatically, fixed nodes, bad spec
	for i := range n {
		var dh diffHost
		if i%4 == 0 {
			dh = fixed[rng.IntN(len(fixed))]
		} else {
			dh = diffHost{"random", randomHost(rng)}
		}
		placed := randomPlaced(rng, dh.host)
		spec := randomSpec(rng, dh.host)
		if i%5 == 0 && len(placed) < 8 {
			placed = append(placed, placedBy(rng, dh.host)...)
		}

		got, gotErr := Make(dh.host, spec, placed)
		want, wantErr := refMake(dh.host, spec, placed)
		what := fmt.Sprintf("case %d (-diff.seed=%d) on %s (%d nodes), %d placed, spec %+v", i, *diffSeed, dh.name, len(dh.host.Nodes), len(placed), spec)
		switch {
		case (gotErr == nil) != (wantErr == nil):
			t.Fatalf("%s:\nnew search: %v\nreference: %v", what, errOrPlan(got, gotErr), errOrPlan(want, wantErr))
		case gotErr != nil:
			if gotErr.Error() != wantErr.Error() || !reflect.DeepEqual(gotErr, wantErr) {
				t.Fatalf("%s:\nnew search error: %v\nreference error:  %v", what, gotErr, wantErr)
			}
			switch {
			case errors.Is(gotErr, ErrBadSpec):
				stats[2]++
			default:
				fits[min(len(spec.HostNodes), 1)]++
			}
		default:
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s:\n%s", what, diffPlans(got, want))
			}
			plans[min(len(spec.HostNodes), 1)]++
		}
	}
	t.Logf("%d cases: %d plans searched, %d on given nodes; %d did not fit (%d on given nodes); %d bad specs",
		n, plans[0], plans[1], fits[0]+fits[1], fits[1], stats[2])
	// The cases must reach every outcome, or the comparison proves little.
	if plans[0] < n/10 || plans[1] == 0 || fits[0] < n/20 || fits[1] == 0 {
		t.Errorf("too few cases of some outcome: plans %v, does not fit %v", plans, fits)
	}
}

type diffHost struct {
	name string
	host *topology.Host
}

func errOrPlan(p *Plan, err error) string {
	if err != nil {
		return "error " + err.Error()
	}
	var b strings.Builder
	if err := p.Describe(&b); err != nil {
		return fmt.Sprintf("%+v (describe: %v)", *p, err)
	}
	return fmt.Sprintf("host nodes %v, vcpus %+v\n%s", p.HostNodes, p.VCPUs, b.String())
}

// randomHost is a host of 1 to 64 nodes with sparse ids, memory-only nodes,
// 1, 2 or 4 threads per core numbered in either of Linux's ways, offline
// CPUs, a cpuset, missing or asymmetric distances, and hugepages.
func randomHost(rng *rand.Rand) *topology.Host {
	nodes := 1 + rng.IntN(8)
	if rng.IntN(3) == 0 {
		nodes = 1 + rng.IntN(64)
	}
	// Node ids: dense, or sparse (some beyond QEMU's 128 now and then).
	ids := make([]int, 0, nodes)
	next := 0
	for range nodes {
		if rng.IntN(4) == 0 {
			next += 1 + rng.IntN(5)
			if rng.IntN(40) == 0 {
				next += 120
			}
		}
		ids = append(ids, next)
		next++
	}
	threads := []int{1, 2, 2, 4}[rng.IntN(4)]
	h := &topology.Host{}
	type nodeCores struct{ cores [][]int }
	per := make([]nodeCores, nodes)
	cpu := 0
	split := rng.IntN(2) == 0 // all first threads, then all second threads
	var coresAt []int
	for range nodes {
		c := 1 + rng.IntN(8)
		switch rng.IntN(8) {
		case 0:
			c = 0 // memory-only
		case 1:
			c = 16
		}
		coresAt = append(coresAt, c)
	}
	total := 0
	for _, c := range coresAt {
		total += c
	}
	core := 0
	for i := range nodes {
		for range coresAt[i] {
			var sib []int
			for th := range threads {
				if split {
					sib = append(sib, th*total+core)
				} else {
					sib = append(sib, cpu)
					cpu++
				}
			}
			core++
			per[i].cores = append(per[i].cores, sib)
		}
	}
	online := cpuset.New()
	allowedCPUs := cpuset.New()
	cpuset_ := rng.IntN(4) == 0
	coreID := 0
	allowedMems := cpuset.New()
	for i, id := range ids {
		n := topology.Node{ID: id, Distances: map[int]int{}}
		var list []int
		for _, sib := range per[i].cores {
			var on []int
			for _, c := range sib {
				if rng.IntN(30) != 0 { // now and then a CPU is offline
					on = append(on, c)
				}
			}
			if len(on) == 0 {
				continue
			}
			list = append(list, on...)
			siblings := cpuset.New(on...)
			coreID++
			for _, c := range on {
				if rng.IntN(200) == 0 {
					continue // a CPU topology gives no siblings for
				}
				// (Sibling sets always agree: topology.Read refuses a host
				// whose do not.)
				core := coreID
				if rng.IntN(100) == 0 {
					core = -1 - c // a core index that disagrees with the siblings
				}
				h.CPUs = append(h.CPUs, topology.CPU{ID: c, Node: id, Core: core, Siblings: siblings})
				if !cpuset_ || rng.IntN(3) != 0 {
					allowedCPUs = allowedCPUs.Union(cpuset.New(c))
				}
			}
		}
		n.CPUs = cpuset.New(list...)
		online = online.Union(n.CPUs)
		free := uint64(rng.IntN(64<<10)) << 20 // up to 64 GiB, in MiB
		switch rng.IntN(10) {
		case 0:
			free = uint64(rng.IntN(64)) << 20 // nearly full
		case 1:
			free = uint64(rng.IntN(3)) << 20
		}
		n.MemFree = free
		n.InactiveFile = uint64(rng.IntN(4<<10)) << 20
		if rng.IntN(8) == 0 {
			n.InactiveFile += uint64(rng.IntN(1 << 20)) // not a whole MiB
		}
		n.MemTotal = n.MemFree + n.InactiveFile + 1<<30
		if rng.IntN(3) == 0 {
			n.Hugepages = append(n.Hugepages, topology.Hugepages{SizeBytes: 2 << 20, Total: 4096, Free: uint64(rng.IntN(4096))})
		}
		if rng.IntN(5) == 0 {
			n.Hugepages = append(n.Hugepages, topology.Hugepages{SizeBytes: 1 << 30, Total: 16, Free: uint64(rng.IntN(17))})
		}
		if !cpuset_ || rng.IntN(4) != 0 {
			allowedMems = allowedMems.Union(cpuset.New(id))
		}
		h.Nodes = append(h.Nodes, n)
	}
	// Distances: tiers by package, asymmetric, random, or none.
	kind := rng.IntN(5)
	pkg := 1 + rng.IntN(4)
	for i := range h.Nodes {
		if kind == 4 && rng.IntN(2) == 0 {
			h.Nodes[i].Distances = nil // the kernel gave none
			continue
		}
		for j := range h.Nodes {
			d := 10
			switch {
			case i == j:
			case kind == 0:
				d = 21
			case kind == 1:
				d = 16
				if i/pkg != j/pkg {
					d = 22 + 10*(rng.IntN(2))
				}
			case kind == 2:
				d = 11 + rng.IntN(30) // asymmetric
			default:
				d = 12 + 2*(abs(i-j)%6)
			}
			if kind == 3 && i != j && rng.IntN(10) == 0 {
				continue // a distance missing
			}
			h.Nodes[i].Distances[h.Nodes[j].ID] = d
		}
	}
	if kind == 1 || kind == 3 {
		for i := range h.Nodes { // make these symmetric
			for j := range i {
				a, b := h.Nodes[i], h.Nodes[j]
				if d, ok := a.Distances[b.ID]; ok && b.Distances != nil {
					b.Distances[a.ID] = d
				}
			}
		}
	}
	slices.SortFunc(h.CPUs, func(a, b topology.CPU) int { return a.ID - b.ID })
	h.OnlineCPUs = online
	if !cpuset_ {
		allowedCPUs = online
	}
	h.Allowed = topology.Allowed{CPUs: allowedCPUs, Mems: allowedMems, Source: "random"}
	return h
}

func abs(x int) int { return max(x, -x) }

// randomPlaced is a ledger of up to 40 VMs (now and then a thousand small
// ones) with memory on random nodes (some not the host's), resident memory,
// hugepages, floating vCPUs, dedicated CPUs and the CPUs their threads use.
func randomPlaced(rng *rand.Rand, h *topology.Host) []Placed {
	n := rng.IntN(6)
	switch rng.IntN(10) {
	case 0:
		n = 0
	case 1:
		n = 40
	case 2:
		if len(h.Nodes) > 16 {
			n = 1000
		}
	}
	cpus := h.OnlineCPUs.List()
	out := make([]Placed, 0, n)
	for i := range n {
		p := Placed{Name: fmt.Sprintf("vm%d", i), MemoryBytes: map[int]uint64{}, VCPUs: map[int]int{}, DedicatedCPUs: cpuset.New(), CPUs: cpuset.New()}
		switch rng.IntN(6) {
		case 0:
			p.HugepageBytes = 2 << 20
		case 1:
			p.HugepageBytes = 1 << 30
		}
		for range 1 + rng.IntN(3) {
			id := rng.IntN(len(h.Nodes) + 1)
			if id < len(h.Nodes) {
				id = h.Nodes[id].ID
			} else {
				id = 1000 // a node the host no longer has
			}
			size := uint64(1+rng.IntN(8<<10)) << 20
			if p.HugepageBytes > 0 {
				size = uint64(1+rng.IntN(8)) * p.HugepageBytes
			}
			if n >= 1000 {
				size = 256 << 20
			}
			p.MemoryBytes[id] += size
			if rng.IntN(3) == 0 {
				if p.ResidentBytes == nil {
					p.ResidentBytes = map[int]uint64{}
				}
				p.ResidentBytes[id] = uint64(rng.Int64N(int64(size)*5/4 + 1))
			}
			p.VCPUs[id] += 1 + rng.IntN(8)
		}
		if len(cpus) > 0 {
			switch rng.IntN(4) {
			case 0: // dedicated: its CPUs are its own
				var d []int
				for range 1 + rng.IntN(4) {
					d = append(d, cpus[rng.IntN(len(cpus))])
				}
				if rng.IntN(10) == 0 {
					d = append(d, 70000) // a CPU this host does not have
				}
				p.DedicatedCPUs = cpuset.New(d...)
				p.CPUs = p.DedicatedCPUs
			case 1, 2: // shared: floating over a node's CPUs
				node := h.Nodes[rng.IntN(len(h.Nodes))]
				p.CPUs = node.CPUs
			}
		}
		out = append(out, p)
	}
	return out
}

// placedBy places a few VMs with Make itself, as qnuma run does, and
// returns what the ledger would hold of them.
func placedBy(rng *rand.Rand, h *topology.Host) []Placed {
	var out []Placed
	for i := range rng.IntN(4) {
		spec := Spec{VCPUs: 1 + rng.IntN(6), MemoryBytes: uint64(1+rng.IntN(8)) * gib, Dedicated: rng.IntN(2) == 0, PreferHT: rng.IntN(2) == 0}
		p, err := refMake(h, spec, out)
		if err != nil {
			continue
		}
		out = append(out, placedOf(fmt.Sprintf("made%d", i), p))
	}
	return out
}

// randomSpec asks for anything qnuma plan takes: vCPUs, memory, hugepages,
// --spread, --prefer-ht, --cpus-dedicated, --overcommit, --host-nodes,
// --guest-nodes, --max-vcpus-per-node, --allow-memory-only-nodes, a near
// node, a policy; now and then one that is invalid.
func randomSpec(rng *rand.Rand, h *topology.Host) Spec {
	cpus := max(h.OnlineCPUs.Size(), 1)
	s := Spec{VCPUs: 1 + rng.IntN(8)}
	switch rng.IntN(4) {
	case 0:
		s.VCPUs = 1 + rng.IntN(cpus)
	case 1:
		s.VCPUs = 1 + rng.IntN(cpus/2+1)
	}
	if rng.IntN(60) == 0 {
		s.VCPUs = rng.IntN(2) - 1 // 0 or -1: bad
	}
	var mem uint64
	for _, n := range h.Nodes {
		mem += n.MemFree
	}
	switch rng.IntN(5) {
	case 4: // a few MiB: a split may leave nodes a single MiB or none
		s.MemoryBytes = uint64(1+rng.IntN(8)) << 20
	case 0:
		s.MemoryBytes = uint64(1+rng.IntN(16)) * gib
	case 1:
		s.MemoryBytes = uint64(1+rng.IntN(2048)) << 20
	default:
		s.MemoryBytes = (uint64(rng.Int64N(int64(mem/oneMiB)+2)) + 1) << 20
	}
	switch rng.IntN(8) {
	case 0:
		s.HugepageBytes = 2 << 20
		s.MemoryBytes = (s.MemoryBytes/s.HugepageBytes + 1) * s.HugepageBytes
	case 1:
		s.HugepageBytes = 1 << 30
		s.MemoryBytes = (s.MemoryBytes/s.HugepageBytes + 1) * s.HugepageBytes
	}
	if rng.IntN(80) == 0 {
		s.MemoryBytes += 4096 // not a whole granule: bad
	}
	s.Spread = rng.IntN(5) == 0
	s.PreferHT = rng.IntN(3) == 0
	s.Dedicated = rng.IntN(3) == 0
	s.Overcommit = rng.IntN(8) == 0 && (!s.Dedicated || rng.IntN(10) == 0)
	s.AllowMemoryOnly = rng.IntN(4) == 0
	if rng.IntN(5) == 0 {
		s.MaxVCPUsPerNode = 1 + rng.IntN(8)
	}
	if rng.IntN(6) == 0 {
		s.GuestNodes = 1 + rng.IntN(min(len(h.Nodes), 8))
	}
	if rng.IntN(6) == 0 {
		s.HasNearNode = true
		s.NearNode = h.Nodes[rng.IntN(len(h.Nodes))].ID
		if rng.IntN(20) == 0 {
			s.NearNode = 999 // not a node: bad
		}
	}
	if rng.IntN(8) == 0 {
		perm := rng.Perm(len(h.Nodes))
		for _, i := range perm[:1+rng.IntN(min(len(perm), 4))] {
			s.HostNodes = append(s.HostNodes, h.Nodes[i].ID)
		}
		if s.GuestNodes != 0 && rng.IntN(2) == 0 {
			s.GuestNodes = len(s.HostNodes)
		}
	}
	s.Policy = []memobj.Policy{"", "", memobj.PolicyBind, memobj.PolicyPreferred, memobj.PolicyInterleave}[rng.IntN(5)]
	s.BindOnly = rng.IntN(20) == 0
	s.Prealloc = rng.IntN(4) == 0
	return s
}

// diffPlans names the fields of two plans that differ, with both values.
func diffPlans(a, b *Plan) string {
	va, vb := reflect.ValueOf(*a), reflect.ValueOf(*b)
	var s strings.Builder
	for i := range va.NumField() {
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			fmt.Fprintf(&s, "%s: new search %#v\nreference %#v\n", va.Type().Field(i).Name, va.Field(i).Interface(), vb.Field(i).Interface())
		}
	}
	return s.String()
}

// Two seeds whose sets become the same set share the rest of their growth
// only when no fit on the way hung on the order of the set's nodes. Here a
// node with room for a single MiB takes the larger share of an even split
// when it comes first, and the split does not fit (an interleave cannot be
// split by room); it fits in the other order.
func TestSearchSharedGrowthKeepsOrder(t *testing.T) {
	// Three one-core nodes, the first two near; small has 1 MiB free.
	host := func(small int) *topology.Host {
		h := genHost(3, 1, 1, 1000<<20)
		h.Nodes[small].MemFree = 1 << 20
		for i := range h.Nodes {
			for j := range h.Nodes {
				if i != j && i+j == 1 {
					h.Nodes[i].Distances[j] = 11
				}
			}
		}
		return h
	}
	spec := Spec{VCPUs: 2, MemoryBytes: 3 << 20, Policy: memobj.PolicyInterleave}
	for _, c := range []struct {
		name   string
		small  int
		nodes  []int
		reason string
	}{
		// Seed 0's set {0,1} (0 first) does not fit and grows to {0,1,2};
		// seed 1's {1,0} fits, and is the plan.
		{"the first seed's order does not fit", 0, []int{0, 1}, "Of 3 candidate node sets"},
		// Seed 0's {0,1} fits; seed 1's {1,0} does not, and seed 1 goes on
		// to {0,1,2}, a third candidate.
		{"the first seed's order fits", 1, []int{0, 1}, "Of 3 candidate node sets"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := host(c.small)
			got, err := Make(h, spec, nil)
			if err != nil {
				t.Fatal(err)
			}
			want, err := refMake(h, spec, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("new search and reference differ:\n%s", diffPlans(got, want))
			}
			if !slices.Equal(got.HostNodes, c.nodes) || !strings.Contains(strings.Join(got.Reasons, " "), c.reason) {
				t.Errorf("plan on nodes %v, reasons %q; want nodes %v and %q", got.HostNodes, got.Reasons, c.nodes, c.reason)
			}
		})
	}
}
