package fleet

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// machine is one computer of the fleet: a network namespace and a private
// mount namespace, held open by a sleeping process. Its commands run through
// nsenter; it sees the host's files except where the test mounts over them
// (in its own namespace only: nothing leaks to the real machine, and
// everything mounted vanishes with the namespace).
type machine struct {
	t     *testing.T
	name  string
	hold  *exec.Cmd
	netns string // readlink /proc/PID/ns/net, to find its processes
	logs  string // directory for the logs of its background programs
}

func newMachine(t *testing.T, name, logs string) *machine {
	t.Helper()
	hold := exec.Command("unshare", "--net", "--mount", "--propagation", "private", "--", "sleep", "infinity")
	// If the test process dies without its cleanups (a timeout), the
	// machine dies with it.
	hold.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := hold.Start(); err != nil {
		t.Fatalf("%s: unshare: %v", name, err)
	}
	m := &machine{t: t, name: name, hold: hold, logs: logs}
	t.Cleanup(m.shutdown)
	self, _ := os.Readlink("/proc/self/ns/net")
	for i := 0; ; i++ {
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", hold.Process.Pid))
		if err == nil && ns != self {
			m.netns = ns
			break
		}
		if i == 200 {
			t.Fatalf("%s: the namespaces did not appear", name)
		}
		time.Sleep(10 * time.Millisecond)
	}
	m.run("ip", "link", "set", "lo", "up")
	return m
}

// shutdown kills every process in the machine's network namespace (all of
// them started by this test through nsenter), then the holder: the mounts
// go with the namespace.
func (m *machine) shutdown() {
	for _, pid := range m.pids() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	m.hold.Process.Kill()
	m.hold.Wait()
}

// pids lists the processes in the machine's network namespace, but the holder.
func (m *machine) pids() []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == m.hold.Process.Pid {
			continue
		}
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid)); err == nil && ns == m.netns {
			out = append(out, pid)
		}
	}
	return out
}

// path is where the test, outside, reads a file as the machine sees it.
func (m *machine) path(p string) string {
	return fmt.Sprintf("/proc/%d/root%s", m.hold.Process.Pid, p)
}

func (m *machine) command(env []string, args ...string) *exec.Cmd {
	cmd := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(m.hold.Process.Pid), "-n", "-m", "--"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

// try runs a command on the machine and returns its combined output.
func (m *machine) try(env []string, args ...string) (string, error) {
	out, err := m.command(env, args...).CombinedOutput()
	return string(out), err
}

// run runs a command on the machine, failing the test if it fails.
func (m *machine) run(args ...string) string {
	m.t.Helper()
	out, err := m.try(nil, args...)
	if err != nil {
		m.t.Fatalf("%s: %s: %v\n%s", m.name, strings.Join(args, " "), err, out)
	}
	return out
}

// mountTmpfs mounts an empty tmpfs (mode 0755, or as given) over dir.
func (m *machine) mountTmpfs(dir string, mode ...string) {
	m.t.Helper()
	md := "0755"
	if len(mode) > 0 {
		md = mode[0]
	}
	m.run("mount", "-t", "tmpfs", "-o", "mode="+md+",size=256m", "tmpfs", dir)
}

// service is a background program on a machine.
type service struct {
	cmd *exec.Cmd
	log string
}

// start runs a program in the background, in its own process group, with
// its output in the machine's log directory.
func (m *machine) start(name string, env []string, args ...string) *service {
	m.t.Helper()
	log := filepath.Join(m.logs, m.name+"-"+name+".log")
	f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		m.t.Fatal(err)
	}
	defer f.Close()
	cmd := m.command(env, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		m.t.Fatalf("%s: start %s: %v", m.name, name, err)
	}
	s := &service{cmd: cmd, log: log}
	go cmd.Wait()
	return s
}

// signal sends sig to the service's whole process group (p11-kit server's
// per-connection children, ssh sessions).
func (s *service) signal(sig syscall.Signal) { syscall.Kill(-s.cmd.Process.Pid, sig) }

func (s *service) output() string {
	b, _ := os.ReadFile(s.log)
	return string(b)
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// link joins two machines with a veth pair, addresses a and b (CIDR) on
// their ends: the only network either has.
func link(t *testing.T, a, b *machine, n int, addrA, addrB string) (ifA, ifB string) {
	t.Helper()
	ifA = fmt.Sprintf("fl%d%da", os.Getpid()%100000, n)
	ifB = fmt.Sprintf("fl%d%db", os.Getpid()%100000, n)
	if out, err := exec.Command("ip", "link", "add", ifA, "type", "veth", "peer", "name", ifB).CombinedOutput(); err != nil {
		t.Fatalf("ip link add: %v\n%s", err, out)
	}
	for _, x := range []struct {
		m     *machine
		ifc   string
		addr  string
		other string
	}{{a, ifA, addrA, ifB}, {b, ifB, addrB, ifA}} {
		if out, err := exec.Command("ip", "link", "set", x.ifc, "netns", strconv.Itoa(x.m.hold.Process.Pid)).CombinedOutput(); err != nil {
			exec.Command("ip", "link", "del", ifA).Run()
			t.Fatalf("ip link set netns: %v\n%s", err, out)
		}
		x.m.run("ip", "addr", "add", x.addr, "dev", x.ifc)
		x.m.run("ip", "link", "set", x.ifc, "up")
	}
	return ifA, ifB
}

// assertNoMountsBelow checks, before t.TempDir's removal, that no mount of
// this test leaked into the test's own namespace below dir.
func assertNoMountsBelow(t *testing.T, dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		f := strings.Fields(string(line))
		if len(f) > 4 && strings.HasPrefix(f[4], dir) {
			t.Fatalf("a mount leaked into the test's namespace: %s (not removing %s)", f[4], dir)
		}
	}
}
