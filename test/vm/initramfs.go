package vm

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// prepareInitrd builds (once per input hash) an initramfs of busybox, the
// modules from kdir (those in order are listed in modules/order for init to
// load, the extra ones only copied), and files; it returns its path.
func prepareInitrd(dir, kind, kdir string, modules, extra []string, files map[string][]byte) (string, error) {
	bb, err := os.ReadFile(busyboxPath)
	if err != nil {
		return "", fmt.Errorf("build %s initramfs: %w (install busybox-static)", kind, err)
	}
	builtin, _ := os.ReadFile(filepath.Join(kdir, "modules.builtin"))
	entries := baseEntries(kind, bb)
	var order []string
	for i, m := range append(append([]string{}, modules...), extra...) {
		data, err := os.ReadFile(filepath.Join(kdir, "modules", m+".ko"))
		if err != nil {
			if isBuiltin(builtin, m) {
				continue
			}
			return "", fmt.Errorf("build %s initramfs: module %s: %w", kind, m, err)
		}
		entries["modules/"+m+".ko"] = cpioEntry{Mode: 0o644, Data: data}
		if i < len(modules) {
			order = append(order, m)
		}
	}
	if modules != nil {
		entries["modules/order"] = cpioEntry{Mode: 0o644, Data: []byte(strings.Join(order, "\n") + "\n")}
	}
	for name, data := range files {
		mode := uint32(0o644)
		if name == "init" {
			mode = 0o755
		}
		entries[name] = cpioEntry{Mode: mode, Data: data}
	}
	for name := range entries {
		for d := filepath.Dir(name); d != "."; d = filepath.Dir(d) {
			if _, ok := entries[d]; !ok {
				entries[d] = cpioEntry{Mode: 0o755, Dir: true}
			}
		}
	}
	var buf bytes.Buffer
	if err := writeCPIO(&buf, entries); err != nil {
		return "", fmt.Errorf("build %s initramfs: %w", kind, err)
	}
	// The archive is reproducible, so its own hash is the key over every
	// input: the init scripts, the module list and files, busybox.
	sum := sha256.Sum256(buf.Bytes())
	path := filepath.Join(dir, kind+"-"+hex.EncodeToString(sum[:8])+".cpio")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	progress("vm: writing the %s initramfs %s", kind, path)
	if err := writeFileAtomic(path, buf.Bytes()); err != nil {
		return "", fmt.Errorf("build %s initramfs: %w", kind, err)
	}
	// Older builds are dead weight; a QEMU still booting one has it open,
	// which unlinking does not disturb.
	old, _ := filepath.Glob(filepath.Join(dir, kind+"-*.cpio"))
	for _, o := range old {
		if o != path {
			if err := os.Remove(o); err != nil {
				return "", fmt.Errorf("build %s initramfs: remove the old %s: %w", kind, o, err)
			}
		}
	}
	return path, nil
}

// baseEntries is the root every initramfs shares: busybox at /bb with the
// directories init mounts on. The test host's /bin, /lib... point into the
// host's /usr (Debian's merged /usr), shared over 9p.
func baseEntries(kind string, busybox []byte) map[string]cpioEntry {
	e := map[string]cpioEntry{
		"bb/busybox":  {Mode: 0o755, Data: busybox},
		"bb/sh":       {Link: "busybox"},
		"dev/console": {Mode: 0o600, Char: true, Major: 5, Minor: 1},
	}
	for _, d := range []string{"proc", "sys", "dev", "tmp", "run", "etc", "root"} {
		e[d] = cpioEntry{Mode: 0o755, Dir: true}
	}
	if kind == "host" {
		e["usr"] = cpioEntry{Mode: 0o755, Dir: true}
		e["qnuma"] = cpioEntry{Mode: 0o755, Dir: true}
		e["job"] = cpioEntry{Mode: 0o755, Dir: true}
		e["mnt"] = cpioEntry{Mode: 0o755, Dir: true}
		for _, l := range []string{"bin", "sbin", "lib", "lib64"} {
			e[l] = cpioEntry{Link: "usr/" + l}
		}
		e["etc/passwd"] = cpioEntry{Mode: 0o644, Data: []byte("root:x:0:0:root:/root:/bin/sh\n")}
		e["etc/group"] = cpioEntry{Mode: 0o644, Data: []byte("root:x:0:\n")}
	} else {
		e["bin"] = cpioEntry{Link: "bb"}
	}
	return e
}

func isBuiltin(list []byte, module string) bool {
	for _, line := range strings.Split(string(list), "\n") {
		if moduleName(filepath.Base(line)) == module {
			return true
		}
	}
	return false
}
