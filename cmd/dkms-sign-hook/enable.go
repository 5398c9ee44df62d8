package main

import (
	"fmt"
	"path/filepath"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/hint"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/dkmsenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
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
	host, err := openHost(e, *override)
	if err != nil {
		return err
	}
	pkgs := fs.Args()
	if *all {
		if pkgs, err = dkmsenv.Packages(host.Tree); err != nil {
			return err
		}
		if len(pkgs) == 0 {
			fmt.Fprintf(e.stdout, "no DKMS packages in %s yet\n", host.Tree)
		}
	}
	var errs []error
	if len(pkgs) > 0 {
		errs = enablePackages(e, host, pkgs)
	}
	if *framework {
		if err := enableFramework(e, host, *cfgPath, *signFile); err != nil {
			errs = append(errs, err)
		}
	} else if *all {
		fmt.Fprintf(e.stdout, "note: packages added later are not covered: run `dkms-sign-hook enable PKG` for them, "+
			"or `dkms-sign-hook enable --framework` to have DKMS sign every package (see `dkms-sign-hook enable --help`)\n")
	}
	return joinErrors(e, c, errs)
}

func enablePackages(e *env, host *dkmsenv.Host, pkgs []string) []error {
	if !filepath.IsAbs(host.Override) {
		return []error{usagef("--override %s: give an absolute path (the link in /etc/dkms would resolve relative to /etc/dkms)", host.Override)}
	}
	return host.EnableAll(pkgs, func(ch dkmsenv.Change) { printChange(e, host, ch) })
}

// printChange says what enable or disable did.
func printChange(e *env, host *dkmsenv.Host, ch dkmsenv.Change) {
	w := e.stdout
	switch ch.Outcome {
	case dkmsenv.Enabled:
		fmt.Fprintf(w, "%s: enabled (%s -> %s)\n", ch.Package, ch.Path, ch.Target)
	case dkmsenv.AlreadyEnabled:
		if ch.Target != host.Override {
			fmt.Fprintf(w, "%s: already enabled (%s -> %s)\n", ch.Package, ch.Path, ch.Target)
		} else {
			fmt.Fprintf(w, "%s: already enabled\n", ch.Package)
		}
	case dkmsenv.EnabledByOwnFile:
		fmt.Fprintf(w, "%s: already enabled by %s (your file, which includes the hook)\n", ch.Package, ch.Path)
	case dkmsenv.Disabled:
		fmt.Fprintf(w, "%s: disabled (removed %s)\n", ch.Package, ch.Path)
	case dkmsenv.NotEnabled:
		fmt.Fprintf(w, "%s: not enabled\n", ch.Package)
	case dkmsenv.NotOurs:
		fmt.Fprintf(w, "%s: not enabled (%s is not dkms-sign-hook's; left untouched)\n", ch.Package, ch.Path)
	}
	for _, s := range ch.Shadowed {
		fmt.Fprintf(e.stderr, "dkms-sign-hook enable: warning: %s sets POST_BUILD or PRE_INSTALL and is read after %s.conf, so the hook's will not run for what it covers; add this line at its end: %s\n",
			s, ch.Package, host.MergeLine())
	}
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

func enableFramework(e *env, host *dkmsenv.Host, cfgPath, signFile string) error {
	cfg, err := loadConfig(e, cfgPath)
	if err != nil {
		return err
	}
	if host.FrameworkState() == dkmsenv.FrameworkForeign {
		return &dkmsenv.AdminFileError{Path: host.DropInPath()}
	}
	if d, err := dkmsenv.FindDKMS(); err == nil && !d.DropIns {
		return hint.With(fmt.Errorf("refusing the framework route: dkms %s (%s) does not read %s (DKMS 3.0.4 and later do)", d.Version, d.Path, filepath.Dir(host.DropInPath())),
			"use per-package overrides: `dkms-sign-hook enable PKG...` or `--all`")
	}
	settings := dkmsenv.FrameworkSettings{SignFile: signFile, Key: cfg.Key, Certificate: cfg.Certificate}
	if err := settings.Check(); err != nil {
		return err
	}
	warning, err := dkmsenv.CheckFrameworkKey(cfg, func(hash string) (*sign.Signer, func(), error) {
		return signerFromConfig(e, cfg, hash, asDKMSWill)
	})
	if err != nil {
		return err
	}
	if warning != "" {
		fmt.Fprintf(e.stderr, "dkms-sign-hook enable: warning: %s\n", warning)
	}
	ch, err := host.EnableFramework(settings)
	if err != nil {
		return err
	}
	if ch.Outcome == dkmsenv.AlreadyEnabled {
		fmt.Fprintf(e.stdout, "framework route: already enabled (%s)\n", ch.Path)
		return nil
	}
	fmt.Fprintf(e.stdout, "framework route: enabled (%s): DKMS signs every package with %s\n", ch.Path, keys.Redact(cfg.Key))
	return nil
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
	host, err := openHost(e, *override)
	if err != nil {
		return err
	}
	pkgs := fs.Args()
	if *all {
		pkgs = host.EnabledPackages()
	}
	errs := host.DisableAll(pkgs, func(ch dkmsenv.Change) { printChange(e, host, ch) })
	if *framework || *all {
		ch, err := host.DisableFramework()
		switch {
		case err != nil:
			errs = append(errs, err)
		case ch.Outcome == dkmsenv.Disabled:
			fmt.Fprintf(e.stdout, "framework route: disabled (removed %s)\n", ch.Path)
		case *framework:
			fmt.Fprintf(e.stdout, "framework route: not enabled\n")
		}
	}
	return joinErrors(e, c, errs)
}
