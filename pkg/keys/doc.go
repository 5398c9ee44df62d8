// Package keys loads the signing key and certificate for module signing.
//
// A key reference is either the path of a PEM private key (PKCS#1, PKCS#8 or
// SEC1, optionally encrypted) or a pkcs11: URI (RFC 7512) naming a key on a
// hardware token or SoftHSM. Either way Open returns a *Key, which is a
// crypto.Signer: the signing code never sees the difference.
//
// The key is the crown jewel, so Open refuses key files readable by group or
// others, and (when running as root) key files not owned by root. Passphrases
// and PINs come from a callback (a terminal prompt is the caller's), the
// KBUILD_SIGN_PIN environment variable (as the kernel's sign-file) or a pin
// file; never from argv, and they never appear in errors or descriptions. A PKCS#11 module runs as
// us, so it loads only from a path that only root can change (the file,
// every directory up to / and every link followed: CheckTrustedPath), and
// exactly the file that was checked is loaded.
//
// Certificates load with LoadCertificate, in PEM or DER, decided as the
// kernel's sign-file decides.
package keys
