package sign

import (
	"bytes"
	"crypto"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"slices"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/mldsa"
)

// mldsaSigner signs with ML-DSA as Linux 7.x verifies it, in one of two forms:
//
//   - no signed attributes (the default): pure ML-DSA, empty context, over the
//     module bytes themselves. Every kernel with CRYPTO_MLDSA accepts it; no
//     released OpenSSL can make it.
//   - signed attributes (contentType, messageDigest): what 7.x's
//     sign-file makes with OpenSSL 3.5+; ML-DSA then signs the attributes.
//     Only kernels built with PKCS7_WAIVE_AUTHATTRS_REJECTION_FOR_MLDSA
//     accept it.
//
// circl's ML-DSA takes the message as one byte slice (its streaming entry
// point is internal), so the default form holds the module in memory once,
// bounded by the module size limit. The signed-attributes form streams the
// module through the digest and signs a few hundred bytes.
type mldsaSigner struct {
	key   crypto.Signer
	p     *mldsa.Params
	h     hashAlg
	attrs bool
	limit int64
}

func (m *mldsaSigner) digest() hashAlg   { return m.h }
func (m *mldsaSigner) algorithm() []byte { return mldsa.AlgorithmIdentifier(m.p) }

func (m *mldsaSigner) sign(module io.Reader) (sig, attrs []byte, err error) {
	var msg []byte
	if m.attrs {
		h := m.h.hash.New()
		if _, err := io.Copy(h, module); err != nil {
			return nil, nil, err
		}
		attrs = signedAttributes(h.Sum(nil))
		msg = attrs
	} else if msg, err = readMessage(module, m.limit); err != nil {
		return nil, nil, err
	}
	// Pure ML-DSA: the signer is handed the message, not a digest.
	sig, err = m.key.Sign(nil, msg, crypto.Hash(0))
	if err != nil {
		return nil, nil, fmt.Errorf("%s signature: %w", m.p.Name, err)
	}
	return sig, attrs, nil
}

// readMessage reads a whole module for pure ML-DSA, at most limit bytes.
func readMessage(r io.Reader, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	if s, ok := r.(interface{ Size() int64 }); ok && s.Size() <= limit {
		buf.Grow(int(s.Size()))
	}
	n, err := buf.ReadFrom(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, fmt.Errorf("module larger than %d bytes, the limit for ML-DSA, which signs the whole module in memory", limit)
	}
	return buf.Bytes(), nil
}

var (
	oidContentType   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidMessageDigest = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
)

// signedAttributes encodes the SET OF Attribute that 7.x's sign-file has
// OpenSSL 3.5+ sign for ML-DSA: contentType data and messageDigest, in DER
// order (sorted by encoding); no signingTime (sign-file passes
// CMS_NO_SIGNING_TIME), no smimeCapabilities (CMS_NOSMIMECAP). Checked
// against sid's sign-file with OpenSSL 3.6 (TestMLDSAOracleSid). The SET tag
// is what is signed; in the SignerInfo it becomes [0] IMPLICIT.
func signedAttributes(digest []byte) []byte {
	attr := func(oid asn1.ObjectIdentifier, value func(b *cryptobyte.Builder)) []byte {
		var b cryptobyte.Builder
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oid)
			b.AddASN1(cbasn1.SET, value)
		})
		return b.BytesOrPanic()
	}
	list := [][]byte{
		attr(oidContentType, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidData) }),
		attr(oidMessageDigest, func(b *cryptobyte.Builder) { b.AddASN1OctetString(digest) }),
	}
	slices.SortFunc(list, bytes.Compare)
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
		for _, a := range list {
			b.AddBytes(a)
		}
	})
	return b.BytesOrPanic()
}

// ErrAuthAttrs reports signed attributes, which kernels refuse for module
// signatures; ML-DSA ones only kernels built with
// PKCS7_WAIVE_AUTHATTRS_REJECTION_FOR_MLDSA accept.
var ErrAuthAttrs = errors.New("signed attributes, which the kernel rejects for module signatures")

// checkAuthAttrs checks signed attributes as the kernel's PKCS#7 code does:
// contentType is data, and messageDigest is the digest of the module. It
// returns what the signature covers: the attributes with their SET tag.
func checkAuthAttrs(raw []byte, h hashAlg, digest []byte) ([]byte, error) {
	in := cryptobyte.String(raw)
	var set cryptobyte.String
	if !in.ReadASN1(&set, cbasn1.Tag(0).Constructed().ContextSpecific()) || !in.Empty() {
		return nil, fmt.Errorf("%w: signed attributes", ErrMalformed)
	}
	var sawType, sawDigest bool
	for !set.Empty() {
		var a, values cryptobyte.String
		var oid asn1.ObjectIdentifier
		if !set.ReadASN1(&a, cbasn1.SEQUENCE) || !a.ReadASN1ObjectIdentifier(&oid) ||
			!a.ReadASN1(&values, cbasn1.SET) || !a.Empty() {
			return nil, fmt.Errorf("%w: signed attribute", ErrMalformed)
		}
		switch {
		case oid.Equal(oidContentType):
			var ct asn1.ObjectIdentifier
			if sawType || !values.ReadASN1ObjectIdentifier(&ct) || !values.Empty() || !ct.Equal(oidData) {
				return nil, fmt.Errorf("%w: contentType attribute is not one data", ErrMalformed)
			}
			sawType = true
		case oid.Equal(oidMessageDigest):
			var md cryptobyte.String
			if sawDigest || !values.ReadASN1(&md, cbasn1.OCTET_STRING) || !values.Empty() {
				return nil, fmt.Errorf("%w: messageDigest attribute", ErrMalformed)
			}
			if !bytes.Equal(md, digest) {
				return nil, fmt.Errorf("%w (the %s messageDigest differs)", ErrBadSignature, h.name)
			}
			sawDigest = true
		}
	}
	if !sawType || !sawDigest {
		return nil, fmt.Errorf("%w: signed attributes lack contentType or messageDigest", ErrMalformed)
	}
	signed := slices.Clone(raw)
	signed[0] = 0x31 // [0] IMPLICIT -> SET OF, as signed
	return signed, nil
}

// isMLDSAOID reports whether oid names an ML-DSA signature.
func isMLDSAOID(oid asn1.ObjectIdentifier) (*mldsa.Params, bool) { return mldsa.ByOID(oid) }
