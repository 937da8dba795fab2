// Package qemuversion learns which QEMU release a binary is: the bounded
// `qemu -version` probe (a time limit, its process group killed, killed
// with qnuma) and its cache per binary identity (path, device, inode, size,
// mtime), so a launch asks once per binary. Parsing the output is pure.
package qemuversion

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Version is a QEMU release, as `qemu-system-x86_64 -version` prints it.
type Version struct {
	Major, Minor, Micro int
	// Package is the distribution's note in parentheses, if any
	// ("Debian 1:7.2+dfsg-7+deb12u16").
	Package string
}

// versionRE matches "QEMU emulator version 7.2.19 (Debian ...)" and the
// older "QEMU PC emulator version 0.12.1 (qemu-kvm-0.12.1.2)".
var versionRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(?m)^QEMU\b[^\n]*?\bversion (\d+)\.(\d+)(?:\.(\d+))?(?:[^\n(]*\(([^)\n]*)\))?`)
}) // compiled when first used, not at every start

// ParseVersion reads the output of `qemu-system-* -version`.
func ParseVersion(out string) (Version, error) {
	m := versionRE().FindStringSubmatch(out)
	if m == nil {
		first, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
		return Version{}, fmt.Errorf("parse qemu version: no \"QEMU ... version X.Y\" in %q", first)
	}
	var v Version
	var err error
	if v.Major, err = strconv.Atoi(m[1]); err != nil {
		return Version{}, fmt.Errorf("parse qemu version %q: major: %w", m[0], err)
	}
	if v.Minor, err = strconv.Atoi(m[2]); err != nil {
		return Version{}, fmt.Errorf("parse qemu version %q: minor: %w", m[0], err)
	}
	if m[3] != "" {
		if v.Micro, err = strconv.Atoi(m[3]); err != nil {
			return Version{}, fmt.Errorf("parse qemu version %q: micro: %w", m[0], err)
		}
	}
	v.Package = m[4]
	return v, nil
}

// ProbeVersion runs `binary -version` and parses what it prints.
func ProbeVersion(ctx context.Context, binary string) (Version, error) {
	v, _, err := probe(ctx, binary)
	return v, err
}

// probe is ProbeVersion that also returns the output, for the cache.
func probe(ctx context.Context, binary string) (Version, string, error) {
	out, err := versionOutput(ctx, binary)
	if err != nil {
		return Version{}, "", err
	}
	v, err := ParseVersion(out)
	if err != nil {
		return Version{}, "", fmt.Errorf("probe qemu version of %s: %w", binary, err)
	}
	return v, out, nil
}

// probeTimeout bounds `qemu -version`: a qemu that hangs there (a wrapper
// script waiting on something) must not hang plan and run silently. It is
// generous: twenty qemu probed at once on a small, emulated host took over
// 10 s (the multi-node test host's ledger scenario), and a probe runs once
// per binary, its answer cached.
var probeTimeout = 60 * time.Second

// maxVersionOutput bounds what -version may print that is kept.
const maxVersionOutput = 64 << 10

// versionOutput runs `binary -version` within probeTimeout. The probe runs
// in its own process group, all of which is killed when the limit passes
// (and when it has finished, so that nothing it started stays behind);
// Pdeathsig kills it if qnuma dies first.
func versionOutput(ctx context.Context, binary string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	stdout := &cappedBuffer{max: maxVersionOutput}
	stderr := &cappedBuffer{max: maxVersionOutput}
	cmd := exec.CommandContext(ctx, binary, "-version")
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second // a child holding stdout past the kill
	err := cmd.Run()
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && err != nil {
		return "", fmt.Errorf("probe qemu version: %s -version did not finish within %v: killed it; check that it runs, or give --qemu-version when planning", binary, probeTimeout)
	}
	if err != nil {
		return "", fmt.Errorf("probe qemu version: run %s -version: %w: %s", binary, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// cappedBuffer keeps the first max bytes written to it and discards the
// rest without failing the writer.
type cappedBuffer struct {
	bytes.Buffer
	max int
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if room := c.max - c.Len(); room > 0 {
		c.Buffer.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (v Version) String() string {
	return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Micro)
}

// IsZero reports whether v was never set.
func (v Version) IsZero() bool { return v == Version{} }

// AtLeast reports whether v is major.minor or newer.
func (v Version) AtLeast(major, minor int) bool {
	if v.Major != major {
		return v.Major > major
	}
	return v.Minor >= minor
}

// HasNUMADistCPU: -numa dist and -numa cpu (2.10).
func (v Version) HasNUMADistCPU() bool { return v.AtLeast(2, 10) }

// HasMemfd: memory-backend-memfd with hugetlb= and hugetlbsize= (2.12).
func (v Version) HasMemfd() bool { return v.AtLeast(2, 12) }

// HasPreallocThreads: the prealloc-threads backend property (5.0).
func (v Version) HasPreallocThreads() bool { return v.AtLeast(5, 0) }

// HasMachineMemoryBackend: -machine memory-backend=ID for main RAM (5.0,
// when main RAM moved onto host memory backends).
func (v Version) HasMachineMemoryBackend() bool { return v.AtLeast(5, 0) }

// HasThreadContext: -object thread-context and the prealloc-context backend
// property (7.2).
func (v Version) HasThreadContext() bool { return v.AtLeast(7, 2) }
