package sign_test

import (
	"crypto/x509"
	"testing"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testmod"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
)

// TestVerifyStack: Debian's sign-file appends a second signature over ours
// (as Ubuntu's DKMS 2.8 does with kmodsign); VerifyStack names the key of
// each, in file order, and nil for a key it was not given.
func TestVerifyStack(t *testing.T) {
	signFile := testenv.RequireSignFile(t)
	ours, theirs := testmod.Key(t, "rsa2048"), testmod.Key(t, "p256")
	dir := t.TempDir()
	mod := testmod.Copy(t, testmod.RealNamed(t, "dummy.ko"), dir, "m.ko")
	if _, err := sign.StripFile(mod); err != nil { // Debian's own signature
		t.Fatal(err)
	}
	for _, kp := range []*testmod.KeyPair{ours, theirs} {
		testmod.Run(t, signFile, "sha256", kp.Key, kp.Cert, mod)
	}
	oursCert, theirsCert := loadCert(t, ours.Cert), loadCert(t, theirs.Cert)
	for _, tc := range []struct {
		certs []*x509.Certificate
		want  []*x509.Certificate
	}{
		{[]*x509.Certificate{oursCert, theirsCert}, []*x509.Certificate{oursCert, theirsCert}},
		{[]*x509.Certificate{oursCert}, []*x509.Certificate{oursCert, nil}},
		{nil, []*x509.Certificate{nil, nil}},
	} {
		info, by, err := sign.VerifyStack(mod, tc.certs)
		if err != nil {
			t.Fatal(err)
		}
		if len(info.Signatures) != 2 || len(by) != 2 {
			t.Fatalf("%d signatures, %d verdicts; want 2", len(info.Signatures), len(by))
		}
		for i := range by {
			if by[i] != tc.want[i] {
				t.Errorf("certs %d: signature %d verified by %v, want %v", len(tc.certs), i, name(by[i]), name(tc.want[i]))
			}
		}
	}
}

func loadCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	c, err := keys.LoadCertificate(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func name(c *x509.Certificate) string {
	if c == nil {
		return "none"
	}
	return c.Subject.CommonName
}
