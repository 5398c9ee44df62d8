package debroot

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// ToolDir is where BuildTool keeps its builds inside a root.
const ToolDir = "/opt/dkms-sign-hook-test"

// BuildPkgs are the packages a root needs for BuildTool (cgo: the tool
// links the root's glibc and, for PKCS#11, dlopens the root's modules).
var BuildPkgs = []string{"gcc", "libc6-dev"}

// DKMSPkgs make a root what a DKMS user with this tool has: dkms (with make
// and gcc), the kernel headers (which pull the release's linux-kbuild-*
// with sign-file), kmod, openssl, the compressors, BuildPkgs, and debhelper
// to build the .deb. test/generations and this package's own test use this
// set, so they share one cached root per release.
var DKMSPkgs = append([]string{"dkms", "kmod", "openssl", "linux-headers-amd64", "make", "xz-utils", "zstd", "gzip", "debhelper"},
	BuildPkgs...)

// BuildTool returns the path, inside the root, of dkms-sign-hook built in
// the root with the host's Go from a copy of this checkout, with cgo, so it
// links that release's glibc (the way `make build` or the .deb build on that
// release does). Builds are cached in the root by a hash of the checkout's
// files and the Go version. The root needs BuildPkgs.
func (r *Root) BuildTool(t testing.TB) string {
	t.Helper()
	repo := repoRoot(t)
	files := repoFiles(t, repo)
	hash := treeHash(t, repo, files)
	bin := filepath.Join(ToolDir, hash, "dkms-sign-hook")
	if _, err := os.Stat(filepath.Join(r.Dir, bin)); err == nil {
		return bin
	}
	if _, err := os.Stat(filepath.Join(r.Dir, "usr/bin/gcc")); err != nil {
		t.Fatalf("debroot: BuildTool: the %s has no gcc: Get it with debroot.BuildPkgs (%s)", r, strings.Join(BuildPkgs, " "))
	}
	src := filepath.Join(ToolDir, "src-"+hash)
	hostSrc := filepath.Join(r.Dir, src)
	os.RemoveAll(hostSrc) // a copy of plain files, nothing is mounted below
	copyFiles(t, repo, files, hostSrc)
	tmp := bin + ".tmp"
	script := `set -e; cd "$1"; mkdir -p "$(dirname "$2")"; go build -trimpath -o "$2" ./cmd/dkms-sign-hook; mv "$2" "$3"`
	out, err := r.Run(t, []string{"CGO_ENABLED=1"}, "/bin/sh", "-c", script, "build", src, tmp, bin)
	if err != nil {
		t.Fatalf("debroot: go build in the %s: %v\n%s", r, err, tail(out, 40))
	}
	os.RemoveAll(hostSrc)
	return bin
}

// CopyCheckout copies this checkout's files (as `make deb` takes them:
// tracked, and untracked but not ignored) to dir inside the root.
func (r *Root) CopyCheckout(t testing.TB, dir string) {
	t.Helper()
	repo := repoRoot(t)
	copyFiles(t, repo, repoFiles(t, repo), filepath.Join(r.Dir, dir))
}

func copyFiles(t testing.TB, from string, files []string, to string) {
	t.Helper()
	for _, f := range files {
		if err := copyFile(filepath.Join(from, f), filepath.Join(to, f)); err != nil {
			t.Fatalf("debroot: copy the checkout into the root: %v", err)
		}
	}
}

// repoRoot finds the checkout: the nearest directory above the working
// directory with this module's go.mod.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(data, []byte("module github.com/dkms-sign-hook/dkms-sign-hook\n")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("debroot: BuildTool: no dkms-sign-hook checkout above the working directory")
		}
		dir = parent
	}
}

// repoFiles lists the checkout's files as `make deb` does: tracked and
// untracked-but-not-ignored (or every file but .git without git).
func repoFiles(t testing.TB, repo string) []string {
	t.Helper()
	cmd := exec.Command("git", "-C", repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	if out, err := cmd.Output(); err == nil {
		var files []string
		for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
			if st, err := os.Lstat(filepath.Join(repo, f)); err == nil && st.Mode().IsRegular() {
				files = append(files, f) // deleted but tracked files are skipped
			}
		}
		return files
	}
	var files []string
	err := filepath.WalkDir(repo, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(repo, p)
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("debroot: list the checkout: %v", err)
	}
	return files
}

// treeHash hashes the files' names, modes and contents and the Go version.
func treeHash(t testing.TB, repo string, files []string) string {
	t.Helper()
	h := sha256.New()
	io.WriteString(h, runtime.Version()+"\x00")
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(repo, f))
		if err != nil {
			t.Fatalf("debroot: %v", err)
		}
		st, _ := os.Stat(filepath.Join(repo, f))
		sum := sha256.Sum256(data)
		io.WriteString(h, f+"\x00"+st.Mode().String()+"\x00"+hex.EncodeToString(sum[:])+"\x00")
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func copyFile(from, to string) error {
	st, err := os.Stat(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, data, st.Mode().Perm())
}
