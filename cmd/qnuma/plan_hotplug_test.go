package main

import (
	"strings"
	"testing"

	"github.com/qnuma/qnuma/topology/topotest"
)

// Hotplug room the VM cannot have is bad input (exit 2) with the reason.
func TestPlanHotplugRefused(t *testing.T) {
	root := topotest.Unpack(t, intel)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"vcpus below", []string{"--vcpus", "4", "--max-vcpus", "2", "--memory", "1G"}, "--max-vcpus 2 is below the 4 vCPUs"},
		{"memory below", []string{"--vcpus", "4", "--memory", "2G", "--max-memory", "1G"}, "--max-memory 1G is below the 2G"},
		{"negative", []string{"--vcpus", "4", "--max-vcpus=-1", "--memory", "1G"}, "--max-vcpus -1: want a positive count"},
		{"beyond qemu", []string{"--vcpus", "4", "--max-vcpus", "4097", "--memory", "1G"}, "--max-vcpus 4097: 4097 vCPUs, and QEMU takes at most 4096"},
		{"bad size", []string{"--vcpus", "4", "--memory", "1G", "--max-memory", "lots"}, "--max-memory:"},
		{"does not fit", []string{"--vcpus", "4", "--memory", "1G", "--max-memory", "64G"}, "plan vm with hotplug room (4 vCPUs, 64G at most): vm does not fit"},
		{"bind-only", []string{"--bind-only", "--max-vcpus", "8", "--", "qemu-system-x86_64", "-smp", "4", "-m", "1G"}, "drop --bind-only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--root", root, "--qemu-version", "7.2"}, tc.args...)
			_, err := planOut(t, args...)
			if err == nil || !IsUsage(err) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("qnuma plan %q: %v; want bad input (exit 2) saying %q", tc.args, err, tc.want)
			}
		})
	}
}

// The user's -smp N,maxcpus=M and -m X,maxmem=Y are hotplug room, as
// --max-vcpus and --max-memory: qnuma's -smp and -m replace theirs.
func TestPlanHotplugFromUserLine(t *testing.T) {
	root := topotest.Unpack(t, intel)
	out, err := planOut(t, "--root", root, "--qemu-version", "7.2", "--",
		"qemu-system-x86_64", "-nographic", "-smp", "2,maxcpus=4", "-m", "1G,slots=4,maxmem=2G")
	if err != nil {
		t.Fatal(err)
	}
	want := "qemu-system-x86_64 -nographic -smp 2,sockets=1,cores=4,threads=1,maxcpus=4 -m 1G,slots=1,maxmem=2G " +
		"-object memory-backend-memfd,id=qnuma-ram0,size=1G,host-nodes=0,policy=bind -machine memory-backend=qnuma-ram0 " +
		"-object memory-backend-memfd,id=qnuma-hotmem0,size=1G,host-nodes=0,policy=bind -device virtio-mem-pci,id=qnuma-vmem0,memdev=qnuma-hotmem0,node=0,requested-size=0B\n"
	if !strings.HasSuffix(out, want) {
		t.Errorf("qnuma plan ends\n%s\nwant it to end\n%s", out[max(0, len(out)-len(want)):], want)
	}
}

// --memory-hotplug: auto renders DIMM room on a QEMU without virtio-mem
// (and says so), dimm forces it; virtio-mem on such a QEMU is refused.
func TestPlanMemoryHotplugFlag(t *testing.T) {
	root := topotest.Unpack(t, intel)
	dimmArgs := "-m 1G,slots=8,maxmem=2G -object memory-backend-memfd,id=qnuma-ram0,size=1G,host-nodes=0,policy=bind -machine memory-backend=qnuma-ram0\n"
	for _, tc := range []struct {
		name       string
		args       []string
		want, says string
		usage      string
	}{
		{name: "auto on 5.0", args: []string{"--qemu-version", "5.0"}, want: dimmArgs, says: "plugged as DIMMs: qemu 5.0.0 has no virtio-mem"},
		{name: "dimm on 7.2", args: []string{"--qemu-version", "7.2", "--memory-hotplug", "dimm"}, want: dimmArgs, says: "DIMMs of 128 MiB"},
		{name: "dimm without room", args: []string{"--qemu-version", "7.2", "--memory-hotplug", "dimm", "--max-memory", "1G"}, usage: "give --max-memory SIZE"},
		{name: "virtio-mem on 5.0", args: []string{"--qemu-version", "5.0", "--memory-hotplug", "virtio-mem"}, usage: "plan it with --memory-hotplug dimm"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--root", root, "--vcpus", "2", "--memory", "1G", "--max-memory", "2G"}, tc.args...)
			out, err := planOut(t, args...)
			if tc.usage != "" {
				if err == nil || !IsUsage(err) || !strings.Contains(err.Error(), tc.usage) {
					t.Errorf("qnuma plan %q: %v; want bad input saying %q", tc.args, err, tc.usage)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(out, tc.want) || !strings.Contains(out, tc.says) || strings.Contains(out, "virtio-mem-pci") {
				t.Errorf("qnuma plan %q:\n%s\nwant it to end %q and say %q", tc.args, out, tc.want, tc.says)
			}
		})
	}
}
