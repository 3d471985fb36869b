/* Policy db tables (keys, row layouts) and the judging shared by apply and serving. */
#include "node/access/access_internal.h"

#include "carelog/errors.h"
#include "common/assert.h"
#include "common/bytes.h"

#include <string.h>

/* --- keys --- */

void access_key_begin(struct access_key *k, enum access_tag tag)
{
	k->b[0] = (uint8_t)tag;
	k->len = 1;
}

void access_key_bytes(struct access_key *k, const uint8_t *p, size_t n)
{
	CL_ASSERT(k->len + n <=
	          sizeof(k->b)); /* every key part is bounded by the journal's limits */
	memcpy(k->b + k->len, p, n);
	k->len += n;
}

void access_key_str(struct access_key *k, const char *s)
{
	size_t n = strlen(s);
	CL_ASSERT(n <= UINT8_MAX);
	uint8_t len = (uint8_t)n;
	access_key_bytes(k, &len, 1);
	access_key_bytes(k, (const uint8_t *)s, n);
}

void access_key_u64(struct access_key *k, uint64_t v)
{
	uint8_t b[8];
	cl_put_u64be(b, v);
	access_key_bytes(k, b, sizeof(b));
}

void access_key_patient(struct access_key *k, enum access_tag tag, const uint8_t pkey[32])
{
	access_key_begin(k, tag);
	access_key_bytes(k, pkey, CL_SHA256_BYTES);
}

/* --- values --- */

void access_w_bytes(struct access_wbuf *w, const uint8_t *p, size_t n)
{
	CL_ASSERT(w->len + n <= sizeof(w->b)); /* every row layout is bounded well below it */
	if (n > 0) {
		memcpy(w->b + w->len, p, n);
	}
	w->len += n;
}

void access_w_u8(struct access_wbuf *w, uint8_t v)
{
	access_w_bytes(w, &v, 1);
}

void access_w_u32(struct access_wbuf *w, uint32_t v)
{
	uint8_t b[4];
	cl_put_u32be(b, v);
	access_w_bytes(w, b, sizeof(b));
}

void access_w_u64(struct access_wbuf *w, uint64_t v)
{
	uint8_t b[8];
	cl_put_u64be(b, v);
	access_w_bytes(w, b, sizeof(b));
}

void access_w_str(struct access_wbuf *w, const char *s)
{
	size_t n = strlen(s);
	CL_ASSERT(n <= POLICY_TEXT_BYTES_MAX);
	uint8_t b[2];
	cl_put_u16be(b, (uint16_t)n);
	access_w_bytes(w, b, sizeof(b));
	access_w_bytes(w, (const uint8_t *)s, n);
}

static const uint8_t *r_take(struct access_rbuf *r, size_t n)
{
	if (r->bad || r->len - r->at < n) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *p = r->p + r->at;
	r->at += n;
	return p;
}

uint8_t access_r_u8(struct access_rbuf *r)
{
	const uint8_t *p = r_take(r, 1);
	return p == NULL ? 0 : p[0];
}

uint32_t access_r_u32(struct access_rbuf *r)
{
	const uint8_t *p = r_take(r, 4);
	return p == NULL ? 0 : cl_get_u32be(p);
}

uint64_t access_r_u64(struct access_rbuf *r)
{
	const uint8_t *p = r_take(r, 8);
	return p == NULL ? 0 : cl_get_u64be(p);
}

void access_r_bytes(struct access_rbuf *r, uint8_t *out, size_t n)
{
	const uint8_t *p = r_take(r, n);
	if (p == NULL) {
		memset(out, 0, n);
		return;
	}
	memcpy(out, p, n);
}

void access_r_str(struct access_rbuf *r, char *out, size_t capacity)
{
	CL_ASSERT(capacity > 0);
	out[0] = '\0';
	const uint8_t *lp = r_take(r, 2);
	if (lp == NULL) {
		return;
	}
	size_t n = cl_get_u16be(lp);
	if (n >= capacity) {
		r->bad = true;
		return;
	}
	const uint8_t *p = r_take(r, n);
	if (p == NULL) {
		return;
	}
	memcpy(out, p, n);
	out[n] = '\0';
}

int access_r_end(const struct access_rbuf *r)
{
	return (!r->bad && r->at == r->len) ? CARELOG_OK : CARELOG_ECORRUPT;
}

static struct access_rbuf rbuf(const uint8_t *v, size_t len)
{
	return (struct access_rbuf){.p = v, .len = len, .at = 0, .bad = false};
}

/* --- roles and categories --- */

static const char *const clinical_roles[] = {
    "physician", "nurse", "psychologist", "midwife", "physiotherapist", "pharmacist",
};

bool access_role_clinical(const char *role)
{
	for (size_t i = 0; i < CL_ARRAY_LEN(clinical_roles); i++) {
		if (strcmp(role, clinical_roles[i]) == 0) {
			return true;
		}
	}
	return false;
}

static const char *const shielded_categories[ACCESS_CATEGORIES_COUNT] = {
    "psychiatry", "substance-use", "sexual-health", "child-welfare", "genetic",
};

uint32_t access_category_bit(const char *sensitivity)
{
	for (size_t i = 0; i < CL_ARRAY_LEN(shielded_categories); i++) {
		if (strcmp(sensitivity, shielded_categories[i]) == 0) {
			return 1u << i;
		}
	}
	return 0;
}

/* --- rows --- */

void access_relation_encode(const struct access_relation_row *row, struct access_wbuf *w)
{
	w->len = 0;
	access_w_bytes(w, row->id, sizeof(row->id));
	access_w_u64(w, row->from_ms);
	access_w_u64(w, row->to_ms);
	access_w_u32(w, row->categories);
	access_w_str(w, row->unit);
}

int access_relation_decode(const uint8_t *v, size_t len, struct access_relation_row *out)
{
	struct access_rbuf r = rbuf(v, len);
	access_r_bytes(&r, out->id, sizeof(out->id));
	out->from_ms = access_r_u64(&r);
	out->to_ms = access_r_u64(&r);
	out->categories = access_r_u32(&r);
	access_r_str(&r, out->unit, sizeof(out->unit));
	return access_r_end(&r);
}

void access_block_encode(const struct access_block_row *row, struct access_wbuf *w)
{
	w->len = 0;
	access_w_bytes(w, row->id, sizeof(row->id));
	access_w_str(w, row->target_org);
	access_w_str(w, row->target_actor);
	access_w_u8(w, row->scope);
	access_w_str(w, row->category);
	access_w_bytes(w, row->entry, sizeof(row->entry));
}

int access_block_decode(const uint8_t *v, size_t len, struct access_block_row *out)
{
	struct access_rbuf r = rbuf(v, len);
	access_r_bytes(&r, out->id, sizeof(out->id));
	access_r_str(&r, out->target_org, sizeof(out->target_org));
	access_r_str(&r, out->target_actor, sizeof(out->target_actor));
	out->scope = access_r_u8(&r);
	access_r_str(&r, out->category, sizeof(out->category));
	access_r_bytes(&r, out->entry, sizeof(out->entry));
	if (out->scope < ACCESS_BLOCK_ALL || out->scope > ACCESS_BLOCK_ENTRY) {
		return CARELOG_ECORRUPT;
	}
	return access_r_end(&r);
}

void access_proxy_encode(const struct access_proxy_row *row, struct access_wbuf *w)
{
	w->len = 0;
	access_w_bytes(w, row->id, sizeof(row->id));
	access_w_u8(w, row->relation);
	access_w_u8(w, row->level);
	access_w_u64(w, row->from_ms);
	access_w_u64(w, row->to_ms);
}

int access_proxy_decode(const uint8_t *v, size_t len, struct access_proxy_row *out)
{
	struct access_rbuf r = rbuf(v, len);
	access_r_bytes(&r, out->id, sizeof(out->id));
	out->relation = access_r_u8(&r);
	out->level = access_r_u8(&r);
	out->from_ms = access_r_u64(&r);
	out->to_ms = access_r_u64(&r);
	if ((out->relation != ACCESS_PROXY_PARENT && out->relation != ACCESS_PROXY_CHOSEN) ||
	    (out->level != ACCESS_PROXY_READ && out->level != ACCESS_PROXY_FULL)) {
		return CARELOG_ECORRUPT;
	}
	return access_r_end(&r);
}

void access_span_encode(const struct access_span_row *row, struct access_wbuf *w)
{
	w->len = 0;
	access_w_bytes(w, row->id, sizeof(row->id));
	access_w_u64(w, row->from_ms);
	access_w_u64(w, row->to_ms);
}

int access_span_decode(const uint8_t *v, size_t len, struct access_span_row *out)
{
	struct access_rbuf r = rbuf(v, len);
	access_r_bytes(&r, out->id, sizeof(out->id));
	out->from_ms = access_r_u64(&r);
	out->to_ms = access_r_u64(&r);
	return access_r_end(&r);
}

void access_btg_encode(const struct access_btg_row *row, struct access_wbuf *w)
{
	const struct access_btg *g = &row->g;
	w->len = 0;
	access_w_bytes(w, g->id, sizeof(g->id));
	access_w_u64(w, g->index);
	access_w_u64(w, g->granted_ms);
	access_w_u64(w, g->expires_ms);
	access_w_u8(w, row->reviewed ? 1 : 0);
	access_w_str(w, g->patient);
	access_w_str(w, g->actor);
	access_w_str(w, g->role);
	access_w_str(w, g->org);
	access_w_str(w, g->unit);
	access_w_str(w, g->reason_code);
	access_w_str(w, g->reason_text);
}

int access_btg_decode(const uint8_t *v, size_t len, struct access_btg_row *out)
{
	struct access_btg *g = &out->g;
	struct access_rbuf r = rbuf(v, len);
	access_r_bytes(&r, g->id, sizeof(g->id));
	g->index = access_r_u64(&r);
	g->granted_ms = access_r_u64(&r);
	g->expires_ms = access_r_u64(&r);
	uint8_t reviewed = access_r_u8(&r);
	out->reviewed = reviewed != 0;
	access_r_str(&r, g->patient, sizeof(g->patient));
	access_r_str(&r, g->actor, sizeof(g->actor));
	access_r_str(&r, g->role, sizeof(g->role));
	access_r_str(&r, g->org, sizeof(g->org));
	access_r_str(&r, g->unit, sizeof(g->unit));
	access_r_str(&r, g->reason_code, sizeof(g->reason_code));
	access_r_str(&r, g->reason_text, sizeof(g->reason_text));
	if (reviewed > 1) {
		return CARELOG_ECORRUPT;
	}
	return access_r_end(&r);
}

/* G value: kind u8 | index u64 | flag u8 | state key length u16 | state key */
int access_entry_row_get(struct storage_txn *t, const uint8_t id[JOURNAL_ID_BYTES],
                         struct access_entry_row *out)
{
	struct access_key k;
	access_key_begin(&k, ACCESS_TAG_ENTRY);
	access_key_bytes(&k, id, JOURNAL_ID_BYTES);
	const uint8_t *v = NULL;
	size_t len = 0;
	int rc = storage_policy_get(t, k.b, k.len, &v, &len);
	if (rc != CARELOG_OK) {
		return rc;
	}
	struct access_rbuf r = rbuf(v, len);
	out->kind = access_r_u8(&r);
	out->index = access_r_u64(&r);
	out->flag = access_r_u8(&r);
	const uint8_t *lp = r_take(&r, 2);
	size_t n = lp == NULL ? 0 : cl_get_u16be(lp);
	if (n > sizeof(out->state.b)) {
		return CARELOG_ECORRUPT;
	}
	access_r_bytes(&r, out->state.b, n);
	out->state.len = n;
	if (out->kind == POLICY_KIND_NONE || out->kind >= POLICY_KIND_COUNT_) {
		return CARELOG_ECORRUPT;
	}
	return access_r_end(&r);
}

int access_entry_row_put(struct storage_txn *t, const uint8_t id[JOURNAL_ID_BYTES],
                         const struct access_entry_row *row)
{
	struct access_key k;
	access_key_begin(&k, ACCESS_TAG_ENTRY);
	access_key_bytes(&k, id, JOURNAL_ID_BYTES);
	struct access_wbuf w = {.len = 0};
	access_w_u8(&w, row->kind);
	access_w_u64(&w, row->index);
	access_w_u8(&w, row->flag);
	uint8_t lb[2];
	cl_put_u16be(lb, (uint16_t)row->state.len);
	access_w_bytes(&w, lb, sizeof(lb));
	access_w_bytes(&w, row->state.b, row->state.len);
	return storage_policy_put(t, k.b, k.len, w.b, w.len);
}

/* --- judging --- */

int access_params_load(struct storage_txn *t, struct access_params *out)
{
	struct access_key k;
	access_key_begin(&k, ACCESS_TAG_PARAMS);
	const uint8_t *v = NULL;
	size_t len = 0;
	int rc = storage_policy_get(t, k.b, k.len, &v, &len);
	if (rc == CARELOG_ENOTFOUND) {
		*out = (struct access_params){
		    .implicit_window_days = POLICY_IMPLICIT_WINDOW_DAYS_DEFAULT,
		    .btg_hours_max = POLICY_BTG_HOURS_MAX_DEFAULT,
		    .ambulance_hours_max = POLICY_AMBULANCE_HOURS_MAX_DEFAULT,
		};
		return CARELOG_OK;
	}
	if (rc != CARELOG_OK) {
		return rc;
	}
	struct access_rbuf r = rbuf(v, len);
	struct access_params p;
	p.implicit_window_days = access_r_u32(&r);
	p.btg_hours_max = access_r_u32(&r);
	p.ambulance_hours_max = access_r_u32(&r);
	(void)access_r_u64(&r); /* the policy-params entry's index */
	rc = access_r_end(&r);
	if (rc == CARELOG_OK) {
		*out = p;
	}
	return rc;
}

int access_birth_date(struct storage_txn *t, const uint8_t pkey[32], bool *out_found,
                      char out_date[11])
{
	struct access_key k;
	access_key_patient(&k, ACCESS_TAG_PATIENT, pkey);
	const uint8_t *v = NULL;
	size_t len = 0;
	int rc = storage_policy_get(t, k.b, k.len, &v, &len);
	if (rc == CARELOG_ENOTFOUND) {
		*out_found = false;
		out_date[0] = '\0';
		return CARELOG_OK;
	}
	if (rc != CARELOG_OK) {
		return rc;
	}
	struct access_rbuf r = rbuf(v, len);
	(void)access_r_u64(&r); /* the patient entry's index */
	access_r_str(&r, out_date, 11);
	rc = access_r_end(&r);
	if (rc == CARELOG_OK) {
		*out_found = true;
	}
	return rc;
}

/* Relations of the patient with who->org active at now and covering who->unit. */
struct relation_scan {
	uint64_t now_ms;
	const char *unit;
	bool found;
	uint32_t categories;
	int rc;
};

static int relation_visit(void *arg, const uint8_t *key, size_t key_len, const uint8_t *value,
                          size_t value_len)
{
	(void)key;
	(void)key_len;
	struct relation_scan *s = arg;
	struct access_relation_row row;
	s->rc = access_relation_decode(value, value_len, &row);
	if (s->rc != CARELOG_OK) {
		return ACCESS_SCAN_STOP;
	}
	bool active = row.from_ms <= s->now_ms && (row.to_ms == 0 || s->now_ms < row.to_ms);
	if (active && (row.unit[0] == '\0' || strcmp(row.unit, s->unit) == 0)) {
		s->found = true;
		s->categories |= row.categories;
	}
	return 0;
}

/* Active btg grant of who (id, org) for the patient at now. */
struct btg_scan {
	uint64_t now_ms;
	bool found;
	int rc;
};

static int btg_visit(void *arg, const uint8_t *key, size_t key_len, const uint8_t *value,
                     size_t value_len)
{
	(void)key;
	(void)key_len;
	struct btg_scan *s = arg;
	struct access_btg_row row;
	s->rc = access_btg_decode(value, value_len, &row);
	if (s->rc != CARELOG_OK) {
		return ACCESS_SCAN_STOP;
	}
	if (s->now_ms < row.g.expires_ms) {
		s->found = true;
		return ACCESS_SCAN_STOP; /* one is enough */
	}
	return 0;
}

static int implicit_recent(struct storage_txn *t, const struct access_who *who,
                           const uint8_t pkey[32], uint64_t now_ms, bool *out)
{
	*out = false;
	struct access_params params;
	int rc = access_params_load(t, &params);
	if (rc != CARELOG_OK) {
		return rc;
	}
	struct access_key k;
	access_key_patient(&k, ACCESS_TAG_IMPLICIT, pkey);
	access_key_str(&k, who->org);
	const uint8_t *v = NULL;
	size_t len = 0;
	rc = storage_policy_get(t, k.b, k.len, &v, &len);
	if (rc == CARELOG_ENOTFOUND) {
		return CARELOG_OK;
	}
	if (rc != CARELOG_OK) {
		return rc;
	}
	struct access_rbuf r = rbuf(v, len);
	uint64_t last_ms = access_r_u64(&r);
	(void)access_r_u64(&r);
	rc = access_r_end(&r);
	if (rc != CARELOG_OK) {
		return rc;
	}
	/* last write >= now - window, written without underflow */
	uint64_t window_ms = (uint64_t)params.implicit_window_days * ACCESS_MS_PER_DAY;
	*out = last_ms + window_ms >= now_ms;
	return CARELOG_OK;
}

int access_clinical_basis(struct storage_txn *t, const struct access_who *who,
                          const uint8_t pkey[32], uint64_t now_ms, bool allow_implicit,
                          enum access_basis *out_basis, uint32_t *out_categories)
{
	*out_basis = ACCESS_BASIS_NONE;
	*out_categories = 0;
	/* Scans are bounded by ACCESS_ROWS_PER_PREFIX_MAX (enforced at apply). */
	struct access_key k;
	access_key_patient(&k, ACCESS_TAG_RELATION, pkey);
	access_key_str(&k, who->org);
	struct relation_scan rs = {.now_ms = now_ms, .unit = who->unit, .rc = CARELOG_OK};
	int rc = storage_policy_scan(t, k.b, k.len, false, 0, relation_visit, &rs);
	if (rc == ACCESS_SCAN_STOP) {
		rc = rs.rc;
	}
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (rs.found) {
		*out_basis = ACCESS_BASIS_RELATION;
		*out_categories = rs.categories;
		return CARELOG_OK;
	}
	if (allow_implicit) {
		bool recent = false;
		rc = implicit_recent(t, who, pkey, now_ms, &recent);
		if (rc != CARELOG_OK) {
			return rc;
		}
		if (recent) {
			*out_basis = ACCESS_BASIS_IMPLICIT;
			return CARELOG_OK;
		}
	}
	access_key_patient(&k, ACCESS_TAG_BTG, pkey);
	access_key_str(&k, who->org);
	access_key_str(&k, who->id);
	struct btg_scan bs = {.now_ms = now_ms, .rc = CARELOG_OK};
	rc = storage_policy_scan(t, k.b, k.len, false, 0, btg_visit, &bs);
	if (rc == ACCESS_SCAN_STOP) {
		rc = bs.rc;
	}
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (bs.found) {
		*out_basis = ACCESS_BASIS_BTG;
	}
	return CARELOG_OK;
}

/* Proxy grants to one person for the patient. */
struct proxy_scan {
	struct storage_txn *t;
	const uint8_t *pkey;
	uint64_t now_ms;
	bool birth_loaded, birth_found;
	char birth_date[11];
	struct access_proxy_eval *out;
	int rc;
};

/* Considers one active grant: qualifies with a view, or leaves a reason. */
static int proxy_consider(struct proxy_scan *s, const struct access_proxy_row *row)
{
	bool reduced = false;
	if (row->relation == ACCESS_PROXY_PARENT) {
		if (!s->birth_loaded) {
			int rc = access_birth_date(s->t, s->pkey, &s->birth_found, s->birth_date);
			if (rc != CARELOG_OK) {
				return rc;
			}
			s->birth_loaded = true;
		}
		uint32_t age = 0;
		if (!s->birth_found ||
		    policy_age_years(s->birth_date, s->now_ms, &age) != CARELOG_OK) {
			if (!s->out->ok) {
				s->out->reason =
				    "no birth date recorded for this patient (parental "
				    "access needs it)";
			}
			return CARELOG_OK;
		}
		if (age >= 16) {
			if (!s->out->ok) {
				s->out->reason = "parental access ends when the patient turns 16";
			}
			return CARELOG_OK;
		}
		reduced = age >= 12;
	}
	bool full = row->level == ACCESS_PROXY_FULL;
	if (!s->out->ok) {
		s->out->ok = true;
		s->out->reduced = reduced;
		s->out->full = full;
	} else {
		/* The widest of the qualifying grants decides. */
		s->out->reduced = s->out->reduced && reduced;
		s->out->full = s->out->full || full;
	}
	s->out->reason = NULL;
	return CARELOG_OK;
}

static int proxy_visit(void *arg, const uint8_t *key, size_t key_len, const uint8_t *value,
                       size_t value_len)
{
	(void)key;
	(void)key_len;
	struct proxy_scan *s = arg;
	struct access_proxy_row row;
	s->rc = access_proxy_decode(value, value_len, &row);
	if (s->rc != CARELOG_OK) {
		return ACCESS_SCAN_STOP;
	}
	if (row.from_ms <= s->now_ms && (row.to_ms == 0 || s->now_ms < row.to_ms)) {
		s->rc = proxy_consider(s, &row);
		if (s->rc != CARELOG_OK) {
			return ACCESS_SCAN_STOP;
		}
	}
	return 0;
}

int access_proxy_evaluate(struct storage_txn *t, const uint8_t pkey[32], const char *proxy_id,
                          uint64_t now_ms, struct access_proxy_eval *out)
{
	*out = (struct access_proxy_eval){.ok = false,
	                                  .reason = "no active proxy grant from this patient"};
	struct access_key k;
	access_key_patient(&k, ACCESS_TAG_PROXY, pkey);
	access_key_str(&k, proxy_id);
	struct proxy_scan s = {.t = t, .pkey = pkey, .now_ms = now_ms, .out = out};
	int rc = storage_policy_scan(t, k.b, k.len, false, 0, proxy_visit, &s);
	if (rc == ACCESS_SCAN_STOP) {
		rc = s.rc;
	}
	return rc;
}

static bool who_is_patient(const struct access_who *who, const char *patient)
{
	return strcmp(who->role, "patient") == 0 && strcmp(who->id, patient) == 0;
}

int access_judge_clinical_write(struct storage_txn *t, const struct access_who *who,
                                const char *patient, const uint8_t pkey[32], uint64_t now_ms,
                                bool *out_ok, enum access_basis *out_basis, const char **out_reason)
{
	*out_ok = false;
	*out_basis = ACCESS_BASIS_NONE;
	*out_reason = NULL;
	if (strcmp(patient, POLICY_REGION_PATIENT) == 0 || patient[0] == '\0') {
		*out_reason = "clinical entries must name a patient";
		return CARELOG_OK;
	}
	if (access_role_clinical(who->role)) {
		uint32_t categories = 0;
		int rc = access_clinical_basis(t, who, pkey, now_ms, false, out_basis, &categories);
		if (rc != CARELOG_OK) {
			return rc;
		}
		*out_ok = *out_basis != ACCESS_BASIS_NONE;
		if (!*out_ok) {
			*out_reason = "no care relation or break-the-glass grant for this patient "
			              "at the writer's organisation (recent treatment allows "
			              "reading, not writing)";
		}
		return CARELOG_OK;
	}
	if (strcmp(who->role, "patient") == 0) {
		*out_ok = who_is_patient(who, patient);
		*out_basis = *out_ok ? ACCESS_BASIS_SELF : ACCESS_BASIS_NONE;
		if (!*out_ok) {
			*out_reason = "patients may write only in their own record";
		}
		return CARELOG_OK;
	}
	if (strcmp(who->role, "proxy") == 0) {
		struct access_proxy_eval ev;
		int rc = access_proxy_evaluate(t, pkey, who->id, now_ms, &ev);
		if (rc != CARELOG_OK) {
			return rc;
		}
		if (!ev.ok) {
			*out_reason = ev.reason;
		} else if (!ev.full) {
			*out_reason = "a proxy with read access may not write in the record";
		} else {
			*out_ok = true;
			*out_basis = ACCESS_BASIS_PROXY;
		}
		return CARELOG_OK;
	}
	if (strcmp(who->role, "ambulance") == 0) {
		*out_reason = "ambulance crews may read during an assignment but not write";
		return CARELOG_OK;
	}
	*out_reason = "this role may not write clinical entries";
	return CARELOG_OK;
}

static bool kind_region_wide(enum policy_kind kind)
{
	return kind == POLICY_KIND_PARAMS || kind == POLICY_KIND_AUDIT_BATCH;
}

/* Sets the verdict of a role rule. */
static int role_rule(bool ok, enum access_basis basis, const char *reason, bool *out_ok,
                     enum access_basis *out_basis, const char **out_reason)
{
	*out_ok = ok;
	*out_basis = ok ? basis : ACCESS_BASIS_NONE;
	*out_reason = ok ? NULL : reason;
	return CARELOG_OK;
}

int access_judge_policy_role(struct storage_txn *t, enum policy_kind kind,
                             const struct access_who *who, const char *patient,
                             const uint8_t pkey[32], uint64_t now_ms, bool *out_ok,
                             enum access_basis *out_basis, const char **out_reason)
{
	CL_ASSERT(kind > POLICY_KIND_NONE && kind < POLICY_KIND_COUNT_);
	bool region = strcmp(patient, POLICY_REGION_PATIENT) == 0;
	if (kind_region_wide(kind) != region) {
		return role_rule(false, ACCESS_BASIS_NONE,
		                 region ? "this kind of entry must name a patient"
		                        : "this kind of entry is region-wide (patient \"-\")",
		                 out_ok, out_basis, out_reason);
	}
	bool admin = strcmp(who->role, "admin") == 0;
	bool self = who_is_patient(who, patient);
	switch (kind) {
	case POLICY_KIND_PATIENT:
	case POLICY_KIND_CARE_RELATION:
	case POLICY_KIND_CARE_RELATION_END:
	case POLICY_KIND_AMBULANCE:
	case POLICY_KIND_ERASURE:
		return role_rule(admin, ACCESS_BASIS_ROLE,
		                 "only the organisation's administration (role admin) may "
		                 "record this",
		                 out_ok, out_basis, out_reason);
	case POLICY_KIND_PROXY_GRANT:
		/* parent: admin; chosen: the patient (the body decides which, at apply) */
		return role_rule(admin || self, self ? ACCESS_BASIS_SELF : ACCESS_BASIS_ROLE,
		                 "proxy access is granted by the administration (parents) or "
		                 "by the patient (a chosen adult)",
		                 out_ok, out_basis, out_reason);
	case POLICY_KIND_PROXY_REVOKE: {
		bool proxy = strcmp(who->role, "proxy") == 0; /* its own grant: checked at apply */
		return role_rule(admin || self || proxy,
		                 self    ? ACCESS_BASIS_SELF
		                 : proxy ? ACCESS_BASIS_PROXY
		                         : ACCESS_BASIS_ROLE,
		                 "proxy access is revoked by the administration, the patient or "
		                 "the proxy",
		                 out_ok, out_basis, out_reason);
	}
	case POLICY_KIND_BLOCK:
	case POLICY_KIND_BLOCK_LIFT:
		return role_rule(admin || self, self ? ACCESS_BASIS_SELF : ACCESS_BASIS_ROLE,
		                 "blocks are set and lifted by the patient or the "
		                 "administration",
		                 out_ok, out_basis, out_reason);
	case POLICY_KIND_WITHHOLD:
	case POLICY_KIND_WITHHOLD_LIFT: {
		enum access_basis basis = ACCESS_BASIS_NONE;
		uint32_t categories = 0;
		if (access_role_clinical(who->role)) {
			int rc =
			    access_clinical_basis(t, who, pkey, now_ms, false, &basis, &categories);
			if (rc != CARELOG_OK) {
				return rc;
			}
		}
		return role_rule(basis != ACCESS_BASIS_NONE, basis,
		                 "only a clinician with a care relation or break-the-glass "
		                 "grant may withhold entries from the patient",
		                 out_ok, out_basis, out_reason);
	}
	case POLICY_KIND_BTG_GRANT:
		return role_rule(access_role_clinical(who->role), ACCESS_BASIS_ROLE,
		                 "only clinicians may break the glass", out_ok, out_basis,
		                 out_reason);
	case POLICY_KIND_BTG_REVIEW:
		return role_rule(admin || strcmp(who->role, "auditor") == 0, ACCESS_BASIS_ROLE,
		                 "break-the-glass grants are reviewed by an auditor or the "
		                 "administration",
		                 out_ok, out_basis, out_reason);
	case POLICY_KIND_PARAMS:
		return role_rule(strcmp(who->role, "operator") == 0, ACCESS_BASIS_ROLE,
		                 "the region's access parameters are set by an operator", out_ok,
		                 out_basis, out_reason);
	case POLICY_KIND_AUDIT_BATCH:
		return role_rule(strcmp(who->role, "system") == 0, ACCESS_BASIS_ROLE,
		                 "audit batches are written by the nodes themselves", out_ok,
		                 out_basis, out_reason);
	default:
		break;
	}
	CL_UNREACHABLE();
}
