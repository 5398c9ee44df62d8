package sign_test

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testmod"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/modfile"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
)

// mldsaKey makes an ML-DSA key pair with keygen's library and opens it from
// its files, as every command does.
func mldsaKey(t testing.TB, typ string) (crypto.Signer, *x509.Certificate) {
	t.Helper()
	g, err := keys.Generate(keys.GenerateOptions{Type: typ, CommonName: "test " + typ})
	if err != nil {
		t.Fatal(err)
	}
	f, err := keys.WriteKeyPair(filepath.Join(t.TempDir(), "k"), g)
	if err != nil {
		t.Fatal(err)
	}
	key, err := keys.Open(f.Key, keys.Options{SkipPermissionCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := keys.LoadCertificate(f.CertDER)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert
}

// TestMLDSAForms signs at every level in both forms and checks what verify
// says for kernels with and without the signed-attributes waiver.
func TestMLDSAForms(t *testing.T) {
	waiver := sign.Policy{MLDSAAuthAttrs: true}
	for _, typ := range []string{"mldsa44", "mldsa65", "mldsa87"} {
		key, cert := mldsaKey(t, typ)
		_, other := mldsaKey(t, typ)
		for _, attrs := range []bool{false, true} {
			for _, name := range []string{"m.ko", "m.ko.xz"} {
				t.Run(typ+"/"+map[bool]string{false: "pure", true: "authattrs"}[attrs]+"/"+name, func(t *testing.T) {
					dir := t.TempDir()
					var buf bytes.Buffer
					if err := modfile.Compress(&buf, testmod.ELF(100_000), modfile.FormatOf(name)); err != nil {
						t.Fatal(err)
					}
					mod := testmod.WriteFile(t, dir, name, buf.Bytes())
					s, err := sign.NewSigner(key, cert, sign.Options{AuthAttrs: attrs})
					if err != nil {
						t.Fatal(err)
					}
					if _, err := s.SignFile(mod); err != nil {
						t.Fatal(err)
					}
					_, err = sign.VerifyFileFor(mod, []*x509.Certificate{cert}, waiver)
					if err != nil {
						t.Fatalf("waiver kernel: %v", err)
					}
					_, err = sign.VerifyFile(mod, []*x509.Certificate{cert})
					if attrs != errors.Is(err, sign.ErrAuthAttrs) || (!attrs && err != nil) {
						t.Fatalf("kernel without the waiver: %v (signed attributes: %v)", err, attrs)
					}
					info, err := sign.InspectFile(mod)
					if err != nil {
						t.Fatal(err)
					}
					if si := info.Last(); si.SigAlgo != typ || si.HashAlgo != "sha512" || si.SignedAttributes != attrs || si.Kernels == "" {
						t.Errorf("info: %+v", si)
					}
					if _, err := sign.VerifyFileFor(mod, []*x509.Certificate{other}, waiver); !errors.Is(err, sign.ErrUnknownKey) {
						t.Errorf("another %s key: %v, want ErrUnknownKey", typ, err)
					}
					// Signing again with the same key and form leaves it untouched.
					res, err := s.SignFile(mod)
					if err != nil || res.Changed {
						t.Errorf("re-sign: changed=%v err=%v", res != nil && res.Changed, err)
					}
				})
			}
		}
		t.Run(typ+"/tamper", func(t *testing.T) { testMLDSATamper(t, key, cert) })
	}
}

func testMLDSATamper(t *testing.T, key crypto.Signer, cert *x509.Certificate) {
	waiver := sign.Policy{MLDSAAuthAttrs: true}
	for _, attrs := range []bool{false, true} {
		dir := t.TempDir()
		mod := testmod.WriteFile(t, dir, "m.ko", testmod.ELF(4096))
		s, _ := sign.NewSigner(key, cert, sign.Options{AuthAttrs: attrs})
		if _, err := s.SignFile(mod); err != nil {
			t.Fatal(err)
		}
		signed, _ := os.ReadFile(mod)
		for _, off := range []int{100, 4095, 4096 + 200, len(signed) - 41 - 10} {
			bad := append([]byte{}, signed...)
			bad[off] ^= 1
			p := testmod.WriteFile(t, dir, "bad.ko", bad)
			if _, err := sign.VerifyFileFor(p, []*x509.Certificate{cert}, waiver); err == nil {
				t.Errorf("authattrs=%v: flipped byte %d of %d verifies", attrs, off, len(signed))
			}
		}
	}
}

// TestMLDSAPolicy: a kernel configuration decides the verdict.
func TestMLDSAPolicy(t *testing.T) {
	key, cert := mldsaKey(t, "mldsa44")
	dir := t.TempDir()
	mod := testmod.WriteFile(t, dir, "m.ko", testmod.ELF(4096))
	s, _ := sign.NewSigner(key, cert, sign.Options{AuthAttrs: true})
	if _, err := s.SignFile(mod); err != nil {
		t.Fatal(err)
	}
	conf := testmod.WriteFile(t, dir, "config", []byte("CONFIG_CRYPTO=y\nCONFIG_CRYPTO_MLDSA=y\nCONFIG_CRYPTO_SHA256=y\nCONFIG_PKCS7_WAIVE_AUTHATTRS_REJECTION_FOR_MLDSA=y\n"))
	pol, err := sign.KernelPolicyFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	// The waiver is there, but the messageDigest needs SHA-512, which this kernel lacks.
	if _, err := sign.VerifyFileFor(mod, []*x509.Certificate{cert}, pol); !errors.Is(err, sign.ErrUnsupported) {
		t.Errorf("kernel without SHA-512: %v, want ErrUnsupported", err)
	}
	pol.NoHash = nil
	if _, err := sign.VerifyFileFor(mod, []*x509.Certificate{cert}, pol); err != nil {
		t.Errorf("waiver kernel: %v", err)
	}
	pol.NoMLDSA = true
	if _, err := sign.VerifyFileFor(mod, []*x509.Certificate{cert}, pol); !errors.Is(err, sign.ErrUnsupported) {
		t.Errorf("kernel without CRYPTO_MLDSA: %v, want ErrUnsupported", err)
	}
	// RSA and ECDSA keys refuse signed attributes up front.
	kp := testmod.Key(t, "p256")
	ec, _ := keys.Open(kp.Key, keys.Options{SkipPermissionCheck: true})
	ecCert, _ := keys.LoadCertificate(kp.Cert)
	if _, err := sign.NewSigner(ec, ecCert, sign.Options{AuthAttrs: true}); err == nil {
		t.Error("ECDSA with signed attributes accepted")
	}
}
