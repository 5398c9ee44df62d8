package sign_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testmod"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/modfile"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
)

// bogusSignature returns a trailer-framed "signature" of n random bytes:
// well-formed as far as the trailer goes, which is all stripping reads.
func bogusSignature(n int) []byte {
	blob := make([]byte, n)
	rand.Read(blob)
	return append(blob, sign.Trailer(n)...)
}

// TestCompressedLongTrailer: signatures reaching back further than the
// streaming pass holds (here 3 x 200 KiB stacked) make it start again with
// a longer hold; the result is the unsigned module with one new signature,
// for every format.
func TestCompressedLongTrailer(t *testing.T) {
	kp := testmod.Key(t, "p256")
	unsigned := testmod.ELF(3 << 20)
	rand.Read(unsigned[64 : 1<<20]) // some incompressible content
	signed := append(append([]byte{}, unsigned...), bogusSignature(200<<10)...)
	signed = append(signed, bogusSignature(200<<10)...)
	signed = append(signed, bogusSignature(200<<10)...)
	for _, f := range []modfile.Format{modfile.None, modfile.XZ, modfile.Zstd, modfile.Gzip} {
		t.Run(f.String(), func(t *testing.T) {
			var buf bytes.Buffer
			if err := modfile.Compress(&buf, signed, f); err != nil {
				t.Fatal(err)
			}
			mod := testmod.WriteFile(t, t.TempDir(), "m"+f.Suffix(), buf.Bytes())
			info, err := sign.InspectFile(mod)
			if err != nil || len(info.Signatures) != 3 || info.UnsignedSize != int64(len(unsigned)) {
				t.Fatalf("InspectFile: %+v, %v", info, err)
			}
			res, err := newSigner(t, kp, "sha256", sign.KeyIDSKID).SignFile(mod)
			if err != nil || res.Replaced != 3 {
				t.Fatalf("SignFile: %+v, %v", res, err)
			}
			data, _, err := modfile.Read(mod, modfile.DefaultLimit)
			if err != nil || !bytes.HasPrefix(data, unsigned) {
				t.Fatalf("signed module does not start with the unsigned one (%v)", err)
			}
			if _, err := sign.VerifyFile(mod, certs(t, kp)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestCompressedAlreadySigned: signing a compressed module a second time
// with the same key and form leaves the file as it is (not even rewritten),
// and no temporary file remains.
func TestCompressedAlreadySigned(t *testing.T) {
	kp := testmod.Key(t, "rsa2048")
	dir := t.TempDir()
	var buf bytes.Buffer
	modfile.Compress(&buf, testmod.ELF(100000), modfile.Zstd)
	mod := testmod.WriteFile(t, dir, "m.ko.zst", buf.Bytes())
	s := newSigner(t, kp, "sha256", sign.KeyIDIssuerSerial)
	first, err := s.SignFile(mod)
	if err != nil || !first.Changed {
		t.Fatalf("first: %+v, %v", first, err)
	}
	before, _ := os.Stat(mod)
	second, err := s.SignFile(mod)
	if err != nil || second.Changed || second.SHA256 != first.SHA256 {
		t.Fatalf("second: %+v, %v", second, err)
	}
	after, _ := os.Stat(mod)
	if !os.SameFile(before, after) {
		t.Error("the module was rewritten")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("%d entries in the directory, want 1", len(entries))
	}
}

// TestModuleLock: a run signing a module waits while another holds the
// module lock (flock on the module file), then signs the file it finds.
func TestModuleLock(t *testing.T) {
	kp := testmod.Key(t, "p256")
	mod := testmod.WriteFile(t, t.TempDir(), "m.ko", testmod.ELF(10000))
	f, err := os.Open(mod)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := newSigner(t, kp, "sha256", sign.KeyIDSKID).SignFile(mod)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("signed while another held the lock (%v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	// Replace the module while holding the lock, as a run before would.
	os.Rename(testmod.WriteFile(t, filepath.Dir(mod), "new.ko", testmod.ELF(20000)), mod)
	f.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	info, err := sign.VerifyFile(mod, certs(t, kp))
	if err != nil || info.UnsignedSize != 20000 {
		t.Fatalf("after the wait: %+v, %v (want the new module signed)", info, err)
	}
}

// TestDebrisRemoved: a temporary file a killed run left next to a module
// goes when a later run writes into that directory; a live one stays.
func TestDebrisRemoved(t *testing.T) {
	kp := testmod.Key(t, "p256")
	dir := t.TempDir()
	mod := testmod.WriteFile(t, dir, "m.ko", testmod.ELF(10000))
	dead := testmod.WriteFile(t, dir, ".other.ko.xz.tmp-4242", []byte("half a module"))
	foreign := testmod.WriteFile(t, dir, ".notes.tmp-1", []byte("not ours"))
	live := testmod.WriteFile(t, dir, ".busy.ko.tmp-77", []byte("being written"))
	lf, _ := os.Open(live)
	defer lf.Close()
	unix.Flock(int(lf.Fd()), unix.LOCK_EX)
	if _, err := newSigner(t, kp, "sha256", sign.KeyIDSKID).SignFile(mod); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Error("a dead run's temporary file is still there")
	}
	for _, p := range []string{foreign, live} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed", p)
		}
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 3 {
		t.Errorf("directory holds %s", strings.Join(names, " "))
	}
}

// TestSignFilesBatches: more modules than one batch, in two directories and
// every format, with one that is not a module: each result comes in order,
// every module verifies, the bad one is reported and left as it was, and no
// temporary file remains.
func TestSignFilesBatches(t *testing.T) {
	kp := testmod.Key(t, "p256")
	dirs := []string{t.TempDir(), t.TempDir()}
	var paths []string
	for i := 0; i < 300; i++ {
		f := modfile.Formats[i%len(modfile.Formats)]
		var buf bytes.Buffer
		modfile.Compress(&buf, testmod.ELF(2000+i), f)
		paths = append(paths, testmod.WriteFile(t, dirs[i%2], fmt.Sprintf("m%03d%s", i, f.Suffix()), buf.Bytes()))
	}
	bad := paths[150]
	os.WriteFile(bad, []byte("not a module"), 0o644)
	var got []string
	newSigner(t, kp, "sha256", sign.KeyIDSKID).SignFiles(paths, 0, func(p string, res *sign.Result, err error) {
		got = append(got, p)
		if p == bad {
			if err == nil {
				t.Errorf("%s: signed a file that is not a module", p)
			}
			return
		}
		if err != nil || !res.Changed {
			t.Errorf("%s: %+v, %v", p, res, err)
		}
	})
	if strings.Join(got, "\n") != strings.Join(paths, "\n") {
		t.Fatal("results not reported once each in the order of paths")
	}
	for _, p := range paths {
		if _, err := sign.VerifyFile(p, certs(t, kp)); err != nil && p != bad {
			t.Fatal(err)
		}
	}
	if b, _ := os.ReadFile(bad); string(b) != "not a module" {
		t.Error("the bad file was changed")
	}
	for _, d := range dirs {
		if entries, _ := os.ReadDir(d); len(entries) != 150 {
			t.Errorf("%d entries in %s, want 150", len(entries), d)
		}
	}
}
