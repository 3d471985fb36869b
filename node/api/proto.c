/* The client protocol codec: msgpack-c packer for encoding, a zero-copy strict reader for decoding. */
#include "node/api/proto.h"

#include "carelog/errors.h"
#include "common/assert.h"

#include <msgpack.h>

#include <limits.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Why our own reader: msgpack_unpack_next() copies into a zone and gives objects whose strings
 * point into that zone, so views would have to outlive a second allocation. Reading the bytes
 * directly lets every decoded string and byte field point straight into the caller's message
 * (the nng message the daemon or libcarelog already holds), bounded by the message length, with
 * no allocation except the reply arrays. msgpack's format is small; every branch below checks
 * the remaining length before reading. Encoding uses msgpack-c's packer (its output is what the
 * unit tests compare against an independent decode with msgpack_unpack_next).
 */

/* ---------------------------------------------------------------- buffers and arena */

enum {
	PROTO_BUF_INITIAL_BYTES = 256,
	PROTO_ARENA_CHUNK_BYTES = 16 * 1024,
};

void proto_buf_free(struct proto_buf *b)
{
	if (b == NULL) {
		return;
	}
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

struct proto_arena_chunk {
	struct proto_arena_chunk *next;
	size_t used;
	size_t cap;
	alignas(max_align_t) unsigned char data[];
};

void *proto_arena_alloc(struct proto_arena *a, size_t size)
{
	CL_ASSERT(a != NULL);
	const size_t align = alignof(max_align_t);
	if (size > SIZE_MAX / 2) {
		return NULL;
	}
	size_t rounded = (size + align - 1) / align * align;
	if (rounded == 0) {
		rounded = align;
	}
	struct proto_arena_chunk *c = a->chunks;
	if (c == NULL || c->cap - c->used < rounded) {
		size_t cap = rounded > PROTO_ARENA_CHUNK_BYTES ? rounded : PROTO_ARENA_CHUNK_BYTES;
		struct proto_arena_chunk *n = calloc(1, sizeof(*n) + cap);
		if (n == NULL) {
			return NULL;
		}
		n->cap = cap;
		n->next = c;
		a->chunks = n;
		c = n;
	}
	void *p = c->data + c->used;
	c->used += rounded;
	CL_ASSERT(c->used <= c->cap);
	return p;
}

void proto_arena_free(struct proto_arena *a)
{
	if (a == NULL) {
		return;
	}
	struct proto_arena_chunk *c = a->chunks;
	while (c != NULL) {
		struct proto_arena_chunk *next = c->next;
		free(c);
		c = next;
	}
	a->chunks = NULL;
}

/* ---------------------------------------------------------------- names */

static const char *const proto_op_names[] = {
	[PROTO_OP_STATUS] = "status", [PROTO_OP_APPEND] = "append", [PROTO_OP_READ] = "read",
	[PROTO_OP_GET] = "get",       [PROTO_OP_VERIFY] = "verify", [PROTO_OP_MEMBER] = "member",
	[PROTO_OP_TRANSFER] = "transfer", [PROTO_OP_POLICY] = "policy",
	[PROTO_OP_ACCESS_LOG] = "access-log", [PROTO_OP_BTG_LIST] = "btg-list",
};
CL_STATIC_ASSERT(CL_ARRAY_LEN(proto_op_names) == PROTO_OP_COUNT_, "every op has a name");

const char *proto_op_name(uint8_t op)
{
	if (op < CL_ARRAY_LEN(proto_op_names) && proto_op_names[op] != NULL) {
		return proto_op_names[op];
	}
	return "?";
}

static bool proto_str_is(struct proto_str s, const char *lit)
{
	size_t n = strlen(lit);
	return s.len == n && (n == 0 || memcmp(s.ptr, lit, n) == 0);
}

static uint8_t proto_op_parse(struct proto_str s)
{
	for (uint8_t op = 1; op < CL_ARRAY_LEN(proto_op_names); op++) {
		if (proto_str_is(s, proto_op_names[op])) {
			return op;
		}
	}
	return 0;
}

static const char *const proto_consistency_names[] = {
	[PROTO_CONSISTENCY_LOCAL] = "local",
	[PROTO_CONSISTENCY_LINEARIZABLE] = "linearizable",
};

/* Indexed by enum proto_member_action. */
static const char *const proto_member_action_names[] = {
	[PROTO_MEMBER_ADD_LEARNER] = "add-learner",
	[PROTO_MEMBER_PROMOTE] = "promote",
	[PROTO_MEMBER_REMOVE] = "remove",
};

/* ---------------------------------------------------------------- keys */

/* One table for every key either direction uses; masks select what an op allows. */
enum proto_key {
	K_V,
	K_OP,
	K_TIMEOUT_MS,
	K_ACTOR,
	K_ROLE,
	K_PATIENT,
	K_KIND,
	K_REQUEST_ID,
	K_MEDIA_TYPE,
	K_STATUS,
	K_SENSITIVITY,
	K_CLINICAL_TIME_MS,
	K_CORRECTS,
	K_BODY,
	K_CONSISTENCY,
	K_MIN_INDEX,
	K_SINCE_INDEX,
	K_LIMIT,
	K_ID,
	K_ERR,
	K_MSG,
	K_NODE_ID,
	K_TERM,
	K_LEADER_ID,
	K_COMMIT_INDEX,
	K_APPLIED_INDEX,
	K_CHAIN_HEAD,
	K_MEMBERS,
	K_MATCH_INDEX,
	K_COMMITTED,
	K_INDEX,
	K_DUPLICATE,
	K_LAG,
	K_STALE,
	K_WITHHELD,
	K_MORE,
	K_ENTRIES,
	K_ENTRY,
	K_OK,
	K_ENTRIES_CHECKED,
	K_VALUES_CHECKED,
	K_PROBLEMS_COUNT,
	K_PROBLEMS,
	K_AUTHOR,
	K_ORG,
	K_UNIT,
	K_TIME_MS,
	K_AUTHOR_TIME_MS,
	K_ERASED,
	K_ACTION,
	K_ADDRESS,
	K_PUBLIC_KEY,
	K_TO,
	K_LAST_INDEX,
	K_PROGRESS_AGE_MS,
	K_VERIFIED_SIGNATURES,
	K_SYNCS,
	K_TRANSPORT,
	/* clinical access */
	K_HISTORY,
	K_POLICY,
	K_ACTOR_ID,
	K_ACTOR_ORG,
	K_BASIS,
	K_WITHHELD_REASONS,
	K_REASON,
	K_COUNT,
	K_ROWS,
	K_GRANTS,
	K_SUPERSEDED_BY,
	K_ERASED_INDEX,
	K_ERASED_TIME_MS,
	K_ERASED_AUTHOR,
	K_ERASED_ORG,
	K_ERASED_BASIS,
	K_PURPOSE,
	K_SEQ,
	K_ALLOWED,
	K_OUTCOME,
	K_SHIPPED,
	K_GRANTED_MS,
	K_EXPIRES_MS,
	K_REASON_CODE,
	K_REASON_TEXT,
	K_TARGET_ORG,
	K_WORD,
	K_LEVEL,
	K_CATEGORY,
	K_TEXT,
	K_BIRTH_DATE,
	K_CATEGORIES,
	K_REF,
	K_FROM_MS,
	K_TO_MS,
	K_HOURS,
	K_IMPLICIT_WINDOW_DAYS,
	K_BTG_HOURS_MAX,
	K_AMBULANCE_HOURS_MAX,
	K_AUDIT,
	K_COUNT_
};
CL_STATIC_ASSERT(K_COUNT_ <= 128, "key sets are two uint64_t words");

static const char *const proto_key_names[K_COUNT_] = {
	[K_V] = "v",
	[K_OP] = "op",
	[K_TIMEOUT_MS] = "timeout_ms",
	[K_ACTOR] = "actor",
	[K_ROLE] = "role",
	[K_PATIENT] = "patient",
	[K_KIND] = "kind",
	[K_REQUEST_ID] = "request_id",
	[K_MEDIA_TYPE] = "media_type",
	[K_STATUS] = "status",
	[K_SENSITIVITY] = "sensitivity",
	[K_CLINICAL_TIME_MS] = "clinical_time_ms",
	[K_CORRECTS] = "corrects",
	[K_BODY] = "body",
	[K_CONSISTENCY] = "consistency",
	[K_MIN_INDEX] = "min_index",
	[K_SINCE_INDEX] = "since_index",
	[K_LIMIT] = "limit",
	[K_ID] = "id",
	[K_ERR] = "err",
	[K_MSG] = "msg",
	[K_NODE_ID] = "node_id",
	[K_TERM] = "term",
	[K_LEADER_ID] = "leader_id",
	[K_COMMIT_INDEX] = "commit_index",
	[K_APPLIED_INDEX] = "applied_index",
	[K_CHAIN_HEAD] = "chain_head",
	[K_MEMBERS] = "members",
	[K_MATCH_INDEX] = "match_index",
	[K_COMMITTED] = "committed",
	[K_INDEX] = "index",
	[K_DUPLICATE] = "duplicate",
	[K_LAG] = "lag",
	[K_STALE] = "stale",
	[K_WITHHELD] = "withheld",
	[K_MORE] = "more",
	[K_ENTRIES] = "entries",
	[K_ENTRY] = "entry",
	[K_OK] = "ok",
	[K_ENTRIES_CHECKED] = "entries_checked",
	[K_VALUES_CHECKED] = "values_checked",
	[K_PROBLEMS_COUNT] = "problems_count",
	[K_PROBLEMS] = "problems",
	[K_AUTHOR] = "author",
	[K_ORG] = "org",
	[K_UNIT] = "unit",
	[K_TIME_MS] = "time_ms",
	[K_AUTHOR_TIME_MS] = "author_time_ms",
	[K_ERASED] = "erased",
	[K_ACTION] = "action",
	[K_ADDRESS] = "address",
	[K_PUBLIC_KEY] = "public_key",
	[K_TO] = "to",
	[K_LAST_INDEX] = "last_index",
	[K_PROGRESS_AGE_MS] = "progress_age_ms",
	[K_VERIFIED_SIGNATURES] = "verified_signatures",
	[K_SYNCS] = "syncs",
	[K_TRANSPORT] = "transport",
	[K_HISTORY] = "history",
	[K_POLICY] = "policy",
	[K_ACTOR_ID] = "actor_id",
	[K_ACTOR_ORG] = "actor_org",
	[K_BASIS] = "basis",
	[K_WITHHELD_REASONS] = "withheld_reasons",
	[K_REASON] = "reason",
	[K_COUNT] = "count",
	[K_ROWS] = "rows",
	[K_GRANTS] = "grants",
	[K_SUPERSEDED_BY] = "superseded_by",
	[K_ERASED_INDEX] = "erased_index",
	[K_ERASED_TIME_MS] = "erased_time_ms",
	[K_ERASED_AUTHOR] = "erased_author",
	[K_ERASED_ORG] = "erased_org",
	[K_ERASED_BASIS] = "erased_basis",
	[K_PURPOSE] = "purpose",
	[K_SEQ] = "seq",
	[K_ALLOWED] = "allowed",
	[K_OUTCOME] = "outcome",
	[K_SHIPPED] = "shipped",
	[K_GRANTED_MS] = "granted_ms",
	[K_EXPIRES_MS] = "expires_ms",
	[K_REASON_CODE] = "reason_code",
	[K_REASON_TEXT] = "reason_text",
	[K_TARGET_ORG] = "target_org",
	[K_WORD] = "word",
	[K_LEVEL] = "level",
	[K_CATEGORY] = "category",
	[K_TEXT] = "text",
	[K_BIRTH_DATE] = "birth_date",
	[K_CATEGORIES] = "categories",
	[K_REF] = "ref",
	[K_FROM_MS] = "from_ms",
	[K_TO_MS] = "to_ms",
	[K_HOURS] = "hours",
	[K_IMPLICIT_WINDOW_DAYS] = "implicit_window_days",
	[K_BTG_HOURS_MAX] = "btg_hours_max",
	[K_AMBULANCE_HOURS_MAX] = "ambulance_hours_max",
	[K_AUDIT] = "audit",
};

/* The keys of the status reply's "transport" map: a table of their own, so the 64-bit key
 * masks above keep room for future fields. */
enum proto_transport_key {
	TK_SENT,
	TK_RECEIVED,
	TK_DROPPED_AUTH,
	TK_DROPPED_REPLAY,
	TK_DROPPED_UNKNOWN,
	TK_HANDSHAKES,
	TK_COUNT_
};

static const char *const proto_transport_key_names[TK_COUNT_] = {
	[TK_SENT] = "sent",
	[TK_RECEIVED] = "received",
	[TK_DROPPED_AUTH] = "dropped_auth",
	[TK_DROPPED_REPLAY] = "dropped_replay",
	[TK_DROPPED_UNKNOWN] = "dropped_unknown",
	[TK_HANDSHAKES] = "handshakes",
};

/* The keys of the status reply's "audit" map (the audit queue's counters), likewise. */
enum proto_audit_key {
	AK_QUEUED_ROWS,
	AK_NEXT_SEQ,
	AK_SHIPPED_SEQ,
	AK_SYNCS,
	AK_WRITE_FAILURES,
	AK_SHIP_FAILURES,
	AK_COUNT_
};

static const char *const proto_audit_key_names[AK_COUNT_] = {
	[AK_QUEUED_ROWS] = "queued_rows",
	[AK_NEXT_SEQ] = "next_seq",
	[AK_SHIPPED_SEQ] = "shipped_seq",
	[AK_SYNCS] = "syncs",
	[AK_WRITE_FAILURES] = "write_failures",
	[AK_SHIP_FAILURES] = "ship_failures",
};

/* A counter map's keys are tracked in one uint32_t mask while reading it. */
enum { PROTO_COUNTERS_MAX = 32 };
CL_STATIC_ASSERT((int)TK_COUNT_ <= (int)PROTO_COUNTERS_MAX &&
		     (int)AK_COUNT_ <= (int)PROTO_COUNTERS_MAX,
		 "counter key sets are one uint32_t");

/* A set of keys (seen in a map, allowed, required). */
struct proto_keys {
	uint64_t w[2];
};

static struct proto_keys keys_of(const uint8_t *list, size_t n)
{
	struct proto_keys s = {{0, 0}};
	for (size_t i = 0; i < n; i++) {
		CL_ASSERT(list[i] < K_COUNT_);
		s.w[list[i] / 64] |= (uint64_t)1 << (list[i] % 64);
	}
	return s;
}
/* KEYS(K_A, K_B, ...): the set of those keys. */
#define KEYS(...)                                                                           \
	keys_of((const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__}))

static bool keys_has(struct proto_keys s, int k)
{
	return (s.w[k / 64] >> (k % 64)) & 1u;
}

static struct proto_keys keys_or(struct proto_keys a, struct proto_keys b)
{
	return (struct proto_keys){{a.w[0] | b.w[0], a.w[1] | b.w[1]}};
}

static struct proto_keys keys_and(struct proto_keys a, struct proto_keys b)
{
	return (struct proto_keys){{a.w[0] & b.w[0], a.w[1] & b.w[1]}};
}

/* The keys of `a` not in `b`. */
static struct proto_keys keys_minus(struct proto_keys a, struct proto_keys b)
{
	return (struct proto_keys){{a.w[0] & ~b.w[0], a.w[1] & ~b.w[1]}};
}

/* The lowest key in `s`, -1 when empty. */
static int keys_first(struct proto_keys s)
{
	if (s.w[0] != 0) {
		return __builtin_ctzll(s.w[0]);
	}
	return s.w[1] != 0 ? 64 + __builtin_ctzll(s.w[1]) : -1;
}

static int proto_key_lookup(struct proto_str s)
{
	for (int k = 0; k < K_COUNT_; k++) {
		if (proto_str_is(s, proto_key_names[k])) {
			return k;
		}
	}
	return -1;
}

/* ---------------------------------------------------------------- encoding */

struct proto_enc {
	msgpack_packer pk;
	struct proto_buf *buf;
	int err;
	size_t keys; /* keys written so far: checked against each map header's count */
};

static int proto_enc_write(void *data, const char *bytes, size_t len)
{
	struct proto_enc *e = data;
	if (e->err != CARELOG_OK) {
		return -1;
	}
	struct proto_buf *b = e->buf;
	if (len > (size_t)PROTO_MESSAGE_BYTES_MAX - b->len) {
		e->err = CARELOG_ETOOBIG;
		return -1;
	}
	size_t need = b->len + len;
	if (need > b->cap) {
		size_t cap = b->cap > 0 ? b->cap : PROTO_BUF_INITIAL_BYTES;
		while (cap < need) {
			cap *= 2; /* need <= PROTO_MESSAGE_BYTES_MAX, so this ends quickly */
		}
		uint8_t *grown = realloc(b->data, cap);
		if (grown == NULL) {
			e->err = CARELOG_ENOMEM;
			return -1;
		}
		b->data = grown;
		b->cap = cap;
	}
	if (len > 0) {
		memcpy(b->data + b->len, bytes, len);
	}
	b->len = need;
	return 0;
}

static void proto_enc_init(struct proto_enc *e, struct proto_buf *out)
{
	e->buf = out;
	e->err = CARELOG_OK;
	e->keys = 0;
	msgpack_packer_init(&e->pk, e, proto_enc_write);
}

/* The checks every encoder makes on a string field, so whatever it writes decodes. */
static int proto_check_str(struct proto_str s, size_t max)
{
	if (s.ptr == NULL && s.len > 0) {
		return CARELOG_EINVAL;
	}
	return s.len > max ? CARELOG_ETOOBIG : CARELOG_OK;
}

static void enc_key(struct proto_enc *e, enum proto_key k)
{
	const char *name = proto_key_names[k];
	size_t n = strlen(name);
	e->keys++;
	msgpack_pack_str(&e->pk, n);
	msgpack_pack_str_body(&e->pk, name, n);
}

static void enc_text(struct proto_enc *e, const char *ptr, size_t len)
{
	msgpack_pack_str(&e->pk, len);
	if (len > 0) {
		msgpack_pack_str_body(&e->pk, ptr, len);
	}
}

static void enc_kv_str(struct proto_enc *e, enum proto_key k, struct proto_str s)
{
	enc_key(e, k);
	enc_text(e, s.ptr, s.len);
}

static void enc_kv_bin(struct proto_enc *e, enum proto_key k, const void *ptr, size_t len)
{
	enc_key(e, k);
	msgpack_pack_bin(&e->pk, len);
	if (len > 0) {
		msgpack_pack_bin_body(&e->pk, ptr, len);
	}
}

static void enc_kv_u64(struct proto_enc *e, enum proto_key k, uint64_t v)
{
	enc_key(e, k);
	msgpack_pack_uint64(&e->pk, v);
}

static void enc_kv_bool(struct proto_enc *e, enum proto_key k, bool v)
{
	enc_key(e, k);
	if (v) {
		msgpack_pack_true(&e->pk);
	} else {
		msgpack_pack_false(&e->pk);
	}
}

static int proto_enc_finish(struct proto_enc *e)
{
	if (e->err != CARELOG_OK) {
		proto_buf_free(e->buf);
	}
	return e->err;
}

/* A string field and its limit, for the checks below. */
struct proto_limit {
	struct proto_str s;
	size_t max;
};

static int proto_check_strs(const struct proto_limit *fields, size_t n)
{
	int rc = CARELOG_OK;
	for (size_t i = 0; i < n && rc == CARELOG_OK; i++) {
		rc = proto_check_str(fields[i].s, fields[i].max);
	}
	return rc;
}

static int proto_check_actor(const struct proto_actor *a)
{
	const struct proto_limit fields[] = {
		{a->id, PROTO_ACTOR_BYTES_MAX},
		{a->role, PROTO_ROLE_BYTES_MAX},
		{a->unit, PROTO_UNIT_BYTES_MAX},
		{a->purpose, PROTO_PURPOSE_BYTES_MAX},
	};
	return proto_check_strs(fields, CL_ARRAY_LEN(fields));
}

static size_t proto_actor_pairs(const struct proto_actor *a)
{
	return (a->id.len > 0 ? 1u : 0u) + (a->role.len > 0 ? 1u : 0u) +
	       (a->unit.len > 0 ? 1u : 0u) + (a->purpose.len > 0 ? 1u : 0u);
}

/* The request's "actor" map with its non-empty fields; nothing when all are empty. */
static void enc_actor(struct proto_enc *e, const struct proto_actor *a)
{
	size_t pairs = proto_actor_pairs(a);
	if (pairs == 0) {
		return;
	}
	enc_key(e, K_ACTOR);
	size_t keys_before = e->keys;
	msgpack_pack_map(&e->pk, pairs);
	const struct {
		enum proto_key k;
		struct proto_str s;
	} fields[] = {{K_ID, a->id}, {K_ROLE, a->role}, {K_UNIT, a->unit}, {K_PURPOSE, a->purpose}};
	for (size_t i = 0; i < CL_ARRAY_LEN(fields); i++) {
		if (fields[i].s.len > 0) {
			enc_kv_str(e, fields[i].k, fields[i].s);
		}
	}
	CL_ASSERT(e->keys - keys_before == pairs);
	e->keys = keys_before; /* the outer map counts "actor" once */
}

static int proto_check_append_req(const struct proto_append_req *r)
{
	const struct proto_limit fields[] = {
		{r->patient, PROTO_PATIENT_BYTES_MAX},
		{r->kind, PROTO_KIND_BYTES_MAX},
		{r->request_id, PROTO_REQUEST_ID_BYTES_MAX},
		{r->media_type, PROTO_MEDIA_TYPE_BYTES_MAX},
		{r->status, PROTO_STATUS_BYTES_MAX},
		{r->sensitivity, PROTO_SENSITIVITY_BYTES_MAX},
		{r->body, PROTO_BODY_BYTES_MAX},
	};
	return proto_check_strs(fields, CL_ARRAY_LEN(fields));
}

static size_t proto_append_req_pairs(const struct proto_append_req *r)
{
	return 4u + (r->media_type.len > 0) + (r->status.len > 0) + (r->sensitivity.len > 0) +
	       (r->clinical_time_ms > 0) + r->has_corrects;
}

static void enc_append_req(struct proto_enc *e, const struct proto_append_req *r)
{
	enc_kv_str(e, K_PATIENT, r->patient);
	enc_kv_str(e, K_KIND, r->kind);
	enc_kv_str(e, K_REQUEST_ID, r->request_id);
	if (r->media_type.len > 0) {
		enc_kv_str(e, K_MEDIA_TYPE, r->media_type);
	}
	if (r->status.len > 0) {
		enc_kv_str(e, K_STATUS, r->status);
	}
	if (r->sensitivity.len > 0) {
		enc_kv_str(e, K_SENSITIVITY, r->sensitivity);
	}
	if (r->clinical_time_ms > 0) {
		enc_kv_u64(e, K_CLINICAL_TIME_MS, r->clinical_time_ms);
	}
	if (r->has_corrects) {
		enc_kv_bin(e, K_CORRECTS, r->corrects, PROTO_ID_BYTES);
	}
	enc_kv_bin(e, K_BODY, r->body.ptr, r->body.len);
}

static int proto_check_read_req(const struct proto_read_req *r)
{
	int rc = proto_check_str(r->patient, PROTO_PATIENT_BYTES_MAX);
	if (rc == CARELOG_OK) {
		rc = proto_check_str(r->kind, PROTO_KIND_BYTES_MAX);
	}
	if (rc == CARELOG_OK && r->consistency > PROTO_CONSISTENCY_LINEARIZABLE) {
		rc = CARELOG_EINVAL;
	}
	if (rc == CARELOG_OK && r->limit > PROTO_READ_LIMIT_MAX) {
		rc = CARELOG_ETOOBIG;
	}
	return rc;
}

static size_t proto_read_req_pairs(const struct proto_read_req *r)
{
	return 1u + (r->consistency != 0) + (r->min_index > 0) + (r->kind.len > 0) +
	       (r->since_index > 0) + (r->limit > 0) + r->history;
}

static void enc_read_req(struct proto_enc *e, const struct proto_read_req *r)
{
	enc_kv_str(e, K_PATIENT, r->patient);
	if (r->consistency != 0) {
		enc_key(e, K_CONSISTENCY);
		const char *c = proto_consistency_names[r->consistency];
		enc_text(e, c, strlen(c));
	}
	if (r->min_index > 0) {
		enc_kv_u64(e, K_MIN_INDEX, r->min_index);
	}
	if (r->kind.len > 0) {
		enc_kv_str(e, K_KIND, r->kind);
	}
	if (r->since_index > 0) {
		enc_kv_u64(e, K_SINCE_INDEX, r->since_index);
	}
	if (r->limit > 0) {
		enc_kv_u64(e, K_LIMIT, r->limit);
	}
	if (r->history) {
		enc_kv_bool(e, K_HISTORY, true);
	}
}

static int proto_check_member_req(const struct proto_member_req *m)
{
	if (m->action < PROTO_MEMBER_ADD_LEARNER || m->action > PROTO_MEMBER_REMOVE || m->id == 0) {
		return CARELOG_EINVAL;
	}
	if (m->action != PROTO_MEMBER_ADD_LEARNER) {
		/* only add-learner carries these; the decoder refuses them elsewhere */
		return m->org.len > 0 || m->address.len > 0 || m->has_public_key ? CARELOG_EINVAL
										   : CARELOG_OK;
	}
	if (m->org.len == 0 || m->address.len == 0 || !m->has_public_key) {
		return CARELOG_EINVAL;
	}
	int rc = proto_check_str(m->org, PROTO_ORG_BYTES_MAX);
	return rc != CARELOG_OK ? rc : proto_check_str(m->address, PROTO_ADDRESS_BYTES_MAX);
}

static size_t proto_member_req_pairs(const struct proto_member_req *m)
{
	return m->action == PROTO_MEMBER_ADD_LEARNER ? 5u : 2u;
}

static void enc_member_req(struct proto_enc *e, const struct proto_member_req *m)
{
	enc_key(e, K_ACTION);
	const char *a = proto_member_action_names[m->action];
	enc_text(e, a, strlen(a));
	enc_kv_u64(e, K_ID, m->id);
	if (m->action == PROTO_MEMBER_ADD_LEARNER) {
		enc_kv_str(e, K_ORG, m->org);
		enc_kv_str(e, K_ADDRESS, m->address);
		enc_kv_bin(e, K_PUBLIC_KEY, m->public_key, PROTO_PUBLIC_KEY_BYTES);
	}
}

/* The policy map's string fields in wire order (kind and request_id always written). */
static size_t proto_policy_strs(const struct proto_policy_req *p, enum proto_key keys[13],
				struct proto_limit fields[13])
{
	const struct {
		enum proto_key k;
		struct proto_str s;
		size_t max;
	} all[] = {
		{K_KIND, p->kind, PROTO_KIND_BYTES_MAX},
		{K_PATIENT, p->patient, PROTO_PATIENT_BYTES_MAX},
		{K_REQUEST_ID, p->request_id, PROTO_REQUEST_ID_BYTES_MAX},
		{K_ORG, p->org, PROTO_ORG_BYTES_MAX},
		{K_UNIT, p->unit, PROTO_UNIT_BYTES_MAX},
		{K_ACTOR, p->actor, PROTO_ACTOR_BYTES_MAX},
		{K_TARGET_ORG, p->target_org, PROTO_ORG_BYTES_MAX},
		{K_WORD, p->word, PROTO_WORD_BYTES_MAX},
		{K_LEVEL, p->level, PROTO_WORD_BYTES_MAX},
		{K_CATEGORY, p->category, PROTO_SENSITIVITY_BYTES_MAX},
		{K_REASON_CODE, p->reason_code, PROTO_REASON_CODE_BYTES_MAX},
		{K_TEXT, p->text, PROTO_TEXT_BYTES_MAX},
		{K_BIRTH_DATE, p->birth_date, PROTO_BIRTH_DATE_BYTES_MAX},
	};
	CL_STATIC_ASSERT(CL_ARRAY_LEN(all) == 13, "policy string fields");
	for (size_t i = 0; i < CL_ARRAY_LEN(all); i++) {
		keys[i] = all[i].k;
		fields[i] = (struct proto_limit){all[i].s, all[i].max};
	}
	return CL_ARRAY_LEN(all);
}

static int proto_check_policy_req(const struct proto_policy_req *p)
{
	enum proto_key keys[13];
	struct proto_limit fields[13];
	size_t n = proto_policy_strs(p, keys, fields);
	int rc = proto_check_strs(fields, n);
	if (rc == CARELOG_OK && p->categories_count > PROTO_CATEGORIES_MAX) {
		rc = CARELOG_ETOOBIG;
	}
	for (uint32_t i = 0; i < p->categories_count && rc == CARELOG_OK; i++) {
		rc = proto_check_str(p->categories[i], PROTO_SENSITIVITY_BYTES_MAX);
	}
	if (rc == CARELOG_OK && (p->kind.len == 0 || p->request_id.len == 0)) {
		rc = CARELOG_EINVAL; /* the decoder refuses them empty */
	}
	return rc;
}

static void enc_policy_req(struct proto_enc *e, const struct proto_policy_req *p)
{
	enum proto_key keys[13];
	struct proto_limit fields[13];
	size_t n = proto_policy_strs(p, keys, fields);
	const struct {
		enum proto_key k;
		uint64_t v;
	} nums[] = {
		{K_FROM_MS, p->from_ms},
		{K_TO_MS, p->to_ms},
		{K_HOURS, p->hours},
		{K_IMPLICIT_WINDOW_DAYS, p->implicit_window_days},
		{K_BTG_HOURS_MAX, p->btg_hours_max},
		{K_AMBULANCE_HOURS_MAX, p->ambulance_hours_max},
	};
	size_t pairs = (p->categories_count > 0 ? 1u : 0u) + p->has_ref;
	for (size_t i = 0; i < n; i++) {
		pairs += fields[i].s.len > 0;
	}
	for (size_t i = 0; i < CL_ARRAY_LEN(nums); i++) {
		pairs += nums[i].v > 0;
	}
	enc_key(e, K_POLICY);
	size_t keys_before = e->keys;
	msgpack_pack_map(&e->pk, pairs);
	for (size_t i = 0; i < n; i++) {
		if (fields[i].s.len > 0) {
			enc_kv_str(e, keys[i], fields[i].s);
		}
	}
	if (p->categories_count > 0) {
		enc_key(e, K_CATEGORIES);
		msgpack_pack_array(&e->pk, p->categories_count);
		for (uint32_t i = 0; i < p->categories_count; i++) {
			enc_text(e, p->categories[i].ptr, p->categories[i].len);
		}
	}
	if (p->has_ref) {
		enc_kv_bin(e, K_REF, p->ref, PROTO_ID_BYTES);
	}
	for (size_t i = 0; i < CL_ARRAY_LEN(nums); i++) {
		if (nums[i].v > 0) {
			enc_kv_u64(e, nums[i].k, nums[i].v);
		}
	}
	CL_ASSERT(e->keys - keys_before == pairs);
	e->keys = keys_before; /* the outer map counts "policy" once */
}

static int proto_check_access_log_req(const struct proto_access_log_req *q)
{
	const struct proto_limit fields[] = {
		{q->patient, PROTO_PATIENT_BYTES_MAX},
		{q->actor_id, PROTO_ACTOR_BYTES_MAX},
		{q->actor_org, PROTO_ORG_BYTES_MAX},
	};
	int rc = proto_check_strs(fields, CL_ARRAY_LEN(fields));
	if (rc == CARELOG_OK && q->limit > PROTO_ACCESS_LOG_ROWS_MAX) {
		rc = CARELOG_ETOOBIG;
	}
	/* exactly one of patient / actor_id; an organisation only with an actor */
	if (rc == CARELOG_OK && ((q->patient.len > 0) == (q->actor_id.len > 0) ||
				 (q->actor_org.len > 0 && q->actor_id.len == 0))) {
		rc = CARELOG_EINVAL;
	}
	return rc;
}

static size_t proto_access_log_req_pairs(const struct proto_access_log_req *q)
{
	return (size_t)(q->patient.len > 0) + (q->actor_id.len > 0) + (q->actor_org.len > 0) +
	       (q->limit > 0);
}

static void enc_access_log_req(struct proto_enc *e, const struct proto_access_log_req *q)
{
	if (q->patient.len > 0) {
		enc_kv_str(e, K_PATIENT, q->patient);
	}
	if (q->actor_id.len > 0) {
		enc_kv_str(e, K_ACTOR_ID, q->actor_id);
	}
	if (q->actor_org.len > 0) {
		enc_kv_str(e, K_ACTOR_ORG, q->actor_org);
	}
	if (q->limit > 0) {
		enc_kv_u64(e, K_LIMIT, q->limit);
	}
}

static int proto_check_btg_list_req(const struct proto_btg_list_req *q)
{
	int rc = proto_check_str(q->patient, PROTO_PATIENT_BYTES_MAX);
	if (rc == CARELOG_OK && q->limit > PROTO_BTG_GRANTS_MAX) {
		rc = CARELOG_ETOOBIG;
	}
	return rc;
}

static void enc_head(struct proto_enc *e, uint8_t op)
{
	enc_kv_u64(e, K_V, PROTO_VERSION);
	enc_key(e, K_OP);
	const char *name = proto_op_name(op);
	enc_text(e, name, strlen(name));
}

static int proto_check_request(const struct proto_request *req)
{
	int rc = proto_check_actor(&req->actor);
	if (rc != CARELOG_OK) {
		return rc;
	}
	switch (req->op) {
	case PROTO_OP_STATUS:
	case PROTO_OP_VERIFY:
		return CARELOG_OK;
	case PROTO_OP_APPEND:
		return proto_check_append_req(&req->u.append);
	case PROTO_OP_READ:
		return proto_check_read_req(&req->u.read);
	case PROTO_OP_GET:
		return CARELOG_OK;
	case PROTO_OP_MEMBER:
		return proto_check_member_req(&req->u.member);
	case PROTO_OP_TRANSFER:
		return req->u.transfer.to == 0 ? CARELOG_EINVAL : CARELOG_OK;
	case PROTO_OP_POLICY:
		return proto_check_policy_req(&req->u.policy);
	case PROTO_OP_ACCESS_LOG:
		return proto_check_access_log_req(&req->u.access_log);
	case PROTO_OP_BTG_LIST:
		return proto_check_btg_list_req(&req->u.btg_list);
	default:
		return CARELOG_EINVAL;
	}
}

static size_t proto_request_pairs(const struct proto_request *req)
{
	size_t pairs = 2u + (req->timeout_ms > 0) + (proto_actor_pairs(&req->actor) > 0);
	switch (req->op) {
	case PROTO_OP_APPEND:
		return pairs + proto_append_req_pairs(&req->u.append);
	case PROTO_OP_READ:
		return pairs + proto_read_req_pairs(&req->u.read);
	case PROTO_OP_GET:
	case PROTO_OP_TRANSFER:
	case PROTO_OP_POLICY:
		return pairs + 1;
	case PROTO_OP_MEMBER:
		return pairs + proto_member_req_pairs(&req->u.member);
	case PROTO_OP_ACCESS_LOG:
		return pairs + proto_access_log_req_pairs(&req->u.access_log);
	case PROTO_OP_BTG_LIST:
		return pairs + (req->u.btg_list.patient.len > 0) + (req->u.btg_list.limit > 0);
	default:
		return pairs;
	}
}

int proto_request_encode(const struct proto_request *req, struct proto_buf *out)
{
	CL_ASSERT(req != NULL && out != NULL);
	CL_ASSERT(out->len == 0);
	int rc = proto_check_request(req);
	if (rc != CARELOG_OK) {
		return rc;
	}
	size_t pairs = proto_request_pairs(req);
	struct proto_enc e;
	proto_enc_init(&e, out);
	msgpack_pack_map(&e.pk, pairs);
	enc_head(&e, req->op);
	if (req->timeout_ms > 0) {
		enc_kv_u64(&e, K_TIMEOUT_MS, req->timeout_ms);
	}
	enc_actor(&e, &req->actor);
	switch (req->op) {
	case PROTO_OP_APPEND:
		enc_append_req(&e, &req->u.append);
		break;
	case PROTO_OP_READ:
		enc_read_req(&e, &req->u.read);
		break;
	case PROTO_OP_GET:
		enc_kv_bin(&e, K_ID, req->u.get.id, PROTO_ID_BYTES);
		break;
	case PROTO_OP_MEMBER:
		enc_member_req(&e, &req->u.member);
		break;
	case PROTO_OP_TRANSFER:
		enc_kv_u64(&e, K_TO, req->u.transfer.to);
		break;
	case PROTO_OP_POLICY:
		enc_policy_req(&e, &req->u.policy);
		break;
	case PROTO_OP_ACCESS_LOG:
		enc_access_log_req(&e, &req->u.access_log);
		break;
	case PROTO_OP_BTG_LIST:
		if (req->u.btg_list.patient.len > 0) {
			enc_kv_str(&e, K_PATIENT, req->u.btg_list.patient);
		}
		if (req->u.btg_list.limit > 0) {
			enc_kv_u64(&e, K_LIMIT, req->u.btg_list.limit);
		}
		break;
	default:
		break;
	}
	CL_ASSERT(e.keys == pairs);
	return proto_enc_finish(&e);
}

/* Cuts an over-long error message at a UTF-8 boundary instead of refusing the reply. */
static size_t proto_msg_clip(const char *msg, size_t len)
{
	if (len <= PROTO_MSG_BYTES_MAX) {
		return len;
	}
	size_t n = PROTO_MSG_BYTES_MAX;
	while (n > 0 && ((unsigned char)msg[n] & 0xC0u) == 0x80u) {
		n--;
	}
	return n;
}

static void enc_reply_head(struct proto_enc *e, uint8_t op, int err, struct proto_str msg,
			   size_t op_pairs)
{
	msgpack_pack_map(&e->pk, (op != 0 ? 4u : 3u) + op_pairs);
	enc_kv_u64(e, K_V, PROTO_VERSION);
	if (op != 0) {
		enc_key(e, K_OP);
		const char *name = proto_op_name(op);
		enc_text(e, name, strlen(name));
	}
	enc_kv_u64(e, K_ERR, (uint64_t)err);
	enc_key(e, K_MSG);
	enc_text(e, msg.ptr, msg.ptr != NULL ? proto_msg_clip(msg.ptr, msg.len) : 0);
}

static int proto_check_entry(const struct proto_entry *x)
{
	const struct proto_limit fields[] = {
		{x->kind, PROTO_KIND_BYTES_MAX},
		{x->patient, PROTO_PATIENT_BYTES_MAX},
		{x->author, PROTO_ACTOR_BYTES_MAX},
		{x->role, PROTO_ROLE_BYTES_MAX},
		{x->org, PROTO_ORG_BYTES_MAX},
		{x->unit, PROTO_UNIT_BYTES_MAX},
		{x->status, PROTO_STATUS_BYTES_MAX},
		{x->sensitivity, PROTO_SENSITIVITY_BYTES_MAX},
		{x->media_type, PROTO_MEDIA_TYPE_BYTES_MAX},
		{x->request_id, PROTO_REQUEST_ID_BYTES_MAX},
		{x->body, PROTO_BODY_BYTES_MAX},
		{x->erased_author, PROTO_ACTOR_BYTES_MAX},
		{x->erased_org, PROTO_ORG_BYTES_MAX},
		{x->erased_basis, PROTO_TEXT_BYTES_MAX},
	};
	return proto_check_strs(fields, CL_ARRAY_LEN(fields));
}

static void enc_entry(struct proto_enc *e, const struct proto_entry *x)
{
	/* an erased entry says by whom: the five erased_* keys follow "erased" */
	size_t pairs = 17u + x->has_corrects + (x->body_erased ? 6u : 0u) + x->has_superseded_by;
	size_t keys_before = e->keys;
	msgpack_pack_map(&e->pk, pairs);
	enc_kv_u64(e, K_INDEX, x->index);
	enc_kv_bin(e, K_ID, x->id, PROTO_ID_BYTES);
	enc_kv_str(e, K_KIND, x->kind);
	enc_kv_str(e, K_PATIENT, x->patient);
	enc_kv_str(e, K_AUTHOR, x->author);
	enc_kv_str(e, K_ROLE, x->role);
	enc_kv_str(e, K_ORG, x->org);
	enc_kv_str(e, K_UNIT, x->unit);
	enc_kv_u64(e, K_NODE_ID, x->node_id);
	enc_kv_u64(e, K_TIME_MS, x->time_ms);
	enc_kv_u64(e, K_AUTHOR_TIME_MS, x->author_time_ms);
	enc_kv_u64(e, K_CLINICAL_TIME_MS, x->clinical_time_ms);
	enc_kv_str(e, K_STATUS, x->status);
	enc_kv_str(e, K_SENSITIVITY, x->sensitivity);
	enc_kv_str(e, K_MEDIA_TYPE, x->media_type);
	enc_kv_str(e, K_REQUEST_ID, x->request_id);
	if (x->has_corrects) {
		enc_kv_bin(e, K_CORRECTS, x->corrects, PROTO_ID_BYTES);
	}
	if (x->body_erased) {
		enc_kv_bool(e, K_ERASED, true);
		enc_kv_u64(e, K_ERASED_INDEX, x->erased_index);
		enc_kv_u64(e, K_ERASED_TIME_MS, x->erased_time_ms);
		enc_kv_str(e, K_ERASED_AUTHOR, x->erased_author);
		enc_kv_str(e, K_ERASED_ORG, x->erased_org);
		enc_kv_str(e, K_ERASED_BASIS, x->erased_basis);
	}
	enc_kv_bin(e, K_BODY, x->body.ptr, x->body.len);
	if (x->has_superseded_by) {
		enc_kv_bin(e, K_SUPERSEDED_BY, x->superseded_by, PROTO_ID_BYTES);
	}
	CL_ASSERT(e->keys - keys_before == pairs);
}

/* An array of `n` elements at `ptr`: ETOOBIG beyond `max`, EINVAL when missing. */
static int proto_check_array(uint32_t n, uint32_t max, const void *ptr)
{
	if (n > max) {
		return CARELOG_ETOOBIG;
	}
	return n > 0 && ptr == NULL ? CARELOG_EINVAL : CARELOG_OK;
}

static int proto_check_access_row(const struct proto_access_row *w)
{
	const struct proto_limit fields[] = {
		{w->actor, PROTO_ACTOR_BYTES_MAX},    {w->role, PROTO_ROLE_BYTES_MAX},
		{w->org, PROTO_ORG_BYTES_MAX},        {w->unit, PROTO_UNIT_BYTES_MAX},
		{w->patient, PROTO_PATIENT_BYTES_MAX}, {w->action, PROTO_WORD_BYTES_MAX},
		{w->basis, PROTO_WORD_BYTES_MAX},     {w->purpose, PROTO_PURPOSE_BYTES_MAX},
		{w->outcome, PROTO_WORD_BYTES_MAX},
	};
	return proto_check_strs(fields, CL_ARRAY_LEN(fields));
}

static void enc_access_row(struct proto_enc *e, const struct proto_access_row *w)
{
	size_t pairs = 16u + w->has_entry;
	size_t keys_before = e->keys;
	msgpack_pack_map(&e->pk, pairs);
	enc_kv_u64(e, K_NODE_ID, w->node_id);
	enc_kv_u64(e, K_SEQ, w->seq);
	enc_kv_u64(e, K_TIME_MS, w->time_ms);
	enc_kv_str(e, K_ACTOR, w->actor);
	enc_kv_str(e, K_ROLE, w->role);
	enc_kv_str(e, K_ORG, w->org);
	enc_kv_str(e, K_UNIT, w->unit);
	enc_kv_str(e, K_PATIENT, w->patient);
	enc_kv_str(e, K_ACTION, w->action);
	enc_kv_bool(e, K_ALLOWED, w->allowed);
	enc_kv_str(e, K_BASIS, w->basis);
	enc_kv_u64(e, K_COUNT, w->count);
	enc_kv_u64(e, K_WITHHELD, w->withheld);
	if (w->has_entry) {
		enc_kv_bin(e, K_ENTRY, w->entry, PROTO_ID_BYTES);
	}
	enc_kv_str(e, K_PURPOSE, w->purpose);
	enc_kv_str(e, K_OUTCOME, w->outcome);
	enc_kv_bool(e, K_SHIPPED, w->shipped);
	CL_ASSERT(e->keys - keys_before == pairs);
}

static int proto_check_btg_grant(const struct proto_btg_grant *g)
{
	const struct proto_limit fields[] = {
		{g->patient, PROTO_PATIENT_BYTES_MAX},
		{g->actor, PROTO_ACTOR_BYTES_MAX},
		{g->role, PROTO_ROLE_BYTES_MAX},
		{g->org, PROTO_ORG_BYTES_MAX},
		{g->unit, PROTO_UNIT_BYTES_MAX},
		{g->reason_code, PROTO_REASON_CODE_BYTES_MAX},
		{g->reason_text, PROTO_TEXT_BYTES_MAX},
	};
	return proto_check_strs(fields, CL_ARRAY_LEN(fields));
}

static void enc_btg_grant(struct proto_enc *e, const struct proto_btg_grant *g)
{
	size_t keys_before = e->keys;
	msgpack_pack_map(&e->pk, 11);
	enc_kv_bin(e, K_ID, g->id, PROTO_ID_BYTES);
	enc_kv_u64(e, K_INDEX, g->index);
	enc_kv_str(e, K_PATIENT, g->patient);
	enc_kv_str(e, K_ACTOR, g->actor);
	enc_kv_str(e, K_ROLE, g->role);
	enc_kv_str(e, K_ORG, g->org);
	enc_kv_str(e, K_UNIT, g->unit);
	enc_kv_u64(e, K_GRANTED_MS, g->granted_ms);
	enc_kv_u64(e, K_EXPIRES_MS, g->expires_ms);
	enc_kv_str(e, K_REASON_CODE, g->reason_code);
	enc_kv_str(e, K_REASON_TEXT, g->reason_text);
	CL_ASSERT(e->keys - keys_before == 11);
}

static int proto_check_reply(const struct proto_reply *rep)
{
	int rc = CARELOG_OK;
	switch (rep->op) {
	case PROTO_OP_STATUS: {
		const struct proto_status_reply *s = &rep->u.status;
		rc = proto_check_str(s->role, PROTO_NODE_ROLE_BYTES_MAX);
		if (rc == CARELOG_OK && s->members_count > PROTO_MEMBERS_MAX) {
			rc = CARELOG_ETOOBIG;
		}
		if (rc == CARELOG_OK && s->members_count > 0 && s->members == NULL) {
			rc = CARELOG_EINVAL;
		}
		for (uint32_t i = 0; i < s->members_count && rc == CARELOG_OK; i++) {
			const struct proto_member *m = &s->members[i];
			rc = proto_check_str(m->role, PROTO_NODE_ROLE_BYTES_MAX);
			if (rc == CARELOG_OK) {
				rc = proto_check_str(m->org, PROTO_ORG_BYTES_MAX);
			}
			if (rc == CARELOG_OK) {
				rc = proto_check_str(m->address, PROTO_ADDRESS_BYTES_MAX);
			}
		}
		break;
	}
	case PROTO_OP_MEMBER:
	case PROTO_OP_TRANSFER:
		break;
	case PROTO_OP_APPEND:
	case PROTO_OP_POLICY:
		rc = proto_check_str(rep->u.append.request_id, PROTO_REQUEST_ID_BYTES_MAX);
		break;
	case PROTO_OP_READ: {
		const struct proto_read_reply *r = &rep->u.read;
		rc = proto_check_array(r->entries_count, PROTO_READ_LIMIT_MAX, r->entries);
		for (uint32_t i = 0; i < r->entries_count && rc == CARELOG_OK; i++) {
			rc = proto_check_entry(&r->entries[i]);
		}
		if (rc == CARELOG_OK) {
			rc = proto_check_str(r->basis, PROTO_WORD_BYTES_MAX);
		}
		if (rc == CARELOG_OK) {
			rc = proto_check_array(r->withheld_reasons_count, PROTO_WITHHELD_REASONS_MAX,
					       r->withheld_reasons);
		}
		for (uint32_t i = 0; i < r->withheld_reasons_count && rc == CARELOG_OK; i++) {
			rc = proto_check_str(r->withheld_reasons[i].reason, PROTO_REASON_BYTES_MAX);
		}
		break;
	}
	case PROTO_OP_ACCESS_LOG: {
		const struct proto_access_log_reply *a = &rep->u.access_log;
		rc = proto_check_array(a->rows_count, PROTO_ACCESS_LOG_ROWS_MAX, a->rows);
		for (uint32_t i = 0; i < a->rows_count && rc == CARELOG_OK; i++) {
			rc = proto_check_access_row(&a->rows[i]);
		}
		break;
	}
	case PROTO_OP_BTG_LIST: {
		const struct proto_btg_list_reply *b = &rep->u.btg_list;
		rc = proto_check_array(b->grants_count, PROTO_BTG_GRANTS_MAX, b->grants);
		for (uint32_t i = 0; i < b->grants_count && rc == CARELOG_OK; i++) {
			rc = proto_check_btg_grant(&b->grants[i]);
		}
		break;
	}
	case PROTO_OP_GET:
		rc = proto_check_entry(&rep->u.get);
		break;
	case PROTO_OP_VERIFY: {
		const struct proto_verify_reply *v = &rep->u.verify;
		if (v->problems_listed > PROTO_PROBLEMS_MAX) {
			rc = CARELOG_ETOOBIG;
		} else if (v->problems_listed > 0 && v->problems == NULL) {
			rc = CARELOG_EINVAL;
		} else if (v->problems_count < v->problems_listed) {
			rc = CARELOG_EINVAL;
		}
		for (uint32_t i = 0; i < v->problems_listed && rc == CARELOG_OK; i++) {
			rc = proto_check_str(v->problems[i], PROTO_PROBLEM_BYTES_MAX);
		}
		break;
	}
	default:
		rc = CARELOG_EINVAL;
		break;
	}
	return rc;
}

/* A map of named uint counters (the status reply's "transport" and "audit"). */
static void enc_kv_counters(struct proto_enc *e, enum proto_key k, const char *const *names,
			    const uint64_t *values, int count)
{
	enc_key(e, k);
	msgpack_pack_map(&e->pk, (size_t)count);
	for (int i = 0; i < count; i++) {
		enc_text(e, names[i], strlen(names[i]));
		msgpack_pack_uint64(&e->pk, values[i]);
	}
}

static void enc_reply_body(struct proto_enc *e, const struct proto_reply *rep)
{
	switch (rep->op) {
	case PROTO_OP_STATUS: {
		const struct proto_status_reply *s = &rep->u.status;
		enc_kv_u64(e, K_NODE_ID, s->node_id);
		enc_kv_str(e, K_ROLE, s->role);
		enc_kv_u64(e, K_TERM, s->term);
		enc_kv_u64(e, K_LEADER_ID, s->leader_id);
		enc_kv_u64(e, K_COMMIT_INDEX, s->commit_index);
		enc_kv_u64(e, K_APPLIED_INDEX, s->applied_index);
		enc_kv_bin(e, K_CHAIN_HEAD, s->chain_head, PROTO_ID_BYTES);
		enc_key(e, K_MEMBERS);
		msgpack_pack_array(&e->pk, s->members_count);
		for (uint32_t i = 0; i < s->members_count; i++) {
			const struct proto_member *m = &s->members[i];
			msgpack_pack_map(&e->pk, 6);
			enc_kv_u64(e, K_ID, m->id);
			enc_kv_str(e, K_ROLE, m->role);
			enc_kv_str(e, K_ORG, m->org);
			enc_kv_str(e, K_ADDRESS, m->address);
			enc_key(e, K_MATCH_INDEX);
			if (m->has_match) {
				msgpack_pack_uint64(&e->pk, m->match_index);
			} else {
				msgpack_pack_nil(&e->pk); /* no progress known: not the same as 0 */
			}
			enc_kv_u64(e, K_LAG, m->lag);
		}
		enc_kv_u64(e, K_LAST_INDEX, s->last_index);
		enc_kv_u64(e, K_PROGRESS_AGE_MS, s->progress_age_ms);
		enc_kv_u64(e, K_VERIFIED_SIGNATURES, s->verified_signatures);
		enc_kv_u64(e, K_SYNCS, s->syncs);
		const struct proto_transport_stats *t = &s->transport;
		const uint64_t tv[TK_COUNT_] = {
			[TK_SENT] = t->sent,
			[TK_RECEIVED] = t->received,
			[TK_DROPPED_AUTH] = t->dropped_auth,
			[TK_DROPPED_REPLAY] = t->dropped_replay,
			[TK_DROPPED_UNKNOWN] = t->dropped_unknown,
			[TK_HANDSHAKES] = t->handshakes,
		};
		enc_kv_counters(e, K_TRANSPORT, proto_transport_key_names, tv, TK_COUNT_);
		if (s->has_audit) {
			const struct proto_audit_stats *a = &s->audit;
			const uint64_t av[AK_COUNT_] = {
				[AK_QUEUED_ROWS] = a->queued_rows,
				[AK_NEXT_SEQ] = a->next_seq,
				[AK_SHIPPED_SEQ] = a->shipped_seq,
				[AK_SYNCS] = a->syncs,
				[AK_WRITE_FAILURES] = a->write_failures,
				[AK_SHIP_FAILURES] = a->ship_failures,
			};
			enc_kv_counters(e, K_AUDIT, proto_audit_key_names, av, AK_COUNT_);
		}
		break;
	}
	case PROTO_OP_MEMBER:
		enc_kv_u64(e, K_INDEX, rep->u.member.index);
		break;
	case PROTO_OP_TRANSFER:
		enc_kv_u64(e, K_LEADER_ID, rep->u.transfer.leader_id);
		break;
	case PROTO_OP_APPEND:
	case PROTO_OP_POLICY: {
		const struct proto_append_reply *a = &rep->u.append;
		enc_kv_bool(e, K_COMMITTED, a->committed);
		enc_kv_u64(e, K_INDEX, a->index);
		enc_kv_bin(e, K_ID, a->id, PROTO_ID_BYTES);
		enc_kv_str(e, K_REQUEST_ID, a->request_id);
		enc_kv_bool(e, K_DUPLICATE, a->duplicate);
		break;
	}
	case PROTO_OP_READ: {
		const struct proto_read_reply *r = &rep->u.read;
		enc_kv_u64(e, K_APPLIED_INDEX, r->applied_index);
		enc_kv_u64(e, K_LAG, r->lag);
		enc_kv_bool(e, K_STALE, r->stale);
		enc_kv_u64(e, K_WITHHELD, r->withheld);
		enc_kv_bool(e, K_MORE, r->more);
		enc_key(e, K_ENTRIES);
		msgpack_pack_array(&e->pk, r->entries_count);
		for (uint32_t i = 0; i < r->entries_count; i++) {
			enc_entry(e, &r->entries[i]);
		}
		enc_kv_str(e, K_BASIS, r->basis);
		enc_key(e, K_WITHHELD_REASONS);
		msgpack_pack_array(&e->pk, r->withheld_reasons_count);
		for (uint32_t i = 0; i < r->withheld_reasons_count; i++) {
			size_t keys_before = e->keys;
			msgpack_pack_map(&e->pk, 2);
			enc_kv_str(e, K_REASON, r->withheld_reasons[i].reason);
			enc_kv_u64(e, K_COUNT, r->withheld_reasons[i].count);
			e->keys = keys_before;
		}
		break;
	}
	case PROTO_OP_ACCESS_LOG: {
		const struct proto_access_log_reply *a = &rep->u.access_log;
		enc_kv_u64(e, K_APPLIED_INDEX, a->applied_index);
		enc_key(e, K_ROWS);
		msgpack_pack_array(&e->pk, a->rows_count);
		for (uint32_t i = 0; i < a->rows_count; i++) {
			size_t keys_before = e->keys;
			enc_access_row(e, &a->rows[i]);
			e->keys = keys_before;
		}
		break;
	}
	case PROTO_OP_BTG_LIST: {
		const struct proto_btg_list_reply *b = &rep->u.btg_list;
		enc_key(e, K_GRANTS);
		msgpack_pack_array(&e->pk, b->grants_count);
		for (uint32_t i = 0; i < b->grants_count; i++) {
			size_t keys_before = e->keys;
			enc_btg_grant(e, &b->grants[i]);
			e->keys = keys_before;
		}
		break;
	}
	case PROTO_OP_GET:
		enc_key(e, K_ENTRY);
		enc_entry(e, &rep->u.get);
		break;
	case PROTO_OP_VERIFY: {
		const struct proto_verify_reply *v = &rep->u.verify;
		enc_kv_bool(e, K_OK, v->ok);
		enc_kv_u64(e, K_ENTRIES_CHECKED, v->entries_checked);
		enc_kv_u64(e, K_VALUES_CHECKED, v->values_checked);
		enc_kv_u64(e, K_PROBLEMS_COUNT, v->problems_count);
		enc_key(e, K_PROBLEMS);
		msgpack_pack_array(&e->pk, v->problems_listed);
		for (uint32_t i = 0; i < v->problems_listed; i++) {
			enc_text(e, v->problems[i].ptr, v->problems[i].len);
		}
		enc_kv_bin(e, K_CHAIN_HEAD, v->chain_head, PROTO_ID_BYTES);
		enc_kv_u64(e, K_APPLIED_INDEX, v->applied_index);
		break;
	}
	default:
		CL_UNREACHABLE();
	}
}

static size_t proto_reply_pairs(const struct proto_reply *rep)
{
	switch (rep->op) {
	case PROTO_OP_STATUS:
		return rep->u.status.has_audit ? 14 : 13;
	case PROTO_OP_APPEND:
	case PROTO_OP_POLICY:
		return 5;
	case PROTO_OP_READ:
		return 8;
	case PROTO_OP_ACCESS_LOG:
		return 2;
	case PROTO_OP_BTG_LIST:
		return 1;
	case PROTO_OP_GET:
		return 1;
	case PROTO_OP_VERIFY:
		return 7;
	case PROTO_OP_MEMBER:
	case PROTO_OP_TRANSFER:
		return 1;
	default:
		CL_UNREACHABLE();
	}
}

int proto_reply_encode(const struct proto_reply *rep, struct proto_buf *out)
{
	CL_ASSERT(rep != NULL && out != NULL);
	CL_ASSERT(out->len == 0);
	if (rep->err < 0 || (rep->msg.ptr == NULL && rep->msg.len > 0)) {
		return CARELOG_EINVAL;
	}
	if (rep->err != CARELOG_OK) {
		/* A failed op carries no op fields: the client must not read half an answer. */
		if (rep->op == 0 || proto_op_name(rep->op)[0] != '?') {
			struct proto_enc e;
			proto_enc_init(&e, out);
			enc_reply_head(&e, rep->op, rep->err, rep->msg, 0);
			return proto_enc_finish(&e);
		}
		return CARELOG_EINVAL;
	}
	int rc = proto_check_reply(rep);
	if (rc != CARELOG_OK) {
		return rc;
	}
	struct proto_enc e;
	proto_enc_init(&e, out);
	size_t pairs = proto_reply_pairs(rep);
	enc_reply_head(&e, rep->op, rep->err, rep->msg, pairs);
	size_t keys_before = e.keys;
	enc_reply_body(&e, rep);
	/* top-level keys only: entries and members count their own */
	CL_ASSERT(rep->op == PROTO_OP_GET || rep->op == PROTO_OP_READ || rep->op == PROTO_OP_STATUS ||
		  e.keys - keys_before == pairs);
	return proto_enc_finish(&e);
}

int proto_reply_encode_error(uint8_t op, int err, const char *msg, struct proto_buf *out)
{
	CL_ASSERT(out != NULL);
	struct proto_reply rep = {.version = PROTO_VERSION, .op = op, .err = err};
	if (msg != NULL) {
		rep.msg.ptr = msg;
		rep.msg.len = strlen(msg);
	}
	if (err == CARELOG_OK) {
		return CARELOG_EINVAL;
	}
	return proto_reply_encode(&rep, out);
}

/* ---------------------------------------------------------------- reading */

struct proto_rd {
	const uint8_t *p;
	const uint8_t *end;
	char *why; /* may be NULL */
	size_t why_len;
};

CL_PRINTF(3, 4)
static int rd_fail(struct proto_rd *r, int err, const char *fmt, ...)
{
	if (r->why != NULL && r->why_len > 0 && r->why[0] == '\0') {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(r->why, r->why_len, fmt, ap);
		va_end(ap);
	}
	return err;
}

static size_t rd_left(const struct proto_rd *r)
{
	return (size_t)(r->end - r->p);
}

static uint64_t rd_be(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		v = v << 8 | p[i];
	}
	return v;
}

enum proto_mp_type {
	MP_NIL,
	MP_BOOL,
	MP_UINT,
	MP_NINT,
	MP_FLOAT,
	MP_STR,
	MP_BIN,
	MP_ARRAY,
	MP_MAP,
	MP_EXT,
};

static const char *const proto_mp_type_names[] = {
	[MP_NIL] = "nil",     [MP_BOOL] = "bool", [MP_UINT] = "unsigned integer",
	[MP_NINT] = "negative integer", [MP_FLOAT] = "float", [MP_STR] = "string",
	[MP_BIN] = "binary",  [MP_ARRAY] = "array", [MP_MAP] = "map",
	[MP_EXT] = "extension",
};

/* One item header. For str/bin/ext `ptr`/`n` is the payload (already skipped over); for
 * array/map `n` is the element count (elements follow); for scalars `u` is the value. */
struct proto_item {
	enum proto_mp_type type;
	uint64_t u;
	const uint8_t *ptr;
	size_t n;
};

static int rd_take(struct proto_rd *r, size_t n, const uint8_t **out)
{
	if (rd_left(r) < n) {
		return rd_fail(r, CARELOG_EPROTO, "truncated message");
	}
	*out = r->p;
	r->p += n;
	return CARELOG_OK;
}

static int rd_payload(struct proto_rd *r, size_t len_bytes, struct proto_item *it)
{
	const uint8_t *p = NULL;
	int rc = rd_take(r, len_bytes, &p);
	if (rc != CARELOG_OK) {
		return rc;
	}
	uint64_t n = rd_be(p, len_bytes);
	if (n > rd_left(r)) {
		return rd_fail(r, CARELOG_EPROTO, "truncated message");
	}
	it->n = (size_t)n;
	return rd_take(r, it->n, &it->ptr);
}

static int rd_count(struct proto_rd *r, size_t len_bytes, size_t per_element,
		    struct proto_item *it)
{
	const uint8_t *p = NULL;
	int rc = rd_take(r, len_bytes, &p);
	if (rc != CARELOG_OK) {
		return rc;
	}
	uint64_t n = rd_be(p, len_bytes);
	/* Each element takes at least one byte: a count beyond the rest is a lie, refused before
	 * anyone loops over it or allocates for it. */
	if (n > rd_left(r) / per_element) {
		return rd_fail(r, CARELOG_EPROTO, "truncated message");
	}
	it->n = (size_t)n;
	return CARELOG_OK;
}

static int rd_item(struct proto_rd *r, struct proto_item *it)
{
	if (rd_left(r) < 1) {
		return rd_fail(r, CARELOG_EPROTO, "truncated message");
	}
	const uint8_t *p = NULL;
	int rc;
	uint8_t b = *r->p++;
	memset(it, 0, sizeof(*it));
	if (b <= 0x7f) {
		it->type = MP_UINT;
		it->u = b;
		return CARELOG_OK;
	}
	if (b >= 0xe0) {
		it->type = MP_NINT;
		return CARELOG_OK;
	}
	if (b >= 0x80 && b <= 0x8f) {
		it->type = MP_MAP;
		it->u = b & 0x0fu;
		if (it->u > rd_left(r) / 2) {
			return rd_fail(r, CARELOG_EPROTO, "truncated message");
		}
		it->n = (size_t)it->u;
		return CARELOG_OK;
	}
	if (b >= 0x90 && b <= 0x9f) {
		it->type = MP_ARRAY;
		it->u = b & 0x0fu;
		if (it->u > rd_left(r)) {
			return rd_fail(r, CARELOG_EPROTO, "truncated message");
		}
		it->n = (size_t)it->u;
		return CARELOG_OK;
	}
	if (b >= 0xa0 && b <= 0xbf) {
		it->type = MP_STR;
		it->n = b & 0x1fu;
		return rd_take(r, it->n, &it->ptr);
	}
	switch (b) {
	case 0xc0:
		it->type = MP_NIL;
		return CARELOG_OK;
	case 0xc2:
	case 0xc3:
		it->type = MP_BOOL;
		it->u = b == 0xc3;
		return CARELOG_OK;
	case 0xc4:
	case 0xc5:
	case 0xc6:
		it->type = MP_BIN;
		return rd_payload(r, (size_t)1 << (b - 0xc4), it);
	case 0xc7:
	case 0xc8:
	case 0xc9: {
		it->type = MP_EXT;
		size_t lb = (size_t)1 << (b - 0xc7);
		rc = rd_take(r, lb, &p);
		if (rc != CARELOG_OK) {
			return rc;
		}
		uint64_t n = rd_be(p, lb);
		if (rd_left(r) < 1 || n > rd_left(r) - 1) {
			return rd_fail(r, CARELOG_EPROTO, "truncated message");
		}
		it->n = (size_t)n;
		return rd_take(r, 1 + it->n, &it->ptr);
	}
	case 0xca:
	case 0xcb:
		it->type = MP_FLOAT;
		return rd_take(r, b == 0xca ? 4 : 8, &p);
	case 0xcc:
	case 0xcd:
	case 0xce:
	case 0xcf: {
		size_t w = (size_t)1 << (b - 0xcc);
		rc = rd_take(r, w, &p);
		if (rc != CARELOG_OK) {
			return rc;
		}
		it->type = MP_UINT;
		it->u = rd_be(p, w);
		return CARELOG_OK;
	}
	case 0xd0:
	case 0xd1:
	case 0xd2:
	case 0xd3: {
		size_t w = (size_t)1 << (b - 0xd0);
		if (rd_left(r) < w) {
			return rd_fail(r, CARELOG_EPROTO, "truncated message");
		}
		p = r->p;
		r->p += w;
		/* Some encoders write small non-negative values as signed ints: accept them. */
		if (p[0] & 0x80u) {
			it->type = MP_NINT;
		} else {
			it->type = MP_UINT;
			it->u = rd_be(p, w);
		}
		return CARELOG_OK;
	}
	case 0xd4:
	case 0xd5:
	case 0xd6:
	case 0xd7:
	case 0xd8:
		it->type = MP_EXT;
		it->n = (size_t)1 << (b - 0xd4);
		return rd_take(r, 1 + it->n, &it->ptr);
	case 0xd9:
	case 0xda:
	case 0xdb:
		it->type = MP_STR;
		return rd_payload(r, (size_t)1 << (b - 0xd9), it);
	case 0xdc:
	case 0xdd:
		it->type = MP_ARRAY;
		return rd_count(r, b == 0xdc ? 2 : 4, 1, it);
	case 0xde:
	case 0xdf:
		it->type = MP_MAP;
		return rd_count(r, b == 0xde ? 2 : 4, 2, it);
	default: /* 0xc1 is never used */
		return rd_fail(r, CARELOG_EPROTO, "invalid msgpack byte 0x%02x", b);
	}
}

static int rd_skip(struct proto_rd *r, int depth)
{
	if (depth > PROTO_NESTING_MAX) {
		return rd_fail(r, CARELOG_EPROTO, "nesting deeper than %d", PROTO_NESTING_MAX);
	}
	struct proto_item it;
	int rc = rd_item(r, &it);
	if (rc != CARELOG_OK) {
		return rc;
	}
	size_t children = it.type == MP_ARRAY ? it.n : it.type == MP_MAP ? 2 * it.n : 0;
	for (size_t i = 0; i < children && rc == CARELOG_OK; i++) {
		rc = rd_skip(r, depth + 1);
	}
	return rc;
}

static int rd_expect(struct proto_rd *r, enum proto_key k, enum proto_mp_type type,
		     struct proto_item *it)
{
	int rc = rd_item(r, it);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (it->type != type) {
		return rd_fail(r, CARELOG_EPROTO, "key \"%s\": %s where %s expected",
			       proto_key_names[k], proto_mp_type_names[it->type],
			       proto_mp_type_names[type]);
	}
	return CARELOG_OK;
}

static int rd_u64(struct proto_rd *r, enum proto_key k, uint64_t max, uint64_t *out)
{
	struct proto_item it;
	int rc = rd_expect(r, k, MP_UINT, &it);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (it.u > max) {
		return rd_fail(r, CARELOG_ETOOBIG, "key \"%s\": %llu > %llu", proto_key_names[k],
			       (unsigned long long)it.u, (unsigned long long)max);
	}
	*out = it.u;
	return CARELOG_OK;
}

static int rd_u32(struct proto_rd *r, enum proto_key k, uint32_t max, uint32_t *out)
{
	uint64_t v;
	int rc = rd_u64(r, k, max, &v);
	if (rc == CARELOG_OK) {
		*out = (uint32_t)v;
	}
	return rc;
}

static int rd_bool(struct proto_rd *r, enum proto_key k, bool *out)
{
	struct proto_item it;
	int rc = rd_expect(r, k, MP_BOOL, &it);
	if (rc == CARELOG_OK) {
		*out = it.u != 0;
	}
	return rc;
}

static int rd_bytes(struct proto_rd *r, enum proto_key k, enum proto_mp_type type, size_t max,
		    struct proto_str *out)
{
	struct proto_item it;
	int rc = rd_expect(r, k, type, &it);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (it.n > max) {
		return rd_fail(r, CARELOG_ETOOBIG, "key \"%s\": %zu bytes > %zu", proto_key_names[k],
			       it.n, max);
	}
	out->ptr = (const char *)it.ptr;
	out->len = it.n;
	return CARELOG_OK;
}

static int rd_str(struct proto_rd *r, enum proto_key k, size_t max, struct proto_str *out)
{
	return rd_bytes(r, k, MP_STR, max, out);
}

static int rd_id(struct proto_rd *r, enum proto_key k, uint8_t out[PROTO_ID_BYTES])
{
	struct proto_str s;
	int rc = rd_bytes(r, k, MP_BIN, PROTO_ID_BYTES, &s);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (s.len != PROTO_ID_BYTES) {
		return rd_fail(r, CARELOG_EPROTO, "key \"%s\": %zu bytes where %d expected",
			       proto_key_names[k], s.len, PROTO_ID_BYTES);
	}
	memcpy(out, s.ptr, PROTO_ID_BYTES);
	return CARELOG_OK;
}

/* Reads a map key; *out_key is -1 for a key this version does not know. */
static int rd_key(struct proto_rd *r, int *out_key, struct proto_str *out_name)
{
	struct proto_item it;
	int rc = rd_item(r, &it);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (it.type != MP_STR) {
		return rd_fail(r, CARELOG_EPROTO, "map key is a %s, not a string",
			       proto_mp_type_names[it.type]);
	}
	out_name->ptr = (const char *)it.ptr;
	out_name->len = it.n;
	*out_key = proto_key_lookup(*out_name);
	return CARELOG_OK;
}

static int rd_seen(struct proto_rd *r, struct proto_keys *seen, int k)
{
	if (keys_has(*seen, k)) {
		return rd_fail(r, CARELOG_EPROTO, "key \"%s\" twice", proto_key_names[k]);
	}
	seen->w[k / 64] |= (uint64_t)1 << (k % 64);
	return CARELOG_OK;
}

static int rd_map(struct proto_rd *r, const char *what, size_t keys_max, size_t *out_n)
{
	struct proto_item it;
	int rc = rd_item(r, &it);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (it.type != MP_MAP) {
		return rd_fail(r, CARELOG_EPROTO, "%s is a %s, not a map", what,
			       proto_mp_type_names[it.type]);
	}
	if (it.n > keys_max) {
		return rd_fail(r, CARELOG_EPROTO, "%s has %zu keys (at most %zu)", what, it.n,
			       keys_max);
	}
	*out_n = it.n;
	return CARELOG_OK;
}

/* The version comes first in meaning, not necessarily on the wire: find "v" before judging
 * the rest, so a future version's unknown keys give EVERSION rather than EPROTO. */
static int rd_version(const uint8_t *bytes, size_t len, char *why, size_t why_len)
{
	struct proto_rd r = {.p = bytes, .end = bytes + len, .why = why, .why_len = why_len};
	size_t n;
	int rc = rd_map(&r, "message", PROTO_MAP_KEYS_MAX, &n);
	for (size_t i = 0; i < n && rc == CARELOG_OK; i++) {
		int k;
		struct proto_str name;
		rc = rd_key(&r, &k, &name);
		if (rc != CARELOG_OK) {
			break;
		}
		if (k != K_V) {
			rc = rd_skip(&r, 1);
			continue;
		}
		struct proto_item it;
		rc = rd_expect(&r, K_V, MP_UINT, &it);
		if (rc != CARELOG_OK) {
			return rc;
		}
		if (it.u != PROTO_VERSION) {
			return rd_fail(&r, CARELOG_EVERSION, "protocol version %llu (this side speaks %d)",
				       (unsigned long long)it.u, PROTO_VERSION);
		}
		return CARELOG_OK;
	}
	return rc != CARELOG_OK ? rc : rd_fail(&r, CARELOG_EPROTO, "key \"v\" missing");
}

/* What every decode does first: an empty `reason`, a reader over the bytes, the size bounds and
 * the version. */
static int rd_begin(struct proto_rd *r, const uint8_t *bytes, size_t len, char *reason,
		    size_t reason_len)
{
	if (reason != NULL && reason_len > 0) {
		reason[0] = '\0';
	}
	*r = (struct proto_rd){.p = bytes, .end = bytes + len, .why = reason, .why_len = reason_len};
	if (bytes == NULL || len == 0) {
		return rd_fail(r, CARELOG_EPROTO, "empty message");
	}
	if (len > PROTO_MESSAGE_BYTES_MAX) {
		return rd_fail(r, CARELOG_ETOOBIG, "message of %zu bytes > %d", len,
			       PROTO_MESSAGE_BYTES_MAX);
	}
	return rd_version(bytes, len, reason, reason_len);
}

static int rd_check_end(struct proto_rd *r)
{
	if (r->p != r->end) {
		return rd_fail(r, CARELOG_EPROTO, "%zu bytes after the message", rd_left(r));
	}
	return CARELOG_OK;
}

/* ---------------------------------------------------------------- request decoding */

/* The keys a request of `op` may carry. Every op allows the head and the actor. */
static struct proto_keys proto_req_allowed(uint8_t op)
{
	struct proto_keys head = KEYS(K_V, K_OP, K_TIMEOUT_MS, K_ACTOR);
	switch (op) {
	case PROTO_OP_APPEND:
		return keys_or(head, KEYS(K_PATIENT, K_KIND, K_REQUEST_ID, K_MEDIA_TYPE, K_STATUS,
					  K_SENSITIVITY, K_CLINICAL_TIME_MS, K_CORRECTS, K_BODY));
	case PROTO_OP_READ:
		return keys_or(head, KEYS(K_PATIENT, K_CONSISTENCY, K_MIN_INDEX, K_KIND,
					  K_SINCE_INDEX, K_LIMIT, K_HISTORY));
	case PROTO_OP_GET:
		return keys_or(head, KEYS(K_ID));
	case PROTO_OP_MEMBER:
		return keys_or(head, KEYS(K_ACTION, K_ID, K_ORG, K_ADDRESS, K_PUBLIC_KEY));
	case PROTO_OP_TRANSFER:
		return keys_or(head, KEYS(K_TO));
	case PROTO_OP_POLICY:
		return keys_or(head, KEYS(K_POLICY));
	case PROTO_OP_ACCESS_LOG:
		return keys_or(head, KEYS(K_PATIENT, K_ACTOR_ID, K_ACTOR_ORG, K_LIMIT));
	case PROTO_OP_BTG_LIST:
		return keys_or(head, KEYS(K_PATIENT, K_LIMIT));
	default: /* status, verify */
		return head;
	}
}

/* The keys a request of `op` must carry. */
static struct proto_keys proto_req_required(uint8_t op)
{
	struct proto_keys head = KEYS(K_V, K_OP);
	switch (op) {
	case PROTO_OP_APPEND:
		return keys_or(head, KEYS(K_PATIENT, K_KIND, K_REQUEST_ID, K_BODY));
	case PROTO_OP_READ:
		return keys_or(head, KEYS(K_PATIENT));
	case PROTO_OP_GET:
		return keys_or(head, KEYS(K_ID));
	case PROTO_OP_MEMBER:
		return keys_or(head, KEYS(K_ACTION, K_ID));
	case PROTO_OP_TRANSFER:
		return keys_or(head, KEYS(K_TO));
	case PROTO_OP_POLICY:
		return keys_or(head, KEYS(K_POLICY));
	default: /* status, verify, access-log (patient or actor_id: checked apart), btg-list */
		return head;
	}
}

/* The largest "limit" each op accepts. */
static uint32_t proto_req_limit_max(uint8_t op)
{
	switch (op) {
	case PROTO_OP_ACCESS_LOG:
		return PROTO_ACCESS_LOG_ROWS_MAX;
	case PROTO_OP_BTG_LIST:
		return PROTO_BTG_GRANTS_MAX;
	default:
		return PROTO_READ_LIMIT_MAX;
	}
}

/* What add-learner needs beyond the op's required keys, and what the other actions refuse. */
#define REQ_MEMBER_NEW KEYS(K_ORG, K_ADDRESS, K_PUBLIC_KEY)

/* Every request field, before we know which op they belong to. */
struct proto_req_fields {
	struct proto_actor actor;
	struct proto_str patient, kind, request_id, media_type, status, sensitivity, body;
	uint64_t clinical_time_ms, min_index, since_index;
	uint32_t limit, timeout_ms;
	uint8_t consistency;
	bool history;
	bool has_corrects;
	uint8_t corrects[PROTO_ID_BYTES];
	uint8_t id[PROTO_ID_BYTES]; /* "id" as an entry id (get) */
	uint64_t node_id;           /* "id" as a node id (member) */
	bool id_is_node;            /* which of the two "id" was on the wire */
	uint8_t action;
	struct proto_str org, address;
	uint8_t public_key[PROTO_PUBLIC_KEY_BYTES];
	uint64_t to;
	struct proto_policy_req policy;
	struct proto_str actor_id, actor_org;
	uint8_t op;
};

/* "id" is an entry id (binary) in get and a node id (integer) in member; keys may come in
 * any order, so the type on the wire decides and proto_req_assemble checks it fits the op. */
static int rd_req_id(struct proto_rd *r, struct proto_req_fields *f)
{
	if (rd_left(r) >= 1 && (r->p[0] == 0xc4 || r->p[0] == 0xc5 || r->p[0] == 0xc6)) {
		return rd_id(r, K_ID, f->id);
	}
	f->id_is_node = true;
	return rd_u64(r, K_ID, UINT64_MAX, &f->node_id);
}

/* The key of a nested request map ("actor", "policy"): known, allowed there, not twice. */
static int rd_nested_key(struct proto_rd *r, const char *what, struct proto_keys allowed,
			 struct proto_keys *seen, int *out_key)
{
	struct proto_str name;
	int rc = rd_key(r, out_key, &name);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (*out_key < 0) {
		return rd_fail(r, CARELOG_EPROTO, "unknown key \"%.*s\" in the %s map",
			       (int)(name.len > 64 ? 64 : name.len), name.ptr, what);
	}
	if (!keys_has(allowed, *out_key)) {
		return rd_fail(r, CARELOG_EPROTO, "key \"%s\" not allowed in the %s map",
			       proto_key_names[*out_key], what);
	}
	return rd_seen(r, seen, *out_key);
}

/* The request's "actor" map: id, role, unit, purpose, each an optional str. */
static int rd_actor(struct proto_rd *r, struct proto_actor *a)
{
	size_t n;
	int rc = rd_map(r, "actor", PROTO_MAP_KEYS_MAX, &n);
	struct proto_keys seen = {{0, 0}};
	const struct proto_keys allowed = KEYS(K_ID, K_ROLE, K_UNIT, K_PURPOSE);
	for (size_t i = 0; i < n && rc == CARELOG_OK; i++) {
		int k;
		rc = rd_nested_key(r, "actor", allowed, &seen, &k);
		if (rc != CARELOG_OK) {
			break;
		}
		switch (k) {
		case K_ID:
			rc = rd_str(r, K_ID, PROTO_ACTOR_BYTES_MAX, &a->id);
			break;
		case K_ROLE:
			rc = rd_str(r, K_ROLE, PROTO_ROLE_BYTES_MAX, &a->role);
			break;
		case K_UNIT:
			rc = rd_str(r, K_UNIT, PROTO_UNIT_BYTES_MAX, &a->unit);
			break;
		default:
			CL_ASSERT(k == K_PURPOSE);
			rc = rd_str(r, K_PURPOSE, PROTO_PURPOSE_BYTES_MAX, &a->purpose);
			break;
		}
	}
	return rc;
}

static int rd_categories(struct proto_rd *r, struct proto_policy_req *p)
{
	struct proto_item it;
	int rc = rd_expect(r, K_CATEGORIES, MP_ARRAY, &it);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (it.n > PROTO_CATEGORIES_MAX) {
		return rd_fail(r, CARELOG_ETOOBIG, "key \"categories\": %zu elements > %d", it.n,
			       PROTO_CATEGORIES_MAX);
	}
	p->categories_count = (uint32_t)it.n;
	for (uint32_t i = 0; i < p->categories_count && rc == CARELOG_OK; i++) {
		rc = rd_str(r, K_CATEGORIES, PROTO_SENSITIVITY_BYTES_MAX, &p->categories[i]);
	}
	return rc;
}

/* The policy request's "policy" map (strict like the request). */
static int rd_policy(struct proto_rd *r, struct proto_policy_req *p)
{
	size_t n;
	int rc = rd_map(r, "policy", PROTO_MAP_KEYS_MAX, &n);
	struct proto_keys seen = {{0, 0}};
	const struct proto_keys allowed =
		KEYS(K_KIND, K_PATIENT, K_REQUEST_ID, K_ORG, K_UNIT, K_ACTOR, K_TARGET_ORG, K_WORD,
		     K_LEVEL, K_CATEGORY, K_REASON_CODE, K_TEXT, K_BIRTH_DATE, K_CATEGORIES, K_REF,
		     K_FROM_MS, K_TO_MS, K_HOURS, K_IMPLICIT_WINDOW_DAYS, K_BTG_HOURS_MAX,
		     K_AMBULANCE_HOURS_MAX);
	const struct {
		enum proto_key k;
		struct proto_str *dst;
		size_t max;
	} strs[] = {
		{K_KIND, &p->kind, PROTO_KIND_BYTES_MAX},
		{K_PATIENT, &p->patient, PROTO_PATIENT_BYTES_MAX},
		{K_REQUEST_ID, &p->request_id, PROTO_REQUEST_ID_BYTES_MAX},
		{K_ORG, &p->org, PROTO_ORG_BYTES_MAX},
		{K_UNIT, &p->unit, PROTO_UNIT_BYTES_MAX},
		{K_ACTOR, &p->actor, PROTO_ACTOR_BYTES_MAX},
		{K_TARGET_ORG, &p->target_org, PROTO_ORG_BYTES_MAX},
		{K_WORD, &p->word, PROTO_WORD_BYTES_MAX},
		{K_LEVEL, &p->level, PROTO_WORD_BYTES_MAX},
		{K_CATEGORY, &p->category, PROTO_SENSITIVITY_BYTES_MAX},
		{K_REASON_CODE, &p->reason_code, PROTO_REASON_CODE_BYTES_MAX},
		{K_TEXT, &p->text, PROTO_TEXT_BYTES_MAX},
		{K_BIRTH_DATE, &p->birth_date, PROTO_BIRTH_DATE_BYTES_MAX},
	};
	const struct {
		enum proto_key k;
		uint32_t *dst;
	} u32s[] = {
		{K_HOURS, &p->hours},
		{K_IMPLICIT_WINDOW_DAYS, &p->implicit_window_days},
		{K_BTG_HOURS_MAX, &p->btg_hours_max},
		{K_AMBULANCE_HOURS_MAX, &p->ambulance_hours_max},
	};
	for (size_t i = 0; i < n && rc == CARELOG_OK; i++) {
		int k;
		rc = rd_nested_key(r, "policy", allowed, &seen, &k);
		if (rc != CARELOG_OK) {
			break;
		}
		bool done = false;
		for (size_t j = 0; j < CL_ARRAY_LEN(strs) && !done; j++) {
			if ((int)strs[j].k == k) {
				rc = rd_str(r, strs[j].k, strs[j].max, strs[j].dst);
				done = true;
			}
		}
		for (size_t j = 0; j < CL_ARRAY_LEN(u32s) && !done; j++) {
			if ((int)u32s[j].k == k) {
				rc = rd_u32(r, u32s[j].k, UINT32_MAX, u32s[j].dst);
				done = true;
			}
		}
		if (done) {
			continue;
		}
		switch (k) {
		case K_CATEGORIES:
			rc = rd_categories(r, p);
			break;
		case K_REF:
			p->has_ref = true;
			rc = rd_id(r, K_REF, p->ref);
			break;
		case K_FROM_MS:
			rc = rd_u64(r, K_FROM_MS, UINT64_MAX, &p->from_ms);
			break;
		default:
			CL_ASSERT(k == K_TO_MS);
			rc = rd_u64(r, K_TO_MS, UINT64_MAX, &p->to_ms);
			break;
		}
	}
	if (rc == CARELOG_OK && (p->kind.len == 0 || p->request_id.len == 0)) {
		rc = rd_fail(r, CARELOG_EPROTO, "key \"policy.%s\" missing or empty",
			     p->kind.len == 0 ? "kind" : "request_id");
	}
	return rc;
}

static int rd_req_value(struct proto_rd *r, int k, struct proto_req_fields *f)
{
	struct proto_str s;
	int rc;
	switch (k) {
	case K_V: {
		uint64_t v; /* checked by rd_version */
		return rd_u64(r, K_V, UINT64_MAX, &v);
	}
	case K_OP:
		rc = rd_str(r, K_OP, 16, &s);
		if (rc == CARELOG_OK && (f->op = proto_op_parse(s)) == 0) {
			rc = rd_fail(r, CARELOG_EPROTO, "unknown op \"%.*s\"", (int)s.len, s.ptr);
		}
		return rc;
	case K_TIMEOUT_MS:
		return rd_u32(r, K_TIMEOUT_MS, UINT32_MAX, &f->timeout_ms);
	case K_ACTOR:
		return rd_actor(r, &f->actor);
	case K_PATIENT:
		return rd_str(r, K_PATIENT, PROTO_PATIENT_BYTES_MAX, &f->patient);
	case K_KIND:
		return rd_str(r, K_KIND, PROTO_KIND_BYTES_MAX, &f->kind);
	case K_REQUEST_ID:
		return rd_str(r, K_REQUEST_ID, PROTO_REQUEST_ID_BYTES_MAX, &f->request_id);
	case K_MEDIA_TYPE:
		return rd_str(r, K_MEDIA_TYPE, PROTO_MEDIA_TYPE_BYTES_MAX, &f->media_type);
	case K_STATUS:
		return rd_str(r, K_STATUS, PROTO_STATUS_BYTES_MAX, &f->status);
	case K_SENSITIVITY:
		return rd_str(r, K_SENSITIVITY, PROTO_SENSITIVITY_BYTES_MAX, &f->sensitivity);
	case K_CLINICAL_TIME_MS:
		return rd_u64(r, K_CLINICAL_TIME_MS, UINT64_MAX, &f->clinical_time_ms);
	case K_CORRECTS:
		f->has_corrects = true;
		return rd_id(r, K_CORRECTS, f->corrects);
	case K_BODY:
		return rd_bytes(r, K_BODY, MP_BIN, PROTO_BODY_BYTES_MAX, &f->body);
	case K_CONSISTENCY:
		rc = rd_str(r, K_CONSISTENCY, 16, &s);
		if (rc != CARELOG_OK) {
			return rc;
		}
		for (uint8_t c = 0; c < CL_ARRAY_LEN(proto_consistency_names); c++) {
			if (proto_str_is(s, proto_consistency_names[c])) {
				f->consistency = c;
				return CARELOG_OK;
			}
		}
		return rd_fail(r, CARELOG_EPROTO, "unknown consistency \"%.*s\"", (int)s.len, s.ptr);
	case K_MIN_INDEX:
		return rd_u64(r, K_MIN_INDEX, UINT64_MAX, &f->min_index);
	case K_SINCE_INDEX:
		return rd_u64(r, K_SINCE_INDEX, UINT64_MAX, &f->since_index);
	case K_LIMIT:
		/* the op's own bound is checked once the op is known (keys come in any order) */
		return rd_u32(r, K_LIMIT, UINT32_MAX, &f->limit);
	case K_HISTORY:
		return rd_bool(r, K_HISTORY, &f->history);
	case K_ID:
		return rd_req_id(r, f);
	case K_ACTION:
		rc = rd_str(r, K_ACTION, 16, &s);
		if (rc != CARELOG_OK) {
			return rc;
		}
		for (uint8_t a = 1; a < CL_ARRAY_LEN(proto_member_action_names); a++) {
			if (proto_str_is(s, proto_member_action_names[a])) {
				f->action = a;
				return CARELOG_OK;
			}
		}
		return rd_fail(r, CARELOG_EPROTO, "unknown action \"%.*s\"", (int)s.len, s.ptr);
	case K_ORG:
		return rd_str(r, K_ORG, PROTO_ORG_BYTES_MAX, &f->org);
	case K_ADDRESS:
		return rd_str(r, K_ADDRESS, PROTO_ADDRESS_BYTES_MAX, &f->address);
	case K_PUBLIC_KEY: {
		rc = rd_bytes(r, K_PUBLIC_KEY, MP_BIN, PROTO_PUBLIC_KEY_BYTES, &s);
		if (rc == CARELOG_OK && s.len != PROTO_PUBLIC_KEY_BYTES) {
			rc = rd_fail(r, CARELOG_EPROTO, "key \"public_key\": %zu bytes where %d expected",
				     s.len, PROTO_PUBLIC_KEY_BYTES);
		}
		if (rc == CARELOG_OK) {
			memcpy(f->public_key, s.ptr, PROTO_PUBLIC_KEY_BYTES);
		}
		return rc;
	}
	case K_TO:
		return rd_u64(r, K_TO, UINT64_MAX, &f->to);
	case K_POLICY:
		return rd_policy(r, &f->policy);
	case K_ACTOR_ID:
		return rd_str(r, K_ACTOR_ID, PROTO_ACTOR_BYTES_MAX, &f->actor_id);
	case K_ACTOR_ORG:
		return rd_str(r, K_ACTOR_ORG, PROTO_ORG_BYTES_MAX, &f->actor_org);
	default:
		return rd_fail(r, CARELOG_EPROTO, "unknown key \"%s\" in a request",
			       proto_key_names[k]);
	}
}

/* The op-specific rules beyond allowed and required keys. */
static int proto_req_check_op(struct proto_rd *r, const struct proto_req_fields *f,
			      struct proto_keys seen)
{
	if (keys_has(seen, K_ID) && f->id_is_node != (f->op == PROTO_OP_MEMBER)) {
		return rd_fail(r, CARELOG_EPROTO, "key \"id\": %s where %s expected",
			       f->id_is_node ? "unsigned integer" : "binary",
			       f->op == PROTO_OP_MEMBER ? "a node id (unsigned integer)"
							: "an entry id (binary)");
	}
	uint32_t limit_max = proto_req_limit_max(f->op);
	if (f->limit > limit_max) {
		return rd_fail(r, CARELOG_ETOOBIG, "key \"limit\": %u > %u", f->limit, limit_max);
	}
	if (f->op == PROTO_OP_MEMBER) {
		if (f->node_id == 0) {
			return rd_fail(r, CARELOG_EPROTO, "key \"id\": 0 is not a node id");
		}
		bool learner = f->action == PROTO_MEMBER_ADD_LEARNER;
		int extra = learner ? -1 : keys_first(keys_and(REQ_MEMBER_NEW, seen));
		int missing = learner ? keys_first(keys_minus(REQ_MEMBER_NEW, seen)) : -1;
		if (extra >= 0) {
			return rd_fail(r, CARELOG_EPROTO, "key \"%s\" not allowed in a %s request",
				       proto_key_names[extra], proto_member_action_names[f->action]);
		}
		if (missing >= 0) {
			return rd_fail(r, CARELOG_EPROTO, "key \"%s\" missing from an add-learner request",
				       proto_key_names[missing]);
		}
		if (learner && (f->org.len == 0 || f->address.len == 0)) {
			return rd_fail(r, CARELOG_EPROTO, "key \"%s\": empty",
				       f->org.len == 0 ? "org" : "address");
		}
	}
	if (f->op == PROTO_OP_TRANSFER && f->to == 0) {
		return rd_fail(r, CARELOG_EPROTO, "key \"to\": 0 is not a node id");
	}
	if (f->op == PROTO_OP_ACCESS_LOG) {
		if ((f->patient.len > 0) == (f->actor_id.len > 0)) {
			return rd_fail(r, CARELOG_EPROTO,
				       "an access-log request names exactly one of \"patient\" and "
				       "\"actor_id\" (not empty)");
		}
		if (f->actor_org.len > 0 && f->actor_id.len == 0) {
			return rd_fail(r, CARELOG_EPROTO, "key \"actor_org\" only with \"actor_id\"");
		}
	}
	return CARELOG_OK;
}

static int proto_req_assemble(struct proto_rd *r, const struct proto_req_fields *f,
			      struct proto_keys seen, struct proto_request *out)
{
	if (!keys_has(seen, K_OP)) {
		return rd_fail(r, CARELOG_EPROTO, "key \"op\" missing");
	}
	int extra = keys_first(keys_minus(seen, proto_req_allowed(f->op)));
	if (extra >= 0) {
		return rd_fail(r, CARELOG_EPROTO, "key \"%s\" not allowed in a %s request",
			       proto_key_names[extra], proto_op_name(f->op));
	}
	int missing = keys_first(keys_minus(proto_req_required(f->op), seen));
	if (missing >= 0) {
		return rd_fail(r, CARELOG_EPROTO, "key \"%s\" missing from a %s request",
			       proto_key_names[missing], proto_op_name(f->op));
	}
	int rc = proto_req_check_op(r, f, seen);
	if (rc != CARELOG_OK) {
		return rc;
	}
	memset(out, 0, sizeof(*out));
	out->version = PROTO_VERSION;
	out->op = f->op;
	out->timeout_ms = f->timeout_ms;
	out->actor = f->actor;
	switch (f->op) {
	case PROTO_OP_APPEND: {
		struct proto_append_req *a = &out->u.append;
		a->patient = f->patient;
		a->kind = f->kind;
		a->request_id = f->request_id;
		a->media_type = f->media_type;
		a->status = f->status;
		a->sensitivity = f->sensitivity;
		a->clinical_time_ms = f->clinical_time_ms;
		a->has_corrects = f->has_corrects;
		memcpy(a->corrects, f->corrects, PROTO_ID_BYTES);
		a->body = f->body;
		break;
	}
	case PROTO_OP_READ: {
		struct proto_read_req *q = &out->u.read;
		q->patient = f->patient;
		q->consistency = f->consistency;
		q->min_index = f->min_index;
		q->kind = f->kind;
		q->since_index = f->since_index;
		q->limit = f->limit;
		q->history = f->history;
		break;
	}
	case PROTO_OP_GET:
		memcpy(out->u.get.id, f->id, PROTO_ID_BYTES);
		break;
	case PROTO_OP_MEMBER: {
		struct proto_member_req *m = &out->u.member;
		m->action = f->action;
		m->id = f->node_id;
		if (f->action == PROTO_MEMBER_ADD_LEARNER) {
			m->org = f->org;
			m->address = f->address;
			m->has_public_key = true;
			memcpy(m->public_key, f->public_key, PROTO_PUBLIC_KEY_BYTES);
		}
		break;
	}
	case PROTO_OP_TRANSFER:
		out->u.transfer.to = f->to;
		break;
	case PROTO_OP_POLICY:
		out->u.policy = f->policy;
		break;
	case PROTO_OP_ACCESS_LOG: {
		struct proto_access_log_req *q = &out->u.access_log;
		q->patient = f->patient;
		q->actor_id = f->actor_id;
		q->actor_org = f->actor_org;
		q->limit = f->limit;
		break;
	}
	case PROTO_OP_BTG_LIST:
		out->u.btg_list.patient = f->patient;
		out->u.btg_list.limit = f->limit;
		break;
	default:
		break;
	}
	return CARELOG_OK;
}

int proto_request_decode_reason(const uint8_t *bytes, size_t len, struct proto_request *out,
				char *reason, size_t reason_len)
{
	CL_ASSERT(out != NULL);
	struct proto_rd r;
	int rc = rd_begin(&r, bytes, len, reason, reason_len);
	if (rc != CARELOG_OK) {
		return rc;
	}
	size_t n;
	rc = rd_map(&r, "request", K_COUNT_, &n);
	struct proto_req_fields f;
	memset(&f, 0, sizeof(f));
	struct proto_keys seen = {{0, 0}};
	for (size_t i = 0; i < n && rc == CARELOG_OK; i++) {
		int k;
		struct proto_str name;
		rc = rd_key(&r, &k, &name);
		if (rc != CARELOG_OK) {
			break;
		}
		if (k < 0) {
			rc = rd_fail(&r, CARELOG_EPROTO, "unknown key \"%.*s\" in a request",
				     (int)(name.len > 64 ? 64 : name.len), name.ptr);
			break;
		}
		rc = rd_seen(&r, &seen, k);
		if (rc == CARELOG_OK) {
			rc = rd_req_value(&r, k, &f);
		}
	}
	if (rc == CARELOG_OK) {
		rc = rd_check_end(&r);
	}
	struct proto_request decoded;
	if (rc == CARELOG_OK) {
		rc = proto_req_assemble(&r, &f, seen, &decoded);
	}
	if (rc == CARELOG_OK) {
		*out = decoded;
	}
	return rc;
}

int proto_request_decode(const uint8_t *bytes, size_t len, struct proto_request *out)
{
	return proto_request_decode_reason(bytes, len, out, NULL, 0);
}

/* ---------------------------------------------------------------- reply decoding */

#define ENTRY_REQUIRED                                                                      \
	KEYS(K_INDEX, K_ID, K_KIND, K_PATIENT, K_AUTHOR, K_ROLE, K_ORG, K_UNIT, K_NODE_ID,     \
	     K_TIME_MS, K_AUTHOR_TIME_MS, K_CLINICAL_TIME_MS, K_STATUS, K_SENSITIVITY,          \
	     K_MEDIA_TYPE, K_REQUEST_ID, K_BODY)

static int rd_missing(struct proto_rd *r, struct proto_keys required, struct proto_keys seen,
		      const char *what)
{
	int missing = keys_first(keys_minus(required, seen));
	if (missing >= 0) {
		return rd_fail(r, CARELOG_EPROTO, "key \"%s\" missing from %s",
			       proto_key_names[missing], what);
	}
	return CARELOG_OK;
}

/* Replies skip keys they do not know, so a newer node may add fields (docs/client-protocol.md). */
static int rd_entry(struct proto_rd *r, struct proto_entry *x)
{
	size_t n;
	int rc = rd_map(r, "entry", PROTO_MAP_KEYS_MAX, &n);
	struct proto_keys seen = {{0, 0}};
	memset(x, 0, sizeof(*x));
	for (size_t i = 0; i < n && rc == CARELOG_OK; i++) {
		int k;
		struct proto_str name;
		rc = rd_key(r, &k, &name);
		if (rc != CARELOG_OK) {
			break;
		}
		if (k >= 0) {
			rc = rd_seen(r, &seen, k);
			if (rc != CARELOG_OK) {
				break;
			}
		}
		switch (k) {
		case K_INDEX:
			rc = rd_u64(r, K_INDEX, UINT64_MAX, &x->index);
			break;
		case K_ID:
			rc = rd_id(r, K_ID, x->id);
			break;
		case K_KIND:
			rc = rd_str(r, K_KIND, PROTO_KIND_BYTES_MAX, &x->kind);
			break;
		case K_PATIENT:
			rc = rd_str(r, K_PATIENT, PROTO_PATIENT_BYTES_MAX, &x->patient);
			break;
		case K_AUTHOR:
			rc = rd_str(r, K_AUTHOR, PROTO_ACTOR_BYTES_MAX, &x->author);
			break;
		case K_ROLE:
			rc = rd_str(r, K_ROLE, PROTO_ROLE_BYTES_MAX, &x->role);
			break;
		case K_ORG:
			rc = rd_str(r, K_ORG, PROTO_ORG_BYTES_MAX, &x->org);
			break;
		case K_UNIT:
			rc = rd_str(r, K_UNIT, PROTO_UNIT_BYTES_MAX, &x->unit);
			break;
		case K_NODE_ID:
			rc = rd_u64(r, K_NODE_ID, UINT64_MAX, &x->node_id);
			break;
		case K_TIME_MS:
			rc = rd_u64(r, K_TIME_MS, UINT64_MAX, &x->time_ms);
			break;
		case K_AUTHOR_TIME_MS:
			rc = rd_u64(r, K_AUTHOR_TIME_MS, UINT64_MAX, &x->author_time_ms);
			break;
		case K_CLINICAL_TIME_MS:
			rc = rd_u64(r, K_CLINICAL_TIME_MS, UINT64_MAX, &x->clinical_time_ms);
			break;
		case K_STATUS:
			rc = rd_str(r, K_STATUS, PROTO_STATUS_BYTES_MAX, &x->status);
			break;
		case K_SENSITIVITY:
			rc = rd_str(r, K_SENSITIVITY, PROTO_SENSITIVITY_BYTES_MAX, &x->sensitivity);
			break;
		case K_MEDIA_TYPE:
			rc = rd_str(r, K_MEDIA_TYPE, PROTO_MEDIA_TYPE_BYTES_MAX, &x->media_type);
			break;
		case K_REQUEST_ID:
			rc = rd_str(r, K_REQUEST_ID, PROTO_REQUEST_ID_BYTES_MAX, &x->request_id);
			break;
		case K_CORRECTS:
			x->has_corrects = true;
			rc = rd_id(r, K_CORRECTS, x->corrects);
			break;
		case K_ERASED:
			rc = rd_bool(r, K_ERASED, &x->body_erased);
			break;
		case K_ERASED_INDEX:
			rc = rd_u64(r, K_ERASED_INDEX, UINT64_MAX, &x->erased_index);
			break;
		case K_ERASED_TIME_MS:
			rc = rd_u64(r, K_ERASED_TIME_MS, UINT64_MAX, &x->erased_time_ms);
			break;
		case K_ERASED_AUTHOR:
			rc = rd_str(r, K_ERASED_AUTHOR, PROTO_ACTOR_BYTES_MAX, &x->erased_author);
			break;
		case K_ERASED_ORG:
			rc = rd_str(r, K_ERASED_ORG, PROTO_ORG_BYTES_MAX, &x->erased_org);
			break;
		case K_ERASED_BASIS:
			rc = rd_str(r, K_ERASED_BASIS, PROTO_TEXT_BYTES_MAX, &x->erased_basis);
			break;
		case K_BODY:
			rc = rd_bytes(r, K_BODY, MP_BIN, PROTO_BODY_BYTES_MAX, &x->body);
			break;
		case K_SUPERSEDED_BY:
			x->has_superseded_by = true;
			rc = rd_id(r, K_SUPERSEDED_BY, x->superseded_by);
			break;
		default:
			rc = rd_skip(r, 1);
			break;
		}
	}
	return rc != CARELOG_OK ? rc : rd_missing(r, ENTRY_REQUIRED, seen, "an entry");
}

static int rd_member(struct proto_rd *r, struct proto_member *m)
{
	size_t n;
	int rc = rd_map(r, "member", PROTO_MAP_KEYS_MAX, &n);
	struct proto_keys seen = {{0, 0}};
	memset(m, 0, sizeof(*m));
	for (size_t i = 0; i < n && rc == CARELOG_OK; i++) {
		int k;
		struct proto_str name;
		rc = rd_key(r, &k, &name);
		if (rc == CARELOG_OK && k >= 0) {
			rc = rd_seen(r, &seen, k);
		}
		if (rc != CARELOG_OK) {
			break;
		}
		switch (k) {
		case K_ID:
			rc = rd_u64(r, K_ID, UINT64_MAX, &m->id);
			break;
		case K_ROLE:
			rc = rd_str(r, K_ROLE, PROTO_NODE_ROLE_BYTES_MAX, &m->role);
			break;
		case K_ORG:
			rc = rd_str(r, K_ORG, PROTO_ORG_BYTES_MAX, &m->org);
			break;
		case K_ADDRESS:
			rc = rd_str(r, K_ADDRESS, PROTO_ADDRESS_BYTES_MAX, &m->address);
			break;
		case K_MATCH_INDEX:
			/* nil: the serving node has no progress for this member */
			if (rd_left(r) >= 1 && r->p[0] == 0xc0) {
				r->p++;
				m->has_match = false;
			} else {
				m->has_match = true;
				rc = rd_u64(r, K_MATCH_INDEX, UINT64_MAX, &m->match_index);
			}
			break;
		case K_LAG:
			rc = rd_u64(r, K_LAG, UINT64_MAX, &m->lag);
			break;
		default:
			rc = rd_skip(r, 1);
			break;
		}
	}
	return rc != CARELOG_OK
		       ? rc
		       : rd_missing(r, KEYS(K_ID, K_ROLE, K_MATCH_INDEX), seen, "a member");
}

/* An array header whose length is within `max` (ETOOBIG beyond: the sender broke a limit). */
static int rd_array(struct proto_rd *r, enum proto_key k, uint32_t max, uint32_t *out_n)
{
	struct proto_item it;
	int rc = rd_expect(r, k, MP_ARRAY, &it);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (it.n > max) {
		return rd_fail(r, CARELOG_ETOOBIG, "key \"%s\": %zu elements > %u", proto_key_names[k],
			       it.n, max);
	}
	*out_n = (uint32_t)it.n;
	return CARELOG_OK;
}

/* A map of named uint counters (key `k_map` of the status reply): each optional, a newer
 * node's unknown ones skipped, a known one twice or not a uint refused. */
static int rd_counters(struct proto_rd *r, enum proto_key k_map, const char *const *names,
		       uint64_t *const *slots, int count)
{
	CL_ASSERT(count <= PROTO_COUNTERS_MAX);
	size_t n;
	int rc = rd_map(r, proto_key_names[k_map], PROTO_MAP_KEYS_MAX, &n);
	uint32_t seen = 0;
	for (size_t i = 0; i < n && rc == CARELOG_OK; i++) {
		struct proto_item it;
		rc = rd_item(r, &it);
		if (rc != CARELOG_OK) {
			break;
		}
		if (it.type != MP_STR) {
			rc = rd_fail(r, CARELOG_EPROTO, "map key is a %s, not a string",
				     proto_mp_type_names[it.type]);
			break;
		}
		struct proto_str name = {.ptr = (const char *)it.ptr, .len = it.n};
		int k = -1;
		for (int j = 0; j < count && k < 0; j++) {
			k = proto_str_is(name, names[j]) ? j : -1;
		}
		if (k < 0) {
			rc = rd_skip(r, 2); /* a newer node's counter */
			continue;
		}
		if (seen & (1u << k)) {
			rc = rd_fail(r, CARELOG_EPROTO, "key \"%s.%s\" twice",
				     proto_key_names[k_map], names[k]);
			break;
		}
		seen |= 1u << k;
		rc = rd_u64(r, k_map, UINT64_MAX, slots[k]);
	}
	return rc;
}

static int rd_transport(struct proto_rd *r, struct proto_transport_stats *t)
{
	memset(t, 0, sizeof(*t));
	uint64_t *const slots[TK_COUNT_] = {
		[TK_SENT] = &t->sent,
		[TK_RECEIVED] = &t->received,
		[TK_DROPPED_AUTH] = &t->dropped_auth,
		[TK_DROPPED_REPLAY] = &t->dropped_replay,
		[TK_DROPPED_UNKNOWN] = &t->dropped_unknown,
		[TK_HANDSHAKES] = &t->handshakes,
	};
	return rd_counters(r, K_TRANSPORT, proto_transport_key_names, slots, TK_COUNT_);
}

static int rd_audit(struct proto_rd *r, struct proto_audit_stats *a)
{
	memset(a, 0, sizeof(*a));
	uint64_t *const slots[AK_COUNT_] = {
		[AK_QUEUED_ROWS] = &a->queued_rows,
		[AK_NEXT_SEQ] = &a->next_seq,
		[AK_SHIPPED_SEQ] = &a->shipped_seq,
		[AK_SYNCS] = &a->syncs,
		[AK_WRITE_FAILURES] = &a->write_failures,
		[AK_SHIP_FAILURES] = &a->ship_failures,
	};
	return rd_counters(r, K_AUDIT, proto_audit_key_names, slots, AK_COUNT_);
}

static void *rd_alloc(struct proto_arena *arena, size_t n, size_t size)
{
	if (n == 0) {
		return NULL;
	}
	return proto_arena_alloc(arena, n * size); /* n is bounded by a PROTO_*_MAX */
}

/* One field of a reply map read by rd_fields (the lenient reader of the small maps). */
struct rd_field {
	enum proto_key k;
	enum { RF_STR, RF_U64, RF_U32, RF_BOOL, RF_ID } type;
	void *dst;    /* struct proto_str, uint64_t, uint32_t, bool, or uint8_t[PROTO_ID_BYTES] */
	size_t max;   /* RF_STR: bytes at most */
	bool *has;    /* RF_ID: set when present (may be NULL) */
};

/* A map of the fields in `fields`; unknown keys skipped; the keys in `required` must be there. */
static int rd_fields(struct proto_rd *r, const char *what, const struct rd_field *fields,
		     size_t count, struct proto_keys required)
{
	size_t n;
	int rc = rd_map(r, what, PROTO_MAP_KEYS_MAX, &n);
	struct proto_keys seen = {{0, 0}};
	for (size_t i = 0; i < n && rc == CARELOG_OK; i++) {
		int k;
		struct proto_str name;
		rc = rd_key(r, &k, &name);
		if (rc == CARELOG_OK && k >= 0) {
			rc = rd_seen(r, &seen, k);
		}
		if (rc != CARELOG_OK) {
			break;
		}
		const struct rd_field *f = NULL;
		for (size_t j = 0; j < count && f == NULL; j++) {
			f = (int)fields[j].k == k ? &fields[j] : NULL;
		}
		if (f == NULL) {
			rc = rd_skip(r, 1);
			continue;
		}
		switch (f->type) {
		case RF_STR:
			rc = rd_str(r, f->k, f->max, f->dst);
			break;
		case RF_U64:
			rc = rd_u64(r, f->k, UINT64_MAX, f->dst);
			break;
		case RF_U32:
			rc = rd_u32(r, f->k, UINT32_MAX, f->dst);
			break;
		case RF_BOOL:
			rc = rd_bool(r, f->k, f->dst);
			break;
		case RF_ID:
			if (f->has != NULL) {
				*f->has = true;
			}
			rc = rd_id(r, f->k, f->dst);
			break;
		}
	}
	return rc != CARELOG_OK ? rc : rd_missing(r, required, seen, what);
}

static int rd_access_row(struct proto_rd *r, struct proto_access_row *w)
{
	memset(w, 0, sizeof(*w));
	const struct rd_field fields[] = {
		{K_NODE_ID, RF_U64, &w->node_id, 0, NULL},
		{K_SEQ, RF_U64, &w->seq, 0, NULL},
		{K_TIME_MS, RF_U64, &w->time_ms, 0, NULL},
		{K_ACTOR, RF_STR, &w->actor, PROTO_ACTOR_BYTES_MAX, NULL},
		{K_ROLE, RF_STR, &w->role, PROTO_ROLE_BYTES_MAX, NULL},
		{K_ORG, RF_STR, &w->org, PROTO_ORG_BYTES_MAX, NULL},
		{K_UNIT, RF_STR, &w->unit, PROTO_UNIT_BYTES_MAX, NULL},
		{K_PATIENT, RF_STR, &w->patient, PROTO_PATIENT_BYTES_MAX, NULL},
		{K_ACTION, RF_STR, &w->action, PROTO_WORD_BYTES_MAX, NULL},
		{K_ALLOWED, RF_BOOL, &w->allowed, 0, NULL},
		{K_BASIS, RF_STR, &w->basis, PROTO_WORD_BYTES_MAX, NULL},
		{K_COUNT, RF_U64, &w->count, 0, NULL},
		{K_WITHHELD, RF_U64, &w->withheld, 0, NULL},
		{K_ENTRY, RF_ID, w->entry, 0, &w->has_entry},
		{K_PURPOSE, RF_STR, &w->purpose, PROTO_PURPOSE_BYTES_MAX, NULL},
		{K_OUTCOME, RF_STR, &w->outcome, PROTO_WORD_BYTES_MAX, NULL},
		{K_SHIPPED, RF_BOOL, &w->shipped, 0, NULL},
	};
	return rd_fields(r, "an access row", fields, CL_ARRAY_LEN(fields),
			 KEYS(K_NODE_ID, K_SEQ, K_TIME_MS, K_ACTOR, K_ROLE, K_ORG, K_UNIT, K_PATIENT,
			      K_ACTION, K_ALLOWED, K_BASIS, K_COUNT, K_WITHHELD, K_PURPOSE, K_OUTCOME,
			      K_SHIPPED));
}

static int rd_btg_grant(struct proto_rd *r, struct proto_btg_grant *g)
{
	memset(g, 0, sizeof(*g));
	const struct rd_field fields[] = {
		{K_ID, RF_ID, g->id, 0, NULL},
		{K_INDEX, RF_U64, &g->index, 0, NULL},
		{K_PATIENT, RF_STR, &g->patient, PROTO_PATIENT_BYTES_MAX, NULL},
		{K_ACTOR, RF_STR, &g->actor, PROTO_ACTOR_BYTES_MAX, NULL},
		{K_ROLE, RF_STR, &g->role, PROTO_ROLE_BYTES_MAX, NULL},
		{K_ORG, RF_STR, &g->org, PROTO_ORG_BYTES_MAX, NULL},
		{K_UNIT, RF_STR, &g->unit, PROTO_UNIT_BYTES_MAX, NULL},
		{K_GRANTED_MS, RF_U64, &g->granted_ms, 0, NULL},
		{K_EXPIRES_MS, RF_U64, &g->expires_ms, 0, NULL},
		{K_REASON_CODE, RF_STR, &g->reason_code, PROTO_REASON_CODE_BYTES_MAX, NULL},
		{K_REASON_TEXT, RF_STR, &g->reason_text, PROTO_TEXT_BYTES_MAX, NULL},
	};
	return rd_fields(r, "a grant", fields, CL_ARRAY_LEN(fields),
			 KEYS(K_ID, K_INDEX, K_PATIENT, K_ACTOR, K_ROLE, K_ORG, K_UNIT, K_GRANTED_MS,
			      K_EXPIRES_MS, K_REASON_CODE, K_REASON_TEXT));
}

static int rd_withheld_reason(struct proto_rd *r, struct proto_withheld_reason *w)
{
	memset(w, 0, sizeof(*w));
	const struct rd_field fields[] = {
		{K_REASON, RF_STR, &w->reason, PROTO_REASON_BYTES_MAX, NULL},
		{K_COUNT, RF_U32, &w->count, 0, NULL},
	};
	return rd_fields(r, "a withheld reason", fields, CL_ARRAY_LEN(fields),
			 KEYS(K_REASON, K_COUNT));
}

/* An array of maps read by `read_one` into `*out` (allocated from `arena`), at most `max`. */
static int rd_map_array(struct proto_rd *r, enum proto_key k, uint32_t max,
			struct proto_arena *arena, size_t size, uint32_t *out_n, void **out,
			int (*read_one)(struct proto_rd *rd, void *element))
{
	int rc = rd_array(r, k, max, out_n);
	if (rc == CARELOG_OK && *out_n > 0) {
		*out = rd_alloc(arena, *out_n, size);
		if (*out == NULL) {
			return CARELOG_ENOMEM;
		}
	}
	for (uint32_t i = 0; i < *out_n && rc == CARELOG_OK; i++) {
		rc = read_one(r, (unsigned char *)*out + (size_t)i * size);
	}
	return rc;
}

static int rd_access_row_v(struct proto_rd *r, void *w)
{
	return rd_access_row(r, w);
}

static int rd_btg_grant_v(struct proto_rd *r, void *g)
{
	return rd_btg_grant(r, g);
}

static int rd_withheld_reason_v(struct proto_rd *r, void *w)
{
	return rd_withheld_reason(r, w);
}

struct proto_reply_fields {
	struct proto_reply rep;
	uint64_t node_id, term, leader_id, commit_index, applied_index, index, lag;
	uint64_t entries_checked, values_checked, problems_count;
	uint64_t last_index, progress_age_ms, verified_signatures, syncs;
	struct proto_transport_stats transport;
	bool has_audit;
	struct proto_audit_stats audit;
	uint32_t withheld;
	uint8_t chain_head[PROTO_ID_BYTES];
	uint8_t id[PROTO_ID_BYTES];
	struct proto_str role, request_id;
	bool committed, duplicate, stale, more, ok;
	uint32_t members_count, entries_count, problems_listed;
	struct proto_member *members;
	struct proto_entry *entries;
	struct proto_str *problems;
	struct proto_entry entry;
	struct proto_str basis;
	uint32_t withheld_reasons_count, rows_count, grants_count;
	struct proto_withheld_reason *withheld_reasons;
	struct proto_access_row *rows;
	struct proto_btg_grant *grants;
};

static int rd_reply_value(struct proto_rd *r, int k, struct proto_arena *arena,
			  struct proto_reply_fields *f)
{
	int rc;
	struct proto_str s;
	switch (k) {
	case K_V: {
		uint64_t v;
		return rd_u64(r, K_V, UINT64_MAX, &v);
	}
	case K_OP:
		rc = rd_str(r, K_OP, 16, &s);
		if (rc == CARELOG_OK && (f->rep.op = proto_op_parse(s)) == 0) {
			rc = rd_fail(r, CARELOG_EPROTO, "unknown op \"%.*s\"", (int)s.len, s.ptr);
		}
		return rc;
	case K_ERR: {
		uint64_t e;
		rc = rd_u64(r, K_ERR, INT_MAX, &e);
		f->rep.err = (int)e;
		return rc;
	}
	case K_MSG:
		return rd_str(r, K_MSG, PROTO_MSG_BYTES_MAX, &f->rep.msg);
	case K_NODE_ID:
		return rd_u64(r, K_NODE_ID, UINT64_MAX, &f->node_id);
	case K_ROLE:
		return rd_str(r, K_ROLE, PROTO_NODE_ROLE_BYTES_MAX, &f->role);
	case K_TERM:
		return rd_u64(r, K_TERM, UINT64_MAX, &f->term);
	case K_LEADER_ID:
		return rd_u64(r, K_LEADER_ID, UINT64_MAX, &f->leader_id);
	case K_COMMIT_INDEX:
		return rd_u64(r, K_COMMIT_INDEX, UINT64_MAX, &f->commit_index);
	case K_APPLIED_INDEX:
		return rd_u64(r, K_APPLIED_INDEX, UINT64_MAX, &f->applied_index);
	case K_CHAIN_HEAD:
		return rd_id(r, K_CHAIN_HEAD, f->chain_head);
	case K_MEMBERS:
		rc = rd_array(r, K_MEMBERS, PROTO_MEMBERS_MAX, &f->members_count);
		if (rc == CARELOG_OK && f->members_count > 0) {
			f->members = rd_alloc(arena, f->members_count, sizeof(*f->members));
			if (f->members == NULL) {
				return CARELOG_ENOMEM;
			}
		}
		for (uint32_t i = 0; i < f->members_count && rc == CARELOG_OK; i++) {
			rc = rd_member(r, &f->members[i]);
		}
		return rc;
	case K_COMMITTED:
		return rd_bool(r, K_COMMITTED, &f->committed);
	case K_INDEX:
		return rd_u64(r, K_INDEX, UINT64_MAX, &f->index);
	case K_ID:
		return rd_id(r, K_ID, f->id);
	case K_REQUEST_ID:
		return rd_str(r, K_REQUEST_ID, PROTO_REQUEST_ID_BYTES_MAX, &f->request_id);
	case K_DUPLICATE:
		return rd_bool(r, K_DUPLICATE, &f->duplicate);
	case K_LAG:
		return rd_u64(r, K_LAG, UINT64_MAX, &f->lag);
	case K_STALE:
		return rd_bool(r, K_STALE, &f->stale);
	case K_WITHHELD:
		return rd_u32(r, K_WITHHELD, UINT32_MAX, &f->withheld);
	case K_MORE:
		return rd_bool(r, K_MORE, &f->more);
	case K_ENTRIES:
		rc = rd_array(r, K_ENTRIES, PROTO_READ_LIMIT_MAX, &f->entries_count);
		if (rc == CARELOG_OK && f->entries_count > 0) {
			f->entries = rd_alloc(arena, f->entries_count, sizeof(*f->entries));
			if (f->entries == NULL) {
				return CARELOG_ENOMEM;
			}
		}
		for (uint32_t i = 0; i < f->entries_count && rc == CARELOG_OK; i++) {
			rc = rd_entry(r, &f->entries[i]);
		}
		return rc;
	case K_ENTRY:
		return rd_entry(r, &f->entry);
	case K_BASIS:
		return rd_str(r, K_BASIS, PROTO_WORD_BYTES_MAX, &f->basis);
	case K_WITHHELD_REASONS: {
		void *p = NULL;
		rc = rd_map_array(r, K_WITHHELD_REASONS, PROTO_WITHHELD_REASONS_MAX, arena,
				  sizeof(*f->withheld_reasons), &f->withheld_reasons_count, &p,
				  rd_withheld_reason_v);
		f->withheld_reasons = p;
		return rc;
	}
	case K_ROWS: {
		void *p = NULL;
		rc = rd_map_array(r, K_ROWS, PROTO_ACCESS_LOG_ROWS_MAX, arena, sizeof(*f->rows),
				  &f->rows_count, &p, rd_access_row_v);
		f->rows = p;
		return rc;
	}
	case K_GRANTS: {
		void *p = NULL;
		rc = rd_map_array(r, K_GRANTS, PROTO_BTG_GRANTS_MAX, arena, sizeof(*f->grants),
				  &f->grants_count, &p, rd_btg_grant_v);
		f->grants = p;
		return rc;
	}
	case K_OK:
		return rd_bool(r, K_OK, &f->ok);
	case K_LAST_INDEX:
		return rd_u64(r, K_LAST_INDEX, UINT64_MAX, &f->last_index);
	case K_PROGRESS_AGE_MS:
		return rd_u64(r, K_PROGRESS_AGE_MS, UINT64_MAX, &f->progress_age_ms);
	case K_VERIFIED_SIGNATURES:
		return rd_u64(r, K_VERIFIED_SIGNATURES, UINT64_MAX, &f->verified_signatures);
	case K_SYNCS:
		return rd_u64(r, K_SYNCS, UINT64_MAX, &f->syncs);
	case K_TRANSPORT:
		return rd_transport(r, &f->transport);
	case K_AUDIT:
		f->has_audit = true;
		return rd_audit(r, &f->audit);
	case K_ENTRIES_CHECKED:
		return rd_u64(r, K_ENTRIES_CHECKED, UINT64_MAX, &f->entries_checked);
	case K_VALUES_CHECKED:
		return rd_u64(r, K_VALUES_CHECKED, UINT64_MAX, &f->values_checked);
	case K_PROBLEMS_COUNT:
		return rd_u64(r, K_PROBLEMS_COUNT, UINT64_MAX, &f->problems_count);
	case K_PROBLEMS:
		rc = rd_array(r, K_PROBLEMS, PROTO_PROBLEMS_MAX, &f->problems_listed);
		if (rc == CARELOG_OK && f->problems_listed > 0) {
			f->problems = rd_alloc(arena, f->problems_listed, sizeof(*f->problems));
			if (f->problems == NULL) {
				return CARELOG_ENOMEM;
			}
		}
		for (uint32_t i = 0; i < f->problems_listed && rc == CARELOG_OK; i++) {
			rc = rd_str(r, K_PROBLEMS, PROTO_PROBLEM_BYTES_MAX, &f->problems[i]);
		}
		return rc;
	default:
		return rd_skip(r, 1);
	}
}

/* The keys a successful reply to `op` must carry. */
static struct proto_keys proto_reply_required(uint8_t op)
{
	switch (op) {
	case PROTO_OP_STATUS:
		return KEYS(K_NODE_ID, K_ROLE, K_TERM, K_LEADER_ID, K_COMMIT_INDEX, K_APPLIED_INDEX,
			    K_CHAIN_HEAD, K_MEMBERS);
	case PROTO_OP_APPEND:
	case PROTO_OP_POLICY:
		return KEYS(K_COMMITTED, K_INDEX, K_ID, K_REQUEST_ID);
	case PROTO_OP_READ: /* basis and withheld_reasons are optional (older nodes) */
		return KEYS(K_APPLIED_INDEX, K_LAG, K_STALE, K_WITHHELD, K_ENTRIES);
	case PROTO_OP_GET:
		return KEYS(K_ENTRY);
	case PROTO_OP_VERIFY:
		return KEYS(K_OK, K_ENTRIES_CHECKED, K_VALUES_CHECKED, K_PROBLEMS_COUNT, K_PROBLEMS,
			    K_CHAIN_HEAD, K_APPLIED_INDEX);
	case PROTO_OP_MEMBER:
		return KEYS(K_INDEX);
	case PROTO_OP_TRANSFER:
		return KEYS(K_LEADER_ID);
	case PROTO_OP_ACCESS_LOG:
		return KEYS(K_APPLIED_INDEX, K_ROWS);
	case PROTO_OP_BTG_LIST:
		return KEYS(K_GRANTS);
	default:
		CL_UNREACHABLE();
	}
}

static void proto_reply_assemble(const struct proto_reply_fields *f, struct proto_reply *out)
{
	*out = f->rep;
	out->version = PROTO_VERSION;
	switch (f->rep.op) {
	case PROTO_OP_STATUS: {
		struct proto_status_reply *s = &out->u.status;
		s->node_id = f->node_id;
		s->role = f->role;
		s->term = f->term;
		s->leader_id = f->leader_id;
		s->commit_index = f->commit_index;
		s->applied_index = f->applied_index;
		memcpy(s->chain_head, f->chain_head, PROTO_ID_BYTES);
		s->members_count = f->members_count;
		s->members = f->members;
		s->last_index = f->last_index;
		s->progress_age_ms = f->progress_age_ms;
		s->verified_signatures = f->verified_signatures;
		s->syncs = f->syncs;
		s->transport = f->transport;
		s->has_audit = f->has_audit;
		s->audit = f->audit;
		break;
	}
	case PROTO_OP_MEMBER:
		out->u.member.index = f->index;
		break;
	case PROTO_OP_TRANSFER:
		out->u.transfer.leader_id = f->leader_id;
		break;
	case PROTO_OP_APPEND:
	case PROTO_OP_POLICY: {
		struct proto_append_reply *a = &out->u.append;
		a->committed = f->committed;
		a->index = f->index;
		memcpy(a->id, f->id, PROTO_ID_BYTES);
		a->request_id = f->request_id;
		a->duplicate = f->duplicate;
		break;
	}
	case PROTO_OP_READ: {
		struct proto_read_reply *q = &out->u.read;
		q->applied_index = f->applied_index;
		q->lag = f->lag;
		q->stale = f->stale;
		q->withheld = f->withheld;
		q->more = f->more;
		q->entries_count = f->entries_count;
		q->entries = f->entries;
		q->basis = f->basis;
		q->withheld_reasons_count = f->withheld_reasons_count;
		q->withheld_reasons = f->withheld_reasons;
		break;
	}
	case PROTO_OP_ACCESS_LOG:
		out->u.access_log.applied_index = f->applied_index;
		out->u.access_log.rows_count = f->rows_count;
		out->u.access_log.rows = f->rows;
		break;
	case PROTO_OP_BTG_LIST:
		out->u.btg_list.grants_count = f->grants_count;
		out->u.btg_list.grants = f->grants;
		break;
	case PROTO_OP_GET:
		out->u.get = f->entry;
		break;
	case PROTO_OP_VERIFY: {
		struct proto_verify_reply *v = &out->u.verify;
		v->ok = f->ok;
		v->entries_checked = f->entries_checked;
		v->values_checked = f->values_checked;
		v->problems_count = f->problems_count;
		v->problems_listed = f->problems_listed;
		v->problems = f->problems;
		memcpy(v->chain_head, f->chain_head, PROTO_ID_BYTES);
		v->applied_index = f->applied_index;
		break;
	}
	default:
		break;
	}
}

int proto_reply_decode_reason(const uint8_t *bytes, size_t len, struct proto_arena *arena,
			      struct proto_reply *out, char *reason, size_t reason_len)
{
	CL_ASSERT(arena != NULL && out != NULL);
	struct proto_rd r;
	int rc = rd_begin(&r, bytes, len, reason, reason_len);
	if (rc != CARELOG_OK) {
		return rc;
	}
	size_t n;
	rc = rd_map(&r, "reply", PROTO_MAP_KEYS_MAX, &n);
	struct proto_reply_fields *f = calloc(1, sizeof(*f));
	if (f == NULL) {
		return CARELOG_ENOMEM;
	}
	struct proto_keys seen = {{0, 0}};
	for (size_t i = 0; i < n && rc == CARELOG_OK; i++) {
		int k;
		struct proto_str name;
		rc = rd_key(&r, &k, &name);
		if (rc == CARELOG_OK && k >= 0) {
			rc = rd_seen(&r, &seen, k);
		}
		if (rc == CARELOG_OK) {
			rc = rd_reply_value(&r, k, arena, f);
		}
	}
	if (rc == CARELOG_OK) {
		rc = rd_check_end(&r);
	}
	if (rc == CARELOG_OK) {
		rc = rd_missing(&r, KEYS(K_ERR, K_MSG), seen, "a reply");
	}
	if (rc == CARELOG_OK && f->rep.err == CARELOG_OK) {
		/* Success must say what it answers and carry every field of that answer. */
		if (!keys_has(seen, K_OP)) {
			rc = rd_fail(&r, CARELOG_EPROTO, "key \"op\" missing from a reply");
		} else {
			rc = rd_missing(&r, proto_reply_required(f->rep.op), seen, "a reply");
		}
		if (rc == CARELOG_OK && f->rep.op == PROTO_OP_VERIFY &&
		    f->problems_count < f->problems_listed) {
			rc = rd_fail(&r, CARELOG_EPROTO, "problems_count below the problems listed");
		}
	}
	if (rc == CARELOG_OK) {
		proto_reply_assemble(f, out);
	}
	free(f);
	return rc;
}

int proto_reply_decode(const uint8_t *bytes, size_t len, struct proto_arena *arena,
		       struct proto_reply *out)
{
	return proto_reply_decode_reason(bytes, len, arena, out, NULL, 0);
}

int proto_reply_peek_err(const uint8_t *bytes, size_t len, int *out_err)
{
	CL_ASSERT(out_err != NULL);
	if (bytes == NULL || len == 0 || len > PROTO_MESSAGE_BYTES_MAX) {
		return len > PROTO_MESSAGE_BYTES_MAX ? CARELOG_ETOOBIG : CARELOG_EPROTO;
	}
	struct proto_rd r = {.p = bytes, .end = bytes + len};
	size_t n;
	int rc = rd_map(&r, "reply", PROTO_MAP_KEYS_MAX, &n);
	bool have_v = false;
	bool have_err = false;
	uint64_t err = 0;
	for (size_t i = 0; i < n && rc == CARELOG_OK && !(have_v && have_err); i++) {
		int k;
		struct proto_str name;
		rc = rd_key(&r, &k, &name);
		if (rc != CARELOG_OK) {
			break;
		}
		if (k == K_V) {
			uint64_t v;
			rc = rd_u64(&r, K_V, UINT64_MAX, &v);
			if (rc == CARELOG_OK && v != PROTO_VERSION) {
				rc = CARELOG_EVERSION;
			}
			have_v = true;
		} else if (k == K_ERR) {
			rc = rd_u64(&r, K_ERR, INT_MAX, &err);
			have_err = true;
		} else {
			rc = rd_skip(&r, 1);
		}
	}
	if (rc == CARELOG_OK && !(have_v && have_err)) {
		rc = CARELOG_EPROTO;
	}
	if (rc == CARELOG_OK) {
		*out_err = (int)err;
	}
	return rc;
}
