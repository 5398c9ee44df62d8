// Package generations proves the tool on the generations of the stack that
// users run, each in a real Debian root (internal/debroot) with that
// release's own dkms, kmod, kernel headers, sign-file and OpenSSL:
//
//	Debian 11 bullseye: dkms 2.8.4, kmod 28,   linux 5.10,  OpenSSL 1.1.1
//	Debian 13 trixie:   dkms 3.2.2, kmod 34.2, linux 6.12,  OpenSSL 3.5
//	Debian sid:         dkms 3.2.2, kmod 34.2, linux 7.2,   OpenSSL 3.6
//
// (Debian 12 is the host: the other suites cover it.) Here: kmod's modinfo
// and insmod on what the tool signs, the static build on Debian 11,
// `make demo` on fresh Debian 11, 12 and 13 systems, and the .deb built,
// installed, upgraded, removed and purged in Debian 13.
// TestSuitesInRoot runs the project's own suites (pkg/sign's oracles,
// test/dkms) inside each root.
package generations

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/debroot"
	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testmod"
)

// generation is one release and what it must be made of.
type generation struct {
	release string
	dkms    string // `dkms --version` prefix
	kmod    string // `kmod --version` first line
	openssl string // `openssl version` prefix
	kbuild  string // sign-file's directory under /usr/lib
}

var generations = []generation{
	{"bullseye", "dkms:2.8", "kmod version 28", "OpenSSL 1.1.1", "linux-kbuild-5.10"},
	{"trixie", "dkms-3.2.2", "kmod version 34", "OpenSSL 3.5.", "linux-kbuild-6.12."},
	{"sid", "dkms-3.2.2", "kmod version 34", "OpenSSL 3.6.", "linux-kbuild-7.2."},
}

// rootPkgs are what each generation's root has (one cached root per release,
// shared with internal/debroot's own test).
var rootPkgs = debroot.DKMSPkgs

// src is where the checkout is copied inside a root.
const src = "/src/dkms-sign-hook"

// realDir is where the host's real modules are copied inside a root.
const realDir = "/var/tmp/dsh-real-modules"

// genRoot returns a throwaway copy of the generation's cached root with the
// checkout at src and pkg/sign's real modules at realDir, and checks the
// root is made of what the generation says.
func genRoot(t *testing.T, g generation, extra ...string) *debroot.Root {
	t.Helper()
	mods := testmod.Real(t) // the host's: every release signs the same modules
	r := debroot.Get(t, g.release, append(extra, rootPkgs...)...).Clone(t)
	r.CopyCheckout(t, src)
	dst := filepath.Join(r.Dir, realDir)
	os.MkdirAll(dst, 0o755)
	for _, m := range mods {
		testmod.Copy(t, m, dst, filepath.Base(m))
	}
	out := run(t, r, nil, "/bin/sh", "-c", "dkms --version; kmod --version | head -n 1; openssl version; ls -d /usr/lib/linux-kbuild-*/scripts/sign-file")
	for _, want := range []string{g.dkms, g.kmod, g.openssl, "/usr/lib/" + g.kbuild} {
		if !strings.Contains(out, want) {
			t.Fatalf("the %s root is not the generation under test: want %q in\n%s", g.release, want, out)
		}
	}
	t.Logf("%s: %s", g.release, strings.ReplaceAll(strings.TrimSpace(out), "\n", "; "))
	return r
}

// run runs a command in the root and fails t with its output if it fails.
func run(t *testing.T, r *debroot.Root, env []string, argv ...string) string {
	t.Helper()
	out, err := r.Run(t, env, argv...)
	if err != nil {
		t.Fatalf("in the %s: %s: %v\n%s", r, strings.Join(argv, " "), err, out)
	}
	return out
}

func eachGeneration(t *testing.T, f func(t *testing.T, g generation)) {
	eachGenerationOf(t, generations, f)
}

func eachGenerationOf(t *testing.T, gens []generation, f func(t *testing.T, g generation)) {
	if testing.Short() && !testenv.InCI() {
		t.Skip("skipped in -short mode: builds Debian roots and runs suites in them")
	}
	for _, g := range gens {
		t.Run(g.release, func(t *testing.T) { f(t, g) })
	}
}

// TestKmodInsmod boots test/kernel's cached 6.12 kernels (xz, zstd and gzip
// module decompression) with Debian 11's kmod 28 and Debian 13's kmod 34 in
// the initramfs: test/kernel's kmod-insmod rows (.ko.xz, .ko.zst, .ko.gz
// signed by the tool, loaded by that kmod's insmod on a kernel that enforces
// signatures) and the plain signed/unsigned controls. kmodWant in
// test/kernel/matrix_test.go holds what each kmod version must get.
func TestKmodInsmod(t *testing.T) {
	eachGeneration(t, func(t *testing.T, g generation) {
		if g.release == "sid" {
			t.Skip("sid's kmod is trixie's 34.2: covered by the trixie row")
		}
		r := debroot.Get(t, g.release, rootPkgs...) // read only: no clone
		cmd := exec.Command("go", "test", "-count=1", "-timeout", "80m", "-v", "-run", "^TestKernel$", ".")
		cmd.Dir = "../kernel"
		cmd.Env = append(os.Environ(), "DKMS_SIGN_HOOK_KMOD_ROOT="+r.Dir, "DKMS_SIGN_HOOK_KMOD_ROWS_ONLY=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("test/kernel with the %s root's kmod: %v\n%s", g.release, err, out)
		}
		passed := regexp.MustCompile(`(?m)^\s*--- PASS: TestKernel/load/(\S+/kmod-insmod)`).FindAllStringSubmatch(string(out), -1)
		if len(passed) < 10 {
			t.Fatalf("test/kernel passed only %d kmod-insmod rows with the %s root's kmod:\n%s", len(passed), g.release, out)
		}
		want := "kmod-insmod rows use kmod " + strings.TrimPrefix(g.kmod, "kmod version ") + " from " + r.Dir
		if !strings.Contains(string(out), want) {
			t.Errorf("test/kernel did not say %q:\n%s", want, out)
		}
		var names []string
		for _, m := range passed {
			names = append(names, m[1])
		}
		t.Logf("%s (%s): %d kmod-insmod rows passed: %s", g.release, g.kmod, len(passed), strings.Join(names, " "))
	})
}

// TestModinfoCompressed: the tool, built in each root, signs a real module
// and its .ko.xz, .ko.zst and .ko.gz copies (made with that root's xz, zstd
// and gzip); that root's modinfo must read the signer and hash from each,
// or, where that kmod cannot decompress the format, give no signer at all
// (never a wrong one).
func TestModinfoCompressed(t *testing.T) {
	eachGeneration(t, func(t *testing.T, g generation) {
		r := genRoot(t, g)
		tool := r.BuildTool(t)
		script := `set -e
cd "$(mktemp -d)"
openssl req -new -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=generations modinfo" -keyout k.pem -out c.pem 2>/dev/null
for ext in ko ko.xz ko.zst ko.gz; do
	cp "$REAL/vfat.ko" m.ko
	case $ext in
	ko.xz) xz --check=crc32 --lzma2=dict=1MiB m.ko ;;
	ko.zst) zstd -q --rm m.ko ;;
	ko.gz) gzip -n m.ko ;;
	esac
	"$TOOL" sign --key k.pem --cert c.pem --hash sha256 m.$ext >/dev/null
	echo "ROW $ext signer=$(modinfo -F signer m.$ext 2>&1 | tr '\n' ' ') hash=$(modinfo -F sig_hashalgo m.$ext 2>&1 | tr '\n' ' ')"
	rm -f m.$ext
done
kmod --version | tail -n 1
`
		out := run(t, r, []string{"REAL=" + realDir, "TOOL=" + tool}, "/bin/sh", "-c", script)
		t.Logf("%s, modinfo on the tool's signed modules:\n%s", g.release, out)
		features := strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])
		for _, ext := range []string{"ko", "ko.xz", "ko.zst", "ko.gz"} {
			m := regexp.MustCompile(`(?m)^ROW ` + regexp.QuoteMeta(ext) + ` signer=(.*) hash=(.*)$`).FindStringSubmatch(out)
			if m == nil {
				t.Errorf("%s: no row for .%s:\n%s", g.release, ext, out)
				continue
			}
			signer, hash := strings.TrimSpace(m[1]), strings.TrimSpace(m[2])
			readable := modinfoReads(features, ext)
			switch {
			case readable && (signer != "generations modinfo" || hash != "sha256"):
				t.Errorf("%s: %s modinfo of .%s: signer %q, hash %q; want the tool's key, sha256", g.release, g.kmod, ext, signer, hash)
			case !readable && signer == "generations modinfo":
				t.Errorf("%s: %s (%s) read the signer of .%s, which it cannot decompress", g.release, g.kmod, features, ext)
			case !readable && signer != "" && !strings.Contains(signer, "modinfo: ERROR"):
				t.Errorf("%s: %s modinfo of .%s: signer %q; want none", g.release, g.kmod, ext, signer)
			}
		}
	})
}

// modinfoReads reports whether a kmod with these features (kmod --version's
// second line, e.g. "+ZSTD +XZ -ZLIB +LIBCRYPTO") decompresses the format.
func modinfoReads(features, ext string) bool {
	switch ext {
	case "ko.xz":
		return strings.Contains(features, "+XZ")
	case "ko.zst":
		return strings.Contains(features, "+ZSTD")
	case "ko.gz":
		return strings.Contains(features, "+ZLIB")
	}
	return true
}

// TestPortableBuild: a binary built on this host (Debian 12, glibc 2.36)
// with cgo does not start on Debian 11 (glibc 2.31), which is why the tool is
// built on the release it runs on (make build, the .deb); `make build
// CGO=0` gives a static binary that runs there and signs byte for byte as
// Debian 11's sign-file (5.10, OpenSSL 1.1.1) does.
func TestPortableBuild(t *testing.T) {
	eachGeneration(t, func(t *testing.T, g generation) {
		if g.release != "bullseye" {
			t.Skip("the oldest glibc is the one that matters")
		}
		r := genRoot(t, g)
		for _, b := range []struct{ cgo, name string }{{"1", "dsh-cgo"}, {"0", "dsh-static"}} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(r.Dir, "usr/local/bin", b.name), "../../cmd/dkms-sign-hook")
			cmd.Env = append(os.Environ(), "CGO_ENABLED="+b.cgo)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("go build CGO_ENABLED=%s: %v\n%s", b.cgo, err, out)
			}
		}
		out, err := r.Run(t, nil, "dsh-cgo", "--version")
		if err == nil || !strings.Contains(out, "GLIBC_2.3") {
			t.Errorf("a cgo binary built on the host ran on %s (%v): %s; the README says it does not", g.release, err, out)
		}
		script := `set -e
cd "$(mktemp -d)"
openssl req -new -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=portable" -keyout k.pem -outform DER -out c.der 2>/dev/null
for h in sha256 sha512; do
	cp "$REAL/vfat.ko" ours.ko; cp "$REAL/vfat.ko" theirs.ko
	dsh-static strip ours.ko >/dev/null; dsh-static strip theirs.ko >/dev/null
	dsh-static sign-file $h k.pem c.der ours.ko
	$SIGNFILE $h k.pem c.der theirs.ko
	cmp ours.ko theirs.ko && echo "EQUAL $h"
done
`
		signFile := strings.TrimSpace(run(t, r, nil, "/bin/sh", "-c", "ls /usr/lib/linux-kbuild-*/scripts/sign-file | tail -n 1"))
		out = run(t, r, []string{"REAL=" + realDir, "SIGNFILE=" + signFile}, "/bin/sh", "-c", script)
		for _, h := range []string{"sha256", "sha512"} {
			if !strings.Contains(out, "EQUAL "+h) {
				t.Errorf("the static binary's %s signature differs from %s's sign-file:\n%s", h, g.release, out)
			}
		}
	})
}

// TestDemo runs `make demo` as the README tells a new user to, on fresh
// Debian 11, 12 and 13 systems (the base system and make, nothing else):
// scripts/install-deps.sh --demo must find every package under that
// release's names, and the demo must end with the module signed.
func TestDemo(t *testing.T) {
	if testing.Short() && !testenv.InCI() {
		t.Skip("skipped in -short mode: builds Debian roots")
	}
	for _, release := range []string{"bullseye", "bookworm", "trixie"} {
		t.Run(release, func(t *testing.T) {
			r := debroot.Get(t, release, "make").Clone(t)
			r.CopyCheckout(t, src)
			out := run(t, r, nil, "/bin/sh", "-c", `cd "$1" && make demo`, "demo", src)
			t.Logf("make demo on %s:\n%s", release, out)
			for _, want := range []string{
				"=== Building the demo DKMS package dshdemo/1.0 for kernel ",
				"dkms-sign-hook demo key (",
				"is signed with your key.",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("make demo on %s: output lacks %q", release, want)
				}
			}
			// kmod's modinfo, printed by the demo, names the demo key.
			if !strings.Contains(out, "=== kmod's modinfo agrees\ndkms-sign-hook demo key (") {
				t.Errorf("make demo on %s: modinfo did not name the demo key", release)
			}
		})
	}
}

// debScript builds the .deb in the root twice (the second with a higher
// version), and takes it through install, enable, a DKMS build, upgrade,
// remove and purge, printing "STATE name value" lines for the test.
const debScript = `set -e
src=$1
state() { echo "STATE $1 $2"; }
exists() { if [ -e "$1" ] || [ -L "$1" ]; then echo yes; else echo no; fi; }
cd "$src"
make --no-print-directory deb DIST=/tmp/dist1 >/tmp/deb1.log 2>&1 || { tail -n 40 /tmp/deb1.log; exit 1; }
dpkg -i /tmp/dist1/dkms-sign-hook_*.deb
state installed-version "$(dkms-sign-hook --version)"
dkms-sign-hook keygen --out /etc/dkms-sign-hook --cn "generations deb key" --write-config /etc/dkms-sign-hook/dkms-sign-hook.conf >/dev/null
cp -r test/dkms/testdata/dshtest /usr/src/dshtest-1.0
dkms add dshtest/1.0 >/dev/null
dkms-sign-hook enable dshtest
dkms-sign-hook enable --framework
kver=$(ls /lib/modules | head -n 1)
dkms build dshtest/1.0 -k "$kver" >/tmp/build1.log 2>&1 || { cat /tmp/build1.log; exit 1; }
state built-signer "$(modinfo -F signer /var/lib/dkms/dshtest/1.0/$kver/*/module/dshtest.ko*)"
dkms remove dshtest/1.0 --all >/dev/null

# A rebuilt, higher version.
sed -i '1s/(\([^)]*\))/(\1+gen1)/' debian/changelog
make --no-print-directory deb DIST=/tmp/dist2 >/tmp/deb2.log 2>&1 || { tail -n 40 /tmp/deb2.log; exit 1; }
dpkg -i /tmp/dist2/dkms-sign-hook_*.deb
state upgraded-version "$(dkms-sign-hook --version)"
state upgraded-link "$(exists /etc/dkms/dshtest.conf)"
state upgraded-dropin "$(exists /etc/dkms/framework.conf.d/dkms-sign-hook.conf)"
dkms add dshtest/1.0 >/dev/null
dkms build dshtest/1.0 -k "$kver" >/tmp/build2.log 2>&1 || { cat /tmp/build2.log; exit 1; }
state upgraded-signer "$(modinfo -F signer /var/lib/dkms/dshtest/1.0/$kver/*/module/dshtest.ko*)"
dkms remove dshtest/1.0 --all >/dev/null

dpkg -r dkms-sign-hook
state removed-binary "$(exists /usr/sbin/dkms-sign-hook)"
state removed-dropin "$(exists /etc/dkms/framework.conf.d/dkms-sign-hook.conf)"
state removed-link "$(exists /etc/dkms/dshtest.conf)"
dpkg -P dkms-sign-hook
state purged-link "$(exists /etc/dkms/dshtest.conf)"
state purged-key "$(exists /etc/dkms-sign-hook/signing_key.pem)"
state purged-status "$(dpkg -s dkms-sign-hook >/dev/null 2>&1 && echo known || echo unknown)"
`

// TestDeb builds the .deb inside the Debian 13 root (its glibc, its
// debhelper) and installs, enables, upgrades, removes and purges it there,
// with that root's dkms 3.2.2 signing through both routes in between.
func TestDeb(t *testing.T) {
	if testing.Short() && !testenv.InCI() {
		t.Skip("skipped in -short mode: builds Debian roots")
	}
	r := genRoot(t, generations[1], "build-essential") // dpkg-buildpackage checks for it
	out := run(t, r, nil, "/bin/bash", "-c", debScript, "deb", src)
	t.Logf("the .deb in the trixie root:\n%s", out)
	got := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^STATE (\S+) ?(.*)$`).FindAllStringSubmatch(out, -1) {
		got[m[1]] = strings.TrimSpace(m[2])
	}
	v1, v2 := got["installed-version"], got["upgraded-version"]
	if !strings.HasPrefix(v1, "dkms-sign-hook ") || v2 != v1+"+gen1" {
		t.Errorf("versions: installed %q, upgraded %q; want the second to be the first plus +gen1", v1, v2)
	}
	for k, want := range map[string]string{
		"built-signer": "generations deb key", "upgraded-signer": "generations deb key",
		"upgraded-link": "yes", "upgraded-dropin": "yes",
		"removed-binary": "no", "removed-dropin": "no", "removed-link": "yes",
		"purged-link": "no", "purged-key": "yes", "purged-status": "unknown",
	} {
		if got[k] != want {
			t.Errorf("%s: %q, want %q", k, got[k], want)
		}
	}
}

// suiteEnv is how the project's suites run inside a root: under CI=true,
// so nothing may skip, with the host's real modules and the root's sign-file.
var suiteEnv = []string{"CI=true", testmod.RealEnv + "=" + realDir}

var passLine = regexp.MustCompile(`(?m)^\s*--- (PASS|FAIL|SKIP): (\S+)`)

// TestSuitesInRoot runs pkg/sign's oracle tests and test/dkms's DKMS
// end-to-end inside each generation's root, and requires each named test to
// have passed there (not skipped).
func TestSuitesInRoot(t *testing.T) {
	eachGeneration(t, func(t *testing.T, g generation) {
		r := genRoot(t, g)
		// pkg/sign's ML-DSA oracles make a sid root of their own: host only.
		script := `cd "$1" && shift && exec go test -count=1 -timeout 45m -v -skip TestMLDSAOracle "$@"`
		out, err := r.Run(t, suiteEnv, "/bin/sh", "-c", script, "gotest", src, "./pkg/sign", "./test/dkms")
		t.Logf("go test in the %s:\n%s", r, out)
		if err != nil {
			t.Fatalf("go test in the %s root: %v", g.release, err)
		}
		results := map[string]string{}
		for _, m := range passLine.FindAllStringSubmatch(out, -1) {
			results[m[2]] = m[1]
		}
		for _, name := range []string{
			"TestByteEqualWithSignFile", "TestOpenSSLCMSVerify", "TestECDSAStructureMatchesSignFile", "TestModinfoSameFields",
			"TestHookRoute", "TestKeyAbsent", "TestKeyMismatch",
		} {
			if results[name] != "PASS" {
				t.Errorf("%s in the %s root: %q, want PASS", name, g.release, results[name])
			}
		}
	})
}
