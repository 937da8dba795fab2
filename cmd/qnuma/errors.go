package main

import (
	"errors"
	"fmt"

	"github.com/qnuma/qnuma/ledger"
	"github.com/qnuma/qnuma/plan"
	"github.com/qnuma/qnuma/prepare"
)

// ExitError ends qnuma with Code after printing Err (when not nil).
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// usageError is bad input: qnuma started nothing and exits 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// badInput wraps an error (or formats one) as bad input, exit code 2.
func badInput(format string, a ...any) error {
	return usageError{fmt.Errorf(format, a...)}
}

// IsUsage reports whether err means bad input: a usage error, or a VM that
// does not fit the host.
func IsUsage(err error) bool {
	var u usageError
	return errors.As(err, &u) || errors.Is(err, plan.ErrDoesNotFit) || errors.Is(err, plan.ErrBadSpec) ||
		errors.Is(err, ledger.ErrUnsafeDir) || errors.Is(err, prepare.ErrBadInput)
}
