package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testmod"

	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testRoots = true // DKMS_SIGN_HOOK_ROOT moves the system directories (dkmsctx.go)
	testscript.Main(m, map[string]func(){
		"dkms-sign-hook": func() { os.Exit(run(os.Args, os.Stdout, os.Stderr)) },
		"sign-file":      func() { os.Exit(run(os.Args, os.Stdout, os.Stderr)) },
	})
}

func TestScripts(t *testing.T) {
	// A real module, as Debian ships it (signed by Debian's key), is put in
	// every script's $WORK as real.ko.
	real, err := testmod.TryReal("vfat.ko")
	testenv.Require(t, err == nil, fmt.Sprintf("a real module from Debian's linux-image package (%v)", err))
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Condition:           needCondition,
		Setup: func(e *testscript.Env) error {
			// Real components the scripts may call.
			e.Setenv("SIGN_FILE", testenv.FindSignFile())
			e.Setenv("CI", os.Getenv("CI"))
			// Scripts never read the machine's own configuration, nor
			// write its signing log.
			conf := filepath.Join(e.WorkDir, ".test.conf")
			log := filepath.Join(e.WorkDir, ".signed.jsonl")
			if err := os.WriteFile(conf, []byte("[hook]\nlog = "+log+"\n"), 0o644); err != nil {
				return err
			}
			e.Setenv("DKMS_SIGN_HOOK_CONFIG", conf)
			data, err := os.ReadFile(real)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(e.WorkDir, "real.ko"), data, 0o644)
		},
	})
}

// needCondition is [need:PROGRAM]: whether PROGRAM is installed. Under
// CI=true a missing program is an error, so `[!need:cc] skip` never skips there.
// [efi] is whether this machine booted through UEFI; [signfile] whether
// Debian's sign-file ($SIGN_FILE: the release's, testenv.FindSignFile) is
// installed (an error under CI=true if not).
func needCondition(cond string) (bool, error) {
	if cond == "signfile" {
		p := testenv.FindSignFile()
		if _, err := os.Stat(p); err != nil {
			if testenv.InCI() {
				return false, fmt.Errorf("CI=true but Debian's sign-file (%s) is missing", p)
			}
			return false, nil
		}
		return true, nil
	}
	if cond == "efi" {
		_, err := os.Stat("/sys/firmware/efi")
		return err == nil, nil
	}
	prog, ok := strings.CutPrefix(cond, "need:")
	if !ok {
		return false, fmt.Errorf("unknown condition %q", cond)
	}
	if _, err := exec.LookPath(prog); err == nil {
		return true, nil
	}
	if testenv.InCI() {
		return false, fmt.Errorf("CI=true but %s is missing", prog)
	}
	return false, nil
}
