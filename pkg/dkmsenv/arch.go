package dkmsenv

import "runtime"

// goarchToUname maps Go's GOARCH to the machine name `uname -m` prints, which
// is what DKMS uses for the <arch> directory.
func goarchToUname() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	case "386":
		return "i686"
	case "arm":
		return "armv7l"
	case "loong64":
		return "loongarch64"
	default:
		return runtime.GOARCH // ppc64le, s390x, riscv64, mips64
	}
}
