package dkmsenv

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unicode"

	"github.com/sirupsen/logrus"
)

// NewLogger is how the DKMS work reports: to w (stderr, which DKMS shows or
// writes to make.log), one readable line per event:
// "dkms-sign-hook: level: message key=value...".
func NewLogger(w io.Writer) *logrus.Logger {
	l := logrus.New()
	l.SetOutput(w)
	l.SetFormatter(lineFormatter{})
	return l
}

type lineFormatter struct{}

// logFields are the fields a line shows, in this order.
var logFields = []string{"file", "script", "dir", "kernel", "hash", "hash_from", "key", "replaced"}

func (lineFormatter) Format(en *logrus.Entry) ([]byte, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "dkms-sign-hook: %s: %s", en.Level, logMessage(en.Message))
	for _, k := range logFields {
		if v, ok := en.Data[k]; ok {
			fmt.Fprintf(&b, " %s=%s", k, logValue(fmt.Sprint(v)))
		}
	}
	b.WriteByte('\n')
	return []byte(b.String()), nil
}

// logValue quotes a field value (Go syntax) unless it holds only characters
// that can neither end the line nor pass for another field: a file name
// with a newline must not forge log lines.
func logValue(v string) string {
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:,@%~", r)) {
			return strconv.Quote(v)
		}
	}
	if v == "" {
		return `""`
	}
	return v
}

// logMessage escapes control characters in a message (errors name files).
func logMessage(m string) string {
	if !strings.ContainsFunc(m, unicode.IsControl) {
		return m
	}
	q := strconv.Quote(m)
	return q[1 : len(q)-1]
}

// CapturedTerminal returns the terminal when stderr is a regular file:
// DKMS 3.1.7 and later append POST_BUILD's output to make.log, so a warning
// that modules are NOT signed would reach no one; it is repeated on the
// terminal dkms (or apt) runs in, if there is one. nil otherwise.
func CapturedTerminal(stderr io.Writer) *os.File {
	f, ok := stderr.(*os.File)
	if !ok {
		return nil
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil
	}
	tty, err := os.OpenFile("/dev/tty", os.O_WRONLY|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil
	}
	return tty
}

// WarnAlsoOn has log write its warnings and errors to w too.
func WarnAlsoOn(log *logrus.Logger, w io.Writer) { log.AddHook(teeHook{w}) }

// teeHook writes warnings and errors to another writer too.
type teeHook struct{ w io.Writer }

func (teeHook) Levels() []logrus.Level {
	return []logrus.Level{logrus.PanicLevel, logrus.FatalLevel, logrus.ErrorLevel, logrus.WarnLevel}
}

func (h teeHook) Fire(en *logrus.Entry) error {
	line, err := lineFormatter{}.Format(en)
	if err == nil {
		h.w.Write(line)
	}
	return nil
}
