// Package fleet is the end-to-end test of a fleet signing through one token
// (docs/fleet.md): a signing host and two hosts, each a network namespace
// with a private mount namespace, joined only by veth links. The signer
// holds a SoftHSM token, exported by `p11-kit server` (contrib's
// dkms-sign-hook-signer.service) and reached by sshd with contrib's
// restrictions (one forced command: p11-kit remote). Each host has its own
// /run, /var/lib/dkms and /etc/dkms, cannot see the signer's files, reaches
// the token through contrib's socket unit (run by systemd-socket-activate)
// and has the real dkms build a package of several modules with the hook and
// `key = pkcs11:...` through p11-kit-client.so.
package fleet

import (
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/dkmsenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
)

const (
	tokenLabel = "dkms-fleet"
	userPIN    = "58132134"
	soPIN      = "55891442"
	account    = "dkms-signer"
	accountID  = "64990"
	pkg        = "dshfleet"
	pkgVer     = "1.0"
	nModules   = 8
	p11Timeout = 4 * time.Second
	hostSocket = "/run/dkms-sign-hook/signer.sock"
	dkmsTree   = "/var/lib/dkms"
)

type fleet struct {
	t         *testing.T
	dir       string
	start     time.Time
	bin       string // the tool
	override  string // contrib/dkms/dkms-override.conf pointing at bin
	kver      string
	arch      string
	dkms      *dkmsenv.DKMS // the machine's dkms (all hosts run it)
	signer    *machine
	signerDir string
	server    *service // p11-kit server
	hostKey   string   // the signer's ssh host public key
	hosts     []*host
	keys      map[string]*fleetKey // "rsa", "ec"
}

// fleetKey is a key on the token: its PEM copy stays on the signer (to
// compare signatures and to search for), its certificate goes everywhere.
type fleetKey struct {
	label   string
	pem     string // on the signer only
	certDER string
	certPEM string
	cert    *x509.Certificate
}

type host struct {
	*machine
	n    int
	addr string // the signer, as this host reaches it
	dir  string
	conf string
	// confDefault: conf without pkcs11_timeout (the default, 30s)
	confDefault string
	log         string
	key         *fleetKey
	socket      *service
	src         string
}

func requireAll(t *testing.T) {
	t.Helper()
	if testing.Short() && !testenv.InCI() {
		t.Skip("skipped in -short mode: namespaces, sshd, p11-kit and the real dkms")
	}
	testenv.RequireRoot(t)
	for _, c := range [][2]string{
		{"dkms", "dkms"}, {"p11-kit", "p11-kit"}, {"softhsm2-util", "softhsm2"}, {"/usr/sbin/sshd", "openssh-server"},
		{"ssh", "openssh-client"}, {"ssh-keygen", "openssh-client"}, {"systemd-socket-activate", "systemd"},
		{"unshare", "util-linux"}, {"nsenter", "util-linux"}, {"ip", "iproute2"}, {"openssl", "openssl"},
	} {
		testenv.LookPath(t, c[0], c[1])
	}
	_, err := os.Stat(keys.P11KitClient())
	testenv.Require(t, err == nil, "p11-kit-client.so (apt-get install p11-kit-modules)")
	testenv.RequireSignFile(t)
}

func newFleet(t *testing.T) *fleet {
	requireAll(t)
	f := &fleet{t: t, dir: t.TempDir(), start: time.Now().Add(-time.Second), keys: map[string]*fleetKey{}}
	t.Cleanup(func() { assertNoMountsBelow(t, f.dir) })
	f.kver = testenv.HeadersKernel()
	testenv.Require(t, f.kver != "", "kernel headers (apt-get install linux-headers-amd64)")
	out, err := exec.Command("uname", "-m").Output()
	if err != nil {
		t.Fatal(err)
	}
	f.arch = strings.TrimSpace(string(out))
	if f.dkms, err = dkmsenv.FindDKMS(); err != nil {
		t.Fatalf("dkms: %v", err)
	}
	f.buildTool()
	f.signerDir = f.mkdir("signer", 0o700)
	f.makeKeys()
	logs := f.mkdir("logs", 0o700)
	f.signer = newMachine(t, "signer", logs)
	for n := 1; n <= 2; n++ {
		h := &host{n: n, dir: f.mkdir(fmt.Sprintf("host%d", n), 0o700), addr: fmt.Sprintf("10.213.%d.1", n)}
		h.machine = newMachine(t, fmt.Sprintf("host%d", n), logs)
		link(t, f.signer, h.machine, n, h.addr+"/30", fmt.Sprintf("10.213.%d.2/30", n))
		f.hosts = append(f.hosts, h)
	}
	f.hosts[0].key, f.hosts[1].key = f.keys["rsa"], f.keys["ec"]
	f.setUpSigner()
	for _, h := range f.hosts {
		f.setUpHost(h)
	}
	return f
}

func (f *fleet) mkdir(name string, mode os.FileMode) string {
	d := filepath.Join(f.dir, name)
	if err := os.MkdirAll(d, mode); err != nil {
		f.t.Fatal(err)
	}
	return d
}

func (f *fleet) buildTool() {
	t := f.t
	f.bin = filepath.Join(f.mkdir("bin", 0o755), "dkms-sign-hook")
	if out, err := exec.Command("go", "build", "-o", f.bin, "../../cmd/dkms-sign-hook").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	f.override = testenv.Override(t, f.bin, f.mkdir("share", 0o755))
}

func openssl(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// makeKeys makes an RSA-4096 and a P-384 key with openssl, on the signer's
// side of the test's directory, with self-signed certificates.
func (f *fleet) makeKeys() {
	t := f.t
	for name, alg := range map[string][]string{
		"rsa": {"-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:4096"},
		"ec":  {"-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"},
	} {
		k := &fleetKey{label: "fleet-" + name, pem: filepath.Join(f.signerDir, name+".pem")}
		openssl(t, append(append([]string{"genpkey"}, alg...), "-out", k.pem)...)
		os.Chmod(k.pem, 0o600)
		k.certDER = filepath.Join(f.dir, "share", name+".der")
		openssl(t, "req", "-new", "-x509", "-key", k.pem, "-days", "3650", "-subj", "/CN=dkms fleet "+name,
			"-addext", "keyUsage=digitalSignature", "-addext", "extendedKeyUsage=codeSigning", "-outform", "DER", "-out", k.certDER)
		cert, err := keys.LoadCertificate(k.certDER)
		if err != nil {
			t.Fatal(err)
		}
		k.cert = cert
		k.certPEM = strings.TrimSuffix(k.certDER, ".der") + ".crt"
		os.WriteFile(k.certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644)
		f.keys[name] = k
	}
}

// setUpSigner gives the signer its own /run, /etc/ssh, token store and user
// database (with the dkms-signer account), the token with both keys, the
// p11-kit server of contrib's unit and sshd with contrib's drop-in.
func (f *fleet) setUpSigner() {
	t, s := f.t, f.signer
	for _, d := range []string{"/run", "/etc/ssh"} {
		s.mountTmpfs(d)
	}
	s.mountTmpfs("/var/lib/softhsm", "0700")
	etc := f.mkdir("signer/etc", 0o755)
	for file, line := range map[string]string{
		"passwd": account + ":x:" + accountID + ":" + accountID + ":fleet module signing:/nonexistent:/bin/sh\n",
		"group":  account + ":x:" + accountID + ":\n",
		"shadow": account + ":*:20000:0:99999:7:::\n",
	} {
		data, err := os.ReadFile("/etc/" + file)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(etc, file), append(data, line...), 0o644)
		s.run("mount", "--bind", filepath.Join(etc, file), "/etc/"+file)
	}
	s.run("mkdir", "-p", "/var/lib/softhsm/tokens", "/run/sshd", "/run/dkms-sign-hook-signer", "/etc/ssh/sshd_config.d")
	s.run("softhsm2-util", "--init-token", "--free", "--label", tokenLabel, "--pin", userPIN, "--so-pin", soPIN)
	for i, name := range []string{"rsa", "ec"} {
		k := f.keys[name]
		s.run("softhsm2-util", "--import", k.pem, "--token", tokenLabel, "--label", k.label, "--id", fmt.Sprintf("%02x", i+1), "--pin", userPIN)
	}
	f.startServer()

	s.run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", "/etc/ssh/ssh_host_ed25519_key")
	pub, err := os.ReadFile(s.path("/etc/ssh/ssh_host_ed25519_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	f.hostKey = strings.Join(strings.Fields(string(pub))[:2], " ")
	conf := "HostKey /etc/ssh/ssh_host_ed25519_key\nPidFile none\nUsePAM no\nPermitRootLogin no\n" +
		"PasswordAuthentication no\nKbdInteractiveAuthentication no\nAuthorizedKeysFile none\nLogLevel VERBOSE\n"
	for _, h := range f.hosts {
		conf += "ListenAddress " + h.addr + "\n"
	}
	conf += "Include /etc/ssh/sshd_config.d/*.conf\n"
	staged := filepath.Join(etc, "sshd_config")
	os.WriteFile(staged, []byte(conf), 0o644)
	s.run("cp", staged, "/etc/ssh/sshd_config")
	s.run("cp", filepath.Join(contrib, "dkms-sign-hook-signer.sshd.conf"), "/etc/ssh/sshd_config.d/dkms-sign-hook-signer.conf")
	s.run("touch", "/etc/ssh/dkms-signer.authorized_keys")
	s.run("/usr/sbin/sshd", "-t")
}

// startServer starts the p11-kit server exactly as contrib's unit says
// (its RuntimeDirectory made as systemd would) and waits for its socket.
func (f *fleet) startServer() {
	u := readUnit(f.t, "dkms-sign-hook-signer.service")
	sock := "/run/dkms-sign-hook-signer/p11kit.sock"
	f.signer.run("rm", "-f", sock)
	f.server = f.signer.start("p11-kit-server", nil, u.argv(f.t, map[string]string{"TOKEN": "pkcs11:token=" + tokenLabel})...)
	waitFor(f.t, "the p11-kit server's socket", 10*time.Second, func() bool {
		st, err := os.Stat(f.signer.path(sock))
		return err == nil && st.Mode().Type() == os.ModeSocket
	})
}

func (f *fleet) startSSHD() {
	sshd := f.signer.start("sshd", nil, "/usr/sbin/sshd", "-D", "-e")
	waitFor(f.t, "sshd", 10*time.Second, func() bool { return strings.Contains(sshd.output(), "Server listening") })
}

// setUpHost hides the signer's and the other host's files, gives the host
// its own /run, /var/lib/dkms and /etc/dkms, an ssh key the signer accepts
// (restrict, from its address only), the certificate, the PIN file, the
// tool's configuration and contrib's socket unit.
func (f *fleet) setUpHost(h *host) {
	t := f.t
	etc := filepath.Join(h.dir, "etc")
	os.MkdirAll(etc, 0o700)
	os.MkdirAll(filepath.Join(h.dir, "etc-dkms", "framework.conf.d"), 0o755)
	h.log = filepath.Join(h.dir, "log", "signed.jsonl")
	os.MkdirAll(filepath.Dir(h.log), 0o700)
	if data, err := os.ReadFile("/etc/dkms/framework.conf"); err == nil {
		os.WriteFile(filepath.Join(h.dir, "etc-dkms", "framework.conf"), data, 0o644)
	}
	for _, other := range append([]string{f.signerDir}, f.otherHosts(h)...) {
		h.mountTmpfs(other, "0700")
	}
	h.mountTmpfs("/run")
	h.mountTmpfs(dkmsTree)
	// Its own /lib/modules/KVER, holding only the headers' link: what other
	// tests do there (test/dkms makes modules.dep ask DKMS for xz) is not
	// this host's, and DKMS writes nothing outside the host.
	kdir := "/lib/modules/" + f.kver
	headers, err := os.Readlink(kdir + "/build")
	if err != nil {
		t.Fatal(err)
	}
	h.mountTmpfs(kdir)
	h.run("ln", "-s", headers, kdir+"/build")
	h.run("mount", "--bind", filepath.Join(h.dir, "etc-dkms"), "/etc/dkms")

	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", h.name, "-f", filepath.Join(etc, "id_ed25519")).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, _ := os.ReadFile(filepath.Join(etc, "id_ed25519.pub"))
	line := fmt.Sprintf("restrict,from=\"10.213.%d.2\" %s", h.n, pub)
	ak, _ := os.ReadFile(f.signer.path("/etc/ssh/dkms-signer.authorized_keys"))
	os.WriteFile(f.signer.path("/etc/ssh/dkms-signer.authorized_keys"), append(ak, line...), 0o644)
	os.WriteFile(filepath.Join(etc, "known_hosts"), []byte(h.addr+" "+f.hostKey+"\n"), 0o644)
	os.WriteFile(filepath.Join(etc, "pin"), []byte(userPIN+"\n"), 0o600)
	cert := filepath.Join(etc, "fleet.der")
	data, _ := os.ReadFile(h.key.certDER)
	os.WriteFile(cert, data, 0o644)
	h.conf = filepath.Join(etc, "dkms-sign-hook.conf")
	conf := fmt.Sprintf("[signing]\nkey = pkcs11:token=%s;object=%s\ncertificate = %s\npin_file = %s\n"+
		"pkcs11_server = %s\npkcs11_timeout = %s\n[hook]\nmissing_key = warn\nlog = %s\n",
		tokenLabel, h.key.label, cert, filepath.Join(etc, "pin"), hostSocket, p11Timeout, h.log)
	os.WriteFile(h.conf, []byte(conf), 0o600)
	// As shipped: the default pkcs11_timeout (30s), for the figures under load.
	h.confDefault = filepath.Join(etc, "default-timeout.conf")
	os.WriteFile(h.confDefault, []byte(strings.Replace(conf, "pkcs11_timeout = "+p11Timeout.String()+"\n", "", 1)), 0o600)
	h.src = filepath.Join(h.dir, "src")
	writePackage(t, filepath.Join(h.src, pkg+"-"+pkgVer))
}

func (f *fleet) otherHosts(h *host) []string {
	var out []string
	for _, o := range f.hosts {
		if o != h {
			out = append(out, o.dir)
		}
	}
	return out
}

// startSocket runs contrib's socket unit and its service on the host, as
// systemd would with Accept=yes: one ssh per connection, on the socket's
// stdin and stdout.
func (f *fleet) startSocket(h *host) {
	t := f.t
	sock := readUnit(t, "dkms-sign-hook-remote.socket")
	if sock.settings["ListenStream"] != hostSocket || sock.settings["Accept"] != "yes" {
		t.Fatalf("dkms-sign-hook-remote.socket: ListenStream=%s Accept=%s, want %s and yes", sock.settings["ListenStream"], sock.settings["Accept"], hostSocket)
	}
	svc := readUnit(t, "dkms-sign-hook-remote@.service")
	argv := svc.argv(t, map[string]string{"SIGNER": account + "@" + h.addr}, "/etc/dkms-sign-hook/fleet/", filepath.Join(h.dir, "etc")+"/")
	h.run("mkdir", "-p", "-m", "0700", filepath.Dir(hostSocket))
	h.run("rm", "-f", hostSocket)
	h.socket = h.start("socket", nil, append([]string{"systemd-socket-activate", "--listen=" + hostSocket, "--accept", "--inetd", "--"}, argv...)...)
	waitFor(t, h.name+"'s socket", 10*time.Second, func() bool {
		_, err := os.Stat(h.path(hostSocket))
		return err == nil
	})
}

// writePackage writes a DKMS package of nModules tiny modules.
func writePackage(t *testing.T, dir string) {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	conf := fmt.Sprintf("PACKAGE_NAME=%q\nPACKAGE_VERSION=%q\nAUTOINSTALL=\"no\"\n", pkg, pkgVer)
	var objs []string
	for i := 0; i < nModules; i++ {
		name := fmt.Sprintf("%s%d", pkg, i)
		conf += fmt.Sprintf("BUILT_MODULE_NAME[%d]=%q\nDEST_MODULE_LOCATION[%d]=\"/updates/dkms\"\n", i, name, i)
		objs = append(objs, name+".o")
		src := fmt.Sprintf("// SPDX-License-Identifier: GPL-2.0\n#include <linux/module.h>\n"+
			"static int __init m_init(void) { return 0; }\nstatic void __exit m_exit(void) { }\n"+
			"module_init(m_init);\nmodule_exit(m_exit);\nMODULE_LICENSE(\"GPL\");\nMODULE_DESCRIPTION(\"fleet test module %d\");\n", i)
		os.WriteFile(filepath.Join(dir, name+".c"), []byte(src), 0o644)
	}
	os.WriteFile(filepath.Join(dir, "dkms.conf"), []byte(conf), 0o644)
	os.WriteFile(filepath.Join(dir, "Makefile"), []byte("obj-m := "+strings.Join(objs, " ")+"\n"), 0o644)
}

func (f *fleet) env(h *host) []string {
	return []string{"DKMS_SIGN_HOOK_CONFIG=" + h.conf}
}

func (f *fleet) tool(h *host, args ...string) (string, error) {
	return h.try(f.env(h), append([]string{f.bin}, args...)...)
}

func (f *fleet) moduleDir(h *host) string {
	return h.path(filepath.Join(dkmsTree, pkg, pkgVer, f.kver, f.arch, "module"))
}

func (f *fleet) modules(h *host) []string {
	var out []string
	for i := 0; i < nModules; i++ {
		out = append(out, filepath.Join(f.moduleDir(h), fmt.Sprintf("%s%d.ko", pkg, i)))
	}
	return out
}

// mokCert is the certificate of the key DKMS 3.0.10 made on this host
// (its own signature, which the hook replaces).
func (f *fleet) mokCert(h *host) *x509.Certificate {
	c, err := keys.LoadCertificate(h.path(filepath.Join(dkmsTree, "mok.pub")))
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// signedBy returns which of certs the module's one signature verifies
// against (nil if none, or not exactly one signature).
func signedBy(path string, certs ...*x509.Certificate) *x509.Certificate {
	for _, c := range certs {
		if info, err := sign.VerifyFile(path, []*x509.Certificate{c}); err == nil && len(info.Signatures) == 1 {
			return c
		}
	}
	return nil
}

// build (re)builds the package on a host with the hook enabled. It may run
// on another goroutine than the test's: it returns errors, never fails t.
func (f *fleet) build(h *host) (string, time.Duration, error) {
	if _, err := os.Stat(h.path(filepath.Join(dkmsTree, pkg, pkgVer, "source"))); err != nil {
		if out, err := h.try(f.env(h), "dkms", "add", "--sourcetree="+h.src, pkg+"/"+pkgVer); err != nil {
			return out, 0, fmt.Errorf("%s: dkms add: %v", h.name, err)
		}
		if out, err := f.tool(h, "enable", "--override", f.override, pkg); err != nil {
			return out, 0, fmt.Errorf("%s: enable: %v", h.name, err)
		}
	}
	start := time.Now()
	out, err := h.try(f.env(h), "dkms", "build", "--force", "--sourcetree="+h.src, pkg+"/"+pkgVer, "-k", f.kver)
	if err != nil {
		err = fmt.Errorf("%s: dkms build: %v", h.name, err)
	}
	if f.dkms.HookCaptured() {
		// DKMS 3.1.7+ (Debian 13's 3.2.2) appends the hook's output to
		// the build's make.log instead of showing it; a failed hook
		// leaves make.log in the build directory.
		build := filepath.Join(dkmsTree, pkg, pkgVer)
		logged, lerr := os.ReadFile(h.path(filepath.Join(build, f.kver, f.arch, "log", "make.log")))
		if lerr != nil {
			logged, _ = os.ReadFile(h.path(filepath.Join(build, "build", "make.log")))
		}
		out += "\n--- make.log ---\n" + string(logged)
	}
	return out, time.Since(start), err
}

// mustBuild is build on the test's goroutine.
func (f *fleet) mustBuild(h *host) (string, time.Duration) {
	f.t.Helper()
	out, took, err := f.build(h)
	if err != nil {
		f.t.Fatalf("%v\n%s", err, out)
	}
	return out, took
}

// splitModule splits a signed module into the signed content and the
// PKCS#7 blob (struct module_signature: sig_len is the big-endian u32 at
// its end, followed by the 28-byte magic).
func splitModule(t *testing.T, data []byte) (content, blob []byte) {
	t.Helper()
	const tail = 12 + 28
	if len(data) < tail {
		t.Fatal("module too short")
	}
	n := int(binary.BigEndian.Uint32(data[len(data)-28-4:]))
	end := len(data) - tail
	if n > end {
		t.Fatal("bad sig_len")
	}
	return data[:end-n], data[end-n : end]
}
