package ubuntu

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/debroot"
	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
)

// rootPkgs are what the Debian roots need: DKMS, the kernel headers (and
// with them the kernel's sign-file, which plays kmodsign), the compressors
// DKMS uses, and what BuildTool needs to build the tool inside the root:
// debroot.DKMSPkgs, so the bullseye root is test/generations' cached one.
var rootPkgs = debroot.DKMSPkgs

const (
	enabled = "dshtest"  // the package dkms-sign-hook is enabled for
	other   = "dshother" // a package it is not enabled for: DKMS's own signing
	pkgVer  = "1.0"
	mokDir  = "/var/lib/shim-signed/mok"
	calls   = "/var/lib/shim-signed/update-secureboot-policy.calls"
	ourCert = "/etc/dkms-sign-hook/signing_key.x509"
)

// ubuntu is a private, writable copy of a cached Debian root, dressed as
// Ubuntu: the tool installed as `make install` lays it out, a key, two
// DKMS packages, and Ubuntu's signing conditions.
type ubuntu struct {
	t    *testing.T
	root *debroot.Root
	kver string
	arch string
	// dkms28: DKMS 2.8.x (signs after POST_BUILD, only *.ko files).
	dkms28 bool
	// suffix is the compression DKMS uses now: "" or ".zst".
	suffix string
	tmp    string // host directory for decompressed copies and PEM files
	// osRelease is the root's /etc/os-release (reset puts it back).
	osRelease string
}

// newUbuntu clones the release's cached root (so nothing this test does
// reaches the shared cache) and sets it up. osRelease is the root's new
// /etc/os-release; lsbRelease, when not empty, its /etc/lsb-release (DKMS
// 2.8 reads that one).
func newUbuntu(t *testing.T, release, osRelease, lsbRelease string) *ubuntu {
	t.Helper()
	testenv.LookPath(t, "openssl", "openssl")
	testenv.LookPath(t, "zstd", "zstd")
	base := debroot.Get(t, release, rootPkgs...)
	bin := base.BuildTool(t)
	u := &ubuntu{t: t, root: base.Clone(t), tmp: t.TempDir(), osRelease: osRelease}
	u.kver = u.headersKernel()
	u.arch = strings.TrimSpace(u.run("uname", "-m"))
	u.dkms28 = strings.HasPrefix(strings.TrimSpace(u.run("dpkg-query", "-W", "-f", "${Version}", "dkms")), "2.8")
	u.installTool(bin)
	u.ubuntuConditions(osRelease, lsbRelease)
	u.makeKey()
	u.addPackage(enabled)
	u.addPackage(other)
	return u
}

// path is a path inside the root, seen from the host.
func (u *ubuntu) path(p string) string { return filepath.Join(u.root.Dir, p) }

func (u *ubuntu) write(p, content string, mode os.FileMode) {
	u.t.Helper()
	hp := u.path(p)
	os.MkdirAll(filepath.Dir(hp), 0o755)
	os.Remove(hp) // may be a symlink (os-release)
	if err := os.WriteFile(hp, []byte(content), mode); err != nil {
		u.t.Fatal(err)
	}
	if err := os.Chmod(hp, mode); err != nil {
		u.t.Fatal(err)
	}
}

// try runs argv in the root.
func (u *ubuntu) try(argv ...string) (string, error) {
	u.t.Helper()
	return u.root.Run(u.t, nil, argv...)
}

// run runs argv in the root and fails the test when it fails.
func (u *ubuntu) run(argv ...string) string {
	u.t.Helper()
	out, err := u.try(argv...)
	if err != nil {
		u.t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return out
}

func (u *ubuntu) tool(args ...string) string {
	u.t.Helper()
	return u.run(append([]string{"/usr/sbin/dkms-sign-hook"}, args...)...)
}

// headersKernel is the root's kernel: the one with headers.
func (u *ubuntu) headersKernel() string {
	u.t.Helper()
	// /lib/modules/KVER/build is an absolute symlink: look where it leads
	// inside the root.
	var kvers []string
	ents, _ := os.ReadDir(u.path("/lib/modules"))
	for _, e := range ents {
		if _, err := os.Stat(u.path("/usr/src/linux-headers-" + e.Name() + "/.config")); err == nil {
			kvers = append(kvers, e.Name())
		}
	}
	if len(kvers) != 1 {
		u.t.Fatalf("the %s root has %d kernels with headers, want 1: %v", u.root.Release, len(kvers), kvers)
	}
	return kvers[0]
}

// installTool installs the binary built in the root as `make install`
// (PREFIX=/usr) does.
func (u *ubuntu) installTool(bin string) {
	u.t.Helper()
	data, err := os.ReadFile(u.path(bin))
	if err != nil {
		u.t.Fatal(err)
	}
	u.write("/usr/sbin/dkms-sign-hook", string(data), 0o755)
	override, err := os.ReadFile("../../contrib/dkms/dkms-override.conf")
	if err != nil {
		u.t.Fatal(err)
	}
	u.write("/usr/share/dkms-sign-hook/dkms-override.conf", string(override), 0o644)
	os.MkdirAll(u.path("/usr/lib/dkms-sign-hook"), 0o755)
	if err := os.Symlink("../../sbin/dkms-sign-hook", u.path("/usr/lib/dkms-sign-hook/sign-file")); err != nil {
		u.t.Fatal(err)
	}
}

// standIn is update-secureboot-policy as DKMS uses it on Ubuntu. It is a
// STAND-IN written for this test, not Ubuntu's script (from shim-signed,
// not reachable here): with --new-key it makes MOK.priv and MOK.der with
// openssl when MOK.der is missing, as Ubuntu's does; --enroll-key, which on
// Ubuntu asks for a password and queues the key for MokManager, is only
// recorded. Every call is recorded.
const standIn = `#!/bin/sh
# STAND-IN for Ubuntu's update-secureboot-policy (dkms-sign-hook test/ubuntu).
set -e
echo "$*" >> ` + calls + `
d=` + mokDir + `
case "$1" in
--new-key)
	[ -e "$d/MOK.der" ] && exit 0
	openssl req -new -x509 -nodes -days 3650 -newkey rsa:2048 \
		-subj "/CN=test Secure Boot Module Signature key" \
		-keyout "$d/MOK.priv" -outform DER -out "$d/MOK.der" >/dev/null 2>&1
	chmod 600 "$d/MOK.priv"
	;;
esac
`

// ubuntuConditions gives the root what DKMS checks on Ubuntu: kmodsign on
// PATH (Ubuntu's is at /usr/bin; DKMS 2.8 resets PATH, so it must be
// there): the kernel's own sign-file under that name, as kmodsign takes
// sign-file's arguments and appends the same way; the shim-signed MOK
// directory; update-secureboot-policy (the stand-in); and Ubuntu's
// os-release (and lsb-release).
func (u *ubuntu) ubuntuConditions(osRelease, lsbRelease string) {
	u.t.Helper()
	signFiles, _ := filepath.Glob(u.path("/usr/lib/linux-kbuild-*/scripts/sign-file"))
	if len(signFiles) == 0 {
		u.t.Fatalf("no sign-file in the %s root (linux-kbuild-*)", u.root.Release)
	}
	data, err := os.ReadFile(signFiles[0])
	if err != nil {
		u.t.Fatal(err)
	}
	u.write("/usr/bin/kmodsign", string(data), 0o755)
	if err := os.MkdirAll(u.path(mokDir), 0o700); err != nil {
		u.t.Fatal(err)
	}
	u.write("/usr/sbin/update-secureboot-policy", standIn, 0o755)
	u.write("/etc/os-release", osRelease, 0o644)
	if lsbRelease != "" {
		u.write("/etc/lsb-release", lsbRelease, 0o644)
	}
}

// makeKey makes the administrator's key with openssl and the tool's
// configuration naming it.
func (u *ubuntu) makeKey() {
	u.t.Helper()
	os.MkdirAll(u.path("/etc/dkms-sign-hook"), 0o700)
	u.run("openssl", "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
		"-subj", "/CN=test administrator key", "-keyout", "/etc/dkms-sign-hook/signing_key.pem",
		"-outform", "DER", "-out", ourCert)
	u.run("chmod", "600", "/etc/dkms-sign-hook/signing_key.pem")
	u.write("/etc/dkms-sign-hook/dkms-sign-hook.conf",
		"[signing]\nkey = /etc/dkms-sign-hook/signing_key.pem\ncertificate = "+ourCert+"\n", 0o644)
}

// addPackage puts test/dkms's tiny package under /usr/src as name (reset adds it).
func (u *ubuntu) addPackage(name string) {
	u.t.Helper()
	src := "../dkms/testdata/dshtest"
	dst := "/usr/src/" + name + "-" + pkgVer
	for _, f := range []string{"Makefile", "dkms.conf", "dshtest.c", "postbuild.sh"} {
		data, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			u.t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if f == "postbuild.sh" {
			mode = 0o755
		}
		u.write(dst+"/"+strings.ReplaceAll(f, "dshtest", name), strings.ReplaceAll(string(data), "dshtest", name), mode)
	}
}

// compress makes DKMS compress modules with suffix ("" or ".zst"): both
// DKMS versions decide by grepping the kernel's modules.dep.
func (u *ubuntu) compress(suffix string) {
	u.t.Helper()
	u.suffix = suffix
	dep := ""
	if suffix != "" {
		dep = "kernel/dshdummy.ko" + suffix + ":\n"
	}
	u.write("/lib/modules/"+u.kver+"/modules.dep", dep, 0o644)
}

func (u *ubuntu) build(pkg string) string {
	u.t.Helper()
	u.compress(u.suffix) // depmod rewrote modules.dep
	return u.run("dkms", "build", pkg+"/"+pkgVer, "-k", u.kver)
}

func (u *ubuntu) install(pkg string) string {
	u.t.Helper()
	u.compress(u.suffix)
	return u.run("dkms", "install", pkg+"/"+pkgVer, "-k", u.kver)
}

// unbuild takes the package's build for the kernel away, keeping it added.
func (u *ubuntu) unbuild(pkg string) {
	u.t.Helper()
	u.compress(u.suffix) // DKMS 2.8 finds the build by the suffix modules.dep gives
	u.run("dkms", "remove", pkg+"/"+pkgVer, "-k", u.kver)
	// DKMS removes the package when its last build goes.
	if _, err := os.Stat(u.path("/var/lib/dkms/" + pkg + "/" + pkgVer + "/source")); err != nil {
		u.run("dkms", "add", pkg+"/"+pkgVer)
	}
}

// reset starts a scenario afresh, whatever the last one left: both
// packages added and not built, nothing enabled, no MOK yet.
func (u *ubuntu) reset(suffix string) {
	u.t.Helper()
	for _, pkg := range []string{enabled, other} {
		u.try("dkms", "remove", pkg+"/"+pkgVer, "--all")
		os.Remove(u.path("/etc/dkms/" + pkg + ".conf"))
		os.RemoveAll(u.path("/var/lib/dkms/" + pkg))
		for _, s := range []string{"", ".zst"} {
			os.Remove(u.path("/lib/modules/" + u.kver + "/updates/dkms/" + pkg + ".ko" + s))
		}
		u.run("dkms", "add", pkg+"/"+pkgVer)
	}
	os.Remove(u.path("/etc/dkms/framework.conf.d/dkms-sign-hook.conf"))
	os.Remove(u.path(mokDir + "/MOK.der"))
	os.Remove(u.path(mokDir + "/MOK.priv"))
	os.Remove(u.path(calls))
	u.write("/etc/os-release", u.osRelease, 0o644)
	u.compress(suffix)
}

// built and installed are the module files of pkg, as paths in the root.
func (u *ubuntu) built(pkg string) string {
	return fmt.Sprintf("/var/lib/dkms/%s/%s/%s/%s/module/%s.ko%s", pkg, pkgVer, u.kver, u.arch, pkg, u.suffix)
}

func (u *ubuntu) installed(pkg string) string {
	return fmt.Sprintf("/lib/modules/%s/updates/dkms/%s.ko%s", u.kver, pkg, u.suffix)
}

// signature is one appended module signature, found without this project's
// code: the kernel's layout (include/linux/module_signature.h) is
// content, PKCS#7 blob, a 12-byte struct module_signature whose last four
// bytes are the blob's big-endian length, then "~Module signature appended~\n".
type signature struct {
	content []byte // what it signs: everything before it
	blob    []byte // the PKCS#7 SignedData, DER
}

const sigMagic = "~Module signature appended~\n"

// signatures returns a module's signatures, innermost first.
func (u *ubuntu) signatures(p string) []signature {
	u.t.Helper()
	data := u.uncompressed(p)
	var sigs []signature
	for bytes.HasSuffix(data, []byte(sigMagic)) {
		end := len(data) - len(sigMagic) - 12
		if end < 0 {
			u.t.Fatalf("%s: truncated signature trailer", p)
		}
		n := int(binary.BigEndian.Uint32(data[end+8 : end+12]))
		if n > end {
			u.t.Fatalf("%s: signature length %d beyond the file", p, n)
		}
		blob := data[end-n : end]
		data = data[:end-n]
		sigs = append([]signature{{content: data, blob: blob}}, sigs...)
	}
	return sigs
}

// uncompressed reads a module from the root, decompressing .zst and .xz with
// the host's zstd and xz.
func (u *ubuntu) uncompressed(p string) []byte {
	u.t.Helper()
	var cmd *exec.Cmd
	switch filepath.Ext(p) {
	case ".zst":
		cmd = exec.Command("zstd", "-dc", u.path(p))
	case ".xz":
		cmd = exec.Command("xz", "-dc", u.path(p))
	default:
		data, err := os.ReadFile(u.path(p))
		if err != nil {
			u.t.Fatal(err)
		}
		return data
	}
	out, err := cmd.Output()
	if err != nil {
		u.t.Fatalf("decompress %s: %v", p, err)
	}
	return out
}

// verifies reports whether openssl accepts sig as a signature of its
// content by the certificate cert (DER, a path in the root).
func (u *ubuntu) verifies(sig signature, cert string) bool {
	u.t.Helper()
	dir, err := os.MkdirTemp(u.tmp, "verify")
	if err != nil {
		u.t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	pem := filepath.Join(dir, "cert.pem")
	if out, err := exec.Command("openssl", "x509", "-inform", "DER", "-in", u.path(cert), "-out", pem).CombinedOutput(); err != nil {
		u.t.Fatalf("openssl x509 %s: %v\n%s", cert, err, out)
	}
	content, p7 := filepath.Join(dir, "content"), filepath.Join(dir, "sig.p7")
	os.WriteFile(content, sig.content, 0o644)
	os.WriteFile(p7, sig.blob, 0o644)
	return exec.Command("openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", p7,
		"-content", content, "-certfile", pem, "-nointern", "-noverify", "-out", os.DevNull).Run() == nil
}

// assertOnly checks the module carries exactly one signature, and that
// openssl verifies it against cert.
func (u *ubuntu) assertOnly(p, cert, who string) {
	u.t.Helper()
	sigs := u.signatures(p)
	if len(sigs) != 1 {
		u.t.Errorf("%s: %d signatures, want exactly one, %s's", p, len(sigs), who)
		for i, s := range sigs {
			u.t.Logf("  signature %d: ours %v, MOK %v", i+1, u.verifies(s, ourCert), u.verifies(s, mokDir+"/MOK.der"))
		}
		return
	}
	if !u.verifies(sigs[0], cert) {
		u.t.Errorf("%s: openssl cms -verify refuses its signature against %s (%s)", p, cert, who)
	}
}

func (u *ubuntu) assertUnsigned(p string) {
	u.t.Helper()
	if n := len(u.signatures(p)); n != 0 {
		u.t.Errorf("%s: %d signatures, want none", p, n)
	}
}

// assertOursThenMOK checks the module carries two signatures: ours, then
// Ubuntu's MOK stacked over it (what DKMS 2.8 leaves after the hook).
func (u *ubuntu) assertOursThenMOK(p string) {
	u.t.Helper()
	sigs := u.signatures(p)
	if len(sigs) != 2 || !u.verifies(sigs[0], ourCert) || !u.verifies(sigs[1], mokDir+"/MOK.der") {
		u.t.Errorf("%s: want our signature with Ubuntu's MOK signature stacked over it; %d signatures", p, len(sigs))
	}
}
