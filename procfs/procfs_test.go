package procfs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "small"), []byte("abc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := Read(dir, "small", 4); err != nil || string(b) != "abc\n" {
		t.Errorf("Read(small, 4) = %q, %v", b, err)
	}
	if _, err := Read(dir, "small", 3); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Read(small, 3) = %v, want ErrTooLarge", err)
	}
	if _, err := Read(dir, "fifo", 10); !errors.Is(err, ErrNotRegular) {
		t.Errorf("Read(fifo) = %v, want ErrNotRegular", err)
	}
	if _, err := Read(dir, "missing", 10); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Read(missing) = %v, want ErrNotExist", err)
	}
	if b, err := Read("", PID(os.Getpid(), "stat"), Small); err != nil || len(b) == 0 {
		t.Errorf("Read(/proc/self/stat) = %q, %v", b, err)
	}
}
