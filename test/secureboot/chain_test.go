package secureboot

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
)

// The firmware: OVMF built with Secure Boot and SMM, and a variable store
// with Microsoft's keys enrolled (PK, KEK, db: what a PC ships with).
const (
	ovmfCode = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
	ovmfVars = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"
	// shimGUID owns shim's variables (MokList and friends); virt-fw-vars
	// --add-mok takes it as the owner of the new entry.
	shimGUID = "605dab50-e046-4300-abb6-3dd810dd8b23"
)

// DefaultCache is the machine's test cache, shared with test/kernel.
const DefaultCache = "/var/cache/dkms-sign-hook-test"

func cacheDir() string {
	if d := os.Getenv("DKMS_SIGN_HOOK_KERNEL_CACHE"); d != "" {
		return d
	}
	return DefaultCache
}

// A chain is Debian's signed boot chain for one kernel release, unpacked
// from the packages users install: shim-signed, grub-efi-amd64-signed and
// linux-image-<release> (the signed kernel).
type chain struct {
	kver     string            // kernel release, e.g. 6.1.0-57-amd64
	root     string            // the unpacked packages
	versions map[string]string // package name -> version
}

// chainPackages are the packages of the chain for kernel release kver.
func chainPackages(kver string) []string {
	return []string{"shim-signed", "grub-efi-amd64-signed", "linux-image-" + kver}
}

func (c *chain) shim() string { return filepath.Join(c.root, "usr/lib/shim/shimx64.efi.signed") }
func (c *chain) grub() string {
	return filepath.Join(c.root, "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed")
}
func (c *chain) vmlinuz() string { return filepath.Join(c.root, "boot", "vmlinuz-"+c.kver) }
func (c *chain) config() string  { return filepath.Join(c.root, "boot", "config-"+c.kver) }

// module returns the path of one of the kernel package's own (Debian-signed)
// modules, e.g. "kernel/fs/efivarfs" (efivarfs.ko, or .ko.xz since Debian 13).
func (c *chain) module(rel string) string {
	return filepath.Join(modulesDir(c.root, c.kver), rel)
}

// modulesDir is where the kernel package below root put its modules:
// lib/modules/<kver>, or usr/lib/modules/<kver> since Debian 13 (merged /usr).
func modulesDir(root, kver string) string {
	usr := filepath.Join(root, "usr/lib/modules", kver)
	if _, err := os.Stat(usr); err == nil {
		return usr
	}
	return filepath.Join(root, "lib/modules", kver)
}

// getChain returns the chain for kver from the cache, fetching the packages
// with apt-get download (the host's apt configuration, which installed the
// matching linux-headers) and unpacking them with dpkg-deb -x when the cache
// does not have them. Nothing is installed on the host: their maintainer
// scripts would change the host's boot loader.
func getChain(t *testing.T, kver string) *chain {
	t.Helper()
	dir := filepath.Join(cacheDir(), "secureboot", kver)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		testenv.Require(t, false, fmt.Sprintf("a writable test cache (%v): run as root or set DKMS_SIGN_HOOK_KERNEL_CACHE", err))
	}
	unlock := testenv.LockFile(t, dir+".lock")
	defer unlock()
	c := &chain{kver: kver, root: filepath.Join(dir, "root")}
	if v, err := os.ReadFile(filepath.Join(dir, "versions")); err == nil {
		c.versions = parseVersions(string(v))
		return c
	}
	// Build into a fresh directory and rename it into place: an interrupted
	// fetch leaves no half-unpacked chain behind.
	os.RemoveAll(dir) // plain files only: nothing is ever mounted in the cache's chains
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	debs := filepath.Join(tmp, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	get := exec.Command("apt-get", append([]string{"-q", "-o", "APT::Sandbox::User=root", "download"}, chainPackages(kver)...)...)
	get.Dir = debs
	if out, err := get.CombinedOutput(); err != nil {
		t.Fatalf("apt-get download %s: %v\n%s", strings.Join(chainPackages(kver), " "), err, out)
	}
	files, _ := filepath.Glob(filepath.Join(debs, "*.deb"))
	var versions strings.Builder
	for _, deb := range files {
		out, err := exec.Command("dpkg-deb", "-f", deb, "Package", "Version").Output()
		if err != nil {
			t.Fatalf("dpkg-deb -f %s: %v", deb, err)
		}
		f := strings.Fields(strings.NewReplacer("Package:", "", "Version:", "").Replace(string(out)))
		if len(f) != 2 {
			t.Fatalf("dpkg-deb -f %s: %q", deb, out)
		}
		fmt.Fprintf(&versions, "%s %s\n", f[0], f[1])
		if out, err := exec.Command("dpkg-deb", "-x", deb, filepath.Join(tmp, "root")).CombinedOutput(); err != nil {
			t.Fatalf("dpkg-deb -x %s: %v\n%s", deb, err, out)
		}
	}
	c.versions = parseVersions(versions.String())
	for _, p := range chainPackages(kver) {
		if c.versions[p] == "" {
			t.Fatalf("apt-get download did not fetch %s (got %v)", p, c.versions)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, "versions"), []byte(versions.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	// The .debs are not needed any more (70 MB for the kernel), nor the
	// kernel's modules but efivarfs (400 MB unpacked).
	os.RemoveAll(debs)
	mods := filepath.Join(modulesDir(filepath.Join(tmp, "root"), kver), "kernel")
	ents, _ := os.ReadDir(mods)
	for _, e := range ents {
		if e.Name() != "fs" {
			os.RemoveAll(filepath.Join(mods, e.Name()))
		}
	}
	ents, _ = os.ReadDir(filepath.Join(mods, "fs"))
	for _, e := range ents {
		if e.Name() != "efivarfs" {
			os.RemoveAll(filepath.Join(mods, "fs", e.Name()))
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		t.Fatal(err)
	}
	t.Logf("fetched and unpacked %s in %s", strings.Join(chainPackages(kver), ", "), time.Since(start).Round(time.Second))
	return c
}

// hasECDSA: the kernel's configuration has CONFIG_CRYPTO_ECDSA, so it can
// check module signatures made with ECDSA keys.
func (c *chain) hasECDSA(t *testing.T) bool {
	b, err := os.ReadFile(c.config())
	if err != nil {
		t.Fatal(err)
	}
	return regexp.MustCompile(`(?m)^CONFIG_CRYPTO_ECDSA=[ym]$`).Match(b)
}

func parseVersions(s string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			m[f[0]] = f[1]
		}
	}
	return m
}

// espDisk writes a GPT disk image with one EFI system partition holding the
// chain as a Debian install lays it out (shim as the removable-media boot
// path EFI/BOOT/BOOTX64.EFI, GRUB beside it, GRUB's configuration in
// EFI/debian, where Debian's signed GRUB looks), plus the kernel and initrd.
// grub is the GRUB binary to use: c.grub(), or a copy signed by another key.
func (c *chain) espDisk(dst, initrd, cmdline, grub string) error {
	const sizeMiB = 128
	grubCfg := fmt.Sprintf("set timeout=0\nlinux /vmlinuz %s\ninitrd /initrd.img\nboot\n", cmdline)
	cfg := dst + ".grub.cfg"
	if err := os.WriteFile(cfg, []byte(grubCfg), 0o644); err != nil {
		return err
	}
	defer os.Remove(cfg)
	if err := os.WriteFile(dst, nil, 0o644); err != nil {
		return err
	}
	if err := os.Truncate(dst, sizeMiB<<20); err != nil {
		return err
	}
	// The partition: from 1 MiB to the backup GPT (33 sectors) at the end.
	sectors := sizeMiB<<11 - 2048 - 34
	img := dst + "@@1M"
	steps := [][]string{
		{"sfdisk", "-q", dst},
		{"mkfs.vfat", "-F", "32", "--offset", "2048", dst, fmt.Sprint(sectors / 2)},
		{"mmd", "-i", img, "::/EFI", "::/EFI/BOOT", "::/EFI/debian"},
		{"mcopy", "-i", img, c.shim(), "::/EFI/BOOT/BOOTX64.EFI"},
		{"mcopy", "-i", img, grub, "::/EFI/BOOT/grubx64.efi"},
		{"mcopy", "-i", img, cfg, "::/EFI/debian/grub.cfg"},
		{"mcopy", "-i", img, c.vmlinuz(), "::/vmlinuz"},
		{"mcopy", "-i", img, initrd, "::/initrd.img"},
	}
	for i, s := range steps {
		cmd := exec.Command(s[0], s[1:]...)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		if i == 0 {
			cmd.Stdin = strings.NewReader("label: gpt\nstart=2048, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n")
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v\n%s", strings.Join(s, " "), err, out)
		}
	}
	return nil
}

// ansiRE matches the terminal escapes OVMF and GRUB write to the console.
var ansiRE = regexp.MustCompile(`\x1b(\[[0-9;?]*[a-zA-Z]|[()][A-Z0-9]|[=>c])`)

// boot starts QEMU (TCG: no KVM here) with Secure Boot firmware, the
// variable store vars (a per-boot copy: the firmware writes to it) and the
// disk, and returns the serial console once the guest powers off. The
// initrd's /init must end with `poweroff -f`. With a stop text, the boot
// ends as soon as the console shows it (shim refusing GRUB: the firmware
// would then wait in its boot menu), and that is its success.
func boot(ctx context.Context, disk, vars, stop string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64",
		"-machine", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on",
		"-m", "1024", "-nographic", "-no-reboot", "-nic", "none",
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+ovmfCode,
		"-drive", "if=pflash,format=raw,unit=1,file="+vars,
		"-drive", "if=virtio,format=raw,file="+disk)
	out := &consoleWriter{stop: []byte(stop), cancel: cancel}
	cmd.Stdout, cmd.Stderr = out, out // one writer: Write is never called concurrently
	err := cmd.Run()
	console := ansiRE.ReplaceAllString(strings.ReplaceAll(out.buf.String(), "\r", ""), "")
	switch {
	case stop != "" && strings.Contains(console, stop):
		return console, nil
	case stop != "":
		return console, fmt.Errorf("qemu: the console never showed %q (%v)", stop, err)
	case err != nil:
		return console, fmt.Errorf("qemu: %w", err)
	case !strings.Contains(console, "=== DONE"):
		return console, fmt.Errorf("qemu: /init did not finish")
	}
	return console, nil
}

// consoleWriter keeps QEMU's output and calls cancel once it contains stop
// (when stop is not empty).
type consoleWriter struct {
	buf    bytes.Buffer
	stop   []byte
	cancel func()
}

func (w *consoleWriter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	if len(w.stop) > 0 {
		from := max(0, w.buf.Len()-len(p)-len(w.stop))
		if bytes.Contains(w.buf.Bytes()[from:], w.stop) {
			w.cancel()
		}
	}
	return len(p), nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
