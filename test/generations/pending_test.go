//go:build generations_pending

// These rows are written and were run once here, but are not yet green in
// every root, so `make test` does not build them (run them with
// `go test -tags generations_pending ./test/generations`). What is left:
//   - TestSuitesInRoot: bullseye failed on two test defects since fixed (a
//     certificate OpenSSL 1.1.1 made with duplicate extensions, and the
//     unsigned baseline of dkms 2.8); trixie (dkms 3.2.2) passed pkg/sign and
//     the hook and framework routes, and failed TestKeyAbsent (no devpts for
//     script(1): since mounted by debroot.Run) and TestKeyMismatch (make.log
//     left in the build directory when the hook fails: since read there);
//     sid not yet run. Rerun all three.
//   - TestDeb: dpkg-buildpackage wants build-essential in the root (add it
//     to debroot.DKMSPkgs).
package generations

import (
	"regexp"
	"strings"
	"testing"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testmod"
)

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
