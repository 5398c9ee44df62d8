package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestShippedBinaryIgnoresRootEnv builds the binary as shipped (no test
// hooks) and checks that DKMS_SIGN_HOOK_ROOT cannot move the DKMS tree.
func TestShippedBinaryIgnoresRootEnv(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "dkms-sign-hook")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	fake := filepath.Join(dir, "root")
	os.MkdirAll(filepath.Join(fake, "var/lib/dkms/evil/1.0"), 0o755)
	cfg := filepath.Join(dir, "c.conf")
	os.WriteFile(cfg, []byte("[signing]\nkey = /nonexistent/k.pem\ncertificate = /nonexistent/c.pem\n"), 0o644)
	cmd := exec.Command(bin, "status", "--config", cfg)
	cmd.Env = append(os.Environ(), rootEnv+"="+fake)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	if strings.Contains(string(out), fake) || !strings.Contains(string(out), "DKMS tree: /var/lib/dkms\n") {
		t.Errorf("the shipped binary followed %s=%s:\n%s", rootEnv, fake, out)
	}
}

// TestSourcesOverride: only a line that sources the override counts.
func TestSourcesOverride(t *testing.T) {
	dir := t.TempDir()
	ov := filepath.Join(dir, "override.conf")
	os.WriteFile(ov, []byte("# "+overrideMarker+"\n"), 0o644)
	other := filepath.Join(dir, "elsewhere.conf") // our override under another prefix
	os.WriteFile(other, []byte("# "+overrideMarker+"\n"), 0o644)
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
		if got := sourcesOverride(p, ov); got != tc.want {
			t.Errorf("sourcesOverride(%q) = %v, want %v", tc.text, got, tc.want)
		}
	}
}

// TestLogValue: values that could split or forge a log line are quoted.
func TestLogValue(t *testing.T) {
	for in, want := range map[string]string{
		"/var/lib/dkms/foo/1.0/6.1.0-1-amd64/x86_64/module/foo.ko": "/var/lib/dkms/foo/1.0/6.1.0-1-amd64/x86_64/module/foo.ko",
		"a b":      `"a b"`,
		"x\nlevel": `"x\nlevel"`,
		"k=v":      `"k=v"`,
		"":         `""`,
	} {
		if got := logValue(in); got != want {
			t.Errorf("logValue(%q) = %s, want %s", in, got, want)
		}
	}
	if got := logMessage("signing failed: a\nb"); got != `signing failed: a\nb` {
		t.Errorf("logMessage = %q", got)
	}
}
