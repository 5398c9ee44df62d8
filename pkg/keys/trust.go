package keys

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// CheckTrustedPath refuses path unless nobody but root can change what it
// names, as sudo and OpenSSH check the files they trust: path must be
// absolute, and the file, every directory on the way to it (up to /) and
// every symbolic link followed must be owned by root (or by the user running
// us, when that is not root) and, except for links, not be writable by group
// or others. Links are followed; the directories of their targets are
// checked too. World-writable directories are refused even with the sticky
// bit, so nothing under /tmp passes. The file may be of any type.
//
// A bad owner or mode gives a *PermissionError whose Fix repairs it; a
// missing file gives an error matching fs.ErrNotExist.
func CheckTrustedPath(path string) error {
	_, _, err := resolveTrusted(path)
	return err
}

// maxSymlinks is Linux's limit on links followed in one lookup.
const maxSymlinks = 40

// resolveTrusted resolves path as the kernel does, checking (see
// CheckTrustedPath) each directory it passes through, each link it follows
// and the file it ends at. It returns the resolved path, which holds no
// symbolic link, and the file's FileInfo. Since nothing checked can be
// changed by anyone but root, the resolved path keeps naming that file.
func resolveTrusted(path string) (string, fs.FileInfo, error) {
	if !filepath.IsAbs(path) {
		return "", nil, fmt.Errorf("%s: must be an absolute path", path)
	}
	st, err := os.Lstat("/")
	if err != nil {
		return "", nil, err
	}
	if err := checkTrustedEntry("/", st); err != nil {
		return "", nil, err
	}
	cur := "/"
	rest := strings.Split(path, "/")
	links := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur) // cur holds no link: its parent is checked
			continue
		}
		next := filepath.Join(cur, c)
		st, err := os.Lstat(next)
		if err != nil {
			return "", nil, err
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			// A link's mode means nothing; its owner could re-point it
			// only if it could write the directory, already checked.
			if err := checkTrustedOwner(next, st, "chown -h root:root "+next); err != nil {
				return "", nil, err
			}
			if links++; links > maxSymlinks {
				return "", nil, &fs.PathError{Op: "resolve", Path: path, Err: syscall.ELOOP}
			}
			target, err := os.Readlink(next)
			if err != nil {
				return "", nil, err
			}
			if filepath.IsAbs(target) {
				cur = "/"
			}
			rest = append(strings.Split(target, "/"), rest...)
			continue
		}
		if err := checkTrustedEntry(next, st); err != nil {
			return "", nil, err
		}
		if !st.IsDir() && hasComponent(rest) {
			return "", nil, &fs.PathError{Op: "resolve", Path: path, Err: syscall.ENOTDIR}
		}
		cur = next
	}
	// cur may have been reached through ".." or a link to a directory
	// already checked: look at what it names now.
	st, err = os.Lstat(cur)
	if err != nil {
		return "", nil, err
	}
	if err := checkTrustedEntry(cur, st); err != nil {
		return "", nil, err
	}
	return cur, st, nil
}

func hasComponent(rest []string) bool {
	for _, c := range rest {
		if c != "" && c != "." {
			return true
		}
	}
	return false
}

// checkTrustedEntry refuses a file or directory that group or others can
// write, or that neither root nor we own.
func checkTrustedEntry(path string, st fs.FileInfo) error {
	if perm := st.Mode().Perm(); perm&0o022 != 0 {
		mode := uint32(perm)
		if st.Mode()&fs.ModeSticky != 0 {
			mode |= 0o1000
		}
		reason := fmt.Sprintf("mode %04o lets group or others change it", mode)
		if st.IsDir() {
			reason = fmt.Sprintf("directory mode %04o lets group or others replace what is in it", mode)
		}
		return &PermissionError{Path: path, Reason: reason, Fix: "chmod go-w " + path}
	}
	return checkTrustedOwner(path, st, "chown root:root "+path)
}

func checkTrustedOwner(path string, st fs.FileInfo, fix string) error {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return errors.New(path + ": cannot read its owner")
	}
	if sys.Uid == 0 || int(sys.Uid) == geteuid() {
		return nil
	}
	what := "owned by uid %d, not root"
	if st.Mode()&fs.ModeSymlink != 0 {
		what = "symbolic link owned by uid %d, not root"
	}
	return &PermissionError{Path: path, Reason: fmt.Sprintf(what, sys.Uid), Fix: fix}
}
