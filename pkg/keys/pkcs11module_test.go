//go:build cgo

package keys

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
	"github.com/miekg/pkcs11"
)

// copyFile copies src (following links) to dst with mode.
func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dst, mode); err != nil {
		t.Fatal(err)
	}
}

// trustedDir makes a directory that CheckTrustedPath accepts: a private
// directory under the sticky /tmp is one.
func trustedDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	err := CheckTrustedPath(d)
	testenv.Require(t, err == nil, "a temporary directory only root (or you) can change: "+fmt.Sprint(err))
	return d
}

// moduleMaker answers which library dlopen gives for name: the PKCS#11
// library manufacturer, or "" when it is no PKCS#11 module at all.
func moduleMaker(t *testing.T, name string) string {
	t.Helper()
	p := pkcs11.New(name)
	if p == nil {
		return ""
	}
	defer p.Destroy()
	if err := p.Initialize(); err == nil {
		defer p.Finalize()
	}
	info, err := p.GetInfo()
	if err != nil {
		t.Fatalf("%s: GetInfo: %v", name, err)
	}
	return strings.TrimRight(info.ManufacturerID, " \x00")
}

// notAModule is a real shared library that is no PKCS#11 module: what an
// attacker swaps in.
const notAModule = "/lib/x86_64-linux-gnu/libz.so.1"

// swapDir holds lib.so (a copy of SoftHSM), link.so -> lib.so, and evil.so
// (a copy of notAModule), all root-owned 0755 in a trusted directory.
func swapDir(t *testing.T) (dir, lib, link, evil string) {
	t.Helper()
	softHSM(t) // SOFTHSM2_CONF for the copies
	if _, err := os.Stat(notAModule); err != nil {
		t.Fatalf("%s: %v", notAModule, err)
	}
	dir = trustedDir(t)
	lib, link, evil = filepath.Join(dir, "lib.so"), filepath.Join(dir, "link.so"), filepath.Join(dir, "evil.so")
	copyFile(t, SoftHSMModule, lib, 0o755)
	copyFile(t, notAModule, evil, 0o755)
	if err := os.Symlink("lib.so", link); err != nil {
		t.Fatal(err)
	}
	return
}

func swapHook(t *testing.T, f func()) {
	afterModuleCheck = f
	t.Cleanup(func() { afterModuleCheck = nil })
}

// The reviewer's case: a root-owned 0755 module in a 0777 directory was
// accepted. Also refused: a trusted link to a module in such a directory.
func TestPKCS11ModuleInWritableDirectory(t *testing.T) {
	h := softHSM(t)
	d := trustedDir(t)
	sub := filepath.Join(d, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	mod := filepath.Join(sub, "mod.so")
	copyFile(t, SoftHSMModule, mod, 0o755)
	uri := h.rsaURI + "?module-path=" + mod + "&pin-source=" + h.pinFile
	k, err := Open(uri, Options{Getenv: noEnv})
	if err != nil {
		t.Fatalf("module in a trusted directory: %v", err)
	}
	k.Close()

	if err := os.Chmod(sub, 0o777); err != nil {
		t.Fatal(err)
	}
	k, err = Open(uri, Options{Getenv: noEnv})
	if err == nil {
		k.Close()
		t.Fatal("module in a 0777 directory was loaded")
	}
	var pe *PermissionError
	if !errors.As(err, &pe) || pe.Path != sub || pe.Fix != "chmod go-w "+sub || !strings.Contains(err.Error(), "PKCS#11 module "+mod) {
		t.Fatalf("err = %v, want a PermissionError for %s naming the module", err, sub)
	}

	// A trusted link to a module in a 0777 directory elsewhere.
	wild := t.TempDir()
	wildMod := filepath.Join(wild, "mod.so")
	copyFile(t, SoftHSMModule, wildMod, 0o755)
	if err := os.Chmod(wild, 0o777); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(d, "link.so")
	if err := os.Symlink(wildMod, link); err != nil {
		t.Fatal(err)
	}
	k, err = Open(h.rsaURI+"?module-path="+link+"&pin-source="+h.pinFile, Options{Getenv: noEnv})
	if err == nil {
		k.Close()
		t.Fatal("link to a module in a 0777 directory was loaded")
	}
	if !errors.As(err, &pe) || pe.Path != wild {
		t.Fatalf("err = %v, want a PermissionError for %s", err, wild)
	}
}

// In a sticky directory like /tmp, a module of root's loads and another
// user's does not: its owner could replace it.
func TestPKCS11ModuleInStickyDirectory(t *testing.T) {
	testenv.RequireRoot(t) // chown
	h := softHSM(t)
	sticky := filepath.Join(trustedDir(t), "tmp")
	if err := os.Mkdir(sticky, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sticky, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	mod := filepath.Join(sticky, "mod.so")
	copyFile(t, SoftHSMModule, mod, 0o755)
	uri := h.rsaURI + "?module-path=" + mod + "&pin-source=" + h.pinFile
	k, err := Open(uri, Options{Getenv: noEnv})
	if err != nil {
		t.Fatalf("root's module in a sticky directory: %v", err)
	}
	k.Close()

	other := filepath.Join(sticky, "other.so")
	copyFile(t, SoftHSMModule, other, 0o755)
	if err := os.Chown(other, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	k, err = Open(h.rsaURI+"?module-path="+other+"&pin-source="+h.pinFile, Options{Getenv: noEnv})
	if err == nil {
		k.Close()
		t.Fatal("a module of uid 65534 in a sticky directory was loaded")
	}
	var pe *PermissionError
	if !errors.As(err, &pe) || pe.Path != other || pe.Fix != "chown root:root "+other {
		t.Fatalf("err = %v, want a PermissionError for %s", err, other)
	}
}

// The real SoftHSM module (a link into /usr/lib/x86_64-linux-gnu) loads
// through a descriptor of the checked file, under one name every time.
func TestPKCS11ModuleLoadedByDescriptor(t *testing.T) {
	softHSM(t)
	name, err := moduleLoadName(SoftHSMModule, false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(name, "/proc/self/fd/") {
		t.Fatalf("load name %s, want /proc/self/fd/N", name)
	}
	target, err := os.Readlink(name)
	real, _ := filepath.EvalSymlinks(SoftHSMModule)
	if err != nil || target != real {
		t.Fatalf("%s -> %s (%v), want %s", name, target, err, real)
	}
	if again, err := moduleLoadName(SoftHSMModule, false); err != nil || again != name {
		t.Errorf("second load name %s (%v), want %s", again, err, name)
	}
	if got := moduleMaker(t, name); got != "SoftHSM" {
		t.Errorf("loaded %q, want SoftHSM", got)
	}
}

// A link re-pointed after the check: the checked file still loads.
func TestPKCS11ModuleLinkSwappedAfterCheck(t *testing.T) {
	dir, _, link, _ := swapDir(t)
	swapHook(t, func() {
		tmp := filepath.Join(dir, "link.new")
		if err := os.Symlink("evil.so", tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, link); err != nil {
			t.Fatal(err)
		}
	})
	name, err := moduleLoadName(link, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := moduleMaker(t, name); got != "SoftHSM" {
		t.Fatalf("loaded %q after the link was re-pointed, want the checked SoftHSM", got)
	}
}

// A file replaced after the check: refused.
func TestPKCS11ModuleFileSwappedAfterCheck(t *testing.T) {
	_, lib, link, evil := swapDir(t)
	swapHook(t, func() {
		if err := os.Rename(evil, lib); err != nil {
			t.Fatal(err)
		}
	})
	name, err := moduleLoadName(link, false)
	if err == nil {
		t.Fatalf("loaded %s (%q) after the file was replaced", name, moduleMaker(t, name))
	}
	if !strings.Contains(err.Error(), "replaced while being checked") {
		t.Fatalf("err = %v", err)
	}
}

// A file replaced after it was opened: the opened one loads.
func TestPKCS11ModuleFileSwappedAfterOpen(t *testing.T) {
	_, lib, link, evil := swapDir(t)
	name, err := moduleLoadName(link, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(evil, lib); err != nil {
		t.Fatal(err)
	}
	if got := moduleMaker(t, name); got != "SoftHSM" {
		t.Fatalf("loaded %q after the file was replaced, want the checked SoftHSM", got)
	}
}
