package dkmsenv

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Framework holds the settings of /etc/dkms/framework.conf and its drop-ins
// that matter here. Later files override earlier ones, as in DKMS.
type Framework struct {
	Values map[string]string // variable -> value, quotes removed
	Files  map[string]string // variable -> the file that set it last
}

// FrameworkFiles lists framework.conf and framework.conf.d/*.conf in the
// order DKMS sources them.
func (r Roots) FrameworkFiles() []string {
	files := []string{filepath.Join(r.EtcDKMS(), "framework.conf")}
	drop, _ := filepath.Glob(filepath.Join(r.EtcDKMS(), "framework.conf.d", "*.conf"))
	sort.Strings(drop)
	return append(files, drop...)
}

// ReadFramework reads the plain assignments (name=value, name="value",
// name='value') of DKMS's framework configuration. Missing files are fine;
// lines that are not plain assignments are ignored, as they can only be
// evaluated by a shell.
func (r Roots) ReadFramework() (*Framework, error) {
	fw := &Framework{Values: map[string]string{}, Files: map[string]string{}}
	for _, f := range r.FrameworkFiles() {
		if err := fw.read(f); err != nil {
			return nil, err
		}
	}
	return fw, nil
}

func (fw *Framework) read(path string) error {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read DKMS framework config: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := parseAssignment(sc.Text())
		if ok {
			fw.Values[name] = value
			fw.Files[name] = path
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read DKMS framework config %s: %w", path, err)
	}
	return nil
}

// parseAssignment parses `name=value` with optional single or double quotes.
// Values needing a shell (expansions, command substitution) are not parsed.
func parseAssignment(line string) (name, value string, ok bool) {
	line = strings.TrimSpace(line)
	line = strings.TrimPrefix(line, "export ")
	i := strings.IndexByte(line, '=')
	if i <= 0 || strings.HasPrefix(line, "#") {
		return "", "", false
	}
	name = line[:i]
	for _, c := range name {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return "", "", false
		}
	}
	v := line[i+1:]
	switch {
	case strings.HasPrefix(v, `'`):
		end := strings.IndexByte(v[1:], '\'')
		if end < 0 {
			return "", "", false
		}
		return name, v[1 : 1+end], true
	case strings.HasPrefix(v, `"`):
		end := strings.IndexByte(v[1:], '"')
		if end < 0 {
			return "", "", false
		}
		value = v[1 : 1+end]
	default:
		if j := strings.Index(v, " #"); j >= 0 {
			v = v[:j]
		}
		value = strings.TrimSpace(v)
	}
	if strings.ContainsAny(value, "$`\\") {
		return "", "", false
	}
	return name, value, true
}

// Tree returns DKMS's tree: dkms_tree from the framework configuration if
// set there, else r.DKMSTree. A framework value is taken relative to the
// roots' base, so fake trees stay fake.
func (r Roots) Tree() (string, error) {
	fw, err := r.ReadFramework()
	if err != nil {
		return "", err
	}
	if t := fw.Values["dkms_tree"]; t != "" {
		if !filepath.IsAbs(t) {
			return "", fmt.Errorf("%s: dkms_tree=%q is not an absolute path", fw.Files["dkms_tree"], t)
		}
		return r.Path(t), nil
	}
	return r.DKMSTree(), nil
}
