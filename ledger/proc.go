package ledger

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"github.com/qnuma/qnuma/numastat"
)

// ProcOf names the running process pid by its pid and start time.
func ProcOf(pid int) (Proc, error) {
	s, err := numastat.ReadProcStat("/", pid)
	if err != nil {
		return Proc{}, fmt.Errorf("read start time of pid %d: %w", pid, err)
	}
	return Proc{PID: pid, StartTime: s.StartTime}, nil
}

// Alive reports whether p still runs: its pid exists, is not a zombie, and
// has the same start time (otherwise the pid was reused).
func (p Proc) Alive() (bool, error) {
	if p.PID <= 0 {
		return false, nil
	}
	s, err := numastat.ReadProcStat("/", p.PID)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check pid %d: %w", p.PID, err)
	}
	return s.StartTime == p.StartTime && s.State != 'Z', nil
}

// self is this process, as owners are recorded.
func self() (Proc, error) { return ProcOf(os.Getpid()) }
