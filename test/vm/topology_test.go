package vm

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestTopologyArgs(t *testing.T) {
	tests := []struct {
		name    string
		topo    Topology
		want    []string
		wantErr string
	}{
		{
			name: "one node, default distances",
			topo: Topology{Nodes: []Node{{CPUs: 2, MemoryMiB: 256}}},
			want: []string{
				"-m", "256M", "-smp", "2,sockets=2,cores=1,threads=1",
				"-object", "memory-backend-ram,id=m0,size=256M", "-numa", "node,nodeid=0,memdev=m0",
				"-numa", "cpu,node-id=0,socket-id=0", "-numa", "cpu,node-id=0,socket-id=1",
			},
		},
		{
			name: "memory-only and memory-less nodes, asymmetric distances",
			topo: Topology{
				Nodes:     []Node{{CPUs: 1, MemoryMiB: 0}, {CPUs: 1, MemoryMiB: 128}, {CPUs: 0, MemoryMiB: 64}},
				Distances: [][]int{{10, 15, 30}, {25, 10, 30}, {30, 31, 10}},
			},
			want: []string{
				"-m", "192M", "-smp", "2,sockets=2,cores=1,threads=1",
				"-numa", "node,nodeid=0",
				"-object", "memory-backend-ram,id=m1,size=128M", "-numa", "node,nodeid=1,memdev=m1",
				"-object", "memory-backend-ram,id=m2,size=64M", "-numa", "node,nodeid=2,memdev=m2",
				"-numa", "cpu,node-id=0,socket-id=0", "-numa", "cpu,node-id=1,socket-id=1",
				"-numa", "dist,src=0,dst=1,val=15", "-numa", "dist,src=0,dst=2,val=30",
				"-numa", "dist,src=1,dst=0,val=25", "-numa", "dist,src=1,dst=2,val=30",
				"-numa", "dist,src=2,dst=0,val=30", "-numa", "dist,src=2,dst=1,val=31",
			},
		},
		{name: "no nodes", topo: Topology{}, wantErr: "no nodes"},
		{name: "no cpus", topo: Topology{Nodes: []Node{{MemoryMiB: 64}}}, wantErr: "no node has CPUs"},
		{name: "no memory", topo: Topology{Nodes: []Node{{CPUs: 1}}}, wantErr: "no node has memory"},
		{name: "empty node", topo: Topology{Nodes: []Node{{CPUs: 1, MemoryMiB: 64}, {}}}, wantErr: "node 1 has neither"},
		{name: "negative", topo: Topology{Nodes: []Node{{CPUs: 1, MemoryMiB: -1}, {CPUs: 1, MemoryMiB: 64}}}, wantErr: "negative"},
		{
			name:    "short matrix",
			topo:    Topology{Nodes: []Node{{CPUs: 1, MemoryMiB: 64}, {CPUs: 1, MemoryMiB: 64}}, Distances: [][]int{{10, 20}}},
			wantErr: "1 distance rows for 2 nodes",
		},
		{
			name:    "ragged row",
			topo:    Topology{Nodes: []Node{{CPUs: 1, MemoryMiB: 64}, {CPUs: 1, MemoryMiB: 64}}, Distances: [][]int{{10, 20}, {20}}},
			wantErr: "row 1 has 1 entries",
		},
		{
			name:    "local distance not 10",
			topo:    Topology{Nodes: []Node{{CPUs: 1, MemoryMiB: 64}, {CPUs: 1, MemoryMiB: 64}}, Distances: [][]int{{10, 20}, {20, 11}}},
			wantErr: "distance 1→1 is 11, want 10",
		},
		{
			name:    "remote distance not above local",
			topo:    Topology{Nodes: []Node{{CPUs: 1, MemoryMiB: 64}, {CPUs: 1, MemoryMiB: 64}}, Distances: [][]int{{10, 10}, {20, 10}}},
			wantErr: "distance 0→1 is 10, want 11 to 254",
		},
		{
			name:    "unreachable",
			topo:    Topology{Nodes: []Node{{CPUs: 1, MemoryMiB: 64}, {CPUs: 1, MemoryMiB: 64}}, Distances: [][]int{{10, 255}, {20, 10}}},
			wantErr: "want 11 to 254",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.topo.Args()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Args() error = %v, want one containing %q", err, tt.wantErr)
				}
				if got != nil {
					t.Errorf("Args() returned %q with the error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Args(): %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Args() =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

// The ready-made topologies, one argument per line in testdata/.
func TestTopologyConstructorsGolden(t *testing.T) {
	for name, topo := range map[string]Topology{
		"two-nodes":        TwoNodes(),
		"four-nodes-asym":  FourNodesAsymmetric(),
		"memory-only-node": WithMemoryOnlyNode(),
	} {
		t.Run(name, func(t *testing.T) {
			args, err := topo.Args()
			if err != nil {
				t.Fatalf("Args(): %v", err)
			}
			golden(t, filepath.Join("testdata", "args-"+name+".golden"), strings.Join(args, "\n")+"\n")
		})
	}
}

func TestFourNodesAsymmetricIsAsymmetric(t *testing.T) {
	d := FourNodesAsymmetric().Distances
	asym := 0
	for i := range d {
		for j := range d {
			if d[i][j] != d[j][i] {
				asym++
			}
		}
	}
	if asym == 0 {
		t.Fatal("FourNodesAsymmetric has a symmetric distance matrix")
	}
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (go test ./test/vm -update writes it): %v", err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}
