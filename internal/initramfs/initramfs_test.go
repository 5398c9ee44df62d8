package initramfs

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
)

// The writer is checked against GNU cpio: it must list and extract what was
// put in.
func TestMatchesCPIO(t *testing.T) {
	cpio := testenv.LookPath(t, "cpio", "cpio")
	a := Archive{}
	a.Add("bin/hello", File|0o755, []byte("#!/bin/sh\necho hi\n"))
	a.Add("bin/sh", Symlink|0o777, []byte("busybox"))
	a.Add("m/odd-size.ko", File|0o644, []byte("12345"))
	a.Device("dev/console", 5, 1)
	var gz bytes.Buffer
	if err := a.Write(&gz); err != nil {
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

func TestLddPaths(t *testing.T) {
	out := "\tlinux-vdso.so.1 (0x00007ffc)\n\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x1)\n\t/lib64/ld-linux-x86-64.so.2 (0x2)\n"
	got := strings.Join(lddPaths(out), " ")
	if got != "/lib/x86_64-linux-gnu/libz.so.1 /lib64/ld-linux-x86-64.so.2" {
		t.Errorf("lddPaths = %q", got)
	}
}

func TestAddTree(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "a", "b"), 0o755)
	os.WriteFile(filepath.Join(src, "a", "b", "x"), []byte("x"), 0o600)
	os.Symlink("../b/x", filepath.Join(src, "a", "l"))
	a := Archive{}
	if err := a.AddTree("etc/t", src); err != nil {
		t.Fatal(err)
	}
	if e := a["etc/t/a/b/x"]; e.Mode != File|0o600 || string(e.Data) != "x" {
		t.Errorf("etc/t/a/b/x = %o %q", e.Mode, e.Data)
	}
	if e := a["etc/t/a/l"]; e.Mode != Symlink|0o777 || string(e.Data) != "../b/x" {
		t.Errorf("etc/t/a/l = %o %q", e.Mode, e.Data)
	}
	if e := a["etc"]; e.Mode != Dir|0o755 {
		t.Errorf("etc = %o", e.Mode)
	}
	if err := a.AddTree("f", filepath.Join(src, "a", "b", "x")); err != nil || string(a["f"].Data) != "x" {
		t.Errorf("a single file: %v %q", err, a["f"].Data)
	}
}
