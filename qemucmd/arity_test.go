package qemucmd

import (
	"os/exec"
	"strings"
	"testing"
)

// helpArity reads which options take a value from `qemu -help`: an option's
// first line is "-name", then its argument when the next text starts before
// the description column (16) or follows one space past it, else its
// description ("-S              freeze CPU at startup").
func helpArity(help string) map[string]bool {
	const descCol = 16
	out := map[string]bool{}
	for _, line := range strings.Split(help, "\n") {
		if !strings.HasPrefix(line, "-") {
			continue
		}
		if strings.HasPrefix(line, "-h or -help") {
			out["h"], out["help"] = false, false
			continue
		}
		tok, rest, _ := strings.Cut(line, " ")
		col := len(tok) + 1 + len(rest) - len(strings.TrimLeft(rest, " "))
		spaces := 1 + len(rest) - len(strings.TrimLeft(rest, " "))
		hasArg := strings.TrimSpace(rest) != "" && (col < descCol || (col > descCol && spaces == 1))
		for _, n := range strings.Split(tok, "/") {
			out[strings.TrimLeft(n, "-")] = hasArg
		}
	}
	return out
}

func TestHelpArity(t *testing.T) {
	got := helpArity("-S              freeze CPU at startup (use 'c' to start execution)\n" +
		"-m [size=]megs[,slots=n,maxmem=size]\n" +
		"                configure guest RAM\n" +
		"-mem-path FILE  provide backing storage for guest RAM\n" +
		"-async-teardown enable asynchronous teardown\n" +
		"-watchdog-action reset|shutdown|poweroff|inject-nmi|pause|debug|none\n" +
		"-xen-domid-restrict     restrict set of available xen operations\n" +
		"-fda/-fdb file  use 'file' as floppy disk 0/1 image\n" +
		"-no-user-config\n--preconfig     pause QEMU\n-h or -help     display this help and exit\n")
	want := map[string]bool{"S": false, "m": true, "mem-path": true, "async-teardown": false, "watchdog-action": true,
		"xen-domid-restrict": false, "fda": true, "fdb": true, "no-user-config": false, "preconfig": false, "h": false, "help": false}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("helpArity: %s = %v (listed %v), want %v", k, g, ok, v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("helpArity = %v, want %v", got, want)
	}
}

// Every option the installed QEMU lists takes a value exactly when
// TakesValue says so, and is known.
func TestArityMatchesQEMUHelp(t *testing.T) {
	if testing.Short() {
		t.Skip("runs qemu-system-x86_64 -help: skipped under -short")
	}
	bin, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skipf("qemu-system-x86_64 not installed (scripts/deps.sh installs it): %v", err)
	}
	out, err := exec.Command(bin, "-help").Output()
	if err != nil {
		t.Fatalf("%s -help: %v", bin, err)
	}
	ar := helpArity(string(out))
	if len(ar) < 100 {
		t.Fatalf("read only %d options from %s -help: %v", len(ar), bin, ar)
	}
	for name, hasArg := range ar {
		takes, known := TakesValue(name)
		if !known || takes != hasArg {
			t.Errorf("-%s: qemu -help says takes a value %v; TakesValue = %v (known %v)", name, hasArg, takes, known)
		}
	}
}
