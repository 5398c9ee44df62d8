package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestReplaceKeepsOriginalOnError: a failing writer leaves the file and no
// temporary file behind.
func TestReplaceKeepsOriginalOnError(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "m.ko")
	os.WriteFile(p, []byte("original"), 0o640)
	boom := errors.New("boom")
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	err = Replace(p, st, func(w io.Writer) error {
		w.Write([]byte("half"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "original" {
		t.Fatalf("file is %q", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("%d entries left in the directory", len(entries))
	}
	if err := Replace(p, st, func(w io.Writer) error { _, err := w.Write([]byte("new")); return err }); err != nil {
		t.Fatal(err)
	}
	st, _ = os.Stat(p)
	if b, _ := os.ReadFile(p); string(b) != "new" || st.Mode().Perm() != 0o640 {
		t.Fatalf("after Replace: %q %v", b, st.Mode())
	}
}

// TestWriteFile: a new file gets perm, an existing one keeps its mode.
func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "conf")
	if err := WriteFile(p, []byte("a"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, 0o640)
	if err := WriteFile(p, []byte("b"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(p)
	if b, _ := os.ReadFile(p); string(b) != "b" || st.Mode().Perm() != 0o640 {
		t.Fatalf("after WriteFile: %q %v", b, st.Mode())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("%d entries left in the directory", len(entries))
	}
}

// TestCreateNewNeverReplaces: an existing file, or a dangling link, is left
// as it is and the error wraps os.ErrExist; no temporary file remains.
func TestCreateNewNeverReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "key.pem")
	if err := CreateNew(p, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(p)
	if b, _ := os.ReadFile(p); string(b) != "secret" || st.Mode().Perm() != 0o600 {
		t.Fatalf("after CreateNew: %q %v", b, st.Mode())
	}
	if err := CreateNew(p, []byte("other"), 0o600); !errors.Is(err, os.ErrExist) {
		t.Fatalf("second CreateNew: err = %v, want ErrExist", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "secret" {
		t.Fatalf("file replaced: %q", b)
	}
	link := filepath.Join(dir, "dangling")
	os.Symlink(filepath.Join(dir, "nowhere"), link)
	if err := CreateNew(link, []byte("x"), 0o600); !errors.Is(err, os.ErrExist) {
		t.Fatalf("CreateNew through a dangling link: err = %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "nowhere")); !os.IsNotExist(err) {
		t.Fatal("CreateNew wrote through a dangling link")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Fatalf("%d entries left in the directory, want 2", len(entries))
	}
}
