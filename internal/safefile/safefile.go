// Package safefile opens files whose content root acts on (the
// configuration, which picks the key; the DKMS override, which DKMS sources
// as root) only when nobody but root can change them: neither the file nor
// any directory on the way to it, symlinks included. When not running as
// root, files and directories of the current user are trusted too.
//
// The rules are those of sudo and OpenSSH's StrictModes, with one addition:
// a directory others may write to is accepted when it has the sticky bit
// (like /tmp) and the entry looked up in it belongs to a trusted user, since
// then nobody else can remove or rename that entry.
package safefile

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
)

// geteuid is a variable so tests can pretend not to be root.
var geteuid = os.Geteuid

// maxLinks bounds symlink resolution, as the kernel's ELOOP does.
const maxLinks = 40

// Open resolves path component by component, checking every
// directory it passes through, then opens the file it names with
// O_NOFOLLOW and checks the open descriptor: a regular file, owned by a
// trusted user, that group and others cannot write. What was checked is
// what is read.
func Open(path string) (*os.File, error) {
	real, err := Resolve(path)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(real, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	if err := checkFile(path, f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// ReadFile reads the file Open opens.
func ReadFile(path string) ([]byte, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAll(f)
}

// maxSize bounds what ReadFile reads: these are small text files.
const maxSize = 1 << 20

func readAll(f *os.File) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	if len(b) > maxSize {
		return nil, fmt.Errorf("%s: larger than 1 MiB", f.Name())
	}
	return b, nil
}

func checkFile(name string, f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", name)
	}
	if perm := st.Mode().Perm(); perm&0o022 != 0 {
		return &keys.PermissionError{
			Path:   name,
			Reason: fmt.Sprintf("mode %04o lets group or others write it", perm),
			Fix:    "chmod go-w " + name,
		}
	}
	return checkOwner(name, st)
}

// trusted reports whether uid may own what root acts on.
func trusted(uid uint32) bool {
	euid := geteuid()
	return uid == 0 || (euid != 0 && uid == uint32(euid))
}

func owner(st fs.FileInfo) (uid, gid uint32) {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return s.Uid, s.Gid
	}
	return 0, 0
}

func checkOwner(name string, st fs.FileInfo) error {
	uid, _ := owner(st)
	if trusted(uid) {
		return nil
	}
	reason := fmt.Sprintf("owned by uid %d while running as root", uid)
	if geteuid() != 0 {
		reason = fmt.Sprintf("owned by uid %d, neither root nor you", uid)
	}
	return &keys.PermissionError{Path: name, Reason: reason, Fix: "chown root:root " + name}
}

// checkDir refuses a directory an untrusted user could change. It returns
// sticky = true for a directory others may write to that has the sticky
// bit: its entries must then be owned by a trusted user.
func checkDir(dir string, st fs.FileInfo) (sticky bool, err error) {
	if err := checkOwner(dir, st); err != nil {
		return false, err
	}
	perm := st.Mode().Perm()
	_, gid := owner(st)
	writable := perm&0o002 != 0 || (perm&0o020 != 0 && gid != 0)
	if !writable {
		return false, nil
	}
	if st.Mode()&fs.ModeSticky != 0 {
		return true, nil
	}
	return false, &keys.PermissionError{
		Path:   dir,
		Reason: fmt.Sprintf("directory mode %04o lets group or others replace what is in it", perm),
		Fix:    "chmod go-w " + dir,
	}
}

// Resolve returns the physical path path names (relative to the working
// directory unless absolute), checking every directory
// the lookup passes through as the kernel would walk it (symlinks included,
// ".." after a symlink taken physically). The last component may not exist
// only if it is the file itself: the error then wraps fs.ErrNotExist.
func Resolve(path string) (string, error) {
	if !filepath.IsAbs(path) {
		wd, err := os.Getwd()
		if err != nil {
			return "", fmt.Errorf("%s: %w", path, err)
		}
		path = wd + "/" + path // not filepath.Join: ".." is resolved physically below
	}
	st, err := os.Lstat("/")
	if err != nil {
		return "", err
	}
	sticky, err := checkDir("/", st)
	if err != nil {
		return "", err
	}
	cur := "/"
	queue := strings.Split(path, "/")
	links := 0
	for len(queue) > 0 {
		part := queue[0]
		queue = queue[1:]
		switch part {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			if st, err = os.Lstat(cur); err != nil {
				return "", err
			}
			if sticky, err = checkDir(cur, st); err != nil {
				return "", err
			}
			continue
		}
		next := filepath.Join(cur, part)
		st, err := os.Lstat(next)
		if err != nil {
			return "", err
		}
		if sticky {
			if err := checkOwner(next, st); err != nil {
				return "", err
			}
		}
		switch {
		case st.Mode()&fs.ModeSymlink != 0:
			if links++; links > maxLinks {
				return "", fmt.Errorf("%s: %w", path, syscall.ELOOP)
			}
			target, err := os.Readlink(next)
			if err != nil {
				return "", err
			}
			if filepath.IsAbs(target) {
				cur = "/"
				if st, err = os.Lstat(cur); err != nil {
					return "", err
				}
				if sticky, err = checkDir(cur, st); err != nil {
					return "", err
				}
			}
			queue = append(strings.Split(target, "/"), queue...)
		case st.IsDir():
			if sticky, err = checkDir(next, st); err != nil {
				return "", err
			}
			cur = next
		default:
			if hasMore(queue) {
				return "", fmt.Errorf("%s: %w", next, syscall.ENOTDIR)
			}
			cur = next
		}
	}
	return cur, nil
}

func hasMore(queue []string) bool {
	for _, p := range queue {
		if p != "" && p != "." {
			return true
		}
	}
	return false
}
