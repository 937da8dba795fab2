package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/cpulist"
	"github.com/qnuma/qnuma/libvirthost"
	"github.com/qnuma/qnuma/libvirthost/libvirtdtest"
	"github.com/qnuma/qnuma/topology"
	"github.com/qnuma/qnuma/topology/topotest"
)

func TestParseWorkload(t *testing.T) {
	for _, tc := range []struct {
		in    string
		vcpus int
		mib   uint64
		ok    bool
	}{
		{"2:128", 2, 128, true},
		{"4", 4, 0, true},
		{"1:0", 1, 0, true},
		{"", 0, 0, false},
		{"x", 0, 0, false},
		{"0:128", 0, 0, false},
		{"-1:128", 0, 0, false},
		{"4097:1", 0, 0, false},
		{"2:-1", 0, 0, false},
		{"2:1:3", 0, 0, false},
		{"2:1099511627777", 0, 0, false},
		{"2:", 0, 0, false},
	} {
		v, m, err := parseWorkload(tc.in)
		if (err == nil) != tc.ok || v != tc.vcpus || m != tc.mib || (err != nil && !IsUsage(err)) {
			t.Errorf("parseWorkload(%q) = %d, %d, %v", tc.in, v, m, err)
		}
	}
}

// numad runs `qnuma numad ARGS...` as main does and returns stdout and
// stderr.
func numad(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var cli CLI
	parser, err := kong.New(&cli, kong.Name("qnuma"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parser.Parse(append([]string{"numad"}, args...)); err != nil {
		return "", "", badInput("%w", err)
	}
	var out, warn bytes.Buffer
	err = cli.Numad.advise(context.Background(), &out, &warn)
	return out.String(), warn.String(), err
}

// TestNumadAdvice: on the two-node snapshot (8 cores × 2 threads per
// node, about 30 GiB free and inactive on node 0, 12 GiB on node 1) the advice is the planner's: one node for a
// VM that fits one, both for one that does not, shared cores where there
// are too few, every node (or exit 2 with --strict) where the memory fits
// nowhere; the ledger's VMs are counted.
func TestNumadAdvice(t *testing.T) {
	root := topotest.Unpack(t, intel)
	full := t.TempDir()
	placeOne(t, full, "big", 0, 25<<30, 0, 1, 2, 3, 4, 5, 6, 7) // node 0's memory and cores
	for _, tc := range []struct {
		name string
		args []string
		out  string // a regexp
		warn string
		err  string
	}{
		{"one node", []string{"-w", "8:4096"}, `^[01]\n$`, "", ""},
		{"numad's -wN:M", []string{"-w8:4096"}, `^[01]\n$`, "", ""},
		{"cpus alone", []string{"-w", "4"}, `^[01]\n$`, "", ""},
		{"wider than a node", []string{"-w", "8:36864"}, `^0-1\n$`, "", ""},
		{"more vCPUs than cores", []string{"-w", "40:1024"}, `^[01]\n$`, "share cores", ""},
		{"memory nowhere", []string{"-w", "2:1048576"}, `^0-1\n$`, "advising every node", ""},
		{"memory nowhere, strict", []string{"-w", "2:1048576", "--strict"}, "", "", "does not fit"},
		{"ledger counted", []string{"-w", "8:4096", "--state-dir", full}, `^1\n$`, "", ""},
		{"without the ledger", []string{"-w", "8:8192"}, `^0\n$`, "", ""},
		{"no -w", nil, "", "", "-w"},
		{"bad -w", []string{"-w", "2:x"}, "", "", "want VCPUS[:MB]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, warn, err := numad(t, append(tc.args, "--root", root)...)
			if tc.err != "" {
				if err == nil || !IsUsage(err) || !strings.Contains(err.Error(), tc.err) || out != "" {
					t.Fatalf("error %v, out %q: want exit 2 saying %q", err, out, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !regexp.MustCompile(tc.out).MatchString(out) {
				t.Errorf("advice %q, want %s", out, tc.out)
			}
			if (tc.warn == "") != (warn == "") || !strings.Contains(warn, tc.warn) {
				t.Errorf("stderr %q, want %q", warn, tc.warn)
			}
		})
	}
}

// TestNumadLibvirtReal: a private libvirtd whose numad is qnuma numad
// starts a domain with placement='auto' on the nodes qnuma advised: libvirt
// ran it with -w VCPUS:MiB, and the domain's nodeset and vCPU threads
// follow the advice.
func TestNumadLibvirtReal(t *testing.T) {
	libvirtdtest.Require(t)
	bin := buildQnuma(t)
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	wrapper := filepath.Join(dir, "numad")
	script := fmt.Sprintf("#!/bin/sh\necho \"$@\" >> %s\nexec %s numad --state-dir %s \"$@\"\n", calls, bin, filepath.Join(dir, "ledger"))
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	d := libvirtdtest.StartWith(t, libvirtdtest.Options{Numad: wrapper})
	x := strings.Replace(placeDomainXML("qnuma-auto", 2), "<vcpu placement='static'>", "<vcpu placement='auto'>", 1)
	x = strings.Replace(x, "<iothreads>1</iothreads>", "<iothreads>1</iothreads>\n  <numatune>\n    <memory mode='strict' placement='auto'/>\n  </numatune>", 1)
	p := filepath.Join(d.Dir, "auto.xml")
	if err := os.WriteFile(p, []byte(x), 0o600); err != nil {
		t.Fatal(err)
	}
	virsh := func(args ...string) {
		t.Helper()
		if out, err := d.Virsh(t, args...); err != nil {
			t.Fatalf("virsh %s: %v\n%s\n%s", strings.Join(args, " "), err, out, d.Log())
		}
	}
	virsh("define", p)
	defer virsh("undefine", "qnuma-auto")
	virsh("start", "--paused", "qnuma-auto")
	defer virsh("destroy", "qnuma-auto")

	b, err := os.ReadFile(calls)
	if err != nil {
		t.Fatalf("libvirt did not run numad: %v", err)
	}
	if got := strings.TrimSpace(string(b)); got != "-w 2:128" {
		t.Fatalf("libvirt ran numad %q, want -w 2:128", got)
	}
	advice, _, err := numad(t, "-w", "2:128", "--state-dir", filepath.Join(dir, "ledger"))
	if err != nil {
		t.Fatal(err)
	}
	advice = strings.TrimSpace(advice)
	conn, err := libvirthost.Dial(d.URI)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if np, err := conn.NUMAParams("qnuma-auto"); err != nil || np.Nodes.String() != advice || np.Mode != libvirthost.ModeStrict {
		t.Errorf("the running domain's memory: %+v (%v), qnuma numad advised %s", np, err, advice)
	}
	host, err := topology.Read("/")
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := cpulist.Parse(advice)
	if err != nil {
		t.Fatal(err)
	}
	cpus := cpuset.New()
	for _, n := range host.Nodes {
		if nodes.Contains(n.ID) {
			cpus = cpus.Union(n.CPUs)
		}
	}
	pid, err := d.PID("qnuma-auto")
	if err != nil {
		t.Fatal(err)
	}
	for name, aff := range threadAffinity(t, pid) {
		if strings.HasPrefix(name, "CPU ") && !aff.Equals(cpus) {
			t.Errorf("%s may run on %s, the advised nodes' CPUs are %s", name, aff, cpus)
		}
	}
}
