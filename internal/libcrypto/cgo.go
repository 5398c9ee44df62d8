//go:build cgo && linux

package libcrypto

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

// The few OpenSSL 3 functions used, declared here so that building needs no
// OpenSSL headers; they are looked up in libcrypto.so.3 at run time.
typedef struct evp_pkey_st EVP_PKEY;
typedef struct evp_pkey_ctx_st EVP_PKEY_CTX;
typedef struct evp_md_st EVP_MD;

static unsigned long (*p_OpenSSL_version_num)(void);
static EVP_PKEY *(*p_d2i_PrivateKey)(int, EVP_PKEY **, const unsigned char **, long);
static void (*p_EVP_PKEY_free)(EVP_PKEY *);
static EVP_PKEY_CTX *(*p_EVP_PKEY_CTX_new)(EVP_PKEY *, void *);
static void (*p_EVP_PKEY_CTX_free)(EVP_PKEY_CTX *);
static int (*p_EVP_PKEY_sign_init)(EVP_PKEY_CTX *);
static int (*p_EVP_PKEY_CTX_set_rsa_padding)(EVP_PKEY_CTX *, int);
static int (*p_EVP_PKEY_CTX_set_signature_md)(EVP_PKEY_CTX *, const EVP_MD *);
static int (*p_EVP_PKEY_sign)(EVP_PKEY_CTX *, unsigned char *, size_t *, const unsigned char *, size_t);
static const EVP_MD *(*p_EVP_get_digestbyname)(const char *);
static void (*p_ERR_clear_error)(void);

#define SYM(name) if (!(p_##name = dlsym(h, #name))) return 0;

// ossl_load returns 1 when libcrypto 3 is loaded and every function found.
static int ossl_load(void) {
	void *h = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL);
	if (!h) return 0;
	SYM(OpenSSL_version_num)
	if (p_OpenSSL_version_num() < 0x30000000UL) return 0;
	SYM(d2i_PrivateKey)
	SYM(EVP_PKEY_free)
	SYM(EVP_PKEY_CTX_new)
	SYM(EVP_PKEY_CTX_free)
	SYM(EVP_PKEY_sign_init)
	SYM(EVP_PKEY_CTX_set_rsa_padding)
	SYM(EVP_PKEY_CTX_set_signature_md)
	SYM(EVP_PKEY_sign)
	SYM(EVP_get_digestbyname)
	SYM(ERR_clear_error)
	return 1;
}

#define OSSL_EVP_PKEY_RSA 6
#define OSSL_RSA_PKCS1_PADDING 1

// ossl_import parses a PKCS#1 RSAPrivateKey, then clears the DER copy.
static EVP_PKEY *ossl_import(unsigned char *der, long len) {
	const unsigned char *p = der;
	EVP_PKEY *k = p_d2i_PrivateKey(OSSL_EVP_PKEY_RSA, NULL, &p, len);
	volatile unsigned char *v = der;
	for (long i = 0; i < len; i++) v[i] = 0;
	p_ERR_clear_error();
	return k;
}

// ossl_sign makes an RSA PKCS#1 v1.5 signature of a digest. 1 on success.
static int ossl_sign(EVP_PKEY *k, const char *md, const unsigned char *dgst, size_t dlen,
		unsigned char *sig, size_t *siglen) {
	int ok = 0;
	const EVP_MD *m = p_EVP_get_digestbyname(md);
	EVP_PKEY_CTX *ctx = p_EVP_PKEY_CTX_new(k, NULL);
	if (m && ctx &&
	    p_EVP_PKEY_sign_init(ctx) > 0 &&
	    p_EVP_PKEY_CTX_set_rsa_padding(ctx, OSSL_RSA_PKCS1_PADDING) > 0 &&
	    p_EVP_PKEY_CTX_set_signature_md(ctx, m) > 0 &&
	    p_EVP_PKEY_sign(ctx, sig, siglen, dgst, dlen) > 0)
		ok = 1;
	if (ctx) p_EVP_PKEY_CTX_free(ctx);
	p_ERR_clear_error();
	return ok;
}

static void ossl_free(EVP_PKEY *k) { p_EVP_PKEY_free(k); }
*/
import "C"

import (
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"sync"
	"unsafe"
)

var loaded = sync.OnceValue(func() bool { return C.ossl_load() == 1 })

// Available reports whether libcrypto 3 is loaded.
func Available() bool { return !Disabled && loaded() }

type pkey struct {
	mu sync.RWMutex
	p  *C.EVP_PKEY
}

func importRSA(k *rsa.PrivateKey) (*pkey, error) {
	if !loaded() {
		return nil, ErrUnavailable
	}
	der := x509.MarshalPKCS1PrivateKey(k)
	cder := C.CBytes(der)
	clear(der)
	defer C.free(cder)
	p := C.ossl_import((*C.uchar)(cder), C.long(len(der)))
	if p == nil {
		return nil, errors.New("libcrypto: the RSA key was not accepted")
	}
	return &pkey{p: p}, nil
}

func (k *pkey) sign(md string, digest []byte, size int) ([]byte, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.p == nil {
		return nil, errors.New("libcrypto: key already closed")
	}
	cmd := C.CString(md)
	defer C.free(unsafe.Pointer(cmd))
	sig := make([]byte, size)
	n := C.size_t(size)
	if C.ossl_sign(k.p, cmd, (*C.uchar)(unsafe.Pointer(&digest[0])), C.size_t(len(digest)),
		(*C.uchar)(unsafe.Pointer(&sig[0])), &n) != 1 {
		return nil, errors.New("libcrypto: RSA signing failed")
	}
	return sig[:n], nil
}

func (k *pkey) free() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.p != nil {
		C.ossl_free(k.p)
		k.p = nil
	}
}
