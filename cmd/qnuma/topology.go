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
	Root string `default:"/" type:"existingdir" placeholder:"DIR" help:"Read a snapshot of /sys and /proc under DIR instead of this host."`
}

func (c *TopologyCmd) Run() error { return c.write(os.Stdout) }

func (c *TopologyCmd) write(w io.Writer) error {
	// A --root without sys/ is a wrong folder, not a broken host.
	if _, err := os.Stat(filepath.Join(c.Root, "sys")); err != nil {
		return badInput("--root %s is not a snapshot of / (no sys folder): %w", c.Root, err)
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
