package kernel

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Errors as strerror(3) prints them (and kmod's insmod after "could not
// insert module X: ").
// The kernel's reasons (kernel/module/signing.c), logged with the refusal.
const (
	logUnsigned   = "Loading of unsigned module is rejected"
	logUnknownKey = "Loading of module with unavailable key is rejected"
)

const (
	OK          = "OK"
	keyRejected = "Key was rejected by service" // EKEYREJECTED
	badMessage  = "Bad message"                 // EBADMSG
	invalidArg  = "Invalid argument"            // EINVAL
)

// A row is one module and how it is loaded; each is a subtest asserting the
// kernel's own answer. To add a row (for example a module built and signed by
// real dkms with the hook), append to matrix: prepare gets the bench (the
// cached kernel in b.k, its tree in b.k.Tree, the keys in b.k.Key/Cert, the
// tool in b.tool) and a file name stem, and returns the path of the module
// to load.
type row struct {
	name    string
	kernel  string // kernel variant booted: "zstd" (default), "xz", "gzip"
	method  string // "finit" (default), "finit-compressed", "kmod-insmod"
	prepare func(b *bench, stem string) (string, error)
	want    string // OK, or the error text the kernel gives
	klog    string // if set, a line the kernel must log while loading it
	// verify is what `dkms-sign-hook verify` must say: "valid" or "invalid";
	// "" means the same as the kernel (want == OK). "-" skips the comparison
	// (the row checks a loader, not the file).
	verify string
}

// signed returns a prepare func: a fresh module signed with sign.
func signed(sign func(b *bench, mod string) error) func(*bench, string) (string, error) {
	return func(b *bench, stem string) (string, error) {
		mod, err := b.fresh(stem)
		if err != nil {
			return "", err
		}
		return mod, sign(b, mod)
	}
}

// then chains a file edit after prepare.
func then(prepare func(*bench, string) (string, error), f func([]byte) ([]byte, error)) func(*bench, string) (string, error) {
	return func(b *bench, stem string) (string, error) {
		mod, err := prepare(b, stem)
		if err != nil {
			return "", err
		}
		return mod, edit(mod, f)
	}
}

// compressed chains a system compressor after prepare.
func compressed(prepare func(*bench, string) (string, error), format string) func(*bench, string) (string, error) {
	return func(b *bench, stem string) (string, error) {
		mod, err := prepare(b, stem)
		if err != nil {
			return "", err
		}
		return compress(mod, format)
	}
}

func unsigned(b *bench, stem string) (string, error) { return b.fresh(stem) }

// sigs wraps prepare, checking that the (uncompressed) module carries n
// appended signatures: replacing a signature must not stack a second one.
func sigs(n int, prepare func(*bench, string) (string, error)) func(*bench, string) (string, error) {
	return func(b *bench, stem string) (string, error) {
		mod, err := prepare(b, stem)
		if err != nil {
			return "", err
		}
		data, err := os.ReadFile(mod)
		if err != nil {
			return "", err
		}
		if got := bytes.Count(data, []byte(sigMagic)); got != n {
			return "", fmt.Errorf("%s carries %d signatures, want %d", mod, got, n)
		}
		return mod, nil
	}
}

// matrix is the whole table (issue 4); kmod is the version of the kmod whose
// insmod the kmod-insmod rows run.
func matrix(kmod int) []row {
	var rows []row

	// Loads: each trusted key x each hash x both signer ids, through `sign`.
	for _, key := range trusted {
		for _, hash := range hashes {
			for _, skid := range []bool{false, true} {
				id := "issuer-serial"
				if skid {
					id = "skid"
				}
				rows = append(rows, row{
					name: fmt.Sprintf("sign/%s/%s/%s", key, hash, id),
					prepare: signed(func(b *bench, mod string) error {
						return b.sign(mod, key, hash, skid)
					}),
					want: OK,
				})
			}
		}
	}

	// The sign-file drop-in, and Debian's sign-file as the reference.
	for _, key := range trusted {
		rows = append(rows, row{
			name: "sign-file/" + key + "/sha512",
			prepare: signed(func(b *bench, mod string) error {
				return b.signFileCmd(mod, key, "sha512", false)
			}),
			want: OK,
		})
	}
	rows = append(rows,
		row{
			name: "sign-file/p384/sha3-384/skid",
			prepare: signed(func(b *bench, mod string) error {
				return b.signFileCmd(mod, "p384", "sha3-384", true)
			}),
			want: OK,
		},
		row{
			name: "debian-sign-file/rsa4096/sha512",
			prepare: signed(func(b *bench, mod string) error {
				return b.debianSign(mod, "rsa4096", "sha512", false)
			}),
			want: OK,
		},
		row{
			name: "debian-sign-file/p384/sha384/skid",
			prepare: signed(func(b *bench, mod string) error {
				return b.debianSign(mod, "p384", "sha384", true)
			}),
			want: OK,
		},
	)

	// The key the kernel build made itself (MODULE_SIG_ALL, trusted): one
	// PEM file holding key and certificate, the certificate also as DER.
	buildKey := func(b *bench) (key, cert string) {
		return filepath.Join(b.k.Tree, "certs", "signing_key.pem"), filepath.Join(b.k.Tree, "certs", "signing_key.x509")
	}
	rows = append(rows,
		row{
			name: "kernel-build-key/sign/pem-key+der-cert",
			prepare: signed(func(b *bench, mod string) error {
				key, cert := buildKey(b)
				return b.signWith(mod, key, cert, "sha512")
			}),
			want: OK,
		},
		row{
			name: "kernel-build-key/sign/pem-key+cert-in-one-file",
			prepare: signed(func(b *bench, mod string) error {
				key, _ := buildKey(b)
				return b.signWith(mod, key, key, "sha256")
			}),
			want: OK,
		},
		row{
			name: "kernel-build-key/sign-file",
			prepare: signed(func(b *bench, mod string) error {
				key, cert := buildKey(b)
				return cmd(b.tool, "sign-file", "sha512", key, cert, mod)
			}),
			want: OK,
		},
	)

	// DKMS signs with its own key first (Debian: /var/lib/dkms/mok.key, not
	// trusted by this kernel); the tool must replace that signature.
	dkmsSigned := signed(func(b *bench, mod string) error {
		return b.debianSign(mod, "dkms-mok", "sha512", false)
	})
	dkmsResigned := func(b *bench, stem string) (string, error) {
		mod, err := dkmsSigned(b, stem)
		if err != nil {
			return "", err
		}
		return mod, b.sign(mod, "rsa4096", "sha512", false)
	}
	rows = append(rows,
		row{name: "dkms-mok/only", prepare: dkmsSigned, want: keyRejected, klog: logUnknownKey},
		row{name: "dkms-mok/re-signed-by-sign", prepare: sigs(1, dkmsResigned), want: OK},
	)

	// Refused.
	good := signed(func(b *bench, mod string) error { return b.sign(mod, "rsa4096", "sha512", false) })
	goodEC := signed(func(b *bench, mod string) error { return b.sign(mod, "p384", "sha384", false) })
	rows = append(rows,
		row{name: "refused/unsigned", prepare: unsigned, want: keyRejected, klog: logUnsigned},
		row{
			name: "refused/untrusted-key",
			prepare: signed(func(b *bench, mod string) error {
				return b.sign(mod, "attacker", "sha512", false)
			}),
			want: keyRejected,
			klog: logUnknownKey,
		},
		row{name: "refused/flipped-code-byte/rsa", prepare: then(good, flipCode), want: keyRejected},
		row{name: "refused/flipped-code-byte/ecdsa", prepare: then(goodEC, flipCode), want: keyRejected},
		row{name: "refused/flipped-signature-byte/rsa", prepare: then(good, flipSig), want: keyRejected},
		row{name: "refused/flipped-signature-byte/ecdsa", prepare: then(goodEC, flipSig), want: keyRejected},
		row{name: "refused/truncated-signature", prepare: then(good, truncateSig), want: badMessage},
		// Stacked signatures (Debian's sign-file appends): only the last counts.
		row{
			name: "refused/stacked-last-untrusted",
			prepare: sigs(2, signed(func(b *bench, mod string) error {
				if err := b.debianSign(mod, "rsa4096", "sha512", false); err != nil {
					return err
				}
				return b.debianSign(mod, "attacker", "sha512", false)
			})),
			want: keyRejected,
			klog: logUnknownKey,
		},
		row{
			name: "stacked-last-trusted",
			prepare: sigs(2, signed(func(b *bench, mod string) error {
				if err := b.debianSign(mod, "attacker", "sha512", false); err != nil {
					return err
				}
				return b.debianSign(mod, "rsa4096", "sha512", false)
			})),
			want: OK,
		},
	)

	// `sign` on a module carrying two stacked signatures replaces both;
	// `strip` gives back the exact unsigned module, which is refused.
	stacked := signed(func(b *bench, mod string) error {
		if err := b.debianSign(mod, "attacker", "sha512", false); err != nil {
			return err
		}
		return b.debianSign(mod, "rsa2048", "sha256", false)
	})
	rows = append(rows,
		row{
			name: "stacked-then-sign",
			prepare: sigs(1, func(b *bench, stem string) (string, error) {
				mod, err := stacked(b, stem)
				if err != nil {
					return "", err
				}
				return mod, b.sign(mod, "p256", "sha256", false)
			}),
			want: OK,
		},
		row{
			name: "refused/stripped",
			prepare: func(b *bench, stem string) (string, error) {
				mod, err := stacked(b, stem)
				if err != nil {
					return "", err
				}
				if err := cmd(b.tool, "strip", mod); err != nil {
					return "", err
				}
				got, err1 := os.ReadFile(mod)
				orig, err2 := os.ReadFile(b.unsigned)
				if err1 != nil || err2 != nil || !bytes.Equal(got, orig) {
					return "", fmt.Errorf("strip did not give back the unsigned module (%v, %v)", err1, err2)
				}
				return mod, nil
			},
			want: keyRejected,
			klog: logUnsigned,
		},
	)

	// Compressed modules, on the kernel that decompresses their format.
	for _, c := range []struct{ ext, kernel string }{{"xz", "xz"}, {"zst", "zstd"}, {"gz", "gzip"}} {
		// Sign, then compress with the system tool (what DKMS and kbuild do).
		signedThenCompressed := compressed(good, c.ext)
		// Compress, then sign the compressed file in place with the tool.
		toolSigned := func(b *bench, stem string) (string, error) {
			mod, err := compressed(unsigned, c.ext)(b, stem)
			if err != nil {
				return "", err
			}
			if !b.have["sign"] {
				return "", fmt.Errorf("dkms-sign-hook sign is missing")
			}
			return mod, b.sign(mod, "p384", "sha384", false)
		}
		// What DKMS does on a kernel with compressed modules: sign with its
		// own key, compress, then the hook signs the compressed file in place.
		dkmsFlow := func(b *bench, stem string) (string, error) {
			mod, err := b.fresh(stem)
			if err != nil {
				return "", err
			}
			if err := b.debianSign(mod, "dkms-mok", "sha512", false); err != nil {
				return "", err
			}
			if mod, err = compress(mod, c.ext); err != nil {
				return "", err
			}
			return mod, b.sign(mod, "rsa2048", "sha256", true)
		}
		rows = append(rows,
			row{name: c.kernel + "/dkms-signed-compressed-then-sign/in-kernel", kernel: c.kernel,
				method: "finit-compressed", prepare: dkmsFlow, want: OK},
			row{name: c.kernel + "/dkms-signed-compressed-then-sign/kmod-insmod", kernel: c.kernel,
				method: "kmod-insmod", prepare: dkmsFlow, want: kmodWant(kmod, c.ext, c.kernel), klog: kmodLog(kmod, c.ext, c.kernel), verify: "-"},
		)
		rows = append(rows,
			// Each kernel variant enforces signatures on plain modules too.
			row{name: c.kernel + "/plain/signed", kernel: c.kernel, prepare: good, want: OK},
			row{name: c.kernel + "/plain/unsigned", kernel: c.kernel, prepare: unsigned, want: keyRejected, klog: logUnsigned},
			row{name: c.kernel + "/signed-then-compressed/in-kernel", kernel: c.kernel,
				method: "finit-compressed", prepare: signedThenCompressed, want: OK},
			row{name: c.kernel + "/signed-then-compressed/kmod-insmod", kernel: c.kernel,
				method: "kmod-insmod", prepare: signedThenCompressed, want: kmodWant(kmod, c.ext, c.kernel), klog: kmodLog(kmod, c.ext, c.kernel), verify: "-"},
			row{name: c.kernel + "/tool-signed-compressed/in-kernel", kernel: c.kernel,
				method: "finit-compressed", prepare: toolSigned, want: OK},
			row{name: c.kernel + "/tool-signed-compressed/kmod-insmod", kernel: c.kernel,
				method: "kmod-insmod", prepare: toolSigned, want: kmodWant(kmod, c.ext, c.kernel), klog: kmodLog(kmod, c.ext, c.kernel), verify: "-"},
			row{name: c.kernel + "/unsigned-compressed/in-kernel", kernel: c.kernel,
				method: "finit-compressed", prepare: compressed(unsigned, c.ext), want: keyRejected, klog: logUnsigned},
			row{name: c.kernel + "/tampered-then-compressed/in-kernel", kernel: c.kernel,
				method: "finit-compressed", prepare: compressed(then(good, flipCode), c.ext), want: keyRejected},
		)
	}
	// zstd variants, through kmod's userspace decompression and the kernel's.
	for _, z := range []struct{ name, flag string }{{"streamed", "-c"}, {"level-19", "-19"}, {"no-check", "--no-check"}} {
		zst := func(b *bench, stem string) (string, error) {
			mod, err := good(b, stem)
			if err != nil {
				return "", err
			}
			if z.flag == "-c" { // from a pipe: no content size in the frame header
				return mod + ".zst", cmd("sh", "-c", `zstd -q -c <"$1" >"$1.zst"`, "sh", mod)
			}
			return mod + ".zst", cmd("zstd", "-q", "-f", z.flag, mod)
		}
		rows = append(rows,
			row{name: "zstd/" + z.name + "/in-kernel", kernel: "zstd", method: "finit-compressed", prepare: zst, want: OK},
			row{name: "zstd/" + z.name + "/kmod-insmod", kernel: "zstd", method: "kmod-insmod", prepare: zst, want: kmodWant(kmod, "zst", "zstd"), verify: "-"},
		)
	}

	// Keys on a PKCS#11 token (SoftHSM2; token_test.go).
	rows = append(rows, tokenRows()...)

	// Keys made by `dkms-sign-hook keygen` (keygen_test.go).
	rows = append(rows, keygenRows()...)

	// Built by the real dkms against the cached tree (dkms_test.go).
	rows = append(rows, dkmsRows()...)

	// kmod's insmod with a format the booted kernel does not decompress
	// itself (kmod 31+ then falls back to userspace decompression).
	for _, x := range []struct{ ext, kernel string }{
		{"zst", "xz"}, {"gz", "xz"}, {"xz", "gzip"}, {"zst", "gzip"}, {"gz", "zstd"}, {"xz", "zstd"},
	} {
		rows = append(rows, row{name: x.kernel + "/other-format-" + x.ext + "/kmod-insmod", kernel: x.kernel,
			method: "kmod-insmod", prepare: compressed(good, x.ext), want: kmodWant(kmod, x.ext, x.kernel),
			klog: kmodLog(kmod, x.ext, x.kernel), verify: "-"})
	}
	rows = append(rows, row{name: "xz/crc64/kmod-insmod", kernel: "xz", method: "kmod-insmod",
		prepare: compressed(good, "xz-crc64"), want: kmodWant(kmod, "xz-crc64", "xz"),
		klog: kmodLog(kmod, "xz-crc64", "xz"), verify: "-"})

	// The tool, signing a plain-xz (CRC64) module in place, writes what the
	// kernel can decompress.
	rows = append(rows, row{name: "xz/crc64-input-signed-by-tool/in-kernel", kernel: "xz", method: "finit-compressed",
		prepare: func(b *bench, stem string) (string, error) {
			mod, err := compressed(unsigned, "xz-crc64")(b, stem)
			if err != nil {
				return "", err
			}
			return mod, b.sign(mod, "rsa4096", "sha512", false)
		}, want: OK})

	// Plain xz uses CRC64, which in-kernel decompression refuses: the file's
	// signature is fine, its container is not.
	rows = append(rows, row{name: "xz/crc64/in-kernel", kernel: "xz", method: "finit-compressed",
		prepare: compressed(good, "xz-crc64"), want: invalidArg, verify: "valid", klog: "decompression failed with status 6"})
	return rows
}

// Errors kmod's insmod prints for what the kernel (or kmod) refused.
const (
	notImplemented = "Function not implemented" // ENOSYS: kmod cannot decompress
	kmodInvalid    = "Invalid parameters"       // kmod's text for EINVAL
)

// kmodWant is what kmod's insmod makes of a correctly signed compressed
// module (extension ext, or "xz-crc64") on the kernel variant booted
// (README.md, "kmod findings").
//
// Debian 12's kmod 30 decompresses .ko.xz (CRC32 or CRC64) and .ko.zst in
// userspace and loads them; it is built without zlib, so it hands a .ko.gz to
// the kernel as is, and the kernel, asked to load an ELF file that is not
// one, finds no signature ("Loading of unsigned module is rejected").
//
// kmod 31+ (observed: sid's kmod 34.2, also without zlib) passes the file to
// the kernel with MODULE_INIT_COMPRESSED_FILE when the kernel decompresses
// that format (/sys/module/compression), else decompresses in userspace: a
// .ko.gz loads on a gzip kernel only (elsewhere ENOSYS), and a CRC64 .ko.xz
// on an xz kernel fails in the kernel (EINVAL) with no userspace fallback.
// kmodRowsOnly, when set, keeps only the kmod-insmod rows and, for each
// kernel they boot, the plain signed and unsigned rows that show it
// enforces: test/generations runs that with other releases' kmod.
const kmodRowsOnly = "DKMS_SIGN_HOOK_KMOD_ROWS_ONLY"

func kmodRows(rows []row) []row {
	var out []row
	for _, r := range rows {
		if r.method == "kmod-insmod" || strings.HasSuffix(r.name, "/plain/signed") || strings.HasSuffix(r.name, "/plain/unsigned") {
			out = append(out, r)
		}
	}
	return out
}

func kmodWant(kmod int, ext, kernel string) string {
	switch {
	case kmod <= 30 && ext == "gz", kmod < 30 && ext == "zst":
		// No zlib (kmod 30, Debian 12), no zstd either (kmod 28, Debian
		// 11): the file goes to the kernel as is, with no signature on it.
		return keyRejected
	case kmod <= 30:
		return OK
	case ext == "gz" && kernel != "gzip":
		return notImplemented
	case ext == "xz-crc64" && kernel == "xz":
		return kmodInvalid
	}
	return OK
}

// kmodLog is what the kernel logs for kmodWant's refusals.
func kmodLog(kmod int, ext, kernel string) string {
	switch kmodWant(kmod, ext, kernel) {
	case keyRejected:
		return logUnsigned
	case kmodInvalid:
		return "decompression failed with status 6"
	}
	return ""
}
