package safefile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
)

// tree makes dir/a/b/f.conf (0755 dirs, 0644 file) under a private
// directory and returns the file's path. dir lies under the sticky /tmp, in
// an entry of ours: trusted.
func tree(t *testing.T) (dir, file string) {
	dir = t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(dir, "a", "b", "f.conf")
	writeFile(t, file, 0o644)
	return dir, file
}

// writeFile writes "x = 1\n" to path with mode, whatever the umask.
func writeFile(t *testing.T, path string, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("x = 1\n"), mode); err != nil {
		t.Fatal(err)
	}
	chmod(t, path, mode)
}

func chmod(t *testing.T, path string, mode fs.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func chown(t *testing.T, path string, uid, gid int) {
	t.Helper()
	if err := os.Lchown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// wantPerm checks err is a *PermissionError about path whose reason holds
// reason and whose fix is fix.
func wantPerm(t *testing.T, err error, path, reason, fix string) {
	t.Helper()
	var pe *PermissionError
	if !errors.As(err, &pe) {
		t.Fatalf("got %v, want a PermissionError on %s", err, path)
	}
	if pe.Path != path || !strings.Contains(pe.Reason, reason) || pe.Fix != fix {
		t.Errorf("got %q (%q, fix %q), want %s: ...%s (fix %q)", pe.Path, pe.Reason, pe.Fix, path, reason, fix)
	}
	if want := path + ": refusing to use it: "; !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), "(fix: "+fix+")") {
		t.Errorf("message %q, want %q... (fix: %s)", err, want, fix)
	}
}

// all runs every entry point on path: ReadFile, Open, Stat and (for the
// error) Resolve when the refusal is on the way to the file.
func all(path string) map[string]error {
	_, rerr := ReadFile(path)
	f, oerr := Open(path)
	if oerr == nil {
		f.Close()
	}
	_, _, serr := Stat(path)
	return map[string]error{"ReadFile": rerr, "Open": oerr, "Stat": serr}
}

func wantAccepted(t *testing.T, path string) {
	t.Helper()
	for fn, err := range all(path) {
		if err != nil {
			t.Errorf("%s(%s): %v", fn, path, err)
		}
	}
}

func wantRefused(t *testing.T, path, at, reason, fix string) {
	t.Helper()
	for fn, err := range all(path) {
		t.Run(fn, func(t *testing.T) { wantPerm(t, err, at, reason, fix) })
	}
}

func TestAccepted(t *testing.T) {
	dir, file := tree(t)
	b, err := ReadFile(file)
	if err != nil || string(b) != "x = 1\n" {
		t.Fatalf("ReadFile = %q, %v", b, err)
	}
	wantAccepted(t, file)
	wantAccepted(t, filepath.Join(dir, "a", ".", "..", "a", "b", "f.conf"))
	// A link, relative with "..", and a link to it by absolute path.
	rel := filepath.Join(dir, "rel.conf")
	abs := filepath.Join(dir, "a", "abs.conf")
	symlink(t, "a/../a/b/f.conf", rel)
	symlink(t, rel, abs)
	for _, p := range []string{rel, abs} {
		wantAccepted(t, p)
		if real, err := Resolve(p); err != nil || real != file {
			t.Errorf("Resolve(%s) = %q, %v; want %s", p, real, err, file)
		}
		real, st, err := Stat(p)
		if err != nil || real != file || !st.Mode().IsRegular() {
			t.Errorf("Stat(%s) = %q, %v, %v; want %s, a regular file", p, real, st, err, file)
		}
	}
	// Stat takes directories too.
	for _, d := range []string{dir, filepath.Join(dir, "a"), filepath.Join(dir, "a", "b", "..")} {
		if _, st, err := Stat(d); err != nil || !st.IsDir() {
			t.Errorf("Stat(%s) = %v, %v", d, st, err)
		}
	}
	// Relative to the working directory.
	t.Chdir(dir)
	wantAccepted(t, "a/b/f.conf")
	// A file of ours in the sticky /tmp, in no private directory.
	f, err := os.CreateTemp("", "safefile-test-")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	t.Cleanup(func() { os.Remove(f.Name()) })
	chmod(t, f.Name(), 0o644)
	wantAccepted(t, f.Name())
}

// Debian's SoftHSM module is a link into /usr/lib/x86_64-linux-gnu; it and
// every directory on the way pass.
func TestSystemFile(t *testing.T) {
	const module = "/usr/lib/softhsm/libsofthsm2.so"
	_, err := os.Stat(module)
	testenv.Require(t, err == nil, "SoftHSM2 (apt-get install softhsm2)")
	real, st, err := Stat(module)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.EvalSymlinks(module)
	if real != want || !st.Mode().IsRegular() {
		t.Errorf("Stat(%s) = %s, want %s (regular file)", module, real, want)
	}
	wantAccepted(t, module)
}

func TestWritableFile(t *testing.T) {
	dir, _ := tree(t)
	f := filepath.Join(dir, "f")
	for _, mode := range []fs.FileMode{0o666, 0o664, 0o646, 0o620, 0o602} {
		writeFile(t, f, mode)
		wantRefused(t, f, f, "mode 0"+octal(mode)+" lets group or others write it", "chmod go-w "+f)
	}
}

func octal(m fs.FileMode) string {
	const digits = "01234567"
	p := m.Perm()
	return string([]byte{digits[p>>6&7], digits[p>>3&7], digits[p&7]})
}

// A directory group or others can write is refused anywhere on the way,
// whatever its group (root's included), unless it is sticky.
func TestWritableDirectory(t *testing.T) {
	dir, file := tree(t)
	b := filepath.Join(dir, "a", "b")
	for _, mode := range []fs.FileMode{0o777, 0o775, 0o757, 0o770, 0o705 | 0o020} {
		chmod(t, b, mode)
		wantRefused(t, file, b, "directory mode 0"+octal(mode)+" lets group or others replace what is in it", "chmod go-w "+b)
	}
	chmod(t, b, 0o777)
	// ... also the working directory's ancestors, for a relative path
	t.Chdir(b)
	wantRefused(t, "f.conf", b, "directory mode 0777", "chmod go-w "+b)
	// ... also when reached through a link from a safe place
	link := filepath.Join(t.TempDir(), "l.conf")
	symlink(t, file, link)
	wantRefused(t, link, b, "directory mode 0777", "chmod go-w "+b)
	// ... also when only passed through: a link into it and back out by ".."
	good := filepath.Join(dir, "good.conf")
	writeFile(t, good, 0o644)
	dirLink := filepath.Join(dir, "dirlink")
	symlink(t, "a/b/../../good.conf", dirLink)
	wantRefused(t, dirLink, b, "directory mode 0777", "chmod go-w "+b)
	if _, _, err := Stat(b + "/.."); err == nil {
		t.Errorf("Stat(%s/..) accepted", b)
	}

	// Sticky and writable, like /tmp: fine while its entries are ours (they
	// are here; TestOwners has another user's).
	for _, mode := range []fs.FileMode{0o777, 0o775, 0o757} {
		chmod(t, b, mode|fs.ModeSticky)
		wantAccepted(t, file)
		wantAccepted(t, link)
	}
	if _, st, err := Stat(b); err != nil || !st.IsDir() {
		t.Errorf("Stat(sticky %s) = %v", b, err)
	}
}

func TestOtherErrors(t *testing.T) {
	dir, file := tree(t)
	b := filepath.Join(dir, "a", "b")
	// missing: wraps fs.ErrNotExist, from every entry point
	for fn, err := range all(filepath.Join(b, "nope")) {
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s(missing file): %v", fn, err)
		}
	}
	if _, err := Resolve(filepath.Join(b, "nope", "deeper")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Resolve(missing directory): %v", err)
	}
	// a directory is not a file to Open
	if _, err := ReadFile(b); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
	// a file used as a directory
	for fn, err := range all(file + "/x") {
		if err == nil || !strings.Contains(err.Error(), "not a directory") {
			t.Errorf("%s(file/x): %v", fn, err)
		}
	}
	// symlink loop
	loop := filepath.Join(dir, "loop")
	symlink(t, "loop", loop)
	for fn, err := range all(loop) {
		if err == nil || !strings.Contains(err.Error(), "too many levels") {
			t.Errorf("%s(loop): %v", fn, err)
		}
	}
	// too large for ReadFile
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, maxSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(big); err == nil || !strings.Contains(err.Error(), "larger than 1 MiB") {
		t.Errorf("big file: %v", err)
	}
}

// TestOwners needs root to give files away.
func TestOwners(t *testing.T) {
	testenv.RequireRoot(t) // chown
	dir, file := tree(t)
	b := filepath.Join(dir, "a", "b")

	chown(t, file, 65534, 65534)
	wantRefused(t, file, file, "owned by uid 65534 while running as root", "chown root:root "+file)
	chown(t, file, 0, 0)
	chown(t, b, 65534, 65534)
	wantRefused(t, file, b, "owned by uid 65534 while running as root", "chown root:root "+b)
	chown(t, b, 0, 0)

	// A link's owner cannot change it: in a directory only root can write,
	// a link of another user is fine.
	link := filepath.Join(b, "link.conf")
	symlink(t, "f.conf", link)
	chown(t, link, 65534, 65534)
	wantAccepted(t, link)

	// A sticky world-writable directory: every entry looked up in it must
	// be ours, since its owner could remove or rename it.
	chmod(t, b, 0o777|fs.ModeSticky)
	wantAccepted(t, file)
	wantRefused(t, link, link, "symbolic link owned by uid 65534 while running as root", "chown -h root:root "+link)
	// ... also when the lookup comes back to it by ".."
	back := filepath.Join(b, "back")
	if err := os.Mkdir(back, 0o755); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, back+"/../link.conf", link, "symbolic link owned by uid 65534", "chown -h root:root "+link)
	chown(t, file, 65534, 65534)
	wantRefused(t, file, file, "owned by uid 65534 while running as root", "chown root:root "+file)
	chown(t, file, 0, 0)
	sub := filepath.Join(b, "sub")
	writeFile(t, filepath.Join(sub, "f.conf"), 0o644)
	chown(t, sub, 65534, 65534)
	wantRefused(t, filepath.Join(sub, "f.conf"), sub, "owned by uid 65534", "chown root:root "+sub)

	// Not root: our own files are trusted as well as root's, nobody else's.
	defer func(f func() int) { geteuid = f }(geteuid)
	geteuid = func() int { return 65534 }
	wantAccepted(t, link)
	chown(t, file, 65534, 65534)
	wantAccepted(t, file)
	chown(t, file, 4242, 4242)
	wantRefused(t, file, file, "owned by uid 4242, neither root nor you", "chown root:root "+file)
	geteuid = os.Geteuid
	chown(t, file, 0, 0)

	// Group-writable is refused even for root's group: being in group 0
	// does not make one root.
	chown(t, b, 0, 0)
	chmod(t, b, 0o775)
	wantRefused(t, file, b, "directory mode 0775", "chmod go-w "+b)
	chown(t, b, 0, 65534)
	wantRefused(t, file, b, "directory mode 0775", "chmod go-w "+b)
}
