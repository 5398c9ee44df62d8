package killstorm

import (
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testmod"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
)

// fullFS runs in a private mount namespace (the tmpfs vanishes with it; the
// host sees nothing mounted): it mounts a small tmpfs on $1, copies the
// module $2 there, fills the rest, signs, and reports what it saw; then it
// frees the space, signs again and copies the result to $4.
const fullFS = `set -u
dir=$1 mod=$2 tool=$3 out=$4; shift 4
name=$(basename "$mod")
size=$(( 2 * $(stat -c %s "$mod") / 1024 + 64 ))
mount -t tmpfs -o size=${size}k,mode=0755 tmpfs "$dir" || exit 90
cp "$mod" "$dir/$name"
dd if=/dev/zero of="$dir/fill" bs=4k 2>/dev/null
echo "== full"
"$tool" sign "$@" "$dir/$name" 2>&1
echo "== rc=$?"
cmp -s "$mod" "$dir/$name" && echo "== intact"
echo "== entries $(ls -A "$dir" | tr '\n' ' ')"
rm "$dir/fill"
"$tool" sign "$@" "$dir/$name" >/dev/null 2>&1 && echo "== signed after freeing space"
cp "$dir/$name" "$out"
`

// TestFullFileSystem: signing on a full file system (a small tmpfs) fails
// with one clear error naming the module and the cause, leaves the module
// byte for byte as it was and no temporary file; once space is freed, the
// same command signs it.
func TestFullFileSystem(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a tmpfs in a private namespace; not with -short")
	}
	testenv.RequireRoot(t)
	unshare := testenv.LookPath(t, "unshare", "util-linux")
	tool := testenv.Tool(t)
	kp := testmod.Key(t, "p384")
	for _, tc := range []struct{ name, compress string }{{"fat.ko", ""}, {"fat.ko.xz", "xz"}} {
		t.Run(tc.name, func(t *testing.T) {
			work := t.TempDir()
			mod := testmod.Copy(t, testmod.RealNamed(t, "fat.ko"), work, "fat.ko")
			if _, err := sign.StripFile(mod); err != nil {
				t.Fatal(err)
			}
			if tc.compress != "" {
				testmod.Run(t, tc.compress, "--check=crc32", "--lzma2=dict=1MiB", mod)
				mod += ".xz"
			}
			mnt := filepath.Join(work, "mnt")
			os.Mkdir(mnt, 0o755)
			cmd := exec.Command(unshare, "--mount", "--propagation", "private", "sh", "-c", fullFS, "sh",
				mnt, mod, tool, filepath.Join(work, "signed-"+tc.name), "--hash", "sha384", "--key", kp.Key, "--cert", kp.Cert)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			report := string(out)
			t.Logf("%s", report)
			_, after, _ := strings.Cut(report, "== full\n")
			msg, _, _ := strings.Cut(after, "== rc=")
			lines := strings.Split(strings.TrimSpace(msg), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], "no space left on device") ||
				!strings.Contains(lines[0], filepath.Join(mnt, tc.name)) || !strings.Contains(lines[0], "unchanged") {
				t.Errorf("want one line naming the module, the cause and that it is unchanged; got:\n%s", msg)
			}
			if strings.Contains(report, "== rc=0") {
				t.Error("signing on a full file system succeeded")
			}
			if !strings.Contains(report, "== intact") {
				t.Error("the module changed")
			}
			if !strings.Contains(report, "== entries "+tc.name+" fill \n") {
				t.Errorf("the tmpfs holds more than the module and the filler: %s", report)
			}
			if !strings.Contains(report, "== signed after freeing space") {
				t.Fatal("signing after freeing space failed")
			}
			if _, err := sign.VerifyFile(filepath.Join(work, "signed-"+tc.name), certs(t, kp)); err != nil {
				t.Error(err)
			}
		})
	}
}

func certs(t *testing.T, kp *testmod.KeyPair) []*x509.Certificate {
	t.Helper()
	c, err := keys.LoadCertificate(kp.Cert)
	if err != nil {
		t.Fatal(err)
	}
	return []*x509.Certificate{c}
}
