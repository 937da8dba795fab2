// Command cgtool drives package vmcgroup from a shell, for the multi-node
// test host's scenarios (test/vm/cgroup_scenarios_test.go): every step is
// a separate command, so that the script checks /proc itself in between.
//
//	cgtool create NAME CPUS MEMS   make the VM's cgroup
//	cgtool run NAME SPEC...        start `cgtool hold SPEC...` inside it; print its pid
//	cgtool hold SPEC...            touch a region per SPEC: MIB (default policy), MIB@NODE
//	                               (mbind MPOL_BIND to NODE) or MIB@NODE/static (with
//	                               MPOL_F_STATIC_NODES); on SIGUSR1 touch half the first
//	                               SPEC's MiB more (default policy) and make /tmp/more.PID
//	cgtool setmems NAME MEMS       move the group to MEMS; print how long it took
//	cgtool setcpus NAME CPUS
//	cgtool of PID                  print the qnuma group PID is in
//	cgtool remove NAME
package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/cpulist"
	"github.com/qnuma/qnuma/vmcgroup"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "cgtool:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: cgtool create|run|hold|setmems|setcpus|of|remove ARGS")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if args[0] == "hold" {
		return hold(args[1:])
	}
	h, err := vmcgroup.Detect("/")
	if err != nil {
		return err
	}
	need := func(n int) error {
		if len(args) != n+1 {
			return fmt.Errorf("%s wants %d arguments", args[0], n)
		}
		return nil
	}
	switch args[0] {
	case "create":
		if err := need(3); err != nil {
			return err
		}
		cpus, mems, err := sets(args[2], args[3])
		if err != nil {
			return err
		}
		g, err := h.Create(ctx, args[1], cpus, mems)
		if err != nil {
			return err
		}
		fmt.Printf("%s: %s, dir %s\n", g.Name(), h, g.Dir())
	case "run":
		if len(args) < 3 {
			return fmt.Errorf("run wants NAME and one SPEC or more")
		}
		g, err := h.Open(ctx, args[1])
		if err != nil {
			return err
		}
		return start(ctx, g, args[2:])
	case "setmems", "setcpus":
		if err := need(2); err != nil {
			return err
		}
		s, err := cpulist.Parse(args[2])
		if err != nil {
			return err
		}
		g, err := h.Open(ctx, args[1])
		if err != nil {
			return err
		}
		if args[0] == "setcpus" {
			return g.SetCPUs(ctx, s)
		}
		took, err := g.SetMems(ctx, s)
		if err != nil {
			return err
		}
		fmt.Printf("%s: moved to nodes %s in %s\n", g.Name(), s, took)
	case "of":
		if err := need(1); err != nil {
			return err
		}
		pid, err := strconv.Atoi(args[1])
		if err != nil {
			return err
		}
		g, err := h.Of(pid)
		if err != nil {
			return err
		}
		fmt.Printf("pid %d: vm %s, dir %s, cpus %s, nodes %s\n", pid, g.Name(), g.Dir(), g.CPUs(), g.Mems())
	case "remove":
		if err := need(1); err != nil {
			return err
		}
		g, err := h.Open(ctx, args[1])
		if err != nil {
			return err
		}
		return g.Remove(ctx)
	default:
		return fmt.Errorf("unknown command %q", args[0])
	}
	return nil
}

func sets(c, m string) (cpus, mems cpuset.CPUSet, err error) {
	if cpus, err = cpulist.Parse(c); err != nil {
		return
	}
	mems, err = cpulist.Parse(m)
	return
}

// start runs `cgtool hold MIB` inside g (born there on v2, moved in
// elsewhere) and prints its pid once it has touched its memory.
func start(ctx context.Context, g *vmcgroup.Group, specs []string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, append([]string{"hold"}, specs...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	fd, born := g.CloneFD()
	if born {
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	if !born {
		if err := g.AddProc(ctx, cmd.Process.Pid); err != nil {
			cmd.Process.Kill()
			return err
		}
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		cmd.Process.Kill()
		return fmt.Errorf("hold did not get ready: %q, %v", line, err)
	}
	fmt.Println(cmd.Process.Pid)
	return nil
}

// region is one SPEC of hold.
type region struct {
	mib    int
	node   int // -1: default policy
	static bool
}

func parseSpec(s string) (region, error) {
	r := region{node: -1}
	size, bind, bound := strings.Cut(s, "@")
	var err error
	if r.mib, err = strconv.Atoi(size); err != nil || r.mib <= 0 {
		return r, fmt.Errorf("hold: bad size in %q", s)
	}
	if bound {
		bind, r.static = strings.CutSuffix(bind, "/static")
		if r.node, err = strconv.Atoi(bind); err != nil || r.node < 0 || r.node > 63 {
			return r, fmt.Errorf("hold: bad node in %q", s)
		}
	}
	return r, nil
}

// hold touches a region per SPEC, says "ready", and waits; on SIGUSR1 it
// touches half the first region's size again (memory allocated after a
// move) and makes /tmp/more.PID when that is done.
func hold(specs []string) error {
	if len(specs) == 0 {
		return fmt.Errorf("hold wants one SPEC or more")
	}
	var rs []region
	for _, s := range specs {
		r, err := parseSpec(s)
		if err != nil {
			return err
		}
		rs = append(rs, r)
	}
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	var held [][]byte
	touch := func(r region) error {
		b, err := unix.Mmap(-1, 0, r.mib<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return err
		}
		if r.node >= 0 {
			const mpolBind, mpolFStaticNodes = 2, 1 << 15
			mode := uintptr(mpolBind)
			if r.static {
				mode |= mpolFStaticNodes
			}
			mask := uint64(1) << r.node
			// maxnode counts bits and the kernel reads maxnode-1 of them.
			if _, _, e := unix.Syscall6(unix.SYS_MBIND, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), mode,
				uintptr(unsafe.Pointer(&mask)), 65, 0); e != 0 {
				return fmt.Errorf("mbind %d MiB to node %d: %w", r.mib, r.node, e)
			}
		}
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		held = append(held, b)
		return nil
	}
	for _, r := range rs {
		if err := touch(r); err != nil {
			return err
		}
	}
	fmt.Println("ready")
	for range usr1 {
		if err := touch(region{mib: max(rs[0].mib/2, 1), node: -1}); err != nil {
			return err
		}
		if err := os.WriteFile(fmt.Sprintf("/tmp/more.%d", os.Getpid()), nil, 0o644); err != nil {
			return err
		}
	}
	return nil
}
