package balance

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/qnuma/qnuma/cpulist"
)

// CPUTime is one CPU's time since boot from /proc/stat, in clock ticks.
type CPUTime struct {
	// Busy is user + nice + system + irq + softirq + steal; Idle is idle +
	// iowait. guest and guest_nice are already counted in user.
	Busy, Idle uint64
}

// Total is all of the CPU's time.
func (c CPUTime) Total() uint64 { return c.Busy + c.Idle }

// maxProcStat bounds what is read of /proc/stat: a line per CPU, a few
// hundred bytes each, for as many CPUs as cpulist allows is under 16 MiB.
const maxProcStat = 16 << 20

// ReadCPUTimes reads root/proc/stat.
func ReadCPUTimes(root string) (map[int]CPUTime, error) {
	path := filepath.Join(root, "proc", "stat")
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read cpu times: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxProcStat+1))
	if err != nil {
		return nil, fmt.Errorf("read cpu times from %s: %w", path, err)
	}
	if len(b) > maxProcStat {
		return nil, fmt.Errorf("read cpu times from %s: more than %d bytes", path, maxProcStat)
	}
	t, err := ParseCPUTimes(b)
	if err != nil {
		return nil, fmt.Errorf("read cpu times from %s: %w", path, err)
	}
	return t, nil
}

// ParseCPUTimes reads the per-CPU lines ("cpuN user nice system idle
// iowait irq softirq steal guest guest_nice") of /proc/stat; the summary
// "cpu" line and other lines are skipped. Kernels before 2.6.11 write fewer
// columns: those present are used, idle is required.
func ParseCPUTimes(b []byte) (map[int]CPUTime, error) {
	out := map[int]CPUTime{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		id, err := strconv.Atoi(f[0][3:])
		if err != nil || id < 0 || id >= cpulist.MaxID || f[0][3] == '+' || f[0][3] == '-' {
			return nil, fmt.Errorf("line %q: bad cpu id", clip(sc.Text()))
		}
		if _, dup := out[id]; dup {
			return nil, fmt.Errorf("cpu %d listed twice", id)
		}
		if len(f) < 5 {
			return nil, fmt.Errorf("cpu %d: %d columns, want at least 4 (user nice system idle)", id, len(f)-1)
		}
		var t CPUTime
		for i, s := range f[1:] {
			if i >= 8 { // guest, guest_nice: inside user already
				break
			}
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("cpu %d column %d %q: %w", id, i+1, clip(s), err)
			}
			dst := &t.Busy
			if i == 3 || i == 4 { // idle, iowait
				dst = &t.Idle
			}
			var carry uint64
			if *dst, carry = bits.Add64(*dst, v, 0); carry != 0 {
				return nil, fmt.Errorf("cpu %d: times overflow", id)
			}
		}
		if _, carry := bits.Add64(t.Busy, t.Idle, 0); carry != 0 {
			return nil, fmt.Errorf("cpu %d: times overflow", id)
		}
		out[id] = t
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("no cpuN lines")
	}
	return out, nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
