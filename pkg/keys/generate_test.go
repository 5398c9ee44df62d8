package keys

import (
	"bytes"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// opensslText is `openssl x509 -text -noout` of a certificate file.
func opensslText(t *testing.T, dir, cert string, der bool) string {
	t.Helper()
	args := []string{"x509", "-in", cert, "-text", "-noout"}
	if der {
		args = append(args, "-inform", "DER")
	}
	return string(openssl(t, dir, args...))
}

func TestGenerateCertificateExtensions(t *testing.T) {
	requireOpenSSL(t)
	cases := []struct {
		o       GenerateOptions
		keyText string
		desc    string
	}{
		{GenerateOptions{Bits: 2048}, `Public-Key: \(2048 bit\)`, "RSA-2048"},
		{GenerateOptions{Type: "ecdsa"}, `ASN1 OID: secp384r1`, "ECDSA-P384"},
		{GenerateOptions{Type: "ecdsa", Curve: "P-256"}, `ASN1 OID: prime256v1`, "ECDSA-P256"},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			c.o.CommonName = "Test module key ü"
			g, err := Generate(c.o)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			f, err := WriteKeyPair(filepath.Join(dir, "keys"), g)
			if err != nil {
				t.Fatal(err)
			}
			for _, der := range []bool{false, true} {
				path := f.CertPEM
				if der {
					path = f.CertDER
				}
				text := opensslText(t, dir, path, der)
				for _, re := range []string{
					// OpenSSL 3.0 prints "CN = ...", 3.5 (Debian 13) "CN=...".
					`Subject: CN ?= ?Test module key (\\C3\\BC|ü)`,
					`X509v3 Basic Constraints: critical\s+CA:FALSE`,
					`X509v3 Key Usage: (critical)?\s+Digital Signature\n`,
					// codeSigning, and module signing only (shim will not boot with it).
					`X509v3 Extended Key Usage: \s*\n\s+Code Signing, 1\.3\.6\.1\.4\.1\.2312\.16\.1\.2\n`,
					`X509v3 Subject Key Identifier: \s*\n\s+[0-9A-F:]{59}\n`,
					`X509v3 Authority Key Identifier: \s*\n\s+(keyid:)?[0-9A-F:]{59}\n`,
					c.keyText,
				} {
					if !regexp.MustCompile(re).MatchString(text) {
						t.Errorf("der=%v: openssl x509 -text lacks %q:\n%s", der, re, text)
					}
				}
			}
			// The key openssl reads is the certificate's.
			keyPub := openssl(t, dir, "pkey", "-in", f.Key, "-pubout")
			certPub := openssl(t, dir, "x509", "-in", f.CertDER, "-inform", "DER", "-pubkey", "-noout")
			if !bytes.Equal(keyPub, certPub) {
				t.Error("openssl: key and certificate public keys differ")
			}
			// SKID as openssl computes it (subjectKeyIdentifier=hash) for the same key.
			openssl(t, dir, "req", "-new", "-x509", "-key", f.Key, "-subj", "/CN=x", "-days", "1",
				"-addext", "subjectKeyIdentifier=hash", "-outform", "DER", "-out", "ossl.der")
			ossl, err := LoadCertificate(filepath.Join(dir, "ossl.der"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ossl.SubjectKeyId, g.Cert.SubjectKeyId) || !bytes.Equal(g.Cert.AuthorityKeyId, g.Cert.SubjectKeyId) {
				t.Errorf("SKID %x, AKID %x; openssl's SKID %x", g.Cert.SubjectKeyId, g.Cert.AuthorityKeyId, ossl.SubjectKeyId)
			}
			// Our own loader agrees too, and the key opens with its checks on.
			k, err := Open(f.Key, Options{Getenv: noEnv})
			if err != nil {
				t.Fatal(err)
			}
			cert, err := LoadCertificate(f.CertPEM)
			if err != nil {
				t.Fatal(err)
			}
			if !samePublicKey(k, cert) {
				t.Error("the certificate's public key is not the key's")
			}
			if k.Description() != c.desc+" "+f.Key {
				t.Errorf("Description = %q", k.Description())
			}
			if got := time.Until(cert.NotAfter); got < (DefaultDays-1)*24*time.Hour {
				t.Errorf("default validity %v, want %d days", got, DefaultDays)
			}
			if cert.IsCA || cert.MaxPathLen > 0 || cert.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("IsCA %v, KeyUsage %v", cert.IsCA, cert.KeyUsage)
			}
			if cert.SerialNumber.Sign() <= 0 {
				t.Error("serial not positive")
			}
		})
	}
}

func TestGenerateEncrypted(t *testing.T) {
	requireOpenSSL(t)
	g, err := Generate(GenerateOptions{Type: "ecdsa", CommonName: "enc", Passphrase: []byte(goodPass)})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(g.KeyPEM, []byte(goodPass)) || !bytes.HasPrefix(g.KeyPEM, []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----")) {
		t.Fatalf("key not encrypted:\n%s", g.KeyPEM)
	}
	dir := t.TempDir()
	f, err := WriteKeyPair(filepath.Join(dir, "k"), g)
	if err != nil {
		t.Fatal(err)
	}
	// openssl opens it with the passphrase and not without.
	openssl(t, dir, "pkey", "-in", f.Key, "-passin", "pass:"+goodPass, "-noout")
	if _, err := runOpenSSL(dir, "pkey", "-in", f.Key, "-passin", "pass:"+wrongPass, "-noout"); err == nil {
		t.Error("openssl opened the key with a wrong passphrase")
	}
	if _, err := Open(f.Key, Options{Getenv: envWith(map[string]string{PinEnv: goodPass})}); err != nil {
		t.Fatal(err)
	}
	_, err = Open(f.Key, Options{Getenv: envWith(map[string]string{PinEnv: wrongPass})})
	if !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	assertNoSecret(t, err)
}

func TestGenerateOptions(t *testing.T) {
	bad := map[string]GenerateOptions{
		"type":       {Type: "dsa", CommonName: "x"},
		"small rsa":  {Bits: 1024, CommonName: "x"},
		"curve":      {Type: "ecdsa", Curve: "P-521", CommonName: "x"},
		"rsa curve":  {Curve: "P-256", CommonName: "x"},
		"ecdsa bits": {Type: "ecdsa", Bits: 2048, CommonName: "x"},
		"no cn":      {Type: "ecdsa"},
		"long cn":    {Type: "ecdsa", CommonName: strings.Repeat("x", 65)},
		"bad utf8":   {Type: "ecdsa", CommonName: "\xff"},
		"days":       {Type: "ecdsa", CommonName: "x", Days: -1},
		"empty pass": {Type: "ecdsa", CommonName: "x", Passphrase: []byte{}},
	}
	for name, o := range bad {
		if _, err := Generate(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	g, err := Generate(GenerateOptions{Type: "ecdsa", CommonName: "x", Days: 10, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if !g.Cert.NotBefore.Equal(now) || !g.Cert.NotAfter.Equal(now.AddDate(0, 0, 10)) {
		t.Errorf("validity %v .. %v", g.Cert.NotBefore, g.Cert.NotAfter)
	}
}

func TestWriteKeyPairRefusals(t *testing.T) {
	g, err := Generate(GenerateOptions{Type: "ecdsa", CommonName: "x"})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "keys")
	f, err := WriteKeyPair(dir, g)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, f.Key: 0o600, f.CertPEM: 0o644, f.CertDER: 0o644} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, st.Mode(), want)
		}
	}
	before, _ := os.ReadFile(f.Key)
	g2, _ := Generate(GenerateOptions{Type: "ecdsa", CommonName: "y"})
	if _, err := WriteKeyPair(dir, g2); !errors.Is(err, ErrExists) {
		t.Fatalf("second WriteKeyPair: %v", err)
	}
	after, _ := os.ReadFile(f.Key)
	if !bytes.Equal(before, after) {
		t.Fatal("existing key replaced")
	}
	// Only the DER file exists: still nothing is written.
	dir2 := filepath.Join(t.TempDir(), "k2")
	os.Mkdir(dir2, 0o700)
	os.WriteFile(filepath.Join(dir2, "signing_key.der"), []byte("old"), 0o644)
	if _, err := WriteKeyPair(dir2, g2); !errors.Is(err, ErrExists) {
		t.Fatalf("existing DER: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir2, "signing_key.pem")); err == nil {
		t.Fatal("key written next to an existing certificate")
	}
	// A directory others can write is refused.
	open := filepath.Join(t.TempDir(), "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777)
	var pe *PermissionError
	if _, err := WriteKeyPair(open, g2); !errors.As(err, &pe) || pe.Fix != "chmod 700 "+open {
		t.Fatalf("world-writable dir: %v", err)
	}
	entries, _ := os.ReadDir(open)
	if len(entries) != 0 {
		t.Fatalf("files written into a refused dir: %v", entries)
	}
}

func TestDescribe(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	g, err := Generate(GenerateOptions{Bits: 2048, CommonName: "desc", Days: 100, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	d := DescribeAt(g.Cert, now.AddDate(0, 0, 1))
	if d.CommonName != "desc" || d.Subject != "CN=desc" || d.KeyType != "RSA-2048" || d.Expired || d.ExpiringSoon || d.Warning() != "" {
		t.Errorf("fresh: %+v %q", d, d.Warning())
	}
	if d.SKID != strings.ToLower(strings.ReplaceAll(hexColonUpper(g.Cert.SubjectKeyId), ":", "")) || len(d.SKID) != 40 {
		t.Errorf("SKID %q", d.SKID)
	}
	if d.Serial != g.Cert.SerialNumber.Text(16) {
		t.Errorf("serial %q", d.Serial)
	}
	d = DescribeAt(g.Cert, now.AddDate(0, 0, 80))
	if !d.ExpiringSoon || d.Expired || !strings.Contains(d.Warning(), "expires on 2030-04-11, in 20 days") {
		t.Errorf("expiring: %+v %q", d, d.Warning())
	}
	d = DescribeAt(g.Cert, now.AddDate(0, 0, 101))
	if !d.Expired || d.ExpiringSoon || !strings.Contains(d.Warning(), "expired on 2030-04-11") {
		t.Errorf("expired: %+v %q", d, d.Warning())
	}
	d = DescribeAt(g.Cert, now.Add(-time.Hour))
	if !d.NotYetValid || !strings.Contains(d.Warning(), "not valid before") {
		t.Errorf("future: %+v %q", d, d.Warning())
	}
}

func hexColonUpper(b []byte) string {
	var parts []string
	for _, c := range b {
		parts = append(parts, strings.ToUpper(string("0123456789abcdef"[c>>4])+string("0123456789abcdef"[c&15])))
	}
	return strings.Join(parts, ":")
}
