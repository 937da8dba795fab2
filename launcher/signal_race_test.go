package launcher

import (
	"context"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/plan"
)

// A signal that comes as the launch's last step ends is taken by the
// launch's abort watch, which has nothing left to abort: it must still
// reach qemu, or qnuma and the VM would run on as if it never came (a
// SIGTERM right after "step cont" was lost so).
func TestSignalAtTheLastStepReachesQEMU(t *testing.T) {
	sigs := make(chan os.Signal, 1)
	r, err := newRun(Config{Placement: plan.Placement{VCPUs: []cpuset.CPUSet{cpuset.New(0)}}, Signals: sigs})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "30") // stands in for qemu
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.cmd, r.proc, r.pid = cmd, cmd.Process, cmd.Process.Pid
	go func() {
		cmd.Wait()
		r.state = cmd.ProcessState
		close(r.exited)
	}()
	defer cmd.Process.Kill()
	last := step{name: StepCont, fn: func(ctx context.Context, r *run) error {
		sigs <- syscall.SIGTERM
		<-ctx.Done() // the watch took it
		return nil   // and the step had already done its work
	}}
	if err := r.do(context.Background(), []step{last}); err != nil {
		t.Fatalf("do = %v, want the step's success", err)
	}
	done := make(chan struct{})
	go func() {
		r.supervise(context.Background())
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the signal never reached qemu: supervise still waits")
	}
	if r.result.ExitCode != 128+int(syscall.SIGTERM) {
		t.Errorf("exit code %d, want %d (qemu ended by the SIGTERM)", r.result.ExitCode, 128+int(syscall.SIGTERM))
	}
}
