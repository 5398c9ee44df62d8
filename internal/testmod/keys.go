package testmod

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
)

// KeyPair is a private key and self-signed certificate made by openssl.
type KeyPair struct {
	Name string // e.g. "rsa2048"
	Key  string // PEM private key, mode 0600
	Cert string // PEM certificate with a subjectKeyIdentifier
	DER  string // the same certificate, DER
}

// KeySpecs are the key types the tests cover: openssl genpkey arguments.
var KeySpecs = map[string][]string{
	"rsa2048": {"-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"},
	"rsa4096": {"-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:4096"},
	"p256":    {"-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"},
	"p384":    {"-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"},
}

// reqConfig makes the test certificates: a code-signing leaf with a
// subjectKeyIdentifier (and nothing from the system's openssl.cnf).
const reqConfig = `[req]
distinguished_name = dn
x509_extensions = leaf
prompt = no
[dn]
CN = unused
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = digitalSignature
extendedKeyUsage = codeSigning
subjectKeyIdentifier = hash
`

var keyCache struct {
	sync.Mutex
	dir   string
	pairs map[string]*KeyPair
}

// Key returns a key pair of the named spec, generated once per test binary.
func Key(t testing.TB, name string) *KeyPair {
	t.Helper()
	keyCache.Lock()
	defer keyCache.Unlock()
	if kp, ok := keyCache.pairs[name]; ok {
		return kp
	}
	openssl, err := exec.LookPath("openssl")
	testenv.Require(t, err == nil, "openssl (apt-get install openssl)")
	if keyCache.dir == "" {
		d, err := os.MkdirTemp("", "dsh-testkeys-")
		if err != nil {
			t.Fatal(err)
		}
		keyCache.dir, keyCache.pairs = d, map[string]*KeyPair{}
	}
	kp := &KeyPair{
		Name: name,
		Key:  filepath.Join(keyCache.dir, name+".key"),
		Cert: filepath.Join(keyCache.dir, name+".crt"),
		DER:  filepath.Join(keyCache.dir, name+".der"),
	}
	spec, ok := KeySpecs[name]
	if !ok {
		t.Fatalf("unknown key spec %q", name)
	}
	Run(t, openssl, append([]string{"genpkey", "-out", kp.Key}, spec...)...)
	if err := os.Chmod(kp.Key, 0o600); err != nil {
		t.Fatal(err)
	}
	// A configuration of its own: with -addext, OpenSSL 1.1.1 (Debian 11)
	// also adds its default v3_ca extensions, and a certificate with two
	// basicConstraints is refused by Go's x509 parser.
	cnf := filepath.Join(keyCache.dir, "req.cnf")
	if err := os.WriteFile(cnf, []byte(reqConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	Run(t, openssl, "req", "-new", "-x509", "-config", cnf, "-key", kp.Key, "-out", kp.Cert, "-days", "3650",
		"-subj", "/O=dkms-sign-hook tests/CN=test key "+name)
	Run(t, openssl, "x509", "-in", kp.Cert, "-outform", "DER", "-out", kp.DER)
	keyCache.pairs[name] = kp
	return kp
}
