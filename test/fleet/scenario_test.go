package fleet

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
)

// TestFleet: both hosts build at once and their modules come out signed by
// the token's keys; no host holds a key; an unreachable signer (link down,
// hung server, tunnel stopped) costs a build at most pkcs11_timeout, leaves
// the modules with DKMS's own signature and a loud warning, and `sign
// --dkms` catches up; a server killed mid-batch leaves every module either
// untouched or completely signed.
func TestFleet(t *testing.T) {
	f := newFleet(t)
	f.startSSHD()
	for _, h := range f.hosts {
		f.startSocket(h)
	}

	t.Run("build", func(t *testing.T) {
		f.t = t
		var wg sync.WaitGroup
		outs := make([]string, len(f.hosts))
		took := make([]time.Duration, len(f.hosts))
		errs := make([]error, len(f.hosts))
		start := time.Now()
		for i, h := range f.hosts {
			wg.Add(1)
			go func() { defer wg.Done(); outs[i], took[i], errs[i] = f.build(h) }()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("%v\n%s", err, outs[i])
			}
		}
		t.Logf("2 hosts x %d modules, built and signed through the one token at once: %v wall (host1 %v, host2 %v)",
			nModules, time.Since(start).Round(time.Millisecond), took[0].Round(time.Millisecond), took[1].Round(time.Millisecond))
		for i, h := range f.hosts {
			for _, m := range f.modules(h) {
				if !strings.Contains(outs[i], "dkms-sign-hook: info: signed file="+strings.TrimPrefix(m, h.path(""))) {
					t.Errorf("%s: the build output does not show the hook signing %s:\n%s", h.name, m, outs[i])
				}
				if signedBy(m, h.key.cert) == nil {
					t.Errorf("%s: %s does not verify against %s with exactly one signature", h.name, m, h.key.cert.Subject.CommonName)
				}
			}
		}
		f.assertSameAsSignFile(f.hosts[0])
		f.assertOpenSSLVerifies(f.hosts[1])
		f.assertTokenStatus(f.hosts[0], true)
	})

	t.Run("throughput", func(t *testing.T) {
		f.t = t
		f.throughput(f.keys["rsa"], 40)
		f.throughput(f.keys["ec"], 40)
	})

	t.Run("no-key-on-hosts", func(t *testing.T) {
		f.t = t
		tokenFiles, _ := filepath.Glob(f.signer.path("/var/lib/softhsm/tokens/*/*.object"))
		if len(tokenFiles) == 0 {
			t.Fatal("no token object files on the signer")
		}
		var public [][]byte
		for _, k := range f.keys {
			public = append(public, k.cert.Raw)
		}
		pats := keyPatterns(t, []string{f.keys["rsa"].pem, f.keys["ec"].pem}, tokenFiles, public)
		// All three at once (they read mostly the same files: one pass
		// through the page cache). The search can say yes: on the signer
		// it finds the keys.
		var wg sync.WaitGroup
		hits := make([][]string, len(f.hosts)+1)
		for i, m := range append([]*machine{f.signer}, f.machines()...) {
			wg.Add(1)
			go func() { defer wg.Done(); hits[i] = searchKey(t, m, f.start, pats) }()
		}
		wg.Wait()
		for _, want := range []string{f.keys["rsa"].pem + ": rsa.pem PEM line", f.keys["ec"].pem + ": ec.pem PEM line", "/var/lib/softhsm/tokens/"} {
			if !containsPrefix(hits[0], want) {
				t.Errorf("the search on the signer does not find %q: %v", want, hits[0])
			}
		}
		for i, h := range f.hosts {
			if len(hits[i+1]) > 0 {
				t.Errorf("%s holds key material: %v", h.name, hits[i+1])
			}
		}
	})

	h := f.hosts[0]
	t.Run("link-down", func(t *testing.T) {
		f.t = t
		ifc := f.signerIf(h)
		f.signer.run("ip", "link", "set", ifc, "down")
		f.unreachable(h, "token unreachable")
		f.signer.run("ip", "link", "set", ifc, "up")
		f.catchUp(h)
	})
	t.Run("hung-server", func(t *testing.T) {
		f.t = t
		f.server.signal(syscall.SIGSTOP)
		f.unreachable(h, "no answer within "+p11Timeout.String())
		f.server.signal(syscall.SIGCONT)
		f.catchUp(h)
	})
	t.Run("tunnel-stopped", func(t *testing.T) {
		f.t = t
		f.stopService(h.machine, h.socket)
		f.assertTokenStatus(h, false)
		f.unreachable(h, "the p11-kit server shows no token")
		f.startSocket(h)
		f.catchUp(h)
	})
	t.Run("server-killed-mid-batch", func(t *testing.T) {
		f.t = t
		f.killMidBatch(h)
	})
}

func containsPrefix(list []string, s string) bool {
	for _, l := range list {
		if strings.HasPrefix(l, s) || strings.Contains(l, s) {
			return true
		}
	}
	return false
}

func (f *fleet) signerIf(h *host) string {
	out := f.signer.run("ip", "-o", "addr", "show", "to", h.addr)
	fl := strings.Fields(out)
	if len(fl) < 2 {
		f.t.Fatalf("no interface with %s on the signer: %q", h.addr, out)
	}
	return strings.TrimSuffix(fl[1], "@"+fl[1][strings.Index(fl[1], "@")+1:])
}

func (f *fleet) stopService(m *machine, s *service) {
	s.signal(syscall.SIGKILL)
	waitFor(f.t, "the service to stop", 5*time.Second, func() bool { return s.cmd.ProcessState != nil })
}

// unreachable rebuilds on h while the signer cannot be reached: the build
// succeeds within pkcs11_timeout plus the build's own time, its output
// names every module left unsigned and why, and the modules keep DKMS's
// own signature.
func (f *fleet) unreachable(h *host, why string) {
	t := f.t
	out, took := f.mustBuild(h)
	t.Logf("%s: dkms build with the signer unreachable: %v", h.name, took.Round(time.Millisecond))
	want := "dkms-sign-hook: warning: *** signing token pkcs11:token=" + tokenLabel + ";object=" + h.key.label +
		" unreachable (p11-kit server " + hostSocket + "): modules of " + pkg + "/" + pkgVer + " for kernel " + f.kver + " are NOT signed"
	if !strings.Contains(out, want) {
		t.Errorf("the build output lacks %q:\n%s", want, out)
	}
	if !strings.Contains(out, why) {
		t.Errorf("the build output does not say %q:\n%s", why, out)
	}
	mok := f.mokCert(h)
	for _, m := range f.modules(h) {
		if !strings.Contains(out, "dkms-sign-hook: warning: not signed file="+strings.TrimPrefix(m, h.path(""))) {
			t.Errorf("the build output does not name %s as unsigned", m)
		}
		if signedBy(m, mok) == nil {
			t.Errorf("%s: not DKMS's own signature after an unreachable signer", m)
		}
	}
	if took > 3*time.Minute {
		t.Errorf("the build took %v", took)
	}
}

// catchUp signs what the hook left with `sign --dkms` once the signer is back.
func (f *fleet) catchUp(h *host) {
	t := f.t
	var out string
	var err error
	// ssh may need a moment after the link comes back.
	waitFor(t, "sign --dkms to succeed", 60*time.Second, func() bool {
		out, err = f.tool(h, "sign", "--dkms", "--kernel", f.kver, pkg)
		return err == nil
	})
	for _, m := range f.modules(h) {
		if signedBy(m, h.key.cert) == nil {
			t.Errorf("%s: not signed by the fleet key after sign --dkms:\n%s", m, out)
		}
	}
}

// assertSameAsSignFile: each module signed through the token is
// byte-identical to the same module signed by Debian's sign-file with the
// same key as a PEM file (RSA PKCS#1 v1.5 is deterministic).
func (f *fleet) assertSameAsSignFile(h *host) {
	t := f.t
	dir := t.TempDir()
	for _, m := range f.modules(h) {
		got, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		info, err := sign.VerifyFile(m, []*x509.Certificate{h.key.cert})
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		cp := filepath.Join(dir, filepath.Base(m))
		os.WriteFile(cp, got, 0o644)
		if _, err := sign.StripFile(cp); err != nil {
			t.Fatal(err)
		}
		hash := info.Last().HashAlgo
		if out, err := exec.Command(testenv.FindSignFile(), hash, h.key.pem, h.key.certDER, cp).CombinedOutput(); err != nil {
			t.Fatalf("sign-file: %v\n%s", err, out)
		}
		want, _ := os.ReadFile(cp)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: differs from Debian's sign-file with the same key as PEM (%s)", m, hash)
		}
	}
}

// assertOpenSSLVerifies: openssl cms verifies each ECDSA module signature
// against the certificate, and refuses it over altered content.
func (f *fleet) assertOpenSSLVerifies(h *host) {
	t := f.t
	dir := t.TempDir()
	for i, m := range f.modules(h) {
		data, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		content, blob := splitModule(t, data)
		os.WriteFile(filepath.Join(dir, "content"), content, 0o644)
		os.WriteFile(filepath.Join(dir, "sig.p7"), blob, 0o644)
		verify := func() error {
			cmd := exec.Command("openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", "sig.p7",
				"-content", "content", "-certfile", h.key.certPEM, "-nointern", "-noverify", "-out", os.DevNull)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if err != nil {
				return &exec.ExitError{Stderr: out}
			}
			return nil
		}
		if err := verify(); err != nil {
			t.Errorf("%s: openssl cms -verify: %s", m, err.(*exec.ExitError).Stderr)
		}
		if i == 0 {
			content[len(content)/2] ^= 1
			os.WriteFile(filepath.Join(dir, "content"), content, 0o644)
			if verify() == nil {
				t.Errorf("openssl cms -verify accepts altered content")
			}
		}
	}
}

// killMidBatch kills the signer's p11-kit server (with its per-connection
// processes) as soon as the hook has signed its first module of a rebuild:
// every module must then carry either DKMS's own signature (untouched) or
// exactly the fleet key's (completely signed), with no temporary file left.
// Repeated until one run was really cut in the middle.
func (f *fleet) killMidBatch(h *host) {
	t := f.t
	mok := f.mokCert(h)
	for try := 1; ; try++ {
		before := logLines(h.log)
		done := make(chan string, 1)
		go func() {
			out, _, err := f.build(h)
			if err != nil {
				out = err.Error() + "\n" + out
			}
			done <- out
		}()
		var out string
	poll:
		for {
			if logLines(h.log) > before {
				f.server.signal(syscall.SIGKILL)
				out = <-done
				break
			}
			select {
			case out = <-done:
				if logLines(h.log) == before {
					t.Fatalf("the build finished without the hook signing anything:\n%s", out)
				}
				f.server.signal(syscall.SIGKILL) // too late: the next try
				break poll
			case <-time.After(time.Millisecond):
			}
		}
		var ours, untouched int
		for _, m := range f.modules(h) {
			switch signedBy(m, h.key.cert, mok) {
			case h.key.cert:
				ours++
			case mok:
				untouched++
			default:
				t.Errorf("%s: neither untouched nor completely signed", m)
			}
		}
		// DKMS 3.2 (Debian 13) keeps the build's Module.symvers beside the
		// modules: DKMS's file, not debris of ours.
		ents, _ := os.ReadDir(f.moduleDir(h))
		var names []string
		for _, e := range ents {
			if e.Name() != "Module.symvers" {
				names = append(names, e.Name())
			}
		}
		if len(names) != nModules {
			t.Errorf("%d files in %s after the kill, want %d modules and nothing else: %s", len(names), f.moduleDir(h), nModules, strings.Join(names, " "))
		}
		t.Logf("try %d: server killed after the first signature: %d modules signed, %d untouched", try, ours, untouched)
		f.startServer()
		if untouched > 0 {
			if !strings.Contains(out, "unreachable") {
				t.Errorf("the build output does not say the signer became unreachable:\n%s", out)
			}
			return
		}
		if try == 5 {
			t.Fatal("5 batches all finished before the kill took effect")
		}
	}
}

func logLines(path string) int {
	b, _ := os.ReadFile(path)
	return bytes.Count(b, []byte("\n"))
}

// throughput measures what one SoftHSM signer gives to N concurrent
// clients (each a `dkms-sign-hook sign --jobs 1` process signing modules
// through its own ssh session, spread over both hosts), and how long a
// host waits meanwhile to sign its package's modules (`sign --dkms`, the
// hook's work). It logs the figures; it asserts only that every signature
// was made.
func (f *fleet) throughput(k *fleetKey, perClient int) {
	t := f.t
	f.baseline(k, perClient)
	for _, n := range []int{1, 2, 4, 8} {
		type client struct {
			h     *host
			files []string
		}
		var clients []client
		for i := 0; i < n; i++ {
			h := f.hosts[i%len(f.hosts)]
			dir := filepath.Join(h.dir, "bench", strings.Repeat("c", i+1))
			os.MkdirAll(dir, 0o700)
			src, err := os.ReadFile(f.modules(h)[0])
			if err != nil {
				t.Fatal(err)
			}
			var files []string
			for j := 0; j < perClient; j++ {
				p := filepath.Join(dir, fmt.Sprintf("m%03d.ko", j))
				os.WriteFile(p, src, 0o644)
				if _, err := sign.StripFile(p); err != nil {
					t.Fatal(err)
				}
				files = append(files, p)
			}
			clients = append(clients, client{h, files})
		}
		// The waiting host's package: back to DKMS's own signature.
		for _, m := range f.modules(f.hosts[0]) {
			sign.StripFile(m)
		}
		uri := "pkcs11:token=" + tokenLabel + ";object=" + k.label + "?module-path=" + keys.P11KitClient()
		env := []string{"P11_KIT_SERVER_ADDRESS=unix:path=" + hostSocket, "KBUILD_SIGN_PIN=" + userPIN}
		var wg sync.WaitGroup
		errs := make([]error, n)
		start := time.Now()
		for i, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				args := append([]string{f.bin, "sign", "--jobs", "1", "--hash", "sha256", "--key", uri, "--cert", k.certDER}, c.files...)
				if out, err := c.h.try(env, args...); err != nil {
					errs[i] = fmt.Errorf("%s: %v\n%s", c.h.name, err, out)
				}
			}()
		}
		time.Sleep(500 * time.Millisecond) // the clients are signing
		hs := time.Now()
		hout, herr := f.tool(f.hosts[0], "sign", "--dkms", "--config", f.hosts[0].confDefault, "--kernel", f.kver, pkg)
		hookWait := time.Since(hs)
		wg.Wait()
		wall := time.Since(start)
		for _, err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		if herr != nil {
			t.Errorf("sign --dkms under load: %v\n%s", herr, hout)
		}
		total := n * perClient
		t.Logf("%s: %d clients x %d modules = %d signatures in %v: %.1f signatures/s; meanwhile host1 signed its %d-module build in %v",
			k.label, n, perClient, total, wall.Round(time.Millisecond), float64(total)/wall.Seconds(), nModules, hookWait.Round(time.Millisecond))
		for _, c := range clients {
			for _, p := range c.files {
				if signedBy(p, k.cert) == nil {
					t.Errorf("%s: not signed", p)
				}
			}
		}
	}
}

// baseline: the same work on the signer itself, one client, with the key
// as a PEM file and with SoftHSM loaded directly: what the remoting costs.
func (f *fleet) baseline(k *fleetKey, perClient int) {
	t := f.t
	src, err := os.ReadFile(f.modules(f.hosts[0])[0])
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(f.signerDir, "bench")
	os.MkdirAll(dir, 0o700)
	for _, c := range []struct{ name, key string }{
		{"PEM key", k.pem},
		{"SoftHSM directly", "pkcs11:token=" + tokenLabel + ";object=" + k.label + "?module-path=/usr/lib/softhsm/libsofthsm2.so"},
	} {
		var files []string
		for j := 0; j < perClient; j++ {
			p := filepath.Join(dir, fmt.Sprintf("m%03d.ko", j))
			os.WriteFile(p, src, 0o644)
			sign.StripFile(p)
			files = append(files, p)
		}
		start := time.Now()
		args := append([]string{f.bin, "sign", "--jobs", "1", "--hash", "sha256", "--key", c.key, "--cert", k.certDER}, files...)
		if out, err := f.signer.try([]string{"KBUILD_SIGN_PIN=" + userPIN}, args...); err != nil {
			t.Errorf("baseline %s: %v\n%s", c.name, err, out)
		}
		took := time.Since(start)
		t.Logf("%s: on the signer itself, %s, 1 client x %d modules: %v: %.1f signatures/s", k.label, c.name, perClient, took.Round(time.Millisecond), float64(perClient)/took.Seconds())
	}
}

// assertTokenStatus: `status` says whether the token is reachable, and
// through which server.
func (f *fleet) assertTokenStatus(h *host, reachable bool) {
	t := f.t
	out, err := f.tool(h, "status", "--override", f.override)
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	want := "signing token: pkcs11:token=" + tokenLabel + ";object=" + h.key.label + " via p11-kit server unix:path=" + hostSocket + ": "
	if reachable {
		want += "reachable (token \"" + tokenLabel + "\", serial "
	} else {
		want += "UNREACHABLE (each call waits at most " + p11Timeout.String() + ")"
	}
	if !strings.Contains(out, want) {
		t.Errorf("status does not say %q:\n%s", want, out)
	}
}

func (f *fleet) machines() []*machine {
	var out []*machine
	for _, h := range f.hosts {
		out = append(out, h.machine)
	}
	return out
}
