package sign

import (
	"bytes"
	"slices"
)

// Skeleton returns a copy of a PKCS#7 blob with each signature value zeroed:
// what is left must equal between two signers of the same module with the
// same key when the algorithm is randomized (ML-DSA hedged, ECDSA).
// Unparseable input comes back unchanged.
func Skeleton(der []byte) []byte {
	out := slices.Clone(der)
	sd, err := parseSignedData(der)
	if err != nil {
		return out
	}
	for _, si := range sd.signers {
		if i := bytes.Index(out, si.signature); i >= 0 && len(si.signature) > 0 {
			clear(out[i : i+len(si.signature)])
		}
	}
	return out
}
