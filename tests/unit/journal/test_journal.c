/* Unit tests for node/journal/journal.c: header and record codecs, sign, verify, chain. */
#include "carelog/errors.h"
#include "common/crypto.h"
#include "node/journal/journal.h"

#include "mp_build.h"

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

enum {
	TEST_FUZZ_ITERATIONS = 10000,
	TEST_RECORD_BYTES_MAX = 16384,
	TEST_BODY_MAX_BYTES = 1024 * 1024,
};

static const uint64_t test_time_ms = 1767225600000ULL; /* 2026-01-01T00:00:00Z */

struct test_key {
	uint8_t public_key[CL_SIGN_PUBLIC_BYTES];
	uint8_t secret_key[CL_SIGN_SECRET_BYTES];
};

/* Key from the seed 00 01 02 .. 1f: the known-answer vectors use it. */
static void test_fixed_key(struct test_key *k)
{
	uint8_t seed[CL_SIGN_SEED_BYTES];
	for (size_t i = 0; i < sizeof(seed); i++) {
		seed[i] = (uint8_t)i;
	}
	assert_int_equal(cl_sign_keypair_from_seed(k->public_key, k->secret_key, seed), CARELOG_OK);
}

static void test_fixed_salt(uint8_t salt[JOURNAL_SALT_BYTES])
{
	for (size_t i = 0; i < JOURNAL_SALT_BYTES; i++) {
		salt[i] = (uint8_t)(0xa0 + i);
	}
}

static const char test_body[] = "Patient seen. BP 120/80.";

static struct journal_append test_append(void)
{
	return (struct journal_append){
		.kind = "note",
		.patient = "01017012345",
		.author = "hpr-9144900",
		.role = "nurse",
		.unit = "cardiology",
		.request_id = "req-0001",
		.body = (const uint8_t *)test_body,
		.body_len = sizeof(test_body) - 1,
	};
}

static struct journal_signer test_signer(const struct test_key *k)
{
	return (struct journal_signer){
		.node_id = 1, .org = "st-olavs", .secret_key = k->secret_key};
}

/* Signs the standard test entry with the fixed key and salt. */
static void test_sign_fixed(struct test_key *k, struct journal_signed *s)
{
	test_fixed_key(k);
	struct journal_append in = test_append();
	struct journal_signer signer = test_signer(k);
	uint8_t salt[JOURNAL_SALT_BYTES];
	test_fixed_salt(salt);
	const char *reason = NULL;
	assert_int_equal(journal_sign_with_salt(&in, &signer, test_time_ms, TEST_BODY_MAX_BYTES,
						salt, s, &reason),
			 CARELOG_OK);
}

static struct journal_record test_record_of(const struct journal_signed *s, const uint8_t *body,
					    size_t body_len)
{
	return (struct journal_record){
		.leader_time_ms = test_time_ms + 5,
		.header = s->header_buf,
		.header_len = s->header_len,
		.signature = s->signature,
		.salt = s->salt,
		.body = body,
		.body_len = body_len,
	};
}

static void test_hex_of(char *out, const uint8_t *in, size_t len)
{
	cl_hex_encode(out, in, len);
}

/* A header with every field set to something other than its default. */
static struct journal_header test_full_header(void)
{
	struct journal_header h;
	memset(&h, 0, sizeof(h));
	h.version = JOURNAL_FORMAT_VERSION;
	strcpy(h.kind, "lab-result");
	strcpy(h.patient, "D-41019912345");
	strcpy(h.author, "hpr-1234567");
	strcpy(h.role, "physician");
	strcpy(h.org, "stolav-hf");
	strcpy(h.unit, "Kardiologisk avdeling \xc3\xb8st"); /* UTF-8 allowed in unit */
	h.node_id = 0x0102030405060708ULL;
	h.author_time_ms = test_time_ms;
	h.clinical_time_ms = test_time_ms - 3600000;
	strcpy(h.status, "amended");
	h.has_corrects = true;
	for (size_t i = 0; i < JOURNAL_ID_BYTES; i++) {
		h.corrects[i] = (uint8_t)(0x40 + i);
	}
	strcpy(h.sensitivity, "genetic");
	strcpy(h.request_id, "c0ffee 42");
	strcpy(h.media_type, "application/fhir+json");
	h.body_size = 70000;
	for (size_t i = 0; i < CL_SHA256_BYTES; i++) {
		h.body_hash[i] = (uint8_t)(0xf0 - i);
	}
	return h;
}

/* ---- an independent encoder, for refusal tests --------------------------------------- */

struct test_field {
	const char *key;
	char type; /* 's' str, 'u' uint, 'b' bin, 'n' nil, 'B' bool */
	const char *s;
	size_t len;
	uint64_t u;
	const uint8_t *bin;
};

enum { TEST_HEADER_FIELDS = 17 };

static void test_fields_of(const struct journal_header *h, struct test_field f[TEST_HEADER_FIELDS])
{
#define S(k, v) (struct test_field){.key = k, .type = 's', .s = v, .len = strlen(v)}
#define U(k, v)                               \
	(struct test_field)                   \
	{                                     \
		.key = k, .type = 'u', .u = v \
	}
	f[0] = U("v", h->version);
	f[1] = S("kind", h->kind);
	f[2] = S("patient", h->patient);
	f[3] = S("author", h->author);
	f[4] = S("role", h->role);
	f[5] = S("org", h->org);
	f[6] = S("unit", h->unit);
	f[7] = U("node", h->node_id);
	f[8] = U("author_time", h->author_time_ms);
	f[9] = U("clinical_time", h->clinical_time_ms);
	f[10] = S("status", h->status);
	f[11] = h->has_corrects ? (struct test_field){.key = "corrects",
						      .type = 'b',
						      .bin = h->corrects,
						      .len = JOURNAL_ID_BYTES}
				: (struct test_field){.key = "corrects", .type = 'n'};
	f[12] = S("sensitivity", h->sensitivity);
	f[13] = S("request_id", h->request_id);
	f[14] = S("media_type", h->media_type);
	f[15] = U("body_size", h->body_size);
	f[16] = (struct test_field){
		.key = "body_hash", .type = 'b', .bin = h->body_hash, .len = CL_SHA256_BYTES};
#undef S
#undef U
}

static void test_emit(struct mp_build *b, const struct test_field *f, size_t n)
{
	b->len = 0;
	mpb_map(b, n);
	for (size_t i = 0; i < n; i++) {
		mpb_str(b, f[i].key);
		switch (f[i].type) {
		case 's':
			mpb_strn(b, f[i].s, f[i].len);
			break;
		case 'u':
			mpb_uint(b, f[i].u);
			break;
		case 'b':
			mpb_bin(b, f[i].bin, f[i].len);
			break;
		case 'B':
			mpb_bool(b, f[i].u != 0);
			break;
		default:
			mpb_nil(b);
			break;
		}
	}
}

static int test_decode_fields(const struct test_field *f, size_t n)
{
	struct mp_build b;
	test_emit(&b, f, n);
	struct journal_header h;
	return journal_header_decode(b.buf, b.len, &h);
}

/* ---- header codec ---------------------------------------------------------------------- */

static void test_header_round_trip_keeps_every_field(void **state)
{
	(void)state;
	struct journal_header h = test_full_header();
	uint8_t buf[JOURNAL_HEADER_BYTES_MAX];
	size_t len = 0;
	assert_int_equal(journal_header_encode(&h, buf, sizeof(buf), &len), CARELOG_OK);
	struct journal_header d;
	memset(&d, 0xee, sizeof(d));
	assert_int_equal(journal_header_decode(buf, len, &d), CARELOG_OK);
	assert_int_equal(d.version, h.version);
	assert_string_equal(d.kind, h.kind);
	assert_string_equal(d.patient, h.patient);
	assert_string_equal(d.author, h.author);
	assert_string_equal(d.role, h.role);
	assert_string_equal(d.org, h.org);
	assert_string_equal(d.unit, h.unit);
	assert_true(d.node_id == h.node_id);
	assert_true(d.author_time_ms == h.author_time_ms);
	assert_true(d.clinical_time_ms == h.clinical_time_ms);
	assert_string_equal(d.status, h.status);
	assert_true(d.has_corrects);
	assert_memory_equal(d.corrects, h.corrects, JOURNAL_ID_BYTES);
	assert_string_equal(d.sensitivity, h.sensitivity);
	assert_string_equal(d.request_id, h.request_id);
	assert_string_equal(d.media_type, h.media_type);
	assert_true(d.body_size == h.body_size);
	assert_memory_equal(d.body_hash, h.body_hash, CL_SHA256_BYTES);

	/* Without corrects and with an empty unit (the one field allowed empty). */
	h.has_corrects = false;
	strcpy(h.status, "final");
	h.unit[0] = '\0';
	assert_int_equal(journal_header_encode(&h, buf, sizeof(buf), &len), CARELOG_OK);
	assert_int_equal(journal_header_decode(buf, len, &d), CARELOG_OK);
	assert_false(d.has_corrects);
	assert_string_equal(d.unit, "");
}

static void test_header_encoding_matches_an_independent_encoder(void **state)
{
	(void)state;
	struct journal_header h = test_full_header();
	uint8_t buf[JOURNAL_HEADER_BYTES_MAX];
	size_t len = 0;
	assert_int_equal(journal_header_encode(&h, buf, sizeof(buf), &len), CARELOG_OK);
	struct test_field f[TEST_HEADER_FIELDS];
	test_fields_of(&h, f);
	struct mp_build b;
	test_emit(&b, f, TEST_HEADER_FIELDS);
	assert_int_equal(b.len, len);
	assert_memory_equal(b.buf, buf, len);
}

static void test_header_encode_refuses_small_buffer_and_bad_header(void **state)
{
	(void)state;
	struct journal_header h = test_full_header();
	uint8_t buf[JOURNAL_HEADER_BYTES_MAX];
	size_t len = 0;
	assert_int_equal(journal_header_encode(&h, buf, 40, &len), CARELOG_ETOOBIG);
	strcpy(h.kind, "horoscope");
	assert_int_equal(journal_header_encode(&h, buf, sizeof(buf), &len), CARELOG_EUNKNOWN);
}

static void test_header_decode_of_version_2_is_eversion(void **state)
{
	(void)state;
	struct journal_header h = test_full_header();
	struct test_field f[TEST_HEADER_FIELDS];
	test_fields_of(&h, f);
	f[0].u = 2;
	assert_int_equal(test_decode_fields(f, TEST_HEADER_FIELDS), CARELOG_EVERSION);
	/* A future version may have other keys: the version alone decides. */
	assert_int_equal(test_decode_fields(f, 3), CARELOG_EVERSION);
	f[0].u = 0;
	assert_int_equal(test_decode_fields(f, TEST_HEADER_FIELDS), CARELOG_EVERSION);
	f[0].u = 1;
	assert_int_equal(test_decode_fields(f, TEST_HEADER_FIELDS), CARELOG_OK);
	f[0].type = 's';
	f[0].s = "1";
	f[0].len = 1;
	assert_int_equal(test_decode_fields(f, TEST_HEADER_FIELDS), CARELOG_EPROTO);
}

static void test_header_decode_refuses_wrong_keys_order_and_duplicates(void **state)
{
	(void)state;
	struct journal_header h = test_full_header();
	struct test_field f[TEST_HEADER_FIELDS];
	test_fields_of(&h, f);
	assert_int_equal(test_decode_fields(f, TEST_HEADER_FIELDS), CARELOG_OK);

	struct test_field g[TEST_HEADER_FIELDS + 1];
	/* missing last key */
	assert_int_equal(test_decode_fields(f, TEST_HEADER_FIELDS - 1), CARELOG_EPROTO);
	/* an extra key at the end */
	memcpy(g, f, sizeof(f));
	g[TEST_HEADER_FIELDS] = (struct test_field){.key = "extra", .type = 'n'};
	assert_int_equal(test_decode_fields(g, TEST_HEADER_FIELDS + 1), CARELOG_EPROTO);
	/* two keys swapped */
	memcpy(g, f, sizeof(f));
	g[4] = f[6];
	g[6] = f[4];
	assert_int_equal(test_decode_fields(g, TEST_HEADER_FIELDS), CARELOG_EPROTO);
	/* a duplicate key in place of another */
	memcpy(g, f, sizeof(f));
	g[6] = f[4];
	assert_int_equal(test_decode_fields(g, TEST_HEADER_FIELDS), CARELOG_EPROTO);
	/* a misspelt key */
	memcpy(g, f, sizeof(f));
	g[2].key = "patiens";
	assert_int_equal(test_decode_fields(g, TEST_HEADER_FIELDS), CARELOG_EPROTO);
}

static void test_header_decode_refuses_wrong_types_and_lengths(void **state)
{
	(void)state;
	struct journal_header h = test_full_header();
	struct test_field f[TEST_HEADER_FIELDS];
	test_fields_of(&h, f);
	static const char long_text[] =
		"0123456789012345678901234567890123456789012345678901234567890123456789";
	struct test_field g[TEST_HEADER_FIELDS];

	for (size_t i = 1; i < TEST_HEADER_FIELDS; i++) {
		/* every field: nil where nil is not allowed, and a type swap */
		memcpy(g, f, sizeof(f));
		if (i != 11) {
			g[i].type = 'n';
			assert_int_equal(test_decode_fields(g, TEST_HEADER_FIELDS), CARELOG_EPROTO);
		}
		memcpy(g, f, sizeof(f));
		g[i].type = f[i].type == 's' ? 'u' : 's';
		g[i].s = "x";
		g[i].len = 1;
		assert_int_equal(test_decode_fields(g, TEST_HEADER_FIELDS), CARELOG_EPROTO);
		memcpy(g, f, sizeof(f));
		g[i].type = 'B';
		assert_int_equal(test_decode_fields(g, TEST_HEADER_FIELDS), CARELOG_EPROTO);
	}
	/* strings one past their limit; empty strings except the unit */
	static const struct {
		size_t field;
		size_t max;
	} limits[] = {
		{1, JOURNAL_KIND_BYTES_MAX},	    {2, JOURNAL_PATIENT_BYTES_MAX},
		{3, JOURNAL_ACTOR_BYTES_MAX},	    {4, JOURNAL_ROLE_BYTES_MAX},
		{5, JOURNAL_ORG_BYTES_MAX},	    {6, JOURNAL_UNIT_BYTES_MAX},
		{10, JOURNAL_STATUS_BYTES_MAX},	    {12, JOURNAL_SENSITIVITY_BYTES_MAX},
		{13, JOURNAL_REQUEST_ID_BYTES_MAX}, {14, JOURNAL_MEDIA_TYPE_BYTES_MAX},
	};
	for (size_t i = 0; i < CL_ARRAY_LEN(limits); i++) {
		memcpy(g, f, sizeof(f));
		g[limits[i].field].s = long_text;
		g[limits[i].field].len = limits[i].max + 1;
		assert_int_equal(test_decode_fields(g, TEST_HEADER_FIELDS), CARELOG_EPROTO);
		g[limits[i].field].len = limits[i].max; /* at the limit: decodes */
		assert_int_equal(test_decode_fields(g, TEST_HEADER_FIELDS), CARELOG_OK);
		g[limits[i].field].len = 0;
		assert_int_equal(test_decode_fields(g, TEST_HEADER_FIELDS),
				 limits[i].field == 6 ? CARELOG_OK : CARELOG_EPROTO);
	}
	/* a NUL inside a string */
	memcpy(g, f, sizeof(f));
	g[2].s = "0101\0"
		 "7012345";
	g[2].len = 12;
	assert_int_equal(test_decode_fields(g, TEST_HEADER_FIELDS), CARELOG_EPROTO);
	/* hashes of the wrong length */
	uint8_t hash33[33] = {0};
	memcpy(g, f, sizeof(f));
	g[16].bin = hash33;
	g[16].len = 31;
	assert_int_equal(test_decode_fields(g, TEST_HEADER_FIELDS), CARELOG_EPROTO);
	g[16].len = 33;
	assert_int_equal(test_decode_fields(g, TEST_HEADER_FIELDS), CARELOG_EPROTO);
	memcpy(g, f, sizeof(f));
	g[11].bin = hash33;
	g[11].len = 33;
	assert_int_equal(test_decode_fields(g, TEST_HEADER_FIELDS), CARELOG_EPROTO);
}

static void test_header_decode_refuses_trailing_and_non_canonical_bytes(void **state)
{
	(void)state;
	struct journal_header h = test_full_header();
	uint8_t buf[JOURNAL_HEADER_BYTES_MAX + 8];
	size_t len = 0;
	assert_int_equal(journal_header_encode(&h, buf, sizeof(buf), &len), CARELOG_OK);
	struct journal_header d;
	buf[len] = 0xc0;
	assert_int_equal(journal_header_decode(buf, len + 1, &d), CARELOG_EPROTO);
	assert_int_equal(journal_header_decode(buf, len - 1, &d), CARELOG_EPROTO);
	assert_int_equal(journal_header_decode(buf, 0, &d), CARELOG_EPROTO);

	/* "v": 1 written as uint8 (cc 01) instead of a positive fixint: same value, refused */
	assert_int_equal(buf[5], 0x01);
	memmove(buf + 7, buf + 6, len - 6);
	buf[5] = 0xcc;
	buf[6] = 0x01;
	assert_int_equal(journal_header_decode(buf, len + 1, &d), CARELOG_EPROTO);

	/* a short string written as str8 instead of fixstr */
	struct test_field f[TEST_HEADER_FIELDS];
	test_fields_of(&h, f);
	struct mp_build b;
	test_emit(&b, f, TEST_HEADER_FIELDS);
	assert_int_equal(journal_header_decode(b.buf, b.len, &d), CARELOG_OK);
	/* the kind value follows 0xde 00 11, a1 'v', 01, a4 "kind" */
	size_t at = 3 + 2 + 1 + 5;
	assert_int_equal(b.buf[at], 0xa0 | 10); /* "lab-result" */
	memmove(b.buf + at + 2, b.buf + at + 1, b.len - at - 1);
	b.buf[at] = 0xd9;
	b.buf[at + 1] = 10;
	assert_int_equal(journal_header_decode(b.buf, b.len + 1, &d), CARELOG_EPROTO);

	/* the map count written as map32 */
	test_emit(&b, f, TEST_HEADER_FIELDS);
	memmove(b.buf + 5, b.buf + 3, b.len - 3);
	b.buf[0] = 0xdf;
	b.buf[1] = 0;
	b.buf[2] = 0;
	b.buf[3] = 0;
	b.buf[4] = 17;
	assert_int_equal(journal_header_decode(b.buf, b.len + 2, &d), CARELOG_EPROTO);
}

static void test_header_check_gives_static_reasons(void **state)
{
	(void)state;
	struct journal_header h = test_full_header();
	const char *reason = NULL;
	assert_int_equal(journal_header_check(&h, &reason), CARELOG_OK);

	struct journal_header g = h;
	strcpy(g.patient, "0101 7012345");
	assert_int_equal(journal_header_check(&g, &reason), CARELOG_EINVAL);
	assert_non_null(strstr(reason, "patient id"));
	g = h;
	strcpy(g.status, "entered-in-error");
	g.has_corrects = false;
	assert_int_equal(journal_header_check(&g, &reason), CARELOG_EINVAL);
	assert_non_null(strstr(reason, "entered-in-error"));
	g = h;
	strcpy(g.sensitivity, "secret");
	assert_int_equal(journal_header_check(&g, &reason), CARELOG_EUNKNOWN);
	assert_string_equal(reason, "unknown sensitivity");
	g = h;
	strcpy(g.status, "draft");
	assert_int_equal(journal_header_check(&g, &reason), CARELOG_EUNKNOWN);
	g = h;
	strcpy(g.media_type, "text");
	assert_int_equal(journal_header_check(&g, &reason), CARELOG_EINVAL);
	assert_non_null(strstr(reason, "media type"));
	strcpy(g.media_type, "text/plain; charset=utf-8");
	assert_int_equal(journal_header_check(&g, &reason), CARELOG_EINVAL);
	strcpy(g.media_type, "/plain");
	assert_int_equal(journal_header_check(&g, &reason), CARELOG_EINVAL);
	g = h;
	strcpy(g.unit, "ward\t7");
	assert_int_equal(journal_header_check(&g, &reason), CARELOG_EINVAL);
	strcpy(g.unit, "ward \xc3"); /* truncated UTF-8 */
	assert_int_equal(journal_header_check(&g, &reason), CARELOG_EINVAL);
	strcpy(g.unit, "\xc0\xaf"); /* overlong '/' */
	assert_int_equal(journal_header_check(&g, &reason), CARELOG_EINVAL);
	g = h;
	g.node_id = 0;
	assert_int_equal(journal_header_check(&g, &reason), CARELOG_EINVAL);
	g = h;
	g.body_size = (uint64_t)JOURNAL_BODY_BYTES_LIMIT + 1;
	assert_int_equal(journal_header_check(&g, &reason), CARELOG_EINVAL);
	g = h;
	g.request_id[0] = '\0';
	assert_int_equal(journal_header_check(&g, &reason), CARELOG_EINVAL);
	assert_non_null(strstr(reason, "request id"));
	g = h;
	g.version = 2;
	assert_int_equal(journal_header_check(&g, &reason), CARELOG_EINVAL);
}

static void test_kinds_list_has_the_twelve_v1_kinds(void **state)
{
	(void)state;
	size_t n = 0;
	while (journal_kinds[n] != NULL) {
		assert_true(journal_kind_known(journal_kinds[n]));
		n++;
	}
	assert_int_equal(n, 12);
	assert_true(journal_kind_known("care-plan"));
	assert_false(journal_kind_known("Note"));
	assert_false(journal_kind_known(""));
	assert_false(journal_kind_known(NULL));
}

/* ---- sign and verify ------------------------------------------------------------------- */

static void test_sign_then_verify_accepts_and_fills_defaults(void **state)
{
	(void)state;
	struct test_key k;
	test_fixed_key(&k);
	struct journal_append in = test_append();
	struct journal_signer signer = test_signer(&k);
	struct journal_signed s;
	const char *reason = NULL;
	assert_int_equal(journal_sign(&in, &signer, test_time_ms, TEST_BODY_MAX_BYTES, &s, &reason),
			 CARELOG_OK);
	struct journal_record r = test_record_of(&s, in.body, in.body_len);
	struct journal_header h;
	uint8_t id[JOURNAL_ID_BYTES];
	assert_int_equal(journal_verify(&r, k.public_key, &h, id), CARELOG_OK);
	assert_memory_equal(id, s.id, JOURNAL_ID_BYTES);
	uint8_t expect_id[CL_SHA256_BYTES];
	cl_sha256(expect_id, s.header_buf, s.header_len);
	assert_memory_equal(id, expect_id, JOURNAL_ID_BYTES);
	assert_string_equal(h.status, "final");
	assert_string_equal(h.sensitivity, "normal");
	assert_string_equal(h.media_type, "text/plain");
	assert_string_equal(h.org, "st-olavs");
	assert_true(h.node_id == 1);
	assert_true(h.author_time_ms == test_time_ms);
	assert_true(h.clinical_time_ms == test_time_ms);
	assert_true(h.body_size == in.body_len);
	assert_false(h.has_corrects);

	/* Two signings of the same input differ in salt, hence in id. */
	struct journal_signed s2;
	assert_int_equal(journal_sign(&in, &signer, test_time_ms, TEST_BODY_MAX_BYTES, &s2, NULL),
			 CARELOG_OK);
	assert_memory_not_equal(s.salt, s2.salt, JOURNAL_SALT_BYTES);
	assert_memory_not_equal(s.id, s2.id, JOURNAL_ID_BYTES);
}

static void test_sign_keeps_given_values_and_corrects(void **state)
{
	(void)state;
	struct test_key k;
	test_fixed_key(&k);
	struct journal_append in = test_append();
	in.status = "amended";
	in.sensitivity = "psychiatry";
	in.media_type = "application/json";
	in.clinical_time_ms = 1000;
	in.has_corrects = true;
	memset(in.corrects, 0x5a, JOURNAL_ID_BYTES);
	struct journal_signer signer = test_signer(&k);
	struct journal_signed s;
	assert_int_equal(journal_sign(&in, &signer, test_time_ms, TEST_BODY_MAX_BYTES, &s, NULL),
			 CARELOG_OK);
	struct journal_header h;
	assert_int_equal(journal_header_decode(s.header_buf, s.header_len, &h), CARELOG_OK);
	assert_string_equal(h.status, "amended");
	assert_string_equal(h.sensitivity, "psychiatry");
	assert_string_equal(h.media_type, "application/json");
	assert_true(h.clinical_time_ms == 1000);
	assert_true(h.has_corrects);
	assert_memory_equal(h.corrects, in.corrects, JOURNAL_ID_BYTES);
}

static void test_sign_refuses_unknown_kind_and_bad_fields_with_reasons(void **state)
{
	(void)state;
	struct test_key k;
	test_fixed_key(&k);
	struct journal_signer signer = test_signer(&k);
	struct journal_signed s;
	memset(&s, 0x77, sizeof(s));
	struct journal_signed untouched = s;
	const char *reason = NULL;

	struct journal_append in = test_append();
	in.kind = "horoscope";
	assert_int_equal(journal_sign(&in, &signer, test_time_ms, TEST_BODY_MAX_BYTES, &s, &reason),
			 CARELOG_EUNKNOWN);
	assert_string_equal(reason, "unknown kind");
	assert_memory_equal(&s, &untouched, sizeof(s));

	in = test_append();
	in.kind = "a-kind-name-much-longer-than-thirty-two-bytes";
	assert_int_equal(journal_sign(&in, &signer, test_time_ms, TEST_BODY_MAX_BYTES, &s, &reason),
			 CARELOG_EUNKNOWN);

	in = test_append();
	in.patient = NULL;
	assert_int_equal(journal_sign(&in, &signer, test_time_ms, TEST_BODY_MAX_BYTES, &s, &reason),
			 CARELOG_EINVAL);
	assert_non_null(strstr(reason, "patient id"));

	in = test_append();
	in.patient = "01234567890123456789012345678901234567890123456789012345678901234";
	assert_int_equal(journal_sign(&in, &signer, test_time_ms, TEST_BODY_MAX_BYTES, &s, &reason),
			 CARELOG_EINVAL);
	assert_non_null(strstr(reason, "patient id"));

	in = test_append();
	in.status = "entered-in-error";
	assert_int_equal(journal_sign(&in, &signer, test_time_ms, TEST_BODY_MAX_BYTES, &s, &reason),
			 CARELOG_EINVAL);

	in = test_append();
	in.role = "";
	assert_int_equal(journal_sign(&in, &signer, test_time_ms, TEST_BODY_MAX_BYTES, &s, &reason),
			 CARELOG_EINVAL);
	assert_non_null(strstr(reason, "role"));

	in = test_append();
	struct journal_signer no_org = signer;
	no_org.org = "st olavs";
	assert_int_equal(journal_sign(&in, &no_org, test_time_ms, TEST_BODY_MAX_BYTES, &s, &reason),
			 CARELOG_EINVAL);
	assert_non_null(strstr(reason, "organisation"));
	assert_memory_equal(&s, &untouched, sizeof(s));
}

static void test_sign_refuses_body_over_limit_with_etoobig(void **state)
{
	(void)state;
	struct test_key k;
	test_fixed_key(&k);
	struct journal_signer signer = test_signer(&k);
	struct journal_append in = test_append();
	struct journal_signed s;
	const char *reason = NULL;
	assert_int_equal(journal_sign(&in, &signer, test_time_ms, in.body_len - 1, &s, &reason),
			 CARELOG_ETOOBIG);
	assert_string_equal(reason, "body exceeds body_max_bytes");
	assert_int_equal(journal_sign(&in, &signer, test_time_ms, in.body_len, &s, &reason),
			 CARELOG_OK);
	/* The format's own ceiling holds whatever the parameter says. */
	in.body_len = (size_t)JOURNAL_BODY_BYTES_LIMIT + 1;
	assert_int_equal(journal_sign(&in, &signer, test_time_ms, UINT64_MAX, &s, &reason),
			 CARELOG_ETOOBIG);
}

static void test_verify_refuses_tampered_header_byte_with_ebadsig(void **state)
{
	(void)state;
	struct test_key k;
	struct journal_signed s;
	test_sign_fixed(&k, &s);
	/* Change one character of the patient id: still a valid header, but not what was signed. */
	char *p = memmem(s.header_buf, s.header_len, "01017012345", 11);
	assert_non_null(p);
	p[10] = '6';
	struct journal_record r =
		test_record_of(&s, (const uint8_t *)test_body, sizeof(test_body) - 1);
	struct journal_header h;
	memset(&h, 0, sizeof(h));
	struct journal_header untouched = h;
	assert_int_equal(journal_verify(&r, k.public_key, &h, NULL), CARELOG_EBADSIG);
	assert_memory_equal(&h, &untouched, sizeof(h));
	p[10] = '5';
	assert_int_equal(journal_verify(&r, k.public_key, &h, NULL), CARELOG_OK);

	/* Every single-bit flip anywhere in the header fails, never passes. */
	for (size_t i = 0; i < s.header_len; i++) {
		for (unsigned bit = 0; bit < 8; bit++) {
			s.header_buf[i] ^= (uint8_t)(1U << bit);
			int rc = journal_verify(&r, k.public_key, NULL, NULL);
			assert_true(rc == CARELOG_EBADSIG || rc == CARELOG_EPROTO ||
				    rc == CARELOG_EVERSION);
			s.header_buf[i] ^= (uint8_t)(1U << bit);
		}
	}
	/* A flipped signature bit fails too. */
	s.signature[7] ^= 0x10;
	assert_int_equal(journal_verify(&r, k.public_key, NULL, NULL), CARELOG_EBADSIG);
}

static void test_verify_refuses_wrong_key_with_ebadsig(void **state)
{
	(void)state;
	struct test_key k;
	struct journal_signed s;
	test_sign_fixed(&k, &s);
	struct test_key other;
	assert_int_equal(cl_sign_keypair(other.public_key, other.secret_key), CARELOG_OK);
	struct journal_record r =
		test_record_of(&s, (const uint8_t *)test_body, sizeof(test_body) - 1);
	assert_int_equal(journal_verify(&r, other.public_key, NULL, NULL), CARELOG_EBADSIG);
}

static void test_verify_refuses_tampered_body_or_salt_with_ecorrupt(void **state)
{
	(void)state;
	struct test_key k;
	struct journal_signed s;
	test_sign_fixed(&k, &s);
	char body[sizeof(test_body)];
	memcpy(body, test_body, sizeof(body));
	size_t body_len = sizeof(test_body) - 1;
	struct journal_record r = test_record_of(&s, (const uint8_t *)body, body_len);
	assert_int_equal(journal_verify(&r, k.public_key, NULL, NULL), CARELOG_OK);
	body[3] ^= 0x01;
	assert_int_equal(journal_verify(&r, k.public_key, NULL, NULL), CARELOG_ECORRUPT);
	body[3] ^= 0x01;
	r.body_len = body_len - 1;
	assert_int_equal(journal_verify(&r, k.public_key, NULL, NULL), CARELOG_ECORRUPT);
	r.body_len = body_len;
	s.salt[0] ^= 0x80;
	assert_int_equal(journal_verify(&r, k.public_key, NULL, NULL), CARELOG_ECORRUPT);
	s.salt[0] ^= 0x80;
	assert_int_equal(journal_verify(&r, k.public_key, NULL, NULL), CARELOG_OK);
}

static void test_verify_accepts_erased_body_and_salt(void **state)
{
	(void)state;
	struct test_key k;
	struct journal_signed s;
	test_sign_fixed(&k, &s);
	struct journal_record r = test_record_of(&s, NULL, 0);
	r.salt = NULL;
	r.erased_by_index = 300; /* the tombstone's index */
	struct journal_header h;
	uint8_t id[JOURNAL_ID_BYTES];
	assert_int_equal(journal_verify(&r, k.public_key, &h, id), CARELOG_OK);
	assert_memory_equal(id, s.id, JOURNAL_ID_BYTES);
	assert_true(h.body_size == sizeof(test_body) - 1);

	/* the erased record travels and decodes as [.., nil, tombstone index] */
	uint8_t buf[TEST_RECORD_BYTES_MAX];
	size_t len = 0;
	assert_int_equal(journal_record_encode(&r, buf, sizeof(buf), &len), CARELOG_OK);
	assert_int_equal(buf[len - 4], 0xc0);
	assert_int_equal(buf[len - 3], 0xcd); /* uint16 300 */
	assert_int_equal(buf[len - 2], 0x01);
	assert_int_equal(buf[len - 1], 0x2c);
	struct journal_record d;
	assert_int_equal(journal_record_decode(buf, len, &d), CARELOG_OK);
	assert_null(d.salt);
	assert_null(d.body);
	assert_int_equal(d.erased_by_index, 300);
	assert_int_equal(journal_verify(&d, k.public_key, NULL, NULL), CARELOG_OK);

	/* an erasure names its tombstone: index 0, or nil in the body's place, is malformed */
	r.erased_by_index = 0;
	assert_int_equal(journal_record_encode(&r, buf, sizeof(buf), &len), CARELOG_EINVAL);
	uint8_t nil_nil[TEST_RECORD_BYTES_MAX];
	size_t nil_len = 0;
	r.erased_by_index = 1;
	assert_int_equal(journal_record_encode(&r, nil_nil, sizeof(nil_nil), &nil_len), CARELOG_OK);
	nil_nil[nil_len - 1] = 0xc0; /* [.., nil, nil] */
	assert_int_equal(journal_record_decode(nil_nil, nil_len, &d), CARELOG_EPROTO);
	nil_nil[nil_len - 1] = 0x00; /* [.., nil, 0] */
	assert_int_equal(journal_record_decode(nil_nil, nil_len, &d), CARELOG_EPROTO);
	r.erased_by_index = 300;
	/* a record with its body names no tombstone */
	struct journal_record whole = test_record_of(&s, (const uint8_t *)test_body,
	                                             sizeof(test_body) - 1);
	whole.erased_by_index = 5;
	assert_int_equal(journal_record_encode(&whole, buf, sizeof(buf), &len), CARELOG_EINVAL);

	/* a body without its salt is not an erasure */
	r.body = (const uint8_t *)test_body;
	r.body_len = sizeof(test_body) - 1;
	assert_int_equal(journal_verify(&r, k.public_key, NULL, NULL), CARELOG_EPROTO);
	assert_int_equal(journal_record_encode(&r, buf, sizeof(buf), &len), CARELOG_EINVAL);
}

static void test_verify_stops_on_unknown_values_but_rejects_rule_breaks(void **state)
{
	(void)state;
	/* Sign headers journal_sign would refuse, to see how verify classifies them. */
	struct test_key k;
	test_fixed_key(&k);
	struct journal_header h = test_full_header();
	h.body_size = 0;
	uint8_t salt[JOURNAL_SALT_BYTES];
	test_fixed_salt(salt);
	cl_sha256(h.body_hash, salt, sizeof(salt)); /* hash of an empty body */
	struct test_field f[TEST_HEADER_FIELDS];
	struct mp_build b;
	uint8_t sig[CL_SIGNATURE_BYTES];
	struct journal_record r = {.signature = sig, .salt = salt, .body = (const uint8_t *)""};

	test_fields_of(&h, f);
	f[1].s = "horoscope"; /* a kind a newer format might know */
	f[1].len = strlen(f[1].s);
	test_emit(&b, f, TEST_HEADER_FIELDS);
	assert_int_equal(cl_sign(sig, CL_SIGN_DOMAIN_ENTRY, b.buf, b.len, k.secret_key),
			 CARELOG_OK);
	r.header = b.buf;
	r.header_len = b.len;
	assert_int_equal(journal_verify(&r, k.public_key, NULL, NULL), CARELOG_EUNKNOWN);
	sig[0] ^= 1; /* a forged unknown kind is rejected, not a reason to stop */
	assert_int_equal(journal_verify(&r, k.public_key, NULL, NULL), CARELOG_EBADSIG);

	test_fields_of(&h, f);
	f[2].s = "has space";
	f[2].len = strlen(f[2].s);
	test_emit(&b, f, TEST_HEADER_FIELDS);
	assert_int_equal(cl_sign(sig, CL_SIGN_DOMAIN_ENTRY, b.buf, b.len, k.secret_key),
			 CARELOG_OK);
	r.header_len = b.len;
	assert_int_equal(journal_verify(&r, k.public_key, NULL, NULL), CARELOG_EPROTO);

	test_fields_of(&h, f);
	test_emit(&b, f, TEST_HEADER_FIELDS);
	assert_int_equal(cl_sign(sig, CL_SIGN_DOMAIN_ENTRY, b.buf, b.len, k.secret_key),
			 CARELOG_OK);
	r.header_len = b.len;
	assert_int_equal(journal_verify(&r, k.public_key, NULL, NULL), CARELOG_OK);
	/* signature of the handshake domain never passes as an entry signature */
	assert_int_equal(cl_sign(sig, CL_SIGN_DOMAIN_HANDSHAKE, b.buf, b.len, k.secret_key),
			 CARELOG_OK);
	assert_int_equal(journal_verify(&r, k.public_key, NULL, NULL), CARELOG_EBADSIG);
}

/* ---- record codec ---------------------------------------------------------------------- */

static void test_record_round_trip_gives_views_into_the_bytes(void **state)
{
	(void)state;
	struct test_key k;
	struct journal_signed s;
	test_sign_fixed(&k, &s);
	struct journal_record r =
		test_record_of(&s, (const uint8_t *)test_body, sizeof(test_body) - 1);
	uint8_t buf[TEST_RECORD_BYTES_MAX];
	size_t len = 0;
	assert_int_equal(journal_record_encode(&r, buf, sizeof(buf), &len), CARELOG_OK);
	assert_true(len <= journal_record_size(r.header_len, r.body_len));
	struct journal_record d;
	assert_int_equal(journal_record_decode(buf, len, &d), CARELOG_OK);
	assert_true(d.leader_time_ms == r.leader_time_ms);
	assert_int_equal(d.header_len, r.header_len);
	assert_memory_equal(d.header, r.header, r.header_len);
	assert_memory_equal(d.signature, r.signature, CL_SIGNATURE_BYTES);
	assert_memory_equal(d.salt, r.salt, JOURNAL_SALT_BYTES);
	assert_int_equal(d.body_len, r.body_len);
	assert_memory_equal(d.body, r.body, r.body_len);
	assert_true(d.header >= buf && d.header < buf + len);
	assert_true(d.body >= buf && d.body + d.body_len <= buf + len);
	assert_int_equal(journal_verify(&d, k.public_key, NULL, NULL), CARELOG_OK);

	assert_int_equal(journal_record_encode(&r, buf, len - 1, &len), CARELOG_ETOOBIG);

	/* An empty body stays an empty bin (present, not erased). */
	r.body = NULL;
	r.body_len = 0;
	assert_int_equal(journal_record_encode(&r, buf, sizeof(buf), &len), CARELOG_OK);
	assert_int_equal(journal_record_decode(buf, len, &d), CARELOG_OK);
	assert_non_null(d.salt);
	assert_non_null(d.body);
	assert_int_equal(d.body_len, 0);
}

static void test_record_with_large_body_round_trips(void **state)
{
	(void)state;
	struct test_key k;
	test_fixed_key(&k);
	size_t body_len = 70000; /* bin32 length prefix */
	uint8_t *body = malloc(body_len);
	assert_non_null(body);
	for (size_t i = 0; i < body_len; i++) {
		body[i] = (uint8_t)(i * 7);
	}
	struct journal_append in = test_append();
	in.body = body;
	in.body_len = body_len;
	in.media_type = "application/octet-stream";
	struct journal_signer signer = test_signer(&k);
	struct journal_signed s;
	assert_int_equal(journal_sign(&in, &signer, test_time_ms, TEST_BODY_MAX_BYTES, &s, NULL),
			 CARELOG_OK);
	struct journal_record r = test_record_of(&s, body, body_len);
	size_t cap = journal_record_size(s.header_len, body_len);
	uint8_t *buf = malloc(cap);
	assert_non_null(buf);
	size_t len = 0;
	assert_int_equal(journal_record_encode(&r, buf, cap, &len), CARELOG_OK);
	struct journal_record d;
	assert_int_equal(journal_record_decode(buf, len, &d), CARELOG_OK);
	assert_int_equal(journal_verify(&d, k.public_key, NULL, NULL), CARELOG_OK);
	free(buf);
	free(body);
}

static void test_record_decode_is_strict(void **state)
{
	(void)state;
	uint8_t header[3] = {0x80}; /* any bytes: the record does not judge the header */
	uint8_t sig[CL_SIGNATURE_BYTES] = {0};
	uint8_t salt[JOURNAL_SALT_BYTES] = {0};
	struct journal_record d;
	struct mp_build b;

#define RECORD(version, n_fields, ...)   \
	do {                             \
		b.len = 0;               \
		mpb_array(&b, n_fields); \
		mpb_uint(&b, version);   \
		__VA_ARGS__;             \
	} while (0)

	RECORD(1, 6, mpb_uint(&b, 99); mpb_bin(&b, header, 1); mpb_bin(&b, sig, 64);
	       mpb_bin(&b, salt, 16); mpb_bin(&b, "x", 1));
	assert_int_equal(journal_record_decode(b.buf, b.len, &d), CARELOG_OK);
	b.buf[b.len] = 0xc0; /* trailing byte */
	assert_int_equal(journal_record_decode(b.buf, b.len + 1, &d), CARELOG_EPROTO);

	RECORD(2, 6, mpb_uint(&b, 99); mpb_bin(&b, header, 1); mpb_bin(&b, sig, 64);
	       mpb_bin(&b, salt, 16); mpb_bin(&b, "x", 1));
	assert_int_equal(journal_record_decode(b.buf, b.len, &d), CARELOG_EVERSION);
	RECORD(2, 1, (void)0);
	assert_int_equal(journal_record_decode(b.buf, b.len, &d), CARELOG_EVERSION);

	RECORD(1, 5, mpb_uint(&b, 99); mpb_bin(&b, header, 1); mpb_bin(&b, sig, 64);
	       mpb_bin(&b, salt, 16));
	assert_int_equal(journal_record_decode(b.buf, b.len, &d), CARELOG_EPROTO);
	RECORD(1, 6, mpb_uint(&b, 99); mpb_bin(&b, header, 1); mpb_bin(&b, sig, 63);
	       mpb_bin(&b, salt, 16); mpb_bin(&b, "x", 1));
	assert_int_equal(journal_record_decode(b.buf, b.len, &d), CARELOG_EPROTO);
	RECORD(1, 6, mpb_uint(&b, 99); mpb_bin(&b, header, 1); mpb_bin(&b, sig, 64);
	       mpb_bin(&b, salt, 15); mpb_bin(&b, "x", 1));
	assert_int_equal(journal_record_decode(b.buf, b.len, &d), CARELOG_EPROTO);
	RECORD(1, 6, mpb_uint(&b, 99); mpb_bin(&b, header, 0); mpb_bin(&b, sig, 64);
	       mpb_bin(&b, salt, 16); mpb_bin(&b, "x", 1));
	assert_int_equal(journal_record_decode(b.buf, b.len, &d), CARELOG_EPROTO);
	RECORD(1, 6, mpb_uint(&b, 99); mpb_str(&b, "hdr"); mpb_bin(&b, sig, 64);
	       mpb_bin(&b, salt, 16); mpb_bin(&b, "x", 1));
	assert_int_equal(journal_record_decode(b.buf, b.len, &d), CARELOG_EPROTO);
	/* salt without body, body without salt */
	RECORD(1, 6, mpb_uint(&b, 99); mpb_bin(&b, header, 1); mpb_bin(&b, sig, 64);
	       mpb_bin(&b, salt, 16); mpb_nil(&b));
	assert_int_equal(journal_record_decode(b.buf, b.len, &d), CARELOG_EPROTO);
	RECORD(1, 6, mpb_uint(&b, 99); mpb_bin(&b, header, 1); mpb_bin(&b, sig, 64); mpb_nil(&b);
	       mpb_bin(&b, "x", 1));
	assert_int_equal(journal_record_decode(b.buf, b.len, &d), CARELOG_EPROTO);
	/* leader time as a negative number */
	RECORD(1, 6, mpb_byte(&b, 0xff); mpb_bin(&b, header, 1); mpb_bin(&b, sig, 64);
	       mpb_bin(&b, salt, 16); mpb_bin(&b, "x", 1));
	assert_int_equal(journal_record_decode(b.buf, b.len, &d), CARELOG_EPROTO);
	/* leader time 99 as uint16: non-canonical */
	RECORD(1, 6, mpb_byte(&b, 0xcd); mpb_be(&b, 99, 2); mpb_bin(&b, header, 1);
	       mpb_bin(&b, sig, 64); mpb_bin(&b, salt, 16); mpb_bin(&b, "x", 1));
	assert_int_equal(journal_record_decode(b.buf, b.len, &d), CARELOG_EPROTO);
	/* body bin8 written as bin16: non-canonical */
	RECORD(1, 6, mpb_uint(&b, 99); mpb_bin(&b, header, 1); mpb_bin(&b, sig, 64);
	       mpb_bin(&b, salt, 16); mpb_byte(&b, 0xc5); mpb_be(&b, 1, 2); mpb_byte(&b, 'x'));
	assert_int_equal(journal_record_decode(b.buf, b.len, &d), CARELOG_EPROTO);
#undef RECORD
}

static void test_decoders_refuse_lying_container_counts(void **state)
{
	(void)state;
	struct journal_header h;
	struct journal_record r;
	/* array32 / map32 of 2^32-1 elements in five bytes: refused before any allocation */
	static const uint8_t huge_array[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
	static const uint8_t huge_map[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
	static const uint8_t nested_huge[] = {0x92, 0x01, 0xdd, 0x7f, 0xff, 0xff, 0xff, 0x00};
	assert_int_equal(journal_header_decode(huge_map, sizeof(huge_map), &h), CARELOG_EPROTO);
	assert_int_equal(journal_record_decode(huge_array, sizeof(huge_array), &r), CARELOG_EPROTO);
	assert_int_equal(journal_record_decode(nested_huge, sizeof(nested_huge), &r),
			 CARELOG_EPROTO);
	/* deep nesting */
	uint8_t deep[200];
	memset(deep, 0x91, sizeof(deep));
	deep[sizeof(deep) - 1] = 0x01;
	assert_int_equal(journal_record_decode(deep, sizeof(deep), &r), CARELOG_EPROTO);
	/* ext types and the reserved byte */
	static const uint8_t ext[] = {0xd4, 0x01, 0x02};
	static const uint8_t reserved[] = {0xc1};
	assert_int_equal(journal_record_decode(ext, sizeof(ext), &r), CARELOG_EPROTO);
	assert_int_equal(journal_record_decode(reserved, sizeof(reserved), &r), CARELOG_EPROTO);
}

/* ---- robustness ------------------------------------------------------------------------ */

/* Decodes `bytes` every way; any success must re-encode to exactly the same bytes. */
static void test_decode_all_ways(const uint8_t *bytes, size_t len, const uint8_t *public_key)
{
	struct journal_header h;
	int rc = journal_header_decode(bytes, len, &h);
	assert_true(rc == CARELOG_OK || rc == CARELOG_EPROTO || rc == CARELOG_EVERSION);
	if (rc == CARELOG_OK && journal_header_check(&h, NULL) == CARELOG_OK) {
		uint8_t again[JOURNAL_HEADER_BYTES_MAX];
		size_t again_len = 0;
		assert_int_equal(journal_header_encode(&h, again, sizeof(again), &again_len),
				 CARELOG_OK);
		assert_int_equal(again_len, len);
		assert_memory_equal(again, bytes, len);
	}
	struct journal_record r;
	rc = journal_record_decode(bytes, len, &r);
	assert_true(rc == CARELOG_OK || rc == CARELOG_EPROTO || rc == CARELOG_EVERSION);
	if (rc == CARELOG_OK) {
		uint8_t again[TEST_RECORD_BYTES_MAX];
		size_t again_len = 0;
		assert_int_equal(journal_record_encode(&r, again, sizeof(again), &again_len),
				 CARELOG_OK);
		assert_int_equal(again_len, len);
		assert_memory_equal(again, bytes, len);
		int vrc = journal_verify(&r, public_key, NULL, NULL);
		assert_true(vrc != CARELOG_ENOMEM);
		uint8_t leaf[CL_SHA256_BYTES];
		journal_chain_leaf_record(1, &r, leaf);
	}
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

static void test_random_bytes_decode_to_error_or_valid_value(void **state)
{
	(void)state;
	struct test_key k;
	test_fixed_key(&k);
	uint64_t rng = test_seed();
	uint8_t buf[512];
	for (int i = 0; i < TEST_FUZZ_ITERATIONS; i++) {
		size_t len = (size_t)(mpb_rand(&rng) % sizeof(buf));
		for (size_t j = 0; j < len; j++) {
			buf[j] = (uint8_t)mpb_rand(&rng);
		}
		/* Half of them start like a header or record, to get past the first byte. */
		if (len > 3 && (i & 1)) {
			buf[0] = (i & 2) ? 0xde : 0x96;
			buf[1] = 0x00;
			buf[2] = 0x11;
		}
		test_decode_all_ways(buf, len, k.public_key);
	}
}

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

static void test_mutated_header_and_record_decode_to_error_or_valid_value(void **state)
{
	(void)state;
	struct test_key k;
	struct journal_signed s;
	test_sign_fixed(&k, &s);
	struct journal_record r =
		test_record_of(&s, (const uint8_t *)test_body, sizeof(test_body) - 1);
	uint8_t record[TEST_RECORD_BYTES_MAX];
	size_t record_len = 0;
	assert_int_equal(journal_record_encode(&r, record, sizeof(record), &record_len),
			 CARELOG_OK);
	uint64_t rng = test_seed();
	uint8_t buf[TEST_RECORD_BYTES_MAX];
	int verified = 0;
	/* TEST_FUZZ_ITERATIONS mutants of each: odd i mutates the record, even i the header. */
	for (int i = 0; i < 2 * TEST_FUZZ_ITERATIONS; i++) {
		const uint8_t *src = (i & 1) ? record : s.header_buf;
		size_t len = (i & 1) ? record_len : s.header_len;
		memcpy(buf, src, len);
		len = test_mutate(buf, len, sizeof(buf), &rng);
		test_decode_all_ways(buf, len, k.public_key);
		struct journal_record d;
		if ((i & 1) && journal_record_decode(buf, len, &d) == CARELOG_OK &&
		    journal_verify(&d, k.public_key, NULL, NULL) == CARELOG_OK) {
			/* Only edits outside what is signed or hashed could leave it valid:
			 * the leader time. */
			assert_memory_equal(d.header, s.header_buf, s.header_len);
			verified++;
		}
	}
	printf("# %d mutated records still verified (leader-time edits)\n", verified);
}

/* ---- ids, keys, chain ------------------------------------------------------------------ */

static void test_chain_head_depends_on_every_leaf_and_order(void **state)
{
	(void)state;
	struct test_key k;
	struct journal_signed s;
	test_sign_fixed(&k, &s);
	struct journal_record r =
		test_record_of(&s, (const uint8_t *)test_body, sizeof(test_body) - 1);
	static const uint8_t conf[] = {1, 0, 0, 0, 0, 0, 0};
	uint8_t leaves[4][CL_SHA256_BYTES];
	journal_chain_leaf_opaque(1, 1, conf, sizeof(conf), leaves[0]);
	journal_chain_leaf_noop(2, leaves[1]);
	journal_chain_leaf_record(3, &r, leaves[2]);
	journal_chain_leaf_opaque(4, 0, (const uint8_t *)"junk", 4, leaves[3]);

	uint8_t a[CL_SHA256_BYTES] = {0};
	uint8_t b[CL_SHA256_BYTES] = {0};
	for (size_t i = 0; i < 4; i++) {
		journal_chain_extend(a, leaves[i]);
		journal_chain_extend(b, leaves[i]);
	}
	assert_memory_equal(a, b, CL_SHA256_BYTES);

	/* a different order */
	uint8_t c[CL_SHA256_BYTES] = {0};
	static const size_t order[] = {0, 2, 1, 3};
	for (size_t i = 0; i < 4; i++) {
		journal_chain_extend(c, leaves[order[i]]);
	}
	assert_memory_not_equal(a, c, CL_SHA256_BYTES);

	/* any leaf changed in any input */
	uint8_t changed[6][CL_SHA256_BYTES];
	journal_chain_leaf_noop(5, changed[0]);
	journal_chain_leaf_opaque(1, 0, conf, sizeof(conf), changed[1]);
	journal_chain_leaf_opaque(1, 1, conf, sizeof(conf) - 1, changed[2]);
	struct journal_record r2 = r;
	r2.leader_time_ms++;
	journal_chain_leaf_record(3, &r2, changed[3]);
	uint8_t sig[CL_SIGNATURE_BYTES];
	memcpy(sig, s.signature, sizeof(sig));
	sig[0] ^= 1;
	r2 = r;
	r2.signature = sig;
	journal_chain_leaf_record(3, &r2, changed[4]);
	journal_chain_leaf_record(4, &r, changed[5]);
	static const size_t replaces[6] = {1, 0, 0, 2, 2, 2}; /* which leaf each one stands for */
	for (size_t v = 0; v < 6; v++) {
		uint8_t d[CL_SHA256_BYTES] = {0};
		for (size_t i = 0; i < 4; i++) {
			journal_chain_extend(d, leaves[i]);
		}
		assert_memory_equal(d, a, CL_SHA256_BYTES);
		memset(d, 0, sizeof(d));
		for (size_t i = 0; i < 4; i++) {
			journal_chain_extend(d, i == replaces[v] ? changed[v] : leaves[i]);
		}
		assert_memory_not_equal(d, a, CL_SHA256_BYTES);
	}

	/* Erasing body and salt leaves the record leaf unchanged. */
	r2 = r;
	r2.salt = NULL;
	r2.body = NULL;
	r2.body_len = 0;
	r2.erased_by_index = 9;
	uint8_t erased_leaf[CL_SHA256_BYTES];
	journal_chain_leaf_record(3, &r2, erased_leaf);
	assert_memory_equal(erased_leaf, leaves[2], CL_SHA256_BYTES);
}

/* Known answers, computed independently (tests/unit/journal/entry_format_kat.py and
 * docs/entry-format.md) from: key seed 00..1f, salt a0..af, author time 1767225600000,
 * leader time 1767225600005, index 7, the test_append() input, node 1, org "st-olavs". */
#define KAT_HEADER_HEX                                                             \
	"de0011a17601a46b696e64a46e6f7465a770617469656e74ab3031303137303132333435" \
	"a6617574686f72ab6870722d39313434393030a4726f6c65a56e75727365a36f7267a873" \
	"742d6f6c617673a4756e6974aa63617264696f6c6f6779a46e6f646501ab617574686f72" \
	"5f74696d65cf0000019b76daa800ad636c696e6963616c5f74696d65cf0000019b76daa8" \
	"00a6737461747573a566696e616ca8636f727265637473c0ab73656e7369746976697479" \
	"a66e6f726d616caa726571756573745f6964a87265712d30303031aa6d656469615f7479" \
	"7065aa746578742f706c61696ea9626f64795f73697a6518a9626f64795f68617368c420" \
	"4a825b5bb495512eeef049cffc944e9a52500211525db31d1c1fc2468139782b"
#define KAT_ENTRY_ID_HEX "e8d7688b4b02380845d43e1307e4719e106008c559f82f67400ef794c9f5c95c"
#define KAT_SIGNATURE_HEX                                                          \
	"06df70ec744a273f673b95428e94e655ec8c9ceff5ae705124b8312eba8fba1b418e11b9" \
	"47a201cc9d9c23a11d910986d9a8113338967788759754dace81910d"
#define KAT_RECORD_HEX                                                             \
	"9601cf0000019b76daa805c5011cde0011a17601a46b696e64a46e6f7465a77061746965" \
	"6e74ab3031303137303132333435a6617574686f72ab6870722d39313434393030a4726f" \
	"6c65a56e75727365a36f7267a873742d6f6c617673a4756e6974aa63617264696f6c6f67" \
	"79a46e6f646501ab617574686f725f74696d65cf0000019b76daa800ad636c696e696361" \
	"6c5f74696d65cf0000019b76daa800a6737461747573a566696e616ca8636f7272656374" \
	"73c0ab73656e7369746976697479a66e6f726d616caa726571756573745f6964a8726571" \
	"2d30303031aa6d656469615f74797065aa746578742f706c61696ea9626f64795f73697a" \
	"6518a9626f64795f68617368c4204a825b5bb495512eeef049cffc944e9a52500211525d" \
	"b31d1c1fc2468139782bc44006df70ec744a273f673b95428e94e655ec8c9ceff5ae7051" \
	"24b8312eba8fba1b418e11b947a201cc9d9c23a11d910986d9a8113338967788759754da" \
	"ce81910dc410a0a1a2a3a4a5a6a7a8a9aaabacadaeafc41850617469656e74207365656e" \
	"2e204250203132302f38302e"
#define KAT_RECORD_LEAF_HEX "fea1d93591ba3e63b203f1dc7ffbfddf1f7cd5fa80eb52b23bc033250e8b0ab9"
#define KAT_CHAIN_1_HEX "2b0719c08490443b4b07c08bec920af681e7dd27716b3513b3628f92186ed10d"
#define KAT_NOOP_LEAF_HEX "4de24ac026fb8f8d4cc96b4f972245eab7b1c255c89477b088312ea70487ba12"
#define KAT_OPAQUE_LEAF_HEX "347520d805b04e32cd3be68ed93d00d39f3c1c089d6703e3e8f672cd2e208fd7"
#define KAT_PATIENT_KEY_HEX "8903aaa19d1bb5ccdd76ff6320ca7a91b4b6ebb12adab0d2246f534cb4df057f"

static void test_known_answer_vectors(void **state)
{
	(void)state;
	struct test_key k;
	struct journal_signed s;
	test_sign_fixed(&k, &s);
	char hex[2 * JOURNAL_HEADER_BYTES_MAX + 1];

	test_hex_of(hex, s.header_buf, s.header_len);
	assert_string_equal(hex, KAT_HEADER_HEX);
	test_hex_of(hex, s.id, JOURNAL_ID_BYTES);
	assert_string_equal(hex, KAT_ENTRY_ID_HEX);
	test_hex_of(hex, s.signature, CL_SIGNATURE_BYTES);
	assert_string_equal(hex, KAT_SIGNATURE_HEX);

	struct journal_record r =
		test_record_of(&s, (const uint8_t *)test_body, sizeof(test_body) - 1);
	uint8_t leaf[CL_SHA256_BYTES];
	journal_chain_leaf_record(7, &r, leaf);
	test_hex_of(hex, leaf, sizeof(leaf));
	assert_string_equal(hex, KAT_RECORD_LEAF_HEX);
	uint8_t chain[CL_SHA256_BYTES] = {0};
	journal_chain_extend(chain, leaf);
	test_hex_of(hex, chain, sizeof(chain));
	assert_string_equal(hex, KAT_CHAIN_1_HEX);
	journal_chain_leaf_noop(7, leaf);
	test_hex_of(hex, leaf, sizeof(leaf));
	assert_string_equal(hex, KAT_NOOP_LEAF_HEX);
	journal_chain_leaf_opaque(7, 1, (const uint8_t *)"conf", 4, leaf);
	test_hex_of(hex, leaf, sizeof(leaf));
	assert_string_equal(hex, KAT_OPAQUE_LEAF_HEX);
	uint8_t key[CL_SHA256_BYTES];
	journal_patient_key("01017012345", key);
	test_hex_of(hex, key, sizeof(key));
	assert_string_equal(hex, KAT_PATIENT_KEY_HEX);

	uint8_t record[TEST_RECORD_BYTES_MAX];
	size_t record_len = 0;
	assert_int_equal(journal_record_encode(&r, record, sizeof(record), &record_len),
			 CARELOG_OK);
	test_hex_of(hex, record, record_len);
	assert_string_equal(hex, KAT_RECORD_HEX);
}

static void test_patient_key_differs_per_patient(void **state)
{
	(void)state;
	uint8_t a[CL_SHA256_BYTES], b[CL_SHA256_BYTES];
	journal_patient_key("01017012345", a);
	journal_patient_key("01017012346", b);
	assert_memory_not_equal(a, b, CL_SHA256_BYTES);
	journal_patient_key("01017012345", b);
	assert_memory_equal(a, b, CL_SHA256_BYTES);
}

int main(void)
{
	if (cl_crypto_init() != CARELOG_OK) {
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_round_trip_keeps_every_field),
		cmocka_unit_test(test_header_encoding_matches_an_independent_encoder),
		cmocka_unit_test(test_header_encode_refuses_small_buffer_and_bad_header),
		cmocka_unit_test(test_header_decode_of_version_2_is_eversion),
		cmocka_unit_test(test_header_decode_refuses_wrong_keys_order_and_duplicates),
		cmocka_unit_test(test_header_decode_refuses_wrong_types_and_lengths),
		cmocka_unit_test(test_header_decode_refuses_trailing_and_non_canonical_bytes),
		cmocka_unit_test(test_header_check_gives_static_reasons),
		cmocka_unit_test(test_kinds_list_has_the_twelve_v1_kinds),
		cmocka_unit_test(test_sign_then_verify_accepts_and_fills_defaults),
		cmocka_unit_test(test_sign_keeps_given_values_and_corrects),
		cmocka_unit_test(test_sign_refuses_unknown_kind_and_bad_fields_with_reasons),
		cmocka_unit_test(test_sign_refuses_body_over_limit_with_etoobig),
		cmocka_unit_test(test_verify_refuses_tampered_header_byte_with_ebadsig),
		cmocka_unit_test(test_verify_refuses_wrong_key_with_ebadsig),
		cmocka_unit_test(test_verify_refuses_tampered_body_or_salt_with_ecorrupt),
		cmocka_unit_test(test_verify_accepts_erased_body_and_salt),
		cmocka_unit_test(test_verify_stops_on_unknown_values_but_rejects_rule_breaks),
		cmocka_unit_test(test_record_round_trip_gives_views_into_the_bytes),
		cmocka_unit_test(test_record_with_large_body_round_trips),
		cmocka_unit_test(test_record_decode_is_strict),
		cmocka_unit_test(test_decoders_refuse_lying_container_counts),
		cmocka_unit_test(test_random_bytes_decode_to_error_or_valid_value),
		cmocka_unit_test(test_mutated_header_and_record_decode_to_error_or_valid_value),
		cmocka_unit_test(test_chain_head_depends_on_every_leaf_and_order),
		cmocka_unit_test(test_known_answer_vectors),
		cmocka_unit_test(test_patient_key_differs_per_patient),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
