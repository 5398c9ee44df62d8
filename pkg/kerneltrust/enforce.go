package kerneltrust

import (
	"os"
	"path/filepath"
	"strings"
)

// Enforcement says whether the running kernel refuses modules it cannot
// verify. It does with module.sig_enforce=Y (or CONFIG_MODULE_SIG_FORCE,
// which shows as Y) and under lockdown (integrity or confidentiality, which
// Secure Boot turns on in Debian's kernel); otherwise an unsigned module, or
// one signed by a key the kernel lacks, loads and taints the kernel. A bad
// signature or a malformed one is refused either way.
type Enforcement struct {
	// Known is false when /sys does not say (not mounted, no securityfs).
	Known    bool `json:"known"`
	Enforced bool `json:"enforced"`
	// Why names the setting that decided: "module.sig_enforce=Y",
	// "lockdown=integrity", "module.sig_enforce=N, lockdown=none".
	Why string `json:"why,omitempty"`
}

// ReadEnforcement reads <sys>/module/module/parameters/sig_enforce and
// <sys>/kernel/security/lockdown.
func ReadEnforcement(sys string) Enforcement {
	sig, sigErr := os.ReadFile(filepath.Join(sys, "module/module/parameters/sig_enforce"))
	if sigErr == nil && strings.TrimSpace(string(sig)) == "Y" {
		return Enforcement{Known: true, Enforced: true, Why: "module.sig_enforce=Y"}
	}
	lockdown, lockErr := readLockdown(filepath.Join(sys, "kernel/security"))
	if lockErr == nil && lockdown != "none" {
		return Enforcement{Known: true, Enforced: true, Why: "lockdown=" + lockdown}
	}
	if sigErr != nil || lockErr != nil {
		return Enforcement{}
	}
	return Enforcement{Known: true, Why: "module.sig_enforce=N, lockdown=" + lockdown}
}

// readLockdown returns the bracketed mode of securityfs's lockdown file:
// "none", "integrity" or "confidentiality". A kernel without the lockdown
// LSM has no such file in a mounted securityfs: that is "none".
func readLockdown(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "lockdown"))
	if err != nil {
		if ents, derr := os.ReadDir(dir); derr == nil && len(ents) > 0 && os.IsNotExist(err) {
			return "none", nil
		}
		return "", err
	}
	for _, f := range strings.Fields(string(b)) {
		if strings.HasPrefix(f, "[") && strings.HasSuffix(f, "]") {
			return strings.Trim(f, "[]"), nil
		}
	}
	return "", os.ErrInvalid
}
