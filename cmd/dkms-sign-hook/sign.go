package main

import (
	"flag"
	"fmt"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/hint"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/signkey"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/signlog"
)

func init() {
	register(&command{
		name:  "sign",
		usage: "--key KEY --cert CERT [--hash HASH] [--keyid] MODULE... | --dkms [--kernel KVER] [--config FILE] [PACKAGE...]",
		short: "sign modules in place (.ko, .ko.xz, .ko.zst, .ko.gz), replacing old signatures",
		run:   runSign,
	})
}

// keyFlags are the flags shared by the commands that sign.
func keyFlags(fs *flag.FlagSet, s *signkey.Spec, skid *bool) {
	fs.StringVar(&s.Key, "key", "", "private key: PEM file or pkcs11: URI")
	fs.StringVar(&s.Cert, "cert", "", "certificate (PEM or DER) matching the key")
	fs.StringVar(&s.Hash, "hash", "sha512", "digest: sha256, sha384, sha512, sha3-256, sha3-384, sha3-512")
	fs.BoolVar(skid, "keyid", false, "name the key by subjectKeyIdentifier (sign-file -k) instead of issuer and serial")
	fs.BoolVar(&s.AuthAttrs, "authattrs", false, "ML-DSA keys: add signed attributes as the kernel's sign-file does with OpenSSL 3.5+ (only kernels built with PKCS7_WAIVE_AUTHATTRS_REJECTION_FOR_MLDSA load them)")
}

func runSign(e *env, args []string) error {
	c := commands["sign"]
	fs := newFlags(c, e)
	var spec signkey.Spec
	var skid bool
	keyFlags(fs, &spec, &skid)
	jobs := fs.Int("jobs", 0, "modules signed at once (default: one per CPU)")
	dk := dkmsSignFlags(fs) // signdkms.go
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if dk.on {
		return signDKMS(e, dk, fs.Args())
	}
	if spec.Key == "" || spec.Cert == "" {
		return usagef("--key and --cert are required")
	}
	if fs.NArg() == 0 {
		return usagef("no module given")
	}
	if skid {
		spec.KeyID = sign.KeyIDSKID
	}
	cfg, err := loadConfig(e, dk.cfgPath)
	if err != nil {
		return err
	}
	signer, closeKey, err := openSigner(e, spec, true)
	if err != nil {
		return err
	}
	defer closeKey()
	audit := signlog.ForCommands(cfg)
	var failed int
	signer.SignFiles(fs.Args(), *jobs, func(path string, res *sign.Result, err error) {
		switch {
		case err != nil:
			failed++
			reportModuleError(e, c, path, err)
		case !res.Changed:
			fmt.Fprintf(e.stdout, "%s: already signed by this key (%s), left untouched\n", path, signer.Hash())
		case res.Replaced > 0:
			fmt.Fprintf(e.stdout, "%s: signed (%s), replacing %d old signature(s)\n", path, signer.Hash(), res.Replaced)
		default:
			fmt.Fprintf(e.stdout, "%s: signed (%s)\n", path, signer.Hash())
		}
		if err == nil && res.Changed && audit != nil {
			if err := audit.AppendCommand("sign", path, res, signer); err != nil {
				failed++
				reportModuleError(e, c, path, fmt.Errorf("signed, but not logged: %w", err))
			}
		}
	})
	if failed > 0 {
		return errSilent
	}
	return nil
}

// reportModuleError prints one line for a module that failed, and a hint, and
// lets the command go on with the next module.
func reportModuleError(e *env, c *command, path string, err error) {
	fmt.Fprintf(e.stderr, "dkms-sign-hook %s: %s\n", c.name, oneLine(moduleError(path, err).Error()))
	if hint := hint.For(err); hint != "" {
		fmt.Fprintf(e.stderr, "hint: %s\n", hint)
	}
}
