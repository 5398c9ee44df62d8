package main

// Shared by the DKMS commands (hook, enable, disable, status, sign --dkms).

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/config"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/dkmsenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
)

// rootEnv moves /etc/dkms, /var/lib/dkms, /lib/modules and /proc below a
// directory, for tests on fake trees, and only when testRoots is set.
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

// keyAccess says how a DKMS command may get the key's passphrase or PIN.
type keyAccess int

const (
	// unattended: the hook, run by DKMS, maybe inside an apt upgrade: the
	// config's pin_file or KBUILD_SIGN_PIN, never a prompt.
	unattended keyAccess = iota
	// asDKMSWill: as DKMS will run sign-file at a later upgrade: pin_file
	// only (KBUILD_SIGN_PIN of the admin's shell will not be there).
	asDKMSWill
	// interactive: a person runs the command: may ask on the terminal.
	interactive
)

// signerFromConfig opens the configured key and certificate for hash.
func signerFromConfig(e *env, cfg *config.Config, hash string, access keyAccess) (*sign.Signer, func(), error) {
	spec := signerSpec{key: cfg.Key, cert: cfg.Certificate, hash: hash, prompt: access == interactive}
	spec.fromConfig(cfg)
	if cfg.KeyID == config.KeyIDSKID {
		spec.keyID = sign.KeyIDSKID
	}
	if access == asDKMSWill {
		e = e.without(keys.PinEnv)
	}
	return openSigner(e, spec)
}

// without returns a copy of e whose environment lacks the variable name.
func (e *env) without(name string) *env {
	c := *e
	c.getenv = func(k string) string {
		if k == name {
			return ""
		}
		return e.getenv(k)
	}
	return &c
}

// hashFor returns the configured hash, or with hash = auto the target
// kernel's CONFIG_MODULE_SIG_HASH. A kernel built without module signing
// gives dkmsenv.ErrNoModuleSig: it is reported, never guessed.
func hashFor(r dkmsenv.Roots, cfg *config.Config, kver string) (hash, from string, err error) {
	if cfg.Hash != config.HashAuto {
		return cfg.Hash, cfg.Path, nil
	}
	return r.SigHash(kver)
}

// absentKey says what is missing ("... not found", "... unreachable") when opening the configured key failed
// because the key or certificate is simply not there (removable media, a
// token not plugged in), and returns "" when the key is unusable for any
// other reason, e.g. a mistyped pin_file or pkcs11_module: that is a
// configuration error, never "absent".
func absentKey(cfg *config.Config, err error) string {
	if missing := missingKeyFiles(cfg); len(missing) > 0 && errors.Is(err, fs.ErrNotExist) {
		return strings.Join(missing, " and ") + " not found"
	}
	if errors.Is(err, keys.ErrTokenUnreachable) {
		if cfg.PKCS11Server != "" {
			return "signing token " + redactURI(cfg.Key) + " unreachable (p11-kit server " + cfg.PKCS11Server + ")"
		}
		return "signing token " + redactURI(cfg.Key) + " unreachable"
	}
	if errors.Is(err, keys.ErrNoToken) {
		return "signing key " + redactURI(cfg.Key) + " not found"
	}
	return ""
}

// missingKeyFiles lists the key file and certificate that do not exist.
func missingKeyFiles(cfg *config.Config) []string {
	var missing []string
	if !strings.HasPrefix(strings.ToLower(cfg.Key), "pkcs11:") {
		if _, err := os.Stat(cfg.Key); errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, "signing key "+cfg.Key)
		}
	}
	if _, err := os.Stat(cfg.Certificate); errors.Is(err, fs.ErrNotExist) {
		missing = append(missing, "certificate "+cfg.Certificate)
	}
	return missing
}

// childEnv is the environment of the programs the DKMS commands run (the
// package's own POST_BUILD, depmod): ours, without the key's passphrase.
func childEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, keys.PinEnv+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// quoteShell single-quotes s for a file DKMS sources with bash.
func quoteShell(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
