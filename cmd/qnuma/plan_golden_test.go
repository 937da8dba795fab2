package main

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/qnuma/qnuma/topology/topotest"
)

var update = flag.Bool("update", false, "rewrite the golden outputs in testdata/plan and testdata/libvirt")

// planGoldens are `qnuma plan` runs on the two-node snapshot whose text
// and --json outputs are kept in testdata/plan/NAME.txt and NAME.json.
var planGoldens = []struct {
	name string
	args []string
}{
	{"plain", []string{"--vcpus", "8", "--memory", "36G", "--", "qemu-system-x86_64", "-nographic"}},
	// The user's own cells: guest node 0's backend bound to host node 1
	// (given), guest node 1's left open (qnuma chooses), with vCPU
	// hotplug room in both cells and two I/O threads.
	{"cells", []string{"--bind-only", "--", "qemu-system-x86_64", "-nographic",
		"-smp", "4,sockets=2,cores=2,maxcpus=8", "-m", "640M",
		"-object", "iothread,id=io0", "-object", `{"qom-type":"iothread","id":"io1"}`,
		"-object", "memory-backend-ram,id=m0,size=256M,host-nodes=1,policy=bind",
		"-object", `{"qom-type":"memory-backend-memfd","id":"m1","size":402653184,"share":true}`,
		"-numa", "node,nodeid=0,memdev=m0,cpus=0-1,cpus=4-5",
		"-numa", "node,nodeid=1,memdev=m1,cpus=2-3,cpus=6-7"}},
	{"preferred-two-nodes", []string{"--vcpus", "12", "--memory", "8G", "--policy", "preferred"}},
	{"dedicated", []string{"--vcpus", "4", "--memory", "2G", "--cpus-dedicated"}},
	// Hotplug room: vCPUs fitted at 12 over both nodes, 4 present; memory
	// fitted at 36G over both nodes, 4G present, a virtio-mem per node.
	{"max-vcpus", []string{"--vcpus", "4", "--max-vcpus", "12", "--memory", "4G", "--", "qemu-system-x86_64", "-nographic"}},
	{"max-memory", []string{"--vcpus", "4", "--memory", "4G", "--max-memory", "36G", "--", "qemu-system-x86_64", "-nographic"}},
}

func TestPlanGolden(t *testing.T) {
	root := topotest.Unpack(t, intel)
	for _, g := range planGoldens {
		t.Run(g.name, func(t *testing.T) {
			for _, form := range []struct{ ext, flag string }{{"txt", ""}, {"json", "--json"}} {
				args := []string{"--root", root, "--qemu-version", "7.2"}
				if form.flag != "" {
					args = append(args, form.flag)
				}
				out, err := planOut(t, append(args, g.args...)...)
				if err != nil {
					t.Fatalf("qnuma plan %q: %v", g.args, err)
				}
				// The snapshot is unpacked in a new directory each run.
				out = strings.ReplaceAll(out, root, "ROOT")
				comparePlanGolden(t, filepath.Join("testdata", "plan", g.name+"."+form.ext), out)
			}
		})
	}
}

func comparePlanGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden output (make it with go test ./cmd/qnuma -run TestPlanGolden -update): %v", err)
	}
	if got != string(want) {
		w, g := strings.Split(string(want), "\n"), strings.Split(got, "\n")
		for i := range max(len(w), len(g)) {
			var wl, gl string
			if i < len(w) {
				wl = w[i]
			}
			if i < len(g) {
				gl = g[i]
			}
			if wl != gl {
				t.Fatalf("%s differs at line %d (go test ./cmd/qnuma -run TestPlanGolden -update rewrites it):\nwant %q\ngot  %q", path, i+1, wl, gl)
			}
		}
	}
}

// TestPlanJSONApplied checks the keys that say what qnuma applies beyond
// the placement itself: per guest node given or chosen, the hotpluggable
// vCPUs' host CPUs, the I/O threads, the user's topology kept, and the
// process memory policy's fallback.
func TestPlanJSONApplied(t *testing.T) {
	root := topotest.Unpack(t, intel)
	type policy struct {
		Mode  string `json:"mode"`
		Nodes []int  `json:"nodes"`
	}
	type vcpu struct {
		VCPU      int    `json:"vcpu"`
		GuestNode int    `json:"guest_node"`
		Socket    int    `json:"socket"`
		HostCPUs  string `json:"host_cpus"`
		Present   bool   `json:"present"`
	}
	var got struct {
		GuestNodes []struct {
			ID        int    `json:"id"`
			HostNodes []int  `json:"host_nodes"`
			Binding   string `json:"binding"`
			Backend   string `json:"backend"`
			Policy    string `json:"policy"`
			Reason    string `json:"reason"`
		} `json:"guest_nodes"`
		VCPUs        []vcpu `json:"vcpus"`
		HotplugVCPUs []vcpu `json:"hotplug_vcpus"`
		SMP          struct {
			Sockets, Cores, Threads, Dies, CPUs, MaxCPUs int
			Given                                        bool
		} `json:"smp"`
		EmulatorCPUs string `json:"emulator_cpus"`
		IOThreads    []struct {
			IOThread string `json:"iothread"`
			HostCPUs string `json:"host_cpus"`
		} `json:"iothreads"`
		ProcessMempolicy struct {
			Mode     string  `json:"mode"`
			Nodes    []int   `json:"nodes"`
			Fallback *policy `json:"fallback"`
		} `json:"process_mempolicy"`
	}
	decode := func(args ...string) {
		t.Helper()
		got.ProcessMempolicy.Fallback = nil
		out, err := planOut(t, append([]string{"--json", "--root", root, "--qemu-version", "7.2"}, args...)...)
		if err != nil {
			t.Fatalf("qnuma plan %q: %v", args, err)
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("decode %s: %v", out, err)
		}
	}

	decode(planGoldens[1].args...) // cells
	if len(got.GuestNodes) != 2 {
		t.Fatalf("guest_nodes %+v, want 2", got.GuestNodes)
	}
	g0, g1 := got.GuestNodes[0], got.GuestNodes[1]
	if g0.Binding != "given" || g0.Backend != "m0" || g0.Policy != "bind" || !slices.Equal(g0.HostNodes, []int{1}) {
		t.Errorf("guest node 0 %+v, want given: m0 bind on host node 1", g0)
	}
	if g1.Binding != "chosen" || g1.Backend != "m1" || g1.Policy != "bind" || !strings.Contains(g1.Reason, "left host-nodes open") {
		t.Errorf("guest node 1 %+v, want chosen by qnuma for the open backend m1", g1)
	}
	node1 := "8-15,24-31"
	var hot []int
	for _, v := range got.HotplugVCPUs {
		hot = append(hot, v.VCPU)
		if v.Present || v.HostCPUs != node1 || v.Socket != 1 {
			t.Errorf("hotplug vcpu %+v, want not present, socket 1, on host CPUs %s", v, node1)
		}
	}
	if !slices.Equal(hot, []int{4, 5, 6, 7}) || got.HotplugVCPUs[0].GuestNode != 0 || got.HotplugVCPUs[2].GuestNode != 1 {
		t.Errorf("hotplug_vcpus %+v, want 4-5 on guest node 0, 6-7 on guest node 1", got.HotplugVCPUs)
	}
	if len(got.VCPUs) != 4 || !got.VCPUs[0].Present {
		t.Errorf("vcpus %+v, want the 4 present ones", got.VCPUs)
	}
	if s := got.SMP; !s.Given || s.CPUs != 4 || s.MaxCPUs != 8 || s.Sockets != 2 || s.Cores != 2 || s.Threads != 2 || s.Dies != 1 {
		t.Errorf("smp %+v, want the user's 4 of maxcpus 8, sockets=2 cores=2 threads=2, given", s)
	}
	if len(got.IOThreads) != 2 || got.IOThreads[0].IOThread != "io0" || got.IOThreads[1].IOThread != "io1" ||
		got.IOThreads[0].HostCPUs != got.EmulatorCPUs || got.EmulatorCPUs != node1 {
		t.Errorf("iothreads %+v (emulator_cpus %s), want io0 and io1 on %s", got.IOThreads, got.EmulatorCPUs, node1)
	}
	if got.ProcessMempolicy.Fallback != nil {
		t.Errorf("bind has a fallback %+v", got.ProcessMempolicy.Fallback)
	}

	decode("--vcpus", "12", "--memory", "8G", "--policy", "preferred")
	mp := got.ProcessMempolicy
	if mp.Mode != "preferred-many" || !slices.Equal(mp.Nodes, []int{0, 1}) || mp.Fallback == nil ||
		mp.Fallback.Mode != "preferred" || !slices.Equal(mp.Fallback.Nodes, []int{0}) {
		t.Errorf("process_mempolicy %+v (fallback %+v), want preferred-many on 0-1 falling back to preferred on 0", mp, mp.Fallback)
	}
	if got.SMP.Given || len(got.HotplugVCPUs) != 0 || len(got.IOThreads) != 0 {
		t.Errorf("qnuma's own layout: smp %+v, hotplug_vcpus %v, iothreads %v; want not given, none, none", got.SMP, got.HotplugVCPUs, got.IOThreads)
	}
	for _, g := range got.GuestNodes {
		if g.Binding != "chosen" || g.Policy != "preferred" {
			t.Errorf("guest node %+v, want chosen, preferred", g)
		}
	}
}
