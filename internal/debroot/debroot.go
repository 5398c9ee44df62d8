// Package debroot gives tests real Debian systems of other releases: cached
// debootstrap roots (bullseye, bookworm, trixie, sid) with chosen packages
// installed, commands run in them, the tool built inside them, and .deb
// files fetched from a release's archive without touching the host's apt.
//
// Safety: a root is only ever entered through Run, which mounts /proc, /sys,
// a tmpfs /dev and the host's Go inside a private mount (and PID) namespace
// that dies with the command, so no mount outlives it or reaches the host.
// A root is only removed after /proc/self/mountinfo shows nothing mounted
// below it, with rm --one-file-system.
package debroot

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
)

// DefaultCache is where roots and downloads are kept, beside test/kernel's
// cached kernel; DKMS_SIGN_HOOK_ROOT_CACHE overrides it.
const DefaultCache = "/var/cache/dkms-sign-hook-test/roots"

// MaxAge is how long a root is used before it is rebuilt from the archive.
const MaxAge = 7 * 24 * time.Hour

// Mirror is the Debian archive roots and downloads come from.
const Mirror = "http://deb.debian.org/debian"

// SecurityMirror is the archive of the stable releases' security updates.
const SecurityMirror = "http://deb.debian.org/debian-security"

// layout is part of a root's cache key: bump it when roots are made
// differently (sources, configuration), so old roots are not reused.
const layout = "2"

// Keyring verifies the archive (package debian-archive-keyring).
const Keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

// Releases are the releases a root can be made of.
var Releases = []string{"bullseye", "bookworm", "trixie", "sid"}

// Root is one cached Debian system.
type Root struct {
	Dir     string // the root's directory on the host
	Release string // bullseye, bookworm, trixie or sid
	Pkgs    []string
}

// stamp is written into a finished root, last.
type stamp struct {
	Release string    `json:"release"`
	Pkgs    []string  `json:"packages"`
	Created time.Time `json:"created"`
}

const stampName = ".debroot.json"

// CacheDir returns the directory roots are cached in.
func CacheDir() string {
	if d := os.Getenv("DKMS_SIGN_HOOK_ROOT_CACHE"); d != "" {
		return d
	}
	return DefaultCache
}

// require skips (fails under CI) unless the host can make and enter roots.
func require(t testing.TB) {
	t.Helper()
	if testing.Short() && !testenv.InCI() {
		t.Skip("skipped in -short mode: builds and enters Debian roots")
	}
	testenv.RequireRoot(t)
	testenv.LookPath(t, "debootstrap", "debootstrap")
	testenv.LookPath(t, "unshare", "util-linux")
	testenv.LookPath(t, "dpkg-deb", "dpkg")
	testenv.LookPath(t, "apt-get", "apt")
	_, err := os.Stat(Keyring)
	testenv.Require(t, err == nil, Keyring+" (apt-get install debian-archive-keyring)")
}

func checkRelease(t testing.TB, release string) {
	t.Helper()
	if !slices.Contains(Releases, release) {
		t.Fatalf("debroot: unknown release %q (want one of %s)", release, strings.Join(Releases, ", "))
	}
}

// Get returns the cached root of release with pkgs installed (and their
// dependencies, no recommends; a name ending in ~ stands for the newest
// package whose name starts with the rest, and any other name must be a
// package of the release), making it first when it is missing or older
// than MaxAge. The root stays locked shared until t ends, so no other test
// process replaces it while t uses it.
func Get(t testing.TB, release string, pkgs ...string) *Root {
	t.Helper()
	require(t)
	checkRelease(t, release)
	pkgs = slices.Compact(slices.Sorted(slices.Values(pkgs)))
	sum := sha256.Sum256([]byte(layout + "\n" + release + "\n" + strings.Join(pkgs, "\n")))
	name := release + "-" + hex.EncodeToString(sum[:6])
	cache := CacheDir()
	if err := os.MkdirAll(filepath.Join(cache, "archives", release, "partial"), 0o755); err != nil {
		t.Fatalf("debroot: %v", err)
	}
	sweep(t)
	r := &Root{Dir: filepath.Join(cache, name), Release: release, Pkgs: pkgs}
	lock := openLock(t, filepath.Join(cache, name+".lock"))
	t.Cleanup(func() { lock.Close() })
	flock(t, lock, syscall.LOCK_SH)
	if r.fresh() {
		return r
	}
	// Rebuild under the exclusive lock (waits for the root's other users).
	flock(t, lock, syscall.LOCK_UN)
	flock(t, lock, syscall.LOCK_EX)
	if !r.fresh() {
		start := time.Now()
		r.build(t)
		t.Logf("debroot: made the %s root %s (%s) in %v", release, r.Dir, strings.Join(pkgs, " "), time.Since(start).Round(time.Second))
	}
	flock(t, lock, syscall.LOCK_SH)
	return r
}

func openLock(t testing.TB, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("debroot: lock: %v", err)
	}
	return f
}

func flock(t testing.TB, f *os.File, how int) {
	t.Helper()
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		t.Fatalf("debroot: lock %s: %v", f.Name(), err)
	}
}

// fresh reports whether the root is complete and younger than MaxAge.
func (r *Root) fresh() bool {
	data, err := os.ReadFile(filepath.Join(r.Dir, stampName))
	if err != nil {
		return false
	}
	var s stamp
	if json.Unmarshal(data, &s) != nil || s.Release != r.Release || !slices.Equal(s.Pkgs, r.Pkgs) {
		return false
	}
	return time.Since(s.Created) < MaxAge
}

// build makes the root in a temporary directory beside its place, installs
// the packages, and renames it into place (the old one, if any, is removed).
func (r *Root) build(t testing.TB) {
	t.Helper()
	tmp, err := os.MkdirTemp(filepath.Dir(r.Dir), ".build-"+filepath.Base(r.Dir)+"-")
	if err != nil {
		t.Fatalf("debroot: %v", err)
	}
	os.Chmod(tmp, 0o755) // a root's / (MkdirTemp made it 0700)
	ok := false
	defer func() {
		if !ok {
			removeTree(t, tmp)
		}
	}()
	b := &Root{Dir: tmp, Release: r.Release, Pkgs: r.Pkgs}
	// Roots of one release share a download cache: one build at a time.
	alock := openLock(t, filepath.Join(CacheDir(), "archives", r.Release+".lock"))
	defer alock.Close()
	flock(t, alock, syscall.LOCK_EX)
	b.debootstrap(t)
	b.configure(t)
	if len(r.Pkgs) > 0 {
		b.install(t)
	}
	data, _ := json.Marshal(stamp{Release: r.Release, Pkgs: r.Pkgs, Created: time.Now().UTC()})
	if err := os.WriteFile(filepath.Join(tmp, stampName), data, 0o644); err != nil {
		t.Fatalf("debroot: %v", err)
	}
	if _, err := os.Lstat(r.Dir); err == nil {
		old := tmp + ".old"
		if err := os.Rename(r.Dir, old); err != nil {
			t.Fatalf("debroot: move the stale root away: %v", err)
		}
		removeTree(t, old)
	}
	if err := os.Rename(tmp, r.Dir); err != nil {
		t.Fatalf("debroot: %v", err)
	}
	ok = true
}

// debootstrap makes a minimal base system; its packages are cached per
// release so a rebuild or a second package set downloads nothing again.
// debootstrap mounts /proc and /sys itself: it runs in a private mount
// namespace so nothing it leaves mounted on failure reaches the host.
func (r *Root) debootstrap(t testing.TB) {
	t.Helper()
	debs := filepath.Join(CacheDir(), "archives", r.Release)
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--kill-child",
		"debootstrap", "--variant=minbase", "--keyring="+Keyring, "--cache-dir="+debs,
		r.Release, r.Dir, Mirror)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("debroot: debootstrap %s: %v\n%s", r.Release, err, tail(string(out), 40))
	}
	assertNothingMounted(t, r.Dir)
}

// configure sets the root's apt up the way tests need it: no recommends, no
// daemons started by package scripts, and no refusal of an archive whose
// Release file is past its Valid-Until (a snapshot mirror).
func (r *Root) configure(t testing.TB) {
	t.Helper()
	files := map[string]string{
		"etc/apt/apt.conf.d/99debroot": "APT::Install-Recommends \"false\";\nAPT::Install-Suggests \"false\";\n" +
			"Acquire::Check-Valid-Until \"false\";\nAcquire::Check-Date \"false\";\nAcquire::Retries \"3\";\n" +
			"Acquire::Languages \"none\";\n",
		"usr/sbin/policy-rc.d": "#!/bin/sh\n# debroot: no daemons in a test root\nexit 101\n",
		"etc/apt/sources.list": sourcesList(r.Release, ""),
	}
	for name, content := range files {
		p := filepath.Join(r.Dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatalf("debroot: %v", err)
		}
	}
	if err := os.Chmod(filepath.Join(r.Dir, "usr/sbin/policy-rc.d"), 0o755); err != nil {
		t.Fatalf("debroot: %v", err)
	}
}

// sourcesList is what a machine of that release has: main, and for a stable
// release its -updates and -security suites (Debian 12's 6.12 kernel
// source, for one, is only in bookworm-security). opts go in brackets.
func sourcesList(release, opts string) string {
	if opts != "" {
		opts = "[" + opts + "] "
	}
	s := "deb " + opts + Mirror + " " + release + " main\n"
	if release != "sid" {
		s += "deb " + opts + Mirror + " " + release + "-updates main\n"
		s += "deb " + opts + SecurityMirror + " " + release + "-security main\n"
	}
	return s
}

// install installs the packages with the root's own apt, the downloads
// kept in the release's shared archive cache.
func (r *Root) install(t testing.TB) {
	t.Helper()
	debs := filepath.Join(CacheDir(), "archives", r.Release)
	// Each name must be a package of the release: apt would read a missing
	// one as a pattern. NAME~ is the newest package whose name starts with
	// NAME (linux-kbuild-7.2~ is linux-kbuild-7.2.13+deb14 today).
	script := `set -e; apt-get update -q; names=
for p in "$@"; do
	case "$p" in
	*"~") n=$(apt-cache pkgnames "${p%"~"}" | sort -V | tail -n 1) ;;
	*) n=$(apt-cache pkgnames "$p" | grep -xF "$p" || true) ;;
	esac
	[ -n "$n" ] || { echo "debroot: no package $p in this release" >&2; exit 1; }
	names="$names $n"
done
apt-get install -y -q -o Dir::Cache::archives=/var/cache/debroot-archives/ $names; apt-get clean`
	out, err := r.run(t, runOpts{binds: [][2]string{{debs, "/var/cache/debroot-archives"}}},
		[]string{"DEBIAN_FRONTEND=noninteractive"}, append([]string{"/bin/sh", "-c", script, "install"}, r.Pkgs...))
	if err != nil {
		t.Fatalf("debroot: install %s into the %s root: %v\n%s", strings.Join(r.Pkgs, " "), r.Release, err, tail(out, 40))
	}
}

// Clone returns a throwaway copy of the root (cp -a, beside the cache) for a
// test that changes it: installs packages, runs dkms, edits /etc. The cached
// root stays as Get made it. The copy is removed, mount-safely, when t ends.
// Its apt cache holds the release's packages that Get downloaded before.
func (r *Root) Clone(t testing.TB) *Root {
	t.Helper()
	dir, err := os.MkdirTemp(filepath.Dir(r.Dir), ".clone-"+filepath.Base(r.Dir)+"-")
	if err != nil {
		t.Fatalf("debroot: %v", err)
	}
	t.Cleanup(func() { removeTree(t, dir) })
	os.Chmod(dir, 0o755) // cp -a gives it the root's mode, but only if it copies "."
	if out, err := exec.Command("cp", "-a", "--", r.Dir+"/.", dir).CombinedOutput(); err != nil && !onlyVanished(string(out)) {
		t.Fatalf("debroot: copy the %s: %v\n%s", r, err, out)
	}
	// The release's downloaded packages, hard-linked into the clone's apt
	// cache: installing there fetches only what no root of it fetched yet.
	debs, _ := filepath.Glob(filepath.Join(CacheDir(), "archives", r.Release, "*.deb"))
	for _, d := range debs {
		os.Link(d, filepath.Join(dir, "var/cache/apt/archives", filepath.Base(d)))
	}
	return &Root{Dir: dir, Release: r.Release, Pkgs: r.Pkgs}
}

// onlyVanished reports whether cp's complaints are all about files that
// disappeared while it copied (BuildTool in another test process writes and
// removes its source copy in the cached root).
func onlyVanished(out string) bool {
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(l, "cp: ") || !strings.HasSuffix(l, ": No such file or directory") {
			return false
		}
	}
	return true
}

// sweep removes what killed test runs left (clones and unfinished builds
// more than a day old: no test runs that long) and roots nobody has asked
// for since they expired (a changed package set or layout leaves its old
// root behind), each only when nothing holds its lock.
func sweep(t testing.TB) {
	t.Helper()
	cache := CacheDir()
	for _, pat := range []string{".clone-*", ".build-*"} {
		m, _ := filepath.Glob(filepath.Join(cache, pat))
		for _, d := range m {
			if st, err := os.Lstat(d); err == nil && st.IsDir() && time.Since(st.ModTime()) > 24*time.Hour {
				removeTree(t, d)
			}
		}
	}
	locks, _ := filepath.Glob(filepath.Join(cache, "*.lock"))
	for _, l := range locks {
		dir := strings.TrimSuffix(l, ".lock")
		st, err := os.Stat(filepath.Join(dir, stampName))
		if err != nil || time.Since(st.ModTime()) < MaxAge+24*time.Hour {
			continue
		}
		f, err := os.OpenFile(l, os.O_RDWR, 0)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			removeTree(t, dir)
		}
		f.Close()
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// String names the root for messages.
func (r *Root) String() string { return fmt.Sprintf("%s root %s", r.Release, r.Dir) }
