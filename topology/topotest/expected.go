package topotest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// Expected returns the facts a reader must report for the snapshot, from
// its NAME.expected.json, decoded with exact numbers. It skips as Fixtures
// does.
func Expected(t testing.TB, snapshot string) map[string]any {
	t.Helper()
	name := strings.TrimSuffix(snapshot, suffix) + ".expected.json"
	data, err := os.ReadFile(filepath.Join(Fixtures(t), name))
	if err != nil {
		t.Fatalf("read expected facts: %v", err)
	}
	m, err := decode(data)
	if err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
	return m
}

// MatchExpected checks a `qnuma topology --json` report of the snapshot
// against its expected facts: every key they name (in nodes[] too) must be
// in the report with the same value; the report may have more keys.
func MatchExpected(t testing.TB, snapshot string, report []byte) {
	t.Helper()
	want := Expected(t, snapshot)
	delete(want, "snapshot")
	delete(want, "root_in_archive")
	got, err := decode(report)
	if err != nil {
		t.Fatalf("decode report: %v\n%s", err, report)
	}
	for _, diff := range compare("", want, got) {
		t.Errorf("%s: %s", snapshot, diff)
	}
}

// decode keeps numbers exact: memory sizes pass 2^53 on large machines.
func decode(data []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	err := dec.Decode(&m)
	return m, err
}

func compare(where string, want, got map[string]any) []string {
	var diffs []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[k]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("%s%s: missing from the report", where, k))
			continue
		}
		wn, isList := want[k].([]any)
		if k != "nodes" || !isList {
			if !reflect.DeepEqual(g, want[k]) {
				diffs = append(diffs, fmt.Sprintf("%s%s = %v, want %v", where, k, g, want[k]))
			}
			continue
		}
		gn, _ := g.([]any)
		if len(gn) != len(wn) {
			diffs = append(diffs, fmt.Sprintf("%snodes: %d in the report, want %d", where, len(gn), len(wn)))
			continue
		}
		for i := range wn {
			wi, _ := wn[i].(map[string]any)
			gi, _ := gn[i].(map[string]any)
			diffs = append(diffs, compare(fmt.Sprintf("%snode %v: ", where, wi["id"]), wi, gi)...)
		}
	}
	return diffs
}
