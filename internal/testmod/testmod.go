// Package testmod provides what the tests sign: real kernel modules taken
// from Debian's linux-image package, synthetic ELF edge cases, and keys and
// certificates made by the real openssl.
package testmod

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
)

// CacheDir holds downloads and builds shared by test runs; outside the checkout.
func CacheDir() string {
	if d := os.Getenv("DKMS_SIGN_HOOK_TEST_CACHE"); d != "" {
		return d
	}
	return "/var/cache/dkms-sign-hook-test"
}

// realModules are taken from the linux-image package: small, medium and one
// large module, all signed by Debian's key.
var realModules = []string{
	"kernel/fs/fat/vfat.ko",
	"kernel/fs/fat/fat.ko",
	"kernel/lib/crc-itu-t.ko",
	"kernel/drivers/net/dummy.ko",
	"kernel/fs/btrfs/btrfs.ko",
}

var realOnce struct {
	sync.Once
	dir string
	err error
}

// Real returns paths of real modules, as Debian shipped them (signed by
// Debian). Copy before modifying. The package is fetched with apt-get
// download on first use and cached.
func Real(t testing.TB) []string {
	t.Helper()
	dir := realDir(t)
	var out []string
	for _, m := range realModules {
		out = append(out, filepath.Join(dir, filepath.Base(m)))
	}
	return out
}

// RealNamed returns the path of one cached real module, e.g. "vfat.ko".
func RealNamed(t testing.TB, name string) string {
	t.Helper()
	return filepath.Join(realDir(t), name)
}

// TryReal returns the path of one cached real module, or "" and the reason
// it is not available, for callers that decide themselves what to do.
func TryReal(name string) (string, error) {
	realOnce.Do(func() { realOnce.dir, realOnce.err = extractReal() })
	if realOnce.err != nil {
		return "", realOnce.err
	}
	return filepath.Join(realOnce.dir, name), nil
}

func realDir(t testing.TB) string {
	t.Helper()
	realOnce.Do(func() { realOnce.dir, realOnce.err = extractReal() })
	if realOnce.err != nil {
		testenv.Require(t, false, "real modules from Debian's linux-image package: "+realOnce.err.Error())
	}
	return realOnce.dir
}

// headersVersion is the kernel version of the installed linux-headers-amd64.
func headersVersion() (string, error) {
	matches, _ := filepath.Glob("/usr/src/linux-headers-*-amd64")
	if len(matches) == 0 {
		return "", fmt.Errorf("no /usr/src/linux-headers-*-amd64 (apt-get install linux-headers-amd64)")
	}
	sort.Strings(matches)
	return strings.TrimPrefix(filepath.Base(matches[len(matches)-1]), "linux-headers-"), nil
}

// RealEnv names a directory holding the real modules (vfat.ko, fat.ko,
// crc-itu-t.ko, dummy.ko, btrfs.ko) to use instead of extracting them:
// test/generations passes the host's into other Debian releases, so every
// release signs the same modules.
const RealEnv = "DKMS_SIGN_HOOK_REAL_MODULES"

func extractReal() (string, error) {
	if dir := os.Getenv(RealEnv); dir != "" {
		for _, m := range realModules {
			if _, err := os.Stat(filepath.Join(dir, filepath.Base(m))); err != nil {
				return "", fmt.Errorf("$%s: %w", RealEnv, err)
			}
		}
		return dir, nil
	}
	kver, err := headersVersion()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(CacheDir(), "modules-"+kver)
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil {
		return dir, nil
	}
	debs := filepath.Join(CacheDir(), "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return "", err
	}
	pkg := "linux-image-" + kver
	glob := filepath.Join(debs, pkg+"_*.deb")
	if m, _ := filepath.Glob(glob); len(m) == 0 {
		cmd := exec.Command("apt-get", "download", pkg)
		cmd.Dir = debs
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("apt-get download %s: %v: %s", pkg, err, out)
		}
	}
	m, _ := filepath.Glob(glob)
	if len(m) == 0 {
		return "", fmt.Errorf("no %s", glob)
	}
	tmp, err := os.MkdirTemp(CacheDir(), "extract-*")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	members, err := moduleMembers(m[0], kver)
	if err != nil {
		return "", err
	}
	script := fmt.Sprintf("dpkg-deb --fsys-tarfile %q | tar -x -C %q %s", m[0], tmp, strings.Join(members, " "))
	if out, err := exec.Command("sh", "-c", script).CombinedOutput(); err != nil {
		return "", fmt.Errorf("extract modules: %v: %s", err, out)
	}
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for _, mod := range members {
		p := filepath.Join(tmp, mod)
		if tool, ok := decompressors[filepath.Ext(mod)]; ok {
			// Signed, then compressed: the module as it was signed.
			if out, err := exec.Command(tool, "-d", "-q", p).CombinedOutput(); err != nil {
				return "", fmt.Errorf("%s -d %s: %v: %s", tool, mod, err, out)
			}
			p = strings.TrimSuffix(p, filepath.Ext(p))
		}
		if err := os.Rename(p, filepath.Join(dir, filepath.Base(p))); err != nil {
			return "", err
		}
	}
	return dir, os.WriteFile(filepath.Join(dir, ".complete"), nil, 0o644)
}

// decompressors undo the compression a release applies to its packaged
// modules (Debian 13 ships .ko.xz), by file extension.
var decompressors = map[string]string{".xz": "xz", ".zst": "zstd", ".gz": "gzip"}

// moduleMembers finds realModules in the linux-image package deb: under
// ./lib/modules or ./usr/lib/modules (Debian 13 has merged /usr), plain or
// compressed.
func moduleMembers(deb, kver string) ([]string, error) {
	out, err := exec.Command("sh", "-c", fmt.Sprintf("dpkg-deb --fsys-tarfile %q | tar -t", deb)).Output()
	if err != nil {
		return nil, fmt.Errorf("list %s: %v", deb, err)
	}
	names := strings.Split(string(out), "\n")
	var members []string
	for _, mod := range realModules {
		found := ""
		for _, n := range names {
			stem := strings.TrimSuffix(n, filepath.Ext(n))
			if strings.HasSuffix(n, "/modules/"+kver+"/"+mod) ||
				decompressors[filepath.Ext(n)] != "" && strings.HasSuffix(stem, "/modules/"+kver+"/"+mod) {
				found = n
				break
			}
		}
		if found == "" {
			return nil, fmt.Errorf("%s has no %s (plain or compressed)", deb, mod)
		}
		members = append(members, found)
	}
	return members, nil
}

// ELF returns a minimal ELF64 relocatable object of exactly size bytes
// (at least 64): a header with no sections, then filler. The kernel would not
// load it, but sign-file and the signature format do not care.
func ELF(size int) []byte {
	if size < 64 {
		size = 64
	}
	b := make([]byte, size)
	copy(b, "\x7fELF")
	b[4], b[5], b[6] = 2, 1, 1                // ELFCLASS64, little-endian, EV_CURRENT
	binary.LittleEndian.PutUint16(b[16:], 1)  // ET_REL
	binary.LittleEndian.PutUint16(b[18:], 62) // EM_X86_64
	binary.LittleEndian.PutUint32(b[20:], 1)
	binary.LittleEndian.PutUint16(b[52:], 64) // e_ehsize
	for i := 64; i < size; i++ {
		b[i] = byte(i * 7)
	}
	return b
}

// WriteFile writes data to dir/name and returns the path.
func WriteFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Copy copies src to dir/name and returns the new path.
func Copy(t testing.TB, src, dir, name string) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	return WriteFile(t, dir, name, data)
}

// Run runs a command and fails the test with its output if it fails.
func Run(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.Bytes()
}
