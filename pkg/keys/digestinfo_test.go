package keys

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"testing"
)

// digestInfo + raw PKCS#1 v1.5 equals Go's own PKCS#1 v1.5 for every hash.
func TestDigestInfo(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for h := range hashOIDs {
		digest := bytes.Repeat([]byte{7}, h.Size())
		want, err := rsa.SignPKCS1v15(nil, key, h, digest)
		if err != nil {
			t.Fatalf("%v: %v", h, err)
		}
		msg, err := digestInfo(h, digest)
		if err != nil {
			t.Fatal(err)
		}
		got, err := rsa.SignPKCS1v15(nil, key, crypto.Hash(0), msg)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%v: DigestInfo differs from Go's", h)
		}
	}
	if _, err := digestInfo(crypto.MD5, make([]byte, 16)); err == nil {
		t.Error("MD5 DigestInfo made")
	}
}
