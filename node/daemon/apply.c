/* Applying committed entries deterministically: the same outcome on every node. */
#include "node/daemon/apply.h"

#include "carelog/errors.h"
#include "common/assert.h"
#include "common/bytes.h"
#include "common/log.h"
#include "node/access/access.h"
#include "node/journal/policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char meta_membership[] = "membership";

int node_request_key(const char *org, size_t org_len, const char *request_id, size_t request_id_len,
                     uint8_t out[NODE_REQUEST_KEY_BYTES_MAX], size_t *out_len)
{
	if (org_len == 0 || org_len > JOURNAL_ORG_BYTES_MAX || request_id_len == 0 ||
	    request_id_len > JOURNAL_REQUEST_ID_BYTES_MAX) {
		return CARELOG_EINVAL;
	}
	memcpy(out, org, org_len);
	out[org_len] = 0x00; /* org names contain no NUL: the key splits unambiguously */
	memcpy(out + org_len + 1, request_id, request_id_len);
	*out_len = org_len + 1 + request_id_len;
	CL_ASSERT(*out_len <= NODE_REQUEST_KEY_BYTES_MAX);
	CL_STATIC_ASSERT((int)NODE_REQUEST_KEY_BYTES_MAX <= (int)STORAGE_REQUEST_KEY_BYTES_MAX,
	                 "request keys fit the storage index");
	return CARELOG_OK;
}

/* Every node id any applied configuration named, ascending, u64 big-endian each: node ids are
 * never reused (DESIGN.md "Cluster identity"), so a removed id must stay known. */
static const char meta_member_ids[] = "member_ids";

static int member_ids_record(struct storage_txn *t, const struct membership *m)
{
	const uint8_t *value = NULL;
	size_t len = 0;
	int rc = storage_meta_get(t, meta_member_ids, &value, &len);
	if (rc == CARELOG_ENOTFOUND) {
		len = 0;
		rc = CARELOG_OK;
	}
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (len % 8 != 0 || len / 8 > NODE_MEMBER_IDS_MAX) {
		return CARELOG_ECORRUPT;
	}
	uint64_t *ids = malloc((NODE_MEMBER_IDS_MAX + MEMBERSHIP_MEMBERS_MAX) * sizeof(*ids));
	if (ids == NULL) {
		return CARELOG_ENOMEM;
	}
	size_t n = len / 8;
	for (size_t i = 0; i < n; i++) {
		ids[i] = cl_get_u64be(value + 8 * i);
	}
	bool added = false;
	for (uint32_t k = 0; k < m->count; k++) {
		size_t at = 0;
		while (at < n && ids[at] < m->members[k].id) {
			at++;
		}
		if (at < n && ids[at] == m->members[k].id) {
			continue;
		}
		if (n == NODE_MEMBER_IDS_MAX) {
			cl_log_warn("apply.member_ids_full", "ids=%zu", n); /* reuse check best effort */
			break;
		}
		memmove(&ids[at + 1], &ids[at], (n - at) * sizeof(*ids));
		ids[at] = m->members[k].id;
		n++;
		added = true;
	}
	if (added) {
		uint8_t *buf = malloc(n * 8);
		rc = buf == NULL ? CARELOG_ENOMEM : CARELOG_OK;
		for (size_t i = 0; rc == CARELOG_OK && i < n; i++) {
			cl_put_u64be(buf + 8 * i, ids[i]);
		}
		if (rc == CARELOG_OK) {
			rc = storage_meta_put(t, meta_member_ids, buf, n * 8);
		}
		free(buf);
	}
	free(ids);
	return rc;
}

int node_apply_member_id_used(struct storage_txn *t, uint64_t id, bool *out_used)
{
	const uint8_t *value = NULL;
	size_t len = 0;
	int rc = storage_meta_get(t, meta_member_ids, &value, &len);
	if (rc == CARELOG_ENOTFOUND) {
		*out_used = false;
		return CARELOG_OK;
	}
	if (rc != CARELOG_OK) {
		return rc;
	}
	bool used = false;
	for (size_t i = 0; i + 8 <= len; i += 8) {
		used = used || cl_get_u64be(value + i) == id;
	}
	*out_used = used;
	return CARELOG_OK;
}

int node_apply_store_membership(struct storage_txn *t, const struct membership *m)
{
	uint8_t *buf = malloc(NODE_META_MEMBERSHIP_BYTES_MAX);
	if (buf == NULL) {
		return CARELOG_ENOMEM;
	}
	size_t len = 0;
	int rc = membership_encode(m, buf, NODE_META_MEMBERSHIP_BYTES_MAX, &len);
	if (rc == CARELOG_OK) {
		rc = storage_meta_put(t, meta_membership, buf, len);
	}
	free(buf);
	if (rc == CARELOG_OK) {
		rc = member_ids_record(t, m);
	}
	return rc;
}

int node_apply_read_membership(struct storage_txn *t, struct membership *out)
{
	const uint8_t *value = NULL;
	size_t len = 0;
	int rc = storage_meta_get(t, meta_membership, &value, &len);
	if (rc != CARELOG_OK) {
		return rc;
	}
	return membership_decode(value, len, out);
}

int node_apply_load(struct storage_txn *t, struct node_apply_state *out)
{
	struct storage_applied applied;
	int rc = storage_applied_get(t, &applied);
	if (rc != CARELOG_OK) {
		return rc;
	}
	memset(out, 0, sizeof(*out));
	rc = node_apply_read_membership(t, &out->membership);
	if (rc == CARELOG_OK) {
		out->has_membership = true;
	} else if (rc != CARELOG_ENOTFOUND) {
		return rc;
	}
	if (!out->has_membership) {
		memset(&out->membership, 0, sizeof(out->membership));
	}
	out->applied_index = applied.index;
	memcpy(out->chain_head, applied.chain_head, sizeof(out->chain_head));
	return CARELOG_OK;
}

/* Carries forward what a later configuration does not restate: the cluster id (genesis only)
 * and the replicated parameters. */
static void apply_membership_merge(const struct node_apply_state *st, struct membership *next)
{
	if (!next->has_cluster_id && st->has_membership && st->membership.has_cluster_id) {
		next->has_cluster_id = true;
		memcpy(next->cluster_id, st->membership.cluster_id, sizeof(next->cluster_id));
	}
	if (!next->has_params) {
		next->has_params = true;
		next->params = (st->has_membership && st->membership.has_params)
		                   ? st->membership.params
		                   : (struct membership_params){
		                         .body_max_bytes = MEMBERSHIP_BODY_MAX_BYTES_DEFAULT};
	}
}

static int classify_conf(const struct node_apply_state *st, const struct consensus_entry *e,
                         struct membership *conf_buf, struct node_apply_class *out,
                         const char **out_reason)
{
	struct consensus_conf_change cc;
	const uint8_t *context = NULL;
	uint32_t context_len = 0;
	int rc = consensus_conf_decode(e->data, e->data_len, &cc, &context, &context_len);
	if (rc != CARELOG_OK) {
		*out_reason = "configuration entry does not decode";
		return rc == CARELOG_EVERSION ? rc : CARELOG_EPROTO;
	}
	if (context_len == 0 && st->has_membership) {
		/* Leaving a joint configuration changes voters, not the members' metadata. */
		*conf_buf = st->membership;
		out->conf = conf_buf;
		return CARELOG_OK;
	}
	rc = membership_decode(context, context_len, conf_buf);
	if (rc != CARELOG_OK) {
		*out_reason = rc == CARELOG_EVERSION
		                  ? "configuration entry has an unknown membership "
		                    "version (upgrade this node)"
		                  : "configuration entry's membership does not decode";
		return rc == CARELOG_EVERSION ? rc : CARELOG_EPROTO;
	}
	apply_membership_merge(st, conf_buf);
	out->conf = conf_buf;
	return CARELOG_OK;
}

/*
 * Trust, then rules, of a record whose header decoded (sets out->verdict). The signature is
 * checked with the key the applied membership pins for the header's node (whose org must
 * match) BEFORE any header rule is judged: an entry nobody authentic signed is only ever
 * rejected, so a forged entry naming an unknown kind cannot stop apply region-wide. Returns
 * CARELOG_EUNKNOWN (stop apply, *out_reason set) only for a correctly signed entry naming a
 * kind, status or sensitivity this node does not know.
 */
static int classify_record_trust(const struct node_apply_state *st, struct node_apply_class *out,
                                 const char **out_reason)
{
	const struct membership_member *m =
	    st->has_membership ? membership_find(&st->membership, out->header.node_id) : NULL;
	if (m == NULL) {
		out->verdict = CARELOG_EMISMATCH;
		out->reason = "signing node is not a member of the configuration";
		return CARELOG_OK;
	}
	if (strcmp(out->header.org, m->org) != 0) {
		out->verdict = CARELOG_EMISMATCH;
		out->reason = "header organisation is not the signing node's organisation";
		return CARELOG_OK;
	}
	/* Signature first, then journal_header_check, then the body (journal.h). */
	int rc = journal_verify_decoded(&out->record, &out->header, m->public_key);
	out->signature_checked = true;
	if (rc == CARELOG_EUNKNOWN) {
		*out_reason = "entry kind, status or sensitivity unknown to this node "
		              "(upgrade this node)";
		return rc;
	}
	out->verdict = rc;
	if (rc == CARELOG_OK) {
		return CARELOG_OK;
	}
	const char *check_reason = NULL;
	if (rc == CARELOG_EPROTO &&
	    journal_header_check(&out->header, &check_reason) != CARELOG_OK) {
		/* Authentic but breaking the format's rules. */
		out->verdict = CARELOG_EINVAL;
		out->reason =
		    check_reason != NULL ? check_reason : "header fails the format's rules";
		return CARELOG_OK;
	}
	out->reason = rc == CARELOG_EBADSIG    ? "signature does not verify with the pinned key"
	              : rc == CARELOG_ECORRUPT ? "body does not match the signed body hash"
	              : rc == CARELOG_EPROTO   ? "record's body fields are malformed"
	                                       : "record fails verification";
	return CARELOG_OK;
}

int node_apply_classify(const struct node_apply_state *st, const struct consensus_entry *e,
                        struct membership *conf_buf, struct node_apply_class *out,
                        const char **out_reason)
{
	memset(out, 0, sizeof(*out));
	*out_reason = NULL;
	if (e->type == CONSENSUS_ENTRY_CONF) {
		out->kind = NODE_APPLY_KIND_CONF;
		return classify_conf(st, e, conf_buf, out, out_reason);
	}
	if (e->type != CONSENSUS_ENTRY_NORMAL) {
		*out_reason = "unknown log entry type (upgrade this node)";
		return CARELOG_EUNKNOWN;
	}
	if (e->data_len == 0) {
		out->kind = NODE_APPLY_KIND_NOOP;
		return CARELOG_OK;
	}
	int rc = journal_record_decode(e->data, e->data_len, &out->record);
	if (rc == CARELOG_EVERSION) {
		*out_reason = "record version unknown to this node (upgrade this node)";
		return rc;
	}
	if (rc != CARELOG_OK) {
		out->kind = NODE_APPLY_KIND_OPAQUE;
		out->verdict = CARELOG_EPROTO;
		out->reason = "record does not decode";
		return CARELOG_OK;
	}
	out->kind = NODE_APPLY_KIND_RECORD;
	out->has_id = true;
	journal_entry_id(out->record.header, out->record.header_len, out->id);
	rc = journal_header_decode(out->record.header, out->record.header_len, &out->header);
	if (rc == CARELOG_EVERSION) {
		*out_reason = "entry format version unknown to this node (upgrade this node)";
		return rc;
	}
	if (rc != CARELOG_OK) {
		out->verdict = CARELOG_EPROTO;
		out->reason = "header does not decode";
		return CARELOG_OK;
	}
	return classify_record_trust(st, out, out_reason);
}

void node_apply_leaf(const struct consensus_entry *e, const struct node_apply_class *c,
                     uint8_t out[CL_SHA256_BYTES])
{
	switch (c->kind) {
	case NODE_APPLY_KIND_NOOP:
		journal_chain_leaf_noop(e->index, out);
		return;
	case NODE_APPLY_KIND_RECORD:
		journal_chain_leaf_record(e->index, &c->record, out);
		return;
	default:
		journal_chain_leaf_opaque(e->index, e->type, e->data, e->data_len, out);
		return;
	}
}

static void log_rejected(const struct consensus_entry *e, const struct node_apply_class *c)
{
	char id_hex[2 * JOURNAL_ID_BYTES + 1] = "none";
	if (c->has_id) {
		cl_hex_encode(id_hex, c->id, sizeof(c->id));
	}
	/* Index, entry id and error only: never patient data. */
	cl_log_warn("apply.rejected", "index=%llu id=%s err=%s reason=\"%s\"",
	            (unsigned long long)e->index, id_hex, carelog_errname(c->verdict), c->reason);
}

bool node_apply_patient_indexed(const char *patient)
{
	return strcmp(patient, POLICY_REGION_PATIENT) != 0;
}

void node_apply_refusal_text(struct storage_txn *t, uint64_t index,
                             const uint8_t id[JOURNAL_ID_BYTES], char *out, size_t out_len)
{
	/* The words recorded when it was refused: a retry hears exactly what the first heard. */
	if (access_refusal_get(t, id, out, out_len) == CARELOG_OK && out[0] != '\0') {
		return;
	}
	char id_hex[2 * JOURNAL_ID_BYTES + 1];
	cl_hex_encode(id_hex, id, JOURNAL_ID_BYTES);
	snprintf(out, out_len,
	         "refused when applied at index %llu (entry %s): the author was not allowed to "
	         "write it",
	         (unsigned long long)index, id_hex);
}

/* A duplicate answers like its first copy: the index and id, or the first copy's refusal. */
static int answer_duplicate(struct storage_txn *t, uint64_t first_index,
                            const uint8_t first_id[JOURNAL_ID_BYTES],
                            struct node_apply_outcome *out)
{
	out->status = NODE_APPLY_DUPLICATE;
	out->answer_index = first_index;
	memcpy(out->answer_id, first_id, sizeof(out->answer_id));
	uint64_t index = 0;
	uint8_t status = 0;
	int rc = storage_index_entry_get(t, first_id, &index, &status);
	if (rc == CARELOG_ENOTFOUND) {
		return CARELOG_OK; /* a request row always has its entry row; verify reports it */
	}
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (status == NODE_APPLY_REFUSED) {
		out->reject_err = CARELOG_EDENIED;
		node_apply_refusal_text(t, first_index, first_id, out->refused_reason,
		                        sizeof(out->refused_reason));
	}
	return CARELOG_OK;
}

static void log_refused(const struct consensus_entry *e, const struct node_apply_class *c,
                        const char *reason)
{
	char id_hex[2 * JOURNAL_ID_BYTES + 1];
	cl_hex_encode(id_hex, c->id, sizeof(c->id));
	/* Index, entry id, kind and the rule's words: never the patient. */
	cl_log_warn("apply.refused", "index=%llu id=%s kind=%s reason=\"%s\"",
	            (unsigned long long)e->index, id_hex, c->header.kind, reason);
}

/* Judges an authentic, first-of-its-request record at its leader time (access_apply_entry,
 * which updates the policy state) and indexes it: accepted, or refused. */
static int apply_judged(struct storage_txn *t, const struct consensus_entry *e,
                        const struct node_apply_class *c, const uint8_t *key, size_t key_len,
                        struct node_apply_outcome *out)
{
	enum access_apply_verdict verdict = ACCESS_REFUSED;
	const char *reason = NULL;
	int rc = access_apply_entry(t, e->index, c->record.leader_time_ms, &c->header, c->id,
	                            c->record.body, c->record.body_len, &verdict, &reason);
	if (rc == CARELOG_EVERSION) {
		cl_log(CL_LOG_FATAL, "apply.stopped",
		       "index=%llu err=EVERSION reason=\"a policy body of a newer format version: "
		       "upgrade this node\"",
		       (unsigned long long)e->index);
	}
	if (rc != CARELOG_OK) {
		return rc;
	}
	out->answer_index = e->index;
	memcpy(out->answer_id, c->id, sizeof(out->answer_id));
	if (verdict == ACCESS_REFUSED) {
		out->status = NODE_APPLY_REFUSED;
		out->reject_err = CARELOG_EDENIED;
		snprintf(out->refused_reason, sizeof(out->refused_reason), "%s",
		         reason != NULL ? reason : "the author may not write this entry");
		log_refused(e, c, out->refused_reason);
		/* The request row stays: a retry with the same request id is the same refusal,
		 * never a second signing. No patient index row: a refused entry is no record. */
		rc = storage_index_entry_put(t, c->id, e->index, NODE_APPLY_REFUSED);
		return rc == CARELOG_OK
		           ? storage_index_request_put(t, key, key_len, e->index, c->id)
		           : rc;
	}
	CL_ASSERT(verdict == ACCESS_APPLIED);
	out->status = NODE_APPLY_ACCEPTED;
	rc = storage_index_entry_put(t, c->id, e->index, NODE_APPLY_ACCEPTED);
	if (rc == CARELOG_OK) {
		rc = storage_index_request_put(t, key, key_len, e->index, c->id);
	}
	if (rc == CARELOG_OK && node_apply_patient_indexed(c->header.patient)) {
		uint8_t patient_key[CL_SHA256_BYTES];
		journal_patient_key(c->header.patient, patient_key);
		rc = storage_index_patient_add(t, patient_key, e->index);
	}
	return rc;
}

/* Applies a classified record or opaque entry; fills the outcome. */
static int apply_record(struct storage_txn *t, const struct consensus_entry *e,
                        const struct node_apply_class *c, struct node_apply_outcome *out)
{
	out->has_id = c->has_id;
	if (c->has_id) {
		memcpy(out->id, c->id, sizeof(out->id));
		/* The same signed header twice (a replay) must not move the id's index. */
		uint64_t first_index = 0;
		uint8_t first_status = 0;
		int rc = storage_index_entry_get(t, c->id, &first_index, &first_status);
		if (rc == CARELOG_OK) {
			cl_log_warn("apply.replayed", "index=%llu first_index=%llu",
			            (unsigned long long)e->index, (unsigned long long)first_index);
			rc = answer_duplicate(t, first_index, c->id, out);
			/* a copy an erasure of the first must strip too */
			return rc == CARELOG_OK ? access_copy_add(t, c->id, e->index) : rc;
		}
		if (rc != CARELOG_ENOTFOUND) {
			return rc;
		}
	}
	if (c->verdict != CARELOG_OK) {
		out->status = NODE_APPLY_REJECTED;
		out->reject_err = c->verdict;
		out->reason = c->reason;
		log_rejected(e, c);
		return c->has_id ? storage_index_entry_put(t, c->id, e->index, NODE_APPLY_REJECTED)
		                 : CARELOG_OK;
	}
	uint8_t key[NODE_REQUEST_KEY_BYTES_MAX];
	size_t key_len = 0;
	int rc = node_request_key(c->header.org, strlen(c->header.org), c->header.request_id,
	                          strlen(c->header.request_id), key, &key_len);
	CL_ASSERT(rc == CARELOG_OK); /* journal_header_check passed: both non-empty, bounded */
	memcpy(out->request_key, key, key_len);
	out->request_key_len = key_len;
	uint64_t first_index = 0;
	uint8_t first_id[JOURNAL_ID_BYTES];
	rc = storage_index_request_get(t, key, key_len, &first_index, first_id);
	if (rc == CARELOG_OK) {
		rc = answer_duplicate(t, first_index, first_id, out);
		if (rc == CARELOG_OK) {
			rc = storage_index_entry_put(t, c->id, e->index, NODE_APPLY_DUPLICATE);
		}
		/* the same request signed again: an erasure of the first strips it too */
		return rc == CARELOG_OK ? access_copy_add(t, first_id, e->index) : rc;
	}
	if (rc != CARELOG_ENOTFOUND) {
		return rc;
	}
	return apply_judged(t, e, c, key, key_len, out);
}

/* A record that arrived without its body (erased elsewhere before this node caught up) names its
 * tombstone's index; remember that the entry there must erase it (access_stripped_expect). */
static int apply_stripped_expect(struct storage_txn *t, const struct consensus_entry *e,
                                 const struct node_apply_class *c)
{
	if (c->kind != NODE_APPLY_KIND_RECORD || c->record.salt != NULL || !c->has_id) {
		return CARELOG_OK;
	}
	int rc = access_stripped_expect(t, e->index, c->id, c->record.erased_by_index);
	if (rc == CARELOG_ECORRUPT) {
		char id_hex[2 * JOURNAL_ID_BYTES + 1];
		cl_hex_encode(id_hex, c->id, JOURNAL_ID_BYTES);
		cl_log(CL_LOG_FATAL, "apply.stopped",
		       "index=%llu id=%s erased_by_index=%llu err=ECORRUPT reason=\"the entry "
		       "arrived without its body naming a tombstone that is not later in the log: "
		       "altered data; restore this node from a healthy one\"",
		       (unsigned long long)e->index, id_hex,
		       (unsigned long long)c->record.erased_by_index);
	}
	return rc;
}

/* After each index: nothing stripped may still wait for a tombstone here. */
static int apply_stripped_check(struct storage_txn *t, const struct consensus_entry *e)
{
	uint8_t id[JOURNAL_ID_BYTES];
	uint64_t stripped_index = 0;
	int rc = access_stripped_check(t, e->index, id, &stripped_index);
	if (rc == CARELOG_ECORRUPT) {
		char id_hex[2 * JOURNAL_ID_BYTES + 1];
		cl_hex_encode(id_hex, id, JOURNAL_ID_BYTES);
		cl_log(CL_LOG_FATAL, "apply.stopped",
		       "index=%llu stripped_index=%llu stripped_id=%s err=ECORRUPT reason=\"an entry "
		       "arrived without its body naming this index as its tombstone, but this entry "
		       "does not erase it: altered data; restore this node from a healthy one\"",
		       (unsigned long long)e->index, (unsigned long long)stripped_index, id_hex);
	}
	return rc;
}

static int apply_one(struct storage_txn *t, struct node_apply_state *st,
                     const struct consensus_entry *e, struct membership *conf_buf,
                     struct node_apply_class *c, struct node_apply_outcome *out)
{
	memset(out, 0, sizeof(*out));
	out->index = e->index;
	const char *stop_reason = NULL;
	int rc = node_apply_classify(st, e, conf_buf, c, &stop_reason);
	if (rc != CARELOG_OK) {
		cl_log(CL_LOG_FATAL, "apply.stopped", "index=%llu err=%s reason=\"%s\"",
		       (unsigned long long)e->index, carelog_errname(rc), stop_reason);
		return rc;
	}
	out->kind = c->kind;
	out->signature_verified = c->signature_checked;
	switch (c->kind) {
	case NODE_APPLY_KIND_NOOP:
		break;
	case NODE_APPLY_KIND_CONF:
		rc = node_apply_store_membership(t, c->conf);
		if (rc == CARELOG_OK) {
			st->membership = *c->conf;
			st->has_membership = true;
			cl_log_info("apply.membership", "index=%llu members=%u",
			            (unsigned long long)e->index, c->conf->count);
		}
		break;
	default:
		rc = apply_stripped_expect(t, e, c);
		if (rc == CARELOG_OK) {
			rc = apply_record(t, e, c, out);
		}
		break;
	}
	if (rc == CARELOG_OK) {
		rc = apply_stripped_check(t, e);
	}
	if (rc != CARELOG_OK) {
		return rc;
	}
	uint8_t leaf[CL_SHA256_BYTES];
	node_apply_leaf(e, c, leaf);
	journal_chain_extend(st->chain_head, leaf);
	st->applied_index = e->index;
	return CARELOG_OK;
}

int node_apply_entries(struct storage_txn *t, struct node_apply_state *st,
                       const struct consensus_entry *entries, size_t count,
                       struct node_apply_outcome *outcomes)
{
	if (count == 0) {
		return CARELOG_OK;
	}
	/* Classification scratch lives on the heap: a membership is ~15 KiB. */
	struct node_apply_class *c = malloc(sizeof(*c));
	struct membership *conf_buf = malloc(sizeof(*conf_buf));
	int rc = (c == NULL || conf_buf == NULL) ? CARELOG_ENOMEM : CARELOG_OK;
	for (size_t i = 0; i < count && rc == CARELOG_OK; i++) {
		CL_ASSERT(entries[i].index == st->applied_index + 1);
		rc = apply_one(t, st, &entries[i], conf_buf, c, &outcomes[i]);
	}
	free(c);
	free(conf_buf);
	if (rc != CARELOG_OK) {
		return rc;
	}
	struct storage_applied applied = {.index = st->applied_index};
	memcpy(applied.chain_head, st->chain_head, sizeof(applied.chain_head));
	return storage_applied_put(t, &applied);
}
