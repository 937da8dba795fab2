package qemuversion

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// VersionCache remembers what each QEMU binary said to -version, keyed by
// the binary's identity (path, device, inode, size, modification time), so
// that a launch does not spend tens of milliseconds running `qemu -version`
// every time. A binary that is upgraded or replaced has a new identity and
// is asked again.
type VersionCache struct {
	// Dir holds one small file per binary; "" disables the cache.
	Dir string
}

// DefaultVersionCacheDir is $XDG_CACHE_HOME/qnuma (~/.cache/qnuma), or ""
// when the user has no cache directory.
func DefaultVersionCacheDir() string {
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "qnuma")
}

// binaryID is what makes a cached answer still true.
type binaryID struct {
	Path    string `json:"path"`
	Dev     uint64 `json:"dev"`
	Ino     uint64 `json:"ino"`
	Size    int64  `json:"size"`
	MtimeNS int64  `json:"mtime_ns"`
}

type cachedVersion struct {
	Binary binaryID `json:"binary"`
	Output string   `json:"output"` // what -version printed; parsed on every read
}

// Probe returns binary's version from the cache when the binary is the one
// that was asked, else runs it (ProbeVersion) and remembers the answer.
// The cache only saves time: a cache that cannot be read or written is
// passed over, never an error.
func (c VersionCache) Probe(ctx context.Context, binary string) (Version, error) {
	if c.Dir == "" {
		return ProbeVersion(ctx, binary)
	}
	id, err := identify(binary)
	if err != nil {
		return ProbeVersion(ctx, binary) // its error names the binary
	}
	file := c.file(id)
	if v, ok := c.read(file, id); ok {
		return v, nil
	}
	v, out, err := probe(ctx, binary)
	if err != nil {
		return Version{}, err
	}
	c.store(file, cachedVersion{Binary: id, Output: out})
	return v, nil
}

// Cached is binary's version when the cache holds it for the binary as it
// is now; it never runs the binary.
func (c VersionCache) Cached(binary string) (Version, bool) {
	if c.Dir == "" {
		return Version{}, false
	}
	id, err := identify(binary)
	if err != nil {
		return Version{}, false
	}
	return c.read(c.file(id), id)
}

func (c VersionCache) file(id binaryID) string {
	return filepath.Join(c.Dir, "qemu-version-"+pathKey(id.Path)+".json")
}

// read is the cached answer in file, when it is for the binary id.
func (c VersionCache) read(file string, id binaryID) (Version, bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		return Version{}, false
	}
	var cv cachedVersion
	if json.Unmarshal(b, &cv) != nil || cv.Binary != id {
		return Version{}, false
	}
	v, err := ParseVersion(cv.Output)
	return v, err == nil
}

// store writes the entry atomically; failing that, the next launch asks
// the binary again, which is all a lost entry costs.
func (c VersionCache) store(file string, cv cachedVersion) {
	b, err := json.Marshal(cv)
	if err != nil || os.MkdirAll(c.Dir, 0o755) != nil {
		return
	}
	tmp, err := os.CreateTemp(c.Dir, ".qemu-version-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(b)
	cerr := tmp.Close()
	if werr != nil || cerr != nil || os.Rename(tmp.Name(), file) != nil {
		os.Remove(tmp.Name())
	}
}

func identify(binary string) (binaryID, error) {
	path, err := exec.LookPath(binary)
	if err != nil {
		return binaryID{}, err
	}
	if path, err = filepath.Abs(path); err != nil {
		return binaryID{}, err
	}
	if resolved, err := filepath.EvalSymlinks(path); err == nil {
		path = resolved
	}
	fi, err := os.Stat(path)
	if err != nil {
		return binaryID{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return binaryID{}, fmt.Errorf("stat %s: no inode", path)
	}
	return binaryID{Path: path, Dev: uint64(st.Dev), Ino: st.Ino, Size: fi.Size(), MtimeNS: fi.ModTime().UnixNano()}, nil
}

func pathKey(path string) string {
	sum := sha256.Sum256([]byte(path))
	return hex.EncodeToString(sum[:8])
}
