package keys

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
)

var noEnv = envWith(nil)

// Every key format openssl writes opens, holds the key openssl sees, and
// signs a digest openssl verifies.
func TestOpenFormats(t *testing.T) {
	requireOpenSSL(t)
	for _, f := range keyFixtures {
		t.Run(f.name, func(t *testing.T) {
			path := makeKey(t, f)
			t.Logf("%s: PEM blocks %v", f.name, pemTypes(t, path))
			o := Options{Getenv: noEnv}
			pass := ""
			if f.encrypted {
				pass = goodPass
				o.Getenv = envWith(map[string]string{PinEnv: goodPass})
			}
			k, err := Open(path, o)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer k.Close()
			want := opensslPublicKey(t, filepath.Dir(path), path, pass)
			if !want.(interface{ Equal(crypto.PublicKey) bool }).Equal(k.Public()) {
				t.Fatal("public key differs from openssl's")
			}
			if got := k.Description(); got != f.desc+" "+path {
				t.Errorf("Description = %q, want %q", got, f.desc+" "+path)
			}
			verifyWithOpenSSL(t, k, filepath.Dir(path), path, pass)
			if err := k.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
}

// verifyWithOpenSSL signs a SHA-256 digest with k and has openssl verify it.
func verifyWithOpenSSL(t *testing.T, k *Key, dir, keyFile, pass string) {
	t.Helper()
	msg := []byte("a kernel module, more or less\n")
	sum := sha256.Sum256(msg)
	sig, err := k.Sign(nil, sum[:], crypto.SHA256)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	write(t, filepath.Join(dir, "msg"), msg, 0o600)
	write(t, filepath.Join(dir, "sig"), sig, 0o600)
	args := []string{"pkey", "-in", keyFile, "-pubout", "-out", "pub.pem"}
	if pass != "" {
		args = append(args, "-passin", "pass:"+pass)
	}
	openssl(t, dir, args...)
	openssl(t, dir, "dgst", "-sha256", "-verify", "pub.pem", "-signature", "sig", "msg")
}

func write(t testing.TB, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func encryptedFixtures() []keyFixture {
	var fs []keyFixture
	for _, f := range keyFixtures {
		if f.encrypted {
			fs = append(fs, f)
		}
	}
	return fs
}

func TestEncryptedPassphraseSources(t *testing.T) {
	requireOpenSSL(t)
	for _, f := range encryptedFixtures() {
		t.Run(f.name, func(t *testing.T) {
			path := makeKey(t, f)
			dir := filepath.Dir(path)
			pinFile := filepath.Join(dir, "pin")
			write(t, pinFile, []byte(goodPass+"\n"), 0o600)
			badPin := filepath.Join(dir, "badpin")
			write(t, badPin, []byte(wrongPass+"\n"), 0o600)
			pub := opensslPublicKey(t, dir, path, goodPass)

			ok := map[string]Options{
				"env":      {Getenv: envWith(map[string]string{PinEnv: goodPass})},
				"callback": {Getenv: noEnv, Passphrase: func(what string) ([]byte, error) { return []byte(goodPass), nil }},
				"pin_file": {Getenv: noEnv, PinFile: pinFile},
				// The callback comes first, KBUILD_SIGN_PIN before the pin file.
				"callback-nil-then-env": {Getenv: envWith(map[string]string{PinEnv: goodPass}), Passphrase: func(string) ([]byte, error) { return nil, nil }, PinFile: badPin},
			}
			for name, o := range ok {
				k, err := Open(path, o)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if !k.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
					t.Fatalf("%s: wrong key", name)
				}
			}

			wrong := map[string]Options{
				"env":      {Getenv: envWith(map[string]string{PinEnv: wrongPass})},
				"callback": {Getenv: noEnv, Passphrase: func(string) ([]byte, error) { return []byte(wrongPass), nil }},
				"pin_file": {Getenv: noEnv, PinFile: badPin},
			}
			for name, o := range wrong {
				_, err := Open(path, o)
				if !errors.Is(err, ErrWrongPassphrase) {
					t.Fatalf("%s: err = %v, want ErrWrongPassphrase", name, err)
				}
				if !strings.Contains(err.Error(), path) {
					t.Errorf("%s: error does not name the file: %v", name, err)
				}
				assertNoSecret(t, err)
			}

			_, err := Open(path, Options{Getenv: noEnv})
			if !errors.Is(err, ErrNeedPassphrase) {
				t.Fatalf("no passphrase: err = %v", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, path) || !strings.Contains(msg, "encrypted; set KBUILD_SIGN_PIN or pin_file") {
				t.Errorf("no passphrase: unclear error %q", msg)
			}
			t.Logf("missing: %v", err)
		})
	}
}

func TestPinFileChecks(t *testing.T) {
	requireOpenSSL(t)
	path := makeKey(t, encryptedFixtures()[0])
	dir := filepath.Dir(path)
	pin := filepath.Join(dir, "pin")
	write(t, pin, []byte(goodPass), 0o640)
	_, err := Open(path, Options{Getenv: noEnv, PinFile: pin})
	var pe *PermissionError
	if !errors.As(err, &pe) || pe.Fix != "chmod 600 "+pin {
		t.Fatalf("pin file 0640: err = %v, want PermissionError with chmod fix", err)
	}
	assertNoSecret(t, err)

	write(t, pin, []byte(goodPass), 0o400)
	if _, err := Open(path, Options{Getenv: noEnv, PinFile: pin}); err != nil {
		t.Fatalf("pin file 0400: %v", err)
	}
	if _, err := Open(path, Options{Getenv: noEnv, PinFile: filepath.Join(dir, "nope")}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("missing pin file: err = %v", err)
	}
	if _, err := Open(path, Options{Getenv: noEnv, PinFile: dir}); err == nil {
		t.Fatal("directory as pin file accepted")
	}
	empty := filepath.Join(dir, "empty")
	write(t, empty, []byte("\n"), 0o600)
	if _, err := Open(path, Options{Getenv: noEnv, PinFile: empty}); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("empty pin file: err = %v", err)
	}
}

// Key and PIN files are read the same way: only regular files, within a
// size limit, with or without the permission check.
func TestSecretFileChecks(t *testing.T) {
	requireOpenSSL(t)
	path := makeKey(t, encryptedFixtures()[0])
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	write(t, big, bytes.Repeat([]byte("k"), maxKeyFile+1), 0o600)
	for _, skip := range []bool{false, true} {
		o := Options{Getenv: noEnv, SkipPermissionCheck: skip}
		if _, err := Open(dir, o); err == nil || !strings.Contains(err.Error(), "key "+dir+": not a regular file") {
			t.Errorf("skip=%v: directory as key: err = %v", skip, err)
		}
		if _, err := Open(big, o); err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Errorf("skip=%v: huge key: err = %v", skip, err)
		}
		o.PinFile = dir
		if _, err := Open(path, o); err == nil || !strings.Contains(err.Error(), "pin_file "+dir+": not a regular file") {
			t.Errorf("skip=%v: directory as pin file: err = %v", skip, err)
		}
		o.PinFile = big
		if _, err := Open(path, o); err == nil || !strings.Contains(err.Error(), "pin_file "+big+": too large") {
			t.Errorf("skip=%v: huge pin file: err = %v", skip, err)
		}
	}
}

// A FIFO as key or PIN file is refused at once, not waited on (a hook
// that hangs stalls the apt upgrade that ran it).
func TestSecretFileFIFO(t *testing.T) {
	requireOpenSSL(t)
	path := makeKey(t, encryptedFixtures()[0])
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, open := range map[string]func() error{
		"key":      func() error { _, err := Open(fifo, Options{Getenv: noEnv}); return err },
		"pin_file": func() error { _, err := Open(path, Options{Getenv: noEnv, PinFile: fifo}); return err },
	} {
		done := make(chan error, 1)
		go func() { done <- open() }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), fifo+": not a regular file") {
				t.Errorf("FIFO as %s: err = %v", name, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("FIFO as %s: still waiting after 10s", name)
		}
	}
}

func TestKeyPermissions(t *testing.T) {
	requireOpenSSL(t)
	path := makeKey(t, keyFixtures[0])
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o610} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := Open(path, Options{Getenv: noEnv})
		var pe *PermissionError
		if !errors.As(err, &pe) {
			t.Fatalf("mode %04o: err = %v, want *PermissionError", mode, err)
		}
		if pe.Fix != "chmod 600 "+path || !strings.Contains(err.Error(), path) {
			t.Errorf("mode %04o: bad error %v (fix %q)", mode, err, pe.Fix)
		}
		// Tests may turn the check off.
		if _, err := Open(path, Options{Getenv: noEnv, SkipPermissionCheck: true}); err != nil {
			t.Errorf("mode %04o with SkipPermissionCheck: %v", mode, err)
		}
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(path, Options{Getenv: noEnv}); err != nil {
			t.Errorf("mode %04o refused: %v", mode, err)
		}
	}
}

func TestKeyOwnerWhenRoot(t *testing.T) {
	testenv.RequireRoot(t)
	requireOpenSSL(t)
	path := makeKey(t, keyFixtures[0])
	if err := os.Chown(path, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path, Options{Getenv: noEnv})
	var pe *PermissionError
	if !errors.As(err, &pe) || pe.Fix != "chown root:root "+path {
		t.Fatalf("key owned by uid 1000: err = %v, want chown fix", err)
	}
	// Not running as root: someone's own key is fine.
	defer func(f func() int) { geteuid = f }(geteuid)
	geteuid = func() int { return 1000 }
	if _, err := Open(path, Options{Getenv: noEnv}); err != nil {
		t.Fatalf("as uid 1000: %v", err)
	}
}

func TestOpenBadFiles(t *testing.T) {
	dir := t.TempDir()
	cases := map[string][]byte{
		"empty":    nil,
		"garbage":  []byte("not a key at all\n"),
		"certonly": []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
		"badrsa":   []byte("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"),
		"badenc":   []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"),
	}
	for name, data := range cases {
		p := filepath.Join(dir, name)
		write(t, p, data, 0o600)
		_, err := Open(p, Options{Getenv: envWith(map[string]string{PinEnv: goodPass})})
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: err = %v, want an error naming the file", name, err)
		}
		assertNoSecret(t, err)
	}
	if _, err := Open(filepath.Join(dir, "missing.pem"), Options{}); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("missing file: %v", err)
	}
}
