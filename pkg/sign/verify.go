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
	"slices"

	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/mldsa"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/modfile"
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

// Policy is what the target kernel accepts beyond a valid signature, as its
// configuration says. The zero Policy is a kernel without the ML-DSA waiver
// that has every hash.
type Policy struct {
	// MLDSAAuthAttrs: the kernel is built with
	// PKCS7_WAIVE_AUTHATTRS_REJECTION_FOR_MLDSA and accepts ML-DSA
	// signatures over signed attributes (what sign-file makes with OpenSSL).
	MLDSAAuthAttrs bool
	// NoHash lists digests the kernel lacks (e.g. SHA-1 on 7.x): a signature
	// whose check needs one is ErrUnsupported, as the kernel says ENOPKG.
	NoHash []crypto.Hash
	// NoMLDSA: the kernel lacks CRYPTO_MLDSA and cannot check ML-DSA at all.
	NoMLDSA bool
}

// verifySigned checks every SignerInfo of sd against certs over content, as
// the kernel does (it needs every signer to verify), and returns the
// certificate of the first one. The module is read once; it is held in
// memory only when a signer is pure ML-DSA (bounded by limit).
func verifySigned(sd *signedData, content io.Reader, certs []*x509.Certificate, pol Policy) (*x509.Certificate, error) {
	if sd.hasContent {
		return nil, fmt.Errorf("%w: PKCS#7 carries its content; module signatures are detached", ErrMalformed)
	}
	var jobs []verifyJob
	needMessage := false
	for i := range sd.signers {
		j, err := planVerify(sd, &sd.signers[i], certs, pol)
		if err != nil {
			return nil, err
		}
		needMessage = needMessage || j.pure
		jobs = append(jobs, j)
	}
	// One pass over the module feeds every digest the signers need.
	hashes := map[crypto.Hash]hash.Hash{}
	var writers []io.Writer
	for _, j := range jobs {
		if _, ok := hashes[j.h.hash]; !ok && !j.pure {
			hashes[j.h.hash] = j.h.hash.New()
			writers = append(writers, hashes[j.h.hash])
		}
	}
	var message []byte
	if needMessage {
		var err error
		if message, err = readMessage(content, modfile.DefaultLimit); err != nil {
			return nil, err
		}
		content = bytes.NewReader(message)
	}
	if _, err := io.Copy(io.MultiWriter(writers...), content); err != nil {
		return nil, err
	}
	for _, j := range jobs {
		var err error
		switch {
		case j.mldsa != nil:
			err = verifyMLDSA(j, message, hashes)
		default:
			err = verifyDigest(j.pub, j.si.sigAlgOID, j.si.sigAlgParams, j.h, hashes[j.h.hash].Sum(nil), j.si.signature)
		}
		if err != nil {
			return nil, err
		}
	}
	return jobs[0].cert, nil
}

// A verifyJob is one SignerInfo to check.
type verifyJob struct {
	si    *signerInfo
	h     hashAlg
	cert  *x509.Certificate
	pub   crypto.PublicKey
	mldsa *mldsa.Params // set for an ML-DSA signature
	pure  bool          // ML-DSA over the module itself (no signed attributes)
}

// planVerify checks what can be checked before reading the module.
func planVerify(sd *signedData, si *signerInfo, certs []*x509.Certificate, pol Policy) (verifyJob, error) {
	j := verifyJob{si: si}
	j.mldsa, _ = isMLDSAOID(si.sigAlgOID)
	if si.signedAttrs && j.mldsa == nil {
		return j, fmt.Errorf("%w: %w", ErrMalformed, ErrAuthAttrs)
	}
	if si.signedAttrs && !pol.MLDSAAuthAttrs {
		return j, fmt.Errorf("%w: %w (ML-DSA ones load only on kernels built with PKCS7_WAIVE_AUTHATTRS_REJECTION_FOR_MLDSA)", ErrMalformed, ErrAuthAttrs)
	}
	if j.mldsa != nil && pol.NoMLDSA {
		return j, fmt.Errorf("%w: %s, and the target kernel lacks CRYPTO_MLDSA", ErrUnsupported, j.mldsa.Name)
	}
	j.pure = j.mldsa != nil && !si.signedAttrs
	// RFC 5652 5.1: digestAlgorithms lists each signer's digest. The
	// kernel does not check it; we do, so that no byte of the message
	// can change unnoticed.
	if !containsOID(sd.digestAlgs, si.digestOID) {
		return j, fmt.Errorf("%w: digestAlgorithms does not list the signer's digest %v", ErrMalformed, si.digestOID)
	}
	var ok bool
	j.h, ok = hashByOID(si.digestOID)
	if !ok || !j.h.hash.Available() {
		return j, fmt.Errorf("%w: digest algorithm %v", ErrUnsupported, si.digestOID)
	}
	// Pure ML-DSA computes no digest: the kernel sets its hash to "none".
	if !j.pure && slices.Contains(pol.NoHash, j.h.hash) {
		return j, fmt.Errorf("%w: %s, which the target kernel lacks", ErrUnsupported, j.h.name)
	}
	if j.cert = findCert(si, certs); j.cert == nil {
		return j, fmt.Errorf("%w (%s)", ErrUnknownKey, describeSigner(si))
	}
	var err error
	if j.pub, err = mldsa.CertificateKey(j.cert); err != nil {
		return j, fmt.Errorf("%w: certificate key: %v", ErrUnsupported, err)
	}
	return j, nil
}

// verifyMLDSA checks an ML-DSA signature: over the module (message) or,
// with signed attributes, over them after checking their messageDigest.
func verifyMLDSA(j verifyJob, message []byte, hashes map[crypto.Hash]hash.Hash) error {
	if p, ok := mldsa.Of(j.pub); !ok || p != j.mldsa {
		return fmt.Errorf("%w: %s signature for a %s certificate", ErrUnsupported, j.mldsa.Name, describeKey(j.pub))
	}
	if j.si.sigAlgParams != nil {
		return fmt.Errorf("%w: %s signature algorithm with parameters", ErrMalformed, j.mldsa.Name)
	}
	signed := message
	if !j.pure {
		var err error
		if signed, err = checkAuthAttrs(j.si.attrs, j.h, hashes[j.h.hash].Sum(nil)); err != nil {
			return err
		}
	}
	if !mldsa.Verify(j.pub, signed, j.si.signature) {
		return ErrBadSignature
	}
	return nil
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
