// Package dkmsenv discovers the DKMS context a module signer works in: which
// package, version, kernel and architecture a POST_BUILD hook runs for, where
// DKMS keeps its tree, which directory holds the freshly built modules, and
// which hash the target kernel expects.
//
// Every system path comes from a Roots value, so tests run on fake trees.
package dkmsenv

import (
	"os"
	"path/filepath"
	"strings"
)

// Roots are the system directories the package reads. DefaultRoots gives the
// real ones; Under gives the same layout below a test directory.
type Roots struct {
	EtcDKMS  string // /etc/dkms: overrides and framework.conf(.d)
	DKMSTree string // /var/lib/dkms: DKMS's default tree, unless framework.conf moves it
	Modules  string // /lib/modules: installed modules and kernel headers
	Proc     string // /proc: the running kernel's release and keyrings
}

// DefaultRoots are the real system directories.
func DefaultRoots() Roots {
	return Roots{EtcDKMS: "/etc/dkms", DKMSTree: "/var/lib/dkms", Modules: "/lib/modules", Proc: "/proc"}
}

// Under returns the default layout below dir (dir "" or "/" gives DefaultRoots).
func Under(dir string) Roots {
	if dir == "" || dir == "/" {
		return DefaultRoots()
	}
	r := DefaultRoots()
	return Roots{
		EtcDKMS:  filepath.Join(dir, r.EtcDKMS),
		DKMSTree: filepath.Join(dir, r.DKMSTree),
		Modules:  filepath.Join(dir, r.Modules),
		Proc:     filepath.Join(dir, r.Proc),
	}
}

// RunningKernel returns the running kernel's release and machine, read from
// <Proc>/sys/kernel/osrelease and <Proc>/sys/kernel/arch.
func (r Roots) RunningKernel() (release, arch string, err error) {
	b, err := os.ReadFile(filepath.Join(r.Proc, "sys/kernel/osrelease"))
	if err != nil {
		return "", "", err
	}
	release = strings.TrimSpace(string(b))
	if b, err := os.ReadFile(filepath.Join(r.Proc, "sys/kernel/arch")); err == nil {
		arch = strings.TrimSpace(string(b))
	} else {
		arch = goarchToUname()
	}
	return release, arch, nil
}
