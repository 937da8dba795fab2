package main

import (
	"fmt"

	"github.com/qnuma/qnuma/plan"
	"github.com/qnuma/qnuma/qemuversion"
)

// memoryHotplug is how --memory-hotplug MODE plugs the growth with QEMU v
// and the user's command line (its -machine type): auto is virtio-mem
// where the QEMU has it and DIMMs where not, said in note; the others are
// taken as given (a virtio-mem the QEMU lacks is refused when rendered).
func memoryHotplug(mode string, v qemuversion.Version, user *plan.QEMUArgv) (kind plan.MemoryHotplug, note string) {
	switch mode {
	case "virtio-mem":
		return plan.MemoryHotplugVirtioMem, ""
	case "dimm":
		return plan.MemoryHotplugDIMM, ""
	}
	machine := ""
	if user != nil {
		if m, ok := user.Cmdline.Machine(); ok {
			machine = m.Type
		}
	}
	if ok, why := plan.HasVirtioMem(v, machine); !ok {
		return plan.MemoryHotplugDIMM, fmt.Sprintf("The memory growth is plugged as DIMMs: %s (--memory-hotplug auto).", why)
	}
	return plan.MemoryHotplugVirtioMem, ""
}
