package mldsa

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"testing"
)

// BenchmarkKeyOp is the bare ML-DSA operation on a 64-byte message (what the
// signed-attributes form signs is about 100 bytes): the cost per module
// beyond reading and hashing it.
func BenchmarkKeyOp(b *testing.B) {
	msg := make([]byte, 64)
	for _, p := range All {
		priv, err := p.GenerateKey(rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		sig, _ := priv.Sign(nil, msg, crypto.Hash(0))
		b.Run(p.Short+"/sign", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := priv.Sign(nil, msg, crypto.Hash(0)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(p.Short+"/verify", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if !Verify(priv.Public(), msg, sig) {
					b.Fatal("does not verify")
				}
			}
		})
		b.Run(p.Short+"/keygen", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := p.GenerateKey(rand.Reader); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReference signs and verifies a SHA-512 digest with RSA-4096 and
// P-384 in the same run, so ML-DSA's numbers can be read on a busy machine.
func BenchmarkReference(b *testing.B) {
	digest := make([]byte, 64)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 4096)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	for _, k := range []struct {
		name string
		key  crypto.Signer
	}{{"rsa4096", rsaKey}, {"p384", ecKey}} {
		b.Run(k.name+"/sign", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := k.key.Sign(rand.Reader, digest, crypto.SHA512); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	sig, _ := rsaKey.Sign(rand.Reader, digest, crypto.SHA512)
	b.Run("rsa4096/verify", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if rsa.VerifyPKCS1v15(&rsaKey.PublicKey, crypto.SHA512, digest, sig) != nil {
				b.Fatal("does not verify")
			}
		}
	})
	esig, _ := ecKey.Sign(rand.Reader, digest, crypto.SHA512)
	b.Run("p384/verify", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if !ecdsa.VerifyASN1(&ecKey.PublicKey, digest, esig) {
				b.Fatal("does not verify")
			}
		}
	})
}
