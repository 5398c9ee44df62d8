package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/config"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/mldsa"
)

func init() {
	register(&command{
		name:  "keygen",
		usage: "[--type rsa|ecdsa|mldsa44|mldsa65|mldsa87] [--bits N] [--curve P-256|P-384] [--cn NAME] [--days N] [--encrypt] --out DIR [--write-config FILE]",
		short: "make a module signing key and certificate (PEM, and DER for mokutil --import)",
		run:   runKeygen,
	})
}

func runKeygen(e *env, args []string) error {
	c := commands["keygen"]
	fs := newFlags(c, e)
	var o keys.GenerateOptions
	var out, writeConfig string
	var encrypt bool
	fs.StringVar(&o.Type, "type", "rsa", "key type: rsa, ecdsa, or mldsa44, mldsa65, mldsa87 (ML-DSA: Linux 7.0+)")
	fs.IntVar(&o.Bits, "bits", 0, "RSA key size (default 4096)")
	fs.StringVar(&o.Curve, "curve", "", "ECDSA curve: P-384 (default) or P-256")
	fs.StringVar(&o.CommonName, "cn", keys.DefaultCommonName(), "certificate subject common name (modinfo shows it as signer)")
	fs.IntVar(&o.Days, "days", keys.DefaultDays, "certificate validity in days")
	fs.BoolVar(&encrypt, "encrypt", false, "encrypt the key with a passphrase from "+keys.PinEnv+" or the terminal")
	fs.StringVar(&out, "out", "", "directory for signing_key.pem, signing_key.x509 and signing_key.der (created 0700)")
	fs.StringVar(&writeConfig, "write-config", "", "also write a configuration file using the new key (refuses to replace one)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if out == "" {
		return usagef("--out DIR is required")
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if err := keygenUsage(o); err != nil {
		return err
	}
	dir, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	files := keys.KeyPairPaths(dir)
	// Check everything that could fail before making the key.
	if err := files.CheckFree(); err != nil {
		return err
	}
	conf := config.KeygenText(files.Key, files.CertPEM)
	if writeConfig != "" {
		if writeConfig, err = filepath.Abs(writeConfig); err != nil {
			return err
		}
		if err := config.CheckNew(writeConfig, conf); err != nil {
			return err
		}
	}
	if encrypt {
		if o.Passphrase, err = newPassphrase(e); err != nil {
			return err
		}
	}

	start := time.Now()
	g, err := keys.Generate(o)
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	if _, err := keys.WriteKeyPair(dir, g); err != nil {
		return err
	}
	if writeConfig != "" {
		if err := config.WriteNew(writeConfig, conf); err != nil {
			return fmt.Errorf("%w (the key pair is written)", err)
		}
	}
	printNextSteps(e, g, files, writeConfig, encrypt, time.Since(start))
	return nil
}

// keygenUsage refuses flags that do not go with the key type.
func keygenUsage(o keys.GenerateOptions) error {
	switch _, pq := mldsa.ByName(o.Type); {
	case o.Type == "rsa" && o.Curve != "":
		return usagef("--curve is for --type ecdsa")
	case o.Type == "ecdsa" && o.Bits != 0:
		return usagef("--bits is for --type rsa; ecdsa takes --curve")
	case o.Type != "rsa" && o.Type != "ecdsa" && !pq:
		return usagef("--type %q: want rsa, ecdsa, mldsa44, mldsa65 or mldsa87", o.Type)
	}
	return nil
}

func printNextSteps(e *env, g *keys.Generated, f keys.KeyPairFiles, configPath string, encrypted bool, took time.Duration) {
	w := e.stdout
	kind := keys.Describe(g.Cert).KeyType
	enc := ""
	if encrypted {
		enc = ", encrypted"
	}
	fmt.Fprintf(w, "Wrote a new module signing key, %s (%.1fs):\n", kind, took.Seconds())
	fmt.Fprintf(w, "  %s   private key, mode 0600%s\n", f.Key, enc)
	fmt.Fprintf(w, "  %s  certificate (PEM)\n", f.CertPEM)
	fmt.Fprintf(w, "  %s   certificate (DER, for mokutil)\n", f.CertDER)
	fmt.Fprintf(w, "Certificate: CN=%s, serial %s, SKID %x, valid until %s\n",
		g.Cert.Subject.CommonName, g.Cert.SerialNumber.Text(16), g.Cert.SubjectKeyId, g.Cert.NotAfter.Format("2006-01-02"))
	fmt.Fprintf(w, "\nNext steps (Secure Boot with shim):\n")
	enroll := "dkms-sign-hook enroll"
	if configPath != "" && configPath != config.DefaultPath {
		enroll += " --config " + configPath
	}
	fmt.Fprintf(w, "  1. %s   (mokutil --import %s: choose a one-time password)\n", enroll, f.CertDER)
	fmt.Fprintf(w, "  2. Reboot; in the blue MokManager screen choose \"Enroll MOK\", check the key, enter the password.\n")
	fmt.Fprintf(w, "  3. Check: dkms-sign-hook status   (\"trusted by the running kernel: yes\")\n")
	if configPath != "" {
		fmt.Fprintf(w, "\nWrote the configuration %s.\n", configPath)
	} else {
		fmt.Fprintf(w, "\nConfiguration (%s):\n", config.DefaultPath)
		for _, line := range strings.Split(strings.TrimSpace(string(config.KeygenText(f.Key, f.CertPEM))), "\n") {
			if !strings.HasPrefix(line, "#") {
				fmt.Fprintf(w, "  %s\n", line)
			}
		}
	}
	if encrypted {
		fmt.Fprintf(w, "The key is encrypted: the hook needs %s or pin_file (a root-only file) to use it.\n", keys.PinEnv)
	}
	fmt.Fprintf(w, "\nA key on this machine signs whatever root asks it to. Keep it on removable media or a\n")
	fmt.Fprintf(w, "token (softhsm2-util --import %s, then key = pkcs11:...) when you can.\n", f.Key)
}
