/* The meta database: identity, Raft hard state, applied state and the node's named values. */
#include "storage/storage_internal.h"

#include "carelog/errors.h"
#include "common/assert.h"
#include "common/bytes.h"
#include "common/log.h"

#include <string.h>

static const char *const storage_meta_reserved[] = {
	STORAGE_META_HARD_STATE,
	STORAGE_META_APPLIED,
	STORAGE_META_IDENTITY,
};

static int storage_meta_read(struct storage_txn *t, const char *name, MDB_val *out_val)
{
	return storage_record_get(t, STORAGE_DB_META, name, strlen(name), out_val);
}

static int storage_meta_write(struct storage_txn *t, const char *name, const void *payload,
			      size_t len)
{
	CL_ASSERT(t->write); /* a write through a read txn is a caller bug */
	struct storage_part part = {.bytes = payload, .len = len};
	return storage_record_put(t, NULL, STORAGE_DB_META, name, strlen(name), &part, 1, 0);
}

int storage_identity_get(struct storage_txn *t, struct storage_identity *out)
{
	CL_ASSERT(out != NULL);
	MDB_val v;
	int rc = storage_meta_read(t, STORAGE_META_IDENTITY, &v);
	if (rc != CARELOG_OK) {
		return rc;
	}
	const uint8_t *p = (const uint8_t *)v.mv_data + STORAGE_CRC_BYTES;
	uint32_t version = cl_get_u32be(p);
	if (version != STORAGE_FORMAT_VERSION) {
		cl_log_error("storage.format_version", "found=%u supported=%u hint=\"%s\"", version,
			     (unsigned int)STORAGE_FORMAT_VERSION,
			     "this data dir was written by another carelog version");
		return CARELOG_EVERSION;
	}
	CL_ASSERT(v.mv_size == STORAGE_IDENTITY_VALUE_BYTES); /* storage_record_problem */
	memcpy(out->cluster_id, p + 4, STORAGE_CLUSTER_ID_BYTES);
	out->node_id = cl_get_u64be(p + 4 + STORAGE_CLUSTER_ID_BYTES);
	return CARELOG_OK;
}

int storage_identity_put(struct storage_txn *t, const struct storage_identity *identity)
{
	CL_ASSERT(t != NULL && t->write);
	CL_ASSERT(identity != NULL);
	struct storage_identity existing;
	int rc = storage_identity_get(t, &existing);
	if (rc == CARELOG_OK) {
		if (existing.node_id == identity->node_id &&
		    memcmp(existing.cluster_id, identity->cluster_id, STORAGE_CLUSTER_ID_BYTES) == 0) {
			return CARELOG_OK;
		}
		/* Node ids are never reused, and a data dir never changes owner. */
		cl_log_error("storage.identity_exists", "node_id=%llu requested_node_id=%llu",
			     (unsigned long long)existing.node_id,
			     (unsigned long long)identity->node_id);
		return CARELOG_EEXIST;
	}
	if (rc != CARELOG_ENOTFOUND) {
		return rc;
	}
	uint8_t payload[STORAGE_IDENTITY_VALUE_BYTES - STORAGE_CRC_BYTES];
	cl_put_u32be(payload, STORAGE_FORMAT_VERSION);
	memcpy(payload + 4, identity->cluster_id, STORAGE_CLUSTER_ID_BYTES);
	cl_put_u64be(payload + 4 + STORAGE_CLUSTER_ID_BYTES, identity->node_id);
	return storage_meta_write(t, STORAGE_META_IDENTITY, payload, sizeof(payload));
}

int storage_hard_state_get(struct storage_txn *t, struct storage_hard_state *out)
{
	CL_ASSERT(out != NULL);
	MDB_val v;
	int rc = storage_meta_read(t, STORAGE_META_HARD_STATE, &v);
	if (rc == CARELOG_ENOTFOUND) {
		memset(out, 0, sizeof(*out));
		return CARELOG_OK;
	}
	if (rc != CARELOG_OK) {
		return rc;
	}
	const uint8_t *p = (const uint8_t *)v.mv_data + STORAGE_CRC_BYTES;
	out->term = cl_get_u64be(p);
	out->vote = cl_get_u64be(p + 8);
	out->commit = cl_get_u64be(p + 16);
	return CARELOG_OK;
}

int storage_hard_state_put(struct storage_txn *t, const struct storage_hard_state *hs)
{
	CL_ASSERT(t != NULL && t->write);
	CL_ASSERT(hs != NULL);
	uint8_t payload[STORAGE_HARD_STATE_VALUE_BYTES - STORAGE_CRC_BYTES];
	cl_put_u64be(payload, hs->term);
	cl_put_u64be(payload + 8, hs->vote);
	cl_put_u64be(payload + 16, hs->commit);
	return storage_meta_write(t, STORAGE_META_HARD_STATE, payload, sizeof(payload));
}

int storage_applied_get(struct storage_txn *t, struct storage_applied *out)
{
	CL_ASSERT(out != NULL);
	MDB_val v;
	int rc = storage_meta_read(t, STORAGE_META_APPLIED, &v);
	if (rc == CARELOG_ENOTFOUND) {
		memset(out, 0, sizeof(*out));
		return CARELOG_OK;
	}
	if (rc != CARELOG_OK) {
		return rc;
	}
	const uint8_t *p = (const uint8_t *)v.mv_data + STORAGE_CRC_BYTES;
	out->index = cl_get_u64be(p);
	memcpy(out->chain_head, p + 8, STORAGE_HASH_BYTES);
	return CARELOG_OK;
}

int storage_applied_put(struct storage_txn *t, const struct storage_applied *applied)
{
	CL_ASSERT(t != NULL && t->write);
	CL_ASSERT(applied != NULL);
	uint8_t payload[STORAGE_APPLIED_VALUE_BYTES - STORAGE_CRC_BYTES];
	cl_put_u64be(payload, applied->index);
	memcpy(payload + 8, applied->chain_head, STORAGE_HASH_BYTES);
	return storage_meta_write(t, STORAGE_META_APPLIED, payload, sizeof(payload));
}

/* A name the node may use: valid and not one of the typed records above. */
static int storage_meta_name_check(const char *name)
{
	if (name == NULL) {
		return CARELOG_EINVAL;
	}
	size_t len = strnlen(name, STORAGE_META_NAME_BYTES_MAX + 1);
	if (!storage_meta_name_valid(name, len)) {
		cl_log_error("storage.meta_name_invalid",
			     "error=\"meta names are 1..%d of [A-Za-z0-9_.-]\"",
			     (int)STORAGE_META_NAME_BYTES_MAX);
		return CARELOG_EINVAL;
	}
	for (size_t i = 0; i < CL_ARRAY_LEN(storage_meta_reserved); i++) {
		if (strcmp(name, storage_meta_reserved[i]) == 0) {
			cl_log_error("storage.meta_name_invalid", "name=%s error=\"reserved\"", name);
			return CARELOG_EINVAL;
		}
	}
	return CARELOG_OK;
}

int storage_meta_put(struct storage_txn *t, const char *name, const uint8_t *value, size_t len)
{
	CL_ASSERT(t != NULL && t->write);
	CL_ASSERT(value != NULL || len == 0);
	int rc = storage_meta_name_check(name);
	if (rc != CARELOG_OK) {
		return rc;
	}
	return storage_meta_write(t, name, value, len);
}

int storage_meta_get(struct storage_txn *t, const char *name, const uint8_t **out_value,
		     size_t *out_len)
{
	CL_ASSERT(t != NULL);
	CL_ASSERT(out_value != NULL && out_len != NULL);
	int rc = storage_meta_name_check(name);
	if (rc != CARELOG_OK) {
		return rc;
	}
	MDB_val v;
	rc = storage_meta_read(t, name, &v);
	if (rc != CARELOG_OK) {
		return rc;
	}
	*out_value = (const uint8_t *)v.mv_data + STORAGE_CRC_BYTES;
	*out_len = v.mv_size - STORAGE_CRC_BYTES;
	return CARELOG_OK;
}

int storage_meta_delete(struct storage_txn *t, const char *name)
{
	CL_ASSERT(t != NULL && t->write);
	int rc = storage_meta_name_check(name);
	if (rc != CARELOG_OK) {
		return rc;
	}
	MDB_val k = {.mv_size = strlen(name), .mv_data = (void *)(uintptr_t)name};
	return storage_error(t->storage,
			     mdb_del(t->txn, t->storage->dbi[STORAGE_DB_META], &k, NULL),
			     "meta_delete");
}
