// Command dkms-sign-hook signs Linux kernel modules, in the exact format of the
// kernel's scripts/sign-file, and runs as a DKMS POST_BUILD hook.
//
// Each subcommand lives in its own file of this package; main only picks one and
// turns its error into one line plus a hint.
package main

import (
	"os"
)

func main() { os.Exit(run(os.Args, os.Stdout, os.Stderr)) }
