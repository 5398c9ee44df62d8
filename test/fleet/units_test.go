package fleet

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// contrib is absolute: commands run through nsenter start in another directory.
var contrib, _ = filepath.Abs("../../contrib/fleet")

// unit is what the test takes from a contrib systemd unit: its settings
// (the last value of each key) and its Environment= defaults.
type unit struct {
	settings map[string]string
	env      map[string]string
}

func readUnit(t *testing.T, name string) *unit {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(contrib, name))
	if err != nil {
		t.Fatal(err)
	}
	u := &unit{settings: map[string]string{}, env: map[string]string{}}
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l[0] == '#' || l[0] == ';' || l[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			t.Fatalf("%s: bad line %q", name, l)
		}
		if k == "Environment" {
			ek, ev, _ := strings.Cut(v, "=")
			u.env[ek] = ev
			continue
		}
		u.settings[k] = v
	}
	return u
}

var unitVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// argv is ExecStart as systemd runs it: ${VAR} from Environment= (or
// override, as /etc/default/... would), split on whitespace (these units
// use no quotes), then each replace applied (old, new pairs: the test's
// directories for the real paths).
func (u *unit) argv(t *testing.T, override map[string]string, replace ...string) []string {
	t.Helper()
	exec := u.settings["ExecStart"]
	if exec == "" {
		t.Fatal("unit has no ExecStart")
	}
	exec = unitVar.ReplaceAllStringFunc(exec, func(v string) string {
		name := v[2 : len(v)-1]
		if val, ok := override[name]; ok {
			return val
		}
		if val, ok := u.env[name]; ok {
			return val
		}
		t.Fatalf("ExecStart uses %s, which the unit does not set", v)
		return ""
	})
	exec = strings.NewReplacer(replace...).Replace(exec)
	return strings.Fields(exec)
}
