package keys

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// PKCS11URI is a parsed pkcs11: URI (RFC 7512) naming a private key on a
// token, e.g.
//
//	pkcs11:token=signing;object=dkms?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/etc/dkms-sign-hook/pin
//
// Path attributes select the token (token, serial, manufacturer, model,
// slot-id, slot-description, slot-manufacturer, library-*) and the key
// (object = CKA_LABEL, id = CKA_ID bytes, type = private). Query attributes
// say how to reach it (module-path) and where the PIN comes from (pin-value,
// pin-source: a file path or file: URI).
type PKCS11URI struct {
	Token, Manufacturer, Serial, Model      string
	SlotDescription, SlotManufacturer       string
	SlotID                                  *uint
	LibraryManufacturer, LibraryDescription string
	LibraryVersion                          string
	Object                                  string
	ID                                      []byte
	Type                                    string

	ModulePath, ModuleName string
	PinValue, PinSource    string

	path []string // "name=encoded value" in URI order, for String
}

// String gives the URI's path part only ("pkcs11:token=x;object=y"): it
// names the key without the query, so it never holds a PIN and is safe to log.
func (u *PKCS11URI) String() string {
	return "pkcs11:" + strings.Join(u.path, ";")
}

var errNotPKCS11 = errors.New(`not a pkcs11: URI`)

// ParsePKCS11URI parses a pkcs11: URI. It rejects unknown or repeated
// attributes and bad percent-encoding rather than guess; the error never
// quotes a pin-value.
func ParsePKCS11URI(s string) (*PKCS11URI, error) {
	const scheme = "pkcs11:"
	if len(s) < len(scheme) || !strings.EqualFold(s[:len(scheme)], scheme) {
		return nil, errNotPKCS11
	}
	rest := s[len(scheme):]
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		return nil, errors.New("pkcs11 URI: a fragment (#) is not allowed")
	}
	pathPart, query, hasQuery := strings.Cut(rest, "?")
	u := &PKCS11URI{}
	seen := map[string]bool{}
	if pathPart != "" {
		for _, attr := range strings.Split(pathPart, ";") {
			name, value, err := splitAttr(attr, "path", seen)
			if err != nil {
				return nil, err
			}
			if err := u.setPath(name, value); err != nil {
				return nil, err
			}
			u.path = append(u.path, name+"="+encodeValue(value))
		}
	}
	if hasQuery && query != "" {
		for _, attr := range strings.Split(query, "&") {
			name, value, err := splitAttr(attr, "query", seen)
			if err != nil {
				return nil, err
			}
			if err := u.setQuery(name, value); err != nil {
				return nil, err
			}
		}
	}
	return u, nil
}

// splitAttr splits "name=value", lower-cases the name, decodes the value and
// refuses repeats. Errors name the attribute, never its value.
func splitAttr(attr, where string, seen map[string]bool) (name string, value []byte, err error) {
	name, raw, ok := strings.Cut(attr, "=")
	if !ok || name == "" {
		return "", nil, fmt.Errorf("pkcs11 URI: %s attribute without name=value", where)
	}
	name = strings.ToLower(name)
	if !isAttrName(name) {
		return "", nil, fmt.Errorf("pkcs11 URI: bad %s attribute name %q", where, name)
	}
	if seen[name] {
		return "", nil, fmt.Errorf("pkcs11 URI: attribute %q given twice", name)
	}
	seen[name] = true
	value, err = percentDecode(raw)
	if err != nil {
		return "", nil, fmt.Errorf("pkcs11 URI: attribute %q: %w", name, err)
	}
	return name, value, nil
}

func isAttrName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func (u *PKCS11URI) setPath(name string, v []byte) error {
	str := string(v)
	switch name {
	case "token":
		u.Token = str
	case "manufacturer":
		u.Manufacturer = str
	case "serial":
		u.Serial = str
	case "model":
		u.Model = str
	case "slot-description":
		u.SlotDescription = str
	case "slot-manufacturer":
		u.SlotManufacturer = str
	case "slot-id":
		n, err := strconv.ParseUint(str, 10, 32)
		if err != nil {
			return fmt.Errorf("pkcs11 URI: slot-id %q is not a decimal number", str)
		}
		id := uint(n)
		u.SlotID = &id
	case "library-manufacturer":
		u.LibraryManufacturer = str
	case "library-description":
		u.LibraryDescription = str
	case "library-version":
		u.LibraryVersion = str
	case "object":
		u.Object = str
	case "id":
		u.ID = v
	case "type":
		switch str {
		case "private", "public", "cert", "secret-key", "data":
			u.Type = str
		default:
			return fmt.Errorf("pkcs11 URI: unknown type %q", str)
		}
	default:
		if strings.HasPrefix(name, "x-") {
			return nil // vendor attribute: not ours to interpret
		}
		return fmt.Errorf("pkcs11 URI: unknown path attribute %q", name)
	}
	return nil
}

func (u *PKCS11URI) setQuery(name string, v []byte) error {
	switch name {
	case "module-path":
		u.ModulePath = string(v)
	case "module-name":
		u.ModuleName = string(v)
	case "pin-value":
		u.PinValue = string(v)
	case "pin-source":
		u.PinSource = string(v)
	default:
		if strings.HasPrefix(name, "x-") {
			return nil
		}
		return fmt.Errorf("pkcs11 URI: unknown query attribute %q", name)
	}
	return nil
}

// percentDecode decodes %XX escapes; other bytes must be printable ASCII
// and not a URI delimiter.
func percentDecode(s string) ([]byte, error) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+2 >= len(s) {
				return nil, errors.New("truncated percent-encoding")
			}
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return nil, errors.New("bad percent-encoding")
			}
			out = append(out, hi<<4|lo)
			i += 2
		case c <= ' ' || c >= 0x7f || c == '"' || c == '<' || c == '>' || c == '\\' || c == '^' || c == '`' || c == '{' || c == '}':
			return nil, fmt.Errorf("character %q must be percent-encoded", c)
		default:
			out = append(out, c)
		}
	}
	return out, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// encodeValue percent-encodes all but unreserved characters (RFC 3986).
func encodeValue(v []byte) string {
	var b strings.Builder
	for _, c := range v {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
