package topology

import (
	"fmt"
	"strconv"
	"strings"
)

// Text is the host as `qnuma topology` prints it for people: like
// `numactl --hardware`, plus cores, threads, hugepages and what this
// process may use.
func (h *Host) Text() string {
	var b strings.Builder
	fewest, most := h.ThreadsPerCore()
	threads := plural(most, "thread")
	if fewest != most {
		threads = fmt.Sprintf("%d-%d threads", fewest, most)
	}
	fmt.Fprintf(&b, "%s, %s online (%s)\n", plural(len(h.Nodes), "node"), plural(h.OnlineCPUs.Size(), "cpu"), h.OnlineCPUs)
	fmt.Fprintf(&b, "%s, %s, %s per core\n", plural(len(h.Packages()), "package"), plural(len(h.Cores()), "core"), threads)
	for _, n := range h.Nodes {
		b.WriteString("\n")
		h.writeNode(&b, n)
	}
	b.WriteString("\n")
	h.writeDistances(&b)
	b.WriteString("\n")
	h.writeAllowed(&b)
	return b.String()
}

func (h *Host) writeNode(b *strings.Builder, n Node) {
	if n.HasCPUs() {
		cores := map[int]bool{}
		for _, c := range h.CPUs {
			if n.CPUs.Contains(c.ID) {
				cores[c.Core] = true
			}
		}
		fmt.Fprintf(b, "node %d: cpus %s (%s, %s)\n", n.ID, n.CPUs, plural(n.CPUs.Size(), "cpu"), plural(len(cores), "core"))
	} else {
		fmt.Fprintf(b, "node %d: no cpus\n", n.ID)
	}
	switch {
	case !n.HasMemory():
		b.WriteString("  memory: none\n")
	case n.MemFreeUnknown:
		fmt.Fprintf(b, "  memory: %s total, free unknown (meminfo has no MemFree: counted as none)\n", gib(n.MemTotal))
	case n.InactiveFile > 0:
		fmt.Fprintf(b, "  memory: %s total, %s free, %s inactive file\n", gib(n.MemTotal), gib(n.MemFree), gib(n.InactiveFile))
	default:
		fmt.Fprintf(b, "  memory: %s total, %s free\n", gib(n.MemTotal), gib(n.MemFree))
	}
	var pools, sizes []string
	for _, hp := range n.Hugepages {
		sizes = append(sizes, pageSize(hp.SizeBytes))
		if hp.Total > 0 {
			pools = append(pools, fmt.Sprintf("%s: %d free of %d", pageSize(hp.SizeBytes), hp.Free, hp.Total))
		}
	}
	switch {
	case len(pools) > 0:
		fmt.Fprintf(b, "  hugepages %s\n", strings.Join(pools, "; "))
	case len(sizes) > 0:
		fmt.Fprintf(b, "  hugepages: none reserved (sizes %s)\n", strings.Join(sizes, ", "))
	default:
		b.WriteString("  hugepages: none\n")
	}
}

// writeDistances prints the matrix with rows and columns in node order; a
// node the kernel gives no distances for has a row of "-".
func (h *Host) writeDistances(b *strings.Builder) {
	given := false
	width := len("node")
	for _, n := range h.Nodes {
		given = given || n.Distances != nil
		width = max(width, len(strconv.Itoa(n.ID))+1)
		for _, d := range n.Distances {
			width = max(width, len(strconv.Itoa(d))+1)
		}
	}
	if !given {
		b.WriteString("node distances: none given by the kernel\n")
		return
	}
	b.WriteString("node distances:\n")
	fmt.Fprintf(b, "%*s", width, "node")
	for _, n := range h.Nodes {
		fmt.Fprintf(b, " %*d", width, n.ID)
	}
	b.WriteString("\n")
	for _, from := range h.Nodes {
		fmt.Fprintf(b, "%*s", width, strconv.Itoa(from.ID)+":")
		for _, to := range h.Nodes {
			d, ok := from.Distances[to.ID]
			if !ok {
				fmt.Fprintf(b, " %*s", width, "-")
				continue
			}
			fmt.Fprintf(b, " %*d", width, d)
		}
		b.WriteString("\n")
	}
}

var sourceText = map[string]string{
	SourceProcStatus: "from /proc/self/status",
	SourceCpusetV1:   "from the cpuset filesystem",
	SourceCgroupV1:   "from the cgroup v1 cpuset",
	SourceCgroupV2:   "from the cgroup v2 cpuset",
}

func (h *Host) writeAllowed(b *strings.Builder) {
	a := h.Allowed
	if a.Source == SourceNone {
		fmt.Fprintf(b, "this process may use: cpus %s, every node (nothing restricts it)\n", a.CPUs)
		return
	}
	from, ok := sourceText[a.Source]
	if !ok {
		from = "from " + a.Source
	}
	fmt.Fprintf(b, "this process may use: cpus %s, memory nodes %s (%s)\n", a.CPUs, a.Mems, from)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// gib prints a memory amount in GiB, or MiB below 1 GiB.
func gib(bytes uint64) string {
	if bytes < 1<<30 {
		return fmt.Sprintf("%d MiB", bytes>>20)
	}
	return fmt.Sprintf("%.2f GiB", float64(bytes)/(1<<30))
}

// pageSize prints a hugepage size exactly: "2 MiB", "1 GiB", "64 KiB".
func pageSize(bytes uint64) string {
	switch {
	case bytes%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", bytes>>30)
	case bytes%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", bytes>>20)
	}
	return fmt.Sprintf("%d KiB", bytes>>10)
}
