package plan

import (
	"fmt"
	"strings"
	"text/tabwriter"
)

// FitError is a VM that does not fit: why, and every node's room against
// what was asked, so the user sees what to change. It wraps ErrDoesNotFit.
type FitError struct {
	Reason        string
	VCPUs         int
	MemoryBytes   uint64
	HugepageBytes uint64
	PreferHT      bool
	Rooms         []Room
}

func (e *FitError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s\n", ErrDoesNotFit, e.Reason)
	unit := "cores"
	if e.PreferHT {
		unit = "threads"
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	hp := ""
	if e.HugepageBytes > 0 {
		hp = sizeString(e.HugepageBytes) + " pages free\t"
	}
	fmt.Fprintf(tw, "  node\t%s\tmemory free\t%snote\n", unit, hp)
	for _, r := range e.Rooms {
		pages := ""
		if e.HugepageBytes > 0 {
			pages = fmt.Sprintf("%d\t", r.Hugepages)
		}
		note := r.Unusable
		if note == "" && r.MemoryOnly {
			note = "memory only"
		}
		fmt.Fprintf(tw, "  %d\t%d\t%s\t%s%s\n", r.Node, r.CPUs, sizeString(r.MemoryBytes), pages, note)
	}
	pages := ""
	if e.HugepageBytes > 0 {
		pages = fmt.Sprintf("%d\t", e.MemoryBytes/e.HugepageBytes)
	}
	fmt.Fprintf(tw, "  asked\t%d\t%s\t%s\n", e.VCPUs, sizeString(e.MemoryBytes), pages)
	tw.Flush()
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n")
}

func (e *FitError) Unwrap() error { return ErrDoesNotFit }

// badSpec is an error wrapping ErrBadSpec.
func badSpec(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrBadSpec, fmt.Sprintf(format, a...))
}

// sizeString writes bytes in IEC units, exactly when it can ("16 GiB"),
// else to one decimal ("30.7 GiB").
func sizeString(b uint64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	i := 0
	for v := b; v >= 1024 && i < len(units)-1; v /= 1024 {
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", b)
	}
	div := uint64(1) << (10 * i)
	if b%div == 0 {
		return fmt.Sprintf("%d %s", b/div, units[i])
	}
	return fmt.Sprintf("%.1f %s", float64(b)/float64(div), units[i])
}
