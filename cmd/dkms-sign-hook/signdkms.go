package main

import (
	"errors"
	"flag"
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"

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
	r := sysRoots(e)
	tree, err := r.Tree()
	if err != nil {
		return err
	}
	for pkg := range only {
		if !dkmsenv.IsPackage(tree, pkg) {
			return usagef("no DKMS package %q in %s", pkg, tree)
		}
	}
	builds, err := dkmsenv.AllBuilds(tree)
	if err != nil {
		return err
	}
	signers := map[string]*sign.Signer{} // by hash name
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	audit := &signingLog{path: cfg.Log}
	changedKernels := map[string]bool{}
	var failed, signed, unlogged, found int
	for _, b := range builds {
		if (o.kernel != "" && b.KernelVer != o.kernel) || (len(only) > 0 && !only[b.Module]) {
			continue
		}
		ctx := &dkmsenv.Context{Tree: tree, Module: b.Module, Version: b.Version, KernelVer: b.KernelVer, Arch: b.Arch}
		files, skipped, err := dkmsenv.ModuleFiles(b.Dir)
		if err != nil {
			return err
		}
		for _, s := range skipped {
			fmt.Fprintf(e.stderr, "dkms-sign-hook sign: %s: not signing: %s\n", s.Path, s.Why)
		}
		if len(files) == 0 {
			continue
		}
		hash, _, err := hashFor(r, cfg, b.KernelVer)
		if errors.Is(err, dkmsenv.ErrNoModuleSig) {
			fmt.Fprintf(e.stderr, "dkms-sign-hook sign: %s/%s for %s: not signing: %v\n", b.Module, b.Version, b.KernelVer, err)
			continue
		}
		if err != nil {
			return err
		}
		signer := signers[hash]
		if signer == nil {
			s, closeKey, err := signerFromConfig(e, cfg, hash, interactive)
			if err != nil {
				return err
			}
			signer = s
			signers[hash] = s
			closers = append(closers, closeKey)
		}
		for _, f := range files {
			targets := []string{f}
			if inst := r.InstalledModule(b.KernelVer, filepath.Base(f)); inst != "" {
				targets = append(targets, inst)
			}
			for i, t := range targets {
				found++
				res, err := signer.SignFile(t)
				if err != nil {
					failed++
					fmt.Fprintf(e.stderr, "dkms-sign-hook sign: %s\n", oneLine(moduleError(t, err).Error()))
					continue
				}
				if !res.Changed {
					fmt.Fprintf(e.stdout, "%s: already signed by this key (%s)\n", t, signer.Hash())
					continue
				}
				signed++
				if i > 0 {
					changedKernels[b.KernelVer] = true
				}
				fmt.Fprintf(e.stdout, "%s: signed (%s)\n", t, signer.Hash())
				if err := audit.add(ctx, t, res, signer); err != nil {
					unlogged++
					fmt.Fprintf(e.stderr, "dkms-sign-hook sign: %s: signed, but not logged: %s\n", t, oneLine(err.Error()))
				}
			}
		}
	}
	if found == 0 {
		where := "any kernel"
		if o.kernel != "" {
			where = "kernel " + o.kernel
		}
		fmt.Fprintf(e.stdout, "no DKMS modules for %s in %s\n", where, tree)
	}
	kvers := make([]string, 0, len(changedKernels))
	for k := range changedKernels {
		kvers = append(kvers, k)
	}
	sort.Strings(kvers)
	for _, k := range kvers {
		if err := depmod(e, r, k); err != nil {
			failed++
			fmt.Fprintf(e.stderr, "dkms-sign-hook sign: %v\n", err)
		}
	}
	switch {
	case failed > 0 && unlogged > 0:
		return fmt.Errorf("%s failed (see above); %d signed, of which %d not logged in %s", plural(failed, "module", "modules"), signed, unlogged, cfg.Log)
	case failed > 0:
		return fmt.Errorf("%s failed (see above); %d signed", plural(failed, "module", "modules"), signed)
	case unlogged > 0:
		return fmt.Errorf("%s signed but not logged in %s (see above)", plural(unlogged, "module", "modules"), cfg.Log)
	}
	return nil
}

// depmod refreshes a kernel's module index after its modules changed.
func depmod(e *env, r dkmsenv.Roots, kver string) error {
	path, err := exec.LookPath("depmod")
	if err != nil {
		for _, p := range []string{"/usr/sbin/depmod", "/sbin/depmod"} {
			if _, err2 := exec.LookPath(p); err2 == nil {
				path, err = p, nil
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("depmod %s: depmod not found (apt-get install kmod)", kver)
	}
	args := []string{kver}
	if !r.Live() {
		args = []string{"-b", r.Path("/"), kver}
	}
	cmd := exec.Command(path, args...)
	cmd.Env = childEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("depmod %s: %v: %s", kver, err, oneLine(string(out)))
	}
	fmt.Fprintf(e.stdout, "depmod %s: done\n", kver)
	return nil
}
