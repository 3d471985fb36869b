/* Test-only LD_PRELOAD shim: makes every write under a data dir undoable until it is synced. */

/*
 * Why an undo log instead of holding bytes back: LMDB (without MDB_WRITEMAP) writes pages with
 * writev/pwrite, fdatasyncs, then writes the meta page through an O_DSYNC descriptor, and reads
 * everything back through its mmap. Bytes written but not yet synced must stay visible to that
 * mmap (the page cache shows them), yet vanish at a power loss. So the shim passes each write
 * through at once and first logs the bytes it overwrites (see syncshim.h); a crash test
 * SIGKILLs the process and runs syncshim-powerloss, which undoes every write no sync covered.
 *
 * Environment (read only by this shim; never by carelog itself):
 *   SYNCSHIM_DIR        files under this directory are tracked (required)
 *   SYNCSHIM_UNDO       the undo log path (required)
 *   SYNCSHIM_STATS      if set, a file rewritten with counters after every tracked call
 *   SYNCSHIM_LIE_AFTER  N: the first N syncs are honoured; later ones return success without
 *                       making anything durable (a lying disk). Proves the crash test has teeth.
 *   SYNCSHIM_EIO_AFTER  N: the first N syncs are honoured; later ones fail with EIO.
 */

/* Meson builds with -D_FILE_OFFSET_BITS=64, which would rename pwrite to pwrite64 here. */
#undef _FILE_OFFSET_BITS

#include "tests/tools/syncshim.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

enum {
	SYNCSHIM_DIRTY_FILES_MAX = 32, /* distinct files with unsynced writes at one time */
	SYNCSHIM_IOV_MAX = 1024,       /* writev segments (IOV_MAX on Linux) */
};

struct syncshim_counters {
	uint64_t writes;       /* tracked writes logged */
	uint64_t syncs;        /* sync calls on tracked files (honoured, lied or failed) */
	uint64_t syncs_lied;
	uint64_t syncs_failed;
	uint64_t dsync_writes; /* writes through O_DSYNC/O_SYNC descriptors */
};

static struct {
	pthread_mutex_t lock;
	bool ready;
	char dir[PATH_MAX];
	size_t dir_len;
	int undo_fd;
	int stats_fd;
	bool lie;
	uint64_t lie_after;
	bool eio;
	uint64_t eio_after;
	struct syncshim_counters counters;
	char dirty[SYNCSHIM_DIRTY_FILES_MAX][PATH_MAX];
	size_t dirty_count;
	ssize_t (*real_write)(int, const void *, size_t);
	ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
	ssize_t (*real_pwrite64)(int, const void *, size_t, off64_t);
	ssize_t (*real_writev)(int, const struct iovec *, int);
	ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
	ssize_t (*real_pwritev64)(int, const struct iovec *, int, off64_t);
	int (*real_fsync)(int);
	int (*real_fdatasync)(int);
	int (*real_msync)(void *, size_t, int);
} shim = {.lock = PTHREAD_MUTEX_INITIALIZER, .undo_fd = -1, .stats_fd = -1};

static void syncshim_die(const char *what)
{
	char line[512];
	int n = snprintf(line, sizeof line, "syncshim: fatal: %s (errno %d)\n", what, errno);
	if (n > 0 && shim.real_write != NULL) {
		(void)shim.real_write(2, line, (size_t)n);
	}
	abort();
}

static void *syncshim_next(const char *name)
{
	void *fn = dlsym(RTLD_NEXT, name);
	if (fn == NULL) {
		syncshim_die(name);
	}
	return fn;
}

static bool syncshim_env_u64(const char *name, uint64_t *out)
{
	const char *text = getenv(name);
	if (text == NULL || *text == '\0') {
		return false;
	}
	*out = strtoull(text, NULL, 10);
	return true;
}

/* dlsym returns an object pointer; POSIX guarantees it converts to the function's type. */
#define SYNCSHIM_RESOLVE(fn, name)                       \
	do {                                             \
		void *sym_ = syncshim_next(name);        \
		memcpy(&(fn), &sym_, sizeof(fn));        \
	} while (0)

__attribute__((constructor)) static void syncshim_init(void)
{
	SYNCSHIM_RESOLVE(shim.real_write, "write");
	SYNCSHIM_RESOLVE(shim.real_pwrite, "pwrite");
	SYNCSHIM_RESOLVE(shim.real_pwrite64, "pwrite64");
	SYNCSHIM_RESOLVE(shim.real_writev, "writev");
	SYNCSHIM_RESOLVE(shim.real_pwritev, "pwritev");
	SYNCSHIM_RESOLVE(shim.real_pwritev64, "pwritev64");
	SYNCSHIM_RESOLVE(shim.real_fsync, "fsync");
	SYNCSHIM_RESOLVE(shim.real_fdatasync, "fdatasync");
	SYNCSHIM_RESOLVE(shim.real_msync, "msync");

	const char *dir = getenv("SYNCSHIM_DIR");
	const char *undo = getenv("SYNCSHIM_UNDO");
	if (dir == NULL || undo == NULL) {
		return; /* inert: nothing tracked */
	}
	if (realpath(dir, shim.dir) == NULL) {
		syncshim_die("SYNCSHIM_DIR must exist");
	}
	shim.dir_len = strlen(shim.dir);
	shim.undo_fd = open(undo, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (shim.undo_fd < 0) {
		syncshim_die("cannot open SYNCSHIM_UNDO");
	}
	const char *stats = getenv("SYNCSHIM_STATS");
	if (stats != NULL) {
		shim.stats_fd = open(stats, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (shim.stats_fd < 0) {
			syncshim_die("cannot open SYNCSHIM_STATS");
		}
	}
	shim.lie = syncshim_env_u64("SYNCSHIM_LIE_AFTER", &shim.lie_after);
	shim.eio = syncshim_env_u64("SYNCSHIM_EIO_AFTER", &shim.eio_after);
	shim.ready = true;
}

/* The path of fd if it is a regular file under the tracked dir. */
static bool syncshim_tracked(int fd, char path[PATH_MAX])
{
	if (!shim.ready || fd < 0 || fd == shim.undo_fd || fd == shim.stats_fd) {
		return false;
	}
	char link[64];
	(void)snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, PATH_MAX - 1);
	if (n <= 0) {
		return false;
	}
	path[n] = '\0';
	size_t len = (size_t)n;
	return len > shim.dir_len && memcmp(path, shim.dir, shim.dir_len) == 0 &&
	       path[shim.dir_len] == '/';
}

static void syncshim_append(const void *bytes, size_t len)
{
	const uint8_t *p = bytes;
	while (len > 0) {
		ssize_t n = shim.real_write(shim.undo_fd, p, len);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			syncshim_die("undo log write");
		}
		p += n;
		len -= (size_t)n;
	}
}

static void syncshim_stats_write(void)
{
	if (shim.stats_fd < 0) {
		return;
	}
	char line[256];
	int n = snprintf(line, sizeof line,
			 "writes=%" PRIu64 " syncs=%" PRIu64 " syncs_lied=%" PRIu64
			 " syncs_failed=%" PRIu64 " dsync_writes=%" PRIu64 "\n",
			 shim.counters.writes, shim.counters.syncs, shim.counters.syncs_lied,
			 shim.counters.syncs_failed, shim.counters.dsync_writes);
	if (n > 0 && ftruncate(shim.stats_fd, 0) == 0) {
		(void)shim.real_pwrite(shim.stats_fd, line, (size_t)n, 0);
	}
}

static void syncshim_dirty_add(const char *path)
{
	for (size_t i = 0; i < shim.dirty_count; i++) {
		if (strcmp(shim.dirty[i], path) == 0) {
			return;
		}
	}
	if (shim.dirty_count == SYNCSHIM_DIRTY_FILES_MAX) {
		errno = 0;
		syncshim_die("too many dirty files (SYNCSHIM_DIRTY_FILES_MAX)");
	}
	(void)snprintf(shim.dirty[shim.dirty_count++], PATH_MAX, "%s", path);
}

/* Records that every earlier write of `path` is durable; empties the log when nothing is dirty. */
static void syncshim_mark_synced(const char *path)
{
	size_t path_len = strlen(path);
	struct syncshim_record r = {.magic = SYNCSHIM_MAGIC,
				    .type = SYNCSHIM_SYNC,
				    .path_len = (uint32_t)path_len};
	syncshim_append(&r, sizeof r);
	syncshim_append(path, path_len);
	for (size_t i = 0; i < shim.dirty_count; i++) {
		if (strcmp(shim.dirty[i], path) == 0) {
			shim.dirty_count--;
			memmove(shim.dirty[i], shim.dirty[shim.dirty_count], PATH_MAX);
			break;
		}
	}
	if (shim.dirty_count == 0 && ftruncate(shim.undo_fd, 0) != 0) {
		syncshim_die("undo log truncate");
	}
}

static bool syncshim_lying_now(void)
{
	return shim.lie && shim.counters.syncs >= shim.lie_after;
}

/* Logs the bytes a write of `len` bytes at `off` will overwrite. Caller holds the lock. */
static void syncshim_log_write(int fd, const char *path, uint64_t off, uint64_t len)
{
	struct stat st;
	if (fstat(fd, &st) != 0) {
		syncshim_die("fstat");
	}
	uint64_t old_size = (uint64_t)st.st_size;
	uint64_t pre_len = 0;
	if (off < old_size) {
		pre_len = old_size - off < len ? old_size - off : len;
	}
	size_t path_len = strlen(path);
	struct syncshim_record r = {.magic = SYNCSHIM_MAGIC,
				    .type = SYNCSHIM_WRITE,
				    .off = off,
				    .write_len = len,
				    .old_size = old_size,
				    .pre_len = pre_len,
				    .path_len = (uint32_t)path_len};
	uint8_t *pre = NULL;
	if (pre_len > 0) {
		pre = malloc((size_t)pre_len);
		if (pre == NULL) {
			syncshim_die("malloc pre-image");
		}
		ssize_t got = pread(fd, pre, (size_t)pre_len, (off_t)off);
		if (got != (ssize_t)pre_len) {
			/* fd may be write-only (LMDB's O_DSYNC meta fd): read through a new one. */
			int rfd = open(path, O_RDONLY | O_CLOEXEC);
			if (rfd < 0 || pread(rfd, pre, (size_t)pre_len, (off_t)off) != (ssize_t)pre_len) {
				syncshim_die("pre-image read");
			}
			(void)close(rfd);
		}
	}
	syncshim_append(&r, sizeof r);
	syncshim_append(path, path_len);
	if (pre_len > 0) {
		syncshim_append(pre, (size_t)pre_len);
	}
	free(pre);
	shim.counters.writes++;
	syncshim_dirty_add(path);
}

/*
 * Runs before a write to fd at `off` (or at the current position when off < 0). Returns whether
 * fd is tracked; if so the lock is held and the caller must call syncshim_after_write.
 */
static bool syncshim_before_write(int fd, int64_t off, uint64_t len, char path[PATH_MAX],
				  uint64_t *out_at)
{
	if (!syncshim_tracked(fd, path)) {
		return false;
	}
	if (pthread_mutex_lock(&shim.lock) != 0) {
		syncshim_die("lock");
	}
	uint64_t at;
	if (off >= 0) {
		at = (uint64_t)off;
	} else {
		int flags = fcntl(fd, F_GETFL);
		off_t cur = (flags >= 0 && (flags & O_APPEND)) ? lseek(fd, 0, SEEK_END)
							       : lseek(fd, 0, SEEK_CUR);
		if (cur < 0) {
			syncshim_die("lseek");
		}
		at = (uint64_t)cur;
	}
	syncshim_log_write(fd, path, at, len);
	*out_at = at;
	return true;
}

/*
 * A write through an O_DSYNC/O_SYNC descriptor is durable when it returns (unless the disk lies),
 * but only that write: its bytes are logged as a DURABLE record that a power loss re-applies.
 * Releases the lock taken by syncshim_before_write.
 */
static void syncshim_after_write(int fd, const char *path, uint64_t at, const struct iovec *iov,
				 int iovcnt, ssize_t written)
{
	int flags = fcntl(fd, F_GETFL);
	if (written > 0 && flags >= 0 && (flags & (O_DSYNC | O_SYNC)) != 0) {
		shim.counters.dsync_writes++;
		if (!syncshim_lying_now()) {
			size_t path_len = strlen(path);
			struct syncshim_record r = {.magic = SYNCSHIM_MAGIC,
						    .type = SYNCSHIM_DURABLE,
						    .off = at,
						    .write_len = (uint64_t)written,
						    .pre_len = (uint64_t)written,
						    .path_len = (uint32_t)path_len};
			syncshim_append(&r, sizeof r);
			syncshim_append(path, path_len);
			size_t left = (size_t)written;
			for (int i = 0; i < iovcnt && i < SYNCSHIM_IOV_MAX && left > 0; i++) {
				size_t take = iov[i].iov_len < left ? iov[i].iov_len : left;
				syncshim_append(iov[i].iov_base, take);
				left -= take;
			}
		}
	}
	syncshim_stats_write();
	(void)pthread_mutex_unlock(&shim.lock);
}

static uint64_t syncshim_iov_len(const struct iovec *iov, int iovcnt)
{
	uint64_t total = 0;
	for (int i = 0; i < iovcnt && i < SYNCSHIM_IOV_MAX; i++) {
		total += iov[i].iov_len;
	}
	return total;
}

/* The six write calls LMDB or libc may use; each logs before and records durability after. */
#define SYNCSHIM_WRAP(call_real, off, iov, iovcnt)                                  \
	do {                                                                        \
		char path_[PATH_MAX];                                               \
		uint64_t at_ = 0;                                                   \
		if (!syncshim_before_write(fd, (off), syncshim_iov_len((iov), (iovcnt)), \
					   path_, &at_)) {                          \
			return call_real;                                           \
		}                                                                   \
		ssize_t n_ = call_real;                                             \
		int saved_ = errno;                                                 \
		syncshim_after_write(fd, path_, at_, (iov), (iovcnt), n_);          \
		errno = saved_;                                                     \
		return n_;                                                          \
	} while (0)

ssize_t write(int fd, const void *buf, size_t count)
{
	struct iovec one = {.iov_base = (void *)(uintptr_t)buf, .iov_len = count};
	SYNCSHIM_WRAP(shim.real_write(fd, buf, count), -1, &one, 1);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset)
{
	struct iovec one = {.iov_base = (void *)(uintptr_t)buf, .iov_len = count};
	SYNCSHIM_WRAP(shim.real_pwrite(fd, buf, count, offset), offset, &one, 1);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off64_t offset)
{
	struct iovec one = {.iov_base = (void *)(uintptr_t)buf, .iov_len = count};
	SYNCSHIM_WRAP(shim.real_pwrite64(fd, buf, count, offset), offset, &one, 1);
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
	SYNCSHIM_WRAP(shim.real_writev(fd, iov, iovcnt), -1, iov, iovcnt);
}

ssize_t pwritev(int fd, const struct iovec *iov, int iovcnt, off_t offset)
{
	SYNCSHIM_WRAP(shim.real_pwritev(fd, iov, iovcnt, offset), offset, iov, iovcnt);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int iovcnt, off64_t offset)
{
	SYNCSHIM_WRAP(shim.real_pwritev64(fd, iov, iovcnt, offset), offset, iov, iovcnt);
}

/* A sync of fd: honoured (durable, logged), lied about, or failed with EIO, per the env. */
static int syncshim_sync(int fd, int (*real)(int))
{
	char path[PATH_MAX];
	if (!syncshim_tracked(fd, path)) {
		return real(fd);
	}
	if (pthread_mutex_lock(&shim.lock) != 0) {
		syncshim_die("lock");
	}
	int rc = 0;
	int saved = 0;
	if (shim.eio && shim.counters.syncs >= shim.eio_after) {
		shim.counters.syncs_failed++;
		rc = -1;
		saved = EIO;
	} else if (syncshim_lying_now()) {
		shim.counters.syncs_lied++;
	} else {
		rc = real(fd);
		saved = errno;
		if (rc == 0) {
			syncshim_mark_synced(path);
		}
	}
	shim.counters.syncs++;
	syncshim_stats_write();
	(void)pthread_mutex_unlock(&shim.lock);
	errno = saved;
	return rc;
}

int fsync(int fd)
{
	return syncshim_sync(fd, shim.real_fsync);
}

int fdatasync(int fd)
{
	return syncshim_sync(fd, shim.real_fdatasync);
}

/*
 * msync flushes a mapping, not a file we can name from here: with MDB_WRITEMAP the data would
 * bypass write() entirely and this shim could not hold anything back. Counted as a sync of every
 * dirty file so it is visible in the stats; the crash test requires tracked writes > 0.
 */
int msync(void *addr, size_t length, int flags)
{
	int rc = shim.real_msync(addr, length, flags);
	if (rc != 0 || !shim.ready || (flags & MS_SYNC) == 0) {
		return rc;
	}
	int saved = errno;
	if (pthread_mutex_lock(&shim.lock) != 0) {
		syncshim_die("lock");
	}
	shim.counters.syncs++;
	while (shim.dirty_count > 0 && !syncshim_lying_now()) {
		char path[PATH_MAX];
		(void)snprintf(path, sizeof path, "%s", shim.dirty[0]);
		syncshim_mark_synced(path);
	}
	syncshim_stats_write();
	(void)pthread_mutex_unlock(&shim.lock);
	errno = saved;
	return rc;
}
