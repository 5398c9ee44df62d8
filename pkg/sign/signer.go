package sign

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/modfile"
)

// Options choose how a Signer signs.
type Options struct {
	// Hash is the digest algorithm; zero means SHA-512, the kernel's default.
	Hash crypto.Hash
	// KeyID selects how the signature names the certificate.
	KeyID KeyID
	// Limit caps a decompressed module; zero means modfile.DefaultLimit.
	Limit int64
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
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, ErrKeyMismatch
	}
	if o.KeyID == KeyIDSKID && len(cert.SubjectKeyId) == 0 {
		return nil, errors.New("certificate has no subjectKeyIdentifier; sign with the issuer+serial key id instead")
	}
	m, err := newDigestSigner(key, h)
	if err != nil {
		return nil, err
	}
	if o.Limit == 0 {
		o.Limit = modfile.DefaultLimit
	}
	return &Signer{cert: cert, keyID: o.KeyID, m: m, limit: o.Limit}, nil
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
	sig, err := s.m.sign(module)
	if err != nil {
		return nil, err
	}
	return marshalSignedData(s.cert, s.keyID, s.m.digest().oid, s.m.algorithm(), sig)
}

// Signature returns what sign-file appends to an unsigned module: the PKCS#7
// blob, struct module_signature and the magic string.
func (s *Signer) Signature(module io.Reader) ([]byte, error) {
	blob, err := s.PKCS7(module)
	if err != nil {
		return nil, err
	}
	return append(blob, Trailer(len(blob))...), nil
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
	m, err := openModule(src, s.limit)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	if src == dst && len(m.segs) == 1 && s.alreadySigned(m) {
		res := &Result{Path: dst, Format: m.format, P7S: m.segs[0].Blob}
		res.SHA256, err = fileSHA256(src)
		return res, err
	}
	blob, err := s.PKCS7(io.NewSectionReader(m.content, 0, m.unsignedLen()))
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", src, err)
	}
	return m.writeSigned(dst, blob)
}

// DetachedFile returns the PKCS#7 signature of the module at path, over the
// module without any signature it already carries (sign-file -d).
func (s *Signer) DetachedFile(path string) ([]byte, error) {
	m, err := openModule(path, s.limit)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	blob, err := s.PKCS7(io.NewSectionReader(m.content, 0, m.unsignedLen()))
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
	m, err := openModule(src, modfile.DefaultLimit)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	return m.writeSigned(dst, blob)
}

// writeSigned writes the module's unsigned bytes, blob and the trailer to
// dst, compressed as the source was; atomically.
func (m *module) writeSigned(dst string, blob []byte) (*Result, error) {
	res := &Result{Path: dst, Format: m.format, Changed: true, Replaced: len(m.segs), P7S: blob}
	unsigned := m.unsignedLen()
	tail := append(append([]byte{}, blob...), Trailer(len(blob))...)
	write := func(w io.Writer) error {
		sum := sha256.New()
		w = io.MultiWriter(w, sum)
		if m.format == modfile.None {
			if _, err := io.Copy(w, io.NewSectionReader(m.content, 0, unsigned)); err != nil {
				return err
			}
			if _, err := w.Write(tail); err != nil {
				return err
			}
		} else {
			signed := append(m.data[:unsigned:unsigned], tail...)
			if err := modfile.Compress(w, signed, m.format); err != nil {
				return fmt.Errorf("compress: %w", err)
			}
		}
		copy(res.SHA256[:], sum.Sum(nil))
		return nil
	}
	var err error
	if dst == m.path {
		err = modfile.Replace(dst, write)
	} else {
		err = modfile.Create(dst, m.mode, write)
	}
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", dst, err)
	}
	return res, nil
}

// alreadySigned reports whether m's only signature is a valid one that this
// signer would make again (same certificate, key id form, hash, algorithm).
func (s *Signer) alreadySigned(m *module) bool {
	sd, err := parseSignedData(m.segs[0].Blob)
	if err != nil || len(sd.signers) != 1 {
		return false
	}
	si := &sd.signers[0]
	if si.keyID() != s.keyID || !si.digestOID.Equal(s.m.digest().oid) {
		return false
	}
	alg, params, err := readAlgorithmIdentifierBytes(s.m.algorithm())
	if err != nil || !si.sigAlgOID.Equal(alg) || !bytes.Equal(si.sigAlgParams, params) {
		return false
	}
	_, err = verifySigned(sd, io.NewSectionReader(m.content, 0, m.unsignedLen()), []*x509.Certificate{s.cert})
	return err == nil
}

func fileSHA256(path string) ([sha256.Size]byte, error) {
	var out [sha256.Size]byte
	f, err := os.Open(path)
	if err != nil {
		return out, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return out, err
	}
	copy(out[:], h.Sum(nil))
	return out, nil
}
