/* Unit tests for node/api/proto: round trips of every op, strict decoding, hostile inputs. */
#include "carelog/errors.h"
#include "node/api/proto.h"
#include "node/journal/journal.h"

#include <msgpack.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* The protocol's field limits are the journal's header limits: a value the protocol carries
 * never fails the journal for length alone, and the reverse. */
_Static_assert((int)PROTO_PATIENT_BYTES_MAX == (int)JOURNAL_PATIENT_BYTES_MAX, "patient");
_Static_assert((int)PROTO_ACTOR_BYTES_MAX == (int)JOURNAL_ACTOR_BYTES_MAX, "actor");
_Static_assert((int)PROTO_ROLE_BYTES_MAX == (int)JOURNAL_ROLE_BYTES_MAX, "role");
_Static_assert((int)PROTO_KIND_BYTES_MAX == (int)JOURNAL_KIND_BYTES_MAX, "kind");
_Static_assert((int)PROTO_ORG_BYTES_MAX == (int)JOURNAL_ORG_BYTES_MAX, "org");
_Static_assert((int)PROTO_UNIT_BYTES_MAX == (int)JOURNAL_UNIT_BYTES_MAX, "unit");
_Static_assert((int)PROTO_STATUS_BYTES_MAX == (int)JOURNAL_STATUS_BYTES_MAX, "status");
_Static_assert((int)PROTO_SENSITIVITY_BYTES_MAX == (int)JOURNAL_SENSITIVITY_BYTES_MAX, "sens");
_Static_assert((int)PROTO_REQUEST_ID_BYTES_MAX == (int)JOURNAL_REQUEST_ID_BYTES_MAX, "rid");
_Static_assert((int)PROTO_MEDIA_TYPE_BYTES_MAX == (int)JOURNAL_MEDIA_TYPE_BYTES_MAX, "media");
_Static_assert((int)PROTO_BODY_BYTES_MAX == (int)JOURNAL_BODY_BYTES_LIMIT, "body");
_Static_assert((int)PROTO_ID_BYTES == (int)JOURNAL_ID_BYTES, "id");

#define S(lit) ((struct proto_str){.ptr = (lit), .len = sizeof(lit) - 1})

static bool str_eq(struct proto_str s, const char *lit)
{
	return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

static bool view_inside(struct proto_str s, const struct proto_buf *b)
{
	const uint8_t *p = (const uint8_t *)s.ptr;
	return s.len == 0 || (p >= b->data && p + s.len <= b->data + b->len);
}

static struct proto_request full_append_request(void)
{
	struct proto_request req = {.op = PROTO_OP_APPEND, .timeout_ms = 2500};
	struct proto_append_req *a = &req.u.append;
	a->actor.id = S("hpr-1234567");
	a->actor.role = S("nurse");
	a->patient = S("01017012345");
	a->kind = S("note");
	a->request_id = S("00112233445566778899aabbccddeeff");
	a->media_type = S("text/plain");
	a->status = S("final");
	a->sensitivity = S("normal");
	a->clinical_time_ms = 1700000000123ull;
	a->has_corrects = true;
	memset(a->corrects, 0xab, PROTO_ID_BYTES);
	a->body = S("BT 120/80, \xc3\xb8k\x00 binary ok");
	return req;
}

static void test_append_request_round_trips_every_field(void **state)
{
	(void)state;
	struct proto_request req = full_append_request();
	struct proto_buf buf = {0};
	assert_int_equal(proto_request_encode(&req, &buf), CARELOG_OK);
	struct proto_request got;
	assert_int_equal(proto_request_decode(buf.data, buf.len, &got), CARELOG_OK);
	assert_int_equal(got.version, PROTO_VERSION);
	assert_int_equal(got.op, PROTO_OP_APPEND);
	assert_int_equal(got.timeout_ms, 2500);
	const struct proto_append_req *a = &got.u.append;
	assert_true(str_eq(a->actor.id, "hpr-1234567"));
	assert_true(str_eq(a->actor.role, "nurse"));
	assert_true(str_eq(a->patient, "01017012345"));
	assert_true(str_eq(a->kind, "note"));
	assert_true(str_eq(a->request_id, "00112233445566778899aabbccddeeff"));
	assert_true(str_eq(a->media_type, "text/plain"));
	assert_true(str_eq(a->status, "final"));
	assert_true(str_eq(a->sensitivity, "normal"));
	assert_int_equal(a->clinical_time_ms, 1700000000123ull);
	assert_true(a->has_corrects);
	assert_memory_equal(a->corrects, req.u.append.corrects, PROTO_ID_BYTES);
	assert_int_equal(a->body.len, req.u.append.body.len);
	assert_memory_equal(a->body.ptr, req.u.append.body.ptr, a->body.len);
	/* Zero copy: every view points into the message bytes. */
	assert_true(view_inside(a->patient, &buf));
	assert_true(view_inside(a->body, &buf));
	proto_buf_free(&buf);
	assert_null(buf.data);
}

static void test_minimal_append_request_leaves_optional_fields_empty(void **state)
{
	(void)state;
	struct proto_request req = {.op = PROTO_OP_APPEND};
	req.u.append.patient = S("p1");
	req.u.append.kind = S("note");
	req.u.append.request_id = S("r1");
	struct proto_buf buf = {0};
	assert_int_equal(proto_request_encode(&req, &buf), CARELOG_OK);
	struct proto_request got;
	assert_int_equal(proto_request_decode(buf.data, buf.len, &got), CARELOG_OK);
	assert_int_equal(got.timeout_ms, 0);
	assert_int_equal(got.u.append.actor.id.len, 0);
	assert_int_equal(got.u.append.body.len, 0);
	assert_false(got.u.append.has_corrects);
	assert_int_equal(got.u.append.clinical_time_ms, 0);
	proto_buf_free(&buf);
}

static void test_read_get_status_verify_requests_round_trip(void **state)
{
	(void)state;
	struct proto_request read = {.op = PROTO_OP_READ, .timeout_ms = 100};
	read.u.read.actor.id = S("a");
	read.u.read.patient = S("p");
	read.u.read.consistency = PROTO_CONSISTENCY_LINEARIZABLE;
	read.u.read.min_index = 77;
	read.u.read.kind = S("lab");
	read.u.read.since_index = 5;
	read.u.read.limit = PROTO_READ_LIMIT_MAX;
	struct proto_buf buf = {0};
	struct proto_request got;
	assert_int_equal(proto_request_encode(&read, &buf), CARELOG_OK);
	assert_int_equal(proto_request_decode(buf.data, buf.len, &got), CARELOG_OK);
	assert_int_equal(got.op, PROTO_OP_READ);
	assert_true(str_eq(got.u.read.patient, "p"));
	assert_int_equal(got.u.read.consistency, PROTO_CONSISTENCY_LINEARIZABLE);
	assert_int_equal(got.u.read.min_index, 77);
	assert_true(str_eq(got.u.read.kind, "lab"));
	assert_int_equal(got.u.read.since_index, 5);
	assert_int_equal(got.u.read.limit, PROTO_READ_LIMIT_MAX);
	proto_buf_free(&buf);

	struct proto_request get = {.op = PROTO_OP_GET};
	for (int i = 0; i < PROTO_ID_BYTES; i++) {
		get.u.get.id[i] = (uint8_t)i;
	}
	assert_int_equal(proto_request_encode(&get, &buf), CARELOG_OK);
	assert_int_equal(proto_request_decode(buf.data, buf.len, &got), CARELOG_OK);
	assert_int_equal(got.op, PROTO_OP_GET);
	assert_memory_equal(got.u.get.id, get.u.get.id, PROTO_ID_BYTES);
	proto_buf_free(&buf);

	uint8_t ops[] = {PROTO_OP_STATUS, PROTO_OP_VERIFY};
	for (size_t i = 0; i < 2; i++) {
		struct proto_request r = {.op = ops[i], .timeout_ms = 9};
		assert_int_equal(proto_request_encode(&r, &buf), CARELOG_OK);
		assert_int_equal(proto_request_decode(buf.data, buf.len, &got), CARELOG_OK);
		assert_int_equal(got.op, ops[i]);
		assert_int_equal(got.timeout_ms, 9);
		proto_buf_free(&buf);
	}
}

static void test_request_encode_refuses_what_decode_would_refuse(void **state)
{
	(void)state;
	struct proto_buf buf = {0};
	struct proto_request req = full_append_request();
	req.u.append.patient.len = PROTO_PATIENT_BYTES_MAX + 1;
	char big[PROTO_PATIENT_BYTES_MAX + 1];
	memset(big, 'x', sizeof(big));
	req.u.append.patient.ptr = big;
	assert_int_equal(proto_request_encode(&req, &buf), CARELOG_ETOOBIG);
	assert_int_equal(buf.len, 0);
	struct proto_request bad_op = {.op = 99};
	assert_int_equal(proto_request_encode(&bad_op, &buf), CARELOG_EINVAL);
	struct proto_request read = {.op = PROTO_OP_READ};
	read.u.read.patient = S("p");
	read.u.read.limit = PROTO_READ_LIMIT_MAX + 1;
	assert_int_equal(proto_request_encode(&read, &buf), CARELOG_ETOOBIG);
	read.u.read.limit = 0;
	read.u.read.kind.len = 3; /* NULL pointer with a length */
	assert_int_equal(proto_request_encode(&read, &buf), CARELOG_EINVAL);
	assert_null(buf.data);
}

/* ---------------------------------------------------------------- replies */

static struct proto_entry sample_entry(uint64_t index)
{
	struct proto_entry e = {0};
	e.index = index;
	memset(e.id, (int)(index & 0xff), PROTO_ID_BYTES);
	e.kind = S("note");
	e.patient = S("01017012345");
	e.author = S("hpr-1");
	e.role = S("doctor");
	e.org = S("st-olavs");
	e.unit = S("cardio");
	e.node_id = 3;
	e.time_ms = 1700000000000ull + index;
	e.author_time_ms = 1700000000000ull;
	e.clinical_time_ms = 1690000000000ull;
	e.status = S("final");
	e.sensitivity = S("normal");
	e.media_type = S("text/plain");
	e.request_id = S("rid");
	e.body = S("hello");
	return e;
}

static void test_status_reply_round_trips_members(void **state)
{
	(void)state;
	struct proto_member members[3] = {
		{.id = 1, .role = S("voter"), .match_index = 10},
		{.id = 2, .role = S("voter"), .match_index = 9},
		{.id = 7, .role = S("learner"), .match_index = 0},
	};
	struct proto_reply rep = {.op = PROTO_OP_STATUS};
	struct proto_status_reply *s = &rep.u.status;
	s->node_id = 1;
	s->role = S("leader");
	s->term = 4;
	s->leader_id = 1;
	s->commit_index = 10;
	s->applied_index = 10;
	memset(s->chain_head, 0x5a, PROTO_ID_BYTES);
	s->members_count = 3;
	s->members = members;
	struct proto_buf buf = {0};
	assert_int_equal(proto_reply_encode(&rep, &buf), CARELOG_OK);
	struct proto_arena arena = {0};
	struct proto_reply got;
	assert_int_equal(proto_reply_decode(buf.data, buf.len, &arena, &got), CARELOG_OK);
	assert_int_equal(got.op, PROTO_OP_STATUS);
	assert_int_equal(got.err, 0);
	assert_int_equal(got.msg.len, 0);
	assert_int_equal(got.u.status.node_id, 1);
	assert_true(str_eq(got.u.status.role, "leader"));
	assert_int_equal(got.u.status.term, 4);
	assert_int_equal(got.u.status.commit_index, 10);
	assert_memory_equal(got.u.status.chain_head, s->chain_head, PROTO_ID_BYTES);
	assert_int_equal(got.u.status.members_count, 3);
	assert_int_equal(got.u.status.members[2].id, 7);
	assert_true(str_eq(got.u.status.members[2].role, "learner"));
	assert_int_equal(got.u.status.members[0].match_index, 10);
	proto_arena_free(&arena);
	proto_buf_free(&buf);
}

static void test_append_reply_round_trips_committed_and_pending(void **state)
{
	(void)state;
	for (int committed = 0; committed < 2; committed++) {
		struct proto_reply rep = {.op = PROTO_OP_APPEND};
		rep.u.append.committed = committed != 0;
		rep.u.append.index = committed ? 42 : 0;
		memset(rep.u.append.id, 0x11, PROTO_ID_BYTES);
		rep.u.append.request_id = S("abc");
		rep.u.append.duplicate = committed != 0;
		struct proto_buf buf = {0};
		assert_int_equal(proto_reply_encode(&rep, &buf), CARELOG_OK);
		struct proto_arena arena = {0};
		struct proto_reply got;
		assert_int_equal(proto_reply_decode(buf.data, buf.len, &arena, &got), CARELOG_OK);
		assert_int_equal(got.u.append.committed, committed != 0);
		assert_int_equal(got.u.append.index, rep.u.append.index);
		assert_memory_equal(got.u.append.id, rep.u.append.id, PROTO_ID_BYTES);
		assert_true(str_eq(got.u.append.request_id, "abc"));
		assert_int_equal(got.u.append.duplicate, committed != 0);
		proto_arena_free(&arena);
		proto_buf_free(&buf);
	}
}

static void test_read_reply_round_trips_a_full_page_of_entries(void **state)
{
	(void)state;
	struct proto_entry *entries = calloc(PROTO_READ_LIMIT_MAX, sizeof(*entries));
	assert_non_null(entries);
	for (uint32_t i = 0; i < PROTO_READ_LIMIT_MAX; i++) {
		entries[i] = sample_entry(i + 1);
	}
	entries[3].has_corrects = true;
	memset(entries[3].corrects, 0xcc, PROTO_ID_BYTES);
	entries[4].body_erased = true;
	entries[4].body = (struct proto_str){0};
	struct proto_reply rep = {.op = PROTO_OP_READ};
	rep.u.read.applied_index = 2000;
	rep.u.read.lag = 3;
	rep.u.read.stale = true;
	rep.u.read.withheld = 2;
	rep.u.read.more = true;
	rep.u.read.entries_count = PROTO_READ_LIMIT_MAX;
	rep.u.read.entries = entries;
	struct proto_buf buf = {0};
	assert_int_equal(proto_reply_encode(&rep, &buf), CARELOG_OK);
	struct proto_arena arena = {0};
	struct proto_reply got;
	assert_int_equal(proto_reply_decode(buf.data, buf.len, &arena, &got), CARELOG_OK);
	const struct proto_read_reply *r = &got.u.read;
	assert_int_equal(r->applied_index, 2000);
	assert_int_equal(r->lag, 3);
	assert_true(r->stale);
	assert_int_equal(r->withheld, 2);
	assert_true(r->more);
	assert_int_equal(r->entries_count, PROTO_READ_LIMIT_MAX);
	for (uint32_t i = 0; i < r->entries_count; i++) {
		const struct proto_entry *e = &r->entries[i];
		assert_int_equal(e->index, i + 1);
		assert_int_equal(e->time_ms, 1700000000000ull + i + 1);
		assert_true(str_eq(e->org, "st-olavs"));
		assert_true(str_eq(e->unit, "cardio"));
		assert_int_equal(e->node_id, 3);
		assert_int_equal(e->has_corrects, i == 3);
		assert_int_equal(e->body_erased, i == 4);
		assert_true(i == 4 ? e->body.len == 0 : str_eq(e->body, "hello"));
		assert_true(view_inside(e->author, &buf));
	}
	assert_memory_equal(r->entries[3].corrects, entries[3].corrects, PROTO_ID_BYTES);
	proto_arena_free(&arena);
	proto_buf_free(&buf);
	free(entries);
}

static void test_get_and_verify_replies_round_trip(void **state)
{
	(void)state;
	struct proto_reply rep = {.op = PROTO_OP_GET};
	rep.u.get = sample_entry(9);
	struct proto_buf buf = {0};
	assert_int_equal(proto_reply_encode(&rep, &buf), CARELOG_OK);
	struct proto_arena arena = {0};
	struct proto_reply got;
	assert_int_equal(proto_reply_decode(buf.data, buf.len, &arena, &got), CARELOG_OK);
	assert_int_equal(got.op, PROTO_OP_GET);
	assert_int_equal(got.u.get.index, 9);
	assert_true(str_eq(got.u.get.kind, "note"));
	proto_buf_free(&buf);

	struct proto_str problems[2] = {S("log/42: checksum mismatch"), S("chain/7: head differs")};
	struct proto_reply v = {.op = PROTO_OP_VERIFY};
	v.u.verify.ok = false;
	v.u.verify.entries_checked = 100;
	v.u.verify.values_checked = 400;
	v.u.verify.problems_count = 5;
	v.u.verify.problems_listed = 2;
	v.u.verify.problems = problems;
	memset(v.u.verify.chain_head, 0xee, PROTO_ID_BYTES);
	v.u.verify.applied_index = 100;
	assert_int_equal(proto_reply_encode(&v, &buf), CARELOG_OK);
	assert_int_equal(proto_reply_decode(buf.data, buf.len, &arena, &got), CARELOG_OK);
	assert_false(got.u.verify.ok);
	assert_int_equal(got.u.verify.entries_checked, 100);
	assert_int_equal(got.u.verify.values_checked, 400);
	assert_int_equal(got.u.verify.problems_count, 5);
	assert_int_equal(got.u.verify.problems_listed, 2);
	assert_true(str_eq(got.u.verify.problems[1], "chain/7: head differs"));
	assert_int_equal(got.u.verify.applied_index, 100);
	proto_arena_free(&arena);
	proto_buf_free(&buf);
}

static void test_error_reply_carries_code_and_message_without_op_fields(void **state)
{
	(void)state;
	struct proto_buf buf = {0};
	assert_int_equal(proto_reply_encode_error(PROTO_OP_READ, CARELOG_EDENIED,
						  "no care relation", &buf),
			 CARELOG_OK);
	struct proto_arena arena = {0};
	struct proto_reply got;
	assert_int_equal(proto_reply_decode(buf.data, buf.len, &arena, &got), CARELOG_OK);
	assert_int_equal(got.op, PROTO_OP_READ);
	assert_int_equal(got.err, CARELOG_EDENIED);
	assert_true(str_eq(got.msg, "no care relation"));
	assert_int_equal(got.u.read.entries_count, 0);
	proto_buf_free(&buf);
	/* op 0: the request could not even be decoded */
	assert_int_equal(proto_reply_encode_error(0, CARELOG_EPROTO, "bad", &buf), CARELOG_OK);
	assert_int_equal(proto_reply_decode(buf.data, buf.len, &arena, &got), CARELOG_OK);
	assert_int_equal(got.op, 0);
	assert_int_equal(got.err, CARELOG_EPROTO);
	proto_buf_free(&buf);
	assert_int_equal(proto_reply_encode_error(0, CARELOG_OK, "x", &buf), CARELOG_EINVAL);
	proto_arena_free(&arena);
}

static void test_long_error_message_is_cut_at_a_utf8_boundary(void **state)
{
	(void)state;
	char msg[PROTO_MSG_BYTES_MAX + 10];
	memset(msg, 'a', sizeof(msg));
	/* a two-byte character straddles the limit */
	msg[PROTO_MSG_BYTES_MAX - 1] = (char)0xc3;
	msg[PROTO_MSG_BYTES_MAX] = (char)0xb8;
	msg[sizeof(msg) - 1] = '\0';
	struct proto_buf buf = {0};
	assert_int_equal(proto_reply_encode_error(PROTO_OP_GET, CARELOG_ENOTFOUND, msg, &buf),
			 CARELOG_OK);
	struct proto_arena arena = {0};
	struct proto_reply got;
	assert_int_equal(proto_reply_decode(buf.data, buf.len, &arena, &got), CARELOG_OK);
	assert_int_equal(got.msg.len, PROTO_MSG_BYTES_MAX - 1);
	proto_buf_free(&buf);
	proto_arena_free(&arena);
}

/* ---------------------------------------------------------------- crafted messages */

/* Builds messages with msgpack-c's packer: an encoder independent of ours. */
struct mp {
	msgpack_sbuffer sb;
	msgpack_packer pk;
};

static void mp_init(struct mp *m)
{
	msgpack_sbuffer_init(&m->sb);
	msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
}

static void mp_str(struct mp *m, const char *s)
{
	size_t n = strlen(s);
	msgpack_pack_str(&m->pk, n);
	msgpack_pack_str_body(&m->pk, s, n);
}

static void mp_kv_str(struct mp *m, const char *k, const char *v)
{
	mp_str(m, k);
	mp_str(m, v);
}

static void mp_kv_u64(struct mp *m, const char *k, uint64_t v)
{
	mp_str(m, k);
	msgpack_pack_uint64(&m->pk, v);
}

static void mp_kv_bin(struct mp *m, const char *k, const void *v, size_t n)
{
	mp_str(m, k);
	msgpack_pack_bin(&m->pk, n);
	msgpack_pack_bin_body(&m->pk, v, n);
}

static int decode_req(struct mp *m)
{
	struct proto_request req;
	int rc = proto_request_decode((const uint8_t *)m->sb.data, m->sb.size, &req);
	msgpack_sbuffer_destroy(&m->sb);
	return rc;
}

static void test_request_from_another_encoder_decodes_in_any_key_order(void **state)
{
	(void)state;
	struct mp m;
	mp_init(&m);
	msgpack_pack_map(&m.pk, 6);
	mp_kv_bin(&m, "body", "x", 1);
	mp_kv_str(&m, "request_id", "r");
	mp_kv_str(&m, "kind", "note");
	mp_kv_str(&m, "patient", "p");
	mp_kv_str(&m, "op", "append");
	mp_str(&m, "v");
	msgpack_pack_int8(&m.pk, 1); /* a signed encoding of 1 is still 1 */
	struct proto_request req;
	assert_int_equal(proto_request_decode((const uint8_t *)m.sb.data, m.sb.size, &req),
			 CARELOG_OK);
	assert_int_equal(req.op, PROTO_OP_APPEND);
	assert_true(str_eq(req.u.append.kind, "note"));
	msgpack_sbuffer_destroy(&m.sb);
}

static void test_request_with_unknown_key_is_eproto_with_reason(void **state)
{
	(void)state;
	struct mp m;
	mp_init(&m);
	msgpack_pack_map(&m.pk, 3);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "status");
	mp_kv_str(&m, "colour", "blue");
	struct proto_request req;
	char why[128];
	assert_int_equal(proto_request_decode_reason((const uint8_t *)m.sb.data, m.sb.size, &req,
						     why, sizeof(why)),
			 CARELOG_EPROTO);
	assert_non_null(strstr(why, "colour"));
	msgpack_sbuffer_destroy(&m.sb);
}

static void test_request_key_of_another_op_is_eproto(void **state)
{
	(void)state;
	struct mp m;
	mp_init(&m);
	msgpack_pack_map(&m.pk, 3);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "status");
	mp_kv_str(&m, "patient", "p");
	assert_int_equal(decode_req(&m), CARELOG_EPROTO);
}

static void test_request_missing_required_key_is_eproto(void **state)
{
	(void)state;
	struct mp m;
	mp_init(&m);
	msgpack_pack_map(&m.pk, 4);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "append");
	mp_kv_str(&m, "patient", "p");
	mp_kv_str(&m, "kind", "note"); /* request_id and body missing */
	assert_int_equal(decode_req(&m), CARELOG_EPROTO);
	mp_init(&m);
	msgpack_pack_map(&m.pk, 1);
	mp_kv_u64(&m, "v", 1); /* no op */
	assert_int_equal(decode_req(&m), CARELOG_EPROTO);
	mp_init(&m);
	msgpack_pack_map(&m.pk, 1);
	mp_kv_str(&m, "op", "status"); /* no v */
	assert_int_equal(decode_req(&m), CARELOG_EPROTO);
}

static void test_other_version_is_eversion_even_with_unknown_keys(void **state)
{
	(void)state;
	struct mp m;
	mp_init(&m);
	msgpack_pack_map(&m.pk, 3);
	mp_kv_str(&m, "op", "teleport");
	mp_kv_str(&m, "new_field", "x");
	mp_kv_u64(&m, "v", 2);
	assert_int_equal(decode_req(&m), CARELOG_EVERSION);
	mp_init(&m);
	msgpack_pack_map(&m.pk, 4);
	mp_kv_u64(&m, "v", 2);
	mp_kv_str(&m, "op", "status");
	mp_kv_u64(&m, "err", 0);
	mp_kv_str(&m, "msg", "");
	struct proto_arena arena = {0};
	struct proto_reply rep;
	assert_int_equal(
		proto_reply_decode((const uint8_t *)m.sb.data, m.sb.size, &arena, &rep),
		CARELOG_EVERSION);
	msgpack_sbuffer_destroy(&m.sb);
	proto_arena_free(&arena);
}

static void test_wrong_types_are_eproto(void **state)
{
	(void)state;
	struct mp m;
	/* patient as binary instead of string */
	mp_init(&m);
	msgpack_pack_map(&m.pk, 3);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "read");
	mp_kv_bin(&m, "patient", "p", 1);
	assert_int_equal(decode_req(&m), CARELOG_EPROTO);
	/* limit negative */
	mp_init(&m);
	msgpack_pack_map(&m.pk, 4);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "read");
	mp_kv_str(&m, "patient", "p");
	mp_str(&m, "limit");
	msgpack_pack_int64(&m.pk, -5);
	assert_int_equal(decode_req(&m), CARELOG_EPROTO);
	/* id of 31 bytes */
	uint8_t id[31] = {0};
	mp_init(&m);
	msgpack_pack_map(&m.pk, 3);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "get");
	mp_kv_bin(&m, "id", id, sizeof(id));
	assert_int_equal(decode_req(&m), CARELOG_EPROTO);
	/* top level an array */
	mp_init(&m);
	msgpack_pack_array(&m.pk, 1);
	msgpack_pack_uint8(&m.pk, 1);
	assert_int_equal(decode_req(&m), CARELOG_EPROTO);
	/* integer key */
	mp_init(&m);
	msgpack_pack_map(&m.pk, 2);
	mp_kv_u64(&m, "v", 1);
	msgpack_pack_uint8(&m.pk, 3);
	mp_str(&m, "status");
	assert_int_equal(decode_req(&m), CARELOG_EPROTO);
	/* unknown consistency */
	mp_init(&m);
	msgpack_pack_map(&m.pk, 4);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "read");
	mp_kv_str(&m, "patient", "p");
	mp_kv_str(&m, "consistency", "eventual");
	assert_int_equal(decode_req(&m), CARELOG_EPROTO);
}

static void test_oversize_values_are_etoobig(void **state)
{
	(void)state;
	char patient[PROTO_PATIENT_BYTES_MAX + 2];
	memset(patient, 'p', sizeof(patient) - 1);
	patient[sizeof(patient) - 1] = '\0';
	struct mp m;
	mp_init(&m);
	msgpack_pack_map(&m.pk, 3);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "read");
	mp_kv_str(&m, "patient", patient);
	assert_int_equal(decode_req(&m), CARELOG_ETOOBIG);
	mp_init(&m);
	msgpack_pack_map(&m.pk, 4);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "read");
	mp_kv_str(&m, "patient", "p");
	mp_kv_u64(&m, "limit", PROTO_READ_LIMIT_MAX + 1);
	assert_int_equal(decode_req(&m), CARELOG_ETOOBIG);
	mp_init(&m);
	msgpack_pack_map(&m.pk, 3);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "status");
	mp_kv_u64(&m, "timeout_ms", (uint64_t)UINT32_MAX + 1);
	assert_int_equal(decode_req(&m), CARELOG_ETOOBIG);

	/* a read reply with more entries than a page may hold */
	mp_init(&m);
	msgpack_pack_map(&m.pk, 8);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "read");
	mp_kv_u64(&m, "err", 0);
	mp_kv_str(&m, "msg", "");
	mp_kv_u64(&m, "applied_index", 1);
	mp_kv_u64(&m, "lag", 0);
	mp_str(&m, "entries");
	msgpack_pack_array(&m.pk, PROTO_READ_LIMIT_MAX + 1);
	for (int i = 0; i < PROTO_READ_LIMIT_MAX + 1; i++) {
		msgpack_pack_nil(&m.pk);
	}
	mp_str(&m, "stale");
	msgpack_pack_false(&m.pk);
	struct proto_arena arena = {0};
	struct proto_reply rep;
	assert_int_equal(
		proto_reply_decode((const uint8_t *)m.sb.data, m.sb.size, &arena, &rep),
		CARELOG_ETOOBIG);
	msgpack_sbuffer_destroy(&m.sb);
	proto_arena_free(&arena);
}

static void test_duplicate_key_and_trailing_bytes_are_eproto(void **state)
{
	(void)state;
	struct mp m;
	mp_init(&m);
	msgpack_pack_map(&m.pk, 3);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "status");
	mp_kv_str(&m, "op", "verify");
	assert_int_equal(decode_req(&m), CARELOG_EPROTO);
	mp_init(&m);
	msgpack_pack_map(&m.pk, 2);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "status");
	msgpack_pack_nil(&m.pk);
	assert_int_equal(decode_req(&m), CARELOG_EPROTO);
}

static void test_reply_skips_unknown_keys_from_a_newer_node(void **state)
{
	(void)state;
	struct mp m;
	mp_init(&m);
	msgpack_pack_map(&m.pk, 8);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "append");
	mp_kv_u64(&m, "err", 0);
	mp_kv_str(&m, "msg", "");
	mp_str(&m, "future_nested");
	msgpack_pack_map(&m.pk, 1);
	mp_str(&m, "a");
	msgpack_pack_array(&m.pk, 2);
	msgpack_pack_double(&m.pk, 1.5);
	msgpack_pack_ext_with_body(&m.pk, "xyz", 3, 7);
	mp_str(&m, "committed");
	msgpack_pack_true(&m.pk);
	mp_kv_u64(&m, "index", 12);
	uint8_t id[PROTO_ID_BYTES] = {1};
	mp_kv_bin(&m, "id", id, sizeof(id));
	/* request_id missing on purpose first: must fail */
	struct proto_arena arena = {0};
	struct proto_reply rep;
	assert_int_equal(
		proto_reply_decode((const uint8_t *)m.sb.data, m.sb.size, &arena, &rep),
		CARELOG_EPROTO);
	msgpack_sbuffer_destroy(&m.sb);

	mp_init(&m);
	msgpack_pack_map(&m.pk, 9);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "append");
	mp_kv_u64(&m, "err", 0);
	mp_kv_str(&m, "msg", "");
	mp_str(&m, "future_nested");
	msgpack_pack_map(&m.pk, 1);
	mp_str(&m, "a");
	msgpack_pack_array(&m.pk, 2);
	msgpack_pack_double(&m.pk, 1.5);
	msgpack_pack_ext_with_body(&m.pk, "xyz", 3, 7);
	mp_str(&m, "committed");
	msgpack_pack_true(&m.pk);
	mp_kv_u64(&m, "index", 12);
	mp_kv_bin(&m, "id", id, sizeof(id));
	mp_kv_str(&m, "request_id", "r");
	assert_int_equal(
		proto_reply_decode((const uint8_t *)m.sb.data, m.sb.size, &arena, &rep),
		CARELOG_OK);
	assert_true(rep.u.append.committed);
	assert_int_equal(rep.u.append.index, 12);
	msgpack_sbuffer_destroy(&m.sb);
	proto_arena_free(&arena);
}

static void test_our_encoding_is_valid_msgpack_for_another_decoder(void **state)
{
	(void)state;
	struct proto_request req = full_append_request();
	struct proto_buf buf = {0};
	assert_int_equal(proto_request_encode(&req, &buf), CARELOG_OK);
	msgpack_unpacked u;
	msgpack_unpacked_init(&u);
	size_t off = 0;
	assert_int_equal(msgpack_unpack_next(&u, (const char *)buf.data, buf.len, &off),
			 MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(off, buf.len);
	assert_int_equal(u.data.type, MSGPACK_OBJECT_MAP);
	const msgpack_object_kv *kv = u.data.via.map.ptr;
	/* "v" first, then "op" */
	assert_int_equal(kv[0].key.via.str.size, 1);
	assert_memory_equal(kv[0].key.via.str.ptr, "v", 1);
	assert_int_equal(kv[0].val.via.u64, 1);
	assert_memory_equal(kv[1].val.via.str.ptr, "append", 6);
	msgpack_unpacked_destroy(&u);
	proto_buf_free(&buf);
}

/* ---------------------------------------------------------------- hostile input */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	/* xorshift64*: deterministic, so a failure reproduces */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static void decode_both_ways(const uint8_t *bytes, size_t len)
{
	struct proto_request req;
	char why[200];
	int rc = proto_request_decode_reason(bytes, len, &req, why, sizeof(why));
	assert_true(rc == CARELOG_OK || rc == CARELOG_EPROTO || rc == CARELOG_EVERSION ||
		    rc == CARELOG_ETOOBIG);
	struct proto_arena arena = {0};
	struct proto_reply rep;
	rc = proto_reply_decode(bytes, len, &arena, &rep);
	assert_true(rc == CARELOG_OK || rc == CARELOG_EPROTO || rc == CARELOG_EVERSION ||
		    rc == CARELOG_ETOOBIG);
	proto_arena_free(&arena);
}

static void sample_messages(struct proto_buf out[4])
{
	struct proto_request req = full_append_request();
	assert_int_equal(proto_request_encode(&req, &out[0]), CARELOG_OK);
	struct proto_entry entries[3] = {sample_entry(1), sample_entry(2), sample_entry(3)};
	struct proto_reply rep = {.op = PROTO_OP_READ};
	rep.u.read.entries_count = 3;
	rep.u.read.entries = entries;
	assert_int_equal(proto_reply_encode(&rep, &out[1]), CARELOG_OK);
	struct proto_member members[2] = {{.id = 1, .role = S("voter")},
					  {.id = 2, .role = S("learner")}};
	struct proto_reply st = {.op = PROTO_OP_STATUS};
	st.u.status.role = S("follower");
	st.u.status.members_count = 2;
	st.u.status.members = members;
	assert_int_equal(proto_reply_encode(&st, &out[2]), CARELOG_OK);
	struct proto_request read = {.op = PROTO_OP_READ, .timeout_ms = 5};
	read.u.read.patient = S("p");
	read.u.read.limit = 10;
	assert_int_equal(proto_request_encode(&read, &out[3]), CARELOG_OK);
}

static void test_every_truncation_is_rejected(void **state)
{
	(void)state;
	struct proto_buf msgs[4] = {{0}};
	sample_messages(msgs);
	for (size_t m = 0; m < 4; m++) {
		for (size_t len = 0; len < msgs[m].len; len++) {
			/* copy into an exact-size heap block so ASan sees any overread */
			uint8_t *copy = malloc(len + 1);
			assert_non_null(copy);
			memcpy(copy, msgs[m].data, len);
			struct proto_request req;
			struct proto_arena arena = {0};
			struct proto_reply rep;
			assert_int_not_equal(proto_request_decode(copy, len, &req), CARELOG_OK);
			assert_int_not_equal(proto_reply_decode(copy, len, &arena, &rep),
					     CARELOG_OK);
			proto_arena_free(&arena);
			free(copy);
		}
		proto_buf_free(&msgs[m]);
	}
}

enum { FUZZ_ROUNDS = 20000, FUZZ_RANDOM_BYTES_MAX = 300 };

static void test_random_mutations_never_crash(void **state)
{
	(void)state;
	struct proto_buf msgs[4] = {{0}};
	sample_messages(msgs);
	printf("fuzz seed 0x%llx\n", (unsigned long long)rng_state);
	for (int round = 0; round < FUZZ_ROUNDS; round++) {
		const struct proto_buf *src = &msgs[(size_t)round % 4];
		size_t len = src->len;
		uint8_t *copy = malloc(len + 16);
		assert_non_null(copy);
		memcpy(copy, src->data, len);
		unsigned edits = 1 + (unsigned)(rng() % 4);
		for (unsigned e = 0; e < edits; e++) {
			size_t at = (size_t)(rng() % len);
			switch (rng() % 4) {
			case 0: /* flip a byte */
				copy[at] = (uint8_t)rng();
				break;
			case 1: /* type bytes that change lengths */
				copy[at] = (uint8_t[]){0xdb, 0xc6, 0xdd, 0xdf, 0xc1, 0xff}[rng() % 6];
				break;
			case 2: /* cut */
				len = at;
				break;
			default: /* duplicate a slice later on */
				if (len + 8 <= src->len + 16 && at + 8 <= len) {
					memmove(copy + at + 8, copy + at, len - at);
					len += 8;
				}
				break;
			}
			if (len == 0) {
				break;
			}
		}
		uint8_t *exact = malloc(len + 1);
		assert_non_null(exact);
		memcpy(exact, copy, len);
		decode_both_ways(exact, len);
		free(exact);
		free(copy);
	}
	for (int round = 0; round < FUZZ_ROUNDS; round++) {
		size_t len = (size_t)(rng() % FUZZ_RANDOM_BYTES_MAX);
		uint8_t *bytes = malloc(len + 1);
		assert_non_null(bytes);
		for (size_t i = 0; i < len; i++) {
			bytes[i] = (uint8_t)rng();
		}
		if (len > 0 && round % 2 == 0) {
			bytes[0] = (uint8_t)(0x80 | (rng() & 0x0f)); /* start like a map */
		}
		decode_both_ways(bytes, len);
		free(bytes);
	}
	for (size_t m = 0; m < 4; m++) {
		proto_buf_free(&msgs[m]);
	}
}

static void test_deep_nesting_in_an_unknown_reply_key_is_eproto(void **state)
{
	(void)state;
	struct mp m;
	mp_init(&m);
	msgpack_pack_map(&m.pk, 3);
	mp_kv_u64(&m, "v", 1);
	mp_kv_u64(&m, "err", 5);
	mp_str(&m, "deep");
	for (int i = 0; i < 100; i++) {
		msgpack_pack_array(&m.pk, 1);
	}
	msgpack_pack_nil(&m.pk);
	struct proto_arena arena = {0};
	struct proto_reply rep;
	assert_int_equal(
		proto_reply_decode((const uint8_t *)m.sb.data, m.sb.size, &arena, &rep),
		CARELOG_EPROTO);
	msgpack_sbuffer_destroy(&m.sb);
}

static void test_huge_declared_lengths_are_refused_without_reading(void **state)
{
	(void)state;
	/* {"v":1, "op": str32 of 4 GiB - 1} in 12 bytes */
	const uint8_t msg[] = {0x82, 0xa1, 'v', 0x01, 0xa2, 'o', 'p', 0xdb, 0xff, 0xff, 0xff, 0xff};
	decode_both_ways(msg, sizeof(msg));
	struct proto_request req;
	assert_int_equal(proto_request_decode(msg, sizeof(msg), &req), CARELOG_EPROTO);
	const uint8_t arr[] = {0x83, 0xa1, 'v', 0x01, 0xa3, 'e', 'r', 'r', 0x05,
			       0xa1, 'x', 0xdd, 0xff, 0xff, 0xff, 0xff};
	struct proto_arena arena = {0};
	struct proto_reply rep;
	assert_int_equal(proto_reply_decode(arr, sizeof(arr), &arena, &rep), CARELOG_EPROTO);
}

static void test_arena_gives_aligned_zeroed_memory_across_chunks(void **state)
{
	(void)state;
	struct proto_arena arena = {0};
	for (size_t i = 1; i < 2000; i += 7) {
		uint8_t *p = proto_arena_alloc(&arena, i);
		assert_non_null(p);
		assert_int_equal((uintptr_t)p % _Alignof(max_align_t), 0);
		for (size_t j = 0; j < i; j++) {
			assert_int_equal(p[j], 0);
		}
		memset(p, 0xff, i);
	}
	assert_non_null(proto_arena_alloc(&arena, 100000)); /* bigger than a chunk */
	proto_arena_free(&arena);
	assert_null(arena.chunks);
	proto_arena_free(&arena);
	proto_arena_free(NULL);
	proto_buf_free(NULL);
	assert_string_equal(proto_op_name(PROTO_OP_VERIFY), "verify");
	assert_string_equal(proto_op_name(0), "?");
	assert_string_equal(proto_op_name(200), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_append_request_round_trips_every_field),
		cmocka_unit_test(test_minimal_append_request_leaves_optional_fields_empty),
		cmocka_unit_test(test_read_get_status_verify_requests_round_trip),
		cmocka_unit_test(test_request_encode_refuses_what_decode_would_refuse),
		cmocka_unit_test(test_status_reply_round_trips_members),
		cmocka_unit_test(test_append_reply_round_trips_committed_and_pending),
		cmocka_unit_test(test_read_reply_round_trips_a_full_page_of_entries),
		cmocka_unit_test(test_get_and_verify_replies_round_trip),
		cmocka_unit_test(test_error_reply_carries_code_and_message_without_op_fields),
		cmocka_unit_test(test_long_error_message_is_cut_at_a_utf8_boundary),
		cmocka_unit_test(test_request_from_another_encoder_decodes_in_any_key_order),
		cmocka_unit_test(test_request_with_unknown_key_is_eproto_with_reason),
		cmocka_unit_test(test_request_key_of_another_op_is_eproto),
		cmocka_unit_test(test_request_missing_required_key_is_eproto),
		cmocka_unit_test(test_other_version_is_eversion_even_with_unknown_keys),
		cmocka_unit_test(test_wrong_types_are_eproto),
		cmocka_unit_test(test_oversize_values_are_etoobig),
		cmocka_unit_test(test_duplicate_key_and_trailing_bytes_are_eproto),
		cmocka_unit_test(test_reply_skips_unknown_keys_from_a_newer_node),
		cmocka_unit_test(test_our_encoding_is_valid_msgpack_for_another_decoder),
		cmocka_unit_test(test_every_truncation_is_rejected),
		cmocka_unit_test(test_random_mutations_never_crash),
		cmocka_unit_test(test_deep_nesting_in_an_unknown_reply_key_is_eproto),
		cmocka_unit_test(test_huge_declared_lengths_are_refused_without_reading),
		cmocka_unit_test(test_arena_gives_aligned_zeroed_memory_across_chunks),
	};
	return cmocka_run_group_tests_name("proto", tests, NULL, NULL);
}
