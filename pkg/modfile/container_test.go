package modfile

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
)

// TestXZParamsAgainstXZ: what we read of real xz files is what `xz -lvv` says.
func TestXZParamsAgainstXZ(t *testing.T) {
	xzPath := testenv.LookPath(t, "xz", "xz-utils")
	data := bytes.Repeat([]byte("kernel module bytes 0123456789 "), 200000) // ~6 MiB
	cases := []struct {
		args        []string
		check       byte
		dict        int64
		kernelReady bool
	}{
		{[]string{"--check=crc32", "--lzma2=dict=1MiB"}, xzCheckCRC32, 1 << 20, true},
		{nil, 4, 8 << 20, false},                                     // plain xz: CRC64, 8 MiB
		{[]string{"--check=none", "-1"}, xzCheckNone, 1 << 20, true}, // preset 1: 1 MiB
		{[]string{"-T2", "--block-size=1MiB", "--check=crc32", "--lzma2=dict=512KiB"}, xzCheckCRC32, 512 << 10, true},
		{[]string{"-9", "--check=sha256"}, 10, 64 << 20, false},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			cmd := exec.Command(xzPath, append([]string{"-c"}, tc.args...)...)
			cmd.Stdin = bytes.NewReader(data)
			out, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			check, dict, err := xzParams(bytes.NewReader(out), int64(len(out)))
			if err != nil {
				t.Fatal(err)
			}
			if check != tc.check || dict != tc.dict {
				t.Errorf("check %d dict %d, want %d %d", check, dict, tc.check, tc.dict)
			}
			c, err := inspectContainer(bytes.NewReader(out), int64(len(out)), XZ)
			if err != nil || c.KernelReady != tc.kernelReady {
				t.Errorf("inspect: %+v, %v", c, err)
			}
			if got, err := Decompress(bytes.NewReader(out), XZ, DefaultLimit); err != nil || !bytes.Equal(got, data) {
				t.Errorf("decompress: %v", err)
			}
		})
	}
}

// TestXZDictionaryBomb: a tiny xz file that asks for a 4 GiB dictionary is
// refused before any decoder allocates it.
func TestXZDictionaryBomb(t *testing.T) {
	var buf bytes.Buffer
	if err := Compress(&buf, []byte("tiny"), XZ); err != nil {
		t.Fatal(err)
	}
	bomb := buf.Bytes()
	// The LZMA2 property byte of the first block header names the dictionary.
	hdrLen := (int(bomb[12]) + 1) * 4
	i := bytes.Index(bomb[12:12+hdrLen], []byte{0x21, 0x01})
	if i < 0 {
		t.Fatal("no LZMA2 filter flags in our own block header")
	}
	bomb[12+i+2] = 40 // 4 GiB - 1
	// Fix the block header CRC32 so that only the size is wrong.
	fixBlockHeaderCRC(bomb[12 : 12+hdrLen])
	dir := t.TempDir()
	p := filepath.Join(dir, "bomb.ko.xz")
	os.WriteFile(p, bomb, 0o644)
	_, _, err := Read(p, DefaultLimit)
	if err == nil || !strings.Contains(err.Error(), "dictionary of 4095 MiB is larger than any module needs") {
		t.Fatalf("err = %v", err)
	}
}

// TestXZMalformed: truncated or garbled xz files are errors, never panics.
func TestXZMalformed(t *testing.T) {
	var buf bytes.Buffer
	Compress(&buf, bytes.Repeat([]byte("x"), 10000), XZ)
	good := buf.Bytes()
	for n := 0; n < len(good); n++ {
		if _, _, err := xzParams(bytes.NewReader(good[:n]), int64(n)); err == nil {
			t.Fatalf("truncated to %d bytes: accepted", n)
		}
	}
	for i := range good {
		bad := append([]byte{}, good...)
		bad[i] ^= 0xff
		xzParams(bytes.NewReader(bad), int64(len(bad))) // must not panic
	}
	if _, _, err := xzParams(bytes.NewReader(good), int64(len(good))); err != nil {
		t.Fatal(err)
	}
}

// TestGzipHeaderFlags: the kernel skips only FNAME in a gzip header.
func TestGzipHeaderFlags(t *testing.T) {
	var buf bytes.Buffer
	Compress(&buf, []byte("module"), Gzip)
	ours := buf.Bytes()
	if c, _ := inspectContainer(bytes.NewReader(ours), int64(len(ours)), Gzip); !c.KernelReady {
		t.Fatalf("our gzip: %+v", c)
	}
	extra := append([]byte{}, ours...)
	extra[3] = 0x10 // FCOMMENT
	if c, _ := inspectContainer(bytes.NewReader(extra), int64(len(extra)), Gzip); c.KernelReady {
		t.Fatal("a gzip header with a comment is not kernel-ready")
	}
}

// FuzzXZParams: the xz header, index and block header reader never panics
// and never reads outside the input.
func FuzzXZParams(f *testing.F) {
	for _, data := range [][]byte{[]byte("tiny"), bytes.Repeat([]byte("module "), 5000)} {
		var buf bytes.Buffer
		if err := Compress(&buf, data, XZ); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		xzParams(bytes.NewReader(data), int64(len(data)))
	})
}
