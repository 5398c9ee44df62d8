// Package dkms is the end-to-end test of the DKMS integration with Debian's
// real dkms (3.0.10 in Debian 12) and real kernel headers: a tiny DKMS package
// (testdata/dshtest, with a POST_BUILD of its own) is added, built and
// installed for the headers' kernel, with dkms-sign-hook enabled through each
// route, with plain and compressed modules. It needs root and changes
// /etc/dkms, /var/lib/dkms and /lib/modules/<kver>; everything it adds is
// removed again, also when it fails.
package dkms

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/dkmsenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
)

const (
	pkg     = "dshtest"
	pkgVer  = "1.0"
	etcDKMS = "/etc/dkms"
	tree    = "/var/lib/dkms"
	modRoot = "/lib/modules"
	testCN  = "dkms-sign-hook e2e test key"
	mokCN   = "DKMS module signing key" // the CN of the key DKMS 3.0.10 generates
)

// rig is one prepared machine state: the binary, its override, a key.
type rig struct {
	t        *testing.T
	kver     string
	arch     string
	dir      string // temporary: binary, override, key, config, sources
	bin      string // the dkms-sign-hook binary DKMS runs
	signFile string // sign-file symlink to bin (framework route)
	override string // contrib/dkms/dkms-override.conf pointing at bin
	conf     string // dkms-sign-hook.conf naming the test key
	key      string
	cert     *x509.Certificate
	certPath string
	log      string // the signing log
	srcTree  string // --sourcetree for dkms
	// compress makes DKMS compress modules with xz (see makeCompressed).
	compress bool
	// suffix is the compression DKMS used in the last build: "", ".xz", ...
	suffix string
	// dkms is the DKMS under test: its generation decides what DKMS does
	// besides running the hook (test/generations runs this suite in
	// Debian 11's dkms 2.8.4 and Debian 13's 3.2.2; the host has 3.0.10).
	dkms *dkmsenv.DKMS
	// tty runs dkms build on a terminal (script(1)): where DKMS sends the
	// hook's output to make.log, the hook repeats its warnings there.
	tty bool
}

// headersKernel finds a kernel whose headers are installed (/lib/modules/*/build/.config).
func headersKernel() string {
	ents, _ := os.ReadDir(modRoot)
	for _, e := range ents {
		if _, err := os.Stat(filepath.Join(modRoot, e.Name(), "build", ".config")); err == nil {
			return e.Name()
		}
	}
	return ""
}

func newRig(t *testing.T) *rig {
	t.Helper()
	if testing.Short() && !testenv.InCI() {
		t.Skip("skipped in -short mode: runs the real dkms")
	}
	testenv.RequireRoot(t)
	testenv.LookPath(t, "dkms", "dkms")
	// dkms reads machine-wide files this test changes (/etc/dkms/*.conf,
	// framework.conf.d): one real-dkms test at a time, across packages.
	testenv.LockDKMS(t)
	testenv.LookPath(t, "modinfo", "kmod")
	testenv.LookPath(t, "openssl", "openssl")
	testenv.LookPath(t, "xz", "xz-utils")
	kver := headersKernel()
	testenv.Require(t, kver != "", "kernel headers (apt-get install linux-headers-amd64)")
	arch, err := exec.Command("uname", "-m").Output()
	if err != nil {
		t.Fatal(err)
	}
	d, err := dkmsenv.FindDKMS()
	if err != nil {
		t.Fatalf("dkms: %v", err)
	}
	t.Logf("dkms %s (framework.conf.d: %v, signs itself: %v, hook output in make.log: %v)", d.Version, d.DropIns, d.SignsItself(), d.HookCaptured())
	r := &rig{t: t, kver: kver, arch: strings.TrimSpace(string(arch)), dir: t.TempDir(), dkms: d}
	r.guardAndCleanup()
	r.buildBinary()
	r.makeKey()
	r.srcTree = filepath.Join(r.dir, "src")
	copyDir(t, "testdata/dshtest", filepath.Join(r.srcTree, pkg+"-"+pkgVer))
	return r
}

// guardAndCleanup refuses to run over an existing dshtest package and
// registers the removal of everything the test adds.
func (r *rig) guardAndCleanup() {
	t := r.t
	for _, p := range []string{filepath.Join(tree, pkg), filepath.Join(etcDKMS, pkg+".conf"), dropIn()} {
		if _, err := os.Lstat(p); err == nil {
			t.Fatalf("%s exists already: not running over it (remove it, or `dkms remove %s/%s --all`)", p, pkg, pkgVer)
		}
	}
	kdir := filepath.Join(modRoot, r.kver)
	before := map[string]bool{}
	ents, _ := os.ReadDir(kdir)
	for _, e := range ents {
		before[e.Name()] = true
	}
	mokBefore := map[string]bool{}
	for _, f := range []string{"mok.key", "mok.pub"} {
		if _, err := os.Stat(filepath.Join(tree, f)); err == nil {
			mokBefore[f] = true
		}
	}
	t.Cleanup(func() {
		exec.Command("dkms", "remove", pkg+"/"+pkgVer, "--all").Run()
		os.RemoveAll(filepath.Join(tree, pkg))
		os.Remove(filepath.Join(etcDKMS, pkg+".conf"))
		os.Remove(dropIn())
		for f := range map[string]bool{"mok.key": true, "mok.pub": true} {
			if !mokBefore[f] {
				os.Remove(filepath.Join(tree, f))
			}
		}
		ents, _ := os.ReadDir(kdir)
		for _, e := range ents {
			if !before[e.Name()] {
				os.RemoveAll(filepath.Join(kdir, e.Name()))
			}
		}
		for _, s := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
			os.Remove(filepath.Join(kdir, "updates", "dkms", pkg+s))
		}
		os.Remove(filepath.Join(kdir, "kernel", "dshdummy.ko.xz"))
		if before["modules.dep"] {
			exec.Command("depmod", r.kver).Run()
		}
	})
}

func dropIn() string { return filepath.Join(etcDKMS, "framework.conf.d", "dkms-sign-hook.conf") }

// buildBinary builds dkms-sign-hook with `go build`, with the sign-file
// symlink and the shared override pointing at it (the real install path is
// /usr/sbin/dkms-sign-hook; the test's binary lives in its temp dir).
func (r *rig) buildBinary() {
	t := r.t
	bindir := filepath.Join(r.dir, "bin")
	r.bin = testenv.Tool(t)
	r.signFile = filepath.Join(bindir, "sign-file")
	os.MkdirAll(bindir, 0o755)
	if err := os.Symlink(r.bin, r.signFile); err != nil {
		t.Fatal(err)
	}
	r.override = testenv.Override(t, r.bin, filepath.Join(r.dir, "share"))
}

func (r *rig) makeKey() {
	t := r.t
	kdir := filepath.Join(r.dir, "keys")
	os.MkdirAll(kdir, 0o700)
	r.key = filepath.Join(kdir, "signing_key.pem")
	r.certPath = filepath.Join(kdir, "signing_key.x509")
	cmd := exec.Command("openssl", "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
		"-subj", "/CN="+testCN, "-keyout", r.key, "-outform", "DER", "-out", r.certPath)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	os.Chmod(r.key, 0o600)
	cert, err := keys.LoadCertificate(r.certPath)
	if err != nil {
		t.Fatal(err)
	}
	r.cert = cert
	r.log = filepath.Join(r.dir, "log", "signed.jsonl")
	r.conf = filepath.Join(r.dir, "dkms-sign-hook.conf")
	r.writeConf(r.key, "warn")
}

func (r *rig) writeConf(key, missing string) {
	conf := fmt.Sprintf("[signing]\nkey = %s\ncertificate = %s\n[hook]\nmissing_key = %s\nlog = %s\n", key, r.certPath, missing, r.log)
	if err := os.WriteFile(r.conf, []byte(conf), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) env() []string {
	return append(os.Environ(), "DKMS_SIGN_HOOK_CONFIG="+r.conf)
}

// run runs a command, failing the test with its output if it fails.
func (r *rig) run(name string, args ...string) string {
	r.t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = r.env()
	return testenv.Combined(r.t, cmd)
}

func (r *rig) tool(args ...string) string { r.t.Helper(); return r.run(r.bin, args...) }

// dkmsInstall adds, builds and installs the package, running afterAdd (if
// any) between add and build; it returns what the build printed and logged
// (see buildOutput) and how long `dkms build` took.
func (r *rig) dkmsInstall(afterAdd ...func()) (string, time.Duration) {
	r.t.Helper()
	out, took, err := r.dkmsBuild(afterAdd...)
	if err != nil {
		r.t.Fatalf("dkms build: %v\n%s", err, out)
	}
	r.run("dkms", "install", "--sourcetree="+r.srcTree, pkg+"/"+pkgVer, "-k", r.kver)
	return out, took
}

// dkmsBuild adds and builds the package; afterAdd runs between the two.
func (r *rig) dkmsBuild(afterAdd ...func()) (string, time.Duration, error) {
	r.t.Helper()
	src := "--sourcetree=" + r.srcTree
	r.run("dkms", "add", src, pkg+"/"+pkgVer)
	for _, f := range afterAdd {
		f()
	}
	if r.compress {
		r.makeCompressed()
	}
	r.suffix = r.dkmsSuffix()
	start := time.Now()
	cmd := exec.Command("dkms", "build", src, pkg+"/"+pkgVer, "-k", r.kver)
	if r.tty {
		cmd = exec.Command("script", "-qec", "dkms build "+src+" "+pkg+"/"+pkgVer+" -k "+r.kver, "/dev/null")
	}
	cmd.Env = r.env()
	out, err := cmd.CombinedOutput()
	return r.buildOutput(string(out)), time.Since(start), err
}

// buildOutput is what a build showed plus what it logged: DKMS 3.1.7 and
// later append POST_BUILD's output to make.log, not to their own. It checks
// the hook's lines are where this DKMS puts them.
func (r *rig) buildOutput(shown string) string {
	r.t.Helper()
	// A failed POST_BUILD makes DKMS 3.1.7+ exit before it moves make.log
	// from the build directory into the build's log directory.
	logged, err := os.ReadFile(filepath.Join(tree, pkg, pkgVer, r.kver, r.arch, "log", "make.log"))
	if err != nil {
		logged, _ = os.ReadFile(filepath.Join(tree, pkg, pkgVer, "build", "make.log"))
	}
	const mark = "dkms-sign-hook: info: " // warnings may be repeated on a terminal
	inShown, inLog := strings.Contains(shown, mark), strings.Contains(string(logged), mark)
	if r.dkms.HookCaptured() && inShown || !r.dkms.HookCaptured() && inLog {
		r.t.Errorf("dkms %s: the hook's output shown: %v, in make.log: %v; want it only in %s", r.dkms.Version, inShown, inLog,
			map[bool]string{true: "make.log", false: "dkms's output"}[r.dkms.HookCaptured()])
	}
	return shown + "\n--- make.log ---\n" + string(logged)
}

func (r *rig) dkmsRemove() {
	r.t.Helper()
	r.run("dkms", "remove", pkg+"/"+pkgVer, "--all")
	os.Remove(r.postbuildMarker())
}

func (r *rig) moduleDir() string {
	return filepath.Join(tree, pkg, pkgVer, r.kver, r.arch, "module")
}

func (r *rig) postbuildMarker() string { return filepath.Join(tree, pkg, pkgVer, "postbuild-ran") }

// modules returns the built and the installed module file of the last build.
func (r *rig) modules() (built, installed string) {
	return filepath.Join(r.moduleDir(), pkg+".ko"+r.suffix),
		filepath.Join(modRoot, r.kver, "updates", "dkms", pkg+".ko"+r.suffix)
}

// assertSignedBy checks a module carries exactly one signature, that it
// verifies against cert, and that kmod's modinfo names wantCN as signer.
func (r *rig) assertSignedBy(path string, cert *x509.Certificate, wantCN string) {
	r.t.Helper()
	info, err := sign.VerifyFile(path, []*x509.Certificate{cert})
	if err != nil {
		r.t.Errorf("%s: does not verify against %q: %v", path, cert.Subject.CommonName, err)
		return
	}
	if n := len(info.Signatures); n != 1 {
		r.t.Errorf("%s: %d signatures, want exactly 1", path, n)
	}
	out, err := exec.Command("modinfo", "-F", "signer", path).Output()
	if got := strings.TrimSpace(string(out)); err != nil || got != wantCN {
		r.t.Errorf("%s: modinfo -F signer = %q (%v), want %q", path, got, err, wantCN)
	}
}

// assertDKMSOwn checks a module is as this DKMS leaves it without the hook:
// signed with its own key (3.x), or not signed at all (2.x).
func (r *rig) assertDKMSOwn(path string) {
	r.t.Helper()
	if r.dkms.SignsItself() {
		r.assertSignedBy(path, r.mokCert(), mokCN)
		return
	}
	info, err := sign.VerifyFile(path, nil)
	if !errors.Is(err, sign.ErrUnsigned) {
		r.t.Errorf("%s: dkms %s signs nothing itself, but verify says %v (%v)", path, r.dkms.Version, err, info)
	}
	if out, _ := exec.Command("modinfo", "-F", "signer", path).Output(); len(bytes.TrimSpace(out)) > 0 {
		r.t.Errorf("%s: modinfo -F signer = %q, want none", path, out)
	}
}

func (r *rig) mokCert() *x509.Certificate {
	c, err := keys.LoadCertificate(filepath.Join(tree, "mok.pub"))
	if err != nil {
		r.t.Fatal(err)
	}
	return c
}

func (r *rig) assertNoStray() {
	r.t.Helper()
	suffix := r.suffix
	if suffix == "" {
		return
	}
	for _, dir := range []string{r.moduleDir(), filepath.Join(modRoot, r.kver, "updates", "dkms")} {
		if _, err := os.Lstat(filepath.Join(dir, pkg+".ko")); err == nil {
			r.t.Errorf("stray %s.ko beside %s.ko%s in %s", pkg, pkg, suffix, dir)
		}
	}
}

func (r *rig) assertPostBuildRan() {
	r.t.Helper()
	b, err := os.ReadFile(r.postbuildMarker())
	if err != nil || strings.TrimSpace(string(b)) != "from-dkms-conf" {
		r.t.Errorf("the package's own POST_BUILD did not run: %q, %v", b, err)
	}
}

// assertLogged checks the signing log has a line for the built module with
// its current sha256.
func (r *rig) assertLogged(built string) {
	r.t.Helper()
	data, err := os.ReadFile(built)
	if err != nil {
		r.t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	f, err := os.Open(r.log)
	if err != nil {
		r.t.Errorf("signing log: %v", err)
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			r.t.Errorf("signing log line %q: %v", sc.Text(), err)
			continue
		}
		if e["file"] == built && e["sha256"] == hex.EncodeToString(sum[:]) && e["package"] == pkg &&
			e["version"] == pkgVer && e["kernel"] == r.kver && e["key_id"] == hex.EncodeToString(r.cert.SubjectKeyId) {
			if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(e["time"])); err != nil {
				r.t.Errorf("signing log time: %v", err)
			}
			return
		}
	}
	r.t.Errorf("signing log %s has no entry for %s with sha256 %x", r.log, built, sum)
}

// makeCompressed makes the headers' kernel look like one with xz-compressed
// modules: DKMS 3.0.10 decides by grepping modules.dep for ".xz:". It is
// redone before every build, as `dkms install` and `remove` run depmod. An
// existing modules.dep (an installed kernel) is only appended to, and
// depmod restores it at cleanup.
func (r *rig) makeCompressed() {
	kdir := filepath.Join(modRoot, r.kver)
	dummy := filepath.Join(kdir, "kernel", "dshdummy.ko.xz")
	if _, err := os.Lstat(dummy); err != nil {
		os.MkdirAll(filepath.Dir(dummy), 0o755)
		if err := os.WriteFile(dummy, nil, 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	dep := filepath.Join(kdir, "modules.dep")
	old, _ := os.ReadFile(dep)
	if bytes.Contains(old, []byte("kernel/dshdummy.ko.xz:")) {
		return
	}
	f, err := os.OpenFile(dep, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("kernel/dshdummy.ko.xz:\n"); err != nil {
		r.t.Fatal(err)
	}
}

// dkmsSuffix is the compression suffix DKMS 3.0.10 will use for the kernel:
// the last of .gz, .xz, .zst that modules.dep mentions (its set_module_suffix).
func (r *rig) dkmsSuffix() string {
	dep, _ := os.ReadFile(filepath.Join(modRoot, r.kver, "modules.dep"))
	suffix := ""
	for _, s := range []string{".gz", ".xz", ".zst"} {
		if bytes.Contains(dep, []byte(s+":")) {
			suffix = s
		}
	}
	return suffix
}

func (r *rig) status() map[string]any {
	r.t.Helper()
	out := r.tool("status", "--json", "--override", r.override)
	var st map[string]any
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		r.t.Fatalf("status --json: %v\n%s", err, out)
	}
	return st
}

// eachCompression runs f twice: with plain modules, and with DKMS
// compressing them with xz, as for a kernel whose modules are compressed.
func (r *rig) eachCompression(t *testing.T, f func(t *testing.T, name string)) {
	for _, compress := range []bool{false, true} {
		name := "plain"
		if compress {
			name = "xz"
		}
		r.compress = compress
		t.Run(name, func(t *testing.T) {
			r.t = t
			f(t, name)
		})
	}
}

// TestHookRoute: enable PKG links /etc/dkms/dshtest.conf to the shared
// override; DKMS runs the hook as POST_BUILD.
func TestHookRoute(t *testing.T) {
	r := newRig(t)
	r.eachCompression(t, func(t *testing.T, name string) {
		// Without the hook: DKMS's own signature (3.x) or none (2.x).
		_, plain := r.dkmsInstall()
		built, installed := r.modules()
		r.assertDKMSOwn(built)
		r.assertDKMSOwn(installed)
		want := sign.ErrUnknownKey
		if !r.dkms.SignsItself() {
			want = sign.ErrUnsigned
		}
		if _, err := sign.VerifyFile(built, []*x509.Certificate{r.cert}); !errors.Is(err, want) {
			t.Errorf("without the hook: verify against the test key = %v, want %v", err, want)
		}
		r.dkmsRemove()

		// With the hook.
		out, hooked := r.dkmsInstall(func() { r.tool("enable", "--override", r.override, pkg) })
		t.Logf("dkms build (%s): %v without the hook, %v with it", name, plain.Round(time.Millisecond), hooked.Round(time.Millisecond))
		if !strings.Contains(out, "dkms-sign-hook: info: signed file="+built) {
			t.Errorf("dkms build output does not show the hook signing %s:\n%s", built, out)
		}
		r.assertSignedBy(built, r.cert, testCN)
		r.assertSignedBy(installed, r.cert, testCN)
		r.assertNoStray()
		r.assertPostBuildRan()
		r.assertLogged(built)
		if r.suffix != ".xz" && r.compress {
			t.Errorf("DKMS compressed with %q, want .xz", r.suffix)
		}
		if r.suffix == ".xz" {
			// DKMS compresses with plain `xz` (CRC64, refused by the kernel's
			// own decompressor); the hook re-compresses with CRC32.
			if got := xzCheck(t, installed); got != "CRC32" {
				t.Errorf("%s: xz check %s, want CRC32 (in-kernel decompression refuses CRC64)", installed, got)
			}
		}
		r.assertStatus(built, installed, "override")
		r.dkmsRemove()

		// Disabled again: DKMS's own signature only.
		r.tool("disable", "--override", r.override, pkg)
		r.dkmsInstall()
		r.assertDKMSOwn(built)
		r.assertDKMSOwn(installed)
		r.assertPostBuildRan()
		r.dkmsRemove()
	})
}

// TestFrameworkRoute: enable --framework writes the framework.conf.d drop-in;
// DKMS signs with sign_file = the binary's sign-file name.
func TestFrameworkRoute(t *testing.T) {
	r := newRig(t)
	if !r.dkms.DropIns {
		// DKMS 2.x reads framework.conf only: a drop-in would sign nothing.
		cmd := exec.Command(r.bin, "enable", "--framework", "--sign-file", r.signFile)
		cmd.Env = r.env()
		out, err := cmd.CombinedOutput()
		want := "refusing the framework route: dkms " + r.dkms.Version + " (" + r.dkms.Path + ") does not read /etc/dkms/framework.conf.d"
		if err == nil || !strings.Contains(string(out), want) {
			t.Errorf("enable --framework with dkms %s: %v\n%s\nwant a refusal %q", r.dkms.Version, err, out, want)
		}
		if _, err := os.Lstat(dropIn()); err == nil {
			t.Errorf("enable --framework wrote %s although dkms %s never reads it", dropIn(), r.dkms.Version)
		}
		return
	}
	r.eachCompression(t, func(t *testing.T, name string) {
		r.tool("enable", "--framework", "--sign-file", r.signFile)
		out, took := r.dkmsInstall()
		t.Logf("dkms build (%s, framework route): %v", name, took.Round(time.Millisecond))
		if !strings.Contains(out, "Sign command: "+r.signFile) {
			t.Errorf("DKMS did not use our sign-file:\n%s", out)
		}
		built, installed := r.modules()
		r.assertSignedBy(built, r.cert, testCN)
		r.assertSignedBy(installed, r.cert, testCN)
		r.assertNoStray()
		r.assertPostBuildRan()
		r.assertStatus(built, installed, "framework")
		if r.suffix == ".xz" {
			t.Logf("framework route: DKMS compressed %s with xz check %s", installed, xzCheck(t, installed))
		}
		r.dkmsRemove()
		r.tool("disable", "--framework")
		if _, err := os.Lstat(dropIn()); err == nil {
			t.Errorf("%s still exists after disable --framework", dropIn())
		}
	})
}

// TestKeyAbsent: the key on removable media is not plugged in. The build
// succeeds, the output says loudly which module is not signed and how to
// sign it later; `sign --dkms` does so once the key is back.
func TestKeyAbsent(t *testing.T) {
	r := newRig(t)
	r.writeConf(filepath.Join(r.dir, "media", "signing_key.pem"), "warn")
	r.tty = r.dkms.HookCaptured()
	out, _ := r.dkmsInstall(func() { r.tool("enable", "--override", r.override, pkg) })
	built, installed := r.modules()
	if shown, _, _ := strings.Cut(out, "--- make.log ---"); r.tty && !strings.Contains(shown, "are NOT signed with your key") {
		t.Errorf("dkms %s logs the hook's output to make.log, and the hook did not repeat its warning on the terminal:\n%s", r.dkms.Version, shown)
	}
	for _, want := range []string{
		"dkms-sign-hook: warning: *** signing key " + filepath.Join(r.dir, "media", "signing_key.pem") + " not found: modules of dshtest/1.0 for kernel " + r.kver + " are NOT signed with your key",
		"dkms-sign-hook: warning: not signed file=" + built,
		"dkms-sign-hook: warning: to sign them once the key is available: dkms-sign-hook sign --dkms --kernel " + r.kver,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dkms build output lacks %q:\n%s", want, out)
		}
	}
	r.assertDKMSOwn(installed)
	r.assertPostBuildRan()

	// The key is back: sign everything now.
	r.writeConf(r.key, "warn")
	// Only the test's package: never re-sign what else is on the machine.
	out = r.tool("sign", "--dkms", "--kernel", r.kver, pkg)
	t.Logf("sign --dkms:\n%s", out)
	r.assertSignedBy(built, r.cert, testCN)
	r.assertSignedBy(installed, r.cert, testCN)
}

// assertStatus checks `status --json` reports the package enabled by route
// ("override" or "framework") and both module copies as ours.
func (r *rig) assertStatus(built, installed, route string) {
	r.t.Helper()
	st := r.status()
	enabled := false
	for _, p := range st["packages"].([]any) {
		p := p.(map[string]any)
		if p["package"] == pkg && p["enabled"] == route {
			enabled = true
		}
	}
	if !enabled {
		r.t.Errorf("status does not report %s enabled by route %q: %v", pkg, route, st["packages"])
	}
	want := map[string]string{built: "built", installed: "installed"}
	for _, b := range st["builds"].([]any) {
		b := b.(map[string]any)
		if b["package"] != pkg || b["kernel"] != r.kver {
			continue
		}
		for _, m := range b["modules"].([]any) {
			m := m.(map[string]any)
			f := fmt.Sprint(m["path"])
			if where, ok := want[f]; ok && m["where"] == where && m["state"] == "valid" && m["signer"] == testCN && m["signatures"] == 1.0 {
				delete(want, f)
			}
		}
	}
	if len(want) > 0 {
		r.t.Errorf("status does not report as valid: %v\n%v", want, st["builds"])
	}
}

// xzCheck returns the integrity check type of an .xz file ("CRC32", "CRC64").
func xzCheck(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("xz", "--robot", "--list", path).Output()
	if err != nil {
		t.Fatalf("xz --list %s: %v", path, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Split(line, "\t"); len(f) > 6 && f[0] == "file" {
			return f[6]
		}
	}
	t.Fatalf("xz --list %s: no file line in %q", path, out)
	return ""
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		t.Fatal(err)
	}
	// os.CopyFS does not keep the executable bit: restore the package's POST_BUILD's.
	if err := os.Chmod(filepath.Join(to, "postbuild.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestKeyMismatch: a certificate that does not belong to the key. The hook
// refuses before touching a module and says so in DKMS's output; the module
// keeps DKMS's own signature. (dkms 3.0.10 ignores POST_BUILD's exit status;
// from 3.1.7 the build fails.)
func TestKeyMismatch(t *testing.T) {
	r := newRig(t)
	other := filepath.Join(r.dir, "keys", "other.x509")
	cmd := exec.Command("openssl", "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
		"-subj", "/CN=other", "-keyout", filepath.Join(r.dir, "keys", "other.pem"), "-outform", "DER", "-out", other)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	conf := fmt.Sprintf("[signing]\nkey = %s\ncertificate = %s\n[hook]\nlog = %s\n", r.key, other, r.log)
	if err := os.WriteFile(r.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// DKMS up to 3.1.4 ignores POST_BUILD's exit status; from 3.1.7 the
	// failing hook fails the build, leaving the module saved as built.
	out, _, err := r.dkmsBuild(func() { r.tool("enable", "--override", r.override, pkg) })
	if failed := err != nil; failed != r.dkms.HookCaptured() {
		t.Errorf("dkms %s build with a failing hook: error %v, want failure: %v\n%s", r.dkms.Version, err, r.dkms.HookCaptured(), out)
	}
	want := "dkms-sign-hook hook: key " + r.key + " does not match certificate " + other
	if !strings.Contains(out, want) {
		t.Errorf("dkms build output lacks %q:\n%s", want, out)
	}
	built, installed := r.modules()
	r.assertDKMSOwn(built)
	if err == nil {
		r.run("dkms", "install", "--sourcetree="+r.srcTree, pkg+"/"+pkgVer, "-k", r.kver)
		r.assertDKMSOwn(installed)
	}
	r.assertPostBuildRan()
	if _, err := os.Stat(r.log); err == nil {
		t.Errorf("signing log %s written although nothing was signed", r.log)
	}
}
