package memobj

import (
	"fmt"
	"strconv"
)

// NumaNode is `-numa node,nodeid=N[,memdev=ID]`. A node without a memdev
// has CPUs and no memory.
type NumaNode struct {
	NodeID int
	Memdev string
}

func (n NumaNode) Validate() error {
	if n.NodeID < 0 || n.NodeID >= maxNUMANodes {
		return fmt.Errorf("numa node %d: nodeid out of range 0-%d", n.NodeID, maxNUMANodes-1)
	}
	if n.Memdev != "" && !validID(n.Memdev) {
		return fmt.Errorf("numa node %d: memdev %q is not a valid id", n.NodeID, n.Memdev)
	}
	return nil
}

func (n NumaNode) Args() []string {
	o := "node,nodeid=" + strconv.Itoa(n.NodeID)
	if n.Memdev != "" {
		o += ",memdev=" + n.Memdev
	}
	return []string{"-numa", o}
}

// NumaCPU is `-numa cpu,node-id=N,socket-id=S[,core-id=C[,thread-id=T]]`:
// the vCPUs matching the given ids belong to guest node N.
type NumaCPU struct {
	NodeID   int
	SocketID int
	// CoreID and ThreadID narrow the match; nil matches all.
	CoreID   *int
	ThreadID *int
}

func (c NumaCPU) Validate() error {
	if c.NodeID < 0 || c.NodeID >= maxNUMANodes {
		return fmt.Errorf("numa cpu: node-id %d out of range 0-%d", c.NodeID, maxNUMANodes-1)
	}
	if c.SocketID < 0 {
		return fmt.Errorf("numa cpu (node %d): socket-id %d is negative", c.NodeID, c.SocketID)
	}
	if c.CoreID != nil && *c.CoreID < 0 {
		return fmt.Errorf("numa cpu (node %d, socket %d): core-id %d is negative", c.NodeID, c.SocketID, *c.CoreID)
	}
	if c.ThreadID != nil {
		if c.CoreID == nil {
			return fmt.Errorf("numa cpu (node %d, socket %d): thread-id without core-id", c.NodeID, c.SocketID)
		}
		if *c.ThreadID < 0 {
			return fmt.Errorf("numa cpu (node %d, socket %d): thread-id %d is negative", c.NodeID, c.SocketID, *c.ThreadID)
		}
	}
	return nil
}

func (c NumaCPU) Args() []string {
	o := "cpu,node-id=" + strconv.Itoa(c.NodeID) + ",socket-id=" + strconv.Itoa(c.SocketID)
	if c.CoreID != nil {
		o += ",core-id=" + strconv.Itoa(*c.CoreID)
	}
	if c.ThreadID != nil {
		o += ",thread-id=" + strconv.Itoa(*c.ThreadID)
	}
	return []string{"-numa", o}
}

// Distance bounds as QEMU checks them (NUMA_DISTANCE_MIN, a uint8 value).
const (
	LocalDistance = 10
	maxDistance   = 255
)

// NumaDist is `-numa dist,src=S,dst=D,val=V`.
type NumaDist struct {
	Src, Dst, Val int
}

func (d NumaDist) Validate() error {
	for _, n := range []int{d.Src, d.Dst} {
		if n < 0 || n >= maxNUMANodes {
			return fmt.Errorf("numa dist %d->%d: node %d out of range 0-%d", d.Src, d.Dst, n, maxNUMANodes-1)
		}
	}
	if d.Val < LocalDistance || d.Val > maxDistance {
		return fmt.Errorf("numa dist %d->%d: distance %d out of range %d-%d", d.Src, d.Dst, d.Val, LocalDistance, maxDistance)
	}
	if d.Src == d.Dst && d.Val != LocalDistance {
		return fmt.Errorf("numa dist %d->%d: a node's distance to itself must be %d, not %d", d.Src, d.Dst, LocalDistance, d.Val)
	}
	return nil
}

func (d NumaDist) Args() []string {
	return []string{"-numa", fmt.Sprintf("dist,src=%d,dst=%d,val=%d", d.Src, d.Dst, d.Val)}
}

// MachineMemoryBackend is `-machine memory-backend=ID` (QEMU 5.0): the
// backend becomes the guest's main RAM without a -numa node. QEMU merges
// this with the user's own -machine options.
type MachineMemoryBackend struct {
	ID string
}

func (m MachineMemoryBackend) Validate() error {
	if !validID(m.ID) {
		return fmt.Errorf("machine memory-backend %q is not a valid id", m.ID)
	}
	return nil
}

func (m MachineMemoryBackend) Args() []string {
	return []string{"-machine", "memory-backend=" + m.ID}
}

// Memory is `-m SIZE`, always written with a unit (a bare number is MiB).
type Memory struct {
	SizeBytes uint64
}

func (m Memory) Validate() error {
	if m.SizeBytes == 0 {
		return fmt.Errorf("-m: memory size is zero")
	}
	return nil
}

func (m Memory) Args() []string { return []string{"-m", FormatSize(m.SizeBytes)} }
