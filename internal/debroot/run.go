package debroot

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// GoRoot is the host's Go toolchain, bound read-only at the same path in a root.
const GoRoot = "/usr/local/go"

// inRootModCache is where Go's module cache is inside a root: the host's
// cache as the read-only lower layer of an overlay whose upper layer is a
// tmpfs, so a build in the root reuses every module the host has and can
// still download one it lacks (through the host's CA bundle, copied in).
const inRootModCache = "/root/go/pkg/mod"

// BaseEnv is the environment every command in a root starts from; Run's env
// adds to it or overrides it.
var BaseEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:" + GoRoot + "/bin",
	"HOME=/root",
	"LANG=C.UTF-8",
	"TERM=dumb",
	"DEBIAN_FRONTEND=noninteractive",
	"GOTOOLCHAIN=local",
	"GOMODCACHE=" + inRootModCache,
	"GOCACHE=" + inRootGoCache,
	// go's work directories on the tmpfs /run: a build never writes into
	// the root's own files (another test may be cloning it).
	"GOTMPDIR=/run",
}

// inRootGoCache is where the release's shared Go build cache is bound.
const inRootGoCache = "/root/.cache/go-build"

// setup runs in the new mount namespace, as /bin/sh -c setup ROOT MODCACHE
// NBINDS SRC DST... ENV... ARGV...: it mounts what a command needs and
// runs chroot. Host directories are bound read-only (but the binds Get
// asks for); the namespace, and so every mount, ends with the command.
const setup = `set -e
R=$1 MC=$2 N=$3; shift 3
mount -t proc proc "$R/proc"
mount -t sysfs -o ro sysfs "$R/sys"
mount -t tmpfs -o mode=0755,nosuid,size=64m debroot-dev "$R/dev"
mknod -m 666 "$R/dev/null" c 1 3; mknod -m 666 "$R/dev/zero" c 1 5
mknod -m 666 "$R/dev/full" c 1 7; mknod -m 666 "$R/dev/random" c 1 8
mknod -m 666 "$R/dev/urandom" c 1 9; mknod -m 666 "$R/dev/tty" c 5 0
mkdir "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 debroot-pts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"
ln -s /proc/self/fd "$R/dev/fd"; ln -s /proc/self/fd/0 "$R/dev/stdin"
ln -s /proc/self/fd/1 "$R/dev/stdout"; ln -s /proc/self/fd/2 "$R/dev/stderr"
mount -t tmpfs -o mode=0755,nosuid debroot-run "$R/run"
mkdir -p "$R/run/lock" "$R$GOROOT_IN"
mount --bind -o ro "$GOROOT_IN" "$R$GOROOT_IN"
mkdir -p "$R$MCDIR"
if [ -d "$MC" ]; then
	mkdir -p "$R/run/debroot/mc-up" "$R/run/debroot/mc-work"
	mount -t overlay -o "lowerdir=$MC,upperdir=$R/run/debroot/mc-up,workdir=$R/run/debroot/mc-work" debroot-gomod "$R$MCDIR"
fi
while [ "$N" -gt 0 ]; do
	mkdir -p "$R$2"; mount --bind "$1" "$R$2"; shift 2; N=$((N-1))
done
# Not exec: this shell stays PID 1 of the namespace and reaps orphans.
chroot "$R" /usr/bin/env -i "$@"
`

// runOpts are Run's internal extras (Get's installs bind the shared
// archive cache read-write).
type runOpts struct {
	binds [][2]string // host dir, dir in the root
}

// Run runs argv in the root and returns its combined output. The command
// sees BaseEnv plus env, the root's own /proc, /sys (read-only), a tmpfs
// /dev with null, zero, full, random, urandom, tty and its own devpts (for
// script(1)), a tmpfs /run, the
// host's Go at /usr/local/go (read-only) and the host's module cache as an
// overlay, and the release's Go build cache (shared by its roots and clones,
// kept in the cache directory); the host's CA bundle and resolv.conf are
// copied in first. It runs
// in private mount and PID namespaces: when argv exits, every process it
// started is killed and every mount is gone. argv[0] is a path in the root
// (or a name on BaseEnv's PATH) and must not contain '='.
func (r *Root) Run(t testing.TB, env []string, argv ...string) (string, error) {
	t.Helper()
	return r.run(t, runOpts{}, env, argv)
}

func (r *Root) run(t testing.TB, o runOpts, env, argv []string) (string, error) {
	t.Helper()
	if len(argv) == 0 || strings.Contains(argv[0], "=") {
		t.Fatalf("debroot: Run %q: want a command (not NAME=VALUE) first", argv)
	}
	r.copyHostFiles(t)
	// One Go build cache per release, shared by every root and clone of it:
	// a clone does not compile the standard library and the modules again.
	gocache := filepath.Join(CacheDir(), "gocache", r.Release)
	if err := os.MkdirAll(gocache, 0o755); err != nil {
		t.Fatalf("debroot: %v", err)
	}
	o.binds = append(o.binds, [2]string{gocache, inRootGoCache})
	args := []string{"--mount", "--pid", "--fork", "--kill-child", "--propagation", "private",
		"/bin/sh", "-c", setup, "debroot-setup", r.Dir, hostModCache(), strconv.Itoa(len(o.binds))}
	for _, b := range o.binds {
		args = append(args, b[0], b[1])
	}
	args = append(append(append(args, BaseEnv...), env...), argv...)
	cmd := exec.Command("unshare", args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "GOROOT_IN=" + GoRoot, "MCDIR=" + inRootModCache}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	assertNothingMounted(t, r.Dir)
	return string(out), err
}

// copyHostFiles gives the root the host's CA bundle (Go's module downloads
// verify TLS with it; the root's ca-certificates would replace it, so it is
// copied before every command) and resolv.conf.
func (r *Root) copyHostFiles(t testing.TB) {
	t.Helper()
	for _, f := range []string{"/etc/ssl/certs/ca-certificates.crt", "/etc/resolv.conf"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue // the host has none: the root keeps its own
		}
		dst := filepath.Join(r.Dir, f)
		os.MkdirAll(filepath.Dir(dst), 0o755)
		os.Remove(dst) // may be a symlink pointing outside the root
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			t.Fatalf("debroot: copy %s into the root: %v", f, err)
		}
	}
}

var modCache = sync.OnceValue(func() string {
	out, err := exec.Command(filepath.Join(GoRoot, "bin", "go"), "env", "GOMODCACHE").Output()
	if err != nil {
		if out, err = exec.Command("go", "env", "GOMODCACHE").Output(); err != nil {
			return ""
		}
	}
	return strings.TrimSpace(string(out))
})

// hostModCache is the host's Go module cache ("" or a missing directory:
// the root downloads into its own).
func hostModCache() string { return modCache() }

// mountsBelow lists the mount points at or below dir in this process's
// mount namespace.
func mountsBelow(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dir = filepath.Clean(dir)
	var found []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			found = append(found, mp)
		}
	}
	return found, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space, ...).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// assertNothingMounted fails t if anything is mounted at or below dir.
func assertNothingMounted(t testing.TB, dir string) {
	t.Helper()
	m, err := mountsBelow(dir)
	if err != nil {
		t.Fatalf("debroot: read /proc/self/mountinfo: %v", err)
	}
	if len(m) > 0 {
		t.Fatalf("debroot: still mounted below %s: %s (unmount them; nothing was removed)", dir, strings.Join(m, " "))
	}
}

// removeTree removes dir, refusing when anything is mounted below it, and
// never crossing into another file system.
func removeTree(t testing.TB, dir string) {
	t.Helper()
	assertNothingMounted(t, dir)
	if out, err := exec.Command("rm", "-rf", "--one-file-system", "--", dir).CombinedOutput(); err != nil {
		t.Fatalf("debroot: remove %s: %v\n%s", dir, err, out)
	}
}

// TempDir makes a scratch directory in the root's /tmp, removed when t ends
// (plain files only: Run unmounts everything it mounts before it returns).
// It returns the directory as the host sees it and as commands run by Run
// see it.
func (r *Root) TempDir(t testing.TB, prefix string) (host, inRoot string) {
	t.Helper()
	host, err := os.MkdirTemp(filepath.Join(r.Dir, "tmp"), prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(host) })
	return host, "/tmp/" + filepath.Base(host)
}
