package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unicode"

	"github.com/sirupsen/logrus"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/config"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/dkmsenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/sign"
)

func init() {
	register(&command{
		name:  "hook",
		usage: "[--config FILE] [-- PACKAGE_POST_BUILD [ARGS...]]",
		short: "DKMS POST_BUILD entry point: sign the modules DKMS just built (set up by enable)",
		run:   runHook,
	})
}

// runHook is what DKMS runs as POST_BUILD, in <dkms_tree>/<module>/<version>/build.
// It first runs the package's own POST_BUILD (passed after --), then signs
// every module in the module directory with the configured key.
func runHook(e *env, args []string) (err error) {
	c := commands["hook"]
	fs := newFlags(c, e)
	cfgPath := fs.String("config", "", "configuration file (default $"+config.EnvVar+", else "+config.DefaultPath+")")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log := newLogger(e)
	if tty := capturedTTY(e); tty != nil {
		defer tty.Close()
		log.AddHook(ttyHook{tty})
		defer func() {
			if err != nil {
				fmt.Fprintf(tty, "dkms-sign-hook hook: %v\n", err)
			}
		}()
	}
	cfg, cfgErr := loadConfig(e, *cfgPath)
	cwd, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("working directory: %w", err)
	}
	// The package's own POST_BUILD runs whatever happens to the signing.
	chainErr := runPackagePostBuild(e, log, cwd, fs.Args())
	r := sysRoots(e)
	ctxs, err := r.Discover(cwd, e.getenv)
	if err != nil {
		return withHint(err, "DKMS runs the hook as POST_BUILD (see `dkms-sign-hook enable`); to sign built modules now, run `dkms-sign-hook sign --dkms`")
	}
	if cfgErr != nil {
		for _, ctx := range ctxs {
			warnUnsigned(log, ctx, nil, "the configuration is unusable")
		}
		return cfgErr
	}
	// Without kernelver in the environment (DKMS 2.x autoinstall), every
	// build of this version: signing again what is signed changes nothing.
	var errs []error
	for _, ctx := range ctxs {
		if err := signContext(e, log, r, cfg, ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return joinErrors(e, c, errs)
	}
	return chainErr
}

// runPackagePostBuild runs the package's own POST_BUILD as DKMS would have:
// its first word is a path relative to the build directory, which is also
// the working directory; it must be executable, else DKMS only warns.
func runPackagePostBuild(e *env, log *logrus.Logger, cwd string, argv []string) error {
	if len(argv) == 0 {
		return nil
	}
	script := filepath.Join(cwd, argv[0])
	st, err := os.Stat(script)
	if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		log.WithField("script", script).Warn("the package's own post_build script is not executable; not run (as DKMS would)")
		return nil
	}
	log.WithField("script", strings.Join(argv, " ")).Info("running the package's own post_build script")
	cmd := exec.Command(script, argv[1:]...)
	cmd.Dir = cwd
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = e.stdout, e.stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("the package's own POST_BUILD %s: %w", argv[0], err)
	}
	return nil
}

// signContext signs every module of one DKMS build.
func signContext(e *env, log *logrus.Logger, r dkmsenv.Roots, cfg *config.Config, ctx *dkmsenv.Context) error {
	if err := ctx.CheckModuleDir(); err != nil {
		return err
	}
	files, skipped, err := dkmsenv.ModuleFiles(ctx.ModuleDir())
	if err != nil {
		return err
	}
	for _, s := range skipped {
		log.WithField("file", s.Path).Warnf("not signing: %s", s.Why)
	}
	if len(files) == 0 {
		log.WithField("dir", ctx.ModuleDir()).Warn("no modules to sign")
		return nil
	}
	hash, from, err := hashFor(r, cfg, ctx.KernelVer)
	if errors.Is(err, dkmsenv.ErrNoModuleSig) {
		log.WithField("kernel", ctx.KernelVer).Warnf("not signing: %v; set hash= in %s to sign anyway", err, cfgName(cfg))
		return nil
	}
	if err != nil {
		warnUnsigned(log, ctx, files, "no hash")
		return err
	}
	signer, closeKey, err := signerFromConfig(e, cfg, hash, unattended)
	if err != nil {
		if what := absentKey(cfg, err); what != "" {
			return keyGone(log, ctx, cfg, files, what)
		}
		warnUnsigned(log, ctx, files, "the key is unusable")
		return err
	}
	defer closeKey()
	audit := &signingLog{path: cfg.Log}
	var failed, unlogged []string
	var goneErr error
	for i, f := range files {
		res, err := signer.SignFile(f)
		if errors.Is(err, keys.ErrTokenUnreachable) {
			// The signer went away mid-batch: as if the key were unplugged.
			// This module is untouched (replaced only once signed).
			log.WithField("file", f).Warnf("not signed: %v", err)
			goneErr = keyGone(log, ctx, cfg, files[i:], absentKey(cfg, err))
			break
		}
		if err != nil {
			log.WithField("file", f).Errorf("signing failed: %v", err)
			failed = append(failed, f)
			continue
		}
		fields := logrus.Fields{"file": f, "kernel": ctx.KernelVer, "hash": signer.Hash(), "key": keyIDOf(signer)}
		if !res.Changed {
			log.WithFields(fields).Info("already signed by this key")
			continue
		}
		if res.Replaced > 0 {
			fields["replaced"] = res.Replaced
		}
		fields["hash_from"] = from
		log.WithFields(fields).Info("signed")
		if err := audit.add(ctx, f, res, signer); err != nil {
			log.WithField("file", f).Errorf("signed, but not logged: %v", err)
			unlogged = append(unlogged, f)
		}
	}
	var msgs []string
	if len(failed) > 0 {
		msgs = append(msgs, plural(len(failed), "module", "modules")+" of "+ctx.ModuleDir()+" failed")
	}
	if len(unlogged) > 0 {
		msgs = append(msgs, plural(len(unlogged), "module", "modules")+" of "+ctx.ModuleDir()+" signed but not logged in "+cfg.Log)
	}
	if goneErr != nil {
		msgs = append(msgs, goneErr.Error())
	}
	if len(msgs) > 0 {
		return fmt.Errorf("%s (see above)", strings.Join(msgs, "; "))
	}
	return nil
}

// keyGone reports modules left unsigned because the key is absent or its
// token unreachable, and returns the error missing_key asks for.
func keyGone(log *logrus.Logger, ctx *dkmsenv.Context, cfg *config.Config, files []string, what string) error {
	warnUnsigned(log, ctx, files, what)
	if cfg.MissingKey == config.MissingKeyFail {
		return fmt.Errorf("%s; %s not signed (missing_key = fail)", what, plural(len(files), "module", "modules"))
	}
	log.Warnf("%s (missing_key = warn: exit 0)", what)
	return nil
}

func cfgName(cfg *config.Config) string {
	if cfg.Path != "" {
		return cfg.Path
	}
	return config.DefaultPath
}

// warnUnsigned says loudly which modules stay unsigned and how to sign them.
func warnUnsigned(log *logrus.Logger, ctx *dkmsenv.Context, files []string, why string) {
	log.Warnf("*** %s: modules of %s/%s for kernel %s are NOT signed with your key; where signatures are enforced (Secure Boot) they will not load ***",
		why, ctx.Module, ctx.Version, ctx.KernelVer)
	for _, f := range files {
		log.WithField("file", f).Warn("not signed")
	}
	log.Warnf("to sign them once the key is available: dkms-sign-hook sign --dkms --kernel %s", ctx.KernelVer)
}

// keyIDOf names the signing certificate for logs: its subjectKeyIdentifier
// in hex (as /proc/keys shows it), else issuer CN and serial.
func keyIDOf(s *sign.Signer) string {
	cert := s.Certificate()
	if len(cert.SubjectKeyId) > 0 {
		return fmt.Sprintf("%x", cert.SubjectKeyId)
	}
	return fmt.Sprintf("%s:%x", cert.Issuer.CommonName, cert.SerialNumber)
}

// newLogger logs to stderr, which DKMS shows (or writes to make.log), one
// readable line per event: "dkms-sign-hook: level: message key=value...".
func newLogger(e *env) *logrus.Logger {
	l := logrus.New()
	l.SetOutput(e.stderr)
	l.SetFormatter(lineFormatter{})
	return l
}

// capturedTTY returns the terminal when the hook's stderr is a regular file:
// DKMS 3.1.7 and later append POST_BUILD's output to make.log, so a warning
// that modules are NOT signed would reach no one; it is repeated on the
// terminal dkms (or apt) runs in, if there is one.
func capturedTTY(e *env) *os.File {
	f, ok := e.stderr.(*os.File)
	if !ok {
		return nil
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil
	}
	tty, err := os.OpenFile("/dev/tty", os.O_WRONLY|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil
	}
	return tty
}

// ttyHook writes warnings and errors to the terminal too.
type ttyHook struct{ tty *os.File }

func (ttyHook) Levels() []logrus.Level {
	return []logrus.Level{logrus.PanicLevel, logrus.FatalLevel, logrus.ErrorLevel, logrus.WarnLevel}
}

func (h ttyHook) Fire(en *logrus.Entry) error {
	line, err := lineFormatter{}.Format(en)
	if err == nil {
		h.tty.Write(line)
	}
	return nil
}

type lineFormatter struct{}

func (lineFormatter) Format(en *logrus.Entry) ([]byte, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "dkms-sign-hook: %s: %s", en.Level, logMessage(en.Message))
	for _, k := range []string{"file", "script", "dir", "kernel", "hash", "hash_from", "key", "replaced"} {
		if v, ok := en.Data[k]; ok {
			fmt.Fprintf(&b, " %s=%s", k, logValue(fmt.Sprint(v)))
		}
	}
	b.WriteByte('\n')
	return []byte(b.String()), nil
}

// logValue quotes a field value (Go syntax) unless it holds only characters
// that can neither end the line nor pass for another field: a file name
// with a newline must not forge log lines.
func logValue(v string) string {
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:,@%~", r)) {
			return strconv.Quote(v)
		}
	}
	if v == "" {
		return `""`
	}
	return v
}

// logMessage escapes control characters in a message (errors name files).
func logMessage(m string) string {
	if !strings.ContainsFunc(m, unicode.IsControl) {
		return m
	}
	q := strconv.Quote(m)
	return q[1 : len(q)-1]
}
