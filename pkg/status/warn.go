package status

import (
	"github.com/sirupsen/logrus"

	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/dkmsenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/kerneltrust"
)

// WarnUntrusted warns once when the modules just signed are for the running
// kernel and it will not trust them: the certificate is in none of the
// keyrings it checks modules against, and not waiting for enrollment.
func WarnUntrusted(log logrus.FieldLogger, r dkmsenv.Roots, certPath string, builds []dkmsenv.Build) {
	running, _, err := r.RunningKernel()
	if err != nil {
		return
	}
	for _, b := range builds {
		if b.KernelVer != running {
			continue
		}
		rep := assess(r, certPath)
		c := rep.Certificate
		// Only where the kernel refuses (or Secure Boot makes it refuse) what
		// it cannot verify: elsewhere an untrusted key merely taints.
		refuses := rep.Enforcement.Enforced || rep.Boot.SecureBoot == "enabled"
		if refuses && (c.Trust == TrustNo || c.Trust == TrustOtherKeyrings) && c.MOK != kerneltrust.MokPending && c.Fix != "" {
			log.Warnf("*** the running kernel %s does not trust %s (%s): it will refuse these modules where signatures are enforced; %s ***",
				running, certPath, c.Trust.Text(c.Keyrings), c.Fix)
		}
		return
	}
}
