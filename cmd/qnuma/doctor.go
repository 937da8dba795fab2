package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/qnuma/qnuma/doctor"
	"github.com/qnuma/qnuma/ledger"
)

// DoctorCmd is `qnuma doctor`: what on this host works against placement.
// Exit 0 when every check is ok, 1 with warnings, 2 with errors.
type DoctorCmd struct {
	JSON     bool   `help:"Print JSON."`
	Root     string `default:"/" placeholder:"DIR" help:"Check a copy of /sys, /proc and /dev under DIR instead of this host (qemu is then not run, /dev/kvm not opened)."`
	StateDir string `name:"state-dir" placeholder:"DIR" help:"Ledger directory, for the hugepages VMs ask (read when --root is /, or when given)."`
}

func (c *DoctorCmd) Run() error { return c.write(os.Stdout, doctor.Env{}) }

// write runs the checks; env's hooks (tests) are kept, its root and VMs set.
func (c *DoctorCmd) write(w io.Writer, env doctor.Env) error {
	if err := checkRoot(c.Root); err != nil {
		return err
	}
	env.Root = c.Root
	if filepath.Clean(c.Root) == "/" || c.StateDir != "" {
		l, err := ledger.Open(c.StateDir)
		if err != nil {
			return err
		}
		st, err := l.List(context.Background())
		if err != nil {
			return err
		}
		env.VMs = st.Entries
	}
	rs := doctor.Run(env)
	if c.JSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rs); err != nil {
			return err
		}
	} else {
		for _, r := range rs {
			fmt.Fprintf(w, "%-5s  %-21s  %s\n", r.Status, r.Name, r.Found)
			if r.Status != doctor.OK {
				if r.Why != "" {
					fmt.Fprintf(w, "       %-21s  why: %s\n", "", r.Why)
				}
				if r.Fix != "" {
					fmt.Fprintf(w, "       %-21s  fix: %s\n", "", r.Fix)
				}
			}
		}
	}
	switch doctor.Worst(rs) {
	case doctor.Error:
		return &ExitError{Code: 2}
	case doctor.Warn:
		return &ExitError{Code: 1}
	}
	return nil
}
