package modfile

import (
	"encoding/binary"
	"hash/crc32"
)

// fixBlockHeaderCRC rewrites the CRC32 that ends an xz block header.
func fixBlockHeaderCRC(h []byte) {
	binary.LittleEndian.PutUint32(h[len(h)-4:], crc32.ChecksumIEEE(h[:len(h)-4]))
}
