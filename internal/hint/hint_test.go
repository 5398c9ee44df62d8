package hint

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/dkmsenv"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/keys"
	"github.com/dkms-sign-hook/dkms-sign-hook/pkg/signkey"
)

// TestMostSpecificFirst: an error that wraps a more general one gets the
// advice for what it is, not for what it wraps.
func TestMostSpecificFirst(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("open x: %w", fs.ErrNotExist), "check the path"},
		{&dkmsenv.KeyNotPresentError{Key: "k", Certificate: "c", Err: fs.ErrNotExist}, "use per-package overrides"},
		{&dkmsenv.FrameworkKeyError{Config: "c.conf", Err: keys.ErrNeedPassphrase}, "set pin_file in "},
		{&dkmsenv.FrameworkKeyError{Config: "c.conf", Err: &signkey.MismatchError{Key: "k", Cert: "c"}}, "use the certificate made together"},
		{&dkmsenv.FrameworkKeyError{Config: "c.conf", Err: errors.New("odd")}, "fix the [signing] settings in c.conf"},
		{fmt.Errorf("foo: %w", &dkmsenv.AdminFileError{Package: "foo", Path: "/etc/dkms/foo.conf", MergeLine: ". x"}), "to sign foo, add this line at the end of /etc/dkms/foo.conf: . x"},
		{With(fmt.Errorf("x: %w", fs.ErrNotExist), "mine"), "mine"},
		{errors.New("nothing known"), ""},
	} {
		if got := For(tc.err); !strings.HasPrefix(got, tc.want) || (tc.want == "" && got != "") {
			t.Errorf("For(%v) = %q, want %q...", tc.err, got, tc.want)
		}
	}
}
