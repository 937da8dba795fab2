// Package libvirtdtest starts a private libvirtd for tests: its own
// configuration, sockets, domain definitions, state, cache and logs, all
// under a temporary folder, in a mount namespace of its own, so that the
// host's /etc/libvirt, /run and /var are as they were when it stops.
// Debian 12's libvirt 9.0 is the monolithic libvirtd; without systemd it
// needs a log_outputs line, the user libvirt-qemu (given here through a
// private /etc/passwd when the host has none), user and group root for
// QEMU (/dev/kvm is root's only) and stdio_handler "file" (no virtlogd).
package libvirtdtest

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds the wait for the daemon's socket.
const startTimeout = 60 * time.Second

// Daemon is a private libvirtd, stopped when its test ends.
type Daemon struct {
	// Dir holds everything of the daemon's.
	Dir string
	// Socket is its read-write unix socket; URI reaches it
	// (qemu:///system?socket=...).
	Socket, URI string
	// TCPURI reaches it over TCP on loopback (qemu+tcp://127.0.0.1:PORT/system,
	// no authentication), as a remote daemon is reached; "" unless
	// started with Options.TCP.
	TCPURI string
	cmd    *exec.Cmd
	exited chan struct{}
}

// Require skips the test when a private libvirtd cannot run here (not
// root, libvirtd, unshare or QEMU not installed), or fails it under
// CI=true, where the real-libvirt tests must run (scripts/deps.sh
// installs libvirt-daemon, libvirt-daemon-driver-qemu and libvirt-clients).
func Require(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("SKIP: starts libvirtd and QEMU (not with -short)")
	}
	miss := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s, and CI must run the real-libvirt tests (run scripts/deps.sh as root)", msg)
		}
		t.Skipf("SKIP: %s", msg)
	}
	if os.Geteuid() != 0 {
		miss("a private libvirtd runs as root, in a mount namespace of its own")
	}
	for _, bin := range []string{"libvirtd", "unshare", "mount", "qemu-system-x86_64"} {
		if _, err := exec.LookPath(bin); err != nil {
			miss("%s is not installed: %v", bin, err)
		}
	}
	for _, p := range []string{"/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so", "/usr/lib64/libvirt/connection-driver/libvirt_driver_qemu.so"} {
		if _, err := os.Stat(p); err == nil {
			return
		}
	}
	miss("libvirt's QEMU driver (libvirt-daemon-driver-qemu) is not installed")
}

// Options are what a daemon listens on besides its unix socket.
type Options struct {
	// TCP: also on a free port of 127.0.0.1, without authentication.
	TCP bool
	// Numad is a program (a file, copied) the daemon finds as
	// /usr/bin/numad in its mount namespace: what libvirt asks for
	// placement='auto'.
	Numad string
}

// Start is StartWith without options.
func Start(t testing.TB) *Daemon {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith starts a private libvirtd and returns once its socket answers. The
// test's cleanup destroys every domain it still runs (their qemu
// processes), stops it, and removes the cgroups libvirt made for it that
// were not there before.
func StartWith(t testing.TB, o Options) *Daemon {
	t.Helper()
	Require(t)
	// Not under t.TempDir(): its path is long, and unix socket paths are
	// limited to 108 bytes.
	dir, err := os.MkdirTemp("", "qnuma-libvirtd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	d := &Daemon{Dir: dir, Socket: filepath.Join(dir, "sock", "libvirt-sock"), exited: make(chan struct{})}
	d.URI = "qemu:///system?socket=" + d.Socket
	for _, sub := range []string{"sock", "etc", "run", "var-up", "var-work", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"libvirtd.conf": fmt.Sprintf("unix_sock_dir = %q\nunix_sock_rw_perms = \"0700\"\nauth_unix_rw = \"none\"\nauth_unix_ro = \"none\"\nlog_outputs = \"3:file:%s\"\n",
			filepath.Join(dir, "sock"), filepath.Join(dir, "log", "libvirtd.log")),
		"etc/qemu.conf": "user = \"root\"\ngroup = \"root\"\nstdio_handler = \"file\"\n",
	}
	mounts := []string{
		"mount --bind " + filepath.Join(dir, "run") + " /run",
		"mkdir -p /run/lock",
		fmt.Sprintf("mount -t overlay qnuma-libvirtd -o lowerdir=/var,upperdir=%s,workdir=%s /var", filepath.Join(dir, "var-up"), filepath.Join(dir, "var-work")),
		"mount --bind " + filepath.Join(dir, "etc") + " /etc/libvirt",
	}
	if o.Numad != "" {
		// /usr/bin under an overlay whose upper layer holds numad: the
		// host's own numad, if any, is hidden and not changed.
		up, work := filepath.Join(dir, "usrbin-up"), filepath.Join(dir, "usrbin-work")
		for _, d := range []string{up, work} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		b, err := os.ReadFile(o.Numad)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(up, "numad"), b, 0o755); err != nil {
			t.Fatal(err)
		}
		mounts = append(mounts, fmt.Sprintf("mount -t overlay qnuma-numad -o lowerdir=/usr/bin,upperdir=%s,workdir=%s /usr/bin", up, work))
	}
	if _, err := user.Lookup("libvirt-qemu"); err != nil {
		// Debian's libvirt-daemon-system makes it (uid and gid 64055);
		// libvirtd looks it up even when QEMU runs as root.
		for _, f := range []struct{ name, line string }{
			{"passwd", "libvirt-qemu:x:64055:64055:Libvirt Qemu,,,:/var/lib/libvirt:/usr/sbin/nologin\n"},
			{"group", "libvirt-qemu:x:64055:\n"},
		} {
			b, err := os.ReadFile("/etc/" + f.name)
			if err != nil {
				t.Fatal(err)
			}
			files[f.name] = string(b) + f.line
			mounts = append(mounts, fmt.Sprintf("mount --bind %s /etc/%s", filepath.Join(dir, f.name), f.name))
		}
	}
	listen := ""
	if o.TCP {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		files["libvirtd.conf"] += fmt.Sprintf("listen_tls = 0\nlisten_tcp = 1\nlisten_addr = \"127.0.0.1\"\ntcp_port = \"%d\"\nauth_tcp = \"none\"\n", port)
		d.TCPURI = fmt.Sprintf("qemu+tcp://127.0.0.1:%d/system", port)
		listen = " --listen"
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	script := "set -e\n" + strings.Join(mounts, "\n") + "\nexec libvirtd" + listen + " -f " + filepath.Join(dir, "libvirtd.conf") + "\n"
	before := cgroupsPresent()
	d.cmd = exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	out, err := os.Create(filepath.Join(dir, "log", "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	d.cmd.Stdout, d.cmd.Stderr = out, out
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start libvirtd: %v", err)
	}
	go func() { d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() { d.stop(t, before) })
	if err := d.wait(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log", "stdout"))
		t.Fatalf("libvirtd: %v\n%s", err, log)
	}
	return d
}

// wait returns once the socket accepts a connection, the daemon exited, or
// startTimeout passed.
func (d *Daemon) wait() error {
	deadline := time.After(startTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-d.exited:
			return fmt.Errorf("exited before its socket %s answered: %v", d.Socket, d.cmd.ProcessState)
		case <-deadline:
			return fmt.Errorf("socket %s did not answer within %s", d.Socket, startTimeout)
		case <-tick.C:
			c, err := net.Dial("unix", d.Socket)
			if err != nil {
				continue
			}
			c.Close()
			if d.TCPURI != "" {
				u, _ := url.Parse(d.TCPURI)
				c, err := net.Dial("tcp", u.Host)
				if err != nil {
					continue
				}
				c.Close()
			}
			return nil
		}
	}
}

// Virsh runs virsh on the daemon (libvirt-clients); the test fails
// without it.
func (d *Daemon) Virsh(t testing.TB, args ...string) ([]byte, error) {
	t.Helper()
	if _, err := exec.LookPath("virsh"); err != nil {
		t.Fatalf("virsh is not installed (libvirt-clients; scripts/deps.sh): %v", err)
	}
	return exec.Command("virsh", append([]string{"-q", "-c", d.URI}, args...)...).CombinedOutput()
}

// PID is the qemu process of a running domain, from the daemon's pid file.
func (d *Daemon) PID(name string) (int, error) {
	b, err := os.ReadFile(filepath.Join(d.Dir, "run", "libvirt", "qemu", name+".pid"))
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("pid file of %s: %q", name, b)
	}
	return pid, nil
}

// Log is the daemon's log, for a failing test's message.
func (d *Daemon) Log() string {
	b, _ := os.ReadFile(filepath.Join(d.Dir, "log", "libvirtd.log"))
	return string(b)
}

// stop destroys the domains still running, stops libvirtd and removes the
// cgroups it made that were not there before.
func (d *Daemon) stop(t testing.TB, before map[string]bool) {
	pids, _ := filepath.Glob(filepath.Join(d.Dir, "run", "libvirt", "qemu", "*.pid"))
	for _, p := range pids {
		name := strings.TrimSuffix(filepath.Base(p), ".pid")
		if _, err := exec.LookPath("virsh"); err == nil {
			exec.Command("virsh", "-q", "-c", d.URI, "destroy", name).Run()
		}
		// Whatever virsh could not stop: the qemu by its pid.
		if pid, err := d.PID(name); err == nil {
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.HasPrefix(string(comm), "qemu") {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if d.cmd.Process != nil {
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(20 * time.Second):
			d.cmd.Process.Kill()
			<-d.exited
		}
	}
	for _, dir := range machineCgroups() {
		if !before[dir] {
			// Busy while another test's daemon has a domain in it: that
			// daemon's cleanup removes it.
			if err := os.Remove(dir); err != nil && !errors.Is(err, syscall.EBUSY) && !errors.Is(err, os.ErrNotExist) {
				t.Logf("remove libvirt's cgroup %s: %v", dir, err)
			}
		}
	}
}

// machineCgroups is libvirt's /machine partition in each cgroup v1
// hierarchy, and in cgroup v2.
func machineCgroups() []string {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/machine")
	if _, err := os.Stat("/sys/fs/cgroup/machine"); err == nil {
		dirs = append(dirs, "/sys/fs/cgroup/machine")
	}
	return dirs
}

func cgroupsPresent() map[string]bool {
	m := map[string]bool{}
	for _, d := range machineCgroups() {
		m[d] = true
	}
	return m
}

// freePort is a TCP port of 127.0.0.1 that nothing listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
