package sign

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/modfile"
)

// module is a module file opened for reading: its decompressed content and
// the signatures appended to it.
type module struct {
	path   string
	st     os.FileInfo // as opened, for the mode and owner to keep
	format modfile.Format
	// container says, for a compressed module, whether the kernel's own
	// decompressor takes it as it is.
	container modfile.Container
	content   io.ReaderAt // decompressed bytes
	size      int64
	data      []byte   // decompressed bytes, for compressed modules only
	file      *os.File // the file as it lies on disk
	segs      []Segment
}

// openModule opens path, decompressing it when its name says so, and finds
// its appended signatures. An uncompressed module is read in place, never
// loaded whole into memory.
func openModule(path string, limit int64) (*module, error) {
	f, st, err := modfile.Open(path)
	if err != nil {
		return nil, err
	}
	m := &module{path: path, st: st, file: f, format: modfile.FormatOf(path)}
	if m.format == modfile.None {
		m.content, m.size = f, st.Size()
	} else {
		data, c, err := modfile.Decode(f, limit)
		if err != nil {
			f.Close()
			return nil, err
		}
		m.container = c
		m.data, m.content, m.size = data, bytes.NewReader(data), int64(len(data))
	}
	if m.segs, err = readSegments(m.content, m.size); err != nil {
		m.Close()
		return nil, classify(fmt.Errorf("%s: %w", path, err))
	}
	if err := checkELF(io.NewSectionReader(m.content, 0, m.unsignedLen())); err != nil {
		defer m.Close()
		if len(m.segs) > 0 && checkELF(io.NewSectionReader(m.content, 0, m.size)) == nil {
			// The whole file is a module, but not what the trailer leaves of it.
			return nil, classify(fmt.Errorf("%s: %w: its signature length cuts into the module (%v)", path, errTrailer, err))
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
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
