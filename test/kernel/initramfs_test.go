package kernel

import (
	"path"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/initramfs"
)

// busybox is Debian's busybox-static.
const busybox = initramfs.Busybox

// writeInitramfs packs busybox, kmod, the finit helper, the modules and the
// init script into dst.
// kmodRoot, if set, is a root file system whose kmod is used instead of the
// host's. Either way the compression libraries come along: kmod 34 (Debian
// 13) dlopen()s liblzma and libzstd, which ldd does not list.
func writeInitramfs(dst, finit, kmodRoot, initScript string, modules map[string]string) error {
	fs := initramfs.Archive{}
	if err := fs.AddBusybox("sh", "mount", "rmmod", "reboot", "echo", "cat", "uname", "sleep"); err != nil {
		return err
	}
	if kmodRoot == "" {
		kmodRoot = "/"
	}
	if err := fs.AddKmodFrom(kmodRoot); err != nil {
		return err
	}
	fs.Add("bin/insmod", initramfs.Symlink|0o777, []byte("kmod"))
	if err := fs.CopyFile("bin/finit", finit, 0o755); err != nil {
		return err
	}
	for name, src := range modules {
		if err := fs.CopyFile(path.Join("m", name), src, 0o644); err != nil {
			return err
		}
	}
	fs.Add("init", initramfs.File|0o755, []byte(initScript))
	return fs.WriteFile(dst)
}
