// Package status is the model behind `dkms-sign-hook status`: for the DKMS
// tree, which route signs each package, each built and installed module's
// signature state, and whether the running kernel will load it and why.
// Its values are typed; the command only renders them as text or JSON.
package status

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"

	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/dkmsenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/kerneltrust"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
)

// Report is the whole status.
type Report struct {
	DKMSTree  string                 `json:"dkms_tree"`
	Framework dkmsenv.FrameworkState `json:"framework_route"`
	// Enforcement: does the running kernel refuse modules it cannot verify?
	Enforcement kerneltrust.Enforcement `json:"enforcement"`
	Certificate Certificate             `json:"certificate"`
	Packages    []Package               `json:"packages"`
	Builds      []Build                 `json:"builds"`
	// UbuntuMOK is the MOK certificate Ubuntu's DKMS signs with, when the
	// system has one (/var/lib/shim-signed/mok/MOK.der).
	UbuntuMOK string `json:"ubuntu_mok,omitempty"`
	ubuntuMOK *ubuntuMOK
}

// Certificate is the configured certificate and what the system makes of it.
type Certificate struct {
	Path     string `json:"path"`
	Subject  string `json:"subject,omitempty"`
	KeyID    string `json:"key_id,omitempty"`
	Serial   string `json:"serial,omitempty"`
	KeyType  string `json:"key_type,omitempty"`
	NotAfter string `json:"not_after,omitempty"`
	// Warning: expired, expiring within 30 days, or not yet valid.
	Warning string `json:"warning,omitempty"`
	// Error: the certificate could not be read; nothing else is known.
	Error string `json:"error,omitempty"`
	// Trust: is its key in the running kernel's keyrings (/proc/keys)?
	Trust    Trust                `json:"trusted_by_running_kernel"`
	Keyrings []string             `json:"keyrings,omitempty"`
	MOK      kerneltrust.MokState `json:"mok"`
}

// Package is one DKMS package and how it is signed.
type Package struct {
	Package string        `json:"package"`
	Enabled dkmsenv.Route `json:"enabled"`
	Note    string        `json:"note,omitempty"`
}

// Build is one package version built for one kernel.
type Build struct {
	Package string   `json:"package"`
	Version string   `json:"version"`
	Kernel  string   `json:"kernel"`
	Arch    string   `json:"arch"`
	Modules []Module `json:"modules"`
	// Skipped: entries that are not checked (symlinks, unreadable files).
	Skipped []Skipped `json:"skipped,omitempty"`
}

// Module is one module file: its verdict, and whether it will load.
type Module struct {
	sign.Verdict
	Where Where `json:"where"`
	// Loads: will the running kernel load it? nil when that cannot be known.
	Loads  *bool  `json:"loads"`
	Reason Reason `json:"reason"`
	// Explanation is Reason as a sentence, with what to do.
	Explanation string `json:"explanation"`
}

// Where a module file is: DKMS's build tree, or installed for the kernel.
type Where string

const (
	Built     Where = "built"
	Installed Where = "installed"
)

// Skipped is a module file that was not checked, and why.
type Skipped struct {
	Path string `json:"path"`
	Why  string `json:"why"`
}

// Collect builds the report for the DKMS installation h and the
// certificate at certPath (which need not be readable).
func Collect(h *dkmsenv.Host, certPath string) (*Report, error) {
	rep := &Report{
		DKMSTree:    h.Tree,
		Framework:   h.FrameworkState(),
		Enforcement: kerneltrust.ReadEnforcement(h.Roots.Sys()),
	}
	certs := rep.readCertificate(h.Roots, certPath)
	if rep.ubuntuMOK = readUbuntuMOK(h.Roots); rep.ubuntuMOK != nil {
		rep.UbuntuMOK = h.Roots.UbuntuMOK()
	}
	pkgs, err := dkmsenv.Packages(h.Tree)
	if err != nil {
		return nil, err
	}
	for _, p := range pkgs {
		route, note := h.RouteOf(p, rep.Framework)
		rep.Packages = append(rep.Packages, Package{Package: p, Enabled: route, Note: note})
	}
	builds, err := dkmsenv.AllBuilds(h.Tree)
	if err != nil {
		return nil, err
	}
	for _, b := range builds {
		rep.Builds = append(rep.Builds, rep.checkBuild(h.Roots, b, certs))
	}
	return rep, nil
}

// readCertificate fills rep.Certificate and returns the certificate to
// verify against (none when it cannot be read).
func (rep *Report) readCertificate(r dkmsenv.Roots, path string) []*x509.Certificate {
	c := &rep.Certificate
	c.Path = path
	cert, err := keys.LoadCertificate(path)
	if err != nil {
		c.Error = err.Error()
		return nil
	}
	d := keys.Describe(cert)
	c.Subject, c.KeyID, c.Serial, c.KeyType = d.Subject, d.SKID, d.Serial, d.KeyType
	c.NotAfter = d.NotAfter.UTC().Format("2006-01-02")
	c.Warning = d.Warning()
	c.Trust, c.Keyrings = kernelTrust(r, cert)
	if r.Live() {
		// mokutil reads the running system's EFI variables.
		c.MOK, _, _ = kerneltrust.MokTestKey(cert)
	}
	return []*x509.Certificate{cert}
}

func (rep *Report) checkBuild(r dkmsenv.Roots, b dkmsenv.Build, certs []*x509.Certificate) Build {
	bs := Build{Package: b.Package, Version: b.Version, Kernel: b.KernelVer, Arch: b.Arch}
	files, skipped, err := dkmsenv.ModuleFiles(b.Dir())
	if err != nil {
		bs.Skipped = append(bs.Skipped, Skipped{Path: b.Dir(), Why: err.Error()})
	}
	for _, s := range skipped {
		bs.Skipped = append(bs.Skipped, Skipped{Path: s.Path, Why: s.Why})
	}
	pol := kernelPolicy(r, b.KernelVer)
	check := func(path string, where Where) {
		_, v, err := sign.CheckFor(path, certs, pol)
		if err != nil {
			bs.Skipped = append(bs.Skipped, Skipped{Path: path, Why: strings.Join(strings.Fields(err.Error()), " ")})
			return
		}
		m := Module{Verdict: v, Where: where}
		m.Loads, m.Reason, m.Explanation = Judge(v, rep.Certificate.Trust, rep.Enforcement)
		rep.judgeUbuntuMOK(&m, certs)
		bs.Modules = append(bs.Modules, m)
	}
	for _, f := range files {
		check(f, Built)
		if inst := r.InstalledModule(b.KernelVer, filepath.Base(f)); inst != "" {
			check(inst, Installed)
		}
	}
	return bs
}

// kernelTrust says whether the running kernel holds the certificate's key
// in a keyring it checks module signatures against (<Proc>/keys, keyctl).
func kernelTrust(r dkmsenv.Roots, cert *x509.Certificate) (Trust, []string) {
	f, err := os.Open(filepath.Join(r.Proc(), "keys"))
	if err != nil {
		return TrustUnknown, nil
	}
	defer f.Close()
	kt, err := kerneltrust.KernelTrusts(cert, f)
	switch {
	case err != nil:
		return TrustUnknown, nil
	case kt.ForModules:
		return TrustYes, kt.Keyrings
	case !kt.Loaded:
		return TrustNo, nil
	case !kt.KeyringsKnown:
		return TrustKeyringUnknown, nil
	default:
		return TrustOtherKeyrings, kt.Keyrings
	}
}
