package dkmsenv

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Markers in the files this tool writes, so it never touches an admin's file.
const (
	OverrideMarker  = "dkms-sign-hook-override"
	FrameworkMarker = "dkms-sign-hook-framework"
	dropInName      = "dkms-sign-hook.conf"
)

// Host is the DKMS installation the tool works on: its directories, its
// tree, and the shared override file that the per-package route links to.
type Host struct {
	Roots    Roots
	Tree     string // DKMS's tree: framework.conf's dkms_tree, else /var/lib/dkms
	Override string // the shared override file (contrib/dkms/dkms-override.conf as installed)
}

// OpenHost finds the DKMS tree below r.
func OpenHost(r Roots, override string) (*Host, error) {
	tree, err := r.Tree()
	if err != nil {
		return nil, err
	}
	return &Host{Roots: r, Tree: tree, Override: override}, nil
}

// OverridePath is /etc/dkms/<pkg>.conf.
func (h *Host) OverridePath(pkg string) string {
	return filepath.Join(h.Roots.EtcDKMS(), pkg+".conf")
}

// DropInPath is the framework route's /etc/dkms/framework.conf.d/dkms-sign-hook.conf.
func (h *Host) DropInPath() string {
	return filepath.Join(h.Roots.EtcDKMS(), "framework.conf.d", dropInName)
}

// OverrideState is what /etc/dkms/<pkg>.conf is to this tool.
type OverrideState int

const (
	OverrideNone     OverrideState = iota // no override file
	OverrideOurs                          // a symlink to our shared override
	OverrideIncludes                      // the admin's file, which sources our override
	OverrideAdmin                         // the admin's file, without our hook
)

// OverrideState classifies /etc/dkms/<pkg>.conf. A symlink is ours when it
// points at h.Override or at any file carrying our marker (e.g. an override
// installed under another prefix); target is the symlink's target.
func (h *Host) OverrideState(pkg string) (state OverrideState, target string) {
	p := h.OverridePath(pkg)
	st, err := os.Lstat(p)
	if err != nil {
		return OverrideNone, ""
	}
	if st.Mode()&fs.ModeSymlink != 0 {
		target, _ = os.Readlink(p)
		if target == h.Override || fileHas(p, OverrideMarker) {
			return OverrideOurs, target
		}
		return OverrideAdmin, target
	}
	if SourcesOverride(p, h.Override) {
		return OverrideIncludes, ""
	}
	return OverrideAdmin, ""
}

// fileHas reports whether the file at path (following symlinks) contains s.
func fileHas(path, s string) bool {
	b, err := os.ReadFile(path)
	return err == nil && strings.Contains(string(b), s)
}

// SourcesOverride reports whether the shell file at path has a line that
// sources our override: ". FILE" or "source FILE", FILE being override or
// another file carrying our marker. Comments and mere mentions do not count.
func SourcesOverride(path, override string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || (f[0] != "." && f[0] != "source") {
			continue
		}
		arg := strings.TrimSuffix(strings.Trim(f[1], `"'`), ";")
		if arg == override || (filepath.IsAbs(arg) && fileHas(arg, OverrideMarker)) {
			return true
		}
	}
	return false
}

// Shadowing lists the more specific override files DKMS sources after
// /etc/dkms/<pkg>.conf, for the package's versions in the tree
// (<pkg>-<version>.conf, <pkg>-<version>-<kernel>.conf,
// <pkg>-<version>-<kernel>-<arch>.conf; see read_conf in /usr/sbin/dkms),
// that set POST_BUILD or PRE_INSTALL without sourcing our override: they
// would silently replace ours.
func (h *Host) Shadowing(pkg string) []string {
	ents, err := os.ReadDir(h.Roots.EtcDKMS())
	if err != nil {
		return nil
	}
	versions, _ := Versions(h.Tree, pkg)
	var out []string
	for _, e := range ents {
		n := e.Name()
		if !strings.HasSuffix(n, ".conf") {
			continue
		}
		for _, v := range versions {
			stem := pkg + "-" + v
			if n != stem+".conf" && !strings.HasPrefix(n, stem+"-") {
				continue
			}
			p := filepath.Join(h.Roots.EtcDKMS(), n)
			if (fileHas(p, "POST_BUILD") || fileHas(p, "PRE_INSTALL")) && !SourcesOverride(p, h.Override) {
				out = append(out, p)
			}
			break
		}
	}
	return out
}

// FrameworkState is the state of the framework route's drop-in.
type FrameworkState int

const (
	FrameworkAbsent  FrameworkState = iota // no drop-in
	FrameworkOurs                          // our drop-in: DKMS signs every package through this tool
	FrameworkForeign                       // a file of that name we did not write
)

var frameworkWords = [...][2]string{
	FrameworkAbsent:  {"not-enabled", "not enabled"},
	FrameworkOurs:    {"enabled", "enabled"},
	FrameworkForeign: {"foreign-file", "foreign file"},
}

func (s FrameworkState) String() string { return frameworkWords[s][1] }

// MarshalText gives the JSON word: enabled, not-enabled or foreign-file.
func (s FrameworkState) MarshalText() ([]byte, error) { return []byte(frameworkWords[s][0]), nil }

// FrameworkState reports whether our framework.conf.d drop-in is present.
func (h *Host) FrameworkState() FrameworkState {
	p := h.DropInPath()
	if _, err := os.Lstat(p); err != nil {
		return FrameworkAbsent
	}
	if fileHas(p, FrameworkMarker) {
		return FrameworkOurs
	}
	return FrameworkForeign
}

// Route is how DKMS gets a package's modules signed by this tool.
type Route int

const (
	RouteNone        Route = iota // not signed by this tool
	RouteOverride                 // /etc/dkms/<pkg>.conf links to our override
	RouteOwnOverride              // the admin's /etc/dkms/<pkg>.conf sources our override
	RouteFramework                // our framework.conf.d drop-in: DKMS runs us as sign_file
)

var routeWords = [...][2]string{
	RouteNone:        {"no", "no"},
	RouteOverride:    {"override", "override"},
	RouteOwnOverride: {"own-override", "own override including the hook"},
	RouteFramework:   {"framework", "framework"},
}

func (r Route) String() string { return routeWords[r][1] }

// MarshalText gives the JSON word: no, override, own-override or framework.
func (r Route) MarshalText() ([]byte, error) { return []byte(routeWords[r][0]), nil }

// RouteOf says how pkg is signed, with a note on what may defeat it (an
// admin's override, a more specific override replacing POST_BUILD).
func (h *Host) RouteOf(pkg string, fw FrameworkState) (Route, string) {
	route, note := RouteNone, ""
	switch st, _ := h.OverrideState(pkg); {
	case st == OverrideOurs:
		route = RouteOverride
	case st == OverrideIncludes:
		route = RouteOwnOverride
	case fw == FrameworkOurs:
		route = RouteFramework
		if st == OverrideAdmin {
			note = h.OverridePath(pkg) + " is the admin's"
		}
	case st == OverrideAdmin:
		note = h.OverridePath(pkg) + " is the admin's and does not include the hook"
	}
	if sh := h.Shadowing(pkg); len(sh) > 0 && route != RouteNone {
		note = strings.TrimPrefix(note+"; ", "; ") + "POST_BUILD or PRE_INSTALL replaced by " + strings.Join(sh, ", ")
	}
	return route, note
}
