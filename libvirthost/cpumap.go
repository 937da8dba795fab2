package libvirthost

import (
	"fmt"

	"k8s.io/utils/cpuset"
)

// maxCPUMap bounds the host CPUs a map from the daemon may describe.
const maxCPUMap = 65536

// CPUMap is cpus as libvirt's cpumap: bit i of byte i/8 is CPU i, in
// mapLen bytes. A CPU past the map is an error, never dropped.
func CPUMap(cpus cpuset.CPUSet, mapLen int) ([]byte, error) {
	m := make([]byte, mapLen)
	for _, c := range cpus.List() {
		if c < 0 || c/8 >= mapLen {
			return nil, fmt.Errorf("cpu %d is outside a cpumap of %d host cpus", c, mapLen*8)
		}
		m[c/8] |= 1 << (c % 8)
	}
	return m, nil
}

// ParseCPUMap is the CPUs set in a cpumap.
func ParseCPUMap(m []byte) (cpuset.CPUSet, error) {
	if len(m)*8 > maxCPUMap {
		return cpuset.New(), fmt.Errorf("cpumap of %d bytes: more than %d cpus", len(m), maxCPUMap)
	}
	var ids []int
	for i, b := range m {
		for bit := 0; bit < 8; bit++ {
			if b&(1<<bit) != 0 {
				ids = append(ids, i*8+bit)
			}
		}
	}
	return cpuset.New(ids...), nil
}

// MapLen is the bytes of a cpumap of hostCPUs CPUs (VIR_CPU_MAPLEN).
func MapLen(hostCPUs int) int { return (hostCPUs + 7) / 8 }

// SplitCPUMaps cuts n maps of mapLen bytes each out of buf.
func SplitCPUMaps(buf []byte, n, mapLen int) ([]cpuset.CPUSet, error) {
	if n < 0 || mapLen <= 0 || len(buf) < n*mapLen {
		return nil, fmt.Errorf("cpumaps: %d bytes for %d maps of %d bytes", len(buf), n, mapLen)
	}
	out := make([]cpuset.CPUSet, n)
	for i := range out {
		s, err := ParseCPUMap(buf[i*mapLen : (i+1)*mapLen])
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}
