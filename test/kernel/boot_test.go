package kernel

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// A load is one module to load in a boot: the initramfs file m/<file> loaded
// by method ("finit", "finit-compressed" or "kmod-insmod").
type load struct {
	id     int
	method string
	file   string // name inside the initramfs directory /m
}

// A verdict is the answer to one load, parsed from the serial console.
type verdict struct {
	exit int    // exit status of the loader
	err  string // error text ("OK" on success), as strerror(3) prints it
	log  string // console lines between this load's marker and the next
}

// initScript is /init: it loads every module, printing one parseable line
//
//	VERDICT <id> exit=<status> <loader output>
//
// per module, unloads it after a success so that the next one (all are the
// same module, dshtest) can load, then reboots, which ends QEMU (-no-reboot).
func initScript(loads []load) string {
	var b strings.Builder
	b.WriteString(`#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo "=== BOOTED $(uname -r)"
load() {
	echo "=== LOAD $1 $2 $3"
	case $2 in
	finit) out=$(/bin/finit "/m/$3" 2>&1) ;;
	finit-compressed) out=$(/bin/finit "/m/$3" compressed 2>&1) ;;
	kmod-insmod) out=$(/bin/insmod "/m/$3" 2>&1) ;;
	*) out="unknown method $2"; false ;;
	esac
	rc=$?
	echo "VERDICT $1 exit=$rc $out"
	if [ $rc = 0 ]; then rmmod dshtest || echo "RMMOD FAILED"; fi
}
`)
	for _, l := range loads {
		fmt.Fprintf(&b, "load %d %s %s\n", l.id, l.method, l.file)
	}
	b.WriteString("echo \"=== DONE\"\nreboot -f\n")
	return b.String()
}

var (
	verdictRE = regexp.MustCompile(`^VERDICT (\d+) exit=(\d+) ?(.*)$`)
	loadRE    = regexp.MustCompile(`^=== LOAD (\d+) `)
)

// parseConsole extracts each load's verdict and console log. Loads with no
// VERDICT line are missing from the map.
func parseConsole(console string) map[int]*verdict {
	out := map[int]*verdict{}
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
		out[id] = &verdict{exit: exit, err: errText(exit, m[3])}
	}
	for id, v := range out {
		if l, ok := logs[id]; ok {
			v.log = l.String()
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

// boot boots kernel with initrd under QEMU (TCG; no KVM needed) and returns
// the serial console. A boot that dies before /init runs (TCG on a loaded
// host can miss the kernel's timer checks) is retried once; the first console
// is kept in front of the second.
func boot(ctx context.Context, kernel, initrd string) (string, error) {
	console, err := boot1(ctx, kernel, initrd)
	if err != nil && !strings.Contains(console, "=== BOOTED") {
		var again string
		again, err = boot1(ctx, kernel, initrd)
		console += "\n=== RETRY: the boot above died before /init\n" + again
	}
	return console, err
}

func boot1(ctx context.Context, kernel, initrd string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64",
		"-m", "256", "-nographic", "-no-reboot",
		"-kernel", kernel, "-initrd", initrd,
		"-append", "console=ttyS0 panic=-1 loglevel=7 noapic")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	console := out.String()
	if err != nil {
		return console, fmt.Errorf("qemu %s: %w", filepath.Base(kernel), err)
	}
	if !strings.Contains(console, "=== DONE") {
		return console, fmt.Errorf("qemu %s: /init did not finish", filepath.Base(kernel))
	}
	return console, nil
}
