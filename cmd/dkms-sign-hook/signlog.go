package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/dkmsenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
)

// logEntry is one line of the signing log: what the key signed, when.
type logEntry struct {
	Time    string `json:"time"`
	Package string `json:"package"`
	Version string `json:"version"`
	Kernel  string `json:"kernel"`
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
	now := time.Now
	if l.now != nil {
		now = l.now
	}
	cert := s.Certificate()
	line, err := json.Marshal(logEntry{
		Time: now().UTC().Format(time.RFC3339Nano), Package: ctx.Module, Version: ctx.Version,
		Kernel: ctx.KernelVer, Arch: ctx.Arch, File: file, SHA256: hex.EncodeToString(res.SHA256[:]),
		KeyID: keyIDOf(s), Signer: cert.Issuer.CommonName, Serial: fmt.Sprintf("%x", cert.SerialNumber), Hash: s.Hash(),
	})
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
