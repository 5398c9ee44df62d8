package mldsa

import (
	"bytes"
	"crypto"
	"crypto/subtle"
	"encoding/asn1"
	"errors"
	"fmt"

	"github.com/cloudflare/circl/sign"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Form is how a PKCS#8 ML-DSA private key holds the key (RFC 9881
// ML-DSA-PrivateKey): OpenSSL 3.5+ reads all three and writes Both.
type Form int

const (
	// Both: SEQUENCE { seed OCTET STRING, expandedKey OCTET STRING }
	// (OpenSSL's default, "seed-priv").
	Both Form = iota
	// SeedOnly: [0] IMPLICIT OCTET STRING, 32 bytes ("seed-only").
	SeedOnly
	// ExpandedOnly: OCTET STRING, the FIPS 204 private key ("priv-only").
	ExpandedOnly
)

func (f Form) String() string {
	switch f {
	case SeedOnly:
		return "seed-only"
	case ExpandedOnly:
		return "priv-only"
	}
	return "seed-priv"
}

// ParsePKCS8 parses an unencrypted PKCS#8 PrivateKeyInfo (or OneAsymmetricKey)
// holding an ML-DSA key in any of the three forms. A key of another
// algorithm gives ErrNotMLDSA. When both a seed and an expanded key are
// present they must agree, as OpenSSL checks.
func ParsePKCS8(der []byte) (crypto.Signer, error) {
	p, inner, err := readPKCS8(der)
	if err != nil {
		return nil, err
	}
	priv, form, err := p.parsePrivateKey(inner)
	if err != nil {
		return nil, fmt.Errorf("%s private key (%s): %w", p.Name, form, err)
	}
	return priv, nil
}

// IsPKCS8 reports whether der is a PKCS#8 key whose algorithm is ML-DSA.
func IsPKCS8(der []byte) bool {
	_, _, err := readPKCS8(der)
	return !errors.Is(err, ErrNotMLDSA)
}

// readPKCS8 returns the parameter set and the privateKey OCTET STRING's content.
func readPKCS8(der []byte) (*Params, cryptobyte.String, error) {
	in := cryptobyte.String(der)
	var seq, alg, inner cryptobyte.String
	var version int64
	var oid asn1.ObjectIdentifier
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() ||
		!seq.ReadASN1Integer(&version) || !seq.ReadASN1(&alg, cbasn1.SEQUENCE) ||
		!alg.ReadASN1ObjectIdentifier(&oid) {
		return nil, nil, fmt.Errorf("%w: malformed PKCS#8", ErrNotMLDSA)
	}
	p, ok := ByOID(oid)
	if !ok {
		return nil, nil, fmt.Errorf("%w: algorithm %v", ErrNotMLDSA, oid)
	}
	if version != 0 && version != 1 {
		return nil, nil, fmt.Errorf("%s PKCS#8: version %d", p.Name, version)
	}
	if !alg.Empty() {
		return nil, nil, fmt.Errorf("%s PKCS#8: algorithm parameters must be absent", p.Name)
	}
	if !seq.ReadASN1(&inner, cbasn1.OCTET_STRING) {
		return nil, nil, fmt.Errorf("%s PKCS#8: no privateKey", p.Name)
	}
	// attributes [0] and publicKey [1] (OneAsymmetricKey) may follow.
	if !seq.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) ||
		!seq.SkipOptionalASN1(cbasn1.Tag(1).ContextSpecific()) || !seq.Empty() {
		return nil, nil, fmt.Errorf("%s PKCS#8: trailing data", p.Name)
	}
	return p, inner, nil
}

func (p *Params) parsePrivateKey(in cryptobyte.String) (crypto.Signer, Form, error) {
	var seed, expanded cryptobyte.String
	var form Form
	switch {
	case in.PeekASN1Tag(cbasn1.Tag(0).ContextSpecific()):
		form = SeedOnly
		if !in.ReadASN1(&seed, cbasn1.Tag(0).ContextSpecific()) || !in.Empty() {
			return nil, form, errors.New("malformed seed")
		}
	case in.PeekASN1Tag(cbasn1.OCTET_STRING):
		form = ExpandedOnly
		if !in.ReadASN1(&expanded, cbasn1.OCTET_STRING) || !in.Empty() {
			return nil, form, errors.New("malformed expandedKey")
		}
	case in.PeekASN1Tag(cbasn1.SEQUENCE):
		var both cryptobyte.String
		if !in.ReadASN1(&both, cbasn1.SEQUENCE) || !in.Empty() ||
			!both.ReadASN1(&seed, cbasn1.OCTET_STRING) || !both.ReadASN1(&expanded, cbasn1.OCTET_STRING) || !both.Empty() {
			return nil, form, errors.New("malformed SEQUENCE { seed, expandedKey }")
		}
	default:
		return nil, form, errors.New("neither seed, expandedKey nor both")
	}
	if seed != nil && len(seed) != SeedSize {
		return nil, form, fmt.Errorf("seed is %d bytes, want %d", len(seed), SeedSize)
	}
	if expanded != nil && len(expanded) != p.ExpandedKeySize {
		return nil, form, fmt.Errorf("expandedKey is %d bytes, want %d", len(expanded), p.ExpandedKeySize)
	}
	if seed == nil {
		priv, err := p.scheme.UnmarshalBinaryPrivateKey(expanded)
		return priv, form, err
	}
	_, priv := p.scheme.DeriveKey(seed)
	if expanded != nil {
		mine, err := priv.MarshalBinary()
		if err != nil {
			return nil, form, err
		}
		defer wipe(mine)
		if subtle.ConstantTimeCompare(mine, expanded) != 1 {
			return nil, form, errors.New("the seed and the expandedKey do not belong together")
		}
	}
	return priv, form, nil
}

// MarshalPKCS8 encodes an ML-DSA private key as PKCS#8 in the given form.
// SeedOnly and Both need a key that kept its seed (from GenerateKey or a
// seed-bearing file).
func MarshalPKCS8(priv crypto.Signer, form Form) ([]byte, error) {
	p, ok := Of(priv)
	if !ok {
		return nil, ErrNotMLDSA
	}
	sk := priv.(sign.PrivateKey)
	expanded, err := sk.MarshalBinary()
	if err != nil {
		return nil, err
	}
	defer wipe(expanded)
	var seed []byte
	if s, ok := sk.(sign.Seeded); ok {
		seed = s.Seed()
	}
	if seed == nil && form != ExpandedOnly {
		return nil, fmt.Errorf("%s key has no seed; only the %s form can hold it", p.Name, ExpandedOnly)
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(0)
		b.AddBytes(AlgorithmIdentifier(p))
		b.AddASN1(cbasn1.OCTET_STRING, func(b *cryptobyte.Builder) {
			switch form {
			case SeedOnly:
				b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(seed) })
			case ExpandedOnly:
				b.AddASN1OctetString(expanded)
			default:
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1OctetString(seed)
					b.AddASN1OctetString(expanded)
				})
			}
		})
	})
	return b.Bytes()
}

// Equal reports whether two ML-DSA public keys are the same key.
func Equal(a, b crypto.PublicKey) bool {
	ka, ok1 := a.(sign.PublicKey)
	kb, ok2 := b.(sign.PublicKey)
	if !ok1 || !ok2 {
		return false
	}
	ra, err1 := ka.MarshalBinary()
	rb, err2 := kb.MarshalBinary()
	return err1 == nil && err2 == nil && bytes.Equal(ra, rb)
}
