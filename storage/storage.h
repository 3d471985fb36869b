/* The LMDB store of one node: the Raft log (the journal), hard state, applied state, indexes. */
#ifndef CARELOG_STORAGE_H
#define CARELOG_STORAGE_H

/*
 * One LMDB environment per node (DESIGN.md "Storage"). Single writer (the node's event loop),
 * many concurrent readers (MDB_NOTLS: a read transaction may move between threads but is used
 * by one thread at a time).
 *
 * Every stored value starts with a CRC32C of the rest of the value and its key (see
 * docs/on-disk-format.md); a value that fails its checksum is never returned: the call returns
 * CARELOG_ECORRUPT and logs `event=storage.corrupt db=<name> key=<key>`.
 *
 * Write transactions commit with a synced write (fdatasync); a failed sync returns CARELOG_EIO
 * and the caller must stop the node (never retry and continue). MDB_MAP_FULL is returned as
 * CARELOG_EMAPFULL (the remedy: raise map_size_bytes).
 *
 * Data pointers handed out (entry data, meta values) are borrowed until the transaction ends.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
	STORAGE_CLUSTER_ID_BYTES = 16,
	STORAGE_HASH_BYTES = 32,
	STORAGE_REQUEST_KEY_BYTES_MAX = 256,
	STORAGE_META_NAME_BYTES_MAX = 32,
	STORAGE_FORMAT_VERSION = 1,
	STORAGE_READERS_MAX_DEFAULT = 512, /* used when storage_options.readers_max is 0 */
};

/* Used when storage_options.map_size_bytes is 0 (a node should set it from its config). */
#define STORAGE_MAP_SIZE_BYTES_DEFAULT (1ULL << 30)

struct storage;
struct storage_txn;

struct storage_options {
	const char *dir;         /* created if missing (mode 0700) */
	uint64_t map_size_bytes; /* virtual map size, e.g. 64 GiB; the file grows sparsely
				    (0: STORAGE_MAP_SIZE_BYTES_DEFAULT). Applies at every open; a
				    size below the data already stored is raised to fit it. */
	uint32_t readers_max;    /* concurrent read transactions (0: STORAGE_READERS_MAX_DEFAULT) */
};

/* Opens (creating if needed) the environment and its databases. Holds an exclusive lock on
 * <dir>/storage.lock while open: a second opener (another process, or this one again) gets
 * CARELOG_EBUSY. CARELOG_EVERSION if the data dir's identity carries another format version;
 * CARELOG_ENOTFOUND if the dir's parent is missing. */
int storage_open(const struct storage_options *options, struct storage **out);
/* Accepts NULL. All transactions must have ended. */
void storage_close(struct storage *s);

/* Read transactions may run concurrently with the writer and with each other. */
int storage_txn_begin_read(struct storage *s, struct storage_txn **out);
/* One write transaction at a time (the caller's single writer thread). */
int storage_txn_begin_write(struct storage *s, struct storage_txn **out);
/* Write: commits and syncs (CARELOG_EIO on sync failure: fatal for the node, CARELOG_EMAPFULL).
 * Read: ends the transaction. The txn is freed in every case.
 * After a call fails inside LMDB (CARELOG_EMAPFULL above all, CARELOG_EIO, CARELOG_ETOOBIG),
 * the txn can only be aborted: LMDB refuses further work in it. Refused arguments
 * (CARELOG_EINVAL, CARELOG_EEXIST) leave it usable. Calling a write function with a read txn
 * is a caller bug (assertion). */
int storage_txn_commit(struct storage_txn *t);
/*
 * As storage_txn_commit, but the data pages are synced and the meta page that makes the
 * transaction current is written without a sync of its own (LMDB MDB_NOMETASYNC for this
 * commit only): the store's integrity holds whatever happens, but a power loss may undo this
 * transaction (the next synced commit makes it durable). Only for writes that can be redone
 * from durable state: applying committed entries and a newer commit index (Raft does not
 * need the commit index durable), never for log entries, term or vote.
 */
int storage_txn_commit_redoable(struct storage_txn *t);
/* Discards a write transaction or ends a read one. Accepts NULL. */
void storage_txn_abort(struct storage_txn *t);

/* --- identity: which node of which cluster this data dir belongs to --- */

struct storage_identity {
	uint8_t cluster_id[STORAGE_CLUSTER_ID_BYTES];
	uint64_t node_id;
};
/* CARELOG_ENOTFOUND on a fresh data dir; CARELOG_EVERSION if written under another
 * STORAGE_FORMAT_VERSION. */
int storage_identity_get(struct storage_txn *t, struct storage_identity *out);
/* Records the identity and STORAGE_FORMAT_VERSION. Putting the same identity again is a no-op;
 * a different one is CARELOG_EEXIST (a data dir never changes owner; node ids are not reused). */
int storage_identity_put(struct storage_txn *t, const struct storage_identity *identity);

/* --- the log --- */

struct storage_entry {
	uint64_t index;
	uint64_t term;
	uint8_t type; /* consensus entry type, stored as given */
	uint32_t data_len;
	const uint8_t *data;
};

/* Appends contiguous entries (asserted). entries[0].index must be in [1, last + 1], else
 * CARELOG_EINVAL; any stored entries from entries[0].index on are removed first (an
 * uncommitted suffix being overwritten). Data is copied; count 0 is a no-op. */
int storage_log_append(struct storage_txn *t, const struct storage_entry *entries, size_t count);
/* Removes entries [from_index, last] (none if from_index > last). CARELOG_EINVAL for 0. */
int storage_log_truncate(struct storage_txn *t, uint64_t from_index);
/* CARELOG_ENOTFOUND if absent. out->data is borrowed until the txn ends. */
int storage_log_get(struct storage_txn *t, uint64_t index, struct storage_entry *out);
/* (0, 0) for an empty log. */
int storage_log_last(struct storage_txn *t, uint64_t *out_index, uint64_t *out_term);
/* Calls `visit` for each entry in [from_index, to_index] in order, stopping early (returning
 * its value) when `visit` returns non-zero. Entries beyond the last are simply absent; a hole
 * inside the stored log is CARELOG_ECORRUPT. entry->data is borrowed until the txn ends. */
int storage_log_scan(struct storage_txn *t, uint64_t from_index, uint64_t to_index,
		     int (*visit)(void *arg, const struct storage_entry *entry), void *arg);
/* Replaces the data of an existing entry (lawful erasure of a body; later). term and type
 * must equal the stored ones (CARELOG_EINVAL otherwise); CARELOG_ENOTFOUND if absent.
 * entry->data must not point into this store (copy it first): the page may move. */
int storage_log_rewrite(struct storage_txn *t, const struct storage_entry *entry);

/* --- hard state (Raft term, vote, commit) --- */

struct storage_hard_state {
	uint64_t term;
	uint64_t vote;
	uint64_t commit;
};
/* All zero on a fresh store. */
int storage_hard_state_get(struct storage_txn *t, struct storage_hard_state *out);
int storage_hard_state_put(struct storage_txn *t, const struct storage_hard_state *hs);

/* --- applied state: written in the same transaction as the indexes it covers --- */

struct storage_applied {
	uint64_t index;
	uint8_t chain_head[STORAGE_HASH_BYTES];
};
/* Index 0 and a zero chain head on a fresh store. */
int storage_applied_get(struct storage_txn *t, struct storage_applied *out);
int storage_applied_put(struct storage_txn *t, const struct storage_applied *applied);

/* --- small named values owned by the node (membership, parameters), checksummed --- */

/* Names are 1..STORAGE_META_NAME_BYTES_MAX of [A-Za-z0-9_.-], excluding the typed records
 * "hard_state", "applied" and "identity" (CARELOG_EINVAL). The value is copied. */
int storage_meta_put(struct storage_txn *t, const char *name, const uint8_t *value, size_t len);
/* CARELOG_ENOTFOUND if absent. *out_value is borrowed until the txn ends. */
int storage_meta_get(struct storage_txn *t, const char *name, const uint8_t **out_value,
		     size_t *out_len);
/* CARELOG_ENOTFOUND if absent. */
int storage_meta_delete(struct storage_txn *t, const char *name);

/* --- indexes (DESIGN.md: by entry id, by request id, by patient) --- */

/* entry id -> (log index, apply status byte owned by the node). Put overwrites. Gets return
 * CARELOG_ENOTFOUND if absent. */
int storage_index_entry_put(struct storage_txn *t, const uint8_t id[STORAGE_HASH_BYTES],
			    uint64_t index, uint8_t status);
int storage_index_entry_get(struct storage_txn *t, const uint8_t id[STORAGE_HASH_BYTES],
			    uint64_t *out_index, uint8_t *out_status);

/* request key (the node's scope + request id, 1..STORAGE_REQUEST_KEY_BYTES_MAX bytes, else
 * CARELOG_EINVAL) -> (index, id). Put overwrites. */
int storage_index_request_put(struct storage_txn *t, const uint8_t *key, size_t key_len,
			      uint64_t index, const uint8_t id[STORAGE_HASH_BYTES]);
int storage_index_request_get(struct storage_txn *t, const uint8_t *key, size_t key_len,
			      uint64_t *out_index, uint8_t out_id[STORAGE_HASH_BYTES]);

/* patient key (a hash of the patient id) -> log indexes, ascending. Adding a present pair is a
 * no-op; index 0 is CARELOG_EINVAL. */
int storage_index_patient_add(struct storage_txn *t, const uint8_t patient_key[STORAGE_HASH_BYTES],
			      uint64_t index);
/* Up to `capacity` indexes >= from_index, ascending; *out_more says whether more follow.
 * One cursor range (no full scan). On failure out_indexes may have been written. */
int storage_index_patient_scan(struct storage_txn *t,
			       const uint8_t patient_key[STORAGE_HASH_BYTES], uint64_t from_index,
			       uint64_t *out_indexes, size_t capacity, size_t *out_count,
			       bool *out_more);

/* --- policy state (DESIGN.md "Access"): derived from applied policy entries and audit batches,
 * written by apply in the same transaction as the applied index. Keys are 1..STORAGE_POLICY_KEY
 * _BYTES_MAX bytes chosen by node/access (first byte a table tag); values are opaque bytes
 * stored with a CRC32C like every other value, verified on every get and scan (a mismatch is
 * CARELOG_ECORRUPT and logged with the key's tag, never returned). --- */

enum { STORAGE_POLICY_KEY_BYTES_MAX = 400, STORAGE_POLICY_VALUE_BYTES_MAX = 1 << 20 };

/* Put overwrites. CARELOG_EINVAL for an empty or oversize key or value over the maximum. */
int storage_policy_put(struct storage_txn *t, const uint8_t *key, size_t key_len,
		       const uint8_t *value, size_t value_len);
/* CARELOG_ENOTFOUND if absent. *out_value is borrowed until the txn ends. */
int storage_policy_get(struct storage_txn *t, const uint8_t *key, size_t key_len,
		       const uint8_t **out_value, size_t *out_len);
/* CARELOG_ENOTFOUND if absent. */
int storage_policy_delete(struct storage_txn *t, const uint8_t *key, size_t key_len);
/* Visits every pair whose key starts with `prefix` (1..STORAGE_POLICY_KEY_BYTES_MAX bytes), in
 * ascending key order (descending when `reverse`), at most `limit` pairs (0 = no limit). visit
 * returning non-zero stops the scan and that value is returned. Key and value are borrowed for
 * the call only. */
int storage_policy_scan(struct storage_txn *t, const uint8_t *prefix, size_t prefix_len,
			bool reverse, size_t limit,
			int (*visit)(void *arg, const uint8_t *key, size_t key_len,
				     const uint8_t *value, size_t value_len),
			void *arg);

/* --- compaction (lawful erasure: the bytes must leave the data file) --- */

/* Offline: with no process holding the environment (CARELOG_EBUSY if one does, via LMDB's
 * lock), copies <dir>/data.mdb compacted (only pages in use; freed pages, which may still hold
 * erased bodies, are not copied) to <dir>/data.mdb.compact, syncs it, renames it over data.mdb
 * and syncs the directory. A crash at any point leaves either the old or the new file, both
 * complete. *out_before_bytes / *out_after_bytes: file sizes (either may be NULL). */
int storage_compact_dir(const char *dir, uint64_t *out_before_bytes, uint64_t *out_after_bytes);

/* --- verification --- */

/* Called for each value that fails its checksum or shape: db is "log", "meta",
 * "entry_index", "request_index" or "patient_index"; key is a printable rendering: decimal
 * index (log, and patient_index rows, whose patient key is not shown), hex (entry_index,
 * request_index), the name (meta). A range of missing log entries is reported as db "log",
 * key "a-b" (or "a"); a B-tree LMDB cannot walk as key "btree". Strings are borrowed for the
 * call. See docs/on-disk-format.md. */
typedef void (*storage_corrupt_fn)(void *arg, const char *db, const char *key);

/* Walks every value of every database in one read transaction, checking checksums and key
 * shapes. *out_corrupt_count counts failures (each also reported through `report`, which may
 * be NULL, and logged). Returns OK when the walk ran, whatever it found. */
int storage_verify(struct storage *s, storage_corrupt_fn report, void *arg,
		   uint64_t *out_checked_count, uint64_t *out_corrupt_count);

/* Environment facts for status and benchmarks. */
struct storage_stats {
	uint64_t map_size_bytes;
	uint64_t used_bytes; /* pages in use (up to the highest), times the page size */
	uint64_t log_entries;
};
int storage_stats_get(struct storage *s, struct storage_stats *out);

#endif
