// Package dkms holds the files this project installs for DKMS, so that the
// program writes the very text that is shipped and documented.
package dkms

import _ "embed"

// FrameworkDropIn is framework.conf.d/dkms-sign-hook.conf: `enable
// --framework` writes it to /etc/dkms/framework.conf.d with the configured
// sign_file, mok_signing_key and mok_certificate.
//
//go:embed framework.conf.d/dkms-sign-hook.conf
var FrameworkDropIn string
