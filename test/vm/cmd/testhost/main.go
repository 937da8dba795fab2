// Command testhost boots qnuma's multi-node test host (a Debian kernel under
// TCG with the NUMA topology asked for), runs a shell script inside it, and
// exits with the script's status. The host's /usr and the repository's
// build/ (at /qnuma, first in PATH) are shared read-only, so qnuma, qemu
// and numactl run inside; the helpers of test/vm/initramfs/lib.sh are loaded.
//
//	go run ./test/vm/cmd/testhost -topology two -- 'qnuma topology'
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/qnuma/qnuma/test/vm"
)

func main() { os.Exit(run(os.Args[1:])) }

var topologies = map[string]func() vm.Topology{
	"two":         vm.TwoNodes,
	"four-asym":   vm.FourNodesAsymmetric,
	"memory-only": vm.WithMemoryOnlyNode,
}

func run(args []string) int {
	fs := flag.NewFlagSet("testhost", flag.ContinueOnError)
	topo := fs.String("topology", "two", "the test host's NUMA topology: two (2 nodes × 2 CPUs), four-asym (4 nodes, asymmetric distances) or memory-only (2 nodes and a CPU-less one)")
	timeout := fs.Duration("timeout", 2*time.Minute, "power the test host off after this long")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: testhost [-topology two|four-asym|memory-only] [-timeout D] -- SCRIPT")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	mk, ok := topologies[*topo]
	if !ok || fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	ctx := context.Background()
	// build/ is shared at /qnuma: the qnuma that `make build` made runs inside.
	env := map[string]string{"PATH": "/qnuma:/usr/sbin:/usr/bin:/bb"}
	res, err := vm.Run(ctx, vm.Options{Topology: mk(), Timeout: *timeout, Env: env}, strings.Join(fs.Args(), " "))
	if res != nil {
		fmt.Print(res.Output)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "testhost:", err)
		if errors.Is(err, vm.ErrTimeout) {
			return 124
		}
		return 1
	}
	return res.ExitCode
}
