/* Internals shared by the storage adapter's files: the LMDB handles and the record codec. */
#ifndef CARELOG_STORAGE_INTERNAL_H
#define CARELOG_STORAGE_INTERNAL_H

#include "storage/storage.h"

#include <lmdb.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The named databases of the environment (docs/on-disk-format.md). */
enum storage_db {
	STORAGE_DB_META = 0,
	STORAGE_DB_LOG,
	STORAGE_DB_ENTRY_INDEX,
	STORAGE_DB_REQUEST_INDEX,
	STORAGE_DB_PATIENT_INDEX,
	STORAGE_DB_POLICY,
	STORAGE_DB_COUNT
};

enum {
	STORAGE_CRC_BYTES = 4,
	STORAGE_INDEX_BYTES = 8,
	/* log value: crc, term u64, type u8, data */
	STORAGE_LOG_HEADER_BYTES = STORAGE_CRC_BYTES + 8 + 1,
	/* meta "hard_state": crc, term, vote, commit */
	STORAGE_HARD_STATE_VALUE_BYTES = STORAGE_CRC_BYTES + 3 * 8,
	/* meta "applied": crc, index, chain head */
	STORAGE_APPLIED_VALUE_BYTES = STORAGE_CRC_BYTES + 8 + STORAGE_HASH_BYTES,
	/* meta "identity": crc, format version u32, cluster id, node id u64. The version comes
	 * first so that any future layout can still be recognised as "not ours". */
	STORAGE_IDENTITY_VERSION_END = STORAGE_CRC_BYTES + 4,
	STORAGE_IDENTITY_VALUE_BYTES = STORAGE_IDENTITY_VERSION_END + STORAGE_CLUSTER_ID_BYTES + 8,
	/* entry_index value: crc, index, status u8 */
	STORAGE_ENTRY_INDEX_VALUE_BYTES = STORAGE_CRC_BYTES + 8 + 1,
	/* request_index value: crc, index, entry id */
	STORAGE_REQUEST_INDEX_VALUE_BYTES = STORAGE_CRC_BYTES + 8 + STORAGE_HASH_BYTES,
	/* patient_index key: patient key, index u64be; value: crc only */
	STORAGE_PATIENT_INDEX_KEY_BYTES = STORAGE_HASH_BYTES + 8,
	STORAGE_PATIENT_INDEX_VALUE_BYTES = STORAGE_CRC_BYTES,
	/* Room for the printable rendering of any key LMDB accepts (511 bytes as hex) */
	STORAGE_KEY_TEXT_BYTES = 2 * 511 + 16,
	STORAGE_FILE_MODE = 0600,
	STORAGE_PATH_BYTES_MAX = 4096, /* a data dir path plus a file name */
};

/* Reserved meta names with typed layouts; storage_meta_put/get refuse them. */
#define STORAGE_META_HARD_STATE "hard_state"
#define STORAGE_META_APPLIED "applied"
#define STORAGE_META_IDENTITY "identity"

struct storage {
	MDB_env *env;
	MDB_dbi dbi[STORAGE_DB_COUNT];
	uint64_t map_size_bytes;
	int lock_fd; /* flock(LOCK_EX) on <dir>/storage.lock: one process, one opener */
};

struct storage_txn {
	struct storage *storage;
	MDB_txn *txn;
	bool write;
};

/* Part of a value's payload (the bytes after the checksum), written in order. */
struct storage_part {
	const void *bytes;
	size_t len;
};

/* "meta", "log", ... */
const char *storage_db_name(enum storage_db db);

/*
 * The one place LMDB and errno codes become carelog codes. Logs anything other than
 * MDB_NOTFOUND with `op` (map full with its remedy). `s` may be NULL before the env exists.
 */
int storage_error(const struct storage *s, int rc, const char *op);
/* As storage_error, for an environment whose map is `map_size_bytes` (the audit queue's). */
int storage_error_sized(uint64_t map_size_bytes, int rc, const char *op);
/* The code for a failed mdb_txn_commit of a write txn: a failed write or sync is CARELOG_EIO
 * (logged `storage.sync_failed`: the caller must not carry on as if durable). */
int storage_commit_error(uint64_t map_size_bytes, int rc);

/* Creates `dir` (0700) if missing; it must then be a directory (a wider mode is a warning). */
int storage_dir_prepare(const char *dir);
/* Takes the exclusive flock on <dir>/storage.lock: CARELOG_EBUSY when another process or
 * handle holds it. *out_fd keeps it (closing it releases it). */
int storage_lock_dir(const char *dir, int *out_fd);
/* Creates and opens an environment at `dir` with MDB_NOTLS, synced commits, `dbs_max` named
 * databases and `readers_max` readers, clearing stale reader slots. *out is set (and must be
 * closed by the caller) whenever mdb_env_create succeeded, even if the open failed. */
int storage_env_open_at(const char *dir, uint64_t map_size_bytes, unsigned int dbs_max,
			uint32_t readers_max, MDB_env **out);
/* `bytes` rounded up to a whole number of OS pages. */
uint64_t storage_round_up_to_page(uint64_t bytes);

/* Why the record (key, value) of `db` is malformed, or NULL when its shape and checksum
 * hold. This is the single definition of "sound" used by every read and by storage_verify. */
const char *storage_record_problem(enum storage_db db, const MDB_val *key, const MDB_val *val);

/* Printable rendering of a key of `db` into `out` (STORAGE_KEY_TEXT_BYTES): decimal index for
 * the log, hex for hashes and request keys, the name for meta. Patient index keys render as
 * their log index only (the patient key is an unsalted hash of a patient id: not for logs). */
void storage_key_text(enum storage_db db, const MDB_val *key, char *out, size_t out_size);

/* Logs `storage.corrupt db=.. key=.. reason=..` and returns CARELOG_ECORRUPT. */
int storage_corrupt(enum storage_db db, const MDB_val *key, const char *reason);

/* Reads and checks the record at `key`: CARELOG_ENOTFOUND, CARELOG_ECORRUPT (logged), or OK
 * with *out_val pointing into the map (valid until the transaction ends). */
int storage_record_get(struct storage_txn *t, enum storage_db db, const void *key,
		       size_t key_len, MDB_val *out_val);

/* Writes the record (key, crc || parts...) through `cursor` (or the db handle when NULL) with
 * the LMDB put `flags` (MDB_APPEND, ...). The checksum covers the key then the parts. */
int storage_record_put(struct storage_txn *t, MDB_cursor *cursor, enum storage_db db,
		       const void *key, size_t key_len, const struct storage_part *parts,
		       size_t part_count, unsigned int flags);

/* The value codec shared by every environment (main store and audit queue): `reserved` is a
 * value LMDB handed out with MDB_RESERVE, sized 4 + the parts; fills in the parts then the
 * checksum over the key and the parts. */
void storage_value_fill(const MDB_val *key, MDB_val *reserved, const struct storage_part *parts,
			size_t part_count);
/* Whether a value of at least STORAGE_CRC_BYTES carries the checksum of (key, its payload). */
bool storage_value_checksum_ok(const MDB_val *key, const MDB_val *val);

/* Opens a cursor on `db` for the transaction; closed with mdb_cursor_close. */
int storage_cursor_open(struct storage_txn *t, enum storage_db db, MDB_cursor **out);

/* Whether `name` is a valid meta name: 1..STORAGE_META_NAME_BYTES_MAX of [A-Za-z0-9_.-]. */
bool storage_meta_name_valid(const char *name, size_t len);

#endif
