package sign

import (
	"crypto/x509"

	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/modfile"
)

// VerifyStack checks every appended signature of the module at path, each
// over the bytes before it, against certs. verifiedBy holds, in file order
// (the last is the one the kernel checks), the certificate that verified
// each signature, or nil. It tells what VerifyFile cannot: who signed
// underneath, e.g. the hook's signature under one DKMS stacked over it.
// It identifies signers: any form sign-file makes counts (Policy with
// MLDSAAuthAttrs), whatever a given kernel would accept.
func VerifyStack(path string, certs []*x509.Certificate) (info *Info, verifiedBy []*x509.Certificate, err error) {
	m, err := openModule(path, modfile.DefaultLimit, false)
	if err != nil {
		return nil, nil, err
	}
	defer m.Close()
	info = m.info()
	// m.segs runs from the last signature to the first.
	for i := len(m.segs) - 1; i >= 0; i-- {
		var by *x509.Certificate
		if sd, err := parseSignedData(m.segs[i].Blob); err == nil {
			r, err := m.prefixReader(m.segs[i].Offset)
			if err != nil {
				return info, verifiedBy, err
			}
			by, _ = verifySigned(sd, r, certs, Policy{MLDSAAuthAttrs: true})
			r.Close()
		}
		verifiedBy = append(verifiedBy, by)
	}
	return info, verifiedBy, nil
}
