/* The index databases: entry id, request key and patient key to log positions. */
#include "storage/storage_internal.h"

#include "carelog/errors.h"
#include "common/assert.h"
#include "common/bytes.h"

#include <string.h>

int storage_index_entry_put(struct storage_txn *t, const uint8_t id[STORAGE_HASH_BYTES],
			    uint64_t index, uint8_t status)
{
	CL_ASSERT(t != NULL && t->write);
	CL_ASSERT(id != NULL);
	uint8_t payload[STORAGE_ENTRY_INDEX_VALUE_BYTES - STORAGE_CRC_BYTES];
	cl_put_u64be(payload, index);
	payload[8] = status;
	struct storage_part part = {.bytes = payload, .len = sizeof(payload)};
	return storage_record_put(t, NULL, STORAGE_DB_ENTRY_INDEX, id, STORAGE_HASH_BYTES, &part,
				  1, 0);
}

int storage_index_entry_get(struct storage_txn *t, const uint8_t id[STORAGE_HASH_BYTES],
			    uint64_t *out_index, uint8_t *out_status)
{
	CL_ASSERT(id != NULL);
	CL_ASSERT(out_index != NULL && out_status != NULL);
	MDB_val v;
	int rc = storage_record_get(t, STORAGE_DB_ENTRY_INDEX, id, STORAGE_HASH_BYTES, &v);
	if (rc != CARELOG_OK) {
		return rc;
	}
	const uint8_t *p = (const uint8_t *)v.mv_data + STORAGE_CRC_BYTES;
	*out_index = cl_get_u64be(p);
	*out_status = p[8];
	return CARELOG_OK;
}

static bool storage_request_key_valid(const uint8_t *key, size_t key_len)
{
	return key != NULL && key_len >= 1 && key_len <= STORAGE_REQUEST_KEY_BYTES_MAX;
}

int storage_index_request_put(struct storage_txn *t, const uint8_t *key, size_t key_len,
			      uint64_t index, const uint8_t id[STORAGE_HASH_BYTES])
{
	CL_ASSERT(t != NULL && t->write);
	CL_ASSERT(id != NULL);
	if (!storage_request_key_valid(key, key_len)) {
		return CARELOG_EINVAL;
	}
	uint8_t payload[STORAGE_REQUEST_INDEX_VALUE_BYTES - STORAGE_CRC_BYTES];
	cl_put_u64be(payload, index);
	memcpy(payload + 8, id, STORAGE_HASH_BYTES);
	struct storage_part part = {.bytes = payload, .len = sizeof(payload)};
	return storage_record_put(t, NULL, STORAGE_DB_REQUEST_INDEX, key, key_len, &part, 1, 0);
}

int storage_index_request_get(struct storage_txn *t, const uint8_t *key, size_t key_len,
			      uint64_t *out_index, uint8_t out_id[STORAGE_HASH_BYTES])
{
	CL_ASSERT(out_index != NULL && out_id != NULL);
	if (!storage_request_key_valid(key, key_len)) {
		return CARELOG_EINVAL;
	}
	MDB_val v;
	int rc = storage_record_get(t, STORAGE_DB_REQUEST_INDEX, key, key_len, &v);
	if (rc != CARELOG_OK) {
		return rc;
	}
	const uint8_t *p = (const uint8_t *)v.mv_data + STORAGE_CRC_BYTES;
	*out_index = cl_get_u64be(p);
	memcpy(out_id, p + 8, STORAGE_HASH_BYTES);
	return CARELOG_OK;
}

/* patient key || u64be index: one patient's rows are adjacent and in index order, so a
 * timeline is one B-tree descent and a walk along the leaves. */
static void storage_patient_row_key(const uint8_t patient_key[STORAGE_HASH_BYTES], uint64_t index,
				    uint8_t out[STORAGE_PATIENT_INDEX_KEY_BYTES])
{
	memcpy(out, patient_key, STORAGE_HASH_BYTES);
	cl_put_u64be(out + STORAGE_HASH_BYTES, index);
}

int storage_index_patient_add(struct storage_txn *t, const uint8_t patient_key[STORAGE_HASH_BYTES],
			      uint64_t index)
{
	CL_ASSERT(t != NULL && t->write);
	CL_ASSERT(patient_key != NULL);
	if (index == 0) {
		return CARELOG_EINVAL;
	}
	uint8_t key[STORAGE_PATIENT_INDEX_KEY_BYTES];
	storage_patient_row_key(patient_key, index, key);
	/* The value is the checksum alone: it covers the key, which carries the data. */
	return storage_record_put(t, NULL, STORAGE_DB_PATIENT_INDEX, key, sizeof(key), NULL, 0, 0);
}

static bool storage_patient_row_matches(const MDB_val *k,
					const uint8_t patient_key[STORAGE_HASH_BYTES])
{
	return k->mv_size >= STORAGE_HASH_BYTES &&
	       memcmp(k->mv_data, patient_key, STORAGE_HASH_BYTES) == 0;
}

static int storage_patient_scan_with(struct storage_txn *t, MDB_cursor *cursor,
				     const uint8_t patient_key[STORAGE_HASH_BYTES],
				     uint64_t from_index, uint64_t *out_indexes, size_t capacity,
				     size_t *out_count, bool *out_more)
{
	uint8_t start[STORAGE_PATIENT_INDEX_KEY_BYTES];
	storage_patient_row_key(patient_key, from_index, start);
	MDB_val k = {.mv_size = sizeof(start), .mv_data = start};
	MDB_val v;
	int rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE);
	size_t count = 0;
	bool more = false;
	/* Bounded by `capacity` + 1 rows. */
	while (rc == 0 && storage_patient_row_matches(&k, patient_key)) {
		if (count == capacity) {
			more = true; /* the key alone says so; the row is checked when read */
			break;
		}
		const char *problem = storage_record_problem(STORAGE_DB_PATIENT_INDEX, &k, &v);
		if (problem != NULL) {
			return storage_corrupt(STORAGE_DB_PATIENT_INDEX, &k, problem);
		}
		out_indexes[count++] = cl_get_u64be((const uint8_t *)k.mv_data + STORAGE_HASH_BYTES);
		rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT);
	}
	if (rc != 0 && rc != MDB_NOTFOUND) {
		return storage_error(t->storage, rc, "patient_scan");
	}
	*out_count = count;
	*out_more = more;
	return CARELOG_OK;
}

int storage_index_patient_scan(struct storage_txn *t,
			       const uint8_t patient_key[STORAGE_HASH_BYTES], uint64_t from_index,
			       uint64_t *out_indexes, size_t capacity, size_t *out_count,
			       bool *out_more)
{
	CL_ASSERT(patient_key != NULL);
	CL_ASSERT(out_indexes != NULL || capacity == 0);
	CL_ASSERT(out_count != NULL && out_more != NULL);
	MDB_cursor *cursor;
	int rc = storage_cursor_open(t, STORAGE_DB_PATIENT_INDEX, &cursor);
	if (rc != CARELOG_OK) {
		return rc;
	}
	rc = storage_patient_scan_with(t, cursor, patient_key, from_index, out_indexes, capacity,
				       out_count, out_more);
	mdb_cursor_close(cursor);
	return rc;
}
