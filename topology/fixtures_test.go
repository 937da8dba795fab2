package topology

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/qnuma/qnuma/topology/topotest"
)

// TestSnapshots reads every shared snapshot of a real machine (unpacked
// once: thousands of files) and checks the JSON report against the facts
// in its .expected.json (the same keys, the same values, every node), and
// the text report against its golden file; for the common server, the
// whole JSON report (hugepages, cpus[]) against its golden file too.
// jsonGolden is the snapshot whose whole JSON report is pinned.
const jsonGolden = "32intel64-2p8co2t+8ve"

func TestSnapshots(t *testing.T) {
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
			golden(t, name+".txt", []byte(h.Text()))
			if name == jsonGolden {
				indented, err := json.MarshalIndent(h.Report(), "", "  ")
				if err != nil {
					t.Fatal(err)
				}
				golden(t, name+".json", append(indented, '\n'))
			}
		})
	}
}
