package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"golang.org/x/term"

	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
)

// Prompting is the command line's job: the library takes passphrases from
// a callback (keys.Options.Passphrase) or as bytes (keygen).

// askPassphrase asks on the terminal when stdin is one; nil, nil when
// there is no terminal or the answer is empty.
func askPassphrase(e *env, prompt string) ([]byte, error) {
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return nil, nil
	}
	fmt.Fprint(e.stderr, prompt)
	p, err := term.ReadPassword(fd)
	fmt.Fprintln(e.stderr)
	if err != nil {
		return nil, fmt.Errorf("read passphrase: %w", err)
	}
	if len(p) == 0 {
		return nil, nil
	}
	return p, nil
}

// terminalPassphrase is the keys.Options.Passphrase of commands a person
// runs: it asks only when neither KBUILD_SIGN_PIN nor the pin file will
// answer, so those keep their precedence.
func terminalPassphrase(e *env, pinFile string) func(what string) ([]byte, error) {
	return func(what string) ([]byte, error) {
		if e.getenv(keys.PinEnv) != "" || pinFile != "" {
			return nil, nil
		}
		return askPassphrase(e, "Passphrase for "+what+": ")
	}
}

// newPassphrase takes the new key's passphrase from KBUILD_SIGN_PIN (so the
// same variable later unlocks it) or asks twice on the terminal.
func newPassphrase(e *env) ([]byte, error) {
	if p := e.getenv(keys.PinEnv); p != "" {
		return []byte(p), nil
	}
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return nil, errors.New("--encrypt needs a passphrase: set " + keys.PinEnv + " or run on a terminal")
	}
	p1, err := askPassphrase(e, "New key passphrase: ")
	if err != nil {
		return nil, err
	}
	p2, err := askPassphrase(e, "Again: ")
	if err != nil {
		return nil, err
	}
	if len(p1) == 0 || !bytes.Equal(p1, p2) {
		return nil, errors.New("passphrases empty or different")
	}
	return p1, nil
}
