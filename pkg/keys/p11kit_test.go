//go:build cgo

package keys

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
)

func requireP11KitClient(t *testing.T) {
	t.Helper()
	_, err := os.Stat(P11KitClient())
	testenv.Require(t, err == nil, "p11-kit-client.so (apt-get install p11-kit-modules)")
}

// p11KitServer runs `p11-kit server` exporting the shared SoftHSM token on
// a socket in a temporary directory; stop kills it and the p11-kit-remote
// it forks per connection with SIGKILL, leaving the socket file behind (a
// stale socket, as after a crash).
func p11KitServer(t *testing.T) (sock string, stop func()) {
	t.Helper()
	softHSM(t)
	requireP11KitClient(t)
	bin := testenv.LookPath(t, "p11-kit", "p11-kit")
	sock = filepath.Join(t.TempDir(), "p11kit.sock")
	cmd := exec.Command(bin, "server", "-f", "-n", sock, "--provider", SoftHSMModule, "pkcs11:token="+hsmToken)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
		})
	}
	t.Cleanup(stop)
	for i := 0; ; i++ {
		if st, err := os.Stat(sock); err == nil && st.Mode().Type() == os.ModeSocket {
			break
		}
		if i == 100 {
			t.Fatalf("p11-kit server made no socket: %s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return sock, stop
}

// Through p11-kit-client.so and a p11-kit server, with the server's address
// from Options (as the config gives it) and no module named: the token's
// RSA key signs byte-identically to the same key as PEM. Once the server is
// gone, FindToken and Open say ErrTokenUnreachable, and a key opened before
// fails its next signature rather than hanging.
func TestP11KitServer(t *testing.T) {
	h := softHSM(t)
	sock, stop := p11KitServer(t)
	os.Unsetenv(P11KitServerEnv)
	o := Options{Getenv: noEnv, PinFile: h.pinFile, PKCS11Server: sock, PKCS11Timeout: 10 * time.Second}
	tok, err := FindToken(h.rsaURI, o)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Label != hsmToken || tok.Server != "unix:path="+sock || tok.Module != P11KitClient() || tok.Serial == "" {
		t.Errorf("FindToken = %+v", tok)
	}
	if got := os.Getenv(P11KitServerEnv); got != "unix:path="+sock {
		t.Errorf("%s = %q", P11KitServerEnv, got)
	}
	k, err := Open(h.rsaURI, o)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := Open(h.rsaPEM, Options{Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("module bytes"))
	a, err := k.Sign(nil, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Sign(nil, digest[:], crypto.SHA256)
	if !bytes.Equal(a, b) {
		t.Error("signature through p11-kit differs from the PEM key's")
	}

	stop()
	start := time.Now()
	if _, err := k.Sign(nil, digest[:], crypto.SHA256); !errors.Is(err, ErrTokenUnreachable) {
		t.Errorf("sign after the server was killed: err = %v, want ErrTokenUnreachable", err)
	} else {
		t.Logf("sign after the server died (%v): %v", time.Since(start).Round(time.Millisecond), err)
	}
	k.Close()
	for _, f := range []func() error{
		func() error { _, err := FindToken(h.rsaURI, o); return err },
		func() error { _, err := Open(h.rsaURI, o); return err },
	} {
		err := f()
		if !errors.Is(err, ErrTokenUnreachable) {
			t.Errorf("stale socket: err = %v, want ErrTokenUnreachable", err)
		} else if !strings.Contains(err.Error(), sock) {
			t.Errorf("stale socket: %v does not name the server", err)
		}
		assertNoPIN(t, err)
	}
	os.Remove(sock)
	_, err = Open(h.rsaURI, o)
	if !errors.Is(err, ErrTokenUnreachable) || !strings.Contains(err.Error(), "no socket") {
		t.Errorf("no socket: err = %v, want ErrTokenUnreachable saying so", err)
	}
}

// A socket that accepts connections and never answers (a hung server, an
// ssh tunnel whose far end is gone): every call returns ErrTokenUnreachable
// within the timeout; while the call hangs, others fail at once; once the
// far end closes, the module is called again.
func TestP11KitServerHung(t *testing.T) {
	h := softHSM(t)
	requireP11KitClient(t)
	sock := filepath.Join(t.TempDir(), "hung.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never answered
			mu.Unlock()
		}
	}()
	o := Options{Getenv: noEnv, PinFile: h.pinFile, PKCS11Server: sock, PKCS11Timeout: 700 * time.Millisecond}
	start := time.Now()
	_, err = Open(h.rsaURI, o)
	took := time.Since(start)
	if !errors.Is(err, ErrTokenUnreachable) || !strings.Contains(err.Error(), "no answer within 700ms") {
		t.Fatalf("hung server: err = %v, want ErrTokenUnreachable after 700ms", err)
	}
	if took > 5*time.Second {
		t.Errorf("hung server: Open returned after %v, want about 700ms", took)
	}
	t.Logf("hung server: %v after %v", err, took.Round(time.Millisecond))
	start = time.Now()
	_, err = FindToken(h.rsaURI, o)
	if !errors.Is(err, ErrTokenUnreachable) || !strings.Contains(err.Error(), "has not returned") || time.Since(start) > 200*time.Millisecond {
		t.Errorf("while hung: err = %v after %v, want ErrTokenUnreachable at once", err, time.Since(start))
	}
	// The far end goes away: the blocked call returns, and the next call
	// reaches the module again (and finds nobody answering properly).
	l.Close()
	mu.Lock()
	for _, c := range conns {
		c.Close()
	}
	mu.Unlock()
	os.Remove(sock)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err = FindToken(h.rsaURI, o)
		if err != nil && !strings.Contains(err.Error(), "has not returned") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the blocked call never came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !errors.Is(err, ErrTokenUnreachable) || !strings.Contains(err.Error(), "no socket") {
		t.Errorf("after the far end closed: err = %v", err)
	}
}

func TestParseP11KitServer(t *testing.T) {
	for in, want := range map[string]string{
		"/run/dkms-sign-hook/signer.sock": "unix:path=/run/dkms-sign-hook/signer.sock",
		"/run//x/../signer.sock":          "unix:path=/run/signer.sock",
		"unix:path=/run/p11-kit/pkcs11":   "unix:path=/run/p11-kit/pkcs11",
		"vsock:cid=3;port=9000":           "vsock:cid=3;port=9000",
		"relative.sock":                   "",
		"unix:path=rel":                   "",
		"tcp:host=signer":                 "",
		"":                                "",
		"/run/a;b":                        "",
		"ssh://signer/run/dkms-sign-hook/p11kit.so": "",
	} {
		got, err := ParseP11KitServer(in)
		if got != want || (err == nil) != (want != "") {
			t.Errorf("ParseP11KitServer(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
