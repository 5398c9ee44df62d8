package kerneltrust

import (
	"bufio"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/sbrecord"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
)

// The outputs in testdata/secureboot-debian12 were recorded in test/secureboot's
// boots of Debian 12's signed kernel under Secure Boot (shim 16.1, OVMF with
// Microsoft's keys): in boot "mok" the MOK list held mok.crt and ecdsa.crt;
// in boot "nomok-db" it was empty and db.crt was in the firmware's db, and
// `dkms-sign-hook enroll` had just requested mok.crt's enrollment.
// README there says how to record them again.
const recorded = "testdata/secureboot-debian12"

func capture(t *testing.T, boot, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(recorded, boot, "capture-"+name+".txt"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// recordedSys builds a /sys and /proc from a boot's recorded outputs.
func recordedSys(t *testing.T, boot string) (sys, proc string) {
	root := sbrecord.Root(t, recorded, boot)
	return filepath.Join(root, "sys"), filepath.Join(root, "proc")
}

// recordedKernelConfig is the recorded kernel's configuration (the lines
// that matter here, from /boot/config-6.1.0-57-amd64).
func recordedKernelConfig(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(recorded, "config-6.1.0-57-amd64"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && strings.HasPrefix(k, "CONFIG_") {
			m[k] = strings.Trim(v, `"`)
		}
	}
	return m
}

func TestRecordedBoot(t *testing.T) {
	for _, boot := range []string{"mok", "nomok-db"} {
		sys, proc := recordedSys(t, boot)
		got := ReadBoot(sys, proc, recordedKernelConfig(t))
		if !got.EFI || got.SecureBoot != "enabled" || got.Lockdown != "integrity" || got.SigEnforce != "Y" || got.MokListTrusted != "yes" {
			t.Errorf("%s: %+v", boot, got)
		}
		if got.Platform.Answer != "yes" || !strings.Contains(got.Platform.Why, "Debian") {
			t.Errorf("%s: .platform for modules: %+v", boot, got.Platform)
		}
		if e := ReadEnforcement(sys); !e.Enforced || e.Why != "module.sig_enforce=Y" {
			t.Errorf("%s: enforcement %+v", boot, e)
		}
	}
}

// recordedKeyrings fakes keyctl's KEYCTL_READ with a boot's recorded
// `keyctl rlist %:<keyring>` outputs.
func recordedKeyrings(t *testing.T, boot string) KeyringReader {
	t.Helper()
	r, err := RlistReader([]byte(capture(t, boot, "proc-keys")), func(name string) ([]byte, error) {
		return os.ReadFile(filepath.Join(recorded, boot, "capture-keyring"+name+".txt"))
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRecordedKeyrings: where each certificate was in each boot, as the
// kernel's answers proved (test/secureboot's rows).
func TestRecordedKeyrings(t *testing.T) {
	for _, tc := range []struct {
		boot, cert string
		keyrings   string // "" = not loaded at all
	}{
		{"mok", "mok.crt", ".machine"},
		{"mok", "ecdsa.crt", ".machine"},
		{"mok", "db.crt", ""},
		{"mok", "dkms-mok.pub", ""},
		{"nomok-db", "mok.crt", ""},
		{"nomok-db", "db.crt", ".platform"},
		{"nomok-db", "dkms-mok.pub", ""},
	} {
		cert, err := keys.LoadCertificate(filepath.Join(recorded, tc.cert))
		if err != nil {
			t.Fatal(err)
		}
		kt, err := KernelTrusts(cert, strings.NewReader(capture(t, tc.boot, "proc-keys")), recordedKeyrings(t, tc.boot))
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Join(kt.Keyrings, ",")
		if got != tc.keyrings || kt.Loaded != (tc.keyrings != "") || !kt.KeyringsKnown ||
			kt.ForModules != (tc.keyrings == ".machine") || kt.Platform != (tc.keyrings == ".platform") {
			t.Errorf("boot %s, %s: %+v, want keyrings %q", tc.boot, tc.cert, kt, tc.keyrings)
		}
	}
}

// TestRecordedMokutil: mokutil 0.6's answers in the booted systems.
func TestRecordedMokutil(t *testing.T) {
	for _, tc := range []struct {
		boot, name string
		want       MokState
	}{
		{"mok", "test-key", MokEnrolled},
		{"mok", "test-key-db", MokNotEnrolled},
		{"nomok-db", "test-key", MokNotEnrolled},
		{"nomok-db", "test-key-db", MokEnrolled}, // "is already in db"
		{"nomok-db", "test-key-after-enroll", MokPending},
	} {
		out := capture(t, tc.boot, tc.name)
		if got := ParseMokTestKey(out); got != tc.want {
			t.Errorf("%s %s: %q: %v, want %v", tc.boot, tc.name, out, got, tc.want)
		}
	}
	if s := capture(t, "mok", "sb-state"); !strings.Contains(s, "SecureBoot enabled") {
		t.Errorf("mokutil --sb-state: %q", s)
	}
	// The request enroll made is the certificate's (mokutil --list-new).
	cert, err := keys.LoadCertificate(filepath.Join(recorded, "mok.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(capture(t, "nomok-db", "list-new-after-enroll"), "Issuer: CN="+cert.Issuer.CommonName) {
		t.Errorf("mokutil --list-new after enroll does not show %s", cert.Issuer.CommonName)
	}
}

// TestRecordedKernelSupport: Debian 12's kernel checks RSA with SHA-1/2 but
// not ECDSA (no CONFIG_CRYPTO_ECDSA) and not SHA-3 (6.1 < 6.7); the booted
// kernel refused the ECDSA row.
func TestRecordedKernelSupport(t *testing.T) {
	kc := recordedKernelConfig(t)
	s, ok := KernelSupport(kc, "6.1.0-57-amd64")
	if !ok || s.ECDSA || strings.Join(s.Hashes, " ") != "sha1 sha224 sha256 sha384 sha512" || s.SigHash != "sha256" {
		t.Errorf("%+v %v", s, ok)
	}
	ec, err := keys.LoadCertificate(filepath.Join(recorded, "ecdsa.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if p := CertProblems(ec, kc, "6.1.0-57-amd64"); len(p) != 1 || !strings.Contains(p[0], "ECDSA") {
		t.Errorf("ECDSA certificate on Debian 12's kernel: %q", p)
	}
	rsa, err := keys.LoadCertificate(filepath.Join(recorded, "mok.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if p := CertProblems(rsa, kc, "6.1.0-57-amd64"); len(p) != 0 {
		t.Errorf("keygen's RSA certificate: %q", p)
	}
	// A kernel admitting only CA certificates to .machine (6.4+ option).
	kc["CONFIG_INTEGRITY_CA_MACHINE_KEYRING"] = "y"
	if p := CertProblems(rsa, kc, "6.8.0"); len(p) != 1 || !strings.Contains(p[0], "CA") {
		t.Errorf("CA-only .machine: %q", p)
	}
	// CONFIG_INTEGRITY_CA_MACHINE_KEYRING_MAX also refuses a CA that may sign
	// data (digitalSignature), as restrict_link_by_ca does.
	for _, tc := range []struct {
		name     string
		ca       bool
		usage    x509.KeyUsage
		min, max bool // admitted to .machine
	}{
		{"keygen's", false, x509.KeyUsageDigitalSignature, false, false},
		{"CA, keyCertSign", true, x509.KeyUsageCertSign, true, true},
		{"CA, keyCertSign and digitalSignature", true, x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, true, false},
		{"CA without keyCertSign", true, x509.KeyUsageDigitalSignature, false, false},
	} {
		c := &x509.Certificate{PublicKey: rsa.PublicKey, SignatureAlgorithm: x509.SHA256WithRSA, IsCA: tc.ca, KeyUsage: tc.usage}
		for _, opt := range []struct {
			max  bool
			want bool
		}{{false, tc.min}, {true, tc.max}} {
			kc := map[string]string{"CONFIG_CRYPTO_SHA256": "y", "CONFIG_INTEGRITY_CA_MACHINE_KEYRING": "y"}
			if opt.max {
				kc["CONFIG_INTEGRITY_CA_MACHINE_KEYRING_MAX"] = "y"
			}
			if p := CertProblems(c, kc, "6.8.0"); (len(p) == 0) != opt.want {
				t.Errorf("%s certificate, MAX=%v: problems %q, want admitted=%v", tc.name, opt.max, p, opt.want)
			}
		}
	}
	// SHA-3 from 6.7, ECDSA from 5.15.
	kc["CONFIG_CRYPTO_ECDSA"] = "m"
	if s, _ := KernelSupport(kc, "6.7.1"); !s.ECDSA || !s.HasHash("sha3-256") {
		t.Errorf("6.7 with ECDSA and SHA3: %+v", s)
	}
	if s, _ := KernelSupport(kc, "5.10.0"); s.ECDSA || s.HasHash("sha3-256") {
		t.Errorf("5.10: %+v", s)
	}
	if _, ok := KernelSupport(map[string]string{"CONFIG_MODULE_SIG": "y"}, "6.1"); ok {
		t.Error("a config without any CONFIG_CRYPTO_ option claimed to say what the kernel supports")
	}
}

// TestShimProblems: shim boots what a MOK signed unless its certificate is
// marked module signing only, as keygen's are and DKMS's own mok.pub is not
// (in boot grub-dkms shim started a GRUB signed with it; test/secureboot
// also saw shim refuse a GRUB signed with keygen's mok.crt).
func TestShimProblems(t *testing.T) {
	for name, warn := range map[string]bool{"mok.crt": false, "db.crt": false, "dkms-mok.pub": true} {
		c, err := keys.LoadCertificate(filepath.Join(recorded, name))
		if err != nil {
			t.Fatal(err)
		}
		if p := ShimProblems(c); (len(p) == 1 && strings.Contains(p[0], "1.3.6.1.4.1.2312.16.1.2")) != warn {
			t.Errorf("%s: %q, want a warning: %v", name, p, warn)
		}
	}
	g, err := keys.Generate(keys.GenerateOptions{Type: "ecdsa", CommonName: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if p := ShimProblems(g.Cert); p != nil || !ModuleSigningOnly(g.Cert) {
		t.Errorf("keygen's certificate: %q", p)
	}
}

// TestPlatformForModules: the evidence and what is said without it.
func TestPlatformForModules(t *testing.T) {
	for _, tc := range []struct {
		version string
		kconfig map[string]string
		want    string
	}{
		{"Linux version 6.1.0-57-amd64 (debian-kernel@lists.debian.org) ... Debian 6.1.192-3", nil, "yes"},
		{"Linux version 6.8.0-49-generic (buildd@lcy02-amd64-103) ... #49-Ubuntu SMP PREEMPT_DYNAMIC", nil, "yes"},
		{"Linux version 6.11.4-301.fc41.x86_64 (mockbuild@...) ...", nil, "yes"},
		{"Linux version 5.14.0-427.el9.x86_64 (mockbuild@...) ...", nil, "yes"},
		{"Linux version 6.12.117 (root@build) (gcc 12.2.0) #1 SMP", nil, "unknown"},
		{"", nil, "unknown"},
		{"Linux version 6.1.0-57-amd64 ... Debian 6.1.192-3", map[string]string{"CONFIG_MODULE_SIG": "y"}, "no"},
	} {
		got := PlatformForModules(tc.version, tc.kconfig)
		if got.Answer != tc.want || got.Why == "" {
			t.Errorf("%q: %+v, want %s", tc.version, got, tc.want)
		}
	}
}
