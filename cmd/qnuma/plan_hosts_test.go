package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/libvirthost"
	"github.com/qnuma/qnuma/libvirthost/libvirthosttest"
)

// Two remote hosts of the fake: wide has two nodes of 2 cores × 2 threads
// and 4 GiB (3 GiB free each); small one node of 2 cores and 8 GiB.
const (
	wideURI  = "qemu+tcp://wide.example/system"
	smallURI = "qemu+tcp://small.example/system"
	downURI  = "qemu+tcp://down.example/system"
)

func newSmallFake(t *testing.T, free uint64) *libvirthosttest.Fake {
	t.Helper()
	caps, err := os.ReadFile("../../libvirthost/testdata/caps-1node.xml")
	if err != nil {
		t.Fatal(err)
	}
	return &libvirthosttest.Fake{Major: 8, Minor: 2, Caps: string(caps), Free: map[int]uint64{0: free}, Domains: map[string]*libvirthosttest.Domain{}}
}

// planHosts runs `qnuma plan ARGS...` as main does, dialing the fakes by
// URI (any other is down; with fakes nil, libvirthost.Dial), and returns
// what it printed.
func planHosts(t *testing.T, fakes map[string]*libvirthosttest.Fake, args ...string) ([]byte, error) {
	t.Helper()
	var cli CLI
	parser, err := kong.New(&cli, kong.Name("qnuma"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parser.Parse(append([]string{"plan", "--state-dir", t.TempDir()}, args...)); err != nil {
		return nil, badInput("%w", err)
	}
	c := &cli.Plan
	if fakes != nil {
		c.dial = fakeDial(fakes)
	}
	var out bytes.Buffer
	err = c.write(context.Background(), &out)
	for uri, f := range fakes {
		if !f.Closed {
			t.Errorf("the connection to %s was not closed", uri)
		}
	}
	return out.Bytes(), err
}

func fakeDial(fakes map[string]*libvirthosttest.Fake) func(string) (libvirthost.Conn, error) {
	return func(uri string) (libvirthost.Conn, error) {
		if f, ok := fakes[uri]; ok {
			return f, nil
		}
		if _, err := libvirthost.Dial(uri); errors.Is(err, libvirthost.ErrBadURI) {
			return nil, err
		}
		return nil, fmt.Errorf("connect to libvirt %s: dial tcp: connection refused", uri)
	}
}

// hostsResult is the part of `qnuma plan --connect ... --json` the tests read.
type hostsResult struct {
	Chosen string `json:"chosen"`
	Hosts  []struct {
		URI       string       `json:"uri"`
		Rank      int          `json:"rank"`
		Reachable bool         `json:"reachable"`
		Fits      bool         `json:"fits"`
		Reason    string       `json:"reason"`
		Quality   *planQuality `json:"quality"`
		Plan      *struct {
			HostNodes   []int      `json:"host_nodes"`
			QEMUVersion string     `json:"qemu_version"`
			VCPUs       []vcpuJSON `json:"vcpus"`
			Rooms       []roomJSON `json:"rooms"`
			Reasons     []string   `json:"reasons"`
		} `json:"plan"`
	} `json:"hosts"`
}

func decodeHosts(t *testing.T, out []byte) hostsResult {
	t.Helper()
	var r hostsResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	return r
}

// ranked is each host's URI, fits and the start of its reason, best first.
func (r hostsResult) ranked() []string {
	var s []string
	for _, h := range r.Hosts {
		why, _, _ := strings.Cut(h.Reason, ": ")
		s = append(s, fmt.Sprintf("%s %v %s", h.URI, h.Fits, why))
	}
	return s
}

func TestPlanHostsRanking(t *testing.T) {
	busy := func(f *libvirthosttest.Fake) {
		f.Domains["busy"] = &libvirthosttest.Domain{State: libvirthost.StateRunning, XML: `<domain type='kvm'><name>busy</name><memory unit='GiB'>5</memory><vcpu cpuset='0'>1</vcpu>
			<numatune><memory mode='strict' nodeset='0'/></numatune></domain>`}
	}
	for _, tc := range []struct {
		name      string
		smallFree uint64
		setup     func(small *libvirthosttest.Fake)
		args      []string
		chosen    string
		ranked    []string
		why       string
	}{
		{"fewest nodes", 6 << 30, nil, []string{"--vcpus", "2", "--memory", "4G"}, smallURI,
			[]string{smallURI + " true chosen", wideURI + " true after " + smallURI + ", which has 1 host node against 2 host nodes on " + wideURI},
			"chosen: 1 host node against 2 host nodes on " + wideURI},
		{"most memory left", 6 << 30, nil, []string{"--vcpus", "2", "--memory", "1G"}, smallURI, nil,
			"chosen: as many host nodes as " + wideURI + ", and 5G of memory left on them against 2G"},
		{"less free memory", 2 << 30, nil, []string{"--vcpus", "2", "--memory", "1G"}, wideURI, nil,
			"chosen: as many host nodes as " + smallURI + ", and 2G of memory left on them against 1G"},
		{"another domain's memory counted", 6 << 30, busy, []string{"--vcpus", "2", "--memory", "1G"}, wideURI, nil,
			"chosen: as many host nodes as " + smallURI + ", and 2G of memory left on them against 0B"},
		{"another domain's CPUs counted", 6 << 30, busy, []string{"--vcpus", "2", "--memory", "512M", "--cpus-dedicated"}, wideURI,
			[]string{wideURI + " true chosen", smallURI + " false does not fit"}, "chosen: the only host the VM fits"},
		{"too many vCPUs for one", 6 << 30, nil, []string{"--vcpus", "3", "--memory", "1G"}, wideURI,
			[]string{wideURI + " true chosen", smallURI + " false does not fit"}, "chosen: the only host the VM fits"},
		{"one down", 6 << 30, nil, []string{"--vcpus", "2", "--memory", "1G", "--connect", downURI}, smallURI,
			[]string{smallURI + " true chosen", wideURI + " true after " + smallURI + ", which has as many host nodes as " + wideURI + ", and 5G of memory left on them against 2G", downURI + " false unreachable"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			small := newSmallFake(t, tc.smallFree)
			if tc.setup != nil {
				tc.setup(small)
			}
			fakes := map[string]*libvirthosttest.Fake{wideURI: newFake(t), smallURI: small}
			out, err := planHosts(t, fakes, append([]string{"--json", "--connect", wideURI, "--connect", smallURI}, tc.args...)...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			r := decodeHosts(t, out)
			if r.Chosen != tc.chosen || r.Hosts[0].URI != tc.chosen || r.Hosts[0].Rank != 1 || !r.Hosts[0].Fits {
				t.Errorf("chosen %s, want %s:\n%s", r.Chosen, tc.chosen, out)
			}
			if tc.ranked != nil && strings.Join(r.ranked(), "\n") != strings.Join(tc.ranked, "\n") {
				t.Errorf("ranked:\n%s\nwant:\n%s", strings.Join(r.ranked(), "\n"), strings.Join(tc.ranked, "\n"))
			}
			if tc.why != "" && r.Hosts[0].Reason != tc.why {
				t.Errorf("why %q, want %q", r.Hosts[0].Reason, tc.why)
			}
			for _, h := range r.Hosts {
				if h.Fits != (h.Plan != nil) || h.Fits != (h.Quality != nil) || (h.URI == downURI) == h.Reachable {
					t.Errorf("host %s: fits %v, reachable %v, plan %v, quality %v", h.URI, h.Fits, h.Reachable, h.Plan != nil, h.Quality)
				}
			}
			p := r.Hosts[0].Plan
			if want := map[string]string{wideURI: "7.2.0", smallURI: "8.2.0"}[tc.chosen]; p.QEMUVersion != want {
				t.Errorf("rendered for QEMU %s, want the chosen daemon's %s", p.QEMUVersion, want)
			}
			if tc.setup != nil && tc.chosen == wideURI {
				// small's plan (if any) counted busy: said in its reasons.
				for _, h := range r.Hosts {
					if h.URI == smallURI && h.Plan != nil && !strings.Contains(strings.Join(h.Plan.Reasons, " "), "busy (CPUs 0, memory on nodes 0)") {
						t.Errorf("small's reasons do not name busy: %q", h.Plan.Reasons)
					}
				}
			}
		})
	}
}

// TestPlanHostsPins: --cpus-dedicated plans count another
// domain's pinned CPUs: the wide host's vCPUs avoid them.
func TestPlanHostsPins(t *testing.T) {
	wide := newFake(t)
	wide.Domains["vm"].XML = fakeDomainXML("vm", 2, 512, "\n  <cputune><vcpupin vcpu='0' cpuset='0-3'/><vcpupin vcpu='1' cpuset='0-3'/></cputune>")
	out, err := planHosts(t, map[string]*libvirthosttest.Fake{wideURI: wide}, "--json", "--connect", wideURI, "--vcpus", "2", "--memory", "1G", "--cpus-dedicated")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	r := decodeHosts(t, out)
	p := r.Hosts[0].Plan
	if fmt.Sprint(p.HostNodes) != "[1]" {
		t.Errorf("host nodes %v, want [1]: vm's vCPUs hold node 0's CPUs", p.HostNodes)
	}
	for _, v := range p.VCPUs {
		if c, _ := cpuset.Parse(v.HostCPUs); !c.IsSubsetOf(cpuset.New(4, 5, 6, 7)) {
			t.Errorf("vCPU %d on %s, among vm's CPUs 0-3", v.VCPU, v.HostCPUs)
		}
	}
	if q := r.Hosts[0].Quality; q.Nodes != 1 || q.MemoryLeft != 2<<30 || q.CPUsLeft != 2 || q.MaxDistance != 0 {
		t.Errorf("quality %+v: want 1 node, 2 GiB and 2 CPUs left (4 on node 1 less its 2 vCPUs)", q)
	}
}

// TestPlanHostsFailures: hosts down or too small are reported; exit 2
// only when none answers or the VM fits none; bad input is refused
// before anything.
func TestPlanHostsFailures(t *testing.T) {
	t.Run("none answers", func(t *testing.T) {
		out, err := planHosts(t, map[string]*libvirthosttest.Fake{}, "--connect", downURI, "--connect", "qemu+tcp://down2.example/system", "--vcpus", "1", "--memory", "1G")
		if err == nil || !IsUsage(err) || !strings.Contains(err.Error(), "no libvirt host answered") {
			t.Fatalf("error %v, want exit 2", err)
		}
		if !strings.Contains(string(out), "unreachable: connect to libvirt "+downURI) || !strings.Contains(string(out), "down2.example") {
			t.Errorf("the report does not name the hosts:\n%s", out)
		}
	})
	t.Run("fits none", func(t *testing.T) {
		fakes := map[string]*libvirthosttest.Fake{wideURI: newFake(t), smallURI: newSmallFake(t, 6<<30)}
		out, err := planHosts(t, fakes, "--json", "--connect", wideURI, "--connect", smallURI, "--connect", downURI, "--vcpus", "2", "--memory", "7G")
		if err == nil || !IsUsage(err) || !strings.Contains(err.Error(), "fits none") {
			t.Fatalf("error %v, want exit 2", err)
		}
		r := decodeHosts(t, out)
		if r.Chosen != "" || len(r.Hosts) != 3 {
			t.Fatalf("chosen %q:\n%s", r.Chosen, out)
		}
		for _, h := range r.Hosts[:2] {
			if h.Fits || !h.Reachable || !strings.HasPrefix(h.Reason, "does not fit: ") || !strings.Contains(h.Reason, "fit") {
				t.Errorf("host %s: %+v", h.URI, h)
			}
		}
	})
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"bad uri", []string{"--connect", "http://x/", "--vcpus", "1", "--memory", "1G"}, "bad libvirt uri"},
		{"twice", []string{"--connect", wideURI, "--connect", wideURI, "--vcpus", "1", "--memory", "1G"}, "given twice"},
		{"--root", []string{"--connect", wideURI, "--root", "/tmp", "--vcpus", "1", "--memory", "1G"}, "--root"},
		{"--near-device", []string{"--connect", wideURI, "--near-device", "0000:00:01.0", "--vcpus", "1", "--memory", "1G"}, "--near-device"},
		{"no vcpus", []string{"--connect", wideURI, "--memory", "1G"}, "how many vCPUs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wide := newFake(t)
			wide.Closed = true // not dialed in every case
			_, err := planHosts(t, map[string]*libvirthosttest.Fake{wideURI: wide}, tc.args...)
			if err == nil || !IsUsage(err) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want exit 2 saying %q", err, tc.want)
			}
		})
	}
}

func TestPlanHostsText(t *testing.T) {
	fakes := map[string]*libvirthosttest.Fake{wideURI: newFake(t), smallURI: newSmallFake(t, 6<<30)}
	out, err := planHosts(t, fakes, "--connect", wideURI, "--connect", smallURI, "--connect", downURI, "--vcpus", "2", "--memory", "4G")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{
		"libvirt hosts, best first:\n  1. " + smallURI + "\n     fits on host node(s) 0: 2G of memory and 0 CPUs left there, distance 0 (QEMU 8.2.0)\n     chosen: 1 host node against 2 host nodes on " + wideURI + "\n",
		"  2. " + wideURI + "\n     fits on host node(s) 0,1:",
		"  3. " + downURI + "\n     unreachable: connect to libvirt",
		"The plan on " + smallURI + " (qnuma libvirt place --connect " + smallURI + " DOMAIN applies it",
		"VM: 2 vCPUs, 4 GiB",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
