package main

import (
	"fmt"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/config"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/signkey"
)

// openSigner opens spec's key and certificate with the process's
// environment; prompt allows asking for a passphrase on the terminal: only
// for commands a person runs, never for what DKMS runs during an upgrade.
func openSigner(e *env, spec signkey.Spec, prompt bool) (*sign.Signer, func(), error) {
	spec.Getenv = e.getenv
	spec.Warn = func(msg string) { fmt.Fprintf(e.stderr, "dkms-sign-hook: warning: %s\n", msg) }
	if prompt {
		spec.Passphrase = terminalPassphrase(e, spec.PinFile)
	}
	return signkey.Open(spec)
}

// keyAccess says how a DKMS command may get the key's passphrase or PIN.
type keyAccess int

const (
	// unattended: the hook, run by DKMS, maybe inside an apt upgrade: the
	// config's pin_file or KBUILD_SIGN_PIN, never a prompt.
	unattended keyAccess = iota
	// asDKMSWill: as DKMS will run sign-file at a later upgrade: pin_file
	// only (KBUILD_SIGN_PIN of the admin's shell will not be there).
	asDKMSWill
	// interactive: a person runs the command: may ask on the terminal.
	interactive
)

// signerFromConfig opens the configured key and certificate for hash.
func signerFromConfig(e *env, cfg *config.Config, hash string, access keyAccess) (*sign.Signer, func(), error) {
	if access == asDKMSWill {
		e = e.without(keys.PinEnv)
	}
	return openSigner(e, signkey.FromConfig(cfg, hash), access == interactive)
}

// without returns a copy of e whose environment lacks the variable name.
func (e *env) without(name string) *env {
	c := *e
	c.getenv = func(k string) string {
		if k == name {
			return ""
		}
		return e.getenv(k)
	}
	return &c
}
