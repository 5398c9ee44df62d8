package dkms

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/testenv"
)

// TestOverrideFile sources contrib/dkms/dkms-override.conf with bash, as
// DKMS's safe_source does (after the package's dkms.conf, with $dkms_tree
// set), and then runs POST_BUILD exactly as DKMS 3.0.10's run_build_script:
// from <tree>/<module>/<version>/build, with that directory prefixed. The
// "hook" is a stub that prints its arguments. No root needed.
func TestOverrideFile(t *testing.T) {
	bash := testenv.LookPath(t, "bash", "bash")
	tmpl, err := os.ReadFile("../../contrib/dkms/dkms-override.conf")
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	stub := filepath.Join(base, "usr", "sbin", "dkms-sign-hook")
	os.MkdirAll(filepath.Dir(stub), 0o755)
	if err := os.WriteFile(stub, []byte("#!/bin/sh\necho \"hook:$*\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	override := filepath.Join(base, "override.conf")
	text := strings.Replace(string(tmpl), "_dsh_bin=/usr/sbin/dkms-sign-hook\n", "_dsh_bin="+stub+"\n", 1)
	if text == string(tmpl) {
		t.Fatal("override has no _dsh_bin=/usr/sbin/dkms-sign-hook line")
	}
	os.WriteFile(override, []byte(text), 0o644)

	// A physically deep tree, and a short symlink to it (as an admin might
	// set dkms_tree): the `..` count must follow the physical path.
	deep := filepath.Join(base, "a", "b", "c", "d", "e", "dkms")
	link := filepath.Join(base, "t")
	os.MkdirAll(deep, 0o755)
	os.Symlink(deep, link)

	for _, tc := range []struct {
		name, tree, postBuild, want string
	}{
		{"no own POST_BUILD", deep, "", "hook:hook --"},
		{"own POST_BUILD chained", deep, "own.sh arg1 arg2", "hook:hook -- own.sh arg1 arg2"},
		{"symlinked tree", link, "own.sh", "hook:hook -- own.sh"},
		{"sourced twice", deep, "twice", "hook:hook -- own.sh"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			build := filepath.Join(tc.tree, "pkg", "1.0", "build")
			os.MkdirAll(build, 0o755)
			pb := tc.postBuild
			script := `. "$1"`
			if pb == "twice" {
				pb = "own.sh"
				script = `. "$1"; . "$1"`
			}
			// As DKMS: run="$dkms_tree/$module/$module_version/build/$post_build"; cd; exec $run
			script += `
run="$dkms_tree/pkg/1.0/build/$POST_BUILD"
[ -x "${run%% *}" ] || { echo "not executable: ${run%% *}"; exit 1; }
cd "$dkms_tree/pkg/1.0/build/" && exec $run`
			cmd := exec.Command(bash, "-c", script, "bash", override)
			cmd.Env = append(os.Environ(), "dkms_tree="+tc.tree, "POST_BUILD="+pb)
			out, err := cmd.CombinedOutput()
			if got := strings.TrimSpace(string(out)); err != nil || got != tc.want {
				t.Errorf("got %q (%v), want %q", got, err, tc.want)
			}
		})
	}
}
