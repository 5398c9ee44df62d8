package keys

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/mldsa"
)

// LoadCertificate reads an X.509 certificate in DER or PEM form. As the
// kernel's sign-file, it takes the file as DER when it starts with 0x30
// 0x81..0x84 (a SEQUENCE with a long-form length), else as PEM; of a PEM
// file the first CERTIFICATE block is used.
func LoadCertificate(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	cert, err := ParseCertificate(data)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", path, err)
	}
	return cert, nil
}

// ParseCertificate parses DER or PEM certificate bytes (see LoadCertificate).
func ParseCertificate(data []byte) (*x509.Certificate, error) {
	if isDER(data) {
		cert, err := x509.ParseCertificate(data)
		if err != nil {
			return nil, fmt.Errorf("not a valid DER certificate: %w", err)
		}
		return cert, checkKey(cert)
	}
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no PEM CERTIFICATE block and not DER (want a PEM or DER X.509 certificate)")
		}
		if block.Type != "CERTIFICATE" && block.Type != "X509 CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("bad PEM certificate: %w", err)
		}
		return cert, checkKey(cert)
	}
}

// isDER is sign-file's test: a DER SEQUENCE with a 1..4 byte long-form length.
func isDER(b []byte) bool {
	return len(b) >= 2 && b[0] == 0x30 && b[1] >= 0x81 && b[1] <= 0x84
}

// certKey is the certificate's public key, ML-DSA included (crypto/x509
// leaves cert.PublicKey nil for algorithms it does not know); nil when
// nobody here can parse it.
func certKey(cert *x509.Certificate) crypto.PublicKey {
	pub, err := mldsa.CertificateKey(cert)
	if err != nil {
		return nil
	}
	return pub
}

// checkKey parses the ML-DSA public key of a certificate crypto/x509 left
// unparsed, so that a malformed one is refused when the certificate is read.
func checkKey(cert *x509.Certificate) error {
	if cert.PublicKey != nil {
		return nil
	}
	if _, err := mldsa.CertificateKey(cert); err != nil && !errors.Is(err, mldsa.ErrNotMLDSA) {
		return fmt.Errorf("public key: %w", err)
	}
	return nil
}
