package keys

import (
	"fmt"
	"os"
)

// CheckFree refuses to go on when any of the key pair's files exists:
// keygen never replaces a key (it may be enrolled).
func (f KeyPairFiles) CheckFree() error {
	for _, p := range []string{f.Key, f.CertPEM, f.CertDER} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s: %w", p, ErrExists)
		}
	}
	return nil
}

// DefaultCommonName names the machine, so an enrolled key says where it
// came from: "DKMS module signing key (<host>)".
func DefaultCommonName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	cn := "DKMS module signing key (" + host + ")"
	if len(cn) > 64 {
		cn = "DKMS module signing key"
	}
	return cn
}
