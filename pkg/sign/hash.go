package sign

import (
	"crypto"
	_ "crypto/sha1" // register the hashes sign-file may be asked for
	_ "crypto/sha256"
	_ "crypto/sha3"
	_ "crypto/sha512"
	"encoding/asn1"
	"fmt"
	"sort"
	"strings"
)

// hashAlg describes a digest the kernel can verify module signatures with.
type hashAlg struct {
	name string // OpenSSL's short name, as sign-file and modinfo print it
	hash crypto.Hash
	oid  asn1.ObjectIdentifier
	// weak hashes are signed only when asked for by name, with a warning.
	weak bool
}

var hashAlgs = []hashAlg{
	{"sha1", crypto.SHA1, asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}, true},
	{"sha224", crypto.SHA224, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 4}, true},
	{"sha256", crypto.SHA256, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}, false},
	{"sha384", crypto.SHA384, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}, false},
	{"sha512", crypto.SHA512, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}, false},
	{"sha3-256", crypto.SHA3_256, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 8}, false},
	{"sha3-384", crypto.SHA3_384, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 9}, false},
	{"sha3-512", crypto.SHA3_512, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 10}, false},
}

// ParseHash maps a hash name as sign-file takes it ("sha256", "sha3-384",
// also "SHA256" or "sha3_384") to a crypto.Hash.
func ParseHash(name string) (crypto.Hash, error) {
	n := strings.ReplaceAll(strings.ToLower(name), "_", "-")
	for _, a := range hashAlgs {
		if a.name == n {
			return a.hash, nil
		}
	}
	return 0, fmt.Errorf("unknown hash %q (use one of %s)", name, strings.Join(HashNames(), ", "))
}

// HashNames lists, sorted, the hashes that new signatures may use.
func HashNames() []string {
	var names []string
	for _, a := range hashAlgs {
		if !a.weak {
			names = append(names, a.name)
		}
	}
	sort.Strings(names)
	return names
}

// HashName returns OpenSSL's short name for h ("sha512"), as modinfo prints it.
func HashName(h crypto.Hash) string {
	if a, ok := hashByHash(h); ok {
		return a.name
	}
	return h.String()
}

// IsWeakHash reports whether h is one that new signatures should not use.
func IsWeakHash(h crypto.Hash) bool {
	a, ok := hashByHash(h)
	return !ok || a.weak
}

func hashByHash(h crypto.Hash) (hashAlg, bool) {
	for _, a := range hashAlgs {
		if a.hash == h {
			return a, true
		}
	}
	return hashAlg{}, false
}

func hashByOID(oid asn1.ObjectIdentifier) (hashAlg, bool) {
	for _, a := range hashAlgs {
		if a.oid.Equal(oid) {
			return a, true
		}
	}
	return hashAlg{}, false
}
