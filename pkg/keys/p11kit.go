package keys

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// P11KitServerEnv is the variable p11-kit-client.so reads the server's
// address from. Without it the client looks in a per-user runtime
// directory, which differs between a login shell and DKMS run by apt: the
// tool sets it from the configuration instead.
const P11KitServerEnv = "P11_KIT_SERVER_ADDRESS"

// multiarch maps GOARCH to Debian's multiarch triplet.
var multiarch = map[string]string{
	"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu", "386": "i386-linux-gnu",
	"arm": "arm-linux-gnueabihf", "ppc64le": "powerpc64le-linux-gnu", "s390x": "s390x-linux-gnu",
	"riscv64": "riscv64-linux-gnu", "mips64le": "mips64el-linux-gnuabi64", "loong64": "loongarch64-linux-gnu",
}

// P11KitClient is the path of p11-kit's client module (Debian package
// p11-kit-modules) for this architecture: the module that forwards every
// PKCS#11 call to a p11-kit server.
func P11KitClient() string {
	return filepath.Join("/usr/lib", multiarch[runtime.GOARCH], "pkcs11", "p11-kit-client.so")
}

// ParseP11KitServer checks a p11-kit server address and returns it in the
// form P11_KIT_SERVER_ADDRESS takes: an absolute socket path becomes
// "unix:path=PATH"; "unix:path=/..." and "vsock:cid=N;port=M" pass as they
// are. p11-kit has no TCP transport: between machines, ssh carries it.
func ParseP11KitServer(s string) (string, error) {
	switch {
	case s == "":
		return "", errors.New("empty")
	case strings.HasPrefix(s, "/"):
		if strings.ContainsAny(s, ";,") {
			return "", fmt.Errorf("%q: a socket path must not contain ';' or ','", s)
		}
		return "unix:path=" + filepath.Clean(s), nil
	case strings.HasPrefix(s, "unix:path="):
		if p := strings.TrimPrefix(s, "unix:path="); !filepath.IsAbs(p) {
			return "", fmt.Errorf("%q: the socket path must be absolute", s)
		}
		return s, nil
	case strings.HasPrefix(s, "vsock:"):
		return s, nil
	}
	return "", fmt.Errorf("%q is not a p11-kit server address (use an absolute socket path, unix:path=/PATH or vsock:cid=N;port=M)", s)
}

// p11KitSocket returns the socket path of a unix: address, else "".
func p11KitSocket(addr string) string {
	if p, ok := strings.CutPrefix(addr, "unix:path="); ok {
		return p
	}
	return ""
}

// useP11KitServer points p11-kit-client.so at the server (process-wide: the
// client reads the variable when initialised). A unix socket that does not
// exist is reported at once as ErrTokenUnreachable: the tunnel or the
// server is not running.
func useP11KitServer(server string) (addr string, err error) {
	if server == "" {
		return "", nil
	}
	addr, err = ParseP11KitServer(server)
	if err != nil {
		return "", fmt.Errorf("p11-kit server %w", err)
	}
	if sock := p11KitSocket(addr); sock != "" {
		st, err := os.Stat(sock)
		if err != nil {
			return "", fmt.Errorf("p11-kit server %s: %w: no socket (is the tunnel or the server running?)", sock, ErrTokenUnreachable)
		}
		if st.Mode().Type() != os.ModeSocket {
			return "", fmt.Errorf("p11-kit server %s: not a socket", sock)
		}
	}
	if err := os.Setenv(P11KitServerEnv, addr); err != nil {
		return "", err
	}
	return addr, nil
}

// Token is a token found through its module, without logging in.
type Token struct {
	Label, Serial, Manufacturer, Model string
	// Module is the PKCS#11 module's path; Server the p11-kit server's
	// address when the token is remote ("" otherwise).
	Module, Server string

	slot uint
	load string // the name the module is loaded by (see moduleLoadName)
}

// via names the server a remote token is reached through, for errors.
func (t *Token) via() string {
	if t.Server == "" {
		return ""
	}
	return " via " + t.Server
}
