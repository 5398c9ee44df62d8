package kernel

import (
	"path/filepath"
)

// keygenRows are modules signed with keys `dkms-sign-hook keygen` made
// (issue 5): build-kernel.sh runs keygen once into CACHE/certs/keygen, with
// its defaults (RSA-4096) and with --type ecdsa --curve P-384, and compiles
// both certificates into the kernel. The keys are used exactly as keygen
// wrote them (signing_key.pem 0600, signing_key.x509 PEM, signing_key.der).
func keygenRows() []row {
	var rows []row
	for _, r := range []struct {
		key, hash string
		skid      bool
	}{
		{"keygen-rsa4096", "sha256", false},
		{"keygen-rsa4096", "sha512", false},
		{"keygen-rsa4096", "sha512", true},
		{"keygen-p384", "sha384", false},
	} {
		name := "keygen/" + r.key[len("keygen-"):] + "/sign/" + r.hash
		if r.skid {
			name += "/skid"
		}
		rows = append(rows, row{
			name: name,
			prepare: signed(func(b *bench, mod string) error {
				return b.sign(mod, r.key, r.hash, r.skid)
			}),
			want: OK,
		})
	}
	rows = append(rows,
		// The DER certificate, the form mokutil --import takes.
		row{
			name: "keygen/p384/sign/sha384/der-cert",
			prepare: signed(func(b *bench, mod string) error {
				return b.signWith(mod, b.k.Key("keygen-p384"), b.k.CertDER("keygen-p384"), "sha384")
			}),
			want: OK,
		},
		// The sign-file drop-in (the DKMS framework.conf.d route).
		row{
			name: "keygen/rsa4096/sign-file/sha512",
			prepare: signed(func(b *bench, mod string) error {
				return cmd(b.tool, "sign-file", "sha512", b.k.Key("keygen-rsa4096"), b.k.Cert("keygen-rsa4096"), mod)
			}),
			want: OK,
		},
		// A key keygen made now, whose certificate the kernel does not hold:
		// the rows above load because of the compiled-in certificates.
		row{
			name: "refused/keygen-untrusted",
			prepare: signed(func(b *bench, mod string) error {
				dir := filepath.Join(b.dir, "keygen-untrusted")
				if err := cmd(b.tool, "keygen", "--bits", "2048", "--cn", "keygen, not trusted", "--out", dir); err != nil {
					return err
				}
				return b.signWith(mod, filepath.Join(dir, "signing_key.pem"), filepath.Join(dir, "signing_key.x509"), "sha256")
			}),
			want: keyRejected,
			klog: logUnknownKey,
		},
	)
	return rows
}
