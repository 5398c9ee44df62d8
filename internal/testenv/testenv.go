// Package testenv decides whether a test that needs a real component (root,
// dkms, sign-file, QEMU, a kernel tree, SoftHSM) runs, skips or fails.
//
// On a developer's machine a missing component skips the test with a message
// saying what to install. Under CI (CI=true) nothing may skip: a missing
// component fails the test, so a green CI always means the real thing ran.
package testenv

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// Require skips (or, under CI, fails) t unless ok; why names the component and
// how to get it, e.g. "sign-file (apt-get install linux-kbuild-6.1)".
func Require(t testing.TB, ok bool, why string) {
	t.Helper()
	if ok {
		return
	}
	if InCI() {
		t.Fatalf("CI=true but a required component is missing: %s", why)
	}
	t.Skipf("skipped: needs %s", why)
}

// RequireRoot requires uid 0.
func RequireRoot(t testing.TB) {
	t.Helper()
	Require(t, os.Geteuid() == 0, "root")
}

// LookPath returns the path of an executable, requiring it to exist;
// pkg names the Debian package that ships it.
func LookPath(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		// Some tools live outside PATH (sign-file); accept an absolute path.
		if st, serr := os.Stat(name); serr == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return name
		}
	}
	Require(t, err == nil, name+" (apt-get install "+pkg+")")
	return p
}

// SignFile is Debian 12's build of the kernel's scripts/sign-file.
const SignFile = "/usr/lib/linux-kbuild-6.1/scripts/sign-file"

// SignFileEnv names the sign-file the tests compare against, overriding
// FindSignFile's search (test/generations sets it inside other releases).
const SignFileEnv = "DKMS_SIGN_HOOK_SIGN_FILE"

// FindSignFile returns the sign-file the tests compare against: $SignFileEnv,
// else Debian 12's, else the release's own linux-kbuild-*'s (Debian 11:
// linux-kbuild-5.10; Debian 13 and unstable name theirs after the full
// kernel version, e.g. linux-kbuild-6.12.117+deb13), the last in name order.
func FindSignFile() string {
	if p := os.Getenv(SignFileEnv); p != "" {
		return p
	}
	if _, err := os.Stat(SignFile); err == nil {
		return SignFile
	}
	m, _ := filepath.Glob("/usr/lib/linux-kbuild-*/scripts/sign-file")
	if len(m) == 0 {
		return SignFile
	}
	return m[len(m)-1]
}

// RequireSignFile returns the path of Debian's sign-file (FindSignFile).
func RequireSignFile(t testing.TB) string {
	t.Helper()
	p := FindSignFile()
	st, err := os.Stat(p)
	Require(t, err == nil && st.Mode()&0o111 != 0, "sign-file (apt-get install linux-kbuild-6.1, or the release's linux-headers-amd64)")
	return p
}

// LockDKMS serialises, across test processes, every test that runs the real
// dkms: dkms reads machine-wide files (/etc/dkms/*.conf, framework.conf.d)
// that another package's test may be changing at the same moment, and
// `go test ./...` runs packages in parallel. The lock is released when t ends.
func LockDKMS(t testing.TB) {
	t.Helper()
	os.MkdirAll("/run/lock", 0o755)
	t.Cleanup(LockFile(t, "/run/lock/dkms-sign-hook-tests.lock"))
}

// LockFile takes an exclusive flock(2) on path (created if missing), for
// state shared by test processes (a cache, the real dkms); the returned
// function releases it.
func LockFile(t testing.TB, path string) (unlock func()) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("lock %s: %v", path, err)
	}
	return func() { f.Close() } // closing releases the lock
}

// KbuildSignFile returns the path, inside the root file system at root, of
// the sign-file of its linux-kbuild-<version>* package (sid names the
// directory after the full version, e.g. linux-kbuild-7.2.13+deb14).
func KbuildSignFile(t testing.TB, root, version string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(root, "usr/lib/linux-kbuild-"+version+"*/scripts/sign-file"))
	if len(m) != 1 {
		t.Fatalf("want one linux-kbuild-%s sign-file in %s, found %v", version, root, m)
	}
	return strings.TrimPrefix(m[0], root)
}

// HeadersKernel is the release of a kernel whose headers are installed
// (/lib/modules/RELEASE/build/.config): what dkms builds against. "" if none.
func HeadersKernel() string {
	ents, _ := os.ReadDir("/lib/modules")
	for _, e := range ents {
		if _, err := os.Stat("/lib/modules/" + e.Name() + "/build/.config"); err == nil {
			return e.Name()
		}
	}
	return ""
}

// Override writes contrib/dkms/dkms-override.conf into dir with the hook's
// path set to bin (the installed file names /usr/sbin/dkms-sign-hook) and
// returns its path: what `enable --override` links DKMS packages to.
func Override(t testing.TB, bin, dir string) string {
	t.Helper()
	_, self, _, _ := runtime.Caller(0)
	tmpl, err := os.ReadFile(filepath.Join(filepath.Dir(self), "..", "..", "contrib", "dkms", "dkms-override.conf"))
	if err != nil {
		t.Fatal(err)
	}
	const installed = "_dsh_bin=/usr/sbin/dkms-sign-hook\n"
	if !bytes.Contains(tmpl, []byte(installed)) {
		t.Fatalf("contrib/dkms/dkms-override.conf has no line %q", installed)
	}
	p := filepath.Join(dir, "dkms-override.conf")
	os.MkdirAll(dir, 0o755)
	if err := os.WriteFile(p, bytes.Replace(tmpl, []byte(installed), []byte("_dsh_bin="+bin+"\n"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
