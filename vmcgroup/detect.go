package vmcgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Kind is how a host lets qnuma make a VM's cgroup.
type Kind int

const (
	// None: it cannot; Host.Why says why.
	None Kind = iota
	// V2 is cgroup v2 with the cpuset controller, no systemd: a plain
	// directory under the cgroup2 mount.
	V2
	// V2Systemd is cgroup v2 with the cpuset controller under systemd: a
	// transient scope with Delegate=yes.
	V2Systemd
	// V1 is a cgroup v1 cpuset hierarchy: a directory in it, with
	// cpuset.memory_migrate=1.
	V1
)

func (k Kind) String() string {
	switch k {
	case V2:
		return "cgroup v2"
	case V2Systemd:
		return "cgroup v2 (systemd scope)"
	case V1:
		return "cgroup v1 cpuset"
	}
	return "none"
}

// Dir is the directory under the hierarchy's mount that holds the VMs'
// cgroups on V2 and V1 hosts.
const Dir = "qnuma"

// Slice is the systemd slice the VMs' scopes go in on V2Systemd hosts (the
// one systemd-machined and libvirt use for VMs).
const Slice = "machine.slice"

// Host is what Detect found.
type Host struct {
	Kind Kind
	// Why says, when Kind is None, why no cgroup can be made, in words
	// for users.
	Why string
	// Mount is where the hierarchy with the cpuset controller is mounted
	// (as mountinfo names it, without the root), when one is.
	Mount string

	root string
	// mountRoot is the mount's root inside the hierarchy ("/" unless the
	// mount is of a sub-tree, as in containers).
	mountRoot string
	// prefix is "cpuset." before the cpuset files' names, "" on a v1
	// hierarchy mounted with noprefix.
	prefix string
	// owner is the uid the directories qnuma acts on must have: root.
	owner uint32
}

func (h Host) String() string {
	if h.Kind == None {
		return "no cgroup for VMs: " + h.Why
	}
	return fmt.Sprintf("%s at %s", h.Kind, h.Mount)
}

// Detect reads ROOT/proc/self/mountinfo (and ROOT/run/systemd/system,
// whose presence means systemd runs, as sd_booted says) and returns which
// kind of host this is. An error is a file that could not be read or
// parsed; a host where no cgroup can be made is Kind None with Why.
func Detect(root string) (Host, error) {
	return detect(root, os.Geteuid())
}

func detect(root string, euid int) (Host, error) {
	h := Host{root: root, prefix: "cpuset."}
	path := filepath.Join(root, "/proc/self/mountinfo")
	b, err := readFile(path, maxMountinfo)
	if err != nil {
		return h, fmt.Errorf("detect cgroups: %w", err)
	}
	mounts, err := parseMountinfo(b)
	if err != nil {
		return h, fmt.Errorf("detect cgroups: %s: %w", path, err)
	}
	var v2 []mount
	var v1 *mount
	for _, m := range visible(mounts) {
		switch {
		case m.fsType == "cgroup2":
			v2 = append(v2, m)
		case m.fsType == "cgroup" && has(m.super, "cpuset"):
			v1 = &m
		}
	}
	var noCpuset []string
	for _, m := range v2 {
		cpath := filepath.Join(root, m.point, "cgroup.controllers")
		b, err := readFile(cpath, maxSmall)
		if err != nil {
			return h, fmt.Errorf("detect cgroups: %w", err)
		}
		if !has(strings.Fields(string(b)), "cpuset") {
			noCpuset = append(noCpuset, fmt.Sprintf("%s (controllers: %q)", m.point, strings.TrimSpace(string(b))))
			continue
		}
		h.Kind, h.Mount, h.mountRoot = V2, m.point, m.root
		systemd, err := systemdRuns(root)
		if err != nil {
			return h, fmt.Errorf("detect cgroups: %w", err)
		}
		// systemd manages cpuset only on the unified hierarchy it mounts
		// at /sys/fs/cgroup; a cgroup2 mount elsewhere is not its own.
		if systemd && m.point == "/sys/fs/cgroup" {
			h.Kind = V2Systemd
		}
		break
	}
	if h.Kind == None && v1 != nil {
		h.Kind, h.Mount, h.mountRoot = V1, v1.point, v1.root
		if has(v1.super, "noprefix") {
			h.prefix = ""
		}
	}
	switch {
	case h.Kind == None && len(noCpuset) > 0:
		h.Why = "cgroup v2 without the cpuset controller at " + strings.Join(noCpuset, ", ") + ", and no cgroup v1 cpuset hierarchy is mounted"
	case h.Kind == None:
		h.Why = "no cgroup filesystem with the cpuset controller is mounted (" + path + " lists neither cgroup2 nor a cgroup v1 cpuset hierarchy)"
	case euid != 0:
		h.Why = fmt.Sprintf("not root (uid %d): qnuma makes a VM's cpuset cgroup only as root (%s found at %s; a user's own cgroups are not delegated the cpuset controller: systemd's user@.service delegates pids, memory and cpu)", euid, h.Kind, h.Mount)
		h.Kind = None
	}
	return h, nil
}

// systemdRuns: ROOT/run/systemd/system is a directory (sd_booted).
func systemdRuns(root string) (bool, error) {
	fi, err := os.Lstat(filepath.Join(root, "/run/systemd/system"))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return fi.IsDir(), nil
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// mount is one line of mountinfo.
type mount struct {
	root, point, fsType string
	super               []string
}

// parseMountinfo parses /proc/PID/mountinfo (proc(5)): "ID PARENT
// MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER".
func parseMountinfo(b []byte) ([]mount, error) {
	var ms []mount
	for i, line := range strings.Split(string(b), "\n") {
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		sep := -1
		for j := 6; j < len(f); j++ {
			if f[j] == "-" {
				sep = j
				break
			}
		}
		if len(f) < 6 || sep < 0 || len(f) < sep+3 {
			return nil, fmt.Errorf("line %d: %.80q is not a mountinfo line", i+1, line)
		}
		root, err := unescape(f[3])
		if err != nil {
			return nil, fmt.Errorf("line %d: mount root: %w", i+1, err)
		}
		point, err := unescape(f[4])
		if err != nil {
			return nil, fmt.Errorf("line %d: mount point: %w", i+1, err)
		}
		if !strings.HasPrefix(root, "/") || !strings.HasPrefix(point, "/") {
			return nil, fmt.Errorf("line %d: %.80q: mount root and point must be absolute", i+1, line)
		}
		m := mount{root: root, point: filepath.Clean(point), fsType: f[sep+1]}
		if len(f) > sep+3 {
			m.super = strings.Split(f[sep+3], ",")
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// visible drops mounts hidden by a later mount at the same point.
func visible(ms []mount) []mount {
	last := map[string]int{}
	for i, m := range ms {
		last[m.point] = i
	}
	var out []mount
	for i, m := range ms {
		if last[m.point] == i {
			out = append(out, m)
		}
	}
	return out
}

// unescape undoes mountinfo's octal escapes (\040 for a space, \011, \012,
// \134).
func unescape(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+4 > len(s) {
			return "", fmt.Errorf("%.80q: cut escape", s)
		}
		n, err := strconv.ParseUint(s[i+1:i+4], 8, 8)
		if err != nil {
			return "", fmt.Errorf("%.80q: bad escape", s)
		}
		b.WriteByte(byte(n))
		i += 3
	}
	return b.String(), nil
}

// cgroupPath returns the path of the line for the hierarchy in
// /proc/PID/cgroup: "0::PATH" on v2, "N:CONTROLLERS:PATH" with cpuset
// among the controllers on v1.
func cgroupPath(b []byte, v1 bool) (string, error) {
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" {
			continue
		}
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 || !strings.HasPrefix(f[2], "/") {
			return "", fmt.Errorf("%.80q is not a cgroup line", line)
		}
		if v1 && has(strings.Split(f[1], ","), "cpuset") || !v1 && f[0] == "0" && f[1] == "" {
			return f[2], nil
		}
	}
	if v1 {
		return "", errors.New("no line for the cpuset hierarchy")
	}
	return "", errors.New("no line for cgroup v2 (0::)")
}
