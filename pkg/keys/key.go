package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/mldsa"
)

// Options control how Open finds a key's passphrase or PIN and what it checks.
type Options struct {
	// Passphrase, if set, is asked first for the passphrase of an encrypted
	// key (or a token's PIN); what names the key, e.g. its path. Returning
	// (nil, nil) means "no answer here": the next source is tried.
	Passphrase func(what string) ([]byte, error)

	// Getenv reads KBUILD_SIGN_PIN, as the kernel's sign-file does;
	// nil means os.Getenv.
	Getenv func(string) string

	// PinFile is the path of a file holding the passphrase or PIN (the
	// config's pin_file). It must be a regular file, mode 0600 or stricter,
	// owned by root when running as root. Trailing newlines are dropped.
	PinFile string

	// PKCS11Module is the PKCS#11 module (.so) for pkcs11: URIs that carry
	// no module-path attribute, e.g. /usr/lib/softhsm/libsofthsm2.so.
	// Either must be an absolute path that passes CheckTrustedPath.
	PKCS11Module string

	// PKCS11Server is the address of a p11-kit server exporting the token
	// (a remote signer reached through a forwarded unix socket): an
	// absolute socket path or a P11_KIT_SERVER_ADDRESS value
	// ("unix:path=/run/...", "vsock:cid=N;port=M"). Opening a pkcs11: key
	// then sets P11_KIT_SERVER_ADDRESS, which p11-kit-client.so reads, and
	// the module defaults to p11-kit-client.so (P11KitClient).
	PKCS11Server string

	// PKCS11Timeout bounds every call into the PKCS#11 module (opening
	// the token, each signature, closing); 0 means DefaultPKCS11Timeout.
	// A call that takes longer gives ErrTokenUnreachable, and the module
	// is not called again while it hangs (see callWithin).
	PKCS11Timeout time.Duration

	// NoPINInURI refuses a pkcs11: URI carrying pin-value: set it when the
	// URI comes from the command line, where every user can read it (ps).
	NoPINInURI bool

	// SkipPermissionCheck turns off the refusal of key and PIN files that
	// group or others can read, or that root does not own, and of PKCS#11
	// modules that fail CheckTrustedPath. For tests only.
	SkipPermissionCheck bool
}

func (o *Options) getenv(name string) string {
	if o.Getenv != nil {
		return o.Getenv(name)
	}
	return os.Getenv(name)
}

// PinEnv is the environment variable the kernel's sign-file reads the key
// passphrase (or token PIN) from.
const PinEnv = "KBUILD_SIGN_PIN"

// Key is an open signing key. It is a crypto.Signer; Close releases a token
// session (a no-op for key files).
type Key struct {
	crypto.Signer
	desc  string
	once  sync.Once
	close func() error
	cerr  error
}

// Description names the key for logs: type, size and where it lives, e.g.
// "RSA-4096 /etc/dkms-sign-hook/signing_key.pem" or
// "ECDSA-P384 pkcs11:token=signing;object=dkms". It never holds a PIN.
func (k *Key) Description() string { return k.desc }

// Close releases the key. It is safe to call more than once.
func (k *Key) Close() error {
	k.once.Do(func() {
		if k.close != nil {
			k.cerr = k.close()
		}
	})
	return k.cerr
}

// Errors to test for with errors.Is.
var (
	// ErrNeedPassphrase: the key is encrypted and no passphrase source answered.
	ErrNeedPassphrase = errors.New("encrypted; set " + PinEnv + " or pin_file")
	// ErrWrongPassphrase: the passphrase or PIN did not unlock the key.
	ErrWrongPassphrase = errors.New("wrong passphrase")
	// ErrTokenUnreachable: a PKCS#11 token did not answer in time, or its
	// p11-kit server cannot be reached (tunnel down, stale socket, server
	// stopped). Like a key on absent removable media, it is "not here
	// now", not a configuration error.
	ErrTokenUnreachable = errors.New("token unreachable")
)

// DefaultPKCS11Timeout bounds each PKCS#11 call when Options.PKCS11Timeout
// is 0: long enough for an ssh handshake and a slow HSM, short enough that
// a hung signer never hangs a DKMS build inside an apt upgrade.
const DefaultPKCS11Timeout = 30 * time.Second

// Timeout is PKCS11Timeout, or DefaultPKCS11Timeout when that is 0.
func (o *Options) Timeout() time.Duration {
	if o.PKCS11Timeout > 0 {
		return o.PKCS11Timeout
	}
	return DefaultPKCS11Timeout
}

// Open opens the signing key named by ref: a pkcs11: URI or the path of a
// PEM private key file.
func Open(ref string, o Options) (*Key, error) {
	if strings.HasPrefix(strings.ToLower(ref), "pkcs11:") {
		return openPKCS11(ref, &o)
	}
	return openPEM(ref, &o)
}

// describe gives "RSA-4096" or "ECDSA-P384" for a public key.
func describe(pub crypto.PublicKey) string {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", p.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA-" + strings.ReplaceAll(p.Curve.Params().Name, "-", "")
	case nil:
		return "unknown key"
	default:
		if m, ok := mldsa.Of(p); ok {
			return m.Name
		}
		return fmt.Sprintf("%T", pub)
	}
}

// passphrase asks each source in turn: callback, KBUILD_SIGN_PIN, pin
// file. It returns ErrNeedPassphrase when none answers.
// The source names where the passphrase came from, for error messages.
func passphrase(o *Options, what string) (p []byte, source string, err error) {
	if o.Passphrase != nil {
		p, err := o.Passphrase(what)
		if err != nil {
			return nil, "", err
		}
		if p != nil {
			return p, "the passphrase callback", nil
		}
	}
	if p := o.getenv(PinEnv); p != "" {
		return []byte(p), PinEnv, nil
	}
	if o.PinFile != "" {
		p, err := readPinFile(o.PinFile, "pin_file", o.SkipPermissionCheck)
		return p, "pin_file " + o.PinFile, err
	}
	return nil, "", ErrNeedPassphrase
}

// readPinFile reads a passphrase or PIN from a file (see readSecret).
// Trailing CR/LF are dropped. what names the setting in errors ("pin_file",
// "pin-source").
func readPinFile(path, what string, skipCheck bool) ([]byte, error) {
	p, err := readSecret(path, what, 4096, skipCheck)
	if err != nil {
		return nil, err
	}
	if len(p) > 4096 {
		return nil, fmt.Errorf("%s %s: too large for a passphrase", what, path)
	}
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	if len(p) == 0 {
		return nil, fmt.Errorf("%s %s: empty", what, path)
	}
	return p, nil
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}
