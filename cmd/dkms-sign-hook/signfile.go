package main

import (
	"fmt"
	"os"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/atomicfile"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/signkey"
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

// signFileArgs is sign-file's command line: getopt("sdpk") then positionals.
type signFileArgs struct {
	rawSig, detachOnly, keepP7S, skid bool
	positional                        []string
}

// parseSignFileArgs reads sign-file's command line as glibc's getopt does:
// options ("sdpk", combinable) may stand anywhere before "--".
func parseSignFileArgs(args []string) (*signFileArgs, error) {
	a := &signFileArgs{}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			a.positional = append(a.positional, args[i+1:]...)
			break
		}
		if len(arg) < 2 || arg[0] != '-' {
			a.positional = append(a.positional, arg)
			continue
		}
		if arg == "-h" || arg == "--help" {
			return nil, errHelp
		}
		for _, c := range arg[1:] {
			switch c {
			case 's':
				a.rawSig = true
			case 'd':
				a.detachOnly = true
				a.keepP7S = true
			case 'p':
				a.keepP7S = true
			case 'k':
				a.skid = true
			default:
				return nil, usagef("unknown option -%c", c)
			}
		}
	}
	if n := len(a.positional); n < 4 || n > 5 {
		return nil, usagef("need 4 or 5 arguments, got %d", n)
	}
	return a, nil
}

func runSignFile(e *env, args []string) error {
	a, err := parseSignFileArgs(args)
	if err == errHelp {
		fmt.Fprintf(e.stdout, "usage: dkms-sign-hook sign-file %s\n\n%s\n", commands["sign-file"].usage,
			"Signs MODULE (or writes DEST) exactly as the kernel's scripts/sign-file does.\n"+
				"  -d  write MODULE.p7s only, leave the module alone\n"+
				"  -p  also keep MODULE.p7s\n"+
				"  -k  name the key by subjectKeyIdentifier\n"+
				"  -s  append RAW-SIG, a DER PKCS#7 signature made elsewhere\n"+
				"The key's passphrase or token PIN comes from KBUILD_SIGN_PIN.")
		return nil
	}
	if err != nil {
		return err
	}
	p := a.positional
	module, dest := p[3], p[3]
	if len(p) == 5 {
		dest = p[4]
	}
	if a.rawSig {
		blob, err := os.ReadFile(p[0])
		if err != nil {
			return fmt.Errorf("read raw signature: %w", err)
		}
		if _, err := sign.ParseHash(p[1]); err != nil {
			return usagef("%v", err)
		}
		_, err = sign.AttachFile(module, dest, blob)
		return err
	}
	spec := signkey.Spec{Hash: p[0], Key: p[1], Cert: p[2]}
	if a.skid {
		spec.KeyID = sign.KeyIDSKID
	}
	// DKMS's framework route runs us as its sign_file with only the key and
	// certificate paths: the passphrase file and the PKCS#11 module come
	// from the configuration, when there is one. Never prompt: DKMS may be
	// running inside an unattended upgrade.
	cfg, err := loadConfig(e, "")
	if err != nil {
		return err
	}
	spec.UseConfig(cfg)
	signer, closeKey, err := openSigner(e, spec, false)
	if err != nil {
		return err
	}
	defer closeKey()
	p7sPath := module + ".p7s"
	if a.detachOnly {
		blob, err := signer.DetachedFile(module)
		if err != nil {
			return err
		}
		return writeP7S(p7sPath, blob)
	}
	res, err := signer.SignFileTo(module, dest)
	if err != nil {
		return err
	}
	if audit := commandLog(cfg); audit != nil && res.Changed {
		if err := audit.AppendCommand("sign-file", dest, res, signer); err != nil {
			return fmt.Errorf("signed %s, but not logged: %w", dest, err)
		}
	}
	if a.keepP7S {
		return writeP7S(p7sPath, res.P7S)
	}
	return nil
}

func writeP7S(path string, blob []byte) error {
	if err := atomicfile.WriteFile(path, blob, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
