package numastat

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/qnuma/qnuma/cpulist"
)

// Fuzz targets for the /proc parsers. Seeds: the real files under
// testdata/qemu-tcg-64M and the error rows of the table tests.

func realFile(f *testing.F, name string) []byte {
	b, err := os.ReadFile("testdata/qemu-tcg-64M/" + name)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// head is the first n lines of b: whole 32 KiB files as seeds make every
// interesting input a long minimization.
func head(b []byte, n int) []byte {
	lines := bytes.SplitAfter(b, []byte("\n"))
	return bytes.Join(lines[:min(n, len(lines))], nil)
}

var numaMapsLineSeeds = []string{
	"7f775be00000 bind:1 anon=65536 dirty=65536 N1=65536 kernelpagesize_kB=4",
	"7f0000000000 prefer:0 anon=10 dirty=10 active=0 N0=6 N1=4 kernelpagesize_kB=4",
	"7f0000000000 interleave:0-1 anon=4 dirty=4 N0=2 N1=2 kernelpagesize_kB=4",
	"7f774c021000 default",
	"55e435295000 default heap anon=1098 dirty=1098 active=0 N0=1098 kernelpagesize_kB=4",
	`7fa000000000 bind=static:0-1 file=/memfd:mem0\040x\040(deleted) dirty=512 N0=256 N1=256 kernelpagesize_kB=4`,
	"7f4a40000000 bind:1 file=/dev/hugepages/qemu_back_mem.m1.XYZ\\040(deleted) huge dirty=512 N1=512 kernelpagesize_kB=2048",
	"7f0000000000", "zz00 default", "7f00 bind:1-0", "7f00 :1", "7f00 default anon=x", "7f00 default Nx=3", "7f00 default N-1=3",
	"7f00 default N65536=1", "7f00 bind:0-4294967297 N0=1", "7f00 default N0=18446744073709551615 kernelpagesize_kB=4",
	"7f00 default kernelpagesize_kB=18014398509481984", "7f00 default kernelpagesize_kB=0", `7f00 default file=\`,
}

// FuzzParseNumaMapsLine: no panic; node ids bounded; resident bytes per
// node and in all never wrap.
func FuzzParseNumaMapsLine(f *testing.F) {
	for _, s := range numaMapsLineSeeds {
		f.Add(s)
	}
	for _, line := range strings.Split(string(realFile(f, "numa_maps")), "\n") {
		f.Add(line)
	}
	f.Fuzz(func(t *testing.T, line string) {
		m, err := ParseNumaMapsLine(line)
		if err != nil {
			return
		}
		checkMapping(t, line, m)
	})
}

func checkMapping(t *testing.T, line string, m Mapping) {
	t.Helper()
	if m.Policy == "" || m.PageSize == 0 {
		t.Errorf("%q: policy %q, page size %d", line, m.Policy, m.PageSize)
	}
	var total uint64
	for n, b := range m.NodeBytes() {
		if n < 0 || n >= cpulist.MaxID {
			t.Errorf("%q: node %d", line, n)
		}
		if b/m.PageSize != m.Pages[n] {
			t.Errorf("%q: node %d: %d pages of %d bytes gave %d bytes", line, n, m.Pages[n], m.PageSize, b)
		}
		if total+b < total {
			t.Errorf("%q: bytes wrap", line)
		}
		total += b
	}
	for _, id := range m.PolicyNodes.List() {
		if id < 0 || id >= cpulist.MaxID {
			t.Errorf("%q: policy node %d", line, id)
		}
	}
}

// FuzzParseNumaMaps: a whole file parses line by line or not at all.
func FuzzParseNumaMaps(f *testing.F) {
	f.Add(head(realFile(f, "numa_maps"), 12))
	f.Add([]byte(strings.Join(numaMapsLineSeeds[:7], "\n")))
	f.Add([]byte("\n\n7f00 default\n\n"))
	f.Add([]byte("7f00 default\n" + strings.Repeat("x", 1<<16+1))) // a line past the scanner's first buffer
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := ParseNumaMaps(b)
		if err != nil {
			return
		}
		if len(ms) > bytes.Count(b, []byte("\n"))+1 {
			t.Errorf("%d mappings from %d lines", len(ms), bytes.Count(b, []byte("\n"))+1)
		}
		for _, m := range ms {
			checkMapping(t, "", m)
		}
	})
}

// FuzzParseMaps: ranges never run backwards.
func FuzzParseMaps(f *testing.F) {
	f.Add(head(realFile(f, "maps"), 12))
	for _, s := range []string{"", "00400000-00452000 r-xp 00000000 08:02 173521 /usr/bin/dbus-daemon", "1-0 rw-p", "x-1 rw-p", "1-2", "0-ffffffffffffffff rw-p"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ranges, err := parseMaps(b)
		if err != nil {
			return
		}
		for start, r := range ranges {
			if r.start != start || r.end < r.start || r.perms == "" {
				t.Errorf("range %+v at %#x", r, start)
			}
		}
	})
}

// FuzzParseProcStat: no panic; what parses renders back to a stat line
// that parses to the same values.
func FuzzParseProcStat(f *testing.F) {
	real := string(realFile(f, "task_stat"))
	f.Add([]byte(real))
	f.Add([]byte(strings.Replace(real, "(CPU 1/TCG)", "(a) (b c)", 1)))
	for _, s := range []string{"12 S 1 2", "x (a) S 1", "12 (a) S 1 2 3", strings.Replace(real, " 348611 ", " x ", 1),
		"1 () R" + strings.Repeat(" 0", 50), "-1 (x) R" + strings.Repeat(" 9", 50), "1 (x) RR" + strings.Repeat(" 0", 50), "(x)", ")("} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseProcStat(b)
		if err != nil {
			return
		}
		fields := []string{strconv.Itoa(s.PID), "(" + s.Comm + ")", string([]byte{s.State})}
		for n := 4; n <= 52; n++ {
			fields = append(fields, "0")
		}
		fields[13], fields[14], fields[21], fields[38] = fmt.Sprint(s.UTime), fmt.Sprint(s.STime), fmt.Sprint(s.StartTime), fmt.Sprint(s.Processor)
		line := strings.Join(fields, " ")
		back, err := ParseProcStat([]byte(line))
		if err != nil || back != s {
			t.Errorf("ParseProcStat(%q) = %+v; rendered %q reads back as %+v, %v", b, s, line, back, err)
		}
	})
}

// FuzzRAMSizes: the guest RAM sizes of any /proc/PID/cmdline, never a
// panic, and at least one size when there is no error.
func FuzzRAMSizes(f *testing.F) {
	f.Add(realFile(f, "cmdline"))
	for _, s := range []string{
		"qemu-system-x86_64\x00-m\x0064M\x00", "qemu\x00-m\x00size=4G,slots=2,maxmem=8G\x00", "qemu\x00-m\x00", "qemu\x00--m\x002048\x00",
		"qemu\x00-object\x00memory-backend-ram,id=r0,size=1G\x00-object\x00memory-backend-ram,id=r1,size=1G\x00",
		`qemu` + "\x00-object\x00" + `{"qom-type":"memory-backend-memfd","id":"m0","size":1073741824}` + "\x00",
		`qemu` + "\x00-object\x00" + `{"qom-type":"memory-backend-file","size":"1G"}` + "\x00",
		"qemu\x00-m\x00lots\x00", "qemu\x00-object\x00{\x00", "", "\x00\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sizes, err := RAMSizes(b)
		if err == nil && len(sizes) == 0 {
			t.Errorf("RAMSizes(%q): no sizes and no error", b)
		}
	})
}
