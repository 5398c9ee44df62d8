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
	"time"

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

// pkcs11Mu serialises initialising modules: crypto11 keeps one
// initialised context per module path, and findSlot peeks at the module's
// tokens beforehand. It is taken inside callWithin's goroutine, so a call
// that hangs holding it makes later ones time out, never wait forever.
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
	t, err := reachToken(u, o)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", name, err)
	}
	// Asking for the PIN (maybe on the terminal) is not a token call: no deadline.
	pin, source, err := tokenPIN(u, o, name)
	if err != nil {
		if errors.Is(err, ErrNeedPassphrase) {
			return nil, fmt.Errorf("key %s: token %q %w", name, t.Label, ErrNeedPIN)
		}
		return nil, fmt.Errorf("key %s: token %q: %w", name, t.Label, err)
	}
	var ctx *crypto11.Context
	var signer crypto.Signer
	err = callWithin(t.load, o.Timeout(), "log in", func() error {
		var err error
		ctx, signer, err = login(t, u, pin, source)
		return err
	})
	wipe(pin)
	if err != nil {
		return nil, fmt.Errorf("key %s: token %q%s: %w", name, t.Label, t.via(), err)
	}
	ts := &tokenSigner{s: signer, pub: signer.Public(), module: t.load, timeout: o.Timeout(), remote: t.Server != ""}
	return &Key{
		Signer: ts,
		desc:   describe(signer.Public()) + " " + name,
		close: func() error {
			return callWithin(t.load, o.Timeout(), "close", ctx.Close)
		},
	}, nil
}

// FindToken finds the token a pkcs11: URI names, without a PIN and
// without logging in: whether the signing token is reachable right now,
// and what it is. It honours Options.PKCS11Server and PKCS11Timeout.
func FindToken(ref string, o Options) (*Token, error) {
	u, err := ParsePKCS11URI(ref)
	if err != nil {
		return nil, err
	}
	t, err := reachToken(u, &o)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", u.String(), err)
	}
	return t, nil
}

// reachToken picks the module, points p11-kit-client.so at the server if
// one is configured, and finds the one token the URI names, within the
// timeout.
func reachToken(u *PKCS11URI, o *Options) (*Token, error) {
	addr, err := useP11KitServer(o.PKCS11Server)
	if err != nil {
		return nil, err
	}
	module, load, err := pkcs11Module(u, o)
	if err != nil {
		return nil, err
	}
	t := &Token{Module: module, Server: addr, load: load}
	err = callWithin(load, o.Timeout(), "find token", func() error {
		pkcs11Mu.Lock()
		defer pkcs11Mu.Unlock()
		return findSlot(t, u)
	})
	if err != nil {
		return nil, fmt.Errorf("%w%s", err, t.via())
	}
	return t, nil
}

// login opens a crypto11 context on the token's slot and finds the key.
func login(t *Token, u *PKCS11URI, pin []byte, source string) (*crypto11.Context, crypto.Signer, error) {
	pkcs11Mu.Lock()
	defer pkcs11Mu.Unlock()
	slotNum := int(t.slot)
	var ctx *crypto11.Context
	err := retrySlotList(func() (err error) {
		ctx, err = crypto11.Configure(&crypto11.Config{Path: t.load, SlotNumber: &slotNum, Pin: string(pin)})
		return err
	})
	if err != nil {
		var p11 pkcs11.Error
		if errors.As(err, &p11) {
			switch p11 {
			case pkcs11.CKR_PIN_INCORRECT:
				return nil, nil, fmt.Errorf("%w (from %s)", ErrWrongPIN, source)
			case pkcs11.CKR_PIN_LOCKED:
				return nil, nil, errors.New("PIN locked (reset it with the SO PIN)")
			}
		}
		return nil, nil, err
	}
	signer, err := findKeyPair(ctx, u)
	if err != nil {
		ctx.Close()
		return nil, nil, err
	}
	return ctx, signer, nil
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
	if module == "" && o.PKCS11Server != "" {
		module = P11KitClient()
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
func findSlot(t *Token, u *PKCS11URI) error {
	module := t.Module
	p := pkcs11.New(t.load)
	if p == nil {
		return fmt.Errorf("PKCS#11 module %s: cannot load it", module)
	}
	defer p.Destroy()
	if err := p.Initialize(); err != nil {
		var p11 pkcs11.Error
		if !errors.As(err, &p11) || p11 != pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED {
			if t.Server != "" {
				// p11-kit-client.so could not talk to the server: refused, closed, or a tunnel whose far end is gone.
				return fmt.Errorf("PKCS#11 module %s: initialize: %w (%v)", module, ErrTokenUnreachable, err)
			}
			return fmt.Errorf("PKCS#11 module %s: initialize: %w", module, err)
		}
	} else {
		defer p.Finalize()
	}
	info, err := p.GetInfo()
	if err != nil {
		return fmt.Errorf("PKCS#11 module %s: %w", module, err)
	}
	version := fmt.Sprintf("%d.%d", info.LibraryVersion.Major, info.LibraryVersion.Minor)
	if !matchAttr(u.LibraryManufacturer, info.ManufacturerID) || !matchAttr(u.LibraryDescription, info.LibraryDescription) ||
		!(u.LibraryVersion == "" || u.LibraryVersion == version || u.LibraryVersion+".0" == version) {
		return fmt.Errorf("%w: module %s is %q %q %s, not the library the URI names", ErrNoToken, module, info.ManufacturerID, info.LibraryDescription, version)
	}
	var slots []uint
	err = retrySlotList(func() (err error) {
		slots, err = p.GetSlotList(true)
		return err
	})
	if err != nil {
		return fmt.Errorf("PKCS#11 module %s: list slots: %w", module, err)
	}
	var found []uint
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
			t.slot, t.Label, t.Serial = slot, trim(ti.Label), trim(ti.SerialNumber)
			t.Manufacturer, t.Model = trim(ti.ManufacturerID), trim(ti.Model)
		}
	}
	switch {
	case len(found) == 1:
		return nil
	case len(found) > 1:
		return fmt.Errorf("%d tokens match; add token= or serial= to the URI (tokens: %s)", len(found), strings.Join(present, ", "))
	case len(present) == 0 && t.Server != "":
		// p11-kit-client.so shows no slot at all when it cannot connect.
		return fmt.Errorf("%w: %w: the p11-kit server shows no token (stopped, refusing, or not exporting it)", ErrTokenUnreachable, ErrNoToken)
	case len(present) == 0:
		return fmt.Errorf("%w: module %s shows no token", ErrNoToken, module)
	default:
		return fmt.Errorf("%w: none matches (tokens: %s)", ErrNoToken, strings.Join(present, ", "))
	}
}

func trim(s string) string { return strings.TrimRight(s, " \x00") }

func matchAttr(want, have string) bool {
	return want == "" || want == trim(have)
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
		return nil, fmt.Errorf("unsupported key type %T on the token (RSA and ECDSA keys sign on tokens; ML-DSA is not offered by SoftHSM 2 or crypto11)", signers[0].Public())
	}
}

// tokenSigner signs through the token and checks every signature against
// the public key before handing it out. For RSA PKCS#1 v1.5 it builds the
// DigestInfo itself, since crypto11 knows no SHA-3 prefixes and would sign
// a bare digest.
type tokenSigner struct {
	s       crypto.Signer
	pub     crypto.PublicKey
	module  string // load name, for callWithin
	timeout time.Duration
	remote  bool // through a p11-kit server
}

// sign makes one signature on the token, within the timeout.
func (t *tokenSigner) sign(rand io.Reader, msg []byte, opts crypto.SignerOpts) (sig []byte, err error) {
	err = callWithin(t.module, t.timeout, "sign", func() error {
		var err error
		sig, err = t.s.Sign(rand, msg, opts)
		return err
	})
	if err != nil {
		if t.gone(err) {
			return nil, fmt.Errorf("token sign: %w (%v)", ErrTokenUnreachable, err)
		}
		return nil, fmt.Errorf("token sign: %w", err)
	}
	return sig, nil
}

// gone says whether a failed call means the token went away: pulled out,
// or (remote) its server or tunnel died, which p11-kit-client.so reports
// as a device error.
func (t *tokenSigner) gone(err error) bool {
	var p11 pkcs11.Error
	if !errors.As(err, &p11) {
		return false
	}
	switch p11 {
	case pkcs11.CKR_DEVICE_REMOVED, pkcs11.CKR_TOKEN_NOT_PRESENT:
		return true
	case pkcs11.CKR_DEVICE_ERROR, pkcs11.CKR_GENERAL_ERROR:
		return t.remote
	}
	return false
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
			sig, err := t.sign(rand, digest, opts)
			if err != nil {
				return nil, err
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
		sig, err := t.sign(rand, msg, crypto.Hash(0))
		if err != nil {
			return nil, err
		}
		if err := rsa.VerifyPKCS1v15(pub, crypto.Hash(0), msg, sig); err != nil {
			return nil, fmt.Errorf("token made a signature that does not verify: %w", err)
		}
		return sig, nil
	case *ecdsa.PublicKey:
		sig, err := t.sign(rand, digest, opts)
		if err != nil {
			return nil, err
		}
		if !ecdsa.VerifyASN1(pub, digest, sig) {
			return nil, errors.New("token made a signature that does not verify")
		}
		return sig, nil
	}
	return nil, fmt.Errorf("unsupported key type %T", t.pub)
}

// retrySlotList runs f again, a few times, while it fails with
// CKR_BUFFER_TOO_SMALL: C_GetSlotList is called twice (count, then list),
// and through p11-kit-client the count can change in between while other
// hosts connect to the same server (seen in test/fleet with 4 clients).
func retrySlotList(f func() error) error {
	var err error
	for range 5 {
		var p11 pkcs11.Error
		if err = f(); !errors.As(err, &p11) || p11 != pkcs11.CKR_BUFFER_TOO_SMALL {
			return err
		}
	}
	return err
}
