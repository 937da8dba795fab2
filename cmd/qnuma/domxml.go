package main

// --domain-xml (issue 10 item 3): a libvirt domain XML as the VM spec;
// prepare.ReadDomain reads it and prepare.VM.PlanFor plans and renders it.
// Here: the flags that say what the domain says are refused.

import (
	"github.com/qnuma/qnuma/plan"
	"github.com/qnuma/qnuma/prepare"
)

// mergeSpec merges what the spec comes from besides the flags: the domain
// XML (--domain-xml), else the user's QEMU command line.
func (f *SpecFlags) mergeSpec(pr *Prepared, spec plan.Spec, set plan.MergeFlags) (plan.Spec, error) {
	if f.DomainXML == "" {
		return plan.MergeSpec(spec, set, pr.User)
	}
	dp, spec, err := f.domainSpec(spec, set, pr.User)
	if err != nil {
		return spec, err
	}
	pr.Dom = dp
	return spec, nil
}

// domainSpec reads --domain-xml into spec, refusing flags and QEMU
// options that say the same things (exit 2, naming both).
func (f *SpecFlags) domainSpec(spec plan.Spec, set plan.MergeFlags, user *plan.QEMUArgv) (*prepare.Domain, plan.Spec, error) {
	path := f.DomainXML
	for _, c := range []struct {
		given bool
		flag  string
		elem  string
	}{
		{set.VCPUs, "--vcpus", "<vcpu>"},
		{set.Memory, "--memory", "<memory> and the <cpu><numa> cells"},
		{f.HostNodes != "auto", "--host-nodes", "<numatune>"},
		{f.GuestNodes != "auto", "--guest-nodes", "<cpu><numa>"},
		{f.Policy != "bind", "--policy", "<numatune> mode"},
		{f.Hugepages != "", "--hugepages", "<memoryBacking><hugepages>"},
		{f.Prealloc, "--prealloc", "<memoryBacking><allocation mode='immediate'>"},
		{f.CPUsDedicated, "--cpus-dedicated", "<cputune><vcpupin>"},
		{f.BindOnly, "--bind-only", "the domain's placement (qnuma renders it)"},
		{f.NearDevice != "", "--near-device", "<numatune> (qnuma's planner for the domain's cells does not weigh a device's node)"},
	} {
		if c.given {
			return nil, spec, badInput("%s conflicts with --domain-xml %s, whose %s says it: give one", c.flag, path, c.elem)
		}
	}
	return prepare.ReadDomain(path, spec, user)
}
