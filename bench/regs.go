package main

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// cpuRegs is where one vCPU's instruction pointer is, from HMP's
// `info registers -a`.
type cpuRegs struct {
	CPU int
	// IP is RIP (long mode) or EIP, CSBase the code segment's base.
	IP, CSBase uint64
}

// AtReset reports whether the vCPU is at x86's reset vector (CS base
// 0xffff0000, IP 0xfff0): it has not run a single instruction since reset,
// because the first one there (a far jump) moves both.
func (r cpuRegs) AtReset() bool { return r.IP == 0xfff0 && r.CSBase == 0xffff0000 }

var (
	cpuHeadRe = regexp.MustCompile(`(?m)^CPU#(\d+)`)
	ipRe      = regexp.MustCompile(`\b(?:RIP|EIP)=([0-9a-f]+)`)
	csRe      = regexp.MustCompile(`(?m)^CS =[0-9a-f]+ ([0-9a-f]+) `)
)

// parseRegisters reads every vCPU's instruction pointer and code segment
// base from `info registers -a`.
func parseRegisters(s string) ([]cpuRegs, error) {
	heads := cpuHeadRe.FindAllStringSubmatchIndex(s, -1)
	if len(heads) == 0 {
		return nil, fmt.Errorf("parse info registers: no CPU#N block in %q", clip(s))
	}
	out := make([]cpuRegs, 0, len(heads))
	for i, h := range heads {
		end := len(s)
		if i+1 < len(heads) {
			end = heads[i+1][0]
		}
		block := s[h[1]:end]
		n, err := strconv.Atoi(s[h[2]:h[3]])
		if err != nil {
			return nil, fmt.Errorf("parse info registers: cpu number: %w", err)
		}
		ip := ipRe.FindStringSubmatch(block)
		cs := csRe.FindStringSubmatch(block)
		if ip == nil || cs == nil {
			return nil, fmt.Errorf("parse info registers: cpu %d: no EIP/RIP or CS line", n)
		}
		r := cpuRegs{CPU: n}
		if r.IP, err = strconv.ParseUint(ip[1], 16, 64); err != nil {
			return nil, fmt.Errorf("parse info registers: cpu %d ip: %w", n, err)
		}
		if r.CSBase, err = strconv.ParseUint(cs[1], 16, 64); err != nil {
			return nil, fmt.Errorf("parse info registers: cpu %d cs base: %w", n, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// threadCPUTime is a thread's time on a CPU, in nanoseconds, from
// /proc/TID/task/TID/schedstat (finer than stat's clock ticks).
func threadCPUTime(tid int) (uint64, error) {
	p := fmt.Sprintf("/proc/%d/task/%d/schedstat", tid, tid)
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, fmt.Errorf("read cpu time of thread %d: %w", tid, err)
	}
	return parseSchedstat(string(b))
}

// parseSchedstat reads the first field of a schedstat line: "run wait slices".
func parseSchedstat(s string) (uint64, error) {
	f := strings.Fields(s)
	if len(f) != 3 {
		return 0, fmt.Errorf("parse schedstat %q: want 3 fields", clip(s))
	}
	n, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse schedstat %q: %w", clip(s), err)
	}
	return n, nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
