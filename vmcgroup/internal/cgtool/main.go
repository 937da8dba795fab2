// Command cgtool drives package vmcgroup from a shell, for the multi-node
// test host's scenarios (test/vm/cgroup_scenarios_test.go): every step is
// a separate command, so that the script checks /proc itself in between.
//
//	cgtool create NAME CPUS MEMS   make the VM's cgroup
//	cgtool run NAME MIB            start `cgtool hold MIB` inside it; print its pid
//	cgtool hold MIB                touch MIB MiB; on SIGUSR1 touch MIB/2 more and make /tmp/more.PID
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
	"syscall"
	"time"

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
		if err := need(2); err != nil {
			return err
		}
		g, err := h.Open(ctx, args[1])
		if err != nil {
			return err
		}
		return start(ctx, g, args[2])
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
func start(ctx context.Context, g *vmcgroup.Group, mib string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "hold", mib)
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

// hold touches MIB MiB of anonymous memory, says "ready", and waits; on
// SIGUSR1 it touches half as much again (memory allocated after a move)
// and makes /tmp/more.PID when that is done.
func hold(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("hold wants MIB")
	}
	mib, err := strconv.Atoi(args[0])
	if err != nil || mib <= 0 {
		return fmt.Errorf("hold: bad size %q", args[0])
	}
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	var held [][]byte
	touch := func(n int) error {
		b, err := unix.Mmap(-1, 0, n<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return err
		}
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		held = append(held, b)
		return nil
	}
	if err := touch(mib); err != nil {
		return err
	}
	fmt.Println("ready")
	for range usr1 {
		if err := touch(mib / 2); err != nil {
			return err
		}
		if err := os.WriteFile(fmt.Sprintf("/tmp/more.%d", os.Getpid()), nil, 0o644); err != nil {
			return err
		}
	}
	return nil
}
