package dkmsenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
)

// DKMS is the installed dkms, as far as its generation changes what a
// signer sees. The facts are read from the dkms script itself, which every
// generation (2.x and 3.x) ships as one bash file.
type DKMS struct {
	Path    string
	Version string // as `dkms --version` says: "2.8" (Debian's 2.8.4), "3.0.10", "3.2.2"; "" if unknown
	// DropIns: it sources /etc/dkms/framework.conf.d/*.conf (3.0.4+);
	// older ones read framework.conf only, so the framework route's drop-in
	// is silently ignored there.
	DropIns bool
}

// SignsItself reports whether this DKMS signs every module with its own key
// (DKMS 3.0 and later, e.g. Debian's /var/lib/dkms/mok.key) before
// POST_BUILD sees it; DKMS 2.x signs nothing unless sign_tool is set.
func (d *DKMS) SignsItself() bool { return d.AtLeast(3, 0, 0) }

// HookCaptured reports whether this DKMS appends POST_BUILD's output to the
// build's make.log instead of showing it, and fails the build (after the
// module was saved as built) when POST_BUILD fails: seen in 3.2.2, not in
// 3.0.10 (which shows the output and ignores the exit status); upstream
// changed both in 3.1.7.
func (d *DKMS) HookCaptured() bool { return d.AtLeast(3, 1, 7) }

// ErrNoDKMS means no dkms is installed.
var ErrNoDKMS = errors.New("dkms is not installed")

// DKMSPaths are where dkms is looked for, in order.
var DKMSPaths = []string{"/usr/sbin/dkms", "/usr/bin/dkms", "/sbin/dkms"}

// dkmsVersion matches what `dkms --version` prints: "dkms-3.2.2", or
// "dkms:2.8" in Debian 11's 2.8.4.
var dkmsVersion = regexp.MustCompile(`echo \$?"dkms[-:]([0-9][0-9A-Za-z.~+-]*)"`)

// FindDKMS reads the installed dkms script (the first of DKMSPaths, else
// dkms on PATH).
func FindDKMS() (*DKMS, error) {
	path := ""
	for _, p := range DKMSPaths {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			path = p
			break
		}
	}
	if path == "" {
		p, err := exec.LookPath("dkms")
		if err != nil {
			return nil, ErrNoDKMS
		}
		path = p
	}
	return ReadDKMS(path)
}

// ReadDKMS reads the dkms script at path.
func ReadDKMS(path string) (*DKMS, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read dkms: %w", err)
	}
	d := &DKMS{Path: path, DropIns: bytes.Contains(data, []byte("framework.conf.d"))}
	if m := dkmsVersion.FindSubmatch(data); m != nil {
		d.Version = string(m[1])
	}
	return d, nil
}

// AtLeast reports whether the version is at least major.minor.patch
// (false when unknown).
func (d *DKMS) AtLeast(major, minor, patch int) bool {
	m := regexp.MustCompile(`^(\d+)\.(\d+)(?:\.(\d+))?`).FindStringSubmatch(d.Version)
	if m == nil {
		return false
	}
	v := [3]int{}
	for i := range 3 {
		v[i], _ = strconv.Atoi(m[i+1])
	}
	want := [3]int{major, minor, patch}
	for i := range 3 {
		if v[i] != want[i] {
			return v[i] > want[i]
		}
	}
	return true
}
