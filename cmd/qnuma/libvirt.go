package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/qnuma/qnuma/domxml"
)

// LibvirtCmd is `qnuma libvirt`: qnuma's placement for libvirt's domains.
type LibvirtCmd struct {
	XML   LibvirtXMLCmd   `cmd:"" name:"xml" help:"Print a libvirt domain XML placed by qnuma (vCPU pins, numatune, guest NUMA cells), or rewrite the placement of yours."`
	Place LibvirtPlaceCmd `cmd:"" name:"place" help:"Place a libvirt domain through its daemon: its definition (--config) and, while it runs, its pins and memory nodeset (--live)."`
}

// LibvirtXMLCmd is `qnuma libvirt xml`: the plan of `qnuma plan` written
// as libvirt's placement elements.
type LibvirtXMLCmd struct {
	SpecFlags `embed:""`
	Rewrite   string `name:"rewrite" placeholder:"FILE" type:"existingfile" help:"A libvirt domain XML (virsh dumpxml --inactive) to print with qnuma's placement in place of its own: <vcpu>, <numatune>, <cputune>'s pins, <cpu>'s <topology> and <numa>, <memoryBacking>'s <hugepages>, <memory>. Every other byte is kept. The file itself is not changed."`
	Name      string `name:"name" default:"qnuma-vm" help:"The <name> of the domain printed without --rewrite."`
	Type      string `name:"type" default:"kvm" enum:"kvm,qemu" help:"The domain type printed without --rewrite: kvm, or qemu (TCG)."`
	StateDir  string `name:"state-dir" placeholder:"DIR" help:"Ledger of the VMs qnuma placed on this host, whose room they hold (default: /run/qnuma for root, else $XDG_RUNTIME_DIR/qnuma). Read only; not read with --root."`
}

// Help is shown by `qnuma libvirt xml --help`.
func (c *LibvirtXMLCmd) Help() string {
	return `Plans the VM as ` + "`qnuma plan`" + ` does (around the VMs qnuma already placed on
this host, read from its ledger and not changed) and prints it as libvirt
domain XML:

  <vcpu placement='static'>               the vCPU count (current= when the
                                          guest topology has spare slots)
  <cputune> <vcpupin> per vCPU            each vCPU on its planned host CPUs
            <emulatorpin>, <iothreadpin>  qemu's other threads
  <numatune> <memory mode nodeset>        the host nodes (bind is strict)
             <memnode> per cell           each guest cell on its host node
  <cpu> <topology>                        sockets, dies, cores, threads
        <numa> <cell> with <distances>    for a VM wider than a node: one
                                          cell per host node, the host's
                                          distances between them
  <memoryBacking><hugepages>              with --hugepages

A VM that fits one node gets no <cpu><numa> cells: <numatune><memory> binds
all of it. The result validates with virt-xml-validate; define it with
virsh define. Nothing is started or written.

Without --rewrite a small domain is printed (name, type and an x86_64 q35
<os>): add disks and interfaces, or copy the placement elements into your
own XML. With --rewrite FILE that domain is printed with its placement
elements replaced and everything else byte for byte as it was; its <cpu>
mode, model and features, <cputune> shares and quotas, and <memoryBacking>
source and access are kept. Planning from the domain XML itself (its vCPUs
and memory as the spec) comes with ` + "`--domain-xml`" + ` in the spec flags;
until then give --vcpus and --memory.

Examples:
  qnuma libvirt xml --vcpus 12 --memory 8G --qemu-version 9.0 > vm.xml
  qnuma libvirt xml --vcpus 8 --memory 16G --cpus-dedicated --hugepages 1G
  virsh dumpxml --inactive vm1 > vm1.xml
  qnuma libvirt xml --vcpus 8 --memory 16G --rewrite vm1.xml > vm1-placed.xml
  virsh define vm1-placed.xml
  qnuma libvirt xml --vcpus 32 --memory 64G --root /snapshots/host7 --qemu-version 8.2`
}

func (c *LibvirtXMLCmd) Run() error {
	return c.write(context.Background(), os.Stdout)
}

func (c *LibvirtXMLCmd) write(ctx context.Context, w io.Writer) error {
	doc := domxml.Skeleton(c.Name, c.Type)
	if c.Rewrite != "" {
		f, err := os.Open(c.Rewrite)
		if err != nil {
			return badInput("--rewrite: %w", err)
		}
		doc, err = io.ReadAll(io.LimitReader(f, domxml.MaxSize+1))
		f.Close()
		if err != nil {
			return fmt.Errorf("read --rewrite %s: %w", c.Rewrite, err)
		}
	}
	if c.BindOnly {
		return badInput("--bind-only keeps a QEMU command line's own layout; libvirt writes its own command line, so plan without it")
	}
	pc := &PlanCmd{SpecFlags: c.SpecFlags, StateDir: c.StateDir}
	placed, err := pc.placed(ctx)
	if err != nil {
		return err
	}
	pr, err := c.Prepare(ctx, placed)
	if err != nil {
		return err
	}
	place, err := domxml.FromPlan(pr.Plan)
	if err != nil {
		return fromDomxml(err)
	}
	out, err := domxml.Rewrite(doc, place)
	if err != nil {
		if c.Rewrite != "" {
			err = fmt.Errorf("--rewrite %s: %w", c.Rewrite, err)
		}
		return fromDomxml(err)
	}
	_, err = w.Write(out)
	return err
}

// fromDomxml makes a domain the user gave that qnuma cannot place bad
// input (exit 2).
func fromDomxml(err error) error {
	if errors.Is(err, domxml.ErrInvalid) || errors.Is(err, domxml.ErrUnsupported) {
		return badInput("%w", err)
	}
	return err
}
