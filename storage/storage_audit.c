/* The audit queue: its own LMDB environment, one synced transaction per append or shipment. */
#include "storage/storage_audit.h"

#include "storage/storage_internal.h"

#include "carelog/errors.h"
#include "common/assert.h"
#include "common/bytes.h"
#include "common/log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
	STORAGE_AUDIT_DBS_MAX = 4, /* "rows", "meta" and room for one more */
	/* Readers: the shipper, the access-log queries of the serving threads, stats. */
	STORAGE_AUDIT_READERS_MAX = 126,
	STORAGE_AUDIT_SEQ_BYTES = 8,
	/* meta value: crc, u64 */
	STORAGE_AUDIT_META_VALUE_BYTES = STORAGE_CRC_BYTES + 8,
};

#define STORAGE_AUDIT_MAP_SIZE_BYTES_DEFAULT (1ULL << 30)

/* Meta names (docs/on-disk-format.md "The audit queue"). */
#define STORAGE_AUDIT_NEXT_SEQ    "next_seq"
#define STORAGE_AUDIT_SHIPPED_SEQ "shipped_seq"

struct storage_audit {
	MDB_env *env;
	MDB_dbi rows;
	MDB_dbi meta;
	uint64_t map_size_bytes;
	int lock_fd;                /* flock on <dir>/storage.lock, as for the main store */
	atomic_uint_fast64_t syncs; /* read by stats from any thread */
};

/* The queue's persistent counters, read in one transaction. */
struct storage_audit_seqs {
	uint64_t next;    /* >= 1 */
	uint64_t shipped; /* < next */
};

static int storage_audit_corrupt(const char *db, const char *key, const char *reason)
{
	cl_log_error("storage.corrupt", "db=%s key=%s reason=%s", db, key, reason);
	return CARELOG_ECORRUPT;
}

static int storage_audit_row_corrupt(const MDB_val *k, const char *reason)
{
	char text[24];
	if (k->mv_size == STORAGE_AUDIT_SEQ_BYTES) {
		snprintf(text, sizeof(text), "%llu", (unsigned long long)cl_get_u64be(k->mv_data));
	} else {
		snprintf(text, sizeof(text), "malformed-len-%zu", k->mv_size);
	}
	return storage_audit_corrupt("audit_rows", text, reason);
}

/* Why a row record is malformed, or NULL when its key, length and checksum hold. */
static const char *storage_audit_row_problem(const MDB_val *k, const MDB_val *v)
{
	if (k->mv_size != STORAGE_AUDIT_SEQ_BYTES || cl_get_u64be(k->mv_data) == 0) {
		return "key_shape";
	}
	if (v->mv_size <= STORAGE_CRC_BYTES ||
	    v->mv_size - STORAGE_CRC_BYTES > STORAGE_AUDIT_ROW_BYTES_MAX) {
		return "value_length";
	}
	return storage_value_checksum_ok(k, v) ? NULL : "checksum";
}

/* Reads a meta counter; absent reads as `absent_value` (a fresh queue). */
static int storage_audit_meta_get(struct storage_audit *a, MDB_txn *txn, const char *name,
				  uint64_t absent_value, uint64_t *out)
{
	MDB_val k = {.mv_size = strlen(name), .mv_data = (void *)(uintptr_t)name};
	MDB_val v;
	int rc = mdb_get(txn, a->meta, &k, &v);
	if (rc == MDB_NOTFOUND) {
		*out = absent_value;
		return CARELOG_OK;
	}
	if (rc != 0) {
		return storage_error_sized(a->map_size_bytes, rc, "audit_meta_get");
	}
	if (v.mv_size != STORAGE_AUDIT_META_VALUE_BYTES) {
		return storage_audit_corrupt("audit_meta", name, "value_length");
	}
	if (!storage_value_checksum_ok(&k, &v)) {
		return storage_audit_corrupt("audit_meta", name, "checksum");
	}
	*out = cl_get_u64be((const uint8_t *)v.mv_data + STORAGE_CRC_BYTES);
	return CARELOG_OK;
}

static int storage_audit_meta_put(struct storage_audit *a, MDB_txn *txn, const char *name,
				  uint64_t value)
{
	uint8_t payload[8];
	cl_put_u64be(payload, value);
	struct storage_part part = {.bytes = payload, .len = sizeof(payload)};
	MDB_val k = {.mv_size = strlen(name), .mv_data = (void *)(uintptr_t)name};
	MDB_val v = {.mv_size = STORAGE_AUDIT_META_VALUE_BYTES, .mv_data = NULL};
	int rc = mdb_put(txn, a->meta, &k, &v, MDB_RESERVE);
	if (rc != 0) {
		return storage_error_sized(a->map_size_bytes, rc, "audit_meta_put");
	}
	storage_value_fill(&k, &v, &part, 1);
	return CARELOG_OK;
}

static int storage_audit_seqs_get(struct storage_audit *a, MDB_txn *txn,
				  struct storage_audit_seqs *out)
{
	int rc = storage_audit_meta_get(a, txn, STORAGE_AUDIT_NEXT_SEQ, 1, &out->next);
	if (rc == CARELOG_OK) {
		rc = storage_audit_meta_get(a, txn, STORAGE_AUDIT_SHIPPED_SEQ, 0, &out->shipped);
	}
	if (rc == CARELOG_OK && (out->next == 0 || out->shipped >= out->next)) {
		return storage_audit_corrupt("audit_meta", STORAGE_AUDIT_SHIPPED_SEQ,
					     "shipped_not_below_next");
	}
	return rc;
}

/* The sequence of the first or last queued row (MDB_FIRST / MDB_LAST), 0 when empty. */
static int storage_audit_edge_seq(struct storage_audit *a, MDB_txn *txn, MDB_cursor_op op,
				  uint64_t *out)
{
	MDB_cursor *cursor;
	int rc = mdb_cursor_open(txn, a->rows, &cursor);
	if (rc != 0) {
		return storage_error_sized(a->map_size_bytes, rc, "audit_cursor_open");
	}
	MDB_val k, v;
	rc = mdb_cursor_get(cursor, &k, &v, op);
	mdb_cursor_close(cursor);
	if (rc == MDB_NOTFOUND) {
		*out = 0;
		return CARELOG_OK;
	}
	if (rc != 0) {
		return storage_error_sized(a->map_size_bytes, rc, "audit_edge");
	}
	if (k.mv_size != STORAGE_AUDIT_SEQ_BYTES) {
		return storage_audit_row_corrupt(&k, "key_shape");
	}
	*out = cl_get_u64be(k.mv_data);
	return CARELOG_OK;
}

/*
 * Creates the databases and checks the counters against the rows: every queued row lies in
 * (shipped_seq, next_seq). A queue that breaks this would reuse or skip sequences, so it is
 * refused with CARELOG_ECORRUPT rather than written to.
 */
static int storage_audit_dbs_open(struct storage_audit *a)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(a->env, NULL, 0, &txn);
	if (rc != 0) {
		return storage_error_sized(a->map_size_bytes, rc, "audit_dbs_open");
	}
	rc = mdb_dbi_open(txn, "rows", MDB_CREATE, &a->rows);
	if (rc == 0) {
		rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &a->meta);
	}
	if (rc != 0) {
		mdb_txn_abort(txn);
		return storage_error_sized(a->map_size_bytes, rc, "audit_dbi_open");
	}
	struct storage_audit_seqs seqs;
	uint64_t first = 0, last = 0;
	int check = storage_audit_seqs_get(a, txn, &seqs);
	if (check == CARELOG_OK) {
		check = storage_audit_edge_seq(a, txn, MDB_FIRST, &first);
	}
	if (check == CARELOG_OK) {
		check = storage_audit_edge_seq(a, txn, MDB_LAST, &last);
	}
	if (check == CARELOG_OK && last != 0 && (first <= seqs.shipped || last >= seqs.next)) {
		cl_log_error("storage.audit_inconsistent",
			     "first_seq=%llu last_seq=%llu shipped_seq=%llu next_seq=%llu",
			     (unsigned long long)first, (unsigned long long)last,
			     (unsigned long long)seqs.shipped, (unsigned long long)seqs.next);
		check = CARELOG_ECORRUPT;
	}
	if (check != CARELOG_OK) {
		mdb_txn_abort(txn);
		return check;
	}
	rc = mdb_txn_commit(txn); /* the dbi handles live on only if this commits */
	return rc == 0 ? CARELOG_OK : storage_commit_error(a->map_size_bytes, rc);
}

int storage_audit_open(const struct storage_audit_options *options, struct storage_audit **out)
{
	CL_ASSERT(options != NULL);
	CL_ASSERT(out != NULL);
	if (options->dir == NULL || options->dir[0] == '\0') {
		cl_log_error("storage.audit_open_failed", "error=\"no audit dir given\"");
		return CARELOG_EINVAL;
	}
	uint64_t map_size_bytes = options->map_size_bytes != 0
					  ? options->map_size_bytes
					  : STORAGE_AUDIT_MAP_SIZE_BYTES_DEFAULT;
	if (map_size_bytes > (uint64_t)SIZE_MAX / 2) {
		cl_log_error("storage.audit_open_failed", "error=\"map_size_bytes too large\"");
		return CARELOG_EINVAL;
	}
	int rc = storage_dir_prepare(options->dir);
	if (rc != CARELOG_OK) {
		return rc;
	}
	struct storage_audit *a = calloc(1, sizeof(*a));
	if (a == NULL) {
		return CARELOG_ENOMEM;
	}
	a->map_size_bytes = storage_round_up_to_page(map_size_bytes);
	a->lock_fd = -1;
	atomic_init(&a->syncs, 0);
	/* LMDB forbids opening one environment twice in a process; the flock makes a second
	 * opener (here or elsewhere) fail cleanly with CARELOG_EBUSY instead. */
	rc = storage_lock_dir(options->dir, &a->lock_fd);
	if (rc == CARELOG_OK) {
		rc = storage_env_open_at(options->dir, a->map_size_bytes, STORAGE_AUDIT_DBS_MAX,
					 STORAGE_AUDIT_READERS_MAX, &a->env);
	}
	if (rc == CARELOG_OK) {
		rc = storage_audit_dbs_open(a);
	}
	if (rc != CARELOG_OK) {
		storage_audit_close(a);
		return rc;
	}
	MDB_envinfo info;
	if (mdb_env_info(a->env, &info) == 0) {
		a->map_size_bytes = (uint64_t)info.me_mapsize;
	}
	*out = a;
	return CARELOG_OK;
}

void storage_audit_close(struct storage_audit *a)
{
	if (a == NULL) {
		return;
	}
	if (a->env != NULL) {
		mdb_env_close(a->env);
	}
	if (a->lock_fd >= 0) {
		close(a->lock_fd);
	}
	free(a);
}

/* Commits a write txn with a sync and counts it. */
static int storage_audit_commit(struct storage_audit *a, MDB_txn *txn)
{
	int rc = mdb_txn_commit(txn);
	if (rc != 0) {
		return storage_commit_error(a->map_size_bytes, rc);
	}
	atomic_fetch_add(&a->syncs, 1);
	return CARELOG_OK;
}

static int storage_audit_append_in(struct storage_audit *a, MDB_txn *txn,
				   const uint8_t *const *rows, const size_t *lens, size_t count,
				   uint64_t *out_first_seq)
{
	struct storage_audit_seqs seqs;
	int rc = storage_audit_seqs_get(a, txn, &seqs);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (count > UINT64_MAX - seqs.next) {
		return storage_audit_corrupt("audit_meta", STORAGE_AUDIT_NEXT_SEQ, "exhausted");
	}
	MDB_cursor *cursor;
	rc = mdb_cursor_open(txn, a->rows, &cursor);
	if (rc != 0) {
		return storage_error_sized(a->map_size_bytes, rc, "audit_cursor_open");
	}
	/* Bounded by `count`; sequences only grow, so MDB_APPEND fills pages completely. */
	for (size_t i = 0; rc == 0 && i < count; i++) {
		uint8_t key[STORAGE_AUDIT_SEQ_BYTES];
		cl_put_u64be(key, seqs.next + i);
		MDB_val k = {.mv_size = sizeof(key), .mv_data = key};
		MDB_val v = {.mv_size = STORAGE_CRC_BYTES + lens[i], .mv_data = NULL};
		rc = mdb_cursor_put(cursor, &k, &v, MDB_APPEND | MDB_RESERVE);
		if (rc == 0) {
			struct storage_part part = {.bytes = rows[i], .len = lens[i]};
			storage_value_fill(&k, &v, &part, 1);
		}
	}
	mdb_cursor_close(cursor);
	if (rc != 0) {
		return storage_error_sized(a->map_size_bytes, rc, "audit_append");
	}
	rc = storage_audit_meta_put(a, txn, STORAGE_AUDIT_NEXT_SEQ, seqs.next + count);
	if (rc == CARELOG_OK) {
		*out_first_seq = seqs.next;
	}
	return rc;
}

int storage_audit_append(struct storage_audit *a, const uint8_t *const *rows, const size_t *lens,
			 size_t count, uint64_t *out_first_seq)
{
	CL_ASSERT(a != NULL);
	CL_ASSERT(out_first_seq != NULL);
	if (count == 0 || rows == NULL || lens == NULL) {
		cl_log_error("storage.audit_append_refused", "rows=%zu error=\"no rows\"", count);
		return CARELOG_EINVAL;
	}
	for (size_t i = 0; i < count; i++) {
		if (rows[i] == NULL || lens[i] == 0 || lens[i] > STORAGE_AUDIT_ROW_BYTES_MAX) {
			cl_log_error("storage.audit_append_refused",
				     "row=%zu row_bytes=%zu error=\"rows are 1..%d bytes\"", i,
				     lens[i], (int)STORAGE_AUDIT_ROW_BYTES_MAX);
			return CARELOG_EINVAL;
		}
	}
	MDB_txn *txn;
	int rc = mdb_txn_begin(a->env, NULL, 0, &txn);
	if (rc != 0) {
		return storage_error_sized(a->map_size_bytes, rc, "audit_txn_begin");
	}
	uint64_t first = 0;
	rc = storage_audit_append_in(a, txn, rows, lens, count, &first);
	if (rc != CARELOG_OK) {
		mdb_txn_abort(txn);
		return rc;
	}
	rc = storage_audit_commit(a, txn);
	if (rc == CARELOG_OK) {
		*out_first_seq = first;
	}
	return rc;
}

static int storage_audit_scan_in(struct storage_audit *a, MDB_cursor *cursor, uint64_t from_seq,
				 size_t rows_max,
				 int (*visit)(void *arg, uint64_t seq, const uint8_t *row,
					      size_t len),
				 void *arg)
{
	uint8_t start[STORAGE_AUDIT_SEQ_BYTES];
	cl_put_u64be(start, from_seq);
	MDB_val k = {.mv_size = sizeof(start), .mv_data = start};
	MDB_val v;
	int rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE);
	size_t visited = 0;
	/* Bounded by rows_max (when set) and by the rows queued. */
	while (rc == 0 && (rows_max == 0 || visited < rows_max)) {
		const char *problem = storage_audit_row_problem(&k, &v);
		if (problem != NULL) {
			return storage_audit_row_corrupt(&k, problem);
		}
		int stop = visit(arg, cl_get_u64be(k.mv_data),
				 (const uint8_t *)v.mv_data + STORAGE_CRC_BYTES,
				 v.mv_size - STORAGE_CRC_BYTES);
		if (stop != 0) {
			return stop;
		}
		visited++;
		rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT);
	}
	return rc == 0 || rc == MDB_NOTFOUND ? CARELOG_OK
					     : storage_error_sized(a->map_size_bytes, rc,
								   "audit_scan");
}

int storage_audit_scan(struct storage_audit *a, uint64_t from_seq, size_t rows_max,
		       int (*visit)(void *arg, uint64_t seq, const uint8_t *row, size_t len),
		       void *arg)
{
	CL_ASSERT(a != NULL);
	CL_ASSERT(visit != NULL);
	MDB_txn *txn;
	int rc = mdb_txn_begin(a->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0) {
		return storage_error_sized(a->map_size_bytes, rc, "audit_txn_begin_read");
	}
	MDB_cursor *cursor;
	rc = mdb_cursor_open(txn, a->rows, &cursor);
	if (rc != 0) {
		mdb_txn_abort(txn);
		return storage_error_sized(a->map_size_bytes, rc, "audit_cursor_open");
	}
	rc = storage_audit_scan_in(a, cursor, from_seq, rows_max, visit, arg);
	mdb_cursor_close(cursor);
	mdb_txn_abort(txn);
	return rc;
}

/* Deletes queued rows up to `upto_seq`, from the front. Bounded by the rows queued. */
static int storage_audit_drop_upto(struct storage_audit *a, MDB_txn *txn, uint64_t upto_seq)
{
	MDB_cursor *cursor;
	int rc = mdb_cursor_open(txn, a->rows, &cursor);
	if (rc != 0) {
		return storage_error_sized(a->map_size_bytes, rc, "audit_cursor_open");
	}
	int result = CARELOG_OK;
	for (;;) {
		MDB_val k, v;
		rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST);
		if (rc != 0) {
			break;
		}
		if (k.mv_size != STORAGE_AUDIT_SEQ_BYTES) {
			result = storage_audit_row_corrupt(&k, "key_shape");
			break;
		}
		if (cl_get_u64be(k.mv_data) > upto_seq) {
			break;
		}
		rc = mdb_cursor_del(cursor, 0);
		if (rc != 0) {
			break;
		}
	}
	mdb_cursor_close(cursor);
	if (result == CARELOG_OK && rc != 0 && rc != MDB_NOTFOUND) {
		result = storage_error_sized(a->map_size_bytes, rc, "audit_mark_shipped");
	}
	return result;
}

int storage_audit_mark_shipped(struct storage_audit *a, uint64_t upto_seq)
{
	CL_ASSERT(a != NULL);
	MDB_txn *txn;
	int rc = mdb_txn_begin(a->env, NULL, 0, &txn);
	if (rc != 0) {
		return storage_error_sized(a->map_size_bytes, rc, "audit_txn_begin");
	}
	struct storage_audit_seqs seqs;
	rc = storage_audit_seqs_get(a, txn, &seqs);
	if (rc == CARELOG_OK && upto_seq <= seqs.shipped) {
		mdb_txn_abort(txn); /* already recorded: nothing to write, nothing to sync */
		return CARELOG_OK;
	}
	if (rc == CARELOG_OK && upto_seq >= seqs.next) {
		cl_log_error("storage.audit_ship_refused",
			     "upto_seq=%llu next_seq=%llu error=\"rows not appended yet\"",
			     (unsigned long long)upto_seq, (unsigned long long)seqs.next);
		rc = CARELOG_EINVAL;
	}
	if (rc == CARELOG_OK) {
		rc = storage_audit_drop_upto(a, txn, upto_seq);
	}
	if (rc == CARELOG_OK) {
		rc = storage_audit_meta_put(a, txn, STORAGE_AUDIT_SHIPPED_SEQ, upto_seq);
	}
	if (rc != CARELOG_OK) {
		mdb_txn_abort(txn);
		return rc;
	}
	return storage_audit_commit(a, txn);
}

int storage_audit_skip_to(struct storage_audit *a, uint64_t next_seq)
{
	CL_ASSERT(a != NULL);
	MDB_txn *txn;
	int rc = mdb_txn_begin(a->env, NULL, 0, &txn);
	if (rc != 0) {
		return storage_error_sized(a->map_size_bytes, rc, "audit_txn_begin");
	}
	struct storage_audit_seqs seqs;
	rc = storage_audit_seqs_get(a, txn, &seqs);
	if (rc == CARELOG_OK && next_seq <= seqs.next) {
		mdb_txn_abort(txn);
		return CARELOG_OK;
	}
	if (rc == CARELOG_OK && seqs.next != seqs.shipped + 1) {
		rc = CARELOG_EINVAL; /* rows queued: their numbers stay */
	}
	if (rc == CARELOG_OK) {
		rc = storage_audit_meta_put(a, txn, STORAGE_AUDIT_NEXT_SEQ, next_seq);
	}
	if (rc == CARELOG_OK) {
		rc = storage_audit_meta_put(a, txn, STORAGE_AUDIT_SHIPPED_SEQ, next_seq - 1);
	}
	if (rc != CARELOG_OK) {
		mdb_txn_abort(txn);
		return rc;
	}
	return storage_audit_commit(a, txn);
}

int storage_audit_stats_get(struct storage_audit *a, struct storage_audit_stats *out)
{
	CL_ASSERT(a != NULL);
	CL_ASSERT(out != NULL);
	MDB_txn *txn;
	int rc = mdb_txn_begin(a->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0) {
		return storage_error_sized(a->map_size_bytes, rc, "audit_txn_begin_read");
	}
	struct storage_audit_seqs seqs;
	rc = storage_audit_seqs_get(a, txn, &seqs);
	MDB_stat rows_stat;
	if (rc == CARELOG_OK) {
		int mrc = mdb_stat(txn, a->rows, &rows_stat);
		rc = mrc == 0 ? CARELOG_OK : storage_error_sized(a->map_size_bytes, mrc, "audit_stats");
	}
	mdb_txn_abort(txn);
	if (rc != CARELOG_OK) {
		return rc;
	}
	out->next_seq = seqs.next;
	out->shipped_seq = seqs.shipped;
	out->queued_rows = (uint64_t)rows_stat.ms_entries;
	out->syncs = (uint64_t)atomic_load(&a->syncs);
	return CARELOG_OK;
}
