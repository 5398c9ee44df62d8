// Package dkmsenv is the DKMS model of dkms-sign-hook: where DKMS keeps its
// tree and configuration, which package versions are built for which
// kernels, the per-package override and framework routes that make DKMS run
// this tool (their states, enable and disable), and signing the modules of
// one build, which both the POST_BUILD hook and `sign --dkms` do.
//
// Every system path comes from a Roots value, so tests run on fake trees.
package dkmsenv

import (
	"os"
	"path/filepath"
	"strings"
)

// Roots are the system directories the tool reads and writes, all below one
// base directory: "" for the running system, a test directory otherwise.
type Roots struct {
	base string
}

// DefaultRoots are the real system directories.
func DefaultRoots() Roots { return Roots{} }

// Under returns the default layout below dir (dir "" or "/" gives DefaultRoots).
func Under(dir string) Roots {
	if dir == "" || dir == "/" {
		return DefaultRoots()
	}
	return Roots{base: filepath.Clean(dir)}
}

// Live reports whether r are the running system's own directories: only
// then may what is outside them (mokutil, EFI variables) be asked too.
func (r Roots) Live() bool { return r.base == "" }

// Path maps an absolute system path to the same path below the base.
func (r Roots) Path(p string) string { return filepath.Join("/", r.base, p) }

// EtcDKMS is /etc/dkms: overrides and framework.conf(.d).
func (r Roots) EtcDKMS() string { return r.Path("/etc/dkms") }

// DKMSTree is /var/lib/dkms: DKMS's default tree, unless framework.conf moves it.
func (r Roots) DKMSTree() string { return r.Path("/var/lib/dkms") }

// Modules is /lib/modules: installed modules and kernel headers.
func (r Roots) Modules() string { return r.Path("/lib/modules") }

// UbuntuMOK is the MOK certificate Ubuntu's DKMS signs with through
// kmodsign (shim-signed's update-secureboot-policy makes it).
func (r Roots) UbuntuMOK() string { return r.Path("/var/lib/shim-signed/mok/MOK.der") }

// Proc is /proc: the running kernel's release and keyrings.
func (r Roots) Proc() string { return r.Path("/proc") }

// Sys is /sys: whether the running kernel enforces module signatures.
func (r Roots) Sys() string { return r.Path("/sys") }

// RunningKernel returns the running kernel's release and machine, read from
// <Proc>/sys/kernel/osrelease and <Proc>/sys/kernel/arch.
func (r Roots) RunningKernel() (release, arch string, err error) {
	b, err := os.ReadFile(filepath.Join(r.Proc(), "sys/kernel/osrelease"))
	if err != nil {
		return "", "", err
	}
	release = strings.TrimSpace(string(b))
	if b, err := os.ReadFile(filepath.Join(r.Proc(), "sys/kernel/arch")); err == nil {
		arch = strings.TrimSpace(string(b))
	} else {
		arch = goarchToUname()
	}
	return release, arch, nil
}
