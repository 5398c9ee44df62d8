package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testmod"
)

// benchDir holds what the benchmark builds once: the extracted and stripped
// Debian module tree and the 200 MB module in its three forms.
func benchDir() string { return filepath.Join(testmod.CacheDir(), "bench") }

// run runs a command, failing the benchmark with its output on error.
func run(b testing.TB, name string, args ...string) {
	b.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		b.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// cached makes dir with build unless a previous run completed it.
func cached(b testing.TB, dir string, build func(tmp string)) string {
	b.Helper()
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil {
		return dir
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		b.Fatal(err)
	}
	build(tmp)
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
		b.Fatal(err)
	}
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		b.Fatal(err)
	}
	return dir
}

// strippedTree returns the modules of Debian's linux-image package (the
// one the tests already use, fetched with apt-get download), signatures
// stripped by the tool.
func strippedTree(b testing.TB, tool string) (dir string, mods []string) {
	b.Helper()
	testmod.RealNamed(b, "dummy.ko") // makes sure the .deb is in the cache
	debs, _ := filepath.Glob(filepath.Join(testmod.CacheDir(), "debs", "linux-image-*.deb"))
	if len(debs) == 0 {
		b.Fatal("no linux-image .deb in the test cache")
	}
	sort.Strings(debs)
	deb := debs[len(debs)-1]
	name := strings.TrimSuffix(filepath.Base(deb), ".deb")
	dir = cached(b, filepath.Join(benchDir(), "stripped-"+name), func(tmp string) {
		run(b, "dpkg-deb", "-x", deb, tmp)
		mods := findModules(b, tmp)
		run(b, tool, append([]string{"strip"}, mods...)...)
	})
	return dir, findModules(b, dir)
}

func findModules(b testing.TB, dir string) []string {
	var mods []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && strings.HasSuffix(p, ".ko") {
			mods = append(mods, p)
		}
		return nil
	})
	if len(mods) == 0 {
		b.Fatalf("no modules under %s", dir)
	}
	sort.Strings(mods)
	return mods
}

// bigModules returns a 200 MiB module made of real module code (the tree's
// modules laid end to end, as one extra section of dummy.ko) as .ko, and as
// .ko.xz and .ko.zst compressed the way kbuild does (xz with CRC32 and a
// 1 MiB dictionary; zstd with its defaults).
func bigModules(b testing.TB, mods []string) (ko, xz, zst string) {
	b.Helper()
	dir := cached(b, filepath.Join(benchDir(), "big-200M"), func(tmp string) {
		blob := filepath.Join(tmp, "blob")
		f, err := os.Create(blob)
		if err != nil {
			b.Fatal(err)
		}
		var n int64
		for i := 0; n < 200<<20; i++ {
			data, err := os.ReadFile(mods[i%len(mods)])
			if err != nil {
				b.Fatal(err)
			}
			data = data[:min(len(data), int(200<<20-n))]
			f.Write(data)
			n += int64(len(data))
		}
		f.Close()
		var base string
		for _, m := range mods {
			if filepath.Base(m) == "dummy.ko" {
				base = m
			}
		}
		ko := filepath.Join(tmp, "big.ko")
		run(b, "objcopy", "--add-section", ".bench_code="+blob, "--set-section-flags", ".bench_code=readonly,data", base, ko)
		os.Remove(blob)
		run(b, "xz", "-k", "-T1", "--check=crc32", "--lzma2=dict=1MiB", ko)
		run(b, "zstd", "-q", "-k", ko)
	})
	return filepath.Join(dir, "big.ko"), filepath.Join(dir, "big.ko.xz"), filepath.Join(dir, "big.ko.zst")
}

// copyTree replaces dst with a copy of src (not timed).
func copyTree(b testing.TB, src, dst string) {
	b.Helper()
	if err := os.RemoveAll(dst); err != nil {
		b.Fatal(err)
	}
	run(b, "cp", "-a", src, dst)
}

// copyFile copies src to dst (not timed).
func copyFile(b testing.TB, src, dst string) {
	b.Helper()
	run(b, "cp", src, dst)
}

func mib(kib int64) string { return fmt.Sprintf("%d MiB", (kib+512)/1024) }
