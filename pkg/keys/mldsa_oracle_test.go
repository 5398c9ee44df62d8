package keys_test

import (
	"crypto"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/debroot"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/mldsa"
)

// TestMLDSAOpenSSLKeys reads ML-DSA keys that sid's OpenSSL 3.6 wrote in its
// three PKCS#8 forms (seed-priv, seed-only, priv-only): each opens, holds
// the public key OpenSSL derives from it, and signs what `openssl pkeyutl
// -verify` accepts (pure ML-DSA, empty context).
func TestMLDSAOpenSSLKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a sid root (debootstrap); not with -short")
	}
	root := debroot.Get(t, "sid", "openssl", "linux-kbuild-7.2~")
	work, in := root.TempDir(t, "dsh-mldsakeys-")
	in += "/"
	run := func(argv ...string) string {
		t.Helper()
		out, err := root.Run(t, nil, argv...)
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
		}
		return out
	}
	msg := []byte("module bytes\x00\x01")
	if err := os.WriteFile(filepath.Join(work, "msg"), msg, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range mldsa.All {
		run("openssl", "genpkey", "-algorithm", p.Name, "-out", in+p.Short+".pem")
		run("openssl", "pkey", "-in", in+p.Short+".pem", "-pubout", "-out", in+p.Short+".pub")
		pubData, _ := os.ReadFile(filepath.Join(work, p.Short+".pub"))
		block, _ := pem.Decode(pubData)
		if block == nil {
			t.Fatalf("%s: no PEM public key from openssl", p.Name)
		}
		want, err := mldsa.ParsePublicKey(block.Bytes)
		if err != nil {
			t.Fatalf("%s: OpenSSL's SubjectPublicKeyInfo: %v", p.Name, err)
		}
		for _, form := range []string{"seed-priv", "seed-only", "priv-only"} {
			name := p.Short + "-" + form + ".pem"
			run("openssl", "pkey", "-in", in+p.Short+".pem", "-provparam", "ml-dsa.output_formats="+form, "-out", in+name)
			key, err := keys.Open(filepath.Join(work, name), keys.Options{SkipPermissionCheck: true})
			if err != nil {
				t.Fatalf("%s %s: %v", p.Name, form, err)
			}
			if !mldsa.Equal(key.Public(), want) {
				t.Fatalf("%s %s: public key differs from OpenSSL's", p.Name, form)
			}
			sig, err := key.Sign(nil, msg, crypto.Hash(0))
			if err != nil {
				t.Fatal(err)
			}
			sigName := p.Short + "-" + form + ".sig"
			if err := os.WriteFile(filepath.Join(work, sigName), sig, 0o644); err != nil {
				t.Fatal(err)
			}
			out := run("openssl", "pkeyutl", "-verify", "-pubin", "-inkey", in+p.Short+".pub", "-rawin", "-in", in+"msg", "-sigfile", in+sigName)
			if !strings.Contains(out, "Signature Verified Successfully") {
				t.Fatalf("%s %s: openssl pkeyutl -verify: %s", p.Name, form, out)
			}
			key.Close()
		}
		testEncryptedMLDSA(t, run, work, in, p, want)
	}
}

// testEncryptedMLDSA: a key OpenSSL encrypts (genpkey -aes256) opens with
// its passphrase and not with another; one keygen encrypts, OpenSSL opens.
func testEncryptedMLDSA(t *testing.T, run func(...string) string, work, in string, p *mldsa.Params, want crypto.PublicKey) {
	t.Helper()
	run("openssl", "pkcs8", "-topk8", "-v2", "aes256", "-in", in+p.Short+".pem", "-passout", "pass:secret", "-out", in+p.Short+"-enc.pem")
	pass := func(s string) keys.Options {
		return keys.Options{SkipPermissionCheck: true, Getenv: func(string) string { return s }}
	}
	key, err := keys.Open(filepath.Join(work, p.Short+"-enc.pem"), pass("secret"))
	if err != nil {
		t.Fatalf("%s encrypted by OpenSSL: %v", p.Name, err)
	}
	if !mldsa.Equal(key.Public(), want) {
		t.Fatalf("%s encrypted by OpenSSL: wrong public key", p.Name)
	}
	if _, err := keys.Open(filepath.Join(work, p.Short+"-enc.pem"), pass("wrong")); !errors.Is(err, keys.ErrWrongPassphrase) {
		t.Fatalf("%s encrypted by OpenSSL, wrong passphrase: %v", p.Name, err)
	}
	g, err := keys.Generate(keys.GenerateOptions{Type: p.Short, CommonName: "enc", Passphrase: []byte("secret")})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, p.Short+"-ours-enc.pem"), g.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	out := run("openssl", "pkey", "-in", in+p.Short+"-ours-enc.pem", "-passin", "pass:secret", "-noout", "-text")
	if !strings.Contains(out, p.Name) {
		t.Fatalf("OpenSSL on keygen's encrypted %s key:\n%s", p.Name, out)
	}
}
