package keys

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadCertificate(t *testing.T) {
	requireOpenSSL(t)
	dir := t.TempDir()
	openssl(t, dir, "req", "-new", "-x509", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384",
		"-subj", "/CN=cert test", "-days", "2", "-keyout", "key.pem", "-out", "cert.pem")
	openssl(t, dir, "x509", "-in", "cert.pem", "-outform", "DER", "-out", "cert.der")
	// A PEM file with text before the block, as openssl x509 -text writes.
	text := openssl(t, dir, "x509", "-in", "cert.pem", "-text")
	write(t, filepath.Join(dir, "cert.txt"), text, 0o644)
	der, _ := os.ReadFile(filepath.Join(dir, "cert.der"))

	for _, name := range []string{"cert.pem", "cert.der", "cert.txt"} {
		c, err := LoadCertificate(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(c.Raw, der) {
			t.Errorf("%s: parsed certificate differs from openssl's DER", name)
		}
		if c.Subject.CommonName != "cert test" {
			t.Errorf("%s: CN = %q", name, c.Subject.CommonName)
		}
	}

	os.Chmod(filepath.Join(dir, "key.pem"), 0o600)
	k, err := Open(filepath.Join(dir, "key.pem"), Options{Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := LoadCertificate(filepath.Join(dir, "cert.der"))
	if !samePublicKey(k, cert) {
		t.Error("the certificate's public key is not key.pem's")
	}
}

func samePublicKey(k crypto.Signer, cert *x509.Certificate) bool {
	pub, ok := k.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(cert.PublicKey)
}

func TestLoadCertificateBad(t *testing.T) {
	dir := t.TempDir()
	cases := map[string][]byte{
		"empty":   nil,
		"text":    []byte("hello\n"),
		"baddér":  {0x30, 0x82, 0x01, 0x00, 0x01},
		"badpem":  []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
		"keyonly": []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
	}
	for name, data := range cases {
		p := filepath.Join(dir, name)
		write(t, p, data, 0o644)
		_, err := LoadCertificate(p)
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: err = %v, want an error naming the file", name, err)
		}
	}
	if _, err := LoadCertificate(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing: %v", err)
	}
}
