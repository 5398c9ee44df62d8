//go:build cgo

package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/ThalesGroup/crypto11"
	"github.com/miekg/pkcs11"
)

// PKCS#11 errors to test for with errors.Is.
var (
	// ErrNeedPIN: the token wants a PIN and no source gave one.
	ErrNeedPIN = errors.New("needs a PIN; set pin-source in the URI, " + PinEnv + " or pin_file")
	// ErrWrongPIN: the token refused the PIN.
	ErrWrongPIN = errors.New("wrong PIN")
	// ErrNoToken: no token matches the URI.
	ErrNoToken = errors.New("no such token")
	// ErrNoObject: the token holds no private key matching the URI.
	ErrNoObject = errors.New("no such key")
)

// pkcs11Mu serialises opening tokens: crypto11 keeps one initialised
// context per module path, and we peek at the module's tokens beforehand.
var pkcs11Mu sync.Mutex

func openPKCS11(ref string, o *Options) (*Key, error) {
	u, err := ParsePKCS11URI(ref)
	if err != nil {
		return nil, err
	}
	name := u.String() // safe to log: no query, no PIN
	if u.Type != "" && u.Type != "private" {
		return nil, fmt.Errorf("key %s: type=%s does not name a private key", name, u.Type)
	}
	if u.Object == "" && u.ID == nil {
		return nil, fmt.Errorf("key %s: name the key with object= (label) or id=", name)
	}
	module, load, err := pkcs11Module(u, o)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", name, err)
	}

	pkcs11Mu.Lock()
	defer pkcs11Mu.Unlock()

	slot, label, err := findSlot(module, load, u)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", name, err)
	}
	pin, source, err := tokenPIN(u, o, name)
	if err != nil {
		if errors.Is(err, ErrNeedPassphrase) {
			return nil, fmt.Errorf("key %s: token %q %w", name, label, ErrNeedPIN)
		}
		return nil, fmt.Errorf("key %s: token %q: %w", name, label, err)
	}
	slotNum := int(slot)
	ctx, err := crypto11.Configure(&crypto11.Config{Path: load, SlotNumber: &slotNum, Pin: string(pin)})
	wipe(pin)
	if err != nil {
		var p11 pkcs11.Error
		if errors.As(err, &p11) {
			switch p11 {
			case pkcs11.CKR_PIN_INCORRECT:
				return nil, fmt.Errorf("key %s: token %q: %w (from %s)", name, label, ErrWrongPIN, source)
			case pkcs11.CKR_PIN_LOCKED:
				return nil, fmt.Errorf("key %s: token %q: PIN locked (reset it with the SO PIN)", name, label)
			}
		}
		return nil, fmt.Errorf("key %s: token %q: %w", name, label, err)
	}
	signer, err := findKeyPair(ctx, u)
	if err != nil {
		ctx.Close()
		return nil, fmt.Errorf("key %s: token %q: %w", name, label, err)
	}
	return &Key{
		Signer: &tokenSigner{s: signer, pub: signer.Public()},
		desc:   describe(signer.Public()) + " " + name,
		close:  ctx.Close,
	}, nil
}

// pkcs11Module picks the module: the URI's module-path, else the config's.
// Loading a module runs its code as us, so it must be an absolute path to a
// regular file that only root can change, in directories only root can
// change (CheckTrustedPath). It returns the path for messages and the name
// to load the module by (see moduleLoadName).
func pkcs11Module(u *PKCS11URI, o *Options) (module, load string, err error) {
	module = u.ModulePath
	if module == "" {
		module = o.PKCS11Module
	}
	if module == "" {
		if u.ModuleName != "" {
			return "", "", fmt.Errorf("module-name=%s is not supported; give module-path=/path/to/module.so", u.ModuleName)
		}
		return "", "", errors.New("no PKCS#11 module: add module-path=/path/to/module.so to the URI or set the module in the config")
	}
	load, err = moduleLoadName(module, o.SkipPermissionCheck)
	return module, load, err
}

// findSlot lists the tokens of the module (loaded by the name load) and
// returns the slot of the one token matching every token attribute of the
// URI (crypto11 selects by one only).
func findSlot(module, load string, u *PKCS11URI) (uint, string, error) {
	p := pkcs11.New(load)
	if p == nil {
		return 0, "", fmt.Errorf("PKCS#11 module %s: cannot load it", module)
	}
	defer p.Destroy()
	if err := p.Initialize(); err != nil {
		var p11 pkcs11.Error
		if !errors.As(err, &p11) || p11 != pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED {
			return 0, "", fmt.Errorf("PKCS#11 module %s: initialize: %w", module, err)
		}
	} else {
		defer p.Finalize()
	}
	info, err := p.GetInfo()
	if err != nil {
		return 0, "", fmt.Errorf("PKCS#11 module %s: %w", module, err)
	}
	version := fmt.Sprintf("%d.%d", info.LibraryVersion.Major, info.LibraryVersion.Minor)
	if !matchAttr(u.LibraryManufacturer, info.ManufacturerID) || !matchAttr(u.LibraryDescription, info.LibraryDescription) ||
		!(u.LibraryVersion == "" || u.LibraryVersion == version || u.LibraryVersion+".0" == version) {
		return 0, "", fmt.Errorf("%w: module %s is %q %q %s, not the library the URI names", ErrNoToken, module, info.ManufacturerID, info.LibraryDescription, version)
	}
	slots, err := p.GetSlotList(true)
	if err != nil {
		return 0, "", fmt.Errorf("PKCS#11 module %s: list slots: %w", module, err)
	}
	var found []uint
	var label string
	var present []string
	for _, slot := range slots {
		ti, err := p.GetTokenInfo(slot)
		if err != nil {
			continue
		}
		if ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED != 0 {
			present = append(present, fmt.Sprintf("%q (slot-id=%d)", ti.Label, slot))
		}
		si, err := p.GetSlotInfo(slot)
		if err != nil {
			continue
		}
		if (u.SlotID == nil || *u.SlotID == slot) &&
			matchAttr(u.Token, ti.Label) && matchAttr(u.Serial, ti.SerialNumber) &&
			matchAttr(u.Manufacturer, ti.ManufacturerID) && matchAttr(u.Model, ti.Model) &&
			matchAttr(u.SlotDescription, si.SlotDescription) && matchAttr(u.SlotManufacturer, si.ManufacturerID) {
			found = append(found, slot)
			label = ti.Label
		}
	}
	switch {
	case len(found) == 1:
		return found[0], label, nil
	case len(found) > 1:
		return 0, "", fmt.Errorf("%d tokens match; add token= or serial= to the URI (tokens: %s)", len(found), strings.Join(present, ", "))
	case len(present) == 0:
		return 0, "", fmt.Errorf("%w: module %s shows no token", ErrNoToken, module)
	default:
		return 0, "", fmt.Errorf("%w: none matches (tokens: %s)", ErrNoToken, strings.Join(present, ", "))
	}
}

func matchAttr(want, have string) bool {
	return want == "" || want == strings.TrimRight(have, " \x00")
}

// tokenPIN finds the token's PIN: the URI's pin-value, its pin-source, then
// the sources of an encrypted key file (callback, KBUILD_SIGN_PIN, pin_file,
// terminal).
func tokenPIN(u *PKCS11URI, o *Options, name string) ([]byte, string, error) {
	if u.PinValue != "" {
		if o.NoPINInURI {
			return nil, "", errors.New("refusing pin-value in a URI on the command line (every user can read it with ps); use pin-source=/root-only/file")
		}
		return []byte(u.PinValue), "the URI's pin-value", nil
	}
	if u.PinSource != "" {
		path := u.PinSource
		if strings.HasPrefix(path, "file:") {
			path = strings.TrimPrefix(path, "file:")
			if strings.HasPrefix(path, "//") {
				// file:///etc/pin or file://localhost/etc/pin
				host, rest, _ := strings.Cut(path[2:], "/")
				if host != "" && host != "localhost" {
					return nil, "", fmt.Errorf("pin-source %s: only local files", u.PinSource)
				}
				path = "/" + rest
			}
		} else if i := strings.Index(path, ":"); i > 0 && !strings.Contains(path[:i], "/") {
			return nil, "", fmt.Errorf("pin-source: only a file path or file: URI is supported")
		}
		p, err := readPinFile(path, "pin-source", o.SkipPermissionCheck)
		return p, "pin-source " + path, err
	}
	return passphrase(o, name)
}

func findKeyPair(ctx *crypto11.Context, u *PKCS11URI) (crypto.Signer, error) {
	var label []byte
	if u.Object != "" {
		label = []byte(u.Object)
	}
	signers, err := ctx.FindKeyPairs(u.ID, label)
	if err != nil {
		return nil, fmt.Errorf("find key: %w", err)
	}
	switch len(signers) {
	case 0:
		return nil, fmt.Errorf("%w: no private key with %s (or its public key is missing)", ErrNoObject, u.String()[len("pkcs11:"):])
	case 1:
	default:
		return nil, fmt.Errorf("%d keys match; add id= or object= to the URI", len(signers))
	}
	switch signers[0].Public().(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey:
		return signers[0], nil
	default:
		return nil, fmt.Errorf("unsupported key type %T (the kernel verifies RSA and ECDSA module signatures)", signers[0].Public())
	}
}

// tokenSigner signs through the token and checks every signature against
// the public key before handing it out. For RSA PKCS#1 v1.5 it builds the
// DigestInfo itself, since crypto11 knows no SHA-3 prefixes and would sign
// a bare digest.
type tokenSigner struct {
	s   crypto.Signer
	pub crypto.PublicKey
}

func (t *tokenSigner) Public() crypto.PublicKey { return t.pub }

func (t *tokenSigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	h := opts.HashFunc()
	if h != 0 && len(digest) != h.Size() {
		return nil, fmt.Errorf("digest is %d bytes, %v needs %d", len(digest), h, h.Size())
	}
	switch pub := t.pub.(type) {
	case *rsa.PublicKey:
		if _, pss := opts.(*rsa.PSSOptions); pss {
			sig, err := t.s.Sign(rand, digest, opts)
			if err != nil {
				return nil, fmt.Errorf("token sign: %w", err)
			}
			return sig, rsa.VerifyPSS(pub, h, digest, sig, opts.(*rsa.PSSOptions))
		}
		msg := digest
		if h != 0 {
			var err error
			if msg, err = digestInfo(h, digest); err != nil {
				return nil, err
			}
		}
		sig, err := t.s.Sign(rand, msg, crypto.Hash(0))
		if err != nil {
			return nil, fmt.Errorf("token sign: %w", err)
		}
		if err := rsa.VerifyPKCS1v15(pub, crypto.Hash(0), msg, sig); err != nil {
			return nil, fmt.Errorf("token made a signature that does not verify: %w", err)
		}
		return sig, nil
	case *ecdsa.PublicKey:
		sig, err := t.s.Sign(rand, digest, opts)
		if err != nil {
			return nil, fmt.Errorf("token sign: %w", err)
		}
		if !ecdsa.VerifyASN1(pub, digest, sig) {
			return nil, errors.New("token made a signature that does not verify")
		}
		return sig, nil
	}
	return nil, fmt.Errorf("unsupported key type %T", t.pub)
}
