// Package control is qnuma's own way into a running VM's QMP monitor.
//
// qemu has exactly one monitor, the socketpair `qnuma run` holds, and QEMU
// 7.2 can neither add a monitor at run time nor hand a connected one a
// second client (add_client takes only a socket chardev that is not
// connected). So while `qnuma run` supervises a VM it serves that monitor
// on a unix socket in the ledger directory, <dir>/<name>.ctl, mode 0600:
// each connection is a QMP session of its own, its commands passed to qemu
// over qnuma's monitor and every qemu event passed to every session. Other
// qnuma commands (vcpus, memory, move) Dial it and get a *qmp.Client.
//
// Both ends check who is on the other side: the server serves only its
// own user and root (SO_PEERCRED); Dial uses only a socket owned by the
// ledger directory's owner and served by the very qnuma process the ledger
// names as the VM's owner (pid and start time), so root never talks to a
// socket another user planted.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/qnuma/qnuma/qmp"
)

// suffix names a VM's control socket in the ledger directory; the ledger
// reads only *.json there.
const suffix = ".ctl"

// tmpSuffix names the socket while Serve makes it, as long as suffix so
// that a path that fits one fits the other.
const tmpSuffix = ".ctn"

// maxSocketPath is the most a unix socket's path may hold (sun_path less
// its NUL).
const maxSocketPath = 107

// sessionEvents is how many events wait for a slow session before the
// newest are dropped for it (qemu and the other sessions are never held up).
const sessionEvents = 256

// SocketPath is where the control socket of VM name lives in ledger dir.
func SocketPath(dir, name string) string { return filepath.Join(dir, name+suffix) }

// Monitor is what the server needs of qnuma's own QMP connection.
type Monitor interface {
	Execute(ctx context.Context, command string, args any, result any) error
	Greeting() qmp.Greeting
	Events() <-chan qmp.Event
}

// Server serves one VM's monitor on its control socket.
type Server struct {
	path string
	ln   *net.UnixListener
	st   fs.FileInfo // the socket as made, so Close removes only ours
	mon  Monitor
	euid int
	// Refused is called with why a connection was turned away (another
	// user's); nil ignores it.
	refused func(error)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	sessions map[*session]struct{}
}

// Serve listens on VM name's control socket in dir (the ledger directory,
// already checked to be its owner's alone) and serves mon there until
// Close. A socket left at that path by a qnuma that was killed is
// replaced: the ledger has just given name to this VM alone. refused, when
// not nil, hears of each connection turned away.
func Serve(dir, name string, mon Monitor, refused func(error)) (*Server, error) {
	path := SocketPath(dir, name)
	op := "serve control socket " + path
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("%s: path is %d bytes, more than a unix socket takes (%d): give a shorter --state-dir or --name", op, len(path), maxSocketPath)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("%s: %s is there and is no socket: remove it", op, path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("%s: remove stale socket: %w", op, err)
		}
	}
	// The socket is made under a name of its own, made private, and only
	// then renamed into place: at its path it is never seen with the mode
	// bind gave it (the umask's), which Dial would refuse as planted and
	// others could connect to. A socket left at that name by a qnuma
	// killed meanwhile is replaced as the one at path is.
	tmp := path[:len(path)-len(suffix)] + tmpSuffix
	if fi, err := os.Lstat(tmp); err == nil && fi.Mode().Type() == fs.ModeSocket {
		os.Remove(tmp)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	ln.SetUnlinkOnClose(false) // Close removes it only while it is still ours
	// Connections made before the chmod are checked like every other.
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	st, err := os.Lstat(path)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		path: path, ln: ln, st: st, mon: mon, euid: os.Geteuid(), refused: refused,
		ctx: ctx, cancel: cancel, sessions: map[*session]struct{}{},
	}
	s.wg.Add(2)
	go s.accept()
	go s.fanOut()
	return s, nil
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// Close stops listening, removes the socket (when it is still the one
// Serve made), ends every session and waits for them.
func (s *Server) Close() error {
	s.cancel()
	err := s.ln.Close()
	if cur, lerr := os.Lstat(s.path); lerr == nil && os.SameFile(cur, s.st) {
		if rerr := os.Remove(s.path); rerr != nil && err == nil {
			err = rerr
		}
	}
	s.mu.Lock()
	for ss := range s.sessions {
		ss.conn.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("close control socket %s: %w", s.path, err)
	}
	return nil
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.AcceptUnix()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			continue // EMFILE and the like: the next one may do
		}
		if err := s.admit(conn); err != nil {
			conn.Close()
			if s.refused != nil {
				s.refused(err)
			}
			continue
		}
		ss := &session{conn: conn, events: make(chan qmp.Event, sessionEvents)}
		s.mu.Lock()
		if s.ctx.Err() != nil {
			s.mu.Unlock()
			conn.Close()
			return
		}
		s.sessions[ss] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serve(ss)
			s.mu.Lock()
			delete(s.sessions, ss)
			s.mu.Unlock()
		}()
	}
}

// admit lets in this user and root only: the socket's mode says so too,
// but a mode can be changed, the peer's credentials cannot.
func (s *Server) admit(conn *net.UnixConn) error {
	cred, err := PeerCred(conn)
	if err != nil {
		return fmt.Errorf("control socket %s: %w", s.path, err)
	}
	if int(cred.Uid) != s.euid && cred.Uid != 0 {
		return fmt.Errorf("control socket %s: refused pid %d of uid %d: only uid %d and root may control this vm", s.path, cred.Pid, cred.Uid, s.euid)
	}
	return nil
}

// fanOut passes each of qemu's events to every session.
func (s *Server) fanOut() {
	defer s.wg.Done()
	for {
		select {
		case ev, ok := <-s.mon.Events():
			if !ok {
				return
			}
			s.mu.Lock()
			for ss := range s.sessions {
				select {
				case ss.events <- ev:
				default:
					ss.dropped++
				}
			}
			s.mu.Unlock()
		case <-s.ctx.Done():
			return
		}
	}
}

// session is one client's QMP session.
type session struct {
	conn    *net.UnixConn
	events  chan qmp.Event
	dropped int // guarded by Server.mu
	wmu     sync.Mutex
	// negotiated: qmp_capabilities done; QMP sends no events before.
	negotiated atomic.Bool
}

func (ss *session) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	_, err = ss.conn.Write(append(b, '\n'))
	return err
}

type request struct {
	Execute   string          `json:"execute"`
	ExecOOB   string          `json:"exec-oob"`
	Arguments json.RawMessage `json:"arguments"`
	ID        json.RawMessage `json:"id"`
}

type replyJSON struct {
	Return json.RawMessage `json:"return,omitempty"`
	Error  *qmp.Error      `json:"error,omitempty"`
	ID     json.RawMessage `json:"id,omitempty"`
}

type eventJSON struct {
	Event     string          `json:"event"`
	Data      json.RawMessage `json:"data,omitempty"`
	Timestamp struct {
		Seconds      int64 `json:"seconds"`
		Microseconds int64 `json:"microseconds"`
	} `json:"timestamp"`
}

type greetingJSON struct {
	QMP struct {
		Version struct {
			QEMU struct {
				Major int `json:"major"`
				Minor int `json:"minor"`
				Micro int `json:"micro"`
			} `json:"qemu"`
			Package string `json:"package"`
		} `json:"version"`
		Capabilities []string `json:"capabilities"`
	} `json:"QMP"`
}

// serve greets, then runs the session's commands one at a time, as a QMP
// monitor does, while its events go out beside the replies.
func (s *Server) serve(ss *session) {
	defer ss.conn.Close()
	var g greetingJSON
	v := s.mon.Greeting().Version
	g.QMP.Version.QEMU.Major, g.QMP.Version.QEMU.Minor, g.QMP.Version.QEMU.Micro = v.Major, v.Minor, v.Micro
	g.QMP.Version.Package = v.Package
	g.QMP.Capabilities = []string{} // no out-of-band: commands run in order
	if ss.send(g) != nil {
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	go func() {
		for {
			select {
			case ev := <-ss.events:
				if !ss.negotiated.Load() {
					continue
				}
				var e eventJSON
				e.Event, e.Data = ev.Name, ev.Data
				if !ev.Timestamp.IsZero() {
					e.Timestamp.Seconds = ev.Timestamp.Unix()
					e.Timestamp.Microseconds = int64(ev.Timestamp.Nanosecond() / 1000)
				}
				if ss.send(e) != nil {
					ss.conn.Close()
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	dec := json.NewDecoder(&limitReader{r: ss.conn})
	for {
		var req request
		if err := dec.Decode(&req); err != nil {
			return // EOF, a broken peer, or Close
		}
		rep := replyJSON{ID: req.ID}
		negotiate := false // events start after this reply
		switch {
		case req.ExecOOB != "":
			rep.Error = &qmp.Error{Class: "GenericError", Desc: "out-of-band execution is not offered on qnuma's control socket"}
		case req.Execute == "qmp_capabilities":
			if ss.negotiated.Load() {
				rep.Error = &qmp.Error{Class: "CommandNotFound", Desc: "Capabilities negotiation is already complete, command ignored"}
			} else {
				rep.Return, negotiate = json.RawMessage("{}"), true
			}
		case !ss.negotiated.Load():
			rep.Error = &qmp.Error{Class: "CommandNotFound", Desc: "Expecting capabilities negotiation with 'qmp_capabilities'"}
		case req.Execute == "":
			rep.Error = &qmp.Error{Class: "GenericError", Desc: "Expected 'execute'"}
		default:
			var args any
			if len(req.Arguments) > 0 {
				args = req.Arguments
			}
			var ret json.RawMessage
			err := s.mon.Execute(ctx, req.Execute, args, &ret)
			var qe *qmp.Error
			switch {
			case errors.As(err, &qe):
				rep.Error = qe
			case err != nil:
				rep.Error = &qmp.Error{Class: "GenericError", Desc: "qnuma: " + err.Error()}
			default:
				if ret == nil {
					ret = json.RawMessage("{}")
				}
				rep.Return = ret
			}
		}
		if ss.send(rep) != nil {
			return
		}
		if negotiate {
			ss.negotiated.Store(true)
		}
	}
}

// limitReader bounds one session's input to what a QMP client may send a
// monitor in all; commands are small, a runaway peer is cut off.
type limitReader struct {
	r    io.Reader
	read int64
}

const maxSessionInput = 64 << 20

func (l *limitReader) Read(p []byte) (int, error) {
	if l.read >= maxSessionInput {
		return 0, fmt.Errorf("control session sent more than %d bytes", maxSessionInput)
	}
	n, err := l.r.Read(p)
	l.read += int64(n)
	return n, err
}

// PeerCred is the kernel's word on who holds the other end of conn: the
// process that connected (or, for a socketpair, made the pair), and its
// user.
func PeerCred(conn *net.UnixConn) (*unix.Ucred, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, fmt.Errorf("peer credentials: %w", err)
	}
	if serr != nil {
		return nil, fmt.Errorf("peer credentials: %w", os.NewSyscallError("getsockopt SO_PEERCRED", serr))
	}
	return cred, nil
}

// errno is err's errno, 0 when it has none.
func errno(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return 0
}
