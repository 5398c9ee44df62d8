package fleet

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The search for the private key runs inside a machine's namespaces: the
// test binary runs itself there (through nsenter) with searchEnv set, reads
// the patterns on stdin (never from a file the machine could keep) and
// prints one line per file holding one.
const searchEnv = "FLEET_KEY_SEARCH_SINCE"

func TestMain(m *testing.M) {
	if since := os.Getenv(searchEnv); since != "" {
		os.Exit(searchMain(since))
	}
	os.Exit(m.Run())
}

// keyPatterns are byte strings only a holder of the private key has: for
// each key, windows of its secret numbers in big-endian binary (DER holds
// them so), a line from the middle of its PEM encoding, and windows of the
// token's object files (SoftHSM's encrypted store: with the PIN, which every
// host holds, they are the key) but those of public objects, whose windows
// are in public (the certificates).
func keyPatterns(t *testing.T, pemFiles, tokenFiles []string, public [][]byte) map[string][]byte {
	t.Helper()
	pats := map[string][]byte{}
	window := func(name string, b []byte) {
		if len(b) >= 48 {
			mid := len(b) / 2
			pats[name] = b[mid-24 : mid+24]
		}
	}
	for _, f := range pemFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		pats[filepath.Base(f)+" PEM line"] = []byte(lines[len(lines)/2])
		blk, _ := pem.Decode(data)
		key, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		switch k := key.(type) {
		case *rsa.PrivateKey:
			window(filepath.Base(f)+" d", k.D.Bytes())
			window(filepath.Base(f)+" p", k.Primes[0].Bytes())
		case *ecdsa.PrivateKey:
			b, _ := k.Bytes()
			pats[filepath.Base(f)+" d"] = b
		}
	}
	for _, f := range tokenFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		window("token file "+filepath.Base(f), data)
		// A public key's object holds its modulus in the clear, as do the
		// certificates every host has: only windows of secret objects count.
		for _, pub := range public {
			if w := pats["token file "+filepath.Base(f)]; w != nil && bytes.Contains(pub, w) {
				delete(pats, "token file "+filepath.Base(f))
			}
		}
	}
	return pats
}

// searchKey searches every regular file the machine sees (but /proc, /sys,
// /dev) that changed since the test began (the key was made by the test: a
// copy of it can only be in such a file) and returns "path: pattern" hits.
func searchKey(t *testing.T, m *machine, since time.Time, pats map[string][]byte) []string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Error(err)
		return nil
	}
	var in bytes.Buffer
	for name, p := range pats {
		fmt.Fprintf(&in, "%s\t%s\n", hex.EncodeToString(p), name)
	}
	cmd := m.command([]string{searchEnv + "=" + fmt.Sprint(since.Unix())}, exe)
	cmd.Stdin = &in
	out, err := cmd.Output()
	if err != nil {
		t.Errorf("%s: key search: %v", m.name, err) // Errorf: runs on other goroutines
		return nil
	}
	var hits []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" && !strings.HasPrefix(l, "searched ") {
			hits = append(hits, l)
		} else if l != "" {
			t.Logf("%s: %s", m.name, l)
		}
	}
	return hits
}

func searchMain(sinceArg string) int {
	var since int64
	fmt.Sscan(sinceArg, &since)
	type pattern struct {
		name string
		b    []byte
	}
	var pats []pattern
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		h, name, _ := strings.Cut(sc.Text(), "\t")
		b, err := hex.DecodeString(h)
		if err == nil && len(b) > 0 {
			pats = append(pats, pattern{name, b})
		}
	}
	var files, read int
	var size int64
	filepath.WalkDir("/", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && (p == "/proc" || p == "/sys" || p == "/dev") {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() {
			return nil
		}
		files++
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st := info.Sys().(*syscall.Stat_t)
		if st.Ctim.Sec < since && st.Mtim.Sec < since {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return nil
		}
		defer f.Close()
		read++
		found := map[string]bool{}
		// Chunks overlapping by a pattern's length: bounded memory for big files.
		const overlap = 256
		buf := make([]byte, 1<<20+overlap)
		keep := 0
		for {
			n, err := io.ReadFull(f, buf[keep:])
			data := buf[:keep+n]
			size += int64(n)
			for _, pt := range pats {
				if !found[pt.name] && bytes.Contains(data, pt.b) {
					found[pt.name] = true
					fmt.Printf("%s: %s\n", p, pt.name)
				}
			}
			if err != nil {
				break
			}
			keep = copy(buf, data[len(data)-overlap:])
		}
		return nil
	})
	fmt.Printf("searched %d files changed since the test began (%d MB), of %d\n", read, size>>20, files)
	return 0
}
