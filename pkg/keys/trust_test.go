package keys

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// CheckTrustedPath is internal/safefile's check (tested there) for an
// absolute path; its refusals are *PermissionError here too.
func TestCheckTrustedPath(t *testing.T) {
	if err := CheckTrustedPath("relative/mod.so"); err == nil || !strings.Contains(err.Error(), "must be an absolute path") {
		t.Errorf("relative path: err = %v", err)
	}
	d := t.TempDir()
	f := filepath.Join(d, "mod.so")
	if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{f, d} {
		if err := CheckTrustedPath(p); err != nil {
			t.Errorf("CheckTrustedPath(%s) = %v", p, err)
		}
	}
	if err := CheckTrustedPath(filepath.Join(d, "missing.so")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v, want fs.ErrNotExist", err)
	}
	if err := os.Chmod(d, 0o777); err != nil {
		t.Fatal(err)
	}
	var pe *PermissionError
	if err := CheckTrustedPath(f); !errors.As(err, &pe) || pe.Path != d || pe.Fix != "chmod go-w "+d {
		t.Errorf("file in a 0777 directory: err = %v, want a PermissionError for %s", err, d)
	}
}
