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
	}{
		{TrustYes, kerneltrust.MokEnrolled, true, ""},
		{TrustUnknown, kerneltrust.MokUnknown, true, ""},
		{TrustKeyringUnknown, kerneltrust.MokUnknown, true, ""},
		{TrustNo, kerneltrust.MokPending, true, "its enrollment is pending: reboot and confirm it in MokManager"},
		{TrustNo, kerneltrust.MokNotEnrolled, true, "enroll it: dkms-sign-hook enroll, then reboot"},
		{TrustOtherKeyrings, kerneltrust.MokNotEnrolled, true, "enroll it: dkms-sign-hook enroll"},
		{TrustNo, kerneltrust.MokEnrolled, true, "it is enrolled as a MOK, but the running kernel did not load it"},
		{TrustNo, kerneltrust.MokUnknown, false, "did not boot through UEFI"},
	} {
		rep := &Report{Boot: kerneltrust.Boot{EFI: tc.efi, Platform: debian}}
		rep.Certificate.Trust, rep.Certificate.MOK = tc.trust, tc.mok
		got := rep.fix()
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("trust %s, MOK %v, EFI %v: fix %q, want %q", trustWords[tc.trust], tc.mok, tc.efi, got, tc.want)
		}
	}
}
