package kerneltrust

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReadEnforcement(t *testing.T) {
	for _, tc := range []struct {
		sigEnforce, lockdown string // "" = file absent
		want                 Enforcement
	}{
		{"Y\n", "", Enforcement{Known: true, Enforced: true, Why: "module.sig_enforce=Y"}},
		{"N\n", "none [integrity] confidentiality\n", Enforcement{Known: true, Enforced: true, Why: "lockdown=integrity"}},
		{"N\n", "[none] integrity confidentiality\n", Enforcement{Known: true, Why: "module.sig_enforce=N, lockdown=none"}},
		{"N\n", "", Enforcement{}},                                // securityfs not mounted: unknown
		{"", "[none] integrity confidentiality\n", Enforcement{}}, // no sig_enforce: unknown
	} {
		sys := t.TempDir()
		write := func(rel, s string) {
			p := filepath.Join(sys, rel)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if s != "" {
				os.WriteFile(p, []byte(s), 0o644)
			}
		}
		write("module/module/parameters/sig_enforce", tc.sigEnforce)
		write("kernel/security/lockdown", tc.lockdown)
		if got := ReadEnforcement(sys); got != tc.want {
			t.Errorf("sig_enforce %q, lockdown %q: %+v, want %+v", tc.sigEnforce, tc.lockdown, got, tc.want)
		}
	}
	// A mounted securityfs without the lockdown LSM: not locked down.
	sys := t.TempDir()
	os.MkdirAll(filepath.Join(sys, "module/module/parameters"), 0o755)
	os.WriteFile(filepath.Join(sys, "module/module/parameters/sig_enforce"), []byte("N\n"), 0o644)
	os.MkdirAll(filepath.Join(sys, "kernel/security/apparmor"), 0o755)
	if got := ReadEnforcement(sys); !got.Known || got.Enforced {
		t.Errorf("no lockdown LSM: %+v", got)
	}
}
