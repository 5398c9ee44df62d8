package dkmsenv

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	dkmsfiles "github.com/dkms-sign-hook/dkms-sign-hook/contrib/dkms"
	"github.com/dkms-sign-hook/dkms-sign-hook/internal/atomicfile"
	"github.com/dkms-sign-hook/dkms-sign-hook/internal/config"
	"github.com/dkms-sign-hook/dkms-sign-hook/internal/safefile"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
)

// Outcome is what Enable, Disable and their framework forms did.
type Outcome int

const (
	Enabled          Outcome = iota // the link made, the drop-in written
	AlreadyEnabled                  // our link (to Change.Target) or an identical drop-in was there
	EnabledByOwnFile                // the admin's override sources ours: nothing to do
	Disabled                        // the link or drop-in removed
	NotEnabled                      // nothing of ours there
	NotOurs                         // nothing of ours there: Change.Path is the admin's, left untouched
)

// Change reports what a route change did, for the command to say.
type Change struct {
	Package string // "" for the framework route
	Outcome Outcome
	Path    string // the override file or the drop-in
	Target  string // the link's target
	// Shadowed: more specific overrides that replace POST_BUILD (Shadowing).
	Shadowed []string
}

// Errors of the route changes, to test for with errors.Is or errors.As.
var (
	// ErrNoOverride: the shared override file is not installed.
	ErrNoOverride = errors.New("is missing")
	// ErrNoSignFile: the sign-file link to this tool is not installed.
	ErrNoSignFile = errors.New("is missing or not executable")
)

// NoPackageError: no DKMS package of that name is in the tree.
type NoPackageError struct{ Package, Tree string }

func (e *NoPackageError) Error() string {
	return fmt.Sprintf("no DKMS package %q in %s", e.Package, e.Tree)
}

// AdminFileError: a file that is the admin's stands where a change would
// act; it is left untouched. MergeLine is what the admin adds to (or
// removes from, when Sources) their file to have it sign.
type AdminFileError struct {
	Package, Path, MergeLine string
	// Sources: the file sources our override (disable cannot undo that).
	Sources bool
}

func (e *AdminFileError) Error() string {
	who := "exists and was not written by dkms-sign-hook"
	if e.Sources {
		who = "is your own file"
	}
	if e.Package == "" {
		return fmt.Sprintf("%s %s; left untouched", e.Path, who)
	}
	return fmt.Sprintf("%s: %s %s; left untouched", e.Package, e.Path, who)
}

// MergeLine is the line an admin's own override adds to sign its package.
func (h *Host) MergeLine() string { return ". " + h.Override }

// CheckOverride makes sure DKMS, which sources the shared override as root
// at every build, reads a file only root can change: an absolute path (a
// relative link target would resolve relative to /etc/dkms), a regular
// file that neither it nor any directory on the way to it can be changed by
// others, carrying our marker. It returns the file's identity, for Enable.
func (h *Host) CheckOverride() (os.FileInfo, error) {
	p := h.Override
	if !filepath.IsAbs(p) {
		return nil, fmt.Errorf("shared override %s: not an absolute path (the link in /etc/dkms would resolve relative to /etc/dkms)", p)
	}
	f, err := safefile.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("shared override %s %w", p, ErrNoOverride)
	}
	if err != nil {
		return nil, fmt.Errorf("shared override: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("shared override %s: %w", p, err)
	}
	if !strings.Contains(string(b), OverrideMarker) {
		return nil, fmt.Errorf("%s is not dkms-sign-hook's override file (no %q marker)", p, OverrideMarker)
	}
	return st, nil
}

// Enable links /etc/dkms/<pkg>.conf to the shared override, whose identity
// CheckOverride returned, unless pkg is already signed or the admin owns
// that file.
func (h *Host) Enable(pkg string, override os.FileInfo) (Change, error) {
	c := Change{Package: pkg, Path: h.OverridePath(pkg)}
	if err := ValidName("package", pkg); err != nil {
		return c, err
	}
	if !IsPackage(h.Tree, pkg) {
		return c, fmt.Errorf("%s: %w", pkg, &NoPackageError{pkg, h.Tree})
	}
	switch state, target := h.OverrideState(pkg); state {
	case OverrideOurs:
		c.Outcome, c.Target, c.Shadowed = AlreadyEnabled, target, h.Shadowing(pkg)
		return c, nil
	case OverrideIncludes:
		c.Outcome = EnabledByOwnFile
		return c, nil
	case OverrideAdmin:
		return c, &AdminFileError{Package: pkg, Path: c.Path, MergeLine: h.MergeLine()}
	}
	if err := symlinkNew(h.Override, c.Path); err != nil {
		return c, fmt.Errorf("%s: %w", pkg, err)
	}
	// What DKMS will source is the file that was checked.
	if st, err := os.Stat(c.Path); err != nil || !os.SameFile(st, override) {
		os.Remove(c.Path)
		return c, fmt.Errorf("%s: %s -> %s does not lead to the checked override file; link removed", pkg, c.Path, h.Override)
	}
	c.Outcome, c.Target, c.Shadowed = Enabled, h.Override, h.Shadowing(pkg)
	return c, nil
}

// symlinkNew creates link -> target; symlink(2) itself refuses to replace
// a file that appeared since we looked, so an admin's file is never lost.
func symlinkNew(target, link string) error {
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return err
	}
	if err := os.Symlink(target, link); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s appeared meanwhile; left untouched", link)
		}
		return err
	}
	return nil
}

// Disable removes the link Enable made.
func (h *Host) Disable(pkg string) (Change, error) {
	c := Change{Package: pkg, Path: h.OverridePath(pkg)}
	if err := ValidName("package", pkg); err != nil {
		return c, err
	}
	switch state, _ := h.OverrideState(pkg); state {
	case OverrideNone:
		c.Outcome = NotEnabled
		return c, nil
	case OverrideIncludes:
		return c, &AdminFileError{Package: pkg, Path: c.Path, MergeLine: h.MergeLine(), Sources: true}
	case OverrideAdmin:
		c.Outcome = NotOurs
		return c, nil
	}
	if err := os.Remove(c.Path); err != nil {
		return c, fmt.Errorf("%s: %w", pkg, err)
	}
	c.Outcome = Disabled
	return c, nil
}

// EnabledPackages lists the packages whose /etc/dkms/<pkg>.conf is our link.
func (h *Host) EnabledPackages() []string {
	links, _ := filepath.Glob(filepath.Join(h.Roots.EtcDKMS(), "*.conf"))
	var pkgs []string
	for _, l := range links {
		pkg := strings.TrimSuffix(filepath.Base(l), ".conf")
		if pkg == "framework" || ValidName("package", pkg) != nil {
			continue
		}
		if st, _ := h.OverrideState(pkg); st == OverrideOurs {
			pkgs = append(pkgs, pkg)
		}
	}
	return pkgs
}

// FrameworkSettings are what the framework route's drop-in sets: DKMS then
// runs SignFile (this tool, named sign-file) with Key and Certificate.
type FrameworkSettings struct {
	SignFile, Key, Certificate string
}

// Check refuses settings DKMS could not use: sign-file missing or misnamed,
// or a key or certificate file absent (DKMS would then generate a new key at
// mok_signing_key and overwrite mok_certificate).
func (s FrameworkSettings) Check() error {
	st, err := os.Stat(s.SignFile)
	if err != nil || st.Mode()&0o111 == 0 || st.IsDir() {
		return fmt.Errorf("sign-file %s %w", s.SignFile, ErrNoSignFile)
	}
	if filepath.Base(s.SignFile) != "sign-file" {
		return fmt.Errorf("--sign-file %s: the name must be sign-file (the binary acts as sign-file by that name)", s.SignFile)
	}
	if !strings.HasPrefix(strings.ToLower(s.Key), "pkcs11:") {
		if _, err := os.Stat(s.Key); err != nil {
			return &KeyNotPresentError{Key: s.Key, Certificate: s.Certificate, Err: err}
		}
	}
	if _, err := os.Stat(s.Certificate); err != nil {
		return fmt.Errorf("certificate %s: %w", s.Certificate, err)
	}
	return nil
}

// KeyNotPresentError: the framework route needs a key that is always there.
type KeyNotPresentError struct {
	Key, Certificate string
	Err              error
}

func (e *KeyNotPresentError) Error() string {
	return fmt.Sprintf("key %s: %v; refusing the framework route: DKMS would generate a new key there and overwrite %s", e.Key, e.Err, e.Certificate)
}

func (e *KeyNotPresentError) Unwrap() error { return e.Err }

// DropIn is the framework route's drop-in for s: the shipped file
// (contrib/dkms/framework.conf.d) with its three settings replaced.
func (s FrameworkSettings) DropIn() string {
	lines := strings.SplitAfter(dkmsfiles.FrameworkDropIn, "\n")
	for i, l := range lines {
		name, _, _ := strings.Cut(l, "=")
		value, ok := map[string]string{"sign_file": s.SignFile, "mok_signing_key": s.Key, "mok_certificate": s.Certificate}[name]
		if ok {
			lines[i] = name + "=" + QuoteShell(value) + "\n"
		}
	}
	return strings.Join(lines, "")
}

// QuoteShell single-quotes s for a file DKMS sources with bash.
func QuoteShell(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// EnableFramework writes the framework route's drop-in (after s.Check).
func (h *Host) EnableFramework(s FrameworkSettings) (Change, error) {
	c := Change{Path: h.DropInPath()}
	fw := h.FrameworkState()
	if fw == FrameworkForeign {
		return c, &AdminFileError{Path: c.Path}
	}
	content := s.DropIn()
	if fw == FrameworkOurs {
		if b, _ := os.ReadFile(c.Path); string(b) == content {
			c.Outcome = AlreadyEnabled
			return c, nil
		}
	}
	if err := os.MkdirAll(filepath.Dir(c.Path), 0o755); err != nil {
		return c, err
	}
	if err := atomicfile.WriteFile(c.Path, []byte(content), 0o644); err != nil {
		return c, err
	}
	c.Outcome = Enabled
	return c, nil
}

// DisableFramework removes our drop-in.
func (h *Host) DisableFramework() (Change, error) {
	c := Change{Path: h.DropInPath()}
	switch h.FrameworkState() {
	case FrameworkAbsent:
		c.Outcome = NotEnabled
		return c, nil
	case FrameworkForeign:
		return c, fmt.Errorf("%s was not written by dkms-sign-hook; left untouched", c.Path)
	}
	if err := os.Remove(c.Path); err != nil {
		return c, err
	}
	c.Outcome = Disabled
	return c, nil
}

// FrameworkKeyError: on the framework route DKMS could not sign with the
// configured key (it ignores signing failures, so every module would stay
// unsigned without anyone noticing).
type FrameworkKeyError struct {
	Config string // the configuration file naming the key
	Err    error
}

func (e *FrameworkKeyError) Error() string {
	return "refusing the framework route: DKMS could not sign with this key: " + e.Err.Error()
}

func (e *FrameworkKeyError) Unwrap() error { return e.Err }

// FrameworkConfigError: the configuration sets what sign-file, run by DKMS,
// never reads (it reads only config.DefaultPath).
type FrameworkConfigError struct{ Config string }

func (e *FrameworkConfigError) Error() string {
	return fmt.Sprintf("refusing the framework route: %s sets pin_file or pkcs11_module, but sign-file, run by DKMS, reads only %s", e.Config, config.DefaultPath)
}

// CheckFrameworkKey opens the key as sign-file will when DKMS runs it
// during an upgrade (open must do so: no terminal, no KBUILD_SIGN_PIN, only
// the default configuration's pin_file and pkcs11_module) and checks it
// matches the certificate. warning is a setting the route ignores.
func CheckFrameworkKey(cfg *config.Config, open func(hash string) (*sign.Signer, func(), error)) (warning string, err error) {
	hash := cfg.Hash
	if hash == config.HashAuto {
		hash = "sha256" // any: only the key and certificate are checked here
	}
	_, closeKey, err := open(hash)
	if err != nil {
		return "", &FrameworkKeyError{Config: configName(cfg), Err: err}
	}
	closeKey()
	// Under DKMS, sign-file sees only the default configuration file.
	if cfg.Path != config.DefaultPath && (cfg.PinFile != "" || cfg.PKCS11Module != "") {
		return "", &FrameworkConfigError{Config: cfg.Path}
	}
	if cfg.KeyID == config.KeyIDSKID {
		warning = "key_id = skid in " + configName(cfg) + " does not apply on the framework route: DKMS runs sign-file without -k, so signatures name the key by issuer and serial (kernels accept both)"
	}
	return warning, nil
}

// EnableAll enables each of pkgs (after CheckOverride), reporting each
// change; it returns the errors.
func (h *Host) EnableAll(pkgs []string, report func(Change)) []error {
	checked, err := h.CheckOverride()
	if err != nil {
		return []error{err}
	}
	return eachPackage(pkgs, func(p string) (Change, error) { return h.Enable(p, checked) }, report)
}

// DisableAll disables each of pkgs, reporting each change.
func (h *Host) DisableAll(pkgs []string, report func(Change)) []error {
	return eachPackage(pkgs, h.Disable, report)
}

func eachPackage(pkgs []string, do func(string) (Change, error), report func(Change)) []error {
	var errs []error
	for _, p := range pkgs {
		ch, err := do(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		report(ch)
	}
	return errs
}
