package kerneltrust

import (
	"crypto/x509"
	"encoding/asn1"
)

// oidModuleSigningOnly is the extended key usage 1.3.6.1.4.1.2312.16.1.2,
// "module signing only": shim (verify.c, verify_eku) skips a certificate
// that has it when it verifies a boot loader or kernel against db or the
// MOK list. The kernel does not read extended key usages.
var oidModuleSigningOnly = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 2312, 16, 1, 2}

// ModuleSigningOnly reports whether cert carries the module-signing-only
// extended key usage, so that shim will not boot anything signed with it.
func ModuleSigningOnly(cert *x509.Certificate) bool {
	for _, oid := range cert.UnknownExtKeyUsage {
		if oid.Equal(oidModuleSigningOnly) {
			return true
		}
	}
	return false
}

// ShimProblems lists what shim would do with cert as a Machine Owner Key
// beyond passing it to the kernel, one sentence each. shim trusts every MOK
// for the EFI binaries it starts (GRUB, and through it the kernel), unless
// the certificate is marked module signing only; test/secureboot boots a
// GRUB signed with such a MOK (shim runs it) and one signed with a key of
// `dkms-sign-hook keygen` (shim refuses it).
func ShimProblems(cert *x509.Certificate) []string {
	if ModuleSigningOnly(cert) {
		return nil
	}
	return []string{"enrolled as a MOK, this key would also make shim start boot loaders and kernels signed with it " +
		"(the certificate lacks the module-signing-only extended key usage 1.3.6.1.4.1.2312.16.1.2): " +
		"whoever holds the key could boot a kernel of their own; a key from dkms-sign-hook keygen has that usage"}
}
