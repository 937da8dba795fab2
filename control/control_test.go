package control

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/qemutest"
	"github.com/qnuma/qnuma/qmp"
)

const nobody = 65534

// served is a real paused qemu whose monitor this test process serves on
// a control socket in a fresh ledger dir, as qnuma run does: the entry
// names this process as the VM's owner.
type served struct {
	vm    *qemutest.VM
	dir   string
	srv   *Server
	entry ledger.Entry
	mu    sync.Mutex
	refs  []error
}

func serveQEMU(t *testing.T, dir string) *served {
	t.Helper()
	vm := qemutest.MustStart(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mon, err := qmp.Dial(ctx, vm.Socket())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mon.Close() })
	if dir == "" {
		dir = privateDir(t)
	}
	s := &served{vm: vm, dir: dir}
	s.srv, err = Serve(dir, "vm", mon, func(err error) {
		s.mu.Lock()
		s.refs = append(s.refs, err)
		s.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.srv.Close() })
	self, err := ledger.ProcOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	s.entry = ledger.Entry{Name: "vm", Owner: self}
	return s
}

func (s *served) refused() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.refs...)
}

// privateDir is a short ledger-like dir of this user's, mode 0700 (unix
// socket paths are short; t.TempDir's are not).
func privateDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "qnuma-ctl-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func TestDialRealQEMU(t *testing.T) {
	s := serveQEMU(t, "")
	fi, err := os.Lstat(s.srv.Path())
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode().Type() != fs.ModeSocket {
		t.Fatalf("control socket: %v %v; want a socket, mode 0600", fi, err)
	}
	a, err := Dial(ctx(t), s.dir, s.entry)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if g := a.Greeting(); g.Version.Major < 2 {
		t.Errorf("greeting %+v: want qemu's version", g)
	}
	st, err := a.QueryStatus(ctx(t))
	if err != nil || st.Status != "prelaunch" {
		t.Fatalf("query-status over the control socket: %+v %v; want prelaunch", st, err)
	}
	cpus, err := a.QueryCPUsFast(ctx(t))
	if err != nil || len(cpus) != 1 {
		t.Fatalf("query-cpus-fast: %+v %v", cpus, err)
	}
	var qe *qmp.Error
	if err := a.Execute(ctx(t), "no-such-command", nil, nil); !errors.As(err, &qe) || qe.Class != "CommandNotFound" {
		t.Errorf("unknown command: %v; want qemu's CommandNotFound", err)
	}
	// A second session at once; its cont's RESUME reaches the first too.
	b, err := Dial(ctx(t), s.dir, s.entry)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Cont(ctx(t)); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, a, "RESUME")
	waitEvent(t, b, "RESUME")
	if st, err := a.QueryStatus(ctx(t)); err != nil || st.Status != "running" {
		t.Errorf("after cont: %+v %v", st, err)
	}

	// Gone: socket removed on Close, and Dial says so.
	if err := s.srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(s.srv.Path()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket after Close: %v; want it removed", err)
	}
	if _, err := Dial(ctx(t), s.dir, s.entry); !errors.Is(err, ErrNoServer) || !strings.Contains(err.Error(), "qnuma run that started the vm is gone") {
		t.Errorf("dial after Close: %v; want ErrNoServer", err)
	}
	if err := a.Execute(ctx(t), "query-status", nil, nil); !errors.Is(err, qmp.ErrClosed) {
		t.Errorf("session after Close: %v; want ErrClosed", err)
	}
}

func waitEvent(t *testing.T, c *qmp.Client, name string) {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				t.Fatalf("connection closed before %s", name)
			}
			if ev.Name == name {
				return
			}
		case <-timeout:
			t.Fatalf("no %s event", name)
		}
	}
}

func TestDialNobodyListening(t *testing.T) {
	dir := privateDir(t)
	e := ledger.Entry{Name: "vm", Owner: ledger.Proc{PID: os.Getpid()}}
	// A socket file left by a killed qnuma run: nobody listens.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: SocketPath(dir, "vm"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	os.Chmod(SocketPath(dir, "vm"), 0o600)
	_, err = Dial(ctx(t), dir, e)
	if !errors.Is(err, ErrNoServer) || !strings.Contains(err.Error(), "nobody listens") {
		t.Errorf("dial a dead socket: %v; want ErrNoServer, nobody listens", err)
	}
	// A new server replaces the stale socket.
	fake := &fakeMonitor{events: make(chan qmp.Event)}
	srv, err := Serve(dir, "vm", fake, nil)
	if err != nil {
		t.Fatalf("serve over a stale socket: %v", err)
	}
	srv.Close()
}

func TestDialRefusesAnotherServer(t *testing.T) {
	s := serveQEMU(t, "")
	qemu, err := ledger.ProcOf(s.vm.PID())
	if err != nil {
		t.Fatal(err)
	}
	reused := s.entry
	reused.Owner.StartTime++
	for _, tc := range []struct {
		name  string
		owner ledger.Proc
		want  string
	}{
		{"another pid", qemu, fmt.Sprintf("served by pid %d, not by the vm's qnuma run (pid %d)", os.Getpid(), qemu.PID)},
		{"reused pid", reused.Owner, "the pid was reused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := s.entry
			e.Owner = tc.owner
			_, err := Dial(ctx(t), s.dir, e)
			if !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Dial: %v; want ErrUntrusted, %q", err, tc.want)
			}
		})
	}
	// Control: the right owner is let in.
	c, err := Dial(ctx(t), s.dir, s.entry)
	if err != nil {
		t.Fatalf("control: %v", err)
	}
	c.Close()
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root, to act as another user (runuser -u nobody)")
	}
	if _, err := exec.LookPath("runuser"); err != nil {
		t.Skip("needs runuser, to act as another user")
	}
}

// openDir is a root-owned dir others may enter, as /run/qnuma is.
func openDir(t *testing.T) string {
	t.Helper()
	d := privateDir(t)
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDialRefusesPlantedSocket(t *testing.T) {
	requireRoot(t)
	s := serveQEMU(t, openDir(t))
	path := s.srv.Path()
	// Control first: as it is, root uses it.
	c, err := Dial(ctx(t), s.dir, s.entry)
	if err != nil {
		t.Fatalf("control: %v", err)
	}
	c.Close()
	if err := os.Chown(path, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	_, err = Dial(ctx(t), s.dir, s.entry)
	if !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "owned by uid 65534, not by uid 0") {
		t.Errorf("dial a socket of nobody's: %v; want ErrUntrusted naming its owner", err)
	}
	os.Chown(path, 0, 0)
	os.Chmod(path, 0o666)
	if _, err = Dial(ctx(t), s.dir, s.entry); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "mode is 0666") {
		t.Errorf("dial a socket others may use: %v; want ErrUntrusted", err)
	}
	// A socket nobody made and serves in a dir nobody could write to.
	d := openDir(t)
	os.Chmod(d, 0o777)
	bin := testBinary(t)
	planted := SocketPath(d, "vm")
	cmd := exec.Command("runuser", "-u", "nobody", "--", "env", "QNUMA_CTL_LISTEN="+planted, bin, "-test.run", "^TestHelperListen$")
	out, _ := cmd.StdoutPipe()
	stop, _ := cmd.StdinPipe() // the helper exits when it closes
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop.Close(); cmd.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	if !strings.HasPrefix(line, "listening") {
		t.Fatalf("nobody's listener: %q", line)
	}
	os.Chmod(d, 0o755) // root's dir again, with nobody's socket in it
	e := s.entry
	e.Owner = ledger.Proc{PID: cmd.Process.Pid} // not even its pid: runuser's
	if _, err := Dial(ctx(t), d, e); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Errorf("dial nobody's planted socket: %v; want ErrUntrusted", err)
	}
}

func TestOtherUserRefused(t *testing.T) {
	requireRoot(t)
	s := serveQEMU(t, openDir(t))
	bin := testBinary(t)
	asNobody := func() string {
		out, _ := exec.Command("runuser", "-u", "nobody", "--", "env", "QNUMA_CTL_CONNECT="+s.srv.Path(), bin, "-test.run", "^TestHelperConnect$").CombinedOutput()
		return string(out)
	}
	asRoot := func() string {
		out, _ := exec.Command("env", "QNUMA_CTL_CONNECT="+s.srv.Path(), bin, "-test.run", "^TestHelperConnect$").CombinedOutput()
		return string(out)
	}
	if out := asNobody(); !strings.Contains(out, "permission denied") {
		t.Errorf("nobody connecting to root's 0600 socket: %s; want permission denied", out)
	}
	// Past the mode: the server itself refuses nobody.
	os.Chmod(s.srv.Path(), 0o666)
	if out := asNobody(); !strings.Contains(out, "closed before greeting") {
		t.Errorf("nobody on a 0666 socket: %s; want the server to close at once", out)
	}
	refs := s.refused()
	if len(refs) != 1 || !strings.Contains(refs[0].Error(), "uid 65534") {
		t.Errorf("refusals: %v; want one naming uid 65534", refs)
	}
	// Control: root on the same socket is greeted.
	if out := asRoot(); !strings.Contains(out, "greeted") {
		t.Errorf("control: root on the socket: %s; want greeted", out)
	}
	// And nobody's Dial refuses before connecting.
	out, _ := exec.Command("runuser", "-u", "nobody", "--", "env", "QNUMA_CTL_DIAL="+s.dir, fmt.Sprintf("QNUMA_CTL_OWNER=%d:%d", s.entry.Owner.PID, s.entry.Owner.StartTime), bin, "-test.run", "^TestHelperDial$").CombinedOutput()
	if !strings.Contains(string(out), "only that user or root may control it") {
		t.Errorf("nobody's Dial of root's vm: %s", out)
	}
}

// testBinary is a copy of this test binary that other users may run.
func testBinary(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	d := openDir(t)
	dst := filepath.Join(d, "control.test")
	in, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	out.Close()
	return dst
}

// TestHelperConnect is run as another user: it connects to a socket and
// says whether it was greeted.
func TestHelperConnect(t *testing.T) {
	path := os.Getenv("QNUMA_CTL_CONNECT")
	if path == "" {
		t.Skip("helper for TestOtherUserRefused")
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		fmt.Println("connect:", err)
		return
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		fmt.Println("closed before greeting:", err)
		return
	}
	if strings.Contains(line, `"QMP"`) {
		fmt.Println("greeted")
	}
}

// TestHelperDial is run as another user: Dial root's vm.
func TestHelperDial(t *testing.T) {
	dir := os.Getenv("QNUMA_CTL_DIAL")
	if dir == "" {
		t.Skip("helper for TestOtherUserRefused")
	}
	var e ledger.Entry
	e.Name = "vm"
	fmt.Sscanf(os.Getenv("QNUMA_CTL_OWNER"), "%d:%d", &e.Owner.PID, &e.Owner.StartTime)
	_, err := Dial(context.Background(), dir, e)
	fmt.Println("dial:", err)
}

// TestHelperListen is run as another user: it plants a socket and waits.
func TestHelperListen(t *testing.T) {
	path := os.Getenv("QNUMA_CTL_LISTEN")
	if path == "" {
		t.Skip("helper for TestDialRefusesPlantedSocket")
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		fmt.Println("listen:", err)
		return
	}
	os.Chmod(path, 0o600)
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	fmt.Println("listening")
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Write([]byte(`{"QMP":{"version":{"qemu":{"major":9,"minor":0,"micro":0},"package":""},"capabilities":[]}}` + "\n"))
	}
}

// fakeMonitor is a monitor that answers nothing, for tests of the socket
// alone.
type fakeMonitor struct{ events chan qmp.Event }

func (f *fakeMonitor) Execute(ctx context.Context, command string, args any, result any) error {
	return errors.New("fake")
}
func (f *fakeMonitor) Greeting() qmp.Greeting   { return qmp.Greeting{} }
func (f *fakeMonitor) Events() <-chan qmp.Event { return f.events }
func (f *fakeMonitor) Done() <-chan struct{}    { return nil }

// The socket speaks QMP as a monitor does: greeting, capabilities first,
// no out-of-band, errors with QEMU's classes, the client's own ids.
func TestSessionProtocol(t *testing.T) {
	dir := privateDir(t)
	fake := &fakeMonitor{events: make(chan qmp.Event, 1)}
	srv, err := Serve(dir, "vm", fake, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := net.Dial("unix", srv.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	r := bufio.NewReader(c)
	line := func() string {
		t.Helper()
		s, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(s)
	}
	if g := line(); !strings.Contains(g, `"QMP"`) || !strings.Contains(g, `"capabilities":[]`) {
		t.Fatalf("greeting %s", g)
	}
	for _, tt := range []struct{ send, want string }{
		{`{"execute":"query-status","id":"a"}`, `{"error":{"class":"CommandNotFound","desc":"Expecting capabilities negotiation with 'qmp_capabilities'"},"id":"a"}`},
		{`{"execute":"qmp_capabilities","id":7}`, `{"return":{},"id":7}`},
		{`{"execute":"qmp_capabilities","id":8}`, `{"error":{"class":"CommandNotFound","desc":"Capabilities negotiation is already complete, command ignored"},"id":8}`},
		{`{"exec-oob":"query-status","id":9}`, `{"error":{"class":"GenericError","desc":"out-of-band execution is not offered on qnuma's control socket"},"id":9}`},
		{`{"execute":"query-status","arguments":{"x":1},"id":{"n":[1]}}`, `{"error":{"class":"GenericError","desc":"qnuma: fake"},"id":{"n":[1]}}`},
	} {
		if _, err := c.Write([]byte(tt.send + "\n")); err != nil {
			t.Fatal(err)
		}
		if got := line(); got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.send, got, tt.want)
		}
	}
	fake.events <- qmp.Event{Name: "RESUME"}
	if got := line(); !strings.HasPrefix(got, `{"event":"RESUME"`) {
		t.Errorf("event: %s", got)
	}
}
