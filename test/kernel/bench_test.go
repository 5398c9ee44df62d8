package kernel

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
)

// trusted are the openssl-made test keys compiled into the kernel
// (SYSTEM_TRUSTED_KEYS).
var trusted = []string{"rsa2048", "rsa4096", "p256", "p384"}

// keygenTrusted are the keys `dkms-sign-hook keygen` made (defaults, and
// --type ecdsa --curve P-384), also compiled into the kernel.
var keygenTrusted = []string{"keygen-rsa4096", "keygen-p384"}

// hashes are the digests the 6.12 kernel verifies module signatures with.
var hashes = []string{"sha256", "sha384", "sha512", "sha3-256", "sha3-384", "sha3-512"}

// bench is what the rows build their modules from.
type bench struct {
	k        *testKernel
	dir      string // scratch directory for the rows' modules
	unsigned string // dshtest.ko as the kernel build made it (unsigned)
	tool     string // dkms-sign-hook, built from ./cmd/dkms-sign-hook
	signFile string // Debian's sign-file, the reference
	finit    string // static finit_module helper for the initramfs
	have     map[string]bool
	kver     string // cached tree's kernel release, see kernelRelease
	// kmodRoot is a root file system whose kmod the initramfs uses instead of
	// the host's (DKMS_SIGN_HOOK_KMOD_ROOT, e.g. a debootstrap of sid);
	// kmodVersion is that kmod's version (30 on Debian 12).
	kmodRoot    string
	kmodVersion int
	// tokenEnv makes the SoftHSM2 test token visible (token_test.go).
	tokenEnv []string
	tokenErr error
}

// newBench builds the test module against the cached kernel tree and the
// finit_module helper; tool is the built dkms-sign-hook.
func newBench(t *testing.T, k *testKernel, tool string) *bench {
	t.Helper()
	b := &bench{k: k, dir: t.TempDir(), tool: tool, signFile: testenv.RequireSignFile(t), have: map[string]bool{}}
	b.unsigned, b.finit = buildTestModule(t, k.Tree)

	// Our tool's commands.
	for _, c := range []string{"sign", "sign-file", "verify", "hook"} {
		b.have[c] = exec.Command(b.tool, c, "-h").Run() == nil
	}

	// The kmod that the initramfs runs.
	b.kmodRoot = os.Getenv("DKMS_SIGN_HOOK_KMOD_ROOT")
	kv := exec.Command("kmod", "--version")
	if b.kmodRoot != "" {
		kv = exec.Command("chroot", b.kmodRoot, "kmod", "--version")
	}
	out, err := kv.Output()
	if _, err2 := fmt.Sscanf(string(out), "kmod version %d", &b.kmodVersion); err != nil || err2 != nil {
		t.Fatalf("kmod --version: %v %v: %q", err, err2, out)
	}

	return b
}

// buildTestModule builds the test module dshtest.ko against a kernel tree
// and the static finit_module helper the initramfs runs.
func buildTestModule(t *testing.T, tree string) (unsigned, finit string) {
	t.Helper()
	bin := t.TempDir()
	mod := filepath.Join(bin, "mod")
	if err := os.CopyFS(mod, os.DirFS("testdata/mod")); err != nil {
		t.Fatal(err)
	}
	run(t, "make", "-s", "-C", tree, "M="+mod, "modules")
	unsigned = filepath.Join(mod, "dshtest.ko")
	if data, err := os.ReadFile(unsigned); err != nil || bytes.HasSuffix(data, []byte(sigMagic)) {
		t.Fatalf("dshtest.ko missing or already signed (%v)", err)
	}
	finit = filepath.Join(bin, "finit")
	run(t, "gcc", "-static", "-O2", "-Wall", "-o", finit, "testdata/finit.c")
	return unsigned, finit
}

// run runs a command, failing t with its output if it fails.
func run(t *testing.T, name string, args ...string) {
	t.Helper()
	testenv.Run(t, exec.Command(name, args...))
}

// cmd runs a command, returning an error carrying its output.
func cmd(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", filepath.Base(name), strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// fresh copies the unsigned module to <dir>/<name>.ko.
func (b *bench) fresh(name string) (string, error) {
	data, err := os.ReadFile(b.unsigned)
	if err != nil {
		return "", err
	}
	p := filepath.Join(b.dir, strings.ReplaceAll(name, "/", "_")+".ko")
	return p, os.WriteFile(p, data, 0o644)
}

// sign signs mod in place with `dkms-sign-hook sign`.
func (b *bench) sign(mod, key, hash string, skid bool) error {
	if !b.have["sign"] {
		return b.debianSign(mod, key, hash, skid)
	}
	args := []string{"sign", "--key", b.k.Key(key), "--cert", b.k.Cert(key), "--hash", hash}
	if skid {
		args = append(args, "--keyid")
	}
	return cmd(b.tool, append(args, mod)...)
}

// signWith signs mod in place with `dkms-sign-hook sign` and explicit paths.
func (b *bench) signWith(mod, key, cert, hash string) error {
	return cmd(b.tool, "sign", "--key", key, "--cert", cert, "--hash", hash, mod)
}

// signFileCmd signs mod in place with `dkms-sign-hook sign-file`, the
// drop-in for the kernel's scripts/sign-file.
func (b *bench) signFileCmd(mod, key, hash string, skid bool) error {
	if !b.have["sign-file"] {
		return b.debianSign(mod, key, hash, skid)
	}
	args := []string{"sign-file"}
	if skid {
		args = append(args, "-k")
	}
	return cmd(b.tool, append(args, hash, b.k.Key(key), b.k.Cert(key), mod)...)
}

// debianSign signs mod with Debian's sign-file; it APPENDS a signature to
// an already signed module.
func (b *bench) debianSign(mod, key, hash string, skid bool) error {
	var args []string
	if skid {
		args = append(args, "-k")
	}
	return cmd(b.signFile, append(args, hash, b.k.Key(key), b.k.Cert(key), mod)...)
}

// compress compresses mod like the kernel's build does (for xz, with the
// options in-kernel decompression needs) and returns the new path.
func compress(mod, format string) (string, error) {
	switch format {
	case "xz":
		return mod + ".xz", cmd("xz", "-f", "--check=crc32", "--lzma2=dict=1MiB", mod)
	case "xz-crc64": // plain xz: CRC64, which in-kernel decompression refuses
		return mod + ".xz", cmd("xz", "-f", mod)
	case "zst":
		return mod + ".zst", cmd("zstd", "-q", "-f", "--rm", mod)
	case "gz":
		return mod + ".gz", cmd("gzip", "-n", "-f", mod)
	}
	return "", fmt.Errorf("unknown compression %q", format)
}

// The module signature trailer (struct module_signature + magic).
const (
	sigMagic   = "~Module signature appended~\n"
	trailerLen = 12 + len(sigMagic)
)

// edit rewrites a file through f.
func edit(path string, f func([]byte) ([]byte, error)) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if data, err = f(data); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, data, 0o644)
}

// sigLen returns the length of the last appended signature blob.
func sigLen(data []byte) (int, error) {
	if !bytes.HasSuffix(data, []byte(sigMagic)) || len(data) < trailerLen {
		return 0, fmt.Errorf("not signed")
	}
	n := int(binary.BigEndian.Uint32(data[len(data)-len(sigMagic)-4:]))
	if n > len(data)-trailerLen {
		return 0, fmt.Errorf("sig_len %d too large", n)
	}
	return n, nil
}

// flipCode flips one byte in the middle of the signed module code.
func flipCode(data []byte) ([]byte, error) {
	n, err := sigLen(data)
	if err != nil {
		return nil, err
	}
	data[(len(data)-trailerLen-n)/2] ^= 0x01
	return data, nil
}

// flipSig flips one byte of the signature value (the end of the PKCS#7 blob).
func flipSig(data []byte) ([]byte, error) {
	if _, err := sigLen(data); err != nil {
		return nil, err
	}
	data[len(data)-trailerLen-8] ^= 0x01
	return data, nil
}

// truncateSig drops the last 16 bytes of the PKCS#7 blob and shrinks sig_len
// to match: a consistent trailer around a cut-off DER structure.
func truncateSig(data []byte) ([]byte, error) {
	n, err := sigLen(data)
	if err != nil {
		return nil, err
	}
	end := len(data) - trailerLen
	trailer := append([]byte(nil), data[end:]...)
	binary.BigEndian.PutUint32(trailer[8:12], uint32(n-16))
	return append(data[:end-16], trailer...), nil
}
