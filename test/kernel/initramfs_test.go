package kernel

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// busybox is Debian's busybox-static.
const busybox = "/bin/busybox"

// cpioEntry is one file of the initramfs.
type cpioEntry struct {
	mode  uint32 // type and permission bits, e.g. 0o100755
	data  []byte // file contents or symlink target
	major uint32 // device numbers for character devices
	minor uint32
}

const (
	cpioDir     = 0o040000
	cpioFile    = 0o100000
	cpioSymlink = 0o120000
	cpioCharDev = 0o020000
)

// initramfs is a set of files, written as a gzip-compressed "newc" cpio
// archive (what the kernel unpacks into its rootfs).
type initramfs map[string]cpioEntry

func (fs initramfs) dir(name string) {
	for d := name; d != "." && d != "/" && d != ""; d = path.Dir(d) {
		if _, ok := fs[d]; !ok {
			fs[d] = cpioEntry{mode: cpioDir | 0o755}
		}
	}
}

func (fs initramfs) add(name string, mode uint32, data []byte) {
	fs.dir(path.Dir(name))
	fs[name] = cpioEntry{mode: mode, data: data}
}

// copyFile adds the host file src (following symlinks) as name.
func (fs initramfs) copyFile(name, src string, perm uint32) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	fs.add(name, cpioFile|perm, b)
	return nil
}

// addDynamic adds a dynamically linked host program and the shared
// libraries ldd lists for it, at their host paths.
func (fs initramfs) addDynamic(name, src string) error {
	if err := fs.copyFile(name, src, 0o755); err != nil {
		return err
	}
	out, err := exec.Command("ldd", src).Output()
	if err != nil {
		return fmt.Errorf("ldd %s: %w", src, err)
	}
	for _, lib := range lddPaths(string(out)) {
		if err := fs.copyFile(strings.TrimPrefix(lib, "/"), lib, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// addKmodFrom adds the kmod of another Debian root file system (for example a
// debootstrap of sid, for a newer kmod): its binary, the shared libraries its
// ldd lists (inside that root), and the compression libraries newer kmods
// dlopen() instead of linking, all from that root.
func (fs initramfs) addKmodFrom(root string) error {
	if err := fs.copyFile("bin/kmod", filepath.Join(root, "usr/bin/kmod"), 0o755); err != nil {
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
			if err := fs.copyFile(strings.TrimPrefix(name, "/"), src, 0o755); err != nil {
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

// write writes the archive, gzip-compressed, to w.
func (fs initramfs) write(w io.Writer) error {
	zw := gzip.NewWriter(w)
	names := make([]string, 0, len(fs))
	for n := range fs {
		names = append(names, n)
	}
	sort.Strings(names) // parents before children
	ino := uint32(1)
	for _, n := range names {
		e := fs[n]
		if err := writeCPIO(zw, n, e, ino); err != nil {
			return err
		}
		ino++
	}
	if err := writeCPIO(zw, "TRAILER!!!", cpioEntry{}, 0); err != nil {
		return err
	}
	return zw.Close()
}

func writeCPIO(w io.Writer, name string, e cpioEntry, ino uint32) error {
	var hdr bytes.Buffer
	nlink := 1
	if e.mode&0o170000 == cpioDir {
		nlink = 2
	}
	fmt.Fprintf(&hdr, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, e.mode, 0, 0, nlink, 0, len(e.data), 0, 0, e.major, e.minor, len(name)+1, 0)
	hdr.WriteString(name)
	hdr.WriteByte(0)
	pad(&hdr, hdr.Len())
	hdr.Write(e.data)
	pad(&hdr, len(e.data))
	_, err := w.Write(hdr.Bytes())
	return err
}

func pad(b *bytes.Buffer, n int) {
	for n%4 != 0 {
		b.WriteByte(0)
		n++
	}
}

// writeInitramfs packs busybox, kmod, the finit helper, the modules and the
// init script into dst.
// kmodRoot, if set, is a root file system whose kmod is used instead of the
// host's.
func writeInitramfs(dst, finit, kmodRoot, initScript string, modules map[string]string) error {
	fs := initramfs{}
	fs.dir("proc")
	fs.dir("sys")
	fs.dir("dev")
	fs["dev/console"] = cpioEntry{mode: cpioCharDev | 0o600, major: 5, minor: 1}
	if err := fs.copyFile("bin/busybox", busybox, 0o755); err != nil {
		return err
	}
	for _, applet := range []string{"sh", "mount", "rmmod", "reboot", "echo", "cat", "uname", "sleep"} {
		fs.add("bin/"+applet, cpioSymlink|0o777, []byte("busybox"))
	}
	if kmodRoot != "" {
		if err := fs.addKmodFrom(kmodRoot); err != nil {
			return err
		}
	} else if err := fs.addDynamic("bin/kmod", "/usr/bin/kmod"); err != nil {
		return err
	}
	fs.add("bin/insmod", cpioSymlink|0o777, []byte("kmod"))
	if err := fs.copyFile("bin/finit", finit, 0o755); err != nil {
		return err
	}
	for name, src := range modules {
		if err := fs.copyFile(path.Join("m", name), src, 0o644); err != nil {
			return err
		}
	}
	fs.add("init", cpioFile|0o755, []byte(initScript))
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	if err := fs.write(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return f.Close()
}
