package kernel

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
)

// DefaultCache is where the kernel is built when DKMS_SIGN_HOOK_KERNEL_CACHE
// is unset. It is outside the checkout so that a clean clone reuses it.
const DefaultCache = "/var/cache/dkms-sign-hook-test"

// SourceTarball is Debian's linux-source-6.12 kernel source.
const SourceTarball = "/usr/src/linux-source-6.12.tar.xz"

// variants are the kernels built, one per in-kernel module decompression
// format (CONFIG_MODULE_COMPRESS_*); they differ only in that choice.
var variants = []string{"zstd", "xz", "gzip"}

// testKernel is the cached kernel build and the test keys.
type testKernel struct {
	Dir   string // CACHE/kernel-<key>
	Tree  string // configured, built source tree: make -C Tree M=... modules
	Certs string // CACHE/certs: <name>.key (0600) and <name>.crt
}

// BzImage returns the kernel image for a decompression variant.
func (k *testKernel) BzImage(variant string) string {
	return filepath.Join(k.Dir, "bzImage-"+variant)
}

// Key and Cert return the paths of a test key and its certificate. The
// trusted ones are rsa2048, rsa4096, p256 and p384 (made by openssl) and
// keygen-rsa4096 and keygen-p384 (made by `dkms-sign-hook keygen`, in its
// own file layout); attacker is not trusted; dkms-mok is made like Debian's
// dkms makes /var/lib/dkms/mok.key (DER cert dkms-mok.pub) and is not
// trusted either.
func (k *testKernel) Key(name string) string {
	if dir, ok := k.keygenDir(name); ok {
		return filepath.Join(dir, "signing_key.pem")
	}
	return filepath.Join(k.Certs, name+".key")
}
func (k *testKernel) Cert(name string) string {
	if dir, ok := k.keygenDir(name); ok {
		return filepath.Join(dir, "signing_key.x509") // PEM, as keygen names it
	}
	if name == "dkms-mok" {
		return filepath.Join(k.Certs, "dkms-mok.pub")
	}
	return filepath.Join(k.Certs, name+".crt")
}

// CertDER returns the DER certificate keygen wrote next to a keygen key
// (the form mokutil --import takes).
func (k *testKernel) CertDER(name string) string {
	dir, _ := k.keygenDir(name)
	return filepath.Join(dir, "signing_key.der")
}

// keygenDir returns the directory `dkms-sign-hook keygen --out` made for a
// keygen-<name> key (CACHE/certs/keygen/<name>).
func (k *testKernel) keygenDir(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, "keygen-")
	return filepath.Join(k.Certs, "keygen", rest), ok
}

func cacheDir() string {
	if d := os.Getenv("DKMS_SIGN_HOOK_KERNEL_CACHE"); d != "" {
		return d
	}
	return DefaultCache
}

// requireTools skips (fails under CI) unless everything the test runs exists.
func requireTools(t *testing.T) {
	t.Helper()
	for _, tool := range []struct{ name, pkg string }{
		{"qemu-system-x86_64", "qemu-system-x86"},
		{"make", "build-essential"},
		{"gcc", "build-essential"},
		{"bc", "bc"},
		{"bison", "bison"},
		{"flex", "flex"},
		{"openssl", "openssl"},
		{"flock", "util-linux"},
		{"kmod", "kmod"},
		{"xz", "xz-utils"},
		{"zstd", "zstd"},
		{"gzip", "gzip"},
		{"dkms", "dkms"},
		{"unshare", "util-linux"},
		{"softhsm2-util", "softhsm2"},
	} {
		testenv.LookPath(t, tool.name, tool.pkg)
	}
	_, err := os.Stat(SourceTarball)
	testenv.Require(t, err == nil, SourceTarball+" (apt-get install linux-source-6.12)")
	_, err = os.Stat(busybox)
	testenv.Require(t, err == nil, busybox+" (apt-get install busybox-static)")
	_, err = os.Stat(softHSMModule)
	testenv.Require(t, err == nil, softHSMModule+" (apt-get install softhsm2)")
	testenv.RequireSignFile(t)
	// dkms build, even into a tree of its own, wants root.
	testenv.RequireRoot(t)
	// gcc -static needs libc.a.
	_, err = os.Stat("/usr/lib/x86_64-linux-gnu/libc.a")
	testenv.Require(t, err == nil, "libc.a (apt-get install libc6-dev)")
}

// buildKernel returns the cached kernel, building it first when the cache is
// cold (3-9 minutes on 2 cores for the three variants). tool is the built
// dkms-sign-hook, whose keygen makes two of the trusted keys on a cold cache.
func buildKernel(t *testing.T, tool string) *testKernel {
	t.Helper()
	cache := cacheDir()
	lock, err := os.OpenFile(filepath.Join(cache, "lock"), os.O_CREATE|os.O_WRONLY, 0o644)
	if os.IsNotExist(err) {
		if err = os.MkdirAll(cache, 0o755); err == nil {
			lock, err = os.OpenFile(filepath.Join(cache, "lock"), os.O_CREATE|os.O_WRONLY, 0o644)
		}
	}
	testenv.Require(t, err == nil, fmt.Sprintf("a writable kernel cache (%v): run as root or set DKMS_SIGN_HOOK_KERNEL_CACHE", err))
	lock.Close()
	dir := runBuildScript(t, "build-kernel.sh", cache, tool, SourceTarball)
	k := &testKernel{Dir: dir, Tree: filepath.Join(dir, "src"), Certs: filepath.Join(cache, "certs")}
	// CACHE/current points at the newest kernel, for building modules (or
	// running dkms build --kernelsourcedir) against it by hand.
	tmp := filepath.Join(cache, "current.tmp")
	os.Remove(tmp)
	if err := os.Symlink(filepath.Base(dir), tmp); err == nil {
		os.Rename(tmp, filepath.Join(cache, "current"))
	}
	return k
}

// runBuildScript runs a kernel build script of this directory with args,
// logs its own "<script>:" lines and how long it took, and returns the
// directory it printed last.
func runBuildScript(t *testing.T, name string, args ...string) string {
	t.Helper()
	script, err := filepath.Abs(name)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 75*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, testenv.Tail(stderr.String(), 60))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	dir := lines[len(lines)-1]
	if d := time.Since(start); d > time.Minute {
		t.Logf("%s built %s in %s", name, dir, d.Round(time.Second))
	}
	for _, l := range strings.Split(stderr.String(), "\n") {
		if strings.HasPrefix(l, name+":") {
			t.Log(l)
		}
	}
	return dir
}
