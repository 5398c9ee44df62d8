// Package signlog is the signing log: one JSON line per signature the
// configured key makes, appended and synced, so that what the key signed,
// when, can be audited.
package signlog

import (
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/config"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
)

// Entry is one line of the signing log.
type Entry struct {
	Time string `json:"time"`
	// Command is "sign" or "sign-file" for signatures made outside a DKMS
	// build, whose package, version and kernel are then unknown.
	Command string `json:"command,omitempty"`
	Package string `json:"package,omitempty"`
	Version string `json:"version,omitempty"`
	Kernel  string `json:"kernel,omitempty"`
	Arch    string `json:"arch,omitempty"`
	File    string `json:"file"`
	SHA256  string `json:"sha256"`
	KeyID   string `json:"key_id"`
	Signer  string `json:"signer"`
	Serial  string `json:"serial"`
	Hash    string `json:"hash"`
}

// Log appends JSON lines to the file at Path (directory 0750, file 0640).
type Log struct {
	Path string
	Now  func() time.Time // nil: time.Now
}

// Append logs the signature s made of file (res is SignFile's result);
// e names the build or the command, its other fields are filled here.
func (l *Log) Append(e Entry, file string, res *sign.Result, s *sign.Signer) error {
	now := time.Now
	if l.Now != nil {
		now = l.Now
	}
	cert := s.Certificate()
	e.Time = now().UTC().Format(time.RFC3339Nano)
	e.File, e.SHA256 = file, hex.EncodeToString(res.SHA256[:])
	e.KeyID, e.Signer, e.Serial, e.Hash = KeyID(cert), cert.Issuer.CommonName, fmt.Sprintf("%x", cert.SerialNumber), s.Hash()
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(l.Path), 0o750); err != nil {
		return fmt.Errorf("signing log: %w", err)
	}
	// O_NOFOLLOW: root never appends through a symlink planted at the log's name.
	f, err := os.OpenFile(l.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, 0o640)
	if err != nil {
		return fmt.Errorf("signing log: %w", err)
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("signing log %s: %w", l.Path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("signing log %s: %w", l.Path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("signing log %s: %w", l.Path, err)
	}
	return nil
}

// AppendCommand logs a signature made by the sign or sign-file command,
// naming the file by its absolute path.
func (l *Log) AppendCommand(command, file string, res *sign.Result, s *sign.Signer) error {
	if abs, err := filepath.Abs(file); err == nil {
		file = abs
	}
	return l.Append(Entry{Command: command}, file, res, s)
}

// ForCommands is the signing log of the sign and sign-file commands: kept
// once the tool is set up on this machine (a configuration file exists), so
// that the log holds every signature the configured key makes; else nil.
func ForCommands(cfg *config.Config) *Log {
	if cfg.Path == "" || cfg.Log == "" {
		return nil
	}
	return &Log{Path: cfg.Log}
}

// KeyID names a signing certificate in logs: its subjectKeyIdentifier in
// hex (as /proc/keys shows it), else issuer CN and serial.
func KeyID(cert *x509.Certificate) string {
	if len(cert.SubjectKeyId) > 0 {
		return fmt.Sprintf("%x", cert.SubjectKeyId)
	}
	return fmt.Sprintf("%s:%x", cert.Issuer.CommonName, cert.SerialNumber)
}
