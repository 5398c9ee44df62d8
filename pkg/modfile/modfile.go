// Package modfile reads and writes kernel module files as they lie on disk:
// plain .ko, or compressed .ko.xz, .ko.zst and .ko.gz, with the settings the
// kernel's in-kernel decompressor accepts, and replaces them atomically.
package modfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Format is a module file's compression.
type Format int

const (
	None Format = iota
	XZ
	Zstd
	Gzip
)

func (f Format) String() string {
	return [...]string{"none", "xz", "zstd", "gzip"}[f]
}

// Ext is the file name suffix after ".ko".
func (f Format) Ext() string {
	return [...]string{"", ".xz", ".zst", ".gz"}[f]
}

// Suffix is the whole module file name ending: ".ko", ".ko.xz", ...
func (f Format) Suffix() string { return ".ko" + f.Ext() }

// Formats lists every format a module file may have.
var Formats = []Format{None, XZ, Zstd, Gzip}

// Stem returns name without its module suffix ("foo" for "foo.ko.xz"), its
// format, and whether name is a module file name at all.
func Stem(name string) (stem string, f Format, ok bool) {
	for _, f := range Formats {
		if s, found := strings.CutSuffix(name, f.Suffix()); found && s != "" {
			return s, f, true
		}
	}
	return name, None, false
}

// IsModule reports whether name is a kernel module file name this package handles.
func IsModule(name string) bool {
	_, _, ok := Stem(name)
	return ok
}

// FormatOf returns the format a file name promises: .ko.xz is xz, and so on.
// A name that is not a module's is taken as an uncompressed module.
func FormatOf(name string) Format {
	_, f, _ := Stem(name)
	return f
}

// sniff returns the format given by a file's first bytes.
func sniff(head []byte) Format {
	switch {
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return XZ
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return Zstd
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return Gzip
	}
	return None
}

// DefaultLimit caps a decompressed module, so that a decompression bomb is
// refused instead of filling memory. The largest modules in a distribution
// kernel are tens of MiB.
const DefaultLimit = 512 << 20

// ErrTooLarge reports a module that decompresses past the limit.
var ErrTooLarge = errors.New("decompressed module exceeds the size limit")

// Decompress reads the whole module in format f from r, at most limit bytes
// of it once decompressed.
func Decompress(r io.Reader, f Format, limit int64) ([]byte, error) {
	var dec io.Reader
	switch f {
	case None:
		dec = r
	case XZ:
		cfg := xz.ReaderConfig{SingleStream: false}
		xr, err := cfg.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
		dec = xr
	case Zstd:
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(limit)+1))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		defer zr.Close()
		dec = zr
	case Gzip:
		gr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		defer gr.Close()
		dec = gr
	}
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(dec, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f, err)
	}
	if n > limit {
		return nil, fmt.Errorf("%w (%d MiB)", ErrTooLarge, limit>>20)
	}
	return buf.Bytes(), nil
}

// Compress writes data to w in format f with settings the kernel's in-kernel
// decompression (CONFIG_MODULE_DECOMPRESS) accepts:
//   - xz: CRC32 check (the kernel's xz refuses CRC64) and a 1 MiB dictionary;
//   - zstd: a single frame with its content size and a 1 MiB window;
//   - gzip: no file name, no extra fields (the kernel's header parser skips only FNAME).
func Compress(w io.Writer, data []byte, f Format) error {
	switch f {
	case None:
		_, err := w.Write(data)
		return err
	case XZ:
		cfg := xz.WriterConfig{DictCap: 1 << 20, CheckSum: xz.CRC32}
		xw, err := cfg.NewWriter(w)
		if err != nil {
			return err
		}
		if _, err := xw.Write(data); err != nil {
			return err
		}
		return xw.Close()
	case Zstd:
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20),
			zstd.WithEncoderLevel(zstd.SpeedBetterCompression))
		if err != nil {
			return err
		}
		defer enc.Close()
		_, err = w.Write(enc.EncodeAll(data, nil))
		return err
	case Gzip:
		gw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
		if err != nil {
			return err
		}
		if _, err := gw.Write(data); err != nil {
			return err
		}
		return gw.Close()
	}
	return fmt.Errorf("unknown format %d", f)
}

// Open opens a module file for reading without following a symbolic link
// (signing through a link would replace the link, not sign its target) and
// returns it with its metadata, taken from the open descriptor.
func Open(path string) (*os.File, os.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, syscall.ELOOP) {
		target, _ := os.Readlink(path)
		return nil, nil, fmt.Errorf("%s is a symbolic link (to %s): give the file itself", path, target)
	}
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s: not a regular file", path)
	}
	return f, st, nil
}

// Decode returns the decompressed bytes of the open module file f, whose
// name gives its format, and what its container is like. The format must
// match the file's magic bytes; at most limit bytes are decompressed.
func Decode(f *os.File, limit int64) ([]byte, Container, error) {
	path := f.Name()
	format, err := checkFormat(f, path)
	if err != nil {
		return nil, Container{}, err
	}
	st, err := f.Stat()
	if err != nil {
		return nil, Container{}, err
	}
	c, err := inspectContainer(f, st.Size(), format)
	if err != nil {
		return nil, c, fmt.Errorf("decompress %s: %w", path, err)
	}
	data, err := Decompress(f, format, limit)
	if err != nil {
		return nil, c, fmt.Errorf("decompress %s: %w", path, err)
	}
	return data, c, nil
}

// Read opens and decodes the module file at path.
func Read(path string, limit int64) ([]byte, Container, error) {
	f, _, err := Open(path)
	if err != nil {
		return nil, Container{}, err
	}
	defer f.Close()
	return Decode(f, limit)
}

// checkFormat compares the name's promise with the first bytes and rewinds f.
func checkFormat(f *os.File, path string) (Format, error) {
	head := make([]byte, 6)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return None, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return None, err
	}
	want, got := FormatOf(path), sniff(head[:n])
	if want != got {
		return None, fmt.Errorf("%s: file name says %s compression but its content is %s", path, want, got)
	}
	return want, nil
}
