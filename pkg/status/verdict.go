package status

import (
	"fmt"
	"strings"

	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/kerneltrust"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
)

// Trust is whether the running kernel holds the certificate's key where it
// checks module signatures.
type Trust int

const (
	TrustUnknown         Trust = iota // /proc/keys unreadable
	TrustYes                          // in .builtin_trusted_keys, .secondary_trusted_keys or .machine
	TrustNo                           // not loaded at all
	TrustKeyringUnknown               // loaded, but its keyrings cannot be read (not root)
	TrustOtherKeyrings                // loaded, only in keyrings not checked for modules (.platform)
	TrustPlatformUnknown              // only in .platform, on a kernel that may or may not check modules against it
)

var trustWords = [...]string{
	TrustUnknown:         "unknown",
	TrustYes:             "yes",
	TrustNo:              "no",
	TrustKeyringUnknown:  "keyring-unknown",
	TrustOtherKeyrings:   "other-keyrings",
	TrustPlatformUnknown: "platform-unknown",
}

// MarshalText gives the JSON word: unknown, yes, no, keyring-unknown or other-keyrings.
func (t Trust) MarshalText() ([]byte, error) { return []byte(trustWords[t]), nil }

// Text says it as `status` prints it; keyrings are those Trust came with.
func (t Trust) Text(keyrings []string) string {
	switch t {
	case TrustKeyringUnknown:
		return "loaded (keyring unknown: run as root)"
	case TrustOtherKeyrings:
		return "no (only in " + strings.Join(keyrings, ", ") + ")"
	case TrustPlatformUnknown:
		return "maybe (only in .platform, which this kernel may not check modules against)"
	case TrustYes:
		if len(keyrings) > 0 {
			return "yes (" + strings.Join(keyrings, ", ") + ")"
		}
	}
	return trustWords[t]
}

// Reason is the fact that decides whether a module loads (or would decide,
// when that cannot be known).
type Reason string

const (
	ReasonTrusted       Reason = "trusted"         // valid, by a key the kernel trusts: loads
	ReasonNotEnforced   Reason = "not-enforced"    // the kernel does not enforce signatures: loads (tainting it unless trusted)
	ReasonKeyNotTrusted Reason = "key-not-trusted" // valid, but the kernel lacks the key
	ReasonTrustUnknown  Reason = "trust-unknown"   // valid; whether the kernel has the key is unknown
	ReasonUnsigned      Reason = "unsigned"        // no signature
	ReasonUnknownKey    Reason = "unknown-key"     // signed by another key, which the kernel may or may not have
	ReasonUnsupported   Reason = "unsupported"     // an algorithm the kernel cannot check
	ReasonBadSignature  Reason = "bad-signature"   // never loads, enforced or not
	ReasonMalformed     Reason = "malformed"       // never loads, enforced or not
)

// Judge says whether the running kernel will load a module with verdict v,
// given whether it trusts the configured certificate and enforces
// signatures, as kernel/module/signing.c decides: a bad or malformed
// signature is always refused; unsigned, unknown-key and unsupported are
// refused only when signatures are enforced.
func Judge(v sign.Verdict, trust Trust, enf kerneltrust.Enforcement) (loads *bool, reason Reason, sentence string) {
	yes, no := true, false
	switch {
	case v.State == sign.StateBadSignature:
		return &no, ReasonBadSignature, "will NOT load: the signature does not match the module (modified after signing)"
	case v.State == sign.StateMalformed:
		return &no, ReasonMalformed, "will NOT load: malformed signature"
	case v.State == sign.StateValid && trust == TrustYes:
		return &yes, ReasonTrusted, "will load"
	case enf.Known && !enf.Enforced:
		return &yes, ReasonNotEnforced, "loads: the running kernel does not enforce module signatures (" + enf.Why + "); it taints itself for a module it cannot verify"
	}
	why, maybe, enforced := enforcedReason(v, trust)
	switch {
	case !enf.Known || enforced == "":
		return nil, why, maybe
	}
	return &no, why, enforced + " (" + enf.Why + ")"
}

// enforcedReason is the reason a module may be refused, said for a kernel
// that may enforce signatures, and for one that does ("" when even then
// it may load).
func enforcedReason(v sign.Verdict, trust Trust) (reason Reason, maybe, enforced string) {
	switch v.State {
	case sign.StateValid:
		if trust == TrustNo || trust == TrustOtherKeyrings {
			return ReasonKeyNotTrusted, "will NOT load where signatures are enforced: the running kernel does not trust the certificate (enroll it: mokutil --import CERT)",
				"will NOT load: the running kernel does not trust the certificate (enroll it: mokutil --import CERT) and enforces signatures"
		}
		return ReasonTrustUnknown, "will load if the kernel trusts the certificate", ""
	case sign.StateUnknownKey:
		return ReasonUnknownKey, fmt.Sprintf("signed by another key (%s): loads only if the kernel trusts that key; run `dkms-sign-hook sign --dkms`", v.Signer), ""
	case sign.StateUnsupported:
		return ReasonUnsupported, "will NOT load where signatures are enforced: " + v.Detail,
			"will NOT load: " + v.Detail + ", and the running kernel enforces signatures"
	}
	return ReasonUnsigned, "will NOT load where signatures are enforced; elsewhere loads and taints the kernel",
		"will NOT load: unsigned, and the running kernel enforces signatures"
}
