package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testmod"
)

// TestUnwritableDirectory: signing in a directory that cannot be written
// fails with one line naming the module, exit 1, and leaves it as it was.
// Root writes anywhere, so as root the directory is a read-only bind mount.
func TestUnwritableDirectory(t *testing.T) {
	kp := testmod.Key(t, "rsa2048")
	dir := t.TempDir()
	mod := testmod.Copy(t, testmod.RealNamed(t, "dummy.ko"), dir, "dummy.ko")
	before, _ := os.ReadFile(mod)
	if os.Geteuid() == 0 {
		_, err := exec.LookPath("mount")
		testenv.Require(t, err == nil, "mount (util-linux)")
		testmod.Run(t, "mount", "--bind", dir, dir)
		t.Cleanup(func() { exec.Command("umount", dir).Run() })
		testmod.Run(t, "mount", "-o", "remount,bind,ro", dir)
	} else {
		os.Chmod(dir, 0o555)
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"dkms-sign-hook", "sign", "--key", kp.Key, "--cert", kp.Cert, mod}, &stdout, &stderr)
	if code != exitFailure {
		t.Fatalf("exit %d, want 1; stderr: %s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if !strings.HasPrefix(lines[0], "dkms-sign-hook sign: write "+mod+": cannot create a file in "+filepath.Dir(mod)+": ") {
		t.Errorf("first line %q does not name the module and the directory", lines[0])
	}
	if len(lines) != 2 || !strings.HasPrefix(lines[1], "hint: ") {
		t.Errorf("want one error line and one hint, got %q", lines)
	}
	after, _ := os.ReadFile(mod)
	if !bytes.Equal(before, after) {
		t.Error("module changed")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory has %d entries, want only the module", len(entries))
	}
}
