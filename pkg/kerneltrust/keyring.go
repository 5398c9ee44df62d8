// Package kerneltrust reads what the running system trusts for module
// signatures: the kernel's keyrings (/proc/keys, keyctl), whether it
// enforces signatures, and the MOK list (mokutil).
package kerneltrust

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The system keyrings. The kernel checks module signatures against
// .builtin_trusted_keys and .secondary_trusted_keys, to which .machine (MOK
// keys, 5.18+ with shim's MokListTrustedRT) is linked. .platform holds
// firmware db and (older kernels) MOK keys: mainline uses it only for kexec,
// but Debian, Ubuntu and Fedora patch the kernel to check modules against it too.
const (
	KeyringBuiltin   = ".builtin_trusted_keys"
	KeyringSecondary = ".secondary_trusted_keys"
	KeyringMachine   = ".machine"
	KeyringPlatform  = ".platform"
)

// SystemKeyrings are the keyrings KernelTrusts looks in.
var SystemKeyrings = []string{KeyringBuiltin, KeyringSecondary, KeyringMachine, KeyringPlatform}

// ProcKey is one line of /proc/keys.
type ProcKey struct {
	ID          int32
	Flags       string
	Perm        uint32
	UID, GID    int
	Type        string // truncated to 9 characters by the kernel: "asymmetri"
	Description string // as the key type describes it
}

// ParseProcKeys reads /proc/keys. Lines that do not parse are skipped: the
// format is the kernel's, and a future column must not break `status`.
func ParseProcKeys(r io.Reader) ([]ProcKey, error) {
	var keys []ProcKey
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		if k, ok := parseProcKeyLine(sc.Text()); ok {
			keys = append(keys, k)
		}
	}
	if err := sc.Err(); err != nil {
		return keys, fmt.Errorf("read /proc/keys: %w", err)
	}
	return keys, nil
}

// parseProcKeyLine splits "%08x %s %5d %4s %08x %5d %5d %-9.9s <description>".
func parseProcKeyLine(line string) (ProcKey, bool) {
	var k ProcKey
	rest := line
	field := func() string {
		rest = strings.TrimLeft(rest, " ")
		f, r, _ := strings.Cut(rest, " ")
		rest = r
		return f
	}
	id, err := strconv.ParseUint(field(), 16, 32)
	if err != nil {
		return k, false
	}
	k.ID = int32(id)
	k.Flags = field()
	field() // usage
	field() // expiry
	perm, err := strconv.ParseUint(field(), 16, 32)
	if err != nil {
		return k, false
	}
	k.Perm = uint32(perm)
	if k.UID, err = strconv.Atoi(field()); err != nil {
		return k, false
	}
	if k.GID, err = strconv.Atoi(field()); err != nil {
		return k, false
	}
	k.Type = field()
	k.Description = strings.TrimLeft(rest, " ")
	if k.Type == "" {
		return k, false
	}
	return k, true
}

// KernelKeyDescription is how the kernel names the key of cert in its
// keyrings: "<name>: <SKID hex>" (the serial's bytes when there is no SKID),
// where name is the subject's CN, prefixed with "O: " when the CN does not
// start with the organisation (crypto/asymmetric_keys/x509_cert_parser.c).
func KernelKeyDescription(cert *x509.Certificate) string {
	return kernelSubjectName(cert) + ": " + kernelKeyIDHex(cert)
}

func kernelKeyIDHex(cert *x509.Certificate) string {
	if len(cert.SubjectKeyId) > 0 {
		return hex.EncodeToString(cert.SubjectKeyId)
	}
	// raw_serial: the INTEGER's content bytes, leading zero included.
	der, err := asn1.Marshal(cert.SerialNumber)
	if err != nil || len(der) < 2 {
		return cert.SerialNumber.Text(16)
	}
	var raw asn1.RawValue
	if _, err := asn1.Unmarshal(der, &raw); err != nil {
		return cert.SerialNumber.Text(16)
	}
	return hex.EncodeToString(raw.Bytes)
}

// kernelSubjectName follows x509_fabricate_name: "O: CN", or the CN alone
// when it starts with O or shares its first 7 bytes; O alone, or the email
// address, without a CN.
func kernelSubjectName(cert *x509.Certificate) string {
	cn := cert.Subject.CommonName
	var o, email string
	if len(cert.Subject.Organization) > 0 {
		o = cert.Subject.Organization[0]
	}
	for _, n := range cert.Subject.Names {
		if n.Type.Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}) {
			email, _ = n.Value.(string)
		}
	}
	switch {
	case cn != "" && o != "":
		if strings.HasPrefix(cn, o) || len(cn) >= 7 && len(o) >= 7 && cn[:7] == o[:7] {
			return cn
		}
		return o + ": " + cn
	case cn != "":
		return cn
	case o != "":
		return o
	default:
		return email
	}
}

// KernelTrust says whether the running kernel holds a certificate's key.
type KernelTrust struct {
	// Loaded: a key with the certificate's key id is in /proc/keys.
	Loaded bool
	// Keyrings: the system keyrings holding it. Reading keyrings needs root;
	// KeyringsKnown is false when they could not be read.
	Keyrings      []string
	KeyringsKnown bool
	// ForModules: in .builtin_trusted_keys, .secondary_trusted_keys or
	// .machine, which the kernel checks module signatures against.
	ForModules bool
	// Platform: in .platform (see the constants above for what that means).
	Platform bool
}

// A KeyringReader lists the serials of the keys in keyring id.
type KeyringReader func(id int32) ([]int32, error)

// Keyctl reads a keyring of the running kernel (keyctl(KEYCTL_READ)).
func Keyctl(id int32) ([]int32, error) {
	buf := make([]byte, 4096)
	for {
		n, err := unix.KeyctlBuffer(unix.KEYCTL_READ, int(id), buf, 0)
		if err != nil {
			return nil, err
		}
		if n <= len(buf) {
			ids := make([]int32, n/4)
			for i := range ids {
				ids[i] = int32(binary.NativeEndian.Uint32(buf[4*i:]))
			}
			return ids, nil
		}
		buf = make([]byte, n)
	}
}

// KernelTrusts looks for cert's key in the kernel's keys, read from
// procKeys (the contents of /proc/keys), and in which system keyrings it is,
// read with read (Keyctl for the running kernel).
func KernelTrusts(cert *x509.Certificate, procKeys io.Reader, read KeyringReader) (KernelTrust, error) {
	return kernelTrusts(cert, procKeys, read, SystemKeyrings)
}

func kernelTrusts(cert *x509.Certificate, procKeys io.Reader, readKeyring KeyringReader, keyrings []string) (KernelTrust, error) {
	var t KernelTrust
	all, err := ParseProcKeys(procKeys)
	if err != nil {
		return t, err
	}
	want := ": " + kernelKeyIDHex(cert)
	matches := map[int32]bool{}
	rings := map[string]int32{}
	for _, k := range all {
		switch {
		case k.Type == "keyring":
			name, _, _ := strings.Cut(k.Description, ": ")
			for _, r := range keyrings {
				if name == r {
					rings[r] = k.ID
				}
			}
		case strings.HasPrefix("asymmetric", k.Type) && hasKeyID(k.Description, want):
			matches[k.ID] = true
		}
	}
	t.Loaded = len(matches) > 0
	if !t.Loaded {
		t.KeyringsKnown = true // nothing to place
		return t, nil
	}
	t.KeyringsKnown = true
	for _, r := range keyrings {
		id, ok := rings[r]
		if !ok {
			continue
		}
		members, err := readKeyring(id)
		if err != nil {
			t.KeyringsKnown = false
			continue
		}
		for _, m := range members {
			if matches[m] {
				t.Keyrings = append(t.Keyrings, r)
				if r == KeyringPlatform {
					t.Platform = true
				} else {
					t.ForModules = true
				}
				break
			}
		}
	}
	return t, nil
}

// hasKeyID: the description holds ": <hex>" ending there, at ':' or ' '.
func hasKeyID(desc, want string) bool {
	for i := 0; ; {
		j := strings.Index(desc[i:], want)
		if j < 0 {
			return false
		}
		end := i + j + len(want)
		if end == len(desc) || desc[end] == ':' || desc[end] == ' ' {
			return true
		}
		i = end
	}
}

// RlistReader replays a kernel's keyrings from what was recorded on it:
// procKeys, the contents of its /proc/keys, names the system keyrings'
// serials, and rlist(name) returns the output of `keyctl rlist %:<name>`
// there (decimal serials). Reading a keyring whose rlist failed fails.
func RlistReader(procKeys []byte, rlist func(name string) ([]byte, error)) (KeyringReader, error) {
	all, err := ParseProcKeys(bytes.NewReader(procKeys))
	if err != nil {
		return nil, err
	}
	members := map[int32][]int32{}
	failed := map[int32]error{}
	for _, k := range all {
		name, _, _ := strings.Cut(k.Description, ": ")
		if k.Type != "keyring" || !strings.HasPrefix(name, ".") {
			continue
		}
		out, err := rlist(name)
		if err != nil {
			failed[k.ID] = err
			continue
		}
		for _, f := range strings.Fields(string(out)) {
			n, err := strconv.ParseInt(f, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("keyctl rlist %%:%s: %q is not a key serial", name, f)
			}
			members[k.ID] = append(members[k.ID], int32(n))
		}
	}
	return func(id int32) ([]int32, error) {
		if err := failed[id]; err != nil {
			return nil, err
		}
		return members[id], nil
	}, nil
}
