package keys

import (
	"fmt"
	"os"

	"golang.org/x/term"
)

// promptPassphrase asks on the terminal when stdin is one; ok is false when
// there is no terminal to ask.
func promptPassphrase(what string) (p []byte, ok bool, err error) {
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return nil, false, nil
	}
	fmt.Fprintf(os.Stderr, "Passphrase for %s: ", what)
	p, err = term.ReadPassword(fd)
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return nil, true, fmt.Errorf("read passphrase for %s: %w", what, err)
	}
	if len(p) == 0 {
		return nil, false, nil
	}
	return p, true, nil
}
