package vm

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrTimeout is wrapped by Run's error when the guest did not finish in
// Options.Timeout.
var ErrTimeout = errors.New("test host timed out")

// DefaultTimeout applies when Options.Timeout is zero.
const DefaultTimeout = 60 * time.Second

// Share is a host directory mounted over 9p inside the test host.
type Share struct {
	HostPath  string
	GuestPath string
	Writable  bool
}

// Options describe one boot of the test host.
type Options struct {
	Topology Topology
	// Timeout kills a guest that has not powered off (DefaultTimeout if 0).
	Timeout time.Duration
	// Shares besides the host's /usr (at /usr, read-only) and the
	// repository's build/ (at /qnuma, read-only).
	Shares []Share
	// Env is exported to the script.
	Env map[string]string
}

// Result is a finished boot.
type Result struct {
	// ExitCode is the script's exit status inside the test host.
	ExitCode int
	// Output is the script's stdout and stderr.
	Output string
	// Console is the serial console: the kernel's messages and the verdict.
	Console string
	// Elapsed is the wall time from starting QEMU to its exit.
	Elapsed time.Duration
	// BootHangs says why each earlier boot was given up before the script
	// started (see bootAttempts); empty when the first boot ran it.
	BootHangs []string
}

// Run boots the test host with opts.Topology under TCG, runs script (sh,
// with lib.sh's functions loaded, in /tmp) inside it, and returns its exit
// status and output. A guest still running at the timeout is killed and
// reported with ErrTimeout and the last lines it printed.
func Run(ctx context.Context, opts Options, script string) (*Result, error) {
	a, err := Prepare(ctx)
	if err != nil {
		return nil, err
	}
	return boot(ctx, a, opts, script)
}

// bootAttempts is how many times Run boots the test host when its kernel
// hangs before the script starts: under TCG on a loaded 2-CPU machine a
// boot has stalled in early kernel set-up (an RCU stall on one vCPU, a
// soft lockup in a kworker on another) and never reached init. A hang
// after the script started is the scenario's own and is never retried.
const bootAttempts = 2

// bootDeadline is how long the kernel may take to start the script
// (boots take 5-10 s here, under load 20) before the boot counts as hung.
const bootDeadline = 45 * time.Second

// stallRe matches the kernel's own words for a vCPU that stopped making
// progress.
var stallRe = regexp.MustCompile(`rcu: INFO: rcu_(preempt|sched) detected stalls|watchdog: BUG: soft lockup`)

// hangLog is where a hung boot is said (a test's buffer in unit tests).
var hangLog io.Writer = os.Stderr

// errBootHung is an attempt that never reached the script.
var errBootHung = errors.New("test host kernel hung before the script started")

func boot(ctx context.Context, a *Assets, opts Options, script string) (*Result, error) {
	var hangs []string
	for attempt := 1; ; attempt++ {
		res, err := bootOnce(ctx, a, opts, script)
		if !errors.Is(err, errBootHung) {
			if res != nil {
				res.BootHangs = hangs
			}
			return res, err
		}
		hangs = append(hangs, err.Error())
		reportHang(a.Dir, fmt.Sprintf("boot %d of %d: %v\n", attempt, bootAttempts, err))
		if attempt == bootAttempts {
			return nil, fmt.Errorf("run test host: %d boots hung before the script started:\n%s",
				attempt, strings.Join(hangs, "\n"))
		}
	}
}

// reportHang says a hung boot where every caller (tests, bench, testhost)
// shows it, and keeps it in dir's boot-hangs.log: go test shows a passing
// package's stderr to nobody, and these lines are what finds the cause.
func reportHang(dir, line string) {
	fmt.Fprint(hangLog, "qnuma test host: "+line)
	if dir == "" {
		return
	}
	if f, err := os.OpenFile(filepath.Join(dir, "boot-hangs.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
		fmt.Fprint(f, time.Now().UTC().Format(time.RFC3339)+" "+line)
		f.Close()
	}
}

func bootOnce(ctx context.Context, a *Assets, opts Options, script string) (*Result, error) {
	job, err := os.MkdirTemp("", "qnuma-vm-job-")
	if err != nil {
		return nil, fmt.Errorf("run test host: %w", err)
	}
	defer os.RemoveAll(job)
	nonce, err := newNonce()
	if err != nil {
		return nil, fmt.Errorf("run test host: %w", err)
	}
	shares := []Share{{HostPath: "/usr", GuestPath: "/usr"}}
	if a.BuildDir != "" {
		if err := os.MkdirAll(a.BuildDir, 0o755); err != nil {
			return nil, fmt.Errorf("run test host: %w", err)
		}
		shares = append(shares, Share{HostPath: a.BuildDir, GuestPath: "/qnuma"})
	}
	shares = append(shares, opts.Shares...)
	args, err := hostArgs(a, opts.Topology, job, shares, nonce)
	if err != nil {
		return nil, fmt.Errorf("run test host: %w", err)
	}
	// QEMU's human monitor, out of the guest's reach: asked where each
	// vCPU is when a boot hangs.
	monDir, err := os.MkdirTemp("", "qnuma-vm-mon-")
	if err != nil {
		return nil, fmt.Errorf("run test host: %w", err)
	}
	defer os.RemoveAll(monDir)
	monSock := filepath.Join(monDir, "hmp.sock")
	args = append(args, "-monitor", "unix:"+monSock+",server=on,wait=off")
	if err := writeJob(job, shares, opts.Env, script); err != nil {
		return nil, fmt.Errorf("run test host: %w", err)
	}

	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var console, qemuErr syncBuffer
	cmd := exec.CommandContext(tctx, "qemu-system-x86_64", args...)
	cmd.Stdout, cmd.Stderr = &console, &qemuErr
	// A test binary killed mid-boot must not leave QEMU behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run test host: %w", err)
	}
	hung := make(chan string, 1)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		if why := watchBoot(tctx, filepath.Join(job, "started"), &console, start, nonce); why != "" {
			hung <- why + "; " + vcpuWhereabouts(monSock)
			_ = cmd.Process.Kill()
		}
	}()
	waitErr := cmd.Wait()
	timedOut := tctx.Err() != nil
	cancel()
	<-watchDone
	elapsed := time.Since(start)
	select {
	case why := <-hung:
		return nil, fmt.Errorf("%w: %s (%s in); last console lines:\n%s",
			errBootHung, why, elapsed.Round(time.Second), lastLines(console.String(), 6))
	default:
	}
	output, _ := os.ReadFile(filepath.Join(job, "output"))

	if timedOut {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("run test host: %w", ctx.Err())
		}
		return nil, fmt.Errorf("run test host: %w after %s; last output:\n%s\nlast console lines:\n%s",
			ErrTimeout, timeout, lastLines(string(output), 10), lastLines(console.String(), 10))
	}
	v, err := parseVerdict(console.String(), nonce)
	if err != nil {
		// The console can lose the last message at power-off; init writes
		// the verdict to the job share too.
		if b, ferr := os.ReadFile(filepath.Join(job, "verdict")); ferr == nil {
			v, err = parseVerdict(string(b), nonce)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("run test host: %w (qemu: %v: %s); last output:\n%s\nlast console lines:\n%s",
			err, waitErr, lastLines(qemuErr.String(), 5), lastLines(string(output), 10), lastLines(console.String(), 10))
	}
	if v.setupFailed != "" {
		return nil, fmt.Errorf("run test host: init failed to %s; last console lines:\n%s",
			v.setupFailed, lastLines(console.String(), 10))
	}
	return &Result{ExitCode: v.exitCode, Output: string(output), Console: console.String(), Elapsed: elapsed}, nil
}

// watchBoot waits until init has started the script (it creates started in
// the job share), and says why the boot counts as hung if the kernel
// reports a stall first or the script has not started by bootDeadline. It
// returns "" once the script started or ctx ends.
func watchBoot(ctx context.Context, started string, console *syncBuffer, since time.Time, nonce string) string {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ""
		case <-tick.C:
		}
		if _, err := os.Stat(started); err == nil {
			return ""
		}
		out := console.String()
		where := "before init started"
		if strings.Contains(out, "qnuma-vm "+nonce+" init") {
			where = "in init, before the script"
		}
		if m := stallRe.FindString(out); m != "" {
			return "the kernel reported a stall (" + m + ") " + where
		}
		if time.Since(since) > bootDeadline {
			return "no script after " + bootDeadline.String() + ", " + where
		}
	}
}

// ripRe is the instruction pointer in a register dump (EIP before the
// kernel reaches 64-bit mode); versionRe the answer to info version, which
// ends the monitor's reply.
var (
	ripRe     = regexp.MustCompile(`[ER]IP=([0-9a-f]+)`)
	versionRe = regexp.MustCompile(`(?m)^[0-9]+\.[0-9]+\.[0-9]+`)
)

// vcpuWhereabouts asks QEMU's monitor for every vCPU's registers and says
// each one's instruction pointer and whether it is halted, for a hung boot's
// report (System.map in the kernel package names the functions).
func vcpuWhereabouts(sock string) string {
	c, err := net.DialTimeout("unix", sock, 2*time.Second)
	if err != nil {
		return "vCPUs: monitor: " + err.Error()
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "info registers -a\r\ninfo version\r\n"); err != nil {
		return "vCPUs: monitor: " + err.Error()
	}
	// The answer ends with the version's line; read until then or the
	// deadline.
	var b bytes.Buffer
	buf := make([]byte, 64<<10)
	for !versionRe.Match(b.Bytes()) {
		n, err := c.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	var cpus []string
	for _, block := range strings.Split(b.String(), "CPU#")[1:] {
		id, _, _ := strings.Cut(block, "\n")
		rip := "?"
		if m := ripRe.FindStringSubmatch(block); m != nil {
			rip = m[1]
		}
		state := ""
		if strings.Contains(block, " HLT=1") {
			state = " halted"
		}
		cpus = append(cpus, "CPU "+strings.TrimSpace(id)+" at "+rip+state)
	}
	if len(cpus) == 0 {
		return "vCPUs: the monitor said nothing of them"
	}
	return "vCPUs: " + strings.Join(cpus, ", ")
}

// hostArgs is the test host's QEMU command line.
func hostArgs(a *Assets, t Topology, job string, shares []Share, nonce string) ([]string, error) {
	topo, err := t.Args()
	if err != nil {
		return nil, err
	}
	args := []string{
		// This host's KVM cannot boot a stock kernel; TCG with one thread
		// per vCPU and every CPU feature (SVM included, for nested KVM).
		"-accel", "tcg,thread=multi", "-cpu", "max",
		"-nodefaults", "-no-reboot", "-display", "none", "-serial", "stdio",
		"-kernel", a.Kernel, "-initrd", a.Initrd,
		// cryptomgr.notests: the kernel's crypto self-tests at boot are
		// slow under TCG and once hung a boot (a soft lockup in
		// cryptomgr_test) until the scenario's timeout.
		"-append", "console=ttyS0 quiet panic=-1 printk.devkmsg=on cryptomgr.notests qnuma.nonce=" + nonce,
	}
	args = append(args, topo...)
	args = append(args, virtfs("job", job, true)...)
	for i, s := range shares {
		if err := s.validate(); err != nil {
			return nil, err
		}
		args = append(args, virtfs("s"+strconv.Itoa(i), s.HostPath, s.Writable)...)
	}
	return args, nil
}

func virtfs(tag, path string, writable bool) []string {
	opt := "local,path=" + path + ",mount_tag=" + tag + ",security_model=none,multidevs=remap"
	if !writable {
		opt += ",readonly=on"
	}
	return []string{"-virtfs", opt}
}

var guestPathRe = regexp.MustCompile(`^(/[A-Za-z0-9._-]+)+$`)

func (s Share) validate() error {
	// Sharing / would let the guest's own /dev, /proc... shadow nothing and
	// hand it the whole host: never.
	if filepath.Clean(s.HostPath) == "/" || s.GuestPath == "/" {
		return fmt.Errorf("share %s at %s: / is never shared", s.HostPath, s.GuestPath)
	}
	if !filepath.IsAbs(s.HostPath) || strings.Contains(s.HostPath, ",") {
		return fmt.Errorf("share %q: want an absolute host path without commas", s.HostPath)
	}
	if !guestPathRe.MatchString(s.GuestPath) || strings.Contains(s.GuestPath, "..") {
		return fmt.Errorf("share %s at %q: want an absolute guest path of letters, digits, . _ -", s.HostPath, s.GuestPath)
	}
	switch s.GuestPath {
	case "/proc", "/sys", "/dev", "/job", "/tmp", "/run", "/bb", "/etc":
		return fmt.Errorf("share %s at %s: that guest path is the test host's own", s.HostPath, s.GuestPath)
	}
	return nil
}

// writeJob fills the job share: the mounts init makes, the environment, the
// script.
func writeJob(dir string, shares []Share, env map[string]string, script string) error {
	var mounts strings.Builder
	for i, s := range shares {
		// A read-only share cannot change under the guest, so its pages may
		// stay in the guest's page cache: without that, exec of qemu (100
		// libraries) re-reads over 9p and takes seconds under TCG.
		mode := "ro,cache=loose"
		if s.Writable {
			mode = "rw"
		}
		fmt.Fprintf(&mounts, "s%d %s %s\n", i, s.GuestPath, mode)
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		if !envNameRe.MatchString(k) {
			return fmt.Errorf("env %q: not a shell variable name", k)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var envFile strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&envFile, "export %s=%s\n", k, shellQuote(env[k]))
	}
	for name, data := range map[string]string{"shares": mounts.String(), "env": envFile.String(), "script": script} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			return err
		}
	}
	return nil
}

var envNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

type verdict struct {
	exitCode    int
	setupFailed string
}

var verdictRe = regexp.MustCompile(`qnuma-vm ([0-9a-f]+) (exit ([0-9]+)|setup-failed (.*))`)

// parseVerdict finds init's verdict line carrying this boot's nonce.
func parseVerdict(console, nonce string) (verdict, error) {
	for _, line := range strings.Split(console, "\n") {
		m := verdictRe.FindStringSubmatch(strings.TrimRight(line, "\r"))
		if m == nil || m[1] != nonce {
			continue
		}
		if m[4] != "" {
			return verdict{setupFailed: m[4]}, nil
		}
		code, err := strconv.Atoi(m[3])
		if err != nil {
			return verdict{}, fmt.Errorf("parse exit status %q: %w", m[3], err)
		}
		return verdict{exitCode: code}, nil
	}
	return verdict{}, errors.New("test host stopped without reporting an exit status")
}

func newNonce() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// lastLines returns the last n lines of s, or "(none)".
func lastLines(s string, n int) string {
	if strings.TrimSpace(s) == "" {
		return "(none)"
	}
	lines := strings.Split(strings.TrimRight(strings.ReplaceAll(s, "\r", ""), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// syncBuffer is a bytes.Buffer safe for exec's copying goroutine and a
// reader after Wait.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
