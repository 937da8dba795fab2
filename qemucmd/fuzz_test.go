package qemucmd

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// FuzzParse: Parse never panics; what it accepts renders back to the same
// argv and parses again to the same model; every typed value it read
// renders to an argument that parses back to that value. The input is a
// command line as /proc/PID/cmdline holds it, NUL-separated.
func FuzzParse(f *testing.F) {
	for _, argv := range seeds {
		f.Add(strings.Join(argv, "\x00"))
	}
	f.Add(bin + "\x00-m\x0064M\x00-kernel")
	f.Add(bin + "\x00-object\x00{\"qom-type\":\"memory-backend-ram\",\"id\":\"m\",\"size\":1,\"host-nodes\":[0,1]}")
	f.Fuzz(func(t *testing.T, s string) {
		argv := strings.Split(s, "\x00")
		if ac, err := ParseAccepted(argv); err == nil && !slices.Equal(ac.Argv(), argv) {
			t.Fatalf("ParseAccepted(%q).Argv() = %q", argv, ac.Argv())
		}
		c, err := Parse(argv)
		if err != nil {
			if c != nil {
				t.Fatalf("Parse(%q) returned %+v with error %v", argv, c, err)
			}
			return
		}
		if got := c.Argv(); !slices.Equal(got, argv) {
			t.Fatalf("Parse(%q).Argv() = %q", argv, got)
		}
		again, err := Parse(c.Argv())
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("Parse(render(Parse(%q))) = %+v, %v; want %+v", argv, again, err, c)
		}
		for _, a := range c.Args {
			if a.Opt == nil {
				continue
			}
			r := a.Opt.Arg()
			rc, err := Parse([]string{bin, r.Flag, r.Value})
			if err != nil {
				t.Fatalf("%s %q reads as %#v, which renders as %q, which does not parse: %v", a.Flag, a.Value, a.Opt, r.Value, err)
			}
			if got := rc.Args[0].Opt; !reflect.DeepEqual(got, a.Opt) {
				t.Fatalf("%s %q reads as %#v, which renders as %q, which reads as %#v", a.Flag, a.Value, a.Opt, r.Value, got)
			}
		}
	})
}
