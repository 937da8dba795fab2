package vm

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
)

// xzMagic starts an xz stream; Debian compresses the bzImage payload with xz.
var xzMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}

// xenElfNotePhys32Entry is XEN_ELFNOTE_PHYS32_ENTRY, the PVH entry point
// QEMU needs to boot an ELF kernel directly (skipping the real-mode setup
// and decompression: about 2 s under TCG).
const xenElfNotePhys32Entry = 18

// extractVmlinux writes the ELF kernel inside bzImage to dst and checks
// that it has the PVH entry note.
func extractVmlinux(ctx context.Context, bzImage, dst string) error {
	data, err := os.ReadFile(bzImage)
	if err != nil {
		return fmt.Errorf("extract vmlinux: %w", err)
	}
	off := bytes.Index(data, xzMagic)
	if off < 0 {
		return fmt.Errorf("extract vmlinux from %s: no xz payload", bzImage)
	}
	tmp := dst + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("extract vmlinux: %w", err)
	}
	defer os.Remove(tmp)
	// --single-stream: the payload is followed by other data in the bzImage.
	cmd := exec.CommandContext(ctx, "xz", "-dc", "--single-stream")
	cmd.Stdin = bytes.NewReader(data[off:])
	cmd.Stdout = out
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	runErr := cmd.Run()
	if err := out.Close(); err != nil && runErr == nil {
		runErr = err
	}
	if runErr != nil {
		return fmt.Errorf("extract vmlinux from %s: xz: %w: %s", bzImage, runErr, bytes.TrimSpace(stderr.Bytes()))
	}
	if err := checkPVHNote(tmp); err != nil {
		return fmt.Errorf("extract vmlinux from %s: %w", bzImage, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("extract vmlinux: %w", err)
	}
	return nil
}

// checkPVHNote reports whether path is an x86-64 ELF with a Xen PVH entry
// note, without which QEMU refuses to boot it.
func checkPVHNote(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("read elf %s: %w", path, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("elf %s is for %s, want x86-64", path, f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		notes := make([]byte, p.Filesz)
		if _, err := p.ReadAt(notes, 0); err != nil {
			return fmt.Errorf("read notes of %s: %w", path, err)
		}
		if hasNote(notes, "Xen", xenElfNotePhys32Entry) {
			return nil
		}
	}
	return errors.New("elf " + path + " has no PVH entry note")
}

// hasNote walks ELF notes (namesz, descsz, type, name, desc; 4-aligned).
func hasNote(b []byte, name string, typ uint32) bool {
	le := binary.LittleEndian
	for len(b) >= 12 {
		namesz, descsz, t := le.Uint32(b), le.Uint32(b[4:]), le.Uint32(b[8:])
		b = b[12:]
		nlen, dlen := align4(namesz), align4(descsz)
		if uint64(len(b)) < uint64(nlen)+uint64(dlen) {
			return false
		}
		n := string(bytes.TrimRight(b[:namesz], "\x00"))
		if n == name && t == typ {
			return true
		}
		b = b[nlen+dlen:]
	}
	return false
}

func align4(n uint32) uint32 { return (n + 3) &^ 3 }
