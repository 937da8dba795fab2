package vm

import (
	"context"
	"testing"
)

func TestBootSmoke(t *testing.T) {
	Require(t)
	res, err := Run(context.Background(), Options{Topology: TwoNodes()}, `
for n in /sys/devices/system/node/node*; do echo $n $(cat $n/cpulist) $(cat $n/distance); done
numactl -H
exit 3`)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("exit %d in %s\noutput:\n%s\nconsole:\n%s", res.ExitCode, res.Elapsed, res.Output, res.Console)
}
