package modfile

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
)

func TestRoundTrip(t *testing.T) {
	data := bytes.Repeat([]byte("module bytes \x00\x01\x02"), 50000)
	for _, f := range []Format{None, XZ, Zstd, Gzip} {
		t.Run(f.String(), func(t *testing.T) {
			var buf bytes.Buffer
			if err := Compress(&buf, data, f); err != nil {
				t.Fatal(err)
			}
			if got := sniff(buf.Bytes()); got != f {
				t.Fatalf("compressed stream sniffs as %v", got)
			}
			out, err := Decompress(&buf, f, DefaultLimit)
			if err != nil || !bytes.Equal(out, data) {
				t.Fatalf("round trip: %v", err)
			}
		})
	}
}

// TestDecompressionBomb: a small file that expands past the limit is refused
// after reading at most limit+1 bytes, whatever the format.
func TestDecompressionBomb(t *testing.T) {
	const limit = 8 << 20
	zeros := make([]byte, limit+1)
	for _, f := range []Format{XZ, Zstd, Gzip} {
		t.Run(f.String(), func(t *testing.T) {
			var buf bytes.Buffer
			if err := Compress(&buf, zeros, f); err != nil {
				t.Fatal(err)
			}
			if buf.Len() > limit/100 {
				t.Fatalf("bomb is %d bytes, not a bomb", buf.Len())
			}
			_, err := Decompress(&buf, f, limit)
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("err = %v, want ErrTooLarge", err)
			}
		})
	}
}

// TestSystemToolsRead: what we compress, the system's xz, zstd and gzip read.
func TestSystemToolsRead(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 100000)
	tools := map[Format][]string{XZ: {"xz", "-dc"}, Zstd: {"zstd", "-dc"}, Gzip: {"gzip", "-dc"}}
	for f, cmd := range tools {
		t.Run(f.String(), func(t *testing.T) {
			testenv.LookPath(t, cmd[0], map[Format]string{XZ: "xz-utils", Zstd: "zstd", Gzip: "gzip"}[f])
			p := filepath.Join(t.TempDir(), "m.ko"+f.Ext())
			var buf bytes.Buffer
			if err := Compress(&buf, data, f); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(p, buf.Bytes(), 0o644)
			out, err := exec.Command(cmd[0], append(cmd[1:], p)...).Output()
			if err != nil || !bytes.Equal(out, data) {
				t.Fatalf("%s: %v", cmd[0], err)
			}
		})
	}
}

func TestReadRefusesMismatch(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "m.ko.zst")
	var buf bytes.Buffer
	Compress(&buf, []byte("x"), Gzip)
	os.WriteFile(p, buf.Bytes(), 0o644)
	if _, _, err := Read(p, DefaultLimit); err == nil {
		t.Fatal("a gzip file named .ko.zst was accepted")
	}
}

// TestOpenRefusesSymlink: signing through a link would replace the link
// with a signed copy and leave its target unsigned.
func TestOpenRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "real.ko")
	os.WriteFile(target, []byte("x"), 0o644)
	link := filepath.Join(dir, "link.ko")
	os.Symlink(target, link)
	_, _, err := Open(link)
	if err == nil || err.Error() != link+" is a symbolic link (to "+target+"): give the file itself" {
		t.Fatalf("err = %v", err)
	}
	if _, _, err := Open(dir); err == nil {
		t.Fatal("a directory was opened as a module")
	}
}
