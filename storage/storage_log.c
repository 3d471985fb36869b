/* The log database: the Raft log, which is the journal (append, truncate, get, scan). */
#include "storage/storage_internal.h"

#include "carelog/errors.h"
#include "common/assert.h"
#include "common/bytes.h"
#include "common/log.h"

#include <string.h>

/* Fills `out` from a record that passed storage_record_problem. */
static void storage_log_decode(const MDB_val *key, const MDB_val *val, struct storage_entry *out)
{
	CL_ASSERT(key->mv_size == STORAGE_INDEX_BYTES);
	CL_ASSERT(val->mv_size >= STORAGE_LOG_HEADER_BYTES);
	CL_ASSERT(val->mv_size - STORAGE_LOG_HEADER_BYTES <= UINT32_MAX);
	const uint8_t *v = val->mv_data;
	out->index = cl_get_u64be(key->mv_data);
	out->term = cl_get_u64be(v + STORAGE_CRC_BYTES);
	out->type = v[STORAGE_CRC_BYTES + 8];
	out->data_len = (uint32_t)(val->mv_size - STORAGE_LOG_HEADER_BYTES);
	out->data = v + STORAGE_LOG_HEADER_BYTES;
}

/* Index of the last stored entry from its key alone: an append or truncation must work even
 * when the value of the last entry is damaged (it may be the one being replaced). */
static int storage_log_last_index(struct storage_txn *t, MDB_cursor *cursor, uint64_t *out)
{
	MDB_val k, v;
	int rc = mdb_cursor_get(cursor, &k, &v, MDB_LAST);
	if (rc == MDB_NOTFOUND) {
		*out = 0;
		return CARELOG_OK;
	}
	if (rc != 0) {
		return storage_error(t->storage, rc, "log_last");
	}
	if (k.mv_size != STORAGE_INDEX_BYTES) {
		return storage_corrupt(STORAGE_DB_LOG, &k, "key_shape");
	}
	*out = cl_get_u64be(k.mv_data);
	return CARELOG_OK;
}

/* Deletes every entry with index >= from_index, from the end backwards (an uncommitted
 * suffix is short; each step is one B-tree descent). Bounded by the entries stored. */
static int storage_log_truncate_with(struct storage_txn *t, MDB_cursor *cursor,
				     uint64_t from_index)
{
	for (;;) {
		uint64_t last;
		int rc = storage_log_last_index(t, cursor, &last);
		if (rc != CARELOG_OK) {
			return rc;
		}
		if (last < from_index) {
			return CARELOG_OK;
		}
		rc = mdb_cursor_del(cursor, 0);
		if (rc != 0) {
			return storage_error(t->storage, rc, "log_truncate");
		}
	}
}

static int storage_log_put(struct storage_txn *t, MDB_cursor *cursor,
			   const struct storage_entry *e, unsigned int flags)
{
	uint8_t key[STORAGE_INDEX_BYTES];
	uint8_t header[STORAGE_LOG_HEADER_BYTES - STORAGE_CRC_BYTES];
	cl_put_u64be(key, e->index);
	cl_put_u64be(header, e->term);
	header[8] = e->type;
	struct storage_part parts[2] = {
		{.bytes = header, .len = sizeof(header)},
		{.bytes = e->data, .len = e->data_len},
	};
	return storage_record_put(t, cursor, STORAGE_DB_LOG, key, sizeof(key), parts, 2, flags);
}

int storage_log_append(struct storage_txn *t, const struct storage_entry *entries, size_t count)
{
	CL_ASSERT(t != NULL && t->write);
	if (count == 0) {
		return CARELOG_OK;
	}
	CL_ASSERT(entries != NULL);
	for (size_t i = 0; i < count; i++) {
		CL_ASSERT(entries[i].data != NULL || entries[i].data_len == 0);
		if (i > 0) { /* contiguous: the caller builds batches from one log */
			CL_ASSERT(entries[i - 1].index != UINT64_MAX);
			CL_ASSERT(entries[i].index == entries[i - 1].index + 1);
		}
	}
	MDB_cursor *cursor;
	int rc = storage_cursor_open(t, STORAGE_DB_LOG, &cursor);
	if (rc != CARELOG_OK) {
		return rc;
	}
	uint64_t last;
	rc = storage_log_last_index(t, cursor, &last);
	uint64_t first = entries[0].index;
	if (rc == CARELOG_OK && (first == 0 || first > last + 1)) {
		cl_log_error("storage.append_refused", "first_index=%llu last_index=%llu "
			     "error=\"entries must start within [1, last + 1]\"",
			     (unsigned long long)first, (unsigned long long)last);
		rc = CARELOG_EINVAL;
	}
	if (rc == CARELOG_OK && first <= last) {
		rc = storage_log_truncate_with(t, cursor, first);
	}
	/* Every entry now lands after the last key: MDB_APPEND skips the descent and fills
	 * pages completely instead of splitting them in half. */
	for (size_t i = 0; rc == CARELOG_OK && i < count; i++) {
		rc = storage_log_put(t, cursor, &entries[i], MDB_APPEND);
	}
	mdb_cursor_close(cursor);
	return rc;
}

int storage_log_truncate(struct storage_txn *t, uint64_t from_index)
{
	CL_ASSERT(t != NULL && t->write);
	if (from_index == 0) {
		return CARELOG_EINVAL; /* index 0 is never stored: a caller bug, not a wish */
	}
	MDB_cursor *cursor;
	int rc = storage_cursor_open(t, STORAGE_DB_LOG, &cursor);
	if (rc != CARELOG_OK) {
		return rc;
	}
	rc = storage_log_truncate_with(t, cursor, from_index);
	mdb_cursor_close(cursor);
	return rc;
}

int storage_log_get(struct storage_txn *t, uint64_t index, struct storage_entry *out)
{
	CL_ASSERT(out != NULL);
	if (index == 0) {
		return CARELOG_ENOTFOUND;
	}
	uint8_t key[STORAGE_INDEX_BYTES];
	cl_put_u64be(key, index);
	MDB_val v;
	int rc = storage_record_get(t, STORAGE_DB_LOG, key, sizeof(key), &v);
	if (rc != CARELOG_OK) {
		return rc;
	}
	MDB_val k = {.mv_size = sizeof(key), .mv_data = key};
	storage_log_decode(&k, &v, out);
	return CARELOG_OK;
}

int storage_log_last(struct storage_txn *t, uint64_t *out_index, uint64_t *out_term)
{
	CL_ASSERT(out_index != NULL && out_term != NULL);
	MDB_cursor *cursor;
	int rc = storage_cursor_open(t, STORAGE_DB_LOG, &cursor);
	if (rc != CARELOG_OK) {
		return rc;
	}
	MDB_val k, v;
	rc = mdb_cursor_get(cursor, &k, &v, MDB_LAST);
	mdb_cursor_close(cursor); /* k and v stay valid: they point into the txn's pages */
	if (rc == MDB_NOTFOUND) {
		*out_index = 0;
		*out_term = 0;
		return CARELOG_OK;
	}
	if (rc != 0) {
		return storage_error(t->storage, rc, "log_last");
	}
	const char *problem = storage_record_problem(STORAGE_DB_LOG, &k, &v);
	if (problem != NULL) {
		return storage_corrupt(STORAGE_DB_LOG, &k, problem);
	}
	struct storage_entry e;
	storage_log_decode(&k, &v, &e);
	*out_index = e.index;
	*out_term = e.term;
	return CARELOG_OK;
}

/* Whether a stored entry exists before `index` (the scan found none at `index` itself). Uses
 * its own cursor: the scan's cursor must stay where it is. */
static int storage_log_has_before(struct storage_txn *t, uint64_t index, bool *out)
{
	MDB_cursor *cursor;
	int rc = storage_cursor_open(t, STORAGE_DB_LOG, &cursor);
	if (rc != CARELOG_OK) {
		return rc;
	}
	MDB_val k, v;
	rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST);
	mdb_cursor_close(cursor);
	if (rc != 0) {
		return storage_error(t->storage, rc, "log_scan");
	}
	if (k.mv_size != STORAGE_INDEX_BYTES) {
		return storage_corrupt(STORAGE_DB_LOG, &k, "key_shape");
	}
	*out = cl_get_u64be(k.mv_data) < index;
	return CARELOG_OK;
}

static int storage_log_scan_with(struct storage_txn *t, MDB_cursor *cursor, uint64_t from_index,
				 uint64_t to_index,
				 int (*visit)(void *arg, const struct storage_entry *entry),
				 void *arg)
{
	uint8_t start[STORAGE_INDEX_BYTES];
	cl_put_u64be(start, from_index);
	MDB_val k = {.mv_size = sizeof(start), .mv_data = start};
	MDB_val v;
	int rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE);
	uint64_t expected = from_index;
	bool first = true;
	/* Bounded by to_index - from_index + 1 entries: every step advances `expected`. */
	while (rc == 0) {
		const char *problem = storage_record_problem(STORAGE_DB_LOG, &k, &v);
		if (problem != NULL) {
			return storage_corrupt(STORAGE_DB_LOG, &k, problem);
		}
		struct storage_entry e;
		storage_log_decode(&k, &v, &e);
		if (e.index > to_index) {
			return CARELOG_OK;
		}
		if (e.index != expected) {
			/* The log is contiguous; a hole is damage, unless the scan merely started
			 * before the first entry. */
			bool hole = !first;
			if (first) {
				rc = storage_log_has_before(t, expected, &hole);
				if (rc != CARELOG_OK) {
					return rc;
				}
			}
			if (hole) {
				return storage_corrupt(STORAGE_DB_LOG, &k, "hole_before");
			}
		}
		first = false;
		int stop = visit(arg, &e);
		if (stop != 0) {
			return stop;
		}
		if (e.index == to_index) {
			return CARELOG_OK;
		}
		expected = e.index + 1;
		rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT);
	}
	return rc == MDB_NOTFOUND ? CARELOG_OK : storage_error(t->storage, rc, "log_scan");
}

int storage_log_scan(struct storage_txn *t, uint64_t from_index, uint64_t to_index,
		     int (*visit)(void *arg, const struct storage_entry *entry), void *arg)
{
	CL_ASSERT(visit != NULL);
	if (from_index == 0) {
		from_index = 1; /* index 0 is never stored */
	}
	if (from_index > to_index) {
		return CARELOG_OK;
	}
	MDB_cursor *cursor;
	int rc = storage_cursor_open(t, STORAGE_DB_LOG, &cursor);
	if (rc != CARELOG_OK) {
		return rc;
	}
	rc = storage_log_scan_with(t, cursor, from_index, to_index, visit, arg);
	mdb_cursor_close(cursor);
	return rc;
}

int storage_log_rewrite(struct storage_txn *t, const struct storage_entry *entry)
{
	CL_ASSERT(t != NULL && t->write);
	CL_ASSERT(entry != NULL);
	CL_ASSERT(entry->data != NULL || entry->data_len == 0);
	struct storage_entry old;
	int rc = storage_log_get(t, entry->index, &old);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (old.term != entry->term || old.type != entry->type) {
		/* Erasure changes a body, never which entry sits at an index. */
		cl_log_error("storage.rewrite_refused", "index=%llu error=\"term or type differs\"",
			     (unsigned long long)entry->index);
		return CARELOG_EINVAL;
	}
	/* Note: LMDB may leave the old bytes in freed pages; compaction (a compacting copy of
	 * the environment) is what makes them leave the file. */
	return storage_log_put(t, NULL, entry, 0);
}
