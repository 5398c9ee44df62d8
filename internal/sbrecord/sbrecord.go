// Package sbrecord rebuilds, for tests, the system test/secureboot recorded
// in a boot of a real Secure Boot chain (pkg/kerneltrust/testdata/
// secureboot-debian12, whose README says what it holds).
package sbrecord

import (
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Kernel is the release of the recorded boots' kernel.
const Kernel = "6.1.0-57-amd64"

// Capture is the recorded output of one command of a boot's /init
// (<dir>/<boot>/capture-<name>.txt).
func Capture(t testing.TB, dir, boot, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, boot, "capture-"+name+".txt"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Root lays out a boot's system below a new directory as the booted
// initramfs had it (DKMS's tree, /etc/dkms, /etc/dkms-sign-hook, the
// override file, the kernel's config), with the /proc and /sys files the
// tool reads, from the recordings in dir.
func Root(t testing.TB, dir, boot string) string {
	t.Helper()
	root := t.TempDir()
	for src, dst := range map[string]string{
		"system/var-lib-dkms":       "var/lib/dkms",
		"system/dkms":               "etc/dkms",
		"system/dkms-sign-hook":     "etc/dkms-sign-hook",
		"system/dkms-override.conf": "usr/share/dkms-sign-hook/dkms-override.conf",
		"config-" + Kernel:          "boot/config-" + Kernel,
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, dst)), 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("cp", "-a", filepath.Join(dir, src), filepath.Join(root, dst)).CombinedOutput(); err != nil {
			t.Fatalf("cp %s: %v\n%s", src, err, out)
		}
	}
	files := map[string][]byte{
		"proc/keys":                                Capture(t, dir, boot, "proc-keys"),
		"proc/version":                             Capture(t, dir, boot, "proc-version"),
		"proc/sys/kernel/osrelease":                []byte(Kernel + "\n"),
		"proc/sys/kernel/arch":                     []byte("x86_64\n"),
		"sys/kernel/security/lockdown":             Capture(t, dir, boot, "lockdown"),
		"sys/module/module/parameters/sig_enforce": Capture(t, dir, boot, "sig_enforce"),
		"sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c": odBytes(t, Capture(t, dir, boot, "SecureBoot")),
	}
	for _, name := range strings.Fields(string(Capture(t, dir, boot, "mok-variables"))) {
		files["sys/firmware/efi/mok-variables/"+name] = nil
	}
	for name, data := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// odBytes reads `od -An -tx1` output.
func odBytes(t testing.TB, s []byte) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(string(s)), ""))
	if err != nil {
		t.Fatalf("od output %q: %v", s, err)
	}
	return b
}
