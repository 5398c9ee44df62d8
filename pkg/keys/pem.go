package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/mldsa"
	"github.com/youmark/pkcs8"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/libcrypto"
)

// maxKeyFile bounds what we read of a key file: PEM keys are a few KiB.
const maxKeyFile = 1 << 20

// openPEM loads a PEM private key file. The file may also hold other blocks
// (EC PARAMETERS, the certificate, as the kernel's certs/signing_key.pem does).
func openPEM(path string, o *Options) (*Key, error) {
	data, err := readKeyFile(path, o.SkipPermissionCheck)
	if err != nil {
		return nil, err
	}
	defer wipe(data)
	signer, err := parsePEMKey(data, path, o)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	// RSA's private-key operation runs in the system's libcrypto when it
	// has OpenSSL 3: about twice Go's speed, same bytes.
	desc := describe(signer.Public()) + " " + path
	signer, free := libcrypto.Wrap(signer)
	return &Key{Signer: signer, desc: desc, close: func() error { free(); return nil }}, nil
}

// readKeyFile reads a private key file after checking, on the open
// descriptor, that only its owner can read it.
func readKeyFile(path string, skipCheck bool) ([]byte, error) {
	data, err := readSecret(path, "key", maxKeyFile, skipCheck)
	if err != nil {
		return nil, err
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("key %s: larger than %d bytes, not a PEM key", path, maxKeyFile)
	}
	return data, nil
}

// parsePEMKey finds the first private key block in data and decodes it,
// decrypting it with a passphrase from o when it is encrypted.
func parsePEMKey(data []byte, what string, o *Options) (crypto.Signer, error) {
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no PEM private key found (want RSA PRIVATE KEY, PRIVATE KEY, EC PRIVATE KEY or ENCRYPTED PRIVATE KEY)")
		}
		switch block.Type {
		case "RSA PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
			return decodeKeyBlock(block, what, o)
		}
	}
}

func decodeKeyBlock(block *pem.Block, what string, o *Options) (crypto.Signer, error) {
	der := block.Bytes
	//lint:ignore SA1019 legacy encrypted PEM is what openssl genrsa -aes256 writes.
	legacy := x509.IsEncryptedPEMBlock(block) //nolint:staticcheck
	if legacy || block.Type == "ENCRYPTED PRIVATE KEY" {
		pass, source, err := passphrase(o, what)
		if err != nil {
			return nil, err
		}
		defer wipe(pass)
		if legacy {
			// Keys made by older openssl (genrsa -aes256) still use it; they
			// are local files, so no padding oracle is exposed.
			//lint:ignore SA1019 reading legacy "Proc-Type: 4,ENCRYPTED" keys is the point
			der, err = x509.DecryptPEMBlock(block, pass)
			if err != nil {
				if errors.Is(err, x509.IncorrectPasswordError) {
					return nil, fmt.Errorf("%w (from %s)", ErrWrongPassphrase, source)
				}
				return nil, fmt.Errorf("decrypt legacy PEM: %w", err)
			}
			defer wipe(der)
			key, err := parseDERKey(block.Type, der)
			if err != nil {
				// Decryption "worked" with a wrong key: the padding happened to fit.
				return nil, fmt.Errorf("%w (from %s)", ErrWrongPassphrase, source)
			}
			return key, nil
		}
		key, err := parsePKCS8Encrypted(der, pass)
		if err != nil {
			// youmark/pkcs8 decrypts into crypto/x509, which knows no ML-DSA
			// (and then reports an incorrect password): try that here.
			if k, mlErr := decryptMLDSA(der, pass, source); mlErr == nil {
				return k, nil
			}
			if strings.Contains(err.Error(), "incorrect password") {
				return nil, fmt.Errorf("%w (from %s)", ErrWrongPassphrase, source)
			}
			return nil, fmt.Errorf("encrypted PKCS#8: %v (re-encrypt with: openssl pkcs8 -topk8 -v2 aes256)", err)
		}
		return checkSigner(key)
	}
	return parseDERKey(block.Type, der)
}

// parsePKCS8Encrypted wraps youmark/pkcs8, which can panic on ciphertext that
// is not a whole number of blocks.
func parsePKCS8Encrypted(der, pass []byte) (key any, err error) {
	defer func() {
		if r := recover(); r != nil {
			key, err = nil, errors.New("incorrect password")
		}
	}()
	return pkcs8.ParsePKCS8PrivateKey(der, pass)
}

func parseDERKey(typ string, der []byte) (crypto.Signer, error) {
	var key any
	var err error
	switch typ {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(der)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(der)
	default:
		if mldsa.IsPKCS8(der) {
			// crypto/x509 does not know ML-DSA (OpenSSL 3.5+ PKCS#8).
			key, err = mldsa.ParsePKCS8(der)
			break
		}
		key, err = x509.ParsePKCS8PrivateKey(der)
	}
	if err != nil {
		return nil, fmt.Errorf("bad %s: %w", typ, err)
	}
	return checkSigner(key)
}

// checkSigner accepts the key types the kernel verifies module signatures with.
func checkSigner(key any) (crypto.Signer, error) {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		return k, nil
	case crypto.Signer:
		if _, ok := mldsa.Of(k); ok {
			return k, nil
		}
	}
	return nil, fmt.Errorf("unsupported key type %T (the kernel verifies RSA, ECDSA and, from Linux 7.0, ML-DSA module signatures)", key)
}

// decryptMLDSA reads an encrypted PKCS#8 ML-DSA key (PBES2, as OpenSSL 3.5+
// genpkey -aes256 writes it).
func decryptMLDSA(der, pass []byte, source string) (crypto.Signer, error) {
	plain, err := decryptPBES2(der, pass)
	if errors.Is(err, ErrWrongPassphrase) {
		return nil, fmt.Errorf("%w (from %s)", ErrWrongPassphrase, source)
	}
	if err != nil {
		return nil, fmt.Errorf("encrypted PKCS#8: %w", err)
	}
	defer wipe(plain)
	if !mldsa.IsPKCS8(plain) {
		return nil, errors.New("encrypted PKCS#8 holds a key of an algorithm the kernel does not verify")
	}
	key, err := mldsa.ParsePKCS8(plain)
	if err != nil {
		return nil, err
	}
	return checkSigner(key)
}
