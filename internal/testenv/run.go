package testenv

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

var tool struct {
	once sync.Once
	path string
	err  error
}

// Tool builds ./cmd/dkms-sign-hook once per test binary and returns the
// binary's path. It lives in $TMPDIR/dkms-sign-hook-tool-<pid>; the
// directories of test processes that are gone are removed on the way.
func Tool(t testing.TB) string {
	t.Helper()
	tool.once.Do(func() { tool.path, tool.err = buildTool() })
	if tool.err != nil {
		t.Fatal(tool.err)
	}
	return tool.path
}

func buildTool() (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	sweepTools()
	dir := filepath.Join(os.TempDir(), "dkms-sign-hook-tool-"+strconv.Itoa(os.Getpid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "dkms-sign-hook")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/dkms-sign-hook")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/dkms-sign-hook: %v\n%s", err, out)
	}
	return bin, nil
}

// sweepTools removes the tool directories of processes that have exited.
func sweepTools() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "dkms-sign-hook-tool-*"))
	for _, d := range dirs {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), "dkms-sign-hook-tool-"))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			os.RemoveAll(d)
		}
	}
}

// ModuleRoot is the directory of go.mod above the working directory.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Run runs c (with its Env and Dir) and returns its stdout; if it fails, t
// fails with the command line, the error and the tails of stdout and stderr.
func Run(t testing.TB, c *exec.Cmd) []byte {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if c.Stdout == nil {
		c.Stdout = &stdout
	}
	c.Stderr = &stderr
	if err := c.Run(); err != nil {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(c.Args, " "), err, Tail(stdout.String(), 60), Tail(stderr.String(), 60))
	}
	return stdout.Bytes()
}

// Combined runs c and returns its stdout and stderr interleaved, as a
// terminal would show them; if it fails, t fails with all of it.
func Combined(t testing.TB, c *exec.Cmd) string {
	t.Helper()
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(c.Args, " "), err, out.String())
	}
	return out.String()
}

// Tail returns the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
