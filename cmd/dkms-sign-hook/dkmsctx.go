package main

// Shared by the DKMS commands (hook, enable, disable, status, sign --dkms).

import (
	"github.com/dkms-sign-hook/dkms-sign-hook/internal/config"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/dkmsenv"
)

// rootEnv moves /etc/dkms, /var/lib/dkms, /lib/modules, /proc and /sys
// below a directory, for tests on fake trees, and only when testRoots is set.
const rootEnv = "DKMS_SIGN_HOOK_ROOT"

// testRoots is set by this package's TestMain only (the testscript commands
// run in the test binary). The shipped binary never reads rootEnv, so nobody
// can point it (as root) at another tree, override directory or kernel
// config. A bool, so that not even -ldflags -X can turn it on.
var testRoots bool

// Installed paths (make install, the .deb); variables so that a build for
// another prefix can set them with -ldflags "-X main.defaultOverride=...".
var (
	// defaultOverride is contrib/dkms/dkms-override.conf as installed; enable
	// links /etc/dkms/<pkg>.conf to it.
	defaultOverride = "/usr/share/dkms-sign-hook/dkms-override.conf"
	// defaultSignFile is a symlink named sign-file to the binary, for DKMS's
	// sign_file= (framework.conf.d route).
	defaultSignFile = "/usr/lib/dkms-sign-hook/sign-file"
)

// sysRoots are the system directories: the real ones, except in tests.
func sysRoots(e *env) dkmsenv.Roots {
	if !testRoots {
		return dkmsenv.DefaultRoots()
	}
	return dkmsenv.Under(e.getenv(rootEnv))
}

// openHost is the DKMS installation the DKMS commands work on.
func openHost(e *env, override string) (*dkmsenv.Host, error) {
	return dkmsenv.OpenHost(sysRoots(e), override)
}

// loadConfig reads the configuration (--config, DKMS_SIGN_HOOK_CONFIG,
// default). config.Load refuses a file that others could have edited (the
// file or a directory above it): it chooses the key, and the log file root
// appends to.
func loadConfig(e *env, flagPath string) (*config.Config, error) {
	return config.Load(flagPath, e.getenv)
}
