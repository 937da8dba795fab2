package memobj

import "fmt"

// BackendType is the kind of QEMU host memory backend.
type BackendType string

const (
	// BackendRAM is anonymous memory (memory-backend-ram).
	BackendRAM BackendType = "ram"
	// BackendMemfd is a memfd, optionally on hugetlbfs (memory-backend-memfd).
	BackendMemfd BackendType = "memfd"
	// BackendFile maps a file or a hugetlbfs mount (memory-backend-file).
	BackendFile BackendType = "file"
)

// ParseBackendType accepts ram, memfd or file.
func ParseBackendType(s string) (BackendType, error) {
	switch t := BackendType(s); t {
	case BackendRAM, BackendMemfd, BackendFile:
		return t, nil
	}
	return "", fmt.Errorf("unknown memory backend type %q: want ram, memfd or file", s)
}
