package initramfs

import (
	"fmt"
	"regexp"
	"strings"
)

// The console protocol of the suites' /init scripts: before loading module
// number ID the script prints
//
//	=== LOAD <id> <method> <file>
//
// and after it one parseable line
//
//	VERDICT <id> exit=<status> <loader output>
//
// and "=== DONE" when it is finished. Everything the kernel logs between a
// LOAD line and the next belongs to that load.

// A Verdict is the answer to one load, parsed from the serial console.
type Verdict struct {
	Exit int    // exit status of the loader
	Err  string // error text ("OK" on success), as strerror(3) prints it
	Log  string // console lines between this load's marker and the next
}

var (
	verdictRE = regexp.MustCompile(`^VERDICT (\d+) exit=(\d+) ?(.*)$`)
	loadRE    = regexp.MustCompile(`^=== LOAD (\d+) `)
)

// ParseVerdicts extracts each load's verdict and console log. Loads with no
// VERDICT line are missing from the map.
func ParseVerdicts(console string) map[int]*Verdict {
	out := map[int]*Verdict{}
	var cur *strings.Builder
	logs := map[int]*strings.Builder{}
	for _, line := range strings.Split(strings.ReplaceAll(console, "\r", ""), "\n") {
		if m := loadRE.FindStringSubmatch(line); m != nil {
			var id int
			fmt.Sscan(m[1], &id)
			cur = &strings.Builder{}
			logs[id] = cur
		}
		if strings.HasPrefix(line, "=== DONE") {
			cur = nil
		}
		if cur != nil {
			cur.WriteString(line + "\n")
		}
		m := verdictRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		var id, exit int
		fmt.Sscan(m[1], &id)
		fmt.Sscan(m[2], &exit)
		out[id] = &Verdict{Exit: exit, Err: errText(exit, m[3])}
	}
	for id, v := range out {
		if l, ok := logs[id]; ok {
			v.Log = l.String()
		}
	}
	return out
}

// errText turns a loader's output into the error text: the finit helper
// prints "rc=-1 errno=129 err=Key was rejected by service"; kmod prints
// "insmod: ERROR: could not insert module /m/x.ko: Key was rejected by service".
func errText(exit int, out string) string {
	if i := strings.Index(out, " err="); i >= 0 {
		return out[i+len(" err="):]
	}
	if exit == 0 {
		return "OK"
	}
	if i := strings.LastIndex(out, ": "); i >= 0 {
		return out[i+2:]
	}
	return out
}
