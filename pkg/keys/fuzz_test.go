package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/youmark/pkcs8"
)

// FuzzParsePEMKey: key parsing never panics, whatever the file holds, and
// never puts the passphrase in an error.
func FuzzParsePEMKey(f *testing.F) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	sec1, _ := x509.MarshalECPrivateKey(k)
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}))
	enc, _ := pkcs8.MarshalPrivateKey(k, []byte(goodPass), &pkcs8.Opts{Cipher: pkcs8.AES256CBC,
		KDFOpts: pkcs8.PBKDF2Opts{SaltSize: 8, IterationCount: 2, HMACHash: crypto.SHA256}})
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: enc}))
	//lint:ignore SA1019 legacy encrypted PEM is a supported input.
	legacy, _ := x509.EncryptPEMBlock(rand.Reader, "EC PRIVATE KEY", sec1, []byte(goodPass), x509.PEMCipherAES256) //nolint:staticcheck
	f.Add(pem.EncodeToMemory(legacy))
	f.Add([]byte("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		o := &Options{Getenv: envWith(map[string]string{PinEnv: goodPass})}
		_, err := parsePEMKey(data, "fuzz.pem", o)
		if err != nil && strings.Contains(err.Error(), goodPass) {
			t.Fatalf("error leaks the passphrase: %v", err)
		}
	})
}

func FuzzParseCertificate(f *testing.F) {
	g, err := Generate(GenerateOptions{Type: "ecdsa", CommonName: "fuzz"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(g.CertDER)
	f.Add(g.CertPEM())
	f.Add([]byte{0x30, 0x82, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		ParseCertificate(data)
	})
}

// FuzzDecryptPBES2: the PBES2 reader (encrypted ML-DSA keys) never panics
// and never decrypts hostile input into a key with the wrong passphrase.
func FuzzDecryptPBES2(f *testing.F) {
	plain := []byte("0123456789abcdef-private-key-info")
	good, _ := encryptPBES2(plain, []byte("pw"), rand.Reader, 1)
	f.Add(good, []byte("pw"))
	f.Add(good, []byte("wrong"))
	f.Fuzz(func(t *testing.T, der, pass []byte) {
		out, err := decryptPBES2(der, pass)
		if err == nil && len(out) > len(der) {
			t.Fatalf("decrypted %d bytes out of %d", len(out), len(der))
		}
	})
}
