package vm

import (
	"context"
	"fmt"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseTinyGuest(t *testing.T) {
	const two = "qnuma-guest: vcpus 0-1 memtotal 200000 kB\n" +
		"qnuma-guest: node 0 cpus 0 memtotal 90000 kB distance 10 17\r\n" +
		"qnuma-guest: node 1 cpus 1 memtotal 110000 kB distance 17 10\n" +
		"qnuma-guest: node 2 cpus - memtotal 50000 kB distance 30 30\n" +
		TinyGuestMarker + "\nreboot: Power down\n"
	tests := []struct {
		name    string
		console string
		want    []GuestNodeView
		wantErr string
	}{
		{name: "three nodes, one memory-only", console: two, want: []GuestNodeView{
			{ID: 0, CPUs: "0", MemTotalKiB: 90000, Distances: []int{10, 17}},
			{ID: 1, CPUs: "1", MemTotalKiB: 110000, Distances: []int{17, 10}},
			{ID: 2, CPUs: "", MemTotalKiB: 50000, Distances: []int{30, 30}},
		}},
		{name: "no marker", console: strings.ReplaceAll(two, TinyGuestMarker, ""), wantErr: "no \"qnuma-guest: boot ok\""},
		{name: "no nodes", console: TinyGuestMarker + "\n", wantErr: "no node lines"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTinyGuest(tt.console)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseTinyGuest() = %v, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseTinyGuest() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestTinyGuestArgs(t *testing.T) {
	got := TinyGuestArgs("/k", "/i")
	want := []string{
		"-kernel", "/k", "-initrd", "/i",
		"-append", "console=ttyS0 quiet panic=-1 printk.devkmsg=on printk.time=0",
		"-nodefaults", "-no-reboot", "-display", "none", "-serial", "stdio",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("TinyGuestArgs() =\n%q\nwant\n%q", got, want)
	}
}

// The tiny guest boots here under TCG and prints the NUMA layout QEMU gave
// it; a guest given one node prints one node (the check can fail).
func TestTinyGuestPrintsItsNUMAView(t *testing.T) {
	Require(t)
	kernel, initrd, err := TinyGuest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	two := Topology{
		Nodes:     []Node{{CPUs: 1, MemoryMiB: 160}, {CPUs: 1, MemoryMiB: 96}},
		Distances: [][]int{{10, 17}, {27, 10}},
	}
	one := Topology{Nodes: []Node{{CPUs: 2, MemoryMiB: 256}}}
	for name, topo := range map[string]Topology{"two nodes": two, "one node": one} {
		t.Run(name, func(t *testing.T) {
			topoArgs, err := topo.Args()
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			args := append([]string{"-accel", "tcg,thread=multi", "-cpu", "max"}, topoArgs...)
			start := time.Now()
			out, err := exec.CommandContext(ctx, "qemu-system-x86_64", append(args, TinyGuestArgs(kernel, initrd)...)...).CombinedOutput()
			if err != nil {
				t.Fatalf("tiny guest: %v\n%s", err, out)
			}
			t.Logf("tiny guest (%s) booted and powered off in %s", name, time.Since(start).Round(100*time.Millisecond))
			nodes, err := ParseTinyGuest(string(out))
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if err := checkGuestView(nodes, topo); err != nil {
				t.Errorf("%v; console:\n%s", err, out)
			}
			// Negative control: the same view checked against the other
			// topology fails.
			other := one
			if name == "one node" {
				other = two
			}
			if err := checkGuestView(nodes, other); err == nil {
				t.Errorf("the %s guest's view passed the check for %+v", name, other)
			}
		})
	}
}

// checkGuestView reports how the guest's printed nodes differ from topo.
func checkGuestView(nodes []GuestNodeView, topo Topology) error {
	if len(nodes) != len(topo.Nodes) {
		return fmt.Errorf("guest printed %d nodes, want %d", len(nodes), len(topo.Nodes))
	}
	for i, n := range nodes {
		first, last := topo.NodeCPUs(i)
		dist := strings.Trim(fmt.Sprint(n.Distances), "[]")
		if n.ID != i || n.CPUs != cpuList(first, last) || dist != distanceRow(topo, i) {
			return fmt.Errorf("node line %+v does not match node %d of %+v", n, i, topo)
		}
		// The kernel keeps part of node 0 for itself; half is a loose bound
		// that still tells 96 MiB from 256 MiB.
		lo, hi := topo.Nodes[i].MemoryMiB*1024/2, topo.Nodes[i].MemoryMiB*1024
		if n.MemTotalKiB < lo || n.MemTotalKiB > hi {
			return fmt.Errorf("node %d MemTotal %d KiB, want %d..%d", i, n.MemTotalKiB, lo, hi)
		}
	}
	return nil
}
