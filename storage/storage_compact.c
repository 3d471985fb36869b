/* storage_compact_dir: offline compaction, so that bytes left in freed pages leave data.mdb. */
#include "storage/storage_internal.h"

#include "carelog/errors.h"
#include "common/assert.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct storage_compact_paths {
	char data[STORAGE_PATH_BYTES_MAX];      /* <dir>/data.mdb */
	char compact[STORAGE_PATH_BYTES_MAX];   /* <dir>/data.mdb.compact */
	char lmdb_lock[STORAGE_PATH_BYTES_MAX]; /* <dir>/lock.mdb */
};

static bool storage_compact_path(char *out, const char *dir, const char *name)
{
	int n = snprintf(out, STORAGE_PATH_BYTES_MAX, "%s/%s", dir, name);
	return n > 0 && (size_t)n < STORAGE_PATH_BYTES_MAX;
}

static int storage_compact_failed(const char *step, int e)
{
	cl_log_error("storage.compact_failed", "step=%s error=\"%s\"", step, strerror(e));
	return e == ENOENT ? CARELOG_ENOTFOUND : CARELOG_EIO;
}

/*
 * LMDB's own lock: every process that has the environment open holds a shared fcntl lock on
 * the first byte of lock.mdb, so an exclusive one is granted only when none does (LMDB's
 * mdb_env_setup_locks / mdb_env_share_locks). Held for the whole compaction, it also makes an
 * LMDB opener wait until the new file is in place. fcntl locks belong to the process and any
 * close of the file drops them: this is only taken after the flock on storage.lock has
 * refused a store open in this process.
 */
static int storage_compact_lock_lmdb(const char *path, int *out_fd)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, STORAGE_FILE_MODE);
	if (fd < 0) {
		return storage_compact_failed("lock_open", errno);
	}
	struct flock lock = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
	if (fcntl(fd, F_SETLK, &lock) != 0) {
		int e = errno;
		close(fd);
		if (e == EAGAIN || e == EACCES) {
			cl_log_error("storage.dir_in_use",
				     "error=\"another process has this LMDB environment open\"");
			return CARELOG_EBUSY;
		}
		return storage_compact_failed("lock", e);
	}
	*out_fd = fd;
	return CARELOG_OK;
}

/* A data.mdb.compact from a crash before its rename is incomplete or unsynced: drop it. */
static int storage_compact_remove_stale(const char *path)
{
	if (unlink(path) == 0) {
		cl_log_warn("storage.compact_stale_removed", "file=data.mdb.compact");
		return CARELOG_OK;
	}
	return errno == ENOENT ? CARELOG_OK : storage_compact_failed("remove_stale", errno);
}

/* Writes the compacted copy of the environment at `dir` to `fd`. */
static int storage_compact_copy_to(const char *dir, int fd)
{
	MDB_env *env;
	int rc = mdb_env_create(&env);
	if (rc != 0) {
		return storage_error_sized(0, rc, "compact_env_create");
	}
	/* MDB_RDONLY: the old file is never written. MDB_NOLOCK: nobody else may have the
	 * environment open (the caller holds LMDB's lock), and LMDB must not take its own
	 * fcntl locks on lock.mdb, whose release would drop the caller's. */
	rc = mdb_env_open(env, dir, MDB_RDONLY | MDB_NOLOCK | MDB_NOTLS, STORAGE_FILE_MODE);
	if (rc == 0) {
		/* Walks the live B-trees only: freed pages, which may still hold erased bodies,
		 * are not copied, nor is the free gap inside each branch or leaf page. */
		rc = mdb_env_copyfd2(env, fd, MDB_CP_COMPACT);
	}
	mdb_env_close(env);
	return rc == 0 ? CARELOG_OK : storage_error_sized(0, rc, "compact_copy");
}

static int storage_compact_write(const char *dir, const char *compact_path, uint64_t *out_bytes)
{
	int fd = open(compact_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, STORAGE_FILE_MODE);
	if (fd < 0) {
		return storage_compact_failed("create", errno);
	}
	int rc = storage_compact_copy_to(dir, fd);
	struct stat st;
	if (rc == CARELOG_OK && fsync(fd) != 0) {
		rc = storage_compact_failed("sync", errno);
	}
	if (rc == CARELOG_OK && fstat(fd, &st) != 0) {
		rc = storage_compact_failed("stat", errno);
	}
	if (close(fd) != 0 && rc == CARELOG_OK) {
		rc = storage_compact_failed("close", errno);
	}
	if (rc == CARELOG_OK) {
		*out_bytes = (uint64_t)st.st_size;
	}
	return rc;
}

static int storage_compact_sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		return storage_compact_failed("dir_open", errno);
	}
	int rc = fsync(fd) == 0 ? CARELOG_OK : storage_compact_failed("dir_sync", errno);
	close(fd);
	return rc;
}

/* With both locks held: the copy, then the swap. A crash leaves data.mdb old or new, whole. */
static int storage_compact_locked(const char *dir, const struct storage_compact_paths *paths,
				  uint64_t *out_before_bytes, uint64_t *out_after_bytes)
{
	int rc = storage_compact_remove_stale(paths->compact);
	if (rc != CARELOG_OK) {
		return rc;
	}
	struct stat st;
	if (stat(paths->data, &st) != 0) {
		return storage_compact_failed("stat", errno);
	}
	uint64_t after = 0;
	rc = storage_compact_write(dir, paths->compact, &after);
	if (rc == CARELOG_OK && rename(paths->compact, paths->data) != 0) {
		rc = storage_compact_failed("rename", errno);
	}
	if (rc != CARELOG_OK) {
		(void)unlink(paths->compact); /* the old data.mdb is untouched */
		return rc;
	}
	rc = storage_compact_sync_dir(dir);
	if (rc != CARELOG_OK) {
		return rc; /* the new file is in place and synced; its name may not be yet */
	}
	*out_before_bytes = (uint64_t)st.st_size;
	*out_after_bytes = after;
	return CARELOG_OK;
}

int storage_compact_dir(const char *dir, uint64_t *out_before_bytes, uint64_t *out_after_bytes)
{
	CL_ASSERT(dir != NULL);
	struct storage_compact_paths paths;
	if (dir[0] == '\0' || !storage_compact_path(paths.data, dir, "data.mdb") ||
	    !storage_compact_path(paths.compact, dir, "data.mdb.compact") ||
	    !storage_compact_path(paths.lmdb_lock, dir, "lock.mdb")) {
		cl_log_error("storage.compact_failed", "error=\"data dir path empty or too long\"");
		return CARELOG_EINVAL;
	}
	struct stat st;
	if (stat(paths.data, &st) != 0) {
		int e = errno;
		if (e == ENOENT) {
			cl_log_error("storage.compact_failed",
				     "error=\"no data.mdb in the data dir\" hint=\"check --data-dir\"");
			return CARELOG_ENOTFOUND;
		}
		return storage_compact_failed("stat", e);
	}
	/* carelog's own lock first (refuses a running node and an open in this process), then
	 * LMDB's (refuses any other process with the environment open). */
	int store_lock_fd = -1, lmdb_lock_fd = -1;
	int rc = storage_lock_dir(dir, &store_lock_fd);
	if (rc == CARELOG_OK) {
		rc = storage_compact_lock_lmdb(paths.lmdb_lock, &lmdb_lock_fd);
	}
	uint64_t before = 0, after = 0;
	if (rc == CARELOG_OK) {
		rc = storage_compact_locked(dir, &paths, &before, &after);
	}
	if (lmdb_lock_fd >= 0) {
		close(lmdb_lock_fd);
	}
	if (store_lock_fd >= 0) {
		close(store_lock_fd);
	}
	if (rc != CARELOG_OK) {
		return rc;
	}
	cl_log_info("storage.compacted", "before_bytes=%llu after_bytes=%llu",
		    (unsigned long long)before, (unsigned long long)after);
	if (out_before_bytes != NULL) {
		*out_before_bytes = before;
	}
	if (out_after_bytes != NULL) {
		*out_after_bytes = after;
	}
	return CARELOG_OK;
}
