/*
 * syscalls: what newlib needs from the kernel underneath it.
 *
 * newlib was configured without its own system calls, so printf, malloc and
 * friends end up here: stdout and stderr go to the console (kernel/console.c,
 * which never waits for the serial port), stdin reads from the serial port, and malloc's sbrk takes memory from the kernel heap (kernel/heap.c).
 * There are no files and no processes; those calls fail with the usual errno.
 */
#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>
#include "heap.h"
#include "arch/x86_64/qemu_exit.h"
#include "console.h"
#include "drivers/uart/uart16550.h"

#undef errno
extern int errno;

int write(int fd, const void *buf, int n)
{
	if (fd != 1 && fd != 2) {
		errno = EBADF;
		return -1;
	}
	console_write(buf, n);
	return n;
}

int read(int fd, void *buf, int n)
{
	if (fd != 0) {
		errno = EBADF;
		return -1;
	}
	int got = 0;
	while (got < n) {
		int c = uart_getc();
		if (c < 0)
			break;
		((char *)buf)[got++] = (char)c;
	}
	return got;
}

void *sbrk(intptr_t increment)
{
	void *p = heap_sbrk(increment);
	if (!p) {
		errno = ENOMEM;
		return (void *)-1;
	}
	return p;
}

int close(int fd) { (void)fd; errno = EBADF; return -1; }
int lseek(int fd, int off, int whence) { (void)fd; (void)off; (void)whence; errno = ESPIPE; return -1; }
int isatty(int fd) { return fd >= 0 && fd <= 2; }
int getpid(void) { return 1; }
int kill(int pid, int sig) { (void)pid; (void)sig; errno = EINVAL; return -1; }
int open(const char *path, int flags, int mode) { (void)path; (void)flags; (void)mode; errno = ENOENT; return -1; }

int fstat(int fd, struct stat *st)
{
	(void)fd;
	st->st_mode = S_IFCHR; /* a character device: newlib line-buffers it */
	return 0;
}

void _exit(int status)
{
	qemu_exit(status == 0 ? QEMU_EXIT_SUCCESS : QEMU_EXIT_FAILURE);
}
