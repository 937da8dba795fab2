package ledger

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/memobj"
	"github.com/qnuma/qnuma/plan"
	"github.com/qnuma/qnuma/topology"
	"github.com/qnuma/qnuma/topology/topotest"
)

// The concurrency test re-runs this test binary as placing processes, each
// one a `qnuma run` in miniature: read the host, Place, hold the entry.
const (
	helperEnv = "QNUMA_LEDGER_HELPER" // the ledger dir
	rootEnv   = "QNUMA_LEDGER_HELPER_ROOT"
)

// vmSpec is what every placing process asks for.
var vmSpec = plan.Spec{VCPUs: 2, MemoryBytes: 6 * memobj.GiB, Dedicated: true}

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		os.Exit(helper(dir, os.Getenv(rootEnv)))
	}
	os.Exit(m.Run())
}

// result is one placing process's report.
type result struct {
	Name      string `json:"name"`
	Err       string `json:"err"`
	DoesntFit bool   `json:"doesnt_fit"`
}

// helper waits for "go" on stdin, places a VM, reports, then holds the entry
// until stdin closes (release) or it is killed.
func helper(dir, root string) int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "helper:", err); return 3 }
	host, err := topology.Read(root)
	if err != nil {
		return fail(err)
	}
	l, err := Open(dir)
	if err != nil {
		return fail(err)
	}
	in := bufio.NewReader(os.Stdin)
	fmt.Println("ready")
	if line, err := in.ReadString('\n'); err != nil || line != "go\n" {
		return fail(fmt.Errorf("waiting for go: %q, %v", line, err))
	}
	r, err := l.Place(context.Background(), "", func(placed []plan.Placed) (*plan.Plan, error) {
		return plan.Make(host, vmSpec, placed)
	})
	res := result{}
	if err != nil {
		res.Err, res.DoesntFit = err.Error(), errors.Is(err, plan.ErrDoesNotFit)
	} else {
		res.Name = r.Entry.Name
	}
	b, _ := json.Marshal(res)
	fmt.Println(string(b))
	io.Copy(io.Discard, in)
	if r != nil {
		if err := r.Release(); err != nil {
			return fail(err)
		}
	}
	return 0
}

type placer struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
	res result
}

func TestConcurrentPlace(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 20 placing processes")
	}
	root := topotest.Unpack(t, "32intel64-2p8co2t+8ve")
	host, err := topology.Read(root)
	if err != nil {
		t.Fatal(err)
	}
	// How many such VMs the host takes, placed one after another.
	want := capacity(t, host)
	const n = 20
	if want >= n || want == 0 {
		t.Fatalf("host takes %d VMs: the test needs more than 0 and fewer than %d to show contention", want, n)
	}
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ps := make([]*placer, n)
	for i := range ps {
		cmd := exec.Command(self, "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"="+dir, rootEnv+"="+root)
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		p := &placer{cmd: cmd, in: in, out: bufio.NewReader(out)}
		ps[i] = p
		t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
	}
	for i, p := range ps {
		if line, err := p.out.ReadString('\n'); err != nil || line != "ready\n" {
			t.Fatalf("placer %d: %q, %v", i, line, err)
		}
	}
	// All 20 are waiting on their stdin: let them go at once.
	for _, p := range ps {
		if _, err := io.WriteString(p.in, "go\n"); err != nil {
			t.Fatal(err)
		}
	}
	placed := 0
	for i, p := range ps {
		line, err := p.out.ReadString('\n')
		if err != nil {
			t.Fatalf("placer %d: %v", i, err)
		}
		if err := json.Unmarshal([]byte(line), &p.res); err != nil {
			t.Fatalf("placer %d: %q: %v", i, line, err)
		}
		switch {
		case p.res.Name != "":
			placed++
		case !p.res.DoesntFit:
			t.Errorf("placer %d failed for another reason than room: %s", i, p.res.Err)
		}
	}
	if placed != want {
		t.Errorf("%d of %d placed at once, want %d (as many as fit one by one)", placed, n, want)
	}
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := l.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Entries) != placed {
		t.Errorf("ledger holds %d entries, %d placers succeeded", len(st.Entries), placed)
	}
	checkNoOverlap(t, host, st.Entries)

	// SIGKILL a placer that holds a VM: the next Place reclaims its entry and
	// may use its CPUs, the host being full until then.
	var victim *placer
	for _, p := range ps {
		if p.res.Name != "" {
			victim = p
			break
		}
	}
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	victim.cmd.Wait()
	r, err := l.Place(context.Background(), "after-kill", func(placed []plan.Placed) (*plan.Plan, error) {
		return plan.Make(host, vmSpec, placed)
	})
	if err != nil {
		t.Fatalf("Place after killing %s: %v", victim.res.Name, err)
	}
	if len(r.Reclaimed) != 1 || r.Reclaimed[0] != victim.res.Name {
		t.Errorf("reclaimed %v, want [%s]", r.Reclaimed, victim.res.Name)
	}
	st, err = l.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	checkNoOverlap(t, host, st.Entries)

	// Closing their stdin makes the others release their entries.
	for _, p := range ps {
		if p != victim {
			p.in.Close()
			if err := p.cmd.Wait(); err != nil {
				t.Errorf("placer %s: %v", p.res.Name, err)
			}
		}
	}
	if err := r.Release(); err != nil {
		t.Fatal(err)
	}
	st, err = l.List(context.Background())
	if err != nil || len(st.Entries) != 0 {
		t.Errorf("after every release the ledger holds %+v, %v", st, err)
	}
}

// capacity places vmSpec one after another in a scratch ledger until the
// planner says it does not fit.
func capacity(t *testing.T, host *topology.Host) int {
	t.Helper()
	l, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		_, err := l.Place(context.Background(), "", func(placed []plan.Placed) (*plan.Plan, error) {
			return plan.Make(host, vmSpec, placed)
		})
		if errors.Is(err, plan.ErrDoesNotFit) {
			return i
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func checkNoOverlap(t *testing.T, host *topology.Host, entries []Entry) {
	t.Helper()
	owner := map[int]string{}
	promised := map[int]uint64{}
	for _, e := range entries {
		// The planner may give each vCPU a whole core (both threads).
		if e.DedicatedCPUs.Size() < vmSpec.VCPUs {
			t.Errorf("vm %s has dedicated cpus %s, want at least %d", e.Name, e.DedicatedCPUs, vmSpec.VCPUs)
		}
		for _, c := range e.DedicatedCPUs.List() {
			if o, ok := owner[c]; ok {
				t.Errorf("cpu %d given to both %s and %s", c, o, e.Name)
			}
			owner[c] = e.Name
		}
		for n, b := range e.MemoryBytes {
			promised[n] += b
		}
		if e.TotalMemory() != vmSpec.MemoryBytes {
			t.Errorf("vm %s promised %d bytes, want %d", e.Name, e.TotalMemory(), vmSpec.MemoryBytes)
		}
	}
	for id, b := range promised {
		node, ok := host.Node(id)
		if !ok {
			t.Errorf("memory promised on node %d, which the host lacks", id)
			continue
		}
		if b > node.MemTotal {
			t.Errorf("node %d: %d bytes promised, it has %d", id, b, node.MemTotal)
		}
	}
	all := cpuset.New()
	for c := range owner {
		all = all.Union(cpuset.New(c))
	}
	if !all.IsSubsetOf(host.OnlineCPUs) {
		t.Errorf("dedicated cpus %s outside the host's %s", all, host.OnlineCPUs)
	}
	t.Logf("%d vms hold cpus %s; memory promised per node %v", len(entries), all, promised)
}
