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
