package status

import (
	"strings"
	"testing"

	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/kerneltrust"
)

// TestFix: what status tells a user whose kernel does not trust the
// certificate, for each MOK state and boot.
func TestFix(t *testing.T) {
	debian := kerneltrust.PlatformForModules("Linux version 6.1.0-57-amd64 ... Debian 6.1.192-3 (2026-11-01)", nil)
	for _, tc := range []struct {
		trust Trust
		mok   kerneltrust.MokState
		efi   bool
		want  string // "" or a substring
		// untrusted: shim did not set MokListTrustedRT
		untrusted bool
	}{
		{TrustOtherKeyrings, kerneltrust.MokEnrolled, true, "run mokutil --trust-mok", true},
		{TrustYes, kerneltrust.MokEnrolled, true, "", false},
		{TrustUnknown, kerneltrust.MokUnknown, true, "", false},
		{TrustKeyringUnknown, kerneltrust.MokUnknown, true, "", false},
		{TrustNo, kerneltrust.MokPending, true, "its enrollment is pending: reboot and confirm it in MokManager", false},
		{TrustNo, kerneltrust.MokNotEnrolled, true, "enroll it: dkms-sign-hook enroll, then reboot", false},
		{TrustOtherKeyrings, kerneltrust.MokNotEnrolled, true, "enroll it: dkms-sign-hook enroll", false},
		{TrustNo, kerneltrust.MokEnrolled, true, "it is enrolled as a MOK, but the running kernel did not load it", false},
		{TrustNo, kerneltrust.MokUnknown, false, "did not boot through UEFI", false},
	} {
		rep := &Report{Boot: kerneltrust.Boot{EFI: tc.efi, Platform: debian, MokListTrusted: "yes"}}
		if tc.untrusted {
			rep.Boot.MokListTrusted = "no"
		}
		rep.Certificate.Trust, rep.Certificate.MOK = tc.trust, tc.mok
		got := rep.fix()
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("trust %s, MOK %v, EFI %v: fix %q, want %q", trustWords[tc.trust], tc.mok, tc.efi, got, tc.want)
		}
	}
}
