package secureboot

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/debroot"
	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
)

// virtFwVars returns the command that runs virt-fw-vars, python3-virt-firmware's
// editor of OVMF variable stores. Debian 12 does not have the package:
// Debian 13's is fetched (through debroot's private apt configuration) and
// unpacked into the cache, and runs on Debian 12's python3 and
// python3-cryptography once importlib_resources (a backport module Debian 12
// does not package) is provided as the standard library's importlib.resources.
func virtFwVars(t *testing.T) []string {
	t.Helper()
	debs := debroot.Download(t, "trixie", "python3-virt-firmware")
	deb := debs[0]
	dir := filepath.Join(cacheDir(), "secureboot", strings.TrimSuffix(filepath.Base(deb), ".deb"))
	unlock := testenv.LockFile(t, dir+".lock")
	defer unlock()
	launcher := filepath.Join(dir, "root", "usr", "bin", "virt-fw-vars")
	if _, err := os.Stat(filepath.Join(dir, "compat", "importlib_resources.py")); err != nil {
		os.RemoveAll(dir) // plain files only
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		debroot.Unpack(t, deb, filepath.Join(dir, "root"))
		if err := os.MkdirAll(filepath.Join(dir, "compat"), 0o755); err != nil {
			t.Fatal(err)
		}
		compat := "# Debian 12 has no python3-importlib-resources; 3.11's standard library has the API.\nfrom importlib.resources import *  # noqa\n"
		if err := os.WriteFile(filepath.Join(dir, "compat", "importlib_resources.py"), []byte(compat), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "compat") + ":" + filepath.Join(dir, "root", "usr", "lib", "python3", "dist-packages")
	return []string{"env", "PYTHONPATH=" + path, "/usr/bin/python3", launcher}
}

// varStore writes dst: a copy of OVMF's variable store with Microsoft's
// keys, with certificates (PEM files) added to shim's MOK list and to the
// firmware's db, as if enrolled with MokManager or by the machine's owner.
func varStore(t *testing.T, fwVars []string, dst string, mok, db []string) error {
	t.Helper()
	args := append(append([]string{}, fwVars[1:]...), "-i", ovmfVars, "-o", dst)
	for _, c := range mok {
		args = append(args, "--add-mok", shimGUID, c)
	}
	for _, c := range db {
		args = append(args, "--add-db", shimGUID, c)
	}
	if len(mok)+len(db) == 0 {
		data, err := os.ReadFile(ovmfVars)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	}
	if out, err := exec.Command(fwVars[0], args...).CombinedOutput(); err != nil {
		return fmt.Errorf("virt-fw-vars: %v\n%s", err, out)
	}
	return nil
}
