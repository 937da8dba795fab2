package launcher

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/qnuma/qnuma/affinity/affinitytest"
)

// TestVCPUAndIOThreadQueriesGoTogether: query-iothreads is sent with
// query-cpus-fast, not after its answer, so that the two cost one round
// trip to qemu. The fake answers query-cpus-fast only once query-iothreads
// has arrived too; a launcher that waited in between would time out.
func TestVCPUAndIOThreadQueriesGoTogether(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a fake qemu: skipped under -short")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := testPlan(t, 1)
	cfg := baseConfig(t, []string{self}, p)
	cfg.Env = append(os.Environ(), fakeQEMUEnv+"=pipelined")
	cfg.QMPTimeout = 3 * time.Second
	cfg.Sys = &affinitytest.Fake{}
	cfg.Timeout = 100 * time.Millisecond // the fake runs until stopped
	cfg.Grace = 100 * time.Millisecond
	res, err := Launch(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	if !res.TimedOut || len(res.VCPUThreads) != 1 || res.VCPUThreads[0] != res.PID {
		t.Errorf("Launch = %+v, want a VM whose vCPU 0 is the fake's pid %d, stopped by --timeout", res, res.PID)
	}
	requireGone(t, res.PID)
}
