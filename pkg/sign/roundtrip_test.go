package sign_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testmod"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
)

// TestTamperEveryRegion flips bytes in the module, the PKCS#7 blob and the
// trailer, and checks that verification fails with the right reason.
func TestTamperEveryRegion(t *testing.T) {
	t.Run("rsa2048/issuer-serial", func(t *testing.T) { testTamper(t, "rsa2048", sign.KeyIDIssuerSerial) })
	t.Run("p384/skid", func(t *testing.T) { testTamper(t, "p384", sign.KeyIDSKID) })
}

func testTamper(t *testing.T, keyName string, keyID sign.KeyID) {
	kp := testmod.Key(t, keyName)
	other := testmod.Key(t, "p256")
	dir := t.TempDir()
	mod := testmod.Copy(t, testmod.RealNamed(t, "crc-itu-t.ko"), dir, "m.ko")
	if _, err := sign.StripFile(mod); err != nil {
		t.Fatal(err)
	}
	unsigned, _ := os.ReadFile(mod)
	if _, err := newSigner(t, kp, "sha256", keyID).SignFile(mod); err != nil {
		t.Fatal(err)
	}
	signed, _ := os.ReadFile(mod)
	if _, err := sign.VerifyFile(mod, certs(t, kp)); err != nil {
		t.Fatalf("fresh signature: %v", err)
	}
	if _, err := sign.VerifyFile(mod, certs(t, other)); !errors.Is(err, sign.ErrUnknownKey) {
		t.Errorf("other certificate: %v, want ErrUnknownKey", err)
	}
	blobStart := len(unsigned)
	trailerStart := len(signed) - 40
	// Every byte of the module code would take long on a real module: take a spread.
	var offsets []int
	for i := 0; i < blobStart; i += blobStart/97 + 1 {
		offsets = append(offsets, i)
	}
	for i := blobStart; i < len(signed); i++ {
		offsets = append(offsets, i)
	}
	for _, off := range offsets {
		bad := append([]byte{}, signed...)
		bad[off] ^= 0x01
		p := filepath.Join(dir, "bad.ko")
		if err := os.WriteFile(p, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := sign.VerifyFile(p, certs(t, kp))
		if err == nil {
			t.Fatalf("flipped byte %d (of %d; blob at %d, trailer at %d) still verifies", off, len(signed), blobStart, trailerStart)
		}
		switch {
		case off < 4 && errors.Is(err, sign.ErrNotModule): // the ELF magic itself
		case off < blobStart && !errors.Is(err, sign.ErrBadSignature) && !errors.Is(err, sign.ErrNotModule):
			t.Fatalf("flipped module byte %d: %v, want ErrBadSignature", off, err)
		case off >= blobStart && off < trailerStart && !errors.Is(err, sign.ErrBadSignature) &&
			!errors.Is(err, sign.ErrMalformed) && !errors.Is(err, sign.ErrUnknownKey) && !errors.Is(err, sign.ErrUnsupported):
			t.Fatalf("flipped blob byte %d: %v", off, err)
		case off >= trailerStart && !errors.Is(err, sign.ErrMalformed) && !errors.Is(err, sign.ErrUnsigned):
			t.Fatalf("flipped trailer byte %d: %v, want ErrMalformed or ErrUnsigned", off, err)
		}
	}
}

// TestStripGivesOriginal: sign then strip gives the exact unsigned bytes,
// also for a module whose signatures were stacked.
func TestStripGivesOriginal(t *testing.T) {
	dir := t.TempDir()
	orig := testmod.ELF(5000)
	mod := testmod.WriteFile(t, dir, "m.ko", orig)
	if _, err := newSigner(t, testmod.Key(t, "rsa2048"), "sha512", sign.KeyIDSKID).SignFile(mod); err != nil {
		t.Fatal(err)
	}
	// Debian's sign-file stacks a second signature on top of ours.
	kp := testmod.Key(t, "p384")
	testmod.Run(t, testenv.RequireSignFile(t), "sha384", kp.Key, kp.Cert, mod)
	info, err := sign.InspectFile(mod)
	if err != nil || len(info.Signatures) != 2 {
		t.Fatalf("want 2 stacked signatures: %v %+v", err, info)
	}
	// The kernel checks the last one, over everything before it.
	if _, err := sign.VerifyFile(mod, certs(t, kp)); err != nil {
		t.Fatalf("stacked signature: %v", err)
	}
	for _, f := range []string{"xz", "zstd"} {
		testmod.Run(t, f, "-k", "-q", mod)
	}
	for _, z := range []string{mod + ".xz", mod + ".zst"} {
		if _, err := sign.VerifyFile(z, certs(t, kp)); err != nil {
			t.Fatalf("stacked signature in %s: %v", z, err)
		}
		os.Remove(z)
	}
	n, err := sign.StripFile(mod)
	if err != nil || n != 2 {
		t.Fatalf("StripFile = %d, %v", n, err)
	}
	got, _ := os.ReadFile(mod)
	if string(got) != string(orig) {
		t.Fatal("strip did not give back the original bytes")
	}
	if _, err := sign.VerifyFile(mod, nil); !errors.Is(err, sign.ErrUnsigned) {
		t.Fatalf("stripped module: %v, want ErrUnsigned", err)
	}
}

// TestCompressedModules signs .ko.xz, .ko.zst and .ko.gz made by the system
// tools, then decompresses with the system tools and verifies the result.
func TestCompressedModules(t *testing.T) {
	kp := testmod.Key(t, "p384")
	type format struct {
		ext        string
		compress   []string // command; the file name is appended
		decompress []string // to stdout
	}
	formats := []format{
		{".xz", []string{"xz", "-k", "-f"}, []string{"xz", "-dc"}},
		{".zst", []string{"zstd", "-q", "-k", "-f"}, []string{"zstd", "-dc"}},
		{".gz", []string{"gzip", "-n", "-k", "-f"}, []string{"gzip", "-dc"}},
	}
	for _, f := range formats {
		t.Run(f.ext, func(t *testing.T) {
			testenv.LookPath(t, f.compress[0], map[string]string{"xz": "xz-utils", "zstd": "zstd", "gzip": "gzip"}[f.compress[0]])
			dir := t.TempDir()
			ko := testmod.Copy(t, testmod.RealNamed(t, "fat.ko"), dir, "fat.ko")
			if _, err := sign.StripFile(ko); err != nil {
				t.Fatal(err)
			}
			unsigned, _ := os.ReadFile(ko)
			testmod.Run(t, f.compress[0], append(f.compress[1:], ko)...)
			z := ko + f.ext
			os.Chmod(z, 0o640)
			s := newSigner(t, kp, "sha512", sign.KeyIDIssuerSerial)
			res, err := s.SignFile(z)
			if err != nil || !res.Changed {
				t.Fatalf("SignFile(%s): %+v, %v", z, res, err)
			}
			st2, _ := os.Stat(z)
			if st2.Mode().Perm() != 0o640 {
				t.Errorf("mode %v not kept", st2.Mode())
			}
			// The system's decompressor reads what we wrote.
			plain := testmod.Run(t, f.decompress[0], append(f.decompress[1:], z)...)
			if !strings.HasPrefix(string(plain), string(unsigned)) {
				t.Fatal("decompressed module does not start with the unsigned module")
			}
			out := testmod.WriteFile(t, dir, "plain.ko", plain)
			if _, err := sign.VerifyFile(out, certs(t, kp)); err != nil {
				t.Fatalf("decompressed module: %v", err)
			}
			if _, err := sign.VerifyFile(z, certs(t, kp)); err != nil {
				t.Fatalf("compressed module: %v", err)
			}
			if f.ext == ".xz" {
				lv := string(testmod.Run(t, "xz", "-lvv", z))
				if !strings.Contains(lv, "CRC32") || strings.Contains(lv, "CRC64") {
					t.Errorf("xz -lvv does not show CRC32 only:\n%s", lv)
				}
				if !strings.Contains(lv, "dict=1MiB") {
					t.Errorf("xz -lvv does not show a 1 MiB dictionary:\n%s", lv)
				}
			}
			if f.ext == ".gz" {
				raw, _ := os.ReadFile(z)
				if raw[3] != 0 {
					t.Errorf("gzip flags = %#x, want none (no name, extra, comment)", raw[3])
				}
			}
			// Strip gives back the unsigned module, still compressed.
			if n, err := sign.StripFile(z); err != nil || n != 1 {
				t.Fatalf("StripFile: %d, %v", n, err)
			}
			if plain := testmod.Run(t, f.decompress[0], append(f.decompress[1:], z)...); string(plain) != string(unsigned) {
				t.Fatal("strip of compressed module did not give the unsigned module")
			}
		})
	}
}

// TestCompressedNameMustMatchContent: a .ko.xz that is not xz is refused
// without being touched.
func TestCompressedNameMustMatchContent(t *testing.T) {
	dir := t.TempDir()
	p := testmod.WriteFile(t, dir, "m.ko.xz", testmod.ELF(300))
	_, err := newSigner(t, testmod.Key(t, "rsa2048"), "sha256", sign.KeyIDIssuerSerial).SignFile(p)
	if err == nil || !strings.Contains(err.Error(), "file name says xz compression but its content is none") {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != string(testmod.ELF(300)) {
		t.Fatal("module changed")
	}
}

// TestAlreadySignedButNotKernelReady: a module already signed by this key
// but compressed with plain xz (CRC64, as DKMS 3.0 does after its signing)
// is rewritten with CRC32, so that the kernel's own decompressor takes it.
func TestAlreadySignedButNotKernelReady(t *testing.T) {
	testenv.LookPath(t, "xz", "xz-utils")
	kp := testmod.Key(t, "rsa2048")
	dir := t.TempDir()
	ko := testmod.Copy(t, testmod.RealNamed(t, "fat.ko"), dir, "fat.ko")
	s := newSigner(t, kp, "sha256", sign.KeyIDIssuerSerial)
	if _, err := s.SignFile(ko); err != nil {
		t.Fatal(err)
	}
	signed, _ := os.ReadFile(ko)
	testmod.Run(t, "xz", "-f", ko) // plain xz: CRC64
	if lv := string(testmod.Run(t, "xz", "-lvv", ko+".xz")); !strings.Contains(lv, "CRC64") {
		t.Fatalf("setup: not CRC64:\n%s", lv)
	}
	res, err := s.SignFile(ko + ".xz")
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed {
		t.Fatal("a CRC64 .ko.xz was left as it was")
	}
	if lv := string(testmod.Run(t, "xz", "-lvv", ko+".xz")); !strings.Contains(lv, "CRC32") {
		t.Errorf("not rewritten with CRC32:\n%s", lv)
	}
	// RSA PKCS#1 v1.5 is deterministic: the module inside is byte for byte the same.
	if plain := testmod.Run(t, "xz", "-dc", ko+".xz"); string(plain) != string(signed) {
		t.Error("the signed module inside changed")
	}
	// Now it is kernel-ready: signing again leaves it alone.
	if res, err := s.SignFile(ko + ".xz"); err != nil || res.Changed {
		t.Errorf("second run: %+v, %v", res, err)
	}
}
