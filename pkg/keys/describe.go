package keys

import (
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"time"
)

// CertInfo is what `status` shows about the signing certificate.
type CertInfo struct {
	Subject    string    // e.g. "CN=DKMS module signing key (host)"
	CommonName string    // what modinfo shows as signer
	Serial     string    // hex, as modinfo's sig_key (without colons)
	SKID       string    // subjectKeyIdentifier, hex; "" if absent
	KeyType    string    // "RSA-4096", "ECDSA-P384"
	NotBefore  time.Time // validity
	NotAfter   time.Time
	Expired    bool // NotAfter has passed
	ExpiresIn  time.Duration
	// ExpiringSoon: valid now but for less than ExpiryWarning.
	ExpiringSoon bool
	NotYetValid  bool
}

// ExpiryWarning is how early Describe flags a certificate as expiring.
// The kernel ignores validity dates for module signatures, but shim and
// firmware tools may not, and an old key is a reason to rotate.
const ExpiryWarning = 30 * 24 * time.Hour

// Describe summarises cert as of now.
func Describe(cert *x509.Certificate) CertInfo { return DescribeAt(cert, time.Now()) }

// DescribeAt summarises cert as of the given time.
func DescribeAt(cert *x509.Certificate, now time.Time) CertInfo {
	left := cert.NotAfter.Sub(now)
	return CertInfo{
		Subject:      cert.Subject.String(),
		CommonName:   cert.Subject.CommonName,
		Serial:       cert.SerialNumber.Text(16),
		SKID:         hex.EncodeToString(cert.SubjectKeyId),
		KeyType:      describe(certKey(cert)),
		NotBefore:    cert.NotBefore,
		NotAfter:     cert.NotAfter,
		Expired:      left < 0,
		ExpiresIn:    left,
		ExpiringSoon: left >= 0 && left < ExpiryWarning,
		NotYetValid:  now.Before(cert.NotBefore),
	}
}

// Warning is one line about the validity dates, or "" when all is well.
func (c CertInfo) Warning() string {
	switch {
	case c.Expired:
		return fmt.Sprintf("certificate expired on %s", c.NotAfter.Format("2006-01-02"))
	case c.ExpiringSoon:
		return fmt.Sprintf("certificate expires on %s, in %d days", c.NotAfter.Format("2006-01-02"), int(c.ExpiresIn.Hours()/24))
	case c.NotYetValid:
		return fmt.Sprintf("certificate is not valid before %s", c.NotBefore.Format("2006-01-02 15:04 MST"))
	}
	return ""
}
