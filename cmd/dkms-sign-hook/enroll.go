package main

import (
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
	fmt.Fprintf(e.stdout, "enrolling %s (%s) as a Machine Owner Key\n", cfg.Certificate, keys.Describe(cert).Subject)
	for _, p := range kerneltrust.ShimProblems(cert) {
		fmt.Fprintf(e.stderr, "warning: %s\n", p)
	}
	state, msg, err := kerneltrust.Enroll(cert, stdin, e.stdout, e.stderr)
	switch {
	case err != nil:
		return fmt.Errorf("cannot enroll %s: %w", cfg.Certificate, err)
	case state == kerneltrust.MokEnrolled:
		fmt.Fprintf(e.stdout, "%s is already enrolled (mokutil --test-key: %s): nothing to do\n", cfg.Certificate, msg)
	case state == kerneltrust.MokPending:
		fmt.Fprintf(e.stdout, "%s is already waiting for enrollment (mokutil --test-key: %s): nothing to do\n%s\n", cfg.Certificate, msg, enrollNextBoot)
	default:
		fmt.Fprintf(e.stdout, "enrollment requested (mokutil --import asked for a one-time password, twice).\n%s\n", enrollNextBoot)
	}
	return nil
}
