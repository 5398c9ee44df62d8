package sign

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/modfile"
)

// Info describes a module file's signatures.
type Info struct {
	Path        string `json:"path"`
	Compression string `json:"compression"`
	// ContainerProblem says why the kernel's own decompressor would refuse
	// a compressed module as it is (kmod may still decompress it itself).
	ContainerProblem string `json:"container_problem,omitempty"`
	// Size is the decompressed module size, UnsignedSize without signatures.
	Size         int64 `json:"size"`
	UnsignedSize int64 `json:"unsigned_size"`
	// Signatures, in file order: the last one is the one the kernel checks.
	Signatures []SignatureInfo `json:"signatures"`
	// Verified names the certificate that verified the last signature (VerifyFile).
	Verified string `json:"verified_by,omitempty"`
	// State is the verdict on the last signature (Check), and Detail why
	// it is not valid.
	State  State  `json:"state,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Signed reports whether any signature is appended.
func (i *Info) Signed() bool { return len(i.Signatures) > 0 }

// Last returns the signature the kernel checks, or nil.
func (i *Info) Last() *SignatureInfo {
	if len(i.Signatures) == 0 {
		return nil
	}
	return &i.Signatures[len(i.Signatures)-1]
}

// SignatureInfo describes one appended signature, with modinfo's field names
// where modinfo has them.
type SignatureInfo struct {
	Offset int64  `json:"offset"`  // bytes of module it covers
	SigLen uint32 `json:"sig_len"` // PKCS#7 blob length
	IDType string `json:"id_type"`
	// Signer is the issuer's common name and SigKey the serial number, as
	// modinfo prints them (for issuer+serial signer ids).
	Signer    string `json:"signer,omitempty"`
	SigKey    string `json:"sig_key,omitempty"`
	SKID      string `json:"skid,omitempty"`
	KeyID     string `json:"key_id"`
	HashAlgo  string `json:"sig_hashalgo"`
	SigAlgo   string `json:"sig_algo"`
	Signature string `json:"signature"`
	// Anomalies the kernel cares about.
	SignedAttributes bool `json:"signed_attributes,omitempty"`
	// Kernels says which kernels accept this form of signature, e.g.
	// "Linux 7.x with CRYPTO_MLDSA" for pure ML-DSA.
	Kernels      string `json:"kernels,omitempty"`
	Certificates int    `json:"certificates,omitempty"`
	Error        string `json:"error,omitempty"`
}

// InspectFile reads a module's signatures without verifying them.
func InspectFile(path string) (*Info, error) {
	m, err := openModule(path, modfile.DefaultLimit, false)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	return m.info(), nil
}

func (m *module) info() *Info {
	info := &Info{Path: m.path, Compression: m.format.String(), Size: m.size, UnsignedSize: m.unsignedLen()}
	if m.format != modfile.None && !m.container.KernelReady {
		info.ContainerProblem = m.container.Why
	}
	for i := len(m.segs) - 1; i >= 0; i-- {
		info.Signatures = append(info.Signatures, describeSegment(m.segs[i]))
	}
	return info
}

func describeSegment(seg Segment) SignatureInfo {
	out := SignatureInfo{Offset: seg.Offset, SigLen: seg.Info.SigLen, IDType: "PKCS#7"}
	sd, err := parseSignedData(seg.Blob)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	si := &sd.signers[0]
	out.KeyID = si.keyID().String()
	if si.skid != nil {
		out.SKID = hexColon(si.skid)
	} else {
		out.Signer = issuerCN(si.issuer)
		out.SigKey = hexColon(serialBytes(si.serial))
	}
	if h, ok := hashByOID(si.digestOID); ok {
		out.HashAlgo = h.name
	} else {
		out.HashAlgo = si.digestOID.String()
	}
	out.SigAlgo = sigAlgName(si.sigAlgOID)
	out.Signature = hexColon(si.signature)
	out.SignedAttributes = si.signedAttrs
	out.Certificates = len(sd.certificates)
	out.Kernels = kernelsAccepting(si)
	return out
}

// kernelsAccepting says which kernels take a SignerInfo's form (what
// Linux's pkcs7 code and Kconfig allow; 7.2 is where it was seen).
func kernelsAccepting(si *signerInfo) string {
	p, isML := isMLDSAOID(si.sigAlgOID)
	switch {
	case isML && si.signedAttrs:
		return "Linux 7.x built with CRYPTO_MLDSA and PKCS7_WAIVE_AUTHATTRS_REJECTION_FOR_MLDSA only (" + p.Name + " over signed attributes, as sign-file makes it with OpenSSL 3.5+)"
	case isML:
		return "Linux 7.x built with CRYPTO_MLDSA (pure " + p.Name + " over the module, no signed attributes)"
	case si.signedAttrs:
		return "none: kernels reject signed attributes on RSA and ECDSA module signatures"
	case isECDSAOID(si.sigAlgOID):
		return "Linux 5.15+ with CRYPTO_ECDSA"
	}
	return ""
}

// VerifyFile checks the signature the kernel would check (the last one)
// against certs. The error says why a module would be refused: ErrUnsigned,
// ErrUnknownKey, ErrBadSignature, ErrMalformed or ErrUnsupported.
// It judges as a kernel without the ML-DSA signed-attributes waiver would.
func VerifyFile(path string, certs []*x509.Certificate) (*Info, error) {
	return VerifyFileFor(path, certs, Policy{})
}

// VerifyFileFor is VerifyFile for a kernel with the given policy (from its
// configuration: KernelPolicy).
func VerifyFileFor(path string, certs []*x509.Certificate, pol Policy) (*Info, error) {
	m, err := openModule(path, modfile.DefaultLimit, false)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	info := m.info()
	if len(m.segs) == 0 {
		return info, ErrUnsigned
	}
	last := m.segs[0]
	sd, err := parseSignedData(last.Blob)
	if err != nil {
		return info, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	// The kernel checks the last signature over everything before it.
	r, err := m.prefixReader(last.Offset)
	if err != nil {
		return info, err
	}
	defer r.Close()
	cert, err := verifySigned(sd, r, certs, pol)
	if err != nil {
		return info, err
	}
	info.Verified = cert.Subject.String()
	return info, nil
}

// classify marks trailer errors as ErrMalformed.
func classify(err error) error {
	if errors.Is(err, errTrailer) && !errors.Is(err, ErrMalformed) {
		return malformed{err}
	}
	return err
}

// malformed keeps an error's text and makes it match ErrMalformed too.
type malformed struct{ error }

func (m malformed) Unwrap() []error { return []error{m.error, ErrMalformed} }

// StripFile removes every appended signature from the module at path, in
// place and atomically, and returns how many it removed. The result is the
// exact unsigned module (recompressed for a compressed module).
func StripFile(path string) (int, error) {
	m, err := openFile(path, modfile.DefaultLimit, true)
	if err != nil {
		return 0, err
	}
	if err := m.scanPlain(); err != nil {
		m.Close()
		return 0, err
	}
	if m.scanned && len(m.segs) == 0 {
		m.Close()
		return 0, nil
	}
	pr, err := m.prepare(path, nil)
	if err != nil {
		return 0, err
	}
	if len(m.segs) == 0 { // a compressed module found unsigned
		pr.p.Abort()
		pr.p = nil
	}
	return len(m.segs), pr.commit()
}

// hexColon formats bytes as modinfo does: upper-case hex pairs joined by ':'.
func hexColon(b []byte) string {
	s := strings.ToUpper(hex.EncodeToString(b))
	var out strings.Builder
	for i := 0; i < len(s); i += 2 {
		if i > 0 {
			out.WriteByte(':')
		}
		out.WriteString(s[i : i+2])
	}
	return out.String()
}

// issuerCN returns the common name of a DER Name, as modinfo's signer field,
// or the whole name when it has none.
func issuerCN(der []byte) string {
	var rdn pkix.RDNSequence
	if rest, err := asn1.Unmarshal(der, &rdn); err != nil || len(rest) > 0 {
		return ""
	}
	oidCN := asn1.ObjectIdentifier{2, 5, 4, 3}
	for _, set := range rdn {
		for _, atv := range set {
			if atv.Type.Equal(oidCN) {
				if s, ok := atv.Value.(string); ok {
					return s
				}
			}
		}
	}
	var name pkix.Name
	name.FillFromRDNSequence(&rdn)
	return name.String()
}
