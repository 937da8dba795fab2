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
	"strings"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/cpulist"
	"github.com/qnuma/qnuma/topology"
)

// env is what every figure shares: the binaries, the host and a private
// directory for sockets and qnuma's ledger.
type env struct {
	qnuma, qemu, numactl string
	quick                bool
	host                 *topology.Host
	// node is the first node with CPUs and memory: where numactl binds and
	// qnuma is told to place.
	node int
	info HostInfo
	dir  string
	// stateDir is qnuma's ledger for this run, so that VMs other people
	// run on the host do not change the plans measured.
	stateDir string
	seq      int
	// bareStartMS is bare qemu's median start-up in the first start-up
	// case, for putting other figures in proportion (0: not measured).
	bareStartMS float64
}

func newEnv(ctx context.Context, qnuma string, quick bool) (*env, error) {
	e := &env{quick: quick}
	var err error
	if e.qnuma, err = filepath.Abs(qnuma); err != nil {
		return nil, fmt.Errorf("find qnuma %s: %w", qnuma, err)
	}
	if _, err := os.Stat(e.qnuma); err != nil {
		return nil, fmt.Errorf("find qnuma (make build makes it): %w", err)
	}
	if e.qemu, err = exec.LookPath("qemu-system-x86_64"); err != nil {
		return nil, fmt.Errorf("find qemu (make deps installs it): %w", err)
	}
	if e.numactl, err = exec.LookPath("numactl"); err != nil {
		return nil, fmt.Errorf("find numactl (make deps installs it): %w", err)
	}
	if e.host, err = topology.Read("/"); err != nil {
		return nil, err
	}
	e.node = -1
	for _, n := range e.host.Nodes {
		if n.HasCPUs() && n.HasMemory() && e.host.Allowed.Mems.Contains(n.ID) {
			e.node = n.ID
			break
		}
	}
	if e.node < 0 {
		return nil, errors.New("read host: no node has both cpus and memory")
	}
	if e.info, err = hostInfo(ctx, e); err != nil {
		return nil, err
	}
	if e.dir, err = os.MkdirTemp("", "qnuma-bench-"); err != nil {
		return nil, fmt.Errorf("make bench directory: %w", err)
	}
	e.stateDir = filepath.Join(e.dir, "state")
	return e, nil
}

func (e *env) close() { os.RemoveAll(e.dir) }

func hostInfo(ctx context.Context, e *env) (HostInfo, error) {
	h := HostInfo{CPUs: e.host.OnlineCPUs.Size(), Nodes: e.host.NodeIDs()}
	rel, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return h, fmt.Errorf("read kernel release: %w", err)
	}
	h.Kernel = strings.TrimSpace(string(rel))
	out, err := exec.CommandContext(ctx, e.qemu, "--version").Output()
	if err != nil {
		return h, fmt.Errorf("%s --version: %w", e.qemu, err)
	}
	h.QEMU, _, _ = strings.Cut(string(out), "\n")
	h.QEMU = strings.TrimPrefix(strings.TrimSpace(h.QEMU), "QEMU emulator version ")
	h.QEMU = "QEMU " + h.QEMU
	_, err = os.Stat("/dev/kvm")
	h.KVM = err == nil
	return h, nil
}

// sock returns a new QMP socket path in the bench's directory.
func (e *env) sock() string {
	e.seq++
	return filepath.Join(e.dir, fmt.Sprintf("m%d.sock", e.seq))
}

// rounds picks the repeat count for the run's mode.
func (e *env) rounds(full, quick int) int {
	if e.quick {
		return quick
	}
	return full
}

// qnumaRun is the start of a `qnuma run` command line with the bench's
// ledger.
func (e *env) qnumaRun(flags ...string) []string {
	return append([]string{e.qnuma, "run", "--state-dir", e.stateDir}, flags...)
}

// errNoFit is returned by plan when qnuma says the VM does not fit (exit 2).
var errNoFit = errors.New("does not fit")

// planJSON runs `qnuma plan --json` with flags. A VM that does not fit
// returns errNoFit with qnuma's reason.
func (e *env) planJSON(ctx context.Context, flags ...string) ([]byte, error) {
	args := append([]string{"plan", "--json", "--state-dir", e.stateDir}, flags...)
	cmd := exec.CommandContext(ctx, e.qnuma, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 2 {
		return nil, fmt.Errorf("%w: %s", errNoFit, firstLine(strings.TrimPrefix(stderr.String(), "qnuma: ")))
	}
	if err != nil {
		return nil, fmt.Errorf("qnuma %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// plannedVCPUs is where `qnuma plan` puts each vCPU of a VM with flags.
func (e *env) plannedVCPUs(ctx context.Context, flags ...string) ([]cpuset.CPUSet, error) {
	out, err := e.planJSON(ctx, flags...)
	if err != nil {
		return nil, err
	}
	return parsePlanVCPUs(out)
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// parsePlanVCPUs reads each vCPU's host CPUs from `qnuma plan --json`.
func parsePlanVCPUs(b []byte) ([]cpuset.CPUSet, error) {
	var p struct {
		VCPUs []struct {
			VCPU     int    `json:"vcpu"`
			HostCPUs string `json:"host_cpus"`
		} `json:"vcpus"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("parse qnuma plan --json: %w", err)
	}
	if len(p.VCPUs) == 0 {
		return nil, errors.New("parse qnuma plan --json: no vcpus")
	}
	out := make([]cpuset.CPUSet, len(p.VCPUs))
	for i, v := range p.VCPUs {
		if v.VCPU != i {
			return nil, fmt.Errorf("parse qnuma plan --json: vcpu %d at position %d", v.VCPU, i)
		}
		s, err := cpulist.Parse(v.HostCPUs)
		if err != nil {
			return nil, fmt.Errorf("parse qnuma plan --json: vcpu %d host_cpus %q: %w", i, v.HostCPUs, err)
		}
		out[i] = s
	}
	return out, nil
}

// nodeCPUs is the CPUs of node id.
func (e *env) nodeCPUs(id int) cpuset.CPUSet {
	n, _ := e.host.Node(id)
	return n.CPUs
}

// nodeFreeGiB is node e.node's MemFree when the bench started.
func (e *env) nodeFreeGiB() float64 {
	n, _ := e.host.Node(e.node)
	return float64(n.MemFree) / (1 << 30)
}
