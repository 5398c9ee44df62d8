//go:build cgo

package keys

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/safefile"
)

// Loading a PKCS#11 module runs its code as us (root, for DKMS), so the
// module must be the file we checked. moduleLoadName opens the checked file
// once and hands out /proc/self/fd/N of that descriptor as the name to
// dlopen: what is loaded is what was checked, whatever happens to the path
// afterwards.
//
// The descriptor stays open for the rest of the process and each file keeps
// one name: the dynamic loader and crypto11 both recognise a module by the
// name it was loaded under, so a name must never come to mean another file
// (as /proc/self/fd/N would if N were closed and reused).
var (
	modulesMu   sync.Mutex
	moduleNames = map[fileID]string{}
	moduleFiles []*os.File // keeps the descriptors behind moduleNames open
)

type fileID struct{ dev, ino uint64 }

// afterModuleCheck, when a test sets it, runs between checking the module's
// path and opening it: the test swaps files there.
var afterModuleCheck func()

// moduleLoadName checks the module at path (absolute; see CheckTrustedPath
// unless skipCheck) and returns the name to load it by.
func moduleLoadName(path string, skipCheck bool) (string, error) {
	if !filepath.IsAbs(path) {
		return "", fmt.Errorf("PKCS#11 module %s: must be an absolute path", path)
	}
	f, real, fst, err := openModule(path, skipCheck)
	if err != nil {
		return "", fmt.Errorf("PKCS#11 module %s: %w", path, err)
	}
	sys := fst.Sys().(*syscall.Stat_t)
	id := fileID{uint64(sys.Dev), sys.Ino}

	modulesMu.Lock()
	defer modulesMu.Unlock()
	if name, ok := moduleNames[id]; ok {
		f.Close() // already held open under name
		return name, nil
	}
	name := fmt.Sprintf("/proc/self/fd/%d", f.Fd())
	if pst, err := os.Stat(name); err != nil || !os.SameFile(pst, fst) {
		// No /proc (a bare chroot): load by the resolved path, which
		// only a trusted user can re-point (anyone, with skipCheck: tests).
		name = real
	}
	moduleNames[id] = name
	moduleFiles = append(moduleFiles, f)
	return name, nil
}

// openModule checks the module's path (safefile.Stat, unless skipCheck),
// runs afterModuleCheck, and opens the file checked: safefile.Open checks
// the open descriptor (regular, trusted owner, not writable by group or
// others), and a file other than the one checked is refused. It returns the
// file, its physical path and what it says of itself.
func openModule(path string, skipCheck bool) (f *os.File, real string, fst fs.FileInfo, err error) {
	var st fs.FileInfo
	if skipCheck {
		if real, err = filepath.EvalSymlinks(path); err == nil {
			st, err = os.Lstat(real)
		}
	} else {
		real, st, err = safefile.Stat(path)
	}
	if err != nil {
		return nil, "", nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, "", nil, errors.New("not a regular file")
	}
	if afterModuleCheck != nil {
		afterModuleCheck()
	}
	// real holds no link, and only trusted users can change the
	// directories on the way to it; safefile.Open checks them again and
	// opens with O_NOFOLLOW all the same.
	if skipCheck {
		f, err = os.OpenFile(real, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	} else {
		f, err = safefile.Open(real)
	}
	if err != nil {
		return nil, "", nil, err
	}
	fst, err = f.Stat()
	if err == nil && !os.SameFile(st, fst) {
		err = errors.New("replaced while being checked; try again")
	}
	if err != nil {
		f.Close()
		return nil, "", nil, err
	}
	return f, real, fst, nil
}
