package kerneltrust

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
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

// ErrNoEFI: mokutil found no EFI variables: the machine did not boot
// through UEFI, so there is no MOK list (and no Secure Boot).
var ErrNoEFI = errors.New("EFI variables are not supported on this system (the machine did not boot through UEFI)")

// mokutil runs mokutil with args and cert written to a temporary DER file
// (the only form mokutil reads) in place of the word "CERT"; stdio, when
// given, is the caller's (mokutil --import asks for a password), else the
// combined output is returned.
func mokutil(cert *x509.Certificate, stdio *stdio, args ...string) (string, error) {
	path, err := exec.LookPath("mokutil")
	if err != nil {
		for _, p := range []string{"/usr/bin/mokutil", "/bin/mokutil"} {
			if _, err := os.Stat(p); err == nil {
				path = p
			}
		}
		if path == "" {
			return "", ErrNoMokutil
		}
	}
	tmp, err := os.CreateTemp("", "dkms-sign-hook-*.der")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(cert.Raw); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	for i, a := range args {
		if a == "CERT" {
			args[i] = tmp.Name()
		}
	}
	cmd := exec.Command(path, args...)
	if stdio == nil {
		out, err := cmd.CombinedOutput()
		// mokutil names the file it was given: our temporary copy.
		return strings.TrimSpace(strings.ReplaceAll(string(out), tmp.Name()+" ", "")), err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio.in, stdio.out, stdio.err
	return "", cmd.Run()
}

type stdio struct {
	in       io.Reader
	out, err io.Writer
}

// MokTestKey runs `mokutil --test-key` on cert and returns its verdict and
// message; a machine without EFI variables gives ErrNoEFI.
func MokTestKey(cert *x509.Certificate) (MokState, string, error) {
	msg, err := mokutil(cert, nil, "--test-key", "CERT") // its exit status says little
	var exit *exec.ExitError
	switch {
	case err != nil && !errors.As(err, &exit):
		return MokUnknown, "", err // no mokutil, or it could not run
	case strings.Contains(msg, "EFI variables are not supported"):
		return MokUnknown, msg, ErrNoEFI
	}
	return ParseMokTestKey(msg), msg, nil
}

// MokImport asks shim to enroll cert at the next boot: `mokutil --import`,
// on the caller's stdin, stdout and stderr, since mokutil asks for a
// one-time password (twice) that MokManager asks for again at the next boot.
func MokImport(cert *x509.Certificate, stdin io.Reader, stdout, stderr io.Writer) error {
	_, err := mokutil(cert, &stdio{stdin, stdout, stderr}, "--import", "CERT")
	if err != nil {
		return fmt.Errorf("mokutil --import: %w", err)
	}
	return nil
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

// ErrMokBlocked: the certificate is revoked (in dbx or MokListX).
var ErrMokBlocked = errors.New("the key is blocked (in dbx or MokListX)")

// Enroll asks shim to enroll cert as a Machine Owner Key at the next boot,
// unless it is enrolled or waiting for enrollment already: it returns the
// state found first (MokEnrolled or MokPending: nothing was done;
// MokNotEnrolled: mokutil --import ran, on stdin, stdout and stderr, and the
// request is now pending) and mokutil --test-key's words for it.
func Enroll(cert *x509.Certificate, stdin io.Reader, stdout, stderr io.Writer) (MokState, string, error) {
	state, msg, err := MokTestKey(cert)
	switch {
	case err != nil:
		return state, msg, err
	case state == MokBlocked:
		return state, msg, ErrMokBlocked
	case state == MokUnknown:
		return state, msg, fmt.Errorf("mokutil --test-key answered %q", msg)
	case state != MokNotEnrolled:
		return state, msg, nil
	}
	if err := MokImport(cert, stdin, stdout, stderr); err != nil {
		return state, msg, err
	}
	if now, msg, _ := MokTestKey(cert); now != MokPending {
		return state, msg, fmt.Errorf("mokutil --import succeeded, but mokutil --test-key now says %q", msg)
	}
	return state, msg, nil
}
