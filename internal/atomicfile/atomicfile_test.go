package atomicfile

import (
	"errors"
	"fmt"
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

// TestCommitAll: every file of a batch is replaced, keeps its mode, and no
// temporary file remains; a file whose pending version is aborted is kept.
func TestCommitAll(t *testing.T) {
	dirs := []string{t.TempDir(), t.TempDir()}
	var files []*Pending
	for i := 0; i < 40; i++ {
		p := filepath.Join(dirs[i%2], fmt.Sprintf("m%d.ko", i))
		os.WriteFile(p, []byte("old"), 0o640)
		st, _ := os.Stat(p)
		f, err := Begin(p, st, 0)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, "new %d", i)
		files = append(files, f)
	}
	for i, err := range CommitAll(files) {
		if err != nil {
			t.Fatalf("file %d: %v", i, err)
		}
	}
	for i, f := range files {
		b, _ := os.ReadFile(f.Path())
		st, _ := os.Stat(f.Path())
		if string(b) != fmt.Sprintf("new %d", i) || st.Mode().Perm() != 0o640 {
			t.Fatalf("%s: %q %v", f.Path(), b, st.Mode())
		}
	}
	for _, d := range dirs {
		if entries, _ := os.ReadDir(d); len(entries) != 20 {
			t.Fatalf("%d entries in %s, want 20", len(entries), d)
		}
	}
}

func TestParseTempName(t *testing.T) {
	for name, want := range map[string]string{
		".btrfs.ko.xz.tmp-123": "btrfs.ko.xz",
		".a.tmp-1.tmp-42":      "a.tmp-1",
		"btrfs.ko.tmp-123":     "",
		".btrfs.ko.tmp-":       "",
		".btrfs.ko.tmp-12a":    "",
		"..tmp-1":              "",
		".x.tmp123":            "",
	} {
		got, ok := ParseTempName(name)
		if got != want || ok != (want != "") {
			t.Errorf("ParseTempName(%q) = %q, %v; want %q", name, got, ok, want)
		}
	}
}

// TestRemoveDebris: a dead run's temporary file goes; one a live writer
// holds (locked), one of another name pattern, a symbolic link, a directory
// and one whose target the caller does not claim stay.
func TestRemoveDebris(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	dead := mk(".a.ko.tmp-11")
	mk("a.ko")
	mk(".a.ko.tmp-x")
	mk(".notes.txt.tmp-5")
	os.Mkdir(filepath.Join(dir, ".d.ko.tmp-7"), 0o700)
	outside := filepath.Join(t.TempDir(), "target")
	os.WriteFile(outside, []byte("x"), 0o600)
	os.Symlink(outside, filepath.Join(dir, ".l.ko.tmp-9"))
	live, err := Begin(filepath.Join(dir, "b.ko"), nil, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Abort()
	isKo := func(target string) bool { return filepath.Ext(target) == ".ko" }
	removed, err := RemoveDebris(dir, isKo)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != filepath.Base(dead) {
		t.Fatalf("removed %v, want only %s", removed, filepath.Base(dead))
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 6 {
		t.Fatalf("%d entries left, want 6", len(entries))
	}
	if _, err := os.Stat(outside); err != nil {
		t.Fatal("the link's target was removed")
	}
	if _, err := live.Write([]byte("still mine")); err != nil {
		t.Fatal(err)
	}
	if err := live.Commit(); err != nil {
		t.Fatalf("the live writer lost its file: %v", err)
	}
}
