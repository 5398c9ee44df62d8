package dkmsenv

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
)

func TestReadDKMS(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		script  string
		version string
		dropIns bool
		atLeast bool // 3.0.4
	}{
		{"#!/bin/bash\nPATH=/bin\n        --version|-V)\n            echo $\"dkms:2.8\"\n", "2.8", false, false},
		{"#!/bin/bash\nfor f in /etc/dkms/framework.conf.d/*.conf\n  --version|-V)\n     echo \"dkms-3.2.2\"\n", "3.2.2", true, true},
		{"#!/bin/bash\n# framework.conf.d\necho $\"dkms-3.0.10\"\n", "3.0.10", true, true},
		{"#!/bin/bash\necho hello\n", "", false, false},
	} {
		p := filepath.Join(dir, "dkms")
		os.WriteFile(p, []byte(tc.script), 0o755)
		d, err := ReadDKMS(p)
		if err != nil || d.Version != tc.version || d.DropIns != tc.dropIns || d.AtLeast(3, 0, 4) != tc.atLeast {
			t.Errorf("ReadDKMS(%q) = %+v, %v; want version %q, drop-ins %v", tc.script, d, err, tc.version, tc.dropIns)
		}
	}
	if _, err := ReadDKMS(filepath.Join(dir, "none")); err == nil {
		t.Error("ReadDKMS of a missing file: no error")
	}
}

// TestFindDKMSAgreesWithDKMS: the installed dkms (Debian 12's here; 2.8.4
// and 3.2.2 when test/generations runs this inside other releases) says its
// own version; drop-ins are read from 3.0.4 on.
func TestFindDKMSAgreesWithDKMS(t *testing.T) {
	d, err := FindDKMS()
	if errors.Is(err, ErrNoDKMS) {
		testenv.Require(t, false, "dkms (apt-get install dkms)")
	}
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(d.Path, "--version").Output()
	if err != nil {
		t.Fatalf("%s --version: %v", d.Path, err)
	}
	if got := strings.TrimSpace(string(out)); got != "dkms-"+d.Version && got != "dkms:"+d.Version {
		t.Errorf("FindDKMS: version %q, but %s --version says %q", d.Version, d.Path, got)
	}
	if d.DropIns != d.AtLeast(3, 0, 4) {
		t.Errorf("dkms %s: DropIns = %v, want %v (framework.conf.d since 3.0.4)", d.Version, d.DropIns, !d.DropIns)
	}
	t.Logf("dkms %s at %s, framework.conf.d: %v", d.Version, d.Path, d.DropIns)
}
