package vm

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// prepareKernel fills a's kernel fields and returns the unpacked kernel's
// directory (vmlinuz, vmlinux, modules/).
func prepareKernel(ctx context.Context, dir string, a *Assets) (string, error) {
	pkg, version, resolveErr := resolveKernel(ctx)
	if resolveErr != nil {
		// Offline with a cache: use what is there rather than fail.
		if kdir := newestKernelDir(dir); kdir != "" {
			progress("vm: %v; using the cached %s", resolveErr, filepath.Base(kdir))
			pkg, version, _ = strings.Cut(filepath.Base(kdir), "_")
		} else {
			progress("vm: apt lists lack the kernel package (%v); running apt-get update", resolveErr)
			if err := runCmd(ctx, "", "apt-get", "update", "-qq"); err != nil {
				return "", fmt.Errorf("prepare kernel: %w (after: %v)", err, resolveErr)
			}
			if pkg, version, resolveErr = resolveKernel(ctx); resolveErr != nil {
				return "", fmt.Errorf("prepare kernel: %w", resolveErr)
			}
		}
	}
	a.KernelPackage, a.KernelVersion = pkg, version
	kdir := filepath.Join(dir, "kernel", pkg+"_"+version)
	// Unpacked again when the module list changes; the .deb stays cached.
	list := strings.Join(wantedModules(), "\n") + "\n"
	if have, err := os.ReadFile(filepath.Join(kdir, "modules.list")); err != nil || string(have) != list {
		if err := unpackKernel(ctx, dir, kdir, pkg, version, list); err != nil {
			return "", err
		}
	}
	a.BzImage = filepath.Join(kdir, "vmlinuz")
	a.Kernel = a.BzImage
	vmlinux := filepath.Join(kdir, "vmlinux")
	if err := checkPVHNote(vmlinux); err == nil {
		a.Kernel = vmlinux
	} else if _, err := os.Stat(vmlinux + ".failed"); err != nil {
		progress("vm: extracting the ELF kernel from %s", a.BzImage)
		if err := extractVmlinux(ctx, a.BzImage, vmlinux); err != nil {
			// The bzImage boots too, only slower; remember not to retry.
			progress("vm: %v; booting the bzImage instead", err)
			if err := os.WriteFile(vmlinux+".failed", []byte(err.Error()+"\n"), 0o644); err != nil {
				return "", fmt.Errorf("prepare kernel: %w", err)
			}
		} else {
			a.Kernel = vmlinux
		}
	}
	return kdir, nil
}

var kernelDepRe = regexp.MustCompile(`(linux-image-[0-9][^ ,]*-amd64) \(= ([^)]+)\)`)

// resolveKernel finds the versioned package linux-image-amd64 depends on.
func resolveKernel(ctx context.Context) (pkg, version string, err error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "show", "--no-all-versions", "linux-image-amd64").Output()
	if err != nil {
		return "", "", fmt.Errorf("apt-cache show linux-image-amd64: %w", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "Depends:") {
			if m := kernelDepRe.FindStringSubmatch(line); m != nil {
				return m[1], m[2], nil
			}
		}
	}
	return "", "", errors.New("apt-cache show linux-image-amd64: no versioned linux-image dependency")
}

func newestKernelDir(dir string) string {
	matches, _ := filepath.Glob(filepath.Join(dir, "kernel", "linux-image-*_*", "vmlinuz"))
	sort.Strings(matches)
	if len(matches) == 0 {
		return ""
	}
	return filepath.Dir(matches[len(matches)-1])
}

// unpackKernel downloads pkg=version (kept in dir/deb) and unpacks only the
// kernel and the modules any initramfs needs into kdir (no dpkg install).
func unpackKernel(ctx context.Context, dir, kdir, pkg, version, list string) error {
	deb, err := downloadKernel(ctx, dir, pkg, version)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(dir, "unpack-")
	if err != nil {
		return fmt.Errorf("unpack %s: %w", deb, err)
	}
	defer os.RemoveAll(tmp)
	if err := os.MkdirAll(filepath.Join(tmp, "modules"), 0o755); err != nil {
		return fmt.Errorf("unpack %s: %w", deb, err)
	}
	if err := extractDeb(ctx, deb, tmp); err != nil {
		return fmt.Errorf("unpack %s: %w", deb, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "modules.list"), []byte(list), 0o644); err != nil {
		return fmt.Errorf("unpack %s: %w", deb, err)
	}
	if err := os.MkdirAll(filepath.Dir(kdir), 0o755); err != nil {
		return fmt.Errorf("unpack %s: %w", deb, err)
	}
	if err := os.RemoveAll(kdir); err != nil {
		return fmt.Errorf("unpack %s: %w", deb, err)
	}
	if err := os.Rename(tmp, kdir); err != nil {
		return fmt.Errorf("unpack %s: %w", deb, err)
	}
	return nil
}

// downloadKernel returns the cached .deb of pkg=version, fetching it with
// apt-get download when missing.
func downloadKernel(ctx context.Context, dir, pkg, version string) (string, error) {
	debDir := filepath.Join(dir, "deb")
	deb := filepath.Join(debDir, pkg+"_"+version+".deb")
	if _, err := os.Stat(deb); err == nil {
		return deb, nil
	}
	tmp, err := os.MkdirTemp(dir, "download-")
	if err != nil {
		return "", fmt.Errorf("download %s: %w", pkg, err)
	}
	defer os.RemoveAll(tmp)
	progress("vm: downloading %s %s (about 70 MB, once)", pkg, version)
	if err := runCmd(ctx, tmp, "apt-get", "download", "-q", pkg+"="+version); err != nil {
		return "", fmt.Errorf("download %s=%s: %w", pkg, version, err)
	}
	got, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(got) != 1 {
		return "", fmt.Errorf("download %s=%s: want one .deb, found %d", pkg, version, len(got))
	}
	if err := os.MkdirAll(debDir, 0o755); err != nil {
		return "", fmt.Errorf("download %s: %w", pkg, err)
	}
	if err := os.Rename(got[0], deb); err != nil {
		return "", fmt.Errorf("download %s: %w", pkg, err)
	}
	return deb, nil
}

// extractDeb copies ./boot/vmlinuz-* to out/vmlinuz, every module named in
// wantedModules to out/modules/NAME.ko, and modules.builtin, reading the
// package's data tar from dpkg-deb.
func extractDeb(ctx context.Context, deb, out string) error {
	want := map[string]bool{}
	for _, m := range wantedModules() {
		want[m] = true
	}
	cmd := exec.CommandContext(ctx, "dpkg-deb", "--fsys-tarfile", deb)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	r, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("dpkg-deb: %w", err)
	}
	found, readErr := extractKernelFiles(ctx, tar.NewReader(r), want, out)
	_, _ = io.Copy(io.Discard, r)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("dpkg-deb --fsys-tarfile: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	if readErr != nil {
		return readErr
	}
	if !found["vmlinuz"] {
		return errors.New("no /boot/vmlinuz-* in the package")
	}
	return nil
}

func extractKernelFiles(ctx context.Context, tr *tar.Reader, want map[string]bool, out string) (map[string]bool, error) {
	found := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return found, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read package tar: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		base := filepath.Base(h.Name)
		var dst string
		switch {
		case strings.HasPrefix(h.Name, "./boot/vmlinuz-"):
			dst, found["vmlinuz"] = filepath.Join(out, "vmlinuz"), true
		case base == "modules.builtin":
			dst = filepath.Join(out, "modules.builtin")
		case strings.HasSuffix(base, ".ko") && want[moduleName(base)]:
			dst = filepath.Join(out, "modules", moduleName(base)+".ko")
		case strings.HasSuffix(base, ".ko.xz") && want[moduleName(base)]:
			// Newer Debian kernels compress modules; busybox insmod wants them plain.
			dst = filepath.Join(out, "modules", moduleName(base)+".ko.xz")
		default:
			continue
		}
		f, err := os.Create(dst)
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(f, tr)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("write %s: %w", dst, err)
		}
		if strings.HasSuffix(dst, ".xz") {
			if err := runCmd(ctx, "", "xz", "-d", "-f", dst); err != nil {
				return nil, fmt.Errorf("decompress %s: %w", dst, err)
			}
		}
	}
}

// moduleName turns "9pnet_virtio.ko" or "kvm-amd.ko.xz" into the name the
// kernel uses (dashes become underscores).
func moduleName(file string) string {
	name := strings.TrimSuffix(strings.TrimSuffix(file, ".xz"), ".ko")
	return strings.ReplaceAll(name, "-", "_")
}

func wantedModules() []string { return append(append([]string{}, hostModules...), kvmModules...) }
