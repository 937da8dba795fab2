package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/qnuma/qnuma/libvirthost"
)

// placeJSON is `qnuma libvirt place --json`: `qnuma plan --json`'s keys
// and the domain's.
type placeJSON struct {
	planJSON
	Domain  string           `json:"domain"`
	URI     string           `json:"uri"`
	State   string           `json:"state"`
	Applied placeAppliedJSON `json:"applied"`
	// Hosts is the ranking of the hosts given with several --connect
	// (plan_hosts.go), best (this one) first.
	Hosts []hostJSON `json:"hosts,omitempty"`
}

// placeAppliedJSON is what place changed (live, config) or, without them,
// would change.
type placeAppliedJSON struct {
	Live     bool           `json:"live"`
	Config   bool           `json:"config"`
	VCPUPins []vcpuPinJSON  `json:"vcpu_pins"`
	Emulator string         `json:"emulator_cpus"`
	IOThread []ioThreadJSON `json:"iothread_pins"`
	// MemoryNodeset is the nodeset set live ("" when left as it was);
	// MemoryNote says why.
	MemoryNodeset string `json:"memory_nodeset"`
	MemoryNote    string `json:"memory_note"`
	// XML is the persistent definition written (or that would be).
	XML string `json:"xml"`
}

type vcpuPinJSON struct {
	VCPU     int    `json:"vcpu"`
	HostCPUs string `json:"host_cpus"`
}

type ioThreadJSON struct {
	IOThread int    `json:"iothread"`
	HostCPUs string `json:"host_cpus"`
}

func (a *placeAppliedJSON) fill(ch *placeChanges) {
	a.VCPUPins, a.IOThread = []vcpuPinJSON{}, []ioThreadJSON{}
	for v, cpus := range ch.vcpus {
		a.VCPUPins = append(a.VCPUPins, vcpuPinJSON{VCPU: v, HostCPUs: cpus.String()})
	}
	if len(ch.vcpus) > 0 {
		a.Emulator = ch.emu.String()
	}
	for _, io := range ch.ios {
		a.IOThread = append(a.IOThread, ioThreadJSON{IOThread: io.ID, HostCPUs: io.CPUs.String()})
	}
	if ch.nodes != nil {
		a.MemoryNodeset = ch.nodes.String()
	}
	a.MemoryNote, a.XML = ch.nodesNote, ch.xml
}

func (c *LibvirtPlaceCmd) print(w io.Writer, uri string, st libvirthost.State, pr *Prepared, a placeAppliedJSON) error {
	if c.JSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(placeJSON{planJSON: planJSONOf(pr), Domain: c.Domain, URI: uri, State: st.String(), Applied: a, Hosts: c.hosts})
	}
	if err := pr.Plan.Describe(w); err != nil {
		return err
	}
	var b strings.Builder
	verb := func(done bool) string {
		if done {
			return "applied"
		}
		return "would apply (give --live)"
	}
	fmt.Fprintf(&b, "\nlibvirt domain %s at %s (%s):\n", c.Domain, uri, st)
	if len(a.VCPUPins) > 0 {
		pins := make([]string, len(a.VCPUPins))
		for i, p := range a.VCPUPins {
			pins[i] = fmt.Sprintf("%d→%s", p.VCPU, p.HostCPUs)
		}
		fmt.Fprintf(&b, "  live, %s: vCPUs %s; emulator %s", verb(a.Live), strings.Join(pins, " "), a.Emulator)
		for _, io := range a.IOThread {
			fmt.Fprintf(&b, "; I/O thread %d→%s", io.IOThread, io.HostCPUs)
		}
		if a.Live {
			fmt.Fprintf(&b, "\n  memory: %s\n", a.MemoryNote)
		} else {
			fmt.Fprintf(&b, "\n  memory, would apply (give --live): %s\n", a.MemoryNote)
		}
	}
	if a.XML != "" {
		if a.Config {
			b.WriteString("  config: defined the placed XML (validated); the domain gets it at its next start\n")
		} else {
			b.WriteString("  config: would define the placed XML (give --config); qnuma libvirt place --json shows it\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
