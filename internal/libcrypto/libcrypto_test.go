package libcrypto

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"testing"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
)

var testKeys = map[int]*rsa.PrivateKey{}

func key(t testing.TB, bits int) *rsa.PrivateKey {
	if k, ok := testKeys[bits]; ok {
		return k
	}
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	testKeys[bits] = k
	return k
}

// TestSameBytesAsGo: PKCS#1 v1.5 is deterministic, so libcrypto's signature
// must be byte for byte Go's, for every digest a module signature uses.
func TestSameBytesAsGo(t *testing.T) {
	testenv.Require(t, Available(), "libcrypto.so.3 (apt-get install libssl3)")
	for _, bits := range []int{2048, 4096} {
		k := key(t, bits)
		r, err := NewRSA(k)
		if err != nil {
			t.Fatal(err)
		}
		for h := range mdNames {
			d := h.New()
			d.Write([]byte("module bytes"))
			digest := d.Sum(nil)
			got, err := r.Sign(nil, digest, h)
			if err != nil {
				t.Fatalf("%d/%v: %v", bits, h, err)
			}
			want, err := rsa.SignPKCS1v15(nil, k, h, digest)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%d/%v: libcrypto's signature differs from Go's", bits, h)
			}
		}
		r.Close()
		if _, err := r.Sign(nil, make([]byte, 32), crypto.SHA256); err == nil {
			t.Fatal("signed with a closed key")
		}
	}
}

// TestRefuses: a digest of the wrong length and PSS are refused, not signed.
func TestRefuses(t *testing.T) {
	testenv.Require(t, Available(), "libcrypto.so.3 (apt-get install libssl3)")
	r, err := NewRSA(key(t, 2048))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Sign(nil, make([]byte, 31), crypto.SHA256); err == nil {
		t.Error("signed a 31-byte SHA-256 digest")
	}
	if _, err := r.Sign(nil, make([]byte, 32), &rsa.PSSOptions{Hash: crypto.SHA256}); err == nil {
		t.Error("signed with PSS")
	}
}

// TestWrapFallback: without libcrypto (Disabled) Wrap gives the key back.
func TestWrapFallback(t *testing.T) {
	k := key(t, 2048)
	Disabled = true
	defer func() { Disabled = false }()
	s, done := Wrap(k)
	defer done()
	if s != crypto.Signer(k) {
		t.Fatalf("Wrap gave %T while disabled", s)
	}
}

// TestWrapSwitches: the wrapped key signs with Go first, moves to libcrypto
// from the second signature on (once loaded), and gives Go's bytes all along.
func TestWrapSwitches(t *testing.T) {
	testenv.Require(t, Available(), "libcrypto.so.3 (apt-get install libssl3)")
	k := key(t, 2048)
	s, done := Wrap(k)
	l := s.(*lazyRSA)
	digest := make([]byte, 32)
	want, _ := rsa.SignPKCS1v15(nil, k, crypto.SHA256, digest)
	for i := 0; i < 50; i++ {
		got, err := s.Sign(nil, digest, crypto.SHA256)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("signature %d: %v, or not Go's bytes", i, err)
		}
		if i == 0 && l.fast.Load() != nil {
			t.Fatal("libcrypto loaded for the first signature")
		}
		if i == 1 {
			<-l.ready
			if l.fast.Load() == nil {
				t.Fatal("libcrypto not used after the second signature")
			}
		}
	}
	done()
	if l.fast.Load() != nil {
		t.Fatal("done left the key loaded")
	}
	if _, err := s.Sign(nil, digest, crypto.SHA256); err != nil {
		t.Fatalf("after done, Go still signs: %v", err)
	}
}

func BenchmarkSign(b *testing.B) {
	for _, bits := range []int{2048, 4096} {
		k := key(b, bits)
		digest := make([]byte, 32)
		b.Run("go/"+itoa(bits), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				rsa.SignPKCS1v15(nil, k, crypto.SHA256, digest)
			}
		})
		r, err := NewRSA(k)
		if err != nil {
			b.Skip(err)
		}
		b.Run("libcrypto/"+itoa(bits), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				r.Sign(nil, digest, crypto.SHA256)
			}
		})
	}
}

func itoa(n int) string { return map[int]string{2048: "2048", 4096: "4096"}[n] }
