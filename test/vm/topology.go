package vm

import (
	"errors"
	"fmt"
	"strconv"
)

// Node is one NUMA node of the test host. CPUs 0 makes a memory-only node,
// MemoryMiB 0 a node with CPUs and no memory.
type Node struct {
	CPUs      int
	MemoryMiB int
}

// Topology is the test host's NUMA layout as data. Node i gets node id i
// and the next Nodes[i].CPUs CPU ids. Distances, when not nil, is the full
// matrix (Distances[i][j] from node i to node j); nil leaves QEMU's default
// of 10 local and 20 remote.
type Topology struct {
	Nodes     []Node
	Distances [][]int
}

// TwoNodes is two nodes of 2 CPUs and 1 GiB each, 21 apart.
func TwoNodes() Topology {
	return Topology{
		Nodes:     []Node{{CPUs: 2, MemoryMiB: 1024}, {CPUs: 2, MemoryMiB: 1024}},
		Distances: [][]int{{10, 21}, {21, 10}},
	}
}

// FourNodesAsymmetric is four nodes of 1 CPU and 512 MiB each whose
// distances differ by direction (0→1 is 12, 1→0 is 22), which QEMU only
// accepts as a complete matrix.
func FourNodesAsymmetric() Topology {
	n := Node{CPUs: 1, MemoryMiB: 512}
	return Topology{
		Nodes: []Node{n, n, n, n},
		Distances: [][]int{
			{10, 12, 20, 30},
			{22, 10, 14, 24},
			{21, 15, 10, 16},
			{31, 25, 17, 10},
		},
	}
}

// WithMemoryOnlyNode is two nodes of 1 CPU and 512 MiB plus node 2 with
// 512 MiB and no CPUs (like CXL or HBM memory).
func WithMemoryOnlyNode() Topology {
	return Topology{
		Nodes: []Node{{CPUs: 1, MemoryMiB: 512}, {CPUs: 1, MemoryMiB: 512}, {CPUs: 0, MemoryMiB: 512}},
		Distances: [][]int{
			{10, 20, 30},
			{20, 10, 30},
			{30, 30, 10},
		},
	}
}

// CPUs is the total CPU count.
func (t Topology) CPUs() int {
	n := 0
	for _, node := range t.Nodes {
		n += node.CPUs
	}
	return n
}

// MemoryMiB is the total memory.
func (t Topology) MemoryMiB() int {
	n := 0
	for _, node := range t.Nodes {
		n += node.MemoryMiB
	}
	return n
}

// NodeCPUs returns the first and last CPU id of node i (first > last for a
// memory-only node).
func (t Topology) NodeCPUs(i int) (first, last int) {
	for _, node := range t.Nodes[:i] {
		first += node.CPUs
	}
	return first, first + t.Nodes[i].CPUs - 1
}

// Validate reports a topology QEMU would refuse or the guest kernel would
// not see as written.
func (t Topology) Validate() error {
	if len(t.Nodes) == 0 {
		return errors.New("topology: no nodes")
	}
	if t.CPUs() == 0 {
		return errors.New("topology: no node has CPUs")
	}
	if t.MemoryMiB() == 0 {
		return errors.New("topology: no node has memory")
	}
	for i, n := range t.Nodes {
		if n.CPUs < 0 || n.MemoryMiB < 0 {
			return fmt.Errorf("topology: node %d: negative CPUs (%d) or memory (%d MiB)", i, n.CPUs, n.MemoryMiB)
		}
		if n.CPUs == 0 && n.MemoryMiB == 0 {
			return fmt.Errorf("topology: node %d has neither CPUs nor memory", i)
		}
	}
	if t.Distances == nil {
		return nil
	}
	if len(t.Distances) != len(t.Nodes) {
		return fmt.Errorf("topology: %d distance rows for %d nodes", len(t.Distances), len(t.Nodes))
	}
	for i, row := range t.Distances {
		if len(row) != len(t.Nodes) {
			return fmt.Errorf("topology: distance row %d has %d entries for %d nodes", i, len(row), len(t.Nodes))
		}
		for j, d := range row {
			// Linux ignores a SLIT whose local distance is not 10 or whose
			// remote distances are not above it.
			switch {
			case i == j && d != 10:
				return fmt.Errorf("topology: distance %d→%d is %d, want 10", i, j, d)
			case i != j && (d <= 10 || d >= 255):
				return fmt.Errorf("topology: distance %d→%d is %d, want 11 to 254", i, j, d)
			}
		}
	}
	return nil
}

// Args renders the topology as QEMU arguments: -m, -smp with one socket per
// CPU, one memory backend per node that has memory, -numa node, -numa cpu
// per CPU, and -numa dist for every ordered pair when distances are given.
func (t Topology) Args() ([]string, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	cpus := strconv.Itoa(t.CPUs())
	args := []string{
		"-m", strconv.Itoa(t.MemoryMiB()) + "M",
		"-smp", cpus + ",sockets=" + cpus + ",cores=1,threads=1",
	}
	for i, n := range t.Nodes {
		id := strconv.Itoa(i)
		node := "node,nodeid=" + id
		if n.MemoryMiB > 0 {
			args = append(args, "-object", "memory-backend-ram,id=m"+id+",size="+strconv.Itoa(n.MemoryMiB)+"M")
			node += ",memdev=m" + id
		}
		args = append(args, "-numa", node)
	}
	for i := range t.Nodes {
		first, last := t.NodeCPUs(i)
		for c := first; c <= last; c++ {
			args = append(args, "-numa", "cpu,node-id="+strconv.Itoa(i)+",socket-id="+strconv.Itoa(c))
		}
	}
	for i, row := range t.Distances {
		for j, d := range row {
			if i != j {
				args = append(args, "-numa", fmt.Sprintf("dist,src=%d,dst=%d,val=%d", i, j, d))
			}
		}
	}
	return args, nil
}
