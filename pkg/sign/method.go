package sign

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// A method turns a module's bytes into the signature value of a SignerInfo.
//
// Hash-then-sign algorithms (RSA PKCS#1 v1.5, ECDSA) stream the module through
// a digest and sign that. Pure ML-DSA, as Linux 7.x verifies it, signs the
// module bytes themselves; so a method is handed the module, not a digest,
// and decides itself what to do with it.
type method interface {
	// digest is what SignedData's digestAlgorithms names.
	digest() hashAlg
	// algorithm is the DER signatureAlgorithm AlgorithmIdentifier.
	algorithm() []byte
	// sign returns the signature value over the whole module and, when the
	// signature covers signed attributes instead, their DER SET OF.
	sign(module io.Reader) (sig, attrs []byte, err error)
}

var (
	oidRSAEncryption     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidSHA256WithRSA     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidECDSAWithSHA1     = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 1}
	oidECDSAWithSHA224   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 1}
	oidECDSAWithSHA256   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA384   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSAWithSHA512   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
	oidECDSAWithSHA3_256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 10}
	oidECDSAWithSHA3_384 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 11}
	oidECDSAWithSHA3_512 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 12}
)

var ecdsaSigOIDs = map[crypto.Hash]asn1.ObjectIdentifier{
	crypto.SHA1:     oidECDSAWithSHA1,
	crypto.SHA224:   oidECDSAWithSHA224,
	crypto.SHA256:   oidECDSAWithSHA256,
	crypto.SHA384:   oidECDSAWithSHA384,
	crypto.SHA512:   oidECDSAWithSHA512,
	crypto.SHA3_256: oidECDSAWithSHA3_256,
	crypto.SHA3_384: oidECDSAWithSHA3_384,
	crypto.SHA3_512: oidECDSAWithSHA3_512,
}

// algorithmIdentifier encodes SEQUENCE { oid [, NULL] }.
func algorithmIdentifier(oid asn1.ObjectIdentifier, nullParams bool) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		if nullParams {
			b.AddASN1NULL()
		}
	})
	return b.BytesOrPanic()
}

// digestSigner is hash-then-sign with any crypto.Signer: a key in memory, a
// PKCS#11 token, an agent.
type digestSigner struct {
	key crypto.Signer
	h   hashAlg
	alg []byte
}

// newDigestSigner picks the signature algorithm sign-file would use for key.
func newDigestSigner(key crypto.Signer, h hashAlg) (*digestSigner, error) {
	switch key.Public().(type) {
	case *rsa.PublicKey:
		// sign-file (OpenSSL CMS) names rsaEncryption with a NULL parameter;
		// the kernel refuses sha256WithRSAEncryption and friends.
		return &digestSigner{key, h, algorithmIdentifier(oidRSAEncryption, true)}, nil
	case *ecdsa.PublicKey:
		oid, ok := ecdsaSigOIDs[h.hash]
		if !ok {
			return nil, fmt.Errorf("no ECDSA signature algorithm for %s", h.name)
		}
		return &digestSigner{key, h, algorithmIdentifier(oid, false)}, nil
	default:
		return nil, fmt.Errorf("unsupported key type %T (want RSA, ECDSA or ML-DSA)", key.Public())
	}
}

func (d *digestSigner) digest() hashAlg   { return d.h }
func (d *digestSigner) algorithm() []byte { return d.alg }

func (d *digestSigner) sign(module io.Reader) (sig, attrs []byte, err error) {
	h := d.h.hash.New()
	if _, err := io.Copy(h, module); err != nil {
		return nil, nil, err
	}
	sig, err = d.signDigest(h.Sum(nil))
	return sig, nil, err
}

// digestSigning is a method that signs a digest of the module: the write
// path hashes the module itself, alongside reading and compressing it, and
// hands it the digest.
type digestSigning interface {
	signDigest(digest []byte) ([]byte, error)
}

func (d *digestSigner) signDigest(digest []byte) ([]byte, error) {
	sig, err := d.key.Sign(rand.Reader, digest, d.h.hash)
	if err != nil {
		return nil, fmt.Errorf("%s signature: %w", d.h.name, err)
	}
	return sig, nil
}

// ErrUnsupported reports a signature the kernel cannot check (its answer is
// ENOPKG, which an enforcing kernel turns into "Key was rejected by service").
var ErrUnsupported = errors.New("unsupported signature algorithm")

// verifyDigest checks a hash-then-sign signature the way the kernel would.
// Parameters are checked too (NULL or absent for RSA, absent for ECDSA): the
// kernel ignores them, but no byte of a signature should change unnoticed.
func verifyDigest(pub crypto.PublicKey, sigAlg asn1.ObjectIdentifier, params []byte, h hashAlg, digest, sig []byte) error {
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		if !sigAlg.Equal(oidRSAEncryption) {
			return fmt.Errorf("%w: %v for an RSA key (the kernel takes only rsaEncryption)", ErrUnsupported, sigAlg)
		}
		if params != nil && !bytes.Equal(params, []byte{5, 0}) {
			return fmt.Errorf("%w: rsaEncryption parameters are not NULL", ErrMalformed)
		}
		if err := rsa.VerifyPKCS1v15(pub, h.hash, digest, sig); err != nil {
			return ErrBadSignature
		}
		return nil
	case *ecdsa.PublicKey:
		if !isECDSAOID(sigAlg) {
			return fmt.Errorf("%w: %v for an ECDSA key", ErrUnsupported, sigAlg)
		}
		if !sigAlg.Equal(ecdsaSigOIDs[h.hash]) {
			return fmt.Errorf("%w: %s signature over a %s digest", ErrMalformed, sigAlgName(sigAlg), h.name)
		}
		if params != nil {
			return fmt.Errorf("%w: ECDSA signature algorithm with parameters", ErrMalformed)
		}
		if !ecdsa.VerifyASN1(pub, digest, sig) {
			return ErrBadSignature
		}
		return nil
	default:
		if _, ok := isMLDSAOID(sigAlg); ok {
			return fmt.Errorf("%w: %s signature for a %T certificate key", ErrUnsupported, sigAlgName(sigAlg), pub)
		}
		return fmt.Errorf("%w: certificate key type %T", ErrUnsupported, pub)
	}
}

func isECDSAOID(oid asn1.ObjectIdentifier) bool {
	for _, o := range ecdsaSigOIDs {
		if o.Equal(oid) {
			return true
		}
	}
	return false
}

// sigAlgName names a signature algorithm OID for humans.
func sigAlgName(oid asn1.ObjectIdentifier) string {
	switch {
	case oid.Equal(oidRSAEncryption):
		return "rsaEncryption"
	case oid.Equal(oidSHA256WithRSA):
		return "sha256WithRSAEncryption"
	}
	if p, ok := isMLDSAOID(oid); ok {
		return p.Short
	}
	for h, o := range ecdsaSigOIDs {
		if o.Equal(oid) {
			return "ecdsa-with-" + HashName(h)
		}
	}
	return oid.String()
}
