package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/completion"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/dkmsenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
)

func init() {
	register(&command{
		name:  "completion",
		usage: "bash | packages",
		short: "print the bash completion script (make install puts it in /usr/share/bash-completion/completions)",
		run:   runCompletion,
	})
}

func runCompletion(e *env, args []string) error {
	fs := newFlags(commands["completion"], e)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() == 1 && fs.Arg(0) == "bash":
		completion.Bash(e.stdout, "dkms-sign-hook", registry(), sign.HashNames(), "completion packages")
		return nil
	case fs.NArg() == 1 && fs.Arg(0) == "packages":
		host, err := openHost(e, defaultOverride)
		if err != nil {
			return err
		}
		pkgs, err := dkmsenv.Packages(host.Tree)
		for _, p := range pkgs {
			fmt.Fprintln(e.stdout, p)
		}
		return err
	}
	return usagef("want bash or packages")
}

// argKinds are what the commands' arguments are.
var argKinds = map[string]completion.Kind{"sign": completion.File, "sign-file": completion.File, "verify": completion.File,
	"info": completion.File, "strip": completion.File, "enable": completion.Package, "disable": completion.Package}

// registry describes every command for completion: each command's flags
// are those it defines when run with -h.
func registry() []completion.Command {
	var out []completion.Command
	for name, c := range commands {
		var fs *flag.FlagSet
		c.run(&env{stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }, flags: &fs}, []string{"-h"})
		cc := completion.Command{Name: name, Args: argKinds[name], Flags: completion.Flags(fs)}
		if name == "sign" {
			cc.ArgsWhen, cc.ArgsWith = "dkms", completion.Package
		}
		out = append(out, cc)
	}
	return out
}
