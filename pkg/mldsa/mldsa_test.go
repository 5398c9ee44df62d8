package mldsa

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"
)

func TestPKCS8Forms(t *testing.T) {
	for _, p := range All {
		priv, err := p.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		for _, form := range []Form{Both, SeedOnly, ExpandedOnly} {
			der, err := MarshalPKCS8(priv, form)
			if err != nil {
				t.Fatalf("%s %s: %v", p.Name, form, err)
			}
			got, err := ParsePKCS8(der)
			if err != nil {
				t.Fatalf("%s %s: %v", p.Name, form, err)
			}
			if !Equal(got.Public(), priv.Public()) {
				t.Errorf("%s %s: public key changed", p.Name, form)
			}
			if q, _ := Of(got); q != p {
				t.Errorf("%s %s: parsed as %v", p.Name, form, q)
			}
			if !IsPKCS8(der) {
				t.Errorf("%s %s: IsPKCS8 false", p.Name, form)
			}
		}
		// A seed that does not match the expanded key is refused.
		der, _ := MarshalPKCS8(priv, Both)
		i := bytes.Index(der, []byte{0x04, 0x20}) + 2
		der[i] ^= 1
		if _, err := ParsePKCS8(der); err == nil {
			t.Errorf("%s: mismatched seed and expandedKey accepted", p.Name)
		}
	}
}

func TestSPKIAndSelfSigned(t *testing.T) {
	for _, p := range All {
		priv, _ := p.GenerateKey(rand.Reader)
		spki, err := MarshalPublicKey(priv.Public())
		if err != nil {
			t.Fatal(err)
		}
		pub, err := ParsePublicKey(spki)
		if err != nil || !Equal(pub, priv.Public()) {
			t.Fatalf("%s: SPKI round trip: %v", p.Name, err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "t"},
			NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
			SubjectKeyId: []byte{1, 2, 3}, BasicConstraintsValid: true,
		}
		der, err := CreateSelfSigned(rand.Reader, tmpl, priv)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatalf("%s: crypto/x509 cannot parse the certificate: %v", p.Name, err)
		}
		if cert.PublicKey != nil {
			t.Fatalf("%s: crypto/x509 parsed the key itself (%T): drop the workaround", p.Name, cert.PublicKey)
		}
		if err := CheckSelfSigned(cert); err != nil {
			t.Fatal(err)
		}
		k, err := CertificateKey(cert)
		if err != nil || !Equal(k, priv.Public()) {
			t.Fatalf("%s: CertificateKey: %v", p.Name, err)
		}
		cert.Signature[10] ^= 1
		if CheckSelfSigned(cert) == nil {
			t.Errorf("%s: a flipped signature byte verified", p.Name)
		}
	}
}

func TestByName(t *testing.T) {
	for in, want := range map[string]*Params{"mldsa44": MLDSA44, "ML-DSA-65": MLDSA65, "ml-dsa-87": MLDSA87} {
		if got, ok := ByName(in); !ok || got != want {
			t.Errorf("ByName(%q) = %v", in, got)
		}
	}
	if _, ok := ByName("mldsa99"); ok {
		t.Error("mldsa99 accepted")
	}
}
