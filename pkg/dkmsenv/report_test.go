package dkmsenv

import "testing"

// TestLogValue: values that could split or forge a log line are quoted.
func TestLogValue(t *testing.T) {
	for in, want := range map[string]string{
		"/var/lib/dkms/foo/1.0/6.1.0-1-amd64/x86_64/module/foo.ko": "/var/lib/dkms/foo/1.0/6.1.0-1-amd64/x86_64/module/foo.ko",
		"a b":      `"a b"`,
		"x\nlevel": `"x\nlevel"`,
		"k=v":      `"k=v"`,
		"":         `""`,
	} {
		if got := logValue(in); got != want {
			t.Errorf("logValue(%q) = %s, want %s", in, got, want)
		}
	}
	if got := logMessage("signing failed: a\nb"); got != `signing failed: a\nb` {
		t.Errorf("logMessage = %q", got)
	}
}
