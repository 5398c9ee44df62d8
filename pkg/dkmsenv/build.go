package dkmsenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Build is one package version built for one kernel and architecture:
// the directory <tree>/<package>/<version>/<kernelver>/<arch>/module.
type Build struct {
	Tree      string // DKMS tree, e.g. /var/lib/dkms
	Package   string // DKMS package name, e.g. "v4l2loopback"
	Version   string // package version
	KernelVer string // target kernel release
	Arch      string // target machine, e.g. "x86_64"
	// KernelFrom says where a hook's KernelVer and Arch came from:
	// "environment", "scan of <dir>" or "running kernel" (Discover only).
	KernelFrom string
	ModTime    time.Time // of the module directory, when it exists
}

// Dir is the module directory: <tree>/<package>/<version>/<kernelver>/<arch>/module.
func (b *Build) Dir() string {
	return filepath.Join(b.Tree, b.Package, b.Version, b.KernelVer, b.Arch, "module")
}

// ValidName checks a package, version, kernel or arch name read from the
// environment, the command line or a directory: one path element, no '..'.
func ValidName(kind, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty %s name", kind)
	case name == "." || name == "..":
		return fmt.Errorf("invalid %s name %q: it cannot be '.' or '..'", kind, name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("invalid %s name %q: it cannot contain '/'", kind, name)
	case strings.HasPrefix(name, "-"):
		return fmt.Errorf("invalid %s name %q: it cannot start with '-'", kind, name)
	}
	return nil
}

// ErrNotInBuildDir is returned by Discover when the working directory is not
// a DKMS build directory <tree>/<package>/<version>/build.
var ErrNotInBuildDir = errors.New("not run from a DKMS build directory (<dkms_tree>/<package>/<version>/build); is this a POST_BUILD hook?")

// Discover finds the builds a POST_BUILD hook is run for. DKMS runs
// POST_BUILD with the working directory <dkms_tree>/<package>/<version>/build,
// which gives the tree, the package and the version. kernelver and arch come from the environment when
// DKMS sets them (3.x does): one build. DKMS 2.2 to 2.8 autoinstall does
// not set them: then every kernel this version was built for
// (<package>/<version>/*/*/module/) is one, as guessing the newest from
// timestamps could leave the new kernel's modules unsigned (signing again
// what is already signed is a no-op). Only when nothing is built does the
// running kernel give the build.
func (r Roots) Discover(cwd string, getenv func(string) string) ([]Build, error) {
	cwd = filepath.Clean(cwd)
	if filepath.Base(cwd) != "build" {
		return nil, fmt.Errorf("%s: %w", cwd, ErrNotInBuildDir)
	}
	vdir := filepath.Dir(cwd)
	mdir := filepath.Dir(vdir)
	base := Build{Tree: filepath.Dir(mdir), Package: filepath.Base(mdir), Version: filepath.Base(vdir)}
	if err := ValidName("package", base.Package); err != nil {
		return nil, err
	}
	if err := ValidName("version", base.Version); err != nil {
		return nil, err
	}
	if m := getenv("module"); m != "" && m != base.Package {
		return nil, fmt.Errorf("environment says module=%q but the working directory %s belongs to %q", m, cwd, base.Package)
	}
	if v := getenv("module_version"); v != "" && v != base.Version {
		return nil, fmt.Errorf("environment says module_version=%q but the working directory %s belongs to %q", v, cwd, base.Version)
	}
	builds, err := r.findKernels(base, getenv)
	if err != nil {
		return nil, err
	}
	for _, b := range builds {
		if err := ValidName("kernel", b.KernelVer); err != nil {
			return nil, err
		}
		if err := ValidName("arch", b.Arch); err != nil {
			return nil, err
		}
	}
	return builds, nil
}

func (r Roots) findKernels(base Build, getenv func(string) string) ([]Build, error) {
	with := func(k, a, from string) Build {
		b := base
		b.KernelVer, b.Arch, b.KernelFrom = k, a, from
		return b
	}
	k, a := getenv("kernelver"), getenv("arch")
	if k != "" && a != "" {
		return []Build{with(k, a, "environment")}, nil
	}
	vdir := filepath.Join(base.Tree, base.Package, base.Version)
	builds, err := BuildsOfVersion(vdir)
	if err != nil {
		return nil, err
	}
	var out []Build
	for _, b := range builds {
		if (k == "" || b.KernelVer == k) && (a == "" || b.Arch == a) {
			out = append(out, with(b.KernelVer, b.Arch, "scan of "+vdir))
		}
	}
	if len(out) > 0 {
		sort.SliceStable(out, func(i, j int) bool {
			if out[i].KernelVer != out[j].KernelVer {
				return out[i].KernelVer < out[j].KernelVer
			}
			return out[i].Arch < out[j].Arch
		})
		return out, nil
	}
	rel, arch, err := r.RunningKernel()
	if err != nil {
		return nil, fmt.Errorf("no kernelver in the environment, no build under %s, and the running kernel is unknown: %w", vdir, err)
	}
	if k != "" {
		rel = k
	}
	if a != "" {
		arch = a
	}
	return []Build{with(rel, arch, "running kernel")}, nil
}

// CheckDir makes sure every directory from the tree down to the module
// directory (<package>/<version>/<kernelver>/<arch>/module) is a real
// directory, not a symlink that could lead the signer out of the tree.
func (b *Build) CheckDir() error {
	p := b.Tree
	for _, part := range []string{b.Package, b.Version, b.KernelVer, b.Arch, "module"} {
		p = filepath.Join(p, part)
		st, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("module directory: %w", err)
		}
		if st.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("%s is a symlink: refusing to follow it out of the DKMS tree", p)
		}
		if !st.IsDir() {
			return fmt.Errorf("%s is not a directory", p)
		}
	}
	return nil
}
