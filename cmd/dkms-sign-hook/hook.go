package main

import (
	"fmt"
	"os"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/config"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/dkmsenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/status"
)

func init() {
	register(&command{
		name:  "hook",
		usage: "[--config FILE] [--pre-install BUILD_DIR] [-- PACKAGE_SCRIPT [ARGS...]]",
		short: "DKMS POST_BUILD (and PRE_INSTALL) entry point: sign the modules DKMS just built (set up by enable)",
		run:   runHook,
	})
}

// runHook is what DKMS runs as POST_BUILD, in <dkms_tree>/<package>/<version>/build.
// It first runs the package's own POST_BUILD (passed after --), then signs
// every module in the module directory with the configured key.
func runHook(e *env, args []string) (err error) {
	c := commands["hook"]
	fs := newFlags(c, e)
	cfgPath := fs.String("config", "", "configuration file (default $"+config.EnvVar+", else "+config.DefaultPath+")")
	preInstall := fs.String("pre-install", "", "run as DKMS's PRE_INSTALL (the override sets it): `BUILD_DIR` is <dkms_tree>/<package>/<version>/<kernelver>/<arch>; the words after -- are the package's own PRE_INSTALL")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log := dkmsenv.NewLogger(e.stderr)
	if tty := dkmsenv.CapturedTerminal(e.stderr); tty != nil {
		defer tty.Close()
		dkmsenv.WarnAlsoOn(log, tty)
		defer func() {
			if err != nil {
				fmt.Fprintf(tty, "dkms-sign-hook hook: %v\n", err)
			}
		}()
	}
	cfg, cfgErr := loadConfig(e, *cfgPath)
	cwd, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("working directory: %w", err)
	}
	r := sysRoots(e)
	var s *dkmsenv.Signing // unattended, absent keys by missing_key
	if cfgErr == nil {
		s = &dkmsenv.Signing{Roots: r, Config: cfg, Log: log, Hook: true,
			Open: func(hash string) (*sign.Signer, func(), error) { return signerFromConfig(e, cfg, hash, unattended) }}
		defer s.Close()
	}
	if *preInstall != "" {
		return dkmsenv.PreInstallHook(log, cwd, *preInstall, fs.Args(), e.stdout, e.stderr, s, cfgErr)
	}
	// The package's own POST_BUILD runs whatever happens to the signing.
	chainErr := dkmsenv.RunPostBuild(log, cwd, fs.Args(), e.stdout, e.stderr)
	builds, err := r.Discover(cwd, e.getenv)
	if err != nil {
		return err
	}
	if cfgErr != nil {
		for _, b := range builds {
			dkmsenv.WarnUnsigned(log, b, nil, "the configuration is unusable")
		}
		return cfgErr
	}
	// Without kernelver in the environment (DKMS 2.x autoinstall), every
	// build of this version: signing again what is signed changes nothing.
	if errs := s.SignBuilds(builds); len(errs) > 0 {
		return joinErrors(e, c, errs)
	}
	status.WarnUntrusted(log, r, cfg.Certificate, builds)
	return chainErr
}
