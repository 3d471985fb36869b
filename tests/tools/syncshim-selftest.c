/* Test-only: a fixed sequence of writes and syncs, then SIGKILL, for checking the sync shim. */

/*
 * Run under syncshim.so with SYNCSHIM_DIR=DIR; afterwards syncshim-powerloss must leave DIR/f
 * holding exactly: 100 x 'A' (written, then fdatasync'd) with "MMM" at offset 20 (an O_DSYNC
 * write, durable by itself); every later write (pwrite, writev, the file's extension) undone.
 */

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

static int selftest_fail(const char *what)
{
	perror(what);
	return 1;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: syncshim-selftest DIR\n");
		return 2;
	}
	char path[4096];
	(void)snprintf(path, sizeof path, "%s/f", argv[1]);
	char a[100], b[10], c[50], d[5], e[5];
	memset(a, 'A', sizeof a);
	memset(b, 'B', sizeof b);
	memset(c, 'C', sizeof c);
	memset(d, 'D', sizeof d);
	memset(e, 'E', sizeof e);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, a, sizeof a) != (ssize_t)sizeof a || fdatasync(fd) != 0) {
		return selftest_fail("synced write");
	}
	struct iovec iov[2] = {{.iov_base = d, .iov_len = sizeof d}, {.iov_base = e, .iov_len = sizeof e}};
	if (pwrite(fd, b, sizeof b, 0) != (ssize_t)sizeof b ||
	    pwrite(fd, c, sizeof c, 90) != (ssize_t)sizeof c ||
	    lseek(fd, 100, SEEK_SET) != 100 || writev(fd, iov, 2) != 10) {
		return selftest_fail("unsynced writes");
	}
	int dsync = open(path, O_WRONLY | O_DSYNC);
	if (dsync < 0 || pwrite(dsync, "MMM", 3, 20) != 3) {
		return selftest_fail("O_DSYNC write");
	}
	(void)raise(SIGKILL);
	return 1;
}
