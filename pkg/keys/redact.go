package keys

import "strings"

// Redact names a key reference for messages: a pkcs11: URI without its
// query (which may hold pin-value); a path as it is.
func Redact(ref string) string {
	if !strings.HasPrefix(strings.ToLower(ref), "pkcs11:") {
		return ref
	}
	if u, err := ParsePKCS11URI(ref); err == nil {
		return u.String()
	}
	// Unparseable: any part of it may hold a PIN.
	return "pkcs11: URI (unparseable)"
}
