package topology

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
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

func TestDistancesJSON(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Distances
		want string
	}{
		{"numeric order", Distances{250: 80, 8: 40, 0: 10}, `{"0":10,"8":40,"250":80}`},
		{"absent", nil, `null`},
		{"empty", Distances{}, `{}`},
	} {
		got, err := json.Marshal(tc.in)
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: marshal = %s, %v; want %s", tc.name, got, err, tc.want)
		}
		var back map[int]int
		if err := json.Unmarshal(got, &back); err != nil || len(back) != len(tc.in) {
			t.Errorf("%s: %s does not read back: %v, %v", tc.name, got, back, err)
		}
	}
}

// TestReportShape checks the JSON of a node with no hugepages and no
// distances: [] and null, never a missing key.
func TestReportShape(t *testing.T) {
	h, err := Read(writeHost(t, baseTree(), map[string]string{nodeDir + "node0/distance": absent}))
	if err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(h.Report().Nodes[0])
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":0,"cpus":"0-1","memory_total_bytes":1073741824,"memory_free_bytes":536870912,"inactive_file_bytes":65536,"hugepages":[],"distances":null}`
	if string(out) != want {
		t.Errorf("node 0 report\n%s\nwant\n%s", out, want)
	}
}
