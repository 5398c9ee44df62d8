package kerneltrust

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"strconv"
	"strings"
)

// Support is what a kernel can verify in a module signature, read from its
// configuration: the digests its crypto API has (built in or as a module it
// loads on demand) and whether it checks ECDSA signatures.
type Support struct {
	// Hashes the kernel can check module signatures with, e.g. "sha256".
	Hashes []string `json:"hashes"`
	// ECDSA: CONFIG_CRYPTO_ECDSA, on Linux 5.15 or later.
	ECDSA bool `json:"ecdsa"`
	// SigHash is CONFIG_MODULE_SIG_HASH, the hash the kernel's own build signs with.
	SigHash string `json:"module_sig_hash,omitempty"`
}

// hashOptions: which option provides each digest, and from which Linux
// version PKCS#7 module signatures may use it (SHA-3 from 6.7).
var hashOptions = []struct {
	hash, option string
	since        [2]int
}{
	{"sha1", "CONFIG_CRYPTO_SHA1", [2]int{0, 0}},
	{"sha224", "CONFIG_CRYPTO_SHA256", [2]int{0, 0}},
	{"sha256", "CONFIG_CRYPTO_SHA256", [2]int{0, 0}},
	{"sha384", "CONFIG_CRYPTO_SHA512", [2]int{0, 0}},
	{"sha512", "CONFIG_CRYPTO_SHA512", [2]int{0, 0}},
	{"sha3-256", "CONFIG_CRYPTO_SHA3", [2]int{6, 7}},
	{"sha3-384", "CONFIG_CRYPTO_SHA3", [2]int{6, 7}},
	{"sha3-512", "CONFIG_CRYPTO_SHA3", [2]int{6, 7}},
}

// KernelSupport reads Support from a kernel's configuration and release
// (e.g. "6.1.0-57-amd64"); ok is false when the configuration says nothing
// about the crypto API (no CONFIG_CRYPTO_ option at all: not a whole .config).
func KernelSupport(kconfig map[string]string, release string) (s Support, ok bool) {
	for k := range kconfig {
		if strings.HasPrefix(k, "CONFIG_CRYPTO_") {
			ok = true
			break
		}
	}
	if !ok {
		return Support{}, false
	}
	return kernelSupport(kconfig, release), true
}

func kernelSupport(kconfig map[string]string, release string) Support {
	s := Support{SigHash: kconfig["CONFIG_MODULE_SIG_HASH"]}
	on := func(opt string) bool { return kconfig[opt] == "y" || kconfig[opt] == "m" }
	for _, h := range hashOptions {
		if on(h.option) && atLeast(release, h.since) {
			s.Hashes = append(s.Hashes, h.hash)
		}
	}
	s.ECDSA = on("CONFIG_CRYPTO_ECDSA") && atLeast(release, [2]int{5, 15})
	return s
}

// HasHash reports whether the kernel can check a signature made with hash
// (a name as `sign` and modinfo print it: "sha256", "sha3-256").
func (s Support) HasHash(hash string) bool {
	for _, h := range s.Hashes {
		if h == hash {
			return true
		}
	}
	return false
}

// atLeast compares a release's major.minor with v.
func atLeast(release string, v [2]int) bool {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return v == [2]int{}
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(strings.TrimFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	if err1 != nil || err2 != nil {
		return v == [2]int{}
	}
	return major > v[0] || major == v[0] && minor >= v[1]
}

// CertProblems lists what a kernel with configuration kconfig and support s
// would refuse or do differently with cert as a module signing key, one
// sentence each. A nil kconfig skips the kernel-specific checks.
func CertProblems(cert *x509.Certificate, kconfig map[string]string, release string) []string {
	s, known := KernelSupport(kconfig, release)
	var p []string
	switch k := cert.PublicKey.(type) {
	case *rsa.PublicKey:
	case *ecdsa.PublicKey:
		if known && !s.ECDSA {
			p = append(p, "an ECDSA key, but the kernel cannot check ECDSA module signatures (needs CONFIG_CRYPTO_ECDSA and Linux 5.15 or later): make an RSA key")
		}
		if k.Curve.Params().Name == "P-521" {
			p = append(p, "a P-521 key: kernels before 6.10 cannot check it; use P-384")
		}
	default:
		p = append(p, fmt.Sprintf("a %T key: the kernel checks module signatures made with RSA or ECDSA keys only", k))
	}
	switch cert.SignatureAlgorithm {
	case x509.SHA1WithRSA, x509.SHA256WithRSA, x509.SHA384WithRSA, x509.SHA512WithRSA,
		x509.ECDSAWithSHA1, x509.ECDSAWithSHA256, x509.ECDSAWithSHA384, x509.ECDSAWithSHA512:
	default:
		p = append(p, "the certificate is signed with "+cert.SignatureAlgorithm.String()+
			", which the kernel's X.509 parser does not accept: it would not load the certificate into any keyring")
	}
	ca := cert.IsCA && cert.KeyUsage&x509.KeyUsageCertSign != 0
	switch digsig := cert.KeyUsage&x509.KeyUsageDigitalSignature != 0; {
	case kconfig["CONFIG_INTEGRITY_CA_MACHINE_KEYRING_MAX"] == "y" && !(ca && !digsig):
		// crypto/asymmetric_keys/restrict.c: restrict_link_by_ca.
		p = append(p, "the kernel admits only CA certificates without digitalSignature (CA:TRUE, keyUsage keyCertSign only) to .machine "+
			"(CONFIG_INTEGRITY_CA_MACHINE_KEYRING_MAX): enrolled as a MOK, this one lands in .platform instead")
	case kconfig["CONFIG_INTEGRITY_CA_MACHINE_KEYRING"] == "y" && !ca:
		p = append(p, "the kernel admits only CA certificates (CA:TRUE, keyCertSign) to .machine (CONFIG_INTEGRITY_CA_MACHINE_KEYRING): "+
			"enrolled as a MOK, this one lands in .platform instead")
	}
	return p
}
