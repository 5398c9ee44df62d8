package modfile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Container describes a compressed module's wrapper: what the kernel's own
// decompressor (CONFIG_MODULE_DECOMPRESS) needs of it.
type Container struct {
	Format Format
	// KernelReady reports whether in-kernel decompression accepts the file;
	// Why says what it refuses when not.
	KernelReady bool
	Why         string
}

// maxXZDict refuses xz files whose decoder would allocate more than xz -9
// ever uses: the dictionary size comes from the file, and a 300-byte file
// can ask for 4 GiB.
const maxXZDict = 64 << 20

// kernelXZDict is what the kernel's xz decoder is set up for (1 MiB).
const kernelXZDict = 1 << 20

// xz check IDs.
const (
	xzCheckNone  = 0
	xzCheckCRC32 = 1
)

// inspectContainer checks a compressed module before it is decompressed.
func inspectContainer(r io.ReaderAt, size int64, f Format) (Container, error) {
	c := Container{Format: f, KernelReady: true}
	switch f {
	case XZ:
		check, dict, err := xzParams(r, size)
		if err != nil {
			return c, fmt.Errorf("xz: %w", err)
		}
		if dict > maxXZDict {
			return c, fmt.Errorf("xz: dictionary of %d MiB is larger than any module needs (%d MiB at most)", dict>>20, maxXZDict>>20)
		}
		switch {
		case check != xzCheckNone && check != xzCheckCRC32:
			c.KernelReady, c.Why = false, fmt.Sprintf("xz integrity check %s (the kernel takes CRC32 or none)", xzCheckName(check))
		case dict > kernelXZDict:
			c.KernelReady, c.Why = false, fmt.Sprintf("xz dictionary of %d KiB (the kernel takes 1 MiB at most)", dict>>10)
		}
	case Gzip:
		var hdr [4]byte
		if _, err := r.ReadAt(hdr[:], 0); err != nil {
			return c, fmt.Errorf("gzip: %w", err)
		}
		// The kernel's gzip header parser skips FNAME only.
		if hdr[3]&^0x08 != 0 {
			c.KernelReady, c.Why = false, fmt.Sprintf("gzip header flags %#x (the kernel skips only a file name)", hdr[3])
		}
	}
	return c, nil
}

func xzCheckName(id byte) string {
	switch id {
	case 0:
		return "none"
	case 1:
		return "CRC32"
	case 4:
		return "CRC64"
	case 10:
		return "SHA-256"
	}
	return fmt.Sprintf("#%d", id)
}

var errXZ = errors.New("not a well-formed single xz stream")

// xzParams returns the integrity check ID of a single-stream xz file and
// the largest LZMA2 dictionary its blocks ask for, reading only the stream
// header, the index and the block headers (xz file format 1.1.0).
func xzParams(r io.ReaderAt, size int64) (check byte, maxDict int64, err error) {
	read := func(off int64, n int) ([]byte, error) {
		if off < 0 || n < 0 || off+int64(n) > size {
			return nil, errXZ
		}
		b := make([]byte, n)
		if _, err := r.ReadAt(b, off); err != nil {
			return nil, err
		}
		return b, nil
	}
	hdr, err := read(0, 12)
	if err != nil {
		return 0, 0, err
	}
	check = hdr[7] & 0x0f
	end := size // skip stream padding: groups of four zero bytes
	for end >= 16 {
		p, err := read(end-4, 4)
		if err != nil {
			return 0, 0, err
		}
		if binary.LittleEndian.Uint32(p) != 0 {
			break
		}
		end -= 4
	}
	footer, err := read(end-12, 12)
	if err != nil || string(footer[10:]) != "YZ" {
		return 0, 0, errXZ
	}
	indexSize := (int64(binary.LittleEndian.Uint32(footer[4:8])) + 1) * 4
	indexStart := end - 12 - indexSize
	if indexSize > 1<<20 || indexStart < 12 {
		return 0, 0, errXZ
	}
	index, err := read(indexStart, int(indexSize))
	if err != nil || index[0] != 0 {
		return 0, 0, errXZ
	}
	p := index[1:]
	records, ok := uvarint(&p)
	if !ok || records > uint64(len(p)/2) {
		return 0, 0, errXZ
	}
	off := int64(12)
	for i := uint64(0); i < records; i++ {
		unpadded, ok1 := uvarint(&p)
		_, ok2 := uvarint(&p) // uncompressed size
		if !ok1 || !ok2 || unpadded > uint64(indexStart) {
			return 0, 0, errXZ
		}
		dict, err := xzBlockDict(read, off)
		if err != nil {
			return 0, 0, err
		}
		maxDict = max(maxDict, dict)
		off += (int64(unpadded) + 3) &^ 3
	}
	if off != indexStart {
		return 0, 0, errXZ
	}
	return check, maxDict, nil
}

// xzBlockDict returns the LZMA2 dictionary size a block header at off names.
func xzBlockDict(read func(int64, int) ([]byte, error), off int64) (int64, error) {
	first, err := read(off, 1)
	if err != nil || first[0] == 0 {
		return 0, errXZ
	}
	h, err := read(off, (int(first[0])+1)*4)
	if err != nil {
		return 0, err
	}
	flags := h[1]
	p := h[2:]
	for _, bit := range []byte{0x40, 0x80} { // compressed, uncompressed size
		if flags&bit != 0 {
			if _, ok := uvarint(&p); !ok {
				return 0, errXZ
			}
		}
	}
	var dict int64
	for n := int(flags&3) + 1; n > 0; n-- {
		id, ok1 := uvarint(&p)
		propLen, ok2 := uvarint(&p)
		if !ok1 || !ok2 || propLen > uint64(len(p)) {
			return 0, errXZ
		}
		props := p[:propLen]
		p = p[propLen:]
		if id == 0x21 { // LZMA2
			if len(props) != 1 || props[0] > 40 {
				return 0, errXZ
			}
			if props[0] == 40 {
				dict = 1<<32 - 1
			} else {
				dict = int64(2|props[0]&1) << (props[0]/2 + 11)
			}
		}
	}
	return dict, nil
}

// uvarint reads xz's multibyte integer (at most 9 bytes).
func uvarint(p *[]byte) (uint64, bool) {
	var v uint64
	for i := 0; i < 9 && i < len(*p); i++ {
		b := (*p)[i]
		v |= uint64(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			*p = (*p)[i+1:]
			return v, true
		}
	}
	return 0, false
}
