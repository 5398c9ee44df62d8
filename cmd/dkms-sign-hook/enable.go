package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/config"
	"github.com/dkms-sign-hook/dkms-sign-hook/internal/safefile"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/dkmsenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
)

func init() {
	register(&command{
		name:  "enable",
		usage: "[--override FILE] PKG... | --all [--framework [--sign-file PATH] [--config FILE]]",
		short: "sign DKMS packages' modules as DKMS builds them (links /etc/dkms/PKG.conf)",
		run:   runEnable,
	})
	register(&command{
		name:  "disable",
		usage: "PKG... | --all | --framework",
		short: "stop signing DKMS packages' modules (removes what enable created)",
		run:   runDisable,
	})
}

// dkmsTarget is what enable and disable act on.
type dkmsTarget struct {
	*dkmsenv.Host
	// overrideFile is the checked shared override (enable only).
	overrideFile os.FileInfo
}

func newTarget(e *env, override string) (*dkmsTarget, error) {
	h, err := openHost(e, override)
	if err != nil {
		return nil, err
	}
	return &dkmsTarget{Host: h}, nil
}

func runEnable(e *env, args []string) error {
	c := commands["enable"]
	fs := newFlags(c, e)
	all := fs.Bool("all", false, "every package now under the DKMS tree")
	framework := fs.Bool("framework", false, "also install the framework.conf.d drop-in: DKMS signs every package, present and future, through this tool")
	override := fs.String("override", defaultOverride, "the shared override file to link to: an absolute path that only root can change")
	signFile := fs.String("sign-file", defaultSignFile, "with --framework: the sign-file symlink to this binary, for DKMS's sign_file=")
	cfgPath := fs.String("config", "", "with --framework: configuration file naming the key and certificate")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *all && fs.NArg() > 0 {
		return usagef("give package names or --all, not both")
	}
	if !*all && !*framework && fs.NArg() == 0 {
		return usagef("no package given (or --all)")
	}
	t, err := newTarget(e, *override)
	if err != nil {
		return err
	}
	pkgs := fs.Args()
	if *all {
		if pkgs, err = dkmsenv.Packages(t.Tree); err != nil {
			return err
		}
		if len(pkgs) == 0 {
			fmt.Fprintf(e.stdout, "no DKMS packages in %s yet\n", t.Tree)
		}
	}
	if len(pkgs) > 0 {
		if t.overrideFile, err = checkOverrideFile(t.Override); err != nil {
			return err
		}
	}
	var errs []error
	for _, p := range pkgs {
		if err := t.enable(e, p); err != nil {
			errs = append(errs, err)
		}
	}
	if *framework {
		if err := t.enableFramework(e, *cfgPath, *signFile); err != nil {
			errs = append(errs, err)
		}
	} else if *all {
		fmt.Fprintf(e.stdout, "note: packages added later are not covered: run `dkms-sign-hook enable PKG` for them, "+
			"or `dkms-sign-hook enable --framework` to have DKMS sign every package (see `dkms-sign-hook enable --help`)\n")
	}
	return joinErrors(e, c, errs)
}

// joinErrors returns the only error, or prints all and returns a summary.
func joinErrors(e *env, c *command, errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	for _, err := range errs {
		fmt.Fprintf(e.stderr, "dkms-sign-hook %s: %s\n", c.name, oneLine(err.Error()))
	}
	return fmt.Errorf("%d errors", len(errs))
}

// checkOverrideFile makes sure DKMS, which sources the shared override as
// root at every build, reads a file only root can change: an absolute path
// (a relative link target would resolve relative to /etc/dkms), a regular
// file that neither it nor any directory on the way to it can be changed by
// others, carrying our marker. It returns the file's identity, for checking
// the links made to it.
func checkOverrideFile(p string) (os.FileInfo, error) {
	if !filepath.IsAbs(p) {
		return nil, usagef("--override %s: give an absolute path (the link in /etc/dkms would resolve relative to /etc/dkms)", p)
	}
	f, err := safefile.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, withHint(fmt.Errorf("shared override %s is missing", p),
			"install dkms-sign-hook (make install, or the .deb), or pass --override FILE")
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
	if !strings.Contains(string(b), dkmsenv.OverrideMarker) {
		return nil, fmt.Errorf("%s is not dkms-sign-hook's override file (no %q marker)", p, dkmsenv.OverrideMarker)
	}
	return st, nil
}

// mergeLine is what an admin adds to an override file of their own.
func (t *dkmsTarget) mergeLine() string { return ". " + t.Override }

func (t *dkmsTarget) enable(e *env, pkg string) error {
	if err := dkmsenv.ValidName("package", pkg); err != nil {
		return err
	}
	if !dkmsenv.IsPackage(t.Tree, pkg) {
		return withHint(fmt.Errorf("%s: no DKMS package %q in %s", pkg, pkg, t.Tree), "`dkms status` lists the packages; add it with `dkms add` first")
	}
	p := t.OverridePath(pkg)
	switch state, target := t.OverrideState(pkg); state {
	case dkmsenv.OverrideOurs:
		if target != t.Override {
			fmt.Fprintf(e.stdout, "%s: already enabled (%s -> %s)\n", pkg, p, target)
		} else {
			fmt.Fprintf(e.stdout, "%s: already enabled\n", pkg)
		}
		t.warnShadowed(e, pkg)
		return nil
	case dkmsenv.OverrideIncludes:
		fmt.Fprintf(e.stdout, "%s: already enabled by %s (your file, which includes the hook)\n", pkg, p)
		return nil
	case dkmsenv.OverrideAdmin:
		return withHint(fmt.Errorf("%s: %s exists and was not written by dkms-sign-hook; left untouched", pkg, p),
			fmt.Sprintf("to sign %s, add this line at the end of %s: %s", pkg, p, t.mergeLine()))
	}
	if err := symlinkAtomic(t.Override, p); err != nil {
		return fmt.Errorf("%s: %w", pkg, err)
	}
	// What DKMS will source is the file that was checked.
	if st, err := os.Stat(p); err != nil || !os.SameFile(st, t.overrideFile) {
		os.Remove(p)
		return fmt.Errorf("%s: %s -> %s does not lead to the checked override file; link removed", pkg, p, t.Override)
	}
	fmt.Fprintf(e.stdout, "%s: enabled (%s -> %s)\n", pkg, p, t.Override)
	t.warnShadowed(e, pkg)
	return nil
}

// warnShadowed warns about more specific overrides that set POST_BUILD.
func (t *dkmsTarget) warnShadowed(e *env, pkg string) {
	for _, s := range t.Shadowing(pkg) {
		fmt.Fprintf(e.stderr, "dkms-sign-hook enable: warning: %s sets POST_BUILD and is read after %s.conf, so the hook will not run for what it covers; add this line at its end: %s\n",
			s, pkg, t.mergeLine())
	}
}

// symlinkAtomic creates link -> target; symlink(2) itself refuses to replace
// a file that appeared since we looked, so an admin's file is never lost.
func symlinkAtomic(target, link string) error {
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

func (t *dkmsTarget) enableFramework(e *env, cfgPath, signFile string) error {
	cfg, err := loadConfig(e, cfgPath)
	if err != nil {
		return err
	}
	p := t.DropInPath()
	fw := t.FrameworkState()
	ours, exists := fw == dkmsenv.FrameworkOurs, fw != dkmsenv.FrameworkAbsent
	if exists && !ours {
		return fmt.Errorf("%s exists and was not written by dkms-sign-hook; left untouched", p)
	}
	if d, err := dkmsenv.FindDKMS(); err == nil && !d.DropIns {
		return withHint(fmt.Errorf("refusing the framework route: dkms %s (%s) does not read %s (DKMS 3.0.4 and later do)", d.Version, d.Path, filepath.Dir(p)),
			"use per-package overrides: `dkms-sign-hook enable PKG...` or `--all`")
	}
	st, err := os.Stat(signFile)
	if err != nil || st.Mode()&0o111 == 0 || st.IsDir() {
		return withHint(fmt.Errorf("sign-file %s is missing or not executable", signFile),
			"install dkms-sign-hook (it provides "+defaultSignFile+"), or pass --sign-file PATH (a symlink named sign-file to this binary)")
	}
	if filepath.Base(signFile) != "sign-file" {
		return fmt.Errorf("--sign-file %s: the name must be sign-file (the binary acts as sign-file by that name)", signFile)
	}
	// DKMS generates a new key at mok_signing_key, and overwrites
	// mok_certificate, when either file is missing at build time.
	if !strings.HasPrefix(strings.ToLower(cfg.Key), "pkcs11:") {
		if _, err := os.Stat(cfg.Key); err != nil {
			return withHint(fmt.Errorf("key %s: %w; refusing the framework route: DKMS would generate a new key there and overwrite %s", cfg.Key, err, cfg.Certificate),
				"use per-package overrides (`dkms-sign-hook enable PKG...`) when the key is not always present")
		}
	}
	if _, err := os.Stat(cfg.Certificate); err != nil {
		return fmt.Errorf("certificate %s: %w", cfg.Certificate, err)
	}
	if err := checkFrameworkKey(e, cfg); err != nil {
		return err
	}
	content := fmt.Sprintf(`# Written by `+"`dkms-sign-hook enable --framework`"+`; removed by `+"`dkms-sign-hook disable --framework`"+`.
# %s (marker: do not remove this line)
# DKMS 3.0.4+ signs every module of every package with these settings, before
# compressing it. Do not use this route when the key may be absent: DKMS then
# generates a new key at mok_signing_key and overwrites mok_certificate.
sign_file=%s
mok_signing_key=%s
mok_certificate=%s
`, dkmsenv.FrameworkMarker, quoteShell(signFile), quoteShell(cfg.Key), quoteShell(cfg.Certificate))
	if exists {
		if b, _ := os.ReadFile(p); string(b) == content {
			fmt.Fprintf(e.stdout, "framework route: already enabled (%s)\n", p)
			return nil
		}
	}
	if err := writeFileAtomic(p, []byte(content), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "framework route: enabled (%s): DKMS signs every package with %s\n", p, redactURI(cfg.Key))
	return nil
}

// checkFrameworkKey opens the key as sign-file will when DKMS runs it during
// an upgrade (no terminal, no KBUILD_SIGN_PIN, only the default
// configuration's pin_file and pkcs11_module) and checks it matches the
// certificate: DKMS ignores signing failures, so a key it cannot use would
// leave every module unsigned without anyone noticing.
func checkFrameworkKey(e *env, cfg *config.Config) error {
	hash := cfg.Hash
	if hash == config.HashAuto {
		hash = "sha256" // any: only the key and certificate are checked here
	}
	_, closeKey, err := signerFromConfig(e, cfg, hash, asDKMSWill)
	if err != nil {
		hint := hintFor(err)
		if errors.Is(err, keys.ErrNeedPassphrase) {
			hint = "set pin_file in " + config.DefaultPath + " to a root-only file holding the passphrase: DKMS runs sign-file with no terminal and no KBUILD_SIGN_PIN"
		}
		if hint == "" {
			hint = "fix the [signing] settings in " + cfgName(cfg) + ", or use per-package overrides (`dkms-sign-hook enable PKG...`)"
		}
		return withHint(fmt.Errorf("refusing the framework route: DKMS could not sign with this key: %w", err), hint)
	}
	closeKey()
	// Under DKMS, sign-file sees only the default configuration file.
	if cfg.Path != config.DefaultPath && (cfg.PinFile != "" || cfg.PKCS11Module != "") {
		return withHint(fmt.Errorf("refusing the framework route: %s sets pin_file or pkcs11_module, but sign-file, run by DKMS, reads only %s", cfg.Path, config.DefaultPath),
			"put these settings in "+config.DefaultPath+", or use per-package overrides (`dkms-sign-hook enable PKG...`)")
	}
	if cfg.KeyID == config.KeyIDSKID {
		fmt.Fprintf(e.stderr, "dkms-sign-hook enable: warning: key_id = skid in %s does not apply on the framework route: DKMS runs sign-file without -k, so signatures name the key by issuer and serial (kernels accept both)\n", cfgName(cfg))
	}
	return nil
}

// writeFileAtomic writes a temporary file in the same directory, fsyncs it
// and renames it over path.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func runDisable(e *env, args []string) error {
	c := commands["disable"]
	fs := newFlags(c, e)
	all := fs.Bool("all", false, "every package enabled by dkms-sign-hook, and the framework drop-in")
	framework := fs.Bool("framework", false, "remove the framework.conf.d drop-in")
	override := fs.String("override", defaultOverride, "the shared override file enable linked to")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *all && fs.NArg() > 0 {
		return usagef("give package names or --all, not both")
	}
	if !*all && !*framework && fs.NArg() == 0 {
		return usagef("no package given (or --all, --framework)")
	}
	t, err := newTarget(e, *override)
	if err != nil {
		return err
	}
	pkgs := fs.Args()
	if *all {
		links, _ := filepath.Glob(filepath.Join(t.Roots.EtcDKMS(), "*.conf"))
		for _, l := range links {
			pkg := strings.TrimSuffix(filepath.Base(l), ".conf")
			if pkg == "framework" {
				continue
			}
			if st, _ := t.OverrideState(pkg); st == dkmsenv.OverrideOurs {
				pkgs = append(pkgs, pkg)
			}
		}
	}
	var errs []error
	for _, p := range pkgs {
		if err := t.disable(e, p); err != nil {
			errs = append(errs, err)
		}
	}
	if *framework || *all {
		if err := t.disableFramework(e, *framework); err != nil {
			errs = append(errs, err)
		}
	}
	return joinErrors(e, c, errs)
}

func (t *dkmsTarget) disable(e *env, pkg string) error {
	if err := dkmsenv.ValidName("package", pkg); err != nil {
		return err
	}
	p := t.OverridePath(pkg)
	switch state, _ := t.OverrideState(pkg); state {
	case dkmsenv.OverrideNone:
		fmt.Fprintf(e.stdout, "%s: not enabled\n", pkg)
		return nil
	case dkmsenv.OverrideIncludes:
		return withHint(fmt.Errorf("%s: %s is your own file; left untouched", pkg, p),
			fmt.Sprintf("remove the line %q from it to stop signing %s", t.mergeLine(), pkg))
	case dkmsenv.OverrideAdmin:
		fmt.Fprintf(e.stdout, "%s: not enabled (%s is not dkms-sign-hook's; left untouched)\n", pkg, p)
		return nil
	}
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("%s: %w", pkg, err)
	}
	fmt.Fprintf(e.stdout, "%s: disabled (removed %s)\n", pkg, p)
	return nil
}

func (t *dkmsTarget) disableFramework(e *env, explicit bool) error {
	p := t.DropInPath()
	fw := t.FrameworkState()
	ours, exists := fw == dkmsenv.FrameworkOurs, fw != dkmsenv.FrameworkAbsent
	switch {
	case !exists:
		if explicit {
			fmt.Fprintf(e.stdout, "framework route: not enabled\n")
		}
		return nil
	case !ours:
		return fmt.Errorf("%s was not written by dkms-sign-hook; left untouched", p)
	}
	if err := os.Remove(p); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "framework route: disabled (removed %s)\n", p)
	return nil
}
