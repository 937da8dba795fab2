package main

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/affinity/affinitytest"
	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/plan"
	"github.com/qnuma/qnuma/qemucmd"
	"github.com/qnuma/qnuma/topology"
)

func TestIsNumactlSyntax(t *testing.T) {
	tests := []struct {
		args []string
		want bool
	}{
		{[]string{"--membind=1", "--", "ls"}, true},
		{[]string{"--membind", "1", "ls"}, true},
		{[]string{"-m1", "ls"}, true},
		{[]string{"-m", "1", "ls"}, true},
		{[]string{"-N", "0", "ls"}, true},
		{[]string{"-C0-1", "ls"}, true},
		{[]string{"--interleave=all", "ls"}, true},
		{[]string{"-p", "0", "ls"}, true},
		{[]string{"--localalloc", "ls"}, true},
		{[]string{"-l", "ls"}, true},
		{[]string{"--exec", "-m0", "ls"}, true},
		{[]string{pinHelperArg}, true},
		{[]string{"run", "--", "qemu-system-x86_64"}, false},
		{[]string{"topology"}, false},
		{[]string{"--help"}, false},
		{[]string{"-h"}, false},
		{[]string{"-lx"}, false},
		{[]string{"--membindx=1"}, false},
		{[]string{"--memb=1", "ls"}, true},
		{[]string{"--phys=1", "ls"}, true},
		{[]string{"--p=1", "ls"}, true}, // ambiguous: numactl's error, not kong's
		{[]string{"--touch", "ls"}, true},
		{nil, false},
	}
	for _, tt := range tests {
		if got := isNumactlSyntax(tt.args); got != tt.want {
			t.Errorf("isNumactlSyntax(%q) = %v, want %v", tt.args, got, tt.want)
		}
	}
}

func TestParseNumactl(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    numactlOpts
		wantErr string
	}{
		{"long with =", []string{"--membind=0-1", "--", "qemu-system-x86_64", "-m", "1G"},
			numactlOpts{Policy: memobj.PolicyBind, Mem: "0-1", Argv: []string{"qemu-system-x86_64", "-m", "1G"}}, ""},
		{"long, value apart, no --", []string{"--membind", "1", "ls", "-l"},
			numactlOpts{Policy: memobj.PolicyBind, Mem: "1", Argv: []string{"ls", "-l"}}, ""},
		{"short attached", []string{"-m1", "-N1", "-C2-3", "ls"},
			numactlOpts{Policy: memobj.PolicyBind, Mem: "1", CPUNodes: "1", PhysCPUs: "2-3", Argv: []string{"ls"}}, ""},
		{"short apart", []string{"-i", "all", "-N", "0", "--", "ls"},
			numactlOpts{Policy: memobj.PolicyInterleave, Mem: "all", CPUNodes: "0", Argv: []string{"ls"}}, ""},
		{"preferred and exec", []string{"--exec", "--preferred=1", "-v", "qemu-system-x86_64"},
			numactlOpts{Policy: memobj.PolicyPreferred, Mem: "1", Exec: true, Argv: []string{"-v", "qemu-system-x86_64"}}, "unknown option \"-v\""},
		{"verbose", []string{"--verbose", "--physcpubind=0", "ls"},
			numactlOpts{Verbose: true, PhysCPUs: "0", Argv: []string{"ls"}}, ""},
		{"localalloc", []string{"-l", "--", "ls"},
			numactlOpts{Policy: memobj.PolicyDefault, Argv: []string{"ls"}}, ""},
		{"command options are the command's", []string{"-m0", "ls", "-m", "--", "x"},
			numactlOpts{Policy: memobj.PolicyBind, Mem: "0", Argv: []string{"ls", "-m", "--", "x"}}, ""},
		{"no command", []string{"--membind=0"}, numactlOpts{}, "no command given"},
		{"no command after --", []string{"--membind=0", "--"}, numactlOpts{}, "no command given"},
		{"missing value", []string{"--membind"}, numactlOpts{}, "needs a value"},
		{"empty value", []string{"--membind=", "ls"}, numactlOpts{}, "needs a value"},
		{"value on a flag", []string{"--exec=1", "-m0", "ls"}, numactlOpts{}, "takes no value"},
		{"unknown option", []string{"--membind=0", "--bogus", "ls"}, numactlOpts{}, "unknown option \"--bogus\""},
		{"abbreviated", []string{"--memb=0", "--phys", "1", "--cpun=0", "ls"},
			numactlOpts{Policy: memobj.PolicyBind, Mem: "0", PhysCPUs: "1", CPUNodes: "0", Argv: []string{"ls"}}, ""},
		{"abbreviated flag", []string{"--loc", "--exe", "ls"},
			numactlOpts{Policy: memobj.PolicyDefault, Exec: true, Argv: []string{"ls"}}, ""},
		{"ambiguous as in numactl", []string{"--p=0", "ls"}, numactlOpts{}, "option --p=0 is ambiguous; possibilities: --preferred --physcpubind --preferred-many"},
		{"ambiguous with numactl's own", []string{"--s", "ls"}, numactlOpts{}, "ambiguous"},
		{"exact beats prefix", []string{"--preferred=0", "ls"},
			numactlOpts{Policy: memobj.PolicyPreferred, Mem: "0", Argv: []string{"ls"}}, ""},
		{"numactl option qnuma lacks", []string{"--hard", "ls"}, numactlOpts{}, "numactl's --hardware, which qnuma does not support"},
		{"strict warns", []string{"--strict", "-m0", "ls"},
			numactlOpts{Policy: memobj.PolicyBind, Mem: "0", Argv: []string{"ls"},
				Warnings: []string{"--strict applies to shared memory segments only: ignored for the command, as numactl does"}}, ""},
		{"strict short", []string{"-t", "ls"},
			numactlOpts{Argv: []string{"ls"},
				Warnings: []string{"--strict applies to shared memory segments only: ignored for the command, as numactl does"}}, ""},
		{"touch refused as numactl does", []string{"--membind=0", "--touch", "ls"}, numactlOpts{}, "--touch must follow a shared memory segment"},
		{"touch short", []string{"-T", "ls"}, numactlOpts{}, "--touch must follow a shared memory segment"},
		{"state dir", []string{"--state-dir=/x", "-m0", "ls"},
			numactlOpts{Policy: memobj.PolicyBind, Mem: "0", StateDir: "/x", Argv: []string{"ls"}}, ""},
		{"conflicting policies", []string{"--membind=0", "--interleave=0", "ls"}, numactlOpts{}, "conflicting memory policies: --membind and --interleave"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseNumactl(tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseNumactl(%q) error = %v, want %q", tt.args, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Policy != tt.want.Policy || got.Mem != tt.want.Mem || got.CPUNodes != tt.want.CPUNodes ||
				got.PhysCPUs != tt.want.PhysCPUs || got.Exec != tt.want.Exec || got.Verbose != tt.want.Verbose ||
				got.StateDir != tt.want.StateDir || !slices.Equal(got.Warnings, tt.want.Warnings) ||
				!slices.Equal(got.Argv, tt.want.Argv) {
				t.Errorf("parseNumactl(%q) = %+v, want %+v", tt.args, got, tt.want)
			}
		})
	}
}

// twoNodeHost has node 0 with CPUs 0-1, node 1 with CPUs 2-3, and node 2
// with memory only.
func twoNodeHost() *topology.Host {
	h := &topology.Host{
		Nodes: []topology.Node{
			{ID: 0, CPUs: cpuset.New(0, 1), MemTotal: 4 << 30, MemFree: 4 << 30},
			{ID: 1, CPUs: cpuset.New(2, 3), MemTotal: 4 << 30, MemFree: 4 << 30},
			{ID: 2, CPUs: cpuset.New(), MemTotal: 4 << 30, MemFree: 4 << 30},
		},
		OnlineCPUs: cpuset.New(0, 1, 2, 3),
	}
	for c := 0; c < 4; c++ {
		h.CPUs = append(h.CPUs, topology.CPU{ID: c, Node: c / 2, Core: c, Siblings: cpuset.New(c)})
	}
	h.Allowed = topology.Allowed{CPUs: h.OnlineCPUs, Mems: cpuset.New(0, 1, 2), Source: "online"}
	return h
}

func TestResolveNumactl(t *testing.T) {
	c := cpuset.New
	tests := []struct {
		name    string
		opts    numactlOpts
		want    numactlBinding
		wantErr string
	}{
		{"membind only", numactlOpts{Policy: memobj.PolicyBind, Mem: "1"},
			numactlBinding{Policy: memobj.PolicyBind, Mem: c(1), Nodes: c(1)}, ""},
		{"interleave all", numactlOpts{Policy: memobj.PolicyInterleave, Mem: "all"},
			numactlBinding{Policy: memobj.PolicyInterleave, Mem: c(0, 1, 2), Nodes: c(0, 1, 2)}, ""},
		{"cpunodebind sets cpus and nodes", numactlOpts{Policy: memobj.PolicyBind, Mem: "0-1", CPUNodes: "1"},
			numactlBinding{Policy: memobj.PolicyBind, Mem: c(0, 1), CPUs: c(2, 3), Nodes: c(1)}, ""},
		{"physcpubind alone", numactlOpts{PhysCPUs: "1-2"},
			numactlBinding{CPUs: c(1, 2), Nodes: c(0, 1)}, ""},
		{"physcpubind within cpunodebind", numactlOpts{CPUNodes: "0", PhysCPUs: "1-2"},
			numactlBinding{CPUs: c(1), Nodes: c(0)}, ""},
		{"node not on host", numactlOpts{Policy: memobj.PolicyBind, Mem: "5"}, numactlBinding{}, "nodes \"5\": 5 not on this host"},
		{"cpu not on host", numactlOpts{PhysCPUs: "7"}, numactlBinding{}, "cpus \"7\": 7 not on this host"},
		{"bad list", numactlOpts{Policy: memobj.PolicyBind, Mem: "0-x"}, numactlBinding{}, "nodes \"0-x\""},
		{"relative nodes", numactlOpts{Policy: memobj.PolicyBind, Mem: "+1"}, numactlBinding{}, "not supported"},
		{"preferred needs one node", numactlOpts{Policy: memobj.PolicyPreferred, Mem: "0-1"}, numactlBinding{}, "--preferred takes one node"},
		{"cpunodebind on a memory-only node", numactlOpts{CPUNodes: "2"}, numactlBinding{}, "these nodes have no cpus"},
		{"physcpubind outside cpunodebind", numactlOpts{CPUNodes: "0", PhysCPUs: "3"}, numactlBinding{}, "has no cpu on --cpunodebind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.opts.resolve(twoNodeHost())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("resolve error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Policy != tt.want.Policy || !got.Mem.Equals(tt.want.Mem) || !got.CPUs.Equals(tt.want.CPUs) || !got.Nodes.Equals(tt.want.Nodes) {
				t.Errorf("resolve = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestNumactlPlanKeepsUserSMPAndBindsAsAsked(t *testing.T) {
	q, err := plan.ParseQEMUArgv([]string{"qemu-system-x86_64", "-smp", "2", "-m", "1G"})
	if err != nil {
		t.Fatal(err)
	}
	b := numactlBinding{Policy: memobj.PolicyInterleave, Mem: cpuset.New(0, 1), CPUs: cpuset.New(2, 3), Nodes: cpuset.New(1)}
	p, note, err := numactlPlan(twoNodeHost(), b, q)
	if err != nil {
		t.Fatal(err)
	}
	if note != "" {
		t.Errorf("note %q for a vm that fits", note)
	}
	if !p.BindOnly {
		t.Error("plan is not bind-only: qnuma would add its own -smp/-m")
	}
	if len(p.VCPUs) != 2 {
		t.Fatalf("plan has %d vcpus, want the user's -smp 2", len(p.VCPUs))
	}
	for _, v := range p.VCPUs {
		if !v.HostCPUs.IsSubsetOf(cpuset.New(2, 3)) || v.HostCPUs.IsEmpty() {
			t.Errorf("vcpu %d on cpus %s, want within --cpunodebind's 2-3", v.ID, v.HostCPUs)
		}
	}
	if p.Mempolicy.Mode != memobj.PolicyInterleave || !p.Mempolicy.Nodes.Equals(cpuset.New(0, 1)) {
		t.Errorf("mempolicy = %+v, want interleave 0-1 as given", p.Mempolicy)
	}
	if !p.EmulatorCPUs.Equals(cpuset.New(2, 3)) {
		t.Errorf("emulator cpus = %s, want 2-3", p.EmulatorCPUs)
	}
	if got := q.Final(nil); !slices.Equal(got, []string{"qemu-system-x86_64", "-smp", "2", "-m", "1G"}) {
		t.Errorf("argv = %q, want the user's unchanged", got)
	}
}

func TestNumactlPlanFloatsWhatDoesNotFit(t *testing.T) {
	q, err := plan.ParseQEMUArgv([]string{"qemu-system-x86_64", "-smp", "3", "-m", "1G"})
	if err != nil {
		t.Fatal(err)
	}
	b := numactlBinding{Policy: memobj.PolicyBind, Mem: cpuset.New(1), Nodes: cpuset.New(1)}
	p, note, err := numactlPlan(twoNodeHost(), b, q)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(note, "does not fit") || !strings.Contains(note, "float over the cpus of nodes 1") {
		t.Errorf("note = %q, want the reason and the fallback", note)
	}
	if len(p.VCPUs) != 3 {
		t.Fatalf("plan has %d vcpus, want 3", len(p.VCPUs))
	}
	for _, v := range p.VCPUs {
		if !v.HostCPUs.Equals(cpuset.New(2, 3)) {
			t.Errorf("vcpu %d on %s, want node 1's cpus 2-3", v.ID, v.HostCPUs)
		}
	}
	if !p.Mempolicy.Nodes.Equals(cpuset.New(1)) || p.Mempolicy.Mode != memobj.PolicyBind {
		t.Errorf("mempolicy = %+v, want bind 1", p.Mempolicy)
	}
}

func TestBindSelf(t *testing.T) {
	tests := []struct {
		name string
		b    numactlBinding
		want []affinitytest.Call
	}{
		{"bind and cpus", numactlBinding{Policy: memobj.PolicyBind, Mem: cpuset.New(1), CPUs: cpuset.New(2, 3)},
			[]affinitytest.Call{{Op: "set_mempolicy", Mode: 2, Set: cpuset.New(1)}, {Op: "sched_setaffinity", TID: 0, Set: cpuset.New(2, 3)}}},
		{"localalloc", numactlBinding{Policy: memobj.PolicyDefault},
			[]affinitytest.Call{{Op: "set_mempolicy", Mode: 0, Set: cpuset.New()}}},
		{"cpus only", numactlBinding{CPUs: cpuset.New(0)},
			[]affinitytest.Call{{Op: "sched_setaffinity", TID: 0, Set: cpuset.New(0)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &affinitytest.Fake{}
			if err := bindSelf(f, tt.b); err != nil {
				t.Fatal(err)
			}
			got := f.Calls()
			if len(got) != len(tt.want) {
				t.Fatalf("calls = %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i].Op != tt.want[i].Op || got[i].Mode != tt.want[i].Mode || got[i].TID != tt.want[i].TID || got[i].Set.String() != tt.want[i].Set.String() {
					t.Errorf("call %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestIsQEMUSystem(t *testing.T) {
	for cmd, want := range map[string]bool{
		"qemu-system-x86_64": true, "/usr/bin/qemu-system-aarch64": true, "qemu-kvm": true,
		"qemu-img": false, "ls": false, "/usr/bin/qemu-x86_64": false,
	} {
		if got := qemucmd.IsSystemEmulator(cmd); got != want {
			t.Errorf("IsSystemEmulator(%q) = %v, want %v", cmd, got, want)
		}
	}
}

// FuzzParseNumactl: any command line parses or fails with an error, never
// a panic, and a parse that succeeds leaves a command to run.
func FuzzParseNumactl(f *testing.F) {
	for _, s := range []string{
		"--membind=0-1\x00--\x00qemu-system-x86_64\x00-m\x001G",
		"--memb=0\x00--phys\x001\x00ls",
		"--p=0\x00ls", "-m\x00", "--\x00", "-C0-1\x00-l\x00ls", "--=x\x00ls", "-\x00ls",
		"--touch\x00ls", "-t\x00ls", "--state-dir\x00/x\x00ls",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		args := strings.Split(s, "\x00")
		isNumactlSyntax(args)
		o, err := parseNumactl(args)
		if err == nil && len(o.Argv) == 0 {
			t.Fatalf("parseNumactl(%q) succeeded with no command", args)
		}
	})
}
