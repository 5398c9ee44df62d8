// Package modfile reads and writes kernel module files as they lie on disk:
// plain .ko, or compressed .ko.xz, .ko.zst and .ko.gz, with the settings the
// kernel's in-kernel decompressor accepts, and replaces them atomically.
package modfile

import (
	"bufio"
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

// NewReader returns the decompressed content of r in format f. Reading
// more than limit bytes from it fails with ErrTooLarge, so that a
// decompression bomb is refused after limit bytes, whatever the format.
// Memory use is bounded by the format's window (the xz dictionary is
// checked by Decode before this is called).
func NewReader(r io.Reader, f Format, limit int64) (io.ReadCloser, error) {
	var dec io.Reader
	closer := func() {}
	switch f {
	case None:
		dec = r
	case XZ:
		xr, err := xz.ReaderConfig{SingleStream: false}.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
		dec = xr
	case Zstd:
		// The window is what the decoder allocates; zstd's own tool refuses
		// more than 128 MiB unless told otherwise.
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(limit)+1),
			zstd.WithDecoderMaxWindow(1<<27), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		dec, closer = zr, zr.Close
	case Gzip:
		gr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		dec, closer = gr, func() { gr.Close() }
	default:
		return nil, fmt.Errorf("unknown format %d", f)
	}
	return &limitedReader{r: dec, limit: limit, left: limit, format: f, close: closer}, nil
}

type limitedReader struct {
	r           io.Reader
	limit, left int64
	format      Format
	close       func()
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		l.left = -1
		return 0, fmt.Errorf("%w (%d MiB)", ErrTooLarge, l.limit>>20)
	}
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%s: %w", l.format, err)
	}
	return n, err
}

func (l *limitedReader) Close() error { l.close(); return nil }

// Decompress reads the whole module in format f from r, at most limit bytes
// of it once decompressed.
func Decompress(r io.Reader, f Format, limit int64) ([]byte, error) {
	dec, err := NewReader(r, f, limit)
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, dec); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// NewWriter returns a writer that compresses to w in format f with settings
// the kernel's in-kernel decompression (CONFIG_MODULE_DECOMPRESS) accepts:
//   - xz: CRC32 check (the kernel's xz refuses CRC64) and a 1 MiB dictionary;
//   - zstd: a single frame with a 1 MiB window (streamed: no content size,
//     which the kernel does not need);
//   - gzip: no file name, no extra fields (the kernel's header parser skips only FNAME).
//
// Close ends the compressed stream; it does not close w. Memory use is
// bounded by the window, whatever the amount written.
func NewWriter(w io.Writer, f Format) (io.WriteCloser, error) {
	switch f {
	case None:
		return nopCloser{w}, nil
	case XZ:
		return xz.WriterConfig{DictCap: 1 << 20, CheckSum: xz.CRC32}.NewWriter(w)
	case Zstd:
		// The default level, as kbuild's `zstd -T0` uses: "better" compresses
		// 3% smaller here at 2.5 times the CPU (docs/performance.md).
		return zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20),
			zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithLowerEncoderMem(true))
	case Gzip:
		return gzip.NewWriterLevel(w, gzip.BestCompression)
	}
	return nil, fmt.Errorf("unknown format %d", f)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// Compress writes data to w in format f, as NewWriter does.
func Compress(w io.Writer, data []byte, f Format) error {
	cw, err := NewWriter(w, f)
	if err != nil {
		return err
	}
	if _, err := cw.Write(data); err != nil {
		return err
	}
	return cw.Close()
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
	r, c, err := Stream(f, limit)
	if err != nil {
		return nil, c, err
	}
	defer r.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, r); err != nil {
		return nil, c, fmt.Errorf("decompress %s: %w", f.Name(), err)
	}
	return buf.Bytes(), c, nil
}

// Stream is Decode without holding the module: it checks the file's format
// and container and returns a reader of the decompressed bytes, from the
// file's start.
func Stream(f *os.File, limit int64) (io.ReadCloser, Container, error) {
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
	r, err := NewReader(bufio.NewReaderSize(f, 64<<10), format, limit)
	if err != nil {
		return nil, c, fmt.Errorf("decompress %s: %w", path, err)
	}
	return r, c, nil
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
	n, err := f.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
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
