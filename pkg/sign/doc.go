// Package sign reads and writes Linux kernel module signatures, byte for byte
// in the format of the kernel's scripts/sign-file.
//
// A signed module is
//
//	module bytes | PKCS#7 SignedData (DER) | struct module_signature | "~Module signature appended~\n"
//
// The SignedData is what sign-file makes with OpenSSL's CMS in its kernel mode:
// detached "data" content, no certificates, no signed attributes, one
// SignerInfo naming the key by issuer and serial number (or, with sign-file's
// -k, by subjectKeyIdentifier), the digest AlgorithmIdentifier without
// parameters and, for RSA, rsaEncryption with a NULL parameter.
//
// The package knows nothing about DKMS, configuration files or where keys
// come from: it takes any crypto.Signer and an *x509.Certificate.
package sign
