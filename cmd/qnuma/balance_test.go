package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alecthomas/kong"
	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/balance"
	"github.com/qnuma/qnuma/balance/balancetest"
	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/plan"
)

const balanceGiB = 1 << 30

// balanceHost is a written two-node host whose node 0 is short of memory
// (1 of 16 GiB free) while node 1 has room (12 free), with two VMs of
// 2 GiB on node 0 in a ledger: the state directory and the root.
func balanceHost(t *testing.T) (state, root string) {
	t.Helper()
	root = balancetest.Machine(2, 4, 16, 1, 12).Write(t)
	times := map[int]balance.CPUTime{}
	for c := 0; c < 8; c++ {
		times[c] = balance.CPUTime{Busy: 100, Idle: 900}
	}
	balancetest.WriteCPUTimes(t, root, times)
	state = t.TempDir()
	self, err := ledger.ProcOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"a", "b"} {
		q := balancetest.QEMU{PID: 50001 + 10*i, StartTime: 77, RAM: map[int]uint64{0: 2 * balanceGiB}, VCPUTicks: []uint64{10}, VCPUCPUs: cpuset.New(0, 1, 2, 3),
			GuestNodes: []balancetest.GuestNode{{Size: 2 * balanceGiB, HostNodes: []int{0}, RAM: map[int]uint64{0: 2 * balanceGiB}}}}
		q.Write(t, root)
		plantBalanceEntry(t, state, ledger.Entry{
			Name: name, Owner: self, QEMU: q.Proc(), HostNodes: []int{0},
			MemoryBytes: map[int]uint64{0: 2 * balanceGiB}, VCPUs: map[int]int{0: 1},
			DedicatedCPUs: cpuset.New(), VCPUCPUs: cpuset.New(0, 1, 2, 3), EmulatorCPUs: cpuset.New(0, 1, 2, 3),
			VCPUHomeNodes: [][]int{{0}}, Created: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
			GuestNodes: []ledger.GuestNode{{ID: 0, HostNodes: []int{0}, VCPUs: []int{0}, MemoryBytes: 2 * balanceGiB, Backend: "m0", Policy: "bind"}},
		})
	}
	return state, root
}

// plantBalanceEntry writes e into the ledger in state as qnuma run would.
func plantBalanceEntry(t *testing.T, state string, e ledger.Entry) {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, e.Name+".json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// parseBalance parses a `qnuma balance` command line as main does.
func parseBalance(t *testing.T, args ...string) *BalanceCmd {
	t.Helper()
	var cli CLI
	p, err := kong.New(&cli, kong.Name("qnuma"), kong.Exit(func(int) { t.Fatal("kong exited") }))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Parse(append([]string{"balance"}, args...)); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return &cli.Balance
}

// runBalance runs `qnuma balance ARGS` on the written host with mover.
func runBalance(t *testing.T, root string, m balance.Mover, args ...string) (string, error) {
	t.Helper()
	c := parseBalance(t, append([]string{"--interval", "100ms"}, args...)...)
	c.root = root
	var out bytes.Buffer
	err := c.run(context.Background(), &out, m)
	return out.String(), err
}

func TestBalanceDryRunMovesNothing(t *testing.T) {
	state, root := balanceHost(t)
	m := &balancetest.Mover{}
	out, err := runBalance(t, root, m, "--once", "--dry-run", "--state-dir", state)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Moves()) != 0 {
		t.Errorf("--dry-run moved %+v", m.Moves())
	}
	if want := "would move a: guest nodes 0:0 -> 0:1, about 524288 pages, locality 100.0% now: node 0 is at 93.8% use"; !strings.HasPrefix(out, want) || strings.Count(out, "\n") != 1 {
		t.Errorf("output %q, want one line starting %q", out, want)
	}
	if len(m.Asked) != 1 || m.Asked[0] != "a 0:1" {
		t.Errorf("the planner was asked %q, want a 0:1", m.Asked)
	}
}

func TestBalanceOnceMovesOne(t *testing.T) {
	state, root := balanceHost(t)
	m := &balancetest.Mover{Result: balance.MoveResult{Pages: 524288, PagesPerNode: map[int]uint64{1: 524288}, Took: 1500 * time.Millisecond, LocalityBefore: 100, LocalityAfter: 99.5}}
	out, err := runBalance(t, root, m, "--once", "--state-dir", state, "--budget", "1000")
	if err != nil {
		t.Fatal(err)
	}
	moves := m.Moves()
	if len(moves) != 1 {
		t.Fatalf("--once made %d moves, want 1: %+v", len(moves), moves)
	}
	want := balance.MoveRequest{VM: "a", QEMU: ledger.Proc{PID: 50001, StartTime: 77}, To: map[int][]int{0: {1}}, PagesPerSecond: 1000, By: "qnuma balance"}
	if !reflect.DeepEqual(moves[0], want) {
		t.Errorf("move %+v, want %+v", moves[0], want)
	}
	if w := "moved a: guest nodes 0:0 -> 0:1, 524288 pages in 1.5s, locality 100.0% -> 99.5%: node 0"; !strings.HasPrefix(out, w) {
		t.Errorf("output %q, want %q", out, w)
	}
	// Negative control: a host with room moves nothing, and says why.
	m = &balancetest.Mover{}
	_, err = runBalance(t, balancetest.Machine(2, 4, 16, 8, 12).Write(t), m, "--once", "--state-dir", state)
	if err == nil || !strings.Contains(err.Error(), "read cpu times") {
		t.Fatalf("host without /proc/stat: %v", err)
	}
	root2 := balancetest.Machine(2, 4, 16, 8, 12).Write(t)
	balancetest.WriteCPUTimes(t, root2, map[int]balance.CPUTime{0: {}, 1: {}})
	out, err = runBalance(t, root2, m, "--once", "--state-dir", state)
	if err != nil || len(m.Moves()) != 0 || !strings.HasPrefix(out, "nothing to do") {
		t.Errorf("host with room: %v, %d moves, output %q", err, len(m.Moves()), out)
	}
}

// balanceRound is `qnuma balance --json`'s object, as a script reads it.
type balanceRound struct {
	Round  int       `json:"round"`
	At     time.Time `json:"at"`
	DryRun bool      `json:"dry_run"`
	Nodes  []struct {
		Node       int     `json:"node"`
		Total      uint64  `json:"mem_total_bytes"`
		Free       uint64  `json:"mem_free_bytes"`
		MemPercent float64 `json:"mem_use_percent"`
		CPUPercent float64 `json:"cpu_use_percent"`
		Over       bool    `json:"over_target"`
		Sustained  bool    `json:"over_since_last_sample"`
	} `json:"nodes"`
	VMs []struct {
		Name   string            `json:"name"`
		PID    int               `json:"pid"`
		Home   []int             `json:"home_nodes"`
		Layout map[string][]int  `json:"guest_nodes"`
		RAM    map[string]uint64 `json:"guest_ram_bytes"`
		Local  float64           `json:"local_percent"`
		// Each guest node's locality.
		GuestNodes []struct {
			ID    int               `json:"guest_node"`
			Home  []int             `json:"home_nodes"`
			RAM   map[string]uint64 `json:"ram_bytes"`
			Local float64           `json:"local_percent"`
		} `json:"guest_node_locality"`
		GuestNodesNote string  `json:"guest_node_locality_note"`
		VCPUUse        float64 `json:"vcpu_use_cpus"`
		Verdict        string  `json:"verdict"`
	} `json:"vms"`
	Waiting []struct {
		Name     string    `json:"name"`
		OwnerPID int       `json:"owner_pid"`
		Since    time.Time `json:"since"`
		VCPUs    int       `json:"vcpus"`
		Memory   uint64    `json:"memory_bytes"`
		Short    string    `json:"short"`
	} `json:"waiting"`
	Move *struct {
		VM     string           `json:"vm"`
		PID    int              `json:"pid"`
		From   map[string][]int `json:"from"`
		To     map[string][]int `json:"to"`
		Kind   string           `json:"kind"`
		Why    string           `json:"why"`
		Bytes  uint64           `json:"bytes"`
		Pages  uint64           `json:"pages"`
		Budget int              `json:"pages_per_second"`
		Gain   float64          `json:"gain_points"`
		Before float64          `json:"locality_before"`
		For    string           `json:"for_waiting_vm"`
		Done   bool             `json:"done"`
		Result *struct {
			Pages   uint64            `json:"pages"`
			PerNode map[string]uint64 `json:"pages_per_node"`
			TookNS  int64             `json:"took_ns"`
			Before  float64           `json:"locality_before"`
			After   float64           `json:"locality_after"`
		} `json:"result"`
		Error string `json:"error"`
	} `json:"move"`
	Why     string   `json:"why"`
	Corrupt []string `json:"corrupt_entries"`
}

func decodeRounds(t *testing.T, out string) []balanceRound {
	t.Helper()
	var rounds []balanceRound
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	for dec.More() {
		var r balanceRound
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("decode %q: %v", out, err)
		}
		rounds = append(rounds, r)
	}
	return rounds
}

func TestBalanceJSON(t *testing.T) {
	state, root := balanceHost(t)
	// b is locked by the user: the JSON says so.
	e, err := os.ReadFile(filepath.Join(state, "b.json"))
	if err != nil {
		t.Fatal(err)
	}
	var b ledger.Entry
	if err := json.Unmarshal(e, &b); err != nil {
		t.Fatal(err)
	}
	b.Locked = true
	plantBalanceEntry(t, state, b)
	m := &balancetest.Mover{Result: balance.MoveResult{Pages: 100, PagesPerNode: map[int]uint64{1: 100}, Took: time.Second, LocalityBefore: 100, LocalityAfter: 100}}
	out, err := runBalance(t, root, m, "--once", "--json", "--state-dir", state)
	if err != nil {
		t.Fatal(err)
	}
	rounds := decodeRounds(t, out)
	if len(rounds) != 1 {
		t.Fatalf("%d objects, want 1 for --once: %s", len(rounds), out)
	}
	r := rounds[0]
	if r.Round != 1 || r.At.IsZero() || r.DryRun || len(r.Nodes) != 2 || !r.Nodes[0].Over || !r.Nodes[0].Sustained || r.Nodes[1].Over || r.Nodes[0].Total != 16*balanceGiB || r.Nodes[0].Free != balanceGiB {
		t.Errorf("round %d, dry run %v, nodes %+v", r.Round, r.DryRun, r.Nodes)
	}
	if r.Nodes[0].CPUPercent != 0 {
		t.Errorf("cpu use %v%%, want 0 (/proc/stat did not move)", r.Nodes[0].CPUPercent)
	}
	if len(r.VMs) != 2 || r.VMs[0].Name != "a" || r.VMs[0].PID != 50001 || r.VMs[0].Local != 100 || r.VMs[0].RAM["0"] != 2*balanceGiB ||
		!reflect.DeepEqual(r.VMs[0].Home, []int{0}) || !reflect.DeepEqual(r.VMs[0].Layout, map[string][]int{"0": {0}}) {
		t.Errorf("vms %+v", r.VMs)
	}
	if g := r.VMs[0].GuestNodes; len(g) != 1 || g[0].ID != 0 || !reflect.DeepEqual(g[0].Home, []int{0}) || g[0].RAM["0"] != 2*balanceGiB || g[0].Local != 100 || r.VMs[0].GuestNodesNote != "" {
		t.Errorf("vm a's locality per guest node %+v (%s), want guest node 0's 2 GiB all on host node 0", g, r.VMs[0].GuestNodesNote)
	}
	if !strings.Contains(r.VMs[1].Verdict, "placed or pinned by hand, so locked") {
		t.Errorf("vm b verdict %q", r.VMs[1].Verdict)
	}
	mv := r.Move
	if mv == nil || mv.VM != "a" || !reflect.DeepEqual(mv.From, map[string][]int{"0": {0}}) || !reflect.DeepEqual(mv.To, map[string][]int{"0": {1}}) ||
		mv.Kind != "node-use" || mv.Pages != 524288 || mv.Budget != balance.DefaultPagesPerSecond || !mv.Done || mv.Result == nil || mv.Result.Pages != 100 || mv.Result.PerNode["1"] != 100 || mv.Result.TookNS != 1e9 ||
		mv.PID != 50001 || mv.Bytes != 2*balanceGiB || mv.Gain != 25 || mv.Before != 100 {
		t.Errorf("move %+v", mv)
	}
	if !strings.HasPrefix(r.Why, "vm a: node 0 is at 93.8% use") {
		t.Errorf("why %q", r.Why)
	}
}

func TestBalanceMoveRefused(t *testing.T) {
	state, root := balanceHost(t)
	// The mover finds it no longer fits: reported, and balance goes on.
	m := &balancetest.Mover{Err: fmt.Errorf("re-plan vm a on node 1: %w", plan.ErrDoesNotFit)}
	out, err := runBalance(t, root, m, "--once", "--state-dir", state)
	if err != nil || !strings.HasPrefix(out, "did not move a to 0:1: re-plan vm a on node 1: ") {
		t.Errorf("refused move: %v, output %q", err, out)
	}
	// Any other fault ends it (exit 1), after the round is printed.
	m = &balancetest.Mover{Err: errors.New("cgroup write failed")}
	out, err = runBalance(t, root, m, "--once", "--json", "--state-dir", state)
	if err == nil || IsUsage(err) || !strings.Contains(err.Error(), "move vm a to 0:1: cgroup write failed") {
		t.Errorf("failed move: %v", err)
	}
	if r := decodeRounds(t, out); len(r) != 1 || r[0].Move == nil || r[0].Move.Done || r[0].Move.Error != "" {
		t.Errorf("output %q", out)
	}
}

// TestBalanceStopsAfterTheRound: a stop asked during a move lets the move
// and its round finish, then balance ends without error.
func TestBalanceStopsAfterTheRound(t *testing.T) {
	state, root := balanceHost(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := &stopMover{cancel: cancel}
	c := parseBalance(t, "--interval", "100ms", "--state-dir", state)
	c.root = root
	var out bytes.Buffer
	if err := c.run(ctx, &out, m); err != nil {
		t.Fatal(err)
	}
	if m.moves != 1 || m.ctxErr != nil || !strings.HasPrefix(out.String(), "moved a:") {
		t.Errorf("%d moves, the move's context ended with %v, output %q: want one whole move", m.moves, m.ctxErr, out.String())
	}
}

// stopMover asks balance to stop while it moves.
type stopMover struct {
	cancel context.CancelFunc
	moves  int
	ctxErr error
}

func (*stopMover) Fits(ledger.Entry, map[int][]int) error { return nil }
func (s *stopMover) Move(ctx context.Context, req balance.MoveRequest) (balance.MoveResult, error) {
	s.moves++
	s.cancel()
	s.ctxErr = ctx.Err()
	return balance.MoveResult{Pages: 1}, nil
}

// TestBalanceSIGTERM: the built qnuma, waiting between rounds, exits 0
// on SIGTERM.
func TestBalanceSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds qnuma")
	}
	bin := buildQnuma(t)
	cmd := exec.Command(bin, "balance", "--state-dir", t.TempDir(), "--interval", "1h")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Signal until it has exited: the first may come before qnuma has set
	// up its handler (then it dies of the signal, and the test fails), and
	// Go's runtime catches SIGTERM from its start, so /proc cannot say when
	// qnuma's own handler is in: give a loaded machine 2 s.
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	giveUp := time.After(30 * time.Second)
	time.Sleep(2 * time.Second)
	for {
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("qnuma balance on SIGTERM: %v\n%s", err, stderr.String())
			}
			return
		case <-tick.C:
		case <-giveUp:
			t.Fatal("qnuma balance did not exit on SIGTERM")
		}
	}
}

func TestBalanceBadFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--interval", "1ms"}, "--interval 1ms: want 100ms to 1h0m0s"},
		{[]string{"--interval", "2h"}, "--interval 2h0m0s: want 100ms to 1h0m0s"},
		{[]string{"--locality", "0"}, "--locality 0: want a percentage from 1 to 100"},
		{[]string{"--locality", "NaN"}, "--locality NaN: want a percentage"},
		{[]string{"--node-use", "101"}, "--node-use 101: want a percentage from 1 to 100"},
		{[]string{"--min-gain=-1"}, "--min-gain -1: want a percentage from 0 to 100"},
		{[]string{"--min-interval=-1s"}, "--min-interval -1s: want 0 to 24h0m0s"},
		{[]string{"--budget=-5"}, "--budget -5: want pages per second"},
	} {
		c := parseBalance(t, tt.args...)
		_, err := c.config(&balancetest.Mover{})
		if err == nil || !IsUsage(err) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: %v, want bad input saying %q", tt.args, err, tt.want)
		}
		if code := run(append([]string{"balance", "--state-dir", t.TempDir()}, tt.args...)); code != 2 {
			t.Errorf("qnuma balance %q exited %d, want 2", tt.args, code)
		}
	}
	// What kong refuses exits 2 too.
	for _, args := range [][]string{{"--interval", "soon"}, {"--budget", "x"}, {"--bogus"}} {
		if code := run(append([]string{"balance"}, args...)); code != 2 {
			t.Errorf("qnuma balance %q exited %d, want 2", args, code)
		}
	}
}

// TestBalanceDefaults: the flags' defaults are balance's, which --help
// says come from numad and ESXi.
func TestBalanceDefaults(t *testing.T) {
	c := parseBalance(t)
	want := balance.DefaultConfig()
	got, err := c.config(&balancetest.Mover{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Interval != balance.DefaultInterval || got.NodeUse != want.NodeUse || got.Locality != want.Locality ||
		got.MinInterval != want.MinInterval || got.MinGain != want.MinGain || got.PagesPerSecond != want.PagesPerSecond {
		t.Errorf("flags give %+v and interval %s, want %+v and %s", got, c.Interval, want, balance.DefaultInterval)
	}
	var help bytes.Buffer
	parser, err := newParser(&CLI{}, kong.Writers(&help, &help))
	if err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() { _ = recover() }()
		_, _ = parser.Parse([]string{"balance", "--help"})
	}()
	for _, s := range []string{"Default 15s: numad", "Default 90: numad's", "Default 85: numad's", "Default 300s: numad", "Default 10: ESXi's Numa.MigImbalanceThreshold", "Default 262144: 1 GiB/s"} {
		if !strings.Contains(strings.Join(strings.Fields(help.String()), " "), s) {
			t.Errorf("--help does not say %q:\n%s", s, help.String())
		}
	}
}

// TestBalanceServiceUnit: contrib/qnuma-balance.service runs a balance
// command line qnuma accepts, and systemd (where it is installed) reads
// the unit without a complaint.
func TestBalanceServiceUnit(t *testing.T) {
	unit, err := os.ReadFile(filepath.Join("..", "..", "contrib", "qnuma-balance.service"))
	if err != nil {
		t.Fatal(err)
	}
	var argv []string
	for _, line := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
			argv = strings.Fields(v)
		}
	}
	if len(argv) < 2 || filepath.Base(argv[0]) != "qnuma" || argv[1] != "balance" {
		t.Fatalf("ExecStart %q, want qnuma balance", argv)
	}
	c := parseBalance(t, argv[2:]...)
	if _, err := c.config(&balancetest.Mover{}); err != nil || c.Once || c.DryRun {
		t.Errorf("ExecStart %q: %v, once %v, dry run %v: want a long-running balance that moves", argv, err, c.Once, c.DryRun)
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("no systemd-analyze to check the unit with")
	}
	verify := func(text string) string {
		t.Helper()
		path := filepath.Join(t.TempDir(), "qnuma-balance.service")
		// The real binary need not be installed: any executable will do.
		text = strings.Replace(text, "ExecStart="+argv[0], "ExecStart=/bin/true", 1)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		out, _ := exec.Command(analyze, "verify", path).CombinedOutput()
		return string(out)
	}
	if out := verify(string(unit)); out != "" {
		t.Errorf("systemd-analyze verify:\n%s", out)
	}
	// Negative control: a unit systemd cannot read is reported.
	if out := verify(strings.Replace(string(unit), "Type=exec", "Type=bogus", 1)); !strings.Contains(out, "bogus") {
		t.Errorf("systemd-analyze verify of a bad unit said %q", out)
	}
}

// TestBalanceCorruptEntry: an entry balance cannot read is reported, once
// in text and in every JSON round, and the other VMs are balanced.
func TestBalanceCorruptEntry(t *testing.T) {
	state, root := balanceHost(t)
	if err := os.WriteFile(filepath.Join(state, "z.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runBalance(t, root, &balancetest.Mover{}, "--once", "--dry-run", "--state-dir", state)
	if err != nil || !strings.HasPrefix(out, "corrupt ledger entry "+filepath.Join(state, "z.json")) || !strings.Contains(out, ": left alone\nwould move a:") {
		t.Errorf("%v, output %q", err, out)
	}
	out, err = runBalance(t, root, &balancetest.Mover{}, "--once", "--dry-run", "--json", "--state-dir", state)
	if r := decodeRounds(t, out); err != nil || len(r) != 1 || len(r[0].Corrupt) != 1 || r[0].Move == nil {
		t.Errorf("%v, output %q", err, out)
	}
}

// TestBalanceGuestNodeLocality: a VM on host nodes 0 and 1, one guest node
// each, whose guest node 0 has 3/4 of its pages on host node 1. As a whole
// it is 100% local; its guest node 0 is 25% local, so balance --once moves
// it in place (every guest node to the nodes it has), which brings the
// stray pages home. The control, its pages at home, moves nothing.
func TestBalanceGuestNodeLocality(t *testing.T) {
	for _, stray := range []bool{true, false} {
		root := balancetest.Machine(2, 4, 16, 8, 8).Write(t)
		balancetest.WriteCPUTimes(t, root, map[int]balance.CPUTime{0: {Busy: 1, Idle: 9}})
		state := t.TempDir()
		self, err := ledger.ProcOf(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		g0 := map[int]uint64{0: balanceGiB}
		if stray {
			g0 = map[int]uint64{0: balanceGiB / 4, 1: 3 * balanceGiB / 4}
		}
		q := balancetest.QEMU{PID: 50100, StartTime: 7, RAM: map[int]uint64{0: g0[0], 1: g0[1] + balanceGiB}, VCPUTicks: []uint64{1, 1}, VCPUCPUs: cpuset.New(0, 1, 2, 3, 4, 5, 6, 7),
			GuestNodes: []balancetest.GuestNode{{Size: balanceGiB, HostNodes: []int{0}, RAM: g0}, {Size: balanceGiB, HostNodes: []int{1}, RAM: map[int]uint64{1: balanceGiB}}}}
		q.Write(t, root)
		plantBalanceEntry(t, state, ledger.Entry{
			Name: "a", Owner: self, QEMU: q.Proc(), HostNodes: []int{0, 1},
			MemoryBytes: map[int]uint64{0: balanceGiB, 1: balanceGiB}, VCPUs: map[int]int{0: 1, 1: 1},
			DedicatedCPUs: cpuset.New(), VCPUCPUs: cpuset.New(0, 1, 2, 3, 4, 5, 6, 7), EmulatorCPUs: cpuset.New(0, 1, 2, 3, 4, 5, 6, 7),
			VCPUHomeNodes: [][]int{{0}, {1}}, Created: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
			GuestNodes: []ledger.GuestNode{
				{ID: 0, HostNodes: []int{0}, VCPUs: []int{0}, MemoryBytes: balanceGiB, Backend: "m0", Policy: "bind"},
				{ID: 1, HostNodes: []int{1}, VCPUs: []int{1}, MemoryBytes: balanceGiB, Backend: "m1", Policy: "bind"},
			},
		})
		m := &balancetest.Mover{}
		out, err := runBalance(t, root, m, "--once", "--json", "--state-dir", state)
		if err != nil {
			t.Fatal(err)
		}
		r := decodeRounds(t, out)[0]
		moves := m.Moves()
		if !stray {
			if len(moves) != 0 || r.Move != nil {
				t.Errorf("control: every guest node at home, moved %+v", moves)
			}
			continue
		}
		if len(moves) != 1 || balance.FormatLayout(moves[0].To) != "0:0 1:1" {
			t.Fatalf("moves %+v (%s), want a moved in place", moves, out)
		}
		if r.Move == nil || r.Move.Kind != "locality" || !strings.Contains(r.Move.Why, "guest node 0 has 25.0% of its memory on host node 0") {
			t.Errorf("move %+v", r.Move)
		}
		if v := r.VMs[0]; v.Local != 100 || len(v.GuestNodes) != 2 || v.GuestNodes[0].Local != 25 || v.GuestNodes[0].RAM["1"] != 3*balanceGiB/4 || v.GuestNodes[1].Local != 100 {
			t.Errorf("vm a: %.1f%% local, per guest node %+v: want 100%%, guest node 0 25%%, guest node 1 100%%", v.Local, v.GuestNodes)
		}
	}
}

// TestBalanceWaiting: with nothing else to do, balance moves the VM whose
// move lets a waiting VM fit, and says so (line and JSON); the control
// without a waiting VM moves nothing.
func TestBalanceWaiting(t *testing.T) {
	for _, waiting := range []bool{true, false} {
		root := balancetest.Machine(2, 4, 16, 8, 8).Write(t)
		balancetest.WriteCPUTimes(t, root, map[int]balance.CPUTime{0: {Busy: 1, Idle: 9}})
		state, _ := balanceHost(t)
		// balanceHost's VMs, on a host with room: only the waiting rule acts.
		for _, name := range []string{"a", "b"} {
			b, err := os.ReadFile(filepath.Join(state, name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			var e ledger.Entry
			if err := json.Unmarshal(b, &e); err != nil {
				t.Fatal(err)
			}
			q := balancetest.QEMU{PID: e.QEMU.PID, StartTime: e.QEMU.StartTime, RAM: map[int]uint64{0: 2 * balanceGiB}, VCPUTicks: []uint64{10}, VCPUCPUs: cpuset.New(0, 1, 2, 3),
				GuestNodes: []balancetest.GuestNode{{Size: 2 * balanceGiB, HostNodes: []int{0}, RAM: map[int]uint64{0: 2 * balanceGiB}}}}
			q.Write(t, root)
		}
		if waiting {
			l, err := ledger.Open(state)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l.Wait(context.Background(), "c", plan.Spec{VCPUs: 1, MemoryBytes: 12 * balanceGiB}, "no node has 12 GiB free"); err != nil {
				t.Fatal(err)
			}
		}
		var asked []string
		m := &balancetest.Mover{WaitFit: func(w ledger.Waiting, moved *ledger.Entry, to map[int][]int) error {
			if moved == nil {
				return fmt.Errorf("%w: no node has 12 GiB free", plan.ErrDoesNotFit)
			}
			asked = append(asked, moved.Name+" "+balance.FormatLayout(to))
			if moved.Name == "b" && balance.FormatLayout(to) == "0:1" {
				return nil
			}
			return fmt.Errorf("%w: still short", plan.ErrDoesNotFit)
		}}
		out, err := runBalance(t, root, m, "--once", "--state-dir", state)
		if err != nil {
			t.Fatal(err)
		}
		moves := m.Moves()
		if !waiting {
			if len(moves) != 0 || len(asked) != 0 || !strings.HasPrefix(out, "nothing to do") {
				t.Errorf("control: moves %+v, asked %q, output %q", moves, asked, out)
			}
			continue
		}
		if len(moves) != 1 || moves[0].VM != "b" || balance.FormatLayout(moves[0].To) != "0:1" {
			t.Fatalf("moves %+v (asked %q), output %q: want b to node 1", moves, asked, out)
		}
		if !strings.HasPrefix(out, "moved b: guest nodes 0:0 -> 0:1") || !strings.Contains(out, "frees room for waiting VM c") {
			t.Errorf("output %q", out)
		}
		out, err = runBalance(t, root, m, "--once", "--dry-run", "--json", "--state-dir", state)
		if err != nil {
			t.Fatal(err)
		}
		r := decodeRounds(t, out)[0]
		if r.Move == nil || r.Move.Kind != "waiting" || r.Move.For != "c" || !strings.Contains(r.Move.Why, "frees room for waiting VM c") ||
			len(r.Waiting) != 1 || r.Waiting[0].Name != "c" || r.Waiting[0].OwnerPID != os.Getpid() || r.Waiting[0].Memory != 12*balanceGiB || r.Waiting[0].Short != "no node has 12 GiB free" {
			t.Errorf("json move %+v, waiting %+v", r.Move, r.Waiting)
		}
	}
}
