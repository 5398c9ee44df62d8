package sign

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"slices"

	"golang.org/x/crypto/cryptobyte"

	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/mldsa"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/modfile"
)

// Options choose how a Signer signs.
type Options struct {
	// Hash is the digest algorithm; zero means SHA-512, the kernel's default.
	Hash crypto.Hash
	// KeyID selects how the signature names the certificate.
	KeyID KeyID
	// Limit caps a decompressed module; zero means modfile.DefaultLimit.
	// It also caps a module signed with ML-DSA, which is held in memory.
	Limit int64
	// AuthAttrs signs ML-DSA with signed attributes, the form Linux 7.x's
	// sign-file makes with OpenSSL 3.5+, which only kernels built with
	// PKCS7_WAIVE_AUTHATTRS_REJECTION_FOR_MLDSA load. The default, without
	// them, is pure ML-DSA over the module, which every ML-DSA kernel loads.
	AuthAttrs bool
}

// Signer signs modules with one key and certificate.
type Signer struct {
	cert  *x509.Certificate
	keyID KeyID
	m     method
	limit int64
}

// ErrKeyMismatch reports a private key that does not belong to the certificate.
var ErrKeyMismatch = errors.New("private key does not match the certificate")

// NewSigner checks that key belongs to cert and that the combination is one
// the kernel can verify, before any module is touched.
func NewSigner(key crypto.Signer, cert *x509.Certificate, o Options) (*Signer, error) {
	if o.Hash == 0 {
		o.Hash = crypto.SHA512
	}
	h, ok := hashByHash(o.Hash)
	if !ok || !o.Hash.Available() {
		return nil, fmt.Errorf("unsupported hash %v", o.Hash)
	}
	certKey, err := mldsa.CertificateKey(cert)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(certKey) {
		return nil, ErrKeyMismatch
	}
	if o.KeyID == KeyIDSKID && len(cert.SubjectKeyId) == 0 {
		return nil, errors.New("certificate has no subjectKeyIdentifier; sign with the issuer+serial key id instead")
	}
	if o.Limit == 0 {
		o.Limit = modfile.DefaultLimit
	}
	m, err := newMethod(key, h, o)
	if err != nil {
		return nil, err
	}
	return &Signer{cert: cert, keyID: o.KeyID, m: m, limit: o.Limit}, nil
}

// newMethod picks how key signs: hash-then-sign, or ML-DSA in the form asked.
func newMethod(key crypto.Signer, h hashAlg, o Options) (method, error) {
	p, ok := mldsa.Of(key.Public())
	if !ok {
		if o.AuthAttrs {
			return nil, fmt.Errorf("signed attributes are for ML-DSA keys only: the kernel rejects them with %s", describeKey(key.Public()))
		}
		return newDigestSigner(key, h)
	}
	return &mldsaSigner{key: key, p: p, h: h, attrs: o.AuthAttrs, limit: o.Limit}, nil
}

// AuthAttrs reports whether the signer adds signed attributes (ML-DSA only).
func (s *Signer) AuthAttrs() bool {
	m, ok := s.m.(*mldsaSigner)
	return ok && m.attrs
}

// Algorithm names the signature algorithm, e.g. "rsaEncryption", "mldsa65".
func (s *Signer) Algorithm() string {
	alg := cryptobyte.String(s.m.algorithm())
	oid, _, err := readAlgorithmIdentifier(&alg)
	if err != nil {
		return "unknown"
	}
	return sigAlgName(oid)
}

// describeKey names a public key's algorithm for messages.
func describeKey(pub crypto.PublicKey) string {
	switch pub.(type) {
	case *rsa.PublicKey:
		return "RSA keys"
	case *ecdsa.PublicKey:
		return "ECDSA keys"
	}
	return fmt.Sprintf("%T keys", pub)
}

// Certificate returns the signer's certificate.
func (s *Signer) Certificate() *x509.Certificate { return s.cert }

// Hash returns the digest algorithm's name, e.g. "sha512".
func (s *Signer) Hash() string { return s.m.digest().name }

// KeyID returns the signer id form.
func (s *Signer) KeyID() KeyID { return s.keyID }

// PKCS7 returns the detached PKCS#7 signature of module: what sign-file -d
// writes to <module>.p7s.
func (s *Signer) PKCS7(module io.Reader) ([]byte, error) {
	sig, attrs, err := s.m.sign(module)
	if err != nil {
		return nil, err
	}
	return marshalSignedData(s.cert, s.keyID, s.m.digest().oid, s.m.algorithm(), attrs, sig)
}

// Result says what SignFile did.
type Result struct {
	Path   string
	Format modfile.Format
	// Changed is false when the module already carried exactly one valid
	// signature by this key, hash and key id form, and was left untouched.
	Changed bool
	// Replaced counts the signatures removed before signing.
	Replaced int
	// SHA256 is the digest of the file as it is on disk afterwards.
	SHA256 [sha256.Size]byte
	// P7S is the detached signature (for sign-file -d and -p).
	P7S []byte
}

// SignFile signs the module at path in place. Existing signatures are
// replaced, not stacked; compressed modules are decompressed, signed and
// compressed again in their format. The file is replaced atomically, so it is
// either untouched or completely signed.
func (s *Signer) SignFile(path string) (*Result, error) { return s.SignFileTo(path, path) }

// SignFileTo signs the module src and writes the result to dst, which may be
// src itself (then in place, atomically, keeping mode and owner).
func (s *Signer) SignFileTo(src, dst string) (*Result, error) {
	pr, err := s.prepare(src, dst)
	if err != nil {
		return nil, err
	}
	return pr.res, pr.commit()
}

// prepare signs src into a pending new version of dst, not yet in place.
func (s *Signer) prepare(src, dst string) (*prepared, error) {
	inPlace := src == dst
	m, err := openFile(src, s.limit, inPlace)
	if err != nil {
		return nil, err
	}
	if _, digest := s.m.(digestSigning); m.format == modfile.None || !digest {
		// An uncompressed module's signatures are read in place: one
		// already signed as asked is left alone without writing anything.
		// (A compressed one is scanned first only for ML-DSA, which holds
		// the module in memory anyway; hash-then-sign finds out while
		// writing, see blobMaker.)
		if err := m.scan(); err != nil {
			m.Close()
			return nil, err
		}
		if inPlace && len(m.segs) == 1 && s.alreadySigned(m) {
			return m.unchanged()
		}
	}
	return m.prepare(dst, s.blobMaker(m, inPlace))
}

// blobMaker returns what makes the module's new PKCS#7 signature out of its
// unsigned bytes. Run in place on a compressed module already signed
// exactly as asked, it answers errAlreadySigned instead: that is known only
// once the module has been streamed.
func (s *Signer) blobMaker(m *module, inPlace bool) func(io.Reader) ([]byte, error) {
	return func(r io.Reader) ([]byte, error) {
		ds, ok := s.m.(digestSigning)
		if !ok {
			return s.PKCS7(r)
		}
		h := s.m.digest().hash.New()
		if _, err := io.Copy(h, r); err != nil {
			return nil, err
		}
		digest := h.Sum(nil)
		if inPlace && m.format != modfile.None && len(m.segs) == 1 && s.alreadySignedDigest(m, digest) {
			return nil, errAlreadySigned
		}
		sig, err := ds.signDigest(digest)
		if err != nil {
			return nil, fmt.Errorf("sign %s: %w", m.path, err)
		}
		return marshalSignedData(s.cert, s.keyID, s.m.digest().oid, s.m.algorithm(), nil, sig)
	}
}

// DetachedFile returns the PKCS#7 signature of the module at path, over the
// module without any signature it already carries (sign-file -d).
func (s *Signer) DetachedFile(path string) ([]byte, error) {
	m, err := openModule(path, s.limit, false)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	r, err := m.unsignedReader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	blob, err := s.PKCS7(r)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", path, err)
	}
	return blob, nil
}

// AttachFile appends a PKCS#7 signature made elsewhere (sign-file -s) to the
// module src, replacing any signature it carries, and writes it to dst.
func AttachFile(src, dst string, blob []byte) (*Result, error) {
	if _, err := parseSignedData(blob); err != nil {
		return nil, err
	}
	m, err := openFile(src, modfile.DefaultLimit, src == dst)
	if err != nil {
		return nil, err
	}
	if err := m.scanPlain(); err != nil {
		m.Close()
		return nil, err
	}
	pr, err := m.prepare(dst, func(module io.Reader) ([]byte, error) {
		_, err := io.Copy(io.Discard, module)
		return blob, err
	})
	if err != nil {
		return nil, err
	}
	return pr.res, pr.commit()
}

// alreadySigned reports whether m's only signature is exactly the one this
// signer would make (same certificate, key id form, hash and algorithm, and
// nothing else in the message), it is valid, and a compressed module's
// container is one the kernel's own decompressor takes.
func (s *Signer) alreadySigned(m *module) bool {
	sd, ok := s.sameForm(m)
	if !ok {
		return false
	}
	r, err := m.unsignedReader()
	if err != nil {
		return false
	}
	defer r.Close()
	_, err = verifySigned(sd, r, []*x509.Certificate{s.cert}, Policy{MLDSAAuthAttrs: true})
	return err == nil
}

// alreadySignedDigest is alreadySigned given the digest of the unsigned
// module, computed by the signing pass.
func (s *Signer) alreadySignedDigest(m *module, digest []byte) bool {
	sd, ok := s.sameForm(m)
	if !ok {
		return false
	}
	si := &sd.signers[0]
	return verifyDigest(s.cert.PublicKey, si.sigAlgOID, si.sigAlgParams, s.m.digest(), digest, si.signature) == nil
}

// sameForm reports whether m's only signature has exactly the form this
// signer makes, and returns it parsed.
func (s *Signer) sameForm(m *module) (*signedData, bool) {
	if len(m.segs) != 1 || m.format != modfile.None && !m.container.KernelReady {
		return nil, false
	}
	blob := m.segs[0].Blob
	sd, err := parseSignedData(blob)
	if err != nil || len(sd.signers) != 1 {
		return nil, false
	}
	si := &sd.signers[0]
	if si.signedAttrs != s.AuthAttrs() {
		return nil, false
	}
	var attrs []byte
	if si.signedAttrs {
		attrs = slices.Clone(si.attrs)
		attrs[0] = 0x31
	}
	same, err := marshalSignedData(s.cert, s.keyID, s.m.digest().oid, s.m.algorithm(), attrs, si.signature)
	if err != nil || !bytes.Equal(same, blob) {
		return nil, false
	}
	return sd, true
}
