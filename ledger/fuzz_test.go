package ledger

import (
	"reflect"
	"testing"
)

// FuzzEntryJSON: an entry file from outside never panics or exhausts
// memory (cpu lists are bounded, issue 11 item 15), and what parses
// writes back to the same entry.
func FuzzEntryJSON(f *testing.F) {
	f.Add(`{"version":1,"name":"a","owner":{"pid":1,"start_time":2},"host_nodes":[0],"memory_bytes":{"0":1048576},"vcpus":{"0":1},"dedicated_cpus":"0-1","vcpu_cpus":"0-1","emulator_cpus":"0","created":"2025-01-02T03:04:05Z"}`)
	f.Add(`{"version":1,"name":"a","dedicated_cpus":"0-2147483647"}`)
	f.Add(`{"version":1,"name":"a","emulator_cpus":"0-4294967297"}`)
	f.Add(`{"version":1,"name":"a","vcpu_cpus":"3-1"}`)
	f.Add(`{"version":2}`)
	f.Add(`{`)
	f.Add(`{"version":1,"name":"web","owner":{"pid":4121,"start_time":348611},"qemu":{"pid":4130,"start_time":348700},"host_nodes":[0,1],"memory_bytes":{"0":1073741824,"1":1073741824},"vcpus":{"0":2,"1":2},"dedicated_cpus":"8-9,24","vcpu_home_nodes":[[0],[0],[1],[1]],"hugepage_bytes":2097152,"created":"2026-12-01T09:00:00Z"}`)
	f.Add(`{"version":1,"name":"a","dedicated_cpus":"0-65535,0-65535"}`)
	f.Add(`{"version":1,"name":"a","memory_bytes":{"-1":1,"x":2}}`)
	f.Add(`{"version":1,"name":"a","vcpus":{"0":-5},"memory_bytes":{"0":18446744073709551615,"1":1}}`)
	f.Add(`{"version":1,"name":"a","created":"not a time"}`)
	f.Add(`null`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, s string) {
		var e Entry
		if err := e.UnmarshalJSON([]byte(s)); err != nil {
			return
		}
		b, err := e.MarshalJSON()
		if err != nil {
			t.Fatalf("marshal %+v: %v", e, err)
		}
		var back Entry
		if err := back.UnmarshalJSON(b); err != nil {
			t.Fatalf("re-read %s: %v", b, err)
		}
		if !reflect.DeepEqual(back.Placed(), e.Placed()) || back.Name != e.Name || back.Owner != e.Owner || back.QEMU != e.QEMU {
			t.Errorf("round trip of %s: got %+v, want %+v", s, back, e)
		}
	})
}
