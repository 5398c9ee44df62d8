package debroot

import (
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

// aptDir is the private apt configuration and state of a release's
// downloads: its own sources.list, lists, cache and an empty dpkg status,
// so the host's sources and apt.conf.d are never read nor changed.
func aptDir(release string) string { return filepath.Join(CacheDir(), "apt", release) }

// aptConfig writes (every time: it is small) the release's apt.conf and
// returns its path, for APT_CONFIG.
func aptConfig(t testing.TB, release string) string {
	t.Helper()
	d := aptDir(release)
	for _, sub := range []string{"etc/apt.conf.d", "etc/sources.list.d", "etc/preferences.d", "etc/trusted.gpg.d",
		"state/lists/partial", "cache/archives/partial"} {
		if err := os.MkdirAll(filepath.Join(d, sub), 0o755); err != nil {
			t.Fatalf("debroot: %v", err)
		}
	}
	status := filepath.Join(d, "state", "status")
	if _, err := os.Stat(status); err != nil {
		os.WriteFile(status, nil, 0o644)
	}
	sources := sourcesList(release, "signed-by="+Keyring)
	conf := fmt.Sprintf(`Dir::Etc "%[1]s/etc";
Dir::Etc::main "apt.conf";
Dir::Etc::Parts "apt.conf.d";
Dir::Etc::SourceList "sources.list";
Dir::Etc::SourceParts "sources.list.d";
Dir::Etc::Preferences "preferences";
Dir::Etc::PreferencesParts "preferences.d";
Dir::Etc::TrustedParts "trusted.gpg.d";
Dir::State "%[1]s/state";
Dir::State::status "%[1]s/state/status";
Dir::Cache "%[1]s/cache";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
Acquire::Check-Valid-Until "false";
Acquire::Check-Date "false";
Acquire::Languages "none";
Acquire::Retries "3";
`, d)
	for name, content := range map[string]string{"etc/sources.list": sources, "apt.conf": conf} {
		if err := os.WriteFile(filepath.Join(d, name), []byte(content), 0o644); err != nil {
			t.Fatalf("debroot: %v", err)
		}
	}
	return filepath.Join(d, "apt.conf")
}

// apt runs an apt command with the release's private configuration.
func apt(t testing.TB, release, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "APT_CONFIG=" + aptConfig(t, release), "LANG=C.UTF-8"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Download returns the .deb files of pkgs (names, or name=version) from the
// release's archive, fetched with apt-get download through a private apt
// configuration (the host's apt is not used) and kept in the cache: a file
// already there with the archive's size is not fetched again. Dependencies
// are not fetched.
func Download(t testing.TB, release string, pkgs ...string) []string {
	t.Helper()
	require(t)
	checkRelease(t, release)
	if len(pkgs) == 0 {
		t.Fatal("debroot: Download: no package named")
	}
	aptConfig(t, release) // makes its directories
	lock := openLock(t, aptDir(release)+".lock")
	defer lock.Close()
	flock(t, lock, syscall.LOCK_EX)
	updateLists(t, release)
	debs := filepath.Join(CacheDir(), "debs", release)
	if err := os.MkdirAll(debs, 0o755); err != nil {
		t.Fatalf("debroot: %v", err)
	}
	// In an empty directory: apt-get prints no URI for a file already in its cwd.
	out, err := apt(t, release, t.TempDir(), append([]string{"apt-get", "--print-uris", "download"}, pkgs...)...)
	if err != nil {
		t.Fatalf("debroot: apt-get download %s from %s: %v\n%s", strings.Join(pkgs, " "), release, err, out)
	}
	var paths, missing []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || !strings.HasPrefix(f[0], "'") {
			continue
		}
		p := filepath.Join(debs, f[1])
		size, _ := strconv.ParseInt(f[2], 10, 64)
		if st, err := os.Stat(p); err != nil || st.Size() != size {
			missing = append(missing, strings.SplitN(f[1], "_", 2)[0])
		}
		paths = append(paths, p)
	}
	if len(paths) != len(pkgs) {
		t.Fatalf("debroot: apt-get --print-uris download %s found %d files, want %d:\n%s", strings.Join(pkgs, " "), len(paths), len(pkgs), out)
	}
	if len(missing) > 0 {
		fetch(t, release, debs, pkgs, missing)
	}
	return paths
}

// fetch downloads into a temporary directory and moves the files into debs,
// so a broken download never leaves a partial .deb in the cache.
func fetch(t testing.TB, release, debs string, pkgs, missing []string) {
	t.Helper()
	tmp, err := os.MkdirTemp(debs, ".fetch-")
	if err != nil {
		t.Fatalf("debroot: %v", err)
	}
	defer os.RemoveAll(tmp) // plain files only, nothing is ever mounted here
	var want []string
	for _, p := range pkgs {
		name, _, _ := strings.Cut(p, "=")
		for _, m := range missing {
			if m == name {
				want = append(want, p)
			}
		}
	}
	start := time.Now()
	if out, err := apt(t, release, tmp, append([]string{"apt-get", "-q", "download"}, want...)...); err != nil {
		t.Fatalf("debroot: apt-get download %s from %s: %v\n%s", strings.Join(want, " "), release, err, out)
	}
	ents, _ := os.ReadDir(tmp)
	for _, e := range ents {
		if err := os.Rename(filepath.Join(tmp, e.Name()), filepath.Join(debs, e.Name())); err != nil {
			t.Fatalf("debroot: %v", err)
		}
	}
	t.Logf("debroot: downloaded %s from %s in %v", strings.Join(want, " "), release, time.Since(start).Round(time.Second))
}

// updateLists refreshes the release's package lists when they are more than
// a day old or were fetched with other sources.
func updateLists(t testing.TB, release string) {
	t.Helper()
	mark := filepath.Join(aptDir(release), "state", "updated")
	sources := sourcesList(release, "signed-by="+Keyring)
	if st, err := os.Stat(mark); err == nil && time.Since(st.ModTime()) < 24*time.Hour {
		if old, _ := os.ReadFile(mark); string(old) == sources {
			return
		}
	}
	if out, err := apt(t, release, "/", "apt-get", "-q", "update"); err != nil {
		t.Fatalf("debroot: apt-get update (%s, private configuration): %v\n%s", release, err, out)
	}
	if err := os.WriteFile(mark, []byte(sources), 0o644); err != nil {
		t.Fatalf("debroot: %v", err)
	}
}

// Unpack extracts a .deb's files into dir (dpkg-deb -x).
func Unpack(t testing.TB, deb, dir string) {
	t.Helper()
	if out, err := exec.Command("dpkg-deb", "-x", deb, dir).CombinedOutput(); err != nil {
		t.Fatalf("debroot: dpkg-deb -x %s %s: %v\n%s", deb, dir, err, out)
	}
}
