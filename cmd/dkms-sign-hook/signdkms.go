package main

import (
	"flag"
	"fmt"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/config"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/dkmsenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
)

// dkmsSignOpts are the flags of `sign --dkms [--kernel KVER] [--config FILE]`.
type dkmsSignOpts struct {
	on      bool
	kernel  string
	cfgPath string
}

// dkmsSignFlags adds --dkms, --kernel and --config to the sign command.
func dkmsSignFlags(fs *flag.FlagSet) *dkmsSignOpts {
	o := &dkmsSignOpts{}
	fs.BoolVar(&o.on, "dkms", false, "sign every built and installed DKMS module with the configured key, then run depmod")
	fs.StringVar(&o.kernel, "kernel", "", "with --dkms: only the modules for this kernel version")
	fs.StringVar(&o.cfgPath, "config", "", "configuration file: the key for --dkms, and the signing log (default $"+config.EnvVar+", else "+config.DefaultPath+")")
	return o
}

// signDKMS signs all built (<dkms_tree>/<pkg>/<ver>/<kver>/<arch>/module/)
// and installed (/lib/modules/<kver>/updates/dkms/) DKMS modules for one
// kernel, or all kernels, with the configured key: after the key media is
// plugged in, or after a key change. Then it runs depmod for each kernel
// whose installed modules changed.
//
// args, when given, name the DKMS packages to sign; by default all of them.
func signDKMS(e *env, o *dkmsSignOpts, args []string) error {
	only := map[string]bool{}
	for _, pkg := range args {
		if err := dkmsenv.ValidName("package", pkg); err != nil {
			return usagef("%v (with --dkms, arguments name DKMS packages, not files)", err)
		}
		only[pkg] = true
	}
	if o.kernel != "" {
		if err := dkmsenv.ValidName("kernel", o.kernel); err != nil {
			return usagef("--kernel: %v", err)
		}
	}
	cfg, err := loadConfig(e, o.cfgPath)
	if err != nil {
		return err
	}
	host, err := openHost(e, defaultOverride)
	if err != nil {
		return err
	}
	for pkg := range only {
		if !dkmsenv.IsPackage(host.Tree, pkg) {
			return usagef("no DKMS package %q in %s", pkg, host.Tree)
		}
	}
	s := &dkmsenv.Signing{Roots: host.Roots, Config: cfg, Log: dkmsenv.NewLogger(e.stderr),
		Open: func(hash string) (*sign.Signer, func(), error) { return signerFromConfig(e, cfg, hash, interactive) }}
	defer s.Close()
	errs := s.SignTree(host.Tree, o.kernel, only)
	if s.Found == 0 {
		where := "any kernel"
		if o.kernel != "" {
			where = "kernel " + o.kernel
		}
		fmt.Fprintf(e.stdout, "no DKMS modules for %s in %s\n", where, host.Tree)
	}
	return joinErrors(e, commands["sign"], errs)
}
