/* Storage test helpers below the adapter: raw LMDB records and byte-level damage to data.mdb. */
#include "raw_lmdb.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

enum { RAW_PATH_BYTES = 512 };

void raw_begin(struct raw *r, const char *dir, const char *db)
{
	assert_int_equal(mdb_env_create(&r->env), 0);
	assert_int_equal(mdb_env_set_maxdbs(r->env, 8), 0);
	assert_int_equal(mdb_env_open(r->env, dir, MDB_NOTLS, 0600), 0);
	assert_int_equal(mdb_txn_begin(r->env, NULL, 0, &r->txn), 0);
	assert_int_equal(mdb_dbi_open(r->txn, db, 0, &r->dbi), 0);
}

void raw_end(struct raw *r)
{
	assert_int_equal(mdb_txn_commit(r->txn), 0);
	mdb_env_close(r->env);
}

void raw_put(const char *dir, const char *db, const void *key, size_t key_len, const void *val,
	     size_t val_len)
{
	struct raw r;
	raw_begin(&r, dir, db);
	MDB_val k = {.mv_size = key_len, .mv_data = (void *)(uintptr_t)key};
	MDB_val v = {.mv_size = val_len, .mv_data = (void *)(uintptr_t)val};
	assert_int_equal(mdb_put(r.txn, r.dbi, &k, &v, 0), 0);
	raw_end(&r);
}

void raw_del(const char *dir, const char *db, const void *key, size_t key_len)
{
	struct raw r;
	raw_begin(&r, dir, db);
	MDB_val k = {.mv_size = key_len, .mv_data = (void *)(uintptr_t)key};
	assert_int_equal(mdb_del(r.txn, r.dbi, &k, NULL), 0);
	raw_end(&r);
}

void raw_flip(const char *dir, const char *db, const void *key, size_t key_len, size_t offset)
{
	struct raw r;
	raw_begin(&r, dir, db);
	MDB_val k = {.mv_size = key_len, .mv_data = (void *)(uintptr_t)key};
	MDB_val v;
	assert_int_equal(mdb_get(r.txn, r.dbi, &k, &v), 0);
	assert_true(offset < v.mv_size);
	uint8_t *copy = malloc(v.mv_size);
	assert_non_null(copy);
	memcpy(copy, v.mv_data, v.mv_size);
	copy[offset] ^= 0x10;
	MDB_val nv = {.mv_size = v.mv_size, .mv_data = copy};
	assert_int_equal(mdb_put(r.txn, r.dbi, &k, &nv, 0), 0);
	raw_end(&r);
	free(copy);
}

/* Reads <dir>/data.mdb whole; *out_fd stays open (read-write) for the caller to close. */
static uint8_t *file_read_data(const char *dir, int *out_fd, size_t *out_size)
{
	char path[RAW_PATH_BYTES];
	int n = snprintf(path, sizeof(path), "%s/data.mdb", dir);
	assert_true(n > 0 && (size_t)n < sizeof(path));
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	size_t size = (size_t)st.st_size;
	uint8_t *bytes = malloc(size);
	assert_non_null(bytes);
	assert_int_equal(pread(fd, bytes, size, 0), (ssize_t)size);
	*out_fd = fd;
	*out_size = size;
	return bytes;
}

size_t file_flip_marker(const char *dir, const char *marker)
{
	int fd;
	size_t size;
	uint8_t *bytes = file_read_data(dir, &fd, &size);
	size_t len = strlen(marker), flipped = 0;
	for (size_t i = 0; i + len <= size; i++) {
		if (memcmp(bytes + i, marker, len) == 0) {
			bytes[i + len / 2] ^= 0x01;
			flipped++;
		}
	}
	assert_int_equal(pwrite(fd, bytes, size, 0), (ssize_t)size);
	assert_int_equal(fsync(fd), 0);
	close(fd);
	free(bytes);
	return flipped;
}

size_t file_count_marker(const char *dir, const void *marker, size_t len)
{
	assert_true(len > 0);
	int fd;
	size_t size;
	uint8_t *bytes = file_read_data(dir, &fd, &size);
	close(fd);
	size_t count = 0;
	const uint8_t *at = bytes;
	const uint8_t *end = bytes + size;
	while ((at = memmem(at, (size_t)(end - at), marker, len)) != NULL) {
		count++;
		at++;
	}
	free(bytes);
	return count;
}
