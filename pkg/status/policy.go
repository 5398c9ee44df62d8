package status

import (
	"os"

	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/dkmsenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
)

// kernelPolicy is what kernel kver accepts, from its configuration (the
// headers' .config or auto.conf, else, on the live system, /boot/config-KVER):
// the ML-DSA signed-attributes waiver and the hashes it has. Without a
// configuration, the zero Policy (every hash, no waiver).
func kernelPolicy(r dkmsenv.Roots, kver string) sign.Policy {
	if dkmsenv.ValidName("kernel", kver) != nil {
		return sign.Policy{}
	}
	files := r.KernelConfigFiles(kver)
	if r.Live() {
		files = append(files, "/boot/config-"+kver)
	}
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			continue
		}
		if pol, err := sign.KernelPolicyFile(f); err == nil {
			return pol
		}
	}
	return sign.Policy{}
}
