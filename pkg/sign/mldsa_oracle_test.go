package sign_test

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/debroot"
	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testmod"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
)

// TestMLDSAOracleSid checks ML-DSA against oracles nobody here wrote, in a
// sid root: OpenSSL 3.6 reads keygen's keys and certificates; the
// signed-attributes form has the structure of 7.2's sign-file output for
// the same key, and `openssl cms -verify` accepts it and sign-file's; and
// what OpenSSL 3.6 says of the default form (pure ML-DSA without signed
// attributes): it cannot check it (no digest-then-verify for ML-DSA).
func TestMLDSAOracleSid(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a sid root (debootstrap); not with -short")
	}
	root := debroot.Get(t, "sid", "openssl", "linux-kbuild-7.2~")
	work, in := root.TempDir(t, "dsh-mldsa-")
	run := func(argv ...string) (string, error) { return root.Run(t, nil, argv...) }
	out, _ := run("openssl", "version")
	t.Logf("sid: %s", strings.TrimSpace(out))
	mod := testmod.ELF(50_000)
	for _, typ := range []string{"mldsa44", "mldsa65", "mldsa87"} {
		t.Run(typ, func(t *testing.T) {
			g, err := keys.Generate(keys.GenerateOptions{Type: typ, CommonName: "oracle " + typ})
			if err != nil {
				t.Fatal(err)
			}
			f, err := keys.WriteKeyPair(filepath.Join(work, typ), g)
			if err != nil {
				t.Fatal(err)
			}
			k := func(p string) string { return in + "/" + typ + "/" + filepath.Base(p) }
			// OpenSSL 3.6 reads the key and the certificate, and they hold the same public key.
			name := strings.ToUpper(strings.Replace(typ, "mldsa", "ML-DSA-", 1))
			for _, c := range [][]string{
				{"openssl", "pkey", "-in", k(f.Key), "-noout", "-text"},
				{"openssl", "x509", "-in", k(f.CertPEM), "-noout", "-text"},
				{"openssl", "verify", "-check_ss_sig", "-CAfile", k(f.CertPEM), k(f.CertPEM)},
			} {
				out, err := run(c...)
				if err != nil || (c[1] != "verify" && !strings.Contains(out, name)) {
					t.Fatalf("%s: %v\n%s", strings.Join(c, " "), err, out)
				}
			}
			pub1, err1 := run("openssl", "pkey", "-in", k(f.Key), "-pubout")
			pub2, err2 := run("openssl", "x509", "-in", k(f.CertDER), "-inform", "DER", "-noout", "-pubkey")
			if err1 != nil || err2 != nil || pub1 != pub2 {
				t.Fatalf("key and certificate public keys differ for OpenSSL 3.6:\n%s\n%s", pub1, pub2)
			}
			oracleForms(t, run, testenv.KbuildSignFile(t, root.Dir, "7.2"), work, in, typ, f, mod)
		})
	}
}

// oracleForms signs one module with 7.2's sign-file and with us in both forms.
func oracleForms(t *testing.T, run func(...string) (string, error), signFile, work, in, typ string, f keys.KeyPairFiles, mod []byte) {
	dir := filepath.Join(work, typ)
	k := func(p string) string { return in + "/" + typ + "/" + filepath.Base(p) }
	testmod.WriteFile(t, dir, "theirs.ko", mod)
	if out, err := run(signFile, "sha512", k(f.Key), k(f.CertDER), k("theirs.ko")); err != nil {
		t.Fatalf("7.2 sign-file: %v\n%s", err, out)
	}
	key, err := keys.Open(f.Key, keys.Options{SkipPermissionCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := keys.LoadCertificate(f.CertDER)
	if err != nil {
		t.Fatal(err)
	}
	for _, attrs := range []bool{true, false} {
		name := map[bool]string{true: "attrs.ko", false: "pure.ko"}[attrs]
		p := testmod.WriteFile(t, dir, name, mod)
		s, err := sign.NewSigner(key, cert, sign.Options{AuthAttrs: attrs})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.SignFile(p); err != nil {
			t.Fatal(err)
		}
	}
	theirs := blobOf(t, filepath.Join(dir, "theirs.ko"), len(mod))
	ours := blobOf(t, filepath.Join(dir, "attrs.ko"), len(mod))
	// sign-file's signature verifies with our verifier on a waiver kernel's terms.
	if _, err := sign.VerifyFileFor(filepath.Join(dir, "theirs.ko"), []*x509.Certificate{cert}, sign.Policy{MLDSAAuthAttrs: true}); err != nil {
		t.Errorf("7.2 sign-file's signature does not verify here: %v", err)
	}
	if a, b := sign.Skeleton(theirs), sign.Skeleton(ours); !bytes.Equal(a, b) {
		t.Errorf("structure differs from 7.2 sign-file's (signature values blanked):\nsign-file: %x\nours:      %x", a, b)
	}
	testmod.WriteFile(t, dir, "module", mod)
	for _, blob := range []struct {
		name string
		der  []byte
		want bool
	}{{"theirs.p7s", theirs, true}, {"attrs.p7s", ours, true}, {"pure.p7s", blobOf(t, filepath.Join(dir, "pure.ko"), len(mod)), false}} {
		testmod.WriteFile(t, dir, blob.name, blob.der)
		out, err := run("openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", k(blob.name),
			"-content", k("module"), "-certfile", k(f.CertPEM), "-CAfile", k(f.CertPEM), "-purpose", "any", "-out", "/dev/null")
		t.Logf("openssl cms -verify %s (%s): err=%v %s", blob.name, typ, err, strings.TrimSpace(out))
		if blob.want && err != nil {
			t.Errorf("OpenSSL 3.6 refuses %s: %v\n%s", blob.name, err, out)
		}
		// OpenSSL 3.6 cannot check ML-DSA SignedData without signed
		// attributes at all: CMS_verify digests the content and asks the
		// provider for a digest-then-verify ML-DSA has not got. It must fail
		// that way, not on our bytes; the kernels are this form's oracle.
		if !blob.want && (err == nil || !strings.Contains(out, "verify_init") || !strings.Contains(out, "signature not supported")) {
			t.Errorf("OpenSSL 3.6 on the pure form: %v\n%s\nwant its \"provider signature not supported ... verify_init\" failure", err, out)
		}
	}
}

// blobOf returns the PKCS#7 blob appended to a signed module of n bytes.
func blobOf(t *testing.T, path string, n int) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data[n : len(data)-40]
}
