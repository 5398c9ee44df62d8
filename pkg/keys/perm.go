package keys

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/safefile"
)

// PermissionError says a secret or configuration file is exposed: readable or
// writable by others, or not owned by root while we run as root. Fix is the
// command that repairs it, for the CLI to print as a hint. It is
// safefile.PermissionError, which the trusted-path check returns too.
type PermissionError = safefile.PermissionError

// geteuid is a variable so tests can pretend to be root or not.
var geteuid = os.Geteuid

// checkSecret refuses a secret file (private key, PIN file) that is not a
// regular file, has any group/other permission bit, or, when running as root,
// is not owned by root.
func checkSecret(path string, st fs.FileInfo) error {
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return &PermissionError{
			Path:   path,
			Reason: fmt.Sprintf("mode %04o lets group or others access it", perm),
			Fix:    "chmod 600 " + path,
		}
	}
	return checkRootOwned(path, st)
}

// readSecret reads up to limit+1 bytes of the secret file at path (so the
// caller can tell a file that is too large), checking the file with
// checkSecret (or, with skipCheck, only that it is a regular file) on the
// open descriptor. what names the setting in errors ("key", "pin_file").
// O_NONBLOCK keeps a FIFO put in the file's place from hanging us.
func readSecret(path, what string, limit int64, skipCheck bool) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if !skipCheck {
		if err := checkSecret(path, st); err != nil {
			return nil, fmt.Errorf("%s %w", what, err)
		}
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s %s: not a regular file", what, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: read %s: %w", what, path, err)
	}
	return data, nil
}

func checkRootOwned(path string, st fs.FileInfo) error {
	if geteuid() != 0 {
		return nil
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok || sys.Uid == 0 {
		return nil
	}
	return &PermissionError{
		Path:   path,
		Reason: fmt.Sprintf("owned by uid %d while running as root", sys.Uid),
		Fix:    "chown root:root " + path,
	}
}

// CheckTrustedPath refuses path unless nobody but root (or the user running
// us, when that is not root) can change what it names: the file, whatever
// its type, every directory on the way to it from / and every symbolic link
// followed. path must be absolute. The rules are internal/safefile's; in
// short, what is on the way is owned by root (or us) and writable by neither
// group nor others, except a sticky directory like /tmp, whose entries on
// the way must then be owned by root (or us).
//
// A bad owner or mode gives a *PermissionError whose Fix repairs it; a
// missing file gives an error matching fs.ErrNotExist.
func CheckTrustedPath(path string) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("%s: must be an absolute path", path)
	}
	_, _, err := safefile.Stat(path)
	return err
}
