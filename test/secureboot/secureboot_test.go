package secureboot

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/initramfs"
	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
)

// Kernel answers.
const (
	loads   = "OK"
	refused = "Key was rejected by service" // EKEYREJECTED
	// ifECDSA: loads if the kernel checks ECDSA signatures (its config has
	// CONFIG_CRYPTO_ECDSA: Debian 13's 6.12), else refused (Debian 12's 6.1).
	ifECDSA = "loads if CONFIG_CRYPTO_ECDSA"
)

// A row is one module the booted kernel is asked to load, and what it must
// answer.
type row struct {
	name string
	pkg  string // the DKMS package road.sh built it as
	boot string // which boot loads it
	want string // loads or refused
	// conf is the dkms-sign-hook configuration `status` runs with for this
	// row (the certificate it asks about), under /etc/dkms-sign-hook.
	conf string
	// keyring is the system keyring holding the key of the module's signer,
	// as status must name it ("" when the kernel does not hold it).
	keyring string
}

// confDER: the certificate of each configuration road.sh writes, in DER
// (what mokutil reads).
var confDER = map[string]string{
	"dkms-sign-hook.conf": "/etc/dkms-sign-hook/signing_key.der",
	"db.conf":             "/etc/dkms-sign-hook/db/signing_key.der",
	"ecdsa.conf":          "/etc/dkms-sign-hook/ecdsa/signing_key.der",
	"dkms-key.conf":       "/var/lib/dkms/mok.pub",
}

// The boots: the firmware's variable store each starts from.
type bootSpec struct {
	name string
	mok  []string // certificates (names under /etc/dkms-sign-hook) in shim's MOK list
	db   []string // certificates added to the firmware's db
	// enroll and enrollAgain: what `dkms-sign-hook enroll` must say, run
	// twice in the booted system before status (it is idempotent); mokState:
	// the MOK state status must then report for the configured certificate.
	enroll, enrollAgain, mokState string
	// grub: "" boots Debian's signed GRUB; "keygen", "noeku" or "dkms" a
	// copy that road.sh signed instead with keygen's key (in keygen's
	// certificate, or in one without the module-signing-only usage) or
	// with DKMS's own.
	grub string
	// shimRefuses: shim must refuse that GRUB (no kernel boots).
	shimRefuses bool
	// shim: for each configuration, whether status must warn that shim
	// would start boot loaders signed with its certificate.
	shim map[string]bool
}

var boots = []bootSpec{
	{name: "mok", mok: []string{"signing_key.x509", "ecdsa/signing_key.x509"},
		enroll: "is already enrolled", enrollAgain: "is already enrolled", mokState: "enrolled"},
	{name: "nomok-db", db: []string{"db/signing_key.x509"},
		enroll: "enrollment requested", enrollAgain: "is already waiting for enrollment", mokState: "pending"},
	// shim starts a GRUB signed with a MOK whose certificate lacks the
	// module-signing-only usage (DKMS's own), and refuses one signed with
	// keygen's.
	{name: "grub-dkms", mok: []string{"dkms-mok.pem"}, grub: "dkms",
		enroll: "enrollment requested", enrollAgain: "is already waiting for enrollment", mokState: "pending",
		shim: map[string]bool{"dkms-key.conf": true, "dkms-sign-hook.conf": false}},
	{name: "grub-keygen", mok: []string{"signing_key.x509"}, grub: "keygen", shimRefuses: true},
	// The control: the same key in a certificate without that usage.
	{name: "grub-noeku", mok: []string{"noeku.pem"}, grub: "noeku"},
}

var rows = []row{
	{name: "hook-route, key enrolled as MOK", pkg: "dshsb-hook", boot: "mok", want: loads, conf: "dkms-sign-hook.conf", keyring: ".machine"},
	{name: "framework route, key enrolled as MOK", pkg: "dshsb-fw", boot: "mok", want: loads, conf: "dkms-sign-hook.conf", keyring: ".machine"},
	{name: "signed by DKMS's own mok.key (not enrolled)", pkg: "dshsb-dkms", boot: "mok", want: refused, conf: "dkms-sign-hook.conf"},
	{name: "unsigned", pkg: "dshsb-unsigned", boot: "mok", want: refused, conf: "dkms-sign-hook.conf"},
	{name: "tampered after signing", pkg: "dshsb-tampered", boot: "mok", want: refused, conf: "dkms-sign-hook.conf", keyring: ".machine"},
	{name: "ECDSA key enrolled as MOK", pkg: "dshsb-ecdsa", boot: "mok", want: ifECDSA, conf: "ecdsa.conf", keyring: ".machine"},
	{name: "hook-route, MOK list empty", pkg: "dshsb-hook", boot: "nomok-db", want: refused, conf: "dkms-sign-hook.conf"},
	{name: "key only in the firmware's db", pkg: "dshsb-db", boot: "nomok-db", want: loads, conf: "db.conf", keyring: ".platform"},
	{name: "signed by DKMS's own mok.key, enrolled as MOK", pkg: "dshsb-dkms", boot: "grub-dkms", want: loads, conf: "dkms-key.conf", keyring: ".machine"},
	{name: "hook-route, only DKMS's key enrolled", pkg: "dshsb-hook", boot: "grub-dkms", want: refused, conf: "dkms-sign-hook.conf"},
}

// requireTools skips (fails under CI) unless everything the suite runs is here.
func requireTools(t *testing.T) {
	t.Helper()
	for _, tool := range []struct{ name, pkg string }{
		{"qemu-system-x86_64", "qemu-system-x86"},
		{"sfdisk", "fdisk"},
		{"mkfs.vfat", "dosfstools"},
		{"mcopy", "mtools"},
		{"mmd", "mtools"},
		{"dkms", "dkms"},
		{"kmod", "kmod"},
		{"keyctl", "keyutils"},
		{"mokutil", "mokutil"},
		{"unshare", "util-linux"},
		{"apt-get", "apt"},
		{"dpkg-deb", "dpkg"},
		{"sbsign", "sbsigntool"},
		{"sbattach", "sbsigntool"},
		{"openssl", "openssl"},
	} {
		testenv.LookPath(t, tool.name, tool.pkg)
	}
	for _, f := range []struct{ path, pkg string }{
		{ovmfCode, "ovmf"}, {ovmfVars, "ovmf"}, {initramfs.Busybox, "busybox-static"},
	} {
		_, err := os.Stat(f.path)
		testenv.Require(t, err == nil, f.path+" (apt-get install "+f.pkg+")")
	}
	err := exec.Command("/usr/bin/python3", "-c", "import cryptography").Run()
	testenv.Require(t, err == nil, "python3-cryptography, for virt-fw-vars (apt-get install python3-cryptography)")
	testenv.RequireRoot(t)
}

// headersKernel is the kernel release whose headers are installed (what
// dkms builds against): the suite boots Debian's signed build of it.
func headersKernel() string {
	ents, _ := os.ReadDir("/lib/modules")
	for _, e := range ents {
		if _, err := os.Stat(filepath.Join("/lib/modules", e.Name(), "build", ".config")); err == nil {
			return e.Name()
		}
	}
	return ""
}

// TestSecureBoot builds the rows' modules with the real dkms and the tool
// (road.sh, the README's commands), boots Debian's Secure Boot chain once per
// variable store with all of that boot's rows, and checks every kernel
// answer, and that `status` in the booted system agrees with it.
func TestSecureBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a real Secure Boot chain in QEMU; not with -short")
	}
	requireTools(t)
	kver := headersKernel()
	testenv.Require(t, kver != "", "kernel headers (apt-get install linux-headers-amd64)")
	start := time.Now()
	c := getChain(t, kver)
	fwVars := virtFwVars(t)
	work := t.TempDir()
	tool := buildTool(t, work)
	runRoad(t, work, tool, kver, c.grub())
	if keep := os.Getenv("DKMS_SIGN_HOOK_SB_CONSOLE"); keep != "" {
		os.MkdirAll(keep, 0o755)
		exec.Command("cp", "-r", filepath.Join(work, "out"), filepath.Join(keep, "road")).Run()
		for name, src := range map[string]string{"mok.crt": "dkms-sign-hook/signing_key.x509", "ecdsa.crt": "dkms-sign-hook/ecdsa/signing_key.x509",
			"db.crt": "dkms-sign-hook/db/signing_key.x509", "dkms-mok.pub": "var-lib-dkms/mok.pub"} {
			exec.Command("cp", filepath.Join(work, "system", src), filepath.Join(keep, name)).Run()
		}
	}
	t.Logf("chain and modules ready after %s (kernel %s %s, shim-signed %s)", time.Since(start).Round(time.Second),
		kver, c.versions["linux-image-"+kver], c.versions["shim-signed"])

	ecdsa := c.hasECDSA(t)
	results := bootAll(t, c, fwVars, work, tool)
	if keep := os.Getenv("DKMS_SIGN_HOOK_SB_CONSOLE"); keep != "" {
		keepVerdicts(t, keep, results)
		exec.Command("cp", "-a", filepath.Join(work, "system"), filepath.Join(keep, "system")).Run()
	}
	for i, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			res := results[r.boot]
			if res == nil {
				t.Fatalf("boot %s did not run", r.boot)
			}
			v := res.verdicts[i]
			if v == nil {
				t.Fatalf("no answer for %s in boot %s; console:\n%s", r.pkg, r.boot, tail(res.console, 60))
			}
			want := r.want
			if want == ifECDSA {
				want = map[bool]string{true: loads, false: refused}[ecdsa]
			}
			if v.Err != want || (v.Exit == 0) != (want == loads) {
				t.Errorf("kernel: %s (exit %d), want %s\nconsole:\n%s", v.Err, v.Exit, want, v.Log)
			}
			if v.Exit == 0 && !strings.Contains(v.Log, "dshtest: loaded") {
				t.Errorf("insmod succeeded but the module's init did not print\nconsole:\n%s", v.Log)
			}
			checkStatus(t, res, r, kver, v.Exit == 0)
		})
	}
	for _, b := range boots {
		t.Run("shim/"+b.name, func(t *testing.T) { checkShim(t, results[b.name], b) })
		if b.enroll != "" {
			t.Run("enroll/"+b.name, func(t *testing.T) { checkEnroll(t, results[b.name], b) })
		}
	}
	// On the host (no UEFI), enroll fails for real: mokutil finds no EFI variables.
	if out, _ := os.ReadFile(filepath.Join(work, "out", "enroll.txt")); !strings.Contains(string(out), "EFI variables are not supported") {
		t.Errorf("enroll on the host (no UEFI) said:\n%s", out)
	}
	if rc, _ := os.ReadFile(filepath.Join(work, "out", "enroll.rc")); strings.TrimSpace(string(rc)) == "0" {
		t.Errorf("enroll on the host (no UEFI) exited 0")
	}
}

// statusModule is what the checks read of `status --json`.
type statusReport struct {
	Certificate struct {
		MOK      string   `json:"mok"`
		Keyrings []string `json:"keyrings"`
		Fix      string   `json:"fix"`
		Shim     []string `json:"shim"`
	} `json:"certificate"`
	Boot struct {
		SecureBoot     string `json:"secure_boot"`
		Lockdown       string `json:"lockdown"`
		MokListTrusted string `json:"mok_list_trusted"`
	} `json:"boot"`
	Builds []struct {
		Package string `json:"package"`
		Modules []struct {
			Where       string   `json:"where"`
			Loads       *bool    `json:"loads"`
			Keyrings    []string `json:"keyrings"`
			Explanation string   `json:"explanation"`
		} `json:"modules"`
	} `json:"builds"`
}

// checkStatus: `status --json`, run in the booted system before any module
// was loaded, said for the row's module what the kernel then did, and named
// the keyring holding the signer's key.
func checkStatus(t *testing.T, res *bootResult, r row, kver string, loaded bool) {
	t.Helper()
	blk, ok := parseBlocks(res.console, "STATUS")[r.conf]
	if !ok || blk.rc != "0" {
		t.Fatalf("no status --json --config %s in boot %s (rc %q):\n%s", r.conf, r.boot, blk.rc, blk.out)
	}
	var rep statusReport
	if err := json.Unmarshal([]byte(blk.out), &rep); err != nil {
		t.Fatalf("status --json: %v\n%s", err, blk.out)
	}
	if rep.Boot.SecureBoot != "enabled" || rep.Boot.Lockdown != "integrity" || rep.Boot.MokListTrusted != "yes" {
		t.Errorf("status: boot %+v, want Secure Boot enabled, lockdown integrity, MokListTrustedRT yes", rep.Boot)
	}
	for _, b := range rep.Builds {
		if b.Package != r.pkg {
			continue
		}
		for _, m := range b.Modules {
			if m.Where != "built" {
				continue
			}
			if m.Loads == nil || *m.Loads != loaded {
				t.Errorf("status says loads=%v (%s); the kernel: loaded=%v", fmtLoads(m.Loads), m.Explanation, loaded)
			}
			if got := strings.Join(m.Keyrings, ","); got != r.keyring {
				t.Errorf("status names keyrings %q for the signer's key, want %q (%s)", got, r.keyring, m.Explanation)
			}
			t.Logf("status: %s", m.Explanation)
			return
		}
	}
	t.Errorf("status --json has no built module of %s for %s:\n%s", r.pkg, kver, blk.out)
}

func fmtLoads(b *bool) string {
	if b == nil {
		return "null"
	}
	return fmt.Sprint(*b)
}

// shimRefusal is what shim 16 prints when an image it was asked to start
// verifies against none of its keys (pe.c).
const shimRefusal = "Verification failed"

// checkShim: shim started GRUB (and so the kernel) or refused it, as the
// boot expects, and status says whether it would start boot loaders signed
// with each configured certificate.
func checkShim(t *testing.T, res *bootResult, b bootSpec) {
	booted := strings.Contains(res.console, "=== BOOTED")
	refused := strings.Contains(res.console, shimRefusal)
	if b.shimRefuses != refused || booted == b.shimRefuses {
		t.Fatalf("shim refused GRUB: %v, kernel booted: %v; want refused %v\nconsole:\n%s", refused, booted, b.shimRefuses, tail(res.console, 40))
	}
	for conf, warn := range b.shim {
		var rep statusReport
		blk := parseBlocks(res.console, "STATUS")[conf]
		if err := json.Unmarshal([]byte(blk.out), &rep); err != nil {
			t.Fatalf("status --json --config %s: %v\n%s", conf, err, blk.out)
		}
		got := strings.Join(rep.Certificate.Shim, " ")
		if strings.Contains(got, "1.3.6.1.4.1.2312.16.1.2") != warn {
			t.Errorf("status --config %s: shim %q, want a warning: %v", conf, got, warn)
		}
	}
}

// checkEnroll: enroll says what it did, twice (idempotent), and status,
// run after it, reports the certificate's MOK state.
func checkEnroll(t *testing.T, res *bootResult, b bootSpec) {
	caps := parseBlocks(res.console, "CAPTURE")
	for name, want := range map[string]string{"enroll": b.enroll, "enroll-again": b.enrollAgain} {
		if c := caps[name]; c.rc != "0" || !strings.Contains(c.out, want) {
			t.Errorf("%s (rc %q) does not say %q:\n%s", name, c.rc, want, c.out)
		}
	}
	var rep statusReport
	blk := parseBlocks(res.console, "STATUS")["dkms-sign-hook.conf"]
	if err := json.Unmarshal([]byte(blk.out), &rep); err != nil {
		t.Fatalf("status --json: %v\n%s", err, blk.out)
	}
	if rep.Certificate.MOK != b.mokState {
		t.Errorf("status: certificate MOK state %q, want %q", rep.Certificate.MOK, b.mokState)
	}
	if b.mokState == "pending" && !strings.Contains(rep.Certificate.Fix, "pending") {
		t.Errorf("status: fix %q does not say the enrollment is pending", rep.Certificate.Fix)
	}
	// The text README.md quotes.
	text := caps["status-text"].out
	want := []string{"Secure Boot: enabled; lockdown: integrity; shim's MokListTrustedRT: yes; .platform (firmware db) counts for modules: yes (Debian's kernel"}
	if b.mokState == "enrolled" {
		want = append(want, "trusted by the running kernel: yes (.machine); MOK: enrolled")
	} else {
		want = append(want, "trusted by the running kernel: no; MOK: pending enrolment", "to have it trusted: its enrollment is pending: reboot and confirm it in MokManager")
	}
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("status does not print %q:\n%s", w, text)
		}
	}
}

// buildTool builds dkms-sign-hook without cgo: a static binary that runs in
// the booted initramfs as well as on the host.
func buildTool(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "bin", "dkms-sign-hook")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "../../cmd/dkms-sign-hook")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runRoad runs road.sh in a private mount namespace, holding the machine's
// DKMS lock (road.sh runs the real dkms).
func runRoad(t *testing.T, work, tool, kver, grub string) {
	t.Helper()
	testenv.LockDKMS(t)
	script, err := filepath.Abs("road.sh")
	if err != nil {
		t.Fatal(err)
	}
	modsrc, err := filepath.Abs("../kernel/testdata/mod")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", script, work, tool, kver, modsrc, grub)
	// DKMS_SIGN_HOOK_CONFIG etc. of the developer's shell must not leak in.
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "HOME=/root"}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("road.sh: %v\n%s", err, out)
	}
}

// A bootResult is one boot's console and what was parsed from it.
type bootResult struct {
	console  string
	verdicts map[int]*initramfs.Verdict
	err      error
	took     time.Duration
}

// bootAll boots every bootSpec in parallel (TCG uses one core per guest).
func bootAll(t *testing.T, c *chain, fwVars []string, work, tool string) map[string]*bootResult {
	t.Helper()
	results := map[string]*bootResult{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, b := range boots {
		dir := filepath.Join(work, "boot-"+b.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		initrd := filepath.Join(dir, "initrd.img")
		if err := writeInitrd(c, initrd, work, tool, b); err != nil {
			t.Fatalf("initramfs for boot %s: %v", b.name, err)
		}
		disk := filepath.Join(dir, "disk.img")
		grub := c.grub()
		if b.grub != "" {
			grub = filepath.Join(work, "grub-"+b.grub+".efi")
		}
		if err := c.espDisk(disk, initrd, "console=ttyS0 panic=-1 loglevel=6 no_timer_check", grub); err != nil {
			t.Fatalf("disk for boot %s: %v", b.name, err)
		}
		vars := filepath.Join(dir, "vars.fd")
		var mok, db []string
		for _, m := range b.mok {
			mok = append(mok, filepath.Join(work, "system", "dkms-sign-hook", m))
		}
		for _, d := range b.db {
			db = append(db, filepath.Join(work, "system", "dkms-sign-hook", d))
		}
		if err := varStore(t, fwVars, vars, mok, db); err != nil {
			t.Fatalf("variable store for boot %s: %v", b.name, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			stop := ""
			if b.shimRefuses {
				stop = shimRefusal
			}
			console, err := boot(context.Background(), disk, vars, stop)
			if err != nil && !b.shimRefuses && !strings.Contains(console, "=== BOOTED") {
				// TCG on a busy host can miss the kernel's early timer
				// checks and panic before /init: boot once more.
				again, err2 := boot(context.Background(), disk, vars, "")
				console, err = console+"\n=== RETRY: the boot above died before /init\n"+again, err2
			}
			r := &bootResult{console: console, verdicts: initramfs.ParseVerdicts(console), err: err, took: time.Since(t0)}
			mu.Lock()
			results[b.name] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	// DKMS_SIGN_HOOK_SB_CONSOLE=DIR keeps each boot's console, and what it
	// captured, one file per block, in DIR/<boot>/ (recorded outputs for
	// pkg/kerneltrust's tests come from there).
	keep := os.Getenv("DKMS_SIGN_HOOK_SB_CONSOLE")
	for _, b := range boots {
		r := results[b.name]
		t.Logf("boot %s: %s", b.name, r.took.Round(100*time.Millisecond))
		if keep != "" {
			keepConsole(t, filepath.Join(keep, b.name), r.console)
		}
		if r.err != nil {
			t.Errorf("boot %s: %v\nconsole:\n%s", b.name, r.err, tail(r.console, 80))
		}
	}
	return results
}

// writeInitrd packs what the booted system needs: busybox, kmod, keyctl and
// mokutil (dynamic, with their libraries), the static tool, the DKMS tree,
// /etc/dkms and /etc/dkms-sign-hook as road.sh left them (without private
// keys), the kernel's efivarfs module and config, and the /init of boot b.
func writeInitrd(c *chain, dst, work, tool string, b bootSpec) error {
	a := initramfs.Archive{}
	if err := a.AddBusybox("sh", "mount", "rmmod", "poweroff", "echo", "cat", "uname", "ls", "od", "printf", "dmesg", "mkdir"); err != nil {
		return err
	}
	// kmod with the compression libraries it dlopen()s (Debian 13's DKMS
	// leaves .ko.xz files).
	if err := a.AddKmodFrom("/"); err != nil {
		return err
	}
	for name, src := range map[string]string{"bin/keyctl": "/usr/bin/keyctl", "bin/mokutil": "/usr/bin/mokutil"} {
		if err := a.AddDynamic(name, src); err != nil {
			return err
		}
	}
	a.Add("bin/insmod", initramfs.Symlink|0o777, []byte("kmod"))
	if err := a.CopyFile("usr/sbin/dkms-sign-hook", tool, 0o755); err != nil {
		return err
	}
	a.Dir("tmp")
	sys := filepath.Join(work, "system")
	for src, dst := range map[string]string{
		filepath.Join(sys, "var-lib-dkms"):       "var/lib/dkms",
		filepath.Join(sys, "dkms"):               "etc/dkms",
		filepath.Join(sys, "dkms-sign-hook"):     "etc/dkms-sign-hook",
		c.module("kernel/fs/efivarfs"):           path("lib/modules", c.kver, "kernel/fs/efivarfs"),
		filepath.Join(sys, "dkms-override.conf"): "usr/share/dkms-sign-hook/dkms-override.conf",
		c.config():                               path("boot", "config-"+c.kver),
	} {
		if err := a.AddTree(dst, src); err != nil {
			return err
		}
	}
	a.Add("init", initramfs.File|0o755, []byte(initScript(c.kver, b)))
	return a.WriteFile(dst)
}

func path(parts ...string) string { return strings.Join(parts, "/") }

// initScript is boot b's /init: it records what the kernel and firmware say
// (CAPTURE blocks), runs status for every row of the boot before any module
// is loaded (STATUS blocks), then loads each row's module (LOAD/VERDICT, see
// package initramfs), unloading it after a success, and powers off.
func initScript(kver string, b bootSpec) string {
	var s strings.Builder
	fmt.Fprintf(&s, `#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t securityfs securityfs /sys/kernel/security
mount -t devtmpfs devtmpfs /dev
echo "=== BOOTED $(uname -r)"
dmesg -n 1
insmod /lib/modules/%[1]s/kernel/fs/efivarfs/efivarfs.ko* && mount -t efivarfs efivarfs /sys/firmware/efi/efivars
capture() { name=$1; shift; echo "=== CAPTURE $name"; "$@" 2>&1; echo "=== END $name rc=$?"; }
status() { echo "=== STATUS $1"; dkms-sign-hook status --json --config /etc/dkms-sign-hook/$1; echo "=== END STATUS $1 rc=$?"; }
capture proc-keys cat /proc/keys
capture proc-version cat /proc/version
capture SecureBoot od -An -tx1 /sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c
capture lockdown cat /sys/kernel/security/lockdown
capture sig_enforce cat /sys/module/module/parameters/sig_enforce
capture sb-state mokutil --sb-state
capture list-enrolled mokutil --list-enrolled
capture list-new mokutil --list-new
capture test-key mokutil --test-key /etc/dkms-sign-hook/signing_key.der
capture test-key-db mokutil --test-key /etc/dkms-sign-hook/db/signing_key.der
capture efivars ls /sys/firmware/efi/efivars
capture mok-variables ls /sys/firmware/efi/mok-variables
capture MokListTrustedRT od -An -tx1 /sys/firmware/efi/mok-variables/MokListTrustedRT
for k in .builtin_trusted_keys .secondary_trusted_keys .machine .platform; do capture "keyring$k" keyctl rlist "%%:$k"; done
`, kver)
	// The one-time password mokutil --import reads (from stdin: not a terminal).
	s.WriteString("printf 'sboot-test\\nsboot-test\\n' | capture enroll dkms-sign-hook enroll\n")
	s.WriteString("capture list-new-after-enroll mokutil --list-new\n")
	s.WriteString("capture test-key-after-enroll mokutil --test-key /etc/dkms-sign-hook/signing_key.der\n")
	s.WriteString("printf 'sboot-test\\nsboot-test\\n' | capture enroll-again dkms-sign-hook enroll\n")
	seen := map[string]bool{}
	for _, r := range rows {
		if r.boot == b.name && !seen[r.conf] {
			seen[r.conf] = true
			// What mokutil, which status asks, says of the certificate.
			fmt.Fprintf(&s, "capture test-key-%s mokutil --test-key %s\n", r.conf, confDER[r.conf])
			fmt.Fprintf(&s, "status %s\n", r.conf)
		}
	}
	// What a user reads (README.md quotes it).
	s.WriteString("capture status-text dkms-sign-hook status\n")
	s.WriteString("dmesg -n 7\n")
	for i, r := range rows {
		if r.boot != b.name {
			continue
		}
		// dshtest.ko, or .ko.xz where DKMS compresses (Debian 13).
		fmt.Fprintf(&s, "mod=$(ls /var/lib/dkms/%s/1.0/%s/x86_64/module/dshtest.ko*)\n", r.pkg, kver)
		fmt.Fprintf(&s, "echo \"=== LOAD %d insmod $mod\"\nout=$(/bin/insmod $mod 2>&1); rc=$?\necho \"VERDICT %d exit=$rc $out\"\n[ $rc = 0 ] && rmmod dshtest\n",
			i, i)
	}
	s.WriteString("echo \"=== DONE\"\npoweroff -f\n")
	return s.String()
}

// A block is the output of one command the /init script ran between
// "=== CAPTURE <name>" (or "=== STATUS <name>") and "=== END ... rc=<status>".
type block struct {
	out string
	rc  string
}

// parseBlocks returns the console's blocks of a kind ("CAPTURE" or "STATUS")
// by name. Kernel messages are kept off the console while they run.
func parseBlocks(console, kind string) map[string]block {
	m := map[string]block{}
	var name string
	var cur *strings.Builder
	for _, line := range strings.Split(console, "\n") {
		switch {
		case strings.HasPrefix(line, "=== "+kind+" "):
			name = strings.TrimPrefix(line, "=== "+kind+" ")
			cur = &strings.Builder{}
		case cur != nil && strings.HasPrefix(line, "=== END "):
			_, rc, _ := strings.Cut(line, " rc=")
			m[name] = block{out: cur.String(), rc: rc}
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
	}
	return m
}

// keepVerdicts writes, per boot, what the kernel did with each row's module
// into DIR/<boot>/verdicts.txt: "<package> <status config> loaded|refused
// <keyring holding the signer's key, or ->".
func keepVerdicts(t *testing.T, dir string, results map[string]*bootResult) {
	lines := map[string]string{}
	for i, r := range rows {
		if res := results[r.boot]; res != nil && res.verdicts[i] != nil {
			word := map[bool]string{true: "loaded", false: "refused"}[res.verdicts[i].Exit == 0]
			lines[r.boot] += fmt.Sprintf("%s %s %s %s\n", r.pkg, r.conf, word, cmp.Or(r.keyring, "-"))
		}
	}
	for boot, text := range lines {
		if err := os.WriteFile(filepath.Join(dir, boot, "verdicts.txt"), []byte(text), 0o644); err != nil {
			t.Log(err)
		}
	}
}

// keepConsole writes a boot's console and its blocks into dir.
func keepConsole(t *testing.T, dir, console string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Log(err)
		return
	}
	os.WriteFile(filepath.Join(dir, "console.log"), []byte(console), 0o644)
	for _, kind := range []string{"CAPTURE", "STATUS"} {
		for name, b := range parseBlocks(console, kind) {
			os.WriteFile(filepath.Join(dir, strings.ToLower(kind)+"-"+name+".txt"), []byte(b.out), 0o644)
		}
	}
}
