package topology

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/qnuma/qnuma/topology/topotest"
)

// TestSnapshotsMatchExpected reads every shared snapshot of a real machine
// and checks the JSON report against the facts in its .expected.json: the
// same keys, the same values, every node.
func TestSnapshotsMatchExpected(t *testing.T) {
	names := topotest.Snapshots(t)
	if len(names) == 0 {
		t.Fatal("the snapshot folder holds no snapshots")
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			root := topotest.Unpack(t, name)
			if got, want := filepath.Base(root), topotest.Expected(t, name)["root_in_archive"]; got != want {
				t.Errorf("unpacked root %q, expected.json says %q", got, want)
			}
			h, err := Read(root)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			out, err := json.Marshal(h.Report())
			if err != nil {
				t.Fatalf("marshal report: %v", err)
			}
			topotest.MatchExpected(t, name, out)
		})
	}
}
