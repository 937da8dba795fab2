package launcher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/affinity"
	"github.com/qnuma/qnuma/qmp"
)

// exitReapWait bounds how long qnuma waits for a qemu that closed its QMP
// socket to exit and be reaped (which takes up to drainWait more when a
// child of qemu holds its stderr), so that the error gives qemu's status
// and stderr. A dying qemu is reaped in milliseconds; the bound is for a
// loaded host, and is only reached by a qemu that closed its monitor and
// lives on.
const exitReapWait = drainWait + 9*time.Second

// waitQMP waits within QMPTimeout for qemu's greeting on qnuma's end of the
// socketpair and negotiates capabilities. The launch's first questions
// (query-cpus-fast, query-iothreads) go out with the negotiation, before
// the greeting: qemu runs them in order as soon as its monitor is up, so
// they cost no round trip of their own.
func waitQMP(ctx context.Context, r *run) error {
	rctx, cancel := context.WithTimeout(ctx, r.cfg.QMPTimeout)
	defer cancel()
	// The greeting's wait ends when qemu dies.
	go func() {
		select {
		case <-r.exited:
			cancel()
		case <-rctx.Done():
		}
	}()
	conn := r.conn
	r.conn = nil // the client owns it from here, even when it fails
	mon := qmp.Start(conn, fmt.Sprintf("qemu pid %d", r.pid))
	r.vcpusAsked = ask(ctx, r, mon.QueryCPUsFast)
	r.ioThreads = ask(ctx, r, mon.QueryIOThreads)
	err := mon.Ready(rctx)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		// A connection closed before the greeting means qemu is going
		// away: wait for it to be reaped, so that the error gives its
		// status and stderr rather than a reset connection.
		exitWait := time.NewTimer(exitReapWait)
		select {
		case <-r.exited:
		case <-exitWait.C:
		}
		exitWait.Stop()
	}
	if err != nil || r.hasExited() {
		mon.Close()
		r.vcpusAsked, r.ioThreads = nil, nil
	}
	if r.hasExited() {
		return r.exitedError()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("qemu (pid %d) did not answer on its qmp monitor within %v (--qmp-timeout)%s: %w",
			r.pid, r.cfg.QMPTimeout, r.waitingHint(), err)
	}
	if err != nil {
		return err
	}
	r.mon = mon
	if r.cgroupDone != nil {
		if err := <-r.cgroupDone; err != nil {
			return fmt.Errorf("put qemu (pid %d) in its cgroup: %w", r.pid, err)
		}
	}
	return nil
}

// answer is a QMP question's answer.
type answer[T any] struct {
	v   T
	err error
}

// ask sends a QMP question now, from its own goroutine, and returns where
// its answer will be. It may go out before qemu's greeting, so only the
// launch (ctx) and the connection bound it; the step that needs the answer
// bounds its own wait (awaitAnswer).
func ask[T any](ctx context.Context, r *run, q func(context.Context) (T, error)) <-chan answer[T] {
	ch := make(chan answer[T], 1)
	go func() {
		v, err := q(ctx)
		ch <- answer[T]{v, err}
	}()
	return ch
}

// awaitAnswer waits for an asked question's answer within QMPTimeout,
// ended early when qemu exits.
func awaitAnswer[T any](ctx context.Context, r *run, command string, ch <-chan answer[T]) (T, error) {
	var zero T
	t := time.NewTimer(r.cfg.QMPTimeout)
	defer t.Stop()
	select {
	case a := <-ch:
		return a.v, a.err
	case <-t.C:
		return zero, fmt.Errorf("qemu (pid %d) did not answer %s within %v (--qmp-timeout): %w", r.pid, command, r.cfg.QMPTimeout, context.DeadlineExceeded)
	case <-r.exited:
		return zero, fmt.Errorf("qemu (pid %d) exited before it answered %s", r.pid, command)
	case <-ctx.Done():
		return zero, context.Cause(ctx)
	}
}

// waitingHint names the user's sockets qemu may be waiting on.
func (r *run) waitingHint() string {
	if len(r.cfg.WaitingSockets) == 0 {
		return ""
	}
	return fmt.Sprintf("; it may be waiting for a client on %s: connect one, or add wait=off",
		strings.Join(r.cfg.WaitingSockets, " and "))
}

// qmpCall runs one QMP command within QMPTimeout, ended early when qemu
// exits: a qemu that stalls in a command cannot hold the launch.
func (r *run) qmpCall(ctx context.Context, command string, f func(context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, r.cfg.QMPTimeout)
	defer cancel()
	go func() {
		select {
		case <-r.exited:
			cancel()
		case <-cctx.Done():
		}
	}()
	err := f(cctx)
	if err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return fmt.Errorf("qemu (pid %d) did not answer %s within %v (--qmp-timeout): %w", r.pid, command, r.cfg.QMPTimeout, err)
	}
	return err
}

// queryVCPUs reads each vCPU's thread id (query-cpus-fast, asked by
// waitQMP, or now) and checks them against the plan.
func queryVCPUs(ctx context.Context, r *run) error {
	asked := r.vcpusAsked
	r.vcpusAsked = nil
	if asked == nil { // a step list without waitQMP's questions
		asked = ask(ctx, r, r.mon.QueryCPUsFast)
	}
	cpus, err := awaitAnswer(ctx, r, "query-cpus-fast", asked)
	if err != nil {
		return r.orExited(fmt.Errorf("query vcpu threads of pid %d: %w", r.pid, err))
	}
	tids, err := VCPUThreadsOf(cpus, r.cfg.Placement.VCPUIDs, len(r.cfg.Placement.VCPUs))
	if err != nil {
		return fmt.Errorf("pid %d: %w", r.pid, err)
	}
	r.vcpuThreads = tids
	r.result.VCPUThreads = tids
	r.log.Info("vcpu threads", "tids", tids)
	return nil
}

// VCPUThreads orders query-cpus-fast's thread ids by vCPU index and checks
// that qemu has the vCPUs the plan has: vCPUs 0 to planned-1.
func VCPUThreads(cpus []qmp.CPU, planned int) ([]int, error) {
	return VCPUThreadsOf(cpus, nil, planned)
}

// VCPUThreadsOf is VCPUThreads for a plan whose vCPUs are ids (QEMU's
// cpu-index; Placement.VCPUIDs, a VM with hotplug room that starts with
// slots of several guest nodes): tids[i] is vCPU ids[i]'s thread. nil ids
// are 0 to planned-1. A cpu-index that is none of ids, or comes twice, is
// refused, as is a count that differs from the plan's.
func VCPUThreadsOf(cpus []qmp.CPU, ids []int, planned int) ([]int, error) {
	if ids != nil && len(ids) != planned {
		return nil, fmt.Errorf("plan has %d vcpus and %d vcpu ids", planned, len(ids))
	}
	if len(cpus) != planned {
		return nil, fmt.Errorf("qemu has %d vcpus, the plan has %d", len(cpus), planned)
	}
	at := make(map[int]int, planned) // cpu-index: place in the plan
	for i := range planned {
		id := i
		if ids != nil {
			id = ids[i]
		}
		if _, dup := at[id]; dup {
			return nil, fmt.Errorf("plan lists vcpu %d twice", id)
		}
		at[id] = i
	}
	tids := make([]int, len(cpus))
	seen := make([]bool, len(cpus))
	for _, c := range cpus {
		i, ok := at[c.CPUIndex]
		if !ok || seen[i] {
			if ids != nil {
				return nil, fmt.Errorf("query-cpus-fast: unexpected cpu-index %d among %d vcpus (the plan's are %s)", c.CPUIndex, len(cpus), vcpuList(ids))
			}
			return nil, fmt.Errorf("query-cpus-fast: unexpected cpu-index %d among %d vcpus", c.CPUIndex, len(cpus))
		}
		seen[i] = true
		tids[i] = c.ThreadID
	}
	return tids, nil
}

// ThreadPin is the CPUs for one thread and the vCPUs it runs.
type ThreadPin struct {
	TID   int
	VCPUs []int
	CPUs  cpuset.CPUSet
}

// VCPUPins groups vCPUs by thread: with TCG's single thread (or no
// thread=multi) every vCPU shares one thread, which gets the union of their
// CPUs. Pins come in order of their first vCPU.
func VCPUPins(tids []int, cpus []cpuset.CPUSet) ([]ThreadPin, error) {
	if len(tids) != len(cpus) {
		return nil, fmt.Errorf("%d vcpu threads for %d planned vcpus", len(tids), len(cpus))
	}
	var pins []ThreadPin
	at := map[int]int{}
	for i, tid := range tids {
		if cpus[i].Size() == 0 {
			return nil, fmt.Errorf("vcpu %d has no planned cpus", i)
		}
		j, ok := at[tid]
		if !ok {
			at[tid] = len(pins)
			pins = append(pins, ThreadPin{TID: tid, VCPUs: []int{i}, CPUs: cpus[i]})
			continue
		}
		pins[j].VCPUs = append(pins[j].VCPUs, i)
		pins[j].CPUs = pins[j].CPUs.Union(cpus[i])
	}
	return pins, nil
}

func pinVCPUs(ctx context.Context, r *run) error {
	if r.vcpuThreads == nil {
		return errors.New("no vcpu threads known")
	}
	pins, err := VCPUPins(r.vcpuThreads, r.cfg.Placement.VCPUs)
	if err != nil {
		return err
	}
	if ids := r.cfg.Placement.VCPUIDs; ids != nil { // name them by cpu-index
		for _, p := range pins {
			for k, i := range p.VCPUs {
				p.VCPUs[k] = ids[i]
			}
		}
	}
	if err := r.checkThreads("vcpu", r.vcpuThreads); err != nil {
		return err
	}
	for _, p := range pins {
		if len(p.VCPUs) > 1 {
			r.warn(fmt.Sprintf("vcpus %s share one thread (tid %d; TCG without thread=multi?): pinned it to the union of their cpus, %s",
				cpuset.New(p.VCPUs...), p.TID, p.CPUs))
		}
		if err := r.sys.SchedSetaffinity(p.TID, p.CPUs); err != nil {
			return r.orExited(fmt.Errorf("pin vcpu %s (tid %d) to cpus %s: %w", vcpuList(p.VCPUs), p.TID, p.CPUs, err))
		}
		r.log.Info("pinned vcpu", "vcpu", vcpuList(p.VCPUs), "tid", p.TID, "cpus", p.CPUs.String())
	}
	return nil
}

func vcpuList(v []int) string {
	if len(v) == 1 {
		return fmt.Sprint(v[0])
	}
	return cpuset.New(v...).String()
}

// emulatorCPUs is where the non-vCPU threads go.
func (r *run) emulatorCPUs() cpuset.CPUSet {
	return r.cfg.Placement.Emulator
}

// pinEmulator pins every thread of qemu that is not a vCPU (the main loop,
// RCU, workers and I/O threads) to the emulator CPUs. Threads qemu starts
// later inherit the affinity of the thread that starts them.
func pinEmulator(ctx context.Context, r *run) error {
	cpus := r.emulatorCPUs()
	if cpus.Size() == 0 {
		return errors.New("no emulator cpus planned")
	}
	asked := r.ioThreads
	r.ioThreads = nil
	if asked == nil { // a step list without waitQMP's questions
		asked = ask(ctx, r, r.mon.QueryIOThreads)
	}
	io, err := awaitAnswer(ctx, r, "query-iothreads", asked)
	if err != nil {
		return r.orExited(fmt.Errorf("query io threads of pid %d: %w", r.pid, err))
	}
	// Listed after the query: every I/O thread that was there is in it.
	tids, err := affinity.Threads(r.cfg.ProcRoot, r.pid)
	if err != nil {
		return r.orExited(err)
	}
	ioTIDs := make([]int, len(io))
	for i, t := range io {
		ioTIDs[i] = t.ThreadID
	}
	if err := foreignThreads("io", ioTIDs, tids, r.pid); err != nil {
		return err
	}
	others := EmulatorThreads(tids, r.vcpuThreads, io)
	for _, tid := range others {
		err := r.sys.SchedSetaffinity(tid, cpus)
		if errors.Is(err, syscall.ESRCH) {
			continue // the thread ended since the listing: nothing to pin
		}
		if err != nil {
			return r.orExited(fmt.Errorf("pin emulator thread %d of pid %d to cpus %s: %w", tid, r.pid, cpus, err))
		}
	}
	names := make([]string, len(io))
	for i, t := range io {
		names[i] = fmt.Sprintf("%s:%d", t.ID, t.ThreadID)
	}
	r.log.Info("pinned emulator threads", "tids", others, "iothreads", strings.Join(names, ","), "cpus", cpus.String())
	return pinOwnIOThreads(r, io)
}

// pinOwnIOThreads pins each I/O thread the plan gives CPUs of its own
// (plan.IOThread.Given: a domain XML's <iothreadpin>) there, once
// pinEmulator has put it with the emulator threads. (Hook for issue 10's
// --domain-xml, helper E.)
func pinOwnIOThreads(r *run, io []qmp.IOThread) error {
	for _, want := range r.cfg.Placement.IOThreads {
		if !want.Given {
			continue
		}
		i := slices.IndexFunc(io, func(t qmp.IOThread) bool { return t.ID == want.ID })
		if i < 0 {
			return fmt.Errorf("pin io thread %s of pid %d: qemu has no such io thread (query-iothreads)", want.ID, r.pid)
		}
		if err := r.sys.SchedSetaffinity(io[i].ThreadID, want.HostCPUs); err != nil {
			return r.orExited(fmt.Errorf("pin io thread %s (tid %d) of pid %d to cpus %s: %w", want.ID, io[i].ThreadID, r.pid, want.HostCPUs, err))
		}
		r.log.Info("pinned iothread", "id", want.ID, "tid", io[i].ThreadID, "cpus", want.HostCPUs.String())
	}
	return nil
}

// EmulatorThreads is every thread that is not a vCPU, including the I/O
// threads (which may have started after the listing), ascending.
func EmulatorThreads(all, vcpus []int, io []qmp.IOThread) []int {
	var out []int
	for _, t := range all {
		if !slices.Contains(vcpus, t) {
			out = append(out, t)
		}
	}
	for _, t := range io {
		if !slices.Contains(out, t.ThreadID) && !slices.Contains(vcpus, t.ThreadID) {
			out = append(out, t.ThreadID)
		}
	}
	sort.Ints(out)
	return out
}

// checkThreads refuses thread ids (from QMP, so from qemu or whatever
// answers on its socket) that are not threads of qemu: pinning them would
// let qemu move any process on the host.
func (r *run) checkThreads(what string, tids []int) error {
	all, err := affinity.Threads(r.cfg.ProcRoot, r.pid)
	if err != nil {
		return r.orExited(err)
	}
	return foreignThreads(what, tids, all, r.pid)
}

// foreignThreads is an error naming the first of tids not among qemu's
// threads.
func foreignThreads(what string, tids, qemuThreads []int, pid int) error {
	for _, tid := range tids {
		if !slices.Contains(qemuThreads, tid) {
			return fmt.Errorf("%s thread id %d from qmp is not a thread of qemu (pid %d, no /proc/%d/task/%d): not pinning it",
				what, tid, pid, pid, tid)
		}
	}
	return nil
}

// orExited replaces err by qemu's exit when qemu is gone: that is the
// reason the step failed. A closed QMP connection usually means qemu is
// dying, so its reaping is awaited for a moment.
func (r *run) orExited(err error) error {
	if r.hasExited() {
		return fmt.Errorf("%w: %w", r.exitedError(), err)
	}
	if r.mon == nil {
		return err
	}
	select {
	case <-r.mon.Done():
	default:
		return err
	}
	t := time.NewTimer(exitReapWait)
	defer t.Stop()
	select {
	case <-r.exited:
		return fmt.Errorf("%w: %w", r.exitedError(), err)
	case <-t.C:
		return err
	}
}
