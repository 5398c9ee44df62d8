// Package signkey opens the signing key and certificate that a command line
// or the configuration names, as a sign.Signer: the certificate loaded, the
// key opened (file or token), and both checked to belong together before
// any module is touched.
package signkey

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/config"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/mldsa"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
)

// Spec names a key and certificate and how to sign with them.
type Spec struct {
	Key, Cert, Hash string
	KeyID           sign.KeyID
	AuthAttrs       bool // ML-DSA with signed attributes
	PinFile         string
	PKCS11Module    string
	PKCS11Server    string
	PKCS11Timeout   time.Duration
	// Passphrase asks for a passphrase or PIN when KBUILD_SIGN_PIN and the
	// pin file do not answer (keys.Options.Passphrase); nil never asks.
	Passphrase func(what string) ([]byte, error)
	// Getenv reads KBUILD_SIGN_PIN; nil means os.Getenv.
	Getenv func(string) string
	// Warn receives warnings (a weak hash); nil drops them.
	Warn func(msg string)
}

// FromConfig is the configured key and certificate, signing with hash.
func FromConfig(cfg *config.Config, hash string) Spec {
	s := Spec{Key: cfg.Key, Cert: cfg.Certificate, Hash: hash}
	s.UseConfig(cfg)
	if cfg.KeyID == config.KeyIDSKID {
		s.KeyID = sign.KeyIDSKID
	}
	return s
}

// UseConfig takes the PIN file, the PKCS#11 settings and authattrs from the
// configuration.
func (s *Spec) UseConfig(cfg *config.Config) {
	s.PinFile, s.PKCS11Module = cfg.PinFile, cfg.PKCS11Module
	s.PKCS11Server, s.PKCS11Timeout = cfg.PKCS11Server, cfg.PKCS11Timeout
	s.AuthAttrs = cfg.AuthAttrs == "yes"
}

// MismatchError: the key is not the certificate's.
type MismatchError struct{ Key, Cert string }

func (e *MismatchError) Error() string {
	return fmt.Sprintf("key %s does not match certificate %s", e.Key, e.Cert)
}

// Open loads the certificate, opens the key and checks they belong
// together. The returned close releases a token session.
func Open(s Spec) (*sign.Signer, func(), error) {
	h, err := sign.ParseHash(s.Hash)
	if err != nil {
		return nil, nil, err
	}
	if sign.IsWeakHash(h) && s.Warn != nil {
		s.Warn(s.Hash + " is a weak hash; prefer sha256 or stronger")
	}
	cert, err := keys.LoadCertificate(s.Cert)
	if err != nil {
		return nil, nil, nameIn(s.Cert, "certificate", err)
	}
	if err := tokenCanSign(s.Key, cert); err != nil {
		return nil, nil, err
	}
	key, err := keys.Open(s.Key, keys.Options{
		Passphrase:    s.Passphrase,
		Getenv:        s.Getenv,
		PinFile:       s.PinFile,
		PKCS11Module:  s.PKCS11Module,
		PKCS11Server:  s.PKCS11Server,
		PKCS11Timeout: s.PKCS11Timeout,
		// KEY may come from a command line, where ps shows it to everyone.
		NoPINInURI: true,
	})
	if err != nil {
		return nil, nil, nameIn(keys.Redact(s.Key), "key", err)
	}
	signer, err := sign.NewSigner(key, cert, sign.Options{Hash: h, KeyID: s.KeyID, AuthAttrs: s.AuthAttrs})
	if err != nil {
		key.Close()
		if errors.Is(err, sign.ErrKeyMismatch) {
			return nil, nil, &MismatchError{Key: keys.Redact(s.Key), Cert: s.Cert}
		}
		return nil, nil, fmt.Errorf("key %s, certificate %s: %w", keys.Redact(s.Key), s.Cert, err)
	}
	return signer, func() { key.Close() }, nil
}

// TokenAlgorithmError: the certificate's key type is one no PKCS#11 token
// here offers (ML-DSA), so a pkcs11: key could never match it.
type TokenAlgorithmError struct{ Key, Algorithm string }

func (e *TokenAlgorithmError) Error() string {
	return fmt.Sprintf("key %s: %s keys on PKCS#11 tokens are not supported", e.Key, e.Algorithm)
}

// tokenCanSign refuses an ML-DSA certificate with a pkcs11: key.
func tokenCanSign(ref string, cert *x509.Certificate) error {
	if !strings.HasPrefix(strings.ToLower(ref), "pkcs11:") {
		return nil
	}
	pub, err := mldsa.CertificateKey(cert)
	if p, ok := mldsa.Of(pub); err == nil && ok {
		return &TokenAlgorithmError{Key: keys.Redact(ref), Algorithm: p.Name}
	}
	return nil
}

// nameIn prefixes err with what and name unless err already names it.
func nameIn(name, what string, err error) error {
	if strings.Contains(err.Error(), name) {
		return err
	}
	return fmt.Errorf("%s %s: %w", what, name, err)
}
