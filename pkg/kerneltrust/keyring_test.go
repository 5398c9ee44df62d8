package kerneltrust

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
)

// testdata/kernel-6.12/proc-keys.txt is /proc/keys of the real 6.12 test
// kernel with the trusted test certificates compiled in (see its README).
func TestKernelKeyDescriptionOfRealKernel(t *testing.T) {
	dir := "testdata/kernel-6.12"
	f, err := os.Open(filepath.Join(dir, "proc-keys.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	all, err := ParseProcKeys(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 9 {
		t.Fatalf("parsed %d keys, want 9", len(all))
	}
	if all[1].Type != "keyring" || all[1].Description != ".builtin_trusted_keys: 5" || all[1].ID != 0x13b866d1 || all[1].Perm != 0x1f0b0000 || all[0].GID != 65534 {
		t.Errorf("keyring line parsed as %+v", all[1])
	}
	checkDescriptions(t, dir, []string{"rsa2048", "rsa4096", "p256", "p384"}, []string{"attacker"})
}

// The same kernel rebuilt to trust two certificates made by keygen.
func TestKernelKeyDescriptionOfKeygenCerts(t *testing.T) {
	checkDescriptions(t, "testdata/kernel-6.12-keygen", []string{"keygen-rsa", "keygen-p384"}, []string{"attacker"})
}

// checkDescriptions: each of in is in dir/proc-keys.txt as KernelTrusts
// expects it, and none of out is.
func checkDescriptions(t *testing.T, dir string, in, out []string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "proc-keys.txt"))
	if err != nil {
		t.Fatal(err)
	}
	all, err := ParseProcKeys(strings.NewReader(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range append(append([]string{}, in...), out...) {
		cert, err := keys.LoadCertificate(filepath.Join(dir, name+".crt"))
		if err != nil {
			t.Fatal(err)
		}
		want := KernelKeyDescription(cert)
		found := false
		for _, k := range all {
			if k.Type == "asymmetri" && strings.HasPrefix(k.Description, want+": X509.") {
				found = true
			}
		}
		trusted := name != "attacker"
		if found != trusted {
			t.Errorf("%s: described %q in the kernel's /proc/keys: %v, want %v", name, want, found, trusted)
		}
		got, err := KernelTrusts(cert, strings.NewReader(string(data)), Keyctl)
		if err != nil || got.Loaded != trusted {
			t.Errorf("%s: KernelTrusts = %+v, %v", name, got, err)
		}
	}
}

// On the real 6.12 kernel's /proc/keys: the trusted certificates are
// loaded and in .builtin_trusted_keys, the attacker's is not.
func TestKernelTrustsRealProcKeys(t *testing.T) {
	dir := "testdata/kernel-6.12"
	// Membership as the kernel would answer keyctl(KEYCTL_READ) there: every
	// asymmetric key of that boot sits in .builtin_trusted_keys (0x13b866d1).
	readKeyring := func(id int32) ([]int32, error) {
		if id != 0x13b866d1 {
			return nil, errors.New("unexpected keyring")
		}
		return []int32{0x14ecebb2, 0x15bdd226, 0x1745d6fa, 0x2c621386, 0x3c9906e4}, nil
	}
	for name, trusted := range map[string]bool{"rsa2048": true, "rsa4096": true, "p256": true, "p384": true, "attacker": false} {
		cert, err := keys.LoadCertificate(filepath.Join(dir, name+".crt"))
		if err != nil {
			t.Fatal(err)
		}
		f, _ := os.Open(filepath.Join(dir, "proc-keys.txt"))
		got, err := KernelTrusts(cert, f, readKeyring)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		want := KernelTrust{KeyringsKnown: true}
		if trusted {
			want = KernelTrust{Loaded: true, Keyrings: []string{KeyringBuiltin}, KeyringsKnown: true, ForModules: true}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %+v, want %+v", name, got, want)
		}
	}
}

// Against the running kernel: certificates added with add_key(2) to a
// keyring of ours (playing .builtin_trusted_keys) show up in /proc/keys
// with the description we predict, and keyctl(KEYCTL_READ) places them.
func TestKernelTrustsLiveKeyring(t *testing.T) {
	// A fresh session keyring for this thread (credentials are per thread,
	// so stay on it; the thread exits with the test): the keys die with it.
	runtime.LockOSThread()
	if _, err := unix.KeyctlJoinSessionKeyring(fmt.Sprintf("dsh-test-session-%d", os.Getpid())); err != nil {
		testenv.Require(t, false, "the kernel key retention service (keyctl): "+err.Error())
	}
	ringName := fmt.Sprintf("dsh-test-%d", os.Getpid())
	ring, err := unix.AddKey("keyring", ringName, nil, unix.KEY_SPEC_SESSION_KEYRING)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.KeyctlInt(unix.KEYCTL_INVALIDATE, ring, 0, 0, 0)
	dir := t.TempDir()
	cases := []struct {
		name, subj string
		extra      []string
	}{
		{"o-and-cn", "/O=dkms-sign-hook test/CN=live key", nil},
		{"cn-starts-with-o", "/O=Example Corp/CN=Example Corp signing", nil},
		{"cn-7-bytes-of-o", "/O=Example Inc/CN=Example Corp signing", nil},
		{"cn-only", "/CN=only a CN", nil},
		// Without a SKID the kernel names the key by the serial's DER bytes,
		// here with the leading zero a high bit needs.
		{"no-skid", "/CN=no skid", []string{"-addext", "subjectKeyIdentifier=none", "-addext", "authorityKeyIdentifier=none", "-set_serial", "0x8123456789abcdef"}},
		{"o-only", "/O=only an O", nil},
	}
	var outside *x509.Certificate
	for i, c := range cases {
		args := []string{"req", "-new", "-x509", "-nodes", "-newkey", "rsa:2048",
			"-subj", c.subj, "-days", "1", "-keyout", c.name + ".key", "-outform", "DER", "-out", c.name + ".der"}
		openssl(t, dir, append(args, c.extra...)...)
		cert, err := keys.LoadCertificate(filepath.Join(dir, c.name+".der"))
		if err != nil {
			t.Fatal(err)
		}
		if c.name == "no-skid" && (len(cert.SubjectKeyId) != 0 || !strings.Contains(KernelKeyDescription(cert), ": 008123456789abcdef")) {
			t.Fatalf("no-skid: SKID %x, description %q", cert.SubjectKeyId, KernelKeyDescription(cert))
		}
		if i == len(cases)-1 {
			outside = cert // never added
			continue
		}
		if _, err := unix.AddKey("asymmetric", "", cert.Raw, ring); err != nil {
			testenv.Require(t, false, "asymmetric keys in the running kernel: "+err.Error())
		}
		procKeys, err := os.ReadFile("/proc/keys")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(procKeys), KernelKeyDescription(cert)+": X509.rsa") {
			t.Errorf("%s: the kernel describes the key otherwise; want %q in\n%s", c.name, KernelKeyDescription(cert), procKeys)
			continue
		}
		got, err := kernelTrusts(cert, strings.NewReader(string(procKeys)), Keyctl, []string{ringName})
		if err != nil {
			t.Fatal(err)
		}
		want := KernelTrust{Loaded: true, Keyrings: []string{ringName}, KeyringsKnown: true, ForModules: true}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %+v, want %+v", c.name, got, want)
		}
		t.Logf("%s: %s", c.name, grepLine(string(procKeys), KernelKeyDescription(cert)))
	}
	procKeys, _ := os.ReadFile("/proc/keys")
	got, err := kernelTrusts(outside, strings.NewReader(string(procKeys)), Keyctl, []string{ringName})
	if err != nil || got.Loaded || got.ForModules {
		t.Errorf("a certificate never added: %+v, %v", got, err)
	}
}

func grepLine(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

func TestParseProcKeysJunk(t *testing.T) {
	in := "garbage\n\n12345678\nzzzzzzzz I 1 perm 1f 0 0 keyring x\n" +
		"0721e947 I--Q---     1 perm 39010000     0     0 asymmetri Test key: 2e5f: X509.rsa 115490ce []\n"
	all, err := ParseProcKeys(strings.NewReader(in))
	if err != nil || len(all) != 1 || all[0].Description != "Test key: 2e5f: X509.rsa 115490ce []" {
		t.Fatalf("%+v %v", all, err)
	}
}

func TestParseMokTestKey(t *testing.T) {
	cases := map[string]MokState{
		"/root/keys/signing_key.der is already enrolled":                        MokEnrolled,
		"/root/keys/signing_key.der is not enrolled":                            MokNotEnrolled,
		"SKIP: /root/keys/signing_key.der is already in the enrollment request": MokPending,
		"EFI variables are not supported on this system":                        MokUnknown,
		"": MokUnknown,
	}
	for out, want := range cases {
		if got := ParseMokTestKey(out); got != want {
			t.Errorf("%q: %v, want %v", out, got, want)
		}
	}
	// The real mokutil on this machine answers something we classify.
	if _, err := exec.LookPath("mokutil"); err == nil {
		dir := t.TempDir()
		openssl(t, dir, "req", "-new", "-x509", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
			"-subj", "/CN=mok", "-days", "1", "-keyout", "k.pem", "-outform", "DER", "-out", "c.der")
		cert, err := keys.LoadCertificate(filepath.Join(dir, "c.der"))
		if err != nil {
			t.Fatal(err)
		}
		state, msg, err := MokTestKey(cert)
		// Without UEFI (this suite's hosts and CI), mokutil's real answer
		// is "EFI variables are not supported on this system".
		if _, serr := os.Stat("/sys/firmware/efi"); serr != nil {
			if !errors.Is(err, ErrNoEFI) || state != MokUnknown {
				t.Errorf("no EFI here, but MokTestKey = %v, %q, %v; want ErrNoEFI", state, msg, err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("mokutil --test-key: %v (%q)", state, msg)
		if state == MokEnrolled {
			t.Errorf("a fresh certificate reported enrolled: %q", msg)
		}
	}
}

// openssl runs openssl with args in dir and fails the test on error.
func openssl(t testing.TB, dir string, args ...string) {
	t.Helper()
	testenv.LookPath(t, "openssl", "openssl")
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func FuzzParseProcKeys(f *testing.F) {
	f.Add("13b866d1 I------     1 perm 1f0b0000     0     0 keyring   .builtin_trusted_keys: 5\n" +
		"14ecebb2 I------     1 perm 1f030000     0     0 asymmetri dkms-sign-hook test: trusted RSA-4096: f621730ad71c00df95e52310fe8557f1b9b39a21: X509.rsa b9b39a21 []\n")
	g, err := keys.Generate(keys.GenerateOptions{Type: "ecdsa", CommonName: "fuzz"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		KernelTrusts(g.Cert, strings.NewReader(s), func(int32) ([]int32, error) { return []int32{1, 2, 3}, nil })
	})
}
