package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/atomicfile"
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
	fs.StringVar(&o.CommonName, "cn", defaultCN(), "certificate subject common name (modinfo shows it as signer)")
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
	if o.Type == "rsa" && o.Curve != "" {
		return usagef("--curve is for --type ecdsa")
	}
	if o.Type == "ecdsa" && o.Bits != 0 {
		return usagef("--bits is for --type rsa; ecdsa takes --curve")
	}
	if _, pq := mldsa.ByName(o.Type); o.Type != "rsa" && o.Type != "ecdsa" && !pq {
		return usagef("--type %q: want rsa, ecdsa, mldsa44, mldsa65 or mldsa87", o.Type)
	}
	dir, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	files := keys.KeyPairPaths(dir)

	// Check everything that could fail before making the key.
	for _, p := range []string{files.Key, files.CertPEM, files.CertDER} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s: %w", p, keys.ErrExists)
		}
	}
	var conf []byte
	if writeConfig != "" {
		if writeConfig, err = filepath.Abs(writeConfig); err != nil {
			return err
		}
		if _, err := os.Lstat(writeConfig); err == nil {
			return fmt.Errorf("config %s: already exists; refusing to replace it (add the lines below by hand)", writeConfig)
		}
		conf = configText(files)
		if _, err := config.Parse(writeConfig, conf); err != nil {
			return fmt.Errorf("config for %s: %w", writeConfig, err)
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
		if err := os.MkdirAll(filepath.Dir(writeConfig), 0o755); err != nil {
			return fmt.Errorf("config: %w", err)
		}
		if err := atomicfile.CreateNew(writeConfig, conf, 0o644); err != nil {
			return fmt.Errorf("config %s (the key pair is written): %w", writeConfig, err)
		}
	}
	printNextSteps(e, g, files, writeConfig, encrypt, time.Since(start))
	return nil
}

// defaultCN names the machine, so an enrolled key says where it came from.
func defaultCN() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	cn := "DKMS module signing key (" + host + ")"
	if len(cn) > 64 {
		cn = "DKMS module signing key"
	}
	return cn
}

// configText is the configuration the DKMS hook reads (internal/config).
func configText(f keys.KeyPairFiles) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# dkms-sign-hook configuration, written by dkms-sign-hook keygen.\n")
	fmt.Fprintf(&b, "[signing]\n")
	fmt.Fprintf(&b, "key = %s\n", f.Key)
	fmt.Fprintf(&b, "certificate = %s\n", f.CertPEM)
	fmt.Fprintf(&b, "hash = auto\n")
	fmt.Fprintf(&b, "key_id = issuer-serial\n")
	fmt.Fprintf(&b, "\n[hook]\n")
	fmt.Fprintf(&b, "missing_key = warn\n")
	return b.Bytes()
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
		for _, line := range strings.Split(strings.TrimSpace(string(configText(f))), "\n") {
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
