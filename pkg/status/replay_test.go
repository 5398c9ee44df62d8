package status

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/sbrecord"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/dkmsenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/kerneltrust"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
)

// The Secure Boot replay: status on a root rebuilt from what test/secureboot
// recorded in real boots of Debian 12's signed kernel under shim, OVMF and
// Microsoft's keys (../kerneltrust/testdata/secureboot-debian12, whose
// README says how to record them again): the booted system's DKMS tree,
// configurations and certificates, its /proc and /sys files, and what
// keyctl and mokutil answered there. The oracles: for every module the
// kernel was asked to load, status says what the kernel then did and names
// the keyring holding the signer's key; and status on the replay prints what
// status printed in the booted system itself.
const (
	recorded   = "../kerneltrust/testdata/secureboot-debian12"
	recordedKV = sbrecord.Kernel
)

func TestReplaySecureBoot(t *testing.T) {
	verdicts, _ := filepath.Glob(filepath.Join(recorded, "*", "verdicts.txt"))
	if len(verdicts) < 3 {
		t.Fatalf("recorded boots with verdicts: %q, want mok, nomok-db and grub-dkms", verdicts)
	}
	for _, v := range verdicts {
		boot := filepath.Base(filepath.Dir(v))
		t.Run(boot, func(t *testing.T) { replayBoot(t, boot) })
	}
}

func replayBoot(t *testing.T, boot string) {
	root := sbrecord.Root(t, recorded, boot)
	host, err := dkmsenv.OpenHost(dkmsenv.Under(root), "/usr/share/dkms-sign-hook/dkms-override.conf")
	if err != nil {
		t.Fatal(err)
	}
	replayKernel(t, boot, root)
	confs := map[string]*Report{}
	for _, line := range strings.Split(strings.TrimSpace(readRecorded(t, boot, "verdicts.txt")), "\n") {
		f := strings.Fields(line)
		if len(f) != 4 {
			t.Fatalf("verdicts.txt: %q", line)
		}
		pkg, conf, kernel, keyring := f[0], f[1], f[2], strings.Trim(f[3], "-")
		rep := confs[conf]
		if rep == nil {
			if rep, err = Collect(host, confCertificate(t, root, conf)); err != nil {
				t.Fatal(err)
			}
			confs[conf] = rep
			sameAsBooted(t, boot, conf, root, rep)
		}
		m := builtModule(t, rep, pkg)
		if m.Loads == nil || *m.Loads != (kernel == "loaded") {
			t.Errorf("%s, %s: status says loads=%v (%s); the kernel: %s", pkg, conf, fmtBool(m.Loads), m.Explanation, kernel)
		}
		if got := strings.Join(m.Keyrings, ","); got != keyring {
			t.Errorf("%s, %s: status names keyrings %q, the kernel had the key in %q", pkg, conf, got, keyring)
		}
	}
}

// replayKernel answers status's keyctl and mokutil questions as the booted
// system did: keyrings from `keyctl rlist`, and the MOK state of each
// configuration's certificate from `mokutil --test-key`, run before status.
func replayKernel(t *testing.T, boot, root string) {
	t.Helper()
	read, err := kerneltrust.RlistReader(capture(t, boot, "proc-keys"), func(name string) ([]byte, error) {
		return os.ReadFile(filepath.Join(recorded, boot, "capture-keyring"+name+".txt"))
	})
	if err != nil {
		t.Fatal(err)
	}
	answers := map[string]kerneltrust.MokState{} // certificate DER -> state
	tests, _ := filepath.Glob(filepath.Join(recorded, boot, "capture-test-key-*.conf.txt"))
	for _, f := range tests {
		conf := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "capture-test-key-"), ".txt")
		cert, err := keys.LoadCertificate(confCertificate(t, root, conf))
		if err != nil {
			t.Fatal(err)
		}
		out, _ := os.ReadFile(f)
		answers[string(cert.Raw)] = kerneltrust.ParseMokTestKey(string(out))
	}
	oldRead, oldMok := readKeyring, mokState
	t.Cleanup(func() { readKeyring, mokState = oldRead, oldMok })
	readKeyring = read
	mokState = func(_ dkmsenv.Roots, cert *x509.Certificate) kerneltrust.MokState {
		if s, ok := answers[string(cert.Raw)]; ok {
			return s
		}
		t.Errorf("status asked mokutil about %s, which the boot did not record", cert.Subject)
		return kerneltrust.MokUnknown
	}
}

// confCertificate is the path below root of the certificate that one of
// road.sh's configurations (/etc/dkms-sign-hook/<conf>) names.
func confCertificate(t *testing.T, root, conf string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "etc/dkms-sign-hook", conf))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*certificate\s*=\s*(\S+)`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s names no certificate:\n%s", conf, b)
	}
	return filepath.Join(root, string(m[1]))
}

// sameAsBooted: the facts of the report on the replay (not its sentences,
// which may be reworded without recording again) are those status --json
// printed in the booted system for the same configuration.
func sameAsBooted(t *testing.T, boot, conf, root string, rep *Report) {
	t.Helper()
	ours, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var got, want facts
	if err := json.Unmarshal(bytes.ReplaceAll(ours, []byte(root), nil), &got); err != nil {
		t.Fatal(err)
	}
	booted := readRecorded(t, boot, "status-"+conf+".txt")
	if err := json.Unmarshal([]byte(booted), &want); err != nil {
		t.Fatalf("status --json in boot %s: %v\n%s", boot, err, booted)
	}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", "  ")
		w, _ := json.MarshalIndent(want, "", "  ")
		t.Errorf("status on the replay of boot %s (--config %s):\n%s\nin the booted system:\n%s", boot, conf, g, w)
	}
}

// facts is what sameAsBooted compares of a status report.
type facts struct {
	Tree        string `json:"dkms_tree"`
	Framework   string `json:"framework_route"`
	Enforcement struct {
		Known    bool `json:"known"`
		Enforced bool `json:"enforced"`
	} `json:"enforcement"`
	Boot struct {
		EFI            bool   `json:"efi"`
		SecureBoot     string `json:"secure_boot"`
		Lockdown       string `json:"lockdown"`
		SigEnforce     string `json:"sig_enforce"`
		MokListTrusted string `json:"mok_list_trusted"`
		Platform       struct {
			Answer string `json:"answer"`
		} `json:"platform_keyring_for_modules"`
	} `json:"boot"`
	Certificate struct {
		Path     string   `json:"path"`
		Subject  string   `json:"subject"`
		KeyID    string   `json:"key_id"`
		Serial   string   `json:"serial"`
		KeyType  string   `json:"key_type"`
		Trust    string   `json:"trusted_by_running_kernel"`
		Keyrings []string `json:"keyrings"`
		MOK      string   `json:"mok"`
		Problems count    `json:"problems"`
		Shim     count    `json:"shim"`
	} `json:"certificate"`
	Packages []struct {
		Package string `json:"package"`
		Enabled string `json:"enabled"`
	} `json:"packages"`
	Builds []struct {
		Package string `json:"package"`
		Version string `json:"version"`
		Kernel  string `json:"kernel"`
		Arch    string `json:"arch"`
		Support any    `json:"kernel_support"`
		Modules []struct {
			Path       string   `json:"path"`
			State      string   `json:"state"`
			Signer     string   `json:"signer"`
			Where      string   `json:"where"`
			SignedWith string   `json:"signed_with"`
			Keyrings   []string `json:"keyrings"`
			Loads      *bool    `json:"loads"`
			Reason     string   `json:"reason"`
		} `json:"modules"`
	} `json:"builds"`
}

// count is how many sentences a list has.
type count int

func (c *count) UnmarshalJSON(b []byte) error {
	var l []string
	err := json.Unmarshal(b, &l)
	*c = count(len(l))
	return err
}

// builtModule is the report's module of package pkg in DKMS's build tree.
func builtModule(t *testing.T, rep *Report, pkg string) Module {
	t.Helper()
	for _, b := range rep.Builds {
		for _, m := range b.Modules {
			if b.Package == pkg && b.Kernel == recordedKV && m.Where == Built {
				return m
			}
		}
	}
	t.Fatalf("status has no built module of %s", pkg)
	return Module{}
}

func readRecorded(t *testing.T, boot, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(recorded, boot, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func capture(t *testing.T, boot, name string) []byte {
	t.Helper()
	return sbrecord.Capture(t, recorded, boot, name)
}

func fmtBool(b *bool) string {
	if b == nil {
		return "null"
	}
	if *b {
		return "true"
	}
	return "false"
}
