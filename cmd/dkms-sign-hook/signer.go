package main

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

// signerSpec is what every signing command needs to know.
type signerSpec struct {
	key, cert, hash string
	keyID           sign.KeyID
	authAttrs       bool // ML-DSA with signed attributes
	pinFile         string
	pkcs11Module    string
	pkcs11Server    string
	pkcs11Timeout   time.Duration
	// prompt allows asking for a passphrase on the terminal: only for
	// commands a person runs, never for what DKMS runs during an upgrade.
	prompt bool
}

// fromConfig takes the PIN file, the PKCS#11 settings and authattrs from the configuration.
func (s *signerSpec) fromConfig(cfg *config.Config) {
	s.pinFile, s.pkcs11Module = cfg.PinFile, cfg.PKCS11Module
	s.pkcs11Server, s.pkcs11Timeout = cfg.PKCS11Server, cfg.PKCS11Timeout
	s.authAttrs = cfg.AuthAttrs == "yes"
}

// openSigner loads the certificate, opens the key (file or token) and checks
// they belong together, before any module is touched. The returned close
// releases a token session.
func openSigner(e *env, s signerSpec) (*sign.Signer, func(), error) {
	h, err := sign.ParseHash(s.hash)
	if err != nil {
		return nil, nil, err
	}
	if sign.IsWeakHash(h) {
		fmt.Fprintf(e.stderr, "dkms-sign-hook: warning: %s is a weak hash; prefer sha256 or stronger\n", s.hash)
	}
	cert, err := keys.LoadCertificate(s.cert)
	if err != nil {
		return nil, nil, nameIn(s.cert, "certificate", err)
	}
	if err := tokenCanSign(s.key, cert); err != nil {
		return nil, nil, err
	}
	var ask func(string) ([]byte, error)
	if s.prompt {
		ask = terminalPassphrase(e, s.pinFile)
	}
	key, err := keys.Open(s.key, keys.Options{
		Passphrase:    ask,
		Getenv:        e.getenv,
		PinFile:       s.pinFile,
		PKCS11Module:  s.pkcs11Module,
		PKCS11Server:  s.pkcs11Server,
		PKCS11Timeout: s.pkcs11Timeout,
		// KEY comes from the command line, where ps shows it to everyone.
		NoPINInURI: true,
	})
	if err != nil {
		return nil, nil, nameIn(keys.Redact(s.key), "key", err)
	}
	signer, err := sign.NewSigner(key, cert, sign.Options{Hash: h, KeyID: s.keyID, AuthAttrs: s.authAttrs})
	if err != nil {
		key.Close()
		if errors.Is(err, sign.ErrKeyMismatch) {
			return nil, nil, withHint(fmt.Errorf("key %s does not match certificate %s", keys.Redact(s.key), s.cert),
				"use the certificate made together with this key (compare `openssl x509 -noout -pubkey` with `openssl pkey -pubout`)")
		}
		return nil, nil, fmt.Errorf("key %s, certificate %s: %w", keys.Redact(s.key), s.cert, err)
	}
	return signer, func() { key.Close() }, nil
}

// nameIn prefixes err with what and name unless err already names it.
func nameIn(name, what string, err error) error {
	if strings.Contains(err.Error(), name) {
		return err
	}
	return fmt.Errorf("%s %s: %w", what, name, err)
}

// tokenCanSign refuses an ML-DSA certificate with a pkcs11: key: no token
// here offers ML-DSA, so the key could never match.
func tokenCanSign(ref string, cert *x509.Certificate) error {
	if !strings.HasPrefix(strings.ToLower(ref), "pkcs11:") {
		return nil
	}
	pub, err := mldsa.CertificateKey(cert)
	if p, ok := mldsa.Of(pub); err == nil && ok {
		return withHint(fmt.Errorf("key %s: %s keys on PKCS#11 tokens are not supported", keys.Redact(ref), p.Name),
			"SoftHSM 2 and crypto11 offer no ML-DSA (PKCS#11 3.2's CKK_ML_DSA); keep the ML-DSA key in a PEM file (mode 0600, on removable media if you like), or use an RSA or ECDSA key on the token")
	}
	return nil
}
