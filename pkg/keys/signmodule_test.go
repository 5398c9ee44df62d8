//go:build cgo

package keys

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testmod"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
)

// hsmCert makes a self-signed certificate for one of the token's keys (from
// its PEM twin) and returns its path.
func hsmCert(t *testing.T, h *hsm, keyPEM, name string) string {
	t.Helper()
	cert := filepath.Join(h.dir, name+".crt")
	if _, err := os.Stat(cert); err != nil {
		openssl(t, h.dir, "req", "-new", "-x509", "-key", keyPEM, "-subj", "/CN=token "+name,
			"-days", "2", "-addext", "subjectKeyIdentifier=hash", "-out", cert)
	}
	return cert
}

// testModules: a real Debian module when its headers are cached, and
// synthetic ELF files around a block boundary.
func testModules(t *testing.T) map[string][]byte {
	mods := map[string][]byte{}
	for _, size := range []int{64, 4097, 70001} {
		mods[fmt.Sprintf("elf-%d.ko", size)] = testmod.ELF(size)
	}
	real := testmod.Real(t)
	sort.Slice(real, func(i, j int) bool { return len(real[i]) < len(real[j]) })
	if len(real) > 0 {
		dir := t.TempDir()
		p := testmod.Copy(t, real[0], dir, "real.ko")
		if _, err := sign.StripFile(p); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		mods["real-"+filepath.Base(real[0])] = data
	}
	return mods
}

func newTokenSigner(t *testing.T, uri, certPath, hash string, keyID sign.KeyID) *sign.Signer {
	t.Helper()
	key, err := Open(uri, Options{Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { key.Close() })
	cert, err := LoadCertificate(certPath)
	if err != nil {
		t.Fatal(err)
	}
	h, err := sign.ParseHash(hash)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sign.NewSigner(key, cert, sign.Options{Hash: h, KeyID: keyID})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A module signed through the token's URI is byte for byte what Debian's
// sign-file writes with the same RSA key as a PEM file.
func TestPKCS11SignModuleMatchesSignFile(t *testing.T) {
	signFile := testenv.RequireSignFile(t)
	h := softHSM(t)
	cert := hsmCert(t, h, h.rsaPEM, "rsa")
	uri := withModule(h.rsaURI, "pin-source="+h.pinFile)
	dir := t.TempDir()
	mods := testModules(t)
	t.Logf("%d modules, %d comparisons", len(mods), len(mods)*6)
	for _, hash := range []string{"sha256", "sha512", "sha3-256"} {
		for _, keyID := range []sign.KeyID{sign.KeyIDIssuerSerial, sign.KeyIDSKID} {
			s := newTokenSigner(t, uri, cert, hash, keyID)
			for name, data := range mods {
				ours := testmod.WriteFile(t, dir, "ours-"+name, data)
				theirs := testmod.WriteFile(t, dir, "theirs-"+name, data)
				if _, err := s.SignFile(ours); err != nil {
					t.Fatalf("%s %s %s: %v", hash, keyID, name, err)
				}
				args := []string{hash, h.rsaPEM, cert, theirs}
				if keyID == sign.KeyIDSKID {
					args = append([]string{"-k"}, args...)
				}
				testmod.Run(t, signFile, args...)
				a, _ := os.ReadFile(ours)
				b, _ := os.ReadFile(theirs)
				if !bytes.Equal(a, b) {
					t.Errorf("%s %s %s: token-signed module differs from sign-file's", hash, keyID, name)
				}
			}
		}
	}
}

// An ECDSA token key signs modules that openssl cms -verify accepts.
func TestPKCS11SignModuleECDSA(t *testing.T) {
	h := softHSM(t)
	cert := hsmCert(t, h, h.ecPEM, "ec")
	dir := t.TempDir()
	s := newTokenSigner(t, withModule(h.ecURI, "pin-source="+h.pinFile), cert, "sha384", sign.KeyIDIssuerSerial)
	mod := testmod.WriteFile(t, dir, "ec.ko", testmod.ELF(5000))
	if _, err := s.SignFile(mod); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(mod)
	content, blob := splitSigned(t, data)
	if !bytes.Equal(content, testmod.ELF(5000)) {
		t.Fatal("signed module does not start with the original bytes")
	}
	testmod.WriteFile(t, dir, "content", content)
	testmod.WriteFile(t, dir, "sig.p7", blob)
	cmd := exec.Command(requireOpenSSL(t), "cms", "-verify", "-binary", "-inform", "DER", "-in", "sig.p7",
		"-content", "content", "-certfile", cert, "-nointern", "-noverify", "-out", os.DevNull)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl cms -verify: %v\n%s", err, out)
	}
	// And a flipped content byte fails (the oracle can say no).
	content[100] ^= 1
	testmod.WriteFile(t, dir, "content", content)
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("openssl cms -verify accepted tampered content: %s", out)
	}
}

// splitSigned splits a signed module into content and PKCS#7 blob, per the
// trailer layout (facts section 1).
func splitSigned(t *testing.T, data []byte) (content, blob []byte) {
	t.Helper()
	const magic = "~Module signature appended~\n"
	if !bytes.HasSuffix(data, []byte(magic)) || len(data) < 40 {
		t.Fatal("no signature trailer")
	}
	info := data[len(data)-40 : len(data)-28]
	n := int(binary.BigEndian.Uint32(info[8:]))
	end := len(data) - 40
	return append([]byte(nil), data[:end-n]...), data[end-n : end]
}
