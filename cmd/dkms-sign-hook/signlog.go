package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/config"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/dkmsenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
)

// logEntry is one line of the signing log: what the key signed, when.
type logEntry struct {
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

// signingLog appends JSON lines to the audit log (dir 0750, file 0640).
type signingLog struct {
	path string
	now  func() time.Time
}

func (l *signingLog) add(ctx *dkmsenv.Context, file string, res *sign.Result, s *sign.Signer) error {
	return l.write(logEntry{Package: ctx.Module, Version: ctx.Version, Kernel: ctx.KernelVer, Arch: ctx.Arch}, file, res, s)
}

// commandLog is the signing log for the sign and sign-file commands: kept
// once the tool is set up on this machine (a configuration file exists), so
// that the log holds every signature the configured key makes.
func commandLog(cfg *config.Config) *signingLog {
	if cfg.Path == "" || cfg.Log == "" {
		return nil
	}
	return &signingLog{path: cfg.Log}
}

// addCommand logs a signature made by the sign or sign-file command.
func (l *signingLog) addCommand(command, file string, res *sign.Result, s *sign.Signer) error {
	abs, err := filepath.Abs(file)
	if err != nil {
		abs = file
	}
	return l.write(logEntry{Command: command}, abs, res, s)
}

func (l *signingLog) write(entry logEntry, file string, res *sign.Result, s *sign.Signer) error {
	now := time.Now
	if l.now != nil {
		now = l.now
	}
	cert := s.Certificate()
	entry.Time = now().UTC().Format(time.RFC3339Nano)
	entry.File, entry.SHA256 = file, hex.EncodeToString(res.SHA256[:])
	entry.KeyID, entry.Signer, entry.Serial, entry.Hash = keyIDOf(s), cert.Issuer.CommonName, fmt.Sprintf("%x", cert.SerialNumber), s.Hash()
	line, err := json.Marshal(entry)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(l.path), 0o750); err != nil {
		return fmt.Errorf("signing log: %w", err)
	}
	// O_NOFOLLOW: root never appends through a symlink planted at the log's name.
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, 0o640)
	if err != nil {
		return fmt.Errorf("signing log: %w", err)
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("signing log %s: %w", l.path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("signing log %s: %w", l.path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("signing log %s: %w", l.path, err)
	}
	return nil
}
