// Package status is the model behind `dkms-sign-hook status`: for the DKMS
// tree, which route signs each package, each built and installed module's
// signature state, and whether the running kernel will load it and why.
// Its values are typed; the command only renders them as text or JSON.
package status

import (
	"crypto/ecdsa"
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
	// Boot: Secure Boot, lockdown, shim's MOK trust and how the running
	// kernel uses .platform.
	Boot        kerneltrust.Boot `json:"boot"`
	Certificate Certificate      `json:"certificate"`
	// Token: the signing token, when the key is a pkcs11: URI (CheckToken).
	Token    *Token    `json:"token,omitempty"`
	Packages []Package `json:"packages"`
	Builds   []Build   `json:"builds"`
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
	// Problems: what the running kernel would refuse in this certificate,
	// or do with it other than trusting it for modules.
	Problems []string `json:"problems,omitempty"`
	// Shim: what shim would do with it as a MOK besides vouching for it to
	// the kernel (machines that booted through UEFI only).
	Shim []string `json:"shim,omitempty"`
	// Fix: what makes the running kernel trust it, when it does not.
	Fix string `json:"fix,omitempty"`
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
	// Support: what the build's kernel can verify (from its configuration),
	// nil when its configuration is not found.
	Support *kerneltrust.Support `json:"kernel_support,omitempty"`
	// Skipped: entries that are not checked (symlinks, unreadable files).
	Skipped []Skipped `json:"skipped,omitempty"`
}

// Module is one module file: its verdict, and whether it will load.
type Module struct {
	sign.Verdict
	Where Where `json:"where"`
	// SignedWith names the known certificate the last signature verifies
	// against: "configured", or "dkms" for DKMS's own mok_certificate.
	SignedWith string `json:"signed_with,omitempty"`
	// Keyrings: the running kernel's keyrings holding that certificate's key.
	Keyrings []string `json:"keyrings,omitempty"`
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
	c := rep.readCertificate(h.Roots, certPath)
	if rep.ubuntuMOK = readUbuntuMOK(h.Roots, rep.Boot.Platform); rep.ubuntuMOK != nil {
		rep.UbuntuMOK = h.Roots.UbuntuMOK()
	}
	known := []*knownCert{c}
	for _, d := range dkmsCerts(h) {
		if c.cert == nil || !d.cert.Equal(c.cert) {
			known = append(known, d)
		}
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
		rep.Builds = append(rep.Builds, rep.checkBuild(h.Roots, b, known))
	}
	return rep, nil
}

// Assess says what the running system makes of the certificate at
// certPath, as status does: is it trusted for modules, in which keyrings,
// its MOK state, its problems and the fix.
func Assess(r dkmsenv.Roots, certPath string) Certificate {
	return assess(r, certPath).Certificate
}

// assess is a report on the running system and the certificate alone.
func assess(r dkmsenv.Roots, certPath string) *Report {
	rep := &Report{Enforcement: kerneltrust.ReadEnforcement(r.Sys())}
	rep.readCertificate(r, certPath)
	return rep
}

// A knownCert is a certificate a module may be signed with, and whether the
// running kernel holds its key.
type knownCert struct {
	name     string // "configured" or "dkms"
	path     string
	cert     *x509.Certificate
	trust    Trust
	keyrings []string
}

// readCertificate fills rep.Boot and rep.Certificate, and returns the
// configured certificate (cert nil when it cannot be read).
func (rep *Report) readCertificate(r dkmsenv.Roots, path string) *knownCert {
	running, _, _ := r.RunningKernel()
	var kconfig map[string]string
	if running != "" {
		kconfig, _, _ = r.KernelConfig(running)
	}
	rep.Boot = kerneltrust.ReadBoot(r.Sys(), r.Proc(), kconfig)
	c := &rep.Certificate
	c.Path = path
	k := &knownCert{name: "configured", path: path}
	cert, err := keys.LoadCertificate(path)
	if err != nil {
		c.Error = err.Error()
		return k
	}
	d := keys.Describe(cert)
	c.Subject, c.KeyID, c.Serial, c.KeyType = d.Subject, d.SKID, d.Serial, d.KeyType
	c.NotAfter = d.NotAfter.UTC().Format("2006-01-02")
	c.Warning = d.Warning()
	k.cert = cert
	k.trust, k.keyrings = kernelTrust(r, cert, rep.Boot.Platform)
	c.Trust, c.Keyrings = k.trust, k.keyrings
	c.MOK = mokState(r, cert)
	c.Problems = kerneltrust.CertProblems(cert, kconfig, running)
	if rep.Boot.EFI {
		c.Shim = kerneltrust.ShimProblems(cert)
	}
	c.Fix = rep.fix()
	return k
}

// dkmsCerts are DKMS's own signing certificates: <tree>/mok.pub, which
// Debian's dkms generates and signs every module with unless told otherwise,
// and mok_certificate of the framework configuration when it names another
// (modules built before it changed keep the old signature).
func dkmsCerts(h *dkmsenv.Host) []*knownCert {
	paths := []string{filepath.Join(h.Tree, "mok.pub")}
	if fw, err := h.Roots.ReadFramework(); err == nil && fw.Values["mok_certificate"] != "" {
		paths = append(paths, h.Roots.Path(fw.Values["mok_certificate"]))
	}
	var out []*knownCert
	for _, p := range paths {
		cert, err := keys.LoadCertificate(p)
		if err != nil {
			continue
		}
		k := &knownCert{name: "dkms", path: p, cert: cert}
		k.trust, k.keyrings = kernelTrust(h.Roots, cert, kerneltrust.PlatformUse{Answer: "unknown"})
		out = append(out, k)
	}
	return out
}

// fix says what makes the running kernel trust the configured certificate
// ("" when it does, or cannot tell).
func (rep *Report) fix() string {
	c := rep.Certificate
	switch {
	case c.Trust == TrustYes || c.Trust == TrustUnknown || c.Trust == TrustKeyringUnknown:
		return ""
	case c.MOK == kerneltrust.MokPending:
		return "its enrollment is pending: reboot and confirm it in MokManager (\"Enroll MOK\", then the password given to mokutil)"
	case c.MOK == kerneltrust.MokEnrolled && rep.Boot.MokListTrusted == "no":
		return "it is enrolled as a MOK, but shim does not tell the kernel to trust MOK keys for modules (no MokListTrustedRT: they are in .platform): " +
			"run mokutil --trust-mok, then reboot and confirm in MokManager"
	case c.MOK == kerneltrust.MokEnrolled:
		return "it is enrolled as a MOK, but the running kernel did not load it for modules: " + rep.Boot.Platform.Why
	case rep.Boot.EFI:
		return "enroll it: dkms-sign-hook enroll, then reboot and confirm in MokManager"
	}
	return "this machine did not boot through UEFI, so there is no MOK list: the kernel trusts only keys built into it"
}

func (rep *Report) checkBuild(r dkmsenv.Roots, b dkmsenv.Build, known []*knownCert) Build {
	bs := Build{Package: b.Package, Version: b.Version, Kernel: b.KernelVer, Arch: b.Arch}
	if kconfig, _, err := r.KernelConfig(b.KernelVer); err == nil {
		if s, ok := kerneltrust.KernelSupport(kconfig, b.KernelVer); ok {
			bs.Support = &s
		}
	}
	files, skipped, err := dkmsenv.ModuleFiles(b.Dir())
	if err != nil {
		bs.Skipped = append(bs.Skipped, Skipped{Path: b.Dir(), Why: err.Error()})
	}
	for _, s := range skipped {
		bs.Skipped = append(bs.Skipped, Skipped{Path: s.Path, Why: s.Why})
	}
	pol := kernelPolicy(r, b.KernelVer)
	check := func(path string, where Where) {
		m, err := rep.checkModule(path, known, pol, bs.Support)
		if err != nil {
			bs.Skipped = append(bs.Skipped, Skipped{Path: path, Why: strings.Join(strings.Fields(err.Error()), " ")})
			return
		}
		m.Where = where
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

// checkModule verifies a module against the configured certificate and,
// when another key signed it, against the other known certificates, and
// judges whether the running kernel loads it.
func (rep *Report) checkModule(path string, known []*knownCert, pol sign.Policy, sup *kerneltrust.Support) (Module, error) {
	var certs []*x509.Certificate
	if known[0].cert != nil {
		certs = []*x509.Certificate{known[0].cert}
	}
	_, v, err := sign.CheckFor(path, certs, pol)
	if err != nil {
		return Module{}, err
	}
	m := Module{Verdict: v}
	by := known[0]
	if v.State == sign.StateUnknownKey {
		by = nil
		for _, k := range known[1:] {
			if _, v2, err := sign.CheckFor(path, []*x509.Certificate{k.cert}, pol); err == nil && v2.State != sign.StateUnknownKey {
				by, v = k, v2
				break
			}
		}
	}
	trust := TrustUnknown
	if by != nil && v.State != sign.StateUnsigned {
		m.SignedWith, m.Keyrings, trust = by.name, by.keyrings, by.trust
		if _, ec := by.cert.PublicKey.(*ecdsa.PublicKey); ec && sup != nil && !sup.ECDSA && v.State == sign.StateValid {
			// The kernel answers ENOPKG, refused when enforcing.
			v.State, v.Detail = sign.StateUnsupported, "signed with an ECDSA key, which the kernel cannot check (CONFIG_CRYPTO_ECDSA is not set)"
			m.Verdict.State, m.Verdict.Detail = v.State, v.Detail
		}
	}
	m.Loads, m.Reason, m.Explanation = Judge(v, trust, rep.Enforcement)
	switch {
	case m.Reason == ReasonTrusted && by != nil && by.name == "dkms":
		m.Explanation = "will load: signed by DKMS's own key (" + by.path + "), which the running kernel trusts; `dkms-sign-hook sign --dkms` signs it with yours"
	case m.Reason == ReasonKeyNotTrusted && by != nil && by.name == "dkms":
		m.Explanation = "signed by DKMS's own key (" + by.path + "), which the running kernel does not trust: will NOT load where signatures are enforced; sign it with yours: dkms-sign-hook sign --dkms"
		if m.Loads != nil && !*m.Loads {
			m.Explanation = "will NOT load: signed by DKMS's own key (" + by.path + "), which the running kernel does not trust, and it enforces signatures (" + rep.Enforcement.Why + "); sign it with yours: dkms-sign-hook sign --dkms"
		}
	case m.Reason == ReasonKeyNotTrusted && rep.Certificate.Fix != "":
		m.Explanation = "will NOT load where signatures are enforced: the running kernel does not trust the certificate; " + rep.Certificate.Fix
		if m.Loads != nil && !*m.Loads {
			m.Explanation = "will NOT load: the running kernel enforces signatures (" + rep.Enforcement.Why + ") and does not trust the certificate; " + rep.Certificate.Fix
		}
	}
	rep.judgeUbuntuMOK(&m, certs)
	return m, nil
}

// What status asks the running system other than through files: the
// members of the kernel's keyrings (keyctl), and shim's MOK list through
// mokutil, which reads the running system's EFI variables (so only for the
// live root). Tests replay answers recorded in real boots.
var (
	readKeyring kerneltrust.KeyringReader = kerneltrust.Keyctl
	mokState                              = func(r dkmsenv.Roots, cert *x509.Certificate) kerneltrust.MokState {
		if !r.Live() {
			return kerneltrust.MokUnknown
		}
		s, _, _ := kerneltrust.MokTestKey(cert)
		return s
	}
)

// kernelTrust says whether the running kernel holds the certificate's key
// in a keyring it checks module signatures against (<Proc>/keys, keyctl);
// .platform counts when the kernel is known to check modules against it.
func kernelTrust(r dkmsenv.Roots, cert *x509.Certificate, platform kerneltrust.PlatformUse) (Trust, []string) {
	f, err := os.Open(filepath.Join(r.Proc(), "keys"))
	if err != nil {
		return TrustUnknown, nil
	}
	defer f.Close()
	kt, err := kerneltrust.KernelTrusts(cert, f, readKeyring)
	switch {
	case err != nil:
		return TrustUnknown, nil
	case kt.ForModules:
		return TrustYes, kt.Keyrings
	case !kt.Loaded:
		return TrustNo, nil
	case !kt.KeyringsKnown:
		return TrustKeyringUnknown, nil
	case kt.Platform && platform.Answer == "yes":
		return TrustYes, kt.Keyrings
	case kt.Platform && platform.Answer == "unknown":
		return TrustPlatformUnknown, kt.Keyrings
	default:
		return TrustOtherKeyrings, kt.Keyrings
	}
}
