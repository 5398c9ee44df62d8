package status

import (
	"errors"
	"strings"

	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
)

// Token is the configured PKCS#11 signing token (for a pkcs11: key): can
// it be reached right now, and through which p11-kit server? Finding it
// needs no PIN and signs nothing.
type Token struct {
	URI string `json:"uri"` // without its query: no PIN
	// Server is the p11-kit server's address when the token is remote.
	Server string `json:"server,omitempty"`
	Module string `json:"module,omitempty"`
	// Reachable: the token answered and is the one the URI names.
	Reachable bool   `json:"reachable"`
	Label     string `json:"label,omitempty"`
	Serial    string `json:"serial,omitempty"`
	// Timeout bounds each call (pkcs11_timeout).
	Timeout string `json:"timeout"`
	// Unreachable: the signer is down, refusing, or silent (as opposed to
	// a token that answers but is not the one named).
	Unreachable bool   `json:"unreachable,omitempty"`
	Error       string `json:"error,omitempty"`
}

// CheckToken looks for the token of ref, a pkcs11: URI, as the hook would
// (o: the configured module, server and timeout). It returns nil for a key
// that is not on a token.
func CheckToken(ref string, o keys.Options) *Token {
	if !strings.HasPrefix(strings.ToLower(ref), "pkcs11:") {
		return nil
	}
	t := &Token{URI: keys.Redact(ref), Module: o.PKCS11Module, Timeout: o.Timeout().String()}
	if o.PKCS11Server != "" {
		t.Server, _ = keys.ParseP11KitServer(o.PKCS11Server)
	}
	found, err := keys.FindToken(ref, o)
	if err != nil {
		t.Error = err.Error()
		t.Unreachable = errors.Is(err, keys.ErrTokenUnreachable)
		return t
	}
	t.Reachable, t.Label, t.Serial, t.Module = true, found.Label, found.Serial, found.Module
	return t
}
