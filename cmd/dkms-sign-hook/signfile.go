package main

import (
	"errors"
	"fmt"

	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/signfile"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/signkey"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/signlog"
)

func init() {
	register(&command{
		name: "sign-file",
		usage: "[-dpk] HASH KEY CERT MODULE [DEST]\n" +
			"       dkms-sign-hook sign-file -s RAW-SIG HASH CERT MODULE [DEST]",
		short: "the kernel's scripts/sign-file, same arguments (replaces instead of stacking signatures)",
		run:   runSignFile,
	})
}

func runSignFile(e *env, args []string) error {
	a, err := signfile.Parse(args)
	var ue *signfile.UsageError
	switch {
	case err == signfile.ErrHelp:
		fmt.Fprintf(e.stdout, "usage: dkms-sign-hook sign-file %s\n\n%s\n", commands["sign-file"].usage,
			"Signs MODULE (or writes DEST) exactly as the kernel's scripts/sign-file does.\n"+
				"  -d  write MODULE.p7s only, leave the module alone\n"+
				"  -p  also keep MODULE.p7s\n"+
				"  -k  name the key by subjectKeyIdentifier\n"+
				"  -s  append RAW-SIG, a DER PKCS#7 signature made elsewhere\n"+
				"The key's passphrase or token PIN comes from KBUILD_SIGN_PIN.")
		return nil
	case errors.As(err, &ue):
		return usagef("%s", ue.Msg)
	case err != nil:
		return err
	}
	// DKMS's framework route runs us as its sign_file with only the key and
	// certificate paths: the passphrase file and the PKCS#11 module come
	// from the configuration, when there is one. Never prompt: DKMS may be
	// running inside an unattended upgrade.
	cfg, err := loadConfig(e, "")
	if err != nil {
		return err
	}
	err = a.Run(func(spec signkey.Spec) (*sign.Signer, func(), error) {
		spec.UseConfig(cfg)
		return openSigner(e, spec, false)
	}, signlog.ForCommands(cfg))
	if errors.As(err, &ue) {
		return usagef("%s", ue.Msg)
	}
	return err
}
