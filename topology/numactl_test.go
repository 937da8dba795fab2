package topology

import (
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"k8s.io/utils/cpuset"
)

// numactlNode is what `numactl --hardware` says of one node.
type numactlNode struct {
	cpus            cpuset.CPUSet
	sizeMB, freeMB  uint64
	distances       map[int]int
	haveSize, haveF bool
}

// parseNumactlHardware parses `numactl --hardware`:
//
//	available: 2 nodes (0-1)
//	node 0 cpus: 0 1 2 3
//	node 0 size: 4825 MB
//	node 0 free: 3766 MB
//	node distances:
//	node   0   1
//	  0:  10  21
func parseNumactlHardware(out string) (map[int]*numactlNode, error) {
	nodes := map[int]*numactlNode{}
	get := func(id int) *numactlNode {
		if nodes[id] == nil {
			nodes[id] = &numactlNode{cpus: cpuset.New()}
		}
		return nodes[id]
	}
	var columns []int
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[0] == "node" && f[2] == "cpus:":
			id, err := strconv.Atoi(f[1])
			if err != nil {
				return nil, fmt.Errorf("line %q: %w", line, err)
			}
			var ids []int
			for _, c := range f[3:] {
				n, err := strconv.Atoi(c)
				if err != nil {
					return nil, fmt.Errorf("line %q: %w", line, err)
				}
				ids = append(ids, n)
			}
			get(id).cpus = cpuset.New(ids...)
		case len(f) == 5 && f[0] == "node" && (f[2] == "size:" || f[2] == "free:") && f[4] == "MB":
			id, err1 := strconv.Atoi(f[1])
			mb, err2 := strconv.ParseUint(f[3], 10, 64)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("line %q: bad node or size", line)
			}
			if f[2] == "size:" {
				get(id).sizeMB, get(id).haveSize = mb, true
			} else {
				get(id).freeMB, get(id).haveF = mb, true
			}
		case len(f) >= 2 && f[0] == "node" && f[1] != "distances:" && !strings.HasSuffix(f[1], ":"):
			columns = []int{}
			for _, c := range f[1:] {
				n, err := strconv.Atoi(c)
				if err != nil {
					return nil, fmt.Errorf("distance header %q: %w", line, err)
				}
				columns = append(columns, n)
			}
		case len(f) >= 2 && strings.HasSuffix(f[0], ":") && columns != nil:
			from, err := strconv.Atoi(strings.TrimSuffix(f[0], ":"))
			if err != nil || len(f)-1 != len(columns) {
				return nil, fmt.Errorf("distance row %q does not match header %v", line, columns)
			}
			d := map[int]int{}
			for i, v := range f[1:] {
				if d[columns[i]], err = strconv.Atoi(v); err != nil {
					return nil, fmt.Errorf("distance row %q: %w", line, err)
				}
			}
			get(from).distances = d
		}
	}
	return nodes, nil
}

func TestParseNumactlHardware(t *testing.T) {
	out := "available: 3 nodes (0,8,250)\nnode 0 cpus: 0 1 2 3\nnode 0 size: 4825 MB\nnode 0 free: 3766 MB\n" +
		"node 8 cpus: 4 5\nnode 8 size: 100 MB\nnode 8 free: 50 MB\nnode 250 cpus:\nnode 250 size: 16384 MB\nnode 250 free: 16000 MB\n" +
		"node distances:\nnode     0     8   250 \n   0:   10    40    80 \n   8:   40    10    80 \n 250:   80    80    10 \n"
	got, err := parseNumactlHardware(out)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]*numactlNode{
		0:   {cpus: cpuset.New(0, 1, 2, 3), sizeMB: 4825, freeMB: 3766, haveSize: true, haveF: true, distances: map[int]int{0: 10, 8: 40, 250: 80}},
		8:   {cpus: cpuset.New(4, 5), sizeMB: 100, freeMB: 50, haveSize: true, haveF: true, distances: map[int]int{0: 40, 8: 10, 250: 80}},
		250: {cpus: cpuset.New(), sizeMB: 16384, freeMB: 16000, haveSize: true, haveF: true, distances: map[int]int{0: 80, 8: 80, 250: 10}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parse:\n%+v\nwant\n%+v", got, want)
	}
	if _, err := parseNumactlHardware("node distances:\nnode 0 1\n  0: 10\n"); err == nil {
		t.Error("a short distance row parsed without error")
	}
}

// TestReadAgreesWithNumactl reads this machine and compares with
// `numactl --hardware`: nodes, their cpus, sizes and distances.
func TestReadAgreesWithNumactl(t *testing.T) {
	if testing.Short() {
		t.Skip("starts numactl; skipped with -short")
	}
	numactl, err := exec.LookPath("numactl")
	if err != nil {
		t.Skip("numactl is not installed (make deps installs it)")
	}
	if _, err := os.Stat("/sys/devices/system/node"); err != nil {
		t.Skipf("this kernel has no NUMA support, numactl has nothing to say: %v", err)
	}
	out, err := exec.Command(numactl, "--hardware").Output()
	if err != nil {
		t.Fatalf("numactl --hardware: %v", err)
	}
	h, err := Read("/")
	if err != nil {
		t.Fatalf("Read(/): %v", err)
	}
	want, err := parseNumactlHardware(string(out))
	if err != nil {
		t.Fatalf("parse numactl --hardware: %v\n%s", err, out)
	}
	if len(want) != len(h.Nodes) {
		t.Fatalf("%d nodes, numactl says %d:\n%s", len(h.Nodes), len(want), out)
	}
	for _, n := range h.Nodes {
		w, ok := want[n.ID]
		if !ok {
			t.Errorf("node %d is not in numactl's output", n.ID)
			continue
		}
		// numactl lists a node's cpus from its cpumap, offline ones too.
		if got := w.cpus.Intersection(h.OnlineCPUs); !got.Equals(n.CPUs) {
			t.Errorf("node %d cpus %q, numactl says %q", n.ID, n.CPUs, got)
		}
		if !w.haveSize || !w.haveF {
			t.Errorf("numactl gives no size or free memory for node %d:\n%s", n.ID, out)
		}
		// numactl prints MemTotal in whole MiB.
		if got := n.MemTotal >> 20; got != w.sizeMB {
			t.Errorf("node %d memory %d MiB, numactl says %d MB", n.ID, got, w.sizeMB)
		}
		// Free memory moves between the two reads; a unit mistake would
		// be off by 1024 times, far beyond a tenth of the node.
		got, slack := n.MemFree>>20, w.sizeMB/10+16
		if got+slack < w.freeMB || got > w.freeMB+slack {
			t.Errorf("node %d free %d MiB, numactl says %d MB (allowed slack %d)", n.ID, got, w.freeMB, slack)
		}
		if !reflect.DeepEqual(n.Distances, w.distances) {
			t.Errorf("node %d distances %v, numactl says %v", n.ID, n.Distances, w.distances)
		}
	}
}
