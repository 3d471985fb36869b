/* The region-wide access log (audit rows shipped in audit batches) and open btg grants. */
#include "node/access/access_internal.h"

#include "carelog/errors.h"
#include "common/assert.h"
#include "common/bytes.h"

#include <stdlib.h>
#include <string.h>

/* L | pkey | time | node | seq and M | org | actor | time | node | seq: both sort a patient's
 * (or an actor's) rows by the serving node's time, so a reverse scan is newest first. A row
 * shipped twice (a shipper that crashed before marking) lands on the same keys. */
static void row_suffix(struct access_key *k, const struct policy_audit_row *row)
{
	access_key_u64(k, row->time_ms);
	access_key_u64(k, row->node_id);
	access_key_u64(k, row->seq);
}

/* Decodes every row and checks it belongs to the batch: node, ascending seq from first_seq. */
static int batch_judge(const struct policy_body *b, struct policy_audit_row *row,
                       const char **out_reason)
{
	uint64_t next_seq = b->first_seq;
	for (uint32_t i = 0; i < b->rows_count; i++) {
		if (policy_audit_row_decode(b->rows[i], b->rows_len[i], row) != CARELOG_OK) {
			*out_reason = "an audit row in the batch is malformed";
			return CARELOG_OK;
		}
		if (row->node_id != b->node_id) {
			*out_reason = "an audit batch carries rows of its own node only";
			return CARELOG_OK;
		}
		if (row->seq < next_seq) {
			*out_reason = "the audit batch's rows are not in ascending order from "
			              "its first sequence number";
			return CARELOG_OK;
		}
		next_seq = row->seq + 1;
	}
	return CARELOG_OK;
}

/* Remembers the highest sequence applied from `node` (so a node whose audit queue was lost
 * continues numbering above it: access_audit_seq_max). */
static int audit_seq_raise(struct storage_txn *t, uint64_t node_id, uint64_t last_seq)
{
	uint64_t known = 0;
	int rc = access_audit_seq_max(t, node_id, &known);
	if (rc != CARELOG_OK || last_seq <= known) {
		return rc;
	}
	struct access_key k;
	access_key_begin(&k, ACCESS_TAG_AUDIT_SEQ);
	access_key_u64(&k, node_id);
	uint8_t v[8];
	cl_put_u64be(v, last_seq);
	return storage_policy_put(t, k.b, k.len, v, sizeof(v));
}

int access_log_index_batch(struct storage_txn *t, const struct journal_header *h,
                           const struct policy_body *b, bool *out_ok, const char **out_reason)
{
	CL_ASSERT(b->kind == POLICY_KIND_AUDIT_BATCH);
	*out_ok = false;
	*out_reason = NULL;
	if (h->node_id != b->node_id) {
		*out_reason = "an audit batch is signed by the node whose rows it carries";
		return CARELOG_OK;
	}
	struct policy_audit_row *row = malloc(sizeof(*row));
	if (row == NULL) {
		return CARELOG_ENOMEM;
	}
	int rc = batch_judge(b, row, out_reason);
	for (uint32_t i = 0; rc == CARELOG_OK && *out_reason == NULL && i < b->rows_count; i++) {
		rc = policy_audit_row_decode(b->rows[i], b->rows_len[i], row);
		CL_ASSERT(rc == CARELOG_OK); /* batch_judge decoded it */
		struct access_key k;
		if (row->patient[0] != '\0') {
			uint8_t pkey[CL_SHA256_BYTES];
			journal_patient_key(row->patient, pkey);
			access_key_patient(&k, ACCESS_TAG_LOG_PATIENT, pkey);
			row_suffix(&k, row);
			rc = storage_policy_put(t, k.b, k.len, b->rows[i], b->rows_len[i]);
		}
		if (rc == CARELOG_OK) {
			access_key_begin(&k, ACCESS_TAG_LOG_ACTOR);
			access_key_str(&k, row->org);
			access_key_str(&k, row->actor);
			row_suffix(&k, row);
			rc = storage_policy_put(t, k.b, k.len, b->rows[i], b->rows_len[i]);
		}
	}
	free(row);
	*out_ok = rc == CARELOG_OK && *out_reason == NULL;
	if (*out_ok) {
		rc = audit_seq_raise(t, b->node_id, b->first_seq + b->rows_count - 1);
		*out_ok = rc == CARELOG_OK;
	}
	return rc;
}

int access_audit_seq_max(struct storage_txn *t, uint64_t node_id, uint64_t *out_seq)
{
	struct access_key k;
	access_key_begin(&k, ACCESS_TAG_AUDIT_SEQ);
	access_key_u64(&k, node_id);
	const uint8_t *v = NULL;
	size_t len = 0;
	int rc = storage_policy_get(t, k.b, k.len, &v, &len);
	if (rc == CARELOG_ENOTFOUND) {
		*out_seq = 0;
		return CARELOG_OK;
	}
	if (rc == CARELOG_OK && len != 8) {
		rc = CARELOG_ECORRUPT;
	}
	if (rc == CARELOG_OK) {
		*out_seq = cl_get_u64be(v);
	}
	return rc;
}

struct log_scan {
	int (*visit)(void *arg, const uint8_t *row, size_t len);
	void *arg;
	int result;
};

static int log_visit(void *arg, const uint8_t *key, size_t key_len, const uint8_t *value,
                     size_t value_len)
{
	(void)key;
	(void)key_len;
	struct log_scan *s = arg;
	s->result = s->visit(s->arg, value, value_len);
	return s->result != 0 ? ACCESS_SCAN_STOP : 0;
}

int access_log_query(struct storage_txn *t, const char *patient, const char *actor_org,
                     const char *actor_id, size_t limit,
                     int (*visit)(void *arg, const uint8_t *row, size_t len), void *arg)
{
	struct access_key k;
	if (patient != NULL) {
		uint8_t pkey[CL_SHA256_BYTES];
		journal_patient_key(patient, pkey);
		access_key_patient(&k, ACCESS_TAG_LOG_PATIENT, pkey);
	} else {
		if (actor_org == NULL || actor_id == NULL ||
		    strlen(actor_org) > JOURNAL_ORG_BYTES_MAX ||
		    strlen(actor_id) > JOURNAL_ACTOR_BYTES_MAX) {
			return CARELOG_EINVAL;
		}
		access_key_begin(&k, ACCESS_TAG_LOG_ACTOR);
		access_key_str(&k, actor_org);
		access_key_str(&k, actor_id);
	}
	if (limit == 0 || limit > ACCESS_LOG_ROWS_MAX) {
		limit = ACCESS_LOG_ROWS_MAX;
	}
	struct log_scan s = {.visit = visit, .arg = arg, .result = 0};
	int rc = storage_policy_scan(t, k.b, k.len, true, limit, log_visit, &s);
	return rc == ACCESS_SCAN_STOP ? s.result : rc;
}

struct btg_list_scan {
	struct storage_txn *t;
	int (*visit)(void *arg, const struct access_btg *g);
	void *arg;
	struct access_btg_row *row;
	int result;
};

static int btg_list_visit(void *arg, const uint8_t *key, size_t key_len, const uint8_t *value,
                          size_t value_len)
{
	(void)key;
	(void)key_len;
	struct btg_list_scan *s = arg;
	struct access_key grant;
	if (value_len == 0 || value_len > sizeof(grant.b)) {
		s->result = CARELOG_ECORRUPT;
		return ACCESS_SCAN_STOP;
	}
	memcpy(grant.b, value, value_len); /* the scan's value is borrowed for this call */
	grant.len = value_len;
	const uint8_t *v = NULL;
	size_t len = 0;
	s->result = storage_policy_get(s->t, grant.b, grant.len, &v, &len);
	if (s->result == CARELOG_ENOTFOUND) {
		s->result = CARELOG_ECORRUPT; /* an open grant's row is never deleted */
	}
	if (s->result == CARELOG_OK) {
		s->result = access_btg_decode(v, len, s->row);
	}
	if (s->result == CARELOG_OK) {
		s->result = s->visit(s->arg, &s->row->g);
	}
	return s->result != 0 ? ACCESS_SCAN_STOP : 0;
}

int access_btg_open(struct storage_txn *t, const char *patient, size_t limit,
                    int (*visit)(void *arg, const struct access_btg *g), void *arg)
{
	struct access_key k;
	if (patient != NULL) {
		uint8_t pkey[CL_SHA256_BYTES];
		journal_patient_key(patient, pkey);
		access_key_patient(&k, ACCESS_TAG_BTG_OPEN_PATIENT, pkey);
	} else {
		access_key_begin(&k, ACCESS_TAG_BTG_OPEN);
	}
	if (limit == 0) {
		limit = ACCESS_BTG_LIST_DEFAULT;
	}
	struct btg_list_scan s = {.t = t, .visit = visit, .arg = arg, .result = 0};
	s.row = malloc(sizeof(*s.row));
	if (s.row == NULL) {
		return CARELOG_ENOMEM;
	}
	int rc = storage_policy_scan(t, k.b, k.len, false, limit, btg_list_visit, &s);
	free(s.row);
	return rc == ACCESS_SCAN_STOP ? s.result : rc;
}
