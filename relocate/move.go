package relocate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/utils/cpuset"

	"github.com/qnuma/qnuma/affinity"
)

// Part is one guest node's memfd and where it goes.
type Part struct {
	GuestNode int
	Backend   Backend
	// Mode is its policy (affinity.MPOLBind, ...), To its new nodes; From
	// its nodes now (the policy put back if the move fails).
	Mode     int
	To, From []int
}

// Job is one move of a running qemu's memory.
type Job struct {
	PID   int
	Root  string // where /proc is; "" is "/"
	Parts []Part
	// QEMUFrom are the nodes qemu's own memory leaves (its old nodes not
	// among the new ones); QEMUTo where it goes. Empty: it stays.
	QEMUFrom, QEMUTo cpuset.CPUSet
	// BytesPerSecond bounds the rate of page moves (0: as fast as the
	// kernel goes).
	BytesPerSecond uint64
	// Alive, when set, is called between batches: an error (qemu exited,
	// or is another process now) stops the move.
	Alive func() error
}

// Result is what a move did.
type Result struct {
	Parts []PartResult
	// QEMUPagesLeft are pages of qemu's own memory migrate_pages could not
	// move (shared with other processes, or busy).
	QEMUPagesLeft int
	Took          time.Duration
}

// PartResult is one guest node's move.
type PartResult struct {
	GuestNode int
	// Moved pages, by the node they left; Left pages that stayed outside
	// the new nodes (busy, or shared with another process); Absent pages
	// never touched by the guest (nothing to move).
	Moved         map[int]uint64
	Left, Absent  uint64
	PageSize      uint64
	Took          time.Duration
	PolicyChanged bool
}

// MovedBytes is every byte of guest RAM the move moved.
func (r *Result) MovedBytes() uint64 {
	var t uint64
	for _, p := range r.Parts {
		for _, n := range p.Moved {
			t += n * p.PageSize
		}
	}
	return t
}

// batchPages is how many pages one move_pages call moves: small enough to
// pace a move and notice a cancel, large enough to cost little.
const batchPages = 4096

// Run moves the job's guest nodes: first every memfd's policy is set to
// its new nodes (from then on each new page lands there), then the pages
// already present move, guest node by guest node, then qemu's own memory.
// A failure before any page moved puts every policy back: the VM is as it
// was. A failure while pages move puts the policies back and moves the
// pages already moved back where they were, as far as the kernel lets it,
// and says so.
func Run(ctx context.Context, sys affinity.Pages, job Job) (*Result, error) {
	t0 := time.Now()
	res := &Result{}
	var set []Part // parts whose policy was changed
	for _, p := range job.Parts {
		if err := setPolicy(sys, job, p.Backend, p.Mode, p.To); err != nil {
			err = fmt.Errorf("set the memory policy of guest node %d's memfd (qemu fd %d) to %s: %w", p.GuestNode, p.Backend.FD, idList(p.To), err)
			return nil, putBack(sys, job, set, nil, err)
		}
		set = append(set, p)
	}
	var done []PartResult
	for _, p := range job.Parts {
		pr, err := movePart(ctx, sys, job, p)
		if err != nil {
			done = append(done, pr)
			return nil, putBack(sys, job, set, done, fmt.Errorf("move guest node %d's pages to %s: %w", p.GuestNode, idList(p.To), err))
		}
		pr.PolicyChanged = true
		done = append(done, pr)
	}
	res.Parts = done
	if !job.QEMUFrom.IsEmpty() && !job.QEMUTo.IsEmpty() {
		left, err := sys.MigratePages(job.PID, job.QEMUFrom, job.QEMUTo)
		if err != nil {
			// The guest's memory has moved; qemu's own is small and
			// follows its task policy anyway: say so, keep the move.
			left = -1
		}
		res.QEMUPagesLeft = left
	}
	res.Took = time.Since(t0)
	return res, nil
}

// setPolicy maps qemu's memfd b and sets its policy (the memfd's own, which
// qemu's faults follow) to mode over nodes.
func setPolicy(sys affinity.Pages, job Job, b Backend, mode int, nodes []int) error {
	root := job.Root
	if root == "" {
		root = "/"
	}
	path := filepath.Join(root, "proc", strconv.Itoa(job.PID), "fd", strconv.Itoa(b.FD))
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return err
	}
	// The fd may have been closed and its number reused since Find.
	if st.Ino != b.Inode || uint64(st.Dev) != b.Dev {
		return fmt.Errorf("qemu's fd %d is no longer the memfd found (inode %d, now %d)", b.FD, b.Inode, st.Ino)
	}
	if b.Size == 0 {
		return errors.New("memfd of size 0")
	}
	// PROT_NONE: qnuma never touches guest memory, it only needs a mapping
	// to name the memfd's range to mbind.
	m, err := unix.Mmap(int(f.Fd()), 0, int(b.Size), unix.PROT_NONE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("map it: %w", err)
	}
	defer unix.Munmap(m)
	return sys.Mbind(affinity.Addr(m), uintptr(b.Size), mode, cpuset.New(nodes...))
}

// movePart moves the present pages of one guest node's memfd to its new
// nodes (interleaved over them by page, as the policy would place them).
func movePart(ctx context.Context, sys affinity.Pages, job Job, p Part) (pr PartResult, err error) {
	t0 := time.Now()
	pr = PartResult{GuestNode: p.GuestNode, Moved: map[int]uint64{}, PageSize: p.Backend.PageSize}
	page := p.Backend.PageSize
	if page == 0 {
		page = uint64(os.Getpagesize())
		pr.PageSize = page
	}
	to := cpuset.New(p.To...)
	addrs := make([]uintptr, 0, batchPages)
	where := make([]int, batchPages)
	targets := make([]int, batchPages)
	var moved, onTarget uint64
	if len(p.To) == 1 {
		// Whatever ends the move (a failure too, after which the pages
		// moved so far are moved back), say what moved.
		defer func() { attribute(&pr, p, moved) }()
	}
	for _, r := range p.Backend.Ranges {
		for a := r.Start; a < r.End; {
			if err := ctx.Err(); err != nil {
				return pr, err
			}
			if job.Alive != nil {
				if err := job.Alive(); err != nil {
					return pr, err
				}
			}
			addrs = addrs[:0]
			for ; a < r.End && len(addrs) < batchPages; a += page {
				addrs = append(addrs, uintptr(a))
			}
			if len(p.To) == 1 {
				// One target: every page is asked there, without asking
				// first where it is (a page already there costs the kernel
				// a look; a query first doubled the walk).
				st := where[:len(addrs)]
				for i := range targets[:len(addrs)] {
					targets[i] = p.To[0]
				}
				if err := sys.MovePages(job.PID, addrs, targets[:len(addrs)], st); err != nil {
					return pr, err
				}
				for _, n := range st {
					switch {
					case n == p.To[0]:
						onTarget++
					case n == -int(unix.ENOENT) || n == -int(unix.EFAULT):
						pr.Absent++
					default:
						pr.Left++
					}
				}
				moved = onTarget - min(onTarget, p.Backend.Pages[p.To[0]])
				pace(ctx, job.BytesPerSecond, moved*page, time.Since(t0))
				continue
			}
			st := where[:len(addrs)]
			if err := sys.PageNodes(job.PID, addrs, st); err != nil {
				return pr, err
			}
			var mv []uintptr
			var nodes []int
			from := map[int]int{}
			for i, n := range st {
				switch {
				case n < 0:
					pr.Absent++
				case to.Contains(n):
				default:
					idx := (uint64(addrs[i]) - r.Start + r.Offset) / page
					mv = append(mv, addrs[i])
					nodes = append(nodes, p.To[idx%uint64(len(p.To))])
					from[len(mv)-1] = n
				}
			}
			if len(mv) == 0 {
				continue
			}
			after := make([]int, len(mv))
			if err := sys.MovePages(job.PID, mv, nodes, after); err != nil {
				return pr, err
			}
			for i, n := range after {
				if to.Contains(n) {
					pr.Moved[from[i]]++
					moved++
				} else if n >= 0 || n == -int(unix.EBUSY) || n == -int(unix.EACCES) || n == -int(unix.ENOMEM) {
					pr.Left++
				}
			}
			pace(ctx, job.BytesPerSecond, moved*page, time.Since(t0))
		}
	}
	pr.Took = time.Since(t0)
	return pr, nil
}

// attribute says where the pages moved to a single node came from: the
// nodes they were on when found, less what stayed behind, at most what the
// kernel moved.
func attribute(pr *PartResult, p Part, moved uint64) {
	left := pr.Left
	for n, c := range p.Backend.Pages {
		if n == p.To[0] {
			continue
		}
		take := c - min(c, left)
		left -= c - take
		if take > 0 {
			pr.Moved[n] = take
		}
	}
	var sum uint64
	for _, c := range pr.Moved {
		sum += c
	}
	if sum > moved { // pages freed meanwhile, or a move cut short
		for n := range pr.Moved {
			pr.Moved[n] = pr.Moved[n] * moved / sum
		}
	}
}

// pace sleeps until done bytes in elapsed keep to rate bytes per second.
func pace(ctx context.Context, rate, done uint64, elapsed time.Duration) {
	if rate == 0 {
		return
	}
	want := time.Duration(float64(done) / float64(rate) * float64(time.Second))
	if want <= elapsed {
		return
	}
	t := time.NewTimer(want - elapsed)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// putBack restores the policies of set and moves the pages of done back
// to the nodes they left, after err.
func putBack(sys affinity.Pages, job Job, set []Part, done []PartResult, err error) error {
	var failed []string
	for _, p := range set {
		if perr := setPolicy(sys, job, p.Backend, p.Mode, p.From); perr != nil {
			failed = append(failed, fmt.Sprintf("guest node %d's policy stays on %s: %v", p.GuestNode, idList(p.To), perr))
		}
	}
	moved := false
	for i, d := range done {
		if len(d.Moved) == 0 {
			continue
		}
		moved = true
		back := set[i]
		back.To, back.From = back.From, back.To
		if _, merr := movePart(context.Background(), sys, Job{PID: job.PID, Root: job.Root}, back); merr != nil {
			failed = append(failed, fmt.Sprintf("guest node %d's pages moved so far stay on %s: %v", d.GuestNode, idList(set[i].To), merr))
		}
	}
	switch {
	case len(failed) > 0:
		return fmt.Errorf("%w; putting the VM back failed: %s", err, strings.Join(failed, "; "))
	case moved:
		return fmt.Errorf("%w; the policies were put back and the pages moved so far moved back: the VM is as it was", err)
	}
	return fmt.Errorf("%w; nothing had moved and the policies were put back: the VM is as it was", err)
}

func idList(ids []int) string {
	if len(ids) == 0 {
		return "no node"
	}
	return cpuset.New(ids...).String()
}
