// Package deb_test builds the Debian package with `make deb` and checks what it
// installs: the paths the code expects, their modes, the sign-file symlink,
// that nothing is enabled and no key is shipped, that the packaged binary signs
// a real module exactly as Debian's sign-file does, and lintian's verdict. It
// also checks that `make install DESTDIR=...` lays out the same files.
package deb_test

import (
	"bufio"
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testmod"
)

// entry is one path of an installed tree: "-rw-r--r--", "drwx------",
// "lrwxrwxrwx" and, for a symlink, its target.
type entry struct {
	mode   string
	target string
}

// want lists what must be installed, with its mode (the symlink's target is
// checked separately). Paths are relative to /, as dpkg-deb lists them.
var want = map[string]string{
	"usr/sbin/dkms-sign-hook":                                                    "-rwxr-xr-x",
	"usr/lib/dkms-sign-hook/":                                                    "drwxr-xr-x",
	"usr/lib/dkms-sign-hook/sign-file":                                           "lrwxrwxrwx",
	"usr/share/dkms-sign-hook/dkms-override.conf":                                "-rw-r--r--",
	"etc/dkms-sign-hook/":                                                        "drwx------",
	"usr/share/doc/dkms-sign-hook/README.dkms.md":                                "-rw-r--r--",
	"usr/share/doc/dkms-sign-hook/examples/dkms-sign-hook.conf":                  "-rw-r--r--",
	"usr/share/doc/dkms-sign-hook/examples/framework.conf.d/dkms-sign-hook.conf": "-rw-r--r--",
	"usr/share/bash-completion/completions/dkms-sign-hook":                       "-rw-r--r--",
}

// debOnly are what only the package has: Debian's documentation, the man
// page (debian/dkms-sign-hook.8) and lintian overrides.
var debOnly = map[string]bool{
	"usr/share/doc/dkms-sign-hook/copyright":           true,
	"usr/share/doc/dkms-sign-hook/changelog.Debian.gz": true,
	"usr/share/man/":                             true,
	"usr/share/man/man8/":                        true,
	"usr/share/man/man8/dkms-sign-hook.8.gz":     true,
	"usr/share/lintian/":                         true,
	"usr/share/lintian/overrides/":               true,
	"usr/share/lintian/overrides/dkms-sign-hook": true,
}

const (
	binPath      = "usr/sbin/dkms-sign-hook"
	signFilePath = "usr/lib/dkms-sign-hook/sign-file"
)

func TestDeb(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a .deb (about 2 minutes)")
	}
	for _, tool := range [][2]string{
		{"dpkg-buildpackage", "dpkg-dev"}, {"dh", "debhelper"}, {"dpkg-deb", "dpkg"},
		{"lintian", "lintian"}, {"make", "make"}, {"gcc", "build-essential"},
	} {
		testenv.LookPath(t, tool[0], tool[1])
	}
	root := repoRoot(t)
	env := buildEnv(t)
	testenv.Require(t, lookPathIn(env, "go"), "the Go toolchain (in PATH or /usr/local/go/bin)")

	if out, err := exec.Command("git", "-C", root, "status", "--porcelain").Output(); err == nil && len(out) > 0 {
		t.Logf("the package is built from the working tree, with these uncommitted changes:\n%s", out)
	}

	dist := filepath.Join(t.TempDir(), "dist")
	start := time.Now()
	run(t, env, root, "make", "--no-print-directory", "deb", "DIST="+dist)
	t.Logf("make deb: %v", time.Since(start).Round(time.Second))

	debs, _ := filepath.Glob(filepath.Join(dist, "dkms-sign-hook_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb left %q in %s, want one dkms-sign-hook_*.deb", debs, dist)
	}
	deb := debs[0]
	version := strings.TrimSpace(string(run(t, env, "", "dpkg-deb", "-f", deb, "Version")))

	t.Run("contents", func(t *testing.T) { checkContents(t, env, deb) })
	t.Run("control", func(t *testing.T) { checkControl(t, env, deb) })

	x := filepath.Join(t.TempDir(), "x")
	run(t, env, "", "dpkg-deb", "-x", deb, x)
	t.Run("version", func(t *testing.T) {
		out := run(t, env, "", filepath.Join(x, binPath), "--version")
		if got, want := strings.TrimSpace(string(out)), "dkms-sign-hook "+version; got != want {
			t.Errorf("--version printed %q, want %q (the Debian version)", got, want)
		}
	})
	t.Run("sign-file", func(t *testing.T) { checkSignFile(t, env, x) })
	t.Run("maintainer-scripts", func(t *testing.T) { checkMaintainerScripts(t, env, deb, x) })
	t.Run("lintian", func(t *testing.T) { checkLintian(t, env, deb) })
	t.Run("make-install", func(t *testing.T) {
		// The copy make deb built from: the same snapshot of the tree.
		checkMakeInstall(t, env, filepath.Join(dist, "build", "src"), deb, x)
	})
}

// checkContents checks dpkg-deb -c: every path, mode and owner, the symlink's
// target, and that the package installs no key and enables nothing.
func checkContents(t *testing.T, env []string, deb string) {
	got := debListing(t, env, deb)
	all := map[string]string{
		"usr/share/doc/dkms-sign-hook/copyright": "-rw-r--r--",
		"usr/share/man/man8/dkms-sign-hook.8.gz": "-rw-r--r--",
	}
	for p, mode := range want {
		all[p] = mode
	}
	for p, mode := range all {
		e, ok := got[p]
		if !ok && strings.HasPrefix(p, "usr/share/doc/") {
			e, ok = got[p+".gz"] // dh_compress gzips documents over 4 KiB
		}
		if !ok {
			t.Errorf("%s: not in the package", p)
			continue
		}
		if e.mode != mode {
			t.Errorf("%s: mode %s, want %s", p, e.mode, mode)
		}
	}
	for _, p := range []string{"README.md", "README.dkms.md"} {
		if _, err := os.Stat(filepath.Join(repoRoot(t), p)); p == "README.md" && err != nil {
			continue // README.md is the lead's; installed when present
		}
		doc := "usr/share/doc/dkms-sign-hook/" + p
		if _, ok := got[doc]; !ok {
			if _, ok := got[doc+".gz"]; !ok {
				t.Errorf("%s: not in the package", doc)
			}
		}
	}
	if e := got[signFilePath]; e.target == "" || path.Join(path.Dir("/"+signFilePath), e.target) != "/"+binPath {
		t.Errorf("%s -> %q, want a link to /%s", signFilePath, e.target, binPath)
	} else if path.IsAbs(e.target) {
		t.Errorf("%s -> %q: want a relative link (Debian policy 10.5)", signFilePath, e.target)
	}
	for p, e := range got {
		switch {
		case strings.HasPrefix(p, "etc/dkms-sign-hook/") && p != "etc/dkms-sign-hook/":
			t.Errorf("%s: the package must never ship a key or a configuration", p)
		case strings.HasPrefix(p, "etc/") && p != "etc/" && p != "etc/dkms-sign-hook/":
			t.Errorf("%s (%s): the package must install nothing in /etc but the empty key directory", p, e.mode)
		}
		switch path.Ext(strings.TrimSuffix(p, "/")) {
		case ".pem", ".key", ".x509", ".der", ".crt", ".p12":
			t.Errorf("%s: looks like a key or certificate", p)
		}
		if e.mode[0] != 'l' && e.mode[0] != 'd' && e.mode[0] != '-' {
			t.Errorf("%s: unexpected file type %s", p, e.mode)
		}
	}
}

// checkControl: the relationships, and no maintainer script but prerm and
// postrm, which only take back what `dkms-sign-hook enable` made (a script
// must never turn signing on; enabling is the admin's).
func checkControl(t *testing.T, env []string, deb string) {
	fields := map[string]string{}
	for _, f := range []string{"Package", "Architecture", "Depends", "Recommends", "Suggests"} {
		fields[f] = strings.TrimSpace(string(run(t, env, "", "dpkg-deb", "-f", deb, f)))
	}
	t.Logf("control: %v", fields)
	if fields["Package"] != "dkms-sign-hook" {
		t.Errorf("Package: %q", fields["Package"])
	}
	if !strings.Contains(fields["Depends"], "libc6") {
		t.Errorf("Depends: %q, want libc6 from ${shlibs:Depends} (the binary uses cgo)", fields["Depends"])
	}
	if fields["Recommends"] != "dkms" {
		t.Errorf("Recommends: %q, want dkms", fields["Recommends"])
	}
	for _, s := range []string{"softhsm2", "opensc", "mokutil"} {
		if !strings.Contains(fields["Suggests"], s) {
			t.Errorf("Suggests: %q lacks %s", fields["Suggests"], s)
		}
	}
	ctrl := filepath.Join(t.TempDir(), "DEBIAN")
	run(t, env, "", "dpkg-deb", "-e", deb, ctrl)
	ents, err := os.ReadDir(ctrl)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		switch e.Name() {
		case "control", "md5sums", "prerm", "postrm":
		default:
			t.Errorf("control member %s: the package must not run scripts at install or declare conffiles (nothing to enable at install)", e.Name())
		}
	}
}

// checkMaintainerScripts runs the package's prerm and postrm as dpkg would on
// remove and purge, with the extracted binary as /usr/sbin/dkms-sign-hook and
// a scratch /etc/dkms (a private mount namespace: the machine is untouched).
// prerm remove must take back our framework drop-in (left pointing at a
// missing sign-file, DKMS 3.0.10 signs nothing at all) and nothing else;
// postrm purge removes our per-package links and nothing else.
func checkMaintainerScripts(t *testing.T, env []string, deb, x string) {
	testenv.RequireRoot(t)
	testenv.LookPath(t, "unshare", "util-linux")
	ctrl := filepath.Join(t.TempDir(), "DEBIAN")
	run(t, env, "", "dpkg-deb", "-e", deb, ctrl)
	script := `set -e
mount --make-rprivate /
mkdir -p /etc/dkms
mount -t tmpfs tmpfs /etc/dkms
mount -t tmpfs tmpfs /usr/sbin
cp "$X/usr/sbin/dkms-sign-hook" /usr/sbin/dkms-sign-hook
mkdir /etc/dkms/framework.conf.d
printf '# dkms-sign-hook-framework (marker: do not remove this line)
sign_file=/usr/lib/dkms-sign-hook/sign-file
' > /etc/dkms/framework.conf.d/dkms-sign-hook.conf
echo 'sign_file=/x' > /etc/dkms/framework.conf.d/admin.conf
ln -s /usr/share/dkms-sign-hook/dkms-override.conf /etc/dkms/ours.conf
ln -s /etc/dkms/admin-own /etc/dkms/admin.conf
echo 'MAKE[0]=make' > /etc/dkms/plain.conf
sh "$CTRL/prerm" remove
echo "after prerm remove:"; ls -A /etc/dkms /etc/dkms/framework.conf.d
sh "$CTRL/postrm" remove
sh "$CTRL/postrm" purge
echo "after postrm purge:"; ls -A /etc/dkms /etc/dkms/framework.conf.d
`
	cmd := exec.Command("unshare", "--mount", "sh", "-c", script)
	// dpkg's PATH for maintainer scripts.
	cmd.Env = append(env, "X="+x, "CTRL="+ctrl, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	out, err := cmd.CombinedOutput()
	t.Logf("maintainer scripts:\n%s", out)
	if err != nil {
		t.Fatalf("maintainer scripts: %v", err)
	}
	got := string(out)
	_, afterPurge, _ := strings.Cut(got, "after postrm purge:")
	afterRemove, _, _ := strings.Cut(strings.SplitN(got, "after prerm remove:", 2)[1], "after postrm purge:")
	if !strings.Contains(got, "framework route: disabled") || strings.Contains(afterRemove, "dkms-sign-hook.conf") {
		t.Errorf("prerm remove left the framework drop-in in place")
	}
	for _, f := range []string{"admin.conf", "ours.conf", "plain.conf"} {
		if !strings.Contains(afterRemove, f) {
			t.Errorf("prerm remove removed %s", f)
		}
	}
	if strings.Contains(afterPurge, "ours.conf") {
		t.Errorf("postrm purge left the link ours.conf -> the removed override")
	}
	for _, f := range []string{"admin.conf", "plain.conf"} {
		if !strings.Contains(afterPurge, f) {
			t.Errorf("postrm purge removed the admin's %s", f)
		}
	}
}

// checkSignFile runs the extracted binary: strip a real Debian-signed module,
// then sign it through the extracted sign-file symlink and with Debian's
// sign-file; the two must be byte-identical.
func checkSignFile(t *testing.T, env []string, x string) {
	debianSignFile := testenv.RequireSignFile(t)
	kp := testmod.Key(t, "rsa2048")
	dir := t.TempDir()
	unsigned := testmod.Copy(t, testmod.RealNamed(t, "dummy.ko"), dir, "dummy.ko")
	before, _ := os.ReadFile(unsigned)
	out := run(t, env, "", filepath.Join(x, binPath), "strip", unsigned)
	t.Logf("strip: %s", bytes.TrimSpace(out))
	plain, err := os.ReadFile(unsigned)
	if err != nil {
		t.Fatal(err)
	}
	if len(plain) >= len(before) {
		t.Fatalf("strip left %d bytes of %d: Debian's module should have lost its signature", len(plain), len(before))
	}
	for _, hash := range []string{"sha256", "sha512"} {
		ours := testmod.WriteFile(t, dir, "ours-"+hash+".ko", plain)
		theirs := testmod.WriteFile(t, dir, "theirs-"+hash+".ko", plain)
		run(t, env, "", filepath.Join(x, signFilePath), hash, kp.Key, kp.DER, ours)
		run(t, env, "", debianSignFile, hash, kp.Key, kp.DER, theirs)
		a, _ := os.ReadFile(ours)
		b, _ := os.ReadFile(theirs)
		switch {
		case len(b) <= len(plain):
			t.Errorf("%s: Debian's sign-file did not sign (%d bytes)", hash, len(b))
		case !bytes.Equal(a, b):
			t.Errorf("%s: the packaged sign-file wrote %d bytes, Debian's %d; they differ", hash, len(a), len(b))
		}
	}
}

// checkLintian logs lintian's findings and fails on errors.
func checkLintian(t *testing.T, env []string, deb string) {
	cmd := exec.Command("lintian", "--pedantic", "--display-info", "--show-overrides", deb)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	t.Logf("lintian %s:\n%s", filepath.Base(deb), out)
	if err != nil && len(out) == 0 {
		t.Fatalf("lintian: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "E: ") {
			t.Errorf("lintian: %s", sc.Text())
		}
	}
}

// checkMakeInstall installs with make install DESTDIR=... from the tree the
// .deb was built from and compares the layout with the package's.
func checkMakeInstall(t *testing.T, env []string, src, deb, x string) {
	dest := filepath.Join(t.TempDir(), "destdir")
	run(t, env, src, "make", "--no-print-directory", "install", "DESTDIR="+dest)
	inst := walk(t, dest)
	pkg := debListing(t, env, deb)

	norm := func(m map[string]entry) map[string]entry {
		out := map[string]entry{}
		for p, e := range m {
			if debOnly[p] || p == "" {
				continue
			}
			// dh_compress gzips the larger documents.
			if strings.HasPrefix(p, "usr/share/doc/") {
				p = strings.TrimSuffix(p, ".gz")
			}
			out[p] = e
		}
		return out
	}
	a, b := norm(inst), norm(pkg)
	for _, p := range union(a, b) {
		ea, ina := a[p]
		eb, inb := b[p]
		switch {
		case !ina:
			t.Errorf("%s: in the .deb (%s), not installed by make install", p, eb.mode)
		case !inb:
			t.Errorf("%s: installed by make install (%s), not in the .deb", p, ea.mode)
		case ea != eb:
			t.Errorf("%s: make install %v, .deb %v", p, ea, eb)
		case ea.mode[0] == '-' && p != binPath:
			if _, gz := pkg[p+".gz"]; gz {
				continue
			}
			da, _ := os.ReadFile(filepath.Join(dest, p))
			db, _ := os.ReadFile(filepath.Join(x, p))
			if !bytes.Equal(da, db) {
				t.Errorf("%s: make install and the .deb install different contents", p)
			}
		}
	}
	for p := range want {
		if _, ok := inst[p]; !ok {
			t.Errorf("make install did not install %s", p)
		}
	}
	if tgt, err := filepath.EvalSymlinks(filepath.Join(dest, signFilePath)); err != nil || tgt != filepath.Join(dest, binPath) {
		t.Errorf("make install: %s resolves to %q (%v), want %s", signFilePath, tgt, err, filepath.Join(dest, binPath))
	}
	run(t, env, "", filepath.Join(dest, binPath), "--version")
}

// debListing parses dpkg-deb -c: "drwx------ root/root 0 2026-11-27 13:30 ./etc/x/".
func debListing(t *testing.T, env []string, deb string) map[string]entry {
	t.Helper()
	out := run(t, env, "", "dpkg-deb", "-c", deb)
	m := map[string]entry{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			t.Fatalf("dpkg-deb -c: cannot parse %q", line)
		}
		if f[1] != "root/root" {
			t.Errorf("%s: owner %s, want root/root", f[5], f[1])
		}
		e := entry{mode: f[0]}
		if len(f) == 8 && f[6] == "->" {
			e.target = f[7]
		}
		m[strings.TrimPrefix(f[5], "./")] = e
	}
	return m
}

// walk lists a tree in dpkg-deb -c's terms.
func walk(t *testing.T, root string) map[string]entry {
	t.Helper()
	m := map[string]entry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		e := entry{mode: modeString(info.Mode())}
		switch {
		case info.IsDir():
			rel += "/"
		case info.Mode()&fs.ModeSymlink != 0:
			e.target, _ = os.Readlink(p)
		}
		m[filepath.ToSlash(rel)] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// modeString formats like ls and dpkg-deb: "drwx------", "lrwxrwxrwx".
func modeString(m fs.FileMode) string {
	typ := "-"
	switch {
	case m.IsDir():
		typ = "d"
	case m&fs.ModeSymlink != 0:
		typ = "l"
	case !m.IsRegular():
		typ = "?"
	}
	return typ + m.Perm().String()[1:]
}

func union(a, b map[string]entry) []string {
	var ks []string
	for k := range a {
		ks = append(ks, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	return ks
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "debian", "control")); err != nil {
		t.Fatalf("no debian/control above the test: %v", err)
	}
	return root
}

// buildEnv is the environment for make and dpkg: the Go toolchain in PATH, and
// no MAKEFLAGS inherited from an outer `make test`.
func buildEnv(t *testing.T) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "PATH":
			continue
		}
		env = append(env, kv)
	}
	p := os.Getenv("PATH")
	if st, err := os.Stat("/usr/local/go/bin/go"); err == nil && !st.IsDir() {
		p = "/usr/local/go/bin:" + p
	}
	return append(env, "PATH="+p)
}

func lookPathIn(env []string, name string) bool {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			for _, d := range filepath.SplitList(v) {
				if st, err := os.Stat(filepath.Join(d, name)); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
					return true
				}
			}
		}
	}
	return false
}

// run runs a command in dir with env and fails the test with its output.
func run(t *testing.T, env []string, dir, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env, cmd.Dir = env, dir
	return testenv.Run(t, cmd)
}
