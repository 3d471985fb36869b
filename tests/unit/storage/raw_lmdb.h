/* Storage test helpers below the adapter: raw LMDB records and byte-level damage to data.mdb. */
#ifndef CARELOG_TESTS_UNIT_STORAGE_RAW_LMDB_H
#define CARELOG_TESTS_UNIT_STORAGE_RAW_LMDB_H

#include <lmdb.h> /* the tests damage stores underneath the adapter */

#include <stddef.h>
#include <stdint.h>

/* Every helper fails the running cmocka test on any error. The environment at `dir` must not
 * be open through storage_open / storage_audit_open while they run. */

struct raw {
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
};

/* Opens the environment at `dir` and database `db` in a write transaction. */
void raw_begin(struct raw *r, const char *dir, const char *db);
/* Commits and closes. */
void raw_end(struct raw *r);

void raw_put(const char *dir, const char *db, const void *key, size_t key_len, const void *val,
	     size_t val_len);
void raw_del(const char *dir, const char *db, const void *key, size_t key_len);
/* Flips one bit of byte `offset` of the value at `key`, rewriting it through LMDB. */
void raw_flip(const char *dir, const char *db, const void *key, size_t key_len, size_t offset);

/* Flips one bit inside every copy of `marker` in <dir>/data.mdb, as bit rot would; returns how
 * many copies were damaged. */
size_t file_flip_marker(const char *dir, const char *marker);
/* How many copies of the `len` bytes at `marker` <dir>/data.mdb holds. */
size_t file_count_marker(const char *dir, const void *marker, size_t len);

#endif
