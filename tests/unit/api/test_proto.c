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
#define LEN(a) (sizeof(a) / sizeof((a)[0]))

static bool str_eq(struct proto_str s, const char *lit)
{
	return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

static bool view_inside(struct proto_str s, const struct proto_buf *b)
{
	const uint8_t *p = (const uint8_t *)s.ptr;
	return s.len == 0 || (p >= b->data && p + s.len <= b->data + b->len);
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

static struct proto_request full_append_request(void)
{
	struct proto_request req = {.op = PROTO_OP_APPEND, .timeout_ms = 2500};
	struct proto_append_req *a = &req.u.append;
	req.actor.id = S("hpr-1234567");
	req.actor.role = S("nurse");
	req.actor.unit = S("hjemmesykepleie");
	req.actor.purpose = S("follow-up");
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
	assert_true(str_eq(got.actor.id, "hpr-1234567"));
	assert_true(str_eq(got.actor.role, "nurse"));
	assert_true(str_eq(got.actor.unit, "hjemmesykepleie"));
	assert_true(str_eq(got.actor.purpose, "follow-up"));
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
	assert_int_equal(got.actor.id.len, 0);
	assert_int_equal(got.actor.purpose.len, 0);
	assert_int_equal(got.u.append.body.len, 0);
	assert_false(got.u.append.has_corrects);
	assert_int_equal(got.u.append.clinical_time_ms, 0);
	proto_buf_free(&buf);
}

static void test_read_get_status_verify_requests_round_trip(void **state)
{
	(void)state;
	struct proto_request read = {.op = PROTO_OP_READ, .timeout_ms = 100};
	read.actor.id = S("a");
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

static struct proto_request add_learner_request(void)
{
	struct proto_request req = {.op = PROTO_OP_MEMBER, .timeout_ms = 4000};
	struct proto_member_req *m = &req.u.member;
	m->action = PROTO_MEMBER_ADD_LEARNER;
	m->id = 4;
	m->org = S("helse-nord");
	m->address = S("tcp://10.0.0.4:7401");
	m->has_public_key = true;
	for (int i = 0; i < PROTO_PUBLIC_KEY_BYTES; i++) {
		m->public_key[i] = (uint8_t)(0xa0 + i);
	}
	return req;
}

static void test_member_and_transfer_requests_round_trip(void **state)
{
	(void)state;
	struct proto_request req = add_learner_request();
	struct proto_buf buf = {0};
	struct proto_request got;
	assert_int_equal(proto_request_encode(&req, &buf), CARELOG_OK);
	assert_int_equal(proto_request_decode(buf.data, buf.len, &got), CARELOG_OK);
	assert_int_equal(got.op, PROTO_OP_MEMBER);
	assert_string_equal(proto_op_name(got.op), "member");
	assert_int_equal(got.timeout_ms, 4000);
	assert_int_equal(got.u.member.action, PROTO_MEMBER_ADD_LEARNER);
	assert_int_equal(got.u.member.id, 4);
	assert_true(str_eq(got.u.member.org, "helse-nord"));
	assert_true(str_eq(got.u.member.address, "tcp://10.0.0.4:7401"));
	assert_true(view_inside(got.u.member.address, &buf));
	assert_true(got.u.member.has_public_key);
	assert_memory_equal(got.u.member.public_key, req.u.member.public_key,
			    PROTO_PUBLIC_KEY_BYTES);
	proto_buf_free(&buf);

	const uint8_t actions[] = {PROTO_MEMBER_PROMOTE, PROTO_MEMBER_REMOVE};
	for (size_t i = 0; i < LEN(actions); i++) {
		struct proto_request r = {.op = PROTO_OP_MEMBER};
		r.u.member.action = actions[i];
		r.u.member.id = UINT64_MAX;
		assert_int_equal(proto_request_encode(&r, &buf), CARELOG_OK);
		assert_int_equal(proto_request_decode(buf.data, buf.len, &got), CARELOG_OK);
		assert_int_equal(got.u.member.action, actions[i]);
		assert_int_equal(got.u.member.id, UINT64_MAX);
		assert_int_equal(got.u.member.org.len, 0);
		assert_int_equal(got.u.member.address.len, 0);
		assert_false(got.u.member.has_public_key);
		proto_buf_free(&buf);
	}

	struct proto_request t = {.op = PROTO_OP_TRANSFER, .timeout_ms = 7};
	t.u.transfer.to = 3;
	assert_int_equal(proto_request_encode(&t, &buf), CARELOG_OK);
	assert_int_equal(proto_request_decode(buf.data, buf.len, &got), CARELOG_OK);
	assert_int_equal(got.op, PROTO_OP_TRANSFER);
	assert_string_equal(proto_op_name(got.op), "transfer");
	assert_int_equal(got.u.transfer.to, 3);
	proto_buf_free(&buf);
}

static void test_member_and_transfer_encode_refuses_what_decode_would_refuse(void **state)
{
	(void)state;
	struct proto_buf buf = {0};
	struct proto_request req = add_learner_request();
	req.u.member.action = 0;
	assert_int_equal(proto_request_encode(&req, &buf), CARELOG_EINVAL);
	req.u.member.action = 4;
	assert_int_equal(proto_request_encode(&req, &buf), CARELOG_EINVAL);
	req = add_learner_request();
	req.u.member.id = 0;
	assert_int_equal(proto_request_encode(&req, &buf), CARELOG_EINVAL);
	req = add_learner_request();
	req.u.member.has_public_key = false;
	assert_int_equal(proto_request_encode(&req, &buf), CARELOG_EINVAL);
	req = add_learner_request();
	req.u.member.org = S("");
	assert_int_equal(proto_request_encode(&req, &buf), CARELOG_EINVAL);
	req = add_learner_request();
	req.u.member.address = S("");
	assert_int_equal(proto_request_encode(&req, &buf), CARELOG_EINVAL);
	char big[PROTO_ADDRESS_BYTES_MAX + 1];
	memset(big, 'a', sizeof(big));
	req = add_learner_request();
	req.u.member.address = (struct proto_str){big, sizeof(big)};
	assert_int_equal(proto_request_encode(&req, &buf), CARELOG_ETOOBIG);
	req.u.member.address = (struct proto_str){big, PROTO_ADDRESS_BYTES_MAX};
	assert_int_equal(proto_request_encode(&req, &buf), CARELOG_OK);
	proto_buf_free(&buf);
	req = add_learner_request();
	req.u.member.org = (struct proto_str){big, PROTO_ORG_BYTES_MAX + 1};
	assert_int_equal(proto_request_encode(&req, &buf), CARELOG_ETOOBIG);
	/* promote and remove carry only the id */
	req = add_learner_request();
	req.u.member.action = PROTO_MEMBER_PROMOTE;
	assert_int_equal(proto_request_encode(&req, &buf), CARELOG_EINVAL);
	struct proto_request t = {.op = PROTO_OP_TRANSFER};
	assert_int_equal(proto_request_encode(&t, &buf), CARELOG_EINVAL);
	assert_null(buf.data);
}

/* A crafted member request: action, id as given (id_bin: as 32 bytes of binary), and the
 * add-learner fields selected by `with` (bit 0 org, 1 address, 2 public_key, 3 a 31-byte key). */
static int decode_member_req(const char *action, uint64_t id, bool id_bin, unsigned with,
			     char *why, size_t why_len)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	uint32_t pairs = 4u + ((with & 1u) != 0) + ((with & 2u) != 0) + ((with & 12u) != 0);
	msgpack_pack_map(&pk, pairs);
	const struct {
		const char *k, *v;
	} strs[] = {{"op", "member"}, {"action", action}, {"org", "o"}, {"address", "tcp://h:1"}};
	msgpack_pack_str(&pk, 1);
	msgpack_pack_str_body(&pk, "v", 1);
	msgpack_pack_uint8(&pk, 1);
	for (size_t i = 0; i < LEN(strs); i++) {
		if ((i == 2 && !(with & 1)) || (i == 3 && !(with & 2))) {
			continue;
		}
		msgpack_pack_str(&pk, strlen(strs[i].k));
		msgpack_pack_str_body(&pk, strs[i].k, strlen(strs[i].k));
		msgpack_pack_str(&pk, strlen(strs[i].v));
		msgpack_pack_str_body(&pk, strs[i].v, strlen(strs[i].v));
	}
	msgpack_pack_str(&pk, 2);
	msgpack_pack_str_body(&pk, "id", 2);
	uint8_t bytes[32] = {7};
	if (id_bin) {
		msgpack_pack_bin(&pk, 32);
		msgpack_pack_bin_body(&pk, bytes, 32);
	} else {
		msgpack_pack_uint64(&pk, id);
	}
	if (with & 12) {
		size_t n = (with & 8) ? 31 : 32;
		msgpack_pack_str(&pk, 10);
		msgpack_pack_str_body(&pk, "public_key", 10);
		msgpack_pack_bin(&pk, n);
		msgpack_pack_bin_body(&pk, bytes, n);
	}
	struct proto_request req;
	int rc = proto_request_decode_reason((const uint8_t *)sb.data, sb.size, &req, why, why_len);
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

static void test_member_request_decode_is_strict(void **state)
{
	(void)state;
	char why[160];
	assert_int_equal(decode_member_req("add-learner", 4, false, 7, why, sizeof(why)),
			 CARELOG_OK);
	assert_int_equal(decode_member_req("promote", 4, false, 0, why, sizeof(why)), CARELOG_OK);
	assert_int_equal(decode_member_req("remove", 4, false, 0, why, sizeof(why)), CARELOG_OK);
	/* add-learner without each of its fields */
	for (unsigned with = 0; with < 7; with++) {
		assert_int_equal(decode_member_req("add-learner", 4, false, with, why, sizeof(why)),
				 CARELOG_EPROTO);
		assert_non_null(strstr(why, "missing"));
	}
	/* promote/remove with add-learner fields */
	assert_int_equal(decode_member_req("promote", 4, false, 1, why, sizeof(why)),
			 CARELOG_EPROTO);
	assert_non_null(strstr(why, "\"org\" not allowed in a promote"));
	assert_int_equal(decode_member_req("remove", 4, false, 4, why, sizeof(why)),
			 CARELOG_EPROTO);
	assert_non_null(strstr(why, "public_key"));
	/* unknown action, node id 0, id as an entry id, short key */
	assert_int_equal(decode_member_req("demote", 4, false, 0, why, sizeof(why)),
			 CARELOG_EPROTO);
	assert_non_null(strstr(why, "demote"));
	assert_int_equal(decode_member_req("promote", 0, false, 0, why, sizeof(why)),
			 CARELOG_EPROTO);
	assert_int_equal(decode_member_req("promote", 0, true, 0, why, sizeof(why)),
			 CARELOG_EPROTO);
	assert_non_null(strstr(why, "node id"));
	assert_int_equal(decode_member_req("add-learner", 4, false, 11, why, sizeof(why)),
			 CARELOG_EPROTO);
	assert_non_null(strstr(why, "31 bytes"));

	/* a get with a numeric id is refused the same way */
	struct mp m;
	mp_init(&m);
	msgpack_pack_map(&m.pk, 3);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "get");
	mp_kv_u64(&m, "id", 5);
	assert_int_equal(decode_req(&m), CARELOG_EPROTO);
	/* transfer: "to" required, above 0, no other keys */
	mp_init(&m);
	msgpack_pack_map(&m.pk, 2);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "transfer");
	assert_int_equal(decode_req(&m), CARELOG_EPROTO);
	mp_init(&m);
	msgpack_pack_map(&m.pk, 3);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "transfer");
	mp_kv_u64(&m, "to", 0);
	assert_int_equal(decode_req(&m), CARELOG_EPROTO);
	mp_init(&m);
	msgpack_pack_map(&m.pk, 4);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "transfer");
	mp_kv_u64(&m, "to", 2);
	mp_kv_u64(&m, "id", 2);
	assert_int_equal(decode_req(&m), CARELOG_EPROTO);
	mp_init(&m);
	msgpack_pack_map(&m.pk, 3);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "transfer");
	mp_kv_str(&m, "to", "2");
	assert_int_equal(decode_req(&m), CARELOG_EPROTO);
	/* an over-long address is ETOOBIG */
	char big[PROTO_ADDRESS_BYTES_MAX + 2];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	uint8_t key[32] = {0};
	mp_init(&m);
	msgpack_pack_map(&m.pk, 7);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "member");
	mp_kv_str(&m, "action", "add-learner");
	mp_kv_u64(&m, "id", 9);
	mp_kv_str(&m, "org", "o");
	mp_kv_str(&m, "address", big);
	mp_kv_bin(&m, "public_key", key, sizeof(key));
	assert_int_equal(decode_req(&m), CARELOG_ETOOBIG);
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
		{.id = 1, .role = S("voter"), .has_match = true, .match_index = 10},
		{.id = 2, .role = S("voter"), .has_match = true, .match_index = 9},
		{.id = 7, .role = S("learner"), .has_match = true, .match_index = 0},
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

/* Every new status field set, one member without progress. */
static struct proto_reply full_status_reply(struct proto_member members[2])
{
	members[0] = (struct proto_member){.id = 1, .role = S("voter"), .org = S("helse-vest"),
					   .address = S("tcp://10.0.0.1:7401"), .has_match = true,
					   .match_index = 250000, .lag = 0};
	members[1] = (struct proto_member){.id = 4, .role = S("learner"), .org = S("helse-nord"),
					   .address = S("tcp://10.0.0.4:7401"), .has_match = false,
					   .lag = 250000};
	struct proto_reply rep = {.op = PROTO_OP_STATUS};
	struct proto_status_reply *s = &rep.u.status;
	s->node_id = 1;
	s->role = S("leader");
	s->term = 3;
	s->leader_id = 1;
	s->commit_index = 250000;
	s->applied_index = 249999;
	s->last_index = 250000;
	s->progress_age_ms = 0;
	s->verified_signatures = 123456;
	s->syncs = 789;
	s->transport = (struct proto_transport_stats){.sent = 10, .received = 11,
						      .dropped_auth = 12, .dropped_replay = 13,
						      .dropped_unknown = 14, .handshakes = 15};
	s->has_audit = true;
	s->audit = (struct proto_audit_stats){.queued_rows = 21, .next_seq = 522, .shipped_seq = 500,
					      .syncs = 23, .write_failures = 24,
					      .ship_failures = 25};
	memset(s->chain_head, 0x77, PROTO_ID_BYTES);
	s->members_count = 2;
	s->members = members;
	return rep;
}

static void test_status_reply_round_trips_replication_fields(void **state)
{
	(void)state;
	struct proto_member members[2];
	struct proto_reply rep = full_status_reply(members);
	rep.u.status.progress_age_ms = 850;
	struct proto_buf buf = {0};
	assert_int_equal(proto_reply_encode(&rep, &buf), CARELOG_OK);
	struct proto_arena arena = {0};
	struct proto_reply got;
	assert_int_equal(proto_reply_decode(buf.data, buf.len, &arena, &got), CARELOG_OK);
	const struct proto_status_reply *s = &got.u.status;
	assert_int_equal(s->last_index, 250000);
	assert_int_equal(s->progress_age_ms, 850);
	assert_int_equal(s->verified_signatures, 123456);
	assert_int_equal(s->syncs, 789);
	assert_int_equal(s->transport.sent, 10);
	assert_int_equal(s->transport.received, 11);
	assert_int_equal(s->transport.dropped_auth, 12);
	assert_int_equal(s->transport.dropped_replay, 13);
	assert_int_equal(s->transport.dropped_unknown, 14);
	assert_int_equal(s->transport.handshakes, 15);
	assert_true(s->has_audit);
	assert_int_equal(s->audit.queued_rows, 21);
	assert_int_equal(s->audit.next_seq, 522);
	assert_int_equal(s->audit.shipped_seq, 500);
	assert_int_equal(s->audit.syncs, 23);
	assert_int_equal(s->audit.write_failures, 24);
	assert_int_equal(s->audit.ship_failures, 25);
	assert_int_equal(s->members_count, 2);
	assert_true(str_eq(s->members[0].org, "helse-vest"));
	assert_true(str_eq(s->members[0].address, "tcp://10.0.0.1:7401"));
	assert_true(s->members[0].has_match);
	assert_int_equal(s->members[0].match_index, 250000);
	assert_int_equal(s->members[0].lag, 0);
	assert_true(str_eq(s->members[1].role, "learner"));
	assert_false(s->members[1].has_match); /* nil on the wire */
	assert_int_equal(s->members[1].match_index, 0);
	assert_int_equal(s->members[1].lag, 250000);
	proto_arena_free(&arena);

	/* the independent decoder sees nil for the member without progress */
	msgpack_unpacked u;
	msgpack_unpacked_init(&u);
	size_t off = 0;
	assert_int_equal(msgpack_unpack_next(&u, (const char *)buf.data, buf.len, &off),
			 MSGPACK_UNPACK_SUCCESS);
	bool saw_nil = false;
	for (uint32_t i = 0; i < u.data.via.map.size; i++) {
		const msgpack_object_kv *kv = &u.data.via.map.ptr[i];
		if (kv->key.via.str.size == 7 && memcmp(kv->key.via.str.ptr, "members", 7) == 0) {
			const msgpack_object *m1 = &kv->val.via.array.ptr[1];
			for (uint32_t j = 0; j < m1->via.map.size; j++) {
				const msgpack_object_kv *f = &m1->via.map.ptr[j];
				if (f->key.via.str.size == 11 &&
				    memcmp(f->key.via.str.ptr, "match_index", 11) == 0) {
					saw_nil = f->val.type == MSGPACK_OBJECT_NIL;
				}
			}
		}
	}
	assert_true(saw_nil);
	msgpack_unpacked_destroy(&u);
	proto_buf_free(&buf);

	/* limits on the new member strings */
	char big[PROTO_ADDRESS_BYTES_MAX + 1];
	memset(big, 'a', sizeof(big));
	rep = full_status_reply(members);
	members[1].address = (struct proto_str){big, sizeof(big)};
	assert_int_equal(proto_reply_encode(&rep, &buf), CARELOG_ETOOBIG);
	members[1].address = S("a");
	members[1].org = (struct proto_str){big, PROTO_ORG_BYTES_MAX + 1};
	assert_int_equal(proto_reply_encode(&rep, &buf), CARELOG_ETOOBIG);
	assert_null(buf.data);
}

static void test_status_reply_from_an_older_node_decodes_with_defaults(void **state)
{
	(void)state;
	uint8_t head[PROTO_ID_BYTES] = {0};
	struct mp m;
	mp_init(&m);
	msgpack_pack_map(&m.pk, 12);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "status");
	mp_kv_u64(&m, "err", 0);
	mp_kv_str(&m, "msg", "");
	mp_kv_u64(&m, "node_id", 1);
	mp_kv_str(&m, "role", "leader");
	mp_kv_u64(&m, "term", 1);
	mp_kv_u64(&m, "leader_id", 1);
	mp_kv_u64(&m, "commit_index", 5);
	mp_kv_u64(&m, "applied_index", 5);
	mp_kv_bin(&m, "chain_head", head, sizeof(head));
	mp_str(&m, "members");
	msgpack_pack_array(&m.pk, 1);
	msgpack_pack_map(&m.pk, 3);
	mp_kv_u64(&m, "id", 1);
	mp_kv_str(&m, "role", "voter");
	mp_kv_u64(&m, "match_index", 5);
	struct proto_arena arena = {0};
	struct proto_reply rep;
	memset(&rep, 0xff, sizeof(rep));
	assert_int_equal(proto_reply_decode((const uint8_t *)m.sb.data, m.sb.size, &arena, &rep),
			 CARELOG_OK);
	const struct proto_status_reply *s = &rep.u.status;
	assert_int_equal(s->last_index, 0);
	assert_int_equal(s->progress_age_ms, 0);
	assert_int_equal(s->verified_signatures, 0);
	assert_int_equal(s->syncs, 0);
	assert_int_equal(s->transport.sent, 0);
	assert_int_equal(s->transport.handshakes, 0);
	assert_false(s->has_audit);
	assert_int_equal(s->audit.queued_rows, 0);
	assert_int_equal(s->audit.next_seq, 0);
	assert_int_equal(s->audit.ship_failures, 0);
	assert_int_equal(s->members[0].org.len, 0);
	assert_int_equal(s->members[0].address.len, 0);
	assert_true(s->members[0].has_match);
	assert_int_equal(s->members[0].match_index, 5);
	assert_int_equal(s->members[0].lag, 0);
	msgpack_sbuffer_destroy(&m.sb);
	proto_arena_free(&arena);
}

/* A complete status reply whose counter map `map_key` ("transport", "audit") `fill` writes
 * (map_pairs keys). */
static int decode_status_with_counters(const char *map_key, void (*fill)(struct mp *m),
				       uint32_t map_pairs, struct proto_reply *rep,
				       struct proto_arena *arena)
{
	uint8_t head[PROTO_ID_BYTES] = {0};
	struct mp m;
	mp_init(&m);
	msgpack_pack_map(&m.pk, 13);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "status");
	mp_kv_u64(&m, "err", 0);
	mp_kv_str(&m, "msg", "");
	mp_kv_u64(&m, "node_id", 2);
	mp_kv_str(&m, "role", "follower");
	mp_kv_u64(&m, "term", 1);
	mp_kv_u64(&m, "leader_id", 1);
	mp_kv_u64(&m, "commit_index", 5);
	mp_kv_u64(&m, "applied_index", 5);
	mp_kv_bin(&m, "chain_head", head, sizeof(head));
	mp_str(&m, "members");
	msgpack_pack_array(&m.pk, 0);
	mp_str(&m, map_key);
	msgpack_pack_map(&m.pk, map_pairs);
	fill(&m);
	int rc = proto_reply_decode((const uint8_t *)m.sb.data, m.sb.size, arena, rep);
	msgpack_sbuffer_destroy(&m.sb);
	return rc;
}

static void fill_transport_future(struct mp *m)
{
	mp_kv_u64(m, "sent", 3);
	mp_str(m, "dropped_cosmic_rays");
	msgpack_pack_array(&m->pk, 2);
	msgpack_pack_nil(&m->pk);
	msgpack_pack_true(&m->pk);
	mp_kv_u64(m, "handshakes", 2);
}

static void fill_transport_duplicate(struct mp *m)
{
	mp_kv_u64(m, "sent", 3);
	mp_kv_u64(m, "sent", 4);
}

static void fill_transport_wrong_type(struct mp *m)
{
	mp_kv_str(m, "received", "3");
}

static void fill_transport_integer_key(struct mp *m)
{
	msgpack_pack_uint8(&m->pk, 1);
	msgpack_pack_uint8(&m->pk, 1);
}

static void test_transport_counters_skip_new_ones_but_refuse_bad_ones(void **state)
{
	(void)state;
	struct proto_arena arena = {0};
	struct proto_reply rep;
	assert_int_equal(
	    decode_status_with_counters("transport", fill_transport_future, 3, &rep, &arena),
	    CARELOG_OK);
	assert_int_equal(rep.u.status.transport.sent, 3);
	assert_int_equal(rep.u.status.transport.handshakes, 2);
	assert_int_equal(rep.u.status.transport.received, 0);
	assert_false(rep.u.status.has_audit);
	assert_int_equal(
	    decode_status_with_counters("transport", fill_transport_duplicate, 2, &rep, &arena),
	    CARELOG_EPROTO);
	assert_int_equal(
	    decode_status_with_counters("transport", fill_transport_wrong_type, 1, &rep, &arena),
	    CARELOG_EPROTO);
	assert_int_equal(
	    decode_status_with_counters("transport", fill_transport_integer_key, 1, &rep, &arena),
	    CARELOG_EPROTO);
	proto_arena_free(&arena);
}

static void fill_audit_future(struct mp *m)
{
	mp_kv_u64(m, "queued_rows", 7);
	mp_str(m, "oldest_row_age_ms"); /* a newer node's counter */
	msgpack_pack_map(&m->pk, 1);
	mp_kv_str(m, "unit", "ms");
	mp_kv_u64(m, "shipped_seq", UINT64_MAX);
}

static void fill_audit_empty(struct mp *m)
{
	(void)m;
}

static void fill_audit_duplicate(struct mp *m)
{
	mp_kv_u64(m, "next_seq", 3);
	mp_kv_u64(m, "next_seq", 4);
}

static void fill_audit_negative(struct mp *m)
{
	mp_str(m, "ship_failures");
	msgpack_pack_int64(&m->pk, -1);
}

static void fill_audit_too_many_keys(struct mp *m)
{
	for (int i = 0; i <= PROTO_MAP_KEYS_MAX; i++) {
		char name[16];
		snprintf(name, sizeof(name), "c%d", i);
		mp_kv_u64(m, name, 1);
	}
}

static void test_audit_counters_skip_new_ones_but_refuse_bad_ones(void **state)
{
	(void)state;
	struct proto_arena arena = {0};
	struct proto_reply rep;
	memset(&rep, 0xff, sizeof(rep));
	assert_int_equal(decode_status_with_counters("audit", fill_audit_future, 3, &rep, &arena),
			 CARELOG_OK);
	const struct proto_status_reply *s = &rep.u.status;
	assert_true(s->has_audit);
	assert_int_equal(s->audit.queued_rows, 7);
	assert_true(s->audit.shipped_seq == UINT64_MAX);
	assert_int_equal(s->audit.next_seq, 0); /* absent: 0 */
	assert_int_equal(s->audit.syncs, 0);
	assert_int_equal(s->audit.write_failures, 0);
	assert_int_equal(s->audit.ship_failures, 0);
	assert_int_equal(s->transport.sent, 0); /* no transport map: 0 */
	/* an empty map: a node with an audit queue and nothing counted yet */
	assert_int_equal(decode_status_with_counters("audit", fill_audit_empty, 0, &rep, &arena),
			 CARELOG_OK);
	assert_true(rep.u.status.has_audit);
	assert_int_equal(rep.u.status.audit.queued_rows, 0);
	assert_int_equal(decode_status_with_counters("audit", fill_audit_duplicate, 2, &rep, &arena),
			 CARELOG_EPROTO);
	assert_int_equal(decode_status_with_counters("audit", fill_audit_negative, 1, &rep, &arena),
			 CARELOG_EPROTO);
	assert_int_equal(decode_status_with_counters("audit", fill_transport_integer_key, 1, &rep,
						     &arena),
			 CARELOG_EPROTO);
	assert_int_equal(decode_status_with_counters("audit", fill_audit_too_many_keys,
						     PROTO_MAP_KEYS_MAX + 1, &rep, &arena),
			 CARELOG_EPROTO);
	proto_arena_free(&arena);
}

/* "audit" is a map, once; a reply without it has no such key on the wire. */
static void test_status_audit_map_is_optional_and_strict(void **state)
{
	(void)state;
	uint8_t head[PROTO_ID_BYTES] = {0};
	struct proto_arena arena = {0};
	struct proto_reply rep;
	for (int bad = 0; bad < 2; bad++) {
		struct mp m;
		mp_init(&m);
		msgpack_pack_map(&m.pk, bad == 0 ? 13 : 14);
		mp_kv_u64(&m, "v", 1);
		mp_kv_str(&m, "op", "status");
		mp_kv_u64(&m, "err", 0);
		mp_kv_str(&m, "msg", "");
		mp_kv_u64(&m, "node_id", 2);
		mp_kv_str(&m, "role", "follower");
		mp_kv_u64(&m, "term", 1);
		mp_kv_u64(&m, "leader_id", 1);
		mp_kv_u64(&m, "commit_index", 5);
		mp_kv_u64(&m, "applied_index", 5);
		mp_kv_bin(&m, "chain_head", head, sizeof(head));
		mp_str(&m, "members");
		msgpack_pack_array(&m.pk, 0);
		if (bad == 0) {
			mp_kv_u64(&m, "audit", 3); /* a uint, not a map */
		} else {
			for (int i = 0; i < 2; i++) {
				mp_str(&m, "audit");
				msgpack_pack_map(&m.pk, 1);
				mp_kv_u64(&m, "queued_rows", 1);
			}
		}
		assert_int_equal(
		    proto_reply_decode((const uint8_t *)m.sb.data, m.sb.size, &arena, &rep),
		    CARELOG_EPROTO);
		msgpack_sbuffer_destroy(&m.sb);
	}
	/* Encoded without has_audit: 17 keys (a map16 header) and no "audit" key; decoded:
	 * has_audit false. */
	struct proto_member members[2];
	rep = full_status_reply(members);
	rep.u.status.has_audit = false;
	struct proto_buf buf = {0};
	assert_int_equal(proto_reply_encode(&rep, &buf), CARELOG_OK);
	assert_memory_equal(buf.data, "\xde\x00\x11", 3);
	assert_null(memmem(buf.data, buf.len, "audit", 5));
	struct proto_reply got;
	assert_int_equal(proto_reply_decode(buf.data, buf.len, &arena, &got), CARELOG_OK);
	assert_false(got.u.status.has_audit);
	assert_int_equal(got.u.status.audit.queued_rows, 0);
	proto_buf_free(&buf);
	/* With it: 18 keys; every counter survives at its largest value. */
	rep.u.status.has_audit = true;
	rep.u.status.audit = (struct proto_audit_stats){
	    .queued_rows = UINT64_MAX, .next_seq = UINT64_MAX, .shipped_seq = UINT64_MAX,
	    .syncs = UINT64_MAX, .write_failures = UINT64_MAX, .ship_failures = UINT64_MAX};
	assert_int_equal(proto_reply_encode(&rep, &buf), CARELOG_OK);
	assert_memory_equal(buf.data, "\xde\x00\x12", 3);
	assert_int_equal(proto_reply_decode(buf.data, buf.len, &arena, &got), CARELOG_OK);
	assert_true(got.u.status.has_audit);
	assert_memory_equal(&got.u.status.audit, &rep.u.status.audit,
			    sizeof(struct proto_audit_stats));
	proto_buf_free(&buf);
	proto_arena_free(&arena);
}

static void test_member_and_transfer_replies_round_trip(void **state)
{
	(void)state;
	struct proto_reply rep = {.op = PROTO_OP_MEMBER, .u.member.index = 250001};
	struct proto_buf buf = {0};
	struct proto_arena arena = {0};
	struct proto_reply got;
	assert_int_equal(proto_reply_encode(&rep, &buf), CARELOG_OK);
	assert_int_equal(proto_reply_decode(buf.data, buf.len, &arena, &got), CARELOG_OK);
	assert_int_equal(got.op, PROTO_OP_MEMBER);
	assert_int_equal(got.u.member.index, 250001);
	proto_buf_free(&buf);
	rep = (struct proto_reply){.op = PROTO_OP_TRANSFER, .u.transfer.leader_id = 3};
	assert_int_equal(proto_reply_encode(&rep, &buf), CARELOG_OK);
	assert_int_equal(proto_reply_decode(buf.data, buf.len, &arena, &got), CARELOG_OK);
	assert_int_equal(got.op, PROTO_OP_TRANSFER);
	assert_int_equal(got.u.transfer.leader_id, 3);
	proto_buf_free(&buf);
	/* errors carry no op fields; success without its field is EPROTO */
	assert_int_equal(proto_reply_encode_error(PROTO_OP_MEMBER, CARELOG_ENOTLEADER,
						  "leader is 2", &buf),
			 CARELOG_OK);
	assert_int_equal(proto_reply_decode(buf.data, buf.len, &arena, &got), CARELOG_OK);
	assert_int_equal(got.err, CARELOG_ENOTLEADER);
	assert_true(str_eq(got.msg, "leader is 2"));
	proto_buf_free(&buf);
	struct mp m;
	mp_init(&m);
	msgpack_pack_map(&m.pk, 4);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "transfer");
	mp_kv_u64(&m, "err", 0);
	mp_kv_str(&m, "msg", "");
	assert_int_equal(proto_reply_decode((const uint8_t *)m.sb.data, m.sb.size, &arena, &got),
			 CARELOG_EPROTO);
	msgpack_sbuffer_destroy(&m.sb);
	proto_arena_free(&arena);
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

/* ---------------------------------------------------------------- clinical access */

/* A valid request of every op, with the fields it requires. */
static struct proto_request minimal_request(uint8_t op)
{
	struct proto_request req = {.op = op};
	switch (op) {
	case PROTO_OP_APPEND:
		req.u.append.patient = S("p1");
		req.u.append.kind = S("note");
		req.u.append.request_id = S("r1");
		break;
	case PROTO_OP_READ:
		req.u.read.patient = S("p1");
		break;
	case PROTO_OP_GET:
		memset(req.u.get.id, 7, PROTO_ID_BYTES);
		break;
	case PROTO_OP_MEMBER:
		req.u.member.action = PROTO_MEMBER_PROMOTE;
		req.u.member.id = 4;
		break;
	case PROTO_OP_TRANSFER:
		req.u.transfer.to = 2;
		break;
	case PROTO_OP_POLICY:
		req.u.policy.kind = S("btg-grant");
		req.u.policy.request_id = S("r2");
		break;
	case PROTO_OP_ACCESS_LOG:
		req.u.access_log.patient = S("p1");
		break;
	default: /* status, verify, btg-list: no further fields */
		break;
	}
	return req;
}

static void test_every_op_has_a_name_and_carries_the_actor_map(void **state)
{
	(void)state;
	const char *names[PROTO_OP_COUNT_] = {
	    [PROTO_OP_STATUS] = "status",
	    [PROTO_OP_APPEND] = "append",
	    [PROTO_OP_READ] = "read",
	    [PROTO_OP_GET] = "get",
	    [PROTO_OP_VERIFY] = "verify",
	    [PROTO_OP_MEMBER] = "member",
	    [PROTO_OP_TRANSFER] = "transfer",
	    [PROTO_OP_POLICY] = "policy",
	    [PROTO_OP_ACCESS_LOG] = "access-log",
	    [PROTO_OP_BTG_LIST] = "btg-list",
	};
	char purpose[PROTO_PURPOSE_BYTES_MAX + 1];
	memset(purpose, 'w', PROTO_PURPOSE_BYTES_MAX);
	purpose[PROTO_PURPOSE_BYTES_MAX] = '\0';
	for (uint8_t op = 1; op < PROTO_OP_COUNT_; op++) {
		assert_string_equal(proto_op_name(op), names[op]);
		struct proto_request req = minimal_request(op);
		req.actor.id = S("hpr-42");
		req.actor.role = S("physician");
		req.actor.unit = S("akuttmottak");
		req.actor.purpose = (struct proto_str){purpose, PROTO_PURPOSE_BYTES_MAX};
		struct proto_buf buf = {0};
		assert_int_equal(proto_request_encode(&req, &buf), CARELOG_OK);
		struct proto_request got;
		assert_int_equal(proto_request_decode(buf.data, buf.len, &got), CARELOG_OK);
		assert_int_equal(got.op, op);
		assert_true(str_eq(got.actor.id, "hpr-42"));
		assert_true(str_eq(got.actor.role, "physician"));
		assert_true(str_eq(got.actor.unit, "akuttmottak"));
		assert_int_equal(got.actor.purpose.len, PROTO_PURPOSE_BYTES_MAX);
		assert_true(view_inside(got.actor.purpose, &buf));
		proto_buf_free(&buf);
		/* one field alone: the others stay empty */
		req = minimal_request(op);
		req.actor.role = S("operator");
		assert_int_equal(proto_request_encode(&req, &buf), CARELOG_OK);
		assert_int_equal(proto_request_decode(buf.data, buf.len, &got), CARELOG_OK);
		assert_int_equal(got.actor.id.len, 0);
		assert_true(str_eq(got.actor.role, "operator"));
		assert_int_equal(got.actor.unit.len, 0);
		proto_buf_free(&buf);
	}
	assert_string_equal(proto_op_name(PROTO_OP_COUNT_), "?");
	struct proto_request bad = {.op = PROTO_OP_COUNT_};
	struct proto_buf buf = {0};
	assert_int_equal(proto_request_encode(&bad, &buf), CARELOG_EINVAL);
}

static void test_actor_map_is_strict_and_bounded(void **state)
{
	(void)state;
	struct mp m;
	/* the version-1 wire before clinical access: "actor" as a string is refused */
	mp_init(&m);
	msgpack_pack_map(&m.pk, 3);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "status");
	mp_kv_str(&m, "actor", "hpr-1");
	assert_int_equal(decode_req(&m), CARELOG_EPROTO);
	/* "role" is no longer a request key of its own */
	mp_init(&m);
	msgpack_pack_map(&m.pk, 4);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "read");
	mp_kv_str(&m, "patient", "p");
	mp_kv_str(&m, "role", "nurse");
	assert_int_equal(decode_req(&m), CARELOG_EPROTO);
	/* an unknown key and a known key that does not belong in the actor map */
	const char *bad_keys[] = {"org", "colour"};
	for (size_t i = 0; i < LEN(bad_keys); i++) {
		mp_init(&m);
		msgpack_pack_map(&m.pk, 3);
		mp_kv_u64(&m, "v", 1);
		mp_kv_str(&m, "op", "status");
		mp_str(&m, "actor");
		msgpack_pack_map(&m.pk, 2);
		mp_kv_str(&m, "id", "a");
		mp_kv_str(&m, bad_keys[i], "x");
		struct proto_request req;
		char why[160];
		assert_int_equal(proto_request_decode_reason((const uint8_t *)m.sb.data, m.sb.size,
		                                             &req, why, sizeof(why)),
		                 CARELOG_EPROTO);
		assert_non_null(strstr(why, bad_keys[i]));
		assert_non_null(strstr(why, "actor"));
		msgpack_sbuffer_destroy(&m.sb);
	}
	/* a key twice inside the map */
	mp_init(&m);
	msgpack_pack_map(&m.pk, 3);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "status");
	mp_str(&m, "actor");
	msgpack_pack_map(&m.pk, 2);
	mp_kv_str(&m, "id", "a");
	mp_kv_str(&m, "id", "b");
	assert_int_equal(decode_req(&m), CARELOG_EPROTO);
	/* an over-long purpose, decoding and encoding */
	char purpose[PROTO_PURPOSE_BYTES_MAX + 2];
	memset(purpose, 'w', sizeof(purpose) - 1);
	purpose[sizeof(purpose) - 1] = '\0';
	mp_init(&m);
	msgpack_pack_map(&m.pk, 3);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "status");
	mp_str(&m, "actor");
	msgpack_pack_map(&m.pk, 1);
	mp_kv_str(&m, "purpose", purpose);
	assert_int_equal(decode_req(&m), CARELOG_ETOOBIG);
	struct proto_request req = {.op = PROTO_OP_STATUS};
	req.actor.purpose = (struct proto_str){purpose, PROTO_PURPOSE_BYTES_MAX + 1};
	struct proto_buf buf = {0};
	assert_int_equal(proto_request_encode(&req, &buf), CARELOG_ETOOBIG);
	req.actor.purpose = (struct proto_str){0};
	req.actor.unit = (struct proto_str){NULL, 3};
	assert_int_equal(proto_request_encode(&req, &buf), CARELOG_EINVAL);
	/* an empty actor map is fine (all defaults) */
	mp_init(&m);
	msgpack_pack_map(&m.pk, 3);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "verify");
	mp_str(&m, "actor");
	msgpack_pack_map(&m.pk, 0);
	assert_int_equal(decode_req(&m), CARELOG_OK);
}

static struct proto_request full_policy_request(void)
{
	struct proto_request req = {.op = PROTO_OP_POLICY, .timeout_ms = 3000};
	req.actor.id = S("adm-1");
	req.actor.role = S("admin");
	struct proto_policy_req *p = &req.u.policy;
	p->kind = S("care-relation");
	p->patient = S("01017012345");
	p->request_id = S("pol-1");
	p->org = S("st-olavs");
	p->unit = S("cardio");
	p->actor = S("crew-7");
	p->target_org = S("kommune-x");
	p->word = S("category");
	p->level = S("full");
	p->category = S("psychiatry");
	p->reason_code = S("emergency");
	p->text = S("unconscious, no relatives reachable");
	p->birth_date = S("2013-05-01");
	p->categories_count = PROTO_CATEGORIES_MAX;
	const struct proto_str cats[PROTO_CATEGORIES_MAX] = {S("psychiatry"),    S("substance-use"),
	                                                     S("sexual-health"), S("child-welfare"),
	                                                     S("genetic"),       S("x")};
	memcpy(p->categories, cats, sizeof(cats));
	p->has_ref = true;
	memset(p->ref, 0x5a, PROTO_ID_BYTES);
	p->from_ms = 1764000000000ull;
	p->to_ms = 1764086400000ull;
	p->hours = 720;
	p->implicit_window_days = 3650;
	p->btg_hours_max = 120;
	p->ambulance_hours_max = 24;
	return req;
}

static void test_policy_request_round_trips_every_field(void **state)
{
	(void)state;
	struct proto_request req = full_policy_request();
	struct proto_buf buf = {0};
	assert_int_equal(proto_request_encode(&req, &buf), CARELOG_OK);
	struct proto_request got;
	assert_int_equal(proto_request_decode(buf.data, buf.len, &got), CARELOG_OK);
	assert_int_equal(got.op, PROTO_OP_POLICY);
	assert_int_equal(got.timeout_ms, 3000);
	assert_true(str_eq(got.actor.role, "admin"));
	const struct proto_policy_req *p = &got.u.policy;
	const struct {
		struct proto_str got;
		const char *want;
	} strs[] = {
	    {p->kind, "care-relation"},
	    {p->patient, "01017012345"},
	    {p->request_id, "pol-1"},
	    {p->org, "st-olavs"},
	    {p->unit, "cardio"},
	    {p->actor, "crew-7"},
	    {p->target_org, "kommune-x"},
	    {p->word, "category"},
	    {p->level, "full"},
	    {p->category, "psychiatry"},
	    {p->reason_code, "emergency"},
	    {p->text, "unconscious, no relatives reachable"},
	    {p->birth_date, "2013-05-01"},
	};
	for (size_t i = 0; i < LEN(strs); i++) {
		assert_true(str_eq(strs[i].got, strs[i].want));
		assert_true(view_inside(strs[i].got, &buf));
	}
	assert_int_equal(p->categories_count, PROTO_CATEGORIES_MAX);
	assert_true(str_eq(p->categories[1], "substance-use"));
	assert_true(str_eq(p->categories[5], "x"));
	assert_true(p->has_ref);
	assert_memory_equal(p->ref, req.u.policy.ref, PROTO_ID_BYTES);
	assert_int_equal(p->from_ms, 1764000000000ull);
	assert_int_equal(p->to_ms, 1764086400000ull);
	assert_int_equal(p->hours, 720);
	assert_int_equal(p->implicit_window_days, 3650);
	assert_int_equal(p->btg_hours_max, 120);
	assert_int_equal(p->ambulance_hours_max, 24);
	proto_buf_free(&buf);

	/* the minimal one: a kind that names its entry, no patient */
	req = minimal_request(PROTO_OP_POLICY);
	req.u.policy.kind = S("btg-review");
	req.u.policy.has_ref = true;
	memset(req.u.policy.ref, 1, PROTO_ID_BYTES);
	assert_int_equal(proto_request_encode(&req, &buf), CARELOG_OK);
	assert_int_equal(proto_request_decode(buf.data, buf.len, &got), CARELOG_OK);
	assert_int_equal(got.u.policy.patient.len, 0);
	assert_int_equal(got.u.policy.categories_count, 0);
	assert_int_equal(got.u.policy.hours, 0);
	assert_true(got.u.policy.has_ref);
	proto_buf_free(&buf);
}

static void test_policy_request_is_strict_and_bounded(void **state)
{
	(void)state;
	struct proto_buf buf = {0};
	/* the encoder refuses what the decoder would */
	struct proto_request req = full_policy_request();
	req.u.policy.categories_count = PROTO_CATEGORIES_MAX + 1;
	assert_int_equal(proto_request_encode(&req, &buf), CARELOG_ETOOBIG);
	req = full_policy_request();
	char text[PROTO_TEXT_BYTES_MAX + 1];
	memset(text, 't', sizeof(text));
	req.u.policy.text = (struct proto_str){text, sizeof(text)};
	assert_int_equal(proto_request_encode(&req, &buf), CARELOG_ETOOBIG);
	req = full_policy_request();
	req.u.policy.kind = (struct proto_str){0};
	assert_int_equal(proto_request_encode(&req, &buf), CARELOG_EINVAL);
	req = full_policy_request();
	req.u.policy.request_id = (struct proto_str){0};
	assert_int_equal(proto_request_encode(&req, &buf), CARELOG_EINVAL);
	assert_null(buf.data);

	struct mp m;
	/* no "policy" map at all */
	mp_init(&m);
	msgpack_pack_map(&m.pk, 2);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "policy");
	assert_int_equal(decode_req(&m), CARELOG_EPROTO);
	/* append's keys do not belong at the top of a policy request */
	mp_init(&m);
	msgpack_pack_map(&m.pk, 4);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "policy");
	mp_str(&m, "policy");
	msgpack_pack_map(&m.pk, 2);
	mp_kv_str(&m, "kind", "patient");
	mp_kv_str(&m, "request_id", "r");
	mp_kv_bin(&m, "body", "x", 1);
	assert_int_equal(decode_req(&m), CARELOG_EPROTO);
	/* nor inside the policy map; nor unknown keys */
	const char *bad_keys[] = {"body", "colour"};
	for (size_t i = 0; i < LEN(bad_keys); i++) {
		mp_init(&m);
		msgpack_pack_map(&m.pk, 3);
		mp_kv_u64(&m, "v", 1);
		mp_kv_str(&m, "op", "policy");
		mp_str(&m, "policy");
		msgpack_pack_map(&m.pk, 3);
		mp_kv_str(&m, "kind", "patient");
		mp_kv_str(&m, "request_id", "r");
		mp_kv_str(&m, bad_keys[i], "x");
		assert_int_equal(decode_req(&m), CARELOG_EPROTO);
	}
	/* kind missing, request_id empty */
	for (int which = 0; which < 2; which++) {
		mp_init(&m);
		msgpack_pack_map(&m.pk, 3);
		mp_kv_u64(&m, "v", 1);
		mp_kv_str(&m, "op", "policy");
		mp_str(&m, "policy");
		msgpack_pack_map(&m.pk, which == 0 ? 1 : 2);
		mp_kv_str(&m, "request_id", which == 0 ? "r" : "");
		if (which == 1) {
			mp_kv_str(&m, "kind", "patient");
		}
		assert_int_equal(decode_req(&m), CARELOG_EPROTO);
	}
	/* seven categories, a 31-byte ref, an hour count beyond u32, a string number */
	mp_init(&m);
	msgpack_pack_map(&m.pk, 3);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "policy");
	mp_str(&m, "policy");
	msgpack_pack_map(&m.pk, 3);
	mp_kv_str(&m, "kind", "care-relation");
	mp_kv_str(&m, "request_id", "r");
	mp_str(&m, "categories");
	msgpack_pack_array(&m.pk, PROTO_CATEGORIES_MAX + 1);
	for (int i = 0; i < PROTO_CATEGORIES_MAX + 1; i++) {
		mp_str(&m, "genetic");
	}
	assert_int_equal(decode_req(&m), CARELOG_ETOOBIG);
	uint8_t ref[PROTO_ID_BYTES - 1] = {0};
	mp_init(&m);
	msgpack_pack_map(&m.pk, 3);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "policy");
	mp_str(&m, "policy");
	msgpack_pack_map(&m.pk, 3);
	mp_kv_str(&m, "kind", "block-lift");
	mp_kv_str(&m, "request_id", "r");
	mp_kv_bin(&m, "ref", ref, sizeof(ref));
	assert_int_equal(decode_req(&m), CARELOG_EPROTO);
	mp_init(&m);
	msgpack_pack_map(&m.pk, 3);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "policy");
	mp_str(&m, "policy");
	msgpack_pack_map(&m.pk, 3);
	mp_kv_str(&m, "kind", "btg-grant");
	mp_kv_str(&m, "request_id", "r");
	mp_kv_u64(&m, "hours", (uint64_t)UINT32_MAX + 1);
	assert_int_equal(decode_req(&m), CARELOG_ETOOBIG);
	mp_init(&m);
	msgpack_pack_map(&m.pk, 3);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "policy");
	mp_str(&m, "policy");
	msgpack_pack_map(&m.pk, 3);
	mp_kv_str(&m, "kind", "btg-grant");
	mp_kv_str(&m, "request_id", "r");
	mp_kv_str(&m, "hours", "24");
	assert_int_equal(decode_req(&m), CARELOG_EPROTO);
}

static void test_read_history_access_log_and_btg_list_requests_round_trip(void **state)
{
	(void)state;
	struct proto_buf buf = {0};
	struct proto_request got;
	struct proto_request read = minimal_request(PROTO_OP_READ);
	read.u.read.history = true;
	assert_int_equal(proto_request_encode(&read, &buf), CARELOG_OK);
	assert_int_equal(proto_request_decode(buf.data, buf.len, &got), CARELOG_OK);
	assert_true(got.u.read.history);
	proto_buf_free(&buf);
	read.u.read.history = false;
	assert_int_equal(proto_request_encode(&read, &buf), CARELOG_OK);
	assert_int_equal(proto_request_decode(buf.data, buf.len, &got), CARELOG_OK);
	assert_false(got.u.read.history);
	proto_buf_free(&buf);

	struct proto_request log = {.op = PROTO_OP_ACCESS_LOG, .timeout_ms = 50};
	log.u.access_log.actor_id = S("hpr-9");
	log.u.access_log.actor_org = S("kommune-x");
	log.u.access_log.limit = PROTO_ACCESS_LOG_ROWS_MAX;
	assert_int_equal(proto_request_encode(&log, &buf), CARELOG_OK);
	assert_int_equal(proto_request_decode(buf.data, buf.len, &got), CARELOG_OK);
	assert_int_equal(got.op, PROTO_OP_ACCESS_LOG);
	assert_int_equal(got.u.access_log.patient.len, 0);
	assert_true(str_eq(got.u.access_log.actor_id, "hpr-9"));
	assert_true(str_eq(got.u.access_log.actor_org, "kommune-x"));
	assert_int_equal(got.u.access_log.limit, PROTO_ACCESS_LOG_ROWS_MAX);
	proto_buf_free(&buf);
	log = minimal_request(PROTO_OP_ACCESS_LOG);
	assert_int_equal(proto_request_encode(&log, &buf), CARELOG_OK);
	assert_int_equal(proto_request_decode(buf.data, buf.len, &got), CARELOG_OK);
	assert_true(str_eq(got.u.access_log.patient, "p1"));
	assert_int_equal(got.u.access_log.limit, 0);
	proto_buf_free(&buf);

	struct proto_request btg = {.op = PROTO_OP_BTG_LIST};
	btg.u.btg_list.patient = S("p7");
	btg.u.btg_list.limit = 3;
	assert_int_equal(proto_request_encode(&btg, &buf), CARELOG_OK);
	assert_int_equal(proto_request_decode(buf.data, buf.len, &got), CARELOG_OK);
	assert_int_equal(got.op, PROTO_OP_BTG_LIST);
	assert_true(str_eq(got.u.btg_list.patient, "p7"));
	assert_int_equal(got.u.btg_list.limit, 3);
	proto_buf_free(&buf);
}

static void test_access_log_and_btg_list_requests_are_strict_and_bounded(void **state)
{
	(void)state;
	struct proto_buf buf = {0};
	/* exactly one of patient / actor_id; an org only with an actor; limits */
	struct proto_request log = {.op = PROTO_OP_ACCESS_LOG};
	assert_int_equal(proto_request_encode(&log, &buf), CARELOG_EINVAL);
	log.u.access_log.patient = S("p");
	log.u.access_log.actor_id = S("a");
	assert_int_equal(proto_request_encode(&log, &buf), CARELOG_EINVAL);
	log.u.access_log.actor_id = (struct proto_str){0};
	log.u.access_log.actor_org = S("o");
	assert_int_equal(proto_request_encode(&log, &buf), CARELOG_EINVAL);
	log.u.access_log.actor_org = (struct proto_str){0};
	log.u.access_log.limit = PROTO_ACCESS_LOG_ROWS_MAX + 1;
	assert_int_equal(proto_request_encode(&log, &buf), CARELOG_ETOOBIG);
	struct proto_request btg = {.op = PROTO_OP_BTG_LIST};
	btg.u.btg_list.limit = PROTO_BTG_GRANTS_MAX + 1;
	assert_int_equal(proto_request_encode(&btg, &buf), CARELOG_ETOOBIG);
	assert_null(buf.data);

	struct mp m;
	const char *shapes[][2] = {
	    {NULL, NULL},             /* neither */
	    {"patient", "actor_id"},  /* both */
	    {"patient", "actor_org"}, /* an org without an actor */
	};
	for (size_t i = 0; i < LEN(shapes); i++) {
		mp_init(&m);
		uint32_t n = 2u + (shapes[i][0] != NULL) + (shapes[i][1] != NULL);
		msgpack_pack_map(&m.pk, n);
		mp_kv_u64(&m, "v", 1);
		mp_kv_str(&m, "op", "access-log");
		for (int k = 0; k < 2; k++) {
			if (shapes[i][k] != NULL) {
				mp_kv_str(&m, shapes[i][k], "x");
			}
		}
		struct proto_request req;
		char why[200];
		assert_int_equal(proto_request_decode_reason((const uint8_t *)m.sb.data, m.sb.size,
		                                             &req, why, sizeof(why)),
		                 CARELOG_EPROTO);
		assert_true(strstr(why, "actor_id") != NULL || strstr(why, "actor_org") != NULL);
		msgpack_sbuffer_destroy(&m.sb);
	}
	/* the limit is judged by the op, whatever the key order */
	const char *ops[] = {"access-log", "btg-list", "read"};
	for (size_t i = 0; i < LEN(ops); i++) {
		mp_init(&m);
		msgpack_pack_map(&m.pk, 4);
		mp_kv_u64(&m, "limit", 1001);
		mp_kv_u64(&m, "v", 1);
		mp_kv_str(&m, "patient", "p");
		mp_kv_str(&m, "op", ops[i]);
		struct proto_request req;
		char why[200];
		assert_int_equal(proto_request_decode_reason((const uint8_t *)m.sb.data, m.sb.size,
		                                             &req, why, sizeof(why)),
		                 CARELOG_ETOOBIG);
		assert_string_equal(why, "key \"limit\": 1001 > 1000");
		msgpack_sbuffer_destroy(&m.sb);
	}
	/* history is a bool and a read key only */
	mp_init(&m);
	msgpack_pack_map(&m.pk, 4);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "read");
	mp_kv_str(&m, "patient", "p");
	mp_kv_u64(&m, "history", 1);
	assert_int_equal(decode_req(&m), CARELOG_EPROTO);
	mp_init(&m);
	msgpack_pack_map(&m.pk, 3);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "btg-list");
	mp_str(&m, "history");
	msgpack_pack_true(&m.pk);
	assert_int_equal(decode_req(&m), CARELOG_EPROTO);
	/* btg-list refuses access-log's keys */
	mp_init(&m);
	msgpack_pack_map(&m.pk, 3);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "btg-list");
	mp_kv_str(&m, "actor_id", "a");
	assert_int_equal(decode_req(&m), CARELOG_EPROTO);
}

static void test_read_reply_carries_basis_reasons_supersession_and_erasure(void **state)
{
	(void)state;
	struct proto_entry entries[3] = {sample_entry(1), sample_entry(2), sample_entry(3)};
	entries[0].has_superseded_by = true;
	memset(entries[0].superseded_by, 0x22, PROTO_ID_BYTES);
	entries[1].body_erased = true;
	entries[1].body = (struct proto_str){0};
	entries[1].erased_index = 77;
	entries[1].erased_time_ms = 1764000000123ull;
	entries[1].erased_author = S("adm-1");
	entries[1].erased_org = S("st-olavs");
	entries[1].erased_basis = S("hpl 43, decision 2026/17");
	struct proto_withheld_reason reasons[PROTO_WITHHELD_REASONS_MAX];
	for (uint32_t i = 0; i < PROTO_WITHHELD_REASONS_MAX; i++) {
		reasons[i] = (struct proto_withheld_reason){S("blocked by the patient"), i + 1};
	}
	reasons[1].reason = S("shielded psychiatry entry of another unit");
	struct proto_reply rep = {.op = PROTO_OP_READ};
	rep.u.read.applied_index = 9;
	rep.u.read.withheld = 3;
	rep.u.read.entries_count = 3;
	rep.u.read.entries = entries;
	rep.u.read.basis = S("relation");
	rep.u.read.withheld_reasons_count = PROTO_WITHHELD_REASONS_MAX;
	rep.u.read.withheld_reasons = reasons;
	struct proto_buf buf = {0};
	assert_int_equal(proto_reply_encode(&rep, &buf), CARELOG_OK);
	struct proto_arena arena = {0};
	struct proto_reply got;
	assert_int_equal(proto_reply_decode(buf.data, buf.len, &arena, &got), CARELOG_OK);
	const struct proto_read_reply *r = &got.u.read;
	assert_true(str_eq(r->basis, "relation"));
	assert_int_equal(r->withheld_reasons_count, PROTO_WITHHELD_REASONS_MAX);
	assert_true(str_eq(r->withheld_reasons[0].reason, "blocked by the patient"));
	assert_int_equal(r->withheld_reasons[0].count, 1);
	assert_true(
	    str_eq(r->withheld_reasons[1].reason, "shielded psychiatry entry of another unit"));
	assert_int_equal(r->withheld_reasons[15].count, 16);
	assert_true(r->entries[0].has_superseded_by);
	assert_memory_equal(r->entries[0].superseded_by, entries[0].superseded_by, PROTO_ID_BYTES);
	assert_false(r->entries[0].body_erased);
	assert_int_equal(r->entries[0].erased_index, 0);
	const struct proto_entry *e = &r->entries[1];
	assert_true(e->body_erased);
	assert_false(e->has_superseded_by);
	assert_int_equal(e->body.len, 0);
	assert_int_equal(e->erased_index, 77);
	assert_int_equal(e->erased_time_ms, 1764000000123ull);
	assert_true(str_eq(e->erased_author, "adm-1"));
	assert_true(str_eq(e->erased_org, "st-olavs"));
	assert_true(str_eq(e->erased_basis, "hpl 43, decision 2026/17"));
	assert_false(r->entries[2].has_superseded_by);
	proto_buf_free(&buf);

	/* get carries the same entry fields */
	rep = (struct proto_reply){.op = PROTO_OP_GET, .u.get = entries[1]};
	assert_int_equal(proto_reply_encode(&rep, &buf), CARELOG_OK);
	assert_int_equal(proto_reply_decode(buf.data, buf.len, &arena, &got), CARELOG_OK);
	assert_true(got.u.get.body_erased);
	assert_true(str_eq(got.u.get.erased_basis, "hpl 43, decision 2026/17"));
	proto_buf_free(&buf);

	/* the encoder refuses too many reasons and over-long texts */
	rep = (struct proto_reply){.op = PROTO_OP_READ};
	rep.u.read.withheld_reasons_count = PROTO_WITHHELD_REASONS_MAX + 1;
	rep.u.read.withheld_reasons = reasons;
	assert_int_equal(proto_reply_encode(&rep, &buf), CARELOG_ETOOBIG);
	rep.u.read.withheld_reasons_count = 1;
	rep.u.read.withheld_reasons = NULL;
	assert_int_equal(proto_reply_encode(&rep, &buf), CARELOG_EINVAL);
	char basis[PROTO_TEXT_BYTES_MAX + 1];
	memset(basis, 'b', sizeof(basis));
	struct proto_entry erased = sample_entry(1);
	erased.body_erased = true;
	erased.erased_basis = (struct proto_str){basis, sizeof(basis)};
	rep = (struct proto_reply){.op = PROTO_OP_GET, .u.get = erased};
	assert_int_equal(proto_reply_encode(&rep, &buf), CARELOG_ETOOBIG);
	assert_null(buf.data);

	/* a read reply from a node before clinical access: no basis, no reasons */
	struct mp m;
	mp_init(&m);
	msgpack_pack_map(&m.pk, 9);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "read");
	mp_kv_u64(&m, "err", 0);
	mp_kv_str(&m, "msg", "");
	mp_kv_u64(&m, "applied_index", 4);
	mp_kv_u64(&m, "lag", 0);
	mp_str(&m, "stale");
	msgpack_pack_false(&m.pk);
	mp_kv_u64(&m, "withheld", 0);
	mp_str(&m, "entries");
	msgpack_pack_array(&m.pk, 0);
	assert_int_equal(proto_reply_decode((const uint8_t *)m.sb.data, m.sb.size, &arena, &got),
	                 CARELOG_OK);
	assert_int_equal(got.u.read.basis.len, 0);
	assert_int_equal(got.u.read.withheld_reasons_count, 0);
	assert_null(got.u.read.withheld_reasons);
	msgpack_sbuffer_destroy(&m.sb);
	/* a reason without its count is refused */
	mp_init(&m);
	msgpack_pack_map(&m.pk, 10);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "read");
	mp_kv_u64(&m, "err", 0);
	mp_kv_str(&m, "msg", "");
	mp_kv_u64(&m, "applied_index", 4);
	mp_kv_u64(&m, "lag", 0);
	mp_str(&m, "stale");
	msgpack_pack_false(&m.pk);
	mp_kv_u64(&m, "withheld", 1);
	mp_str(&m, "entries");
	msgpack_pack_array(&m.pk, 0);
	mp_str(&m, "withheld_reasons");
	msgpack_pack_array(&m.pk, 1);
	msgpack_pack_map(&m.pk, 1);
	mp_kv_str(&m, "reason", "blocked by the patient");
	assert_int_equal(proto_reply_decode((const uint8_t *)m.sb.data, m.sb.size, &arena, &got),
	                 CARELOG_EPROTO);
	msgpack_sbuffer_destroy(&m.sb);
	proto_arena_free(&arena);
}

static struct proto_access_row sample_row(uint64_t seq)
{
	struct proto_access_row w = {0};
	w.node_id = 2;
	w.seq = seq;
	w.time_ms = 1764000000000ull + seq;
	w.actor = S("hpr-9");
	w.role = S("nurse");
	w.org = S("kommune-x");
	w.unit = S("hjemmesykepleie");
	w.patient = S("01017012345");
	w.action = S("read");
	w.allowed = seq % 2 == 0;
	w.basis = seq % 2 == 0 ? S("btg") : S("none");
	w.count = seq % 2 == 0 ? 12 : 0;
	w.withheld = 2;
	w.has_entry = seq % 3 == 0;
	memset(w.entry, (int)(seq & 0xff), PROTO_ID_BYTES);
	w.purpose = S("home visit");
	w.outcome = seq % 2 == 0 ? S("OK") : S("EDENIED");
	w.shipped = seq > 10;
	return w;
}

static void test_access_log_reply_round_trips_a_full_page(void **state)
{
	(void)state;
	struct proto_access_row *rows = calloc(PROTO_ACCESS_LOG_ROWS_MAX, sizeof(*rows));
	assert_non_null(rows);
	for (uint32_t i = 0; i < PROTO_ACCESS_LOG_ROWS_MAX; i++) {
		rows[i] = sample_row(i + 1);
	}
	struct proto_reply rep = {.op = PROTO_OP_ACCESS_LOG};
	rep.u.access_log.applied_index = 555;
	rep.u.access_log.rows_count = PROTO_ACCESS_LOG_ROWS_MAX;
	rep.u.access_log.rows = rows;
	struct proto_buf buf = {0};
	assert_int_equal(proto_reply_encode(&rep, &buf), CARELOG_OK);
	struct proto_arena arena = {0};
	struct proto_reply got;
	assert_int_equal(proto_reply_decode(buf.data, buf.len, &arena, &got), CARELOG_OK);
	assert_int_equal(got.op, PROTO_OP_ACCESS_LOG);
	const struct proto_access_log_reply *a = &got.u.access_log;
	assert_int_equal(a->applied_index, 555);
	assert_int_equal(a->rows_count, PROTO_ACCESS_LOG_ROWS_MAX);
	for (uint32_t i = 0; i < a->rows_count; i++) {
		const struct proto_access_row *w = &a->rows[i];
		const struct proto_access_row want = sample_row(i + 1);
		assert_int_equal(w->node_id, 2);
		assert_int_equal(w->seq, i + 1);
		assert_int_equal(w->time_ms, want.time_ms);
		assert_true(str_eq(w->actor, "hpr-9"));
		assert_true(str_eq(w->role, "nurse"));
		assert_true(str_eq(w->org, "kommune-x"));
		assert_true(str_eq(w->unit, "hjemmesykepleie"));
		assert_true(str_eq(w->patient, "01017012345"));
		assert_true(str_eq(w->action, "read"));
		assert_int_equal(w->allowed, want.allowed);
		assert_int_equal(w->basis.len, want.basis.len);
		assert_int_equal(w->count, want.count);
		assert_int_equal(w->withheld, 2);
		assert_int_equal(w->has_entry, want.has_entry);
		if (w->has_entry) {
			assert_memory_equal(w->entry, want.entry, PROTO_ID_BYTES);
		}
		assert_true(str_eq(w->purpose, "home visit"));
		assert_int_equal(w->outcome.len, want.outcome.len);
		assert_int_equal(w->shipped, want.shipped);
		assert_true(view_inside(w->purpose, &buf));
	}
	proto_buf_free(&buf);
	/* more rows than a page: refused both ways */
	rep.u.access_log.rows_count = PROTO_ACCESS_LOG_ROWS_MAX + 1;
	assert_int_equal(proto_reply_encode(&rep, &buf), CARELOG_ETOOBIG);
	rep.u.access_log.rows_count = 1;
	char purpose[PROTO_PURPOSE_BYTES_MAX + 1];
	memset(purpose, 'p', sizeof(purpose));
	rows[0].purpose = (struct proto_str){purpose, sizeof(purpose)};
	assert_int_equal(proto_reply_encode(&rep, &buf), CARELOG_ETOOBIG);
	struct mp m;
	mp_init(&m);
	msgpack_pack_map(&m.pk, 6);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "access-log");
	mp_kv_u64(&m, "err", 0);
	mp_kv_str(&m, "msg", "");
	mp_kv_u64(&m, "applied_index", 1);
	mp_str(&m, "rows");
	msgpack_pack_array(&m.pk, PROTO_ACCESS_LOG_ROWS_MAX + 1);
	for (int i = 0; i < PROTO_ACCESS_LOG_ROWS_MAX + 1; i++) {
		msgpack_pack_nil(&m.pk);
	}
	assert_int_equal(proto_reply_decode((const uint8_t *)m.sb.data, m.sb.size, &arena, &got),
	                 CARELOG_ETOOBIG);
	msgpack_sbuffer_destroy(&m.sb);
	/* rows missing from the reply */
	mp_init(&m);
	msgpack_pack_map(&m.pk, 5);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "access-log");
	mp_kv_u64(&m, "err", 0);
	mp_kv_str(&m, "msg", "");
	mp_kv_u64(&m, "applied_index", 1);
	assert_int_equal(proto_reply_decode((const uint8_t *)m.sb.data, m.sb.size, &arena, &got),
	                 CARELOG_EPROTO);
	msgpack_sbuffer_destroy(&m.sb);
	proto_arena_free(&arena);
	free(rows);
}

/* A row map written by hand: `skip` leaves one key out, `extra` adds an unknown one. */
static void mp_row(struct mp *m, const char *skip, bool extra)
{
	const char *keys[] = {"node_id",  "seq",     "time_ms", "actor",   "role",  "org",
	                      "unit",     "patient", "action",  "allowed", "basis", "count",
	                      "withheld", "purpose", "outcome", "shipped"};
	uint32_t n = (uint32_t)LEN(keys) - (skip != NULL) + extra;
	msgpack_pack_map(&m->pk, n);
	for (size_t i = 0; i < LEN(keys); i++) {
		if (skip != NULL && strcmp(keys[i], skip) == 0) {
			continue;
		}
		mp_str(m, keys[i]);
		if (strcmp(keys[i], "allowed") == 0 || strcmp(keys[i], "shipped") == 0) {
			msgpack_pack_true(&m->pk);
		} else if (i < 3 || strcmp(keys[i], "count") == 0 ||
		           strcmp(keys[i], "withheld") == 0) {
			msgpack_pack_uint64(&m->pk, 5);
		} else {
			mp_str(m, "x");
		}
	}
	if (extra) {
		mp_kv_str(m, "client_application", "journal-app");
	}
}

static int decode_access_log_with_row(const char *skip, bool extra, struct proto_arena *arena,
				      struct proto_reply *got)
{
	struct mp m;
	mp_init(&m);
	msgpack_pack_map(&m.pk, 6);
	mp_kv_u64(&m, "v", 1);
	mp_kv_str(&m, "op", "access-log");
	mp_kv_u64(&m, "err", 0);
	mp_kv_str(&m, "msg", "");
	mp_kv_u64(&m, "applied_index", 1);
	mp_str(&m, "rows");
	msgpack_pack_array(&m.pk, 1);
	mp_row(&m, skip, extra);
	int rc = proto_reply_decode((const uint8_t *)m.sb.data, m.sb.size, arena, got);
	msgpack_sbuffer_destroy(&m.sb);
	return rc;
}

static void test_access_rows_skip_new_keys_but_need_every_known_one(void **state)
{
	(void)state;
	struct proto_arena arena = {0};
	struct proto_reply got;
	assert_int_equal(decode_access_log_with_row(NULL, true, &arena, &got), CARELOG_OK);
	assert_int_equal(got.u.access_log.rows_count, 1);
	assert_false(got.u.access_log.rows[0].has_entry);
	assert_true(got.u.access_log.rows[0].shipped);
	assert_int_equal(got.u.access_log.rows[0].count, 5);
	const char *required[] = {"node_id",  "seq",     "time_ms", "actor",   "role",  "org",
	                          "unit",     "patient", "action",  "allowed", "basis", "count",
	                          "withheld", "purpose", "outcome", "shipped"};
	for (size_t i = 0; i < LEN(required); i++) {
		assert_int_equal(decode_access_log_with_row(required[i], false, &arena, &got),
		                 CARELOG_EPROTO);
	}
	proto_arena_free(&arena);
}

static void test_btg_list_and_policy_replies_round_trip(void **state)
{
	(void)state;
	struct proto_btg_grant grants[2];
	for (int i = 0; i < 2; i++) {
		struct proto_btg_grant *g = &grants[i];
		memset(g, 0, sizeof(*g));
		memset(g->id, 0x30 + i, PROTO_ID_BYTES);
		g->index = 100u + (uint64_t)i;
		g->patient = S("01017012345");
		g->actor = S("hpr-9");
		g->role = S("nurse");
		g->org = S("kommune-x");
		g->unit = i == 0 ? S("") : S("legevakt");
		g->granted_ms = 1764000000000ull;
		g->expires_ms = 1764086400000ull;
		g->reason_code = S("emergency");
		g->reason_text = S("unconscious at home");
	}
	struct proto_reply rep = {.op = PROTO_OP_BTG_LIST};
	rep.u.btg_list.grants_count = 2;
	rep.u.btg_list.grants = grants;
	struct proto_buf buf = {0};
	assert_int_equal(proto_reply_encode(&rep, &buf), CARELOG_OK);
	struct proto_arena arena = {0};
	struct proto_reply got;
	assert_int_equal(proto_reply_decode(buf.data, buf.len, &arena, &got), CARELOG_OK);
	assert_int_equal(got.op, PROTO_OP_BTG_LIST);
	assert_int_equal(got.u.btg_list.grants_count, 2);
	const struct proto_btg_grant *g = &got.u.btg_list.grants[1];
	assert_memory_equal(g->id, grants[1].id, PROTO_ID_BYTES);
	assert_int_equal(g->index, 101);
	assert_true(str_eq(g->patient, "01017012345"));
	assert_true(str_eq(g->actor, "hpr-9"));
	assert_true(str_eq(g->role, "nurse"));
	assert_true(str_eq(g->org, "kommune-x"));
	assert_true(str_eq(g->unit, "legevakt"));
	assert_int_equal(got.u.btg_list.grants[0].unit.len, 0);
	assert_int_equal(g->granted_ms, 1764000000000ull);
	assert_int_equal(g->expires_ms, 1764086400000ull);
	assert_true(str_eq(g->reason_code, "emergency"));
	assert_true(str_eq(g->reason_text, "unconscious at home"));
	proto_buf_free(&buf);
	/* an empty list, and more than a page */
	rep.u.btg_list.grants_count = 0;
	rep.u.btg_list.grants = NULL;
	assert_int_equal(proto_reply_encode(&rep, &buf), CARELOG_OK);
	assert_int_equal(proto_reply_decode(buf.data, buf.len, &arena, &got), CARELOG_OK);
	assert_int_equal(got.u.btg_list.grants_count, 0);
	proto_buf_free(&buf);
	rep.u.btg_list.grants_count = PROTO_BTG_GRANTS_MAX + 1;
	rep.u.btg_list.grants = grants;
	assert_int_equal(proto_reply_encode(&rep, &buf), CARELOG_ETOOBIG);

	/* a policy entry is answered like an append */
	struct proto_reply pol = {.op = PROTO_OP_POLICY};
	pol.u.append.committed = true;
	pol.u.append.index = 31;
	memset(pol.u.append.id, 0x44, PROTO_ID_BYTES);
	pol.u.append.request_id = S("pol-1");
	assert_int_equal(proto_reply_encode(&pol, &buf), CARELOG_OK);
	assert_int_equal(proto_reply_decode(buf.data, buf.len, &arena, &got), CARELOG_OK);
	assert_int_equal(got.op, PROTO_OP_POLICY);
	assert_true(got.u.append.committed);
	assert_int_equal(got.u.append.index, 31);
	assert_true(str_eq(got.u.append.request_id, "pol-1"));
	proto_buf_free(&buf);
	/* and refused like one */
	assert_int_equal(proto_reply_encode_error(PROTO_OP_POLICY, CARELOG_EDENIED,
	                                          "role nurse may not write care-relation", &buf),
	                 CARELOG_OK);
	assert_int_equal(proto_reply_decode(buf.data, buf.len, &arena, &got), CARELOG_OK);
	assert_int_equal(got.op, PROTO_OP_POLICY);
	assert_int_equal(got.err, CARELOG_EDENIED);
	proto_buf_free(&buf);
	proto_arena_free(&arena);
}

static void assert_bytes(const struct proto_buf *b, const uint8_t *want, size_t want_len)
{
	if (b->len != want_len || memcmp(b->data, want, want_len) != 0) {
		for (size_t i = 0; i < b->len; i++) {
			printf("%02x%s", b->data[i], i % 16 == 15 ? "\n" : " ");
		}
		printf("\n");
	}
	assert_int_equal(b->len, want_len);
	assert_memory_equal(b->data, want, want_len);
}

/* The examples in docs/client-protocol.md, byte for byte. */
static void test_documented_examples_encode_byte_exactly(void **state)
{
	(void)state;
	struct proto_buf buf = {0};
	struct proto_request status = {.op = PROTO_OP_STATUS, .timeout_ms = 9000};
	status.actor.role = S("operator");
	assert_int_equal(proto_request_encode(&status, &buf), CARELOG_OK);
	const uint8_t status_bytes[] = {0x84, 0xa1, 0x76, 0x01, 0xa2, 0x6f, 0x70, 0xa6, 0x73, 0x74,
	                                0x61, 0x74, 0x75, 0x73, 0xaa, 0x74, 0x69, 0x6d, 0x65, 0x6f,
	                                0x75, 0x74, 0x5f, 0x6d, 0x73, 0xcd, 0x23, 0x28, 0xa5, 0x61,
	                                0x63, 0x74, 0x6f, 0x72, 0x81, 0xa4, 0x72, 0x6f, 0x6c, 0x65,
	                                0xa8, 0x6f, 0x70, 0x65, 0x72, 0x61, 0x74, 0x6f, 0x72};
	assert_bytes(&buf, status_bytes, sizeof(status_bytes));
	proto_buf_free(&buf);

	struct proto_request read = {.op = PROTO_OP_READ, .timeout_ms = 9000};
	read.actor.id = S("hpr-1");
	read.actor.role = S("nurse");
	read.u.read.patient = S("p1");
	read.u.read.history = true;
	assert_int_equal(proto_request_encode(&read, &buf), CARELOG_OK);
	const uint8_t read_bytes[] = {
	    0x86, 0xa1, 0x76, 0x01, 0xa2, 0x6f, 0x70, 0xa4, 0x72, 0x65, 0x61, 0x64, 0xaa,
	    0x74, 0x69, 0x6d, 0x65, 0x6f, 0x75, 0x74, 0x5f, 0x6d, 0x73, 0xcd, 0x23, 0x28,
	    0xa5, 0x61, 0x63, 0x74, 0x6f, 0x72, 0x82, 0xa2, 0x69, 0x64, 0xa5, 0x68, 0x70,
	    0x72, 0x2d, 0x31, 0xa4, 0x72, 0x6f, 0x6c, 0x65, 0xa5, 0x6e, 0x75, 0x72, 0x73,
	    0x65, 0xa7, 0x70, 0x61, 0x74, 0x69, 0x65, 0x6e, 0x74, 0xa2, 0x70, 0x31, 0xa7,
	    0x68, 0x69, 0x73, 0x74, 0x6f, 0x72, 0x79, 0xc3};
	assert_bytes(&buf, read_bytes, sizeof(read_bytes));
	proto_buf_free(&buf);

	struct proto_request pol = {.op = PROTO_OP_POLICY, .timeout_ms = 9000};
	pol.u.policy.kind = S("btg-grant");
	pol.u.policy.patient = S("p1");
	pol.u.policy.request_id = S("r1");
	pol.u.policy.reason_code = S("emergency");
	pol.u.policy.text = S("unconscious");
	pol.u.policy.hours = 24;
	assert_int_equal(proto_request_encode(&pol, &buf), CARELOG_OK);
	const uint8_t pol_bytes[] = {
	    0x84, 0xa1, 0x76, 0x01, 0xa2, 0x6f, 0x70, 0xa6, 0x70, 0x6f, 0x6c, 0x69, 0x63, 0x79,
	    0xaa, 0x74, 0x69, 0x6d, 0x65, 0x6f, 0x75, 0x74, 0x5f, 0x6d, 0x73, 0xcd, 0x23, 0x28,
	    0xa6, 0x70, 0x6f, 0x6c, 0x69, 0x63, 0x79, 0x86, 0xa4, 0x6b, 0x69, 0x6e, 0x64, 0xa9,
	    0x62, 0x74, 0x67, 0x2d, 0x67, 0x72, 0x61, 0x6e, 0x74, 0xa7, 0x70, 0x61, 0x74, 0x69,
	    0x65, 0x6e, 0x74, 0xa2, 0x70, 0x31, 0xaa, 0x72, 0x65, 0x71, 0x75, 0x65, 0x73, 0x74,
	    0x5f, 0x69, 0x64, 0xa2, 0x72, 0x31, 0xab, 0x72, 0x65, 0x61, 0x73, 0x6f, 0x6e, 0x5f,
	    0x63, 0x6f, 0x64, 0x65, 0xa9, 0x65, 0x6d, 0x65, 0x72, 0x67, 0x65, 0x6e, 0x63, 0x79,
	    0xa4, 0x74, 0x65, 0x78, 0x74, 0xab, 0x75, 0x6e, 0x63, 0x6f, 0x6e, 0x73, 0x63, 0x69,
	    0x6f, 0x75, 0x73, 0xa5, 0x68, 0x6f, 0x75, 0x72, 0x73, 0x18};
	assert_bytes(&buf, pol_bytes, sizeof(pol_bytes));
	proto_buf_free(&buf);

	struct proto_request log = {.op = PROTO_OP_ACCESS_LOG, .timeout_ms = 9000};
	log.u.access_log.patient = S("p1");
	log.u.access_log.limit = 50;
	assert_int_equal(proto_request_encode(&log, &buf), CARELOG_OK);
	const uint8_t log_bytes[] = {0x85, 0xa1, 0x76, 0x01, 0xa2, 0x6f, 0x70, 0xaa, 0x61, 0x63,
	                             0x63, 0x65, 0x73, 0x73, 0x2d, 0x6c, 0x6f, 0x67, 0xaa, 0x74,
	                             0x69, 0x6d, 0x65, 0x6f, 0x75, 0x74, 0x5f, 0x6d, 0x73, 0xcd,
	                             0x23, 0x28, 0xa7, 0x70, 0x61, 0x74, 0x69, 0x65, 0x6e, 0x74,
	                             0xa2, 0x70, 0x31, 0xa5, 0x6c, 0x69, 0x6d, 0x69, 0x74, 0x32};
	assert_bytes(&buf, log_bytes, sizeof(log_bytes));
	proto_buf_free(&buf);

	struct proto_reply btg = {.op = PROTO_OP_BTG_LIST};
	assert_int_equal(proto_reply_encode(&btg, &buf), CARELOG_OK);
	const uint8_t btg_bytes[] = {0x85, 0xa1, 0x76, 0x01, 0xa2, 0x6f, 0x70, 0xa8, 0x62,
	                             0x74, 0x67, 0x2d, 0x6c, 0x69, 0x73, 0x74, 0xa3, 0x65,
	                             0x72, 0x72, 0x00, 0xa3, 0x6d, 0x73, 0x67, 0xa0, 0xa6,
	                             0x67, 0x72, 0x61, 0x6e, 0x74, 0x73, 0x90};
	assert_bytes(&buf, btg_bytes, sizeof(btg_bytes));
	proto_buf_free(&buf);

	/* a status reply ends with its "audit" map (the documented example is that end) */
	struct proto_reply st = {.op = PROTO_OP_STATUS};
	st.u.status.role = S("leader");
	st.u.status.has_audit = true;
	st.u.status.audit = (struct proto_audit_stats){.queued_rows = 3, .next_seq = 10,
							.shipped_seq = 6, .syncs = 9,
							.write_failures = 0, .ship_failures = 1};
	assert_int_equal(proto_reply_encode(&st, &buf), CARELOG_OK);
	const uint8_t audit_bytes[] = {
	    0xa5, 0x61, 0x75, 0x64, 0x69, 0x74, 0x86, 0xab, 0x71, 0x75, 0x65, 0x75, 0x65, 0x64,
	    0x5f, 0x72, 0x6f, 0x77, 0x73, 0x03, 0xa8, 0x6e, 0x65, 0x78, 0x74, 0x5f, 0x73, 0x65,
	    0x71, 0x0a, 0xab, 0x73, 0x68, 0x69, 0x70, 0x70, 0x65, 0x64, 0x5f, 0x73, 0x65, 0x71,
	    0x06, 0xa5, 0x73, 0x79, 0x6e, 0x63, 0x73, 0x09, 0xae, 0x77, 0x72, 0x69, 0x74, 0x65,
	    0x5f, 0x66, 0x61, 0x69, 0x6c, 0x75, 0x72, 0x65, 0x73, 0x00, 0xad, 0x73, 0x68, 0x69,
	    0x70, 0x5f, 0x66, 0x61, 0x69, 0x6c, 0x75, 0x72, 0x65, 0x73, 0x01};
	assert_true(buf.len > sizeof(audit_bytes));
	assert_memory_equal(buf.data + buf.len - sizeof(audit_bytes), audit_bytes,
			    sizeof(audit_bytes));
	proto_buf_free(&buf);
}

static void test_reply_peek_reads_only_the_error_code(void **state)
{
	(void)state;
	struct proto_buf buf = {0};
	int err = -1;
	assert_int_equal(proto_reply_encode_error(PROTO_OP_READ, CARELOG_EDENIED, "no", &buf),
	                 CARELOG_OK);
	assert_int_equal(proto_reply_peek_err(buf.data, buf.len, &err), CARELOG_OK);
	assert_int_equal(err, CARELOG_EDENIED);
	proto_buf_free(&buf);
	/* a success with a page of entries: the entries are never looked at */
	struct proto_entry entries[2] = {sample_entry(1), sample_entry(2)};
	struct proto_reply rep = {.op = PROTO_OP_READ};
	rep.u.read.entries_count = 2;
	rep.u.read.entries = entries;
	assert_int_equal(proto_reply_encode(&rep, &buf), CARELOG_OK);
	buf.data[buf.len - 1] ^= 0xff; /* the end is broken: peek does not care */
	assert_int_equal(proto_reply_peek_err(buf.data, buf.len, &err), CARELOG_OK);
	assert_int_equal(err, CARELOG_OK);
	/* the head broken, or cut before "err" */
	err = -1;
	assert_int_equal(proto_reply_peek_err(buf.data, 5, &err), CARELOG_EPROTO);
	assert_int_equal(proto_reply_peek_err(buf.data, 0, &err), CARELOG_EPROTO);
	assert_int_equal(err, -1);
	proto_buf_free(&buf);
	struct mp m;
	mp_init(&m);
	msgpack_pack_map(&m.pk, 2);
	mp_kv_u64(&m, "v", 2);
	mp_kv_u64(&m, "err", 0);
	assert_int_equal(proto_reply_peek_err((const uint8_t *)m.sb.data, m.sb.size, &err),
	                 CARELOG_EVERSION);
	msgpack_sbuffer_destroy(&m.sb);
	mp_init(&m);
	msgpack_pack_map(&m.pk, 2);
	mp_kv_str(&m, "msg", "x");
	mp_kv_u64(&m, "v", 1);
	assert_int_equal(proto_reply_peek_err((const uint8_t *)m.sb.data, m.sb.size, &err),
	                 CARELOG_EPROTO);
	msgpack_sbuffer_destroy(&m.sb);
	/* any key order */
	mp_init(&m);
	msgpack_pack_map(&m.pk, 3);
	mp_kv_str(&m, "msg", "busy");
	mp_kv_u64(&m, "err", CARELOG_EBUSY);
	mp_kv_u64(&m, "v", 1);
	assert_int_equal(proto_reply_peek_err((const uint8_t *)m.sb.data, m.sb.size, &err),
	                 CARELOG_OK);
	assert_int_equal(err, CARELOG_EBUSY);
	msgpack_sbuffer_destroy(&m.sb);
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
	int err;
	rc = proto_reply_peek_err(bytes, len, &err);
	assert_true(rc == CARELOG_OK || rc == CARELOG_EPROTO || rc == CARELOG_EVERSION ||
	            rc == CARELOG_ETOOBIG);
}

enum { SAMPLE_COUNT = 11 };

static void sample_messages(struct proto_buf out[SAMPLE_COUNT])
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
	struct proto_request add = add_learner_request();
	assert_int_equal(proto_request_encode(&add, &out[4]), CARELOG_OK);
	struct proto_request transfer = {.op = PROTO_OP_TRANSFER, .u.transfer.to = 3};
	assert_int_equal(proto_request_encode(&transfer, &out[5]), CARELOG_OK);
	struct proto_member full[2];
	struct proto_reply fst = full_status_reply(full);
	assert_int_equal(proto_reply_encode(&fst, &out[6]), CARELOG_OK);
	/* clinical access */
	struct proto_request pol = full_policy_request();
	assert_int_equal(proto_request_encode(&pol, &out[7]), CARELOG_OK);
	struct proto_access_row rows[3] = {sample_row(1), sample_row(2), sample_row(3)};
	struct proto_reply log = {.op = PROTO_OP_ACCESS_LOG};
	log.u.access_log.rows_count = 3;
	log.u.access_log.rows = rows;
	assert_int_equal(proto_reply_encode(&log, &out[8]), CARELOG_OK);
	struct proto_btg_grant grant = {.index = 4, .patient = S("p"), .reason_code = S("e")};
	struct proto_reply btg = {.op = PROTO_OP_BTG_LIST};
	btg.u.btg_list.grants_count = 1;
	btg.u.btg_list.grants = &grant;
	assert_int_equal(proto_reply_encode(&btg, &out[9]), CARELOG_OK);
	struct proto_withheld_reason reasons[2] = {{S("blocked by the patient"), 2},
	                                           {S("shielded"), 1}};
	entries[0].has_superseded_by = true;
	entries[1].body_erased = true;
	entries[1].erased_basis = S("hpl 43");
	struct proto_reply rd = {.op = PROTO_OP_READ};
	rd.u.read.entries_count = 3;
	rd.u.read.entries = entries;
	rd.u.read.basis = S("relation");
	rd.u.read.withheld_reasons_count = 2;
	rd.u.read.withheld_reasons = reasons;
	assert_int_equal(proto_reply_encode(&rd, &out[10]), CARELOG_OK);
}

static void test_every_truncation_is_rejected(void **state)
{
	(void)state;
	struct proto_buf msgs[SAMPLE_COUNT] = {{0}};
	sample_messages(msgs);
	for (size_t m = 0; m < SAMPLE_COUNT; m++) {
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
	struct proto_buf msgs[SAMPLE_COUNT] = {{0}};
	sample_messages(msgs);
	printf("fuzz seed 0x%llx\n", (unsigned long long)rng_state);
	for (int round = 0; round < FUZZ_ROUNDS; round++) {
		const struct proto_buf *src = &msgs[(size_t)round % SAMPLE_COUNT];
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
	for (size_t m = 0; m < SAMPLE_COUNT; m++) {
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
		cmocka_unit_test(test_member_and_transfer_requests_round_trip),
		cmocka_unit_test(test_member_and_transfer_encode_refuses_what_decode_would_refuse),
		cmocka_unit_test(test_member_request_decode_is_strict),
		cmocka_unit_test(test_status_reply_round_trips_members),
		cmocka_unit_test(test_status_reply_round_trips_replication_fields),
		cmocka_unit_test(test_status_reply_from_an_older_node_decodes_with_defaults),
		cmocka_unit_test(test_status_audit_map_is_optional_and_strict),
		cmocka_unit_test(test_transport_counters_skip_new_ones_but_refuse_bad_ones),
		cmocka_unit_test(test_audit_counters_skip_new_ones_but_refuse_bad_ones),
		cmocka_unit_test(test_member_and_transfer_replies_round_trip),
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
	    cmocka_unit_test(test_every_op_has_a_name_and_carries_the_actor_map),
	    cmocka_unit_test(test_actor_map_is_strict_and_bounded),
	    cmocka_unit_test(test_policy_request_round_trips_every_field),
	    cmocka_unit_test(test_policy_request_is_strict_and_bounded),
	    cmocka_unit_test(test_read_history_access_log_and_btg_list_requests_round_trip),
	    cmocka_unit_test(test_access_log_and_btg_list_requests_are_strict_and_bounded),
	    cmocka_unit_test(test_read_reply_carries_basis_reasons_supersession_and_erasure),
	    cmocka_unit_test(test_access_log_reply_round_trips_a_full_page),
	    cmocka_unit_test(test_access_rows_skip_new_keys_but_need_every_known_one),
	    cmocka_unit_test(test_btg_list_and_policy_replies_round_trip),
	    cmocka_unit_test(test_documented_examples_encode_byte_exactly),
	    cmocka_unit_test(test_reply_peek_reads_only_the_error_code),
		cmocka_unit_test(test_every_truncation_is_rejected),
		cmocka_unit_test(test_random_mutations_never_crash),
		cmocka_unit_test(test_deep_nesting_in_an_unknown_reply_key_is_eproto),
		cmocka_unit_test(test_huge_declared_lengths_are_refused_without_reading),
		cmocka_unit_test(test_arena_gives_aligned_zeroed_memory_across_chunks),
	};
	return cmocka_run_group_tests_name("proto", tests, NULL, NULL);
}
