/* Unit tests for node/journal/policy.c: policy bodies, audit rows, the age rule, policy headers. */
#include "carelog/errors.h"
#include "common/crypto.h"
#include "node/journal/journal.h"
#include "node/journal/policy.h"

#include "mp_build.h"

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

enum {
	TEST_FUZZ_ITERATIONS = 20000,
	TEST_BODY_BYTES_MAX = 4096, /* enough for every sample body */
	TEST_FIELDS_MAX = 16,       /* an audit row */
	TEST_SAMPLE_ROWS = 3,       /* rows in the sample audit batch */
	TEST_BIG_BATCH_BYTES = 2 * 1024 * 1024,
};

static const uint64_t test_time_ms = 1767225600000ULL; /* 2026-01-01T00:00:00Z */

/* ---- helpers ------------------------------------------------------------------------- */

static struct policy_body *test_body_new(void)
{
	struct policy_body *b = calloc(1, sizeof(*b));
	assert_non_null(b);
	return b;
}

static uint64_t test_seed(void)
{
	const char *env = getenv("CARELOG_TEST_SEED");
	uint64_t seed = env != NULL ? strtoull(env, NULL, 0) : cl_random_u64();
	if (seed == 0) {
		seed = 1;
	}
	printf("# seed=%" PRIu64 " (rerun with CARELOG_TEST_SEED=%" PRIu64 ")\n", seed, seed);
	return seed;
}

/* Milliseconds since the epoch of y-m-d hh:mm:ss UTC, from the C library (an independent
 * calendar). */
static uint64_t test_ms(int y, int m, int d, int hh, int mm, int ss)
{
	struct tm tm = {.tm_year = y - 1900,
	                .tm_mon = m - 1,
	                .tm_mday = d,
	                .tm_hour = hh,
	                .tm_min = mm,
	                .tm_sec = ss};
	time_t t = timegm(&tm);
	assert_true(t >= 0);
	return (uint64_t)t * 1000U;
}

static void test_id(uint8_t id[JOURNAL_ID_BYTES], uint8_t first)
{
	for (size_t i = 0; i < JOURNAL_ID_BYTES; i++) {
		id[i] = (uint8_t)(first + i);
	}
}

/* ---- audit rows ---------------------------------------------------------------------- */

static struct policy_audit_row test_row(uint64_t node, uint64_t seq)
{
	struct policy_audit_row r;
	memset(&r, 0, sizeof(r));
	r.node_id = node;
	r.seq = seq;
	r.time_ms = test_time_ms;
	strcpy(r.actor, "hpr-9144900");
	strcpy(r.role, "nurse");
	strcpy(r.org, "st-olavs");
	strcpy(r.unit, "cardiology");
	strcpy(r.patient, "01017012345");
	strcpy(r.action, "read");
	r.allowed = true;
	strcpy(r.basis, "relation");
	r.count = 3;
	r.withheld = 1;
	r.has_entry = true;
	test_id(r.entry, 0x10);
	strcpy(r.purpose, "treatment");
	strcpy(r.outcome, "OK");
	return r;
}

/* Sample audit-batch rows: node 7, seq 100.. */
static uint8_t test_rows_buf[TEST_SAMPLE_ROWS][POLICY_AUDIT_ROW_BYTES_MAX];
static size_t test_rows_len[TEST_SAMPLE_ROWS];

static void test_rows_make(uint64_t node, uint64_t first_seq)
{
	for (size_t i = 0; i < TEST_SAMPLE_ROWS; i++) {
		struct policy_audit_row r = test_row(node, first_seq + i);
		if (i == 1) {
			r.allowed = false;
			strcpy(r.basis, "none");
			r.has_entry = false;
			r.count = 0;
			strcpy(r.outcome, "EDENIED");
		}
		assert_int_equal(policy_audit_row_encode(&r, test_rows_buf[i],
		                                         sizeof(test_rows_buf[i]),
		                                         &test_rows_len[i]),
		                 CARELOG_OK);
	}
}

/* ---- sample bodies ------------------------------------------------------------------- */

/* A valid body of kind `k` with every meaningful field set (b zeroed by the caller). */
static void test_sample(enum policy_kind k, struct policy_body *b)
{
	memset(b, 0, sizeof(*b));
	b->kind = k;
	switch (k) {
	case POLICY_KIND_PATIENT:
		strcpy(b->birth_date, "2012-02-29");
		break;
	case POLICY_KIND_CARE_RELATION:
		strcpy(b->org, "st-olavs");
		strcpy(b->unit, "Kardiologisk avdeling \xc3\xb8st");
		b->from_ms = test_time_ms;
		b->to_ms = test_time_ms + 86400000ULL * 365;
		b->categories_count = 2;
		strcpy(b->categories[0], "psychiatry");
		strcpy(b->categories[1], "genetic");
		break;
	case POLICY_KIND_CARE_RELATION_END:
	case POLICY_KIND_BLOCK_LIFT:
	case POLICY_KIND_WITHHOLD_LIFT:
	case POLICY_KIND_PROXY_REVOKE:
		b->has_ref = true;
		test_id(b->ref, (uint8_t)(0x20 + k));
		break;
	case POLICY_KIND_BLOCK:
		strcpy(b->actor, "hpr-1234567");
		strcpy(b->word, "category");
		strcpy(b->category, "sexual-health");
		break;
	case POLICY_KIND_WITHHOLD:
		b->has_ref = true;
		test_id(b->ref, 0x30);
		strcpy(b->word, "guardians");
		strcpy(b->text, "would put the patient at risk");
		break;
	case POLICY_KIND_PROXY_GRANT:
		strcpy(b->actor, "01018054321");
		strcpy(b->word, "chosen");
		strcpy(b->level, "read");
		b->from_ms = test_time_ms;
		b->to_ms = 0;
		break;
	case POLICY_KIND_AMBULANCE:
		strcpy(b->actor, "amb-crew-17");
		b->from_ms = test_time_ms;
		b->to_ms = test_time_ms + 3600000ULL * 12;
		break;
	case POLICY_KIND_BTG_GRANT:
		strcpy(b->reason_code, "emergency");
		strcpy(b->text, "unconscious patient brought in by ambulance");
		b->hours = 72;
		break;
	case POLICY_KIND_BTG_REVIEW:
		b->has_ref = true;
		test_id(b->ref, 0x40);
		strcpy(b->word, "justified");
		strcpy(b->text, "");
		break;
	case POLICY_KIND_ERASURE:
		b->has_ref = true;
		test_id(b->ref, 0x50);
		strcpy(b->text, "hpl 43: wrong patient, decision 2026/17");
		break;
	case POLICY_KIND_PARAMS:
		b->implicit_window_days = 90;
		b->btg_hours_max = 120;
		b->ambulance_hours_max = 24;
		break;
	case POLICY_KIND_AUDIT_BATCH:
		test_rows_make(7, 100);
		b->node_id = 7;
		b->first_seq = 100;
		b->rows_count = TEST_SAMPLE_ROWS;
		for (size_t i = 0; i < TEST_SAMPLE_ROWS; i++) {
			b->rows[i] = test_rows_buf[i];
			b->rows_len[i] = test_rows_len[i];
		}
		break;
	default:
		fail();
	}
}

/* ---- an independent encoder ---------------------------------------------------------- */

struct test_field {
	const char *key;
	char type; /* 's' str, 'u' uint, 'b' bin, 'n' nil, 'S' str array, 'R' bin array */
	const char *s;
	uint64_t u;
	const uint8_t *bin;
	size_t len;
};

#define TS(k, v) ((struct test_field){.key = (k), .type = 's', .s = (v)})
#define TU(k, v) ((struct test_field){.key = (k), .type = 'u', .u = (v)})
#define TB(k, v) ((struct test_field){.key = (k), .type = 'b', .bin = (v), .len = JOURNAL_ID_BYTES})
#define TN(k)    ((struct test_field){.key = (k), .type = 'n'})

/* The keys of a body, straight from the format's table (docs/entry-format.md section 10). */
static size_t test_fields_of(const struct policy_body *b, struct test_field *f)
{
	size_t n = 0;
	f[n++] = TU("v", 1);
	switch (b->kind) {
	case POLICY_KIND_PATIENT:
		f[n++] = TS("birth_date", b->birth_date);
		break;
	case POLICY_KIND_CARE_RELATION:
		f[n++] = TS("org", b->org);
		f[n++] = TS("unit", b->unit);
		f[n++] = TU("from_ms", b->from_ms);
		f[n++] = TU("to_ms", b->to_ms);
		f[n++] = (struct test_field){.key = "categories", .type = 'S'};
		break;
	case POLICY_KIND_CARE_RELATION_END:
	case POLICY_KIND_BLOCK_LIFT:
	case POLICY_KIND_WITHHOLD_LIFT:
	case POLICY_KIND_PROXY_REVOKE:
		f[n++] = b->has_ref ? TB("ref", b->ref) : TN("ref");
		break;
	case POLICY_KIND_BLOCK:
		f[n++] = TS("target_org", b->target_org);
		f[n++] = TS("target_actor", b->actor);
		f[n++] = TS("scope", b->word);
		f[n++] = TS("category", b->category);
		f[n++] = b->has_ref ? TB("entry", b->ref) : TN("entry");
		break;
	case POLICY_KIND_WITHHOLD:
		f[n++] = b->has_ref ? TB("entry", b->ref) : TN("entry");
		f[n++] = TS("from", b->word);
		f[n++] = TS("reason", b->text);
		break;
	case POLICY_KIND_PROXY_GRANT:
		f[n++] = TS("proxy", b->actor);
		f[n++] = TS("relation", b->word);
		f[n++] = TS("level", b->level);
		f[n++] = TU("from_ms", b->from_ms);
		f[n++] = TU("to_ms", b->to_ms);
		break;
	case POLICY_KIND_AMBULANCE:
		f[n++] = TS("actor", b->actor);
		f[n++] = TU("from_ms", b->from_ms);
		f[n++] = TU("to_ms", b->to_ms);
		break;
	case POLICY_KIND_BTG_GRANT:
		f[n++] = TS("reason_code", b->reason_code);
		f[n++] = TS("reason_text", b->text);
		f[n++] = TU("hours", b->hours);
		break;
	case POLICY_KIND_BTG_REVIEW:
		f[n++] = b->has_ref ? TB("ref", b->ref) : TN("ref");
		f[n++] = TS("outcome", b->word);
		f[n++] = TS("text", b->text);
		break;
	case POLICY_KIND_ERASURE:
		f[n++] = b->has_ref ? TB("entry", b->ref) : TN("entry");
		f[n++] = TS("basis", b->text);
		break;
	case POLICY_KIND_PARAMS:
		f[n++] = TU("implicit_window_days", b->implicit_window_days);
		f[n++] = TU("btg_hours_max", b->btg_hours_max);
		f[n++] = TU("ambulance_hours_max", b->ambulance_hours_max);
		break;
	case POLICY_KIND_AUDIT_BATCH:
		f[n++] = TU("node", b->node_id);
		f[n++] = TU("first_seq", b->first_seq);
		f[n++] = (struct test_field){.key = "rows", .type = 'R'};
		break;
	default:
		fail();
	}
	return n;
}

static size_t test_row_fields_of(const struct policy_audit_row *r, struct test_field *f)
{
	size_t n = 0;
	f[n++] = TU("node", r->node_id);
	f[n++] = TU("seq", r->seq);
	f[n++] = TU("time_ms", r->time_ms);
	f[n++] = TS("actor", r->actor);
	f[n++] = TS("role", r->role);
	f[n++] = TS("org", r->org);
	f[n++] = TS("unit", r->unit);
	f[n++] = TS("patient", r->patient);
	f[n++] = TS("action", r->action);
	f[n++] = TS("decision", r->allowed ? "allowed" : "denied");
	f[n++] = TS("basis", r->basis);
	f[n++] = TU("count", r->count);
	f[n++] = TU("withheld", r->withheld);
	f[n++] = r->has_entry ? TB("entry", r->entry) : TN("entry");
	f[n++] = TS("purpose", r->purpose);
	f[n++] = TS("outcome", r->outcome);
	return n;
}

/* Writes `f` as a map; 'S' and 'R' fields take the body's categories / rows. */
static void test_emit(struct mp_build *m, const struct test_field *f, size_t n,
                      const struct policy_body *b)
{
	m->len = 0;
	mpb_map(m, n);
	for (size_t i = 0; i < n; i++) {
		mpb_str(m, f[i].key);
		switch (f[i].type) {
		case 's':
			mpb_str(m, f[i].s);
			break;
		case 'u':
			mpb_uint(m, f[i].u);
			break;
		case 'b':
			mpb_bin(m, f[i].bin, f[i].len);
			break;
		case 'S':
			mpb_array(m, b->categories_count);
			for (uint32_t k = 0; k < b->categories_count; k++) {
				mpb_str(m, b->categories[k]);
			}
			break;
		case 'R':
			mpb_array(m, b->rows_count);
			for (uint32_t k = 0; k < b->rows_count; k++) {
				mpb_bin(m, b->rows[k], b->rows_len[k]);
			}
			break;
		default:
			mpb_nil(m);
			break;
		}
	}
}

static void test_emit_body(struct mp_build *m, const struct policy_body *b)
{
	struct test_field f[TEST_FIELDS_MAX];
	size_t n = test_fields_of(b, f);
	test_emit(m, f, n, b);
}

static int test_decode_fields(enum policy_kind k, const struct test_field *f, size_t n,
                              const struct policy_body *b)
{
	struct mp_build m;
	test_emit(&m, f, n, b);
	struct policy_body *d = test_body_new();
	int rc = policy_body_decode(k, m.buf, m.len, d);
	if (rc != CARELOG_OK) {
		assert_int_equal(d->kind, POLICY_KIND_NONE); /* cleared, never half filled */
	}
	free(d);
	return rc;
}

/* `b` breaks a rule: the encoder refuses it (EINVAL) and its independent encoding does not
 * decode (EPROTO). */
static void test_refused(const struct policy_body *b)
{
	uint8_t out[TEST_BODY_BYTES_MAX];
	size_t len = 0;
	assert_int_equal(policy_body_encode(b, out, sizeof(out), &len), CARELOG_EINVAL);
	struct test_field f[TEST_FIELDS_MAX];
	size_t n = test_fields_of(b, f);
	assert_int_equal(test_decode_fields(b->kind, f, n, b), CARELOG_EPROTO);
}

/* Calls `change` on a fresh sample of kind `k` and expects the result refused. */
#define TEST_REFUSES(k, statement)                                                                 \
	do {                                                                                       \
		struct policy_body *b_ = test_body_new();                                          \
		test_sample((k), b_);                                                              \
		struct policy_body *b = b_;                                                        \
		statement;                                                                         \
		test_refused(b);                                                                   \
		free(b_);                                                                          \
	} while (0)

/* ---- kinds --------------------------------------------------------------------------- */

static void test_kind_names_and_lookup_agree(void **state)
{
	(void)state;
	static const char *const names[] = {
	    "patient",           "care-relation",
	    "care-relation-end", "block",
	    "block-lift",        "withhold",
	    "withhold-lift",     "proxy-grant",
	    "proxy-revoke",      "ambulance-assignment",
	    "btg-grant",         "btg-review",
	    "erasure",           "policy-params",
	    "audit-batch",
	};
	assert_int_equal(sizeof(names) / sizeof(names[0]), POLICY_KIND_COUNT_ - 1);
	for (int k = 1; k < POLICY_KIND_COUNT_; k++) {
		assert_string_equal(policy_kind_name((enum policy_kind)k), names[k - 1]);
		assert_int_equal(policy_kind_of(names[k - 1]), k);
	}
	assert_null(policy_kind_name(POLICY_KIND_NONE));
	assert_null(policy_kind_name(POLICY_KIND_COUNT_));
	assert_int_equal(policy_kind_of("note"), POLICY_KIND_NONE);
	assert_int_equal(policy_kind_of("Patient"), POLICY_KIND_NONE);
	assert_int_equal(policy_kind_of(""), POLICY_KIND_NONE);
	assert_int_equal(policy_kind_of(NULL), POLICY_KIND_NONE);
}

static void test_policy_kinds_are_header_kinds_of_format_v1(void **state)
{
	(void)state;
	for (int k = 1; k < POLICY_KIND_COUNT_; k++) {
		assert_true(journal_kind_known(policy_kind_name((enum policy_kind)k)));
	}
	/* journal_kinds stays the clinical list. */
	size_t n = 0;
	while (journal_kinds[n] != NULL) {
		assert_int_equal(policy_kind_of(journal_kinds[n]), POLICY_KIND_NONE);
		n++;
	}
	assert_int_equal(n, 12);
	assert_false(journal_kind_known("audit"));
}

/* ---- policy headers ------------------------------------------------------------------ */

struct test_key {
	uint8_t public_key[CL_SIGN_PUBLIC_BYTES];
	uint8_t secret_key[CL_SIGN_SECRET_BYTES];
};

static void test_fixed_key(struct test_key *k)
{
	uint8_t seed[CL_SIGN_SEED_BYTES];
	for (size_t i = 0; i < sizeof(seed); i++) {
		seed[i] = (uint8_t)i;
	}
	assert_int_equal(cl_sign_keypair_from_seed(k->public_key, k->secret_key, seed), CARELOG_OK);
}

/* Signs a policy entry (body `body`) and verifies the record; returns journal_sign's result. */
static int test_sign_policy(const char *kind, const char *patient, const char *media_type,
                            const char *sensitivity, const char **out_reason)
{
	struct test_key k;
	test_fixed_key(&k);
	struct policy_body *b = test_body_new();
	enum policy_kind pk = policy_kind_of(kind);
	test_sample(pk != POLICY_KIND_NONE ? pk : POLICY_KIND_PARAMS, b);
	uint8_t body[TEST_BODY_BYTES_MAX];
	size_t body_len = 0;
	assert_int_equal(policy_body_encode(b, body, sizeof(body), &body_len), CARELOG_OK);
	free(b);
	struct journal_append in = {
	    .kind = kind,
	    .patient = patient,
	    .author = "hpr-9144900",
	    .role = "admin",
	    .request_id = "req-policy-1",
	    .media_type = media_type,
	    .sensitivity = sensitivity,
	    .body = body,
	    .body_len = body_len,
	};
	struct journal_signer signer = {
	    .node_id = 1, .org = "st-olavs", .secret_key = k.secret_key};
	struct journal_signed s;
	int rc = journal_sign(&in, &signer, test_time_ms, 1 << 20, &s, out_reason);
	if (rc != CARELOG_OK) {
		return rc;
	}
	uint8_t salt[JOURNAL_SALT_BYTES];
	memcpy(salt, s.salt, sizeof(salt));
	struct journal_record r = {
	    .leader_time_ms = test_time_ms + 1,
	    .header = s.header_buf,
	    .header_len = s.header_len,
	    .signature = s.signature,
	    .salt = salt,
	    .body = body,
	    .body_len = body_len,
	};
	struct journal_header h;
	assert_int_equal(journal_verify(&r, k.public_key, &h, NULL), CARELOG_OK);
	assert_string_equal(h.kind, kind);
	return rc;
}

static void test_policy_headers_sign_and_verify_with_their_rules(void **state)
{
	(void)state;
	const char *reason = NULL;
	assert_int_equal(
	    test_sign_policy("care-relation", "01017012345", POLICY_MEDIA_TYPE, NULL, &reason),
	    CARELOG_OK);
	assert_int_equal(test_sign_policy("policy-params", POLICY_REGION_PATIENT, POLICY_MEDIA_TYPE,
	                                  "normal", &reason),
	                 CARELOG_OK);
	assert_int_equal(test_sign_policy("audit-batch", POLICY_REGION_PATIENT, POLICY_MEDIA_TYPE,
	                                  NULL, &reason),
	                 CARELOG_OK);
	/* the region pseudo-patient is a valid patient id for clinical kinds too (format) */
	assert_int_equal(test_sign_policy("note", POLICY_REGION_PATIENT, NULL, NULL, &reason),
	                 CARELOG_OK);

	reason = NULL;
	assert_int_equal(test_sign_policy("care-relation", "01017012345", NULL, NULL, &reason),
	                 CARELOG_EINVAL);
	assert_non_null(strstr(reason, "media type"));
	assert_int_equal(
	    test_sign_policy("block", "01017012345", POLICY_MEDIA_TYPE, "psychiatry", &reason),
	    CARELOG_EINVAL);
	assert_non_null(strstr(reason, "sensitivity normal"));
	assert_int_equal(test_sign_policy("care-relation", POLICY_REGION_PATIENT, POLICY_MEDIA_TYPE,
	                                  NULL, &reason),
	                 CARELOG_EINVAL);
	assert_non_null(strstr(reason, "only for policy-params and audit-batch"));
	assert_int_equal(
	    test_sign_policy("audit-batch", "01017012345", POLICY_MEDIA_TYPE, NULL, &reason),
	    CARELOG_EINVAL);
	assert_non_null(strstr(reason, "name patient"));
	/* an unknown sensitivity still decides first: EUNKNOWN, not the policy rule */
	assert_int_equal(
	    test_sign_policy("block", "01017012345", POLICY_MEDIA_TYPE, "secret", &reason),
	    CARELOG_EUNKNOWN);
}

/* ---- round trips --------------------------------------------------------------------- */

static void test_every_kind_round_trips_and_matches_an_independent_encoder(void **state)
{
	(void)state;
	struct policy_body *b = test_body_new();
	struct policy_body *d = test_body_new();
	for (int k = 1; k < POLICY_KIND_COUNT_; k++) {
		test_sample((enum policy_kind)k, b);
		uint8_t out[TEST_BODY_BYTES_MAX];
		size_t len = 0;
		assert_int_equal(policy_body_encode(b, out, sizeof(out), &len), CARELOG_OK);
		struct mp_build m;
		test_emit_body(&m, b);
		assert_int_equal(len, m.len);
		assert_memory_equal(out, m.buf, len);
		assert_int_equal(policy_body_decode((enum policy_kind)k, out, len, d), CARELOG_OK);
		assert_int_equal(d->kind, k);
		if (k == POLICY_KIND_AUDIT_BATCH) {
			assert_int_equal(d->node_id, b->node_id);
			assert_int_equal(d->first_seq, b->first_seq);
			assert_int_equal(d->rows_count, b->rows_count);
			for (uint32_t i = 0; i < d->rows_count; i++) {
				/* views into the decoded bytes */
				assert_true(d->rows[i] > out && d->rows[i] < out + len);
				assert_int_equal(d->rows_len[i], b->rows_len[i]);
				assert_memory_equal(d->rows[i], b->rows[i], b->rows_len[i]);
			}
		} else {
			/* every other field cleared: the whole struct equals the sample */
			assert_memory_equal(d, b, sizeof(*b));
		}
		/* the buffer one byte short: ETOOBIG, exact fit: OK */
		size_t len2 = 0;
		assert_int_equal(policy_body_encode(b, out, len - 1, &len2), CARELOG_ETOOBIG);
		assert_int_equal(policy_body_encode(b, out, len, &len2), CARELOG_OK);
		assert_int_equal(len2, len);
	}
	free(b);
	free(d);
}

static void test_optional_values_round_trip(void **state)
{
	(void)state;
	struct policy_body *b = test_body_new();
	struct policy_body *d = test_body_new();
	uint8_t out[TEST_BODY_BYTES_MAX];
	size_t len = 0;
	/* care relation for the whole organisation, open-ended, no categories */
	test_sample(POLICY_KIND_CARE_RELATION, b);
	memset(b->unit, 0, sizeof(b->unit));
	b->to_ms = 0;
	b->categories_count = 0;
	memset(b->categories, 0, sizeof(b->categories));
	assert_int_equal(policy_body_encode(b, out, sizeof(out), &len), CARELOG_OK);
	assert_int_equal(policy_body_decode(POLICY_KIND_CARE_RELATION, out, len, d), CARELOG_OK);
	assert_memory_equal(d, b, sizeof(*b));
	/* all five shielded categories */
	static const char *const shielded[] = {"psychiatry", "substance-use", "sexual-health",
	                                       "child-welfare", "genetic"};
	b->categories_count = 5;
	for (size_t i = 0; i < 5; i++) {
		strcpy(b->categories[i], shielded[i]);
	}
	assert_int_equal(policy_body_encode(b, out, sizeof(out), &len), CARELOG_OK);
	assert_int_equal(policy_body_decode(POLICY_KIND_CARE_RELATION, out, len, d), CARELOG_OK);
	assert_memory_equal(d, b, sizeof(*b));
	/* block by organisation, of one entry */
	test_sample(POLICY_KIND_BLOCK, b);
	memset(b->actor, 0, sizeof(b->actor));
	strcpy(b->target_org, "ahus");
	memset(b->word, 0, sizeof(b->word));
	strcpy(b->word, "entry");
	memset(b->category, 0, sizeof(b->category));
	b->has_ref = true;
	test_id(b->ref, 0x77);
	assert_int_equal(policy_body_encode(b, out, sizeof(out), &len), CARELOG_OK);
	assert_int_equal(policy_body_decode(POLICY_KIND_BLOCK, out, len, d), CARELOG_OK);
	assert_memory_equal(d, b, sizeof(*b));
	/* block of everything; a block of the "normal" category */
	memset(b->word, 0, sizeof(b->word));
	strcpy(b->word, "all");
	b->has_ref = false;
	memset(b->ref, 0, sizeof(b->ref));
	assert_int_equal(policy_body_encode(b, out, sizeof(out), &len), CARELOG_OK);
	assert_int_equal(policy_body_decode(POLICY_KIND_BLOCK, out, len, d), CARELOG_OK);
	assert_memory_equal(d, b, sizeof(*b));
	strcpy(b->word, "category");
	strcpy(b->category, "normal");
	assert_int_equal(policy_body_encode(b, out, sizeof(out), &len), CARELOG_OK);
	/* longest texts, UTF-8 allowed */
	test_sample(POLICY_KIND_BTG_GRANT, b);
	memset(b->text, 'x', POLICY_TEXT_BYTES_MAX);
	memcpy(b->text, "\xc3\xa6\xc3\xb8\xc3\xa5", 6);
	b->text[POLICY_TEXT_BYTES_MAX] = '\0';
	memset(b->reason_code, 'c', POLICY_REASON_CODE_BYTES_MAX);
	b->hours = 720;
	assert_int_equal(policy_body_encode(b, out, sizeof(out), &len), CARELOG_OK);
	assert_int_equal(policy_body_decode(POLICY_KIND_BTG_GRANT, out, len, d), CARELOG_OK);
	assert_memory_equal(d, b, sizeof(*b));
	/* parameters at their bounds */
	test_sample(POLICY_KIND_PARAMS, b);
	b->implicit_window_days = 3650;
	b->btg_hours_max = 1;
	b->ambulance_hours_max = 168;
	assert_int_equal(policy_body_encode(b, out, sizeof(out), &len), CARELOG_OK);
	assert_int_equal(policy_body_decode(POLICY_KIND_PARAMS, out, len, d), CARELOG_OK);
	assert_memory_equal(d, b, sizeof(*b));
	free(b);
	free(d);
}

/* ---- rules, one test per kind -------------------------------------------------------- */

static void test_patient_rules(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "2023-02-29", "2024-13-01", "2024-00-10", "2024-04-31", "2024-01-00", "0000-01-01",
	    "2024/01/01", "2024-1-01",  "24-01-01",   "",           "2024-01-0a", "+024-01-01",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		TEST_REFUSES(POLICY_KIND_PATIENT, strcpy(b->birth_date, bad[i]));
	}
	/* and a date past its 10 bytes */
	struct policy_body *b = test_body_new();
	test_sample(POLICY_KIND_PATIENT, b);
	struct test_field f[TEST_FIELDS_MAX];
	size_t n = test_fields_of(b, f);
	f[1].s = "2024-01-011";
	assert_int_equal(test_decode_fields(POLICY_KIND_PATIENT, f, n, b), CARELOG_EPROTO);
	f[1].s = "2024-02-29";
	assert_int_equal(test_decode_fields(POLICY_KIND_PATIENT, f, n, b), CARELOG_OK);
	f[1].s = "9999-12-31";
	assert_int_equal(test_decode_fields(POLICY_KIND_PATIENT, f, n, b), CARELOG_OK);
	free(b);
}

static void test_care_relation_rules(void **state)
{
	(void)state;
	TEST_REFUSES(POLICY_KIND_CARE_RELATION, b->org[0] = '\0');
	TEST_REFUSES(POLICY_KIND_CARE_RELATION, strcpy(b->org, "st olavs"));
	TEST_REFUSES(POLICY_KIND_CARE_RELATION, strcpy(b->unit, "ward\t7"));
	TEST_REFUSES(POLICY_KIND_CARE_RELATION, strcpy(b->unit, "ward \xc3"));
	TEST_REFUSES(POLICY_KIND_CARE_RELATION, b->to_ms = b->from_ms);
	TEST_REFUSES(POLICY_KIND_CARE_RELATION, b->to_ms = b->from_ms - 1);
	TEST_REFUSES(POLICY_KIND_CARE_RELATION, strcpy(b->categories[1], "normal"));
	TEST_REFUSES(POLICY_KIND_CARE_RELATION, strcpy(b->categories[1], "secret"));
	TEST_REFUSES(POLICY_KIND_CARE_RELATION, b->categories[1][0] = '\0');
	TEST_REFUSES(POLICY_KIND_CARE_RELATION, strcpy(b->categories[1], "psychiatry"));
	/* more than six categories: only the decoder can meet it */
	struct policy_body *b = test_body_new();
	test_sample(POLICY_KIND_CARE_RELATION, b);
	struct mp_build m;
	m.len = 0;
	mpb_map(&m, 6);
	mpb_str(&m, "v");
	mpb_uint(&m, 1);
	mpb_str(&m, "org");
	mpb_str(&m, "st-olavs");
	mpb_str(&m, "unit");
	mpb_str(&m, "");
	mpb_str(&m, "from_ms");
	mpb_uint(&m, 1);
	mpb_str(&m, "to_ms");
	mpb_uint(&m, 0);
	mpb_str(&m, "categories");
	size_t at = m.len;
	mpb_array(&m, 7);
	static const char *const seven[] = {"psychiatry",    "substance-use", "sexual-health",
	                                    "child-welfare", "genetic",       "normal",
	                                    "other"};
	for (size_t i = 0; i < 7; i++) {
		mpb_str(&m, seven[i]);
	}
	struct policy_body *d = test_body_new();
	assert_int_equal(policy_body_decode(POLICY_KIND_CARE_RELATION, m.buf, m.len, d),
	                 CARELOG_EPROTO);
	/* categories not an array of strings */
	m.len = at;
	mpb_array(&m, 1);
	mpb_uint(&m, 1);
	assert_int_equal(policy_body_decode(POLICY_KIND_CARE_RELATION, m.buf, m.len, d),
	                 CARELOG_EPROTO);
	m.len = at;
	mpb_str(&m, "psychiatry");
	assert_int_equal(policy_body_decode(POLICY_KIND_CARE_RELATION, m.buf, m.len, d),
	                 CARELOG_EPROTO);
	/* an organisation of 65 bytes */
	struct test_field f[TEST_FIELDS_MAX];
	size_t n = test_fields_of(b, f);
	char org[JOURNAL_ORG_BYTES_MAX + 2];
	memset(org, 'o', sizeof(org) - 1);
	org[sizeof(org) - 1] = '\0';
	f[1].s = org;
	assert_int_equal(test_decode_fields(POLICY_KIND_CARE_RELATION, f, n, b), CARELOG_EPROTO);
	org[JOURNAL_ORG_BYTES_MAX] = '\0';
	assert_int_equal(test_decode_fields(POLICY_KIND_CARE_RELATION, f, n, b), CARELOG_OK);
	free(b);
	free(d);
}

static void test_reference_kinds_rules(void **state)
{
	(void)state;
	static const enum policy_kind kinds[] = {POLICY_KIND_CARE_RELATION_END,
	                                         POLICY_KIND_BLOCK_LIFT, POLICY_KIND_WITHHOLD_LIFT,
	                                         POLICY_KIND_PROXY_REVOKE};
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		TEST_REFUSES(kinds[i], b->has_ref = false);
		struct policy_body *b = test_body_new();
		test_sample(kinds[i], b);
		struct test_field f[TEST_FIELDS_MAX];
		size_t n = test_fields_of(b, f);
		f[1].len = JOURNAL_ID_BYTES - 1;
		assert_int_equal(test_decode_fields(kinds[i], f, n, b), CARELOG_EPROTO);
		f[1].len = JOURNAL_ID_BYTES;
		f[1].key = "entry";
		assert_int_equal(test_decode_fields(kinds[i], f, n, b), CARELOG_EPROTO);
		f[1].key = "ref";
		f[1].type = 's';
		f[1].s = "0123456789abcdef0123456789abcdef";
		assert_int_equal(test_decode_fields(kinds[i], f, n, b), CARELOG_EPROTO);
		free(b);
	}
}

static void test_block_rules(void **state)
{
	(void)state;
	TEST_REFUSES(POLICY_KIND_BLOCK, strcpy(b->target_org, "ahus")); /* both targets */
	TEST_REFUSES(POLICY_KIND_BLOCK, b->actor[0] = '\0');            /* no target */
	TEST_REFUSES(POLICY_KIND_BLOCK, strcpy(b->actor, "hpr 1"));
	TEST_REFUSES(POLICY_KIND_BLOCK, {
		b->actor[0] = '\0';
		strcpy(b->target_org, "a\x7f");
	});
	TEST_REFUSES(POLICY_KIND_BLOCK, strcpy(b->word, "some"));
	TEST_REFUSES(POLICY_KIND_BLOCK, strcpy(b->word, ""));
	TEST_REFUSES(POLICY_KIND_BLOCK, b->category[0] = '\0'); /* category scope */
	TEST_REFUSES(POLICY_KIND_BLOCK, strcpy(b->category, "secret"));
	TEST_REFUSES(POLICY_KIND_BLOCK, strcpy(b->word, "all")); /* category left */
	TEST_REFUSES(POLICY_KIND_BLOCK, {
		strcpy(b->word, "entry"); /* no entry */
		b->category[0] = '\0';
	});
	TEST_REFUSES(POLICY_KIND_BLOCK, {
		strcpy(b->word, "all"); /* entry left */
		b->category[0] = '\0';
		b->has_ref = true;
	});
	TEST_REFUSES(POLICY_KIND_BLOCK, b->has_ref = true); /* category + entry */
}

static void test_withhold_rules(void **state)
{
	(void)state;
	TEST_REFUSES(POLICY_KIND_WITHHOLD, b->has_ref = false);
	TEST_REFUSES(POLICY_KIND_WITHHOLD, strcpy(b->word, "nobody"));
	TEST_REFUSES(POLICY_KIND_WITHHOLD, strcpy(b->word, "Patient"));
	TEST_REFUSES(POLICY_KIND_WITHHOLD, b->text[0] = '\0');
	TEST_REFUSES(POLICY_KIND_WITHHOLD, strcpy(b->text, "line one\nline two"));
	TEST_REFUSES(POLICY_KIND_WITHHOLD, {
		memset(b->text, 'r', 257);
		b->text[257] = '\0';
	});
	struct policy_body *b = test_body_new();
	test_sample(POLICY_KIND_WITHHOLD, b);
	memset(b->text, 'r', 256);
	b->text[256] = '\0';
	uint8_t out[TEST_BODY_BYTES_MAX];
	size_t len = 0;
	assert_int_equal(policy_body_encode(b, out, sizeof(out), &len), CARELOG_OK);
	free(b);
}

static void test_proxy_grant_rules(void **state)
{
	(void)state;
	TEST_REFUSES(POLICY_KIND_PROXY_GRANT, b->actor[0] = '\0');
	TEST_REFUSES(POLICY_KIND_PROXY_GRANT, strcpy(b->actor, "010180 54321"));
	TEST_REFUSES(POLICY_KIND_PROXY_GRANT, strcpy(b->word, "friend"));
	TEST_REFUSES(POLICY_KIND_PROXY_GRANT, strcpy(b->level, "write"));
	TEST_REFUSES(POLICY_KIND_PROXY_GRANT, b->level[0] = '\0');
	TEST_REFUSES(POLICY_KIND_PROXY_GRANT, b->to_ms = b->from_ms);
	TEST_REFUSES(POLICY_KIND_PROXY_GRANT, b->to_ms = 1);
}

static void test_ambulance_rules(void **state)
{
	(void)state;
	TEST_REFUSES(POLICY_KIND_AMBULANCE, b->actor[0] = '\0');
	TEST_REFUSES(POLICY_KIND_AMBULANCE, strcpy(b->actor, "crew\xc3\xa6"));
	TEST_REFUSES(POLICY_KIND_AMBULANCE, b->to_ms = 0);
	TEST_REFUSES(POLICY_KIND_AMBULANCE, b->to_ms = b->from_ms);
}

static void test_btg_grant_rules(void **state)
{
	(void)state;
	TEST_REFUSES(POLICY_KIND_BTG_GRANT, b->reason_code[0] = '\0');
	TEST_REFUSES(POLICY_KIND_BTG_GRANT, strcpy(b->reason_code, "emer gency"));
	TEST_REFUSES(POLICY_KIND_BTG_GRANT, b->text[0] = '\0');
	TEST_REFUSES(POLICY_KIND_BTG_GRANT, strcpy(b->text, "\xff"));
	TEST_REFUSES(POLICY_KIND_BTG_GRANT, b->hours = 0);
	TEST_REFUSES(POLICY_KIND_BTG_GRANT, b->hours = 721);
	TEST_REFUSES(POLICY_KIND_BTG_GRANT, b->hours = UINT32_MAX);
	/* a reason code of 33 bytes, and hours beyond 32 bits: only the decoder meets them */
	struct policy_body *b = test_body_new();
	test_sample(POLICY_KIND_BTG_GRANT, b);
	struct test_field f[TEST_FIELDS_MAX];
	size_t n = test_fields_of(b, f);
	f[1].s = "ccccccccccccccccccccccccccccccccc";
	assert_int_equal(test_decode_fields(POLICY_KIND_BTG_GRANT, f, n, b), CARELOG_EPROTO);
	f[1].s = "cccccccccccccccccccccccccccccccc";
	assert_int_equal(test_decode_fields(POLICY_KIND_BTG_GRANT, f, n, b), CARELOG_OK);
	f[3].u = (1ULL << 32) + 72;
	assert_int_equal(test_decode_fields(POLICY_KIND_BTG_GRANT, f, n, b), CARELOG_EPROTO);
	free(b);
}

static void test_btg_review_rules(void **state)
{
	(void)state;
	TEST_REFUSES(POLICY_KIND_BTG_REVIEW, b->has_ref = false);
	TEST_REFUSES(POLICY_KIND_BTG_REVIEW, strcpy(b->word, "maybe"));
	TEST_REFUSES(POLICY_KIND_BTG_REVIEW, b->word[0] = '\0');
	TEST_REFUSES(POLICY_KIND_BTG_REVIEW, strcpy(b->text, "bad \x01"));
	TEST_REFUSES(POLICY_KIND_BTG_REVIEW, strcpy(b->text, "\xed\xa0\x80")); /* surrogate */
}

static void test_erasure_rules(void **state)
{
	(void)state;
	TEST_REFUSES(POLICY_KIND_ERASURE, b->has_ref = false);
	TEST_REFUSES(POLICY_KIND_ERASURE, b->text[0] = '\0');
	TEST_REFUSES(POLICY_KIND_ERASURE, strcpy(b->text, "\xc0\xaf"));
}

static void test_params_rules(void **state)
{
	(void)state;
	TEST_REFUSES(POLICY_KIND_PARAMS, b->implicit_window_days = 0);
	TEST_REFUSES(POLICY_KIND_PARAMS, b->implicit_window_days = 3651);
	TEST_REFUSES(POLICY_KIND_PARAMS, b->btg_hours_max = 0);
	TEST_REFUSES(POLICY_KIND_PARAMS, b->btg_hours_max = 721);
	TEST_REFUSES(POLICY_KIND_PARAMS, b->ambulance_hours_max = 0);
	TEST_REFUSES(POLICY_KIND_PARAMS, b->ambulance_hours_max = 169);
}

static void test_audit_batch_rules(void **state)
{
	(void)state;
	TEST_REFUSES(POLICY_KIND_AUDIT_BATCH, b->node_id = 0);
	TEST_REFUSES(POLICY_KIND_AUDIT_BATCH, b->node_id = 8); /* rows are node 7's */
	TEST_REFUSES(POLICY_KIND_AUDIT_BATCH, b->first_seq = 0);
	TEST_REFUSES(POLICY_KIND_AUDIT_BATCH, b->first_seq = 99); /* rows start at 100 */
	TEST_REFUSES(POLICY_KIND_AUDIT_BATCH, b->first_seq = 101);
	TEST_REFUSES(POLICY_KIND_AUDIT_BATCH, b->rows_count = 0);
	TEST_REFUSES(POLICY_KIND_AUDIT_BATCH, { /* out of order */
		                                const uint8_t *p = b->rows[0];
		                                size_t l = b->rows_len[0];
		                                b->rows[0] = b->rows[1];
		                                b->rows_len[0] = b->rows_len[1];
		                                b->rows[1] = p;
		                                b->rows_len[1] = l;
	});
	TEST_REFUSES(POLICY_KIND_AUDIT_BATCH, { /* a gap */
		                                b->rows[1] = b->rows[2];
		                                b->rows_len[1] = b->rows_len[2];
		                                b->rows_count = 2;
	});
	static const uint8_t garbage[] = {0x81, 0xa1, 0x78, 0x01};
	TEST_REFUSES(POLICY_KIND_AUDIT_BATCH, {
		b->rows[2] = garbage;
		b->rows_len[2] = sizeof(garbage);
	});
	TEST_REFUSES(POLICY_KIND_AUDIT_BATCH, b->rows_len[2] = 0);
	TEST_REFUSES(POLICY_KIND_AUDIT_BATCH, b->rows_len[2]--);
	/* more rows than a batch holds: the encoder */
	struct policy_body *b = test_body_new();
	test_sample(POLICY_KIND_AUDIT_BATCH, b);
	b->rows_count = POLICY_AUDIT_BATCH_ROWS_MAX + 1;
	uint8_t out[64];
	size_t len = 0;
	assert_int_equal(policy_body_encode(b, out, sizeof(out), &len), CARELOG_EINVAL);
	/* and the decoder: an array of 2001 rows */
	struct mp_build m;
	m.len = 0;
	mpb_map(&m, 4);
	mpb_str(&m, "v");
	mpb_uint(&m, 1);
	mpb_str(&m, "node");
	mpb_uint(&m, 7);
	mpb_str(&m, "first_seq");
	mpb_uint(&m, 100);
	mpb_str(&m, "rows");
	mpb_array(&m, POLICY_AUDIT_BATCH_ROWS_MAX + 1);
	for (size_t i = 0; i < POLICY_AUDIT_BATCH_ROWS_MAX + 1; i++) {
		mpb_byte(&m, 0xc0);
	}
	assert_int_equal(policy_body_decode(POLICY_KIND_AUDIT_BATCH, m.buf, m.len, b),
	                 CARELOG_EPROTO);
	free(b);
}

/* A full batch of small rows fits; a full batch of large rows is over 1 MiB: ETOOBIG. */
static void test_audit_batch_limits(void **state)
{
	(void)state;
	enum { ROW_MAX = 700 };
	uint8_t *rows = malloc((size_t)POLICY_AUDIT_BATCH_ROWS_MAX * ROW_MAX);
	uint8_t *out = malloc(TEST_BIG_BATCH_BYTES);
	struct policy_body *b = test_body_new();
	struct policy_body *d = test_body_new();
	assert_non_null(rows);
	assert_non_null(out);
	for (int large = 0; large <= 1; large++) {
		memset(b, 0, sizeof(*b));
		b->kind = POLICY_KIND_AUDIT_BATCH;
		b->node_id = 3;
		b->first_seq = UINT64_MAX - POLICY_AUDIT_BATCH_ROWS_MAX + 1; /* ends at 2^64-1 */
		b->rows_count = POLICY_AUDIT_BATCH_ROWS_MAX;
		for (uint32_t i = 0; i < POLICY_AUDIT_BATCH_ROWS_MAX; i++) {
			struct policy_audit_row r = test_row(3, b->first_seq + i);
			if (large) {
				memset(r.purpose, 'p', POLICY_PURPOSE_BYTES_MAX);
				memset(r.actor, 'a', JOURNAL_ACTOR_BYTES_MAX);
				memset(r.org, 'o', JOURNAL_ORG_BYTES_MAX);
				memset(r.unit, 'u', JOURNAL_UNIT_BYTES_MAX);
				memset(r.patient, 'q', JOURNAL_PATIENT_BYTES_MAX);
			}
			uint8_t *row = rows + (size_t)i * ROW_MAX;
			assert_int_equal(policy_audit_row_encode(&r, row, ROW_MAX, &b->rows_len[i]),
			                 CARELOG_OK);
			b->rows[i] = row;
		}
		size_t len = 0;
		int rc = policy_body_encode(b, out, TEST_BIG_BATCH_BYTES, &len);
		if (large) {
			assert_int_equal(rc, CARELOG_ETOOBIG);
			continue;
		}
		assert_int_equal(rc, CARELOG_OK);
		assert_true(len <= POLICY_AUDIT_BATCH_BYTES_MAX);
		assert_int_equal(policy_body_decode(POLICY_KIND_AUDIT_BATCH, out, len, d),
		                 CARELOG_OK);
		assert_int_equal(d->rows_count, POLICY_AUDIT_BATCH_ROWS_MAX);
		struct policy_audit_row last;
		assert_int_equal(
		    policy_audit_row_decode(d->rows[POLICY_AUDIT_BATCH_ROWS_MAX - 1],
		                            d->rows_len[POLICY_AUDIT_BATCH_ROWS_MAX - 1], &last),
		    CARELOG_OK);
		assert_true(last.seq == UINT64_MAX);
	}
	/* more bytes than any body may have: refused before it is parsed */
	memset(out, 0, POLICY_AUDIT_BATCH_BYTES_MAX + 1);
	assert_int_equal(
	    policy_body_decode(POLICY_KIND_AUDIT_BATCH, out, POLICY_AUDIT_BATCH_BYTES_MAX + 1, d),
	    CARELOG_EPROTO);
	assert_int_equal(policy_body_decode(POLICY_KIND_PATIENT, out, POLICY_BODY_BYTES_MAX + 1, d),
	                 CARELOG_EPROTO);
	free(rows);
	free(out);
	free(b);
	free(d);
}

/* ---- malformed and non-canonical bytes ----------------------------------------------- */

static void test_version_2_is_eversion_before_anything_else(void **state)
{
	(void)state;
	struct policy_body *d = test_body_new();
	struct mp_build m;
	for (int k = 1; k < POLICY_KIND_COUNT_; k++) {
		/* a newer body: other keys, other shapes */
		m.len = 0;
		mpb_map(&m, 2);
		mpb_str(&m, "v");
		mpb_uint(&m, 2);
		mpb_str(&m, "anything");
		mpb_array(&m, 1);
		mpb_nil(&m);
		assert_int_equal(policy_body_decode((enum policy_kind)k, m.buf, m.len, d),
		                 CARELOG_EVERSION);
		m.len = 0;
		mpb_map(&m, 1);
		mpb_str(&m, "v");
		mpb_uint(&m, 1000);
		assert_int_equal(policy_body_decode((enum policy_kind)k, m.buf, m.len, d),
		                 CARELOG_EVERSION);
		m.len = 0;
		mpb_map(&m, 1);
		mpb_str(&m, "v");
		mpb_uint(&m, 0);
		assert_int_equal(policy_body_decode((enum policy_kind)k, m.buf, m.len, d),
		                 CARELOG_EVERSION);
		/* v as a string, v not first: malformed */
		m.len = 0;
		mpb_map(&m, 1);
		mpb_str(&m, "v");
		mpb_str(&m, "1");
		assert_int_equal(policy_body_decode((enum policy_kind)k, m.buf, m.len, d),
		                 CARELOG_EPROTO);
		m.len = 0;
		mpb_map(&m, 2);
		mpb_str(&m, "x");
		mpb_uint(&m, 1);
		mpb_str(&m, "v");
		mpb_uint(&m, 2);
		assert_int_equal(policy_body_decode((enum policy_kind)k, m.buf, m.len, d),
		                 CARELOG_EPROTO);
		/* but a version-2 body that is not even well-formed msgpack is malformed */
		m.len = 0;
		mpb_map(&m, 2);
		mpb_str(&m, "v");
		mpb_uint(&m, 2);
		assert_int_equal(policy_body_decode((enum policy_kind)k, m.buf, m.len, d),
		                 CARELOG_EPROTO);
	}
	/* not a policy kind: a caller's mistake */
	m.len = 0;
	mpb_map(&m, 1);
	mpb_str(&m, "v");
	mpb_uint(&m, 1);
	assert_int_equal(policy_body_decode(POLICY_KIND_NONE, m.buf, m.len, d), CARELOG_EINVAL);
	assert_int_equal(policy_body_decode(POLICY_KIND_COUNT_, m.buf, m.len, d), CARELOG_EINVAL);
	free(d);
}

static bool test_is_ref_kind(enum policy_kind k)
{
	return k == POLICY_KIND_CARE_RELATION_END || k == POLICY_KIND_BLOCK_LIFT ||
	       k == POLICY_KIND_WITHHOLD_LIFT || k == POLICY_KIND_PROXY_REVOKE;
}

static void test_missing_extra_reordered_and_wrong_kind_keys_are_eproto(void **state)
{
	(void)state;
	struct policy_body *b = test_body_new();
	for (int k = 1; k < POLICY_KIND_COUNT_; k++) {
		test_sample((enum policy_kind)k, b);
		struct test_field f[TEST_FIELDS_MAX + 1];
		size_t n = test_fields_of(b, f);
		assert_int_equal(test_decode_fields((enum policy_kind)k, f, n, b), CARELOG_OK);
		/* missing the last key, and only "v" */
		assert_int_equal(test_decode_fields((enum policy_kind)k, f, n - 1, b),
		                 CARELOG_EPROTO);
		assert_int_equal(test_decode_fields((enum policy_kind)k, f, 1, b), CARELOG_EPROTO);
		/* an extra key at the end */
		f[n] = TU("extra", 1);
		assert_int_equal(test_decode_fields((enum policy_kind)k, f, n + 1, b),
		                 CARELOG_EPROTO);
		/* the last key repeated instead of the extra one */
		f[n] = f[n - 1];
		assert_int_equal(test_decode_fields((enum policy_kind)k, f, n + 1, b),
		                 CARELOG_EPROTO);
		/* two keys swapped (with their values) */
		if (n > 2) {
			struct test_field t = f[1];
			f[1] = f[2];
			f[2] = t;
			assert_int_equal(test_decode_fields((enum policy_kind)k, f, n, b),
			                 CARELOG_EPROTO);
			f[2] = f[1];
			f[1] = t;
		}
		/* the last value of the wrong type */
		struct test_field last = f[n - 1];
		f[n - 1] = last.type == 'u' ? TS(last.key, "1") : TU(last.key, 0);
		assert_int_equal(test_decode_fields((enum policy_kind)k, f, n, b), CARELOG_EPROTO);
		f[n - 1] = last;
		/* decoded as every other kind */
		uint8_t out[TEST_BODY_BYTES_MAX];
		size_t len = 0;
		assert_int_equal(policy_body_encode(b, out, sizeof(out), &len), CARELOG_OK);
		struct policy_body *d = test_body_new();
		for (int other = 1; other < POLICY_KIND_COUNT_; other++) {
			int rc = policy_body_decode((enum policy_kind)other, out, len, d);
			/* only the four kinds whose body is just "ref" share a shape */
			bool same_shape = other == k || (test_is_ref_kind((enum policy_kind)k) &&
			                                 test_is_ref_kind((enum policy_kind)other));
			assert_int_equal(rc, same_shape ? CARELOG_OK : CARELOG_EPROTO);
		}
		free(d);
	}
	free(b);
}

static void test_non_canonical_bytes_are_eproto(void **state)
{
	(void)state;
	struct policy_body *b = test_body_new();
	struct policy_body *d = test_body_new();
	test_sample(POLICY_KIND_AMBULANCE, b);
	b->from_ms = 5;
	b->to_ms = 200;
	uint8_t out[TEST_BODY_BYTES_MAX];
	size_t len = 0;
	assert_int_equal(policy_body_encode(b, out, sizeof(out), &len), CARELOG_OK);
	assert_int_equal(policy_body_decode(POLICY_KIND_AMBULANCE, out, len, d), CARELOG_OK);

	/* from_ms 5 as uint8 (cc 05) instead of a fixint */
	struct mp_build m;
	m.len = 0;
	mpb_map(&m, 4);
	mpb_str(&m, "v");
	mpb_uint(&m, 1);
	mpb_str(&m, "actor");
	mpb_str(&m, b->actor);
	mpb_str(&m, "from_ms");
	size_t at = m.len;
	mpb_byte(&m, 0xcc);
	mpb_byte(&m, 5);
	mpb_str(&m, "to_ms");
	mpb_uint(&m, 200);
	assert_int_equal(policy_body_decode(POLICY_KIND_AMBULANCE, m.buf, m.len, d),
	                 CARELOG_EPROTO);
	/* the same, canonical, decodes */
	m.len = at;
	mpb_uint(&m, 5);
	mpb_str(&m, "to_ms");
	mpb_uint(&m, 200);
	assert_int_equal(policy_body_decode(POLICY_KIND_AMBULANCE, m.buf, m.len, d), CARELOG_OK);
	assert_memory_equal(m.buf, out, len);
	/* a signed integer form for a positive value (d0 05) */
	m.len = at;
	mpb_byte(&m, 0xd0);
	mpb_byte(&m, 5);
	mpb_str(&m, "to_ms");
	mpb_uint(&m, 200);
	assert_int_equal(policy_body_decode(POLICY_KIND_AMBULANCE, m.buf, m.len, d),
	                 CARELOG_EPROTO);
	/* str8 for a short string */
	m.len = 0;
	mpb_map(&m, 4);
	mpb_str(&m, "v");
	mpb_uint(&m, 1);
	mpb_byte(&m, 0xd9);
	mpb_byte(&m, 5);
	mpb_raw(&m, "actor", 5);
	mpb_str(&m, b->actor);
	mpb_str(&m, "from_ms");
	mpb_uint(&m, 5);
	mpb_str(&m, "to_ms");
	mpb_uint(&m, 200);
	assert_int_equal(policy_body_decode(POLICY_KIND_AMBULANCE, m.buf, m.len, d),
	                 CARELOG_EPROTO);
	/* map16 for a map of 4 */
	uint8_t wide[TEST_BODY_BYTES_MAX];
	wide[0] = 0xde;
	wide[1] = 0;
	wide[2] = 4;
	memcpy(wide + 3, out + 1, len - 1);
	assert_int_equal(policy_body_decode(POLICY_KIND_AMBULANCE, wide, len + 2, d),
	                 CARELOG_EPROTO);
	/* a trailing byte; truncated */
	memcpy(wide, out, len);
	wide[len] = 0xc0;
	assert_int_equal(policy_body_decode(POLICY_KIND_AMBULANCE, wide, len + 1, d),
	                 CARELOG_EPROTO);
	assert_int_equal(policy_body_decode(POLICY_KIND_AMBULANCE, out, len - 1, d),
	                 CARELOG_EPROTO);
	assert_int_equal(policy_body_decode(POLICY_KIND_AMBULANCE, out, 0, d), CARELOG_EPROTO);
	assert_int_equal(policy_body_decode(POLICY_KIND_AMBULANCE, NULL, 0, d), CARELOG_EPROTO);
	/* the ref of a revoke as bin16 */
	test_sample(POLICY_KIND_PROXY_REVOKE, b);
	m.len = 0;
	mpb_map(&m, 2);
	mpb_str(&m, "v");
	mpb_uint(&m, 1);
	mpb_str(&m, "ref");
	mpb_byte(&m, 0xc5);
	mpb_be(&m, JOURNAL_ID_BYTES, 2);
	mpb_raw(&m, b->ref, JOURNAL_ID_BYTES);
	assert_int_equal(policy_body_decode(POLICY_KIND_PROXY_REVOKE, m.buf, m.len, d),
	                 CARELOG_EPROTO);
	/* a map key that is not a string */
	m.len = 0;
	mpb_map(&m, 2);
	mpb_str(&m, "v");
	mpb_uint(&m, 1);
	mpb_uint(&m, 3);
	mpb_bin(&m, b->ref, JOURNAL_ID_BYTES);
	assert_int_equal(policy_body_decode(POLICY_KIND_PROXY_REVOKE, m.buf, m.len, d),
	                 CARELOG_EPROTO);
	/* an array instead of a map; a lying map count */
	m.len = 0;
	mpb_array(&m, 2);
	mpb_str(&m, "v");
	mpb_uint(&m, 1);
	assert_int_equal(policy_body_decode(POLICY_KIND_PROXY_REVOKE, m.buf, m.len, d),
	                 CARELOG_EPROTO);
	static const uint8_t lying[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 0x76, 0x01};
	assert_int_equal(policy_body_decode(POLICY_KIND_PROXY_REVOKE, lying, sizeof(lying), d),
	                 CARELOG_EPROTO);
	free(b);
	free(d);
}

/* ---- fuzz ---------------------------------------------------------------------------- */

/* Applies 1-4 random edits: bit flip, byte overwrite, truncation, insertion, deletion. */
static size_t test_mutate(uint8_t *buf, size_t len, size_t cap, uint64_t *rng)
{
	unsigned edits = 1 + (unsigned)(mpb_rand(rng) % 4);
	for (unsigned e = 0; e < edits && len > 0; e++) {
		size_t at = (size_t)(mpb_rand(rng) % len);
		switch (mpb_rand(rng) % 5) {
		case 0:
			buf[at] ^= (uint8_t)(1U << (mpb_rand(rng) % 8));
			break;
		case 1:
			buf[at] = (uint8_t)mpb_rand(rng);
			break;
		case 2:
			len = at;
			break;
		case 3:
			if (len < cap) {
				memmove(buf + at + 1, buf + at, len - at);
				buf[at] = (uint8_t)mpb_rand(rng);
				len++;
			}
			break;
		default:
			memmove(buf + at, buf + at + 1, len - at - 1);
			len--;
			break;
		}
	}
	return len;
}

/* Decodes `buf` as every kind and as an audit row: each either fails cleanly or gives a value
 * whose encoding is exactly `buf` (one byte form per value). Returns how many decoded. */
static int test_decode_all_ways(const uint8_t *buf, size_t len, struct policy_body *d)
{
	int decoded = 0;
	uint8_t again[TEST_BODY_BYTES_MAX];
	size_t again_len = 0;
	for (int k = 1; k < POLICY_KIND_COUNT_; k++) {
		int rc = policy_body_decode((enum policy_kind)k, buf, len, d);
		assert_true(rc == CARELOG_OK || rc == CARELOG_EPROTO || rc == CARELOG_EVERSION);
		if (rc == CARELOG_OK) {
			decoded++;
			assert_int_equal(policy_body_encode(d, again, sizeof(again), &again_len),
			                 CARELOG_OK);
			assert_int_equal(again_len, len);
			assert_memory_equal(again, buf, len);
		} else {
			assert_int_equal(d->kind, POLICY_KIND_NONE);
		}
	}
	struct policy_audit_row r;
	int rc = policy_audit_row_decode(buf, len, &r);
	assert_true(rc == CARELOG_OK || rc == CARELOG_EPROTO);
	if (rc == CARELOG_OK) {
		decoded++;
		assert_int_equal(policy_audit_row_encode(&r, again, sizeof(again), &again_len),
		                 CARELOG_OK);
		assert_int_equal(again_len, len);
		assert_memory_equal(again, buf, len);
	}
	return decoded;
}

static void test_mutated_and_random_bytes_decode_to_error_or_valid_value(void **state)
{
	(void)state;
	uint64_t rng = test_seed();
	struct policy_body *b = test_body_new();
	struct policy_body *d = test_body_new();
	uint8_t buf[TEST_BODY_BYTES_MAX];
	int decoded = 0;
	for (int i = 0; i < TEST_FUZZ_ITERATIONS; i++) {
		size_t len = 0;
		int k = 1 + (int)(mpb_rand(&rng) % POLICY_KIND_COUNT_); /* COUNT_: an audit row */
		if (k < POLICY_KIND_COUNT_) {
			test_sample((enum policy_kind)k, b);
			assert_int_equal(policy_body_encode(b, buf, sizeof(buf), &len), CARELOG_OK);
		} else {
			struct policy_audit_row r = test_row(1, 1 + (uint64_t)i);
			assert_int_equal(policy_audit_row_encode(&r, buf, sizeof(buf), &len),
			                 CARELOG_OK);
		}
		if (i % 8 == 0) {
			/* random bytes after a plausible map prefix */
			len = 1 + (size_t)(mpb_rand(&rng) % 64);
			for (size_t j = 1; j < len; j++) {
				buf[j] = (uint8_t)mpb_rand(&rng);
			}
			buf[0] = (uint8_t)(0x80 | (mpb_rand(&rng) % 16));
		} else {
			len = test_mutate(buf, len, sizeof(buf), &rng);
		}
		decoded += test_decode_all_ways(buf, len, d);
	}
	printf("# %d mutants decoded (each re-encoded to the same bytes)\n", decoded);
	free(b);
	free(d);
}

/* ---- audit rows ---------------------------------------------------------------------- */

static void test_audit_row_round_trips_and_matches_an_independent_encoder(void **state)
{
	(void)state;
	struct policy_audit_row r = test_row(1, 42);
	for (int variant = 0; variant < 3; variant++) {
		if (variant == 1) { /* denied, no entry, no patient, nothing optional */
			r.allowed = false;
			memset(r.basis, 0, sizeof(r.basis));
			strcpy(r.basis, "none");
			r.has_entry = false;
			memset(r.entry, 0, sizeof(r.entry));
			memset(r.patient, 0, sizeof(r.patient));
			memset(r.unit, 0, sizeof(r.unit));
			memset(r.purpose, 0, sizeof(r.purpose));
			memset(r.actor, 0, sizeof(r.actor));
			memset(r.role, 0, sizeof(r.role));
			memset(r.org, 0, sizeof(r.org));
			strcpy(r.outcome, "EDENIED");
			r.count = 0;
			r.withheld = 0;
			r.time_ms = 0;
		}
		if (variant == 2) { /* everything at its longest; recorded verbatim */
			r = test_row(UINT64_MAX, UINT64_MAX);
			memset(r.actor, 'a', JOURNAL_ACTOR_BYTES_MAX);
			strcpy(r.role, "role with spaces\t\x01");
			memset(r.org, 'o', JOURNAL_ORG_BYTES_MAX);
			memset(r.unit, 0xff, JOURNAL_UNIT_BYTES_MAX);
			memset(r.patient, 'p', JOURNAL_PATIENT_BYTES_MAX);
			memset(r.action, 'x', POLICY_ACTION_BYTES_MAX);
			memset(r.basis, 'b', POLICY_BASIS_BYTES_MAX);
			memset(r.purpose, 'u', POLICY_PURPOSE_BYTES_MAX);
			memset(r.outcome, 'E', POLICY_OUTCOME_BYTES_MAX);
			r.count = UINT64_MAX;
			r.withheld = UINT64_MAX;
		}
		uint8_t out[POLICY_AUDIT_ROW_BYTES_MAX];
		size_t len = 0;
		assert_int_equal(policy_audit_row_encode(&r, out, sizeof(out), &len), CARELOG_OK);
		struct test_field f[TEST_FIELDS_MAX];
		size_t n = test_row_fields_of(&r, f);
		struct mp_build m;
		test_emit(&m, f, n, NULL);
		assert_int_equal(m.len, len);
		assert_memory_equal(m.buf, out, len);
		struct policy_audit_row d;
		memset(&d, 0, sizeof(d));
		assert_int_equal(policy_audit_row_decode(out, len, &d), CARELOG_OK);
		assert_memory_equal(&d, &r, sizeof(r));
		size_t len2 = 0;
		assert_int_equal(policy_audit_row_encode(&r, out, len - 1, &len2), CARELOG_ETOOBIG);
	}
}

static void test_audit_row_rules_and_limits(void **state)
{
	(void)state;
	uint8_t out[POLICY_AUDIT_ROW_BYTES_MAX];
	size_t len = 0;
	struct policy_audit_row bad[8];
	for (size_t i = 0; i < 8; i++) {
		bad[i] = test_row(1, 42);
	}
	bad[0].node_id = 0;
	bad[1].seq = 0;
	bad[2].action[0] = '\0';
	strcpy(bad[3].action, "re ad");
	bad[4].basis[0] = '\0';
	bad[5].outcome[0] = '\0';
	memset(bad[6].actor, 'a', sizeof(bad[6].actor)); /* not terminated */
	memset(bad[7].purpose, 'p', sizeof(bad[7].purpose));
	for (size_t i = 0; i < 8; i++) {
		assert_int_equal(policy_audit_row_encode(&bad[i], out, sizeof(out), &len),
		                 CARELOG_EINVAL);
	}
	for (size_t i = 0; i < 6; i++) {
		struct test_field f[TEST_FIELDS_MAX];
		size_t n = test_row_fields_of(&bad[i], f);
		struct mp_build m;
		test_emit(&m, f, n, NULL);
		struct policy_audit_row d;
		assert_int_equal(policy_audit_row_decode(m.buf, m.len, &d), CARELOG_EPROTO);
	}
	/* decoder-only: unknown decision, over-long strings, wrong types, keys */
	struct policy_audit_row r = test_row(1, 42);
	struct test_field f[TEST_FIELDS_MAX + 1];
	size_t n = test_row_fields_of(&r, f);
	struct mp_build m;
	struct policy_audit_row d;
	test_emit(&m, f, n, NULL);
	assert_int_equal(policy_audit_row_decode(m.buf, m.len, &d), CARELOG_OK);
	struct {
		size_t field;
		struct test_field value;
	} cases[] = {
	    {9, TS("decision", "maybe")},
	    {9, TS("decision", "Allowed")},
	    {9, TN("decision")},
	    {7, TS("patient", "ppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp")},
	    {4, TS("role", "rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr")},
	    {15, TS("outcome", "EEEEEEEEEEEEEEEEEEEEEEEEE")},
	    {13, (struct test_field){.key = "entry", .type = 'b', .bin = r.entry, .len = 31}},
	    {0, TS("node", "1")},
	    {11, TN("count")},
	    {3, TS("Actor", "hpr-9144900")},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct test_field t = f[cases[i].field];
		f[cases[i].field] = cases[i].value;
		test_emit(&m, f, n, NULL);
		assert_int_equal(policy_audit_row_decode(m.buf, m.len, &d), CARELOG_EPROTO);
		f[cases[i].field] = t;
	}
	/* an extra key, a "v" key, a missing key */
	f[n] = TU("v", 1);
	test_emit(&m, f, n + 1, NULL);
	assert_int_equal(policy_audit_row_decode(m.buf, m.len, &d), CARELOG_EPROTO);
	test_emit(&m, f, n - 1, NULL);
	assert_int_equal(policy_audit_row_decode(m.buf, m.len, &d), CARELOG_EPROTO);
	/* a NUL inside a string */
	test_emit(&m, f, n, NULL);
	assert_int_equal(policy_audit_row_decode(m.buf, m.len, &d), CARELOG_OK);
	uint8_t *p = memmem(m.buf, m.len, "cardiology", 10);
	assert_non_null(p);
	p[4] = 0;
	assert_int_equal(policy_audit_row_decode(m.buf, m.len, &d), CARELOG_EPROTO);
	/* longer than a row may be */
	uint8_t big[POLICY_AUDIT_ROW_BYTES_MAX + 1];
	memset(big, 0xc0, sizeof(big));
	assert_int_equal(policy_audit_row_decode(big, sizeof(big), &d), CARELOG_EPROTO);
	assert_int_equal(policy_audit_row_decode(NULL, 0, &d), CARELOG_EPROTO);
	/* failures leave the output untouched */
	memset(&d, 0x5a, sizeof(d));
	struct policy_audit_row before = d;
	assert_int_equal(policy_audit_row_decode(big, 3, &d), CARELOG_EPROTO);
	assert_memory_equal(&d, &before, sizeof(d));
}

/* ---- age ----------------------------------------------------------------------------- */

static uint32_t test_age(const char *birth, uint64_t at_ms)
{
	uint32_t years = 0xdeadbeef;
	assert_int_equal(policy_age_years(birth, at_ms, &years), CARELOG_OK);
	return years;
}

static void test_age_in_whole_years_at_ages_10_13_and_16(void **state)
{
	(void)state;
	/* 10: parents' full view ends at 12 */
	assert_int_equal(test_age("2016-01-15", test_ms(2026, 1, 15, 0, 0, 0)), 10);
	assert_int_equal(test_age("2016-01-15", test_ms(2026, 1, 15, 0, 0, 0) - 1), 9);
	assert_int_equal(test_age("2016-01-15", test_ms(2026, 12, 31, 23, 59, 59)), 10);
	/* 13 */
	assert_int_equal(test_age("2013-06-01", test_ms(2026, 6, 1, 12, 0, 0)), 13);
	assert_int_equal(test_age("2013-06-01", test_ms(2026, 5, 31, 23, 59, 59)), 12);
	/* 16: the day before, the last millisecond before, and on the birthday */
	assert_int_equal(test_age("2010-03-10", test_ms(2026, 3, 9, 12, 0, 0)), 15);
	assert_int_equal(test_age("2010-03-10", test_ms(2026, 3, 10, 0, 0, 0) - 1), 15);
	assert_int_equal(test_age("2010-03-10", test_ms(2026, 3, 10, 0, 0, 0)), 16);
	assert_int_equal(test_age("2010-03-10", test_ms(2026, 3, 10, 23, 59, 59)), 16);
	/* born before the epoch; the day of birth is age 0 */
	assert_int_equal(test_age("1950-07-01", test_ms(2026, 1, 1, 0, 0, 0)), 75);
	assert_int_equal(test_age("1970-01-01", 0), 0);
	assert_int_equal(test_age("2026-01-01", test_time_ms + 3600000), 0);
	assert_int_equal(test_age("0001-01-01", test_time_ms), 2025);
}

static void test_age_of_a_leap_day_birth_counts_on_1_march(void **state)
{
	(void)state;
	/* in a leap year the birthday is 29 February */
	assert_int_equal(test_age("2008-02-29", test_ms(2024, 2, 28, 12, 0, 0)), 15);
	assert_int_equal(test_age("2008-02-29", test_ms(2024, 2, 29, 0, 0, 0)), 16);
	/* in other years, 1 March */
	assert_int_equal(test_age("2008-02-29", test_ms(2027, 2, 28, 23, 59, 59)), 18);
	assert_int_equal(test_age("2008-02-29", test_ms(2027, 3, 1, 0, 0, 0)), 19);
	assert_int_equal(test_age("2008-02-29", test_ms(2009, 2, 28, 0, 0, 0)), 0);
	assert_int_equal(test_age("2008-02-29", test_ms(2009, 3, 1, 0, 0, 0)), 1);
	/* 2100 is not a leap year (Gregorian): the 16th birthday is on 1 March 2100 */
	assert_int_equal(test_age("2084-02-29", test_ms(2100, 2, 28, 12, 0, 0)), 15);
	assert_int_equal(test_age("2084-02-29", test_ms(2100, 3, 1, 0, 0, 0)), 16);
	/* 2000 was one: 29 February 2000 */
	assert_int_equal(test_age("1984-02-29", test_ms(2000, 2, 29, 0, 0, 0)), 16);
	assert_int_equal(test_age("1984-02-29", test_ms(2000, 2, 28, 23, 59, 59)), 15);
	/* a birth on 1 March is not affected */
	assert_int_equal(test_age("2008-03-01", test_ms(2027, 2, 28, 0, 0, 0)), 18);
	assert_int_equal(test_age("2008-03-01", test_ms(2027, 3, 1, 0, 0, 0)), 19);
	assert_int_equal(test_age("2008-02-28", test_ms(2027, 2, 28, 0, 0, 0)), 19);
}

static void test_age_refuses_bad_dates_and_times_before_birth(void **state)
{
	(void)state;
	uint32_t years = 7;
	assert_int_equal(policy_age_years("2026-01-02", test_time_ms, &years), CARELOG_EINVAL);
	assert_int_equal(policy_age_years("2026-01-01", test_time_ms - 1, &years), CARELOG_EINVAL);
	assert_int_equal(policy_age_years("2023-02-29", test_time_ms, &years), CARELOG_EINVAL);
	assert_int_equal(policy_age_years("2023-2-28", test_time_ms, &years), CARELOG_EINVAL);
	assert_int_equal(policy_age_years("2023-02-28 ", test_time_ms, &years), CARELOG_EINVAL);
	assert_int_equal(policy_age_years("", test_time_ms, &years), CARELOG_EINVAL);
	assert_int_equal(policy_age_years(NULL, test_time_ms, &years), CARELOG_EINVAL);
	assert_int_equal(years, 7); /* untouched */
	/* the far future does not overflow */
	assert_int_equal(policy_age_years("2000-01-01", UINT64_MAX, &years), CARELOG_OK);
	assert_true(years > 500000000U);
}

/* ---- known-answer vectors (docs/entry-format.md sections 10 and 11) ------------------ */

static const char test_kat_care_relation[] =
    "86a17601a36f7267a873742d6f6c617673a4756e6974aa63617264696f6c6f6779a766726f6d5f6d73cf0000"
    "019b76daa800a5746f5f6d73cf000001a2ce8bd400aa63617465676f7269657391aa70737963686961747279";

static const char test_kat_audit_row[] =
    "de0010a46e6f646501a373657134a774696d655f6d73cf0000019b76daa801a56163746f72ab6870722d3931"
    "3434393030a4726f6c65a56e75727365a36f7267a873742d6f6c617673a4756e6974aa63617264696f6c6f67"
    "79a770617469656e74ab3031303137303132333435a6616374696f6ea472656164a86465636973696f6ea761"
    "6c6c6f776564a56261736973a872656c6174696f6ea5636f756e7403a87769746868656c6400a5656e747279"
    "c420e8d7688b4b02380845d43e1307e4719e106008c559f82f67400ef794c9f5c95ca7707572706f7365a974"
    "726561746d656e74a76f7574636f6d65a24f4b";

static void test_known_answer_vectors(void **state)
{
	(void)state;
	char hex[2 * TEST_BODY_BYTES_MAX + 1];
	uint8_t out[TEST_BODY_BYTES_MAX];
	size_t len = 0;

	struct policy_body *b = test_body_new();
	b->kind = POLICY_KIND_CARE_RELATION;
	strcpy(b->org, "st-olavs");
	strcpy(b->unit, "cardiology");
	b->from_ms = test_time_ms;               /* 2026-01-01T00:00:00Z */
	b->to_ms = test_ms(2027, 1, 1, 0, 0, 0); /* 2027-01-01T00:00:00Z */
	b->categories_count = 1;
	strcpy(b->categories[0], "psychiatry");
	assert_int_equal(policy_body_encode(b, out, sizeof(out), &len), CARELOG_OK);
	cl_hex_encode(hex, out, len);
	printf("# care-relation (%zu bytes): %s\n", len, hex);
	assert_string_equal(hex, test_kat_care_relation);

	struct policy_audit_row r;
	memset(&r, 0, sizeof(r));
	r.node_id = 1;
	r.seq = 52;
	r.time_ms = test_time_ms + 1;
	strcpy(r.actor, "hpr-9144900");
	strcpy(r.role, "nurse");
	strcpy(r.org, "st-olavs");
	strcpy(r.unit, "cardiology");
	strcpy(r.patient, "01017012345");
	strcpy(r.action, "read");
	r.allowed = true;
	strcpy(r.basis, "relation");
	r.count = 3;
	r.withheld = 0;
	r.has_entry = true;
	assert_int_equal(
	    cl_hex_decode(r.entry, sizeof(r.entry),
	                  "e8d7688b4b02380845d43e1307e4719e106008c559f82f67400ef794c9f5c95c"),
	    CARELOG_OK);
	strcpy(r.purpose, "treatment");
	strcpy(r.outcome, "OK");
	assert_int_equal(policy_audit_row_encode(&r, out, sizeof(out), &len), CARELOG_OK);
	cl_hex_encode(hex, out, len);
	printf("# audit row (%zu bytes): %s\n", len, hex);
	assert_string_equal(hex, test_kat_audit_row);
	free(b);
}

int main(void)
{
	if (cl_crypto_init() != CARELOG_OK) {
		return 1;
	}
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_kind_names_and_lookup_agree),
	    cmocka_unit_test(test_policy_kinds_are_header_kinds_of_format_v1),
	    cmocka_unit_test(test_policy_headers_sign_and_verify_with_their_rules),
	    cmocka_unit_test(test_every_kind_round_trips_and_matches_an_independent_encoder),
	    cmocka_unit_test(test_optional_values_round_trip),
	    cmocka_unit_test(test_patient_rules),
	    cmocka_unit_test(test_care_relation_rules),
	    cmocka_unit_test(test_reference_kinds_rules),
	    cmocka_unit_test(test_block_rules),
	    cmocka_unit_test(test_withhold_rules),
	    cmocka_unit_test(test_proxy_grant_rules),
	    cmocka_unit_test(test_ambulance_rules),
	    cmocka_unit_test(test_btg_grant_rules),
	    cmocka_unit_test(test_btg_review_rules),
	    cmocka_unit_test(test_erasure_rules),
	    cmocka_unit_test(test_params_rules),
	    cmocka_unit_test(test_audit_batch_rules),
	    cmocka_unit_test(test_audit_batch_limits),
	    cmocka_unit_test(test_version_2_is_eversion_before_anything_else),
	    cmocka_unit_test(test_missing_extra_reordered_and_wrong_kind_keys_are_eproto),
	    cmocka_unit_test(test_non_canonical_bytes_are_eproto),
	    cmocka_unit_test(test_mutated_and_random_bytes_decode_to_error_or_valid_value),
	    cmocka_unit_test(test_audit_row_round_trips_and_matches_an_independent_encoder),
	    cmocka_unit_test(test_audit_row_rules_and_limits),
	    cmocka_unit_test(test_age_in_whole_years_at_ages_10_13_and_16),
	    cmocka_unit_test(test_age_of_a_leap_day_birth_counts_on_1_march),
	    cmocka_unit_test(test_age_refuses_bad_dates_and_times_before_birth),
	    cmocka_unit_test(test_known_answer_vectors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
