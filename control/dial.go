package control

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"syscall"

	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/qmp"
)

// ErrNoServer is wrapped when nobody serves a VM's control socket: its
// qnuma run has exited (or was killed), or started the VM before qnuma had
// control sockets.
var ErrNoServer = errors.New("no control server")

// ErrUntrusted is wrapped when a control socket is not certainly the one
// the VM's own qnuma run serves: owned by another user, or served by
// another process. Nothing is sent to it.
var ErrUntrusted = errors.New("untrusted control socket")

// Dial connects to the control socket of the VM e in ledger dir and
// returns a QMP session with its qemu. It first checks that the socket is
// owned by the ledger directory's owner with no access for others, then
// that the process serving it is e.Owner (pid and start time) running as
// that user or root.
func Dial(ctx context.Context, dir string, e ledger.Entry) (*qmp.Client, error) {
	path := SocketPath(dir, e.Name)
	op := fmt.Sprintf("control vm %s (%s)", e.Name, path)
	dst, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: ledger dir: %w", op, err)
	}
	dirUID := dst.Sys().(*syscall.Stat_t).Uid
	euid := uint32(os.Geteuid())
	if euid != 0 && dirUID != euid {
		return nil, fmt.Errorf("%s: %w: the vm is uid %d's (the ledger dir's owner), and only that user or root may control it", op, fs.ErrPermission, dirUID)
	}
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w: the socket does not exist: the qnuma run that started the vm is gone, or predates control sockets", op, ErrNoServer)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return nil, fmt.Errorf("%s: %w: it is no socket (mode %v)", op, ErrUntrusted, fi.Mode())
	}
	if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != dirUID {
		return nil, fmt.Errorf("%s: %w: it is owned by uid %d, not by uid %d who owns the ledger: another user may have planted it; remove it if the vm's qnuma run is gone", op, ErrUntrusted, uid, dirUID)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s: %w: its mode is %04o, qnuma makes it 0600", op, ErrUntrusted, perm)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errno(err) == syscall.ECONNREFUSED {
			return nil, fmt.Errorf("%s: %w: nobody listens on it: the qnuma run that started the vm is gone", op, ErrNoServer)
		}
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	conn := c.(*net.UnixConn)
	if err := checkServer(conn, e.Owner, dirUID); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	mon, err := qmp.NewClient(ctx, conn, fmt.Sprintf("vm %s via qnuma pid %d", e.Name, e.Owner.PID))
	if err != nil {
		return nil, fmt.Errorf("%s: %w (a server that closes at once has refused this user)", op, err)
	}
	return mon, nil
}

// checkServer checks that conn's peer is the process owner (same start
// time: not a reused pid) running as uid or root.
func checkServer(conn *net.UnixConn, owner ledger.Proc, uid uint32) error {
	cred, err := PeerCred(conn)
	if err != nil {
		return err
	}
	if int(cred.Pid) != owner.PID {
		return fmt.Errorf("%w: it is served by pid %d, not by the vm's qnuma run (pid %d)", ErrUntrusted, cred.Pid, owner.PID)
	}
	p, err := ledger.ProcOf(int(cred.Pid))
	if err != nil {
		return fmt.Errorf("%w: its server pid %d: %w", ErrUntrusted, cred.Pid, err)
	}
	if p.StartTime != owner.StartTime {
		return fmt.Errorf("%w: its server pid %d started at %d, the vm's qnuma run at %d: the pid was reused", ErrUntrusted, cred.Pid, p.StartTime, owner.StartTime)
	}
	if cred.Uid != uid && cred.Uid != 0 {
		return fmt.Errorf("%w: its server runs as uid %d, not uid %d or root", ErrUntrusted, cred.Uid, uid)
	}
	return nil
}
