package main

import (
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"dkms-sign-hook": func() { os.Exit(run(os.Args, os.Stdout, os.Stderr)) },
		"sign-file":      func() { os.Exit(run(os.Args, os.Stdout, os.Stderr)) },
	})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(e *testscript.Env) error {
			// Real components the scripts may call.
			e.Setenv("SIGN_FILE", "/usr/lib/linux-kbuild-6.1/scripts/sign-file")
			e.Setenv("CI", os.Getenv("CI"))
			return nil
		},
	})
}
