package safefile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
)

// tree makes dir/a/b/f.conf (0755 dirs, 0644 file) under a private
// directory and returns the file's path.
func tree(t *testing.T) (dir, file string) {
	dir = t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(dir, "a", "b", "f.conf")
	if err := os.WriteFile(file, []byte("x = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, file
}

func wantPerm(t *testing.T, err error, path, reason string) {
	t.Helper()
	var pe *keys.PermissionError
	if !errors.As(err, &pe) {
		t.Fatalf("got %v, want a PermissionError on %s", err, path)
	}
	if pe.Path != path || !strings.Contains(pe.Reason, reason) {
		t.Errorf("got %q (%q), want %s: ...%s", pe.Path, pe.Reason, path, reason)
	}
}

func TestReadFileGood(t *testing.T) {
	dir, file := tree(t)
	b, err := ReadFile(file)
	if err != nil || string(b) != "x = 1\n" {
		t.Fatalf("ReadFile = %q, %v", b, err)
	}
	// through a symlink in a safe directory, to a relative target with ..
	link := filepath.Join(dir, "link.conf")
	os.Symlink("a/../a/b/f.conf", link)
	if b, err := ReadFile(link); err != nil || string(b) != "x = 1\n" {
		t.Fatalf("ReadFile(link) = %q, %v", b, err)
	}
	if real, err := Resolve(link); err != nil || real != file {
		t.Errorf("Resolve(link) = %q, %v; want %s", real, err, file)
	}
}

func TestRefused(t *testing.T) {
	dir, file := tree(t)
	b := filepath.Join(dir, "a", "b")

	t.Chdir(dir)
	if _, err := ReadFile("a/b/f.conf"); err != nil {
		t.Errorf("relative path: %v", err)
	}
	os.Chmod(dir, 0o777)
	_, err := ReadFile("a/b/f.conf")
	wantPerm(t, err, dir, "directory mode 0777")
	os.Chmod(dir, 0o755)

	os.Chmod(file, 0o664)
	_, err = ReadFile(file)
	wantPerm(t, err, file, "mode 0664 lets group or others write it")
	os.Chmod(file, 0o644)

	// a writable directory anywhere on the way
	os.Chmod(b, 0o777)
	_, err = ReadFile(file)
	wantPerm(t, err, b, "directory mode 0777")
	// ... also when reached through a symlink from a safe place
	link := filepath.Join(t.TempDir(), "l.conf")
	os.Symlink(file, link)
	_, err = ReadFile(link)
	wantPerm(t, err, b, "directory mode 0777")
	// sticky and world-writable, like /tmp: fine while its entries are ours
	os.Chmod(b, 0o777|fs.ModeSticky)
	if _, err := ReadFile(file); err != nil {
		t.Errorf("sticky directory: %v", err)
	}
	os.Chmod(b, 0o755)

	// missing: wraps fs.ErrNotExist
	if _, err := ReadFile(filepath.Join(b, "nope")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	// a directory is not a file
	if _, err := ReadFile(b); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
	// symlink loop
	loop := filepath.Join(dir, "loop")
	os.Symlink("loop", loop)
	if _, err := ReadFile(loop); err == nil || !strings.Contains(err.Error(), "too many levels") {
		t.Errorf("loop: %v", err)
	}
}

// TestOwners needs root to give files away.
func TestOwners(t *testing.T) {
	testenv.RequireRoot(t) // chown
	dir, file := tree(t)
	b := filepath.Join(dir, "a", "b")
	os.Chown(file, 65534, 65534)
	_, err := ReadFile(file)
	wantPerm(t, err, file, "owned by uid 65534 while running as root")
	os.Chown(file, 0, 0)
	os.Chown(b, 65534, 65534)
	_, err = ReadFile(file)
	wantPerm(t, err, b, "owned by uid 65534 while running as root")
	os.Chown(b, 0, 0)
	// a sticky world-writable directory: an entry of another user is refused
	os.Chmod(b, 0o777|fs.ModeSticky)
	os.Chown(file, 65534, 65534)
	_, err = ReadFile(file)
	wantPerm(t, err, file, "owned by uid 65534")
	// group-writable by root's group only is fine
	os.Chown(file, 0, 0)
	os.Chmod(b, 0o775)
	if _, err := ReadFile(file); err != nil {
		t.Errorf("directory writable by group root: %v", err)
	}
	os.Chown(b, 0, 65534)
	_, err = ReadFile(file)
	wantPerm(t, err, b, "directory mode 0775")
}
