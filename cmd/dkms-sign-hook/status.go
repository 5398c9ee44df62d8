package main

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/dkmsenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
)

func init() {
	register(&command{
		name:  "status",
		usage: "[--json] [--config FILE]",
		short: "show, per DKMS package and kernel, whether signing is enabled and whether each module will load",
		run:   runStatus,
	})
}

// Signature states of a module file.
const (
	stOurs      = "ours"      // last signature verifies against the configured certificate
	stOther     = "other"     // signed by another key (e.g. DKMS's own mok key)
	stUnsigned  = "unsigned"  // no signature
	stTampered  = "tampered"  // a signature by our key that does not verify
	stMalformed = "malformed" // an appended signature the kernel cannot parse
	stError     = "error"     // unreadable, not a module
)

type statusReport struct {
	DKMSTree    string          `json:"dkms_tree"`
	Framework   string          `json:"framework_route"` // "enabled", "not enabled", "foreign file"
	Certificate certStatus      `json:"certificate"`
	Builds      []buildStatus   `json:"builds"`
	Packages    []packageStatus `json:"packages"`
}

type certStatus struct {
	Path     string `json:"path"`
	Subject  string `json:"subject,omitempty"`
	KeyID    string `json:"key_id,omitempty"`
	Serial   string `json:"serial,omitempty"`
	KeyType  string `json:"key_type,omitempty"`
	NotAfter string `json:"not_after,omitempty"`
	// Warning: expired, expiring within 30 days, or not yet valid.
	Warning string `json:"warning,omitempty"`
	Error   string `json:"error,omitempty"`
	// Trusted: "yes", "no" or "unknown": is it in the running kernel's keyrings (/proc/keys)?
	Trusted string `json:"trusted_by_running_kernel"`
	// MOK: "enrolled", "not enrolled" or "unknown" (mokutil --test-key).
	MOK string `json:"mok"`
}

type packageStatus struct {
	Package string `json:"package"`
	Enabled string `json:"enabled"` // "override", "own override including the hook", "framework", "no"
	Note    string `json:"note,omitempty"`
}

type buildStatus struct {
	Package string         `json:"package"`
	Version string         `json:"version"`
	Kernel  string         `json:"kernel"`
	Arch    string         `json:"arch"`
	Modules []moduleStatus `json:"modules"`
}

type moduleStatus struct {
	File    string `json:"file"`
	Where   string `json:"where"` // "built" or "installed"
	State   string `json:"state"`
	Signer  string `json:"signer,omitempty"`
	Hash    string `json:"hash,omitempty"`
	Sigs    int    `json:"signatures"`
	Detail  string `json:"detail,omitempty"`
	Verdict string `json:"verdict"`
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
	r := sysRoots(e)
	tree, err := r.Tree()
	if err != nil {
		return err
	}
	rep := &statusReport{DKMSTree: tree, Certificate: certStatus{Path: cfg.Certificate, Trusted: "unknown", MOK: "unknown"}}
	var certs []*x509.Certificate
	if cert, err := keys.LoadCertificate(cfg.Certificate); err != nil {
		rep.Certificate.Error = err.Error()
	} else {
		certs = []*x509.Certificate{cert}
		d := keys.Describe(cert)
		rep.Certificate.Subject = d.Subject
		rep.Certificate.KeyID = d.SKID
		rep.Certificate.Serial = d.Serial
		rep.Certificate.KeyType = d.KeyType
		rep.Certificate.NotAfter = d.NotAfter.UTC().Format("2006-01-02")
		rep.Certificate.Warning = d.Warning()
		rep.Certificate.Trusted = kernelTrusts(r, cert)
		rep.Certificate.MOK = mokEnrolled(r, cert)
	}
	fwOurs, fwExists := frameworkState(r)
	switch {
	case fwOurs:
		rep.Framework = "enabled"
	case fwExists:
		rep.Framework = "foreign file"
	default:
		rep.Framework = "not enabled"
	}
	pkgs, err := dkmsenv.Packages(tree)
	if err != nil {
		return err
	}
	for _, p := range pkgs {
		ps := packageStatus{Package: p, Enabled: "no"}
		switch st, _ := overrideState(r, p, *override); {
		case st == ovOurs:
			ps.Enabled = "override"
		case st == ovIncludes:
			ps.Enabled = "own override including the hook"
		case fwOurs:
			ps.Enabled = "framework"
			if st == ovAdmin {
				ps.Note = overridePath(r, p) + " is the admin's"
			}
		case st == ovAdmin:
			ps.Note = overridePath(r, p) + " is the admin's and does not include the hook"
		}
		if sh := shadowingOverrides(r, tree, p, *override); len(sh) > 0 && ps.Enabled != "no" {
			ps.Note = strings.TrimPrefix(ps.Note+"; ", "; ") + "POST_BUILD replaced by " + strings.Join(sh, ", ")
		}
		rep.Packages = append(rep.Packages, ps)
	}
	builds, err := dkmsenv.AllBuilds(tree)
	if err != nil {
		return err
	}
	for _, b := range builds {
		bs := buildStatus{Package: b.Module, Version: b.Version, Kernel: b.KernelVer, Arch: b.Arch}
		files, skipped, err := dkmsenv.ModuleFiles(b.Dir)
		if err != nil {
			bs.Modules = append(bs.Modules, moduleStatus{File: b.Dir, Where: "built", State: stError, Detail: err.Error(), Verdict: "unknown"})
		}
		for _, s := range skipped {
			bs.Modules = append(bs.Modules, moduleStatus{File: s.Path, Where: "built", State: stError, Detail: s.Why, Verdict: "unknown"})
		}
		for _, f := range files {
			bs.Modules = append(bs.Modules, moduleState(f, "built", certs, rep.Certificate.Trusted))
			if inst := r.InstalledModule(b.KernelVer, filepath.Base(f)); inst != "" {
				bs.Modules = append(bs.Modules, moduleState(inst, "installed", certs, rep.Certificate.Trusted))
			}
		}
		rep.Builds = append(rep.Builds, bs)
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printStatus(e, rep)
	return nil
}

// moduleState reads a module's signatures with pkg/sign and says whether it
// will load on a kernel that enforces signatures.
func moduleState(path, where string, certs []*x509.Certificate, trusted string) moduleStatus {
	m := moduleStatus{File: path, Where: where}
	info, err := sign.VerifyFile(path, certs)
	if info != nil {
		m.Sigs = len(info.Signatures)
		if last := info.Last(); last != nil {
			m.Signer, m.Hash = last.Signer, last.HashAlgo
			if m.Signer == "" {
				m.Signer = last.SKID
			}
		}
	}
	switch {
	case err == nil:
		m.State = stOurs
		switch {
		case trusted == "yes":
			m.Verdict = "will load"
		case strings.HasPrefix(trusted, "no"):
			m.Verdict = "will NOT load where signatures are enforced: the running kernel does not trust the certificate (enroll it: mokutil --import CERT)"
		default:
			m.Verdict = "will load if the kernel trusts the certificate"
		}
	case errors.Is(err, sign.ErrUnsigned):
		m.State, m.Verdict = stUnsigned, "will NOT load where signatures are enforced; elsewhere loads and taints the kernel"
	case errors.Is(err, sign.ErrUnknownKey):
		m.State, m.Verdict = stOther, fmt.Sprintf("signed by another key (%s): loads only if the kernel trusts that key; run `dkms-sign-hook sign --dkms`", m.Signer)
	case errors.Is(err, sign.ErrBadSignature):
		m.State, m.Verdict = stTampered, "will NOT load: the signature does not match the module (modified after signing)"
	case errors.Is(err, sign.ErrMalformed):
		m.State, m.Verdict = stMalformed, "will NOT load: malformed signature"
	default:
		m.State, m.Verdict = stError, "unknown"
	}
	if err != nil && m.State != stUnsigned && m.State != stOther {
		m.Detail = oneLine(err.Error())
	}
	return m
}

func printStatus(e *env, rep *statusReport) {
	w := e.stdout
	fmt.Fprintf(w, "DKMS tree: %s\n", rep.DKMSTree)
	fmt.Fprintf(w, "framework route (framework.conf.d): %s\n", rep.Framework)
	c := rep.Certificate
	if c.Error != "" {
		fmt.Fprintf(w, "certificate: %s (cannot tell our signatures from others)\n", strings.TrimPrefix(c.Error, "certificate: "))
	} else {
		fmt.Fprintf(w, "certificate: %s (%s, key id %s): trusted by the running kernel: %s; MOK: %s\n", c.Path, c.Subject, c.KeyID, c.Trusted, c.MOK)
		fmt.Fprintf(w, "certificate: %s, serial %s, valid until %s\n", c.KeyType, c.Serial, c.NotAfter)
		if c.Warning != "" {
			fmt.Fprintf(w, "warning: %s\n", c.Warning)
		}
	}
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
			if b.Package != p.Package {
				continue
			}
			for _, m := range b.Modules {
				desc := m.State
				if m.Signer != "" && m.State != stUnsigned {
					desc += fmt.Sprintf(", signer %q", m.Signer)
				}
				if m.Sigs > 1 {
					desc += fmt.Sprintf(", %d signatures stacked", m.Sigs)
				}
				fmt.Fprintf(w, "  %s %s/%s %-9s %s: %s: %s\n", b.Version, b.Kernel, b.Arch, m.Where, m.File, desc, m.Verdict)
			}
		}
	}
}

// kernelTrusts says whether the running kernel holds the certificate's key
// in a keyring it checks module signatures against (<Proc>/keys, keyctl).
func kernelTrusts(r dkmsenv.Roots, cert *x509.Certificate) string {
	f, err := os.Open(filepath.Join(r.Proc, "keys"))
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	kt, err := keys.KernelTrusts(cert, f)
	switch {
	case err != nil:
		return "unknown"
	case kt.ForModules:
		return "yes"
	case !kt.Loaded:
		return "no"
	case !kt.KeyringsKnown:
		return "loaded (keyring unknown: run as root)"
	default:
		return "no (only in " + strings.Join(kt.Keyrings, ", ") + ")"
	}
}

// mokEnrolled asks mokutil --test-key, on the real system only.
func mokEnrolled(r dkmsenv.Roots, cert *x509.Certificate) string {
	if r.Proc != "/proc" {
		return "unknown"
	}
	st, _, err := keys.MokTestKey(cert)
	if err != nil {
		return "unknown"
	}
	return st.String()
}
