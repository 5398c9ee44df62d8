package sign

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Magic ends every signed module.
const Magic = "~Module signature appended~\n"

// trailerLen is the size of struct module_signature plus the magic.
const trailerLen = sigInfoLen + len(Magic)

// sigInfoLen is the size of struct module_signature.
const sigInfoLen = 12

// idPKCS7 is PKEY_ID_PKCS7, the only id_type the kernel accepts.
const idPKCS7 = 2

// ModuleSignature is the kernel's struct module_signature.
type ModuleSignature struct {
	Algo, Hash, IDType, SignerLen, KeyIDLen uint8
	Pad                                     [3]uint8
	SigLen                                  uint32 // big-endian on disk
}

func (m ModuleSignature) marshal() []byte {
	b := make([]byte, sigInfoLen)
	b[0], b[1], b[2], b[3], b[4] = m.Algo, m.Hash, m.IDType, m.SignerLen, m.KeyIDLen
	copy(b[5:8], m.Pad[:])
	binary.BigEndian.PutUint32(b[8:], m.SigLen)
	return b
}

func unmarshalModuleSignature(b []byte) ModuleSignature {
	var m ModuleSignature
	m.Algo, m.Hash, m.IDType, m.SignerLen, m.KeyIDLen = b[0], b[1], b[2], b[3], b[4]
	copy(m.Pad[:], b[5:8])
	m.SigLen = binary.BigEndian.Uint32(b[8:])
	return m
}

// Trailer returns what sign-file appends after the PKCS#7 blob.
func Trailer(blobLen int) []byte {
	m := ModuleSignature{IDType: idPKCS7, SigLen: uint32(blobLen)}
	return append(m.marshal(), Magic...)
}

// A Segment locates one appended signature inside a file.
type Segment struct {
	// Offset is where the PKCS#7 blob starts: the length of everything it signs.
	Offset int64
	// Blob is the DER PKCS#7 message.
	Blob []byte
	Info ModuleSignature
}

// End returns the offset just past this signature's magic.
func (s Segment) End() int64 { return s.Offset + int64(len(s.Blob)) + int64(trailerLen) }

// maxSigLen bounds a PKCS#7 blob we are willing to read: a real one is a few
// KiB (ML-DSA-87 about 5 KiB); a bogus length must not make us allocate GiBs.
const maxSigLen = 1 << 20

// maxStacked bounds how many appended signatures are read: sign-file stacks
// one per run, and a file of nothing but tiny trailers must not make us read
// thousands of blobs.
const maxStacked = 16

// errTrailer reports a malformed struct module_signature.
var errTrailer = errors.New("malformed module signature trailer")

// readSegments finds every signature appended to the size bytes of r, last
// first. It stops at the first position that does not end with the magic.
// The kernel verifies only the last one (index 0).
func readSegments(r io.ReaderAt, size int64) ([]Segment, error) {
	var segs []Segment
	end := size
	tail := make([]byte, trailerLen)
	for end >= int64(trailerLen) {
		if _, err := r.ReadAt(tail, end-int64(trailerLen)); err != nil {
			return nil, fmt.Errorf("read trailer: %w", err)
		}
		if string(tail[sigInfoLen:]) != Magic {
			break
		}
		info := unmarshalModuleSignature(tail[:sigInfoLen])
		if err := checkModuleSignature(info); err != nil {
			return nil, err
		}
		body := end - int64(trailerLen)
		if int64(info.SigLen) > body || info.SigLen > maxSigLen {
			return nil, fmt.Errorf("%w: signature length %d does not fit in %d bytes", errTrailer, info.SigLen, body)
		}
		if len(segs) == maxStacked {
			return nil, fmt.Errorf("%w: more than %d signatures stacked", errTrailer, maxStacked)
		}
		blob := make([]byte, info.SigLen)
		off := body - int64(info.SigLen)
		if _, err := r.ReadAt(blob, off); err != nil {
			return nil, fmt.Errorf("read signature: %w", err)
		}
		segs = append(segs, Segment{Offset: off, Blob: blob, Info: info})
		end = off
	}
	return segs, nil
}

// checkModuleSignature applies the kernel's mod_check_sig rules.
func checkModuleSignature(m ModuleSignature) error {
	if m.IDType != idPKCS7 {
		return fmt.Errorf("%w: id_type %d is not PKCS#7 (2)", errTrailer, m.IDType)
	}
	if m.Algo != 0 || m.Hash != 0 || m.SignerLen != 0 || m.KeyIDLen != 0 || m.Pad != [3]uint8{} {
		return fmt.Errorf("%w: reserved fields are not zero", errTrailer)
	}
	if m.SigLen == 0 {
		return fmt.Errorf("%w: empty signature", errTrailer)
	}
	return nil
}
