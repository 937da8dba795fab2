package plan

import (
	"reflect"
	"testing"
)

// TestMakeAsymmetricDistances: a two-node VM on four nodes whose distances
// differ by direction goes to the pair that is near both ways. Nodes 0-1
// are 12 apart one way but 22 back; nodes 1-2 are 14 and 15.
func TestMakeAsymmetricDistances(t *testing.T) {
	h := genHost(4, 1, 1, 4*gib)
	rows := [][]int{
		{10, 12, 20, 30},
		{22, 10, 14, 24},
		{21, 15, 10, 16},
		{31, 25, 17, 10},
	}
	for i := range h.Nodes {
		for j, d := range rows[i] {
			h.Nodes[i].Distances[j] = d
		}
	}
	p, err := Make(h, Spec{VCPUs: 2, MemoryBytes: 1 * gib}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{1, 2}; !reflect.DeepEqual(p.HostNodes, want) {
		t.Errorf("host nodes %v, want %v (the pair nearest in both directions); reasons: %q", p.HostNodes, want, p.Reasons)
	}
	// The guest's distances keep the host's direction.
	if want := [][]int{{10, 14}, {15, 10}}; !reflect.DeepEqual(p.Distances, want) {
		t.Errorf("guest distances %v, want %v", p.Distances, want)
	}
}
