package numastat

import "testing"

func TestIOThreadID(t *testing.T) {
	for comm, want := range map[string]string{
		"IO io0":          "io0",
		"IO averyverylon": "averyverylon", // cut at 15 bytes by the kernel
		"IO ":             "",
		"IOx":             "",
		"CPU 0/KVM":       "",
		"qemu-system-x86": "",
	} {
		got, ok := IOThreadID(comm)
		if got != want || ok != (want != "") {
			t.Errorf("IOThreadID(%q) = %q, %v; want %q", comm, got, ok, want)
		}
	}
}
