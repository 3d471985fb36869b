/* The LMDB environment of one node: open/close, transactions, error mapping, statistics. */
#include "storage/storage_internal.h"

#include "carelog/errors.h"
#include "common/assert.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
	STORAGE_DBS_MAX = 8, /* room above the six we use, so a new index needs no env change */
	STORAGE_DIR_MODE = 0700,
};

static const char *const storage_db_names[STORAGE_DB_COUNT] = {
	[STORAGE_DB_META] = "meta",
	[STORAGE_DB_LOG] = "log",
	[STORAGE_DB_ENTRY_INDEX] = "entry_index",
	[STORAGE_DB_REQUEST_INDEX] = "request_index",
	[STORAGE_DB_PATIENT_INDEX] = "patient_index",
	[STORAGE_DB_POLICY] = "policy",
};

const char *storage_db_name(enum storage_db db)
{
	CL_ASSERT(db < STORAGE_DB_COUNT);
	return storage_db_names[db];
}

static int storage_errno_error(int rc)
{
	switch (rc) {
	case ENOMEM:
		return CARELOG_ENOMEM;
	case ENOENT:
		return CARELOG_ENOTFOUND;
	case EAGAIN:
	case EBUSY:
		return CARELOG_EBUSY;
	default:
		/* EIO, ENOSPC, EDQUOT, EACCES, EROFS ...: the disk or the file system failed us. */
		return CARELOG_EIO;
	}
}

int storage_error(const struct storage *s, int rc, const char *op)
{
	return storage_error_sized(s != NULL ? s->map_size_bytes : 0, rc, op);
}

int storage_error_sized(uint64_t map_size_bytes, int rc, const char *op)
{
	int error;
	switch (rc) {
	case MDB_SUCCESS:
		return CARELOG_OK;
	case MDB_NOTFOUND:
		return CARELOG_ENOTFOUND;
	case MDB_MAP_FULL:
		cl_log_error("storage.map_full",
			     "op=%s map_size_bytes=%llu remedy=\"raise map_size_bytes in the node "
			     "config and restart the node\"",
			     op, (unsigned long long)map_size_bytes);
		return CARELOG_EMAPFULL;
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_INVALID: /* not an LMDB file */
		error = CARELOG_ECORRUPT;
		break;
	case MDB_VERSION_MISMATCH:
	case MDB_INCOMPATIBLE:
		error = CARELOG_EVERSION;
		break;
	case MDB_READERS_FULL:
	case MDB_TLS_FULL:
		error = CARELOG_EBUSY;
		break;
	case MDB_TXN_FULL: /* too many dirty pages: the batch is too large for one txn */
	case MDB_BAD_VALSIZE:
		error = CARELOG_ETOOBIG;
		break;
	case MDB_KEYEXIST:
		error = CARELOG_EEXIST;
		break;
	case MDB_BAD_TXN: /* an earlier failure in this txn: the caller must abort it */
	case MDB_BAD_DBI:
	case MDB_BAD_RSLOT:
		error = CARELOG_EINVAL;
		break;
	case MDB_PANIC:
	case MDB_MAP_RESIZED:
	case MDB_DBS_FULL:
	case MDB_CURSOR_FULL:
	case MDB_PAGE_FULL:
		error = CARELOG_EIO;
		break;
	default:
		error = rc > 0 ? storage_errno_error(rc) : CARELOG_EIO;
		break;
	}
	cl_log_error("storage.lmdb_error", "op=%s error=%s rc=%d lmdb=\"%s\"", op,
		     carelog_errname(error), rc, mdb_strerror(rc));
	return error;
}

int storage_dir_prepare(const char *dir)
{
	struct stat st;
	if (stat(dir, &st) != 0) {
		if (errno != ENOENT) {
			cl_log_error("storage.dir_unusable", "error=\"%s\"", strerror(errno));
			return CARELOG_EIO;
		}
		if (mkdir(dir, STORAGE_DIR_MODE) != 0 && errno != EEXIST) {
			int e = errno;
			cl_log_error("storage.dir_create_failed", "error=\"%s\" hint=\"%s\"",
				     strerror(e),
				     e == ENOENT ? "the parent directory must exist"
						 : "check permissions");
			return e == ENOENT ? CARELOG_ENOTFOUND : CARELOG_EIO;
		}
		if (stat(dir, &st) != 0) {
			cl_log_error("storage.dir_unusable", "error=\"%s\"", strerror(errno));
			return CARELOG_EIO;
		}
	}
	if (!S_ISDIR(st.st_mode)) {
		cl_log_error("storage.dir_unusable", "error=\"data dir is not a directory\"");
		return CARELOG_ECONFIG;
	}
	if ((st.st_mode & 077) != 0) {
		/* Patient records: nobody but the node's user should read them. */
		cl_log_warn("storage.dir_mode", "mode=%04o expected=0700",
			    (unsigned int)(st.st_mode & 07777));
	}
	return CARELOG_OK;
}

/*
 * LMDB allows several writer processes on one env; two carelogd on one data dir would act as
 * two nodes with one identity. An exclusive flock on <dir>/storage.lock refuses the second
 * opener (also within one process, where LMDB forbids opening an env twice).
 */
int storage_lock_dir(const char *dir, int *out_fd)
{
	char path[STORAGE_PATH_BYTES_MAX];
	int n = snprintf(path, sizeof(path), "%s/storage.lock", dir);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		cl_log_error("storage.dir_unusable", "error=\"data dir path too long\"");
		return CARELOG_EINVAL;
	}
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, STORAGE_FILE_MODE);
	if (fd < 0) {
		cl_log_error("storage.lock_failed", "error=\"%s\"", strerror(errno));
		return CARELOG_EIO;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;
		close(fd);
		if (e == EWOULDBLOCK) {
			cl_log_error("storage.dir_in_use",
				     "error=\"another process (or handle) has this data dir open\"");
			return CARELOG_EBUSY;
		}
		cl_log_error("storage.lock_failed", "error=\"%s\"", strerror(e));
		return CARELOG_EIO;
	}
	*out_fd = fd;
	return CARELOG_OK;
}

int storage_env_open_at(const char *dir, uint64_t map_size_bytes, unsigned int dbs_max,
			uint32_t readers_max, MDB_env **out)
{
	CL_ASSERT(dir != NULL && out != NULL);
	CL_ASSERT(dbs_max > 0 && readers_max > 0);
	MDB_env *env;
	int rc = mdb_env_create(&env);
	if (rc != 0) {
		*out = NULL;
		return storage_error_sized(map_size_bytes, rc, "env_create");
	}
	*out = env;
	rc = mdb_env_set_maxdbs(env, dbs_max);
	if (rc == 0) {
		rc = mdb_env_set_mapsize(env, (size_t)map_size_bytes);
	}
	if (rc == 0) {
		rc = mdb_env_set_maxreaders(env, readers_max);
	}
	if (rc == 0) {
		/* MDB_NOTLS: read txns are owned by the txn handle, not the thread. No NOSYNC,
		 * NOMETASYNC or WRITEMAP: every commit is durable before it returns. */
		rc = mdb_env_open(env, dir, MDB_NOTLS, STORAGE_FILE_MODE);
	}
	if (rc != 0) {
		return storage_error_sized(map_size_bytes, rc, "env_open");
	}
	int dead = 0;
	rc = mdb_reader_check(env, &dead);
	if (rc != 0) {
		return storage_error_sized(map_size_bytes, rc, "reader_check");
	}
	if (dead > 0) {
		cl_log_info("storage.stale_readers_cleared", "count=%d", dead);
	}
	return CARELOG_OK;
}

static int storage_dbs_open(struct storage *s)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (rc != 0) {
		return storage_error(s, rc, "dbs_open");
	}
	for (int db = 0; db < STORAGE_DB_COUNT; db++) {
		rc = mdb_dbi_open(txn, storage_db_names[db], MDB_CREATE, &s->dbi[db]);
		if (rc != 0) {
			mdb_txn_abort(txn);
			return storage_error(s, rc, "dbi_open");
		}
	}
	rc = mdb_txn_commit(txn);
	if (rc != 0) {
		return storage_error(s, rc, "dbs_open_commit");
	}
	return CARELOG_OK;
}

/* A store written under another format version is refused before anything touches it. A
 * corrupt identity is not fatal here: the node meets it at storage_identity_get, and
 * storage_verify must still be able to open the store to report it. */
static int storage_format_check(struct storage *s)
{
	struct storage_txn *t;
	int rc = storage_txn_begin_read(s, &t);
	if (rc != CARELOG_OK) {
		return rc;
	}
	struct storage_identity identity;
	rc = storage_identity_get(t, &identity);
	storage_txn_abort(t);
	return rc == CARELOG_EVERSION ? rc : CARELOG_OK;
}

uint64_t storage_round_up_to_page(uint64_t bytes)
{
	long page = sysconf(_SC_PAGESIZE);
	uint64_t p = page > 0 ? (uint64_t)page : 4096u;
	return (bytes + p - 1) / p * p;
}

int storage_open(const struct storage_options *options, struct storage **out)
{
	CL_ASSERT(options != NULL);
	CL_ASSERT(out != NULL);
	if (options->dir == NULL || options->dir[0] == '\0') {
		cl_log_error("storage.open_failed", "error=\"no data dir given\"");
		return CARELOG_EINVAL;
	}
	uint64_t map_size_bytes = options->map_size_bytes != 0 ? options->map_size_bytes
								: STORAGE_MAP_SIZE_BYTES_DEFAULT;
	if (map_size_bytes > (uint64_t)SIZE_MAX / 2) {
		cl_log_error("storage.open_failed", "error=\"map_size_bytes too large\"");
		return CARELOG_EINVAL;
	}
	int rc = storage_dir_prepare(options->dir);
	if (rc != CARELOG_OK) {
		return rc;
	}
	struct storage *s = calloc(1, sizeof(*s));
	if (s == NULL) {
		return CARELOG_ENOMEM;
	}
	s->map_size_bytes = storage_round_up_to_page(map_size_bytes);
	s->lock_fd = -1;
	rc = storage_lock_dir(options->dir, &s->lock_fd);
	if (rc == CARELOG_OK) {
		uint32_t readers = options->readers_max != 0 ? options->readers_max
							     : STORAGE_READERS_MAX_DEFAULT;
		rc = storage_env_open_at(options->dir, s->map_size_bytes, STORAGE_DBS_MAX, readers,
					 &s->env);
	}
	if (rc == CARELOG_OK) {
		rc = storage_dbs_open(s);
	}
	if (rc == CARELOG_OK) {
		rc = storage_format_check(s);
	}
	if (rc != CARELOG_OK) {
		storage_close(s);
		return rc;
	}
	MDB_envinfo info;
	if (mdb_env_info(s->env, &info) == 0) {
		/* LMDB raises a configured size below the data already stored to that size. */
		s->map_size_bytes = (uint64_t)info.me_mapsize;
	}
	*out = s;
	return CARELOG_OK;
}

void storage_close(struct storage *s)
{
	if (s == NULL) {
		return;
	}
	if (s->env != NULL) {
		mdb_env_close(s->env);
	}
	if (s->lock_fd >= 0) {
		close(s->lock_fd); /* releases the flock */
	}
	free(s);
}

static int storage_txn_begin(struct storage *s, bool write, struct storage_txn **out)
{
	CL_ASSERT(s != NULL);
	CL_ASSERT(out != NULL);
	struct storage_txn *t = malloc(sizeof(*t));
	if (t == NULL) {
		return CARELOG_ENOMEM;
	}
	int rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
	if (rc != 0) {
		free(t);
		return storage_error(s, rc, write ? "txn_begin_write" : "txn_begin_read");
	}
	t->storage = s;
	t->write = write;
	*out = t;
	return CARELOG_OK;
}

int storage_txn_begin_read(struct storage *s, struct storage_txn **out)
{
	return storage_txn_begin(s, false, out);
}

int storage_txn_begin_write(struct storage *s, struct storage_txn **out)
{
	return storage_txn_begin(s, true, out);
}

static int storage_txn_commit_with(struct storage_txn *t, bool meta_sync)
{
	CL_ASSERT(t != NULL);
	struct storage *s = t->storage;
	if (!t->write) {
		mdb_txn_abort(t->txn); /* a read txn has nothing to commit */
		free(t);
		return CARELOG_OK;
	}
	/* The flag is changeable at run time and only this (the single writer) thread commits. */
	int flag_rc = meta_sync ? 0 : mdb_env_set_flags(s->env, MDB_NOMETASYNC, 1);
	int rc = mdb_txn_commit(t->txn); /* frees the MDB_txn whatever the outcome */
	if (!meta_sync && flag_rc == 0) {
		int reset_rc = mdb_env_set_flags(s->env, MDB_NOMETASYNC, 0);
		CL_ASSERT(reset_rc == 0); /* the same call just succeeded with the flag on */
	}
	free(t);
	return rc == 0 ? CARELOG_OK : storage_commit_error(s->map_size_bytes, rc);
}

int storage_commit_error(uint64_t map_size_bytes, int rc)
{
	CL_ASSERT(rc != 0);
	if (rc == MDB_MAP_FULL || rc == ENOMEM || rc < 0) {
		return storage_error_sized(map_size_bytes, rc, "txn_commit");
	}
	/* write(2) or fdatasync(2) failed: what is on disk is unknown, and retrying after a
	 * failed fsync can report success for lost data. The node must stop. */
	cl_log_error("storage.sync_failed", "error=\"%s\" action=\"stop the node\"",
		     strerror(rc));
	return CARELOG_EIO;
}

int storage_txn_commit(struct storage_txn *t)
{
	return storage_txn_commit_with(t, true);
}

int storage_txn_commit_redoable(struct storage_txn *t)
{
	return storage_txn_commit_with(t, false);
}

void storage_txn_abort(struct storage_txn *t)
{
	if (t == NULL) {
		return;
	}
	mdb_txn_abort(t->txn);
	free(t);
}

int storage_stats_get(struct storage *s, struct storage_stats *out)
{
	CL_ASSERT(s != NULL);
	CL_ASSERT(out != NULL);
	MDB_envinfo info;
	MDB_stat env_stat;
	int rc = mdb_env_info(s->env, &info);
	if (rc == 0) {
		rc = mdb_env_stat(s->env, &env_stat);
	}
	if (rc != 0) {
		return storage_error(s, rc, "stats");
	}
	MDB_txn *txn;
	rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0) {
		return storage_error(s, rc, "stats");
	}
	MDB_stat log_stat;
	rc = mdb_stat(txn, s->dbi[STORAGE_DB_LOG], &log_stat);
	mdb_txn_abort(txn);
	if (rc != 0) {
		return storage_error(s, rc, "stats");
	}
	out->map_size_bytes = (uint64_t)info.me_mapsize;
	/* me_last_pgno is the highest page in use; pages are numbered from 0. */
	out->used_bytes = ((uint64_t)info.me_last_pgno + 1u) * (uint64_t)env_stat.ms_psize;
	out->log_entries = (uint64_t)log_stat.ms_entries;
	return CARELOG_OK;
}

int storage_cursor_open(struct storage_txn *t, enum storage_db db, MDB_cursor **out)
{
	CL_ASSERT(t != NULL);
	CL_ASSERT(db < STORAGE_DB_COUNT);
	int rc = mdb_cursor_open(t->txn, t->storage->dbi[db], out);
	if (rc != 0) {
		return storage_error(t->storage, rc, "cursor_open");
	}
	return CARELOG_OK;
}
