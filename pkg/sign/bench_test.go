package sign_test

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testmod"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
)

// BenchmarkSignFile re-signs a real module in place (strip + sign + atomic
// write), the unit of bulk re-signing. Compare with BenchmarkDebianSignFile.
func BenchmarkSignFile(b *testing.B) {
	for _, tc := range []struct{ key, hash, module string }{
		{"rsa4096", "sha256", "dummy.ko"},
		{"rsa4096", "sha512", "btrfs.ko"},
		{"p384", "sha384", "dummy.ko"},
		{"p384", "sha384", "btrfs.ko"},
	} {
		b.Run(tc.key+"/"+tc.hash+"/"+tc.module, func(b *testing.B) {
			kp := testmod.Key(b, tc.key)
			mod := testmod.Copy(b, testmod.RealNamed(b, tc.module), b.TempDir(), tc.module)
			st, _ := os.Stat(mod)
			b.SetBytes(st.Size())
			signers := []*sign.Signer{newSigner(b, kp, tc.hash, sign.KeyIDIssuerSerial), newSigner(b, kp, tc.hash, sign.KeyIDSKID)}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				// Alternate key id forms so every iteration really re-signs.
				if _, err := signers[i%2].SignFile(mod); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSignFileCompressed re-signs a .ko.xz: decompress, sign, recompress.
func BenchmarkSignFileCompressed(b *testing.B) {
	kp := testmod.Key(b, "p384")
	dir := b.TempDir()
	mod := testmod.Copy(b, testmod.RealNamed(b, "fat.ko"), dir, "fat.ko")
	testmod.Run(b, "xz", "--check=crc32", mod)
	signers := []*sign.Signer{newSigner(b, kp, "sha384", sign.KeyIDIssuerSerial), newSigner(b, kp, "sha384", sign.KeyIDSKID)}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := signers[i%2].SignFile(mod + ".xz"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDebianSignFile is the reference: Debian's sign-file, one process
// per module, as DKMS and the kernel's build run it.
func BenchmarkDebianSignFile(b *testing.B) {
	signFile := testenv.RequireSignFile(b)
	for _, tc := range []struct{ key, hash, module string }{
		{"rsa4096", "sha256", "dummy.ko"},
		{"rsa4096", "sha512", "btrfs.ko"},
		{"p384", "sha384", "dummy.ko"},
	} {
		b.Run(tc.key+"/"+tc.hash+"/"+tc.module, func(b *testing.B) {
			kp := testmod.Key(b, tc.key)
			dir := b.TempDir()
			mod := testmod.Copy(b, testmod.RealNamed(b, tc.module), dir, tc.module)
			if _, err := sign.StripFile(mod); err != nil {
				b.Fatal(err)
			}
			st, _ := os.Stat(mod)
			b.SetBytes(st.Size())
			work := filepath.Join(dir, "work.ko")
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				testmod.Run(b, signFile, tc.hash, kp.Key, kp.Cert, mod, work)
			}
		})
	}
}

// BenchmarkBulkResign re-signs 64 real modules with SignFiles (one key load,
// one worker per CPU); compare ns/op with 64 × BenchmarkDebianSignFile.
func BenchmarkBulkResign(b *testing.B) {
	for _, keyName := range []string{"rsa4096", "p384"} {
		b.Run(keyName, func(b *testing.B) {
			kp := testmod.Key(b, keyName)
			dir := b.TempDir()
			var paths []string
			for i := 0; i < 64; i++ {
				paths = append(paths, testmod.Copy(b, testmod.RealNamed(b, "dummy.ko"), dir, fmt.Sprintf("m%02d.ko", i)))
			}
			signers := []*sign.Signer{newSigner(b, kp, "sha256", sign.KeyIDIssuerSerial), newSigner(b, kp, "sha256", sign.KeyIDSKID)}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				signers[i%2].SignFiles(paths, 0, func(p string, _ *sign.Result, err error) {
					if err != nil {
						b.Fatal(err)
					}
				})
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(paths)), "ns/module")
		})
	}
}

// BenchmarkMLDSA signs and verifies a real module (btrfs.ko, about 2 MiB
// here) at each ML-DSA level in both forms: the whole file operation
// (strip + sign + atomic write) and VerifyFile. Pure ML-DSA reads the module
// into memory once; the signed-attributes form streams it through SHA-512.
func BenchmarkMLDSA(b *testing.B) {
	for _, typ := range []string{"mldsa44", "mldsa65", "mldsa87"} {
		key, cert := mldsaKey(b, typ)
		for _, attrs := range []bool{false, true} {
			form := map[bool]string{false: "pure", true: "authattrs"}[attrs]
			mod := testmod.Copy(b, testmod.RealNamed(b, "btrfs.ko"), b.TempDir(), "btrfs.ko")
			st, _ := os.Stat(mod)
			// Alternate key id forms so every iteration really re-signs.
			var signers []*sign.Signer
			for _, id := range []sign.KeyID{sign.KeyIDIssuerSerial, sign.KeyIDSKID} {
				s, err := sign.NewSigner(key, cert, sign.Options{KeyID: id, AuthAttrs: attrs})
				if err != nil {
					b.Fatal(err)
				}
				signers = append(signers, s)
			}
			b.Run(typ+"/"+form+"/sign", func(b *testing.B) {
				b.SetBytes(st.Size())
				for i := 0; i < b.N; i++ {
					if _, err := signers[i%2].SignFile(mod); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(typ+"/"+form+"/verify", func(b *testing.B) {
				b.SetBytes(st.Size())
				pol := sign.Policy{MLDSAAuthAttrs: true}
				for i := 0; i < b.N; i++ {
					if _, err := sign.VerifyFileFor(mod, []*x509.Certificate{cert}, pol); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
