package kernel

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
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
