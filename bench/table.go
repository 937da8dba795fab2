package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"unicode/utf8"
)

// renderTable writes the results as Markdown: a heading and a table per
// figure, then its notes. Columns are padded so that it also reads well in
// a terminal.
func renderTable(w io.Writer, r *Results) error {
	var b strings.Builder
	fmt.Fprintf(&b, "qnuma bench: %d CPUs, nodes %s, kernel %s, %s, %s; %s run in %.0f s\n",
		r.Host.CPUs, intList(r.Host.Nodes), r.Host.Kernel, r.Host.QEMU, accelName(r.Host.KVM), runKind(r.Quick), r.Seconds)
	for _, f := range r.Figures {
		fmt.Fprintf(&b, "\n### %s\n", f.Title)
		if f.Rounds > 0 {
			fmt.Fprintf(&b, "%s; median and min–max; ratio and difference against the case's baseline, round by round.\n", plural(f.Rounds, "interleaved round"))
		}
		b.WriteByte('\n')
		if f.Error != "" {
			fmt.Fprintf(&b, "**not measured:** %s\n", f.Error)
		} else {
			writeRows(&b, f.Rows)
		}
		if len(f.Notes) > 0 {
			b.WriteByte('\n')
		}
		for _, n := range f.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeRows(b *strings.Builder, rows []Row) {
	table := [][]string{{"case", "variant", "median", "min–max", "× baseline (min–max)", "Δ median"}}
	prev := ""
	for _, r := range rows {
		if r.Detail {
			continue
		}
		c := r.Case
		if c == prev {
			c = "" // one case name per group of rows
		}
		prev = r.Case
		v := r.Variant
		if r.Baseline {
			v += " (baseline)"
		}
		ratio, diff := "", ""
		if r.Ratio != nil {
			ratio = fmt.Sprintf("%s× (%s–%s)", num(r.Ratio.Median), num(r.Ratio.Min), num(r.Ratio.Max))
		}
		if r.Diff != nil {
			diff = signed(r.Diff.Median) + " " + diffUnit(r.Unit)
		}
		table = append(table, []string{
			c, v,
			num(r.Summary.Median) + " " + r.Unit,
			num(r.Summary.Min) + "–" + num(r.Summary.Max),
			ratio, diff,
		})
	}
	widths := make([]int, len(table[0]))
	for _, row := range table {
		for i, cell := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	line := func(cells []string) {
		b.WriteString("|")
		for i, cell := range cells {
			fmt.Fprintf(b, " %s%s |", cell, strings.Repeat(" ", widths[i]-utf8.RuneCountInString(cell)))
		}
		b.WriteByte('\n')
	}
	line(table[0])
	sep := make([]string, len(widths))
	for i, w := range widths {
		sep[i] = strings.Repeat("-", w)
	}
	line(sep)
	for _, row := range table[1:] {
		line(row)
	}
}

// num prints x with three significant digits, no exponent for the sizes
// the bench meets (up to millions of plans per second).
func num(x float64) string {
	a := math.Abs(x)
	switch {
	case a == 0:
		return "0"
	case a >= 100:
		return fmt.Sprintf("%.0f", x)
	case a >= 10:
		return fmt.Sprintf("%.1f", x)
	case a >= 1:
		return fmt.Sprintf("%.2f", x)
	default:
		return fmt.Sprintf("%.3g", x)
	}
}

func signed(x float64) string {
	if x >= 0 {
		return "+" + num(x)
	}
	return num(x)
}

func intList(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ",")
}

func accelName(kvm bool) string {
	if kvm {
		return "KVM available"
	}
	return "no KVM (TCG)"
}

func runKind(quick bool) string {
	if quick {
		return "quick"
	}
	return "full"
}

// diffUnit is the unit of a difference: percentage points for shares.
func diffUnit(unit string) string {
	if unit == "%" {
		return "pp"
	}
	return unit
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
