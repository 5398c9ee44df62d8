package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/kerneltrust"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
)

func init() {
	register(&command{
		name:  "enroll",
		usage: "[--config FILE]",
		short: "ask shim to enroll the signing certificate as a Machine Owner Key at the next boot (mokutil --import)",
		run:   runEnroll,
	})
}

// enrollNextBoot is what the user sees at the next boot (shim's MokManager).
const enrollNextBoot = `At the next boot, shim's MokManager (a blue screen) appears before GRUB:
  press a key within 10 seconds, choose "Enroll MOK", then "Continue", "Yes",
  type the password you just gave, and choose "Reboot".
Until then, modules signed with this key are refused where Secure Boot is on
("Key was rejected by service"); check with: dkms-sign-hook status`

// stdin is where mokutil --import reads the one-time password (a variable
// for tests).
var stdin = os.Stdin

func runEnroll(e *env, args []string) error {
	c := commands["enroll"]
	fs := newFlags(c, e)
	cfgPath := fs.String("config", "", "configuration file naming the certificate")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	cfg, err := loadConfig(e, *cfgPath)
	if err != nil {
		return err
	}
	cert, err := keys.LoadCertificate(cfg.Certificate)
	if err != nil {
		return err
	}
	state, msg, err := kerneltrust.MokTestKey(cert)
	switch {
	case errors.Is(err, kerneltrust.ErrNoEFI):
		return withHint(fmt.Errorf("cannot enroll %s: %w", cfg.Certificate, err),
			"there is no MOK list without UEFI: Secure Boot is not what refuses modules here; see `dkms-sign-hook status`")
	case err != nil:
		return fmt.Errorf("cannot enroll %s: %w", cfg.Certificate, err)
	}
	switch state {
	case kerneltrust.MokEnrolled:
		fmt.Fprintf(e.stdout, "%s is already enrolled (mokutil --test-key: %s): nothing to do\n", cfg.Certificate, msg)
		return nil
	case kerneltrust.MokPending:
		fmt.Fprintf(e.stdout, "%s is already waiting for enrollment (mokutil --test-key: %s): nothing to do\n%s\n", cfg.Certificate, msg, enrollNextBoot)
		return nil
	case kerneltrust.MokBlocked:
		return withHint(fmt.Errorf("cannot enroll %s: %s", cfg.Certificate, msg),
			"the key is revoked (dbx or MokListX): make a new one with dkms-sign-hook keygen")
	case kerneltrust.MokUnknown:
		return fmt.Errorf("cannot enroll %s: mokutil --test-key answered %q", cfg.Certificate, msg)
	}
	fmt.Fprintf(e.stdout, "enrolling %s (%s) as a Machine Owner Key with mokutil --import\n", cfg.Certificate, keys.Describe(cert).Subject)
	fmt.Fprintf(e.stdout, "mokutil asks for a one-time password, twice; MokManager asks for it once at the next boot\n")
	if err := kerneltrust.MokImport(cert, stdin, e.stdout, e.stderr); err != nil {
		return err
	}
	if state, msg, _ = kerneltrust.MokTestKey(cert); state != kerneltrust.MokPending {
		return fmt.Errorf("mokutil --import succeeded, but mokutil --test-key now says %q", msg)
	}
	fmt.Fprintf(e.stdout, "enrollment requested.\n%s\n", enrollNextBoot)
	return nil
}
