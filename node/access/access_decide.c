/* Serving-time decisions: who may read, which entries are shown, who may write, whose op it is. */
#include "node/access/access_internal.h"

#include "carelog/errors.h"
#include "common/assert.h"
#include "node/api/proto.h" /* op numbers only (an enum): no link dependency */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *access_basis_name(enum access_basis b)
{
	switch (b) {
	case ACCESS_BASIS_NONE:
		return "none";
	case ACCESS_BASIS_RELATION:
		return "relation";
	case ACCESS_BASIS_IMPLICIT:
		return "implicit";
	case ACCESS_BASIS_PROXY:
		return "proxy";
	case ACCESS_BASIS_BTG:
		return "btg";
	case ACCESS_BASIS_SELF:
		return "self";
	case ACCESS_BASIS_ASSIGNMENT:
		return "assignment";
	case ACCESS_BASIS_ROLE:
		return "role";
	}
	return "none";
}

const char *access_withheld_text(enum access_withheld w)
{
	switch (w) {
	case ACCESS_SHOWN:
		return "shown";
	case ACCESS_WITHHELD_BLOCKED:
		return "blocked by the patient";
	case ACCESS_WITHHELD_SHIELDED:
		return "shielded entry (sensitive category) of another unit";
	case ACCESS_WITHHELD_FROM_PATIENT:
		return "withheld from the patient's view by a clinician";
	case ACCESS_WITHHELD_FROM_GUARDIANS:
		return "not shown to parents of a 12-15 year old";
	case ACCESS_WITHHELD_COUNT_:
		break;
	}
	return "not shown";
}

int access_params_get(struct storage_txn *t, struct access_params *out)
{
	return access_params_load(t, out);
}

/* --- read --- */

static void deny(struct access_read_decision *d, const char *reason)
{
	d->allowed = false;
	d->basis = ACCESS_BASIS_NONE;
	snprintf(d->reason, sizeof(d->reason), "%s", reason);
}

static void allow(struct access_read_decision *d, enum access_basis basis)
{
	d->allowed = true;
	d->basis = basis;
	d->reason[0] = '\0';
}

struct span_scan {
	uint64_t now_ms;
	bool found;
	int rc;
};

static int span_visit(void *arg, const uint8_t *key, size_t key_len, const uint8_t *value,
                      size_t value_len)
{
	(void)key;
	(void)key_len;
	struct span_scan *s = arg;
	struct access_span_row row;
	s->rc = access_span_decode(value, value_len, &row);
	if (s->rc != CARELOG_OK) {
		return ACCESS_SCAN_STOP;
	}
	if (row.from_ms <= s->now_ms && s->now_ms < row.to_ms) {
		s->found = true;
		return ACCESS_SCAN_STOP;
	}
	return 0;
}

static int decide_ambulance(struct storage_txn *t, struct access_read_decision *d, uint64_t now_ms)
{
	struct access_key k;
	access_key_patient(&k, ACCESS_TAG_AMBULANCE, d->patient_key);
	access_key_str(&k, d->actor.org);
	access_key_str(&k, d->actor.id);
	struct span_scan s = {.now_ms = now_ms, .rc = CARELOG_OK};
	int rc = storage_policy_scan(t, k.b, k.len, false, 0, span_visit, &s);
	if (rc == ACCESS_SCAN_STOP) {
		rc = s.rc;
	}
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (s.found) {
		allow(d, ACCESS_BASIS_ASSIGNMENT);
	} else {
		deny(d, "no active ambulance assignment for this patient");
	}
	return CARELOG_OK;
}

static int decide_clinical(struct storage_txn *t, struct access_read_decision *d, uint64_t now_ms)
{
	struct access_who who = {
	    .id = d->actor.id, .role = d->actor.role, .org = d->actor.org, .unit = d->actor.unit};
	enum access_basis basis = ACCESS_BASIS_NONE;
	uint32_t categories = 0;
	int rc = access_clinical_basis(t, &who, d->patient_key, now_ms, true, &basis, &categories);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (basis == ACCESS_BASIS_NONE) {
		snprintf(d->reason, sizeof(d->reason),
		         "no care relation, recent treatment or break-the-glass grant for this "
		         "patient at %s",
		         d->actor.org);
		return CARELOG_OK;
	}
	allow(d, basis);
	d->relation_categories = categories;
	d->covers_shielded = basis == ACCESS_BASIS_BTG;
	return CARELOG_OK;
}

int access_decide_read(struct storage_txn *t, const struct access_actor *actor, const char *patient,
                       uint64_t now_ms, struct access_read_decision *out)
{
	memset(out, 0, sizeof(*out));
	out->actor = *actor;
	journal_patient_key(patient, out->patient_key);
	deny(out, "not allowed");
	const char *role = actor->role;
	if (patient[0] == '\0' || strcmp(patient, POLICY_REGION_PATIENT) == 0) {
		deny(out, "the region's shared entries are not a patient's record");
		return CARELOG_OK;
	}
	if (role[0] == '\0') {
		deny(out, "no role given for the person asking");
		return CARELOG_OK;
	}
	if (strcmp(role, "patient") == 0) {
		if (strcmp(actor->id, patient) != 0) {
			deny(out, "patients may read only their own record");
			return CARELOG_OK;
		}
		allow(out, ACCESS_BASIS_SELF);
		out->patient_view = true;
		out->covers_shielded = true;
		return CARELOG_OK;
	}
	if (strcmp(role, "proxy") == 0) {
		struct access_proxy_eval ev;
		int rc = access_proxy_evaluate(t, out->patient_key, actor->id, now_ms, &ev);
		if (rc != CARELOG_OK) {
			return rc;
		}
		if (!ev.ok) {
			deny(out, ev.reason);
			return CARELOG_OK;
		}
		allow(out, ACCESS_BASIS_PROXY);
		out->patient_view = true;
		out->reduced = ev.reduced;
		return CARELOG_OK;
	}
	if (strcmp(role, "ambulance") == 0) {
		return decide_ambulance(t, out, now_ms);
	}
	if (access_role_clinical(role)) {
		return decide_clinical(t, out, now_ms);
	}
	if (strcmp(role, "system") == 0) {
		deny(out, "role system is reserved for the node itself");
	} else if (strcmp(role, "auditor") == 0) {
		deny(out, "role auditor may not read patient records (auditors use the access "
		          "log)");
	} else {
		snprintf(out->reason, sizeof(out->reason), "role %s may not read patient records",
		         role);
	}
	return CARELOG_OK;
}

/* --- visibility --- */

struct block_scan {
	const struct access_read_decision *d;
	const struct journal_header *h;
	const uint8_t *id;
	bool blocked;
	int rc;
};

static int block_visit(void *arg, const uint8_t *key, size_t key_len, const uint8_t *value,
                       size_t value_len)
{
	(void)key;
	(void)key_len;
	struct block_scan *s = arg;
	struct access_block_row row;
	s->rc = access_block_decode(value, value_len, &row);
	if (s->rc != CARELOG_OK) {
		return ACCESS_SCAN_STOP;
	}
	bool targets =
	    (row.target_org[0] != '\0' && strcmp(row.target_org, s->d->actor.org) == 0) ||
	    (row.target_actor[0] != '\0' && strcmp(row.target_actor, s->d->actor.id) == 0);
	bool covers =
	    row.scope == ACCESS_BLOCK_ALL ||
	    (row.scope == ACCESS_BLOCK_CATEGORY && strcmp(row.category, s->h->sensitivity) == 0) ||
	    (row.scope == ACCESS_BLOCK_ENTRY && memcmp(row.entry, s->id, JOURNAL_ID_BYTES) == 0);
	if (targets && covers) {
		s->blocked = true;
		return ACCESS_SCAN_STOP;
	}
	return 0;
}

static int entry_blocked(struct storage_txn *t, const struct access_read_decision *d,
                         const struct journal_header *h, const uint8_t *id, bool *out)
{
	struct access_key k;
	access_key_patient(&k, ACCESS_TAG_BLOCK, d->patient_key);
	struct block_scan s = {.d = d, .h = h, .id = id, .rc = CARELOG_OK};
	int rc = storage_policy_scan(t, k.b, k.len, false, 0, block_visit, &s);
	if (rc == ACCESS_SCAN_STOP) {
		rc = s.rc;
	}
	*out = s.blocked;
	return rc;
}

struct withhold_scan {
	uint8_t from_bits; /* 1 << enum access_withhold_from */
	int rc;
};

static int withhold_visit(void *arg, const uint8_t *key, size_t key_len, const uint8_t *value,
                          size_t value_len)
{
	(void)key;
	(void)key_len;
	struct withhold_scan *s = arg;
	if (value_len != JOURNAL_ID_BYTES + 1 ||
	    (value[JOURNAL_ID_BYTES] != ACCESS_FROM_PATIENT &&
	     value[JOURNAL_ID_BYTES] != ACCESS_FROM_GUARDIANS)) {
		s->rc = CARELOG_ECORRUPT;
		return ACCESS_SCAN_STOP;
	}
	s->from_bits = (uint8_t)(s->from_bits | (1u << value[JOURNAL_ID_BYTES]));
	return 0;
}

/* From whom the entry is withheld (withholds of it; for a withhold entry itself, its own
 * "from": showing it would tell what it hides). */
static int entry_withheld_from(struct storage_txn *t, const struct journal_header *h,
                               const uint8_t *id, uint8_t *out_bits)
{
	struct access_key k;
	access_key_begin(&k, ACCESS_TAG_WITHHOLD);
	access_key_bytes(&k, id, JOURNAL_ID_BYTES);
	struct withhold_scan s = {.from_bits = 0, .rc = CARELOG_OK};
	int rc = storage_policy_scan(t, k.b, k.len, false, 0, withhold_visit, &s);
	if (rc == ACCESS_SCAN_STOP) {
		rc = s.rc;
	}
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (policy_kind_of(h->kind) == POLICY_KIND_WITHHOLD) {
		struct access_entry_row row;
		rc = access_entry_row_get(t, id, &row);
		if (rc == CARELOG_OK) {
			s.from_bits = (uint8_t)(s.from_bits | (1u << row.flag));
		} else if (rc != CARELOG_ENOTFOUND) {
			return rc; /* not found: a refused withhold, which hides nothing */
		}
	}
	*out_bits = s.from_bits;
	return CARELOG_OK;
}

/* One version of an entry judged on its own (blocks, shielding, withholds of that version). */
static int version_visible(struct storage_txn *t, const struct access_read_decision *d,
                           const struct journal_header *h, const uint8_t *id,
                           enum access_withheld *out)
{
	bool patient_side = d->basis == ACCESS_BASIS_SELF || d->basis == ACCESS_BASIS_PROXY;
	if (!patient_side) {
		bool blocked = false;
		int rc = entry_blocked(t, d, h, id, &blocked);
		if (rc != CARELOG_OK) {
			return rc;
		}
		if (blocked) {
			*out = ACCESS_WITHHELD_BLOCKED;
			return CARELOG_OK;
		}
	}
	bool shielded = strcmp(h->sensitivity, "normal") != 0;
	if (shielded && d->basis != ACCESS_BASIS_SELF) {
		if (d->reduced) {
			*out = ACCESS_WITHHELD_FROM_GUARDIANS;
			return CARELOG_OK;
		}
		/* The authoring unit is its clinicians: a proxy is never one of them, whatever
		 * unit the request claims. */
		bool own_unit = !d->patient_view && strcmp(h->org, d->actor.org) == 0 &&
		                strcmp(h->unit, d->actor.unit) == 0;
		uint32_t bit = access_category_bit(h->sensitivity);
		bool covered =
		    d->covers_shielded || (bit != 0 && (d->relation_categories & bit) != 0);
		if (!own_unit && !covered) {
			*out = ACCESS_WITHHELD_SHIELDED;
			return CARELOG_OK;
		}
	}
	if (d->patient_view) {
		uint8_t from_bits = 0;
		int rc = entry_withheld_from(t, h, id, &from_bits);
		if (rc != CARELOG_OK) {
			return rc;
		}
		if ((from_bits & (1u << ACCESS_FROM_PATIENT)) != 0) {
			*out = ACCESS_WITHHELD_FROM_PATIENT;
			return CARELOG_OK;
		}
		if (d->reduced && (from_bits & (1u << ACCESS_FROM_GUARDIANS)) != 0) {
			*out = ACCESS_WITHHELD_FROM_GUARDIANS;
			return CARELOG_OK;
		}
	}
	*out = ACCESS_SHOWN;
	return CARELOG_OK;
}

/* The first reason in the order checked wins (blocked before shielded before withheld). */
static enum access_withheld withheld_merge(enum access_withheld a, enum access_withheld b)
{
	if (a == ACCESS_SHOWN) {
		return b;
	}
	return (b != ACCESS_SHOWN && b < a) ? b : a;
}

/* Header of the accepted entry `id` (*out_found false if this node has no such entry). */
static int header_of(struct storage_txn *t, const uint8_t id[JOURNAL_ID_BYTES],
                     struct journal_header *out, bool *out_found)
{
	*out_found = false;
	uint64_t index = 0;
	uint8_t status = 0;
	int rc = storage_index_entry_get(t, id, &index, &status);
	if (rc == CARELOG_ENOTFOUND) {
		return CARELOG_OK;
	}
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (status != ACCESS_ENTRY_STATUS_ACCEPTED) {
		return CARELOG_OK;
	}
	struct storage_entry e;
	rc = storage_log_get(t, index, &e);
	if (rc != CARELOG_OK) {
		return rc;
	}
	struct journal_record r;
	if (journal_record_decode(e.data, e.data_len, &r) != CARELOG_OK ||
	    journal_header_decode(r.header, r.header_len, out) != CARELOG_OK) {
		return CARELOG_ECORRUPT; /* it was applied: it decoded */
	}
	*out_found = true;
	return CARELOG_OK;
}

/* A clinical entry and every other version of it (those it corrects, back through header
 * `corrects`, and those that superseded it, forward through access_superseded) are one item:
 * a restriction of any version hides all of them. At most ACCESS_CHAIN_STEPS_MAX versions each
 * way are looked at. */
enum { ACCESS_CHAIN_STEPS_MAX = 256 };

static int chain_visible(struct storage_txn *t, const struct access_read_decision *d,
                         const struct journal_header *h, const uint8_t *id,
                         enum access_withheld *out)
{
	enum access_withheld w = ACCESS_SHOWN;
	int rc = version_visible(t, d, h, id, &w);
	if (rc != CARELOG_OK) {
		return rc;
	}
	struct journal_header *other = malloc(sizeof(*other));
	if (other == NULL) {
		return CARELOG_ENOMEM;
	}
	uint8_t cur[JOURNAL_ID_BYTES];
	/* Back: the versions this one corrects. */
	bool more = h->has_corrects;
	if (more) {
		memcpy(cur, h->corrects, sizeof(cur));
	}
	for (int i = 0; rc == CARELOG_OK && more && i < ACCESS_CHAIN_STEPS_MAX; i++) {
		bool found = false;
		rc = header_of(t, cur, other, &found);
		if (rc != CARELOG_OK || !found) {
			break;
		}
		enum access_withheld v = ACCESS_SHOWN;
		rc = version_visible(t, d, other, cur, &v);
		w = withheld_merge(w, v);
		more = other->has_corrects;
		if (more) {
			memcpy(cur, other->corrects, sizeof(cur));
		}
	}
	/* Forward: the versions that superseded it. */
	memcpy(cur, id, sizeof(cur));
	for (int i = 0; rc == CARELOG_OK && i < ACCESS_CHAIN_STEPS_MAX; i++) {
		bool superseded = false;
		uint8_t by[JOURNAL_ID_BYTES];
		rc = access_superseded(t, cur, &superseded, by);
		if (rc != CARELOG_OK || !superseded) {
			break;
		}
		bool found = false;
		rc = header_of(t, by, other, &found);
		if (rc != CARELOG_OK || !found) {
			break;
		}
		enum access_withheld v = ACCESS_SHOWN;
		rc = version_visible(t, d, other, by, &v);
		w = withheld_merge(w, v);
		memcpy(cur, by, sizeof(cur));
	}
	free(other);
	if (rc == CARELOG_OK) {
		*out = w;
	}
	return rc;
}

/* A withholding names an entry and gives a reason about it: it is hidden wherever that entry
 * is (besides from those it hides the entry from). */
static int withhold_target_visible(struct storage_txn *t, const struct access_read_decision *d,
                                   const uint8_t *id, enum access_withheld *out)
{
	*out = ACCESS_SHOWN;
	struct access_entry_row row;
	int rc = access_entry_row_get(t, id, &row);
	if (rc == CARELOG_ENOTFOUND) {
		return CARELOG_OK; /* a refused withhold names nothing in the record */
	}
	if (rc != CARELOG_OK) {
		return rc;
	}
	/* The state key: H | withheld entry id | index. */
	if (row.kind != POLICY_KIND_WITHHOLD || row.state.len != 1 + JOURNAL_ID_BYTES + 8 ||
	    row.state.b[0] != ACCESS_TAG_WITHHOLD) {
		return CARELOG_ECORRUPT;
	}
	const uint8_t *target = row.state.b + 1;
	struct journal_header *th = malloc(sizeof(*th));
	if (th == NULL) {
		return CARELOG_ENOMEM;
	}
	bool found = false;
	rc = header_of(t, target, th, &found);
	if (rc == CARELOG_OK && !found) {
		rc = CARELOG_ECORRUPT; /* apply checked it was an accepted entry */
	}
	if (rc == CARELOG_OK) {
		rc = chain_visible(t, d, th, target, out);
	}
	free(th);
	return rc;
}

int access_entry_visible(struct storage_txn *t, const struct access_read_decision *d,
                         const struct journal_header *h, const uint8_t id[JOURNAL_ID_BYTES],
                         enum access_withheld *out)
{
	if (!d->allowed) {
		return CARELOG_EINVAL;
	}
	enum policy_kind kind = policy_kind_of(h->kind);
	if (strcmp(h->patient, POLICY_REGION_PATIENT) == 0 || kind == POLICY_KIND_AUDIT_BATCH ||
	    kind == POLICY_KIND_PARAMS) {
		return CARELOG_ENOTFOUND; /* not part of any patient's record: never shown, never
		                             counted */
	}
	uint8_t pkey[CL_SHA256_BYTES];
	journal_patient_key(h->patient, pkey);
	if (memcmp(pkey, d->patient_key, sizeof(pkey)) != 0) {
		return CARELOG_EINVAL; /* the decision is for another patient */
	}
	if (kind == POLICY_KIND_NONE) {
		return chain_visible(t, d, h, id, out);
	}
	enum access_withheld w = ACCESS_SHOWN;
	int rc = version_visible(t, d, h, id, &w);
	if (rc == CARELOG_OK && kind == POLICY_KIND_WITHHOLD) {
		enum access_withheld v = ACCESS_SHOWN;
		rc = withhold_target_visible(t, d, id, &v);
		w = withheld_merge(w, v);
	}
	if (rc == CARELOG_OK) {
		*out = w;
	}
	return rc;
}

int access_superseded(struct storage_txn *t, const uint8_t id[JOURNAL_ID_BYTES], bool *out,
                      uint8_t out_by[JOURNAL_ID_BYTES])
{
	struct access_key k;
	access_key_begin(&k, ACCESS_TAG_SUPERSEDED);
	access_key_bytes(&k, id, JOURNAL_ID_BYTES);
	const uint8_t *v = NULL;
	size_t len = 0;
	int rc = storage_policy_get(t, k.b, k.len, &v, &len);
	if (rc == CARELOG_ENOTFOUND) {
		*out = false;
		return CARELOG_OK;
	}
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (len != JOURNAL_ID_BYTES + 8) {
		return CARELOG_ECORRUPT;
	}
	if (out_by != NULL) {
		memcpy(out_by, v, JOURNAL_ID_BYTES);
	}
	*out = true;
	return CARELOG_OK;
}

int access_erased(struct storage_txn *t, const uint8_t id[JOURNAL_ID_BYTES], bool *out,
                  struct access_erasure *out_erasure)
{
	struct access_key k;
	access_key_begin(&k, ACCESS_TAG_ERASURE);
	access_key_bytes(&k, id, JOURNAL_ID_BYTES);
	const uint8_t *v = NULL;
	size_t len = 0;
	int rc = storage_policy_get(t, k.b, k.len, &v, &len);
	if (rc == CARELOG_ENOTFOUND) {
		*out = false;
		return CARELOG_OK;
	}
	if (rc != CARELOG_OK) {
		return rc;
	}
	struct access_rbuf r = {.p = v, .len = len};
	struct access_erasure e;
	uint8_t tombstone_id[JOURNAL_ID_BYTES];
	e.tombstone_index = access_r_u64(&r);
	e.time_ms = access_r_u64(&r);
	access_r_bytes(&r, tombstone_id, sizeof(tombstone_id));
	access_r_str(&r, e.author, sizeof(e.author));
	access_r_str(&r, e.org, sizeof(e.org));
	access_r_str(&r, e.basis, sizeof(e.basis));
	rc = access_r_end(&r);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (out_erasure != NULL) {
		*out_erasure = e;
	}
	*out = true;
	return CARELOG_OK;
}

/* --- write --- */

int access_decide_write(struct storage_txn *t, const struct access_actor *actor,
                        const char *patient, const char *kind, uint64_t now_ms, bool *out_allowed,
                        enum access_basis *out_basis, char *reason, size_t reason_len)
{
	struct access_who who = {
	    .id = actor->id, .role = actor->role, .org = actor->org, .unit = actor->unit};
	uint8_t pkey[CL_SHA256_BYTES];
	journal_patient_key(patient, pkey);
	bool ok = false;
	enum access_basis basis = ACCESS_BASIS_NONE;
	const char *why = NULL;
	int rc = CARELOG_OK;
	enum policy_kind pk = policy_kind_of(kind);
	if (actor->role[0] == '\0') {
		why = "no role given for the person asking";
	} else if (pk != POLICY_KIND_NONE) {
		rc =
		    access_judge_policy_role(t, pk, &who, patient, pkey, now_ms, &ok, &basis, &why);
	} else if (journal_kind_known(kind)) {
		rc = access_judge_clinical_write(t, &who, patient, pkey, now_ms, &ok, &basis, &why);
	} else {
		why = "unknown entry kind";
	}
	if (rc != CARELOG_OK) {
		return rc;
	}
	*out_allowed = ok;
	*out_basis = ok ? basis : ACCESS_BASIS_NONE;
	if (reason != NULL && reason_len > 0) {
		snprintf(reason, reason_len, "%s", ok || why == NULL ? "" : why);
	}
	return CARELOG_OK;
}

/* --- operations --- */

/* A new client op must get its class here first (docs/access.md "Operations"). */
CL_STATIC_ASSERT(PROTO_OP_COUNT_ == 11, "every client protocol op has an access class below");

enum access_op_class access_op_class(uint8_t op)
{
	switch (op) {
	case PROTO_OP_STATUS:
	case PROTO_OP_VERIFY:
	case PROTO_OP_MEMBER:
	case PROTO_OP_TRANSFER:
		return ACCESS_OP_OPERATOR;
	case PROTO_OP_READ:
	case PROTO_OP_GET:
		return ACCESS_OP_PATIENT_READ;
	case PROTO_OP_APPEND:
	case PROTO_OP_POLICY:
		return ACCESS_OP_PATIENT_WRITE;
	case PROTO_OP_ACCESS_LOG:
		return ACCESS_OP_ACCESS_LOG;
	case PROTO_OP_BTG_LIST:
		return ACCESS_OP_BTG_LIST;
	default:
		return ACCESS_OP_UNKNOWN;
	}
}
