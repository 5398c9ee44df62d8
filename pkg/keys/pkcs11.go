package keys

import "errors"

func openPKCS11(ref string, o *Options) (*Key, error) {
	return nil, errors.New("pkcs11: not implemented yet")
}
