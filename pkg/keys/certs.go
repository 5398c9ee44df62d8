package keys

import (
	"crypto/x509"
	"fmt"
)

// LoadCertificates loads each of paths with LoadCertificate.
func LoadCertificates(paths []string) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for _, p := range paths {
		cert, err := LoadCertificate(p)
		if err != nil {
			return nil, fmt.Errorf("certificate %s: %w", p, err)
		}
		certs = append(certs, cert)
	}
	return certs, nil
}
