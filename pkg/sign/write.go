package sign

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/atomicfile"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/modfile"
)

// errAlreadySigned stops a signing pass that found the module signed as asked.
var errAlreadySigned = errors.New("already signed")

// prepared is a module written into a pending new version, not yet in
// place; the module stays locked until commit.
type prepared struct {
	m   *module
	p   *atomicfile.Pending // nil when nothing changes
	res *Result
}

// commit puts one prepared module in place (fsync, rename, fsync of the
// directory) and releases the module.
func (pr *prepared) commit() error {
	defer pr.m.Close()
	if pr.p == nil {
		return nil
	}
	return writeFailed(pr.p.Path(), pr.p.Commit())
}

// unchanged is the result for a module left as it is.
func (m *module) unchanged() (*prepared, error) {
	res := &Result{Path: m.path, Format: m.format, P7S: m.segs[0].Blob}
	var err error
	if res.SHA256, err = m.fileSHA256(); err != nil {
		m.Close()
		return nil, err
	}
	return &prepared{m: m, res: res}, nil
}

// scanPlain finds an uncompressed module's signatures before writing; a
// compressed module's are found by the writing pass.
func (m *module) scanPlain() error {
	if m.format != modfile.None {
		return nil
	}
	return m.scan()
}

// prepare writes the new version of the module to a pending file for dst:
// its unsigned bytes and, unless makeBlob is nil, the signature makeBlob
// returns for them, with the trailer. It consumes m: on error m is closed.
func (m *module) prepare(dst string, makeBlob func(io.Reader) ([]byte, error)) (_ *prepared, err error) {
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	st, perm := m.st, m.st.Mode().Perm()
	if dst != m.path {
		if st, err = os.Stat(dst); err != nil {
			st = nil
		}
	}
	removeDebris(filepath.Dir(dst))
	p, err := atomicfile.Begin(dst, st, perm)
	if err != nil {
		return nil, writeFailed(dst, err)
	}
	res, err := m.rewrite(p, makeBlob)
	if errors.Is(err, errAlreadySigned) {
		p.Abort()
		return m.unchanged()
	}
	if err != nil {
		p.Abort()
		var we writeError
		if errors.As(err, &we) {
			return nil, writeFailed(dst, we.err)
		}
		return nil, err
	}
	return &prepared{m: m, p: p, res: res}, nil
}

// writeFailed says that writing dst failed and, as the write is atomic,
// that dst is as it was.
func writeFailed(dst string, err error) error {
	if err == nil || errors.Is(err, atomicfile.ErrNotDurable) {
		return err
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	hint := ""
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		hint = " (free some space there and run again)"
	}
	return fmt.Errorf("write %s: %w; the file is unchanged%s", dst, err, hint)
}

// rewrite writes the new version of the module into p, in one pass over
// the module: read (and decompress), drop the old signatures, hash, write
// (and compress). The signature is made on another goroutine from the
// bytes as they pass. Signatures reaching back further than the delay line
// holds make it start again with a longer one.
func (m *module) rewrite(p *atomicfile.Pending, makeBlob func(io.Reader) ([]byte, error)) (*Result, error) {
	hold := int64(defaultHold)
	for {
		res, err := m.rewriteOnce(p, makeBlob, hold)
		var short errHold
		if !errors.As(err, &short) {
			return res, err
		}
		if err := p.Reset(); err != nil {
			return nil, writeError{err}
		}
		hold = short.need
	}
}

type blobResult struct {
	blob []byte
	err  error
}

func (m *module) rewriteOnce(p *atomicfile.Pending, makeBlob func(io.Reader) ([]byte, error), hold int64) (*Result, error) {
	sum := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(p, sum), 64<<10)
	enc, err := modfile.NewWriter(bw, m.format)
	if err != nil {
		return nil, err
	}
	var out io.Writer = enc
	pipe := newAsyncPipe()
	done := make(chan blobResult, 1)
	if makeBlob != nil {
		out = io.MultiWriter(enc, pipe)
		go func() {
			blob, err := makeBlob(pipe)
			pipe.closeRead()
			done <- blobResult{blob, err}
		}()
	} else {
		done <- blobResult{}
	}
	feedErr := m.feed(out, hold)
	pipe.closeWrite(feedErr)
	b := <-done
	pipe.release()
	if b.err != nil && !errors.Is(b.err, errAlreadySigned) && (feedErr == nil || errors.Is(feedErr, errPipeClosed)) {
		return nil, b.err
	}
	if feedErr != nil {
		return nil, feedErr
	}
	if b.err != nil {
		return nil, b.err
	}
	res := &Result{Path: p.Path(), Format: m.format, Changed: true, Replaced: len(m.segs), P7S: b.blob}
	if b.blob != nil {
		if _, err := enc.Write(append(b.blob, Trailer(len(b.blob))...)); err != nil {
			return nil, writeError{err}
		}
	}
	if err := enc.Close(); err != nil {
		return nil, writeError{err}
	}
	if err := bw.Flush(); err != nil {
		return nil, writeError{err}
	}
	copy(res.SHA256[:], sum.Sum(nil))
	return res, nil
}

// feed writes the module's unsigned bytes to out: in place for an
// uncompressed module (already scanned), streamed for a compressed one.
func (m *module) feed(out io.Writer, hold int64) error {
	if m.format != modfile.None {
		return m.stream(out, hold)
	}
	w := &recordingWriter{w: out}
	buf := getChunk()
	defer putChunk(buf)
	_, err := io.CopyBuffer(w, io.NewSectionReader(m.file, 0, m.unsignedLen()), buf)
	if w.err != nil {
		return writeError{w.err}
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", m.path, err)
	}
	return nil
}

type recordingWriter struct {
	w   io.Writer
	err error
}

func (r *recordingWriter) Write(p []byte) (int, error) {
	n, err := r.w.Write(p)
	if err != nil {
		r.err = err
	}
	return n, err
}

// cleaned lists the directories this process has cleared of debris.
var cleaned sync.Map

// removeDebris removes, once per process and directory, the temporary
// files of module writes that a killed run left in dir (atomicfile's rules:
// only ours, only dead ones).
func removeDebris(dir string) {
	if _, done := cleaned.LoadOrStore(dir, true); done {
		return
	}
	atomicfile.RemoveDebris(dir, modfile.IsModule)
}
