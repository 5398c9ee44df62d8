// Package bench measures the write path against Debian's sign-file and the
// xz and zstd programs, each run as a subprocess on the same machine in one
// run: `make bench` prints the table that docs/performance.md records.
package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testmod"
)

// A result is one row of the table.
type result struct {
	workload, tool string
	wall, cpu      time.Duration
	rssKiB         int64
	ratio          string
}

// usage is what one measured run cost.
type usage struct {
	wall, cpu time.Duration // cpu: user + system, of all its processes
	rssKiB    int64
}

// measure runs argv once after setup (not timed) and returns its wall time,
// CPU time and peak RSS. CPU and RSS come from /usr/bin/time (ru_maxrss from wait4: for
// a pipeline, its largest process): a child forked straight from this Go
// process would report this process's own RSS, which Linux carries over
// into ru_maxrss across the child's exec.
func measure(b testing.TB, setup func(), argv ...string) usage {
	b.Helper()
	if setup != nil {
		setup()
	}
	rssFile := filepath.Join(b.TempDir(), "rss")
	cmd := exec.Command("/usr/bin/time", append([]string{"-f", "%M %U %S", "-o", rssFile}, argv...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("%s: %v\n%s", strings.Join(argv[:min(len(argv), 8)], " "), err, stderr.String())
	}
	wall := time.Since(start)
	out, _ := os.ReadFile(rssFile)
	f := strings.Fields(string(out))
	if len(f) < 3 {
		b.Fatalf("/usr/bin/time wrote %q for %s", out, argv[0])
	}
	f = f[len(f)-3:]
	rss, err1 := strconv.ParseInt(f[0], 10, 64)
	user, err2 := strconv.ParseFloat(f[1], 64)
	sys, err3 := strconv.ParseFloat(f[2], 64)
	if err1 != nil || err2 != nil || err3 != nil {
		b.Fatalf("/usr/bin/time: %q", out)
	}
	return usage{wall: wall, cpu: time.Duration((user + sys) * float64(time.Second)), rssKiB: rss}
}

// repeat measures n runs and keeps the run of median wall time, with the
// largest RSS of all.
func repeat(b testing.TB, n int, setup func(), argv ...string) usage {
	var runs []usage
	var rss int64
	for i := 0; i < n; i++ {
		u := measure(b, setup, argv...)
		runs = append(runs, u)
		rss = max(rss, u.rssKiB)
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].wall < runs[j].wall })
	u := runs[n/2]
	u.rssKiB = rss
	return u
}

type table struct {
	rows []*result
}

// add records a row; ref is the row its ratio compares with (nil: none).
func (t *table) add(workload, tool string, u usage, ref *result) *result {
	r := &result{workload: workload, tool: tool, wall: u.wall, cpu: u.cpu, rssKiB: u.rssKiB}
	if ref != nil {
		r.ratio = fmt.Sprintf("%.2f× %s", u.wall.Seconds()/ref.wall.Seconds(), ref.tool)
		if ref.cpu > 0 {
			r.ratio += fmt.Sprintf(" (CPU %.2f×)", u.cpu.Seconds()/ref.cpu.Seconds())
		}
	}
	t.rows = append(t.rows, r)
	fmt.Fprintf(os.Stderr, "bench: %-28s %-40s %9.2fs %8.2fs %8s %s\n", workload, tool, u.wall.Seconds(), u.cpu.Seconds(), mib(u.rssKiB), r.ratio)
	return r
}

func (t *table) markdown() string {
	var s strings.Builder
	s.WriteString("| workload | tool | wall | CPU | peak RSS | ratio (wall) |\n|---|---|---:|---:|---:|---|\n")
	for _, r := range t.rows {
		rss, cpu := mib(r.rssKiB), fmt.Sprintf("%.2f s", r.cpu.Seconds())
		if r.rssKiB == 0 {
			rss = "–"
		}
		fmt.Fprintf(&s, "| %s | %s | %.2f s | %s | %s | %s |\n", r.workload, r.tool, r.wall.Seconds(), cpu, rss, r.ratio)
	}
	return s.String()
}

// BenchmarkWritePath runs every workload once (use -benchtime 1x) and
// prints the table with the machine it ran on.
func BenchmarkWritePath(b *testing.B) {
	if b.N > 1 {
		b.Skip("one pass is the measurement: run with -benchtime 1x")
	}
	signFile := testenv.RequireSignFile(b)
	for p, pkg := range map[string]string{"xz": "xz-utils", "zstd": "zstd", "objcopy": "binutils",
		"dpkg-deb": "dpkg", "openssl": "openssl", "xargs": "findutils", "/usr/bin/time": "time"} {
		testenv.LookPath(b, p, pkg)
	}
	tool := filepath.Join(b.TempDir(), "dkms-sign-hook")
	run(b, "go", "build", "-trimpath", "-o", tool, "../../cmd/dkms-sign-hook")
	header := machine(b)
	tree, mods := strippedTree(b, tool)
	bigKo, bigXZ, bigZst := bigModules(b, mods)
	work := filepath.Join(benchDir(), "work")
	os.RemoveAll(work)
	os.MkdirAll(work, 0o755)
	defer os.RemoveAll(work)
	var t table

	// One small module: the hook case (DKMS's own MOK is RSA-2048/sha256).
	kp := testmod.Key(b, "rsa2048")
	small := filepath.Join(work, "dummy.ko")
	reset := func() { copyFile(b, findNamed(mods, "dummy.ko"), small) }
	u := repeat(b, 15, reset, signFile, "sha256", kp.Key, kp.Cert, small)
	ref := t.add("one small module (dummy.ko)", "sign-file", u, nil)
	u = repeat(b, 15, reset, tool, "sign", "--hash", "sha256", "--key", kp.Key, "--cert", kp.Cert, small)
	t.add("one small module (dummy.ko)", "dkms-sign-hook sign", u, ref)

	// 200 MiB module: plain, .ko.xz, .ko.zst (RSA-4096/sha512).
	kp = testmod.Key(b, "rsa4096")
	big := filepath.Join(work, "big.ko")
	reset = func() { copyFile(b, bigKo, big) }
	u = repeat(b, 3, nil, "sha512sum", bigKo)
	t.add("200 MiB .ko", "sha512sum (reading + hashing alone)", u, nil)
	u = repeat(b, 3, reset, signFile, "sha512", kp.Key, kp.Cert, big)
	ref = t.add("200 MiB .ko", "sign-file", u, nil)
	u = repeat(b, 3, reset, tool, "sign", "--hash", "sha512", "--key", kp.Key, "--cert", kp.Cert, big)
	t.add("200 MiB .ko", "dkms-sign-hook sign", u, ref)
	for _, c := range []struct{ src, ext, pipe string }{
		{bigXZ, ".xz", "xz -dc %s | xz --check=crc32 --lzma2=dict=1MiB > %s"},
		{bigZst, ".zst", "zstd -dc %s | zstd -q > %s"},
	} {
		dst := big + c.ext
		reset = func() { copyFile(b, c.src, dst) }
		st, _ := os.Stat(c.src)
		label := fmt.Sprintf("200 MiB .ko%s (%d MiB)", c.ext, st.Size()>>20)
		u = measure(b, nil, "sh", "-c", fmt.Sprintf(c.pipe, c.src, filepath.Join(work, "out"+c.ext)))
		ref = t.add(label, "`"+strings.SplitN(fmt.Sprintf(c.pipe, "F", "G"), " >", 2)[0]+"`", u, nil)
		u = measure(b, reset, tool, "sign", "--hash", "sha512", "--key", kp.Key, "--cert", kp.Cert, dst)
		t.add(label, "dkms-sign-hook sign", u, ref)
		os.Remove(dst)
	}
	os.Remove(big)

	bulk(b, &t, tool, signFile, tree, len(mods), work)
	header += fmt.Sprintf("load after:  %s\n", loadavg())
	out := header + "\n" + t.markdown()
	fmt.Println(out)
	if p := os.Getenv("BENCH_OUT"); p != "" {
		os.WriteFile(p, []byte(out), 0o644)
	}
}

// bulk re-signs the whole stripped tree with each key: the tool in one
// process, sign-file one process per module serially and with xargs -P(cores).
func bulk(b *testing.B, t *table, tool, signFile, tree string, n int, work string) {
	speeds := opensslSpeed(b)
	cores := runtime.NumCPU()
	dir := filepath.Join(work, "tree")
	list := filepath.Join(work, "modules.list")
	reset := func() {
		copyTree(b, tree, dir)
		mods := findModules(b, dir)
		os.WriteFile(list, []byte(strings.Join(mods, "\n")+"\n"), 0o644)
	}
	for _, c := range []struct{ key, hash, speed string }{
		{"rsa4096", "sha512", "rsa4096"}, {"rsa2048", "sha256", "rsa2048"}, {"p384", "sha384", ""},
	} {
		kp := testmod.Key(b, c.key)
		label := fmt.Sprintf("bulk: %d modules, %s/%s", n, c.key, c.hash)
		u := measure(b, reset, "xargs", "-a", list, "-n1", "-P1", signFile, c.hash, kp.Key, kp.Cert)
		t.add(label, "sign-file, serially", u, nil)
		u = measure(b, reset, "xargs", "-a", list, "-n1", fmt.Sprintf("-P%d", cores), signFile, c.hash, kp.Key, kp.Cert)
		ref := t.add(label, fmt.Sprintf("sign-file, xargs -P%d", cores), u, nil)
		var floor *result
		if s, ok := speeds[c.speed]; ok {
			fw := time.Duration(float64(n) * s / float64(cores) * float64(time.Second))
			floor = t.add(label, fmt.Sprintf("floor: %d × openssl speed (%.2f ms) / %d cores", n, s*1000, cores),
				usage{wall: fw, cpu: fw * time.Duration(cores)}, nil)
		}
		reset()
		args := []string{"sign", "--hash", c.hash, "--key", kp.Key, "--cert", kp.Cert}
		u = measure(b, nil, append([]string{tool}, append(args, findModules(b, dir)...)...)...)
		row := t.add(label, "dkms-sign-hook sign (one process)", u, ref)
		if floor != nil {
			row.ratio += fmt.Sprintf("; %.2f× floor", u.wall.Seconds()/floor.wall.Seconds())
		}
	}
	os.RemoveAll(dir)
}

// opensslSpeed returns seconds per signature for rsa2048 and rsa4096.
func opensslSpeed(b testing.TB) map[string]float64 {
	out, err := exec.Command("openssl", "speed", "-seconds", "3", "rsa2048", "rsa4096").Output()
	if err != nil {
		b.Fatalf("openssl speed: %v", err)
	}
	speeds := map[string]float64{}
	re := regexp.MustCompile(`(?m)^rsa\s+(\d+) bits\s+([0-9.]+)s`)
	for _, m := range re.FindAllStringSubmatch(string(out), -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		speeds["rsa"+m[1]] = v
	}
	return speeds
}

func findNamed(mods []string, name string) string {
	for _, m := range mods {
		if filepath.Base(m) == name {
			return m
		}
	}
	return ""
}

// machine describes where and when the benchmark ran.
func machine(b testing.TB) string {
	cpu := "?"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if m := regexp.MustCompile(`(?m)^model name\s*:\s*(.*)$`).FindStringSubmatch(string(data)); m != nil {
			cpu = m[1]
		}
	}
	var mem string
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		mem = strings.Fields(strings.SplitN(string(data), "\n", 2)[0])[1]
		if kib, err := strconv.ParseInt(mem, 10, 64); err == nil {
			mem = fmt.Sprintf("%d GiB", kib>>20)
		}
	}
	version := func(argv ...string) string {
		out, _ := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	var uts syscall.Utsname
	syscall.Uname(&uts)
	rel := make([]byte, 0, 65)
	for _, c := range uts.Release {
		if c == 0 {
			break
		}
		rel = append(rel, byte(c))
	}
	return fmt.Sprintf("date:        %s\nmachine:     %s, %d CPUs, %s RAM, Linux %s\n"+
		"software:    %s; %s; %s; %s\nload before: %s\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), cpu, runtime.NumCPU(), mem, rel,
		runtime.Version(), version("openssl", "version"), version("xz", "--version"), version("zstd", "--version"), loadavg())
}

func loadavg() string {
	data, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ") + " (1, 5, 15 min)"
}
