/* Apply-time judging of accepted records and the policy state they change (deterministic). */
#include "node/access/access_internal.h"

#include "carelog/errors.h"
#include "common/assert.h"
#include "common/bytes.h"
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Nothing here reads a clock or the node's config: only the record, its leader time stamp and
 * the policy state applied so far, so every node reaches the same verdict. Every rule is judged
 * before the first write, so a refused entry changes nothing but its refusal row.
 */

struct apply_ctx {
	struct storage_txn *t;
	uint64_t index;
	uint64_t time_ms; /* the leader's stamp */
	const struct journal_header *h;
	const uint8_t *id;
	uint8_t pkey[CL_SHA256_BYTES];
	struct access_who who;
	const char *reason; /* set: refused */
};

static int refuse(struct apply_ctx *a, const char *reason)
{
	CL_ASSERT(reason != NULL);
	a->reason = reason;
	return CARELOG_OK;
}

/* Header of the entry at log `index`: CARELOG_EPROTO when its record or header does not
 * decode. The record's views point into the store (valid until the txn ends). */
static int load_entry(struct storage_txn *t, uint64_t index, struct storage_entry *out_entry,
                      struct journal_record *out_record, struct journal_header *out_header)
{
	int rc = storage_log_get(t, index, out_entry);
	if (rc != CARELOG_OK) {
		return rc;
	}
	rc = journal_record_decode(out_entry->data, out_entry->data_len, out_record);
	if (rc != CARELOG_OK) {
		return CARELOG_EPROTO;
	}
	rc = journal_header_decode(out_record->header, out_record->header_len, out_header);
	return rc == CARELOG_OK ? CARELOG_OK : CARELOG_EPROTO;
}

/* An accepted entry of this patient's record: *out_ok, its header, or a refusal. */
static int load_patient_entry(struct apply_ctx *a, const uint8_t id[JOURNAL_ID_BYTES],
                              const char *what_missing, struct journal_header *out, bool *out_ok)
{
	*out_ok = false;
	uint64_t index = 0;
	uint8_t status = 0;
	int rc = storage_index_entry_get(a->t, id, &index, &status);
	if (rc == CARELOG_ENOTFOUND ||
	    (rc == CARELOG_OK && status != ACCESS_ENTRY_STATUS_ACCEPTED)) {
		return refuse(a, what_missing);
	}
	if (rc != CARELOG_OK) {
		return rc;
	}
	struct storage_entry e;
	struct journal_record r;
	rc = load_entry(a->t, index, &e, &r, out);
	if (rc == CARELOG_EPROTO) {
		return refuse(a, what_missing);
	}
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (strcmp(out->patient, a->h->patient) != 0) {
		return refuse(a, "the referenced entry belongs to another patient");
	}
	*out_ok = true;
	return CARELOG_OK;
}

/* The registry row of a policy entry of `kind` this entry refers to, for the same patient. */
static int load_ref(struct apply_ctx *a, const uint8_t ref[JOURNAL_ID_BYTES], enum policy_kind kind,
                    const char *what, struct access_entry_row *out, bool *out_ok)
{
	*out_ok = false;
	int rc = access_entry_row_get(a->t, ref, out);
	if (rc == CARELOG_ENOTFOUND || (rc == CARELOG_OK && out->kind != kind)) {
		return refuse(a, what);
	}
	if (rc != CARELOG_OK) {
		return rc;
	}
	struct storage_entry e;
	struct journal_record r;
	struct journal_header hdr;
	rc = load_entry(a->t, out->index, &e, &r, &hdr);
	if (rc != CARELOG_OK) {
		return rc == CARELOG_EPROTO ? CARELOG_ECORRUPT
		                            : rc; /* it was applied: it decoded */
	}
	if (strcmp(hdr.patient, a->h->patient) != 0) {
		return refuse(a, "the referenced entry belongs to another patient");
	}
	*out_ok = true;
	return CARELOG_OK;
}

static int register_entry(struct apply_ctx *a, enum policy_kind kind, uint8_t flag,
                          const struct access_key *state)
{
	struct access_entry_row row = {.kind = (uint8_t)kind, .index = a->index, .flag = flag};
	row.state = *state;
	return access_entry_row_put(a->t, a->id, &row);
}

/* --- bounded tables: prune expired rows when a prefix is full --- */

typedef int (*expired_fn)(const uint8_t *value, size_t len, uint64_t now_ms, bool *out);

struct room_scan {
	expired_fn expired;
	uint64_t now_ms;
	size_t count;
	struct access_key *victims; /* ACCESS_ROWS_PER_PREFIX_MAX */
	size_t victims_count;
	int rc;
};

static int room_visit(void *arg, const uint8_t *key, size_t key_len, const uint8_t *value,
                      size_t value_len)
{
	struct room_scan *s = arg;
	s->count++;
	if (s->expired == NULL) {
		return 0;
	}
	bool gone = false;
	s->rc = s->expired(value, value_len, s->now_ms, &gone);
	if (s->rc != CARELOG_OK) {
		return ACCESS_SCAN_STOP;
	}
	if (gone) {
		CL_ASSERT(s->victims_count < ACCESS_ROWS_PER_PREFIX_MAX);
		CL_ASSERT(key_len <= sizeof(s->victims[0].b));
		memcpy(s->victims[s->victims_count].b, key, key_len);
		s->victims[s->victims_count].len = key_len;
		s->victims_count++;
	}
	return 0;
}

/* Whether one more row fits under `prefix`; deletes expired rows first when it is full. */
static int prefix_room(struct apply_ctx *a, const struct access_key *prefix, expired_fn expired,
                       bool *out_room)
{
	struct room_scan s = {.expired = expired, .now_ms = a->time_ms, .rc = CARELOG_OK};
	if (expired != NULL) {
		s.victims = malloc(ACCESS_ROWS_PER_PREFIX_MAX * sizeof(*s.victims));
		if (s.victims == NULL) {
			return CARELOG_ENOMEM;
		}
	}
	int rc = storage_policy_scan(a->t, prefix->b, prefix->len, false,
	                             ACCESS_ROWS_PER_PREFIX_MAX, room_visit, &s);
	if (rc == ACCESS_SCAN_STOP) {
		rc = s.rc;
	}
	/* Prune only when that makes room: a refused entry changes nothing. */
	if (rc == CARELOG_OK && s.count >= ACCESS_ROWS_PER_PREFIX_MAX &&
	    s.count - s.victims_count < ACCESS_ROWS_PER_PREFIX_MAX) {
		for (size_t i = 0; i < s.victims_count && rc == CARELOG_OK; i++) {
			rc = storage_policy_delete(a->t, s.victims[i].b, s.victims[i].len);
		}
		s.count -= s.victims_count;
	}
	free(s.victims);
	*out_room = s.count < ACCESS_ROWS_PER_PREFIX_MAX;
	return rc;
}

static int relation_expired(const uint8_t *v, size_t len, uint64_t now_ms, bool *out)
{
	struct access_relation_row row;
	int rc = access_relation_decode(v, len, &row);
	*out = rc == CARELOG_OK && row.to_ms != 0 && row.to_ms <= now_ms;
	return rc;
}

static int proxy_expired(const uint8_t *v, size_t len, uint64_t now_ms, bool *out)
{
	struct access_proxy_row row;
	int rc = access_proxy_decode(v, len, &row);
	*out = rc == CARELOG_OK && row.to_ms != 0 && row.to_ms <= now_ms;
	return rc;
}

static int span_expired(const uint8_t *v, size_t len, uint64_t now_ms, bool *out)
{
	struct access_span_row row;
	int rc = access_span_decode(v, len, &row);
	*out = rc == CARELOG_OK && row.to_ms <= now_ms;
	return rc;
}

static int btg_expired(const uint8_t *v, size_t len, uint64_t now_ms, bool *out)
{
	/* An unreviewed grant stays until reviewed, expired or not. */
	struct access_btg_row row;
	int rc = access_btg_decode(v, len, &row);
	*out = rc == CARELOG_OK && row.reviewed && row.g.expires_ms <= now_ms;
	return rc;
}

/* F | entry id -> the reason a refused entry was refused. */
static void refusal_key(const uint8_t id[JOURNAL_ID_BYTES], struct access_key *k)
{
	access_key_begin(k, ACCESS_TAG_REFUSED);
	access_key_bytes(k, id, JOURNAL_ID_BYTES);
}

/* --- clinical entries --- */

static bool status_corrects(const char *status)
{
	return strcmp(status, "amended") == 0 || strcmp(status, "entered-in-error") == 0;
}

static void superseded_key(const uint8_t id[JOURNAL_ID_BYTES], struct access_key *k)
{
	access_key_begin(k, ACCESS_TAG_SUPERSEDED);
	access_key_bytes(k, id, JOURNAL_ID_BYTES);
}

/* The entry a correction supersedes must be an accepted clinical entry of the same patient
 * that no other version superseded already. */
static int judge_correction(struct apply_ctx *a)
{
	struct journal_header old;
	bool ok = false;
	int rc = load_patient_entry(a, a->h->corrects, "the corrected entry is not in the record",
	                            &old, &ok);
	if (rc != CARELOG_OK || !ok) {
		return rc;
	}
	if (policy_kind_of(old.kind) != POLICY_KIND_NONE) {
		return refuse(a, "policy entries are not corrected this way (end, lift, revoke or "
		                 "review them)");
	}
	struct access_key k;
	superseded_key(a->h->corrects, &k);
	const uint8_t *v = NULL;
	size_t len = 0;
	rc = storage_policy_get(a->t, k.b, k.len, &v, &len);
	if (rc == CARELOG_OK) {
		return refuse(a, "the corrected entry was already corrected by a later version: "
		                 "correct that one");
	}
	return rc == CARELOG_ENOTFOUND ? CARELOG_OK : rc;
}

static int apply_clinical(struct apply_ctx *a)
{
	bool ok = false;
	enum access_basis basis = ACCESS_BASIS_NONE;
	const char *reason = NULL;
	int rc = access_judge_clinical_write(a->t, &a->who, a->h->patient, a->pkey, a->time_ms, &ok,
	                                     &basis, &reason);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (!ok) {
		return refuse(a, reason);
	}
	bool corrects = status_corrects(a->h->status);
	if (corrects) {
		CL_ASSERT(a->h->has_corrects); /* journal_header_check */
		rc = judge_correction(a);
		if (rc != CARELOG_OK || a->reason != NULL) {
			return rc;
		}
	}
	/* Implicit access: the organisation is treating the patient. Only a clinician's write
	 * under a care relation counts: not a patient or proxy writing through an organisation's
	 * node, and not a break-the-glass write, which would otherwise open the record to the
	 * whole organisation for the implicit window without anyone's own grant or review. */
	if (access_role_clinical(a->h->role) && basis == ACCESS_BASIS_RELATION) {
		struct access_key k;
		access_key_patient(&k, ACCESS_TAG_IMPLICIT, a->pkey);
		access_key_str(&k, a->h->org);
		const uint8_t *v = NULL;
		size_t len = 0;
		uint64_t last_ms = 0;
		rc = storage_policy_get(a->t, k.b, k.len, &v, &len);
		if (rc == CARELOG_OK) {
			if (len != 16) {
				return CARELOG_ECORRUPT;
			}
			struct access_rbuf r = {.p = v, .len = len};
			last_ms = access_r_u64(&r);
		} else if (rc != CARELOG_ENOTFOUND) {
			return rc;
		}
		if (a->time_ms >= last_ms) { /* leader stamps may step back across leaders */
			struct access_wbuf w = {.len = 0};
			access_w_u64(&w, a->time_ms);
			access_w_u64(&w, a->index);
			rc = storage_policy_put(a->t, k.b, k.len, w.b, w.len);
			if (rc != CARELOG_OK) {
				return rc;
			}
		}
	}
	if (corrects) {
		struct access_key k;
		superseded_key(a->h->corrects, &k);
		struct access_wbuf w = {.len = 0};
		access_w_bytes(&w, a->id, JOURNAL_ID_BYTES);
		access_w_u64(&w, a->index);
		rc = storage_policy_put(a->t, k.b, k.len, w.b, w.len);
	}
	return rc;
}

/* --- policy entries --- */

static int apply_patient(struct apply_ctx *a, const struct policy_body *b)
{
	struct access_key k;
	access_key_patient(&k, ACCESS_TAG_PATIENT, a->pkey);
	struct access_wbuf w = {.len = 0};
	access_w_u64(&w, a->index);
	access_w_str(&w, b->birth_date);
	return storage_policy_put(a->t, k.b, k.len, w.b, w.len);
}

static int apply_relation(struct apply_ctx *a, const struct policy_body *b)
{
	if (strcmp(b->org, a->h->org) != 0) {
		return refuse(a, "a care relation is recorded by the organisation it is with");
	}
	struct access_key k;
	access_key_patient(&k, ACCESS_TAG_RELATION, a->pkey);
	access_key_str(&k, b->org);
	bool room = false;
	int rc = prefix_room(a, &k, relation_expired, &room);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (!room) {
		return refuse(a, "too many care relations between this patient and the "
		                 "organisation: end some first");
	}
	struct access_relation_row row = {.from_ms = b->from_ms, .to_ms = b->to_ms};
	memcpy(row.id, a->id, sizeof(row.id));
	for (uint32_t i = 0; i < b->categories_count; i++) {
		row.categories |= access_category_bit(b->categories[i]);
	}
	snprintf(row.unit, sizeof(row.unit), "%s", b->unit);
	access_key_u64(&k, a->index);
	struct access_wbuf w;
	access_relation_encode(&row, &w);
	rc = storage_policy_put(a->t, k.b, k.len, w.b, w.len);
	return rc == CARELOG_OK ? register_entry(a, POLICY_KIND_CARE_RELATION, 0, &k) : rc;
}

/* The org of a relation row key R | pkey | u8 len | org | index. */
static bool relation_key_org_is(const struct access_key *k, const char *org)
{
	size_t at = 1 + CL_SHA256_BYTES;
	size_t n = strlen(org);
	return k->len == at + 1 + n + 8 && k->b[at] == n && memcmp(k->b + at + 1, org, n) == 0;
}

/* Deletes the state row a lift/end/revoke refers to; refuses if it is gone already. */
static int delete_state(struct apply_ctx *a, const struct access_key *state, const char *gone)
{
	int rc = storage_policy_delete(a->t, state->b, state->len);
	return rc == CARELOG_ENOTFOUND ? refuse(a, gone) : rc;
}

static int apply_relation_end(struct apply_ctx *a, const struct policy_body *b)
{
	struct access_entry_row ref;
	bool ok = false;
	int rc = load_ref(a, b->ref, POLICY_KIND_CARE_RELATION,
	                  "the referenced entry is not a care relation", &ref, &ok);
	if (rc != CARELOG_OK || !ok) {
		return rc;
	}
	if (!relation_key_org_is(&ref.state, a->h->org)) {
		return refuse(a, "a care relation is ended by the organisation it is with");
	}
	return delete_state(a, &ref.state, "the care relation has already ended");
}

static int apply_block(struct apply_ctx *a, const struct policy_body *b)
{
	struct access_block_row row = {.scope = ACCESS_BLOCK_ALL};
	memcpy(row.id, a->id, sizeof(row.id));
	snprintf(row.target_org, sizeof(row.target_org), "%s", b->target_org);
	snprintf(row.target_actor, sizeof(row.target_actor), "%s", b->actor);
	if (strcmp(b->word, "category") == 0) {
		row.scope = ACCESS_BLOCK_CATEGORY;
		snprintf(row.category, sizeof(row.category), "%s", b->category);
	} else if (strcmp(b->word, "entry") == 0) {
		row.scope = ACCESS_BLOCK_ENTRY;
		CL_ASSERT(b->has_ref); /* policy_body_decode */
		memcpy(row.entry, b->ref, sizeof(row.entry));
		struct journal_header hdr;
		bool ok = false;
		int rc = load_patient_entry(a, b->ref, "the blocked entry is not in the record",
		                            &hdr, &ok);
		if (rc != CARELOG_OK || !ok) {
			return rc;
		}
	}
	struct access_key k;
	access_key_patient(&k, ACCESS_TAG_BLOCK, a->pkey);
	bool room = false;
	int rc = prefix_room(a, &k, NULL, &room);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (!room) {
		return refuse(a, "too many active blocks for this patient: lift some first");
	}
	access_key_u64(&k, a->index);
	struct access_wbuf w;
	access_block_encode(&row, &w);
	rc = storage_policy_put(a->t, k.b, k.len, w.b, w.len);
	return rc == CARELOG_OK ? register_entry(a, POLICY_KIND_BLOCK, 0, &k) : rc;
}

static int apply_lift(struct apply_ctx *a, const struct policy_body *b, enum policy_kind of,
                      const char *not_it, const char *gone)
{
	struct access_entry_row ref;
	bool ok = false;
	int rc = load_ref(a, b->ref, of, not_it, &ref, &ok);
	if (rc != CARELOG_OK || !ok) {
		return rc;
	}
	return delete_state(a, &ref.state, gone);
}

static int apply_withhold(struct apply_ctx *a, const struct policy_body *b)
{
	CL_ASSERT(b->has_ref); /* policy_body_decode */
	struct journal_header hdr;
	bool ok = false;
	int rc =
	    load_patient_entry(a, b->ref, "the withheld entry is not in the record", &hdr, &ok);
	if (rc != CARELOG_OK || !ok) {
		return rc;
	}
	if (policy_kind_of(hdr.kind) != POLICY_KIND_NONE) {
		return refuse(a, "only clinical entries can be withheld");
	}
	uint8_t from =
	    strcmp(b->word, "guardians") == 0 ? ACCESS_FROM_GUARDIANS : ACCESS_FROM_PATIENT;
	struct access_key k;
	access_key_begin(&k, ACCESS_TAG_WITHHOLD);
	access_key_bytes(&k, b->ref, JOURNAL_ID_BYTES);
	bool room = false;
	rc = prefix_room(a, &k, NULL, &room);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (!room) {
		return refuse(a, "too many withholdings of this entry: lift some first");
	}
	access_key_u64(&k, a->index);
	struct access_wbuf w = {.len = 0};
	access_w_bytes(&w, a->id, JOURNAL_ID_BYTES);
	access_w_u8(&w, from);
	rc = storage_policy_put(a->t, k.b, k.len, w.b, w.len);
	return rc == CARELOG_OK ? register_entry(a, POLICY_KIND_WITHHOLD, from, &k) : rc;
}

static int apply_proxy_grant(struct apply_ctx *a, const struct policy_body *b)
{
	bool parent = strcmp(b->word, "parent") == 0;
	bool admin = strcmp(a->h->role, "admin") == 0;
	bool self = strcmp(a->h->role, "patient") == 0 && strcmp(a->h->author, a->h->patient) == 0;
	if (parent && !admin) {
		return refuse(a, "parents' proxy access is registered by the administration");
	}
	if (!parent && !self) {
		return refuse(a, "a chosen proxy is granted by the patient");
	}
	bool found = false;
	char birth_date[11];
	int rc = access_birth_date(a->t, a->pkey, &found, birth_date);
	if (rc != CARELOG_OK) {
		return rc;
	}
	uint32_t age = 0;
	bool age_known = found && policy_age_years(birth_date, a->time_ms, &age) == CARELOG_OK;
	if (!parent && !age_known) {
		return refuse(a, "no birth date recorded for this patient: a chosen proxy needs "
		                 "the patient to be 16 or older");
	}
	if (!parent && age < 16) {
		return refuse(a, "a patient may choose a proxy from the age of 16");
	}
	if (parent && age_known && age >= 16) {
		return refuse(a, "parental access ends when the patient turns 16");
	}
	struct access_key k;
	access_key_patient(&k, ACCESS_TAG_PROXY, a->pkey);
	access_key_str(&k, b->actor);
	bool room = false;
	rc = prefix_room(a, &k, proxy_expired, &room);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (!room) {
		return refuse(a, "too many proxy grants to this person: revoke some first");
	}
	struct access_proxy_row row = {
	    .relation = parent ? ACCESS_PROXY_PARENT : ACCESS_PROXY_CHOSEN,
	    .level = strcmp(b->level, "full") == 0 ? ACCESS_PROXY_FULL : ACCESS_PROXY_READ,
	    .from_ms = b->from_ms,
	    .to_ms = b->to_ms,
	};
	memcpy(row.id, a->id, sizeof(row.id));
	access_key_u64(&k, a->index);
	struct access_wbuf w;
	access_proxy_encode(&row, &w);
	rc = storage_policy_put(a->t, k.b, k.len, w.b, w.len);
	return rc == CARELOG_OK ? register_entry(a, POLICY_KIND_PROXY_GRANT, 0, &k) : rc;
}

/* The proxy id of a proxy row key X | pkey | u8 len | proxy | index. */
static bool proxy_key_is(const struct access_key *k, const char *proxy)
{
	size_t at = 1 + CL_SHA256_BYTES;
	size_t n = strlen(proxy);
	return k->len == at + 1 + n + 8 && k->b[at] == n && memcmp(k->b + at + 1, proxy, n) == 0;
}

static int apply_proxy_revoke(struct apply_ctx *a, const struct policy_body *b)
{
	struct access_entry_row ref;
	bool ok = false;
	int rc = load_ref(a, b->ref, POLICY_KIND_PROXY_GRANT,
	                  "the referenced entry is not a proxy grant", &ref, &ok);
	if (rc != CARELOG_OK || !ok) {
		return rc;
	}
	if (strcmp(a->h->role, "proxy") == 0 && !proxy_key_is(&ref.state, a->h->author)) {
		return refuse(a, "a proxy may revoke only their own grant");
	}
	return delete_state(a, &ref.state, "the proxy grant was already revoked or has expired");
}

static int apply_ambulance(struct apply_ctx *a, const struct policy_body *b)
{
	struct access_params params;
	int rc = access_params_load(a->t, &params);
	if (rc != CARELOG_OK) {
		return rc;
	}
	CL_ASSERT(b->to_ms > b->from_ms); /* policy_body_decode */
	if (b->to_ms - b->from_ms > (uint64_t)params.ambulance_hours_max * ACCESS_MS_PER_HOUR) {
		return refuse(a, "the ambulance assignment is longer than the region allows");
	}
	struct access_key k;
	access_key_patient(&k, ACCESS_TAG_AMBULANCE, a->pkey);
	access_key_str(&k, a->h->org);
	access_key_str(&k, b->actor);
	bool room = false;
	rc = prefix_room(a, &k, span_expired, &room);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (!room) {
		return refuse(a, "too many ambulance assignments of this crew member to the "
		                 "patient");
	}
	struct access_span_row row = {.from_ms = b->from_ms, .to_ms = b->to_ms};
	memcpy(row.id, a->id, sizeof(row.id));
	access_key_u64(&k, a->index);
	struct access_wbuf w;
	access_span_encode(&row, &w);
	return storage_policy_put(a->t, k.b, k.len, w.b, w.len);
}

/* O | index and Q | pkey | index: the open-grant listing. */
static void btg_open_keys(const uint8_t pkey[32], uint64_t index, struct access_key *all,
                          struct access_key *by_patient)
{
	access_key_begin(all, ACCESS_TAG_BTG_OPEN);
	access_key_u64(all, index);
	access_key_patient(by_patient, ACCESS_TAG_BTG_OPEN_PATIENT, pkey);
	access_key_u64(by_patient, index);
}

static int apply_btg_grant(struct apply_ctx *a, const struct policy_body *b)
{
	struct access_params params;
	int rc = access_params_load(a->t, &params);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (b->hours > params.btg_hours_max) {
		return refuse(a, "the break-the-glass grant is longer than the region allows");
	}
	struct access_key k;
	access_key_patient(&k, ACCESS_TAG_BTG, a->pkey);
	access_key_str(&k, a->h->org);
	access_key_str(&k, a->h->author);
	bool room = false;
	rc = prefix_room(a, &k, btg_expired, &room);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (!room) {
		return refuse(a, "too many unreviewed break-the-glass grants for this patient by "
		                 "this clinician");
	}
	struct access_btg_row *row = calloc(1, sizeof(*row));
	if (row == NULL) {
		return CARELOG_ENOMEM;
	}
	struct access_btg *g = &row->g;
	memcpy(g->id, a->id, sizeof(g->id));
	g->index = a->index;
	g->granted_ms = a->time_ms;
	g->expires_ms = a->time_ms + (uint64_t)b->hours * ACCESS_MS_PER_HOUR;
	snprintf(g->patient, sizeof(g->patient), "%s", a->h->patient);
	snprintf(g->actor, sizeof(g->actor), "%s", a->h->author);
	snprintf(g->role, sizeof(g->role), "%s", a->h->role);
	snprintf(g->org, sizeof(g->org), "%s", a->h->org);
	snprintf(g->unit, sizeof(g->unit), "%s", a->h->unit);
	snprintf(g->reason_code, sizeof(g->reason_code), "%s", b->reason_code);
	snprintf(g->reason_text, sizeof(g->reason_text), "%s", b->text);
	access_key_u64(&k, a->index);
	struct access_wbuf *w = malloc(sizeof(*w));
	rc = w == NULL ? CARELOG_ENOMEM : CARELOG_OK;
	if (rc == CARELOG_OK) {
		access_btg_encode(row, w);
		rc = storage_policy_put(a->t, k.b, k.len, w->b, w->len);
	}
	free(w);
	free(row);
	struct access_key all, by_patient;
	btg_open_keys(a->pkey, a->index, &all, &by_patient);
	if (rc == CARELOG_OK) {
		rc = storage_policy_put(a->t, all.b, all.len, k.b, k.len);
	}
	if (rc == CARELOG_OK) {
		rc = storage_policy_put(a->t, by_patient.b, by_patient.len, k.b, k.len);
	}
	return rc == CARELOG_OK ? register_entry(a, POLICY_KIND_BTG_GRANT, 0, &k) : rc;
}

static int apply_btg_review(struct apply_ctx *a, const struct policy_body *b)
{
	struct access_entry_row ref;
	bool ok = false;
	int rc = load_ref(a, b->ref, POLICY_KIND_BTG_GRANT,
	                  "the referenced entry is not a break-the-glass grant", &ref, &ok);
	if (rc != CARELOG_OK || !ok) {
		return rc;
	}
	const uint8_t *v = NULL;
	size_t len = 0;
	rc = storage_policy_get(a->t, ref.state.b, ref.state.len, &v, &len);
	if (rc == CARELOG_ENOTFOUND) {
		return refuse(a, "the break-the-glass grant was already reviewed");
	}
	if (rc != CARELOG_OK) {
		return rc;
	}
	struct access_btg_row *row = malloc(sizeof(*row));
	struct access_wbuf *w = malloc(sizeof(*w));
	rc = (row == NULL || w == NULL) ? CARELOG_ENOMEM : access_btg_decode(v, len, row);
	if (rc == CARELOG_OK && row->reviewed) {
		rc = refuse(a, "the break-the-glass grant was already reviewed");
	} else if (rc == CARELOG_OK && strcmp(row->g.actor, a->h->author) == 0) {
		rc = refuse(a, "a break-the-glass grant is reviewed by someone other than the "
		               "clinician who broke the glass");
	} else if (rc == CARELOG_OK) {
		row->reviewed = true;
		access_btg_encode(row, w);
		rc = storage_policy_put(a->t, ref.state.b, ref.state.len, w->b, w->len);
		struct access_key all, by_patient;
		btg_open_keys(a->pkey, row->g.index, &all, &by_patient);
		if (rc == CARELOG_OK) {
			rc = storage_policy_delete(a->t, all.b, all.len);
		}
		if (rc == CARELOG_OK) {
			rc = storage_policy_delete(a->t, by_patient.b, by_patient.len);
		}
	}
	free(row);
	free(w);
	return rc;
}

static void erasure_key(const uint8_t id[JOURNAL_ID_BYTES], struct access_key *k)
{
	access_key_begin(k, ACCESS_TAG_ERASURE);
	access_key_bytes(k, id, JOURNAL_ID_BYTES);
}

/* Rewrites the record at `e` without salt and body (header and signature stay as signed). */
static int erase_body(struct apply_ctx *a, const struct storage_entry *e,
                      const struct journal_record *r)
{
	struct journal_record stripped = *r;
	stripped.salt = NULL;
	stripped.body = NULL;
	stripped.body_len = 0;
	stripped.erased_by_index = a->index; /* checked by nodes that receive it stripped */
	size_t capacity = journal_record_size(r->header_len, 0);
	uint8_t *buf = malloc(capacity);
	if (buf == NULL) {
		return CARELOG_ENOMEM;
	}
	size_t len = 0;
	/* Encoding reads the stored bytes into our own buffer: nothing in the store moves until
	 * the rewrite, which gets a copy that does not point into the store. */
	int rc = journal_record_encode(&stripped, buf, capacity, &len);
	if (rc == CARELOG_OK) {
		CL_ASSERT(len <= UINT32_MAX);
		struct storage_entry rewritten = {.index = e->index,
		                                  .term = e->term,
		                                  .type = e->type,
		                                  .data_len = (uint32_t)len,
		                                  .data = buf};
		rc = storage_log_rewrite(a->t, &rewritten);
	}
	free(buf);
	return rc;
}

static void stripped_key(uint64_t tombstone_index, const uint8_t id[JOURNAL_ID_BYTES],
                         struct access_key *k)
{
	access_key_begin(k, ACCESS_TAG_STRIPPED);
	access_key_u64(k, tombstone_index);
	access_key_bytes(k, id, JOURNAL_ID_BYTES);
}

int access_stripped_expect(struct storage_txn *t, uint64_t index, const uint8_t id[JOURNAL_ID_BYTES],
                           uint64_t tombstone_index)
{
	if (tombstone_index <= index) {
		return CARELOG_ECORRUPT;
	}
	struct access_key k;
	stripped_key(tombstone_index, id, &k);
	uint8_t v[8];
	cl_put_u64be(v, index);
	return storage_policy_put(t, k.b, k.len, v, sizeof(v));
}

struct stripped_found {
	bool found;
	uint8_t id[JOURNAL_ID_BYTES];
	uint64_t index;
};

static int stripped_visit(void *arg, const uint8_t *key, size_t key_len, const uint8_t *value,
                          size_t value_len)
{
	struct stripped_found *f = arg;
	if (key_len != 1 + 8 + JOURNAL_ID_BYTES || value_len != 8) {
		return CARELOG_ECORRUPT;
	}
	f->found = true;
	memcpy(f->id, key + 1 + 8, JOURNAL_ID_BYTES);
	f->index = cl_get_u64be(value);
	return 1;
}

int access_stripped_check(struct storage_txn *t, uint64_t index, uint8_t out_id[JOURNAL_ID_BYTES],
                          uint64_t *out_entry_index)
{
	struct access_key prefix;
	access_key_begin(&prefix, ACCESS_TAG_STRIPPED);
	access_key_u64(&prefix, index);
	struct stripped_found f = {0};
	int rc = storage_policy_scan(t, prefix.b, prefix.len, false, 1, stripped_visit, &f);
	if (rc != CARELOG_OK && rc != 1) {
		return rc;
	}
	if (!f.found) {
		return CARELOG_OK;
	}
	memcpy(out_id, f.id, JOURNAL_ID_BYTES);
	*out_entry_index = f.index;
	return CARELOG_ECORRUPT;
}

static void copy_key(const uint8_t first_id[JOURNAL_ID_BYTES], uint64_t index,
                     struct access_key *k)
{
	access_key_begin(k, ACCESS_TAG_COPY);
	access_key_bytes(k, first_id, JOURNAL_ID_BYTES);
	if (index != 0) {
		access_key_u64(k, index);
	}
}

int access_copy_add(struct storage_txn *t, const uint8_t first_id[JOURNAL_ID_BYTES],
                    uint64_t index)
{
	struct access_key k;
	copy_key(first_id, index, &k);
	static const uint8_t one = 1;
	return storage_policy_put(t, k.b, k.len, &one, 1);
}

struct copies_seen {
	size_t count;
	uint64_t indexes[ACCESS_COPIES_MAX];
};

static int copies_visit(void *arg, const uint8_t *key, size_t key_len, const uint8_t *value,
                        size_t value_len)
{
	(void)value;
	(void)value_len;
	struct copies_seen *c = arg;
	if (key_len != 1 + JOURNAL_ID_BYTES + 8 || c->count == ACCESS_COPIES_MAX) {
		return CARELOG_ECORRUPT;
	}
	c->indexes[c->count++] = cl_get_u64be(key + 1 + JOURNAL_ID_BYTES);
	return 0;
}

/* Strips every later copy of the erased record too (access_copy_add): the content must leave
 * the log wherever it stands. A copy that arrived stripped names this tombstone. */
static int erase_copies(struct apply_ctx *a, const uint8_t first_id[JOURNAL_ID_BYTES])
{
	struct access_key prefix;
	copy_key(first_id, 0, &prefix);
	struct copies_seen *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		return CARELOG_ENOMEM;
	}
	int rc = storage_policy_scan(a->t, prefix.b, prefix.len, false, ACCESS_COPIES_MAX,
	                             copies_visit, c);
	for (size_t i = 0; rc == CARELOG_OK && i < c->count; i++) {
		struct storage_entry e;
		struct journal_record r;
		struct journal_header hdr;
		rc = load_entry(a->t, c->indexes[i], &e, &r, &hdr);
		if (rc == CARELOG_OK && r.salt != NULL) {
			rc = erase_body(a, &e, &r);
		} else if (rc == CARELOG_OK && r.erased_by_index == a->index) {
			uint8_t id[JOURNAL_ID_BYTES];
			journal_entry_id(r.header, r.header_len, id);
			struct access_key u;
			stripped_key(a->index, id, &u);
			rc = storage_policy_delete(a->t, u.b, u.len);
			rc = rc == CARELOG_ENOTFOUND ? CARELOG_OK : rc; /* same id: resolved already */
		} else if (rc == CARELOG_OK) {
			rc = CARELOG_ECORRUPT; /* stripped naming another tombstone: altered data */
		}
	}
	free(c);
	return rc;
}

static int apply_erasure(struct apply_ctx *a, const struct policy_body *b)
{
	CL_ASSERT(b->has_ref); /* policy_body_decode */
	uint64_t index = 0;
	uint8_t status = 0;
	int rc = storage_index_entry_get(a->t, b->ref, &index, &status);
	if (rc == CARELOG_ENOTFOUND) {
		return refuse(a, "the entry to erase is not in the log");
	}
	if (rc != CARELOG_OK) {
		return rc;
	}
	struct storage_entry e;
	struct journal_record r;
	struct journal_header hdr;
	rc = load_entry(a->t, index, &e, &r, &hdr);
	if (rc == CARELOG_EPROTO) {
		return refuse(a, "the entry to erase cannot be read");
	}
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (strcmp(hdr.patient, a->h->patient) != 0) {
		return refuse(a, "the referenced entry belongs to another patient");
	}
	if (policy_kind_of(hdr.kind) != POLICY_KIND_NONE) {
		return refuse(a, "policy entries cannot be erased (they hold no clinical "
		                 "content; end, lift or revoke them)");
	}
	struct access_key k;
	erasure_key(b->ref, &k);
	const uint8_t *v = NULL;
	size_t len = 0;
	rc = storage_policy_get(a->t, k.b, k.len, &v, &len);
	if (rc == CARELOG_OK) {
		return refuse(a, "the entry has already been erased");
	}
	if (rc != CARELOG_ENOTFOUND) {
		return rc;
	}
	/* Decided by the erasure row alone: a node that caught up after the erasure received the
	 * target already stripped (salt NULL) and must reach the same verdict, so it only records
	 * the erasure. */
	if (r.salt != NULL) {
		rc = erase_body(a, &e, &r);
	} else {
		/* It arrived stripped naming this tombstone (access_stripped_expect); one naming
		 * another index is altered data: access_stripped_check stops apply there. */
		struct access_key u;
		stripped_key(r.erased_by_index, b->ref, &u);
		rc = r.erased_by_index == a->index ? storage_policy_delete(a->t, u.b, u.len)
		                                   : CARELOG_ECORRUPT;
		if (rc == CARELOG_ENOTFOUND || rc == CARELOG_ECORRUPT) {
			cl_log_error("access.stripped_mismatch",
			             "index=%llu erased_index=%llu erased_by_index=%llu",
			             (unsigned long long)a->index, (unsigned long long)index,
			             (unsigned long long)r.erased_by_index);
			rc = CARELOG_ECORRUPT;
		}
	}
	if (rc == CARELOG_OK) {
		/* After the first copy: `r` points into the store until the next update. */
		rc = erase_copies(a, b->ref);
	}
	if (rc != CARELOG_OK) {
		return rc;
	}
	struct access_wbuf *w = malloc(sizeof(*w));
	if (w == NULL) {
		return CARELOG_ENOMEM;
	}
	w->len = 0;
	access_w_u64(w, a->index);
	access_w_u64(w, a->time_ms);
	access_w_bytes(w, a->id, JOURNAL_ID_BYTES);
	access_w_str(w, a->h->author);
	access_w_str(w, a->h->org);
	access_w_str(w, b->text);
	rc = storage_policy_put(a->t, k.b, k.len, w->b, w->len);
	free(w);
	if (rc == CARELOG_OK) {
		char id_hex[2 * JOURNAL_ID_BYTES + 1];
		cl_hex_encode(id_hex, b->ref, JOURNAL_ID_BYTES);
		cl_log_info("access.erased", "index=%llu erased_index=%llu erased_id=%s",
		            (unsigned long long)a->index, (unsigned long long)index, id_hex);
	}
	return rc;
}

static int apply_params(struct apply_ctx *a, const struct policy_body *b)
{
	struct access_key k;
	access_key_begin(&k, ACCESS_TAG_PARAMS);
	struct access_wbuf w = {.len = 0};
	access_w_u32(&w, b->implicit_window_days);
	access_w_u32(&w, b->btg_hours_max);
	access_w_u32(&w, b->ambulance_hours_max);
	access_w_u64(&w, a->index);
	return storage_policy_put(a->t, k.b, k.len, w.b, w.len);
}

static int apply_policy_kind(struct apply_ctx *a, const struct policy_body *b)
{
	switch (b->kind) {
	case POLICY_KIND_PATIENT:
		return apply_patient(a, b);
	case POLICY_KIND_CARE_RELATION:
		return apply_relation(a, b);
	case POLICY_KIND_CARE_RELATION_END:
		return apply_relation_end(a, b);
	case POLICY_KIND_BLOCK:
		return apply_block(a, b);
	case POLICY_KIND_BLOCK_LIFT:
		return apply_lift(a, b, POLICY_KIND_BLOCK, "the referenced entry is not a block",
		                  "the block has already been lifted");
	case POLICY_KIND_WITHHOLD:
		return apply_withhold(a, b);
	case POLICY_KIND_WITHHOLD_LIFT:
		return apply_lift(a, b, POLICY_KIND_WITHHOLD,
		                  "the referenced entry is not a withholding",
		                  "the withholding has already been lifted");
	case POLICY_KIND_PROXY_GRANT:
		return apply_proxy_grant(a, b);
	case POLICY_KIND_PROXY_REVOKE:
		return apply_proxy_revoke(a, b);
	case POLICY_KIND_AMBULANCE:
		return apply_ambulance(a, b);
	case POLICY_KIND_BTG_GRANT:
		return apply_btg_grant(a, b);
	case POLICY_KIND_BTG_REVIEW:
		return apply_btg_review(a, b);
	case POLICY_KIND_ERASURE:
		return apply_erasure(a, b);
	case POLICY_KIND_PARAMS:
		return apply_params(a, b);
	case POLICY_KIND_AUDIT_BATCH: {
		bool ok = false;
		const char *reason = NULL;
		int rc = access_log_index_batch(a->t, a->h, b, &ok, &reason);
		return (rc == CARELOG_OK && !ok) ? refuse(a, reason) : rc;
	}
	default:
		break;
	}
	CL_UNREACHABLE();
}

static int apply_policy(struct apply_ctx *a, enum policy_kind kind, const uint8_t *body,
                        size_t body_len)
{
	if (strcmp(a->h->media_type, POLICY_MEDIA_TYPE) != 0 ||
	    strcmp(a->h->sensitivity, "normal") != 0) {
		return refuse(a, "a policy entry must have the policy media type and sensitivity "
		                 "normal");
	}
	if (body == NULL) {
		return refuse(a, "the policy entry has no body");
	}
	bool ok = false;
	enum access_basis basis = ACCESS_BASIS_NONE;
	const char *reason = NULL;
	int rc = access_judge_policy_role(a->t, kind, &a->who, a->h->patient, a->pkey, a->time_ms,
	                                  &ok, &basis, &reason);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (!ok) {
		return refuse(a, reason);
	}
	/* A decoded body is large (an audit batch's row views): on the heap. */
	struct policy_body *b = malloc(sizeof(*b));
	if (b == NULL) {
		return CARELOG_ENOMEM;
	}
	rc = policy_body_decode(kind, body, body_len, b);
	if (rc == CARELOG_EVERSION || rc == CARELOG_ENOMEM) {
		/* A newer body version stops apply (like an unknown header version): refusing it
		 * here while a newer node applies it would split the policy state. */
	} else if (rc != CARELOG_OK) {
		rc = refuse(a, "the policy entry's body is malformed");
	} else {
		rc = apply_policy_kind(a, b);
	}
	free(b);
	return rc;
}

int access_apply_entry(struct storage_txn *t, uint64_t index, uint64_t leader_time_ms,
                       const struct journal_header *h, const uint8_t id[JOURNAL_ID_BYTES],
                       const uint8_t *body, size_t body_len, enum access_apply_verdict *out_verdict,
                       const char **out_reason)
{
	CL_ASSERT(index > 0);
	struct apply_ctx a = {
	    .t = t,
	    .index = index,
	    .time_ms = leader_time_ms,
	    .h = h,
	    .id = id,
	    .who = {.id = h->author, .role = h->role, .org = h->org, .unit = h->unit},
	};
	journal_patient_key(h->patient, a.pkey);
	enum policy_kind kind = policy_kind_of(h->kind);
	int rc =
	    kind == POLICY_KIND_NONE ? apply_clinical(&a) : apply_policy(&a, kind, body, body_len);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (a.reason != NULL) {
		CL_ASSERT(strlen(a.reason) <= ACCESS_REFUSAL_BYTES_MAX);
		/* Kept so a retry of the same request hears the same words (access_refusal_get);
		 * the caller logs the refusal. */
		struct access_key k;
		refusal_key(id, &k);
		struct access_wbuf w = {.len = 0};
		access_w_str(&w, a.reason);
		rc = storage_policy_put(t, k.b, k.len, w.b, w.len);
		if (rc != CARELOG_OK) {
			return rc;
		}
	}
	*out_verdict = a.reason == NULL ? ACCESS_APPLIED : ACCESS_REFUSED;
	*out_reason = a.reason; /* static text */
	return CARELOG_OK;
}

int access_refusal_get(struct storage_txn *t, const uint8_t id[JOURNAL_ID_BYTES], char *reason,
                       size_t reason_len)
{
	struct access_key k;
	refusal_key(id, &k);
	const uint8_t *v = NULL;
	size_t len = 0;
	int rc = storage_policy_get(t, k.b, k.len, &v, &len);
	if (rc != CARELOG_OK) {
		return rc;
	}
	char text[ACCESS_REFUSAL_BYTES_MAX + 1];
	struct access_rbuf r = {.p = v, .len = len};
	access_r_str(&r, text, sizeof(text));
	rc = access_r_end(&r);
	if (rc == CARELOG_OK && reason != NULL && reason_len > 0) {
		snprintf(reason, reason_len, "%s", text);
	}
	return rc;
}
