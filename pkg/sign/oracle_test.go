package sign_test

// Oracles nobody here wrote: Debian's sign-file (byte equality for RSA),
// `openssl cms -verify`, and kmod's modinfo.

import (
	"bytes"
	"crypto/x509"
	"fmt"
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

// newSigner opens a test key pair as the CLI would.
func newSigner(t testing.TB, kp *testmod.KeyPair, hash string, keyID sign.KeyID) *sign.Signer {
	t.Helper()
	h, err := sign.ParseHash(hash)
	if err != nil {
		t.Fatal(err)
	}
	key, err := keys.Open(kp.Key, keys.Options{SkipPermissionCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { key.Close() })
	cert, err := keys.LoadCertificate(kp.Cert)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sign.NewSigner(key, cert, sign.Options{Hash: h, KeyID: keyID})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// unsignedModules returns the test modules without signatures: real ones
// stripped of Debian's signature, and synthetic edge cases.
func unsignedModules(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	mods := map[string]string{}
	for _, p := range testmod.Real(t) {
		if strings.HasPrefix(filepath.Base(p), "btrfs") {
			continue // large; covered by the benchmark
		}
		c := testmod.Copy(t, p, dir, filepath.Base(p))
		if _, err := sign.StripFile(c); err != nil {
			t.Fatal(err)
		}
		mods[filepath.Base(p)] = c
	}
	for _, size := range []int{64, 4095, 4096, 4097, 65537} {
		name := fmt.Sprintf("elf-%d.ko", size)
		mods[name] = testmod.WriteFile(t, dir, name, testmod.ELF(size))
	}
	return mods
}

var rsaHashes = []string{"sha1", "sha224", "sha256", "sha384", "sha512", "sha3-256", "sha3-384", "sha3-512"}

// TestByteEqualWithSignFile: for RSA, our output is byte for byte sign-file's.
func TestByteEqualWithSignFile(t *testing.T) {
	signFile := testenv.RequireSignFile(t)
	mods := unsignedModules(t)
	for _, keyName := range []string{"rsa2048", "rsa4096"} {
		kp := testmod.Key(t, keyName)
		for _, hash := range rsaHashes {
			for _, keyID := range []sign.KeyID{sign.KeyIDIssuerSerial, sign.KeyIDSKID} {
				s := newSigner(t, kp, hash, keyID)
				for name, mod := range mods {
					t.Run(fmt.Sprintf("%s/%s/%s/%s", keyName, hash, keyID, name), func(t *testing.T) {
						dir := t.TempDir()
						want := testmod.Copy(t, mod, dir, "want.ko")
						got := testmod.Copy(t, mod, dir, "got.ko")
						args := []string{hash, kp.Key, kp.Cert, want}
						if keyID == sign.KeyIDSKID {
							args = append([]string{"-k"}, args...)
						}
						testmod.Run(t, signFile, args...)
						if _, err := s.SignFile(got); err != nil {
							t.Fatal(err)
						}
						assertSameFile(t, want, got)
					})
				}
			}
		}
	}
}

// TestReplacesExistingSignature: a module already signed (by Debian, or by
// DKMS's own key) comes out exactly as sign-file makes it from the unsigned
// module: one signature, not two.
func TestReplacesExistingSignature(t *testing.T) {
	signFile := testenv.RequireSignFile(t)
	kp := testmod.Key(t, "rsa2048")
	dkmsKey := testmod.Key(t, "rsa4096")
	s := newSigner(t, kp, "sha256", sign.KeyIDIssuerSerial)
	dir := t.TempDir()
	orig := testmod.RealNamed(t, "vfat.ko")

	// Debian's signature, then ours.
	got := testmod.Copy(t, orig, dir, "got.ko")
	res, err := s.SignFile(got)
	if err != nil {
		t.Fatal(err)
	}
	if res.Replaced != 1 {
		t.Errorf("Replaced = %d, want 1 (Debian's signature)", res.Replaced)
	}
	want := testmod.Copy(t, orig, dir, "want.ko")
	if _, err := sign.StripFile(want); err != nil {
		t.Fatal(err)
	}
	testmod.Run(t, signFile, "sha256", kp.Key, kp.Cert, want)
	assertSameFile(t, want, got)

	// Signed twice by sign-file with another key (stacked), then ours.
	stacked := testmod.Copy(t, want, dir, "stacked.ko")
	testmod.Run(t, signFile, "sha512", dkmsKey.Key, dkmsKey.Cert, stacked)
	info, err := sign.InspectFile(stacked)
	if err != nil || len(info.Signatures) != 2 {
		t.Fatalf("sign-file should stack: %v, %+v", err, info)
	}
	if _, err := s.SignFile(stacked); err != nil {
		t.Fatal(err)
	}
	assertSameFile(t, want, stacked)
}

// TestAlreadySignedIsLeftUntouched: same key, hash and key id: no rewrite.
func TestAlreadySignedIsLeftUntouched(t *testing.T) {
	for _, keyName := range []string{"rsa2048", "p384"} {
		t.Run(keyName, func(t *testing.T) {
			kp := testmod.Key(t, keyName)
			dir := t.TempDir()
			mod := testmod.WriteFile(t, dir, "m.ko", testmod.ELF(10000))
			s := newSigner(t, kp, "sha384", sign.KeyIDIssuerSerial)
			if _, err := s.SignFile(mod); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(mod)
			st1, _ := os.Stat(mod)
			res, err := s.SignFile(mod)
			if err != nil {
				t.Fatal(err)
			}
			if res.Changed {
				t.Error("re-signing with the same key and hash rewrote the module")
			}
			after, _ := os.ReadFile(mod)
			st2, _ := os.Stat(mod)
			if !bytes.Equal(before, after) || !st1.ModTime().Equal(st2.ModTime()) || !os.SameFile(st1, st2) {
				t.Error("module changed on disk")
			}
			// Another hash does re-sign, replacing.
			res, err = newSigner(t, kp, "sha512", sign.KeyIDIssuerSerial).SignFile(mod)
			if err != nil || !res.Changed || res.Replaced != 1 {
				t.Errorf("re-sign with sha512: %+v, %v", res, err)
			}
		})
	}
}

// TestOpenSSLCMSVerify: openssl accepts every signature we make, RSA and ECDSA.
func TestOpenSSLCMSVerify(t *testing.T) {
	openssl := testenv.LookPath(t, "openssl", "openssl")
	mod := testmod.RealNamed(t, "dummy.ko")
	for _, keyName := range []string{"rsa2048", "p256", "p384"} {
		for _, hash := range []string{"sha256", "sha384", "sha512"} {
			for _, keyID := range []sign.KeyID{sign.KeyIDIssuerSerial, sign.KeyIDSKID} {
				t.Run(keyName+"/"+hash+"/"+keyID.String(), func(t *testing.T) {
					kp := testmod.Key(t, keyName)
					dir := t.TempDir()
					unsigned := testmod.Copy(t, mod, dir, "m.ko")
					if _, err := sign.StripFile(unsigned); err != nil {
						t.Fatal(err)
					}
					s := newSigner(t, kp, hash, keyID)
					f, _ := os.Open(unsigned)
					blob, err := s.PKCS7(f)
					f.Close()
					if err != nil {
						t.Fatal(err)
					}
					p7s := testmod.WriteFile(t, dir, "m.p7s", blob)
					testmod.Run(t, openssl, "cms", "-verify", "-binary", "-inform", "DER", "-in", p7s,
						"-content", unsigned, "-certfile", kp.Cert, "-noverify", "-out", os.DevNull)
					// And openssl refuses it for other content.
					other := testmod.WriteFile(t, dir, "other.ko", testmod.ELF(100))
					cmd := exec.Command(openssl, "cms", "-verify", "-binary", "-inform", "DER", "-in", p7s,
						"-content", other, "-certfile", kp.Cert, "-noverify", "-out", os.DevNull)
					if cmd.Run() == nil {
						t.Fatal("openssl cms -verify accepted the signature over other content")
					}
				})
			}
		}
	}
}

// TestECDSAStructureMatchesSignFile: ECDSA signatures are randomized, so
// compare everything but the signature value with sign-file's.
func TestECDSAStructureMatchesSignFile(t *testing.T) {
	signFile := testenv.RequireSignFile(t)
	mod := testmod.RealNamed(t, "dummy.ko")
	for _, keyName := range []string{"p256", "p384"} {
		for _, hash := range []string{"sha256", "sha384", "sha512"} {
			for _, keyID := range []sign.KeyID{sign.KeyIDIssuerSerial, sign.KeyIDSKID} {
				t.Run(keyName+"/"+hash+"/"+keyID.String(), func(t *testing.T) {
					kp := testmod.Key(t, keyName)
					dir := t.TempDir()
					want := testmod.Copy(t, mod, dir, "want.ko")
					if _, err := sign.StripFile(want); err != nil {
						t.Fatal(err)
					}
					got := testmod.Copy(t, want, dir, "got.ko")
					args := []string{hash, kp.Key, kp.Cert, want}
					if keyID == sign.KeyIDSKID {
						args = append([]string{"-k"}, args...)
					}
					testmod.Run(t, signFile, args...)
					if _, err := newSigner(t, kp, hash, keyID).SignFile(got); err != nil {
						t.Fatal(err)
					}
					w, g := describe(t, want), describe(t, got)
					w.Signature, g.Signature = "", ""
					w.SigLen, g.SigLen = 0, 0
					w.Offset, g.Offset = 0, 0
					if w != g {
						t.Errorf("structure differs:\nsign-file: %+v\nours:      %+v", w, g)
					}
					if _, err := sign.VerifyFile(want, certs(t, kp)); err != nil {
						t.Errorf("sign-file's signature does not verify with ours: %v", err)
					}
					if _, err := sign.VerifyFile(got, certs(t, kp)); err != nil {
						t.Errorf("our signature does not verify: %v", err)
					}
				})
			}
		}
	}
}

// TestModinfoSameFields: kmod's modinfo reads the same signer, sig_key and
// sig_hashalgo from our output as from sign-file's.
func TestModinfoSameFields(t *testing.T) {
	signFile := testenv.RequireSignFile(t)
	modinfo := testenv.LookPath(t, "modinfo", "kmod")
	kp := testmod.Key(t, "rsa4096")
	for _, hash := range []string{"sha256", "sha384", "sha512"} {
		t.Run(hash, func(t *testing.T) {
			dir := t.TempDir()
			want := testmod.Copy(t, testmod.RealNamed(t, "fat.ko"), dir, "want.ko")
			if _, err := sign.StripFile(want); err != nil {
				t.Fatal(err)
			}
			got := testmod.Copy(t, want, dir, "got.ko")
			testmod.Run(t, signFile, hash, kp.Key, kp.Cert, want)
			if _, err := newSigner(t, kp, hash, sign.KeyIDIssuerSerial).SignFile(got); err != nil {
				t.Fatal(err)
			}
			info := describe(t, got)
			for _, field := range []string{"signer", "sig_key", "sig_hashalgo"} {
				w := strings.TrimSpace(string(testmod.Run(t, modinfo, "-F", field, want)))
				g := strings.TrimSpace(string(testmod.Run(t, modinfo, "-F", field, got)))
				if w == "" || w != g {
					t.Errorf("modinfo -F %s: sign-file %q, ours %q", field, w, g)
				}
				ours := map[string]string{"signer": info.Signer, "sig_key": info.SigKey, "sig_hashalgo": info.HashAlgo}[field]
				if ours != g {
					t.Errorf("info %s = %q, modinfo says %q", field, ours, g)
				}
			}
		})
	}
}

func describe(t *testing.T, path string) sign.SignatureInfo {
	t.Helper()
	info, err := sign.InspectFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Signatures) != 1 {
		t.Fatalf("%s: %d signatures, want 1", path, len(info.Signatures))
	}
	return info.Signatures[0]
}

func assertSameFile(t *testing.T, want, got string) {
	t.Helper()
	w, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	g, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(w, g) {
		i := 0
		for i < len(w) && i < len(g) && w[i] == g[i] {
			i++
		}
		t.Fatalf("%s differs from sign-file's %s: sizes %d vs %d, first difference at byte %d", got, want, len(g), len(w), i)
	}
}

func certs(t *testing.T, kps ...*testmod.KeyPair) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for _, kp := range kps {
		c, err := keys.LoadCertificate(kp.Cert)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}
