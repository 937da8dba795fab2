package plan

import (
	"errors"
	"fmt"
	"testing"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/topology"
)

// benchHost is nodes × 8 cores × 2 threads (1,024 CPUs at 64 nodes), 32 GiB
// free per node, nodes grouped by four into packages (distances 10/16/22).
func benchHost(nodes int) *topology.Host {
	h := genHost(nodes, 8, 2, 32*gib)
	for i := range h.Nodes {
		for j := range h.Nodes {
			switch {
			case i == j:
			case i/4 == j/4:
				h.Nodes[i].Distances[j] = 16
			default:
				h.Nodes[i].Distances[j] = 22
			}
		}
	}
	return h
}

// benchPlaced is n small VMs spread over the host: 256 MiB and 2 floating
// vCPUs each, every tenth with one dedicated thread (at most half the CPUs).
func benchPlaced(h *topology.Host, n int) []Placed {
	cpus := h.OnlineCPUs.List()
	out := make([]Placed, n)
	for i := range out {
		node := h.Nodes[i%len(h.Nodes)]
		out[i] = Placed{
			Name:          fmt.Sprintf("vm%d", i),
			MemoryBytes:   map[int]uint64{node.ID: 256 << 20},
			VCPUs:         map[int]int{node.ID: 2},
			DedicatedCPUs: cpuset.New(),
		}
		if d := i / 10; i%10 == 0 && d < len(cpus)/2 {
			out[i].DedicatedCPUs = cpuset.New(cpus[d*2])
		}
	}
	return out
}

// BenchmarkMake plans a one-node VM and a wide VM (half the host's cores,
// a third of its memory) on hosts of 1 to 64 nodes with 0 to 1000 VMs placed.
func BenchmarkMake(b *testing.B) { benchMake(b, Make) }

// BenchmarkMakeReference is BenchmarkMake with the search Make had before
// issue 16 (ref_search_test.go), for before-and-after ratios in one run.
func BenchmarkMakeReference(b *testing.B) { benchMake(b, refMake) }

// BenchmarkSearch is the part of BenchmarkMake before the layout: every
// node's room and the choice of nodes, without build.
func BenchmarkSearch(b *testing.B) {
	benchMake(b, func(h *topology.Host, spec Spec, placed []Placed) (*Plan, error) {
		spec, err := checkSpec(h, spec)
		if err != nil {
			return nil, err
		}
		_, err = autoChoice(rooms(h, spec, placed), spec)
		return nil, err
	})
}

func benchMake(b *testing.B, make func(*topology.Host, Spec, []Placed) (*Plan, error)) {
	for _, nodes := range []int{1, 2, 4, 8, 16, 32, 64} {
		h := benchHost(nodes)
		for _, placed := range []int{0, 10, 100, 1000} {
			pl := benchPlaced(h, placed)
			specs := []struct {
				name string
				spec Spec
			}{
				{"one-node", Spec{VCPUs: 4, MemoryBytes: 8 * gib}},
				{"wide", Spec{VCPUs: max(2, nodes*8/2), MemoryBytes: uint64(nodes) * 32 * gib / 3 / oneMiB * oneMiB}},
				{"wide-dedicated", Spec{VCPUs: max(2, nodes*8/2), MemoryBytes: uint64(nodes) * 32 * gib / 3 / oneMiB * oneMiB, Dedicated: true, PreferHT: true}},
			}
			for _, s := range specs {
				b.Run(fmt.Sprintf("nodes=%d/cpus=%d/placed=%d/%s", nodes, h.OnlineCPUs.Size(), placed, s.name), func(b *testing.B) {
					if _, err := make(h, s.spec, pl); err != nil && !errors.Is(err, ErrDoesNotFit) {
						b.Fatal(err)
					}
					b.ReportAllocs()
					for b.Loop() {
						if _, err := make(h, s.spec, pl); err != nil && !errors.Is(err, ErrDoesNotFit) {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}
