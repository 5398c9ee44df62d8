// Package mldsa reads and writes ML-DSA (NIST FIPS 204) keys in the forms
// X.509 and OpenSSL 3.5+ use (RFC 9881): the SubjectPublicKeyInfo of a
// certificate, which Go's crypto/x509 does not parse, and PKCS#8 private keys
// holding a seed, an expanded key, or both. The arithmetic is
// github.com/cloudflare/circl's; signatures are pure ML-DSA with an empty
// context, as Linux 7.x verifies module signatures.
package mldsa

import (
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/cloudflare/circl/sign"
	"github.com/cloudflare/circl/sign/mldsa/mldsa44"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/cloudflare/circl/sign/mldsa/mldsa87"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Params is one ML-DSA parameter set.
type Params struct {
	Name  string // "ML-DSA-65", as FIPS 204 and OpenSSL name it
	Short string // "mldsa65", as keygen --type and the kernel's pkey_algo name it
	OID   asn1.ObjectIdentifier
	// Sizes in bytes.
	PublicKeySize, ExpandedKeySize, SignatureSize int
	scheme                                        sign.Scheme
}

// SeedSize is the length of the seed every parameter set derives its key from.
const SeedSize = 32

// The three parameter sets (NIST security categories 2, 3 and 5).
var (
	MLDSA44 = &Params{"ML-DSA-44", "mldsa44", asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 17},
		mldsa44.PublicKeySize, mldsa44.PrivateKeySize, mldsa44.SignatureSize, mldsa44.Scheme()}
	MLDSA65 = &Params{"ML-DSA-65", "mldsa65", asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 18},
		mldsa65.PublicKeySize, mldsa65.PrivateKeySize, mldsa65.SignatureSize, mldsa65.Scheme()}
	MLDSA87 = &Params{"ML-DSA-87", "mldsa87", asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 19},
		mldsa87.PublicKeySize, mldsa87.PrivateKeySize, mldsa87.SignatureSize, mldsa87.Scheme()}
	All = []*Params{MLDSA44, MLDSA65, MLDSA87}
)

// ByName finds a parameter set by "mldsa65", "ML-DSA-65" or "ml-dsa-65".
func ByName(name string) (*Params, bool) {
	n := strings.ReplaceAll(strings.ToLower(name), "-", "")
	for _, p := range All {
		if p.Short == n {
			return p, true
		}
	}
	return nil, false
}

// ByOID finds a parameter set by its algorithm identifier.
func ByOID(oid asn1.ObjectIdentifier) (*Params, bool) {
	for _, p := range All {
		if p.OID.Equal(oid) {
			return p, true
		}
	}
	return nil, false
}

// Of returns the parameter set of an ML-DSA public or private key.
func Of(key any) (*Params, bool) {
	var s sign.Scheme
	switch k := key.(type) {
	case sign.PublicKey:
		s = k.Scheme()
	case sign.PrivateKey:
		s = k.Scheme()
	default:
		return nil, false
	}
	for _, p := range All {
		if p.scheme.Name() == s.Name() {
			return p, true
		}
	}
	return nil, false
}

// GenerateKey makes a key from 32 bytes of rand, the seed that PKCS#8 keeps.
func (p *Params) GenerateKey(rand io.Reader) (crypto.Signer, error) {
	seed := make([]byte, SeedSize)
	if _, err := io.ReadFull(rand, seed); err != nil {
		return nil, err
	}
	defer wipe(seed)
	_, priv := p.scheme.DeriveKey(seed)
	return priv, nil
}

// Verify checks a pure ML-DSA signature with an empty context. It reports
// false for a key that is not ML-DSA.
func Verify(pub crypto.PublicKey, msg, sig []byte) bool {
	pk, ok := pub.(sign.PublicKey)
	if !ok {
		return false
	}
	p, ok := Of(pk)
	if !ok || len(sig) != p.SignatureSize {
		return false
	}
	return p.scheme.Verify(pk, msg, sig, nil)
}

// ErrNotMLDSA reports a key or certificate of another algorithm.
var ErrNotMLDSA = errors.New("not an ML-DSA key")

// ParsePublicKey parses a DER SubjectPublicKeyInfo holding an ML-DSA key
// (RFC 9881: the algorithm identifier has no parameters).
func ParsePublicKey(spki []byte) (crypto.PublicKey, error) {
	in := cryptobyte.String(spki)
	var seq, alg cryptobyte.String
	var oid asn1.ObjectIdentifier
	var bits asn1.BitString
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() ||
		!seq.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&oid) {
		return nil, errors.New("malformed SubjectPublicKeyInfo")
	}
	p, ok := ByOID(oid)
	if !ok {
		return nil, fmt.Errorf("%w: algorithm %v", ErrNotMLDSA, oid)
	}
	if !alg.Empty() {
		return nil, fmt.Errorf("%s SubjectPublicKeyInfo: algorithm parameters must be absent", p.Name)
	}
	if !seq.ReadASN1BitString(&bits) || !seq.Empty() || bits.BitLength%8 != 0 {
		return nil, fmt.Errorf("%s SubjectPublicKeyInfo: malformed subjectPublicKey", p.Name)
	}
	if len(bits.Bytes) != p.PublicKeySize {
		return nil, fmt.Errorf("%s public key is %d bytes, want %d", p.Name, len(bits.Bytes), p.PublicKeySize)
	}
	return p.scheme.UnmarshalBinaryPublicKey(bits.Bytes)
}

// MarshalPublicKey encodes an ML-DSA public key as a DER SubjectPublicKeyInfo.
func MarshalPublicKey(pub crypto.PublicKey) ([]byte, error) {
	p, ok := Of(pub)
	if !ok {
		return nil, ErrNotMLDSA
	}
	raw, err := pub.(sign.PublicKey).MarshalBinary()
	if err != nil {
		return nil, err
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(AlgorithmIdentifier(p))
		b.AddASN1BitString(raw)
	})
	return b.Bytes()
}

// AlgorithmIdentifier is the DER SEQUENCE { id-ml-dsa-N } (no parameters)
// that names p in certificates, keys and signatures.
func AlgorithmIdentifier(p *Params) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(p.OID) })
	return b.BytesOrPanic()
}

// CertificateKey returns a certificate's public key: cert.PublicKey when
// crypto/x509 parsed it, else the ML-DSA key of its SubjectPublicKeyInfo.
func CertificateKey(cert *x509.Certificate) (crypto.PublicKey, error) {
	if cert.PublicKey != nil {
		return cert.PublicKey, nil
	}
	return ParsePublicKey(cert.RawSubjectPublicKeyInfo)
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}
