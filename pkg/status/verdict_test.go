package status

import (
	"testing"

	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/kerneltrust"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
)

// TestJudge follows kernel/module/signing.c: bad and malformed signatures
// never load; without enforcement everything else loads; with it, only a
// valid signature by a trusted key.
func TestJudge(t *testing.T) {
	enforced := kerneltrust.Enforcement{Known: true, Enforced: true, Why: "module.sig_enforce=Y"}
	lax := kerneltrust.Enforcement{Known: true, Why: "module.sig_enforce=N, lockdown=none"}
	unknown := kerneltrust.Enforcement{}
	T, F := "true", "false"
	for _, tc := range []struct {
		state  sign.State
		trust  Trust
		enf    kerneltrust.Enforcement
		loads  string // "true", "false", "null"
		reason Reason
	}{
		{sign.StateValid, TrustYes, enforced, T, ReasonTrusted},
		{sign.StateValid, TrustYes, unknown, T, ReasonTrusted},
		{sign.StateValid, TrustNo, enforced, F, ReasonKeyNotTrusted},
		{sign.StateValid, TrustOtherKeyrings, enforced, F, ReasonKeyNotTrusted},
		{sign.StateValid, TrustNo, lax, T, ReasonNotEnforced},
		{sign.StateValid, TrustNo, unknown, "null", ReasonKeyNotTrusted},
		{sign.StateValid, TrustKeyringUnknown, enforced, "null", ReasonTrustUnknown},
		{sign.StateUnsigned, TrustYes, enforced, F, ReasonUnsigned},
		{sign.StateUnsigned, TrustYes, lax, T, ReasonNotEnforced},
		{sign.StateUnsigned, TrustYes, unknown, "null", ReasonUnsigned},
		{sign.StateUnknownKey, TrustYes, enforced, "null", ReasonUnknownKey},
		{sign.StateUnknownKey, TrustYes, lax, T, ReasonNotEnforced},
		{sign.StateUnsupported, TrustYes, enforced, F, ReasonUnsupported},
		{sign.StateBadSignature, TrustYes, lax, F, ReasonBadSignature},
		{sign.StateMalformed, TrustYes, unknown, F, ReasonMalformed},
	} {
		loads, reason, sentence := Judge(sign.Verdict{State: tc.state, Signer: "x"}, tc.trust, tc.enf)
		got := "null"
		if loads != nil {
			got = map[bool]string{true: T, false: F}[*loads]
		}
		if got != tc.loads || reason != tc.reason || sentence == "" {
			t.Errorf("%s, trust %s, %+v: loads %s, reason %s (%q); want %s, %s", tc.state, trustWords[tc.trust], tc.enf, got, reason, sentence, tc.loads, tc.reason)
		}
	}
}

func TestStateOfCoversEveryState(t *testing.T) {
	errs := []error{nil, sign.ErrUnsigned, sign.ErrUnknownKey, sign.ErrBadSignature, sign.ErrMalformed, sign.ErrUnsupported}
	for i, err := range errs {
		if s, ok := sign.StateOf(err); !ok || s != sign.States[i] {
			t.Errorf("StateOf(%v) = %q, %v; want %q", err, s, ok, sign.States[i])
		}
	}
}
