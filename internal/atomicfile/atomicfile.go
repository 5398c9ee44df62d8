// Package atomicfile writes files so that a reader, or the file system after
// a crash, sees either the old content or the complete new one: a temporary
// file in the same directory, fsync, rename (or link, for a new file that
// must not replace one), fsync of the directory.
//
// Temporary files are named ".NAME.tmp-*" after the file they become.
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
func CreateNew(path string, data []byte, perm os.FileMode) (err error) {
	tmp, err := createTemp(path)
	if err != nil {
		return err
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	if err := tmp.Chmod(perm); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// link(2), unlike rename(2), fails when the name exists.
	if err := os.Link(tmp.Name(), path); err != nil {
		var le *os.LinkError
		if errors.As(err, &le) {
			err = le.Err
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	return syncDir(path)
}

// createTemp creates the temporary file for path in its directory.
func createTemp(path string) (*os.File, error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the temporary name says nothing to the user
		}
		return nil, fmt.Errorf("cannot create a file in %s: %w", dir, err)
	}
	return tmp, nil
}

// writeAtomic writes path through a temporary file; st, when not nil, gives
// the mode and owner to keep, else the file gets perm.
func writeAtomic(path string, st os.FileInfo, perm os.FileMode, write func(io.Writer) error) (err error) {
	tmp, err := createTemp(path)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	mode := perm
	if st != nil {
		mode = st.Mode().Perm()
		if sys, ok := st.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 {
			if err := tmp.Chown(int(sys.Uid), int(sys.Gid)); err != nil {
				return fmt.Errorf("keep owner of %s: %w", path, err)
			}
		}
	}
	if err := tmp.Chmod(mode); err != nil {
		return err
	}
	if err := write(tmp); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// The rename is durable only once the directory is.
	return syncDir(path)
}

// syncDir makes the directory entry of path durable.
func syncDir(path string) error {
	dir := filepath.Dir(path)
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("%s is in place; fsync of %s: %w", path, dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("%s is in place; fsync of %s: %w", path, dir, err)
	}
	return nil
}
