//go:build cgo

package keys

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
)

// SoftHSMModule is Debian's SoftHSM2 PKCS#11 module (package softhsm2).
const SoftHSMModule = "/usr/lib/softhsm/libsofthsm2.so"

const (
	hsmToken = "dkms-test"
	hsmPIN   = "246813579"
	hsmSOPIN = "975318642"
	hsmBad   = "111999222"
)

// hsm is a SoftHSM token made once per test process: the module reads
// SOFTHSM2_CONF when first initialised, so every test shares it.
type hsm struct {
	dir           string
	rsaPEM, ecPEM string // the imported keys, as PEM files
	rsaURI, ecURI string // their URIs, without PIN
	pinFile       string // holds hsmPIN, mode 0600
	err           error
}

var (
	hsmOnce    sync.Once
	sharedHSM  hsm
	hsmTempDir string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if hsmTempDir != "" {
		os.RemoveAll(hsmTempDir)
	}
	os.Exit(code)
}

// softHSM returns the shared token, creating it on first use.
func softHSM(t *testing.T) *hsm {
	t.Helper()
	_, err := os.Stat(SoftHSMModule)
	testenv.Require(t, err == nil, "SoftHSM2 (apt-get install softhsm2)")
	util := testenv.LookPath(t, "softhsm2-util", "softhsm2")
	requireOpenSSL(t)
	hsmOnce.Do(func() { sharedHSM.err = sharedHSM.create(t, util) })
	if sharedHSM.err != nil {
		t.Fatalf("set up SoftHSM: %v", sharedHSM.err)
	}
	return &sharedHSM
}

func (h *hsm) create(t *testing.T, util string) error {
	dir, err := os.MkdirTemp("", "keys-softhsm-")
	if err != nil {
		return err
	}
	hsmTempDir = dir
	h.dir = dir
	if err := os.Mkdir(filepath.Join(dir, "tokens"), 0o700); err != nil {
		return err
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+dir+"/tokens\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		return err
	}
	os.Setenv("SOFTHSM2_CONF", conf)
	run := func(name string, args ...string) error {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			return errors.New(name + " " + strings.Join(args, " ") + ": " + err.Error() + "\n" + string(out))
		}
		return nil
	}
	if err := run(util, "--init-token", "--free", "--label", hsmToken, "--pin", hsmPIN, "--so-pin", hsmSOPIN); err != nil {
		return err
	}
	h.rsaPEM = filepath.Join(dir, "rsa.pem")
	h.ecPEM = filepath.Join(dir, "ec.pem")
	openssl(t, dir, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", h.rsaPEM)
	openssl(t, dir, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", h.ecPEM)
	for _, f := range []string{h.rsaPEM, h.ecPEM} {
		os.Chmod(f, 0o600)
	}
	if err := run(util, "--import", h.rsaPEM, "--token", hsmToken, "--label", "module signing rsa", "--id", "01", "--pin", hsmPIN); err != nil {
		return err
	}
	if err := run(util, "--import", h.ecPEM, "--token", hsmToken, "--label", "ec", "--id", "a2ff", "--pin", hsmPIN); err != nil {
		return err
	}
	h.rsaURI = "pkcs11:token=" + hsmToken + ";object=module%20signing%20rsa"
	h.ecURI = "pkcs11:token=" + hsmToken + ";id=%a2%FF"
	h.pinFile = filepath.Join(dir, "pin")
	return os.WriteFile(h.pinFile, []byte(hsmPIN+"\n"), 0o600)
}

func withModule(uri string, query string) string {
	q := "module-path=" + SoftHSMModule
	if query != "" {
		q += "&" + query
	}
	return uri + "?" + q
}

func assertNoPIN(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range []string{hsmPIN, hsmSOPIN, hsmBad} {
		if strings.Contains(err.Error(), s) {
			t.Fatalf("error leaks a PIN: %v", err)
		}
	}
}

// The token's RSA key signs exactly what the same key as a PEM file signs
// (PKCS#1 v1.5 is deterministic), for every hash module signing uses.
func TestPKCS11RSAMatchesPEM(t *testing.T) {
	h := softHSM(t)
	tok, err := Open(withModule(h.rsaURI, "pin-value="+hsmPIN), Options{Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	if got, want := tok.Description(), "RSA-2048 pkcs11:token=dkms-test;object=module%20signing%20rsa"; got != want {
		t.Errorf("Description = %q, want %q", got, want)
	}
	pem, err := Open(h.rsaPEM, Options{Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if !tok.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(pem.Public()) {
		t.Fatal("token public key differs from the PEM key's")
	}
	for _, hash := range []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512, crypto.SHA3_256, crypto.SHA3_384, crypto.SHA3_512, crypto.SHA1, crypto.SHA224} {
		hh := hash.New()
		hh.Write([]byte("module bytes"))
		digest := hh.Sum(nil)
		a, err := tok.Sign(nil, digest, hash)
		if err != nil {
			t.Fatalf("%v: token: %v", hash, err)
		}
		b, err := pem.Sign(nil, digest, hash)
		if err != nil {
			t.Fatalf("%v: PEM: %v", hash, err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%v: token signature differs from the PEM key's", hash)
		}
	}
	// A digest of the wrong length is refused, not signed.
	if _, err := tok.Sign(nil, make([]byte, 20), crypto.SHA256); err == nil {
		t.Error("20-byte digest signed as SHA-256")
	}
}

func TestPKCS11ECDSA(t *testing.T) {
	h := softHSM(t)
	tok, err := Open(withModule(h.ecURI, "pin-source="+h.pinFile), Options{Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	if !strings.HasPrefix(tok.Description(), "ECDSA-P384 pkcs11:token=dkms-test;id=%A2%FF") {
		t.Errorf("Description = %q", tok.Description())
	}
	pem, err := Open(h.ecPEM, Options{Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	pub := pem.Public().(*ecdsa.PublicKey)
	if !pub.Equal(tok.Public()) {
		t.Fatal("token public key differs from the PEM key's")
	}
	for _, hash := range []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		hh := hash.New()
		hh.Write([]byte("module bytes"))
		digest := hh.Sum(nil)
		sig, err := tok.Sign(nil, digest, hash)
		if err != nil {
			t.Fatalf("%v: %v", hash, err)
		}
		if !ecdsa.VerifyASN1(pub, digest, sig) {
			t.Errorf("%v: token ECDSA signature does not verify", hash)
		}
	}
}

func TestPKCS11PINSources(t *testing.T) {
	h := softHSM(t)
	cases := map[string]struct {
		uri string
		o   Options
	}{
		"pin-value":          {withModule(h.rsaURI, "pin-value="+hsmPIN), Options{Getenv: noEnv}},
		"pin-source path":    {withModule(h.rsaURI, "pin-source="+h.pinFile), Options{Getenv: noEnv}},
		"pin-source file:":   {withModule(h.rsaURI, "pin-source=file:"+h.pinFile), Options{Getenv: noEnv}},
		"pin-source file://": {withModule(h.rsaURI, "pin-source=file://"+h.pinFile), Options{Getenv: noEnv}},
		"KBUILD_SIGN_PIN":    {withModule(h.rsaURI, ""), Options{Getenv: envWith(map[string]string{PinEnv: hsmPIN})}},
		"pin_file":           {withModule(h.rsaURI, ""), Options{Getenv: noEnv, PinFile: h.pinFile}},
		"callback":           {withModule(h.rsaURI, ""), Options{Getenv: noEnv, Passphrase: func(string) ([]byte, error) { return []byte(hsmPIN), nil }}},
		"module from config": {h.rsaURI, Options{Getenv: noEnv, PKCS11Module: SoftHSMModule, PinFile: h.pinFile}},
		"every token attr": {"pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;token=dkms-test;id=%01;object=module%20signing%20rsa;type=private?module-path=" + SoftHSMModule,
			Options{Getenv: noEnv, PinFile: h.pinFile}},
	}
	for name, c := range cases {
		k, err := Open(c.uri, c.o)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if strings.Contains(k.Description(), hsmPIN) || strings.Contains(k.Description(), "?") {
			t.Errorf("%s: Description leaks the query: %q", name, k.Description())
		}
		if err := k.Close(); err != nil {
			t.Errorf("%s: Close: %v", name, err)
		}
	}
}

func TestPKCS11Errors(t *testing.T) {
	h := softHSM(t)
	badPin := filepath.Join(h.dir, "badpin")
	os.WriteFile(badPin, []byte(hsmBad), 0o600)
	openPin := filepath.Join(h.dir, "openpin")
	os.WriteFile(openPin, []byte(hsmPIN), 0o644)
	os.Chmod(openPin, 0o644)
	cases := []struct {
		name string
		uri  string
		o    Options
		is   error
		want string
	}{
		{"wrong pin-value", withModule(h.rsaURI, "pin-value="+hsmBad), Options{Getenv: noEnv}, ErrWrongPIN, "wrong PIN (from the URI's pin-value)"},
		{"wrong pin-source", withModule(h.rsaURI, "pin-source="+badPin), Options{Getenv: noEnv}, ErrWrongPIN, "pin-source " + badPin},
		{"wrong KBUILD_SIGN_PIN", withModule(h.rsaURI, ""), Options{Getenv: envWith(map[string]string{PinEnv: hsmBad})}, ErrWrongPIN, "KBUILD_SIGN_PIN"},
		{"no PIN", withModule(h.rsaURI, ""), Options{Getenv: noEnv}, ErrNeedPIN, "needs a PIN"},
		{"missing token", withModule("pkcs11:token=nosuch;object=x", "pin-value="+hsmPIN), Options{Getenv: noEnv}, ErrNoToken, `tokens: "dkms-test"`},
		{"missing serial", withModule("pkcs11:serial=0000;object=x", "pin-value="+hsmPIN), Options{Getenv: noEnv}, ErrNoToken, "no such token"},
		{"missing object", withModule("pkcs11:token=dkms-test;object=nosuch", "pin-value="+hsmPIN), Options{Getenv: noEnv}, ErrNoObject, "object=nosuch"},
		{"missing id", withModule("pkcs11:token=dkms-test;id=%99", "pin-value="+hsmPIN), Options{Getenv: noEnv}, ErrNoObject, "id=%99"},
		{"label and id of different keys", withModule("pkcs11:token=dkms-test;object=ec;id=%01", "pin-value="+hsmPIN), Options{Getenv: noEnv}, ErrNoObject, ""},
		{"pin file readable by others", withModule(h.rsaURI, "pin-source="+openPin), Options{Getenv: noEnv}, nil, "chmod 600 " + openPin},
		{"no module", h.rsaURI + "?pin-value=" + hsmPIN, Options{Getenv: noEnv}, nil, "no PKCS#11 module"},
		{"missing module", h.rsaURI + "?module-path=/nonexistent/lib.so&pin-value=" + hsmPIN, Options{Getenv: noEnv}, nil, "/nonexistent/lib.so"},
		{"relative module", h.rsaURI + "?module-path=libsofthsm2.so&pin-value=" + hsmPIN, Options{Getenv: noEnv}, nil, "absolute path"},
		{"not a key", withModule("pkcs11:token=dkms-test", "pin-value="+hsmPIN), Options{Getenv: noEnv}, nil, "object="},
		{"public key type", withModule("pkcs11:token=dkms-test;object=ec;type=public", "pin-value="+hsmPIN), Options{Getenv: noEnv}, nil, "type=public"},
		{"bad URI", "pkcs11:token=a;token=b", Options{Getenv: noEnv}, nil, "given twice"},
		{"pin-value refused", withModule(h.rsaURI, "pin-value="+hsmPIN), Options{Getenv: noEnv, NoPINInURI: true}, nil, "use pin-source"},
	}
	for _, c := range cases {
		k, err := Open(c.uri, c.o)
		if err == nil {
			k.Close()
			t.Errorf("%s: opened", c.name)
			continue
		}
		if c.is != nil && !errors.Is(err, c.is) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.is)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to say %q", c.name, err, c.want)
		}
		assertNoPIN(t, err)
		t.Logf("%s: %v", c.name, err)
	}
	// After all that, the right PIN still works (nothing got locked or leaked).
	k, err := Open(withModule(h.rsaURI, "pin-source="+h.pinFile), Options{Getenv: noEnv})
	if err != nil {
		t.Fatalf("after errors: %v", err)
	}
	k.Close()
}

// Two keys of one module open at once and close in any order.
func TestPKCS11TwoKeys(t *testing.T) {
	h := softHSM(t)
	a, err := Open(withModule(h.rsaURI, "pin-source="+h.pinFile), Options{Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(withModule(h.ecURI, "pin-source="+h.pinFile), Options{Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	digest := make([]byte, 48)
	if _, err := b.Sign(nil, digest, crypto.SHA384); err != nil {
		t.Fatalf("sign after closing the other key: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
