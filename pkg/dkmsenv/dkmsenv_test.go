package dkmsenv

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func fakeRoots(t *testing.T) Roots {
	t.Helper()
	r := Under(t.TempDir())
	write(t, filepath.Join(r.Proc(), "sys/kernel/osrelease"), "6.9.9-running\n")
	write(t, filepath.Join(r.Proc(), "sys/kernel/arch"), "x86_64\n")
	return r
}

func TestUnderAndDefault(t *testing.T) {
	if got := Under("/"); got != DefaultRoots() {
		t.Errorf("Under(/) = %+v", got)
	}
	r := Under("/tmp/x")
	if r.EtcDKMS() != "/tmp/x/etc/dkms" || r.DKMSTree() != "/tmp/x/var/lib/dkms" || r.Modules() != "/tmp/x/lib/modules" || r.Proc() != "/tmp/x/proc" || r.Live() {
		t.Errorf("Under = %+v", r)
	}
}

func TestDiscoverFromEnvironment(t *testing.T) {
	r := fakeRoots(t)
	cwd := filepath.Join(r.DKMSTree(), "foo", "1.2", "build")
	mkdir(t, cwd)
	cs, err := r.Discover(cwd, env("module", "foo", "module_version", "1.2", "kernelver", "6.1.0-1-amd64", "arch", "x86_64"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 {
		t.Fatalf("got %d builds, want 1", len(cs))
	}
	c := cs[0]
	want := Build{Tree: r.DKMSTree(), Package: "foo", Version: "1.2", KernelVer: "6.1.0-1-amd64", Arch: "x86_64", KernelFrom: "environment"}
	if c != want {
		t.Errorf("got %+v, want %+v", c, want)
	}
	if got := c.Dir(); got != filepath.Join(r.DKMSTree(), "foo/1.2/6.1.0-1-amd64/x86_64/module") {
		t.Errorf("Dir = %s", got)
	}
}

func TestDiscoverTreeFromCwdNotDefault(t *testing.T) {
	r := fakeRoots(t)
	other := filepath.Join(t.TempDir(), "srv", "dkms")
	cwd := filepath.Join(other, "bar", "3", "build")
	mkdir(t, cwd)
	cs, err := r.Discover(cwd, env("kernelver", "k", "arch", "a"))
	if err != nil {
		t.Fatal(err)
	}
	c := cs[0]
	if c.Tree != other || c.Package != "bar" || c.Version != "3" {
		t.Errorf("got %+v", c)
	}
}

// TestDiscoverScanAllBuilds: without kernelver and arch (DKMS 2.x
// autoinstall), every build of the version is a context, whatever the
// directories' timestamps say (coarse ones could pick the wrong kernel).
func TestDiscoverScanAllBuilds(t *testing.T) {
	r := fakeRoots(t)
	vdir := filepath.Join(r.DKMSTree(), "foo", "1.2")
	mkdir(t, filepath.Join(vdir, "build"))
	mkdir(t, filepath.Join(vdir, "source"))
	old := filepath.Join(vdir, "6.1.0-1-amd64", "x86_64", "module")
	newer := filepath.Join(vdir, "6.1.0-2-amd64", "x86_64", "module")
	mkdir(t, old)
	mkdir(t, newer)
	mkdir(t, filepath.Join(vdir, "6.1.0-3-amd64", "x86_64")) // no module dir: not built
	now := time.Now()
	os.Chtimes(old, now, now) // the same second: timestamps cannot tell
	os.Chtimes(newer, now, now)
	cs, err := r.Discover(filepath.Join(vdir, "build"), env())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cs {
		got = append(got, c.KernelVer+"/"+c.Arch)
		if !strings.HasPrefix(c.KernelFrom, "scan of ") {
			t.Errorf("KernelFrom = %q", c.KernelFrom)
		}
	}
	if strings.Join(got, " ") != "6.1.0-1-amd64/x86_64 6.1.0-2-amd64/x86_64" {
		t.Errorf("got contexts %q, want both builds", got)
	}
	// kernelver alone from the environment narrows the scan.
	cs, err = r.Discover(filepath.Join(vdir, "build"), env("kernelver", "6.1.0-1-amd64"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].KernelVer != "6.1.0-1-amd64" || cs[0].Arch != "x86_64" {
		t.Errorf("got %+v", cs)
	}
}

func TestDiscoverRunningKernelLast(t *testing.T) {
	r := fakeRoots(t)
	cwd := filepath.Join(r.DKMSTree(), "foo", "1.2", "build")
	mkdir(t, cwd)
	cs, err := r.Discover(cwd, env())
	if err != nil {
		t.Fatal(err)
	}
	c := cs[0]
	if len(cs) != 1 || c.KernelVer != "6.9.9-running" || c.Arch != "x86_64" || c.KernelFrom != "running kernel" {
		t.Errorf("got %+v", c)
	}
}

func TestDiscoverRefuses(t *testing.T) {
	r := fakeRoots(t)
	cwd := filepath.Join(r.DKMSTree(), "foo", "1.2", "build")
	mkdir(t, cwd)
	for _, tc := range []struct {
		cwd  string
		env  func(string) string
		want string
	}{
		{r.DKMSTree(), env(), "not run from a DKMS build directory"},
		{cwd, env("module", "other"), `environment says module="other" but the working directory ` + cwd + ` belongs to "foo"`},
		{cwd, env("module_version", "9"), `environment says module_version="9"`},
		{cwd, env("kernelver", "../../etc", "arch", "x86_64"), `invalid kernel name "../../etc": it cannot contain '/'`},
		{cwd, env("kernelver", "..", "arch", "x86_64"), `invalid kernel name "..": it cannot be '.' or '..'`},
		{cwd, env("kernelver", "k", "arch", "x/y"), `invalid arch name "x/y"`},
	} {
		_, err := r.Discover(tc.cwd, tc.env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Discover(%s): err = %v, want %q", tc.cwd, err, tc.want)
		}
	}
}

func TestValidName(t *testing.T) {
	for _, n := range []string{"", ".", "..", "../../etc", "a/b", "-rf", "a\x00b"} {
		if ValidName("package", n) == nil {
			t.Errorf("ValidName(%q) = nil", n)
		}
	}
	for _, n := range []string{"v4l2loopback", "nvidia-current", "zfs", "a..b", "r8168"} {
		if err := ValidName("package", n); err != nil {
			t.Errorf("ValidName(%q) = %v", n, err)
		}
	}
}

func TestTreeFromFramework(t *testing.T) {
	r := fakeRoots(t)
	if tr, err := r.Tree(); err != nil || tr != r.DKMSTree() {
		t.Fatalf("Tree() = %q, %v; want default", tr, err)
	}
	write(t, filepath.Join(r.EtcDKMS(), "framework.conf"), "## comment\n# dkms_tree=\"/nope\"\ndkms_tree=\"/srv/dkms\"\n")
	tr, err := r.Tree()
	if err != nil || tr != r.Path("/srv/dkms") {
		t.Fatalf("Tree() = %q, %v", tr, err)
	}
	// A drop-in overrides framework.conf; the last drop-in in name order wins.
	write(t, filepath.Join(r.EtcDKMS(), "framework.conf.d", "10-a.conf"), "dkms_tree='/a'\n")
	write(t, filepath.Join(r.EtcDKMS(), "framework.conf.d", "20-b.conf"), "export dkms_tree=/b # moved\n")
	write(t, filepath.Join(r.EtcDKMS(), "framework.conf.d", "30-c.conf.disabled"), "dkms_tree=/c\n")
	if tr, _ := r.Tree(); tr != r.Path("/b") {
		t.Errorf("Tree() = %q, want /b", tr)
	}
	write(t, filepath.Join(r.EtcDKMS(), "framework.conf.d", "40-rel.conf"), "dkms_tree=rel/dir\n")
	if _, err := r.Tree(); err == nil || !strings.Contains(err.Error(), `dkms_tree="rel/dir" is not an absolute path`) {
		t.Errorf("relative dkms_tree: err = %v", err)
	}
	// Real roots are the identity.
	if got := DefaultRoots().Path("/srv/dkms"); got != "/srv/dkms" {
		t.Errorf("rebase = %q", got)
	}
}

func TestParseAssignment(t *testing.T) {
	for _, tc := range []struct{ line, name, value string }{
		{`sign_file="/usr/lib/x/sign-file"`, "sign_file", "/usr/lib/x/sign-file"},
		{`  mok_signing_key='pkcs11:token=a;object=b'`, "mok_signing_key", "pkcs11:token=a;object=b"},
		{`dkms_tree=/var/lib/dkms`, "dkms_tree", "/var/lib/dkms"},
	} {
		n, v, ok := parseAssignment(tc.line)
		if !ok || n != tc.name || v != tc.value {
			t.Errorf("%q: got %q %q %v", tc.line, n, v, ok)
		}
	}
	for _, l := range []string{"# a=b", "dkms_tree=$HOME/x", "a b=c", `x="unterminated`, "echo hi"} {
		if _, _, ok := parseAssignment(l); ok {
			t.Errorf("%q parsed", l)
		}
	}
}

func TestSigHash(t *testing.T) {
	r := fakeRoots(t)
	_, _, err := r.SigHash("6.1.0-1-amd64")
	if !errors.Is(err, ErrNoKernelConfig) || !strings.Contains(err.Error(), "install linux-headers-6.1.0-1-amd64") {
		t.Errorf("no headers: %v", err)
	}
	b := filepath.Join(r.Modules(), "6.1.0-1-amd64", "build")
	write(t, filepath.Join(b, "include/config/auto.conf"), "CONFIG_MODULE_SIG=y\nCONFIG_MODULE_SIG_HASH=\"sha384\"\n")
	if h, from, err := r.SigHash("6.1.0-1-amd64"); err != nil || h != "sha384" || !strings.HasSuffix(from, "auto.conf") {
		t.Errorf("auto.conf: %q %q %v", h, from, err)
	}
	write(t, filepath.Join(b, ".config"), "CONFIG_MODULE_SIG_FORMAT=y\nCONFIG_MODULE_SIG=y\n# CONFIG_MODULE_SIG_SHA1 is not set\nCONFIG_MODULE_SIG_SHA256=y\nCONFIG_MODULE_SIG_HASH=\"sha256\"\n")
	if h, from, err := r.SigHash("6.1.0-1-amd64"); err != nil || h != "sha256" || !strings.HasSuffix(from, ".config") {
		t.Errorf(".config first: %q %q %v", h, from, err)
	}
	write(t, filepath.Join(b, ".config"), "# CONFIG_MODULE_SIG is not set\nCONFIG_MODULES=y\n")
	if _, _, err := r.SigHash("6.1.0-1-amd64"); !errors.Is(err, ErrNoModuleSig) {
		t.Errorf("no MODULE_SIG: %v", err)
	}
	write(t, filepath.Join(b, ".config"), "CONFIG_MODULE_SIG=y\n")
	if _, _, err := r.SigHash("6.1.0-1-amd64"); err == nil || !strings.Contains(err.Error(), "CONFIG_MODULE_SIG_HASH is not set") {
		t.Errorf("no hash: %v", err)
	}
	if _, _, err := r.SigHash("../x"); err == nil {
		t.Error("path in kernel name accepted")
	}
}

func TestRealHeaders(t *testing.T) {
	// The real Debian headers, when present (read-only).
	ents, _ := os.ReadDir("/lib/modules")
	for _, e := range ents {
		if _, err := os.Stat(filepath.Join("/lib/modules", e.Name(), "build/.config")); err != nil {
			continue
		}
		h, _, err := DefaultRoots().SigHash(e.Name())
		if err != nil && !errors.Is(err, ErrNoModuleSig) {
			t.Errorf("%s: %v", e.Name(), err)
		}
		t.Logf("%s: CONFIG_MODULE_SIG_HASH=%q", e.Name(), h)
	}
}

func TestTreeListing(t *testing.T) {
	tree := t.TempDir()
	mkdir(t, filepath.Join(tree, "foo/1.0/6.1.0-1-amd64/x86_64/module"))
	mkdir(t, filepath.Join(tree, "foo/1.0/build"))
	mkdir(t, filepath.Join(tree, "bar/2/6.1.0-1-amd64/x86_64/module"))
	os.Symlink("1.0/6.1.0-1-amd64/x86_64", filepath.Join(tree, "foo", "kernel-6.1.0-1-amd64-x86_64"))
	write(t, filepath.Join(tree, "mok.key"), "k")
	os.Symlink(t.TempDir(), filepath.Join(tree, "linked"))
	pkgs, err := Packages(tree)
	if err != nil || strings.Join(pkgs, ",") != "bar,foo" {
		t.Errorf("Packages = %v, %v", pkgs, err)
	}
	if IsPackage(tree, "linked") || IsPackage(tree, "mok.key") || IsPackage(tree, "..") || !IsPackage(tree, "foo") {
		t.Error("IsPackage wrong")
	}
	bs, err := AllBuilds(tree)
	if err != nil || len(bs) != 2 || bs[0].Package != "bar" || bs[1].Package != "foo" || bs[1].KernelVer != "6.1.0-1-amd64" {
		t.Errorf("AllBuilds = %+v, %v", bs, err)
	}
}

func TestModuleFiles(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"a.ko", "b.ko.xz", "c.ko.zst", "d.ko.gz", "notes.txt", "e.ko.bak", ".ko"} {
		write(t, filepath.Join(dir, n), "x")
	}
	outside := filepath.Join(t.TempDir(), "secret.ko")
	write(t, outside, "x")
	os.Symlink(outside, filepath.Join(dir, "evil.ko"))
	mkdir(t, filepath.Join(dir, "sub.ko"))
	files, skipped, err := ModuleFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	if strings.Join(names, ",") != "a.ko,b.ko.xz,c.ko.zst,d.ko.gz" {
		t.Errorf("files = %v", names)
	}
	if len(skipped) != 2 || filepath.Base(skipped[0].Path) != "evil.ko" || skipped[0].Why != "symlink, not followed" || skipped[1].Why != "not a regular file" {
		t.Errorf("skipped = %+v", skipped)
	}
	link := filepath.Join(t.TempDir(), "module")
	os.Symlink(dir, link)
	if _, _, err := ModuleFiles(link); err == nil || !strings.Contains(err.Error(), "is a symlink: refusing to follow it") {
		t.Errorf("symlinked dir: %v", err)
	}
}

func TestInstalledModule(t *testing.T) {
	r := fakeRoots(t)
	write(t, filepath.Join(r.InstalledDir("k1"), "foo.ko.xz"), "x")
	if got := r.InstalledModule("k1", "foo.ko.xz"); got != filepath.Join(r.InstalledDir("k1"), "foo.ko.xz") {
		t.Errorf("got %q", got)
	}
	if got := r.InstalledModule("k1", "foo.ko"); !strings.HasSuffix(got, "foo.ko.xz") {
		t.Errorf("got %q", got)
	}
	if got := r.InstalledModule("k1", "bar.ko"); got != "" {
		t.Errorf("got %q", got)
	}
}

func TestCheckDir(t *testing.T) {
	tree := t.TempDir()
	c := &Build{Tree: tree, Package: "foo", Version: "1.0", KernelVer: "k", Arch: "x86_64"}
	if err := c.CheckDir(); err == nil {
		t.Error("missing dir accepted")
	}
	mkdir(t, c.Dir())
	if err := c.CheckDir(); err != nil {
		t.Fatal(err)
	}
	// <kernelver> as a symlink to a directory elsewhere is refused.
	elsewhere := t.TempDir()
	mkdir(t, filepath.Join(elsewhere, "x86_64", "module"))
	c2 := &Build{Tree: tree, Package: "foo", Version: "1.0", KernelVer: "k2", Arch: "x86_64"}
	os.Symlink(elsewhere, filepath.Join(tree, "foo", "1.0", "k2"))
	err := c2.CheckDir()
	if err == nil || err.Error() != filepath.Join(tree, "foo/1.0/k2")+" is a symlink: refusing to follow it out of the DKMS tree" {
		t.Errorf("symlinked kernel dir: %v", err)
	}
}
