package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/modfile"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
)

// hinters map an error to the one thing the user should do about it. Each
// command file may add its own in an init function; the first answer wins.
var hinters []func(error) string

func hintFor(err error) string {
	// An error made with withHint carries its own.
	var h *hinted
	if errors.As(err, &h) {
		return h.hint
	}
	for _, h := range hinters {
		if s := h(err); s != "" {
			return s
		}
	}
	return ""
}

var osGetenv = os.Getenv

// moduleError names path in err unless err already does.
func moduleError(path string, err error) error {
	if strings.Contains(err.Error(), path) {
		return err
	}
	return fmt.Errorf("%s: %w", path, err)
}

func init() {
	hinters = append(hinters, signingHint)
}

// signingHint covers the errors of the signing core and of key loading.
func signingHint(err error) string {
	var perm *keys.PermissionError
	switch {
	case errors.As(err, &perm):
		return perm.Fix
	case errors.Is(err, keys.ErrNeedPassphrase):
		return "export KBUILD_SIGN_PIN with the key's passphrase (sign-file reads it too), or set pin_file in the config"
	case errors.Is(err, keys.ErrWrongPassphrase):
		return "KBUILD_SIGN_PIN (or pin_file) holds the wrong passphrase for this key"
	case errors.Is(err, sign.ErrNotModule):
		return "give a kernel module: a .ko file, or .ko.xz, .ko.zst, .ko.gz"
	case errors.Is(err, sign.ErrMalformed):
		return "the signature appended to the module is damaged; rebuild or reinstall the module, then sign it again"
	case errors.Is(err, modfile.ErrTooLarge):
		return "the file decompresses to more than any real module; it may be a decompression bomb"
	case errors.Is(err, fs.ErrNotExist):
		return "check the path"
	case errors.Is(err, syscall.EROFS):
		return "the file system is read-only: remount it read-write, or sign a copy elsewhere"
	case errors.Is(err, fs.ErrPermission):
		return "run as root, or make the file and its directory writable"
	}
	return ""
}
