package kernel

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
)

// The initramfs writer is checked against GNU cpio: it must list and extract
// what was put in.
func TestInitramfsMatchesCPIO(t *testing.T) {
	cpio := testenv.LookPath(t, "cpio", "cpio")
	fs := initramfs{}
	fs.add("bin/hello", cpioFile|0o755, []byte("#!/bin/sh\necho hi\n"))
	fs.add("bin/sh", cpioSymlink|0o777, []byte("busybox"))
	fs.add("m/odd-size.ko", cpioFile|0o644, []byte("12345"))
	fs["dev/console"] = cpioEntry{mode: cpioCharDev | 0o600, major: 5, minor: 1}
	fs.dir("dev")
	var gz bytes.Buffer
	if err := fs.write(&gz); err != nil {
		t.Fatal(err)
	}
	dec := exec.Command("gzip", "-dc")
	dec.Stdin = &gz
	archive, err := dec.Output()
	if err != nil {
		t.Fatalf("gzip -dc: %v", err)
	}

	list := exec.Command(cpio, "-t", "-v", "--quiet")
	list.Stdin = bytes.NewReader(archive)
	out, err := list.Output()
	if err != nil {
		t.Fatalf("cpio -t: %v", err)
	}
	for _, want := range []string{"bin/hello", "bin/sh -> busybox", "m/odd-size.ko", "dev/console"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("cpio -tv does not list %q:\n%s", want, out)
		}
	}
	if !strings.Contains(string(out), "crw-------") {
		t.Errorf("dev/console is not a character device:\n%s", out)
	}

	dir := t.TempDir()
	x := exec.Command(cpio, "-i", "-d", "--quiet", "--no-absolute-filenames", "--nonmatching", "dev/console")
	x.Dir = dir
	x.Stdin = bytes.NewReader(archive)
	if out, err := x.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v\n%s", err, out)
	}
	for name, want := range map[string]string{"bin/hello": "#!/bin/sh\necho hi\n", "m/odd-size.ko": "12345"} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != want {
			t.Errorf("%s extracted as %q (%v), want %q", name, got, err, want)
		}
	}
	if st, err := os.Stat(filepath.Join(dir, "bin/hello")); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("bin/hello mode: %v %v", st, err)
	}
}

func TestParseConsole(t *testing.T) {
	console := "Linux version 6.12\r\n=== BOOTED 6.12.117\r\n" +
		"=== LOAD 0 finit 000.ko\r\ndshtest: loaded\r\nVERDICT 0 exit=0 rc=0 errno=0 err=OK\r\n" +
		"=== LOAD 1 finit 001.ko\r\nLoading of unsigned module is rejected\r\n" +
		"VERDICT 1 exit=1 rc=-1 errno=129 err=Key was rejected by service\r\n" +
		"=== LOAD 2 kmod-insmod 002.ko.gz\r\n" +
		"VERDICT 2 exit=1 insmod: ERROR: could not insert module /m/002.ko.gz: Bad message\r\n" +
		"=== LOAD 3 kmod-insmod 003.ko.xz\r\nVERDICT 3 exit=0 \r\n" +
		"=== LOAD 4 finit 004.ko\r\n" + // the kernel died here: no verdict
		"=== DONE\r\n"
	v := parseConsole(console)
	want := map[int]string{0: "OK", 1: "Key was rejected by service", 2: "Bad message", 3: "OK"}
	for id, w := range want {
		if v[id] == nil || v[id].err != w {
			t.Errorf("verdict %d = %+v, want err %q", id, v[id], w)
		}
	}
	if v[4] != nil {
		t.Errorf("load 4 has no VERDICT line but parsed as %+v", v[4])
	}
	if !strings.Contains(v[1].log, "Loading of unsigned module is rejected") || strings.Contains(v[1].log, "dshtest: loaded") {
		t.Errorf("log of load 1 = %q", v[1].log)
	}
}
