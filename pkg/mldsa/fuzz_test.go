package mldsa

import (
	"crypto/rand"
	"testing"
)

// FuzzParsePublicKey: the SubjectPublicKeyInfo parser never panics.
func FuzzParsePublicKey(f *testing.F) {
	for _, p := range All {
		priv, _ := p.GenerateKey(rand.Reader)
		spki, _ := MarshalPublicKey(priv.Public())
		f.Add(spki)
	}
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		pub, err := ParsePublicKey(der)
		if err == nil {
			if _, ok := Of(pub); !ok {
				t.Fatal("parsed a key of no parameter set")
			}
		}
	})
}

// FuzzParsePKCS8: the PKCS#8 parser never panics, in any of the three forms.
func FuzzParsePKCS8(f *testing.F) {
	for _, p := range All {
		priv, _ := p.GenerateKey(rand.Reader)
		for _, form := range []Form{Both, SeedOnly, ExpandedOnly} {
			der, _ := MarshalPKCS8(priv, form)
			f.Add(der)
		}
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		priv, err := ParsePKCS8(der)
		if err == nil {
			priv.Public()
		}
	})
}
