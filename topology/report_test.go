package topology

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/qnuma/qnuma/topology/topotest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test ./topology -update to create it): %v", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the golden file (go test ./topology -update rewrites it)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// TestTextGolden pins the readable report of every snapshot: sparse ids,
// memory-only nodes, mixed SMT, 17-node matrices and each allowed source.
func TestTextGolden(t *testing.T) {
	for _, name := range topotest.Snapshots(t) {
		t.Run(name, func(t *testing.T) {
			h, err := Read(topotest.Unpack(t, name))
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			golden(t, name+".txt", []byte(h.Text()))
		})
	}
}

// TestJSONGolden pins the whole JSON report, keys beyond the expected
// facts included (hugepages, cpus[]), for one common server.
func TestJSONGolden(t *testing.T) {
	const name = "32intel64-2p8co2t+8ve"
	h, err := Read(topotest.Unpack(t, name))
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	out, err := json.MarshalIndent(h.Report(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, name+".json", append(out, '\n'))
}
