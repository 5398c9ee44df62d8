// Package safefile is the one check, for the whole program, that nobody but
// root can change what a path names: the configuration (which picks the
// key), the DKMS override (which DKMS sources as root) and the PKCS#11
// module (whose code runs as us) are used only when it passes.
//
// The rules are OpenSSH's StrictModes, with one addition for sticky
// directories:
//
//   - Trusted users are root and, when not running as root, the current
//     user.
//   - Every directory the lookup passes through, from / (through the
//     working directory for a relative path, the directories of every link
//     target, and those reached by ".."), is owned by a trusted user and
//     writable by neither group nor others, whatever its group.
//   - Except a directory with the sticky bit (like /tmp): group or others
//     may write it, but then every entry looked up in it (directory, link
//     or file) must be owned by a trusted user. Only the entry's owner, the
//     directory's owner and root can remove or rename an entry of a sticky
//     directory, so nobody else can replace it.
//   - Symbolic links are followed, at most 40 in one lookup. A link's mode
//     means nothing and its target cannot change; it can only be replaced,
//     which the rules on its directory cover, so a link's owner matters
//     only in a sticky directory.
//   - The file itself is owned by a trusted user and writable by neither
//     group nor others. Open checks this, and that it is a regular file, on
//     the descriptor it opened with O_NOFOLLOW: what was checked is what is
//     read.
//
// A group-writable directory is refused even when its group is root (gid
// 0): membership of group 0 does not make a Linux user root (an account or
// a service can be given it for file access), yet writing such a directory
// would let it replace the file; the file itself is refused when group
// writable whatever its group; and no directory of a Debian 12 system is
// writable by group 0 alone (`find / -xdev -type d -perm -g+w ! -perm -o+w
// -group 0` finds none), so the exception would buy nothing.
//
// A refusal is a *PermissionError whose Fix repairs it; a missing file gives
// an error matching fs.ErrNotExist.
package safefile

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// PermissionError says a secret or configuration file is exposed: readable
// or writable by others, or not owned by a trusted user. Fix is the command
// that repairs it, for the CLI to print as a hint.
type PermissionError struct {
	Path   string
	Reason string // e.g. "mode 0644 lets group or others read it"
	Fix    string // e.g. "chmod 600 /etc/dkms-sign-hook/signing_key.pem"
}

func (e *PermissionError) Error() string {
	return fmt.Sprintf("%s: refusing to use it: %s (fix: %s)", e.Path, e.Reason, e.Fix)
}

// geteuid is a variable so tests can pretend not to be root.
var geteuid = os.Geteuid

// maxLinks bounds symlink resolution, as the kernel's ELOOP does.
const maxLinks = 40

// Open resolves path (see Resolve), then opens the file it names with
// O_NOFOLLOW and checks the open descriptor: a regular file, owned by a
// trusted user, that group and others cannot write.
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

// Stat resolves path (see Resolve) and checks what it names, whatever its
// type: a directory as the directories on the way, anything else as Open
// checks a file (trusted owner, not writable by group or others). It
// returns the physical path and what os.Lstat says of it (never a link).
// Use Open to read a file: Stat's answer is about the path, not about what
// a later open will find.
func Stat(path string) (string, fs.FileInfo, error) {
	real, err := Resolve(path)
	if err != nil {
		return "", nil, err
	}
	st, err := os.Lstat(real)
	if err != nil {
		return "", nil, err
	}
	if st.IsDir() {
		_, err = checkDir(real, st)
	} else {
		err = checkEntry(path, st)
	}
	if err != nil {
		return "", nil, err
	}
	return real, st, nil
}

func checkFile(name string, f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", name)
	}
	return checkEntry(name, st)
}

// checkEntry refuses a file that group or others can write or that no
// trusted user owns.
func checkEntry(name string, st fs.FileInfo) error {
	if perm := st.Mode().Perm(); perm&0o022 != 0 {
		return &PermissionError{
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

func checkOwner(name string, st fs.FileInfo) error {
	s, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: cannot read its owner", name)
	}
	if trusted(s.Uid) {
		return nil
	}
	what, fix := "", "chown root:root "
	if st.Mode()&fs.ModeSymlink != 0 {
		what, fix = "symbolic link ", "chown -h root:root "
	}
	reason := fmt.Sprintf("%sowned by uid %d while running as root", what, s.Uid)
	if geteuid() != 0 {
		reason = fmt.Sprintf("%sowned by uid %d, neither root nor you", what, s.Uid)
	}
	return &PermissionError{Path: name, Reason: reason, Fix: fix + name}
}

// checkDir refuses a directory an untrusted user could change. It returns
// sticky = true for a directory group or others may write that has the
// sticky bit: its entries must then be owned by a trusted user.
func checkDir(dir string, st fs.FileInfo) (sticky bool, err error) {
	if err := checkOwner(dir, st); err != nil {
		return false, err
	}
	perm := st.Mode().Perm()
	if perm&0o022 == 0 {
		return false, nil
	}
	if st.Mode()&fs.ModeSticky != 0 {
		return true, nil
	}
	return false, &PermissionError{
		Path:   dir,
		Reason: fmt.Sprintf("directory mode %04o lets group or others replace what is in it", perm),
		Fix:    "chmod go-w " + dir,
	}
}

// Resolve returns the physical path path names (relative to the working
// directory unless absolute), checking every directory the lookup passes
// through as the kernel would walk it (symlinks included, ".." after a
// symlink taken physically), and, in a sticky directory, the owner of every
// entry looked up. It does not check the file the path ends at (Open and
// Stat do). The last component may not exist only if it is the file
// itself: the error then wraps fs.ErrNotExist.
func Resolve(path string) (string, error) {
	if !filepath.IsAbs(path) {
		wd, err := os.Getwd()
		if err != nil {
			return "", fmt.Errorf("%s: %w", path, err)
		}
		path = wd + "/" + path // not filepath.Join: ".." is resolved physically below
	}
	cur := "/"
	sticky, err := enter(cur)
	if err != nil {
		return "", err
	}
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
			if sticky, err = enter(cur); err != nil {
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
				if sticky, err = enter(cur); err != nil {
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

// enter checks the directory dir, which the lookup moves back to.
func enter(dir string) (sticky bool, err error) {
	st, err := os.Lstat(dir)
	if err != nil {
		return false, err
	}
	return checkDir(dir, st)
}

func hasMore(queue []string) bool {
	for _, p := range queue {
		if p != "" && p != "." {
			return true
		}
	}
	return false
}
