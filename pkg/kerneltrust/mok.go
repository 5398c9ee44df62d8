package kerneltrust

import (
	"crypto/x509"
	"errors"
	"os"
	"os/exec"
	"strings"
)

// MokState is what `mokutil --test-key` says about a certificate.
type MokState int

const (
	MokUnknown     MokState = iota // no mokutil, no EFI, or an answer we do not know
	MokEnrolled                    // in MokListRT
	MokNotEnrolled                 // not enrolled
	MokPending                     // in the enrolment request, waiting for MokManager at the next boot
	MokBlocked                     // in dbx or MokListX: revoked
)

func (s MokState) String() string {
	switch s {
	case MokEnrolled:
		return "enrolled"
	case MokNotEnrolled:
		return "not enrolled"
	case MokPending:
		return "pending enrolment (reboot and confirm in MokManager)"
	case MokBlocked:
		return "blocked (in dbx or MokListX)"
	}
	return "unknown"
}

// MarshalText gives the JSON word: enrolled, not-enrolled, pending, blocked
// or unknown.
func (s MokState) MarshalText() ([]byte, error) {
	words := map[MokState]string{MokEnrolled: "enrolled", MokNotEnrolled: "not-enrolled", MokPending: "pending", MokBlocked: "blocked"}
	if w, ok := words[s]; ok {
		return []byte(w), nil
	}
	return []byte("unknown"), nil
}

// ErrNoMokutil: mokutil is not installed.
var ErrNoMokutil = errors.New("mokutil not found (apt-get install mokutil)")

// MokTestKey runs `mokutil --test-key` on cert (written to a temporary DER
// file, the only form mokutil reads) and returns its verdict and message.
func MokTestKey(cert *x509.Certificate) (MokState, string, error) {
	path, err := exec.LookPath("mokutil")
	if err != nil {
		for _, p := range []string{"/usr/bin/mokutil", "/bin/mokutil"} {
			if _, err := os.Stat(p); err == nil {
				path = p
			}
		}
		if path == "" {
			return MokUnknown, "", ErrNoMokutil
		}
	}
	tmp, err := os.CreateTemp("", "dkms-sign-hook-*.der")
	if err != nil {
		return MokUnknown, "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(cert.Raw); err != nil {
		tmp.Close()
		return MokUnknown, "", err
	}
	if err := tmp.Close(); err != nil {
		return MokUnknown, "", err
	}
	out, _ := exec.Command(path, "--test-key", tmp.Name()).CombinedOutput()
	msg := strings.TrimSpace(string(out))
	return ParseMokTestKey(msg), msg, nil
}

// ParseMokTestKey reads mokutil --test-key's answer; its exit status says
// little. Old mokutil says "is already enrolled" (also for a pending
// request); 0.6 (Debian 12) names where it found the key.
func ParseMokTestKey(out string) MokState {
	switch {
	case strings.Contains(out, "is blocked in"):
		return MokBlocked
	case strings.Contains(out, "already in the enrollment request"):
		return MokPending
	case strings.Contains(out, "is already enrolled"), strings.Contains(out, "is already in db"),
		strings.Contains(out, "is already in the built-in trusted keyring"),
		strings.Contains(out, "Already in kernel trusted keyring"):
		return MokEnrolled
	case strings.Contains(out, "is not enrolled"):
		return MokNotEnrolled
	}
	return MokUnknown
}
