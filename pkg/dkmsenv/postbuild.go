package dkmsenv

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
)

// RunPostBuild runs a package's own POST_BUILD (argv, passed to the hook
// after "--") as DKMS would have: its first word is a path relative to the
// build directory cwd, which is also the working directory; it must be
// executable, else DKMS only warns.
func RunPostBuild(log logrus.FieldLogger, cwd string, argv []string, stdout, stderr io.Writer) error {
	return runPackageScript(log, "post_build", cwd, argv, stdout, stderr)
}

// RunPreInstall runs a package's own PRE_INSTALL the same way, from the
// package's source directory cwd. When it fails, DKMS stops the install:
// the hook must fail then too.
func RunPreInstall(log logrus.FieldLogger, cwd string, argv []string, stdout, stderr io.Writer) error {
	return runPackageScript(log, "pre_install", cwd, argv, stdout, stderr)
}

// runPackageScript runs the package's own script of DKMS's kind
// (post_build, pre_install) as DKMS's run_build_script does.
func runPackageScript(log logrus.FieldLogger, kind, cwd string, argv []string, stdout, stderr io.Writer) error {
	if len(argv) == 0 {
		return nil
	}
	script := filepath.Join(cwd, argv[0])
	st, err := os.Stat(script)
	if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		log.WithField("script", script).Warnf("the package's own %s script is not executable; not run (as DKMS would)", kind)
		return nil
	}
	log.WithField("script", strings.Join(argv, " ")).Infof("running the package's own %s script", kind)
	cmd := exec.Command(script, argv[1:]...)
	cmd.Dir = cwd
	cmd.Env = ChildEnv()
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("the package's own %s %s: %w", strings.ToUpper(kind), argv[0], err)
	}
	return nil
}

// ChildEnv is the environment of the programs the DKMS work runs (the
// package's own POST_BUILD, depmod): ours, without the key's passphrase.
func ChildEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, keys.PinEnv+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// Depmod refreshes a kernel's module index after its modules changed
// (depmod -b <base> below test roots).
func (r Roots) Depmod(kver string) error {
	path, err := exec.LookPath("depmod")
	if err != nil {
		for _, p := range []string{"/usr/sbin/depmod", "/sbin/depmod"} {
			if _, err2 := exec.LookPath(p); err2 == nil {
				path, err = p, nil
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("depmod %s: depmod not found (apt-get install kmod)", kver)
	}
	args := []string{kver}
	if !r.Live() {
		args = []string{"-b", r.Path("/"), kver}
	}
	cmd := exec.Command(path, args...)
	cmd.Env = ChildEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("depmod %s: %v: %s", kver, err, strings.Join(strings.Fields(string(out)), " "))
	}
	return nil
}
