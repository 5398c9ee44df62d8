package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/hint"
)

// version is set by the Makefile with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes, documented in the README.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// A command is one subcommand: a file of this package per command.
type command struct {
	name  string
	usage string // one line: arguments after the command name
	short string // one line for the command list
	// run parses args (without the command name) and does the work.
	run func(env *env, args []string) error
}

// env is what a command may touch of the process: its streams and environment.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// flags, when set, receives the command's FlagSet (completion.go).
	flags **flag.FlagSet
}

var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

// usageError is returned for bad command lines; it exits 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// newFlags returns a FlagSet that reports errors instead of exiting.
func newFlags(c *command, e *env) *flag.FlagSet {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	if e.flags != nil {
		*e.flags = fs
	}
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: dkms-sign-hook %s %s\n\n%s\n", c.name, c.usage, c.short)
		if hasFlags(fs) {
			fmt.Fprintln(e.stderr, "\nflags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// parseFlags parses args, mapping -h to a clean exit and bad flags to usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return &usageError{err.Error()}
	}
	return nil
}

var errHelp = errors.New("help")

func run(argv []string, stdout, stderr io.Writer) int {
	return runEnv(&env{stdout: stdout, stderr: stderr, getenv: os.Getenv}, argv)
}

func runEnv(e *env, argv []string) int {
	args := argv[1:]
	// Invoked as sign-file (a symlink): behave as the kernel's scripts/sign-file.
	if filepath.Base(argv[0]) == "sign-file" {
		args = append([]string{"sign-file"}, args...)
	}
	if len(args) == 0 {
		printCommands(e.stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "--help", "help":
		printCommands(e.stdout)
		return exitOK
	case "--version", "-version", "version":
		fmt.Fprintf(e.stdout, "dkms-sign-hook %s\n", version)
		return exitOK
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(e.stderr, "dkms-sign-hook: unknown command %q\n", args[0])
		printCommands(e.stderr)
		return exitUsage
	}
	return report(e, c, c.run(e, args[1:]))
}

// report turns a command's error into one line (plus a hint) and an exit code.
func report(e *env, c *command, err error) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, errHelp) {
		return exitOK
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(e.stderr, "dkms-sign-hook %s: %s\nusage: dkms-sign-hook %s %s\n", c.name, ue.msg, c.name, c.usage)
		return exitUsage
	}
	if errors.Is(err, errSilent) {
		return exitFailure
	}
	fmt.Fprintf(e.stderr, "dkms-sign-hook %s: %s\n", c.name, oneLine(err.Error()))
	if hint := hint.For(err); hint != "" {
		fmt.Fprintf(e.stderr, "hint: %s\n", hint)
	}
	return exitFailure
}

// errSilent means the command already printed what went wrong (e.g. verify).
var errSilent = errors.New("failure already reported")

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func printCommands(w io.Writer) {
	fmt.Fprintln(w, "usage: dkms-sign-hook COMMAND [ARGS...]")
	fmt.Fprintln(w, "\nSigns Linux kernel modules for kernels that enforce module signatures.")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].short)
	}
	fmt.Fprintln(w, "\nRun 'dkms-sign-hook COMMAND --help' for a command's flags.")
}

// moduleError names path in err unless err already does.
func moduleError(path string, err error) error {
	if strings.Contains(err.Error(), path) {
		return err
	}
	return fmt.Errorf("%s: %w", path, err)
}
