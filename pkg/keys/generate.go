package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/mldsa"
	"github.com/youmark/pkcs8"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/atomicfile"
)

// GenerateOptions describe a new signing key and its certificate. Zero
// values give the kernel's defaults (certs/default_x509.genkey): RSA-4096,
// valid for 36500 days.
type GenerateOptions struct {
	Type       string // "rsa" (default), "ecdsa", or "mldsa44", "mldsa65", "mldsa87" (Linux 7.0+)
	Bits       int    // RSA modulus size; default 4096, at least 2048
	Curve      string // ECDSA curve: "P-384" (default) or "P-256"
	CommonName string // subject CN; required
	Days       int    // validity; default 36500

	// Passphrase, if not nil, encrypts the private key (PKCS#8, PBES2 with
	// AES-256-CBC and PBKDF2-HMAC-SHA256, as openssl genpkey -aes256).
	Passphrase []byte

	Now  time.Time // default time.Now()
	Rand io.Reader // default crypto/rand
}

// DefaultDays is the kernel's x509.genkey validity: about 100 years.
const DefaultDays = 36500

// Generated is a new key pair: the signer, its PEM encoding and the
// self-signed certificate.
type Generated struct {
	Signer  crypto.Signer
	KeyPEM  []byte // PKCS#8 "PRIVATE KEY" or "ENCRYPTED PRIVATE KEY"
	CertDER []byte
	Cert    *x509.Certificate
}

// CertPEM is the certificate as PEM.
func (g *Generated) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: g.CertDER})
}

// OIDExtKeyUsageModuleSigning is the extended key usage "module signing
// only" (1.3.6.1.4.1.2312.16.1.2). shim will not verify boot loaders or
// kernels with a certificate that has it, so a module signing key enrolled
// as a MOK cannot also sign something shim boots; the kernel ignores it.
var OIDExtKeyUsageModuleSigning = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 2312, 16, 1, 2}

// Generate makes a private key and a self-signed module signing certificate
// with basicConstraints CA:FALSE (critical), keyUsage digitalSignature,
// extendedKeyUsage codeSigning and module-signing-only (which keeps shim
// from booting anything signed with it), and subject and authority key
// identifiers.
func Generate(o GenerateOptions) (*Generated, error) {
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.Days == 0 {
		o.Days = DefaultDays
	}
	if o.Days < 1 || o.Days > 100000 {
		return nil, fmt.Errorf("days %d: want 1 to 100000", o.Days)
	}
	if o.CommonName == "" || len(o.CommonName) > 64 || !utf8.ValidString(o.CommonName) {
		return nil, errors.New("common name: want 1 to 64 bytes of UTF-8")
	}
	signer, err := generateKey(o)
	if err != nil {
		return nil, err
	}
	spki, err := marshalPublicKey(signer.Public())
	if err != nil {
		return nil, err
	}
	skid, err := subjectKeyID(spki)
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial(o.Rand)
	if err != nil {
		return nil, err
	}
	notBefore := o.Now.UTC().Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: o.CommonName},
		NotBefore:             notBefore,
		NotAfter:              notBefore.AddDate(0, 0, o.Days),
		BasicConstraintsValid: true,
		IsCA:                  false,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		UnknownExtKeyUsage:    []asn1.ObjectIdentifier{OIDExtKeyUsageModuleSigning},
		SubjectKeyId:          skid,
		AuthorityKeyId:        skid,
	}
	der, err := createCertificate(o.Rand, tmpl, signer)
	if err != nil {
		return nil, fmt.Errorf("create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := pkcs8Key(signer, o)
	if err != nil {
		return nil, err
	}
	typ := "PRIVATE KEY"
	if o.Passphrase != nil {
		typ = "ENCRYPTED PRIVATE KEY"
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: keyDER})
	wipe(keyDER)
	return &Generated{Signer: signer, KeyPEM: keyPEM, CertDER: der, Cert: cert}, nil
}

func generateKey(o GenerateOptions) (crypto.Signer, error) {
	switch o.Type {
	case "", "rsa":
		bits := o.Bits
		if bits == 0 {
			bits = 4096
		}
		if bits < 2048 || bits > 16384 {
			return nil, fmt.Errorf("rsa bits %d: want 2048 to 16384", bits)
		}
		if o.Curve != "" {
			return nil, errors.New("a curve is for ecdsa keys, not rsa")
		}
		return rsa.GenerateKey(o.Rand, bits)
	case "ecdsa":
		if o.Bits != 0 {
			return nil, errors.New("bits are for rsa keys; ecdsa takes a curve")
		}
		var curve elliptic.Curve
		switch o.Curve {
		case "", "P-384":
			curve = elliptic.P384()
		case "P-256":
			curve = elliptic.P256()
		default:
			return nil, fmt.Errorf("curve %q: want P-256 or P-384 (the kernel verifies NIST P-256 and P-384)", o.Curve)
		}
		return ecdsa.GenerateKey(curve, o.Rand)
	default:
		p, ok := mldsa.ByName(o.Type)
		if !ok {
			return nil, fmt.Errorf("key type %q: want rsa, ecdsa, mldsa44, mldsa65 or mldsa87", o.Type)
		}
		if o.Bits != 0 || o.Curve != "" {
			return nil, fmt.Errorf("%s keys take neither bits nor a curve", p.Short)
		}
		return p.GenerateKey(o.Rand)
	}
}

// marshalPublicKey is x509.MarshalPKIXPublicKey, ML-DSA included.
func marshalPublicKey(pub crypto.PublicKey) ([]byte, error) {
	if _, ok := mldsa.Of(pub); ok {
		return mldsa.MarshalPublicKey(pub)
	}
	return x509.MarshalPKIXPublicKey(pub)
}

// createCertificate self-signs tmpl with signer, ML-DSA included.
func createCertificate(rnd io.Reader, tmpl *x509.Certificate, signer crypto.Signer) ([]byte, error) {
	if _, ok := mldsa.Of(signer); ok {
		return mldsa.CreateSelfSigned(rnd, tmpl, signer)
	}
	return x509.CreateCertificate(rnd, tmpl, tmpl, signer.Public(), signer)
}

func pkcs8Key(signer crypto.Signer, o GenerateOptions) ([]byte, error) {
	if _, ok := mldsa.Of(signer); ok {
		// What OpenSSL 3.5+ writes by default: seed and expanded key,
		// encrypted as its genpkey -aes256 does.
		der, err := mldsa.MarshalPKCS8(signer, mldsa.Both)
		if err != nil || o.Passphrase == nil {
			return der, err
		}
		defer wipe(der)
		if len(o.Passphrase) == 0 {
			return nil, errors.New("empty passphrase")
		}
		return encryptPBES2(der, o.Passphrase, o.Rand, 600000)
	}
	if o.Passphrase == nil {
		return x509.MarshalPKCS8PrivateKey(signer)
	}
	if len(o.Passphrase) == 0 {
		return nil, errors.New("empty passphrase")
	}
	return pkcs8.MarshalPrivateKey(signer, o.Passphrase, &pkcs8.Opts{
		Cipher: pkcs8.AES256CBC,
		KDFOpts: pkcs8.PBKDF2Opts{
			SaltSize: 16, IterationCount: 600000, HMACHash: crypto.SHA256,
		},
	})
}

// subjectKeyID is RFC 5280's method 1, as openssl's subjectKeyIdentifier=hash:
// SHA-1 of the subjectPublicKey BIT STRING.
func subjectKeyID(spki []byte) ([]byte, error) {
	var info struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(spki, &info); err != nil {
		return nil, err
	}
	sum := sha1.Sum(info.PublicKey.Bytes)
	return sum[:], nil
}

// randomSerial is a positive 127-bit serial number.
func randomSerial(r io.Reader) (*big.Int, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	b[0] &= 0x7f
	b[0] |= 0x40 // keep 16 bytes: no leading zero
	return new(big.Int).SetBytes(b), nil
}

// KeyPairFiles are where WriteKeyPair puts a generated key pair.
type KeyPairFiles struct {
	Dir     string
	Key     string // DIR/signing_key.pem, mode 0600
	CertPEM string // DIR/signing_key.x509, PEM
	CertDER string // DIR/signing_key.der, DER: what mokutil --import takes
}

// KeyPairPaths names the files of a key pair in dir.
func KeyPairPaths(dir string) KeyPairFiles {
	return KeyPairFiles{
		Dir:     dir,
		Key:     filepath.Join(dir, "signing_key.pem"),
		CertPEM: filepath.Join(dir, "signing_key.x509"),
		CertDER: filepath.Join(dir, "signing_key.der"),
	}
}

// ErrExists: WriteKeyPair never replaces an existing key or certificate.
var ErrExists = errors.New("already exists; refusing to overwrite a signing key")

// WriteKeyPair writes g into dir (created 0700 if missing): the key 0600,
// the certificates 0644. It refuses a dir others can write and any existing
// file, and each file appears complete or not at all.
func WriteKeyPair(dir string, g *Generated) (KeyPairFiles, error) {
	f := KeyPairPaths(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return f, fmt.Errorf("key directory: %w", err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return f, fmt.Errorf("key directory: %w", err)
	}
	if !st.IsDir() {
		return f, fmt.Errorf("key directory %s: not a directory", dir)
	}
	if perm := st.Mode().Perm(); perm&0o022 != 0 {
		return f, &PermissionError{Path: dir, Reason: fmt.Sprintf("mode %04o lets group or others replace files in it", perm), Fix: "chmod 700 " + dir}
	}
	for _, p := range []string{f.Key, f.CertPEM, f.CertDER} {
		if _, err := os.Lstat(p); err == nil {
			return f, fmt.Errorf("%s: %w", p, ErrExists)
		} else if !errors.Is(err, os.ErrNotExist) {
			return f, err
		}
	}
	files := []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{f.Key, g.KeyPEM, 0o600},
		{f.CertPEM, g.CertPEM(), 0o644},
		{f.CertDER, g.CertDER, 0o644},
	}
	for i, w := range files {
		if err := WriteNewFile(w.path, w.data, w.mode); err != nil {
			for _, done := range files[:i] {
				os.Remove(done.path)
			}
			return f, err
		}
	}
	return f, syncDir(dir)
}

// WriteNewFile writes a new file atomically (atomicfile.CreateNew), failing
// with ErrExists rather than replace an existing file.
func WriteNewFile(path string, data []byte, mode os.FileMode) error {
	err := atomicfile.CreateNew(path, data, mode)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s: %w", path, ErrExists)
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
