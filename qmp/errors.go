package qmp

import (
	"errors"
	"fmt"
)

// ErrClosed is wrapped by every error caused by the connection going away:
// closed by QEMU, by a read or protocol error, or by Close, before the reply
// to a command arrived.
var ErrClosed = errors.New("connection closed")

// Error is QEMU's "error" reply to a command, with its class kept so that
// callers can branch on it (errors.As). Execute wraps it with the command's
// name.
type Error struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s", e.Class, e.Desc)
}
