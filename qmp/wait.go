package qmp

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"
)

// ErrExited is wrapped by DialWhenReady's error when the process that was
// to serve the socket exited first.
var ErrExited = errors.New("process exited before its qmp socket was ready")

// retryEvery is how often DialWhenReady tries a socket that is not there
// yet. QEMU makes its -qmp socket late in its start, a millisecond or so
// before it greets (18 ms into a 19 ms start here): a coarser retry would
// add up to its whole interval to any start-up timed through it (10 ms
// added 2.4 ms to bare qemu's and more to a later-started one's). A failed
// connect to a missing path costs microseconds.
const retryEvery = time.Millisecond

// DialWhenReady dials socketPath until QEMU has created and is listening on
// it. It gives up when ctx ends or when exited (closed when the QEMU process
// exits; nil to not watch one) is closed. Errors other than a missing or
// not-yet-listening socket are returned at once.
func DialWhenReady(ctx context.Context, socketPath string, exited <-chan struct{}) (*Client, error) {
	tick := time.NewTicker(retryEvery)
	defer tick.Stop()
	var notReady error // why the last try failed, for the timeout message
	for {
		c, err := Dial(ctx, socketPath)
		if err == nil {
			return c, nil
		}
		switch {
		case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED):
			notReady = err
		case errors.Is(err, context.DeadlineExceeded) && notReady != nil:
			return nil, fmt.Errorf("qmp wait for socket %s: %w (last try: %v)", socketPath, context.DeadlineExceeded, notReady)
		default:
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("qmp wait for socket %s: %w (last try: %v)", socketPath, ctx.Err(), notReady)
		case <-exited:
			return nil, fmt.Errorf("qmp wait for socket %s: %w", socketPath, ErrExited)
		case <-tick.C:
		}
	}
}
