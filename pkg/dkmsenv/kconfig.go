package dkmsenv

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrNoModuleSig: the target kernel is built without CONFIG_MODULE_SIG, so
// it neither checks nor needs module signatures.
var ErrNoModuleSig = errors.New("kernel built without module signing (CONFIG_MODULE_SIG is not set)")

// ErrNoKernelConfig: neither .config nor include/config/auto.conf exists for
// the target kernel.
var ErrNoKernelConfig = errors.New("kernel configuration not found")

// KernelConfigFiles are the places a kernel's configuration is looked for,
// in order: <Modules>/<kver>/build/.config, then include/config/auto.conf.
func (r Roots) KernelConfigFiles(kver string) []string {
	b := filepath.Join(r.Modules(), kver, "build")
	return []string{filepath.Join(b, ".config"), filepath.Join(b, "include", "config", "auto.conf")}
}

// SigHash returns the target kernel's CONFIG_MODULE_SIG_HASH (e.g. "sha256")
// and the file it came from. A kernel without CONFIG_MODULE_SIG gives
// ErrNoModuleSig; missing headers give ErrNoKernelConfig. Nothing is guessed.
func (r Roots) SigHash(kver string) (hash, from string, err error) {
	if err := ValidName("kernel", kver); err != nil {
		return "", "", err
	}
	files := r.KernelConfigFiles(kver)
	for _, f := range files {
		vals, err := readKconfig(f)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return "", f, fmt.Errorf("read kernel config: %w", err)
		}
		if vals["CONFIG_MODULE_SIG"] != "y" {
			return "", f, fmt.Errorf("kernel %s (%s): %w", kver, f, ErrNoModuleSig)
		}
		h := vals["CONFIG_MODULE_SIG_HASH"]
		if h == "" {
			return "", f, fmt.Errorf("kernel %s (%s): CONFIG_MODULE_SIG=y but CONFIG_MODULE_SIG_HASH is not set; set hash= in the config", kver, f)
		}
		return h, f, nil
	}
	return "", "", fmt.Errorf("kernel %s: neither %s nor %s exists (install linux-headers-%s): %w", kver, files[0], files[1], kver, ErrNoKernelConfig)
}

// KernelConfig returns a kernel's configuration (CONFIG_X -> value, quotes
// removed) and the file it came from: the headers' .config or auto.conf, else
// /boot/config-<kver> as Debian's linux-image installs it.
func (r Roots) KernelConfig(kver string) (map[string]string, string, error) {
	if err := ValidName("kernel", kver); err != nil {
		return nil, "", err
	}
	files := append(r.KernelConfigFiles(kver), r.Path("/boot/config-"+kver))
	for _, f := range files {
		vals, err := readKconfig(f)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, f, fmt.Errorf("read kernel config: %w", err)
		}
		return vals, f, nil
	}
	return nil, "", fmt.Errorf("kernel %s: none of %s exists: %w", kver, strings.Join(files, ", "), ErrNoKernelConfig)
}

// readKconfig reads CONFIG_X=value lines, removing double quotes.
func readKconfig(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	vals := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "CONFIG_") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		vals[k] = strings.Trim(v, `"`)
	}
	return vals, sc.Err()
}
