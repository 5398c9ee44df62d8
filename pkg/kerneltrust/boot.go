package kerneltrust

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Boot is what the firmware and shim handed the running kernel, and how the
// kernel uses it for modules: the facts behind a Secure Boot refusal.
type Boot struct {
	// EFI: booted through UEFI (<sys>/firmware/efi exists).
	EFI bool `json:"efi"`
	// SecureBoot: "enabled", "disabled", or "unknown" (no EFI, or efivarfs
	// not mounted).
	SecureBoot string `json:"secure_boot"`
	// Lockdown: "none", "integrity", "confidentiality", or "" when unknown.
	Lockdown string `json:"lockdown,omitempty"`
	// SigEnforce: module.sig_enforce, "Y" or "N" ("" when unknown).
	SigEnforce string `json:"sig_enforce,omitempty"`
	// MokListTrusted: "yes" when shim set MokListTrustedRT (the kernel then
	// puts MOK certificates in .machine, which it checks modules against),
	// "no" when shim did not (they go to .platform), "unknown" without
	// EFI or shim.
	MokListTrusted string `json:"mok_list_trusted"`
	// Platform says whether this kernel checks module signatures against
	// .platform (the firmware's db, and MOK certificates when MokListTrustedRT
	// is not set).
	Platform PlatformUse `json:"platform_keyring_for_modules"`
}

// PlatformUse is whether a kernel checks modules against .platform, and
// the evidence.
type PlatformUse struct {
	// Answer: "yes", "no" or "unknown".
	Answer string `json:"answer"`
	Why    string `json:"why"`
}

// The EFI variables read here: the global variable SecureBoot and shim's
// MokListTrustedRT (also mirrored, without attributes, under
// firmware/efi/mok-variables when shim provides its MOK config table).
const (
	efiGlobalGUID = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
	shimGUID      = "605dab50-e046-4300-abb6-3dd810dd8b23"
)

// ReadBoot reads the running system's boot facts from sys (/sys) and proc
// (/proc); kconfig is the running kernel's configuration (CONFIG_X ->
// value), nil when it is not available.
func ReadBoot(sys, proc string, kconfig map[string]string) Boot {
	b := Boot{SecureBoot: "unknown", MokListTrusted: "unknown"}
	if st, err := os.Stat(filepath.Join(sys, "firmware/efi")); err == nil && st.IsDir() {
		b.EFI = true
	}
	if v, err := os.ReadFile(filepath.Join(sys, "module/module/parameters/sig_enforce")); err == nil {
		b.SigEnforce = strings.TrimSpace(string(v))
	}
	b.Lockdown, _ = readLockdown(filepath.Join(sys, "kernel/security"))
	efivars := filepath.Join(sys, "firmware/efi/efivars")
	if b.EFI {
		if v, err := os.ReadFile(filepath.Join(efivars, "SecureBoot-"+efiGlobalGUID)); err == nil && len(v) == 5 {
			// 4 bytes of attributes, then the value.
			b.SecureBoot = map[bool]string{true: "enabled", false: "disabled"}[v[4] == 1]
		}
		b.MokListTrusted = mokListTrusted(sys, efivars)
	}
	version, _ := os.ReadFile(filepath.Join(proc, "version"))
	b.Platform = PlatformForModules(string(version), kconfig)
	return b
}

// mokListTrusted: the kernel (security/integrity/platform_certs) trusts MOK
// keys for modules when shim's MokListTrustedRT exists at all; its value is
// not read. Without shim's variables (no MokListRT either) it is unknown.
func mokListTrusted(sys, efivars string) string {
	for _, p := range []string{
		filepath.Join(sys, "firmware/efi/mok-variables/MokListTrustedRT"),
		filepath.Join(efivars, "MokListTrustedRT-"+shimGUID),
	} {
		if _, err := os.Stat(p); err == nil {
			return "yes"
		}
	}
	for _, p := range []string{
		filepath.Join(sys, "firmware/efi/mok-variables/MokListRT"),
		filepath.Join(efivars, "MokListRT-"+shimGUID),
	} {
		if _, err := os.Stat(p); err == nil {
			return "no"
		}
	}
	return "unknown"
}

// Distribution kernels known to carry "KEYS: Make use of platform keyring for
// module signature verify", identified by /proc/version.
var (
	fedoraRelease = regexp.MustCompile(`\.(fc|el)\d+`)
	platformUsers = []struct {
		match func(version string) bool
		why   string
	}{
		{func(v string) bool { return strings.Contains(v, "Debian") },
			"Debian's kernel checks modules against .platform (its patch \"KEYS: Make use of platform keyring for module signature verify\"; observed in test/secureboot)"},
		{func(v string) bool { return strings.Contains(v, "Ubuntu") },
			"Ubuntu's kernel checks modules against .platform (it carries the same patch as Debian's)"},
		{func(v string) bool { return fedoraRelease.MatchString(v) },
			"Fedora's and RHEL's kernels check modules against .platform (they carry the same patch as Debian's)"},
	}
)

// PlatformForModules decides, from the kernel's /proc/version and its
// configuration (nil when unknown), whether it checks module signatures
// against .platform. Mainline Linux uses .platform only for kexec; the
// distributions above patch module verification to use it as well. There is
// no runtime marker of that patch, so an unrecognised kernel is "unknown".
func PlatformForModules(version string, kconfig map[string]string) PlatformUse {
	if kconfig != nil && kconfig["CONFIG_INTEGRITY_PLATFORM_KEYRING"] != "y" {
		return PlatformUse{Answer: "no", Why: "the kernel has no .platform keyring (CONFIG_INTEGRITY_PLATFORM_KEYRING is not set)"}
	}
	for _, u := range platformUsers {
		if u.match(version) {
			return PlatformUse{Answer: "yes", Why: u.why}
		}
	}
	v := strings.TrimSpace(version)
	if len(v) > 80 {
		v = v[:80] + "..."
	}
	if v == "" {
		v = "unknown kernel"
	}
	return PlatformUse{Answer: "unknown", Why: "mainline Linux checks modules only against .builtin_trusted_keys, .secondary_trusted_keys and .machine, " +
		"and uses .platform for kexec; Debian, Ubuntu and Fedora patch their kernels to use .platform for modules too; " +
		"this kernel (" + v + ") is none of those, so whether it does is not known"}
}
