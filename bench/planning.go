package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// benchLine is one result line of `go test -bench`.
type benchLine struct {
	Name    string // without the -GOMAXPROCS suffix
	N       int
	NsPerOp float64
}

// parseBenchOutput reads the result lines of `go test -bench` output,
// ignoring everything else (goos:, PASS, ok ...).
func parseBenchOutput(b []byte) ([]benchLine, error) {
	var out []benchLine
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || f[3] != "ns/op" {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		n, err := strconv.Atoi(f[1])
		if err != nil {
			return nil, fmt.Errorf("parse benchmark line %q: iterations: %w", sc.Text(), err)
		}
		ns, err := strconv.ParseFloat(f[2], 64)
		if err != nil || ns <= 0 {
			return nil, fmt.Errorf("parse benchmark line %q: ns/op: want a positive number", sc.Text())
		}
		out = append(out, benchLine{Name: name, N: n, NsPerOp: ns})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("parse benchmark output: %w", err)
	}
	if len(out) == 0 {
		return nil, errors.New("parse benchmark output: no benchmark results")
	}
	return out, nil
}

// planSpecs are BenchmarkMake's VM kinds, as its sub-benchmark names end.
var planSpecs = []struct{ id, name string }{
	{"one-node", "a one-node VM (4 vCPUs, 8 GiB)"},
	{"wide", "a wide VM (half the cores, a third of the memory)"},
	{"wide-dedicated", "a wide VM, a dedicated thread per vCPU"},
}

// planTableSizes are the host sizes printed; the others are in the JSON.
var planTableSizes = map[string]bool{
	"nodes=1/cpus=16/placed=0":       true,
	"nodes=8/cpus=128/placed=100":    true,
	"nodes=64/cpus=1024/placed=0":    true,
	"nodes=64/cpus=1024/placed=1000": true,
}

func planningFigure(ctx context.Context, e *env, f *Figure) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	test := filepath.Join(e.dir, "plan.test")
	build := exec.CommandContext(ctx, goBin, "test", "-c", "-o", test, "./plan")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build the planner's benchmark: %w: %s", err, out)
	}
	benchtime := "30ms"
	if e.quick {
		benchtime = "3x"
	}
	f.Rounds = e.rounds(3, 1)
	// Each round is a whole pass over every size, so the sizes interleave.
	var passes [][]benchLine
	for r := 0; r < f.Rounds; r++ {
		cmd := exec.CommandContext(ctx, test, "-test.run", "^$", "-test.bench", "^BenchmarkMake$", "-test.benchtime", benchtime)
		cmd.Dir = filepath.Join(root, "plan")
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("run the planner's benchmark: %w: %s", err, lastLines(string(out), 5))
		}
		lines, err := parseBenchOutput(out)
		if err != nil {
			return err
		}
		passes = append(passes, lines)
		fmt.Fprintf(os.Stderr, "bench:   round %d/%d\n", r+1, f.Rounds)
	}
	rows, sizes, slowest, err := planningRows(passes)
	if err != nil {
		return err
	}
	f.Rows = rows
	f.Notes = append(f.Notes,
		fmt.Sprintf("hosts of 1 to 64 nodes × 16 CPUs (8 cores × 2 threads) with 0 to 1,000 VMs already placed; the baseline is the same VM on one node with nothing placed; %s of `go test -bench ^BenchmarkMake$ -benchtime %s ./plan`, every host size in each; the JSON has all %d sizes",
			plural(f.Rounds, "round"), benchtime, sizes))
	if e.bareStartMS > 0 {
		per := 1000 / slowest.Summary.Median
		f.Notes = append(f.Notes, fmt.Sprintf("the slowest plan (%s, %s) takes %s ms, %s%% of bare qemu's start-up measured above (%s ms)",
			strings.TrimPrefix(slowest.Case, "plan "), slowest.Variant, num(per), num(100*per/e.bareStartMS), num(e.bareStartMS)))
	}
	return nil
}

// planningRows turns passes of BenchmarkMake into a case per VM kind whose
// variants are the host sizes, as plans per second against one node with
// nothing placed. It returns the number of sizes and the slowest row.
func planningRows(passes [][]benchLine) (rows []Row, sizes int, slowest Row, err error) {
	byName := map[string][]float64{}
	var order []string
	for _, pass := range passes {
		for _, l := range pass {
			if _, ok := byName[l.Name]; !ok {
				order = append(order, l.Name)
			}
			byName[l.Name] = append(byName[l.Name], 1e9/l.NsPerOp)
		}
	}
	const baseSize = "nodes=1/cpus=16/placed=0"
	for _, spec := range planSpecs {
		var ss []series
		var detail []bool
		for _, name := range order {
			size, ok := strings.CutSuffix(strings.TrimPrefix(name, "BenchmarkMake/"), "/"+spec.id)
			if !ok || strings.Count(size, "/") != 2 {
				continue
			}
			if len(byName[name]) != len(passes) {
				return nil, 0, Row{}, fmt.Errorf("benchmark %s: %d results in %d rounds", name, len(byName[name]), len(passes))
			}
			ss = append(ss, series{variant: hostSize(size), samples: byName[name]})
			detail = append(detail, !planTableSizes[size])
		}
		if len(ss) == 0 || ss[0].variant != hostSize(baseSize) {
			return nil, 0, Row{}, fmt.Errorf("benchmark: no result for %s on %s first", spec.id, baseSize)
		}
		if sizes != 0 && len(ss) != sizes {
			return nil, 0, Row{}, fmt.Errorf("benchmark: %d host sizes for %s, %d for %s", len(ss), spec.id, sizes, planSpecs[0].id)
		}
		sizes = len(ss)
		cr, err := caseRows("plan "+spec.name, "plans/s", ss, 0)
		if err != nil {
			return nil, 0, Row{}, err
		}
		for i := range cr {
			cr[i].Detail = detail[i]
			if slowest.Samples == nil || cr[i].Summary.Median < slowest.Summary.Median {
				slowest = cr[i]
			}
		}
		rows = append(rows, cr...)
	}
	return rows, sizes, slowest, nil
}

// hostSize turns "nodes=8/cpus=128/placed=100" into words.
func hostSize(s string) string {
	kv := map[string]string{}
	for _, part := range strings.Split(s, "/") {
		k, v, _ := strings.Cut(part, "=")
		kv[k] = v
	}
	return fmt.Sprintf("%s nodes, %s CPUs, %s VMs placed", kv["nodes"], kv["cpus"], kv["placed"])
}

// repoRoot finds the qnuma module's root from the working directory up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find the qnuma repository: %w", err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module github.com/qnuma/qnuma\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find the qnuma repository: no go.mod of github.com/qnuma/qnuma above the working directory")
		}
		dir = parent
	}
}
