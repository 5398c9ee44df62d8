package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	c, err := Load("", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	// Without --config or the environment, the default file is read when
	// there is one (as on a machine set up by `make demo`), else the defaults.
	want := *Default()
	if _, statErr := os.Stat(DefaultPath); statErr == nil {
		real, err := LoadFile(DefaultPath)
		if err != nil {
			t.Fatal(err)
		}
		want = *real
	}
	if *c != want {
		t.Errorf("got %+v, want %+v", c, want)
	}
	want = *Default()
	if want.Key != "/etc/dkms-sign-hook/signing_key.pem" || want.Hash != "auto" || want.KeyID != "issuer-serial" || want.MissingKey != "warn" || want.Log != "/var/log/dkms-sign-hook/signed.jsonl" {
		t.Errorf("defaults changed: %+v", want)
	}
}

func TestResolve(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "DKMS_SIGN_HOOK_CONFIG" {
				return v
			}
			return ""
		}
	}
	if p, ex := Resolve("/a", env("/b")); p != "/a" || !ex {
		t.Errorf("flag: %s %v", p, ex)
	}
	if p, ex := Resolve("", env("/b")); p != "/b" || !ex {
		t.Errorf("env: %s %v", p, ex)
	}
	if p, ex := Resolve("", env("")); p != DefaultPath || ex {
		t.Errorf("default: %s %v", p, ex)
	}
	missing := filepath.Join(t.TempDir(), "nope.conf")
	if _, err := Load("", env(missing)); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("explicit missing file: %v", err)
	}
}

const full = `; example
[signing]
key = pkcs11:token=dkms;object=signing   ; a token
certificate = /etc/x/cert.der
hash = sha3-384
key_id = skid
pin_file = /etc/x/pin
pkcs11_module = /usr/lib/softhsm/libsofthsm2.so
pkcs11_server = /run/dkms-sign-hook/signer.sock
pkcs11_timeout = 1m30s

[hook]
missing_key = fail
# the log
log = /var/log/x.jsonl
`

func TestParseFull(t *testing.T) {
	c, err := Parse("f.conf", []byte(full))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Path: "f.conf", Key: "pkcs11:token=dkms;object=signing", Certificate: "/etc/x/cert.der",
		Hash: "sha3-384", KeyID: "skid", PinFile: "/etc/x/pin", PKCS11Module: "/usr/lib/softhsm/libsofthsm2.so",
		PKCS11Server: "/run/dkms-sign-hook/signer.sock", PKCS11Timeout: 90 * time.Second, AuthAttrs: "no", MissingKey: "fail", Log: "/var/log/x.jsonl"}
	if *c != want {
		t.Errorf("got  %+v\nwant %+v", *c, want)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"[signing]\nkey = /k\nfoo = 1\n", `f.conf:3: unknown key "foo" in [signing] (known: key, certificate, hash, key_id, pin_file, pkcs11_module, pkcs11_server, pkcs11_timeout, authattrs)`},
		{"[signing]\npkcs11_server = signer.sock\n", `f.conf:2: pkcs11_server: "signer.sock" is not a p11-kit server address`},
		{"[signing]\npkcs11_server = tcp:host=signer\n", `f.conf:2: pkcs11_server: "tcp:host=signer" is not a p11-kit server address`},
		{"[signing]\npkcs11_timeout = 0\n", `f.conf:2: pkcs11_timeout: bad value "0" (a duration from 1s to 1h, e.g. 30s)`},
		{"[signing]\npkcs11_timeout = forever\n", `f.conf:2: pkcs11_timeout: bad value "forever"`},
		{"[signing]\n\n[hooks]\n", `f.conf:3: unknown section [hooks] (known: [signing], [hook])`},
		{"key = /k\n", `f.conf:1: key "key" outside a section (put it under [signing] or [hook])`},
		{"[hook]\nmissing_key = sometimes\n", `f.conf:2: missing_key: bad value "sometimes" (use warn or fail)`},
		{"[signing]\nkey_id = serial\n", `f.conf:2: key_id: bad value "serial" (use issuer-serial or skid)`},
		{"[signing]\nhash = md5\n", `f.conf:2: hash: unknown hash "md5" (use one of sha256, sha3-256, sha3-384, sha3-512, sha384, sha512), or auto`},
		{"[signing]\nkey = signing_key.pem\n", `f.conf:2: key: "signing_key.pem" is not an absolute path (the hook runs in DKMS's build directory)`},
		{"[signing]\nkey = pkcs11:token=a;pin-value=1234\n", `f.conf:2: key: a pkcs11: URI here must not carry pin-value`},
		{"[signing]\n\n\ncertificate =\n", `f.conf:4: certificate: empty; set an absolute path`},
		{"[hook]\nlog = /a\nlog = /b\n", `f.conf:3: log is already set on line 2`},
		{"[signing\n", `f.conf:1: unterminated section header "[signing"`},
		{"[signing]\njust words\n", `f.conf:2: expected "key = value", got "just words"`},
	} {
		_, err := Parse("f.conf", []byte(tc.in))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q:\n got  %v\n want %s", tc.in, err, tc.want)
		}
	}
}

func TestExampleConfigParses(t *testing.T) {
	// The commented example shipped in contrib/ must parse to the defaults.
	p := filepath.Join("..", "..", "contrib", "dkms-sign-hook.conf")
	c, err := LoadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	c.Path = ""
	if *c != *Default() {
		t.Errorf("contrib example differs from the defaults:\n got  %+v\n want %+v", *c, *Default())
	}
}

// TestLoadRefusesWritablePath: a configuration others can change, or that
// sits in a directory others can write (they could replace it), is refused.
func TestLoadRefusesWritablePath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etc")
	os.Mkdir(dir, 0o755)
	p := filepath.Join(dir, "c.conf")
	os.WriteFile(p, []byte("[signing]\nkey = /k.pem\n"), 0o644)
	if _, err := LoadFile(p); err != nil {
		t.Fatalf("a safe file: %v", err)
	}
	os.Chmod(p, 0o666)
	if _, err := LoadFile(p); err == nil || !strings.Contains(err.Error(), p+": refusing to use it: mode 0666 lets group or others write it") {
		t.Errorf("world-writable file: %v", err)
	}
	os.Chmod(p, 0o644)
	os.Chmod(dir, 0o777)
	_, err := Load(p, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), dir+": refusing to use it: directory mode 0777") {
		t.Errorf("world-writable directory: %v", err)
	}
	os.Chmod(dir, 0o755)
}
