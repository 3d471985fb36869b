/* The audit queue: a node-local LMDB environment of its own (its own writer), group-committed. */
#ifndef CARELOG_STORAGE_AUDIT_H
#define CARELOG_STORAGE_AUDIT_H

/*
 * DESIGN.md "Access": every access is made durable in the node's audit queue before the answer
 * leaves; the queue is its own environment so its syncs never hold up the Raft writer. Rows are
 * opaque bytes to storage (node/journal/policy.h encodes them), numbered by a sequence that
 * starts at 1 and only grows (also across restarts: the next sequence is stored). Rows leave the
 * queue once shipped through the log (storage_audit_mark_shipped).
 *
 * Layout (docs/on-disk-format.md): <dir>/data.mdb with databases "rows" (u64be seq -> CRC32C ||
 * row) and "meta" ("next_seq", "shipped_seq": CRC32C || u64be). A value that fails its CRC
 * is CARELOG_ECORRUPT naming the sequence, never returned.
 *
 * Threads: storage_audit_append is called by ONE writer thread (the node's audit writer);
 * scans and stats may run concurrently from any thread (MDB_NOTLS read transactions).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
	STORAGE_AUDIT_ROW_BYTES_MAX = 4096, /* one encoded row */
};

struct storage_audit;

struct storage_audit_options {
	const char *dir;         /* created if missing (mode 0700) */
	uint64_t map_size_bytes; /* 0 = 1 GiB */
};

/* Opens or creates. Holds <dir>/storage.lock like storage_open (CARELOG_EBUSY if held). CARELOG_ECORRUPT / CARELOG_EIO with a
 * logged reason. */
int storage_audit_open(const struct storage_audit_options *options, struct storage_audit **out);
void storage_audit_close(struct storage_audit *a); /* accepts NULL */

/* Appends `count` rows (rows[i] of lens[i] bytes, 1..STORAGE_AUDIT_ROW_BYTES_MAX, else
 * CARELOG_EINVAL before writing anything; count 0 is CARELOG_EINVAL too) in ONE write transaction, synced, numbering them
 * consecutively; *out_first_seq is the first row's sequence. CARELOG_EMAPFULL when full,
 * CARELOG_EIO when the sync fails (the caller must not answer as if durable). */
int storage_audit_append(struct storage_audit *a, const uint8_t *const *rows, const size_t *lens,
			 size_t count, uint64_t *out_first_seq);

/* Calls visit(arg, seq, row, len) for queued rows with seq >= from_seq in order, at most
 * rows_max rows (0 = no limit); visit returning non-zero stops the scan and that value is returned. `row` is
 * borrowed for the call only. */
int storage_audit_scan(struct storage_audit *a, uint64_t from_seq, size_t rows_max,
		       int (*visit)(void *arg, uint64_t seq, const uint8_t *row, size_t len),
		       void *arg);

/* Deletes every row with seq <= upto_seq and records shipped_seq = upto_seq (ignored when not
 * above the recorded one; CARELOG_EINVAL for a sequence never appended). One synced transaction. */
int storage_audit_mark_shipped(struct storage_audit *a, uint64_t upto_seq);

/* On a queue holding no rows, makes the next row get `next_seq` and records every row below
 * it as shipped (a queue behind the log continues above what was shipped before). No-op when
 * next_seq is not above the current next sequence; CARELOG_EINVAL when rows are queued. One
 * synced transaction. */
int storage_audit_skip_to(struct storage_audit *a, uint64_t next_seq);

struct storage_audit_stats {
	uint64_t next_seq;    /* the sequence the next row gets (1 on a fresh queue) */
	uint64_t shipped_seq; /* every row up to this one has been shipped */
	uint64_t queued_rows; /* rows still in the queue */
	uint64_t syncs;       /* synced transactions since open */
};
int storage_audit_stats_get(struct storage_audit *a, struct storage_audit_stats *out);

#endif
