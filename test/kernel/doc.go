// Package kernel holds the test that users would trust most: a real Linux
// kernel, built with CONFIG_MODULE_SIG_FORCE and test certificates compiled
// in, booted under QEMU, loading modules that dkms-sign-hook signed.
//
// The test lives in kernel_test.go and friends; README.md says how to run it
// and what it proves. It builds the kernel once into a cache outside the
// checkout (DKMS_SIGN_HOOK_KERNEL_CACHE, default /var/cache/dkms-sign-hook-test).
package kernel
