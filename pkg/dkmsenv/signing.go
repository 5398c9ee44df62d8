package dkmsenv

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/config"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/signlog"
)

// Signing signs DKMS builds' modules with the configured key: the one loop
// behind the POST_BUILD hook and `sign --dkms`. Per build: the module files
// (symlinks skipped), the hash (configured, or the target kernel's), the key
// (opened once per hash), SignFile, a signing log line, and a summary.
type Signing struct {
	Roots  Roots
	Config *config.Config
	Log    logrus.FieldLogger
	// Open opens the configured key for a hash; close releases a token.
	Open func(hash string) (s *sign.Signer, close func(), err error)
	// Hook: run by DKMS as POST_BUILD. A key that cannot be opened is
	// reported loudly, and a key that is absent follows missing_key.
	Hook bool
	// Installed: also sign each module's installed copy
	// (<Modules>/<kver>/updates/dkms), and note the kernel for depmod.
	Installed bool

	// Found counts the module files met, Signed those changed.
	Found, Signed int

	keys    map[string]openKey
	changed map[string]bool
	// gone: the token became unreachable mid-batch (hook only).
	gone error
}

type openKey struct {
	signer *sign.Signer
	close  func()
	err    error
}

// KeyError is a failure to open the key, which no other build can avoid.
type KeyError struct{ Err error }

func (e *KeyError) Error() string { return e.Err.Error() }
func (e *KeyError) Unwrap() error { return e.Err }

// Close releases the keys opened.
func (s *Signing) Close() {
	for _, k := range s.keys {
		if k.close != nil {
			k.close()
		}
	}
	s.keys = nil
}

// ChangedKernels lists, sorted, the kernels whose installed modules changed.
func (s *Signing) ChangedKernels() []string {
	var out []string
	for k := range s.changed {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// SignBuild signs the modules of one build.
func (s *Signing) SignBuild(b Build) error {
	if err := b.CheckDir(); err != nil {
		return err
	}
	files, skipped, err := ModuleFiles(b.Dir())
	if err != nil {
		return err
	}
	for _, sk := range skipped {
		s.Log.WithField("file", sk.Path).Warnf("not signing: %s", sk.Why)
	}
	if len(files) == 0 {
		s.Log.WithField("dir", b.Dir()).Warn("no modules to sign")
		return nil
	}
	hash, from, err := s.hashFor(b.KernelVer)
	if errors.Is(err, ErrNoModuleSig) {
		s.Log.WithField("kernel", b.KernelVer).Warnf("not signing: %v; set hash= in %s to sign anyway", err, configName(s.Config))
		return nil
	}
	if err != nil {
		s.warnUnsigned(b, files, "no hash")
		return err
	}
	signer, err := s.signer(hash)
	if err != nil {
		return s.keyFailed(b, files, err)
	}
	var failed, unlogged int
	for n, f := range files {
		if s.gone != nil {
			// The token went away: this build's remaining modules too.
			return s.summary(b, failed, unlogged, s.keyGone(b, files[max(n-1, 0):], AbsentKey(s.Config, s.gone)))
		}
		targets := []string{f}
		if s.Installed {
			if inst := s.Roots.InstalledModule(b.KernelVer, filepath.Base(f)); inst != "" {
				targets = append(targets, inst)
			}
		}
		for i, t := range targets {
			changed, signErr, logErr := s.signFile(b, signer, t, from)
			if signErr != nil {
				failed++
			}
			if logErr != nil {
				unlogged++
			}
			if changed && i > 0 {
				if s.changed == nil {
					s.changed = map[string]bool{}
				}
				s.changed[b.KernelVer] = true
			}
		}
	}
	if s.gone != nil {
		return s.summary(b, failed, unlogged, s.keyGone(b, files[len(files)-1:], AbsentKey(s.Config, s.gone)))
	}
	return s.summary(b, failed, unlogged, nil)
}

// signFile signs one module file and logs it.
func (s *Signing) signFile(b Build, signer *sign.Signer, path, hashFrom string) (changed bool, signErr, logErr error) {
	s.Found++
	res, err := signer.SignFile(path)
	if errors.Is(err, keys.ErrTokenUnreachable) && s.Hook {
		// The signer went away mid-batch: as if the key were unplugged.
		// This module is untouched (replaced only once signed).
		s.Log.WithField("file", path).Warnf("not signed: %v", err)
		s.gone = err
		return false, nil, nil
	}
	if err != nil {
		s.Log.WithField("file", path).Errorf("signing failed: %v", err)
		return false, err, nil
	}
	fields := logrus.Fields{"file": path, "kernel": b.KernelVer, "hash": signer.Hash(), "key": signlog.KeyID(signer.Certificate())}
	if !res.Changed {
		s.Log.WithFields(fields).Info("already signed by this key")
		return false, nil, nil
	}
	s.Signed++
	if res.Replaced > 0 {
		fields["replaced"] = res.Replaced
	}
	fields["hash_from"] = hashFrom
	s.Log.WithFields(fields).Info("signed")
	audit := signlog.Log{Path: s.Config.Log}
	entry := signlog.Entry{Package: b.Package, Version: b.Version, Kernel: b.KernelVer, Arch: b.Arch}
	if err := audit.Append(entry, path, res, signer); err != nil {
		s.Log.WithField("file", path).Errorf("signed, but not logged: %v", err)
		return true, nil, err
	}
	return true, nil, nil
}

func (s *Signing) summary(b Build, failed, unlogged int, gone error) error {
	var msgs []string
	if failed > 0 {
		msgs = append(msgs, Plural(failed, "module", "modules")+" of "+b.Dir()+" failed")
	}
	if unlogged > 0 {
		msgs = append(msgs, Plural(unlogged, "module", "modules")+" of "+b.Dir()+" signed but not logged in "+s.Config.Log)
	}
	if gone != nil {
		msgs = append(msgs, gone.Error())
	}
	if len(msgs) > 0 {
		return fmt.Errorf("%s (see above)", strings.Join(msgs, "; "))
	}
	return nil
}

// hashFor returns the configured hash, or with hash = auto the target
// kernel's CONFIG_MODULE_SIG_HASH, and where it came from. A kernel built
// without module signing gives ErrNoModuleSig: it is reported, never guessed.
//
// A hash named in the configuration that the target kernel's configuration
// says it lacks (SHA-1 on 7.x, SHA-3 before 6.7) is refused: the kernel
// would refuse every module signed with it.
func (s *Signing) hashFor(kver string) (hash, from string, err error) {
	if s.Config.Hash == config.HashAuto {
		return s.Roots.SigHash(kver)
	}
	if h, err := sign.ParseHash(s.Config.Hash); err == nil && ValidName("kernel", kver) == nil {
		for _, f := range s.Roots.KernelConfigFiles(kver) {
			pol, err := sign.KernelPolicyFile(f)
			if err != nil {
				continue
			}
			if !pol.HasHash(h) {
				return "", f, fmt.Errorf("hash = %s in %s, but kernel %s has no %s (%s), so it would refuse the modules; set hash = auto", s.Config.Hash, s.Config.Path, kver, s.Config.Hash, f)
			}
			break
		}
	}
	return s.Config.Hash, s.Config.Path, nil
}

// signer opens the key for hash once, remembering a failure too.
func (s *Signing) signer(hash string) (*sign.Signer, error) {
	if s.keys == nil {
		s.keys = map[string]openKey{}
	}
	k, ok := s.keys[hash]
	if !ok {
		k.signer, k.close, k.err = s.Open(hash)
		s.keys[hash] = k
	}
	return k.signer, k.err
}

// keyFailed reports a key that cannot be opened. Outside the hook that
// ends the run. In the hook the modules stay unsigned, loudly; a key that
// is simply absent (removable media, a token not plugged in) fails the
// build only with missing_key = fail.
func (s *Signing) keyFailed(b Build, files []string, err error) error {
	if !s.Hook {
		return &KeyError{err}
	}
	what := AbsentKey(s.Config, err)
	if what == "" {
		WarnUnsigned(s.Log, b, files, "the key is unusable")
		return err
	}
	s.Log.Warn(err.Error()) // why: no such file, no answer within the timeout...
	return s.keyGone(b, files, what)
}

// keyGone reports modules left unsigned because the key is absent or its
// token unreachable, and returns the error missing_key asks for.
func (s *Signing) keyGone(b Build, files []string, what string) error {
	WarnUnsigned(s.Log, b, files, what)
	if s.Config.MissingKey == config.MissingKeyFail {
		return fmt.Errorf("%s; %s not signed (missing_key = fail)", what, Plural(len(files), "module", "modules"))
	}
	s.Log.Warnf("%s (missing_key = warn: exit 0)", what)
	return nil
}

func (s *Signing) warnUnsigned(b Build, files []string, why string) {
	if s.Hook {
		WarnUnsigned(s.Log, b, files, why)
	}
}

// configName names the configuration file in messages.
func configName(cfg *config.Config) string {
	if cfg.Path != "" {
		return cfg.Path
	}
	return config.DefaultPath
}

// WarnUnsigned says loudly which modules of a build stay unsigned, and how
// to sign them later.
func WarnUnsigned(log logrus.FieldLogger, b Build, files []string, why string) {
	log.Warnf("*** %s: modules of %s/%s for kernel %s are NOT signed with your key; where signatures are enforced (Secure Boot) they will not load ***",
		why, b.Package, b.Version, b.KernelVer)
	for _, f := range files {
		log.WithField("file", f).Warn("not signed")
	}
	log.Warnf("to sign them once the key is available: dkms-sign-hook sign --dkms --kernel %s", b.KernelVer)
}

// AbsentKey says what is missing ("... not found", "... unreachable") when
// opening the configured key failed because the key or certificate is
// simply not there (removable media, a token not plugged in, a signing
// server down), and returns "" when the key is unusable for any other
// reason, e.g. a mistyped pin_file or pkcs11_module: that is a
// configuration error, never "absent".
func AbsentKey(cfg *config.Config, err error) string {
	if missing := missingKeyFiles(cfg); len(missing) > 0 && errors.Is(err, fs.ErrNotExist) {
		return strings.Join(missing, " and ") + " not found"
	}
	if errors.Is(err, keys.ErrTokenUnreachable) {
		if cfg.PKCS11Server != "" {
			return "signing token " + keys.Redact(cfg.Key) + " unreachable (p11-kit server " + cfg.PKCS11Server + ")"
		}
		return "signing token " + keys.Redact(cfg.Key) + " unreachable"
	}
	if errors.Is(err, keys.ErrNoToken) {
		return "signing key " + keys.Redact(cfg.Key) + " not found"
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

// Plural says "1 module", "2 modules".
func Plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// SignBuilds signs each of builds (the hook's), and returns their errors.
func (s *Signing) SignBuilds(builds []Build) []error {
	var errs []error
	for _, b := range builds {
		if err := s.SignBuild(b); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// SignTree signs the built and installed modules of every build in tree
// for kernel (every kernel when "") of the packages in only (every package
// when empty), then runs depmod for each kernel whose installed modules
// changed. A key that cannot be opened ends it: that error comes alone.
func (s *Signing) SignTree(tree, kernel string, only map[string]bool) []error {
	builds, err := AllBuilds(tree)
	if err != nil {
		return []error{err}
	}
	s.Installed = true
	var errs []error
	for _, b := range builds {
		if (kernel != "" && b.KernelVer != kernel) || (len(only) > 0 && !only[b.Package]) {
			continue
		}
		err := s.SignBuild(b)
		var keyErr *KeyError
		if errors.As(err, &keyErr) {
			return []error{keyErr.Err}
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	for _, k := range s.ChangedKernels() {
		if err := s.Roots.Depmod(k); err != nil {
			errs = append(errs, err)
			continue
		}
		s.Log.WithField("kernel", k).Info("ran depmod")
	}
	return errs
}
