package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"

	"github.com/qnuma/qnuma/topology"
)

// TopologyCmd is `qnuma topology`: the host as the kernel describes it.
type TopologyCmd struct {
	JSON bool   `help:"Print JSON (the schema is in docs/topology.md)."`
	Root string `default:"/" placeholder:"DIR" help:"Read a snapshot of /sys and /proc under DIR instead of this host."`
}

// checkRoot refuses a --root that is not a snapshot of /. A wrong folder is
// bad input, not a broken host; "" would read the current directory, which
// nobody means by an empty argument (a variable that was not set).
func checkRoot(root string) error {
	if root == "" {
		return badInput("--root \"\": give a directory (/ for this host, . for the current directory)")
	}
	if _, err := os.Stat(filepath.Join(root, "sys")); err != nil {
		return badInput("--root %s is not a snapshot of / (no sys folder): %w", root, err)
	}
	return nil
}

func (c *TopologyCmd) Run() error { return c.write(os.Stdout) }

func (c *TopologyCmd) write(w io.Writer) error {
	if err := checkRoot(c.Root); err != nil {
		return err
	}
	h, err := topology.Read(c.Root)
	if err != nil {
		return err
	}
	if c.JSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(h.Report())
	}
	_, err = io.WriteString(w, h.Text())
	return err
}
