package vm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// expectTopology is a shell function body that exits non-zero unless the
// running kernel sees exactly topo: node count, online CPUs, each node's
// cpulist, MemTotal and distance row.
func expectTopology(topo Topology) string {
	var b strings.Builder
	eq := func(got, want, what string) {
		fmt.Fprintf(&b, "\tgot=\"%s\"; [ \"$got\" = %q ] || die \"%s: got '$got', want '%s'\"\n", got, want, what, want)
	}
	eq("$(ls -d /sys/devices/system/node/node[0-9]* | wc -l)", fmt.Sprint(len(topo.Nodes)), "node count")
	eq("$(cat /sys/devices/system/cpu/online)", cpuList(0, topo.CPUs()-1), "online cpus")
	for i, n := range topo.Nodes {
		first, last := topo.NodeCPUs(i)
		eq(fmt.Sprintf("$(node_cpulist %d)", i), cpuList(first, last), fmt.Sprintf("node %d cpulist", i))
		eq(fmt.Sprintf("$(cat /sys/devices/system/node/node%d/distance)", i), distanceRow(topo, i), fmt.Sprintf("node %d distances", i))
		// The kernel keeps some of each node for itself (its image, page
		// structs), most on node 0; a quarter is far more than it takes
		// and far less than any wrong size here.
		lo, hi := n.MemoryMiB*3/4, n.MemoryMiB
		fmt.Fprintf(&b, "\tm=$(node_memtotal_mib %d); [ \"$m\" -ge %d ] && [ \"$m\" -le %d ] || die \"node %d MemTotal: got $m MiB, want %d..%d\"\n",
			i, lo, hi, i, lo, hi)
	}
	return b.String()
}

func cpuList(first, last int) string {
	switch {
	case first > last:
		return ""
	case first == last:
		return fmt.Sprint(first)
	}
	return fmt.Sprintf("%d-%d", first, last)
}

func distanceRow(topo Topology, i int) string {
	row := make([]string, len(topo.Nodes))
	for j := range row {
		switch {
		case topo.Distances != nil:
			row[j] = fmt.Sprint(topo.Distances[i][j])
		case i == j:
			row[j] = "10"
		default:
			row[j] = "20" // QEMU's default
		}
	}
	return strings.Join(row, " ")
}

// wrongTopologies are near misses of topo, each differing in one thing the
// check looks at.
func wrongTopologies(topo Topology) map[string]Topology {
	clone := func() Topology {
		c := Topology{Nodes: append([]Node{}, topo.Nodes...)}
		for _, row := range topo.Distances {
			c.Distances = append(c.Distances, append([]int{}, row...))
		}
		return c
	}
	wrong := map[string]Topology{}
	extra := clone()
	extra.Nodes = append(extra.Nodes, Node{CPUs: 1, MemoryMiB: 256})
	extra.Distances = nil
	wrong["an extra node"] = extra
	mem := clone()
	mem.Nodes[0].MemoryMiB *= 2
	wrong["node 0 twice as large"] = mem
	cpus := clone()
	cpus.Nodes[0].CPUs++
	wrong["node 0 one more cpu"] = cpus
	if len(topo.Nodes) > 1 && topo.Distances != nil {
		dist := clone()
		dist.Distances[0][1]++
		wrong["distance 0→1 one more"] = dist
	}
	return wrong
}

func TestHostSeesTopology(t *testing.T) {
	Require(t)
	for name, topo := range map[string]Topology{
		"two nodes":             TwoNodes(),
		"four nodes asymmetric": FourNodesAsymmetric(),
		"memory-only node":      WithMemoryOnlyNode(),
	} {
		t.Run(name, func(t *testing.T) {
			var s strings.Builder
			fmt.Fprintf(&s, "expect_right() (\n%s)\n", expectTopology(topo))
			s.WriteString("expect_right || die 'the real topology was rejected'\n")
			// Negative controls in the same boot: each near miss must fail.
			i := 0
			for what, w := range wrongTopologies(topo) {
				fmt.Fprintf(&s, "expect_wrong%d() (\n%s)\n", i, expectTopology(w))
				fmt.Fprintf(&s, "if expect_wrong%d 2>/dev/null; then die %q; fi\necho 'rejected: %s'\n", i, "accepted a topology with "+what, what)
				i++
			}
			res, err := Run(context.Background(), Options{Topology: topo}, s.String())
			if err != nil {
				t.Fatal(err)
			}
			if res.ExitCode != 0 {
				t.Fatalf("exit status %d; output:\n%s", res.ExitCode, res.Output)
			}
			if got := strings.Count(res.Output, "rejected: "); got != i {
				t.Errorf("%d near misses rejected, want %d; output:\n%s", got, i, res.Output)
			}
		})
	}
}

// A script asserting a topology the guest does not have fails the boot.
func TestWrongTopologyFails(t *testing.T) {
	Require(t)
	res, err := Run(context.Background(), Options{Topology: TwoNodes()}, expectTopology(FourNodesAsymmetric()))
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode == 0 {
		t.Fatalf("a 2-node host passed a 4-node check; output:\n%s", res.Output)
	}
	if !strings.Contains(res.Output, "FAIL: node count: got '2', want '4'") {
		t.Errorf("output lacks the failed assertion:\n%s", res.Output)
	}
}

func TestExitStatusAndOutput(t *testing.T) {
	Require(t)
	small := Topology{Nodes: []Node{{CPUs: 1, MemoryMiB: 256}}}
	for _, code := range []int{0, 3} {
		t.Run(fmt.Sprint("exit ", code), func(t *testing.T) {
			env := map[string]string{"CODE": fmt.Sprint(code), "GREETING": "hello 'there'"}
			res, err := Run(context.Background(), Options{Topology: small, Env: env},
				`echo "out: $GREETING"; echo "err: $(hostname)" >&2; exit "$CODE"`)
			if err != nil {
				t.Fatal(err)
			}
			if res.ExitCode != code {
				t.Errorf("ExitCode = %d, want %d", res.ExitCode, code)
			}
			want := "out: hello 'there'\nerr: qnuma-testhost\n"
			if res.Output != want {
				t.Errorf("Output = %q, want %q", res.Output, want)
			}
			if strings.Contains(res.Output, "qnuma-vm ") {
				t.Errorf("Output carries the console's verdict line: %q", res.Output)
			}
		})
	}
}

func TestHungScriptTimesOut(t *testing.T) {
	Require(t)
	res, err := Run(context.Background(), Options{
		Topology: Topology{Nodes: []Node{{CPUs: 1, MemoryMiB: 256}}},
		// Room for a boot on a loaded machine (5-10 s idle) before the
		// script's line; the test host is killed at this timeout.
		Timeout: 30 * time.Second,
	}, "echo about to hang; sleep 100000")
	if err == nil {
		t.Fatalf("Run returned %+v, want a timeout", res)
	}
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	t.Log(err)
	for _, want := range []string{"30s", "about to hang"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("timeout error lacks %q: %v", want, err)
		}
	}
}

// Canceling the context (here while the guest boots or sleeps) stops QEMU
// and says so, rather than waiting for the timeout.
func TestCanceledContextStopsTheHost(t *testing.T) {
	Require(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(2*time.Second, cancel)
	_, err := Run(ctx, Options{Topology: TwoNodes(), Timeout: 5 * time.Minute}, "sleep 100000")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}
