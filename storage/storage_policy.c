/* The policy database: node/access's derived policy state under tagged opaque keys. */
#include "storage/storage_internal.h"

#include "carelog/errors.h"
#include "common/assert.h"
#include "common/log.h"

#include <string.h>

/*
 * Keys are node/access's (their first byte a table tag) and carry patient and actor ids, so
 * nothing here logs key bytes: refusals give lengths, damage gives the tag (storage_key_text).
 */

static bool storage_policy_key_valid(const uint8_t *key, size_t key_len)
{
	return key != NULL && key_len >= 1 && key_len <= STORAGE_POLICY_KEY_BYTES_MAX;
}

static int storage_policy_key_refused(const char *op, size_t key_len)
{
	cl_log_error("storage.policy_refused", "op=%s key_bytes=%zu error=\"keys are 1..%d bytes\"",
		     op, key_len, (int)STORAGE_POLICY_KEY_BYTES_MAX);
	return CARELOG_EINVAL;
}

int storage_policy_put(struct storage_txn *t, const uint8_t *key, size_t key_len,
		       const uint8_t *value, size_t value_len)
{
	CL_ASSERT(t != NULL && t->write);
	CL_ASSERT(value != NULL || value_len == 0);
	if (!storage_policy_key_valid(key, key_len)) {
		return storage_policy_key_refused("put", key_len);
	}
	if (value_len > (size_t)STORAGE_POLICY_VALUE_BYTES_MAX) {
		cl_log_error("storage.policy_refused",
			     "op=put value_bytes=%zu error=\"values are at most %d bytes\"", value_len,
			     (int)STORAGE_POLICY_VALUE_BYTES_MAX);
		return CARELOG_EINVAL;
	}
	struct storage_part part = {.bytes = value, .len = value_len};
	return storage_record_put(t, NULL, STORAGE_DB_POLICY, key, key_len, &part, 1, 0);
}

int storage_policy_get(struct storage_txn *t, const uint8_t *key, size_t key_len,
		       const uint8_t **out_value, size_t *out_len)
{
	CL_ASSERT(t != NULL);
	CL_ASSERT(out_value != NULL && out_len != NULL);
	if (!storage_policy_key_valid(key, key_len)) {
		return storage_policy_key_refused("get", key_len);
	}
	MDB_val v;
	int rc = storage_record_get(t, STORAGE_DB_POLICY, key, key_len, &v);
	if (rc != CARELOG_OK) {
		return rc;
	}
	*out_value = (const uint8_t *)v.mv_data + STORAGE_CRC_BYTES;
	*out_len = v.mv_size - STORAGE_CRC_BYTES;
	return CARELOG_OK;
}

int storage_policy_delete(struct storage_txn *t, const uint8_t *key, size_t key_len)
{
	CL_ASSERT(t != NULL && t->write);
	if (!storage_policy_key_valid(key, key_len)) {
		return storage_policy_key_refused("delete", key_len);
	}
	MDB_val k = {.mv_size = key_len, .mv_data = (void *)(uintptr_t)key};
	return storage_error(t->storage,
			     mdb_del(t->txn, t->storage->dbi[STORAGE_DB_POLICY], &k, NULL),
			     "policy_delete");
}

static bool storage_policy_has_prefix(const MDB_val *k, const uint8_t *prefix, size_t prefix_len)
{
	return k->mv_size >= prefix_len && memcmp(k->mv_data, prefix, prefix_len) == 0;
}

/*
 * Places the cursor on the greatest key below every key that starts with `prefix` extended
 * (the prefix's successor: trailing 0xff bytes dropped, the last byte left incremented), which
 * is the last key with the prefix if there is one. A prefix of 0xff bytes only has no
 * successor: the last key of the database.
 */
static int storage_policy_seek_last(MDB_cursor *cursor, const uint8_t *prefix, size_t prefix_len,
				    MDB_val *k, MDB_val *v)
{
	uint8_t successor[STORAGE_POLICY_KEY_BYTES_MAX];
	CL_ASSERT(prefix_len <= sizeof(successor));
	memcpy(successor, prefix, prefix_len);
	size_t len = prefix_len;
	while (len > 0 && successor[len - 1] == 0xff) {
		len--;
	}
	if (len == 0) {
		return mdb_cursor_get(cursor, k, v, MDB_LAST);
	}
	successor[len - 1]++;
	k->mv_size = len;
	k->mv_data = successor;
	int rc = mdb_cursor_get(cursor, k, v, MDB_SET_RANGE);
	if (rc == MDB_NOTFOUND) {
		return mdb_cursor_get(cursor, k, v, MDB_LAST); /* nothing above: the end */
	}
	if (rc != 0) {
		return rc;
	}
	return mdb_cursor_get(cursor, k, v, MDB_PREV);
}

static int storage_policy_scan_with(struct storage_txn *t, MDB_cursor *cursor,
				    const uint8_t *prefix, size_t prefix_len, bool reverse,
				    size_t limit,
				    int (*visit)(void *arg, const uint8_t *key, size_t key_len,
						 const uint8_t *value, size_t value_len),
				    void *arg)
{
	MDB_val k = {.mv_size = prefix_len, .mv_data = (void *)(uintptr_t)prefix};
	MDB_val v;
	int rc = reverse ? storage_policy_seek_last(cursor, prefix, prefix_len, &k, &v)
			 : mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE);
	size_t visited = 0;
	/* Bounded by `limit` (when set) and by the records stored under the prefix. */
	while (rc == 0 && storage_policy_has_prefix(&k, prefix, prefix_len)) {
		if (limit != 0 && visited == limit) {
			return CARELOG_OK;
		}
		const char *problem = storage_record_problem(STORAGE_DB_POLICY, &k, &v);
		if (problem != NULL) {
			return storage_corrupt(STORAGE_DB_POLICY, &k, problem);
		}
		int stop = visit(arg, k.mv_data, k.mv_size,
				 (const uint8_t *)v.mv_data + STORAGE_CRC_BYTES,
				 v.mv_size - STORAGE_CRC_BYTES);
		if (stop != 0) {
			return stop;
		}
		visited++;
		rc = mdb_cursor_get(cursor, &k, &v, reverse ? MDB_PREV : MDB_NEXT);
	}
	return rc == 0 || rc == MDB_NOTFOUND ? CARELOG_OK
					     : storage_error(t->storage, rc, "policy_scan");
}

int storage_policy_scan(struct storage_txn *t, const uint8_t *prefix, size_t prefix_len,
			bool reverse, size_t limit,
			int (*visit)(void *arg, const uint8_t *key, size_t key_len,
				     const uint8_t *value, size_t value_len),
			void *arg)
{
	CL_ASSERT(t != NULL);
	CL_ASSERT(visit != NULL);
	if (!storage_policy_key_valid(prefix, prefix_len)) {
		return storage_policy_key_refused("scan", prefix_len);
	}
	MDB_cursor *cursor;
	int rc = storage_cursor_open(t, STORAGE_DB_POLICY, &cursor);
	if (rc != CARELOG_OK) {
		return rc;
	}
	rc = storage_policy_scan_with(t, cursor, prefix, prefix_len, reverse, limit, visit, arg);
	mdb_cursor_close(cursor);
	return rc;
}
