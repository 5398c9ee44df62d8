package debroot

import (
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// TestMountsBelowSeesMounts: the guard that protects removals finds real
// mount points (the host's /proc and what is below it).
func TestMountsBelowSeesMounts(t *testing.T) {
	m, err := mountsBelow("/proc")
	if err != nil {
		t.Fatal(err)
	}
	if len(m) == 0 || m[0] != "/proc" {
		t.Errorf("mountsBelow(/proc) = %q, want /proc first", m)
	}
	if m, _ := mountsBelow("/proc/no/such/dir"); len(m) != 0 {
		t.Errorf("mountsBelow of an unmounted path = %q", m)
	}
	if got := unescapeMount(`/a\040b\134c`); got != `/a b\c` {
		t.Errorf("unescapeMount = %q", got)
	}
}

func TestRoot(t *testing.T) {
	r := Get(t, "trixie", DKMSPkgs...)
	stampBefore, err := os.Stat(filepath.Join(r.Dir, stampName))
	if err != nil {
		t.Fatal(err)
	}

	out, err := r.Run(t, nil, "cat", "/etc/debian_version")
	if err != nil || !strings.HasPrefix(out, "13.") {
		t.Errorf("trixie's /etc/debian_version = %q, %v; want 13.x", out, err)
	}
	// Its own PID namespace, /proc and /dev; the host's Go; the env given.
	script := `echo procs=$(ls /proc | grep -c '^[0-9]'); echo init=$(cat /proc/1/comm); echo foo=$FOO; ls /dev | tr '\n' ' '; echo; go version; awk '$5=="/dev"||$5=="/usr/local/go"{print "mount", $5, $6}' /proc/self/mountinfo`
	out, err = r.Run(t, []string{"FOO=bar baz"}, "/bin/sh", "-c", script)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, out)
	}
	if m := regexp.MustCompile(`procs=(\d+)`).FindStringSubmatch(out); m == nil || len(m[1]) > 1 {
		t.Errorf("the command sees other processes than its own (not its own PID namespace):\n%s", out)
	}
	for _, want := range []string{"init=sh\n", "foo=bar baz\n", " full null ", " random ", " tty urandom zero ", "go version " + runtime.Version(),
		"mount /dev rw,nosuid", "mount /usr/local/go ro,"} {
		if !strings.Contains(out, want) {
			t.Errorf("Run output lacks %q:\n%s", want, out)
		}
	}
	if out, err := r.Run(t, nil, "/bin/sh", "-c", "touch /usr/local/go/debroot-test"); err == nil {
		os.Remove("/usr/local/go/debroot-test")
		t.Errorf("the host's Go is writable from the root:\n%s", out)
	}
	if out, err := r.Run(t, nil, "/bin/sh", "-c", "echo failing; exit 3"); err == nil || !strings.Contains(out, "failing") {
		t.Errorf("a failing command: %v, %q; want an error and its output", err, out)
	}
	if m, _ := mountsBelow(r.Dir); len(m) > 0 {
		t.Errorf("still mounted after Run: %q", m)
	}

	// The tool, built inside with cgo against trixie's glibc.
	bin := r.BuildTool(t)
	out, err = r.Run(t, nil, bin, "--version")
	if err != nil || !strings.HasPrefix(out, "dkms-sign-hook ") {
		t.Errorf("%s --version in the root: %q, %v", bin, out, err)
	}
	if again := r.BuildTool(t); again != bin {
		t.Errorf("BuildTool rebuilt: %s then %s", bin, again)
	}

	// A clone takes changes; the cached root does not see them.
	c := r.Clone(t)
	if out, err := c.Run(t, nil, "/bin/sh", "-c", "echo changed > /etc/debroot-clone"); err != nil {
		t.Fatalf("Run in the clone: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(c.Dir, "etc/debroot-clone")); err != nil {
		t.Errorf("the clone did not keep a change: %v", err)
	}
	if _, err := os.Stat(filepath.Join(r.Dir, "etc/debroot-clone")); err == nil {
		t.Errorf("a change in the clone reached the cached root")
	}

	// The cache is reused: same directory, stamp untouched.
	r2 := Get(t, "trixie", append([]string{"libc6-dev"}, DKMSPkgs...)...)
	stampAfter, err := os.Stat(filepath.Join(r2.Dir, stampName))
	if r2.Dir != r.Dir || err != nil || !stampAfter.ModTime().Equal(stampBefore.ModTime()) {
		t.Errorf("the second Get made a new root: %s (%v) after %s", r2.Dir, err, r.Dir)
	}
}

func TestDownload(t *testing.T) {
	debs := Download(t, "trixie", "hello")
	if len(debs) != 1 || !strings.HasPrefix(filepath.Base(debs[0]), "hello_") {
		t.Fatalf("Download(hello) = %q", debs)
	}
	st, err := os.Stat(debs[0])
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	Unpack(t, debs[0], dir)
	if _, err := os.Stat(filepath.Join(dir, "usr/bin/hello")); err != nil {
		t.Errorf("unpacked hello has no usr/bin/hello: %v", err)
	}
	again := Download(t, "trixie", "hello")
	st2, err := os.Stat(again[0])
	if again[0] != debs[0] || err != nil || !st2.ModTime().Equal(st.ModTime()) {
		t.Errorf("the second Download fetched again: %s", again[0])
	}
}
