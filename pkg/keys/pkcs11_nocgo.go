//go:build !cgo

package keys

import "errors"

// FindToken needs cgo.
func FindToken(ref string, o Options) (*Token, error) {
	_, err := openPKCS11(ref, &o)
	return nil, err
}

var (
	ErrNeedPIN  = errors.New("needs a PIN")
	ErrWrongPIN = errors.New("wrong PIN")
	ErrNoToken  = errors.New("no such token")
	ErrNoObject = errors.New("no such key")
)

func openPKCS11(ref string, o *Options) (*Key, error) {
	if _, err := ParsePKCS11URI(ref); err != nil {
		return nil, err
	}
	return nil, errors.New("pkcs11: this build has no PKCS#11 support (built with CGO_ENABLED=0)")
}
