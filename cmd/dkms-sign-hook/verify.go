package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/hint"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
)

func init() {
	register(&command{
		name:  "verify",
		usage: "--cert CERT [--cert CERT2 ...] [--kernel-config FILE] [--json] MODULE...",
		short: "check that modules carry a valid signature by one of the certificates",
		run:   runVerify,
	})
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func runVerify(e *env, args []string) error {
	c := commands["verify"]
	fs := newFlags(c, e)
	var certPaths stringList
	fs.Var(&certPaths, "cert", "trusted certificate, PEM or DER (repeatable)")
	asJSON := fs.Bool("json", false, "print one JSON object per module")
	kconfig := fs.String("kernel-config", "", "judge as the kernel built with this .config would (ML-DSA signed-attributes waiver, hashes it has); default: a kernel with every hash and no waiver")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var pol sign.Policy
	if *kconfig != "" {
		var err error
		if pol, err = sign.KernelPolicyFile(*kconfig); err != nil {
			return hint.With(err, "give the target kernel's .config, e.g. /boot/config-$(uname -r)")
		}
	}
	if len(certPaths) == 0 {
		return usagef("at least one --cert is required")
	}
	if fs.NArg() == 0 {
		return usagef("no module given")
	}
	certs, err := keys.LoadCertificates(certPaths)
	if err != nil {
		return err
	}
	bad := 0
	for _, path := range fs.Args() {
		_, v, err := sign.CheckFor(path, certs, pol)
		if err != nil {
			bad++
			reportModuleError(e, c, path, err)
			continue
		}
		if v.State != sign.StateValid {
			bad++
		}
		switch {
		case *asJSON:
			b, _ := json.Marshal(v)
			fmt.Fprintln(e.stdout, string(b))
		case v.State == sign.StateValid:
			alg := ""
			if strings.HasPrefix(v.Algo, "mldsa") {
				alg = v.Algo + " "
			}
			fmt.Fprintf(e.stdout, "%s: valid (signer %q, %s%s)\n", path, v.Signer, alg, v.Hash)
		default:
			fmt.Fprintf(e.stdout, "%s: %s: %s\n", path, v.State, v.Detail)
		}
	}
	if bad > 0 {
		return errSilent
	}
	return nil
}
