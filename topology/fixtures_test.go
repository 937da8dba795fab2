package topology

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/qnuma/qnuma/topology/topotest"
)

// decodeJSON decodes with numbers kept exact (memory sizes pass 2^53 on
// large machines).
func decodeJSON(t *testing.T, data []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode json: %v\n%s", err, data)
	}
	return m
}

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
			expectedJSON, err := os.ReadFile(filepath.Join(topotest.Fixtures(t), name+".expected.json"))
			if err != nil {
				t.Fatalf("read expected facts: %v", err)
			}
			want := decodeJSON(t, expectedJSON)
			root := topotest.Unpack(t, name)
			if got := filepath.Base(root); got != want["root_in_archive"] {
				t.Errorf("unpacked root %q, expected.json says %q", got, want["root_in_archive"])
			}
			h, err := Read(root)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			out, err := json.Marshal(h.Report())
			if err != nil {
				t.Fatalf("marshal report: %v", err)
			}
			got := decodeJSON(t, out)
			delete(want, "snapshot")
			delete(want, "root_in_archive")
			compareFacts(t, "", want, got)
		})
	}
}

// compareFacts checks that every key of want is in got with the same
// value; nodes are compared key by key too, so extra report keys are fine.
func compareFacts(t *testing.T, where string, want, got map[string]any) {
	t.Helper()
	for _, k := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s%s: missing from the report", where, k)
			continue
		}
		if k == "nodes" {
			wn, gn := want[k].([]any), g.([]any)
			if len(wn) != len(gn) {
				t.Errorf("%snodes: %d in the report, want %d", where, len(gn), len(wn))
				continue
			}
			for i := range wn {
				wi := wn[i].(map[string]any)
				compareFacts(t, fmt.Sprintf("%snode %v: ", where, wi["id"]), wi, gn[i].(map[string]any))
			}
			continue
		}
		if !reflect.DeepEqual(g, want[k]) {
			t.Errorf("%s%s = %v, want %v", where, k, g, want[k])
		}
	}
}
