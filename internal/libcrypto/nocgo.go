//go:build !(cgo && linux)

package libcrypto

import "crypto/rsa"

// Available reports whether libcrypto 3 is loaded: never without cgo.
func Available() bool { return false }

type pkey struct{}

func importRSA(*rsa.PrivateKey) (*pkey, error) { return nil, ErrUnavailable }

func (*pkey) sign(string, []byte, int) ([]byte, error) { return nil, ErrUnavailable }

func (*pkey) free() {}
