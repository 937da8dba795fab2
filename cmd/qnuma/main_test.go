package main

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

// TestRunOnlyParsesAsCLI: `qnuma run` is parsed with runOnly, a model of
// that one command; its help, usage and errors must be CLI's.
func TestRunOnlyParsesAsCLI(t *testing.T) {
	full, _ := reflect.TypeFor[CLI]().FieldByName("Run")
	only, _ := reflect.TypeFor[runOnly]().FieldByName("Run")
	if full.Tag != only.Tag || full.Type != only.Type {
		t.Fatalf("runOnly.Run is %v `%s`, CLI.Run is %v `%s`", only.Type, only.Tag, full.Type, full.Tag)
	}
	if _, ok := model([]string{"run"}).(*runOnly); !ok {
		t.Fatalf("qnuma run is not parsed with runOnly")
	}
	seen := map[string]bool{}
	for _, args := range [][]string{
		{"run", "--help"},
		{"run", "-h"},
		{"run", "--bogus"},
		{"run", "--vcpus"},
		{"run", "--vcpus", "x"},
		{"run", "--policy", "foo"},
		{"run", "topology"},
		{"run", "--vcpus", "2", "--memory", "1G", "--", "qemu-system-x86_64", "-S"},
	} {
		fullOut, fullErr, fullCode := parseOnly(t, &CLI{}, args)
		onlyOut, onlyErr, onlyCode := parseOnly(t, &runOnly{}, args)
		if fullOut != onlyOut || fullErr != onlyErr || fullCode != onlyCode {
			t.Errorf("qnuma %q:\nCLI:     %q, %q, exit %d\nrunOnly: %q, %q, exit %d", args, fullOut, fullErr, fullCode, onlyOut, onlyErr, onlyCode)
		}
		seen[strings.Join(args[1:], " ")] = onlyOut != "" || onlyErr != ""
	}
	// The comparison shows something: help is printed, a bad value refused.
	if !seen["--help"] || !seen["--policy foo"] || !seen["--vcpus x"] {
		t.Errorf("kong printed or refused nothing where it should: %v", seen)
	}
}

// parseOnly parses args into cli without running the command: what kong
// prints, its error, and the exit it asked for (-1: none).
func parseOnly(t *testing.T, cli any, args []string) (out, err string, code int) {
	var b bytes.Buffer
	parser, e := newParser(cli, kong.Writers(&b, &b))
	if e != nil {
		t.Fatal(e)
	}
	code = -1
	defer func() {
		if r := recover(); r != nil {
			c, ok := r.(exitCode)
			if !ok {
				panic(r)
			}
			out, code = b.String(), int(c)
		}
	}()
	if _, e := parser.Parse(args); e != nil {
		err = e.Error()
	}
	return b.String(), err, code
}
