package domxml

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"k8s.io/utils/cpuset"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json and *.summary.txt")

// TestGolden parses every testdata/*.xml and compares the Domain, as JSON
// with sets written in libvirt's list syntax, and its Summary with the
// golden files.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.xml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/*.xml: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".xml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			d, err := Parse(data)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got, err := json.MarshalIndent(jsonView(reflect.ValueOf(d)), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			compareGolden(t, strings.TrimSuffix(f, ".xml")+".golden.json", got)
			compareGolden(t, strings.TrimSuffix(f, ".xml")+".summary.txt", []byte(d.Summary()))
		})
	}
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./domxml -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test ./domxml -update rewrites it); got:\n%s", path, got)
	}
}

var setType = reflect.TypeOf(cpuset.CPUSet{})

// jsonView turns a value into plain JSON data: structs into objects keyed
// by field name, cpuset.CPUSet into its list string ("0-3,8").
func jsonView(v reflect.Value) any {
	if v.Type() == setType {
		return v.Interface().(cpuset.CPUSet).String()
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		return jsonView(v.Elem())
	case reflect.Struct:
		m := map[string]any{}
		for i := 0; i < v.NumField(); i++ {
			m[v.Type().Field(i).Name] = jsonView(v.Field(i))
		}
		return m
	case reflect.Slice:
		out := []any{}
		for i := 0; i < v.Len(); i++ {
			out = append(out, jsonView(v.Index(i)))
		}
		return out
	default:
		return v.Interface()
	}
}
