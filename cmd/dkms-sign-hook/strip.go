package main

import (
	"fmt"

	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
)

func init() {
	register(&command{
		name:  "strip",
		usage: "MODULE...",
		short: "remove every appended signature, giving back the exact unsigned module",
		run:   runStrip,
	})
}

func runStrip(e *env, args []string) error {
	c := commands["strip"]
	fs := newFlags(c, e)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("no module given")
	}
	failed := 0
	for _, path := range fs.Args() {
		n, err := sign.StripFile(path)
		if err != nil {
			failed++
			reportModuleError(e, c, path, err)
			continue
		}
		if n == 0 {
			fmt.Fprintf(e.stdout, "%s: not signed, left untouched\n", path)
		} else {
			fmt.Fprintf(e.stdout, "%s: removed %d signature(s)\n", path, n)
		}
	}
	if failed > 0 {
		return errSilent
	}
	return nil
}
