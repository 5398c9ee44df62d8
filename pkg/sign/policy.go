package sign

import (
	"bufio"
	"crypto"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// KernelPolicy reads a kernel configuration (.config, include/config/auto.conf
// or /boot/config-KVER) and says what that kernel accepts: the ML-DSA
// signed-attributes waiver and the digests it has (CONFIG_CRYPTO_SHA1,
// _SHA256 for sha224/sha256, _SHA512 for sha384/sha512, _SHA3), built in or
// as modules.
func KernelPolicy(r io.Reader) (Policy, error) {
	vals := map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && strings.HasPrefix(k, "CONFIG_") {
			vals[k] = strings.Trim(v, `"`)
		}
	}
	if err := sc.Err(); err != nil {
		return Policy{}, err
	}
	on := func(k string) bool { return vals["CONFIG_"+k] == "y" || vals["CONFIG_"+k] == "m" }
	pol := Policy{MLDSAAuthAttrs: vals["CONFIG_PKCS7_WAIVE_AUTHATTRS_REJECTION_FOR_MLDSA"] == "y"}
	if !on("CRYPTO") {
		// Not a whole configuration (a fragment, or CONFIG_MODULE_SIG_*
		// only): say nothing about the algorithms it has.
		return pol, nil
	}
	for opt, hs := range map[string][]crypto.Hash{
		"CRYPTO_SHA1":   {crypto.SHA1},
		"CRYPTO_SHA256": {crypto.SHA224, crypto.SHA256},
		"CRYPTO_SHA512": {crypto.SHA384, crypto.SHA512},
		"CRYPTO_SHA3":   {crypto.SHA3_256, crypto.SHA3_384, crypto.SHA3_512},
	} {
		if !on(opt) {
			pol.NoHash = append(pol.NoHash, hs...)
		}
	}
	slices.Sort(pol.NoHash)
	pol.NoMLDSA = !on("CRYPTO_MLDSA")
	return pol, nil
}

// KernelPolicyFile is KernelPolicy on a file.
func KernelPolicyFile(path string) (Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return Policy{}, fmt.Errorf("kernel config: %w", err)
	}
	defer f.Close()
	pol, err := KernelPolicy(f)
	if err != nil {
		return pol, fmt.Errorf("kernel config %s: %w", path, err)
	}
	return pol, nil
}

// HasHash reports whether the kernel has digest h.
func (p Policy) HasHash(h crypto.Hash) bool { return !slices.Contains(p.NoHash, h) }
