package dkmsenv

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSourcesOverride: only a line that sources the override counts.
func TestSourcesOverride(t *testing.T) {
	dir := t.TempDir()
	ov := filepath.Join(dir, "override.conf")
	os.WriteFile(ov, []byte("# "+OverrideMarker+"\n"), 0o644)
	other := filepath.Join(dir, "elsewhere.conf") // our override under another prefix
	os.WriteFile(other, []byte("# "+OverrideMarker+"\n"), 0o644)
	for _, tc := range []struct {
		text string
		want bool
	}{
		{". " + ov + "\n", true},
		{"MAKE[0]=make\n  source '" + ov + "'  # sign\n", true},
		{`. "` + other + `"` + "\n", true},
		{"# . " + ov + "\n", false},
		{"# do NOT use dkms-sign-hook\n", false},
		{"echo " + ov + "\n", false},
		{". /etc/dkms/unrelated.conf\n", false},
	} {
		p := filepath.Join(dir, "pkg.conf")
		os.WriteFile(p, []byte(tc.text), 0o644)
		if got := SourcesOverride(p, ov); got != tc.want {
			t.Errorf("SourcesOverride(%q) = %v, want %v", tc.text, got, tc.want)
		}
	}
}
