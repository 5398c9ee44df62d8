package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/atomicfile"
)

// KeygenText is the configuration keygen writes for a new key pair.
func KeygenText(key, cert string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# dkms-sign-hook configuration, written by dkms-sign-hook keygen.\n")
	fmt.Fprintf(&b, "[signing]\n")
	fmt.Fprintf(&b, "key = %s\n", key)
	fmt.Fprintf(&b, "certificate = %s\n", cert)
	fmt.Fprintf(&b, "hash = auto\n")
	fmt.Fprintf(&b, "key_id = issuer-serial\n")
	fmt.Fprintf(&b, "\n[hook]\n")
	fmt.Fprintf(&b, "missing_key = warn\n")
	return b.Bytes()
}

// CheckNew makes sure text can be written to path as a new configuration:
// no file there (one is never replaced), and text that parses.
func CheckNew(path string, text []byte) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("config %s: already exists; refusing to replace it (add the lines below by hand)", path)
	}
	if _, err := Parse(path, text); err != nil {
		return fmt.Errorf("config for %s: %w", path, err)
	}
	return nil
}

// WriteNew writes a new configuration file atomically, never replacing one.
func WriteNew(path string, text []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := atomicfile.CreateNew(path, text, 0o644); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}
