package status

import (
	"crypto/x509"

	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/dkmsenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/kerneltrust"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
)

// Reasons for modules signed by Ubuntu's DKMS with its MOK
// (/var/lib/shim-signed/mok/MOK.der, through kmodsign).
const (
	// ReasonUbuntuMOK: signed by Ubuntu's DKMS MOK, not by the configured key.
	ReasonUbuntuMOK Reason = "ubuntu-mok"
	// ReasonUbuntuMOKAfterHook: the hook signed it, then Ubuntu's DKMS 2.8
	// (sign_build, after POST_BUILD) stacked its MOK signature over ours:
	// the kernel checks the MOK's.
	ReasonUbuntuMOKAfterHook Reason = "ubuntu-mok-after-hook"
)

// ubuntuMOK is Ubuntu's DKMS MOK certificate, when the system has one,
// and whether the running kernel trusts it.
type ubuntuMOK struct {
	cert  *x509.Certificate
	trust Trust
}

func readUbuntuMOK(r dkmsenv.Roots, platform kerneltrust.PlatformUse) *ubuntuMOK {
	cert, err := keys.LoadCertificate(r.UbuntuMOK())
	if err != nil {
		return nil
	}
	trust, _ := kernelTrust(r, cert, platform)
	return &ubuntuMOK{cert: cert, trust: trust}
}

// judgeUbuntuMOK replaces the verdict on a module signed by another key
// when that key is Ubuntu's DKMS MOK, saying whether it signed over ours.
func (rep *Report) judgeUbuntuMOK(m *Module, certs []*x509.Certificate) {
	mok := rep.ubuntuMOK
	if mok == nil || m.State != sign.StateUnknownKey {
		return
	}
	_, by, err := sign.VerifyStack(m.Path, append([]*x509.Certificate{mok.cert}, certs...))
	if err != nil || len(by) == 0 || by[len(by)-1] != mok.cert {
		return
	}
	overOurs := false
	for _, c := range by[:len(by)-1] {
		overOurs = overOurs || (c != nil && c != mok.cert)
	}
	m.SignedWith, m.Reason = "ubuntu-mok", ReasonUbuntuMOK
	m.Explanation = "signed by Ubuntu's DKMS MOK (" + rep.UbuntuMOK + "), not by your key"
	if overOurs {
		m.Reason = ReasonUbuntuMOKAfterHook
		m.Explanation = "signed again by Ubuntu's DKMS MOK after the hook: the kernel checks the MOK's signature, not yours; " +
			"`dkms install` puts yours back alone (the override's PRE_INSTALL), or run `dkms-sign-hook sign --dkms`"
	}
	yes, no := true, false
	switch {
	case mok.trust == TrustYes:
		m.Loads = &yes
		m.Explanation += "; loads: the running kernel trusts that MOK"
	case rep.Enforcement.Known && !rep.Enforcement.Enforced:
		m.Loads = &yes
		m.Explanation += "; loads: the running kernel does not enforce module signatures (" + rep.Enforcement.Why + ")"
	case rep.Enforcement.Known && (mok.trust == TrustNo || mok.trust == TrustOtherKeyrings):
		m.Loads = &no
		m.Explanation += "; will NOT load: the running kernel does not trust that MOK (not enrolled yet?) and enforces signatures"
	default:
		m.Loads = nil
		m.Explanation += "; loads only where that MOK is enrolled"
	}
}
