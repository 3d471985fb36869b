/* Unit tests for node/access: policy entries applied at leader time, then read/write decisions. */
#include "carelog/errors.h"
#include "common/crypto.h"
#include "node/api/proto.h"
#include "node/access/access.h"
#include "node/journal/journal.h"
#include "node/journal/policy.h"
#include "storage/storage.h"

#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

enum {
	TEST_PATH_BYTES = 256,
	TEST_MAP_SIZE_BYTES = 64u << 20,
	TEST_BODY_BYTES_MAX = 64 * 1024,
	TEST_ROWS_MAX = 16,
};

#define HOUR_MS (3600ULL * 1000)
#define DAY_MS  (24 * HOUR_MS)
/* 2026-01-01T00:00:00Z */
#define T0 1767225600000ULL
/* 2029-06-01T00:00:00Z and 2032-06-01T00:00:00Z */
#define T_2029_06 1874966400000ULL
#define T_2032_06 1969660800000ULL

struct fixture {
	char root[TEST_PATH_BYTES];
	char dir[TEST_PATH_BYTES + 16];
	struct storage *s;
	uint64_t last_index;
	uint64_t request_seq;
};

/* An applied entry as the tests see it. */
struct entry {
	struct journal_header h;
	uint8_t id[JOURNAL_ID_BYTES];
	uint64_t index;
	enum access_apply_verdict verdict;
	const char *reason;
};

/* Who acts (also the author of entries). */
struct who {
	const char *id;
	const char *role;
	const char *org;
	const char *unit;
};

static const struct who hosp_admin = {"adm1", "admin", "hosp", "office"};
static const struct who hosp_doc = {"doc1", "physician", "hosp", "cardio"};
static const struct who hosp_psych = {"psy1", "psychologist", "hosp", "psych"};
static const struct who muni_admin = {"adm2", "admin", "muni", "office"};
static const struct who muni_nurse = {"nurse1", "nurse", "muni", "home"};
static const struct who muni_nurse2 = {"nurse2", "nurse", "muni", "home"};
static const struct who auditor = {"aud1", "auditor", "hosp", "audit"};
static const struct who operator= {"op1", "operator", "hosp", "it"};

/* --- fixture --- */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->root, sizeof(f->root), "/tmp/carelog-access-test-XXXXXX");
	assert_non_null(mkdtemp(f->root));
	snprintf(f->dir, sizeof(f->dir), "%s/data", f->root);
	struct storage_options options = {.dir = f->dir, .map_size_bytes = TEST_MAP_SIZE_BYTES};
	assert_int_equal(storage_open(&options, &f->s), CARELOG_OK);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	storage_close(f->s);
	nftw(f->root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static struct storage_txn *begin_read(struct fixture *f)
{
	struct storage_txn *t = NULL;
	assert_int_equal(storage_txn_begin_read(f->s, &t), CARELOG_OK);
	return t;
}

/* --- appending entries: header by hand, record in the log, access_apply_entry --- */

struct entry_spec {
	const char *kind;
	const char *patient;
	const struct who *author;
	const char *status;      /* default "final" */
	const char *sensitivity; /* default "normal" */
	const char *media_type;  /* default "text/plain" */
	const uint8_t *corrects; /* NULL: none */
	uint64_t node_id;        /* default 1 */
	const uint8_t *body;
	size_t body_len;
};

static struct entry append(struct fixture *f, const struct entry_spec *sp, uint64_t time_ms)
{
	struct entry e;
	memset(&e, 0, sizeof(e));
	struct journal_header *h = &e.h;
	h->version = JOURNAL_FORMAT_VERSION;
	snprintf(h->kind, sizeof(h->kind), "%s", sp->kind);
	snprintf(h->patient, sizeof(h->patient), "%s", sp->patient);
	snprintf(h->author, sizeof(h->author), "%s", sp->author->id);
	snprintf(h->role, sizeof(h->role), "%s", sp->author->role);
	snprintf(h->org, sizeof(h->org), "%s", sp->author->org);
	snprintf(h->unit, sizeof(h->unit), "%s", sp->author->unit);
	h->node_id = sp->node_id != 0 ? sp->node_id : 1;
	h->author_time_ms = time_ms;
	h->clinical_time_ms = time_ms;
	snprintf(h->status, sizeof(h->status), "%s", sp->status != NULL ? sp->status : "final");
	if (sp->corrects != NULL) {
		h->has_corrects = true;
		memcpy(h->corrects, sp->corrects, JOURNAL_ID_BYTES);
	}
	snprintf(h->sensitivity, sizeof(h->sensitivity), "%s",
	         sp->sensitivity != NULL ? sp->sensitivity : "normal");
	snprintf(h->request_id, sizeof(h->request_id), "req-%llu",
	         (unsigned long long)++f->request_seq);
	snprintf(h->media_type, sizeof(h->media_type), "%s",
	         sp->media_type != NULL ? sp->media_type : "text/plain");
	uint8_t salt[JOURNAL_SALT_BYTES];
	memset(salt, 0x5a, sizeof(salt));
	h->body_size = sp->body_len;
	journal_body_hash(salt, sp->body, sp->body_len, h->body_hash);

	uint8_t header[JOURNAL_HEADER_BYTES_MAX];
	size_t header_len = 0;
	assert_int_equal(journal_header_encode(h, header, sizeof(header), &header_len), CARELOG_OK);
	journal_entry_id(header, header_len, e.id);
	uint8_t signature[CL_SIGNATURE_BYTES];
	memset(signature, 0xab, sizeof(signature)); /* apply trusts its caller's verification */
	struct journal_record r = {.leader_time_ms = time_ms,
	                           .header = header,
	                           .header_len = header_len,
	                           .signature = signature,
	                           .salt = salt,
	                           .body = sp->body,
	                           .body_len = sp->body_len};
	size_t capacity = journal_record_size(header_len, sp->body_len);
	uint8_t *data = malloc(capacity);
	assert_non_null(data);
	size_t len = 0;
	assert_int_equal(journal_record_encode(&r, data, capacity, &len), CARELOG_OK);

	struct storage_txn *t = NULL;
	assert_int_equal(storage_txn_begin_write(f->s, &t), CARELOG_OK);
	e.index = ++f->last_index;
	struct storage_entry se = {
	    .index = e.index, .term = 1, .type = 0, .data_len = (uint32_t)len, .data = data};
	assert_int_equal(storage_log_append(t, &se, 1), CARELOG_OK);
	assert_int_equal(access_apply_entry(t, e.index, time_ms, h, e.id, sp->body, sp->body_len,
	                                    &e.verdict, &e.reason),
	                 CARELOG_OK);
	/* As node/daemon/apply.c: accepted (0) or, here, 3 for refused */
	assert_int_equal(
	    storage_index_entry_put(t, e.id, e.index, e.verdict == ACCESS_APPLIED ? 0 : 3),
	    CARELOG_OK);
	assert_int_equal(storage_txn_commit(t), CARELOG_OK);
	free(data);
	/* The reason stays readable for a retry of the same request. */
	char kept[300];
	assert_int_equal(storage_txn_begin_read(f->s, &t), CARELOG_OK);
	int kept_rc = access_refusal_get(t, e.id, kept, sizeof(kept));
	storage_txn_abort(t);
	if (e.verdict == ACCESS_APPLIED) {
		assert_null(e.reason);
		assert_int_equal(kept_rc, CARELOG_ENOTFOUND);
	} else {
		assert_non_null(e.reason);
		assert_int_equal(kept_rc, CARELOG_OK);
		assert_string_equal(kept, e.reason);
	}
	return e;
}

/* A clinical note by `author`. */
static struct entry note_ex(struct fixture *f, const char *patient, const struct who *author,
                            const char *sensitivity, uint64_t time_ms)
{
	static const uint8_t body[] = "Patient seen; plan discussed.";
	struct entry_spec sp = {.kind = "note",
	                        .patient = patient,
	                        .author = author,
	                        .sensitivity = sensitivity,
	                        .body = body,
	                        .body_len = sizeof(body) - 1};
	return append(f, &sp, time_ms);
}

static struct entry note(struct fixture *f, const char *patient, const struct who *author,
                         uint64_t time_ms)
{
	return note_ex(f, patient, author, NULL, time_ms);
}

/* A policy entry with body `b` (kind from b->kind). */
static struct entry policy(struct fixture *f, const char *patient, const struct who *author,
                           const struct policy_body *b, uint64_t time_ms)
{
	uint8_t *body = malloc(TEST_BODY_BYTES_MAX);
	assert_non_null(body);
	size_t len = 0;
	assert_int_equal(policy_body_encode(b, body, TEST_BODY_BYTES_MAX, &len), CARELOG_OK);
	struct entry_spec sp = {.kind = policy_kind_name(b->kind),
	                        .patient = patient,
	                        .author = author,
	                        .media_type = POLICY_MEDIA_TYPE,
	                        .body = body,
	                        .body_len = len};
	struct entry e = append(f, &sp, time_ms);
	free(body);
	return e;
}

static struct policy_body *body_new(enum policy_kind kind)
{
	struct policy_body *b = calloc(1, sizeof(*b));
	assert_non_null(b);
	b->kind = kind;
	return b;
}

static void set_ref(struct policy_body *b, const uint8_t id[JOURNAL_ID_BYTES])
{
	b->has_ref = true;
	memcpy(b->ref, id, JOURNAL_ID_BYTES);
}

#define ASSERT_APPLIED(e) assert_int_equal((e).verdict, ACCESS_APPLIED)
#define ASSERT_REFUSED(e) assert_int_equal((e).verdict, ACCESS_REFUSED)

static struct entry patient_entry(struct fixture *f, const char *patient, const char *birth_date)
{
	struct policy_body *b = body_new(POLICY_KIND_PATIENT);
	snprintf(b->birth_date, sizeof(b->birth_date), "%s", birth_date);
	struct entry e = policy(f, patient, &hosp_admin, b, T0 - DAY_MS);
	free(b);
	return e;
}

static struct entry relation_ex(struct fixture *f, const char *patient, const struct who *admin,
                                const char *org, const char *unit, const char *category,
                                uint64_t from_ms, uint64_t to_ms, uint64_t time_ms)
{
	struct policy_body *b = body_new(POLICY_KIND_CARE_RELATION);
	snprintf(b->org, sizeof(b->org), "%s", org);
	snprintf(b->unit, sizeof(b->unit), "%s", unit);
	b->from_ms = from_ms;
	b->to_ms = to_ms;
	if (category != NULL) {
		b->categories_count = 1;
		snprintf(b->categories[0], sizeof(b->categories[0]), "%s", category);
	}
	struct entry e = policy(f, patient, admin, b, time_ms);
	free(b);
	return e;
}

static struct entry relation(struct fixture *f, const char *patient, const struct who *admin)
{
	return relation_ex(f, patient, admin, admin->org, "", NULL, T0 - DAY_MS, 0, T0 - DAY_MS);
}

static struct entry ref_entry(struct fixture *f, enum policy_kind kind, const char *patient,
                              const struct who *author, const uint8_t ref[JOURNAL_ID_BYTES],
                              uint64_t time_ms)
{
	struct policy_body *b = body_new(kind);
	set_ref(b, ref);
	if (kind == POLICY_KIND_BTG_REVIEW) {
		snprintf(b->word, sizeof(b->word), "justified");
	}
	struct entry e = policy(f, patient, author, b, time_ms);
	free(b);
	return e;
}

static struct entry btg(struct fixture *f, const char *patient, const struct who *author,
                        uint32_t hours, uint64_t time_ms)
{
	struct policy_body *b = body_new(POLICY_KIND_BTG_GRANT);
	snprintf(b->reason_code, sizeof(b->reason_code), "emergency");
	snprintf(b->text, sizeof(b->text), "unconscious at the door, needs medication list");
	b->hours = hours;
	struct entry e = policy(f, patient, author, b, time_ms);
	free(b);
	return e;
}

static struct entry block(struct fixture *f, const char *patient, const struct who *author,
                          const char *target_org, const char *target_actor, const char *category,
                          const uint8_t *entry_id, uint64_t time_ms)
{
	struct policy_body *b = body_new(POLICY_KIND_BLOCK);
	snprintf(b->target_org, sizeof(b->target_org), "%s", target_org);
	snprintf(b->actor, sizeof(b->actor), "%s", target_actor);
	snprintf(b->word, sizeof(b->word), "%s",
	         category != NULL   ? "category"
	         : entry_id != NULL ? "entry"
	                            : "all");
	if (category != NULL) {
		snprintf(b->category, sizeof(b->category), "%s", category);
	}
	if (entry_id != NULL) {
		set_ref(b, entry_id);
	}
	struct entry e = policy(f, patient, author, b, time_ms);
	free(b);
	return e;
}

static struct entry withhold(struct fixture *f, const char *patient, const struct who *author,
                             const uint8_t id[JOURNAL_ID_BYTES], const char *from, uint64_t time_ms)
{
	struct policy_body *b = body_new(POLICY_KIND_WITHHOLD);
	set_ref(b, id);
	snprintf(b->word, sizeof(b->word), "%s", from);
	snprintf(b->text, sizeof(b->text), "showing this now would cause serious harm");
	struct entry e = policy(f, patient, author, b, time_ms);
	free(b);
	return e;
}

static struct entry proxy_grant(struct fixture *f, const char *patient, const struct who *author,
                                const char *proxy, const char *relation_word, const char *level,
                                uint64_t time_ms)
{
	struct policy_body *b = body_new(POLICY_KIND_PROXY_GRANT);
	snprintf(b->actor, sizeof(b->actor), "%s", proxy);
	snprintf(b->word, sizeof(b->word), "%s", relation_word);
	snprintf(b->level, sizeof(b->level), "%s", level);
	b->from_ms = T0 - DAY_MS;
	struct entry e = policy(f, patient, author, b, time_ms);
	free(b);
	return e;
}

static struct entry params(struct fixture *f, uint32_t window_days, uint32_t btg_hours,
                           uint32_t ambulance_hours, uint64_t time_ms)
{
	struct policy_body *b = body_new(POLICY_KIND_PARAMS);
	b->implicit_window_days = window_days;
	b->btg_hours_max = btg_hours;
	b->ambulance_hours_max = ambulance_hours;
	struct entry e = policy(f, POLICY_REGION_PATIENT, &operator, b, time_ms);
	free(b);
	return e;
}

/* --- decisions --- */

static struct access_actor actor_of(const struct who *w)
{
	struct access_actor a;
	memset(&a, 0, sizeof(a));
	snprintf(a.id, sizeof(a.id), "%s", w->id);
	snprintf(a.role, sizeof(a.role), "%s", w->role);
	snprintf(a.org, sizeof(a.org), "%s", w->org);
	snprintf(a.unit, sizeof(a.unit), "%s", w->unit);
	return a;
}

static struct access_read_decision decide(struct fixture *f, const struct who *w,
                                          const char *patient, uint64_t now_ms)
{
	struct access_actor a = actor_of(w);
	struct access_read_decision d;
	struct storage_txn *t = begin_read(f);
	assert_int_equal(access_decide_read(t, &a, patient, now_ms, &d), CARELOG_OK);
	storage_txn_abort(t);
	if (d.allowed) {
		assert_string_equal(d.reason, "");
	} else {
		assert_int_equal(d.basis, ACCESS_BASIS_NONE);
		assert_true(strlen(d.reason) > 0);
	}
	return d;
}

static enum access_basis basis_of(struct fixture *f, const struct who *w, const char *patient,
                                  uint64_t now_ms)
{
	return decide(f, w, patient, now_ms).basis;
}

static enum access_withheld shown(struct fixture *f, const struct access_read_decision *d,
                                  const struct entry *e)
{
	assert_true(d->allowed);
	enum access_withheld w = ACCESS_WITHHELD_COUNT_;
	struct storage_txn *t = begin_read(f);
	assert_int_equal(access_entry_visible(t, d, &e->h, e->id, &w), CARELOG_OK);
	storage_txn_abort(t);
	return w;
}

static enum access_withheld shown_to(struct fixture *f, const struct who *w, const struct entry *e,
                                     uint64_t now_ms)
{
	struct access_read_decision d = decide(f, w, e->h.patient, now_ms);
	return shown(f, &d, e);
}

static bool may_write(struct fixture *f, const struct who *w, const char *patient, const char *kind,
                      uint64_t now_ms, enum access_basis *out_basis)
{
	struct access_actor a = actor_of(w);
	bool allowed = false;
	enum access_basis basis = ACCESS_BASIS_ROLE;
	char reason[160];
	struct storage_txn *t = begin_read(f);
	assert_int_equal(access_decide_write(t, &a, patient, kind, now_ms, &allowed, &basis, reason,
	                                     sizeof(reason)),
	                 CARELOG_OK);
	storage_txn_abort(t);
	assert_true(allowed ? reason[0] == '\0' : reason[0] != '\0');
	if (out_basis != NULL) {
		*out_basis = basis;
	}
	return allowed;
}

/* --- care relations and implicit access --- */

static void test_relation_allows_read_and_write(void **state)
{
	struct fixture *f = *state;
	ASSERT_APPLIED(relation(f, "P1", &hosp_admin));
	struct access_read_decision d = decide(f, &hosp_doc, "P1", T0);
	assert_true(d.allowed);
	assert_int_equal(d.basis, ACCESS_BASIS_RELATION);
	assert_string_equal(access_basis_name(d.basis), "relation");
	enum access_basis basis = ACCESS_BASIS_NONE;
	assert_true(may_write(f, &hosp_doc, "P1", "note", T0, &basis));
	assert_int_equal(basis, ACCESS_BASIS_RELATION);
	struct entry n = note(f, "P1", &hosp_doc, T0);
	ASSERT_APPLIED(n);
	assert_int_equal(shown(f, &d, &n), ACCESS_SHOWN);
}

static void test_no_basis_denies_read_and_write(void **state)
{
	struct fixture *f = *state;
	ASSERT_APPLIED(relation(f, "P1", &hosp_admin));
	struct access_read_decision d = decide(f, &muni_nurse, "P1", T0);
	assert_false(d.allowed);
	assert_string_equal(d.reason, "no care relation, recent treatment or break-the-glass grant "
	                              "for this patient at muni");
	assert_false(may_write(f, &muni_nurse, "P1", "note", T0, NULL));
	ASSERT_REFUSED(note(f, "P1", &muni_nurse, T0));
	/* A relation with another patient is no basis either. */
	ASSERT_APPLIED(relation(f, "P2", &muni_admin));
	assert_false(decide(f, &muni_nurse, "P1", T0).allowed);
	assert_int_equal(basis_of(f, &muni_nurse, "P2", T0), ACCESS_BASIS_RELATION);
}

static void test_relation_scoped_to_unit(void **state)
{
	struct fixture *f = *state;
	ASSERT_APPLIED(
	    relation_ex(f, "P1", &hosp_admin, "hosp", "cardio", NULL, T0 - DAY_MS, 0, T0 - DAY_MS));
	assert_int_equal(basis_of(f, &hosp_doc, "P1", T0), ACCESS_BASIS_RELATION);
	struct who ortho = {"doc2", "physician", "hosp", "ortho"};
	assert_false(decide(f, &ortho, "P1", T0).allowed);
	/* A relation is recorded by its own organisation only. */
	ASSERT_REFUSED(relation_ex(f, "P1", &hosp_admin, "muni", "", NULL, T0, 0, T0));
	/* and only by its administration */
	ASSERT_REFUSED(relation_ex(f, "P1", &hosp_doc, "hosp", "", NULL, T0, 0, T0));
}

static void test_relation_validity_and_end(void **state)
{
	struct fixture *f = *state;
	struct entry r =
	    relation_ex(f, "P1", &hosp_admin, "hosp", "", NULL, T0, T0 + 30 * DAY_MS, T0);
	ASSERT_APPLIED(r);
	assert_false(decide(f, &hosp_doc, "P1", T0 - 1).allowed);
	assert_int_equal(basis_of(f, &hosp_doc, "P1", T0), ACCESS_BASIS_RELATION);
	assert_false(decide(f, &hosp_doc, "P1", T0 + 30 * DAY_MS).allowed);
	/* Ended by another organisation: refused; by its own: ended at once. */
	ASSERT_REFUSED(ref_entry(f, POLICY_KIND_CARE_RELATION_END, "P1", &muni_admin, r.id, T0));
	assert_int_equal(basis_of(f, &hosp_doc, "P1", T0 + DAY_MS), ACCESS_BASIS_RELATION);
	ASSERT_APPLIED(
	    ref_entry(f, POLICY_KIND_CARE_RELATION_END, "P1", &hosp_admin, r.id, T0 + DAY_MS));
	assert_false(decide(f, &hosp_doc, "P1", T0 + DAY_MS).allowed);
	struct entry again =
	    ref_entry(f, POLICY_KIND_CARE_RELATION_END, "P1", &hosp_admin, r.id, T0 + DAY_MS);
	ASSERT_REFUSED(again);
	assert_string_equal(again.reason, "the care relation has already ended");
	/* An end naming something that is not a relation. */
	struct entry n = relation(f, "P2", &hosp_admin);
	struct entry bad = ref_entry(f, POLICY_KIND_CARE_RELATION_END, "P1", &hosp_admin, n.id, T0);
	ASSERT_REFUSED(bad); /* a relation, but of another patient */
}

static void test_implicit_access_within_window(void **state)
{
	struct fixture *f = *state;
	struct entry r = relation(f, "P1", &hosp_admin);
	ASSERT_APPLIED(note(f, "P1", &hosp_doc, T0));
	ASSERT_APPLIED(ref_entry(f, POLICY_KIND_CARE_RELATION_END, "P1", &hosp_admin, r.id, T0));
	struct who nurse = {"nurse9", "nurse", "hosp", "ward3"};
	assert_int_equal(basis_of(f, &nurse, "P1", T0 + 10 * DAY_MS), ACCESS_BASIS_IMPLICIT);
	assert_int_equal(basis_of(f, &nurse, "P1", T0 + 90 * DAY_MS), ACCESS_BASIS_IMPLICIT);
	assert_false(decide(f, &nurse, "P1", T0 + 90 * DAY_MS + 1).allowed);
	/* Another organisation gains nothing from hosp's treatment. */
	assert_false(decide(f, &muni_nurse, "P1", T0 + DAY_MS).allowed);
	/* Recent treatment allows reading, not writing. */
	assert_false(may_write(f, &nurse, "P1", "note", T0 + DAY_MS, NULL));
	ASSERT_REFUSED(note(f, "P1", &nurse, T0 + DAY_MS));
	/* The window is a replicated parameter. */
	ASSERT_APPLIED(params(f, 200, 120, 24, T0 + DAY_MS));
	assert_int_equal(basis_of(f, &nurse, "P1", T0 + 150 * DAY_MS), ACCESS_BASIS_IMPLICIT);
	struct storage_txn *t = begin_read(f);
	struct access_params p;
	assert_int_equal(access_params_get(t, &p), CARELOG_OK);
	storage_txn_abort(t);
	assert_int_equal(p.implicit_window_days, 200);
}

static void test_params_need_operator_and_default(void **state)
{
	struct fixture *f = *state;
	struct storage_txn *t = begin_read(f);
	struct access_params p;
	assert_int_equal(access_params_get(t, &p), CARELOG_OK);
	storage_txn_abort(t);
	assert_int_equal(p.implicit_window_days, POLICY_IMPLICIT_WINDOW_DAYS_DEFAULT);
	assert_int_equal(p.btg_hours_max, POLICY_BTG_HOURS_MAX_DEFAULT);
	assert_int_equal(p.ambulance_hours_max, POLICY_AMBULANCE_HOURS_MAX_DEFAULT);
	struct policy_body *b = body_new(POLICY_KIND_PARAMS);
	b->implicit_window_days = 5;
	b->btg_hours_max = 5;
	b->ambulance_hours_max = 5;
	ASSERT_REFUSED(policy(f, POLICY_REGION_PATIENT, &hosp_admin, b, T0));
	ASSERT_APPLIED(policy(f, POLICY_REGION_PATIENT, &operator, b, T0));
	free(b);
}

/* --- break the glass --- */

static int collect_btg(void *arg, const struct access_btg *g)
{
	struct access_btg *out = arg;
	size_t i = 0;
	while (out[i].index != 0) {
		i++;
	}
	assert_true(i < TEST_ROWS_MAX - 1);
	out[i] = *g;
	return 0;
}

static size_t open_grants(struct fixture *f, const char *patient, struct access_btg *out)
{
	memset(out, 0, TEST_ROWS_MAX * sizeof(*out));
	struct storage_txn *t = begin_read(f);
	assert_int_equal(access_btg_open(t, patient, 0, collect_btg, out), CARELOG_OK);
	storage_txn_abort(t);
	size_t n = 0;
	while (out[n].index != 0) {
		n++;
	}
	return n;
}

static void test_btg_grant_expires_and_review_closes_listing(void **state)
{
	struct fixture *f = *state;
	assert_false(decide(f, &muni_nurse, "P1", T0).allowed);
	struct entry g = btg(f, "P1", &muni_nurse, 4, T0);
	ASSERT_APPLIED(g);
	struct access_read_decision d = decide(f, &muni_nurse, "P1", T0 + HOUR_MS);
	assert_int_equal(d.basis, ACCESS_BASIS_BTG);
	assert_true(d.covers_shielded);
	assert_true(may_write(f, &muni_nurse, "P1", "note", T0 + HOUR_MS, NULL));
	assert_false(decide(f, &muni_nurse2, "P1", T0 + HOUR_MS).allowed); /* personal grant */
	/* A note written under the grant opens nothing to the rest of the organisation: a
	 * break-the-glass write is not "the organisation is treating the patient". */
	ASSERT_APPLIED(note(f, "P1", &muni_nurse, T0 + HOUR_MS));
	assert_false(decide(f, &muni_nurse2, "P1", T0 + 2 * HOUR_MS).allowed);
	assert_false(decide(f, &muni_nurse, "P1", T0 + 4 * HOUR_MS).allowed);

	struct access_btg *list = calloc(TEST_ROWS_MAX, sizeof(*list));
	assert_non_null(list);
	assert_int_equal(open_grants(f, "P1", list), 1);
	assert_memory_equal(list[0].id, g.id, JOURNAL_ID_BYTES);
	assert_string_equal(list[0].actor, "nurse1");
	assert_string_equal(list[0].org, "muni");
	assert_string_equal(list[0].reason_code, "emergency");
	assert_int_equal(list[0].granted_ms, T0);
	assert_int_equal(list[0].expires_ms, T0 + 4 * HOUR_MS);
	assert_int_equal(open_grants(f, NULL, list), 1);
	assert_int_equal(open_grants(f, "P2", list), 0);

	/* Not reviewed by the one who broke the glass, nor by a clinician. */
	ASSERT_REFUSED(ref_entry(f, POLICY_KIND_BTG_REVIEW, "P1", &muni_nurse, g.id, T0 + HOUR_MS));
	ASSERT_REFUSED(ref_entry(f, POLICY_KIND_BTG_REVIEW, "P1", &hosp_doc, g.id, T0 + HOUR_MS));
	ASSERT_APPLIED(ref_entry(f, POLICY_KIND_BTG_REVIEW, "P1", &auditor, g.id, T0 + HOUR_MS));
	assert_int_equal(open_grants(f, "P1", list), 0);
	assert_int_equal(open_grants(f, NULL, list), 0);
	/* The grant itself still runs to its expiry. */
	assert_int_equal(basis_of(f, &muni_nurse, "P1", T0 + 2 * HOUR_MS), ACCESS_BASIS_BTG);
	struct entry twice =
	    ref_entry(f, POLICY_KIND_BTG_REVIEW, "P1", &auditor, g.id, T0 + HOUR_MS);
	ASSERT_REFUSED(twice);
	assert_string_equal(twice.reason, "the break-the-glass grant was already reviewed");
	free(list);
}

static void test_btg_refused_for_non_clinical_role_and_over_max_hours(void **state)
{
	struct fixture *f = *state;
	ASSERT_REFUSED(btg(f, "P1", &hosp_admin, 4, T0));
	ASSERT_REFUSED(btg(f, "P1", &auditor, 4, T0));
	struct who crew = {"amb1", "ambulance", "amb", "car1"};
	ASSERT_REFUSED(btg(f, "P1", &crew, 4, T0));
	assert_false(may_write(f, &hosp_admin, "P1", "btg-grant", T0, NULL));
	assert_true(may_write(f, &muni_nurse, "P1", "btg-grant", T0, NULL));
	struct entry over = btg(f, "P1", &muni_nurse, POLICY_BTG_HOURS_MAX_DEFAULT + 1, T0);
	ASSERT_REFUSED(over);
	assert_string_equal(over.reason, "the break-the-glass grant is longer than the region "
	                                 "allows");
	ASSERT_APPLIED(btg(f, "P1", &muni_nurse, POLICY_BTG_HOURS_MAX_DEFAULT, T0));
	struct access_btg *list = calloc(TEST_ROWS_MAX, sizeof(*list));
	assert_non_null(list);
	assert_int_equal(open_grants(f, NULL, list), 1); /* refused grants are never listed */
	free(list);
}

/* --- blocks --- */

static void test_block_by_org_category_and_lift(void **state)
{
	struct fixture *f = *state;
	ASSERT_APPLIED(relation_ex(f, "P1", &muni_admin, "muni", "", "psychiatry", T0 - DAY_MS, 0,
	                           T0 - DAY_MS));
	ASSERT_APPLIED(relation(f, "P1", &hosp_admin));
	struct entry psy = note_ex(f, "P1", &hosp_psych, "psychiatry", T0);
	struct entry plain = note(f, "P1", &hosp_doc, T0);
	ASSERT_APPLIED(psy);
	ASSERT_APPLIED(plain);
	struct who patient = {"P1", "patient", "portal", ""};
	assert_int_equal(shown_to(f, &muni_nurse, &psy, T0), ACCESS_SHOWN); /* relation covers */
	/* Only the patient or the administration may block. */
	ASSERT_REFUSED(block(f, "P1", &hosp_doc, "muni", "", "psychiatry", NULL, T0));
	struct who other_patient = {"P2", "patient", "portal", ""};
	ASSERT_REFUSED(block(f, "P1", &other_patient, "muni", "", "psychiatry", NULL, T0));
	struct entry bl = block(f, "P1", &patient, "muni", "", "psychiatry", NULL, T0);
	ASSERT_APPLIED(bl);
	assert_int_equal(shown_to(f, &muni_nurse, &psy, T0), ACCESS_WITHHELD_BLOCKED);
	assert_int_equal(shown_to(f, &muni_nurse, &plain, T0), ACCESS_SHOWN);
	assert_int_equal(shown_to(f, &hosp_psych, &psy, T0), ACCESS_SHOWN);
	assert_int_equal(shown_to(f, &patient, &psy, T0), ACCESS_SHOWN); /* never from oneself */
	/* Break-the-glass does not override a block. */
	ASSERT_APPLIED(btg(f, "P1", &muni_nurse2, 4, T0));
	assert_int_equal(shown_to(f, &muni_nurse2, &psy, T0), ACCESS_WITHHELD_BLOCKED);
	/* Lifted: shown again. Lifting twice is refused. */
	ASSERT_REFUSED(ref_entry(f, POLICY_KIND_BLOCK_LIFT, "P1", &hosp_doc, bl.id, T0));
	ASSERT_APPLIED(ref_entry(f, POLICY_KIND_BLOCK_LIFT, "P1", &patient, bl.id, T0));
	assert_int_equal(shown_to(f, &muni_nurse, &psy, T0), ACCESS_SHOWN);
	ASSERT_REFUSED(ref_entry(f, POLICY_KIND_BLOCK_LIFT, "P1", &patient, bl.id, T0));
	assert_string_equal(access_withheld_text(ACCESS_WITHHELD_BLOCKED),
	                    "blocked by the patient");
}

static void test_block_by_person_and_entry(void **state)
{
	struct fixture *f = *state;
	ASSERT_APPLIED(relation(f, "P1", &muni_admin));
	ASSERT_APPLIED(relation(f, "P1", &hosp_admin));
	struct entry a = note(f, "P1", &hosp_doc, T0);
	struct entry b = note(f, "P1", &hosp_doc, T0);
	/* By person, everything: nurse2 blocked, nurse1 of the same org not. */
	ASSERT_APPLIED(block(f, "P1", &hosp_admin, "", "nurse2", NULL, NULL, T0));
	assert_int_equal(shown_to(f, &muni_nurse2, &a, T0), ACCESS_WITHHELD_BLOCKED);
	assert_int_equal(shown_to(f, &muni_nurse2, &b, T0), ACCESS_WITHHELD_BLOCKED);
	assert_int_equal(shown_to(f, &muni_nurse, &a, T0), ACCESS_SHOWN);
	/* By entry, for an organisation. */
	struct who patient = {"P1", "patient", "portal", ""};
	ASSERT_APPLIED(block(f, "P1", &patient, "muni", "", NULL, a.id, T0));
	assert_int_equal(shown_to(f, &muni_nurse, &a, T0), ACCESS_WITHHELD_BLOCKED);
	assert_int_equal(shown_to(f, &muni_nurse, &b, T0), ACCESS_SHOWN);
	assert_int_equal(shown_to(f, &hosp_doc, &a, T0), ACCESS_SHOWN);
	/* An entry of another patient cannot be blocked here. */
	ASSERT_APPLIED(relation(f, "P2", &hosp_admin));
	struct entry other = note(f, "P2", &hosp_doc, T0);
	ASSERT_REFUSED(block(f, "P1", &patient, "muni", "", NULL, other.id, T0));
}

/* --- shielded categories --- */

static void test_shielded_by_unit_and_relation_categories(void **state)
{
	struct fixture *f = *state;
	ASSERT_APPLIED(relation(f, "P1", &hosp_admin));
	ASSERT_APPLIED(relation(f, "P1", &muni_admin));
	struct entry psy = note_ex(f, "P1", &hosp_psych, "psychiatry", T0);
	ASSERT_APPLIED(psy);
	assert_int_equal(shown_to(f, &hosp_psych, &psy, T0), ACCESS_SHOWN); /* own unit */
	assert_int_equal(shown_to(f, &hosp_doc, &psy, T0),
	                 ACCESS_WITHHELD_SHIELDED); /* other unit */
	assert_int_equal(shown_to(f, &muni_nurse, &psy, T0), ACCESS_WITHHELD_SHIELDED);
	/* A relation covering the category shows it; one covering another category does not. */
	ASSERT_APPLIED(relation_ex(f, "P1", &hosp_admin, "hosp", "cardio", "substance-use",
	                           T0 - DAY_MS, 0, T0 - DAY_MS));
	assert_int_equal(shown_to(f, &hosp_doc, &psy, T0), ACCESS_WITHHELD_SHIELDED);
	ASSERT_APPLIED(relation_ex(f, "P1", &muni_admin, "muni", "", "psychiatry", T0 - DAY_MS, 0,
	                           T0 - DAY_MS));
	assert_int_equal(shown_to(f, &muni_nurse, &psy, T0), ACCESS_SHOWN);
	/* Break-the-glass covers shielded entries; the patient sees their own. */
	struct who er = {"doc7", "physician", "other", "er"};
	ASSERT_APPLIED(btg(f, "P1", &er, 2, T0));
	assert_int_equal(shown_to(f, &er, &psy, T0), ACCESS_SHOWN);
	struct who patient = {"P1", "patient", "portal", ""};
	assert_int_equal(shown_to(f, &patient, &psy, T0), ACCESS_SHOWN);
}

/* --- withheld from the patient and from guardians --- */

static void test_withheld_from_patient_and_guardians(void **state)
{
	struct fixture *f = *state;
	ASSERT_APPLIED(patient_entry(f, "C1", "2016-01-01"));
	ASSERT_APPLIED(relation(f, "C1", &hosp_admin));
	ASSERT_APPLIED(proxy_grant(f, "C1", &hosp_admin, "mom", "parent", "read", T0));
	struct entry a = note(f, "C1", &hosp_doc, T0);
	struct entry b = note(f, "C1", &hosp_doc, T0);
	/* Only a clinician who may write for the patient withholds. */
	ASSERT_REFUSED(withhold(f, "C1", &muni_nurse, a.id, "patient", T0));
	ASSERT_REFUSED(withhold(f, "C1", &hosp_admin, a.id, "patient", T0));
	struct entry wa = withhold(f, "C1", &hosp_doc, a.id, "patient", T0);
	struct entry wb = withhold(f, "C1", &hosp_doc, b.id, "guardians", T0);
	ASSERT_APPLIED(wa);
	ASSERT_APPLIED(wb);
	struct who child = {"C1", "patient", "portal", ""};
	struct who mom = {"mom", "proxy", "portal", ""};
	assert_int_equal(shown_to(f, &child, &a, T0), ACCESS_WITHHELD_FROM_PATIENT);
	assert_int_equal(shown_to(f, &mom, &a, T0), ACCESS_WITHHELD_FROM_PATIENT);
	assert_int_equal(shown_to(f, &hosp_doc, &a, T0), ACCESS_SHOWN);
	assert_int_equal(shown_to(f, &child, &b, T0), ACCESS_SHOWN);
	assert_int_equal(shown_to(f, &mom, &b, T0), ACCESS_SHOWN); /* age 10: full view */
	assert_int_equal(shown_to(f, &mom, &b, T_2029_06), ACCESS_WITHHELD_FROM_GUARDIANS);
	/* The withholding entry itself is hidden from those it hides from. */
	assert_int_equal(shown_to(f, &child, &wa, T0), ACCESS_WITHHELD_FROM_PATIENT);
	assert_int_equal(shown_to(f, &hosp_doc, &wa, T0), ACCESS_SHOWN);
	/* Lifted: shown. */
	ASSERT_APPLIED(ref_entry(f, POLICY_KIND_WITHHOLD_LIFT, "C1", &hosp_doc, wa.id, T0));
	assert_int_equal(shown_to(f, &child, &a, T0), ACCESS_SHOWN);
	ASSERT_REFUSED(ref_entry(f, POLICY_KIND_WITHHOLD_LIFT, "C1", &hosp_doc, wa.id, T0));
}

/* --- proxies --- */

static void test_parent_proxy_full_reduced_and_ended_by_age(void **state)
{
	struct fixture *f = *state;
	struct who mom = {"mom", "proxy", "portal", ""};
	/* Parents' grants are registered by the administration, never by the parent. */
	ASSERT_REFUSED(proxy_grant(f, "C1", &mom, "mom", "parent", "read", T0));
	ASSERT_APPLIED(proxy_grant(f, "C1", &hosp_admin, "mom", "parent", "read", T0));
	struct access_read_decision d = decide(f, &mom, "C1", T0);
	assert_false(d.allowed);
	assert_string_equal(d.reason,
	                    "no birth date recorded for this patient (parental access needs it)");
	ASSERT_APPLIED(patient_entry(f, "C1", "2016-01-01"));
	ASSERT_APPLIED(relation(f, "C1", &hosp_admin));
	struct entry plain = note(f, "C1", &hosp_doc, T0);
	struct entry psy = note_ex(f, "C1", &hosp_psych, "psychiatry", T0);
	struct entry guarded = note(f, "C1", &hosp_doc, T0);
	ASSERT_APPLIED(withhold(f, "C1", &hosp_doc, guarded.id, "guardians", T0));

	d = decide(f, &mom, "C1", T0); /* age 10 */
	assert_int_equal(d.basis, ACCESS_BASIS_PROXY);
	assert_false(d.reduced);
	assert_int_equal(shown(f, &d, &plain), ACCESS_SHOWN);
	assert_int_equal(shown(f, &d, &guarded), ACCESS_SHOWN);
	assert_int_equal(shown(f, &d, &psy), ACCESS_WITHHELD_SHIELDED);

	d = decide(f, &mom, "C1", T_2029_06); /* age 13 */
	assert_int_equal(d.basis, ACCESS_BASIS_PROXY);
	assert_true(d.reduced);
	assert_int_equal(shown(f, &d, &plain), ACCESS_SHOWN);
	assert_int_equal(shown(f, &d, &guarded), ACCESS_WITHHELD_FROM_GUARDIANS);
	assert_int_equal(shown(f, &d, &psy), ACCESS_WITHHELD_FROM_GUARDIANS);

	d = decide(f, &mom, "C1", T_2032_06); /* age 16 */
	assert_false(d.allowed);
	assert_string_equal(d.reason, "parental access ends when the patient turns 16");
	/* Another person has no grant. */
	struct who dad = {"dad", "proxy", "portal", ""};
	assert_string_equal(decide(f, &dad, "C1", T0).reason,
	                    "no active proxy grant from this patient");
	/* Revoked: gone. Only the administration, the patient or the proxy itself revoke. */
	struct entry g2 = proxy_grant(f, "C1", &hosp_admin, "dad", "parent", "read", T0);
	ASSERT_APPLIED(g2);
	ASSERT_REFUSED(ref_entry(f, POLICY_KIND_PROXY_REVOKE, "C1", &mom, g2.id, T0));
	ASSERT_APPLIED(ref_entry(f, POLICY_KIND_PROXY_REVOKE, "C1", &dad, g2.id, T0));
	assert_false(decide(f, &dad, "C1", T0).allowed);
}

static void test_chosen_proxy_needs_patient_16(void **state)
{
	struct fixture *f = *state;
	struct who young = {"Y1", "patient", "portal", ""};
	struct who adult = {"A1", "patient", "portal", ""};
	struct who nobirth = {"N1", "patient", "portal", ""};
	ASSERT_APPLIED(patient_entry(f, "Y1", "2012-03-01")); /* 13 at T0 */
	ASSERT_APPLIED(patient_entry(f, "A1", "2000-03-01"));
	struct entry e = proxy_grant(f, "Y1", &young, "friend", "chosen", "read", T0);
	ASSERT_REFUSED(e);
	assert_string_equal(e.reason, "a patient may choose a proxy from the age of 16");
	ASSERT_REFUSED(proxy_grant(f, "N1", &nobirth, "friend", "chosen", "read", T0));
	/* Granted by the patient only (not for someone else, not by the administration). */
	ASSERT_REFUSED(proxy_grant(f, "A1", &young, "friend", "chosen", "read", T0));
	ASSERT_REFUSED(proxy_grant(f, "A1", &hosp_admin, "friend", "chosen", "read", T0));
	ASSERT_APPLIED(proxy_grant(f, "A1", &adult, "friend", "chosen", "read", T0));
	struct who friend = {"friend", "proxy", "portal", ""};
	struct access_read_decision d = decide(f, &friend, "A1", T0);
	assert_int_equal(d.basis, ACCESS_BASIS_PROXY);
	assert_false(d.reduced);
	assert_true(d.patient_view);
	/* A parent grant for someone already 16 is refused. */
	ASSERT_REFUSED(proxy_grant(f, "A1", &hosp_admin, "mom", "parent", "read", T0));
}

static void test_read_proxy_cannot_write_full_proxy_can(void **state)
{
	struct fixture *f = *state;
	struct who adult = {"A1", "patient", "portal", ""};
	struct who reader = {"reader", "proxy", "portal", ""};
	struct who helper = {"helper", "proxy", "portal", ""};
	ASSERT_APPLIED(patient_entry(f, "A1", "2000-03-01"));
	ASSERT_APPLIED(proxy_grant(f, "A1", &adult, "reader", "chosen", "read", T0));
	ASSERT_APPLIED(proxy_grant(f, "A1", &adult, "helper", "chosen", "full", T0));
	assert_int_equal(basis_of(f, &reader, "A1", T0), ACCESS_BASIS_PROXY);
	assert_false(may_write(f, &reader, "A1", "note", T0, NULL));
	struct entry e = note(f, "A1", &reader, T0);
	ASSERT_REFUSED(e);
	assert_string_equal(e.reason, "a proxy with read access may not write in the record");
	enum access_basis basis = ACCESS_BASIS_NONE;
	assert_true(may_write(f, &helper, "A1", "note", T0, &basis));
	assert_int_equal(basis, ACCESS_BASIS_PROXY);
	ASSERT_APPLIED(note(f, "A1", &helper, T0));
	/* The patient writes in their own record only. */
	ASSERT_APPLIED(note(f, "A1", &adult, T0));
	ASSERT_REFUSED(note(f, "Y1", &adult, T0));
	/* A proxy's write gives its organisation no implicit access. */
	struct who portal_nurse = {"n5", "nurse", "portal", ""};
	assert_false(decide(f, &portal_nurse, "A1", T0 + DAY_MS).allowed);
}

/* --- ambulance --- */

static struct entry ambulance(struct fixture *f, const char *patient, const struct who *admin,
                              const char *crew, uint64_t from_ms, uint64_t to_ms)
{
	struct policy_body *b = body_new(POLICY_KIND_AMBULANCE);
	snprintf(b->actor, sizeof(b->actor), "%s", crew);
	b->from_ms = from_ms;
	b->to_ms = to_ms;
	struct entry e = policy(f, patient, admin, b, from_ms);
	free(b);
	return e;
}

static void test_ambulance_reads_during_assignment_only_and_never_writes(void **state)
{
	struct fixture *f = *state;
	struct who amb_admin = {"adm3", "admin", "amb", "office"};
	struct who crew = {"amb1", "ambulance", "amb", "car1"};
	ASSERT_REFUSED(ambulance(f, "P1", &hosp_doc, "amb1", T0, T0 + 6 * HOUR_MS));
	ASSERT_REFUSED(ambulance(f, "P1", &amb_admin, "amb1", T0, T0 + 25 * HOUR_MS));
	ASSERT_APPLIED(ambulance(f, "P1", &amb_admin, "amb1", T0, T0 + 6 * HOUR_MS));
	assert_false(decide(f, &crew, "P1", T0 - 1).allowed);
	assert_int_equal(basis_of(f, &crew, "P1", T0 + HOUR_MS), ACCESS_BASIS_ASSIGNMENT);
	assert_string_equal(access_basis_name(ACCESS_BASIS_ASSIGNMENT), "assignment");
	struct access_read_decision d = decide(f, &crew, "P1", T0 + 6 * HOUR_MS);
	assert_false(d.allowed);
	assert_string_equal(d.reason, "no active ambulance assignment for this patient");
	/* The assignment is with the crew's organisation. */
	struct who other_crew = {"amb1", "ambulance", "otheramb", "car1"};
	assert_false(decide(f, &other_crew, "P1", T0 + HOUR_MS).allowed);
	assert_false(may_write(f, &crew, "P1", "note", T0 + HOUR_MS, NULL));
	ASSERT_REFUSED(note(f, "P1", &crew, T0 + HOUR_MS));
}

/* --- roles without patient access; operations --- */

static void test_admin_auditor_operator_cannot_read(void **state)
{
	struct fixture *f = *state;
	ASSERT_APPLIED(relation(f, "P1", &hosp_admin));
	struct access_read_decision d = decide(f, &hosp_admin, "P1", T0);
	assert_false(d.allowed);
	assert_string_equal(d.reason, "role admin may not read patient records");
	assert_false(decide(f, &auditor, "P1", T0).allowed);
	assert_false(decide(f, &operator, "P1", T0).allowed);
	struct who sys = {"node-1", "system", "hosp", ""};
	assert_false(decide(f, &sys, "P1", T0).allowed);
	struct who nobody = {"x", "", "hosp", ""};
	assert_false(decide(f, &nobody, "P1", T0).allowed);
	struct who janitor = {"x", "janitor", "hosp", ""};
	assert_false(decide(f, &janitor, "P1", T0).allowed);
	assert_false(may_write(f, &janitor, "P1", "note", T0, NULL));
	/* The region's pseudo-patient is never a record. */
	assert_false(decide(f, &hosp_doc, POLICY_REGION_PATIENT, T0).allowed);
	/* A patient reads their own record only. */
	struct who p1 = {"P1", "patient", "portal", ""};
	struct who p2 = {"P2", "patient", "portal", ""};
	assert_int_equal(basis_of(f, &p1, "P1", T0), ACCESS_BASIS_SELF);
	assert_false(decide(f, &p2, "P1", T0).allowed);
}

static void test_write_roles_for_administrative_kinds(void **state)
{
	struct fixture *f = *state;
	enum access_basis basis = ACCESS_BASIS_NONE;
	assert_true(may_write(f, &operator, POLICY_REGION_PATIENT, "policy-params", T0, &basis));
	assert_int_equal(basis, ACCESS_BASIS_ROLE);
	assert_false(may_write(f, &hosp_admin, POLICY_REGION_PATIENT, "policy-params", T0, NULL));
	assert_false(may_write(f, &operator, "P1", "policy-params", T0, NULL));
	assert_true(may_write(f, &auditor, "P1", "btg-review", T0, NULL));
	assert_true(may_write(f, &hosp_admin, "P1", "btg-review", T0, NULL));
	assert_false(may_write(f, &hosp_doc, "P1", "btg-review", T0, NULL));
	assert_true(may_write(f, &hosp_admin, "P1", "care-relation", T0, NULL));
	assert_true(may_write(f, &hosp_admin, "P1", "erasure", T0, NULL));
	assert_false(may_write(f, &hosp_doc, "P1", "erasure", T0, NULL));
	assert_false(may_write(f, &operator, "P1", "note", T0, NULL));
	assert_false(may_write(f, &hosp_doc, "P1", "no-such-kind", T0, NULL));
	struct who sys = {"node-1", "system", "hosp", ""};
	assert_true(may_write(f, &sys, POLICY_REGION_PATIENT, "audit-batch", T0, NULL));
	assert_false(may_write(f, &operator, POLICY_REGION_PATIENT, "audit-batch", T0, NULL));
	struct who p1 = {"P1", "patient", "portal", ""};
	assert_true(may_write(f, &p1, "P1", "block", T0, &basis));
	assert_int_equal(basis, ACCESS_BASIS_SELF);
	assert_false(may_write(f, &hosp_doc, "P1", "block", T0, NULL));
}

static void test_op_class_covers_every_op(void **state)
{
	(void)state;
	assert_int_equal(access_op_class(PROTO_OP_STATUS), ACCESS_OP_OPERATOR);
	assert_int_equal(access_op_class(PROTO_OP_APPEND), ACCESS_OP_PATIENT_WRITE);
	assert_int_equal(access_op_class(PROTO_OP_READ), ACCESS_OP_PATIENT_READ);
	assert_int_equal(access_op_class(PROTO_OP_GET), ACCESS_OP_PATIENT_READ);
	assert_int_equal(access_op_class(PROTO_OP_VERIFY), ACCESS_OP_OPERATOR);
	assert_int_equal(access_op_class(PROTO_OP_MEMBER), ACCESS_OP_OPERATOR);
	assert_int_equal(access_op_class(PROTO_OP_TRANSFER), ACCESS_OP_OPERATOR);
	assert_int_equal(access_op_class(PROTO_OP_POLICY), ACCESS_OP_PATIENT_WRITE);
	assert_int_equal(access_op_class(PROTO_OP_ACCESS_LOG), ACCESS_OP_ACCESS_LOG);
	assert_int_equal(access_op_class(PROTO_OP_BTG_LIST), ACCESS_OP_BTG_LIST);
	/* Every op of the protocol has a class; none outside it. */
	for (unsigned op = 1; op < PROTO_OP_COUNT_; op++) {
		assert_int_not_equal(access_op_class((uint8_t)op), ACCESS_OP_UNKNOWN);
	}
	assert_int_equal(access_op_class(0), ACCESS_OP_UNKNOWN);
	assert_int_equal(access_op_class(PROTO_OP_COUNT_), ACCESS_OP_UNKNOWN);
	assert_int_equal(access_op_class(11), ACCESS_OP_UNKNOWN);
	assert_int_equal(access_op_class(255), ACCESS_OP_UNKNOWN);
}

/* --- erasure --- */

static void test_erasure_rewrites_record_and_is_recorded(void **state)
{
	struct fixture *f = *state;
	ASSERT_APPLIED(relation(f, "P1", &hosp_admin));
	struct entry n = note(f, "P1", &hosp_doc, T0);
	ASSERT_APPLIED(n);
	struct storage_txn *t = begin_read(f);
	struct storage_entry before;
	assert_int_equal(storage_log_get(t, n.index, &before), CARELOG_OK);
	struct journal_record r0;
	assert_int_equal(journal_record_decode(before.data, before.data_len, &r0), CARELOG_OK);
	uint8_t header0[JOURNAL_HEADER_BYTES_MAX];
	size_t header0_len = r0.header_len;
	memcpy(header0, r0.header, header0_len);
	uint8_t signature0[CL_SIGNATURE_BYTES];
	memcpy(signature0, r0.signature, sizeof(signature0));
	assert_non_null(r0.body);
	storage_txn_abort(t);

	struct policy_body *b = body_new(POLICY_KIND_ERASURE);
	set_ref(b, n.id);
	snprintf(b->text, sizeof(b->text), "hpl 43: decision 2026/17 by the county governor");
	ASSERT_REFUSED(policy(f, "P1", &hosp_doc, b, T0 + DAY_MS));   /* admin only */
	ASSERT_REFUSED(policy(f, "P2", &hosp_admin, b, T0 + DAY_MS)); /* another patient's */
	struct entry z = policy(f, "P1", &hosp_admin, b, T0 + DAY_MS);
	ASSERT_APPLIED(z);

	t = begin_read(f);
	struct storage_entry after;
	assert_int_equal(storage_log_get(t, n.index, &after), CARELOG_OK);
	struct journal_record r1;
	assert_int_equal(journal_record_decode(after.data, after.data_len, &r1), CARELOG_OK);
	assert_null(r1.body);
	assert_null(r1.salt);
	assert_int_equal(r1.leader_time_ms, r0.leader_time_ms);
	assert_int_equal(r1.header_len, header0_len);
	assert_memory_equal(r1.header, header0, header0_len);
	assert_memory_equal(r1.signature, signature0, CL_SIGNATURE_BYTES);
	assert_int_equal(after.term, before.term);
	bool erased = false;
	struct access_erasure info;
	assert_int_equal(access_erased(t, n.id, &erased, &info), CARELOG_OK);
	assert_true(erased);
	assert_int_equal(info.tombstone_index, z.index);
	assert_int_equal(info.time_ms, T0 + DAY_MS);
	assert_string_equal(info.author, "adm1");
	assert_string_equal(info.org, "hosp");
	assert_string_equal(info.basis, "hpl 43: decision 2026/17 by the county governor");
	assert_int_equal(access_erased(t, z.id, &erased, NULL), CARELOG_OK);
	assert_false(erased);
	storage_txn_abort(t);

	struct entry again = policy(f, "P1", &hosp_admin, b, T0 + 2 * DAY_MS);
	ASSERT_REFUSED(again);
	assert_string_equal(again.reason, "the entry has already been erased");
	/* Policy entries hold no clinical content: never erased. */
	set_ref(b, z.id);
	ASSERT_REFUSED(policy(f, "P1", &hosp_admin, b, T0 + 2 * DAY_MS));
	free(b);
}

/* A node that caught up after an erasure receives the target already stripped: it reaches the
 * same verdict (applied) and records the erasure without rewriting anything. */
/* Every copy of the erased record leaves the log: the same signed record committed twice (a
 * forward retried across a leader change) keeps no body behind. */
static void test_erasure_strips_every_copy_of_the_record(void **state)
{
	struct fixture *f = *state;
	ASSERT_APPLIED(relation(f, "P1", &hosp_admin));
	struct entry n = note(f, "P1", &hosp_doc, T0);
	struct storage_txn *t = NULL;
	assert_int_equal(storage_txn_begin_write(f->s, &t), CARELOG_OK);
	struct storage_entry first;
	assert_int_equal(storage_log_get(t, n.index, &first), CARELOG_OK);
	uint8_t *copy = malloc(first.data_len);
	assert_non_null(copy);
	memcpy(copy, first.data, first.data_len);
	uint64_t copy_index = ++f->last_index;
	struct storage_entry se = {
	    .index = copy_index, .term = 1, .type = 0, .data_len = first.data_len, .data = copy};
	assert_int_equal(storage_log_append(t, &se, 1), CARELOG_OK);
	assert_int_equal(access_copy_add(t, n.id, copy_index), CARELOG_OK); /* as apply.c does */
	assert_int_equal(storage_txn_commit(t), CARELOG_OK);
	free(copy);

	struct policy_body *b = body_new(POLICY_KIND_ERASURE);
	set_ref(b, n.id);
	snprintf(b->text, sizeof(b->text), "hpl 43");
	struct entry z = policy(f, "P1", &hosp_admin, b, T0 + DAY_MS);
	ASSERT_APPLIED(z);
	free(b);
	t = begin_read(f);
	uint64_t copies[2] = {n.index, copy_index};
	for (size_t i = 0; i < 2; i++) {
		struct storage_entry e;
		struct journal_record r;
		assert_int_equal(storage_log_get(t, copies[i], &e), CARELOG_OK);
		assert_int_equal(journal_record_decode(e.data, e.data_len, &r), CARELOG_OK);
		assert_null(r.salt);
		assert_null(r.body);
		assert_int_equal(r.erased_by_index, z.index);
		assert_null(memmem(e.data, e.data_len, "plan discussed", 14));
	}
	storage_txn_abort(t);
}

static void test_erasure_of_target_received_stripped(void **state)
{
	struct fixture *f = *state;
	ASSERT_APPLIED(relation(f, "P1", &hosp_admin));
	struct entry n = note(f, "P1", &hosp_doc, T0);
	struct storage_txn *t = NULL;
	assert_int_equal(storage_txn_begin_write(f->s, &t), CARELOG_OK);
	struct storage_entry e;
	assert_int_equal(storage_log_get(t, n.index, &e), CARELOG_OK);
	struct journal_record r;
	assert_int_equal(journal_record_decode(e.data, e.data_len, &r), CARELOG_OK);
	r.salt = NULL;
	r.body = NULL;
	r.body_len = 0;
	uint64_t tombstone = f->last_index + 1; /* the erasure below */
	r.erased_by_index = tombstone;
	uint8_t stripped[JOURNAL_HEADER_BYTES_MAX + 256];
	size_t len = 0;
	assert_int_equal(journal_record_encode(&r, stripped, sizeof(stripped), &len), CARELOG_OK);
	struct storage_entry rewritten = {.index = e.index,
	                                  .term = e.term,
	                                  .type = e.type,
	                                  .data_len = (uint32_t)len,
	                                  .data = stripped};
	assert_int_equal(storage_log_rewrite(t, &rewritten), CARELOG_OK);
	/* As node/daemon/apply.c does for a record that arrives stripped. A tombstone is always
	 * later in the log. */
	assert_int_equal(access_stripped_expect(t, n.index, n.id, n.index), CARELOG_ECORRUPT);
	assert_int_equal(access_stripped_expect(t, n.index, n.id, tombstone), CARELOG_OK);
	uint8_t waiting[JOURNAL_ID_BYTES];
	uint64_t waiting_index = 0;
	assert_int_equal(access_stripped_check(t, tombstone, waiting, &waiting_index),
	                 CARELOG_ECORRUPT);
	assert_memory_equal(waiting, n.id, JOURNAL_ID_BYTES);
	assert_int_equal(waiting_index, n.index);
	assert_int_equal(storage_txn_commit(t), CARELOG_OK);

	struct policy_body *b = body_new(POLICY_KIND_ERASURE);
	set_ref(b, n.id);
	snprintf(b->text, sizeof(b->text), "hpl 43");
	struct entry z = policy(f, "P1", &hosp_admin, b, T0 + DAY_MS);
	ASSERT_APPLIED(z);
	free(b);
	t = begin_read(f);
	bool erased = false;
	struct access_erasure info;
	assert_int_equal(access_erased(t, n.id, &erased, &info), CARELOG_OK);
	assert_true(erased);
	assert_int_equal(info.tombstone_index, z.index);
	assert_int_equal(z.index, tombstone);
	assert_int_equal(storage_log_get(t, n.index, &e), CARELOG_OK);
	assert_int_equal(e.data_len, len);
	assert_memory_equal(e.data, stripped, len);
	/* The erasure at the named index resolved it. */
	assert_int_equal(access_stripped_check(t, tombstone, waiting, &waiting_index), CARELOG_OK);
	storage_txn_abort(t);
}

/* A record that arrives stripped naming index T, where T holds no erasure of it, is altered
 * data: the check after T says so (apply then stops). */
static void test_stripped_record_without_its_tombstone_is_caught(void **state)
{
	struct fixture *f = *state;
	ASSERT_APPLIED(relation(f, "P1", &hosp_admin));
	struct entry n = note(f, "P1", &hosp_doc, T0);
	uint64_t claimed = f->last_index + 1;
	struct storage_txn *t = NULL;
	assert_int_equal(storage_txn_begin_write(f->s, &t), CARELOG_OK);
	assert_int_equal(access_stripped_expect(t, n.index, n.id, claimed), CARELOG_OK);
	assert_int_equal(storage_txn_commit(t), CARELOG_OK);
	struct entry other = note(f, "P1", &hosp_doc, T0 + 1); /* index `claimed`: no erasure */
	assert_int_equal(other.index, claimed);
	t = begin_read(f);
	uint8_t waiting[JOURNAL_ID_BYTES];
	uint64_t waiting_index = 0;
	assert_int_equal(access_stripped_check(t, claimed, waiting, &waiting_index),
	                 CARELOG_ECORRUPT);
	assert_memory_equal(waiting, n.id, JOURNAL_ID_BYTES);
	assert_int_equal(access_stripped_check(t, claimed - 1, waiting, &waiting_index),
	                 CARELOG_OK);
	storage_txn_abort(t);
}

/* --- bounded tables --- */

static void test_full_prefix_refuses_until_expired_rows_are_pruned(void **state)
{
	struct fixture *f = *state;
	/* 256 relations of one organisation with one patient, all ending at T0 + 1 h. */
	for (int i = 0; i < 256; i++) {
		ASSERT_APPLIED(
		    relation_ex(f, "P1", &hosp_admin, "hosp", "", NULL, T0, T0 + HOUR_MS, T0));
	}
	struct entry full =
	    relation_ex(f, "P1", &hosp_admin, "hosp", "", NULL, T0, 0, T0 + HOUR_MS / 2);
	ASSERT_REFUSED(full);
	assert_string_equal(full.reason, "too many care relations between this patient and the "
	                                 "organisation: end some first");
	assert_int_equal(basis_of(f, &hosp_doc, "P1", T0 + HOUR_MS / 2), ACCESS_BASIS_RELATION);
	/* Once they have expired at leader time, they make room. */
	ASSERT_APPLIED(relation_ex(f, "P1", &hosp_admin, "hosp", "", NULL, T0 + 2 * HOUR_MS, 0,
	                           T0 + 2 * HOUR_MS));
	assert_int_equal(basis_of(f, &hosp_doc, "P1", T0 + 2 * HOUR_MS), ACCESS_BASIS_RELATION);
	/* Other organisations have their own room. */
	ASSERT_APPLIED(relation(f, "P1", &muni_admin));
}

/* --- corrections --- */

static struct entry correction(struct fixture *f, const char *patient, const struct who *author,
                               const char *status, const uint8_t old[JOURNAL_ID_BYTES],
                               uint64_t time_ms)
{
	static const uint8_t body[] = "Corrected: dose 5 mg, not 50 mg.";
	struct entry_spec sp = {.kind = "note",
	                        .patient = patient,
	                        .author = author,
	                        .status = status,
	                        .corrects = old,
	                        .body = body,
	                        .body_len = sizeof(body) - 1};
	return append(f, &sp, time_ms);
}

/* A policy body of a newer format version stops apply (every node of this version stops alike;
 * refusing it would split the policy state from nodes that know the version); a malformed one
 * is refused. */
static void test_newer_policy_body_stops_apply_malformed_is_refused(void **state)
{
	struct fixture *f = *state;
	static const uint8_t newer[] = {0x81, 0xa1, 'v', 0x02};     /* {"v": 2} */
	static const uint8_t malformed[] = {0x81, 0xa1, 'v', 0x01}; /* {"v": 1}, no birth_date */
	struct journal_header h;
	memset(&h, 0, sizeof(h));
	snprintf(h.kind, sizeof(h.kind), "patient");
	snprintf(h.patient, sizeof(h.patient), "P9");
	snprintf(h.author, sizeof(h.author), "%s", hosp_admin.id);
	snprintf(h.role, sizeof(h.role), "%s", hosp_admin.role);
	snprintf(h.org, sizeof(h.org), "%s", hosp_admin.org);
	snprintf(h.media_type, sizeof(h.media_type), POLICY_MEDIA_TYPE);
	snprintf(h.sensitivity, sizeof(h.sensitivity), "normal");
	snprintf(h.status, sizeof(h.status), "final");
	uint8_t id[JOURNAL_ID_BYTES] = {0x42};
	struct storage_txn *t = NULL;
	assert_int_equal(storage_txn_begin_write(f->s, &t), CARELOG_OK);
	enum access_apply_verdict verdict = ACCESS_APPLIED;
	const char *reason = NULL;
	assert_int_equal(access_apply_entry(t, 999, T0, &h, id, newer, sizeof(newer), &verdict,
	                                    &reason),
	                 CARELOG_EVERSION);
	assert_int_equal(access_apply_entry(t, 999, T0, &h, id, malformed, sizeof(malformed),
	                                    &verdict, &reason),
	                 CARELOG_OK);
	assert_int_equal(verdict, ACCESS_REFUSED);
	assert_string_equal(reason, "the policy entry's body is malformed");
	storage_txn_abort(t);
}

static void test_amend_supersedes_once(void **state)
{
	struct fixture *f = *state;
	ASSERT_APPLIED(relation(f, "P1", &hosp_admin));
	ASSERT_APPLIED(relation(f, "P2", &hosp_admin));
	struct entry v1 = note(f, "P1", &hosp_doc, T0);
	struct entry other = note(f, "P2", &hosp_doc, T0);
	struct storage_txn *t = begin_read(f);
	bool superseded = true;
	uint8_t by[JOURNAL_ID_BYTES];
	assert_int_equal(access_superseded(t, v1.id, &superseded, by), CARELOG_OK);
	assert_false(superseded);
	storage_txn_abort(t);

	/* The corrector needs write access too. */
	ASSERT_REFUSED(correction(f, "P1", &muni_nurse, "amended", v1.id, T0));
	struct entry v2 = correction(f, "P1", &hosp_doc, "amended", v1.id, T0 + HOUR_MS);
	ASSERT_APPLIED(v2);
	t = begin_read(f);
	assert_int_equal(access_superseded(t, v1.id, &superseded, by), CARELOG_OK);
	assert_true(superseded);
	assert_memory_equal(by, v2.id, JOURNAL_ID_BYTES);
	storage_txn_abort(t);

	struct entry twice = correction(f, "P1", &hosp_doc, "amended", v1.id, T0 + 2 * HOUR_MS);
	ASSERT_REFUSED(twice);
	assert_string_equal(twice.reason, "the corrected entry was already corrected by a later "
	                                  "version: correct that one");
	ASSERT_REFUSED(correction(f, "P1", &hosp_doc, "entered-in-error", other.id, T0));
	uint8_t missing[JOURNAL_ID_BYTES];
	memset(missing, 0x11, sizeof(missing));
	ASSERT_REFUSED(correction(f, "P1", &hosp_doc, "amended", missing, T0));
	struct entry v3 = correction(f, "P1", &hosp_doc, "entered-in-error", v2.id, T0);
	ASSERT_APPLIED(v3);
	t = begin_read(f);
	assert_int_equal(access_superseded(t, v2.id, &superseded, by), CARELOG_OK);
	assert_true(superseded);
	assert_memory_equal(by, v3.id, JOURNAL_ID_BYTES);
	storage_txn_abort(t);
}

/* A correction with its own sensitivity. */
static struct entry correction_ex(struct fixture *f, const char *patient, const struct who *author,
                                  const char *sensitivity, const uint8_t old[JOURNAL_ID_BYTES],
                                  uint64_t time_ms)
{
	static const uint8_t body[] = "Corrected: the same findings, restated.";
	struct entry_spec sp = {.kind = "note",
	                        .patient = patient,
	                        .author = author,
	                        .status = "amended",
	                        .sensitivity = sensitivity,
	                        .corrects = old,
	                        .body = body,
	                        .body_len = sizeof(body) - 1};
	return append(f, &sp, time_ms);
}

/* A proxy is never "the authoring unit": the unit a request claims must not open shielded
 * entries to a parent or a chosen adult (the organisation is the serving node's). */
static void test_proxy_claiming_authoring_unit_sees_no_shielded(void **state)
{
	struct fixture *f = *state;
	ASSERT_APPLIED(patient_entry(f, "C1", "2016-01-01")); /* 10 at T0: parent's full view */
	ASSERT_APPLIED(relation(f, "C1", &hosp_admin));
	ASSERT_APPLIED(proxy_grant(f, "C1", &hosp_admin, "mom", "parent", "full", T0));
	struct entry psy = note_ex(f, "C1", &hosp_psych, "psychiatry", T0);
	ASSERT_APPLIED(psy);
	struct who mom_at_psych = {"mom", "proxy", "hosp", "psych"};
	assert_int_equal(shown_to(f, &mom_at_psych, &psy, T0), ACCESS_WITHHELD_SHIELDED);
	ASSERT_APPLIED(patient_entry(f, "A1", "2000-03-01"));
	ASSERT_APPLIED(relation(f, "A1", &hosp_admin));
	struct who adult = {"A1", "patient", "portal", ""};
	ASSERT_APPLIED(proxy_grant(f, "A1", &adult, "friend", "chosen", "full", T0));
	struct entry apsy = note_ex(f, "A1", &hosp_psych, "psychiatry", T0);
	ASSERT_APPLIED(apsy);
	struct who friend_at_psych = {"friend", "proxy", "hosp", "psych"};
	assert_int_equal(shown_to(f, &friend_at_psych, &apsy, T0), ACCESS_WITHHELD_SHIELDED);
	/* The clinicians of the authoring unit still see it. */
	assert_int_equal(shown_to(f, &hosp_psych, &apsy, T0), ACCESS_SHOWN);
}

/* Every version of an entry (the corrected ones and the corrections) is one item: a block, a
 * withholding or a shielded sensitivity of one version hides the others too, so a history
 * read or an amendment marked "normal" does not show what a restriction hides. */
static void test_correction_chain_keeps_restrictions(void **state)
{
	struct fixture *f = *state;
	ASSERT_APPLIED(relation(f, "P1", &hosp_admin));
	ASSERT_APPLIED(relation(f, "P1", &muni_admin));
	struct who patient = {"P1", "patient", "portal", ""};
	/* A shielded note amended with sensitivity normal stays shielded. */
	struct entry psy = note_ex(f, "P1", &hosp_psych, "psychiatry", T0);
	struct entry psy2 = correction_ex(f, "P1", &hosp_psych, "normal", psy.id, T0 + HOUR_MS);
	ASSERT_APPLIED(psy2);
	assert_int_equal(shown_to(f, &hosp_doc, &psy2, T0 + HOUR_MS), ACCESS_WITHHELD_SHIELDED);
	assert_int_equal(shown_to(f, &hosp_psych, &psy2, T0 + HOUR_MS), ACCESS_SHOWN);
	assert_int_equal(shown_to(f, &patient, &psy2, T0 + HOUR_MS), ACCESS_SHOWN);
	/* Reclassified as shielded: the old normal version in the history is shielded too. */
	struct entry plain = note(f, "P1", &hosp_psych, T0);
	struct entry plain2 =
	    correction_ex(f, "P1", &hosp_psych, "psychiatry", plain.id, T0 + HOUR_MS);
	ASSERT_APPLIED(plain2);
	assert_int_equal(shown_to(f, &hosp_doc, &plain, T0 + HOUR_MS), ACCESS_WITHHELD_SHIELDED);
	/* A block of the current version covers the superseded one read with history. */
	struct entry v1 = note(f, "P1", &hosp_doc, T0);
	struct entry v2 = correction_ex(f, "P1", &hosp_doc, "normal", v1.id, T0 + HOUR_MS);
	ASSERT_APPLIED(v2);
	ASSERT_APPLIED(block(f, "P1", &patient, "muni", "", NULL, v2.id, T0 + HOUR_MS));
	assert_int_equal(shown_to(f, &muni_nurse, &v2, T0 + HOUR_MS), ACCESS_WITHHELD_BLOCKED);
	assert_int_equal(shown_to(f, &muni_nurse, &v1, T0 + HOUR_MS), ACCESS_WITHHELD_BLOCKED);
	/* and one of the old version covers its amendment. */
	struct entry w1 = note(f, "P1", &hosp_doc, T0);
	ASSERT_APPLIED(block(f, "P1", &patient, "muni", "", NULL, w1.id, T0));
	struct entry w2 = correction_ex(f, "P1", &hosp_doc, "normal", w1.id, T0 + HOUR_MS);
	ASSERT_APPLIED(w2);
	assert_int_equal(shown_to(f, &muni_nurse, &w2, T0 + HOUR_MS), ACCESS_WITHHELD_BLOCKED);
	assert_int_equal(shown_to(f, &hosp_doc, &w2, T0 + HOUR_MS), ACCESS_SHOWN);
	/* Withheld from the patient: the earlier version is not shown to them either. */
	struct entry x1 = note(f, "P1", &hosp_doc, T0);
	struct entry x2 = correction_ex(f, "P1", &hosp_doc, "normal", x1.id, T0 + HOUR_MS);
	ASSERT_APPLIED(withhold(f, "P1", &hosp_doc, x2.id, "patient", T0 + HOUR_MS));
	assert_int_equal(shown_to(f, &patient, &x1, T0 + HOUR_MS), ACCESS_WITHHELD_FROM_PATIENT);
	assert_int_equal(shown_to(f, &patient, &x2, T0 + HOUR_MS), ACCESS_WITHHELD_FROM_PATIENT);
	/* An unrelated note is untouched. */
	struct entry other = note(f, "P1", &hosp_doc, T0);
	assert_int_equal(shown_to(f, &muni_nurse, &other, T0 + HOUR_MS), ACCESS_SHOWN);
	assert_int_equal(shown_to(f, &patient, &other, T0 + HOUR_MS), ACCESS_SHOWN);
}

/* A withholding names the entry and says why: it is not shown to a clinician who may not see
 * that entry (shielded or blocked), or its reason would tell what the entry hides. */
static void test_withhold_entry_hidden_where_its_entry_is(void **state)
{
	struct fixture *f = *state;
	ASSERT_APPLIED(relation(f, "P1", &hosp_admin));
	ASSERT_APPLIED(relation(f, "P1", &muni_admin));
	struct entry psy = note_ex(f, "P1", &hosp_psych, "psychiatry", T0);
	struct entry wpsy = withhold(f, "P1", &hosp_psych, psy.id, "patient", T0);
	ASSERT_APPLIED(wpsy);
	assert_int_equal(shown_to(f, &hosp_psych, &wpsy, T0), ACCESS_SHOWN);
	assert_int_equal(shown_to(f, &hosp_doc, &wpsy, T0), ACCESS_WITHHELD_SHIELDED);
	struct who patient = {"P1", "patient", "portal", ""};
	struct entry n = note(f, "P1", &hosp_doc, T0);
	ASSERT_APPLIED(block(f, "P1", &patient, "muni", "", NULL, n.id, T0));
	struct entry wn = withhold(f, "P1", &hosp_doc, n.id, "patient", T0);
	ASSERT_APPLIED(wn);
	assert_int_equal(shown_to(f, &muni_nurse, &wn, T0), ACCESS_WITHHELD_BLOCKED);
	assert_int_equal(shown_to(f, &hosp_doc, &wn, T0), ACCESS_SHOWN);
	assert_int_equal(shown_to(f, &patient, &wn, T0), ACCESS_WITHHELD_FROM_PATIENT);
}

/* --- the access log (audit batches) --- */

struct rows_seen {
	size_t count;
	struct policy_audit_row rows[TEST_ROWS_MAX];
};

static int collect_row(void *arg, const uint8_t *row, size_t len)
{
	struct rows_seen *s = arg;
	assert_true(s->count < TEST_ROWS_MAX);
	assert_int_equal(policy_audit_row_decode(row, len, &s->rows[s->count]), CARELOG_OK);
	s->count++;
	return 0;
}

static void audit_row(struct policy_audit_row *r, uint64_t node, uint64_t seq, uint64_t time_ms,
                      const struct who *w, const char *patient, bool allowed)
{
	memset(r, 0, sizeof(*r));
	r->node_id = node;
	r->seq = seq;
	r->time_ms = time_ms;
	snprintf(r->actor, sizeof(r->actor), "%s", w->id);
	snprintf(r->role, sizeof(r->role), "%s", w->role);
	snprintf(r->org, sizeof(r->org), "%s", w->org);
	snprintf(r->unit, sizeof(r->unit), "%s", w->unit);
	snprintf(r->patient, sizeof(r->patient), "%s", patient);
	snprintf(r->action, sizeof(r->action), "read");
	r->allowed = allowed;
	snprintf(r->basis, sizeof(r->basis), "%s", allowed ? "relation" : "none");
	snprintf(r->outcome, sizeof(r->outcome), "%s", allowed ? "OK" : "EDENIED");
}

static struct entry audit_batch(struct fixture *f, const struct who *author, uint64_t header_node,
                                uint64_t node, const struct policy_audit_row *rows, size_t count)
{
	struct policy_body *b = body_new(POLICY_KIND_AUDIT_BATCH);
	b->node_id = node;
	b->first_seq = rows[0].seq;
	b->rows_count = (uint32_t)count;
	uint8_t *bufs = malloc(count * POLICY_AUDIT_ROW_BYTES_MAX);
	assert_non_null(bufs);
	for (size_t i = 0; i < count; i++) {
		uint8_t *p = bufs + i * POLICY_AUDIT_ROW_BYTES_MAX;
		assert_int_equal(policy_audit_row_encode(&rows[i], p, POLICY_AUDIT_ROW_BYTES_MAX,
		                                         &b->rows_len[i]),
		                 CARELOG_OK);
		b->rows[i] = p;
	}
	uint8_t *body = malloc(TEST_BODY_BYTES_MAX);
	assert_non_null(body);
	size_t len = 0;
	assert_int_equal(policy_body_encode(b, body, TEST_BODY_BYTES_MAX, &len), CARELOG_OK);
	struct entry_spec sp = {.kind = "audit-batch",
	                        .patient = POLICY_REGION_PATIENT,
	                        .author = author,
	                        .media_type = POLICY_MEDIA_TYPE,
	                        .node_id = header_node,
	                        .body = body,
	                        .body_len = len};
	struct entry e = append(f, &sp, T0);
	free(body);
	free(bufs);
	free(b);
	return e;
}

static void test_audit_batch_rows_queryable_newest_first(void **state)
{
	struct fixture *f = *state;
	struct who sys = {"node-2", "system", "muni", ""};
	struct policy_audit_row rows[4];
	audit_row(&rows[0], 2, 10, T0 + 1, &muni_nurse, "P1", false);
	audit_row(&rows[1], 2, 11, T0 + 3, &muni_nurse, "P1", true);
	audit_row(&rows[2], 2, 12, T0 + 2, &muni_nurse2, "P1", true);
	audit_row(&rows[3], 2, 13, T0 + 4, &muni_nurse, "P2", true);
	/* Signed by another node than the batch names, or not by a node: refused. */
	ASSERT_REFUSED(audit_batch(f, &sys, 3, 2, rows, 4));
	ASSERT_REFUSED(audit_batch(f, &operator, 2, 2, rows, 4));
	ASSERT_APPLIED(audit_batch(f, &sys, 2, 2, rows, 4));
	/* Shipped twice (a shipper crash before marking): no duplicate rows. */
	ASSERT_APPLIED(audit_batch(f, &sys, 2, 2, rows, 4));

	struct rows_seen *seen = calloc(1, sizeof(*seen));
	assert_non_null(seen);
	struct storage_txn *t = begin_read(f);
	assert_int_equal(access_log_query(t, "P1", NULL, NULL, 0, collect_row, seen), CARELOG_OK);
	assert_int_equal(seen->count, 3);
	assert_int_equal(seen->rows[0].seq, 11); /* T0 + 3 */
	assert_int_equal(seen->rows[1].seq, 12); /* T0 + 2 */
	assert_int_equal(seen->rows[2].seq, 10); /* T0 + 1 */
	assert_false(seen->rows[2].allowed);

	memset(seen, 0, sizeof(*seen));
	assert_int_equal(access_log_query(t, "P1", NULL, NULL, 2, collect_row, seen), CARELOG_OK);
	assert_int_equal(seen->count, 2);

	memset(seen, 0, sizeof(*seen));
	assert_int_equal(access_log_query(t, NULL, "muni", "nurse1", 0, collect_row, seen),
	                 CARELOG_OK);
	assert_int_equal(seen->count, 3);
	assert_int_equal(seen->rows[0].seq, 13);
	assert_string_equal(seen->rows[0].patient, "P2");
	assert_int_equal(seen->rows[1].seq, 11);
	assert_int_equal(seen->rows[2].seq, 10);

	memset(seen, 0, sizeof(*seen));
	assert_int_equal(access_log_query(t, NULL, "hosp", "nurse1", 0, collect_row, seen),
	                 CARELOG_OK);
	assert_int_equal(seen->count, 0);
	memset(seen, 0, sizeof(*seen));
	assert_int_equal(access_log_query(t, "P3", NULL, NULL, 0, collect_row, seen), CARELOG_OK);
	assert_int_equal(seen->count, 0);
	/* The highest sequence applied from node 2 (a lost audit queue continues above it). */
	uint64_t seq_max = 0;
	assert_int_equal(access_audit_seq_max(t, 2, &seq_max), CARELOG_OK);
	assert_int_equal(seq_max, 13);
	assert_int_equal(access_audit_seq_max(t, 3, &seq_max), CARELOG_OK);
	assert_int_equal(seq_max, 0);
	storage_txn_abort(t);
	free(seen);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	    T(test_relation_allows_read_and_write),
	    T(test_no_basis_denies_read_and_write),
	    T(test_relation_scoped_to_unit),
	    T(test_relation_validity_and_end),
	    T(test_implicit_access_within_window),
	    T(test_params_need_operator_and_default),
	    T(test_btg_grant_expires_and_review_closes_listing),
	    T(test_btg_refused_for_non_clinical_role_and_over_max_hours),
	    T(test_block_by_org_category_and_lift),
	    T(test_block_by_person_and_entry),
	    T(test_shielded_by_unit_and_relation_categories),
	    T(test_withheld_from_patient_and_guardians),
	    T(test_parent_proxy_full_reduced_and_ended_by_age),
	    T(test_chosen_proxy_needs_patient_16),
	    T(test_read_proxy_cannot_write_full_proxy_can),
	    T(test_ambulance_reads_during_assignment_only_and_never_writes),
	    T(test_admin_auditor_operator_cannot_read),
	    T(test_write_roles_for_administrative_kinds),
	    T(test_op_class_covers_every_op),
	    T(test_erasure_rewrites_record_and_is_recorded),
	    T(test_erasure_of_target_received_stripped),
	    T(test_full_prefix_refuses_until_expired_rows_are_pruned),
	    T(test_amend_supersedes_once),
	    T(test_newer_policy_body_stops_apply_malformed_is_refused),
	    T(test_stripped_record_without_its_tombstone_is_caught),
	    T(test_erasure_strips_every_copy_of_the_record),
	    T(test_audit_batch_rows_queryable_newest_first),
	    T(test_proxy_claiming_authoring_unit_sees_no_shielded),
	    T(test_correction_chain_keeps_restrictions),
	    T(test_withhold_entry_hidden_where_its_entry_is),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
