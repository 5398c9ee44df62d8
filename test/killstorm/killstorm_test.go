// Package killstorm kills dkms-sign-hook at random moments while it signs,
// and checks the promise of every in-place write: a module is either
// untouched or completely signed, never half-written.
package killstorm

import (
	"bytes"
	"crypto/x509"
	"math/rand"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testmod"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
)

func TestKillStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("kills the tool dozens of times; not with -short")
	}
	tool := testenv.Tool(t)
	kp := testmod.Key(t, "p384")
	cert, err := keys.LoadCertificate(kp.Cert)
	if err != nil {
		t.Fatal(err)
	}
	big := testmod.RealNamed(t, "btrfs.ko")
	for _, tc := range []struct {
		name     string
		compress []string
	}{
		{"btrfs.ko", nil},
		{"btrfs.ko.xz", []string{"xz", "--check=crc32", "--lzma2=dict=1MiB"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			mod := testmod.Copy(t, big, dir, "btrfs.ko")
			if _, err := sign.StripFile(mod); err != nil {
				t.Fatal(err)
			}
			if tc.compress != nil {
				testmod.Run(t, tc.compress[0], append(tc.compress[1:], mod)...)
				mod += ".xz"
			}
			orig, _ := os.ReadFile(mod)
			signArgs := []string{"sign", "--hash", "sha384", "--key", kp.Key, "--cert", kp.Cert, mod}

			// How long one uninterrupted run takes sets the window to kill in.
			// (Killed runs leave their temporary file behind; the next run removes it.)
			start := time.Now()
			testmod.Run(t, tool, signArgs...)
			full := time.Since(start)
			rng := rand.New(rand.NewSource(time.Now().UnixNano()))
			var signed, untouched int
			for i := 0; i < 40; i++ {
				if err := os.WriteFile(mod, orig, 0o644); err != nil {
					t.Fatal(err)
				}
				cmd := exec.Command(tool, signArgs...)
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				// Up to 1.5 times a full run: most kills land mid-write, some after.
				time.Sleep(time.Duration(rng.Int63n(int64(full)*3/2 + 1)))
				cmd.Process.Signal(syscall.SIGKILL)
				cmd.Wait()

				now, err := os.ReadFile(mod)
				if err != nil {
					t.Fatalf("kill %d: module gone: %v", i, err)
				}
				if bytes.Equal(now, orig) {
					untouched++
					continue
				}
				if _, err := sign.VerifyFile(mod, []*x509.Certificate{cert}); err != nil {
					t.Fatalf("kill %d: the module is neither the original nor validly signed: %v", i, err)
				}
				signed++
			}
			t.Logf("%d kills within %v: %d left untouched, %d completely signed", signed+untouched, full, untouched, signed)
			os.WriteFile(mod, orig, 0o644)
			testmod.Run(t, tool, signArgs...)
			if left := debris(dir); len(left) > 0 {
				t.Errorf("temporary files left after an uninterrupted run: %v", left)
			}
		})
	}
}
