package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/status"
)

func init() {
	register(&command{
		name:  "status",
		usage: "[--json] [--config FILE]",
		short: "show, per DKMS package and kernel, whether signing is enabled and whether each module will load",
		run:   runStatus,
	})
}

func runStatus(e *env, args []string) error {
	c := commands["status"]
	fs := newFlags(c, e)
	asJSON := fs.Bool("json", false, "print one JSON object")
	cfgPath := fs.String("config", "", "configuration file naming the certificate")
	override := fs.String("override", defaultOverride, "the shared override file enable links to")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	cfg, err := loadConfig(e, *cfgPath)
	if err != nil {
		return err
	}
	host, err := openHost(e, *override)
	if err != nil {
		return err
	}
	rep, err := status.Collect(host, cfg.Certificate)
	if err != nil {
		return err
	}
	rep.Token = status.CheckToken(cfg.Key, keys.Options{PKCS11Module: cfg.PKCS11Module,
		PKCS11Server: cfg.PKCS11Server, PKCS11Timeout: cfg.PKCS11Timeout})
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printStatus(e, rep)
	return nil
}

func printStatus(e *env, rep *status.Report) {
	w := e.stdout
	fmt.Fprintf(w, "DKMS tree: %s\n", rep.DKMSTree)
	fmt.Fprintf(w, "framework route (framework.conf.d): %s\n", rep.Framework)
	if enf := rep.Enforcement; enf.Known {
		fmt.Fprintf(w, "running kernel enforces module signatures: %s (%s)\n", map[bool]string{true: "yes", false: "no"}[enf.Enforced], enf.Why)
	}
	if b := rep.Boot; b.EFI {
		fmt.Fprintf(w, "Secure Boot: %s; lockdown: %s; shim's MokListTrustedRT: %s; .platform (firmware db) counts for modules: %s (%s)\n",
			b.SecureBoot, cmp.Or(b.Lockdown, "unknown"), b.MokListTrusted, b.Platform.Answer, b.Platform.Why)
	} else {
		fmt.Fprintf(w, "Secure Boot: none (the machine did not boot through UEFI)\n")
	}
	c := rep.Certificate
	if c.Error != "" {
		fmt.Fprintf(w, "certificate: %s (cannot tell our signatures from others)\n", strings.TrimPrefix(c.Error, "certificate: "))
	} else {
		fmt.Fprintf(w, "certificate: %s (%s, key id %s): trusted by the running kernel: %s; MOK: %s\n", c.Path, c.Subject, c.KeyID, c.Trust.Text(c.Keyrings), c.MOK)
		fmt.Fprintf(w, "certificate: %s, serial %s, valid until %s\n", c.KeyType, c.Serial, c.NotAfter)
		if c.Warning != "" {
			fmt.Fprintf(w, "warning: %s\n", c.Warning)
		}
		for _, p := range c.Problems {
			fmt.Fprintf(w, "warning: certificate: %s\n", p)
		}
		for _, p := range c.Shim {
			fmt.Fprintf(w, "warning: shim: %s\n", p)
		}
		if c.Fix != "" {
			fmt.Fprintf(w, "to have it trusted: %s\n", c.Fix)
		}
	}
	printToken(e, rep.Token)
	if len(rep.Packages) == 0 {
		fmt.Fprintf(w, "no DKMS packages\n")
	}
	for _, p := range rep.Packages {
		line := fmt.Sprintf("%s: signing enabled: %s", p.Package, p.Enabled)
		if p.Note != "" {
			line += " (" + p.Note + ")"
		}
		fmt.Fprintln(w, line)
		for _, b := range rep.Builds {
			if b.Package == p.Package {
				printBuild(e, b)
			}
		}
	}
}

// printToken says whether the signing token can be reached now, and how.
func printToken(e *env, t *status.Token) {
	if t == nil {
		return
	}
	via := ""
	if t.Server != "" {
		via = " via p11-kit server " + t.Server
	}
	switch {
	case t.Reachable:
		fmt.Fprintf(e.stdout, "signing token: %s%s: reachable (token %q, serial %s)\n", t.URI, via, t.Label, t.Serial)
	case t.Unreachable:
		fmt.Fprintf(e.stdout, "signing token: %s%s: UNREACHABLE (each call waits at most %s): %s\n", t.URI, via, t.Timeout, oneLine(t.Error))
		fmt.Fprintf(e.stdout, "warning: modules DKMS builds meanwhile stay unsigned; `dkms-sign-hook sign --dkms` signs them once the token is back\n")
	default:
		fmt.Fprintf(e.stdout, "signing token: %s%s: %s\n", t.URI, via, oneLine(t.Error))
	}
}

func printBuild(e *env, b status.Build) {
	for _, m := range b.Modules {
		desc := string(m.State)
		if m.Signer != "" && m.State != sign.StateUnsigned {
			desc += fmt.Sprintf(", signer %q", m.Signer)
		}
		if m.Signatures > 1 {
			desc += fmt.Sprintf(", %d signatures stacked", m.Signatures)
		}
		fmt.Fprintf(e.stdout, "  %s %s/%s %-9s %s: %s: %s\n", b.Version, b.Kernel, b.Arch, m.Where, m.Path, desc, m.Explanation)
	}
	for _, s := range b.Skipped {
		fmt.Fprintf(e.stdout, "  %s %s/%s %s: not checked: %s\n", b.Version, b.Kernel, b.Arch, s.Path, s.Why)
	}
}
