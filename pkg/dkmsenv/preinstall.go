package dkmsenv

import (
	"crypto/x509"
	"fmt"
	"io"
	"path/filepath"

	"github.com/sirupsen/logrus"

	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
)

// PreInstallHook is the hook as DKMS's PRE_INSTALL (the override sets it),
// run from the package's source directory cwd just before DKMS copies the
// modules of the build at dir into /lib/modules. It runs the package's own
// PRE_INSTALL (argv) first, whose failure stops the install, as in DKMS;
// then s.PreInstall. Signing problems (and cfgErr, an unusable
// configuration, when s is nil) are reported and never stop the install:
// that would leave the machine without the module, where DKMS would
// install it as it built it.
func PreInstallHook(log logrus.FieldLogger, cwd, dir string, argv []string, stdout, stderr io.Writer, s *Signing, cfgErr error) error {
	if err := RunPreInstall(log, cwd, argv, stdout, stderr); err != nil {
		return err
	}
	err := cfgErr
	if s != nil {
		err = s.PreInstall(dir)
	}
	if err != nil {
		log.Warnf("the install goes on with the module as DKMS left it: %v", err)
	}
	return nil
}

// PreInstall is the hook's work as DKMS's PRE_INSTALL, for the build at dir
// (see BuildAt), just before DKMS copies its modules into /lib/modules:
// leave our signature alone on them. Ubuntu's DKMS 2.8 (sign_build) signs
// with its MOK after POST_BUILD, over ours. Modules signed by our key alone
// are left as they are, without opening the key.
func (s *Signing) PreInstall(dir string) error {
	b, err := BuildAt(dir)
	if err != nil {
		return err
	}
	if cert, err := keys.LoadCertificate(s.Config.Certificate); err == nil && SignedOnlyBy(b, cert) {
		return nil
	}
	return s.SignBuild(b)
}

// BuildAt is the build whose module directory is dir/module, dir being
// <tree>/<package>/<version>/<kernelver>/<arch>: what the override hands
// the hook as PRE_INSTALL, which DKMS runs from the package's source
// directory without saying which kernel it installs for.
func BuildAt(dir string) (Build, error) {
	if !filepath.IsAbs(dir) {
		return Build{}, fmt.Errorf("build directory %s: want an absolute <dkms_tree>/<package>/<version>/<kernelver>/<arch>", dir)
	}
	dir = filepath.Clean(dir)
	var parts [4]string // package, version, kernel, arch
	for i := len(parts) - 1; i >= 0; i-- {
		parts[i], dir = filepath.Base(dir), filepath.Dir(dir)
	}
	b := Build{Tree: dir, Package: parts[0], Version: parts[1], KernelVer: parts[2], Arch: parts[3], KernelFrom: "pre_install"}
	for i, kind := range []string{"package", "version", "kernel", "arch"} {
		if err := ValidName(kind, parts[i]); err != nil {
			return Build{}, fmt.Errorf("build directory %s: %w", filepath.Join(append([]string{dir}, parts[:]...)...), err)
		}
	}
	return b, nil
}

// SignedOnlyBy reports whether every module of b carries exactly one
// signature, by cert: then the hook has nothing to do before the install
// and needs no key (it may be on media unplugged since the build).
func SignedOnlyBy(b Build, cert *x509.Certificate) bool {
	if b.CheckDir() != nil {
		return false
	}
	files, skipped, err := ModuleFiles(b.Dir())
	if err != nil || len(skipped) > 0 || len(files) == 0 {
		return false
	}
	for _, f := range files {
		_, by, err := sign.VerifyStack(f, []*x509.Certificate{cert})
		if err != nil || len(by) != 1 || by[0] == nil {
			return false
		}
	}
	return true
}
