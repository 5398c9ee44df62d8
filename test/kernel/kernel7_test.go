package kernel

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/debroot"
	"github.com/dkms-sign-hook/dkms-sign-hook/internal/initramfs"
	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
)

// Source7Package is sid's Linux source package the ML-DSA kernels are built
// from (Linux 7.x verifies ML-DSA module signatures).
const Source7Package = "linux-source-7.2"

// kernel7 is the cached pair of Linux 7.x kernels of the ML-DSA rows.
type kernel7 struct {
	Dir   string // CACHE/kernel7-<key>
	Tree  string // the built tree: make -C Tree M=... modules
	Certs string // CACHE/certs-7: <name>/signing_key.{pem,x509,der}, made by keygen
}

// kernels7 are the two kernels: "waiver" is built with
// PKCS7_WAIVE_AUTHATTRS_REJECTION_FOR_MLDSA and in-kernel xz, "strict"
// without the waiver (7.x's default) and with in-kernel zstd.
var kernels7 = []string{"waiver", "strict"}

func (k *kernel7) BzImage(name string) string { return filepath.Join(k.Dir, "bzImage-"+name) }
func (k *kernel7) Config(name string) string  { return filepath.Join(k.Dir, "config-"+name) }
func (k *kernel7) Key(name string) string     { return filepath.Join(k.Certs, name, "signing_key.pem") }
func (k *kernel7) Cert(name string) string    { return filepath.Join(k.Certs, name, "signing_key.x509") }

// source7 returns sid's linux-source-7.2 tarball, downloaded through a
// private apt configuration (the host's apt sources are not touched) and
// unpacked once into the cache.
func source7(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(cacheDir(), "src-7")
	if m, _ := filepath.Glob(filepath.Join(dir, "usr/src/linux-source-7.*.tar.xz")); len(m) == 1 {
		return m[0]
	}
	debs := debroot.Download(t, "sid", Source7Package)
	tmp := dir + ".tmp"
	os.RemoveAll(tmp) // plain files only
	debroot.Unpack(t, debs[0], tmp)
	m, _ := filepath.Glob(filepath.Join(tmp, "usr/src/linux-source-7.*.tar.xz"))
	if len(m) != 1 {
		t.Fatalf("%s: no linux-source-7.*.tar.xz in %s (%v)", Source7Package, debs[0], m)
	}
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "usr/src", filepath.Base(m[0]))
}

// buildKernel7 returns the cached 7.x kernels, building them first on a cold
// cache (about 6 minutes each on 2 idle cores).
func buildKernel7(t *testing.T, tool string) *kernel7 {
	t.Helper()
	dir := runBuildScript(t, "build-kernel-7.sh", cacheDir(), tool, source7(t))
	return &kernel7{Dir: dir, Tree: filepath.Join(dir, "src"), Certs: filepath.Join(cacheDir(), "certs-7")}
}

// requireTools7 skips (fails under CI) unless the 7.x rows can run.
func requireTools7(t *testing.T) {
	t.Helper()
	for _, tool := range []struct{ name, pkg string }{
		{"qemu-system-x86_64", "qemu-system-x86"}, {"make", "build-essential"}, {"gcc", "build-essential"},
		{"bc", "bc"}, {"bison", "bison"}, {"flex", "flex"}, {"openssl", "openssl"}, {"flock", "util-linux"},
		{"xz", "xz-utils"}, {"zstd", "zstd"}, {"debootstrap", "debootstrap"}, {"dpkg-deb", "dpkg"},
	} {
		testenv.LookPath(t, tool.name, tool.pkg)
	}
	_, err := os.Stat(busybox)
	testenv.Require(t, err == nil, busybox+" (apt-get install busybox-static)")
	_, err = os.Stat("/usr/lib/x86_64-linux-gnu/libc.a")
	testenv.Require(t, err == nil, "libc.a (apt-get install libc6-dev)")
	testenv.RequireRoot(t)
}

// TestKernel7 builds (or reuses) the two 7.x kernels, boots each with the
// ML-DSA rows, and checks every verdict and that `verify` agrees.
func TestKernel7(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and boots two Linux 7.x kernels; not with -short")
	}
	requireTools7(t)
	tool := testenv.Tool(t)
	k := buildKernel7(t, tool)
	b := newBench7(t, k, tool)
	rows := matrix7()
	type prepared struct {
		row7
		id   int
		path string
		err  error
	}
	all := make([]*prepared, len(rows))
	byKernel := map[string][]load{}
	modules := map[string]map[string]string{}
	for i, r := range rows {
		p := &prepared{row7: r, id: i}
		all[i] = p
		p.path, p.err = r.prepare(b, fmt.Sprintf("%03d-%s", i, strings.ReplaceAll(r.name, "/", "_")))
		if p.err != nil {
			continue
		}
		method := "finit"
		if moduleExt(p.path) != ".ko" {
			method = "finit-compressed"
		}
		addLoad(byKernel, modules, r.kernel, load{id: i, method: method}, p.path)
	}
	results := boot7(t, b, byKernel, modules)
	for _, p := range all {
		t.Run(p.kernel+"/"+p.name, func(t *testing.T) {
			if p.err != nil {
				t.Fatalf("preparing the module: %v", p.err)
			}
			res := results[p.kernel]
			v := res[p.id]
			if v == nil {
				t.Fatalf("no verdict from the %s kernel", p.kernel)
			}
			if v.Err != p.want {
				t.Errorf("the %s kernel: got %q, want %q\nconsole:\n%s", p.kernel, v.Err, p.want, v.Log)
			}
			if p.klog != "" && !strings.Contains(v.Log, p.klog) {
				t.Errorf("the kernel did not log %q\nconsole:\n%s", p.klog, v.Log)
			}
			if v.Exit == 0 && !strings.Contains(v.Log, "dshtest: loaded") {
				t.Errorf("loaded but the module's init did not print\nconsole:\n%s", v.Log)
			}
			// verify, told the kernel's configuration, agrees with the kernel.
			args := []string{"verify", "--kernel-config", k.Config(p.kernel)}
			for _, c := range trusted7 {
				args = append(args, "--cert", k.Cert(c))
			}
			args = append(args, "--cert", filepath.Join(k.Tree, "certs", "signing_key.x509"), p.path)
			out, err := exec.Command(b.tool, args...).CombinedOutput()
			if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() != 1) {
				t.Fatalf("verify: %v\n%s", err, out)
			}
			if (err == nil) != (p.want == OK) {
				t.Errorf("verify says valid=%v, the %s kernel says %q:\n%s", err == nil, p.kernel, v.Err, out)
			}
		})
	}
}

// bench7 is what the 7.x rows need.
type bench7 struct {
	t        *testing.T // the test the rows are prepared in
	k        *kernel7
	tool     string
	dir      string
	unsigned string // dshtest.ko built against the 7.x tree
	finit    string
	// sid is a sid root with 7.2's sign-file (sidSignFile, inside it) and
	// OpenSSL 3.6; sidWork is a scratch directory in it.
	sid         *debroot.Root
	sidSignFile string
	sidWork     string
}

func newBench7(t *testing.T, k *kernel7, tool string) *bench7 {
	t.Helper()
	b := &bench7{t: t, k: k, tool: tool, dir: t.TempDir()}
	b.unsigned, b.finit = buildTestModule(t, k.Tree)
	b.sid = debroot.Get(t, "sid", "openssl", "linux-kbuild-7.2~")
	b.sidSignFile = testenv.KbuildSignFile(t, b.sid.Dir, "7.2")
	b.sidWork, _ = b.sid.TempDir(t, "dsh-kernel7-")
	return b
}

// debianSignFile7 signs a fresh module with 7.2's own sign-file under sid's
// OpenSSL 3.6, in the sid root: for ML-DSA it always adds signed attributes.
func debianSignFile7(key string) func(*bench7, string) (string, error) {
	return func(b *bench7, stem string) (string, error) {
		in := "/tmp/" + filepath.Base(b.sidWork) + "/"
		for src, dst := range map[string]string{b.unsigned: stem + ".ko", b.k.Key(key): stem + ".pem", b.k.Cert(key): stem + ".x509"} {
			data, err := os.ReadFile(src)
			if err != nil {
				return "", err
			}
			if err := os.WriteFile(filepath.Join(b.sidWork, dst), data, 0o600); err != nil {
				return "", err
			}
		}
		if out, err := b.sid.Run(b.t, nil, b.sidSignFile, "sha512", in+stem+".pem", in+stem+".x509", in+stem+".ko"); err != nil {
			return "", fmt.Errorf("7.2 sign-file: %v: %s", err, out)
		}
		data, err := os.ReadFile(filepath.Join(b.sidWork, stem+".ko"))
		if err != nil {
			return "", err
		}
		mod := filepath.Join(b.dir, stem+".ko")
		return mod, os.WriteFile(mod, data, 0o644)
	}
}

// trusted7 are the keys compiled into both 7.x kernels (all made by keygen).
var trusted7 = []string{"rsa4096", "p384", "mldsa44", "mldsa65", "mldsa87"}

// A row7 is one module loaded on one of the 7.x kernels.
type row7 struct {
	name    string
	kernel  string // "waiver" or "strict"
	prepare func(b *bench7, stem string) (string, error)
	want    string // OK or the kernel's error text
	klog    string // a line the kernel must log while loading it
}

// sign7 signs a fresh module with `dkms-sign-hook sign` and extra flags.
func sign7(key, hash string, flags ...string) func(*bench7, string) (string, error) {
	return func(b *bench7, stem string) (string, error) {
		data, err := os.ReadFile(b.unsigned)
		if err != nil {
			return "", err
		}
		mod := filepath.Join(b.dir, stem+".ko")
		if err := os.WriteFile(mod, data, 0o644); err != nil {
			return "", err
		}
		args := append([]string{"sign", "--key", b.k.Key(key), "--cert", b.k.Cert(key), "--hash", hash}, flags...)
		return mod, cmd(b.tool, append(args, mod)...)
	}
}

// then7 edits or compresses the module prepare made.
func then7(prepare func(*bench7, string) (string, error), f func(string) (string, error)) func(*bench7, string) (string, error) {
	return func(b *bench7, stem string) (string, error) {
		mod, err := prepare(b, stem)
		if err != nil {
			return "", err
		}
		return f(mod)
	}
}

func editWith(f func([]byte) ([]byte, error)) func(string) (string, error) {
	return func(mod string) (string, error) { return mod, edit(mod, f) }
}

func compressWith(format string) func(string) (string, error) {
	return func(mod string) (string, error) { return compress(mod, format) }
}

// flipChallenge flips a byte of an ML-DSA signature's challenge c~ (its
// first bytes), leaving it well formed: only the check can refuse it.
func flipChallenge(sigSize int) func([]byte) ([]byte, error) {
	return func(data []byte) ([]byte, error) {
		if _, err := sigLen(data); err != nil {
			return nil, err
		}
		data[len(data)-trailerLen-sigSize+3] ^= 0x01
		return data, nil
	}
}

// matrix7 is the table of the ML-DSA issue: every row is the kernel's answer.
func matrix7() []row7 {
	const waived, rejected = "Waived invalid module sig (has authattrs)", "Invalid module sig (has authattrs)"
	var rows []row7
	for _, l := range []string{"44", "65", "87"} {
		key := "mldsa" + l
		for _, kern := range kernels7 {
			rows = append(rows, row7{name: key + "/default", kernel: kern, prepare: sign7(key, "sha512"), want: OK})
		}
		// The kernel logs the waiver once per boot (pr_warn_once): at the first, ML-DSA-44.
		klog := ""
		if l == "44" {
			klog = waived
		}
		rows = append(rows,
			row7{name: key + "/authattrs", kernel: "waiver", prepare: sign7(key, "sha512", "--authattrs"), want: OK, klog: klog},
			row7{name: key + "/authattrs", kernel: "strict", prepare: sign7(key, "sha512", "--authattrs"), want: keyRejected, klog: rejected})
	}
	mldsa65 := sign7("mldsa65", "sha512")
	rows = append(rows,
		// sign-file's arguments, the framework route's entry point.
		row7{name: "sign-file/mldsa87", kernel: "strict", want: OK, prepare: func(b *bench7, stem string) (string, error) {
			mod := filepath.Join(b.dir, stem+".ko")
			return mod, cmd(b.tool, "sign-file", "sha512", b.k.Key("mldsa87"), b.k.Cert("mldsa87"), b.unsigned, mod)
		}},
		// The kernel's own sign-file (7.2, OpenSSL 3.6) with keygen's ML-DSA key.
		row7{name: "debian-sign-file-7.2/mldsa65", kernel: "waiver", prepare: debianSignFile7("mldsa65"), want: OK},
		row7{name: "debian-sign-file-7.2/mldsa65", kernel: "strict", prepare: debianSignFile7("mldsa65"), want: keyRejected, klog: rejected},
		row7{name: "refused/unsigned", kernel: "strict", want: keyRejected, klog: logUnsigned,
			prepare: func(b *bench7, stem string) (string, error) {
				mod := filepath.Join(b.dir, stem+".ko")
				data, err := os.ReadFile(b.unsigned)
				if err != nil {
					return "", err
				}
				return mod, os.WriteFile(mod, data, 0o644)
			}},
		row7{name: "refused/flipped-code-byte/mldsa65", kernel: "strict", prepare: then7(mldsa65, editWith(flipCode)), want: keyRejected},
		row7{name: "refused/flipped-code-byte/mldsa65-authattrs", kernel: "waiver", prepare: then7(sign7("mldsa65", "sha512", "--authattrs"), editWith(flipCode)), want: keyRejected},
		row7{name: "refused/flipped-signature-byte/mldsa65", kernel: "strict", prepare: then7(mldsa65, editWith(flipChallenge(3309))), want: keyRejected},
		row7{name: "refused/untrusted-mldsa65", kernel: "strict", prepare: sign7("mldsa65-attacker", "sha512"), want: keyRejected, klog: logUnknownKey},
		row7{name: "refused/untrusted-mldsa65", kernel: "waiver", prepare: sign7("mldsa65-attacker", "sha512", "--authattrs"), want: keyRejected, klog: logUnknownKey},
		row7{name: "refused/truncated-signature/mldsa65", kernel: "strict", prepare: then7(mldsa65, editWith(truncateSig)), want: badMessage},
		// RSA and ECDSA still load on 7.x; SHA-1, which this 7.x kernel lacks, does not.
		row7{name: "rsa4096/sha512", kernel: "strict", prepare: sign7("rsa4096", "sha512"), want: OK},
		row7{name: "rsa4096/sha3-256", kernel: "waiver", prepare: sign7("rsa4096", "sha3-256"), want: OK},
		row7{name: "p384/sha384", kernel: "strict", prepare: sign7("p384", "sha384"), want: OK},
		row7{name: "p384/sha512", kernel: "waiver", prepare: sign7("p384", "sha512"), want: OK},
		row7{name: "refused/rsa4096/sha1", kernel: "strict", prepare: sign7("rsa4096", "sha1"), want: keyRejected},
		// In-kernel decompression: xz (CRC32) on the waiver kernel, zstd on the strict one.
		row7{name: "mldsa65/default/ko.xz", kernel: "waiver", prepare: then7(mldsa65, compressWith("xz")), want: OK},
		row7{name: "mldsa44/authattrs/ko.xz", kernel: "waiver", prepare: then7(sign7("mldsa44", "sha512", "--authattrs"), compressWith("xz")), want: OK},
		row7{name: "mldsa87/default/ko.zst", kernel: "strict", prepare: then7(sign7("mldsa87", "sha512"), compressWith("zst")), want: OK},
		row7{name: "refused/mldsa65/flipped/ko.zst", kernel: "strict", prepare: then7(then7(mldsa65, editWith(flipCode)), compressWith("zst")), want: keyRejected},
	)
	return rows
}

// boot7 boots both 7.x kernels, in parallel, each with its loads.
func boot7(t *testing.T, b *bench7, byKernel map[string][]load, modules map[string]map[string]string) map[string]map[int]*initramfs.Verdict {
	t.Helper()
	out := map[string]map[int]*initramfs.Verdict{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, kern := range kernels7 {
		initrd := filepath.Join(b.dir, "initrd-"+kern+".cpio.gz")
		if err := writeInitramfs(initrd, b.finit, "", initScript(byKernel[kern]), modules[kern]); err != nil {
			t.Fatalf("initramfs for %s: %v", kern, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			console, err := boot(context.Background(), b.k.BzImage(kern), initrd)
			mu.Lock()
			defer mu.Unlock()
			out[kern] = initramfs.ParseVerdicts(console)
			t.Logf("booted the 7.x %s kernel with %d modules in %s", kern, len(byKernel[kern]), time.Since(t0).Round(100*time.Millisecond))
			if keep := os.Getenv("DKMS_SIGN_HOOK_KERNEL_CONSOLE"); keep != "" {
				os.WriteFile(filepath.Join(keep, "console-7-"+kern+".log"), []byte(console), 0o644)
			}
			if err != nil {
				t.Errorf("%v\nconsole:\n%s", err, testenv.Tail(console, 80))
			}
		}()
	}
	wg.Wait()
	return out
}
