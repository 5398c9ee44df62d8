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
	files := map[string][]byte{}
	for _, f := range tokenFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		files[f] = data
	}
	for f, data := range files {
		// SoftHSM's object files are mostly attribute structure, alike in
		// every token; the encrypted values are random. Take a random-
		// looking window found nowhere else: not in the other objects, not
		// in the certificates (a public key's object holds its modulus in
		// the clear, as the certificates every host has do).
		others := public
		for g, d := range files {
			if g != f {
				others = append(others, d)
			}
		}
		if w := secretWindow(data, others); w != nil {
			pats["token file "+filepath.Base(f)] = w
		}
	}
	return pats
}

// secretWindow returns a 48-byte window of data that looks random (at
// least 40 distinct byte values, as random bytes have 44 on average) and
// occurs in none of others; nil if there is none.
func secretWindow(data []byte, others [][]byte) []byte {
	const n = 48
outer:
	for i := 0; i+n <= len(data); i += 8 {
		w := data[i : i+n]
		seen := map[byte]bool{}
		for _, b := range w {
			seen[b] = true
		}
		if len(seen) < 40 {
			continue
		}
		for _, o := range others {
			if bytes.Contains(o, w) {
				continue outer
			}
		}
		return w
	}
	return nil
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
	m := newMatcher()
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		h, name, _ := strings.Cut(sc.Text(), "\t")
		if b, err := hex.DecodeString(h); err == nil {
			m.add(name, b)
		}
	}
	var files, read int
	var size int64
	buf := make([]byte, 1<<20+maxPattern)
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
		keep := 0
		for {
			n, err := io.ReadFull(f, buf[keep:])
			data := buf[:keep+n]
			size += int64(n)
			m.scan(data, func(name string) {
				if !found[name] {
					found[name] = true
					fmt.Printf("%s: %s\n", p, name)
				}
			})
			if err != nil || len(data) < maxPattern {
				break
			}
			keep = copy(buf, data[len(data)-maxPattern+1:])
		}
		return nil
	})
	fmt.Printf("searched %d files changed since the test began (%d MB), of %d\n", read, size>>20, files)
	return 0
}

// matcher finds any of a few byte strings in one pass: each pattern's first
// matchLen bytes are hashed (Rabin-Karp, a rolling hash over the data), a
// bitset of hashes rejects almost every position cheaply, and candidates
// are compared in full.
const (
	matchLen   = 32
	maxPattern = 256 // the chunks' overlap
)

type matcher struct {
	pats map[uint64][]namedPattern
	bits [1 << 16 / 64]uint64
	pow  uint64 // base^(matchLen-1)
}

type namedPattern struct {
	name string
	b    []byte
}

const hashBase = 1099511628211

func newMatcher() *matcher {
	m := &matcher{pats: map[uint64][]namedPattern{}, pow: 1}
	for i := 0; i < matchLen-1; i++ {
		m.pow *= hashBase
	}
	return m
}

func (m *matcher) add(name string, b []byte) {
	if len(b) < matchLen || len(b) > maxPattern {
		panic(fmt.Sprintf("pattern %s: %d bytes, want %d to %d", name, len(b), matchLen, maxPattern))
	}
	h := hashOf(b[:matchLen])
	m.pats[h] = append(m.pats[h], namedPattern{name, b})
	m.bits[(h&0xffff)/64] |= 1 << (h & 63)
}

func hashOf(b []byte) uint64 {
	var h uint64
	for _, c := range b {
		h = h*hashBase + uint64(c)
	}
	return h
}

func (m *matcher) scan(data []byte, hit func(name string)) {
	if len(data) < matchLen {
		return
	}
	h := hashOf(data[:matchLen])
	for i := 0; ; i++ {
		if m.bits[(h&0xffff)/64]&(1<<(h&63)) != 0 {
			for _, p := range m.pats[h] {
				if bytes.HasPrefix(data[i:], p.b) {
					hit(p.name)
				}
			}
		}
		if i+matchLen >= len(data) {
			return
		}
		h = (h-uint64(data[i])*m.pow)*hashBase + uint64(data[i+matchLen])
	}
}

// The key search must be able to say yes: patterns at the start, the end,
// overlapping each other, in data with near misses.
func TestMatcher(t *testing.T) {
	rnd := make([]byte, 100000)
	for i := range rnd {
		rnd[i] = byte(i*7919 + i/13)
	}
	a := []byte("0123456789abcdef0123456789ABCDEF-pattern-a")
	b := bytes.Repeat([]byte{0xa5, 0x5a, 0x01}, 20)
	m := newMatcher()
	m.add("a", a)
	m.add("b", b)
	find := func(data []byte) map[string]bool {
		got := map[string]bool{}
		m.scan(data, func(n string) { got[n] = true })
		return got
	}
	data := append(append(append([]byte{}, a...), rnd...), b...)
	if got := find(data); !got["a"] || !got["b"] {
		t.Errorf("at the start and the end: %v", got)
	}
	near := append(append([]byte{}, rnd...), a[:len(a)-1]...)
	near = append(near, 'x')
	if got := find(near); len(got) > 0 {
		t.Errorf("near miss found: %v", got)
	}
	mid := append(append(append([]byte{}, rnd[:5000]...), b...), rnd[5000:]...)
	if got := find(mid); !got["b"] || got["a"] {
		t.Errorf("in the middle: %v", got)
	}
	if got := find(a[:20]); len(got) > 0 {
		t.Errorf("short data: %v", got)
	}
}
