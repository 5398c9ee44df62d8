package sign

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// seedBlobs are sign-file outputs kept in testdata: real PKCS#7 messages of
// each shape (RSA and ECDSA, issuer+serial and SKID).
func seedBlobs(f *testing.F) [][]byte {
	paths, _ := filepath.Glob("testdata/*.p7s")
	var out [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		f.Fatal("no testdata/*.p7s seeds")
	}
	return out
}

// FuzzParsePKCS7: the PKCS#7 parser never panics, and whatever it accepts
// can be described and checked without panicking.
func FuzzParsePKCS7(f *testing.F) {
	for _, b := range seedBlobs(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sd, err := parseSignedData(data)
		if err != nil {
			return
		}
		if len(sd.signers) == 0 {
			t.Fatal("accepted a message without signers")
		}
		describeSegment(Segment{Blob: data})
		verifySigned(sd, bytes.NewReader([]byte("module")), nil, Policy{MLDSAAuthAttrs: true})
	})
}

// FuzzParseTrailer: finding appended signatures never panics, never reads
// outside the input, and what it finds tiles the end of the input exactly.
func FuzzParseTrailer(f *testing.F) {
	for _, b := range seedBlobs(f) {
		mod := append([]byte("\x7fELF module body"), b...)
		f.Add(append(mod, Trailer(len(b))...))
	}
	f.Add([]byte(Magic))
	f.Add(append(make([]byte, 12), Magic...))
	f.Fuzz(func(t *testing.T, data []byte) {
		segs, err := readSegments(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		end := int64(len(data))
		for _, s := range segs {
			if s.End() != end || s.Offset < 0 || s.Offset > end {
				t.Fatalf("segment %+v does not end at %d", s.Info, end)
			}
			if !bytes.Equal(s.Blob, data[s.Offset:s.Offset+int64(len(s.Blob))]) {
				t.Fatal("blob is not the bytes at its offset")
			}
			end = s.Offset
		}
	})
}
