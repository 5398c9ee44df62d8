package sign

import (
	"crypto/x509"
	"errors"
	"strings"
)

// State is the verdict on the signature the kernel checks (the last one):
// the one vocabulary of `verify --json`, `info --json` and `status --json`.
type State string

// The signature states. A module is StateValid only against given
// certificates; without any, a well-formed signature is StateUnknownKey.
const (
	StateValid        State = "valid"         // verifies against one of the certificates
	StateUnsigned     State = "unsigned"      // no signature appended
	StateUnknownKey   State = "unknown-key"   // signed by a key none of the certificates hold
	StateBadSignature State = "bad-signature" // the signature does not match the module
	StateMalformed    State = "malformed"     // a trailer or PKCS#7 message the kernel cannot parse
	StateUnsupported  State = "unsupported"   // an algorithm the kernel (and we) cannot check
)

// States lists every State, for documentation and tests.
var States = []State{StateValid, StateUnsigned, StateUnknownKey, StateBadSignature, StateMalformed, StateUnsupported}

// StateOf maps an error of VerifyFile to a State. ok is false when err is
// not a verdict on the signature (an unreadable file, not a module): such a
// file has no state.
func StateOf(err error) (s State, ok bool) {
	switch {
	case err == nil:
		return StateValid, true
	case errors.Is(err, ErrUnsigned):
		return StateUnsigned, true
	case errors.Is(err, ErrUnknownKey):
		return StateUnknownKey, true
	case errors.Is(err, ErrBadSignature):
		return StateBadSignature, true
	case errors.Is(err, ErrMalformed):
		return StateMalformed, true
	case errors.Is(err, ErrUnsupported):
		return StateUnsupported, true
	}
	return "", false
}

// Verdict is one module's verification result: what `verify --json`
// prints and each module of `status --json` holds.
type Verdict struct {
	Path  string `json:"path"`
	State State  `json:"state"`
	// Detail says, in one line, why the state is not valid.
	Detail string `json:"detail,omitempty"`
	// Signer names the key of the last signature: its issuer's common
	// name, or "skid <hex>" for a signature naming its key by SKID.
	Signer string `json:"signer,omitempty"`
	Hash   string `json:"sig_hashalgo,omitempty"`
	Algo   string `json:"sig_algo,omitempty"`
	// Kernels says which kernels accept the signature's form (ML-DSA, ECDSA).
	Kernels string `json:"kernels,omitempty"`
	// Signatures counts the appended signatures (the kernel checks the last).
	Signatures int `json:"signatures"`
}

// Check verifies the module at path against certs, as VerifyFile does, and
// returns its Info with State and Detail set, and its Verdict. The error is
// non-nil only for a file that has no state: unreadable, or not a module.
func Check(path string, certs []*x509.Certificate) (*Info, Verdict, error) {
	return CheckFor(path, certs, Policy{})
}

// CheckFor is Check for a kernel with the given policy (KernelPolicy).
func CheckFor(path string, certs []*x509.Certificate, pol Policy) (*Info, Verdict, error) {
	info, err := VerifyFileFor(path, certs, pol)
	state, ok := StateOf(err)
	if !ok {
		return nil, Verdict{}, err
	}
	if info == nil {
		info = &Info{Path: path}
	}
	info.State = state
	if err != nil {
		info.Detail = strings.Join(strings.Fields(err.Error()), " ")
	}
	v := Verdict{Path: path, State: state, Detail: info.Detail, Signatures: len(info.Signatures)}
	if last := info.Last(); last != nil {
		v.Signer, v.Hash, v.Algo, v.Kernels = last.Signer, last.HashAlgo, last.SigAlgo, last.Kernels
		if v.Signer == "" && last.SKID != "" {
			v.Signer = "skid " + last.SKID
		}
	}
	return info, v, nil
}
