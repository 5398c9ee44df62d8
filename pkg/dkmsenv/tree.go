package dkmsenv

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/modfile"
)

// isRealDir reports whether p is a directory and not a symlink.
func isRealDir(p string) bool {
	st, err := os.Lstat(p)
	return err == nil && st.IsDir()
}

// Packages lists the DKMS packages: the real directories directly under tree
// (DKMS also keeps mok.key and mok.pub there, which are files).
func Packages(tree string) ([]string, error) {
	ents, err := os.ReadDir(tree)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list DKMS packages: %w", err)
	}
	var pkgs []string
	for _, e := range ents {
		if e.Type().IsDir() && ValidName("package", e.Name()) == nil {
			pkgs = append(pkgs, e.Name())
		}
	}
	return pkgs, nil
}

// IsPackage reports whether name is a DKMS package: a real directory under tree.
func IsPackage(tree, name string) bool {
	return ValidName("package", name) == nil && isRealDir(filepath.Join(tree, name))
}

// Versions lists a package's versions (real directories; DKMS's
// kernel-<kver>-<arch> entries are symlinks and are skipped).
func Versions(tree, pkg string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(tree, pkg))
	if err != nil {
		return nil, fmt.Errorf("list versions of %s: %w", pkg, err)
	}
	var vs []string
	for _, e := range ents {
		if e.Type().IsDir() && ValidName("version", e.Name()) == nil && e.Name() != "original_module" {
			vs = append(vs, e.Name())
		}
	}
	return vs, nil
}

// BuildsOfVersion lists the <kernelver>/<arch>/module directories of one
// package version directory.
func BuildsOfVersion(vdir string) ([]Build, error) {
	kents, err := os.ReadDir(vdir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("scan builds: %w", err)
	}
	var out []Build
	for _, k := range kents {
		if !k.Type().IsDir() || k.Name() == "build" || k.Name() == "source" || ValidName("kernel", k.Name()) != nil {
			continue
		}
		aents, err := os.ReadDir(filepath.Join(vdir, k.Name()))
		if err != nil {
			continue
		}
		for _, a := range aents {
			if !a.Type().IsDir() || ValidName("arch", a.Name()) != nil {
				continue
			}
			dir := filepath.Join(vdir, k.Name(), a.Name(), "module")
			st, err := os.Lstat(dir)
			if err != nil || !st.IsDir() {
				continue
			}
			out = append(out, Build{
				Tree: filepath.Dir(filepath.Dir(vdir)), Package: filepath.Base(filepath.Dir(vdir)), Version: filepath.Base(vdir),
				KernelVer: k.Name(), Arch: a.Name(), ModTime: st.ModTime(),
			})
		}
	}
	return out, nil
}

// AllBuilds lists every built module directory in the tree, sorted by
// package, version, kernel and arch.
func AllBuilds(tree string) ([]Build, error) {
	pkgs, err := Packages(tree)
	if err != nil {
		return nil, err
	}
	var out []Build
	for _, p := range pkgs {
		vs, err := Versions(tree, p)
		if err != nil {
			return nil, err
		}
		for _, v := range vs {
			bs, err := BuildsOfVersion(filepath.Join(tree, p, v))
			if err != nil {
				return nil, err
			}
			out = append(out, bs...)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Package != b.Package {
			return a.Package < b.Package
		}
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		if a.KernelVer != b.KernelVer {
			return a.KernelVer < b.KernelVer
		}
		return a.Arch < b.Arch
	})
	return out, nil
}

// Skipped is a module-looking entry that ModuleFiles refused to touch.
type Skipped struct {
	Path, Why string
}

// ModuleFiles lists the module files in dir: regular files named *.ko,
// *.ko.xz, *.ko.zst or *.ko.gz. Symlinks and other non-regular entries are
// never followed: they are returned as skipped, with the reason. dir itself
// must be a real directory, not a symlink.
func ModuleFiles(dir string) (files []string, skipped []Skipped, err error) {
	st, err := os.Lstat(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("module directory: %w", err)
	}
	if st.Mode()&fs.ModeSymlink != 0 {
		return nil, nil, fmt.Errorf("module directory %s is a symlink: refusing to follow it", dir)
	}
	if !st.IsDir() {
		return nil, nil, fmt.Errorf("module directory %s is not a directory", dir)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("module directory: %w", err)
	}
	for _, e := range ents {
		if !modfile.IsModule(e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		switch {
		case e.Type()&fs.ModeSymlink != 0:
			skipped = append(skipped, Skipped{p, "symlink, not followed"})
		case !e.Type().IsRegular():
			skipped = append(skipped, Skipped{p, "not a regular file"})
		default:
			files = append(files, p)
		}
	}
	return files, skipped, nil
}

// InstalledDir is where DKMS installs a kernel's modules: <Modules>/<kver>/updates/dkms.
func (r Roots) InstalledDir(kver string) string {
	return filepath.Join(r.Modules(), kver, "updates", "dkms")
}

// InstalledModule returns the installed copy of a built module file (same
// name, any module suffix) under InstalledDir(kver), or "" if none.
func (r Roots) InstalledModule(kver, builtName string) string {
	base, _, _ := modfile.Stem(builtName)
	dir := r.InstalledDir(kver)
	for _, f := range modfile.Formats {
		p := filepath.Join(dir, base+f.Suffix())
		if st, err := os.Lstat(p); err == nil && st.Mode().IsRegular() {
			return p
		}
	}
	return ""
}
