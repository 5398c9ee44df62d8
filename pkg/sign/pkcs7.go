package sign

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

var (
	oidData       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
)

// KeyID selects how a SignerInfo names the signing certificate.
type KeyID int

const (
	// KeyIDIssuerSerial names the certificate by issuer and serial number
	// (sign-file's default; modinfo shows signer and sig_key).
	KeyIDIssuerSerial KeyID = iota
	// KeyIDSKID names it by its subjectKeyIdentifier (sign-file -k).
	KeyIDSKID
)

func (k KeyID) String() string {
	if k == KeyIDSKID {
		return "skid"
	}
	return "issuer-serial"
}

// signerInfo is one parsed SignerInfo.
type signerInfo struct {
	version      int64
	issuer       []byte // raw DER Name, with serial, for KeyIDIssuerSerial
	serial       *big.Int
	skid         []byte // for KeyIDSKID
	digestOID    asn1.ObjectIdentifier
	sigAlgOID    asn1.ObjectIdentifier
	sigAlgParams []byte // raw parameters, nil when absent
	signedAttrs  bool
	attrs        []byte // the raw [0] signedAttrs element, when present
	signature    []byte
}

func (s *signerInfo) keyID() KeyID {
	if s.skid != nil {
		return KeyIDSKID
	}
	return KeyIDIssuerSerial
}

// signedData is the part of a parsed PKCS#7 message that module signing uses.
type signedData struct {
	version      int64
	digestAlgs   []asn1.ObjectIdentifier
	hasContent   bool // encapsulated content present: not detached
	certificates [][]byte
	signers      []signerInfo
}

// marshalSignedData encodes a ContentInfo{signedData} exactly as sign-file
// does: detached data, no certificates, no CRLs, one SignerInfo without
// attributes (or, for ML-DSA on request, with attrs: the DER SET OF signed
// attributes, written [0] IMPLICIT). sigAlg is a DER AlgorithmIdentifier.
func marshalSignedData(cert *x509.Certificate, keyID KeyID, digestOID asn1.ObjectIdentifier, sigAlg, attrs, signature []byte) ([]byte, error) {
	// SignedData and SignerInfo are v1 with issuer+serial, v3 with a SKID (RFC 5652 5.1, 5.3).
	version := int64(1)
	var sid func(b *cryptobyte.Builder)
	switch keyID {
	case KeyIDSKID:
		if len(cert.SubjectKeyId) == 0 {
			return nil, errors.New("certificate has no subjectKeyIdentifier, which a SKID signer id needs")
		}
		version = 3
		sid = func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(cert.SubjectKeyId) })
		}
	default:
		serial, err := rawSerial(cert)
		if err != nil {
			return nil, err
		}
		sid = func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddBytes(cert.RawIssuer)
				b.AddBytes(serial)
			})
		}
	}
	digestAlg := func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(digestOID) })
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // ContentInfo
		b.AddASN1ObjectIdentifier(oidSignedData)
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SignedData
				b.AddASN1Int64(version)
				b.AddASN1(cbasn1.SET, digestAlg)
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidData) })
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SignerInfo
						b.AddASN1Int64(version)
						sid(b)
						digestAlg(b)
						if attrs != nil {
							b.AddUint8(0xa0) // [0] IMPLICIT SET OF
							b.AddBytes(attrs[1:])
						}
						b.AddBytes(sigAlg)
						b.AddASN1OctetString(signature)
					})
				})
			})
		})
	})
	return b.Bytes()
}

// rawSerial returns the certificate's serialNumber INTEGER exactly as encoded
// in the certificate, so that odd encodings survive (OpenSSL copies it too).
func rawSerial(cert *x509.Certificate) ([]byte, error) {
	tbs := cryptobyte.String(cert.RawTBSCertificate)
	var inner, serial cryptobyte.String
	if !tbs.ReadASN1(&inner, cbasn1.SEQUENCE) ||
		!inner.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) ||
		!inner.ReadASN1Element(&serial, cbasn1.INTEGER) {
		return nil, errors.New("certificate: cannot read serial number")
	}
	return serial, nil
}

// errPKCS7 wraps every PKCS#7 parse failure.
var errPKCS7 = errors.New("malformed PKCS#7")

func pkcs7Errorf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errPKCS7, fmt.Sprintf(format, a...))
}

// parseSignedData parses a DER ContentInfo holding SignedData. It accepts
// what the kernel's PKCS#7 parser accepts for module signatures and never
// panics on hostile input.
func parseSignedData(der []byte) (*signedData, error) {
	input := cryptobyte.String(der)
	var ci, content, sd cryptobyte.String
	var ctype asn1.ObjectIdentifier
	if !input.ReadASN1(&ci, cbasn1.SEQUENCE) {
		return nil, pkcs7Errorf("not a DER SEQUENCE")
	}
	if !input.Empty() {
		return nil, pkcs7Errorf("trailing data after ContentInfo")
	}
	if !ci.ReadASN1ObjectIdentifier(&ctype) {
		return nil, pkcs7Errorf("no content type")
	}
	if !ctype.Equal(oidSignedData) {
		return nil, pkcs7Errorf("content type %v is not signedData", ctype)
	}
	if !ci.ReadASN1(&content, cbasn1.Tag(0).Constructed().ContextSpecific()) || !content.ReadASN1(&sd, cbasn1.SEQUENCE) {
		return nil, pkcs7Errorf("no SignedData")
	}
	out := &signedData{}
	var digestSet, encap cryptobyte.String
	// The kernel takes PKCS#7 (v1) and CMS (v3) SignedData only.
	if !sd.ReadASN1Integer(&out.version) || (out.version != 1 && out.version != 3) {
		return nil, pkcs7Errorf("SignedData version must be 1 or 3")
	}
	if !sd.ReadASN1(&digestSet, cbasn1.SET) {
		return nil, pkcs7Errorf("digestAlgorithms")
	}
	for !digestSet.Empty() {
		oid, _, err := readAlgorithmIdentifier(&digestSet)
		if err != nil {
			return nil, pkcs7Errorf("digestAlgorithms: %v", err)
		}
		out.digestAlgs = append(out.digestAlgs, oid)
	}
	if !sd.ReadASN1(&encap, cbasn1.SEQUENCE) {
		return nil, pkcs7Errorf("encapContentInfo")
	}
	var etype asn1.ObjectIdentifier
	if !encap.ReadASN1ObjectIdentifier(&etype) || !etype.Equal(oidData) {
		return nil, pkcs7Errorf("encapsulated content is not data")
	}
	out.hasContent = !encap.Empty()
	certs, err := readCertificates(&sd)
	if err != nil {
		return nil, err
	}
	out.certificates = certs
	if !sd.SkipOptionalASN1(cbasn1.Tag(1).Constructed().ContextSpecific()) { // crls
		return nil, pkcs7Errorf("crls")
	}
	var signers cryptobyte.String
	if !sd.ReadASN1(&signers, cbasn1.SET) {
		return nil, pkcs7Errorf("signerInfos")
	}
	if !sd.Empty() {
		return nil, pkcs7Errorf("trailing data in SignedData")
	}
	for !signers.Empty() {
		si, err := parseSignerInfo(&signers)
		if err != nil {
			return nil, err
		}
		out.signers = append(out.signers, *si)
	}
	if len(out.signers) == 0 {
		return nil, pkcs7Errorf("no signer")
	}
	return out, nil
}

// readCertificates reads SignedData's optional [0] certificates. The
// kernel parses every certificate carried, and a bad one fails the load.
func readCertificates(sd *cryptobyte.String) ([][]byte, error) {
	var certs cryptobyte.String
	var hasCerts bool
	if !sd.ReadOptionalASN1(&certs, &hasCerts, cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return nil, pkcs7Errorf("certificates")
	}
	var out [][]byte
	for hasCerts && !certs.Empty() {
		var c cryptobyte.String
		if !certs.ReadASN1Element(&c, cbasn1.SEQUENCE) {
			return nil, pkcs7Errorf("certificate")
		}
		if _, err := x509.ParseCertificate(c); err != nil {
			return nil, pkcs7Errorf("embedded certificate: %v", err)
		}
		out = append(out, c)
	}
	return out, nil
}

func parseSignerInfo(s *cryptobyte.String) (*signerInfo, error) {
	var in cryptobyte.String
	if !s.ReadASN1(&in, cbasn1.SEQUENCE) {
		return nil, pkcs7Errorf("SignerInfo")
	}
	si := &signerInfo{}
	if !in.ReadASN1Integer(&si.version) {
		return nil, pkcs7Errorf("SignerInfo version")
	}
	switch {
	case in.PeekASN1Tag(cbasn1.SEQUENCE):
		var ias cryptobyte.String
		var issuer cryptobyte.String
		si.serial = new(big.Int)
		if !in.ReadASN1(&ias, cbasn1.SEQUENCE) || !ias.ReadASN1Element(&issuer, cbasn1.SEQUENCE) ||
			!ias.ReadASN1Integer(si.serial) || !ias.Empty() {
			return nil, pkcs7Errorf("issuerAndSerialNumber")
		}
		si.issuer = issuer
	case in.PeekASN1Tag(cbasn1.Tag(0).ContextSpecific()):
		var skid cryptobyte.String
		if !in.ReadASN1(&skid, cbasn1.Tag(0).ContextSpecific()) || len(skid) == 0 {
			return nil, pkcs7Errorf("subjectKeyIdentifier")
		}
		si.skid = skid
	default:
		return nil, pkcs7Errorf("unknown signer identifier")
	}
	// As the kernel checks: v1 names issuer+serial, v3 a SKID (RFC 5652 5.3).
	if (si.version == 1) != (si.skid == nil) || (si.version != 1 && si.version != 3) {
		return nil, pkcs7Errorf("SignerInfo version %d does not match its signer identifier", si.version)
	}
	var err error
	if si.digestOID, _, err = readAlgorithmIdentifier(&in); err != nil {
		return nil, pkcs7Errorf("digestAlgorithm: %v", err)
	}
	if in.PeekASN1Tag(cbasn1.Tag(0).Constructed().ContextSpecific()) {
		var attrs cryptobyte.String
		if !in.ReadASN1Element(&attrs, cbasn1.Tag(0).Constructed().ContextSpecific()) {
			return nil, pkcs7Errorf("signedAttrs")
		}
		si.signedAttrs, si.attrs = true, attrs
	}
	if si.sigAlgOID, si.sigAlgParams, err = readAlgorithmIdentifier(&in); err != nil {
		return nil, pkcs7Errorf("signatureAlgorithm: %v", err)
	}
	var sig cryptobyte.String
	if !in.ReadASN1(&sig, cbasn1.OCTET_STRING) {
		return nil, pkcs7Errorf("signature")
	}
	si.signature = sig
	if !in.SkipOptionalASN1(cbasn1.Tag(1).Constructed().ContextSpecific()) || !in.Empty() {
		return nil, pkcs7Errorf("trailing data in SignerInfo")
	}
	return si, nil
}

// readAlgorithmIdentifier reads SEQUENCE { OID, params OPTIONAL } and returns
// the raw parameters (nil when absent).
func readAlgorithmIdentifier(s *cryptobyte.String) (asn1.ObjectIdentifier, []byte, error) {
	var ai cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !s.ReadASN1(&ai, cbasn1.SEQUENCE) || !ai.ReadASN1ObjectIdentifier(&oid) {
		return nil, nil, errors.New("bad AlgorithmIdentifier")
	}
	if ai.Empty() {
		return oid, nil, nil
	}
	var params cryptobyte.String
	var tag cbasn1.Tag
	if !ai.ReadAnyASN1Element(&params, &tag) || !ai.Empty() {
		return nil, nil, errors.New("bad AlgorithmIdentifier parameters")
	}
	return oid, params, nil
}
