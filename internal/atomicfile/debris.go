package atomicfile

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// How a leftover temporary file is told from one being written:
//
// The writer creates ".NAME.tmp-DIGITS" with O_EXCL and at once takes an
// exclusive flock(2) on it, which it holds until the file is renamed into
// place or removed; the kernel drops the lock when the process dies, however
// it dies. RemoveDebris removes a file only after taking that lock itself
// (without waiting): then no live writer has it. A writer that lost the race
// between its create and its flock (the file was removed in between) sees
// its file unlinked once it holds the lock (st_nlink 0) and starts again
// with a new name. Removal goes through the directory's descriptor and
// checks that the name still names the locked inode, never follows a
// symbolic link, and touches regular files only.

// tmpName returns a fresh name for a temporary file of path.
func tmpName(path string) string {
	return "." + filepath.Base(path) + ".tmp-" + strconv.FormatUint(uint64(rand.Uint32()), 10)
}

// ParseTempName returns the name of the file a temporary file of ours would
// have become, and whether name is one of ours at all.
func ParseTempName(name string) (target string, ok bool) {
	rest, ok := strings.CutPrefix(name, ".")
	if !ok {
		return "", false
	}
	i := strings.LastIndex(rest, ".tmp-")
	if i <= 0 {
		return "", false
	}
	digits := rest[i+len(".tmp-"):]
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return "", false
	}
	return rest[:i], true
}

// createLocked creates path's temporary file, locked.
func createLocked(path string) (*os.File, error) {
	dir := filepath.Dir(path)
	for try := 0; ; try++ {
		name := filepath.Join(dir, tmpName(path))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
		if errors.Is(err, os.ErrExist) && try < 100 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("cannot create a file in %s: %w", dir, unwrapPath(err))
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			f.Close()
			os.Remove(name)
			return nil, fmt.Errorf("lock a new file in %s: %w", dir, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Nlink == 0 {
			f.Close() // removed as debris before we locked it: take another name
			if try < 100 {
				continue
			}
			return nil, fmt.Errorf("cannot keep a new file in %s", dir)
		}
		return f, nil
	}
}

// RemoveDebris removes, from dir, temporary files of this package that no
// live process is writing: those a killed run left behind. Only names
// ParseTempName accepts and whose target keep accepts are considered; only
// regular files, never through a symbolic link. It returns the names removed.
func RemoveDebris(dir string, keep func(target string) bool) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, name := range names {
		target, ok := ParseTempName(name)
		if !ok || (keep != nil && !keep(target)) {
			continue
		}
		if removeIfDead(int(d.Fd()), name) {
			removed = append(removed, name)
		}
	}
	return removed, nil
}

// removeIfDead removes dirfd/name if it is a regular file nobody holds the
// lock of.
func removeIfDead(dirfd int, name string) bool {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false
	}
	if unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) != nil {
		return false // a live writer holds it
	}
	var now unix.Stat_t
	if unix.Fstatat(dirfd, name, &now, unix.AT_SYMLINK_NOFOLLOW) != nil || now.Dev != st.Dev || now.Ino != st.Ino {
		return false // renamed into place or replaced meanwhile
	}
	return unix.Unlinkat(dirfd, name, 0) == nil
}
