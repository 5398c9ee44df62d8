package sign

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/big"
)

// Verdicts of Verify, to test with errors.Is.
var (
	// ErrUnsigned: no signature is appended.
	ErrUnsigned = errors.New("module is not signed")
	// ErrUnknownKey: signed, but by none of the given certificates.
	ErrUnknownKey = errors.New("signed by an unknown key")
	// ErrBadSignature: the signature does not match the module (tampered).
	ErrBadSignature = errors.New("signature does not match the module")
	// ErrMalformed: the trailer or the PKCS#7 message is not well formed.
	ErrMalformed = errors.New("malformed signature")
)

// verifySigned checks every SignerInfo of sd against certs over content, as
// the kernel does (it needs every signer to verify), and returns the
// certificate of the first one.
func verifySigned(sd *signedData, content io.Reader, certs []*x509.Certificate) (*x509.Certificate, error) {
	if sd.hasContent {
		return nil, fmt.Errorf("%w: PKCS#7 carries its content; module signatures are detached", ErrMalformed)
	}
	type job struct {
		si   *signerInfo
		h    hashAlg
		cert *x509.Certificate
	}
	var jobs []job
	for i := range sd.signers {
		si := &sd.signers[i]
		if si.signedAttrs {
			return nil, fmt.Errorf("%w: signed attributes, which the kernel rejects for modules", ErrMalformed)
		}
		// RFC 5652 5.1: digestAlgorithms lists each signer's digest. The
		// kernel does not check it; we do, so that no byte of the message
		// can change unnoticed.
		if !containsOID(sd.digestAlgs, si.digestOID) {
			return nil, fmt.Errorf("%w: digestAlgorithms does not list the signer's digest %v", ErrMalformed, si.digestOID)
		}
		h, ok := hashByOID(si.digestOID)
		if !ok || !h.hash.Available() {
			return nil, fmt.Errorf("%w: digest algorithm %v", ErrUnsupported, si.digestOID)
		}
		cert := findCert(si, certs)
		if cert == nil {
			return nil, fmt.Errorf("%w (%s)", ErrUnknownKey, describeSigner(si))
		}
		jobs = append(jobs, job{si, h, cert})
	}
	// One pass over the module feeds every digest the signers need.
	hashes := map[crypto.Hash]hash.Hash{}
	var writers []io.Writer
	for _, j := range jobs {
		if _, ok := hashes[j.h.hash]; !ok {
			hashes[j.h.hash] = j.h.hash.New()
			writers = append(writers, hashes[j.h.hash])
		}
	}
	if _, err := io.Copy(io.MultiWriter(writers...), content); err != nil {
		return nil, err
	}
	for _, j := range jobs {
		if err := verifyDigest(j.cert.PublicKey, j.si.sigAlgOID, j.si.sigAlgParams, j.h, hashes[j.h.hash].Sum(nil), j.si.signature); err != nil {
			return nil, err
		}
	}
	return jobs[0].cert, nil
}

// findCert returns the certificate a SignerInfo names, or nil.
func findCert(si *signerInfo, certs []*x509.Certificate) *x509.Certificate {
	for _, c := range certs {
		if si.skid != nil {
			if bytes.Equal(si.skid, c.SubjectKeyId) {
				return c
			}
			continue
		}
		if bytes.Equal(si.issuer, c.RawIssuer) && si.serial.Cmp(c.SerialNumber) == 0 {
			return c
		}
	}
	return nil
}

func describeSigner(si *signerInfo) string {
	if si.skid != nil {
		return "subjectKeyIdentifier " + hexColon(si.skid)
	}
	return fmt.Sprintf("issuer %q serial %s", issuerCN(si.issuer), hexColon(serialBytes(si.serial)))
}

func serialBytes(n *big.Int) []byte {
	if n.Sign() == 0 {
		return []byte{0}
	}
	return n.Bytes()
}

func containsOID(list []asn1.ObjectIdentifier, oid asn1.ObjectIdentifier) bool {
	for _, o := range list {
		if o.Equal(oid) {
			return true
		}
	}
	return false
}
