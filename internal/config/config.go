// Package config reads dkms-sign-hook's INI configuration file.
//
//	[signing]
//	key = /etc/dkms-sign-hook/signing_key.pem        ; PEM file, or a pkcs11: URI
//	certificate = /etc/dkms-sign-hook/signing_key.x509
//	hash = auto            ; auto = the target kernel's CONFIG_MODULE_SIG_HASH
//	key_id = issuer-serial ; or skid
//	pin_file =             ; file holding the key's passphrase or the token PIN
//	pkcs11_module =        ; PKCS#11 module for pkcs11: URIs without module-path
//	authattrs = no         ; yes: ML-DSA with signed attributes (sign-file's form; waiver kernels only)
//	pkcs11_server =        ; p11-kit server socket of a remote signer (docs/fleet.md)
//	pkcs11_timeout = 30s   ; bound on every call into the PKCS#11 module
//	[hook]
//	missing_key = warn     ; or fail
//	log = /var/log/dkms-sign-hook/signed.jsonl
//
// Unknown sections or keys and bad values are errors naming the file and line.
package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/ini.v1"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/safefile"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
)

// DefaultPath is read when neither --config nor DKMS_SIGN_HOOK_CONFIG names a file.
const DefaultPath = "/etc/dkms-sign-hook/dkms-sign-hook.conf"

// EnvVar names a configuration file, below --config and above DefaultPath.
const EnvVar = "DKMS_SIGN_HOOK_CONFIG"

// Values of hash, key_id and missing_key.
const (
	HashAuto          = "auto"
	KeyIDIssuerSerial = "issuer-serial"
	KeyIDSKID         = "skid"
	MissingKeyWarn    = "warn"
	MissingKeyFail    = "fail"
)

// Config is the parsed file, with defaults filled in.
type Config struct {
	// Path is the file read; "" when the default file does not exist and
	// only defaults apply.
	Path string

	Key          string // PEM key path or pkcs11: URI
	Certificate  string // PEM or DER certificate path
	Hash         string // "auto" or a hash name sign.ParseHash accepts
	KeyID        string // "issuer-serial" or "skid"
	PinFile      string // optional
	PKCS11Module string // optional
	// AuthAttrs is "no" (default: pure ML-DSA, which every ML-DSA kernel
	// loads) or "yes" (ML-DSA with signed attributes, as Linux 7.x's
	// sign-file makes it: only kernels built with
	// PKCS7_WAIVE_AUTHATTRS_REJECTION_FOR_MLDSA load it). With an RSA or
	// ECDSA key "yes" is refused: kernels reject their signed attributes.
	AuthAttrs string
	// PKCS11Server is the p11-kit server (socket path or
	// P11_KIT_SERVER_ADDRESS value) of a remote signer; optional.
	PKCS11Server string
	// PKCS11Timeout bounds every PKCS#11 call (keys.Options.PKCS11Timeout).
	PKCS11Timeout time.Duration

	MissingKey string // "warn" or "fail"
	Log        string // JSON-lines signing log
}

// Default returns the built-in settings.
func Default() *Config {
	return &Config{
		Key:           "/etc/dkms-sign-hook/signing_key.pem",
		Certificate:   "/etc/dkms-sign-hook/signing_key.x509",
		Hash:          HashAuto,
		KeyID:         KeyIDIssuerSerial,
		AuthAttrs:     "no",
		PKCS11Timeout: keys.DefaultPKCS11Timeout,
		MissingKey:    MissingKeyWarn,
		Log:           "/var/log/dkms-sign-hook/signed.jsonl",
	}
}

// Resolve picks the configuration file: flagPath (--config), else the
// environment variable, else DefaultPath. explicit is false only for
// DefaultPath, which may be absent.
func Resolve(flagPath string, getenv func(string) string) (path string, explicit bool) {
	if flagPath != "" {
		return flagPath, true
	}
	if p := getenv(EnvVar); p != "" {
		return p, true
	}
	return DefaultPath, false
}

// Load reads the file that Resolve picks. A missing default file gives the
// defaults; a missing explicit file is an error.
func Load(flagPath string, getenv func(string) string) (*Config, error) {
	path, explicit := Resolve(flagPath, getenv)
	c, err := LoadFile(path)
	if err != nil && !explicit && errors.Is(err, os.ErrNotExist) {
		return Default(), nil
	}
	return c, err
}

// LoadFile reads and checks one configuration file. Whoever can change it
// chooses the key and the files root writes, so it is refused unless only
// root (or, when not running as root, the user) can change the file and
// every directory on its path; it is checked and read through the same
// descriptor (internal/safefile).
func LoadFile(path string) (*Config, error) {
	data, err := safefile.ReadFile(path)
	if err != nil {
		var pe *keys.PermissionError
		if errors.As(err, &pe) {
			return nil, err
		}
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

// known lists the sections and their keys.
var known = map[string][]string{
	"signing": {"key", "certificate", "hash", "key_id", "pin_file", "pkcs11_module", "pkcs11_server", "pkcs11_timeout", "authattrs"},
	"hook":    {"missing_key", "log"},
}

// Parse checks and reads the configuration data of the file named path.
func Parse(path string, data []byte) (*Config, error) {
	lines, err := scanLines(path, data)
	if err != nil {
		return nil, err
	}
	f, err := ini.LoadSources(ini.LoadOptions{
		KeyValueDelimiters:       "=",
		SpaceBeforeInlineComment: true, // pkcs11:token=a;object=b keeps its ';'
	}, data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c := Default()
	c.Path = path
	var timeout string
	fields := map[string]*string{
		"signing.pkcs11_server": &c.PKCS11Server, "signing.pkcs11_timeout": &timeout,
		"signing.key": &c.Key, "signing.certificate": &c.Certificate, "signing.hash": &c.Hash,
		"signing.key_id": &c.KeyID, "signing.pin_file": &c.PinFile, "signing.pkcs11_module": &c.PKCS11Module,
		"signing.authattrs": &c.AuthAttrs,
		"hook.missing_key":  &c.MissingKey, "hook.log": &c.Log,
	}
	for _, s := range f.Sections() {
		for _, k := range s.Keys() {
			id := s.Name() + "." + k.Name()
			p, ok := fields[id]
			if !ok {
				continue // scanLines already refused unknown keys
			}
			v := strings.TrimSpace(k.Value())
			if err := check(id, v); err != nil {
				return nil, fmt.Errorf("%s:%d: %s: %w", path, lines[id], k.Name(), err)
			}
			*p = v
		}
	}
	if timeout != "" {
		c.PKCS11Timeout, _ = time.ParseDuration(timeout) // checked above
	}
	return c, nil
}

// check validates one value.
func check(id, v string) error {
	switch id {
	case "signing.key":
		if v == "" {
			return errors.New("empty; set the path of a PEM key or a pkcs11: URI")
		}
		if strings.HasPrefix(strings.ToLower(v), "pkcs11:") {
			if strings.Contains(strings.ToLower(v), "pin-value=") {
				return errors.New("a pkcs11: URI here must not carry pin-value (it would be a secret in a config file); use pin_file")
			}
			return nil
		}
		return absPath(v)
	case "signing.certificate", "hook.log":
		if v == "" {
			return errors.New("empty; set an absolute path")
		}
		return absPath(v)
	case "signing.pin_file", "signing.pkcs11_module":
		if v == "" {
			return nil
		}
		return absPath(v)
	case "signing.pkcs11_server":
		if v == "" {
			return nil
		}
		_, err := keys.ParseP11KitServer(v)
		return err
	case "signing.pkcs11_timeout":
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second || d > time.Hour {
			return fmt.Errorf("bad value %q (a duration from 1s to 1h, e.g. 30s)", v)
		}
	case "signing.hash":
		if v == HashAuto {
			return nil
		}
		if _, err := sign.ParseHash(v); err != nil {
			return fmt.Errorf("%w, or auto", err)
		}
	case "signing.key_id":
		return oneOf(v, KeyIDIssuerSerial, KeyIDSKID)
	case "signing.authattrs":
		return oneOf(v, "no", "yes")
	case "hook.missing_key":
		return oneOf(v, MissingKeyWarn, MissingKeyFail)
	}
	return nil
}

func absPath(v string) error {
	if !filepath.IsAbs(v) {
		return fmt.Errorf("%q is not an absolute path (the hook runs in DKMS's build directory)", v)
	}
	return nil
}

func oneOf(v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fmt.Errorf("bad value %q (use %s)", v, strings.Join(allowed, " or "))
}

// scanLines checks the file's structure line by line, so every error can
// name its line, and returns the line of each "section.key".
func scanLines(path string, data []byte) (map[string]int, error) {
	lines := map[string]int{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		if n == 1 {
			l = strings.TrimPrefix(l, "\ufeff")
		}
		switch {
		case l == "" || l[0] == ';' || l[0] == '#':
			continue
		case l[0] == '[':
			end := strings.IndexByte(l, ']')
			if end < 0 {
				return nil, fmt.Errorf("%s:%d: unterminated section header %q", path, n, l)
			}
			section = strings.TrimSpace(l[1:end])
			if _, ok := known[section]; !ok {
				return nil, fmt.Errorf("%s:%d: unknown section [%s] (known: [signing], [hook])", path, n, section)
			}
			continue
		}
		name, _, ok := strings.Cut(l, "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: expected \"key = value\", got %q", path, n, l)
		}
		name = strings.TrimSpace(name)
		if section == "" {
			return nil, fmt.Errorf("%s:%d: key %q outside a section (put it under [signing] or [hook])", path, n, name)
		}
		if !contains(known[section], name) {
			return nil, fmt.Errorf("%s:%d: unknown key %q in [%s] (known: %s)", path, n, name, section, strings.Join(known[section], ", "))
		}
		id := section + "." + name
		if prev, dup := lines[id]; dup {
			return nil, fmt.Errorf("%s:%d: %s is already set on line %d", path, n, name, prev)
		}
		lines[id] = n
	}
	return lines, sc.Err()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
