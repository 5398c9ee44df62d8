package sign

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// withCertificates rebuilds a sign-file blob with a [0] certificates field
// holding certs, between encapContentInfo and signerInfos.
func withCertificates(t *testing.T, blob []byte, certs ...[]byte) []byte {
	t.Helper()
	in := cryptobyte.String(blob)
	var ci, content, sd, version, digests, encap, signers cryptobyte.String
	var ctype cryptobyte.String
	if !in.ReadASN1(&ci, cbasn1.SEQUENCE) || !ci.ReadASN1Element(&ctype, cbasn1.OBJECT_IDENTIFIER) ||
		!ci.ReadASN1(&content, cbasn1.Tag(0).Constructed().ContextSpecific()) || !content.ReadASN1(&sd, cbasn1.SEQUENCE) ||
		!sd.ReadASN1Element(&version, cbasn1.INTEGER) || !sd.ReadASN1Element(&digests, cbasn1.SET) ||
		!sd.ReadASN1Element(&encap, cbasn1.SEQUENCE) || !sd.ReadASN1Element(&signers, cbasn1.SET) {
		t.Fatal("cannot take the seed apart")
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(ctype)
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddBytes(version)
				b.AddBytes(digests)
				b.AddBytes(encap)
				b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
					for _, c := range certs {
						b.AddBytes(c)
					}
				})
				b.AddBytes(signers)
			})
		})
	})
	return b.BytesOrPanic()
}

// TestEmbeddedCertificateMustParse: the kernel fails a load when a carried
// certificate does not parse, so the parser refuses it too.
func TestEmbeddedCertificateMustParse(t *testing.T) {
	seed, err := os.ReadFile("testdata/signfile-k2.p7s")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseSignedData(seed); err != nil {
		t.Fatalf("seed: %v", err)
	}
	bad := withCertificates(t, seed, []byte{0x30, 0x03, 0x02, 0x01, 0x01})
	if _, err := parseSignedData(bad); err == nil || !strings.Contains(err.Error(), "embedded certificate") {
		t.Fatalf("bad certificate accepted: %v", err)
	}
}

// TestTooManyStacked: a file of nothing but stacked signatures is refused
// after maxStacked of them, without reading the rest.
func TestTooManyStacked(t *testing.T) {
	seed, _ := os.ReadFile("testdata/signfile-k2.p7s")
	one := append(append([]byte{}, seed...), Trailer(len(seed))...)
	data := append([]byte("\x7fELF"), bytes.Repeat(one, maxStacked+1)...)
	segs, err := readSegments(bytes.NewReader(data), int64(len(data)))
	if err == nil || !errors.Is(err, errTrailer) || !strings.Contains(err.Error(), "more than 16 signatures stacked") {
		t.Fatalf("%d segments, err %v", len(segs), err)
	}
	ok := append([]byte("\x7fELF"), bytes.Repeat(one, maxStacked)...)
	if segs, err := readSegments(bytes.NewReader(ok), int64(len(ok))); err != nil || len(segs) != maxStacked {
		t.Fatalf("%d stacked: %d, %v", maxStacked, len(segs), err)
	}
}
