package keys

import (
	"crypto"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
)

// hashOIDs are the digest algorithms of a PKCS#1 v1.5 DigestInfo (RFC 8017,
// NIST CSOR for SHA-3).
var hashOIDs = map[crypto.Hash]asn1.ObjectIdentifier{
	crypto.SHA1:     {1, 3, 14, 3, 2, 26},
	crypto.SHA224:   {2, 16, 840, 1, 101, 3, 4, 2, 4},
	crypto.SHA256:   {2, 16, 840, 1, 101, 3, 4, 2, 1},
	crypto.SHA384:   {2, 16, 840, 1, 101, 3, 4, 2, 2},
	crypto.SHA512:   {2, 16, 840, 1, 101, 3, 4, 2, 3},
	crypto.SHA3_224: {2, 16, 840, 1, 101, 3, 4, 2, 7},
	crypto.SHA3_256: {2, 16, 840, 1, 101, 3, 4, 2, 8},
	crypto.SHA3_384: {2, 16, 840, 1, 101, 3, 4, 2, 9},
	crypto.SHA3_512: {2, 16, 840, 1, 101, 3, 4, 2, 10},
}

// digestInfo is DER DigestInfo{AlgorithmIdentifier{oid, NULL}, digest}: what
// RSA PKCS#1 v1.5 signs.
func digestInfo(h crypto.Hash, digest []byte) ([]byte, error) {
	oid, ok := hashOIDs[h]
	if !ok {
		return nil, fmt.Errorf("no PKCS#1 v1.5 DigestInfo for %v", h)
	}
	return asn1.Marshal(struct {
		Alg    pkix.AlgorithmIdentifier
		Digest []byte
	}{pkix.AlgorithmIdentifier{Algorithm: oid, Parameters: asn1.NullRawValue}, digest})
}
