package sign

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/modfile"
)

// A compressed module is streamed: decompressed, with its last bytes held
// back in a delay line until the end, where the appended signatures are
// found among them; everything before goes on at once (to the hash and the
// compressor of the signing pass, or nowhere for a scan). Memory is bounded
// by the hold, not the module.
//
// defaultHold covers every real case: a signature is a few KiB (ML-DSA-87
// about 5 KiB), and even 16 of them fit. Signatures reaching further back
// make the pass start again with the hold they need (errHold); readSegments
// bounds that by maxStacked signatures of maxSigLen bytes each.
const defaultHold = 256 << 10

// errHold says the signatures reach back further than the hold.
type errHold struct{ need int64 }

func (e errHold) Error() string {
	return fmt.Sprintf("signatures reach %d bytes back from the end", e.need)
}

// writeError marks a failure to write the output, as opposed to reading
// the module.
type writeError struct{ err error }

func (w writeError) Error() string { return w.err.Error() }
func (w writeError) Unwrap() error { return w.err }

// scanStream finds a compressed module's signatures by decompressing it.
func (m *module) scanStream() error {
	hold := int64(defaultHold)
	for {
		err := m.stream(io.Discard, hold)
		var short errHold
		if !errors.As(err, &short) {
			return err
		}
		hold = short.need
	}
}

// stream decompresses the module from its start and writes its bytes
// without signatures to out; it sets size and segs, and checks that the
// bytes written are an ELF relocatable object (out gets them before the
// check ends: whoever writes them somewhere must drop them on error).
func (m *module) stream(out io.Writer, hold int64) error {
	if _, err := m.file.Seek(0, io.SeekStart); err != nil {
		return err
	}
	r, c, err := modfile.Stream(m.file, m.limit)
	if err != nil {
		return err
	}
	defer r.Close()
	m.container = c
	d := &delayLine{out: out, hold: int(hold), buf: make([]byte, 0, 2*hold+copyBuf)}
	buf := getChunk()
	defer putChunk(buf)
	if _, err := io.CopyBuffer(d, r, buf); err != nil {
		if d.werr != nil {
			return writeError{d.werr}
		}
		return fmt.Errorf("decompress %s: %w", m.path, err)
	}
	size := d.emitted + int64(len(d.buf))
	segs, err := readSegments(tailAt{buf: d.buf, base: d.emitted, size: size}, size)
	var short errHold
	if errors.As(err, &short) {
		return short
	}
	if err != nil {
		return classify(fmt.Errorf("%s: %w", m.path, err))
	}
	m.size, m.segs = size, segs
	unsigned := m.unsignedLen()
	if err := checkELFHeader(d.head, unsigned); err != nil {
		if len(segs) > 0 && checkELFHeader(d.head, size) == nil {
			return classify(fmt.Errorf("%s: %w: its signature length cuts into the module (%v)", m.path, errTrailer, err))
		}
		return fmt.Errorf("%s: %w", m.path, err)
	}
	if _, err := out.Write(d.buf[:unsigned-d.emitted]); err != nil {
		return writeError{err}
	}
	m.scanned = true
	return nil
}

// copyBuf is the size of the chunks the write path moves.
const copyBuf = 256 << 10

// chunks recycles copyBuf-sized buffers: bulk signing moves thousands of
// modules of tens of KiB, and a fresh zeroed buffer for each showed up in
// profiles.
var chunks = sync.Pool{New: func() any { b := make([]byte, copyBuf); return &b }}

func getChunk() []byte { return (*chunks.Get().(*[]byte))[:copyBuf] }

func putChunk(b []byte) {
	if cap(b) == copyBuf {
		b = b[:copyBuf]
		chunks.Put(&b)
	}
}

// delayLine passes on all but the last hold bytes written to it, and keeps
// the first bytes (the ELF header).
type delayLine struct {
	out     io.Writer
	hold    int
	buf     []byte
	emitted int64
	head    []byte
	werr    error
}

func (d *delayLine) Write(p []byte) (int, error) {
	if len(d.head) < 64 {
		d.head = append(d.head, p[:min(64-len(d.head), len(p))]...)
	}
	d.buf = append(d.buf, p...)
	if len(d.buf) >= 2*d.hold {
		k := len(d.buf) - d.hold
		if _, err := d.out.Write(d.buf[:k]); err != nil {
			d.werr = err
			return 0, err
		}
		d.emitted += int64(k)
		d.buf = d.buf[:copy(d.buf, d.buf[k:])]
	}
	return len(p), nil
}

// tailAt reads the end of a stream of size bytes, of which buf holds the
// bytes from base on; reading before base asks for a longer hold.
type tailAt struct {
	buf        []byte
	base, size int64
}

func (t tailAt) ReadAt(p []byte, off int64) (int, error) {
	if off < t.base {
		return 0, errHold{need: t.size - off}
	}
	if off >= t.size {
		return 0, io.EOF
	}
	n := copy(p, t.buf[off-t.base:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// asyncPipe hands chunks from a writer to a reader in another goroutine
// without waiting for each to be read: the signing hash runs on one CPU
// while the file is read, compressed and written on another. At most
// pipeDepth chunks are in flight.
type asyncPipe struct {
	ch   chan []byte
	free chan []byte
	done chan struct{}
	err  error // why the writer stopped; read after ch is closed
	cur  []byte
	rbuf []byte
}

const pipeDepth = 4

func newAsyncPipe() *asyncPipe {
	return &asyncPipe{ch: make(chan []byte, pipeDepth), free: make(chan []byte, pipeDepth+2), done: make(chan struct{})}
}

var errPipeClosed = errors.New("reader stopped")

func (a *asyncPipe) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		var b []byte
		select {
		case b = <-a.free:
		default:
			b = getChunk()
		}
		k := min(len(p), copyBuf)
		b = append(b[:0], p[:k]...)
		select {
		case a.ch <- b:
		case <-a.done:
			return 0, errPipeClosed
		}
		p = p[k:]
	}
	return n, nil
}

// closeWrite ends the stream: the reader gets err, or io.EOF when nil.
func (a *asyncPipe) closeWrite(err error) {
	a.err = err
	close(a.ch)
}

// next makes the next chunk current; false at the end.
func (a *asyncPipe) next() (bool, error) {
	if a.rbuf != nil {
		select {
		case a.free <- a.rbuf:
		default:
		}
		a.rbuf = nil
	}
	b, ok := <-a.ch
	if !ok {
		if a.err != nil {
			return false, a.err
		}
		return false, io.EOF
	}
	a.cur, a.rbuf = b, b
	return true, nil
}

func (a *asyncPipe) Read(p []byte) (int, error) {
	for len(a.cur) == 0 {
		if ok, err := a.next(); !ok {
			return 0, err
		}
	}
	n := copy(p, a.cur)
	a.cur = a.cur[n:]
	return n, nil
}

// WriteTo hands whole chunks to w (io.Copy uses it).
func (a *asyncPipe) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if len(a.cur) == 0 {
			ok, err := a.next()
			if !ok {
				if err == io.EOF {
					err = nil
				}
				return total, err
			}
		}
		n, err := w.Write(a.cur)
		total += int64(n)
		a.cur = a.cur[n:]
		if err != nil {
			return total, err
		}
	}
}

// release gives the pipe's buffers back, once both ends are done.
func (a *asyncPipe) release() {
	for {
		select {
		case b := <-a.free:
			putChunk(b)
		default:
			for b := range a.ch {
				putChunk(b)
			}
			if a.rbuf != nil {
				putChunk(a.rbuf)
				a.rbuf, a.cur = nil, nil
			}
			return
		}
	}
}

// closeRead tells the writer nobody reads any more.
func (a *asyncPipe) closeRead() {
	select {
	case <-a.done:
	default:
		close(a.done)
	}
}
