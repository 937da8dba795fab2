package topology

import (
	"testing"
)

// TestReadAllowed checks each place the allowed sets can come from, on the
// base tree (cpus 0-3, nodes 0-1).
func TestReadAllowed(t *testing.T) {
	const (
		v1Mounts = "cgroup /sys/fs/cgroup/cpuset cgroup rw,nosuid,cpuset 0 0\ncgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n"
		v2Mounts = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid 0 0\n"
	)
	for _, tc := range []struct {
		name       string
		edits      map[string]string
		cpus, mems string
		source     string
	}{
		{
			name: "nothing: all online cpus and every node",
			cpus: "0-3", mems: "0-1", source: SourceNone,
		},
		{
			name:  "proc status, cut to online cpus and present nodes",
			edits: map[string]string{"proc/self/status": "Name:\tqnuma\nCpus_allowed_list:\t1-7\nMems_allowed_list:\t1-3\n"},
			cpus:  "1-3", mems: "1", source: SourceProcStatus,
		},
		{
			name: "proc status wins over the cgroup",
			edits: map[string]string{
				"proc/self/status": "Cpus_allowed_list:\t0-3\nMems_allowed_list:\t0-1\n",
				"proc/mounts":      v1Mounts, "proc/self/cgroup": "3:cpuset:/\n",
				"sys/fs/cgroup/cpuset/cpuset.cpus": "2\n", "sys/fs/cgroup/cpuset/cpuset.mems": "1\n",
			},
			cpus: "0-3", mems: "0-1", source: SourceProcStatus,
		},
		{
			name: "old status without lists: cgroup v1 cpuset from proc/self/cgroup",
			edits: map[string]string{
				"proc/self/status": "Name:\tqnuma\nCpus_allowed:\tf\n",
				"proc/mounts":      v1Mounts, "proc/self/cgroup": "4:memory:/m\n3:cpuset:/vm\n",
				"sys/fs/cgroup/cpuset/vm/cpuset.cpus": "1-2\n", "sys/fs/cgroup/cpuset/vm/cpuset.mems": "1\n",
				// cpuset.cpus, not the effective set, as for the shared snapshots.
				"sys/fs/cgroup/cpuset/vm/cpuset.effective_cpus": "1\n",
			},
			cpus: "1-2", mems: "1", source: SourceCgroupV1,
		},
		{
			name: "legacy cpuset filesystem from proc/self/cpuset",
			edits: map[string]string{
				"proc/mounts": "none /dev/cpuset cpuset rw 0 0\n", "proc/self/cpuset": "/dummy\n",
				"dev/cpuset/dummy/cpus": "0-1,3-9\n", "dev/cpuset/dummy/mems": "0\n",
			},
			cpus: "0-1,3", mems: "0", source: SourceCpusetV1,
		},
		{
			name: "cgroup v2",
			edits: map[string]string{
				"proc/mounts": v2Mounts, "proc/self/cgroup": "0::/a/b\n",
				"sys/fs/cgroup/a/b/cpuset.cpus.effective": "2-3\n", "sys/fs/cgroup/a/b/cpuset.mems.effective": "1\n",
			},
			cpus: "2-3", mems: "1", source: SourceCgroupV2,
		},
		{
			name: "cgroup v2 without the cpuset controller here: nearest ancestor's",
			edits: map[string]string{
				"proc/mounts": v2Mounts, "proc/self/cgroup": "0::/a/b/c\n",
				"sys/fs/cgroup/a/b/c/cgroup.procs":      "1\n",
				"sys/fs/cgroup/a/cpuset.cpus.effective": "0\n", "sys/fs/cgroup/a/cpuset.mems.effective": "0\n",
				"sys/fs/cgroup/cpuset.cpus.effective": "0-3\n", "sys/fs/cgroup/cpuset.mems.effective": "0-1\n",
			},
			cpus: "0", mems: "0", source: SourceCgroupV2,
		},
		{
			name: "cgroup v2 path from proc/self/cpuset, mount point with a space",
			edits: map[string]string{
				"proc/mounts": `none /cg\040v2 cgroup2 rw 0 0` + "\n", "proc/self/cpuset": "/job\n",
				"cg v2/job/cpuset.cpus.effective": "0-5\n", "cg v2/job/cpuset.mems.effective": "0-5\n",
			},
			cpus: "0-3", mems: "0-1", source: SourceCgroupV2,
		},
		{
			name: "hybrid: the v1 cpuset controller wins",
			edits: map[string]string{
				"proc/mounts":                      v1Mounts + "cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n",
				"proc/self/cgroup":                 "3:cpuset:/\n0::/user\n",
				"sys/fs/cgroup/cpuset/cpuset.cpus": "3\n", "sys/fs/cgroup/cpuset/cpuset.mems": "1\n",
				"sys/fs/cgroup/unified/user/cpuset.cpus.effective": "0\n", "sys/fs/cgroup/unified/user/cpuset.mems.effective": "0\n",
			},
			cpus: "3", mems: "1", source: SourceCgroupV1,
		},
		{
			name: "v1 cpuset mounted but the process's cgroup is not there",
			edits: map[string]string{
				"proc/mounts": v1Mounts, "proc/self/cgroup": "3:cpuset:/elsewhere\n",
				"sys/fs/cgroup/cpuset/cpuset.cpus": "3\n", "sys/fs/cgroup/cpuset/cpuset.mems": "1\n",
			},
			cpus: "0-3", mems: "0-1", source: SourceNone,
		},
		{
			name: "cgroup outside this namespace cannot be mapped",
			edits: map[string]string{
				"proc/mounts": v2Mounts, "proc/self/cgroup": "0::/../../x\n",
				"x/cpuset.cpus.effective": "1\n", "x/cpuset.mems.effective": "1\n",
			},
			cpus: "0-3", mems: "0-1", source: SourceNone,
		},
		{
			name:  "mounts without any cpuset",
			edits: map[string]string{"proc/mounts": "proc /proc proc rw 0 0\n", "proc/self/cgroup": "0::/\n"},
			cpus:  "0-3", mems: "0-1", source: SourceNone,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := Read(writeHost(t, baseTree(), tc.edits))
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			a := h.Allowed
			if a.CPUs.String() != tc.cpus || a.Mems.String() != tc.mems || a.Source != tc.source {
				t.Errorf("allowed cpus %q mems %q from %q; want %q, %q from %q", a.CPUs, a.Mems, a.Source, tc.cpus, tc.mems, tc.source)
			}
			r := h.Report()
			if (r.AllowedMems == nil) != (tc.source == SourceNone) {
				t.Errorf("report allowed_mems %v with source %q: want null exactly when nothing restricts", r.AllowedMems, tc.source)
			}
		})
	}
}
