package ledger

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/qnuma/qnuma/cpulist"
)

// FuzzEntryJSON fuzzes the decoding of a ledger file: any user who can
// write the ledger directory, or a torn write, can put anything there.
// Decoding never panics or allocates per id (dedicated_cpus
// "0-2147483647" used to exhaust memory), and what decodes writes back to
// the same entry.
func FuzzEntryJSON(f *testing.F) {
	for _, s := range []string{
		`{"version":1,"name":"web","owner":{"pid":4121,"start_time":348611},"qemu":{"pid":4130,"start_time":348700},` +
			`"host_nodes":[0,1],"memory_bytes":{"0":1073741824,"1":1073741824},"vcpus":{"0":2,"1":2},` +
			`"dedicated_cpus":"8-9,24","vcpu_home_nodes":[[0],[0],[1],[1]],"hugepage_bytes":2097152,"created":"2026-12-01T09:00:00Z"}`,
		`{"version":1,"name":"someone-else","owner":{"pid":1,"start_time":1},"dedicated_cpus":""}`,
		`{"version":1,"name":"nopid","dedicated_cpus":""}`,
		`{"version":1,`, `{"version":2,"name":"a"}`, `{"version":1,"name":"a","dedicated_cpus":"3-1"}`,
		`{"version":1,"name":"planted","dedicated_cpus":"0-2147483647"}`,
		`{"version":1,"name":"a","dedicated_cpus":"0-65535,0-65535"}`,
		`{"version":1,"name":"a","memory_bytes":{"-1":1,"x":2}}`,
		`{"version":1,"name":"a","vcpus":{"0":-5},"memory_bytes":{"0":18446744073709551615,"1":1}}`,
		`{"version":1,"name":"a","created":"not a time"}`,
		`null`, `[]`, `""`, `{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var e Entry
		if err := json.Unmarshal(b, &e); err != nil {
			return
		}
		if n := e.DedicatedCPUs.Size(); n > cpulist.MaxID {
			t.Fatalf("%q: %d dedicated cpus", b, n)
		}
		out, err := json.Marshal(e)
		if err != nil {
			return // a time outside what encoding/json writes
		}
		var back Entry
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("%q decoded, wrote %s, which does not decode: %v", b, out, err)
		}
		if !back.DedicatedCPUs.Equals(e.DedicatedCPUs) || back.Name != e.Name || back.Owner != e.Owner || back.QEMU != e.QEMU ||
			!back.Created.Equal(e.Created) || back.TotalMemory() != e.TotalMemory() || back.TotalVCPUs() != e.TotalVCPUs() {
			t.Errorf("%q: decoded %+v, wrote %s, read back %+v", b, e, out, back)
		}
		again, err := json.Marshal(back)
		if err != nil || !bytes.Equal(again, out) {
			t.Errorf("%q: wrote %s, then %s (%v)", b, out, again, err)
		}
	})
}
