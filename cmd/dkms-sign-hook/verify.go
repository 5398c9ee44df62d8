package main

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
)

func init() {
	register(&command{
		name:  "verify",
		usage: "--cert CERT [--cert CERT2 ...] [--json] MODULE...",
		short: "check that modules carry a valid signature by one of the certificates",
		run:   runVerify,
	})
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// verdict is one module's line of verify output.
type verdict struct {
	Path   string `json:"path"`
	Status string `json:"status"` // ok, unsigned, unknown-key, bad-signature, malformed, unsupported, error
	Error  string `json:"error,omitempty"`
	Signer string `json:"signer,omitempty"`
	Hash   string `json:"sig_hashalgo,omitempty"`
	// Signatures counts the appended signatures (the kernel checks the last).
	Signatures int `json:"signatures"`
}

func runVerify(e *env, args []string) error {
	c := commands["verify"]
	fs := newFlags(c, e)
	var certPaths stringList
	fs.Var(&certPaths, "cert", "trusted certificate, PEM or DER (repeatable)")
	asJSON := fs.Bool("json", false, "print one JSON object per module")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(certPaths) == 0 {
		return usagef("at least one --cert is required")
	}
	if fs.NArg() == 0 {
		return usagef("no module given")
	}
	var certs []*x509.Certificate
	for _, p := range certPaths {
		cert, err := keys.LoadCertificate(p)
		if err != nil {
			return fmt.Errorf("certificate %s: %w", p, err)
		}
		certs = append(certs, cert)
	}
	bad := 0
	for _, path := range fs.Args() {
		v := verifyOne(path, certs)
		if v.Status != "ok" {
			bad++
		}
		if *asJSON {
			b, _ := json.Marshal(v)
			fmt.Fprintln(e.stdout, string(b))
			continue
		}
		if v.Status == "ok" {
			fmt.Fprintf(e.stdout, "%s: ok (signer %q, %s)\n", path, v.Signer, v.Hash)
		} else {
			fmt.Fprintf(e.stdout, "%s: %s: %s\n", path, v.Status, v.Error)
		}
	}
	if bad > 0 {
		return errSilent
	}
	return nil
}

func verifyOne(path string, certs []*x509.Certificate) verdict {
	v := verdict{Path: path, Status: "ok"}
	info, err := sign.VerifyFile(path, certs)
	if info != nil {
		v.Signatures = len(info.Signatures)
		if last := info.Last(); last != nil {
			v.Signer, v.Hash = signerName(last), last.HashAlgo
		}
	}
	if err != nil {
		v.Status, v.Error = verifyStatus(err), oneLine(err.Error())
	}
	return v
}

func signerName(s *sign.SignatureInfo) string {
	if s.Signer != "" {
		return s.Signer
	}
	return "skid " + s.SKID
}

// verifyStatus names a verification failure for scripts.
func verifyStatus(err error) string {
	switch {
	case errors.Is(err, sign.ErrUnsigned):
		return "unsigned"
	case errors.Is(err, sign.ErrUnknownKey):
		return "unknown-key"
	case errors.Is(err, sign.ErrBadSignature):
		return "bad-signature"
	case errors.Is(err, sign.ErrMalformed):
		return "malformed"
	case errors.Is(err, sign.ErrUnsupported):
		return "unsupported"
	}
	return "error"
}
