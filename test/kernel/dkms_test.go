package kernel

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// dkmsPackage is the test module as a DKMS package. Its name is unusual so
// that no /etc/dkms/<name>.conf of another test on the machine applies to it.
const dkmsPackage = "dshkerneltest"

// dkmsBuild builds the test module with the real dkms (Debian's 3.0.10)
// against the cached kernel tree, in a DKMS tree and source tree of its own,
// and returns the module DKMS left in <tree>/<pkg>/1.0/<kver>/<arch>/module/.
//
// dkmsSign (a key name or "") makes DKMS sign the module itself, as Debian's
// dkms does with /var/lib/dkms/mok.key, through sign_file (Debian's sign-file,
// or the tool's sign-file command when signFile is our binary's symlink).
// hookKey (a key name or "") sets POST_BUILD to `dkms-sign-hook hook`
// with a configuration naming that key.
func (b *bench) dkmsBuild(stem, signFile, dkmsSign, hookKey string) (string, error) {
	root := filepath.Join(b.dir, strings.ReplaceAll(stem, "/", "_")+"-dkms")
	src := filepath.Join(root, "src", dkmsPackage+"-1.0")
	tree := filepath.Join(root, "tree")
	if err := os.MkdirAll(tree, 0o755); err != nil {
		return "", err
	}
	if err := os.CopyFS(src, os.DirFS("testdata/mod")); err != nil {
		return "", err
	}
	postBuild := ""
	if hookKey != "" {
		conf := filepath.Join(root, "hook.conf")
		hash := map[string]string{"p256": "sha256", "p384": "sha384"}[hookKey]
		if hash == "" {
			hash = "sha512"
		}
		cfg := fmt.Sprintf("[signing]\nkey = %s\ncertificate = %s\nhash = %s\n[hook]\nmissing_key = fail\nlog = %s\n",
			b.k.Key(hookKey), b.k.Cert(hookKey), hash, filepath.Join(root, "signed.jsonl"))
		if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
			return "", err
		}
		// DKMS runs "<tree>/<pkg>/<version>/build/$POST_BUILD", split on
		// spaces, from that directory: climb to / and down to the binary.
		build := filepath.Join(tree, dkmsPackage, "1.0", "build")
		up := strings.Repeat("../", strings.Count(build, "/"))
		postBuild = up + strings.TrimPrefix(b.tool, "/") + " hook --config " + conf
	}
	dkmsConf := fmt.Sprintf(`PACKAGE_NAME=%s
PACKAGE_VERSION=1.0
BUILT_MODULE_NAME[0]=dshtest
DEST_MODULE_LOCATION[0]=/updates/dkms
AUTOINSTALL=no
MAKE[0]="make -C ${kernel_source_dir} M=${dkms_tree}/${PACKAGE_NAME}/${PACKAGE_VERSION}/build modules"
CLEAN=true
POST_BUILD="%s"
`, dkmsPackage, postBuild)
	if err := os.WriteFile(filepath.Join(src, "dkms.conf"), []byte(dkmsConf), 0o644); err != nil {
		return "", err
	}
	kver, err := b.kernelRelease()
	if err != nil {
		return "", err
	}
	common := []string{"-m", dkmsPackage, "-v", "1.0", "--sourcetree", filepath.Dir(src), "--dkmstree", tree}

	// DKMS reads /etc/dkms/framework.conf{,.d/*} and /etc/dkms/<pkg>.conf,
	// which other tests on this machine may be changing: run it in a private
	// mount namespace with an /etc/dkms of its own. Its sign_file= etc. are
	// what Debian's dkms signs with (/var/lib/dkms/mok.key by default).
	etc := filepath.Join(root, "etc-dkms")
	if err := os.MkdirAll(filepath.Join(etc, "framework.conf.d"), 0o755); err != nil {
		return "", err
	}
	framework := "sign_file=/nonexistent/sign-file\n" // nothing to sign with: DKMS skips signing
	if dkmsSign != "" {
		framework = fmt.Sprintf("sign_file=%s\nmok_signing_key=%s\nmok_certificate=%s\n",
			signFile, b.k.Key(dkmsSign), b.k.Cert(dkmsSign))
	}
	if err := os.WriteFile(filepath.Join(etc, "framework.conf"), nil, 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(etc, "framework.conf.d", "test.conf"), []byte(framework), 0o644); err != nil {
		return "", err
	}
	var log strings.Builder
	for _, args := range [][]string{
		append([]string{"add"}, common...),
		append([]string{"build", "-k", kver, "--kernelsourcedir", b.k.Tree}, common...),
	} {
		c := exec.Command("unshare", append([]string{"-m", "--propagation", "private",
			"sh", "-c", `mount --bind "$0" /etc/dkms && exec dkms "$@"`, etc}, args...)...)
		out, err := c.CombinedOutput()
		log.Write(out)
		if err != nil {
			return "", fmt.Errorf("dkms %s: %v\n%s", args[0], err, log.String())
		}
	}
	if dkmsSign != "" && !strings.Contains(log.String(), "Signing module") {
		return "", fmt.Errorf("dkms did not sign the module with %s\n%s", signFile, log.String())
	}
	mods, _ := filepath.Glob(filepath.Join(tree, dkmsPackage, "1.0", kver, "*", "module", "dshtest.ko*"))
	if len(mods) != 1 {
		return "", fmt.Errorf("dkms build left %d modules (%v)\n%s", len(mods), mods, log.String())
	}
	if hookKey != "" && !strings.Contains(log.String(), "Running the post_build script") {
		return "", fmt.Errorf("dkms did not run the hook\n%s", log.String())
	}
	if err := os.WriteFile(filepath.Join(root, "dkms.log"), []byte(log.String()), 0o644); err != nil {
		return "", err
	}
	return mods[0], nil
}

// kernelRelease is the cached tree's `make kernelrelease` (e.g. 6.12.117).
func (b *bench) kernelRelease() (string, error) {
	if b.kver != "" {
		return b.kver, nil
	}
	out, err := exec.Command("make", "-s", "-C", b.k.Tree, "kernelrelease").Output()
	if err != nil {
		return "", fmt.Errorf("make kernelrelease: %w", err)
	}
	b.kver = strings.TrimSpace(string(out))
	return b.kver, nil
}

// signFileLink is a symlink named sign-file to the tool: invoked by that
// name it is the drop-in for the kernel's scripts/sign-file (what DKMS's
// sign_file= in framework.conf.d points at).
func (b *bench) signFileLink() (string, error) {
	link := filepath.Join(filepath.Dir(b.tool), "sign-file")
	if _, err := os.Lstat(link); err == nil {
		return link, nil
	}
	return link, os.Symlink(b.tool, link)
}

// dkmsRows are the modules built by real dkms.
func dkmsRows() []row {
	return []row{
		// Debian's dkms signs with its own MOK (not trusted by this kernel),
		// then POST_BUILD runs the hook, which replaces that signature.
		{
			name: "dkms/own-signature-then-hook",
			prepare: sigs(1, func(b *bench, stem string) (string, error) {
				return b.dkmsBuild(stem, b.signFile, "dkms-mok", "p384")
			}),
			want: OK,
		},
		// The control: the same build without the hook does not load.
		{
			name: "dkms/own-signature-no-hook",
			prepare: func(b *bench, stem string) (string, error) {
				return b.dkmsBuild(stem, b.signFile, "dkms-mok", "")
			},
			want: keyRejected,
			klog: logUnknownKey,
		},
		// The framework.conf.d route: DKMS's sign_file is our sign-file.
		{
			name: "dkms/sign_file-is-the-tool",
			prepare: func(b *bench, stem string) (string, error) {
				link, err := b.signFileLink()
				if err != nil {
					return "", err
				}
				return b.dkmsBuild(stem, link, "rsa4096", "")
			},
			want: OK,
		},
	}
}
