// Package atomicfile writes files so that a reader, or the file system after
// a crash, sees either the old content or the complete new one: a temporary
// file in the same directory, fsync, rename (or link, for a new file that
// must not replace one), fsync of the directory.
//
// Temporary files are named ".NAME.tmp-DIGITS" after the file they become,
// and their writer holds an exclusive flock(2) on them from creation until
// they are renamed or removed. A process killed meanwhile leaves the file
// behind, but its lock dies with it: RemoveDebris takes such files away, and
// never one whose lock is held (see debris.go).
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// Replace writes a new version of path through write and puts it in place
// atomically. The new file gets the mode and owner in st, the metadata of
// the file being replaced as it was opened. On any error the original is
// untouched and the temporary file removed.
func Replace(path string, st os.FileInfo, write func(w io.Writer) error) error {
	return writeAtomic(path, st, 0, write)
}

// Create writes path atomically as Replace does; a new file gets mode perm,
// an existing one keeps its mode and owner.
func Create(path string, perm os.FileMode, write func(w io.Writer) error) error {
	st, err := os.Stat(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	if err != nil {
		st = nil
	}
	return writeAtomic(path, st, perm, write)
}

// WriteFile writes data to path atomically, as Create does.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return Create(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// CreateNew writes data to a new file path with mode perm, atomically: it
// appears complete or not at all, and an existing path (even a dangling
// symbolic link) is never replaced: the error then wraps os.ErrExist.
func CreateNew(path string, data []byte, perm os.FileMode) error {
	p, err := Begin(path, nil, perm)
	if err != nil {
		return err
	}
	defer p.Abort()
	if _, err := p.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := p.sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// link(2), unlike rename(2), fails when the name exists.
	if err := os.Link(p.f.Name(), path); err != nil {
		var le *os.LinkError
		if errors.As(err, &le) {
			err = le.Err
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	return syncDir(path)
}

func writeAtomic(path string, st os.FileInfo, perm os.FileMode, write func(io.Writer) error) error {
	p, err := Begin(path, st, perm)
	if err != nil {
		return err
	}
	if err := write(p); err != nil {
		p.Abort()
		return err
	}
	return p.Commit()
}

// Pending is a new version of a file being written: a locked temporary file
// next to it. Write to it, then Commit (or CommitAll for many) or Abort.
type Pending struct {
	path string
	f    *os.File
	done bool
}

// Begin creates the temporary file for path. st, when not nil, gives the
// mode and owner to keep (those of the file being replaced); otherwise the
// file gets perm.
func Begin(path string, st os.FileInfo, perm os.FileMode) (_ *Pending, err error) {
	f, err := createLocked(path)
	if err != nil {
		return nil, err
	}
	p := &Pending{path: path, f: f}
	defer func() {
		if err != nil {
			p.Abort()
		}
	}()
	mode := perm
	if st != nil {
		mode = st.Mode().Perm()
		if sys, ok := st.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 {
			if err := f.Chown(int(sys.Uid), int(sys.Gid)); err != nil {
				return nil, fmt.Errorf("keep owner of %s: %w", path, err)
			}
		}
	}
	if err := f.Chmod(mode); err != nil {
		return nil, err
	}
	return p, nil
}

// Path is the file the pending version will replace.
func (p *Pending) Path() string { return p.path }

func (p *Pending) Write(b []byte) (int, error) { return p.f.Write(b) }

// Reset empties the pending file, to write it again from the start.
func (p *Pending) Reset() error {
	if err := p.f.Truncate(0); err != nil {
		return err
	}
	_, err := p.f.Seek(0, io.SeekStart)
	return err
}

// Abort removes the temporary file; the original stays as it was. It does
// nothing after Commit.
func (p *Pending) Abort() {
	if p.done {
		return
	}
	p.done = true
	os.Remove(p.f.Name())
	p.f.Close()
}

// Commit makes the new content durable and puts it in place: fsync, rename,
// fsync of the directory. On error before the rename the original is
// untouched and the temporary file removed.
func (p *Pending) Commit() error {
	if err := p.sync(); err != nil {
		p.Abort()
		return err
	}
	if err := p.rename(); err != nil {
		return err
	}
	return syncDir(p.path)
}

func (p *Pending) sync() error {
	if err := p.f.Sync(); err != nil {
		return unwrapPath(err) // a write error the file system reports late (ENOSPC, EIO)
	}
	return nil
}

// rename puts the synced temporary file in place and releases its lock.
func (p *Pending) rename() error {
	if err := os.Rename(p.f.Name(), p.path); err != nil {
		p.Abort()
		return fmt.Errorf("rename: %w", unwrapPath(err))
	}
	p.done = true
	return p.f.Close()
}

// ErrNotDurable marks a failure after the new version is in place: only
// whether it survives a crash is in doubt.
var ErrNotDurable = errors.New("in place, but not known to be durable")

// syncDir makes the directory entry of path durable.
func syncDir(path string) error {
	dir := filepath.Dir(path)
	d, err := os.Open(dir)
	if err == nil {
		defer d.Close()
		if err = d.Sync(); errors.Is(err, syscall.EINVAL) {
			err = nil // a file system without directory fsync
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w: fsync of %s: %w", path, ErrNotDurable, dir, err)
	}
	return nil
}

// unwrapPath drops the *os.PathError around err: a temporary file's name
// says nothing to the user.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
