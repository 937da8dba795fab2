package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/qnuma/qnuma/libvirthost"
	"github.com/qnuma/qnuma/libvirthost/libvirthosttest"
)

// TestLibvirtPlaceBest: with several --connect the domain is placed on
// the best host it exists on, and nowhere else.
func TestLibvirtPlaceBest(t *testing.T) {
	withVM := func(f *libvirthosttest.Fake) *libvirthosttest.Fake {
		f.Domains["vm"] = &libvirthosttest.Domain{State: libvirthost.StateShutoff, XML: fakeDomainXML("vm", 2, 1024, "")}
		return f
	}
	for _, tc := range []struct {
		name    string
		small   func(t *testing.T) *libvirthosttest.Fake
		chosen  string
		ranked  []string
		refused string
	}{
		{"more room on small", func(t *testing.T) *libvirthosttest.Fake { return withVM(newSmallFake(t, 6<<30)) }, smallURI,
			[]string{smallURI + " true chosen", wideURI + " true after " + smallURI + ", which has as many host nodes as " + wideURI + ", and 5G of memory left on them against 2G", downURI + " false unreachable"}, ""},
		{"not on small", func(t *testing.T) *libvirthosttest.Fake { return newSmallFake(t, 6<<30) }, wideURI,
			[]string{wideURI + " true chosen", smallURI + " false not there", downURI + " false unreachable"}, ""},
		{"transient on small", func(t *testing.T) *libvirthosttest.Fake {
			f := withVM(newSmallFake(t, 6<<30))
			f.Domains["vm"].Transient, f.Domains["vm"].State = true, libvirthost.StateRunning
			return f
		}, wideURI, []string{wideURI + " true chosen", smallURI + " false cannot place it there", downURI + " false unreachable"}, ""},
		{"fits nowhere", func(t *testing.T) *libvirthosttest.Fake {
			f := withVM(newSmallFake(t, 512<<20))
			return f
		}, "", nil, "no host given can take it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wide, small := newFake(t), tc.small(t)
			wide.Domains["vm"].State = libvirthost.StateShutoff
			if tc.refused != "" {
				wide.Domains["vm"].XML = fakeDomainXML("vm", 2, 7*1024, "")
				small.Domains["vm"].XML = wide.Domains["vm"].XML
			}
			fakes := map[string]*libvirthosttest.Fake{wideURI: wide, smallURI: small}
			out, err := libvirtPlace(t, fakeDial(fakes), func([]byte) error { return nil },
				"vm", "--config", "--json", "--connect", wideURI, "--connect", smallURI, "--connect", downURI)
			if tc.refused != "" {
				if err == nil || !IsUsage(err) || !strings.Contains(err.Error(), tc.refused) || len(wide.Calls)+len(small.Calls) != 0 {
					t.Fatalf("error %v, calls %q %q: want exit 2 and nothing changed", err, wide.Calls, small.Calls)
				}
				r := decodeHosts(t, out)
				if r.Chosen != "" || len(r.Hosts) != 3 || !strings.Contains(r.Hosts[0].Reason, "does not fit: ") {
					t.Errorf("report:\n%s", out)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			var r struct {
				placeResult
				URI   string `json:"uri"`
				Hosts json.RawMessage
			}
			if err := json.Unmarshal(out, &r); err != nil {
				t.Fatal(err)
			}
			hosts := decodeHosts(t, []byte(`{"hosts":`+string(r.Hosts)+`}`))
			if got := strings.Join(hosts.ranked(), "\n"); got != strings.Join(tc.ranked, "\n") {
				t.Errorf("ranked:\n%s\nwant:\n%s", got, strings.Join(tc.ranked, "\n"))
			}
			if r.URI != tc.chosen || !r.Applied.Config || r.Applied.XML == "" {
				t.Errorf("placed at %s, want %s; applied %+v", r.URI, tc.chosen, r.Applied)
			}
			for uri, f := range fakes {
				want := 0
				if uri == tc.chosen {
					want = 1
				}
				if len(f.Defined) != want || len(f.Calls) != want {
					t.Errorf("%s: defined %d, calls %q; want %d", uri, len(f.Defined), f.Calls, want)
				}
			}
		})
	}
	t.Run("text", func(t *testing.T) {
		fakes := map[string]*libvirthosttest.Fake{wideURI: newFake(t), smallURI: withVM(newSmallFake(t, 6<<30))}
		out, err := libvirtPlace(t, fakeDial(fakes), nil, "vm", "--connect", wideURI, "--connect", smallURI)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"libvirt hosts, best first:\n  1. " + smallURI, "\nPlaced on " + smallURI + ":\n", "libvirt domain vm at " + smallURI + " (shut off)", "would define the placed XML"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("twice", func(t *testing.T) {
		_, err := libvirtPlace(t, fakeDial(nil), nil, "vm", "--connect", wideURI, "--connect", wideURI)
		if err == nil || !IsUsage(err) || !strings.Contains(err.Error(), "twice") {
			t.Errorf("error %v, want exit 2", err)
		}
	})
}
