package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
)

func init() {
	register(&command{
		name:  "info",
		usage: "[--json] [--cert CERT...] MODULE...",
		short: "show module signatures (modinfo's fields, plus SKID, SHA-3 and stacked signatures)",
		run:   runInfo,
	})
}

func runInfo(e *env, args []string) error {
	c := commands["info"]
	fs := newFlags(c, e)
	asJSON := fs.Bool("json", false, "print one JSON object per module")
	var certPaths stringList
	fs.Var(&certPaths, "cert", "certificate to check the signature against, for its state (repeatable; without one, a signature's state is unknown-key)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("no module given")
	}
	certs, err := keys.LoadCertificates(certPaths)
	if err != nil {
		return err
	}
	failed := 0
	for i, path := range fs.Args() {
		info, _, err := sign.Check(path, certs)
		if err != nil {
			failed++
			reportModuleError(e, c, path, err)
			continue
		}
		if *asJSON {
			b, _ := json.Marshal(info)
			fmt.Fprintln(e.stdout, string(b))
			continue
		}
		if i > 0 {
			fmt.Fprintln(e.stdout)
		}
		printInfo(e.stdout, info, len(certs) > 0)
	}
	if failed > 0 {
		return errSilent
	}
	return nil
}

// printInfo prints modinfo-style "field: value" lines; the state only when
// checked against certificates.
func printInfo(w io.Writer, info *sign.Info, checked bool) {
	field := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%-14s%s\n", k+":", v)
		}
	}
	field("filename", info.Path)
	field("compression", info.Compression)
	if checked {
		field("state", string(info.State))
	}
	if info.ContainerProblem != "" {
		field("warning", info.ContainerProblem+": in-kernel decompression refuses it; `dkms-sign-hook sign` rewrites it")
	}
	if !info.Signed() {
		field("sig_id", "none (unsigned)")
		return
	}
	if n := len(info.Signatures); n > 1 {
		field("signatures", fmt.Sprintf("%d stacked; the kernel checks only the last", n))
	}
	for i := len(info.Signatures) - 1; i >= 0; i-- {
		s := info.Signatures[i]
		if i < len(info.Signatures)-1 {
			fmt.Fprintf(w, "# earlier signature %d, not checked by the kernel\n", i+1)
		}
		field("sig_id", s.IDType)
		if s.Error != "" {
			field("error", s.Error)
			continue
		}
		field("signer", s.Signer)
		field("sig_key", s.SigKey)
		field("sig_skid", s.SKID)
		field("sig_hashalgo", s.HashAlgo)
		field("sig_algo", s.SigAlgo)
		field("sig_len", fmt.Sprint(s.SigLen))
		if s.SignedAttributes {
			field("warning", "signed attributes present: the kernel rejects this signature")
		}
		field("signature", s.Signature)
	}
}
