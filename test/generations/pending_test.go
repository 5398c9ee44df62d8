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
package generations

import (
	"regexp"
	"testing"

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
