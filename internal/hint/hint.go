// Package hint is the one place that maps an error to the one thing the
// user should do about it, printed as "hint: ..." under the error line.
package hint

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/config"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/dkmsenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/kerneltrust"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/modfile"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/signkey"
)

// hinted carries an error plus the one thing the user should do about it,
// for advice that depends on where the error happened.
type hinted struct {
	err  error
	hint string
}

func (h *hinted) Error() string { return h.err.Error() }
func (h *hinted) Unwrap() error { return h.err }

// With attaches advice to err, for what only the caller knows.
func With(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &hinted{err, hint}
}

// For is the advice for err, or "". Advice attached with With wins; then
// the most specific kinds come first: a DKMS error may wrap a missing
// file, which alone would only say "check the path".
func For(err error) string {
	var h *hinted
	if errors.As(err, &h) {
		return h.hint
	}
	for _, hint := range []func(error) string{dkmsHint, keyHint, moduleHint, fileHint} {
		if s := hint(err); s != "" {
			return s
		}
	}
	return ""
}

// dkmsHint covers the DKMS model's errors.
func dkmsHint(err error) string {
	var admin *dkmsenv.AdminFileError
	var noPkg *dkmsenv.NoPackageError
	var absent *dkmsenv.KeyNotPresentError
	var fwKey *dkmsenv.FrameworkKeyError
	var fwConfig *dkmsenv.FrameworkConfigError
	switch {
	case errors.As(err, &fwKey) && errors.Is(err, keys.ErrNeedPassphrase):
		return "set pin_file in " + config.DefaultPath + " to a root-only file holding the passphrase: DKMS runs sign-file with no terminal and no KBUILD_SIGN_PIN"
	case errors.As(err, &fwKey):
		if advice := For(fwKey.Err); advice != "" {
			return advice
		}
		return "fix the [signing] settings in " + fwKey.Config + ", or use per-package overrides (`dkms-sign-hook enable PKG...`)"
	case errors.As(err, &fwConfig):
		return "put these settings in " + config.DefaultPath + ", or use per-package overrides (`dkms-sign-hook enable PKG...`)"
	case errors.As(err, &admin) && admin.Package == "":
		return ""
	case errors.As(err, &admin) && admin.Sources:
		return fmt.Sprintf("remove the line %q from it to stop signing %s", admin.MergeLine, admin.Package)
	case errors.As(err, &admin):
		return fmt.Sprintf("to sign %s, add this line at the end of %s: %s", admin.Package, admin.Path, admin.MergeLine)
	case errors.As(err, &noPkg):
		return "`dkms status` lists the packages; add it with `dkms add` first"
	case errors.As(err, &absent):
		return "use per-package overrides (`dkms-sign-hook enable PKG...`) when the key is not always present"
	case errors.Is(err, kerneltrust.ErrNoEFI):
		return "there is no MOK list without UEFI: Secure Boot is not what refuses modules here; see `dkms-sign-hook status`"
	case errors.Is(err, kerneltrust.ErrMokBlocked):
		return "make a new key with dkms-sign-hook keygen"
	case errors.Is(err, dkmsenv.ErrNotInBuildDir):
		return "DKMS runs the hook as POST_BUILD (see `dkms-sign-hook enable`); to sign built modules now, run `dkms-sign-hook sign --dkms`"
	case errors.Is(err, dkmsenv.ErrNoOverride):
		return "install dkms-sign-hook (make install, or the .deb), or pass --override FILE"
	case errors.Is(err, dkmsenv.ErrNoSignFile):
		return "install dkms-sign-hook (it provides the sign-file link), or pass --sign-file PATH (a symlink named sign-file to this binary)"
	}
	return ""
}

// keyHint covers key loading, key generation and token errors.
func keyHint(err error) string {
	var perm *keys.PermissionError
	var mismatch *signkey.MismatchError
	var tokenAlg *signkey.TokenAlgorithmError
	switch {
	case errors.As(err, &tokenAlg):
		return "SoftHSM 2 and crypto11 offer no ML-DSA (PKCS#11 3.2's CKK_ML_DSA); keep the ML-DSA key in a PEM file (mode 0600, on removable media if you like), or use an RSA or ECDSA key on the token"
	case errors.As(err, &mismatch):
		return "use the certificate made together with this key (compare `openssl x509 -noout -pubkey` with `openssl pkey -pubout`)"
	case errors.As(err, &perm):
		return perm.Fix
	case errors.Is(err, keys.ErrNeedPassphrase):
		return "export KBUILD_SIGN_PIN with the key's passphrase (sign-file reads it too), or set pin_file in the config"
	case errors.Is(err, keys.ErrWrongPassphrase):
		return "KBUILD_SIGN_PIN (or pin_file) holds the wrong passphrase for this key"
	case errors.Is(err, keys.ErrExists):
		return "keep the old key (it may be enrolled); choose another --out, or move the old files away first"
	case errors.Is(err, keys.ErrNeedPIN):
		return "add pin-source=/root-only/file to the URI, set pin_file in the config, or export " + keys.PinEnv
	case errors.Is(err, keys.ErrWrongPIN):
		return "check the token PIN (a few more wrong tries may lock the token)"
	case errors.Is(err, keys.ErrNoToken):
		return "list tokens with `pkcs11-tool --module MODULE --list-token-slots` (or p11tool --list-tokens) and fix token= in the URI"
	case errors.Is(err, keys.ErrNoObject):
		return "list keys with `pkcs11-tool --module MODULE --login --list-objects --type privkey` and fix object= or id= in the URI"
	}
	return ""
}

// moduleHint covers the signing core's errors.
func moduleHint(err error) string {
	switch {
	case errors.Is(err, sign.ErrNotModule):
		return "give a kernel module: a .ko file, or .ko.xz, .ko.zst, .ko.gz"
	case errors.Is(err, sign.ErrMalformed):
		return "the signature appended to the module is damaged; rebuild or reinstall the module, then sign it again"
	case errors.Is(err, modfile.ErrTooLarge):
		return "the file decompresses to more than any real module; it may be a decompression bomb"
	}
	return ""
}

// fileHint covers plain file system errors.
func fileHint(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "check the path"
	case errors.Is(err, syscall.EROFS):
		return "the file system is read-only: remount it read-write, or sign a copy elsewhere"
	case errors.Is(err, fs.ErrPermission):
		return "run as root, or make the file and its directory writable"
	}
	return ""
}
