// Package ubuntu tests dkms-sign-hook against the module signing DKMS does
// on Ubuntu, in Debian roots (internal/debroot) given Ubuntu's conditions:
// /usr/bin/kmodsign (the kernel's sign-file under that name: same
// arguments, appends the same way), /var/lib/shim-signed/mok/, a STAND-IN
// update-secureboot-policy (see standIn: it makes MOK.priv/MOK.der with
// openssl and records --enroll-key; Ubuntu's real one is not reachable
// here) and Ubuntu's os-release and lsb-release.
//
// Ubuntu's archive is not reachable from the test machines, nor is the
// dkms-project/dkms history, so the roots run Debian's own dkms, whose
// signing code is upstream's (see README.md here for the line-by-line list):
//   - Ubuntu 22.04's dkms 2.8.7 is played by Debian 11's 2.8.4-3: upstream
//     v2.8.4 and v2.8.7 have the same sign_build, run_build_script,
//     read_conf and set_module_suffix; do_build differs by one echo, the
//     install by messages; Debian's patches touch neither.
//   - Ubuntu 24.04's dkms 3.0.11 is played by Debian 12's 3.0.10-8+deb12u1,
//     which carries 3.0.11's `update-secureboot-policy --enroll-key`; its
//     prepare_signing differs from 3.0.11's only for kernels without
//     CONFIG_MODULE_SIG_HASH (3.0.10 signs with sha512, 3.0.11 not at all)
//     and when openssl is missing; the roots' kernels have both.
//
// What must hold: the installed module of a package dkms-sign-hook is
// enabled for carries one signature, the administrator's, checked with
// `openssl cms -verify`; a package it is not enabled for keeps what DKMS
// does on Ubuntu; `disable` and removing the package give DKMS's own
// behaviour back. With plain and zstd-compressed modules (Ubuntu compresses
// with zstd).
package ubuntu

import (
	"os"
	"strings"
	"testing"
)

const (
	osUbuntu2204  = "PRETTY_NAME=\"Ubuntu 22.04.5 LTS (test root)\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\nID=ubuntu\nID_LIKE=debian\nVERSION_CODENAME=jammy\n"
	lsbUbuntu2204 = "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=22.04\nDISTRIB_CODENAME=jammy\nDISTRIB_DESCRIPTION=\"Ubuntu 22.04.5 LTS\"\n"
	osUbuntu2404  = "PRETTY_NAME=\"Ubuntu 24.04.1 LTS (test root)\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"24.04\"\nID=ubuntu\nID_LIKE=debian\nVERSION_CODENAME=noble\n"
	lsbUbuntu2404 = "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=24.04\nDISTRIB_CODENAME=noble\nDISTRIB_DESCRIPTION=\"Ubuntu 24.04.1 LTS\"\n"
	// A derivative: DKMS 3 takes ID_LIKE's first word when ID is not ubuntu.
	osDerivative = "PRETTY_NAME=\"Linux Mint 22 (test root)\"\nNAME=\"Linux Mint\"\nVERSION_ID=\"22\"\nID=linuxmint\nID_LIKE=\"ubuntu debian\"\n"
)

// TestUbuntu2204: DKMS 2.8 runs POST_BUILD (the hook), then sign_build,
// which appends Ubuntu's MOK signature to every *.ko of the build.
func TestUbuntu2204(t *testing.T) {
	u := newUbuntu(t, "bullseye", osUbuntu2204, lsbUbuntu2204)
	if !u.dkms28 {
		t.Fatalf("the bullseye root's dkms is not 2.8.x")
	}
	u.eachCompression(t, u.overrideRoute)
	u.run1(t, "framework", "", func() {
		// DKMS 2.8 reads no framework.conf.d: enable refuses the route.
		out, err := u.try("/usr/sbin/dkms-sign-hook", "enable", "--framework")
		if err == nil || !strings.Contains(out, "framework.conf.d") {
			u.t.Errorf("enable --framework with DKMS 2.8: want a refusal naming framework.conf.d; err %v:\n%s", err, out)
		}
		if _, err := os.Stat(u.path("/etc/dkms/framework.conf.d/dkms-sign-hook.conf")); err == nil {
			u.t.Errorf("enable --framework wrote the drop-in for DKMS 2.8, which never reads it")
		}
	})
	u.run1(t, "package-removed", "", u.packageRemoved)
}

// TestUbuntu2404: DKMS 3 signs with kmodsign and Ubuntu's MOK, compresses,
// and only then runs POST_BUILD (the hook), which replaces the signature.
func TestUbuntu2404(t *testing.T) {
	u := newUbuntu(t, "bookworm", osUbuntu2404, lsbUbuntu2404)
	if u.dkms28 {
		t.Fatalf("the bookworm root's dkms is 2.8.x")
	}
	u.eachCompression(t, func() {
		u.overrideRoute()
		u.frameworkRoute()
	})
	u.run1(t, "derivative", ".zst", func() {
		u.write("/etc/os-release", osDerivative, 0o644)
		u.overrideRoute()
	})
	u.run1(t, "package-removed", ".zst", u.packageRemoved)
}

// run1 runs f as subtest name, from a fresh state with compression suffix.
func (u *ubuntu) run1(t *testing.T, name, suffix string, f func()) {
	t.Run(name, func(t *testing.T) {
		u.t = t
		u.reset(suffix)
		f()
	})
}

// eachCompression runs f with plain modules, then with zstd-compressed ones.
func (u *ubuntu) eachCompression(t *testing.T, f func()) {
	for _, suffix := range []string{"", ".zst"} {
		u.run1(t, name(suffix), suffix, f)
	}
}

func name(suffix string) string {
	if suffix == "" {
		return "plain"
	}
	return strings.TrimPrefix(suffix, ".")
}

// assertDKMSOwn checks a module is as DKMS alone leaves it on Ubuntu:
// signed by Ubuntu's MOK only; with DKMS 2.8 and compressed modules
// unsigned, as its sign_build signs only files named *.ko.
func (u *ubuntu) assertDKMSOwn(p string) {
	u.t.Helper()
	if u.dkms28 && u.suffix != "" {
		u.assertUnsigned(p)
		return
	}
	u.assertOnly(p, mokDir+"/MOK.der", "Ubuntu's MOK")
}

// overrideRoute: `enable PKG`; the enabled package's built and installed
// modules carry our signature only, the other package DKMS's own; after
// `disable PKG`, DKMS's own again.
func (u *ubuntu) overrideRoute() {
	t := u.t
	u.tool("enable", enabled)
	out := u.build(enabled)
	if !u.dkms28 && !strings.Contains(out, "Sign command: /usr/bin/kmodsign") {
		t.Errorf("DKMS did not sign with kmodsign: not Ubuntu's conditions?\n%s", out)
	}
	if u.dkms28 && u.suffix == "" {
		// Before the install: DKMS 2.8 stacked the MOK signature over ours.
		u.assertOursThenMOK(u.built(enabled))
	}
	out = u.install(enabled)
	t.Logf("dkms install %s:\n%s", enabled, out)
	u.assertOnly(u.built(enabled), ourCert, "the administrator")
	u.assertOnly(u.installed(enabled), ourCert, "the administrator")

	u.install(other)
	u.assertDKMSOwn(u.built(other))
	u.assertDKMSOwn(u.installed(other))

	u.tool("disable", enabled)
	u.unbuild(enabled)
	u.install(enabled)
	u.assertDKMSOwn(u.installed(enabled))
	u.unbuild(enabled)
	u.unbuild(other)
	if b, err := os.ReadFile(u.path(calls)); err != nil || !strings.Contains(string(b), "--new-key") {
		t.Errorf("DKMS never ran update-secureboot-policy --new-key (%v): not Ubuntu's conditions?", err)
	}
}

// frameworkRoute (DKMS 3): `enable --framework`; DKMS signs every package
// through our sign-file and key, and never with kmodsign.
func (u *ubuntu) frameworkRoute() {
	t := u.t
	before, _ := os.ReadFile(u.path(calls))
	u.tool("enable", "--framework")
	out := u.install(other)
	if !strings.Contains(out, "Sign command: /usr/lib/dkms-sign-hook/sign-file") {
		t.Errorf("DKMS did not sign through our sign-file:\n%s", out)
	}
	u.assertOnly(u.built(other), ourCert, "the administrator")
	u.assertOnly(u.installed(other), ourCert, "the administrator")
	if after, _ := os.ReadFile(u.path(calls)); len(after) != len(before) {
		t.Errorf("the framework route still ran update-secureboot-policy: %q", after[len(before):])
	}
	u.unbuild(other)
	u.tool("disable", "--framework")
	u.install(other)
	u.assertDKMSOwn(u.installed(other))
	u.unbuild(other)
}

// packageRemoved: with the package enabled, the Debian package is removed
// (its prerm, then its files, as dpkg does); DKMS builds and installs as it
// does without it. The package is put back afterwards.
func (u *ubuntu) packageRemoved() {
	t := u.t
	u.tool("enable", enabled)
	prerm, err := os.ReadFile("../../debian/dkms-sign-hook.prerm")
	if err != nil {
		t.Fatal(err)
	}
	u.write("/tmp/dkms-sign-hook.prerm", string(prerm), 0o755)
	u.run("/tmp/dkms-sign-hook.prerm", "remove")
	saved := map[string][]byte{}
	for _, f := range []string{"/usr/sbin/dkms-sign-hook", "/usr/share/dkms-sign-hook/dkms-override.conf"} {
		saved[f], _ = os.ReadFile(u.path(f))
		if err := os.Remove(u.path(f)); err != nil {
			t.Fatal(err)
		}
	}
	os.Remove(u.path("/usr/lib/dkms-sign-hook/sign-file"))
	u.install(enabled)
	u.assertDKMSOwn(u.installed(enabled))
	u.unbuild(enabled)
	u.write("/usr/sbin/dkms-sign-hook", string(saved["/usr/sbin/dkms-sign-hook"]), 0o755)
	u.write("/usr/share/dkms-sign-hook/dkms-override.conf", string(saved["/usr/share/dkms-sign-hook/dkms-override.conf"]), 0o644)
	os.Symlink("../../sbin/dkms-sign-hook", u.path("/usr/lib/dkms-sign-hook/sign-file"))
	u.tool("disable", enabled)
}
