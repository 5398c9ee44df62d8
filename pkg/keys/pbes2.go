package keys

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/asn1"
	"errors"
	"fmt"
	"hash"
	"io"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// PBES2 (RFC 8018) for PKCS#8 keys crypto/x509 cannot parse (ML-DSA):
// youmark/pkcs8 decrypts only into keys x509 knows. This covers what
// OpenSSL 3 writes (genpkey -aes256: PBKDF2 with HMAC-SHA256, AES-256-CBC)
// and its other AES-CBC and HMAC choices.

var (
	oidPBES2  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	pbkdf2PRF = map[string]func() hash.Hash{
		"1.2.840.113549.2.7":  sha1.New, // hmacWithSHA1, PBKDF2's default
		"1.2.840.113549.2.9":  sha256.New,
		"1.2.840.113549.2.10": sha512.New384,
		"1.2.840.113549.2.11": sha512.New,
	}
	aesCBC = map[string]int{ // key length
		"2.16.840.1.101.3.4.1.2":  16,
		"2.16.840.1.101.3.4.1.22": 24,
		"2.16.840.1.101.3.4.1.42": 32,
	}
	oidAES256CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	oidHMACSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
)

// maxPBKDF2Iter bounds the work a hostile key file can ask for.
const maxPBKDF2Iter = 10_000_000

// errBadPBES2 reports an EncryptedPrivateKeyInfo this code does not read.
var errBadPBES2 = errors.New("unsupported or malformed PBES2 encryption (want PBKDF2 with HMAC-SHA1/256/384/512 and AES-CBC)")

// decryptPBES2 returns the PrivateKeyInfo inside an EncryptedPrivateKeyInfo.
// A wrong passphrase gives ErrWrongPassphrase (bad padding or not DER).
func decryptPBES2(der, pass []byte) ([]byte, error) {
	in := cryptobyte.String(der)
	var epki, alg, params, kdf, kdfParams, enc, salt, iv, data cryptobyte.String
	var oid, kdfOID, encOID asn1.ObjectIdentifier
	var iter int64
	if !in.ReadASN1(&epki, cbasn1.SEQUENCE) || !epki.ReadASN1(&alg, cbasn1.SEQUENCE) ||
		!alg.ReadASN1ObjectIdentifier(&oid) || !oid.Equal(oidPBES2) ||
		!alg.ReadASN1(&params, cbasn1.SEQUENCE) || !params.ReadASN1(&kdf, cbasn1.SEQUENCE) ||
		!kdf.ReadASN1ObjectIdentifier(&kdfOID) || !kdfOID.Equal(oidPBKDF2) ||
		!kdf.ReadASN1(&kdfParams, cbasn1.SEQUENCE) || !kdfParams.ReadASN1(&salt, cbasn1.OCTET_STRING) ||
		!kdfParams.ReadASN1Integer(&iter) || iter < 1 || iter > maxPBKDF2Iter ||
		!params.ReadASN1(&enc, cbasn1.SEQUENCE) || !enc.ReadASN1ObjectIdentifier(&encOID) ||
		!enc.ReadASN1(&iv, cbasn1.OCTET_STRING) || len(iv) != aes.BlockSize ||
		!epki.ReadASN1(&data, cbasn1.OCTET_STRING) || len(data) == 0 || len(data)%aes.BlockSize != 0 {
		return nil, errBadPBES2
	}
	keyLen, ok := aesCBC[encOID.String()]
	if !ok {
		return nil, errBadPBES2
	}
	prf := sha1.New
	if kdfParams.PeekASN1Tag(cbasn1.INTEGER) { // optional keyLength
		var kl int64
		if !kdfParams.ReadASN1Integer(&kl) || kl != int64(keyLen) {
			return nil, errBadPBES2
		}
	}
	if !kdfParams.Empty() {
		var prfAlg cryptobyte.String
		var prfOID asn1.ObjectIdentifier
		if !kdfParams.ReadASN1(&prfAlg, cbasn1.SEQUENCE) || !prfAlg.ReadASN1ObjectIdentifier(&prfOID) {
			return nil, errBadPBES2
		}
		if prf, ok = pbkdf2PRF[prfOID.String()]; !ok {
			return nil, errBadPBES2
		}
	}
	key, err := pbkdf2.Key(prf, string(pass), salt, int(iter), keyLen)
	if err != nil {
		return nil, err
	}
	defer wipe(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	plain := make([]byte, len(data))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, data)
	n := int(plain[len(plain)-1])
	if n < 1 || n > aes.BlockSize || subtle.ConstantTimeCompare(plain[len(plain)-n:], bytes.Repeat([]byte{byte(n)}, n)) != 1 {
		wipe(plain)
		return nil, ErrWrongPassphrase
	}
	return plain[:len(plain)-n], nil
}

// encryptPBES2 wraps a PrivateKeyInfo as OpenSSL 3's genpkey -aes256 does:
// PBKDF2 with HMAC-SHA256 and AES-256-CBC (iterations as keygen's other keys).
func encryptPBES2(plain, pass []byte, rnd io.Reader, iter int) ([]byte, error) {
	salt, iv := make([]byte, 16), make([]byte, aes.BlockSize)
	if _, err := io.ReadFull(rnd, salt); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(rnd, iv); err != nil {
		return nil, err
	}
	key, err := pbkdf2.Key(sha256.New, string(pass), salt, iter, 32)
	if err != nil {
		return nil, err
	}
	defer wipe(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	n := aes.BlockSize - len(plain)%aes.BlockSize
	padded := append(append([]byte{}, plain...), bytes.Repeat([]byte{byte(n)}, n)...)
	defer wipe(padded)
	data := make([]byte, len(padded))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(data, padded)
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oidPBES2)
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(oidPBKDF2)
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1OctetString(salt)
						b.AddASN1Int64(int64(iter))
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1ObjectIdentifier(oidHMACSHA256)
							b.AddASN1NULL()
						})
					})
				})
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(oidAES256CBC)
					b.AddASN1OctetString(iv)
				})
			})
		})
		b.AddASN1OctetString(data)
	})
	out, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("encrypt key: %w", err)
	}
	return out, nil
}
