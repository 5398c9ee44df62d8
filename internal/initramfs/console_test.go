package initramfs

import (
	"strings"
	"testing"
)

func TestParseVerdicts(t *testing.T) {
	console := "Linux version 6.12\r\n=== BOOTED 6.12.117\r\n" +
		"=== LOAD 0 finit 000.ko\r\ndshtest: loaded\r\nVERDICT 0 exit=0 rc=0 errno=0 err=OK\r\n" +
		"=== LOAD 1 finit 001.ko\r\nLoading of unsigned module is rejected\r\n" +
		"VERDICT 1 exit=1 rc=-1 errno=129 err=Key was rejected by service\r\n" +
		"=== LOAD 2 kmod-insmod 002.ko.gz\r\n" +
		"VERDICT 2 exit=1 insmod: ERROR: could not insert module /m/002.ko.gz: Bad message\r\n" +
		"=== LOAD 3 kmod-insmod 003.ko.xz\r\nVERDICT 3 exit=0 \r\n" +
		"=== LOAD 4 finit 004.ko\r\n" + // the kernel died here: no verdict
		"=== DONE\r\n"
	v := ParseVerdicts(console)
	want := map[int]string{0: "OK", 1: "Key was rejected by service", 2: "Bad message", 3: "OK"}
	for id, w := range want {
		if v[id] == nil || v[id].Err != w {
			t.Errorf("verdict %d = %+v, want err %q", id, v[id], w)
		}
	}
	if v[4] != nil {
		t.Errorf("load 4 has no VERDICT line but parsed as %+v", v[4])
	}
	if !strings.Contains(v[1].Log, "Loading of unsigned module is rejected") || strings.Contains(v[1].Log, "dshtest: loaded") {
		t.Errorf("log of load 1 = %q", v[1].Log)
	}
}
