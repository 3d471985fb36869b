/* The record codec: checksums, shape checks and key rendering for every stored value. */
#include "storage/storage_internal.h"

#include "carelog/errors.h"
#include "common/assert.h"
#include "common/bytes.h"
#include "common/crypto.h"
#include "common/log.h"

#include <stdio.h>
#include <string.h>

enum {
	STORAGE_LMDB_KEY_BYTES_MAX = 511, /* mdb_env_get_maxkeysize() of a default LMDB build */
};

bool storage_meta_name_valid(const char *name, size_t len)
{
	if (len == 0 || len > STORAGE_META_NAME_BYTES_MAX) {
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			  c == '_' || c == '.' || c == '-';
		if (!ok) {
			return false;
		}
	}
	return true;
}

static bool storage_key_is(const MDB_val *key, const char *name)
{
	size_t len = strlen(name);
	return key->mv_size == len && memcmp(key->mv_data, name, len) == 0;
}

/* CRC32C over the key bytes then the value after its checksum field. */
static uint32_t storage_crc(const MDB_val *key, const uint8_t *payload, size_t payload_len)
{
	uint32_t crc = cl_crc32c(0, key->mv_data, key->mv_size);
	return cl_crc32c(crc, payload, payload_len);
}

bool storage_value_checksum_ok(const MDB_val *key, const MDB_val *val)
{
	CL_ASSERT(val->mv_size >= STORAGE_CRC_BYTES); /* callers check lengths first */
	const uint8_t *v = val->mv_data;
	return storage_crc(key, v + STORAGE_CRC_BYTES, val->mv_size - STORAGE_CRC_BYTES) ==
	       cl_get_u32be(v);
}

void storage_value_fill(const MDB_val *key, MDB_val *reserved, const struct storage_part *parts,
			size_t part_count)
{
	CL_ASSERT(reserved->mv_size >= STORAGE_CRC_BYTES);
	uint8_t *out = reserved->mv_data;
	size_t at = STORAGE_CRC_BYTES;
	for (size_t i = 0; i < part_count; i++) {
		if (parts[i].len > 0) {
			CL_ASSERT(parts[i].len <= reserved->mv_size - at);
			memcpy(out + at, parts[i].bytes, parts[i].len);
			at += parts[i].len;
		}
	}
	CL_ASSERT(at == reserved->mv_size);
	cl_put_u32be(out, storage_crc(key, out + STORAGE_CRC_BYTES, at - STORAGE_CRC_BYTES));
}

static const char *storage_meta_problem(const MDB_val *key, const MDB_val *val)
{
	const uint8_t *v = val->mv_data;
	if (storage_key_is(key, STORAGE_META_HARD_STATE)) {
		return val->mv_size == STORAGE_HARD_STATE_VALUE_BYTES ? NULL : "value_length";
	}
	if (storage_key_is(key, STORAGE_META_APPLIED)) {
		return val->mv_size == STORAGE_APPLIED_VALUE_BYTES ? NULL : "value_length";
	}
	if (storage_key_is(key, STORAGE_META_IDENTITY)) {
		if (val->mv_size < STORAGE_IDENTITY_VERSION_END) {
			return "value_length";
		}
		/* Another format version's identity has a layout this build cannot judge; opening
		 * such a store is refused with CARELOG_EVERSION instead. */
		if (cl_get_u32be(v + STORAGE_CRC_BYTES) == STORAGE_FORMAT_VERSION &&
		    val->mv_size != STORAGE_IDENTITY_VALUE_BYTES) {
			return "value_length";
		}
	}
	return NULL;
}

static const char *storage_key_problem(enum storage_db db, const MDB_val *key)
{
	const uint8_t *k = key->mv_data;
	switch (db) {
	case STORAGE_DB_META:
		return storage_meta_name_valid(key->mv_data, key->mv_size) ? NULL : "key_shape";
	case STORAGE_DB_LOG:
		if (key->mv_size != STORAGE_INDEX_BYTES || cl_get_u64be(k) == 0) {
			return "key_shape";
		}
		return NULL;
	case STORAGE_DB_ENTRY_INDEX:
		return key->mv_size == STORAGE_HASH_BYTES ? NULL : "key_shape";
	case STORAGE_DB_REQUEST_INDEX:
		return key->mv_size >= 1 && key->mv_size <= STORAGE_REQUEST_KEY_BYTES_MAX
			       ? NULL
			       : "key_shape";
	case STORAGE_DB_PATIENT_INDEX:
		if (key->mv_size != STORAGE_PATIENT_INDEX_KEY_BYTES ||
		    cl_get_u64be(k + STORAGE_HASH_BYTES) == 0) {
			return "key_shape";
		}
		return NULL;
	case STORAGE_DB_POLICY:
		return key->mv_size >= 1 && key->mv_size <= STORAGE_POLICY_KEY_BYTES_MAX
			       ? NULL
			       : "key_shape";
	default:
		CL_UNREACHABLE();
	}
}

/* Value length a db requires exactly, or 0 when it only has a minimum. */
static size_t storage_value_bytes_exact(enum storage_db db)
{
	switch (db) {
	case STORAGE_DB_ENTRY_INDEX:
		return STORAGE_ENTRY_INDEX_VALUE_BYTES;
	case STORAGE_DB_REQUEST_INDEX:
		return STORAGE_REQUEST_INDEX_VALUE_BYTES;
	case STORAGE_DB_PATIENT_INDEX:
		return STORAGE_PATIENT_INDEX_VALUE_BYTES;
	default:
		return 0;
	}
}

static size_t storage_value_bytes_min(enum storage_db db)
{
	return db == STORAGE_DB_LOG ? STORAGE_LOG_HEADER_BYTES : STORAGE_CRC_BYTES;
}

const char *storage_record_problem(enum storage_db db, const MDB_val *key, const MDB_val *val)
{
	CL_ASSERT(db < STORAGE_DB_COUNT);
	const char *problem = storage_key_problem(db, key);
	if (problem != NULL) {
		return problem;
	}
	/* Lengths before the checksum: a short value must never be read past its end. */
	size_t exact = storage_value_bytes_exact(db);
	if (val->mv_size < storage_value_bytes_min(db) || (exact != 0 && val->mv_size != exact)) {
		return "value_length";
	}
	if (db == STORAGE_DB_POLICY &&
	    val->mv_size - STORAGE_CRC_BYTES > (size_t)STORAGE_POLICY_VALUE_BYTES_MAX) {
		return "value_length";
	}
	if (!storage_value_checksum_ok(key, val)) {
		return "checksum";
	}
	return db == STORAGE_DB_META ? storage_meta_problem(key, val) : NULL;
}

static void storage_hex_text(const MDB_val *key, char *out, size_t out_size)
{
	size_t len = key->mv_size < STORAGE_LMDB_KEY_BYTES_MAX ? key->mv_size
							       : STORAGE_LMDB_KEY_BYTES_MAX;
	CL_ASSERT(out_size >= 2 * len + 1);
	cl_hex_encode(out, key->mv_data, len);
}

void storage_key_text(enum storage_db db, const MDB_val *key, char *out, size_t out_size)
{
	CL_ASSERT(out_size >= STORAGE_KEY_TEXT_BYTES);
	const uint8_t *k = key->mv_data;
	switch (db) {
	case STORAGE_DB_META:
		if (storage_meta_name_valid(key->mv_data, key->mv_size)) {
			memcpy(out, k, key->mv_size);
			out[key->mv_size] = '\0';
		} else {
			storage_hex_text(key, out, out_size);
		}
		return;
	case STORAGE_DB_LOG:
		if (key->mv_size == STORAGE_INDEX_BYTES) {
			snprintf(out, out_size, "%llu", (unsigned long long)cl_get_u64be(k));
		} else {
			storage_hex_text(key, out, out_size);
		}
		return;
	case STORAGE_DB_PATIENT_INDEX:
		/* Only the log index: an unsalted hash of a patient id is reversible by trying
		 * every id, so it stays out of logs and reports. */
		if (key->mv_size == STORAGE_PATIENT_INDEX_KEY_BYTES) {
			snprintf(out, out_size, "%llu",
				 (unsigned long long)cl_get_u64be(k + STORAGE_HASH_BYTES));
		} else {
			snprintf(out, out_size, "malformed-len-%zu", key->mv_size);
		}
		return;
	case STORAGE_DB_ENTRY_INDEX:
	case STORAGE_DB_REQUEST_INDEX:
		storage_hex_text(key, out, out_size);
		return;
	case STORAGE_DB_POLICY:
		/* The table tag only: node/access's keys carry patient and actor ids. */
		if (key->mv_size >= 1) {
			snprintf(out, out_size, "tag-%02x", (unsigned int)k[0]);
		} else {
			snprintf(out, out_size, "malformed-len-0");
		}
		return;
	default:
		CL_UNREACHABLE();
	}
}

int storage_corrupt(enum storage_db db, const MDB_val *key, const char *reason)
{
	char text[STORAGE_KEY_TEXT_BYTES];
	storage_key_text(db, key, text, sizeof(text));
	cl_log_error("storage.corrupt", "db=%s key=%s reason=%s", storage_db_name(db), text,
		     reason);
	return CARELOG_ECORRUPT;
}

int storage_record_get(struct storage_txn *t, enum storage_db db, const void *key,
		       size_t key_len, MDB_val *out_val)
{
	CL_ASSERT(t != NULL);
	CL_ASSERT(db < STORAGE_DB_COUNT);
	MDB_val k = {.mv_size = key_len, .mv_data = (void *)(uintptr_t)key};
	MDB_val v;
	int rc = mdb_get(t->txn, t->storage->dbi[db], &k, &v);
	if (rc != 0) {
		return storage_error(t->storage, rc, "get");
	}
	const char *problem = storage_record_problem(db, &k, &v);
	if (problem != NULL) {
		return storage_corrupt(db, &k, problem);
	}
	*out_val = v;
	return CARELOG_OK;
}

int storage_record_put(struct storage_txn *t, MDB_cursor *cursor, enum storage_db db,
		       const void *key, size_t key_len, const struct storage_part *parts,
		       size_t part_count, unsigned int flags)
{
	CL_ASSERT(t != NULL && t->write);
	CL_ASSERT(db < STORAGE_DB_COUNT);
	size_t total = STORAGE_CRC_BYTES;
	for (size_t i = 0; i < part_count; i++) {
		CL_ASSERT(parts[i].bytes != NULL || parts[i].len == 0);
		total += parts[i].len;
	}
	MDB_val k = {.mv_size = key_len, .mv_data = (void *)(uintptr_t)key};
	MDB_val v = {.mv_size = total, .mv_data = NULL};
	/* MDB_RESERVE: LMDB hands out the value's place in the map and we fill it, so a large
	 * body is copied once. */
	int rc = cursor != NULL ? mdb_cursor_put(cursor, &k, &v, flags | MDB_RESERVE)
				: mdb_put(t->txn, t->storage->dbi[db], &k, &v, flags | MDB_RESERVE);
	if (rc != 0) {
		return storage_error(t->storage, rc, "put");
	}
	CL_ASSERT(v.mv_size == total);
	storage_value_fill(&k, &v, parts, part_count);
	return CARELOG_OK;
}
