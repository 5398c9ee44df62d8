package kernel

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// softHSMModule is Debian's SoftHSM2 PKCS#11 module (package softhsm2).
const softHSMModule = "/usr/lib/softhsm/libsofthsm2.so"

const (
	tokenLabel = "dsh-kernel-test"
	tokenPIN   = "4096" // a test token's PIN; given as KBUILD_SIGN_PIN
)

// token returns the environment that makes a SoftHSM2 token holding copies
// of the trusted rsa4096 and p384 keys (objects of those names) visible;
// it is created on first use in the bench's scratch directory.
func (b *bench) token() ([]string, error) {
	if b.tokenEnv != nil || b.tokenErr != nil {
		return b.tokenEnv, b.tokenErr
	}
	b.tokenErr = func() error {
		dir := filepath.Join(b.dir, "softhsm")
		if err := os.MkdirAll(filepath.Join(dir, "tokens"), 0o700); err != nil {
			return err
		}
		conf := filepath.Join(dir, "softhsm2.conf")
		if err := os.WriteFile(conf, []byte("directories.tokendir = "+dir+"/tokens\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
			return err
		}
		env := append(os.Environ(), "SOFTHSM2_CONF="+conf)
		run := func(args ...string) error {
			c := exec.Command("softhsm2-util", args...)
			c.Env = env
			if out, err := c.CombinedOutput(); err != nil {
				return fmt.Errorf("softhsm2-util %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			return nil
		}
		if err := run("--init-token", "--free", "--label", tokenLabel, "--pin", tokenPIN, "--so-pin", "87654321"); err != nil {
			return err
		}
		for i, name := range []string{"rsa4096", "p384"} {
			if err := run("--import", b.k.Key(name), "--token", tokenLabel, "--label", name,
				"--id", fmt.Sprintf("%02x", i+1), "--pin", tokenPIN); err != nil {
				return err
			}
		}
		b.tokenEnv = append(env, "KBUILD_SIGN_PIN="+tokenPIN)
		return nil
	}()
	return b.tokenEnv, b.tokenErr
}

// tokenURI names a key on the test token, with the module to load.
func tokenURI(name string) string {
	return "pkcs11:token=" + tokenLabel + ";object=" + name + ";type=private?module-path=" + softHSMModule
}

// tokenSign runs the tool (args after the binary) with the token visible.
func (b *bench) tokenSign(args ...string) error {
	env, err := b.token()
	if err != nil {
		return err
	}
	c := exec.Command(b.tool, args...)
	c.Env = env
	if out, err := c.CombinedOutput(); err != nil {
		return fmt.Errorf("dkms-sign-hook %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// tokenRows are modules signed with keys held by a PKCS#11 token.
func tokenRows() []row {
	return []row{
		{
			name: "pkcs11/sign/rsa4096/sha512",
			prepare: signed(func(b *bench, mod string) error {
				return b.tokenSign("sign", "--key", tokenURI("rsa4096"), "--cert", b.k.Cert("rsa4096"), "--hash", "sha512", mod)
			}),
			want: OK,
		},
		{
			name: "pkcs11/sign/p384/sha3-384/skid",
			prepare: signed(func(b *bench, mod string) error {
				return b.tokenSign("sign", "--key", tokenURI("p384"), "--cert", b.k.Cert("p384"), "--hash", "sha3-384", "--keyid", mod)
			}),
			want: OK,
		},
		{
			name: "pkcs11/sign-file/rsa4096/sha256",
			prepare: signed(func(b *bench, mod string) error {
				return b.tokenSign("sign-file", "sha256", tokenURI("rsa4096"), b.k.Cert("rsa4096"), mod)
			}),
			want: OK,
		},
	}
}
