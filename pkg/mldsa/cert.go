package mldsa

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// CreateSelfSigned makes a self-signed X.509 certificate for an ML-DSA key
// (RFC 9881: signatureAlgorithm id-ml-dsa-N without parameters, pure ML-DSA
// over the TBSCertificate with an empty context). crypto/x509 encodes
// everything else from template, which must set SubjectKeyId (x509 would
// otherwise derive it from a stand-in key).
func CreateSelfSigned(rnd io.Reader, template *x509.Certificate, priv crypto.Signer) ([]byte, error) {
	p, ok := Of(priv)
	if !ok {
		return nil, ErrNotMLDSA
	}
	if len(template.SubjectKeyId) == 0 {
		return nil, errors.New("ML-DSA certificate template needs a SubjectKeyId")
	}
	spki, err := MarshalPublicKey(priv.Public())
	if err != nil {
		return nil, err
	}
	// crypto/x509 cannot encode an ML-DSA key: let it encode the certificate
	// for a stand-in P-256 key, then put the ML-DSA key and algorithm in.
	stand, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rnd, template, template, stand.Public(), stand)
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	tbs, err := replaceKey(c.RawTBSCertificate, AlgorithmIdentifier(p), spki)
	if err != nil {
		return nil, err
	}
	sig, err := priv.Sign(nil, tbs, crypto.Hash(0))
	if err != nil {
		return nil, fmt.Errorf("%s certificate signature: %w", p.Name, err)
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		b.AddBytes(AlgorithmIdentifier(p))
		b.AddASN1BitString(sig)
	})
	return b.Bytes()
}

// replaceKey rewrites a TBSCertificate's signature algorithm and
// SubjectPublicKeyInfo, keeping every other byte.
func replaceKey(tbs, sigAlg, spki []byte) ([]byte, error) {
	in := cryptobyte.String(tbs)
	var seq, version, serial, alg, issuer, validity, subject, key cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) ||
		!seq.ReadASN1Element(&version, cbasn1.Tag(0).Constructed().ContextSpecific()) ||
		!seq.ReadASN1Element(&serial, cbasn1.INTEGER) ||
		!seq.ReadASN1Element(&alg, cbasn1.SEQUENCE) ||
		!seq.ReadASN1Element(&issuer, cbasn1.SEQUENCE) ||
		!seq.ReadASN1Element(&validity, cbasn1.SEQUENCE) ||
		!seq.ReadASN1Element(&subject, cbasn1.SEQUENCE) ||
		!seq.ReadASN1Element(&key, cbasn1.SEQUENCE) {
		return nil, errors.New("unexpected TBSCertificate from crypto/x509")
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, part := range [][]byte{version, serial, sigAlg, issuer, validity, subject, spki, seq} {
			b.AddBytes(part)
		}
	})
	return b.Bytes()
}

// CheckSelfSigned verifies the ML-DSA signature of a self-signed certificate
// with its own key (crypto/x509 cannot).
func CheckSelfSigned(cert *x509.Certificate) error {
	pub, err := CertificateKey(cert)
	if err != nil {
		return err
	}
	p, ok := Of(pub)
	if !ok {
		return ErrNotMLDSA
	}
	in := cryptobyte.String(cert.Raw)
	var seq, tbs, alg cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1Element(&tbs, cbasn1.SEQUENCE) ||
		!seq.ReadASN1Element(&alg, cbasn1.SEQUENCE) || string(alg) != string(AlgorithmIdentifier(p)) {
		return fmt.Errorf("certificate is not signed with %s", p.Name)
	}
	if !Verify(pub, tbs, cert.Signature) {
		return fmt.Errorf("%s certificate signature does not verify", p.Name)
	}
	return nil
}
