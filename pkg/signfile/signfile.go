// Package signfile is the kernel's scripts/sign-file on this project's
// signer: its command line, read as glibc's getopt("sdpk") reads it, and
// what it does with it (sign in place or to DEST, -d and -p for the
// detached PKCS#7, -k for SKID, -s to append a signature made elsewhere).
// Unlike sign-file, an existing signature is replaced, not stacked.
package signfile

import (
	"errors"
	"fmt"
	"os"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/atomicfile"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/signkey"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/signlog"
)

// Args is sign-file's command line.
type Args struct {
	RawSig, DetachOnly, KeepP7S, SKID bool
	// Positional: HASH KEY CERT MODULE [DEST], or with RawSig
	// RAW-SIG HASH CERT MODULE [DEST].
	Positional []string
}

// ErrHelp: -h or --help.
var ErrHelp = errors.New("help")

// UsageError is a bad command line.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Parse reads sign-file's command line as glibc's getopt does: options
// ("sdpk", combinable) may stand anywhere before "--".
func Parse(args []string) (*Args, error) {
	a := &Args{}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			a.Positional = append(a.Positional, args[i+1:]...)
			break
		}
		if len(arg) < 2 || arg[0] != '-' {
			a.Positional = append(a.Positional, arg)
			continue
		}
		if arg == "-h" || arg == "--help" {
			return nil, ErrHelp
		}
		for _, c := range arg[1:] {
			switch c {
			case 's':
				a.RawSig = true
			case 'd':
				a.DetachOnly, a.KeepP7S = true, true
			case 'p':
				a.KeepP7S = true
			case 'k':
				a.SKID = true
			default:
				return nil, &UsageError{fmt.Sprintf("unknown option -%c", c)}
			}
		}
	}
	if n := len(a.Positional); n < 4 || n > 5 {
		return nil, &UsageError{fmt.Sprintf("need 4 or 5 arguments, got %d", n)}
	}
	return a, nil
}

// Run does what the command line asks. open opens the signer for a spec
// (key, certificate, hash, key id form); log, if not nil, gets a line for
// each module signed.
func (a *Args) Run(open func(signkey.Spec) (*sign.Signer, func(), error), log *signlog.Log) error {
	p := a.Positional
	module, dest := p[3], p[3]
	if len(p) == 5 {
		dest = p[4]
	}
	if a.RawSig {
		blob, err := os.ReadFile(p[0])
		if err != nil {
			return fmt.Errorf("read raw signature: %w", err)
		}
		if _, err := sign.ParseHash(p[1]); err != nil {
			return &UsageError{err.Error()}
		}
		_, err = sign.AttachFile(module, dest, blob)
		return err
	}
	spec := signkey.Spec{Hash: p[0], Key: p[1], Cert: p[2]}
	if a.SKID {
		spec.KeyID = sign.KeyIDSKID
	}
	signer, closeKey, err := open(spec)
	if err != nil {
		return err
	}
	defer closeKey()
	if a.DetachOnly {
		blob, err := signer.DetachedFile(module)
		if err != nil {
			return err
		}
		return writeP7S(module+".p7s", blob)
	}
	res, err := signer.SignFileTo(module, dest)
	if err != nil {
		return err
	}
	if log != nil && res.Changed {
		if err := log.AppendCommand("sign-file", dest, res, signer); err != nil {
			return fmt.Errorf("signed %s, but not logged: %w", dest, err)
		}
	}
	if a.KeepP7S {
		return writeP7S(module+".p7s", res.P7S)
	}
	return nil
}

func writeP7S(path string, blob []byte) error {
	if err := atomicfile.WriteFile(path, blob, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
