// Command bench measures what qnuma costs and what it buys against the
// alternatives, in one run: start-up time, placement delay, memory
// locality, planning speed, preallocation time and moving a running VM. Each figure is the
// median and spread of repeated, interleaved rounds, compared round by
// round with a baseline measured in the same run. It prints a Markdown
// table and writes the results as JSON.
//
//	go run ./bench [-quick] [-qnuma build/qnuma] [-out bench/out/results.json] [-only startup,placement,...]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// figureFunc measures one figure into f.
type figureFunc func(ctx context.Context, e *env, f *Figure) error

// figureDef is a figure the bench knows.
type figureDef struct {
	id, title string
	run       figureFunc
}

// figures in the order they run and print.
var figures = []figureDef{
	{"startup", "1. Start-up: launch until the guest runs with every vCPU placed", startupFigure},
	{"placement", "2. Placement delay: qemu's start until the last vCPU is pinned, and what the guest ran before", placementFigure},
	{"locality", "3. Locality in the two-node test host: guest RAM and vCPUs on the planned node 1", localityFigure},
	{"planning", "4. Planning at scale: plans per second (plan.Make, go test -bench)", planningFigure},
	{"prealloc", "5. Preallocation: start until QMP answers, guest RAM preallocated", preallocFigure},
	{"move", "6. Moving a running VM: guest RAM from node 0 to node 1 in the test host", moveFigure},
	{"balance", "7. Rebalancing in the two-node test host: node 0 filled until one VM's guest RAM is on node 1", balanceFigure},
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == probeArg {
		os.Exit(probeMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == moveProbeArg {
		os.Exit(moveProbeMain(os.Args[2:]))
	}
	os.Exit(benchMain(os.Args[1:]))
}

func benchMain(args []string) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "a smoke run: fewer rounds, smaller memory, a minute or two")
	qnuma := fs.String("qnuma", "build/qnuma", "the qnuma binary to measure")
	out := fs.String("out", "bench/out/results.json", "where to write the JSON results")
	only := fs.String("only", "", "comma-separated figures to run (startup, placement, locality, planning, prealloc, move, balance); all when empty")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var want []string
	if *only != "" {
		want = strings.Split(*only, ",")
		for _, w := range want {
			if !slices.ContainsFunc(figures, func(f figureDef) bool { return f.id == w }) {
				fmt.Fprintf(os.Stderr, "bench: -only: unknown figure %q\n", w)
				return 2
			}
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	e, err := newEnv(ctx, *qnuma, *quick)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer e.close()
	res := &Results{Started: time.Now().UTC().Truncate(time.Second), Quick: *quick, Host: e.info}
	failed := false
	for _, fig := range figures {
		if want != nil && !slices.Contains(want, fig.id) {
			continue
		}
		f := Figure{ID: fig.id, Title: fig.title}
		t0 := time.Now()
		fmt.Fprintf(os.Stderr, "bench: %s ...\n", fig.id)
		if err := fig.run(ctx, e, &f); err != nil {
			f.Rows, f.Error, failed = nil, err.Error(), true
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", fig.id, err)
		}
		fmt.Fprintf(os.Stderr, "bench: %s took %.0f s\n", fig.id, time.Since(t0).Seconds())
		res.Figures = append(res.Figures, f)
		if ctx.Err() != nil {
			break
		}
	}
	res.Seconds = time.Since(res.Started).Seconds()
	var table strings.Builder
	if err := renderTable(&table, res); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	fmt.Print(table.String())
	if err := writeJSON(*out, res); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	md := strings.TrimSuffix(*out, filepath.Ext(*out)) + ".md"
	if err := os.WriteFile(md, []byte(table.String()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	abs, _ := filepath.Abs(*out)
	fmt.Fprintf(os.Stderr, "bench: results in %s and %s\n", abs, filepath.Base(md))
	if failed || ctx.Err() != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "bench: interrupted")
		}
		return 1
	}
	return 0
}

// errSkip marks a case that cannot run on this host; the reason goes into
// the figure's notes.
var errSkip = errors.New("skipped")
