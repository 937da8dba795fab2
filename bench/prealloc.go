package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// preallocSizes are the guest RAM sizes tried, in GiB, largest first: the
// figure measures the first that node e.node has room for. One size, not
// two: each round of each variant touches all of it, and at 8 GiB the
// figure took two of make bench's minutes to show what 4 GiB shows.
func (e *env) preallocSizes() []int {
	if e.quick {
		return []int{1}
	}
	return []int{4, 2, 1}
}

func preallocFigure(ctx context.Context, e *env, f *Figure) error {
	f.Rounds = e.rounds(4, 1)
	node := strconv.Itoa(e.node)
	var skipped []string
	for _, gib := range e.preallocSizes() {
		size := strconv.Itoa(gib) + "G"
		name := fmt.Sprintf("%d GiB guest RAM, 2 vCPUs", gib)
		flags := []string{"--prealloc", "--host-nodes", node, "--vcpus", "2", "--memory", size}
		base := append(append([]string{}, tcgArgs...), "-nodefaults", "-display", "none")
		qnumaArgs, err := e.renderedArgs(ctx, append(flags, append([]string{"--", e.qemu}, base...)...)...)
		if errors.Is(err, errNoFit) {
			skipped = append(skipped, fmt.Sprintf("%d GiB (%v)", gib, err))
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		plain := append(append([]string{e.qemu}, base...),
			"-smp", "2", "-m", size,
			"-object", "memory-backend-ram,id=ram0,size="+size+",prealloc=on",
			"-machine", "memory-backend=ram0")
		vs := []variant{
			e.qmpVariant("qemu prealloc=on (1 thread, no context)", append(plain, "-S"), false),
			e.qmpVariant("qemu with qnuma's arguments (qnuma plan)", append(qnumaArgs, "-S"), false),
			e.qmpVariant("qnuma run --prealloc", append(append(e.qnumaRun(flags...), "--", e.qemu), base...), true),
		}
		rows, err := timeCase(ctx, name, f.Rounds, !e.quick, vs)
		if err != nil {
			return err
		}
		f.Rows = append(f.Rows, rows...)
		f.Notes = append(f.Notes, preallocSizeNote(gib, e.preallocSizes(), e.node, e.nodeFreeGiB(), skipped),
			"time from launch until QMP answers: QEMU preallocates guest RAM before its main loop, so this is the preallocation plus QEMU's (and qnuma's) own start",
			"qnuma's choice is prealloc-threads = the CPUs its vCPUs may use on the node, with prealloc-context a thread-context bound to that node (QEMU 7.2+), so the threads that touch the memory run where it is bound")
		return nil
	}
	return fmt.Errorf("no size fits node %s: %s", node, strings.Join(skipped, "; "))
}

// preallocSizeNote says which size the figure measured and why.
func preallocSizeNote(gib int, tried []int, node int, freeGiB float64, skipped []string) string {
	words := make([]string, len(tried))
	for i, t := range tried {
		words[i] = strconv.Itoa(t)
	}
	list := strings.Join(words, ", ")
	if n := len(words); n > 1 {
		list = strings.Join(words[:n-1], ", ") + " and " + words[n-1]
	}
	s := fmt.Sprintf("sized %d GiB: the largest of %s GiB that node %d, with %.1f GiB free, has room for", gib, list, node, freeGiB)
	if len(skipped) > 0 {
		s += "; too large: " + strings.Join(skipped, ", ")
	}
	return s
}

// renderedArgs is the QEMU command line `qnuma plan --json` renders.
func (e *env) renderedArgs(ctx context.Context, flags ...string) ([]string, error) {
	out, err := e.planJSON(ctx, flags...)
	if err != nil {
		return nil, err
	}
	var p struct {
		Args []string `json:"qemu_args"`
	}
	if err := json.Unmarshal(out, &p); err != nil {
		return nil, fmt.Errorf("parse qnuma plan --json: %w", err)
	}
	if len(p.Args) < 2 {
		return nil, errors.New("parse qnuma plan --json: no qemu_args")
	}
	return p.Args, nil
}

// qmpVariant measures argv from launch until QEMU answers on QMP. With
// settle it then waits (untimed) for the guest to run before quitting, so
// that qnuma's launch completes instead of seeing qemu quit mid-launch.
func (e *env) qmpVariant(name string, argv []string, settle bool) variant {
	return variant{name: name, argv: argv, run: func(ctx context.Context) ([]float64, error) {
		ctx, cancel := context.WithTimeout(ctx, runTimeout)
		defer cancel()
		sock := e.sock()
		p, err := startProc(withQMP(argv, sock), sock)
		if err != nil {
			return nil, err
		}
		if err := p.dial(ctx); err != nil {
			p.kill()
			return nil, err
		}
		d := time.Since(p.start)
		if settle {
			if _, err := p.waitRunning(ctx); err != nil {
				p.kill()
				return nil, err
			}
		}
		return []float64{ms(d)}, p.stop()
	}}
}
