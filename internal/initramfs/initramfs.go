// Package initramfs writes the small initramfs archives the kernel suites
// boot under QEMU: a set of files written as a gzip-compressed "newc" cpio
// archive (what the kernel unpacks into its rootfs), with helpers to add host
// programs and the shared libraries they need.
package initramfs

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Busybox is Debian's busybox-static.
const Busybox = "/bin/busybox"

// Entry is one file of the archive.
type Entry struct {
	Mode  uint32 // type and permission bits, e.g. File|0o755
	Data  []byte // file contents or symlink target
	Major uint32 // device numbers for character devices
	Minor uint32
}

// File types for Entry.Mode.
const (
	Dir     = 0o040000
	File    = 0o100000
	Symlink = 0o120000
	CharDev = 0o020000
)

// Archive is a set of files by path (no leading slash).
type Archive map[string]Entry

// Dir adds name and its parents as directories (existing entries stay).
func (a Archive) Dir(name string) {
	for d := name; d != "." && d != "/" && d != ""; d = path.Dir(d) {
		if _, ok := a[d]; !ok {
			a[d] = Entry{Mode: Dir | 0o755}
		}
	}
}

// Add adds a file, symlink (data is the target) or other entry, and its
// parent directories.
func (a Archive) Add(name string, mode uint32, data []byte) {
	a.Dir(path.Dir(name))
	a[name] = Entry{Mode: mode, Data: data}
}

// Device adds a character device node.
func (a Archive) Device(name string, major, minor uint32) {
	a.Dir(path.Dir(name))
	a[name] = Entry{Mode: CharDev | 0o600, Major: major, Minor: minor}
}

// CopyFile adds the host file src (following symlinks) as name.
func (a Archive) CopyFile(name, src string, perm uint32) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	a.Add(name, File|perm, b)
	return nil
}

// AddTree adds the host file or directory tree src as name: directories,
// regular files with their permission bits, and symlinks as symlinks.
func (a Archive) AddTree(name, src string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		dst := path.Join(name, filepath.ToSlash(rel))
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			a.Dir(dst)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			a.Add(dst, Symlink|0o777, []byte(target))
		case info.Mode().IsRegular():
			return a.CopyFile(dst, p, uint32(info.Mode().Perm()))
		}
		return nil
	})
}

// AddBusybox adds busybox as bin/busybox with a bin/<applet> symlink for
// each applet, /dev/console, and the usual mount points.
func (a Archive) AddBusybox(applets ...string) error {
	for _, d := range []string{"proc", "sys", "dev"} {
		a.Dir(d)
	}
	a.Device("dev/console", 5, 1)
	if err := a.CopyFile("bin/busybox", Busybox, 0o755); err != nil {
		return err
	}
	for _, applet := range applets {
		a.Add("bin/"+applet, Symlink|0o777, []byte("busybox"))
	}
	return nil
}

// AddDynamic adds a dynamically linked host program and the shared
// libraries ldd lists for it, at their host paths.
func (a Archive) AddDynamic(name, src string) error {
	if err := a.CopyFile(name, src, 0o755); err != nil {
		return err
	}
	out, err := exec.Command("ldd", src).Output()
	if err != nil {
		return fmt.Errorf("ldd %s: %w", src, err)
	}
	for _, lib := range lddPaths(string(out)) {
		if err := a.CopyFile(strings.TrimPrefix(lib, "/"), lib, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// AddKmodFrom adds the kmod of another Debian root file system (for example a
// debootstrap of sid, for a newer kmod) as bin/kmod: its binary, the shared
// libraries its ldd lists (inside that root), and the compression libraries
// newer kmods dlopen() instead of linking, all from that root.
func (a Archive) AddKmodFrom(root string) error {
	if err := a.CopyFile("bin/kmod", filepath.Join(root, "usr/bin/kmod"), 0o755); err != nil {
		return err
	}
	out, err := exec.Command("chroot", root, "ldd", "/usr/bin/kmod").Output()
	if err != nil {
		return fmt.Errorf("chroot %s ldd /usr/bin/kmod: %w", root, err)
	}
	libs := lddPaths(string(out))
	for _, pat := range []string{"libzstd.so.1*", "liblzma.so.5*", "libz.so.1*", "libcrypto.so.3*"} {
		m, _ := filepath.Glob(filepath.Join(root, "usr/lib/x86_64-linux-gnu", pat))
		for _, p := range m {
			libs = append(libs, "/usr/lib/x86_64-linux-gnu/"+filepath.Base(p))
		}
	}
	for _, lib := range libs {
		// Resolve symlinks inside the root (the loader's is absolute).
		real, err := exec.Command("chroot", root, "readlink", "-f", lib).Output()
		if err != nil {
			return fmt.Errorf("chroot %s readlink -f %s: %w", root, lib, err)
		}
		src := filepath.Join(root, strings.TrimSpace(string(real)))
		// Merged /usr: /lib -> usr/lib; store under both names the loader
		// may use.
		for _, name := range []string{lib, strings.TrimPrefix(lib, "/usr")} {
			if err := a.CopyFile(strings.TrimPrefix(name, "/"), src, 0o755); err != nil {
				return err
			}
		}
	}
	return nil
}

// lddPaths returns the library paths in ldd's output.
func lddPaths(out string) []string {
	var libs []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			libs = append(libs, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			libs = append(libs, f[0])
		}
	}
	return libs
}

// Write writes the archive, gzip-compressed, to w.
func (a Archive) Write(w io.Writer) error {
	zw := gzip.NewWriter(w)
	names := make([]string, 0, len(a))
	for n := range a {
		names = append(names, n)
	}
	sort.Strings(names) // parents before children
	ino := uint32(1)
	for _, n := range names {
		if err := writeCPIO(zw, n, a[n], ino); err != nil {
			return err
		}
		ino++
	}
	if err := writeCPIO(zw, "TRAILER!!!", Entry{}, 0); err != nil {
		return err
	}
	return zw.Close()
}

// WriteFile writes the archive to the file dst.
func (a Archive) WriteFile(dst string) error {
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	if err := a.Write(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return f.Close()
}

func writeCPIO(w io.Writer, name string, e Entry, ino uint32) error {
	var hdr bytes.Buffer
	nlink := 1
	if e.Mode&0o170000 == Dir {
		nlink = 2
	}
	fmt.Fprintf(&hdr, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, e.Mode, 0, 0, nlink, 0, len(e.Data), 0, 0, e.Major, e.Minor, len(name)+1, 0)
	hdr.WriteString(name)
	hdr.WriteByte(0)
	pad(&hdr, hdr.Len())
	hdr.Write(e.Data)
	pad(&hdr, len(e.Data))
	_, err := w.Write(hdr.Bytes())
	return err
}

func pad(b *bytes.Buffer, n int) {
	for n%4 != 0 {
		b.WriteByte(0)
		n++
	}
}
