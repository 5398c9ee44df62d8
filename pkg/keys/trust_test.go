package keys

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
)

// trustedDir makes a directory that CheckTrustedPath accepts, for files
// that must pass it: t.TempDir() lies under /tmp, which it refuses. It
// lives in the user's cache directory (/root/.cache as root).
func trustedDir(t *testing.T) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(cache, 0o700); err != nil {
		t.Fatal(err)
	}
	d, err := os.MkdirTemp(cache, "dkms-sign-hook-keys-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	err = CheckTrustedPath(d)
	testenv.Require(t, err == nil, "a cache directory only root (or you) can write; "+errString(err))
	return d
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func writeFile(t *testing.T, path string, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("x"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // umask
		t.Fatal(err)
	}
}

// wantPermissionError checks err is a *PermissionError about path whose
// fix starts with fix.
func wantPermissionError(t *testing.T, err error, path, fix string) {
	t.Helper()
	var pe *PermissionError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want *PermissionError about %s", err, path)
	}
	if pe.Path != path || !strings.HasPrefix(pe.Fix, fix) {
		t.Fatalf("err = %v (path %s, fix %q), want path %s and fix %q...", err, pe.Path, pe.Fix, path, fix)
	}
}

func TestCheckTrustedPathAccepts(t *testing.T) {
	d := trustedDir(t)
	f := filepath.Join(d, "a", "b", "mod.so")
	writeFile(t, f, 0o644)
	for _, p := range []string{f, d, filepath.Join(d, "a"), filepath.Join(d, "a", ".", "..", "a", "b", "mod.so")} {
		if err := CheckTrustedPath(p); err != nil {
			t.Errorf("CheckTrustedPath(%s) = %v", p, err)
		}
	}
	// Links, relative and absolute, into trusted directories.
	rel := filepath.Join(d, "rel.so")
	abs := filepath.Join(d, "a", "abs.so")
	if err := os.Symlink("a/b/../b/mod.so", rel); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(rel, abs); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{rel, abs} {
		real, st, err := resolveTrusted(p)
		if err != nil || real != f || !st.Mode().IsRegular() {
			t.Errorf("resolveTrusted(%s) = %s, %v, %v; want %s, a regular file", p, real, st, err, f)
		}
	}
}

func TestCheckTrustedPathRefusesWritableDirectory(t *testing.T) {
	d := trustedDir(t)
	for _, mode := range []fs.FileMode{0o777, 0o775, 0o757, 0o777 | fs.ModeSticky} {
		sub := filepath.Join(d, "sub")
		f := filepath.Join(sub, "deeper", "mod.so")
		writeFile(t, f, 0o644)
		if err := os.Chmod(sub, mode); err != nil {
			t.Fatal(err)
		}
		wantPermissionError(t, CheckTrustedPath(f), sub, "chmod go-w "+sub)
		os.RemoveAll(sub)
	}
}

func TestCheckTrustedPathRefusesWritableFile(t *testing.T) {
	d := trustedDir(t)
	for _, mode := range []fs.FileMode{0o666, 0o664, 0o646} {
		f := filepath.Join(d, "mod.so")
		writeFile(t, f, mode)
		wantPermissionError(t, CheckTrustedPath(f), f, "chmod go-w "+f)
	}
}

func TestCheckTrustedPathRefusesTmp(t *testing.T) {
	f := filepath.Join(t.TempDir(), "mod.so")
	writeFile(t, f, 0o644)
	var pe *PermissionError
	if err := CheckTrustedPath(f); !errors.As(err, &pe) || !strings.Contains(pe.Reason, "directory mode") {
		t.Fatalf("file under %s: err = %v, want a PermissionError for a directory", os.TempDir(), err)
	}
}

// A link may be trusted while its target is not: the target's directories
// are checked too.
func TestCheckTrustedPathFollowsLinks(t *testing.T) {
	d := trustedDir(t)
	tmp := t.TempDir()
	f := filepath.Join(tmp, "mod.so")
	writeFile(t, f, 0o644)
	link := filepath.Join(d, "mod.so")
	if err := os.Symlink(f, link); err != nil {
		t.Fatal(err)
	}
	if err := CheckTrustedPath(link); err == nil {
		t.Fatalf("link into %s accepted", tmp)
	}
	// A directory link to a writable directory, then back out with "..":
	// the writable directory was passed through, so refuse.
	wild := filepath.Join(d, "wild")
	if err := os.Mkdir(wild, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(wild, 0o777); err != nil {
		t.Fatal(err)
	}
	inner := filepath.Join(wild, "inner")
	if err := os.Mkdir(inner, 0o755); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(d, "good.so")
	writeFile(t, good, 0o644)
	dirLink := filepath.Join(d, "dirlink")
	if err := os.Symlink("wild/inner/../../good.so", dirLink); err != nil {
		t.Fatal(err)
	}
	wantPermissionError(t, CheckTrustedPath(dirLink), wild, "chmod go-w")

	loop := filepath.Join(d, "loop")
	if err := os.Symlink("loop", loop); err != nil {
		t.Fatal(err)
	}
	if err := CheckTrustedPath(loop); err == nil || !strings.Contains(err.Error(), "too many levels") {
		t.Errorf("link loop: err = %v", err)
	}
}

func TestCheckTrustedPathRefusesOthersOwners(t *testing.T) {
	testenv.RequireRoot(t)
	d := trustedDir(t)
	sub := filepath.Join(d, "sub")
	f := filepath.Join(sub, "mod.so")
	writeFile(t, f, 0o644)

	if err := os.Chown(f, 4242, 0); err != nil {
		t.Fatal(err)
	}
	wantPermissionError(t, CheckTrustedPath(f), f, "chown root:root "+f)
	os.Chown(f, 0, 0)

	if err := os.Chown(sub, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	wantPermissionError(t, CheckTrustedPath(f), sub, "chown root:root "+sub)
	os.Chown(sub, 0, 0)

	link := filepath.Join(d, "link.so")
	if err := os.Symlink(f, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	wantPermissionError(t, CheckTrustedPath(link), link, "chown -h root:root "+link)

	// Not root: our own files are trusted as well as root's.
	defer func(f func() int) { geteuid = f }(geteuid)
	geteuid = func() int { return 4242 }
	if err := CheckTrustedPath(link); err != nil {
		t.Errorf("as uid 4242, a link owned by 4242: %v", err)
	}
}

func TestCheckTrustedPathErrors(t *testing.T) {
	if err := CheckTrustedPath("relative/mod.so"); err == nil || !strings.Contains(err.Error(), "absolute") {
		t.Errorf("relative path: err = %v", err)
	}
	d := trustedDir(t)
	if err := CheckTrustedPath(filepath.Join(d, "missing.so")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v, want fs.ErrNotExist", err)
	}
	f := filepath.Join(d, "file")
	writeFile(t, f, 0o644)
	if err := CheckTrustedPath(f + "/x"); err == nil {
		t.Errorf("file used as a directory: no error")
	}
}

// Debian's SoftHSM module is a link into /usr/lib/x86_64-linux-gnu; it and
// every directory on the way pass.
func TestCheckTrustedPathSoftHSM(t *testing.T) {
	const module = "/usr/lib/softhsm/libsofthsm2.so"
	_, err := os.Stat(module)
	testenv.Require(t, err == nil, "SoftHSM2 (apt-get install softhsm2)")
	real, st, err := resolveTrusted(module)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.EvalSymlinks(module)
	if real != want || !st.Mode().IsRegular() {
		t.Errorf("resolveTrusted(%s) = %s, want %s (regular file)", module, real, want)
	}
}
