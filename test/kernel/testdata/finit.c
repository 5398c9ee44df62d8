// finit MODULE [compressed]
//
// Loads MODULE with finit_module(2); with "compressed", passes
// MODULE_INIT_COMPRESSED_FILE so that the kernel decompresses it itself
// (what kmod 31+ does when the kernel supports the format). Prints one line:
//   rc=0 errno=0 err=OK
//   rc=-1 errno=129 err=Key was rejected by service
// Built static (gcc -static) for the test's initramfs.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MODULE_INIT_COMPRESSED_FILE
#define MODULE_INIT_COMPRESSED_FILE 4
#endif

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: finit MODULE [compressed]\n");
		return 2;
	}
	int flags = 0;
	if (argc > 2 && strcmp(argv[2], "compressed") == 0)
		flags = MODULE_INIT_COMPRESSED_FILE;
	int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		printf("rc=-1 errno=%d err=open: %s\n", errno, strerror(errno));
		return 1;
	}
	long rc = syscall(SYS_finit_module, fd, "", flags);
	int e = rc == 0 ? 0 : errno;
	printf("rc=%ld errno=%d err=%s\n", rc, e, rc == 0 ? "OK" : strerror(e));
	return rc == 0 ? 0 : 1;
}
