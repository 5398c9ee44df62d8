package killstorm

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/atomicfile"
	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testmod"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
)

// debris lists our temporary files in dir.
func debris(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		if _, ok := atomicfile.ParseTempName(e.Name()); ok {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestKillStormBatch kills a bulk run (`sign` of 160 modules in two
// directories, committed in batches) at random moments: after every kill
// each module is either exactly as it was or completely and validly signed,
// whatever batch it was in; the temporary files a killed run leaves are
// removed by the next run; a last uninterrupted run leaves none.
func TestKillStormBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("kills the tool dozens of times; not with -short")
	}
	tool := testenv.Tool(t)
	kp := testmod.Key(t, "rsa2048")
	cert, err := keys.LoadCertificate(kp.Cert)
	if err != nil {
		t.Fatal(err)
	}
	src := testmod.Copy(t, testmod.RealNamed(t, "fat.ko"), t.TempDir(), "fat.ko")
	if _, err := sign.StripFile(src); err != nil {
		t.Fatal(err)
	}
	dirs := []string{t.TempDir(), t.TempDir()}
	var mods []string
	orig := map[string][]byte{}
	for i := 0; i < 160; i++ { // two batches
		p := testmod.Copy(t, src, dirs[i%2], fmt.Sprintf("m%03d.ko", i))
		if i%3 == 0 {
			testmod.Run(t, "xz", "--check=crc32", "--lzma2=dict=1MiB", p)
			p += ".xz"
		}
		mods = append(mods, p)
		orig[p], _ = os.ReadFile(p)
	}
	args := append([]string{"sign", "--hash", "sha256", "--key", kp.Key, "--cert", kp.Cert}, mods...)
	restore := func() {
		for p, b := range orig {
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	start := time.Now()
	testmod.Run(t, tool, args...)
	full := time.Since(start)
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	const kills = 20
	var left, signedTotal, untouchedTotal int
	for i := 0; i < kills; i++ {
		restore()
		cmd := exec.Command(tool, args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Up to 1.5 times a full run: kills land in every batch, and after.
		time.Sleep(time.Duration(rng.Int63n(int64(full)*3/2 + 1)))
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		for _, p := range mods {
			now, err := os.ReadFile(p)
			if err != nil {
				t.Fatalf("kill %d: %s gone: %v", i, p, err)
			}
			if bytes.Equal(now, orig[p]) {
				untouchedTotal++
				continue
			}
			if _, err := sign.VerifyFile(p, []*x509.Certificate{cert}); err != nil {
				t.Fatalf("kill %d: %s is neither the original nor validly signed: %v", i, p, err)
			}
			signedTotal++
		}
		left += len(debris(dirs[0])) + len(debris(dirs[1]))
	}
	t.Logf("%d kills within %v: %d modules found untouched, %d completely signed; %d temporary files left by killed runs",
		kills, full, untouchedTotal, signedTotal, left)
	restore()
	testmod.Run(t, tool, args...)
	for _, d := range dirs {
		if left := debris(d); len(left) > 0 {
			t.Errorf("%s still holds %s after an uninterrupted run", d, strings.Join(left, " "))
		}
	}
	for _, p := range mods {
		if _, err := sign.VerifyFile(p, []*x509.Certificate{cert}); err != nil {
			t.Fatal(err)
		}
	}
}
