// Package qemucmd is one model of the QEMU command line: every argument in
// order, with the options that bear on placement (-smp, -m, -numa, memory
// backends and thread-contexts, -machine, -mem-path, -mem-prealloc, memory
// devices, -name, monitors and sockets) read into typed values, in QEMU's
// key=value form and the JSON form libvirt writes for -object and -device.
// It is pure: parsing and rendering read nothing and start nothing.
//
// Parse keeps every argument as written, so Parse(argv).Argv() is argv; a
// typed value renders back with its Arg method, and parsing that rendering
// gives the same typed value.
package qemucmd

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Cmdline is a QEMU command line: the binary, then every argument in order.
type Cmdline struct {
	Binary string
	Args   []Arg
}

// Arg is one option with its value, or one positional argument (a disk
// image: Flag and Name empty, the text in Value).
type Arg struct {
	// Flag is the option as written ("-smp", "--smp"); Name without dashes.
	Flag, Name string
	// Value is the option's value as written; HasValue says it takes one.
	Value    string
	HasValue bool
	// Opt is the value read for placement (*SMP, *Memory, *NumaNode, ...);
	// nil for options qnuma does not read.
	Opt Option
}

// Option is a typed option; Arg renders it.
type Option interface {
	Arg() Arg
}

// Strings is the argument as argv elements.
func (a Arg) Strings() []string {
	switch {
	case a.Flag == "":
		return []string{a.Value}
	case a.HasValue:
		return []string{a.Flag, a.Value}
	}
	return []string{a.Flag}
}

// Argv renders the command line: binary first.
func (c *Cmdline) Argv() []string {
	out := make([]string, 0, 1+2*len(c.Args))
	out = append(out, c.Binary)
	for _, a := range c.Args {
		out = append(out, a.Strings()...)
	}
	return out
}

// IsSystemEmulator says the binary is qemu-system-* or qemu-kvm.
func (c *Cmdline) IsSystemEmulator() bool { return IsSystemEmulator(c.Binary) }

// IsSystemEmulator says a binary is qemu-system-* or qemu-kvm: one whose
// arguments Parse reads.
func IsSystemEmulator(binary string) bool {
	base := filepath.Base(binary)
	return strings.HasPrefix(base, "qemu-system-") || base == "qemu-kvm"
}

// maxArgs bounds a command line from outside (Linux's own limit on argv
// is about 2 MiB of text).
const maxArgs = 1 << 20

// Parse reads argv (argv[0] is the binary). QEMU takes -opt and --opt
// alike and an option's value as the next argument, whatever it looks like
// (never -opt=value). An option missing its value is an error naming it;
// so is an option this package does not know at the very end of the line,
// since qnuma cannot tell whether it would take qnuma's own next argument
// for its value. Malformed placement options are errors naming the option.
func Parse(argv []string) (*Cmdline, error) { return parse(argv, false) }

// ParseAccepted reads a command line QEMU has already accepted, such as a
// running QEMU's /proc/PID/cmdline: an option this package does not know
// at the end then takes no value, since QEMU started with it.
func ParseAccepted(argv []string) (*Cmdline, error) { return parse(argv, true) }

func parse(argv []string, accepted bool) (*Cmdline, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, fmt.Errorf("parse qemu command line: no binary")
	}
	if len(argv) > maxArgs {
		return nil, fmt.Errorf("parse qemu command line: %d arguments, more than %d", len(argv), maxArgs)
	}
	c := &Cmdline{Binary: argv[0], Args: make([]Arg, 0, len(argv)-1)}
	args := argv[1:]
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			c.Args = append(c.Args, Arg{Value: a})
			continue
		}
		name := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if n, v, ok := strings.Cut(name, "="); ok {
			return nil, fmt.Errorf("parse qemu command line: %s: qemu takes the value as the next argument (-%s %s)", a, n, v)
		}
		takes, known := TakesValue(name)
		if !takes {
			c.Args = append(c.Args, Arg{Flag: a, Name: name})
			continue
		}
		if i+1 >= len(args) {
			if !known && accepted {
				c.Args = append(c.Args, Arg{Flag: a, Name: name})
				continue
			}
			if !known {
				return nil, fmt.Errorf("parse qemu command line: %s is last and qnuma does not know whether it takes a value: give its value, or move it before another option", a)
			}
			return nil, fmt.Errorf("parse qemu command line: %s needs a value", a)
		}
		arg := Arg{Flag: a, Name: name, Value: args[i+1], HasValue: true}
		i++
		opt, err := parseOption(name, arg.Value)
		if err != nil {
			return nil, fmt.Errorf("parse qemu command line: %s %s: %w", a, arg.Value, err)
		}
		arg.Opt = opt
		c.Args = append(c.Args, arg)
	}
	return c, nil
}

// parseOption reads the options that bear on placement; nil for the rest.
func parseOption(name, v string) (Option, error) {
	switch name {
	case "smp":
		return parseSMP(v)
	case "m":
		return parseMemory(v)
	case "numa":
		return parseNuma(v)
	case "object":
		return parseObject(v)
	case "machine", "M":
		return parseMachine(v)
	case "device":
		return parseDevice(v)
	case "name":
		return parseName(v)
	case "chardev":
		return parseChardev(v)
	case "mon":
		return parseMon(v)
	case "qmp", "qmp-pretty", "monitor", "serial", "parallel", "debugcon":
		return parseCharSpec(name, v)
	case "accel":
		return parseAccel(v)
	}
	return nil, nil
}

// Find returns the arguments of one option, in order.
func (c *Cmdline) Find(names ...string) []Arg {
	var out []Arg
	for _, a := range c.Args {
		for _, n := range names {
			if a.Flag != "" && a.Name == n {
				out = append(out, a)
				break
			}
		}
	}
	return out
}

// Has says the option is given at least once.
func (c *Cmdline) Has(name string) bool { return len(c.Find(name)) > 0 }

// Append adds options at the end.
func (c *Cmdline) Append(opts ...Option) {
	for _, o := range opts {
		c.Args = append(c.Args, o.Arg())
	}
}

// newArg is an option rendered by this package.
func newArg(name string, value string, o Option) Arg {
	return Arg{Flag: "-" + name, Name: name, Value: value, HasValue: true, Opt: o}
}
