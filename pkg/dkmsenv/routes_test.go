package dkmsenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	dkmsfiles "github.com/dkms-sign-hook/dkms-sign-hook/contrib/dkms"
)

// TestDropInIsTheShippedFile: enable --framework writes the shipped
// drop-in with only its three settings changed, and what it writes is what
// the framework reader (and so DKMS) reads back.
func TestDropInIsTheShippedFile(t *testing.T) {
	s := FrameworkSettings{SignFile: "/opt/x/sign-file", Key: "pkcs11:token=a;object=b", Certificate: "/etc/o'brien/cert.pem"}
	got := s.DropIn()
	shipped := strings.Split(dkmsfiles.FrameworkDropIn, "\n")
	lines := strings.Split(got, "\n")
	if len(lines) != len(shipped) {
		t.Fatalf("%d lines, the shipped file has %d", len(lines), len(shipped))
	}
	changed := 0
	for i := range lines {
		if lines[i] != shipped[i] {
			changed++
		}
	}
	if changed != 3 || !strings.Contains(got, FrameworkMarker) {
		t.Errorf("%d lines changed (want 3), marker present: %v\n%s", changed, strings.Contains(got, FrameworkMarker), got)
	}
	r := Under(t.TempDir())
	h := &Host{Roots: r}
	if _, err := h.EnableFramework(s); err != nil {
		t.Fatal(err)
	}
	fw, err := r.ReadFramework()
	if err != nil {
		t.Fatal(err)
	}
	// The quoted value with a ' is one a shell must evaluate: not parsed.
	if fw.Values["sign_file"] != s.SignFile || fw.Values["mok_signing_key"] != s.Key {
		t.Errorf("read back %v", fw.Values)
	}
	if h.FrameworkState() != FrameworkOurs {
		t.Errorf("state %v after enable", h.FrameworkState())
	}
	if ch, err := h.EnableFramework(s); err != nil || ch.Outcome != AlreadyEnabled {
		t.Errorf("again: %+v, %v", ch, err)
	}
	os.WriteFile(h.DropInPath(), []byte("sign_file=/x\n"), 0o644)
	if _, err := h.EnableFramework(s); err == nil {
		t.Error("replaced a drop-in we did not write")
	}
	if _, err := h.DisableFramework(); err == nil || !strings.Contains(err.Error(), filepath.Base(h.DropInPath())) {
		t.Errorf("disable of a foreign drop-in: %v", err)
	}
}
