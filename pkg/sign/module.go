package sign

import (
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/modfile"
)

// module is a module file opened for reading. An uncompressed module is
// read in place; a compressed one is streamed, never held in memory: its
// signatures are found by a scan (scan), or by the signing pass itself.
type module struct {
	path   string
	st     os.FileInfo // as opened, for the mode and owner to keep
	format modfile.Format
	limit  int64
	// container says, for a compressed module, whether the kernel's own
	// decompressor takes it as it is.
	container modfile.Container
	file      *os.File // the file as it lies on disk
	// size and segs are known once scanned (at once for a plain module).
	size    int64
	segs    []Segment
	scanned bool
}

// openFile opens path without reading the module yet. With lock, it takes
// the module lock: an exclusive flock(2) on the module file itself, held
// until Close, so that two runs signing the same module (two hooks, or a
// hook and `sign --dkms`) take turns. A run that waited finds the file
// replaced by the one before it and opens the new one.
func openFile(path string, limit int64, lock bool) (*module, error) {
	for {
		f, st, err := modfile.Open(path)
		if err != nil {
			return nil, err
		}
		m := &module{path: path, st: st, file: f, format: modfile.FormatOf(path), limit: limit}
		if !lock {
			return m, nil
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		now, err := os.Lstat(path)
		if err == nil && os.SameFile(now, st) {
			return m, nil
		}
		f.Close() // replaced while we waited: sign what is there now
	}
}

// openModule opens path and finds its appended signatures: in place for an
// uncompressed module, by one decompression pass for a compressed one.
func openModule(path string, limit int64, lock bool) (*module, error) {
	m, err := openFile(path, limit, lock)
	if err != nil {
		return nil, err
	}
	if err := m.scan(); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// scan finds the module's signatures and checks that what they leave is an
// ELF relocatable object.
func (m *module) scan() error {
	if m.scanned {
		return nil
	}
	if m.format != modfile.None {
		return m.scanStream()
	}
	m.size = m.st.Size()
	var err error
	if m.segs, err = readSegments(m.file, m.size); err != nil {
		return classify(fmt.Errorf("%s: %w", m.path, err))
	}
	m.scanned = true
	if err := checkELF(io.NewSectionReader(m.file, 0, m.unsignedLen())); err != nil {
		if len(m.segs) > 0 && checkELF(io.NewSectionReader(m.file, 0, m.size)) == nil {
			// The whole file is a module, but not what the trailer leaves of it.
			return classify(fmt.Errorf("%s: %w: its signature length cuts into the module (%v)", m.path, errTrailer, err))
		}
		return fmt.Errorf("%s: %w", m.path, err)
	}
	return nil
}

// unsignedReader returns the module's bytes without any signature; for a
// compressed module, a new decompression of the file. The module must have
// been scanned.
func (m *module) unsignedReader() (io.ReadCloser, error) { return m.prefixReader(m.unsignedLen()) }

// prefixReader returns the module's first n (decompressed) bytes.
func (m *module) prefixReader(n int64) (io.ReadCloser, error) {
	if m.format == modfile.None {
		return io.NopCloser(io.NewSectionReader(m.file, 0, n)), nil
	}
	r, _, err := modfile.Stream(m.file, m.limit)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(r, n), r}, nil
}

// ErrNotModule reports a file that is not an ELF relocatable object.
var ErrNotModule = errors.New("not a kernel module")

// checkELF accepts an ELF relocatable object whose headers lie inside the
// file: a truncated module or another kind of file is refused before any
// signing, as the kernel would refuse to load it.
func checkELF(r *io.SectionReader) error {
	var magic [4]byte
	if _, err := r.ReadAt(magic[:], 0); err != nil || string(magic[:]) != elf.ELFMAG {
		return ErrNotModule
	}
	f, err := elf.NewFile(r)
	if err != nil {
		return fmt.Errorf("%w: %v (truncated?)", ErrNotModule, err)
	}
	if f.Type != elf.ET_REL {
		return fmt.Errorf("%w: ELF type is %v, modules are ET_REL", ErrNotModule, f.Type)
	}
	return nil
}

// checkELFHeader is checkELF for a streamed module: it has the ELF header
// (the first 64 bytes) and the module's length, and checks that the section
// header table lies inside.
func checkELFHeader(head []byte, length int64) error {
	if int64(len(head)) > length {
		head = head[:length]
	}
	if len(head) < 4 || string(head[:4]) != elf.ELFMAG {
		return ErrNotModule
	}
	if len(head) < 52 {
		return fmt.Errorf("%w: ELF header cut short (truncated?)", ErrNotModule)
	}
	var bo binary.ByteOrder
	switch elf.Data(head[elf.EI_DATA]) {
	case elf.ELFDATA2LSB:
		bo = binary.LittleEndian
	case elf.ELFDATA2MSB:
		bo = binary.BigEndian
	default:
		return fmt.Errorf("%w: unknown ELF data encoding %d", ErrNotModule, head[elf.EI_DATA])
	}
	var shoff, shentsize, shnum uint64
	switch elf.Class(head[elf.EI_CLASS]) {
	case elf.ELFCLASS64:
		if len(head) < 64 {
			return fmt.Errorf("%w: ELF header cut short (truncated?)", ErrNotModule)
		}
		shoff, shentsize, shnum = bo.Uint64(head[40:]), uint64(bo.Uint16(head[58:])), uint64(bo.Uint16(head[60:]))
	case elf.ELFCLASS32:
		shoff, shentsize, shnum = uint64(bo.Uint32(head[32:])), uint64(bo.Uint16(head[46:])), uint64(bo.Uint16(head[48:]))
	default:
		return fmt.Errorf("%w: unknown ELF class %d", ErrNotModule, head[elf.EI_CLASS])
	}
	if t := elf.Type(bo.Uint16(head[16:])); t != elf.ET_REL {
		return fmt.Errorf("%w: ELF type is %v, modules are ET_REL", ErrNotModule, t)
	}
	if shnum > 0 && (shoff > uint64(length) || shnum*shentsize > uint64(length)-shoff) {
		return fmt.Errorf("%w: section headers end past the module's %d bytes (truncated?)", ErrNotModule, length)
	}
	return nil
}

// unsignedLen is the length of the module without any appended signature.
func (m *module) unsignedLen() int64 {
	if len(m.segs) == 0 {
		return m.size
	}
	return m.segs[len(m.segs)-1].Offset
}

func (m *module) Close() error { return m.file.Close() }

// fileSHA256 is the digest of the file as it lies on disk.
func (m *module) fileSHA256() ([sha256.Size]byte, error) {
	var out [sha256.Size]byte
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(m.file, 0, m.st.Size())); err != nil {
		return out, err
	}
	copy(out[:], h.Sum(nil))
	return out, nil
}
