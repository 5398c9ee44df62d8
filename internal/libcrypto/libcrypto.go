// Package libcrypto signs with RSA keys through the system's OpenSSL 3
// libcrypto, which is about twice as fast as Go's crypto/rsa for the
// private-key operation (docs/performance.md). libcrypto.so.3 is loaded at
// run time (dlopen), not linked: a system without it, or with only OpenSSL
// 1.1 (Debian 11), keeps Go's implementation, and building needs no OpenSSL
// headers.
//
// RSA PKCS#1 v1.5 signatures are deterministic, so both implementations
// give the same bytes; every signature made here is also verified with
// Go's public-key operation before it is returned (a fault in the private
// operation must not leak the key, nor give a module a bad signature).
package libcrypto

import (
	"crypto"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
)

// ErrUnavailable reports that libcrypto 3 could not be loaded.
var ErrUnavailable = errors.New("libcrypto.so.3 (OpenSSL 3) is not available")

// Disabled, when set before the first use, keeps Go's implementation. The
// environment variable DKMS_SIGN_HOOK_NO_LIBCRYPTO=1 sets it.
var Disabled = os.Getenv("DKMS_SIGN_HOOK_NO_LIBCRYPTO") == "1"

// RSA is an RSA private key held by libcrypto.
type RSA struct {
	pub *rsa.PublicKey
	key *pkey
}

// NewRSA copies k into libcrypto. It fails with ErrUnavailable when
// libcrypto 3 cannot be loaded, and for keys it does not take (more than
// two primes).
func NewRSA(k *rsa.PrivateKey) (*RSA, error) {
	if Disabled {
		return nil, ErrUnavailable
	}
	if len(k.Primes) != 2 {
		return nil, fmt.Errorf("RSA key with %d primes", len(k.Primes))
	}
	p, err := importRSA(k)
	if err != nil {
		return nil, err
	}
	return &RSA{pub: &k.PublicKey, key: p}, nil
}

// Public returns the public key.
func (r *RSA) Public() crypto.PublicKey { return r.pub }

// Sign makes an RSA PKCS#1 v1.5 signature of digest, which was made with
// opts.HashFunc(). PSS is not supported (module signatures never use it).
func (r *RSA) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if _, ok := opts.(*rsa.PSSOptions); ok {
		return nil, errors.New("libcrypto: RSA-PSS is not supported")
	}
	h := opts.HashFunc()
	if h == 0 || len(digest) != h.Size() {
		return nil, fmt.Errorf("libcrypto: digest of %d bytes for %v", len(digest), h)
	}
	name, ok := mdNames[h]
	if !ok {
		return nil, fmt.Errorf("libcrypto: hash %v", h)
	}
	sig, err := r.key.sign(name, digest, (r.pub.N.BitLen()+7)/8)
	if err != nil {
		return nil, err
	}
	if err := rsa.VerifyPKCS1v15(r.pub, h, digest, sig); err != nil {
		return nil, errors.New("libcrypto: the RSA signature made does not verify")
	}
	return sig, nil
}

// Close frees the key in libcrypto's memory (OpenSSL clears it).
func (r *RSA) Close() { r.key.free() }

// mdNames are OpenSSL's names for the digests a module signature may use.
var mdNames = map[crypto.Hash]string{
	crypto.SHA1:     "SHA1",
	crypto.SHA224:   "SHA224",
	crypto.SHA256:   "SHA256",
	crypto.SHA384:   "SHA384",
	crypto.SHA512:   "SHA512",
	crypto.SHA3_256: "SHA3-256",
	crypto.SHA3_384: "SHA3-384",
	crypto.SHA3_512: "SHA3-512",
}

// Wrap returns a signer for s that moves an RSA key's private-key
// operation to libcrypto once it pays: loading libcrypto costs about as much
// CPU as a few Go RSA-2048 signatures, more than one run of the hook signs.
// So the first signatures are Go's; the second starts loading libcrypto in
// the background, and once it is ready every signature is libcrypto's (same
// bytes either way). done frees the key. Other keys are returned as they are.
func Wrap(s crypto.Signer) (signer crypto.Signer, done func()) {
	k, ok := s.(*rsa.PrivateKey)
	if !ok || Disabled || len(k.Primes) != 2 {
		return s, func() {}
	}
	l := &lazyRSA{k: k}
	return l, l.close
}

// lazyRSA signs with Go until libcrypto is loaded.
type lazyRSA struct {
	k     *rsa.PrivateKey
	count atomic.Int64
	load  sync.Once
	ready chan struct{} // closed when loading ended, well or not
	fast  atomic.Pointer[RSA]
}

func (l *lazyRSA) Public() crypto.PublicKey { return l.k.Public() }

func (l *lazyRSA) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if f := l.fast.Load(); f != nil {
		if _, pss := opts.(*rsa.PSSOptions); !pss {
			return f.Sign(rand, digest, opts)
		}
	}
	if l.count.Add(1) == 2 {
		l.start()
	}
	return l.k.Sign(rand, digest, opts)
}

// start loads libcrypto and the key in the background, once.
func (l *lazyRSA) start() {
	l.load.Do(func() {
		l.ready = make(chan struct{})
		go func() {
			defer close(l.ready)
			if r, err := NewRSA(l.k); err == nil {
				l.fast.Store(r)
			}
		}()
	})
}

// close waits for a load under way and frees the key in libcrypto.
func (l *lazyRSA) close() {
	l.load.Do(func() {}) // no load starts after this
	if l.ready != nil {
		<-l.ready
	}
	if f := l.fast.Swap(nil); f != nil {
		f.Close()
	}
}
