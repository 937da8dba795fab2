package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/qnuma/qnuma/doctor"
	"github.com/qnuma/qnuma/topology/topotest"
)

// doctorTree is a one-node, one-socket host with nothing wrong but what the
// edits add.
func doctorTree(t *testing.T, edits map[string]string) string {
	files := map[string]string{
		"sys/devices/system/cpu/online":                             "0-1\n",
		"sys/devices/system/cpu/cpu0/topology/physical_package_id":  "0\n",
		"sys/devices/system/cpu/cpu1/topology/physical_package_id":  "0\n",
		"sys/devices/system/cpu/cpu0/topology/thread_siblings_list": "0\n",
		"sys/devices/system/cpu/cpu1/topology/thread_siblings_list": "1\n",
		"sys/devices/system/node/node0/cpulist":                     "0-1\n",
		"sys/devices/system/node/node0/meminfo":                     "Node 0 MemTotal: 1048576 kB\nNode 0 MemFree: 1024 kB\n",
		"sys/kernel/mm/transparent_hugepage/enabled":                "always [madvise] never\n",
		"sys/kernel/mm/transparent_hugepage/shmem_enabled":          "always within_size [advise] never deny force\n",
		"proc/self/status": "Cpus_allowed_list:\t0-1\nMems_allowed_list:\t0\n",
		"dev/kvm":          "",
	}
	for k, v := range edits {
		files[k] = v
	}
	root := t.TempDir()
	topotest.WriteTree(t, root, files)
	return root
}

func TestDoctorExitCodes(t *testing.T) {
	qemu72 := func() (string, error) { return "QEMU emulator version 7.2.22\n", nil }
	tests := []struct {
		name  string
		edits map[string]string
		code  int // 0: no error
	}{
		{"all ok", nil, 0},
		{"a warning", map[string]string{"proc/9/comm": "numad\n"}, 1},
		{"an error", map[string]string{"sys/devices/system/cpu/online": "zz\n"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			c := &DoctorCmd{JSON: true, Root: doctorTree(t, tt.edits)}
			err := c.write(&out, doctor.Env{QEMUVersion: qemu72})
			var ee *ExitError
			switch {
			case tt.code == 0 && err != nil:
				t.Fatalf("err = %v, want none", err)
			case tt.code != 0 && (!errors.As(err, &ee) || ee.Code != tt.code || ee.Err != nil):
				t.Fatalf("err = %#v, want a silent exit %d", err, tt.code)
			}
			var rs []doctor.Result
			if err := json.Unmarshal(out.Bytes(), &rs); err != nil || len(rs) < 10 {
				t.Fatalf("doctor --json: %v: %s", err, out.String())
			}
		})
	}
	var out bytes.Buffer
	c := &DoctorCmd{Root: doctorTree(t, map[string]string{"proc/9/comm": "numad\n"})}
	c.write(&out, doctor.Env{QEMUVersion: qemu72})
	for _, want := range []string{"warn   numad", "numad is running (pid 9)", "why: numad moves", "fix: systemctl disable --now numad", "ok     qemu"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("doctor text lacks %q:\n%s", want, out.String())
		}
	}
}
