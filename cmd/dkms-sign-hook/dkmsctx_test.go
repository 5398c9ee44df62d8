package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
)

// TestShippedBinaryIgnoresRootEnv builds the binary as shipped (no test
// hooks) and checks that DKMS_SIGN_HOOK_ROOT cannot move the DKMS tree.
func TestShippedBinaryIgnoresRootEnv(t *testing.T) {
	dir := t.TempDir()
	bin := testenv.Tool(t)
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
