package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/qnuma/qnuma/test/vm"
)

// probeArg runs the bench as the locality probe inside the test host.
const (
	probeArg    = "-probe-locality"
	probeMarker = "qnuma-bench-probe: "
	// probeNode is the test host's node the VM is meant for: node 1, so
	// that the kernel's own choice (node 0 first, where init runs) differs.
	probeNode = 1
	probeMem  = "256M"
)

// probeResult is what the probe prints, after probeMarker, as one line.
type probeResult struct {
	Variants []probeVariant `json:"variants"`
}

type probeVariant struct {
	Name string   `json:"name"`
	Argv []string `json:"argv"`
	// Samples[metric][round]: guest RAM on the node (%), vCPU samples
	// on the node (%).
	Samples [][]float64 `json:"samples"`
}

func localityFigure(ctx context.Context, e *env, f *Figure) error {
	f.Rounds = e.rounds(2, 1)
	stage, err := os.MkdirTemp("", "qnuma-bench-stage-")
	if err != nil {
		return fmt.Errorf("stage binaries for the test host: %w", err)
	}
	defer os.RemoveAll(stage)
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("stage binaries for the test host: %w", err)
	}
	for src, name := range map[string]string{self: "qnuma-bench", e.qnuma: "qnuma"} {
		if err := copyFile(src, filepath.Join(stage, name)); err != nil {
			return fmt.Errorf("stage binaries for the test host: %w", err)
		}
	}
	script := fmt.Sprintf("/bench/qnuma-bench %s -qnuma /bench/qnuma -rounds %d", probeArg, f.Rounds)
	topo := vm.TwoNodes()
	res, err := runProbe(ctx, "locality", vm.Options{
		Topology: topo,
		Timeout:  time.Duration(f.Rounds)*2*time.Minute + time.Minute,
		Shares:   []vm.Share{{HostPath: stage, GuestPath: "/bench"}},
	}, script)
	if err != nil {
		return err
	}
	pr, err := parseProbeOutput(res.Output)
	if err != nil {
		return err
	}
	names := []string{"guest RAM on node 1, after prealloc", "vCPU samples on node 1's CPUs, guest running"}
	for j, name := range names {
		var ss []series
		for _, v := range pr.Variants {
			if len(v.Samples) != len(names) {
				return fmt.Errorf("locality probe: %s has %d metrics, want %d", v.Name, len(v.Samples), len(names))
			}
			ss = append(ss, series{variant: v.Name, argv: v.Argv, samples: v.Samples[j]})
		}
		rows, err := caseRows(name, "%", ss, 0)
		if err != nil {
			return err
		}
		f.Rows = append(f.Rows, rows...)
	}
	first, last := topo.NodeCPUs(probeNode)
	f.Notes = append(f.Notes,
		fmt.Sprintf("inside the test host (vm.TwoNodes: 2 nodes × %d CPUs, %d MiB, distance 21), a nested TCG VM of 2 vCPUs and %s with all its RAM preallocated (-mem-prealloc, qnuma's --prealloc)", topo.Nodes[0].CPUs, topo.Nodes[0].MemoryMiB, probeMem),
		fmt.Sprintf("RAM from /proc/PID/numa_maps (the guest RAM mappings, by size, through qnuma's numastat); vCPUs from each vCPU thread's last CPU (/proc/PID/task/TID/stat) sampled 5 times while the guest runs, node 1 being CPUs %d-%d", first, last),
		fmt.Sprintf("the test host boot took %.0f s of this figure", res.Elapsed.Seconds()),
	)
	return nil
}

// runProbe boots the test host with opts and runs script in it (the bench
// itself in a probe mode), returning its result once it has exited 0; what
// names the probe in errors.
func runProbe(ctx context.Context, what string, opts vm.Options, script string) (*vm.Result, error) {
	res, err := vm.Run(ctx, opts, script)
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("%s probe in the test host exited %d: %s", what, res.ExitCode, lastLines(res.Output, 8))
	}
	return res, nil
}

// probeLine finds a probe's result line (after marker) in the test host's
// output and decodes it; what names the probe in errors.
func probeLine[T any](out, marker, what string) (*T, error) {
	for _, line := range strings.Split(out, "\n") {
		js, ok := strings.CutPrefix(strings.TrimSpace(line), marker)
		if !ok {
			continue
		}
		var r T
		if err := json.Unmarshal([]byte(js), &r); err != nil {
			return nil, fmt.Errorf("parse %s probe result: %w", what, err)
		}
		return &r, nil
	}
	return nil, fmt.Errorf("%s probe printed no result: %s", what, lastLines(out, 8))
}

// parseProbeOutput finds the probe's result line in the test host's output.
func parseProbeOutput(out string) (*probeResult, error) {
	pr, err := probeLine[probeResult](out, probeMarker, "locality")
	if err != nil {
		return nil, err
	}
	if len(pr.Variants) == 0 {
		return nil, errors.New("parse locality probe result: no variants")
	}
	return pr, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
