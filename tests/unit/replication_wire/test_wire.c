/* Unit tests for the peer wire codec (replication/wire.h): round trips, strict refusals, and a
 * seeded mutation loop (the seed is printed; CARELOG_WIRE_SEED=<n> reproduces a run). */
#include "replication/wire.h"

#include "carelog/errors.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
	MUTATION_ITERATIONS = 20000,
	MUTATIONS_PER_INPUT_MAX = 4,
	MUTATION_SLACK_BYTES = 64, /* room for inserted bytes */
	LARGE_DATA_BYTES = 1 << 20,
	WHY_BYTES = 128,
	/* A sample of prefixes is enough for the big messages (every byte costs O(n) each). */
	TRUNCATE_EVERY_BYTE_LEN_MAX = 4096,
};

static struct consensus_entry entries_scratch[CONSENSUS_APPEND_ENTRIES_MAX];

/* ---------------------------------------------------------------- helpers */

static uint64_t rnd_next(uint64_t *s)
{
	*s += 0x9E3779B97F4A7C15ull;
	uint64_t z = *s;
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static size_t rnd_below(uint64_t *s, size_t n)
{
	return (size_t)(rnd_next(s) % n);
}

/* Encodes `m` into a malloc'd buffer of exactly the announced size. */
static uint8_t *encode(const struct replication_wire_msg *m, size_t *out_len)
{
	size_t size = 0;
	assert_int_equal(replication_wire_encoded_size(m, &size), CARELOG_OK);
	uint8_t *buf = malloc(size);
	assert_non_null(buf);
	size_t len = 0;
	assert_int_equal(replication_wire_encode(m, buf, size, &len), CARELOG_OK);
	assert_int_equal(len, size);
	*out_len = len;
	return buf;
}

static int decode(const uint8_t *bytes, size_t len, struct consensus_entry *entries,
                  struct replication_wire_msg *out)
{
	char why[WHY_BYTES];
	return replication_wire_decode(bytes, len, entries, CONSENSUS_APPEND_ENTRIES_MAX, out, why,
	                               sizeof(why));
}

static void assert_bytes_equal(const uint8_t *a, uint32_t a_len, const uint8_t *b, uint32_t b_len)
{
	assert_int_equal(a_len, b_len);
	if (a_len > 0) {
		assert_memory_equal(a, b, a_len);
	}
}

static void assert_raft_equal(const struct consensus_message *a, const struct consensus_message *b)
{
	assert_int_equal(a->type, b->type);
	assert_true(a->from == b->from && a->to == b->to && a->term == b->term);
	assert_true(a->log_term == b->log_term && a->index == b->index && a->commit == b->commit);
	assert_true(a->reject == b->reject && a->reject_hint == b->reject_hint);
	assert_true(a->transfer == b->transfer && a->ctx == b->ctx);
	assert_int_equal(a->entries_count, b->entries_count);
	for (uint32_t i = 0; i < a->entries_count; i++) {
		const struct consensus_entry *x = &a->entries[i];
		const struct consensus_entry *y = &b->entries[i];
		assert_true(x->term == y->term && x->index == y->index && x->type == y->type);
		assert_bytes_equal(x->data, x->data_len, y->data, y->data_len);
	}
}

static void assert_msg_equal(const struct replication_wire_msg *a,
                             const struct replication_wire_msg *b)
{
	assert_int_equal(a->type, b->type);
	switch (a->type) {
	case REPLICATION_WIRE_RAFT:
		assert_raft_equal(&a->u.raft, &b->u.raft);
		break;
	case REPLICATION_WIRE_FORWARD:
		assert_bytes_equal(a->u.forward.request_key, a->u.forward.request_key_len,
		                   b->u.forward.request_key, b->u.forward.request_key_len);
		assert_bytes_equal(a->u.forward.record, a->u.forward.record_len,
		                   b->u.forward.record, b->u.forward.record_len);
		break;
	case REPLICATION_WIRE_FORWARD_RESULT:
		assert_bytes_equal(
		    a->u.forward_result.request_key, a->u.forward_result.request_key_len,
		    b->u.forward_result.request_key, b->u.forward_result.request_key_len);
		assert_int_equal(a->u.forward_result.err, b->u.forward_result.err);
		assert_true(a->u.forward_result.index == b->u.forward_result.index);
		break;
	case REPLICATION_WIRE_PROGRESS:
		assert_true(a->u.progress.term == b->u.progress.term);
		assert_true(a->u.progress.leader == b->u.progress.leader);
		assert_true(a->u.progress.commit == b->u.progress.commit);
		assert_int_equal(a->u.progress.members_count, b->u.progress.members_count);
		for (uint32_t i = 0; i < a->u.progress.members_count; i++) {
			const struct replication_wire_member *x = &a->u.progress.members[i];
			const struct replication_wire_member *y = &b->u.progress.members[i];
			assert_true(x->id == y->id && x->match == y->match && x->voter == y->voter);
		}
		break;
	default:
		fail_msg("unexpected type %u", a->type);
	}
}

/* Encodes, decodes, compares every field, and checks that the views point into the input. */
static void round_trip(const struct replication_wire_msg *m)
{
	size_t len = 0;
	uint8_t *buf = encode(m, &len);
	struct consensus_entry entries[CONSENSUS_APPEND_ENTRIES_MAX];
	struct replication_wire_msg out;
	assert_int_equal(decode(buf, len, entries, &out), CARELOG_OK);
	assert_msg_equal(m, &out);
	if (out.type == REPLICATION_WIRE_RAFT) {
		for (uint32_t i = 0; i < out.u.raft.entries_count; i++) {
			const uint8_t *d = out.u.raft.entries[i].data;
			assert_true(d >= buf && d <= buf + len); /* zero-copy */
		}
	}
	free(buf);
}

/* Distinct values per field, across every msgpack integer width. */
static const uint64_t sample_u64[] = {
    0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0xffffffffu, 0x100000000ull, UINT64_MAX,
};

static struct consensus_message raft_sample(uint8_t type, size_t k)
{
	size_t n = sizeof(sample_u64) / sizeof(sample_u64[0]);
	return (struct consensus_message){
	    .type = type,
	    .from = sample_u64[k % n],
	    .to = sample_u64[(k + 1) % n],
	    .term = sample_u64[(k + 2) % n],
	    .log_term = sample_u64[(k + 3) % n],
	    .index = sample_u64[(k + 4) % n],
	    .commit = sample_u64[(k + 5) % n],
	    .reject = k % 2 == 0,
	    .reject_hint = sample_u64[(k + 6) % n],
	    .transfer = k % 3 == 0,
	    .ctx = sample_u64[(k + 7) % n],
	};
}

static uint8_t *pattern(size_t len, uint8_t seed)
{
	uint8_t *p = malloc(len > 0 ? len : 1);
	assert_non_null(p);
	for (size_t i = 0; i < len; i++) {
		p[i] = (uint8_t)(seed + i * 7);
	}
	return p;
}

/* ---------------------------------------------------------------- a builder independent of
 * the encoder, to write valid messages and break one element at a time */

enum build_break {
	BREAK_NONE,
	BREAK_STR, /* element replaced by the str "x" */
	BREAK_NIL, /* element replaced by nil */
	BREAK_SWAP /* element replaced by another type the codec uses: uint<->bool, bin/array->0 */
};

struct build {
	uint8_t *buf;
	size_t len;
	size_t cap;
	size_t element;  /* elements written so far */
	size_t break_at; /* the element to break */
	enum build_break how;
};

static void b_raw(struct build *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap > 0 ? b->cap : 256;
		while (cap < b->len + n) {
			cap *= 2;
		}
		b->buf = realloc(b->buf, cap);
		assert_non_null(b->buf);
		b->cap = cap;
	}
	if (n > 0) {
		memcpy(b->buf + b->len, p, n);
	}
	b->len += n;
}

static void b_byte(struct build *b, uint8_t v)
{
	b_raw(b, &v, 1);
}

static void b_be(struct build *b, uint64_t v, size_t bytes)
{
	for (size_t i = bytes; i > 0; i--) {
		b_byte(b, (uint8_t)(v >> (8 * (i - 1))));
	}
}

static void b_uint_raw(struct build *b, uint64_t v)
{
	if (v < 0x80) {
		b_byte(b, (uint8_t)v);
	} else if (v <= 0xff) {
		b_byte(b, 0xcc);
		b_be(b, v, 1);
	} else if (v <= 0xffff) {
		b_byte(b, 0xcd);
		b_be(b, v, 2);
	} else if (v <= 0xffffffffu) {
		b_byte(b, 0xce);
		b_be(b, v, 4);
	} else {
		b_byte(b, 0xcf);
		b_be(b, v, 8);
	}
}

/* True if this element is the one to break (and writes the replacement). */
static bool b_broken(struct build *b, bool is_uint)
{
	if (b->how == BREAK_NONE || b->element++ != b->break_at) {
		return false;
	}
	switch (b->how) {
	case BREAK_STR:
		b_byte(b, 0xa1);
		b_byte(b, 'x');
		break;
	case BREAK_NIL:
		b_byte(b, 0xc0);
		break;
	default:
		b_byte(b, is_uint ? 0xc3 : 0x00);
		break;
	}
	return true;
}

static void b_uint(struct build *b, uint64_t v)
{
	if (!b_broken(b, true)) {
		b_uint_raw(b, v);
	}
}

static void b_bool(struct build *b, bool v)
{
	if (!b_broken(b, false)) {
		b_byte(b, v ? 0xc3 : 0xc2);
	}
}

static void b_i32(struct build *b, int32_t v)
{
	if (b_broken(b, true)) {
		return;
	}
	if (v >= 0) {
		b_uint_raw(b, (uint64_t)v);
	} else if (v >= -32) {
		b_byte(b, (uint8_t)(0x100 + v));
	} else if (v >= -128) {
		b_byte(b, 0xd0);
		b_be(b, (uint64_t)(int64_t)v, 1);
	} else if (v >= -32768) {
		b_byte(b, 0xd1);
		b_be(b, (uint64_t)(int64_t)v, 2);
	} else {
		b_byte(b, 0xd2);
		b_be(b, (uint64_t)(int64_t)v, 4);
	}
}

static void b_array(struct build *b, size_t n)
{
	if (b_broken(b, false)) {
		return;
	}
	if (n < 16) {
		b_byte(b, (uint8_t)(0x90 | n));
	} else if (n <= 0xffff) {
		b_byte(b, 0xdc);
		b_be(b, n, 2);
	} else {
		b_byte(b, 0xdd);
		b_be(b, n, 4);
	}
}

static void b_bin(struct build *b, const uint8_t *p, size_t n)
{
	if (b_broken(b, false)) {
		return;
	}
	if (n <= 0xff) {
		b_byte(b, 0xc4);
		b_be(b, n, 1);
	} else if (n <= 0xffff) {
		b_byte(b, 0xc5);
		b_be(b, n, 2);
	} else {
		b_byte(b, 0xc6);
		b_be(b, n, 4);
	}
	b_raw(b, p, n);
}

/* What to build; fields not set take valid values. */
struct shape {
	uint8_t wire_type;
	uint64_t version;
	uint8_t raft_type;
	size_t entries;
	uint64_t entry_type;
	size_t entry_fields;
	size_t key_len;
	size_t members;
	size_t member_fields;
	long extra_fields; /* added to the top array's length (elements added or dropped) */
};

static const uint8_t filler[512] = {1, 2, 3}; /* larger than any bin the shapes write */

static void build_shape(struct build *b, const struct shape *s)
{
	size_t fields = 0;
	switch (s->wire_type) {
	case REPLICATION_WIRE_RAFT:
		fields = 14;
		break;
	case REPLICATION_WIRE_FORWARD:
		fields = 4;
		break;
	case REPLICATION_WIRE_FORWARD_RESULT:
		fields = 5;
		break;
	default:
		fields = 6;
		break;
	}
	size_t top = (size_t)((long)fields + s->extra_fields);
	b_array(b, top);
	b_uint(b, s->version);
	b_uint(b, s->wire_type);
	switch (s->wire_type) {
	case REPLICATION_WIRE_RAFT:
		b_uint(b, s->raft_type);
		for (uint64_t v = 1; v <= 6; v++) {
			b_uint(b, v * 1000); /* from .. commit */
		}
		b_bool(b, false);
		b_uint(b, 7);
		b_bool(b, true);
		b_uint(b, 8);
		b_array(b, s->entries);
		for (size_t i = 0; i < s->entries; i++) {
			b_array(b, s->entry_fields);
			b_uint(b, 3);
			b_uint(b, 100 + i);
			b_uint(b, s->entry_type);
			b_bin(b, filler, i % 3);
			for (size_t f = 4; f < s->entry_fields; f++) {
				b_uint(b, 0);
			}
		}
		break;
	case REPLICATION_WIRE_FORWARD:
		b_bin(b, filler, s->key_len);
		b_bin(b, filler, 200);
		break;
	case REPLICATION_WIRE_FORWARD_RESULT:
		b_bin(b, filler, s->key_len);
		b_i32(b, -300);
		b_uint(b, 77);
		break;
	default:
		b_uint(b, 9);
		b_uint(b, 2);
		b_uint(b, 1u << 20);
		b_array(b, s->members);
		for (size_t i = 0; i < s->members; i++) {
			b_array(b, s->member_fields);
			b_uint(b, i + 1);
			b_uint(b, i * 1000);
			b_bool(b, i % 2 == 0);
			for (size_t f = 3; f < s->member_fields; f++) {
				b_uint(b, 0);
			}
		}
		break;
	}
	for (long i = 0; i < s->extra_fields; i++) {
		b_uint(b, 0);
	}
}

static struct shape shape_valid(uint8_t wire_type)
{
	return (struct shape){
	    .wire_type = wire_type,
	    .version = REPLICATION_WIRE_VERSION,
	    .raft_type = CONSENSUS_MSG_APPEND,
	    .entries = 3,
	    .entry_type = CONSENSUS_ENTRY_NORMAL,
	    .entry_fields = 4,
	    .key_len = 20,
	    .members = 3,
	    .member_fields = 3,
	};
}

static int decode_shape(const struct shape *s, enum build_break how, size_t break_at,
                        size_t *out_elements)
{
	struct build b = {.how = how, .break_at = break_at};
	build_shape(&b, s);
	struct replication_wire_msg out;
	int rc = decode(b.buf, b.len, entries_scratch, &out);
	if (out_elements != NULL) {
		*out_elements = b.element;
	}
	free(b.buf);
	return rc;
}

static const uint8_t wire_types[] = {
    REPLICATION_WIRE_RAFT,
    REPLICATION_WIRE_FORWARD,
    REPLICATION_WIRE_FORWARD_RESULT,
    REPLICATION_WIRE_PROGRESS,
};

/* ---------------------------------------------------------------- round trips */

static void test_raft_every_message_type_round_trips_every_field(void **state)
{
	(void)state;
	for (uint8_t t = CONSENSUS_MSG_APPEND; t <= CONSENSUS_MSG_READ_INDEX_RESP; t++) {
		for (size_t k = 0; k < 11; k++) {
			struct replication_wire_msg m = {.type = REPLICATION_WIRE_RAFT};
			m.u.raft = raft_sample(t, k);
			round_trip(&m);
		}
	}
}

static void test_raft_append_round_trips_0_1_and_256_entries(void **state)
{
	(void)state;
	static struct consensus_entry entries[CONSENSUS_APPEND_ENTRIES_MAX];
	uint8_t *data = pattern(1000, 5);
	const size_t counts[] = {0, 1, CONSENSUS_APPEND_ENTRIES_MAX};
	for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
		for (size_t i = 0; i < counts[c]; i++) {
			entries[i] = (struct consensus_entry){
			    .term = sample_u64[i % 11],
			    .index = 1000 + i,
			    .type = (uint8_t)(i % 2),
			    .data_len = (uint32_t)(i * 3 % 1000),
			    .data = i * 3 % 1000 == 0 ? NULL : data,
			};
		}
		struct replication_wire_msg m = {.type = REPLICATION_WIRE_RAFT};
		m.u.raft = raft_sample(CONSENSUS_MSG_APPEND, c);
		m.u.raft.entries_count = (uint32_t)counts[c];
		m.u.raft.entries = entries;
		round_trip(&m);
	}
	free(data);
}

static void test_raft_append_round_trips_empty_and_large_data(void **state)
{
	(void)state;
	uint8_t *large = pattern(LARGE_DATA_BYTES, 9);
	const uint8_t empty_nonnull[1] = {0};
	struct consensus_entry entries[] = {
	    {.term = 1, .index = 1, .type = CONSENSUS_ENTRY_NORMAL, .data_len = 0, .data = NULL},
	    {.term = 1, .index = 2, .type = CONSENSUS_ENTRY_NORMAL, .data = empty_nonnull},
	    {.term = 2, .index = 3, .type = CONSENSUS_ENTRY_CONF, .data_len = 255, .data = large},
	    {.term = 2, .index = 4, .type = CONSENSUS_ENTRY_NORMAL, .data_len = 256, .data = large},
	    {.term = 2,
	     .index = 5,
	     .type = CONSENSUS_ENTRY_NORMAL,
	     .data_len = 65535,
	     .data = large},
	    {.term = 2,
	     .index = 6,
	     .type = CONSENSUS_ENTRY_NORMAL,
	     .data_len = 65536,
	     .data = large},
	    {.term = 2,
	     .index = 7,
	     .type = CONSENSUS_ENTRY_NORMAL,
	     .data_len = LARGE_DATA_BYTES,
	     .data = large},
	};
	struct replication_wire_msg m = {.type = REPLICATION_WIRE_RAFT};
	m.u.raft = raft_sample(CONSENSUS_MSG_APPEND, 3);
	m.u.raft.entries = entries;
	m.u.raft.entries_count = (uint32_t)(sizeof(entries) / sizeof(entries[0]));
	round_trip(&m);

	/* An empty entry decodes as a non-NULL view of length 0 (safe to hand to memcpy). */
	size_t len = 0;
	uint8_t *buf = encode(&m, &len);
	struct replication_wire_msg out;
	assert_int_equal(decode(buf, len, entries_scratch, &out), CARELOG_OK);
	assert_non_null(out.u.raft.entries[0].data);
	assert_int_equal(out.u.raft.entries[0].data_len, 0);
	free(buf);
	free(large);
}

static void test_forward_round_trips_keys_and_records(void **state)
{
	(void)state;
	uint8_t *bytes = pattern(100000, 3);
	const uint32_t key_lens[] = {1, 17, REPLICATION_WIRE_REQUEST_KEY_BYTES_MAX};
	const uint32_t record_lens[] = {0, 1, 300, 100000};
	for (size_t k = 0; k < 3; k++) {
		for (size_t r = 0; r < 4; r++) {
			struct replication_wire_msg m = {.type = REPLICATION_WIRE_FORWARD};
			m.u.forward.request_key = bytes + 11;
			m.u.forward.request_key_len = key_lens[k];
			m.u.forward.record = record_lens[r] > 0 ? bytes : NULL;
			m.u.forward.record_len = record_lens[r];
			round_trip(&m);
		}
	}
	free(bytes);
}

static void test_forward_result_round_trips_every_error_width(void **state)
{
	(void)state;
	const int32_t errs[] = {CARELOG_OK,    CARELOG_ENOTLEADER,
	                        CARELOG_EBUSY, 127,
	                        128,           40000,
	                        INT32_MAX,     -1,
	                        -32,           -33,
	                        -128,          -129,
	                        -32768,        -32769,
	                        INT32_MIN};
	const uint8_t key[] = {'o', 'r', 'g', 0, 'r', '1'};
	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
		struct replication_wire_msg m = {.type = REPLICATION_WIRE_FORWARD_RESULT};
		m.u.forward_result.request_key = key;
		m.u.forward_result.request_key_len = sizeof(key);
		m.u.forward_result.err = errs[i];
		m.u.forward_result.index = sample_u64[i % 11];
		round_trip(&m);
	}
}

static void test_progress_round_trips_0_1_and_64_members(void **state)
{
	(void)state;
	const uint32_t counts[] = {0, 1, REPLICATION_WIRE_MEMBERS_MAX};
	for (size_t c = 0; c < 3; c++) {
		struct replication_wire_msg m = {.type = REPLICATION_WIRE_PROGRESS};
		m.u.progress.term = 12;
		m.u.progress.leader = 3;
		m.u.progress.commit = UINT64_MAX - 1;
		m.u.progress.members_count = counts[c];
		for (uint32_t i = 0; i < counts[c]; i++) {
			m.u.progress.members[i] = (struct replication_wire_member){
			    .id = i + 1, .match = sample_u64[i % 11], .voter = i % 3 != 0};
		}
		round_trip(&m);
	}
}

/* The encoder's bytes are the canonical form an independent writer produces. */
static void test_encoder_output_matches_independent_canonical_writer(void **state)
{
	(void)state;
	struct build b = {0};
	struct shape s = shape_valid(REPLICATION_WIRE_PROGRESS);
	build_shape(&b, &s);
	struct replication_wire_msg m = {.type = REPLICATION_WIRE_PROGRESS};
	m.u.progress = (struct replication_wire_progress){
	    .term = 9, .leader = 2, .commit = 1u << 20, .members_count = 3};
	for (uint32_t i = 0; i < 3; i++) {
		m.u.progress.members[i] = (struct replication_wire_member){
		    .id = i + 1, .match = i * 1000, .voter = i % 2 == 0};
	}
	size_t len = 0;
	uint8_t *buf = encode(&m, &len);
	assert_int_equal(len, b.len);
	assert_memory_equal(buf, b.buf, len);
	free(buf);
	free(b.buf);

	/* A FORWARD_RESULT with a negative error exercises the signed forms. */
	b = (struct build){0};
	s = shape_valid(REPLICATION_WIRE_FORWARD_RESULT);
	build_shape(&b, &s);
	m = (struct replication_wire_msg){.type = REPLICATION_WIRE_FORWARD_RESULT};
	m.u.forward_result = (struct replication_wire_forward_result){
	    .request_key = filler, .request_key_len = 20, .err = -300, .index = 77};
	buf = encode(&m, &len);
	assert_int_equal(len, b.len);
	assert_memory_equal(buf, b.buf, len);
	free(buf);
	free(b.buf);
}

/* The example in docs/wire-format.md, section 5. */
static void test_documented_heartbeat_example_decodes_and_encodes(void **state)
{
	(void)state;
	const uint8_t doc[] = {0x9e, 0x01, 0x01, 0x03, 0x01, 0x03, 0x04, 0x00,
	                       0x00, 0xcf, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00,
	                       0x00, 0x00, 0xc2, 0x00, 0xc2, 0x07, 0x90};
	struct replication_wire_msg m = {.type = REPLICATION_WIRE_RAFT};
	m.u.raft = (struct consensus_message){.type = CONSENSUS_MSG_HEARTBEAT,
	                                      .from = 1,
	                                      .to = 3,
	                                      .term = 4,
	                                      .commit = 1ull << 33,
	                                      .ctx = 7};
	size_t len = 0;
	uint8_t *buf = encode(&m, &len);
	assert_int_equal(len, sizeof(doc));
	assert_memory_equal(buf, doc, len);
	free(buf);
	struct replication_wire_msg out;
	assert_int_equal(decode(doc, sizeof(doc), entries_scratch, &out), CARELOG_OK);
	assert_msg_equal(&m, &out);
}

/* ---------------------------------------------------------------- encoder contract */

static void test_raft_size_bound_holds_with_every_field_at_its_widest(void **state)
{
	(void)state;
	static struct consensus_entry entries[CONSENSUS_APPEND_ENTRIES_MAX];
	uint8_t *data = pattern(65536, 1); /* the first length that needs a bin32 header */
	uint64_t data_total = 0;
	for (size_t i = 0; i < CONSENSUS_APPEND_ENTRIES_MAX; i++) {
		entries[i] = (struct consensus_entry){.term = UINT64_MAX,
		                                      .index = UINT64_MAX,
		                                      .type = CONSENSUS_ENTRY_CONF,
		                                      .data_len = 65536,
		                                      .data = data};
		data_total += 65536;
	}
	struct replication_wire_msg m = {.type = REPLICATION_WIRE_RAFT};
	m.u.raft = (struct consensus_message){.type = CONSENSUS_MSG_READ_INDEX_RESP,
	                                      .from = UINT64_MAX,
	                                      .to = UINT64_MAX,
	                                      .term = UINT64_MAX,
	                                      .log_term = UINT64_MAX,
	                                      .index = UINT64_MAX,
	                                      .commit = UINT64_MAX,
	                                      .reject = true,
	                                      .reject_hint = UINT64_MAX,
	                                      .transfer = true,
	                                      .ctx = UINT64_MAX};
	size_t size = 0;
	assert_int_equal(replication_wire_encoded_size(&m, &size), CARELOG_OK);
	assert_int_equal(size, REPLICATION_WIRE_RAFT_HEAD_BYTES_MAX - 2); /* fixarray of 0 */
	m.u.raft.type = CONSENSUS_MSG_APPEND;
	m.u.raft.entries = entries;
	m.u.raft.entries_count = CONSENSUS_APPEND_ENTRIES_MAX;
	assert_int_equal(replication_wire_encoded_size(&m, &size), CARELOG_OK);
	assert_int_equal(size,
	                 REPLICATION_WIRE_RAFT_HEAD_BYTES_MAX +
	                     CONSENSUS_APPEND_ENTRIES_MAX * REPLICATION_WIRE_RAFT_ENTRY_BYTES_MAX +
	                     data_total);
	free(data);
}

static void test_encode_refuses_short_buffer_and_leaves_len_untouched(void **state)
{
	(void)state;
	struct replication_wire_msg m = {.type = REPLICATION_WIRE_RAFT};
	m.u.raft = raft_sample(CONSENSUS_MSG_VOTE, 4);
	size_t size = 0;
	assert_int_equal(replication_wire_encoded_size(&m, &size), CARELOG_OK);
	uint8_t *buf = malloc(size);
	assert_non_null(buf);
	size_t len = 12345;
	assert_int_equal(replication_wire_encode(&m, buf, size - 1, &len), CARELOG_ETOOBIG);
	assert_int_equal(replication_wire_encode(&m, NULL, 0, &len), CARELOG_ETOOBIG);
	assert_int_equal(len, 12345);
	assert_int_equal(replication_wire_encode(&m, buf, size, &len), CARELOG_OK);
	assert_int_equal(len, size);
	free(buf);
}

static void test_encode_refuses_what_decode_would_refuse(void **state)
{
	(void)state;
	static struct consensus_entry entries[CONSENSUS_APPEND_ENTRIES_MAX + 1];
	size_t size = 777;
	struct replication_wire_msg m = {.type = 0};
	assert_int_equal(replication_wire_encoded_size(&m, &size), CARELOG_EINVAL);
	m.type = 5;
	assert_int_equal(replication_wire_encoded_size(&m, &size), CARELOG_EINVAL);

	m.type = REPLICATION_WIRE_RAFT;
	m.u.raft = raft_sample(0, 1);
	assert_int_equal(replication_wire_encoded_size(&m, &size), CARELOG_EINVAL);
	m.u.raft.type = CONSENSUS_MSG_READ_INDEX_RESP + 1;
	assert_int_equal(replication_wire_encoded_size(&m, &size), CARELOG_EINVAL);
	m.u.raft.type = CONSENSUS_MSG_APPEND;
	m.u.raft.entries = entries;
	m.u.raft.entries_count = CONSENSUS_APPEND_ENTRIES_MAX + 1;
	assert_int_equal(replication_wire_encoded_size(&m, &size), CARELOG_EINVAL);
	m.u.raft.entries_count = 1;
	m.u.raft.type = CONSENSUS_MSG_HEARTBEAT;
	assert_int_equal(replication_wire_encoded_size(&m, &size), CARELOG_EINVAL);
	m.u.raft.type = CONSENSUS_MSG_APPEND;
	entries[0] = (struct consensus_entry){.type = 2};
	assert_int_equal(replication_wire_encoded_size(&m, &size), CARELOG_EINVAL);
	entries[0] = (struct consensus_entry){.type = 0, .data_len = 4, .data = NULL};
	assert_int_equal(replication_wire_encoded_size(&m, &size), CARELOG_EINVAL);
	m.u.raft.entries = NULL;
	assert_int_equal(replication_wire_encoded_size(&m, &size), CARELOG_EINVAL);

	m = (struct replication_wire_msg){.type = REPLICATION_WIRE_FORWARD};
	m.u.forward.request_key = filler;
	m.u.forward.request_key_len = 0;
	assert_int_equal(replication_wire_encoded_size(&m, &size), CARELOG_EINVAL);
	m.u.forward.request_key_len = REPLICATION_WIRE_REQUEST_KEY_BYTES_MAX + 1;
	assert_int_equal(replication_wire_encoded_size(&m, &size), CARELOG_EINVAL);
	m.u.forward.request_key_len = 1;
	m.u.forward.record_len = 1;
	assert_int_equal(replication_wire_encoded_size(&m, &size), CARELOG_EINVAL);

	m = (struct replication_wire_msg){.type = REPLICATION_WIRE_FORWARD_RESULT};
	m.u.forward_result.request_key_len = 3; /* NULL key */
	assert_int_equal(replication_wire_encoded_size(&m, &size), CARELOG_EINVAL);

	m = (struct replication_wire_msg){.type = REPLICATION_WIRE_PROGRESS};
	m.u.progress.members_count = REPLICATION_WIRE_MEMBERS_MAX + 1;
	assert_int_equal(replication_wire_encoded_size(&m, &size), CARELOG_EINVAL);
	uint8_t buf[64];
	assert_int_equal(replication_wire_encode(&m, buf, sizeof(buf), &size), CARELOG_EINVAL);
	assert_int_equal(size, 777);
	assert_int_equal(replication_wire_encoded_size(NULL, &size), CARELOG_EINVAL);
}

/* ---------------------------------------------------------------- refusals */

static void assert_decode_fails(const uint8_t *bytes, size_t len, int expected)
{
	struct replication_wire_msg out;
	memset(&out, 0xab, sizeof(out));
	struct replication_wire_msg before = out;
	assert_int_equal(decode(bytes, len, entries_scratch, &out), expected);
	assert_memory_equal(&out, &before, sizeof(out)); /* untouched on failure */
}

/* One message of every type (and APPEND with entries), encoded. */
static uint8_t *sample_message(size_t which, size_t *out_len)
{
	static const uint8_t key[] = {'o', 'r', 'g', 0, 'r', 'e', 'q'};
	static struct consensus_entry entries[3] = {
	    {.term = 5, .index = 10, .type = 0, .data_len = 3, .data = (const uint8_t *)"abc"},
	    {.term = 5, .index = 11, .type = 1, .data_len = 0, .data = NULL},
	    {.term = 6, .index = 12, .type = 0, .data_len = 300, .data = filler},
	};
	struct replication_wire_msg m = {0};
	switch (which) {
	case 0:
		m.type = REPLICATION_WIRE_RAFT;
		m.u.raft = raft_sample(CONSENSUS_MSG_APPEND, 2);
		m.u.raft.entries = entries;
		m.u.raft.entries_count = 3;
		break;
	case 1:
		m.type = REPLICATION_WIRE_RAFT;
		m.u.raft = raft_sample(CONSENSUS_MSG_HEARTBEAT_RESP, 9);
		break;
	case 2:
		m.type = REPLICATION_WIRE_FORWARD;
		m.u.forward = (struct replication_wire_forward){.request_key = key,
		                                                .request_key_len = sizeof(key),
		                                                .record = filler,
		                                                .record_len = 100};
		break;
	case 3:
		m.type = REPLICATION_WIRE_FORWARD_RESULT;
		m.u.forward_result =
		    (struct replication_wire_forward_result){.request_key = key,
		                                             .request_key_len = sizeof(key),
		                                             .err = CARELOG_ENOTLEADER,
		                                             .index = 0};
		break;
	default:
		m.type = REPLICATION_WIRE_PROGRESS;
		m.u.progress.term = 4;
		m.u.progress.leader = 1;
		m.u.progress.commit = 99;
		m.u.progress.members_count = 5;
		for (uint32_t i = 0; i < 5; i++) {
			m.u.progress.members[i] = (struct replication_wire_member){
			    .id = i + 1, .match = 90 + i, .voter = i < 3};
		}
		break;
	}
	return encode(&m, out_len);
}

enum { SAMPLE_MESSAGES = 5 };

static void test_decode_refuses_truncation_at_every_byte(void **state)
{
	(void)state;
	for (size_t which = 0; which < SAMPLE_MESSAGES; which++) {
		size_t len = 0;
		uint8_t *buf = sample_message(which, &len);
		assert_true(len <= TRUNCATE_EVERY_BYTE_LEN_MAX);
		for (size_t cut = 0; cut < len; cut++) {
			/* A copy of exactly `cut` bytes, so ASan sees any read past the end. */
			uint8_t *part = malloc(cut > 0 ? cut : 1);
			assert_non_null(part);
			memcpy(part, buf, cut);
			assert_decode_fails(part, cut, CARELOG_EPROTO);
			free(part);
		}
		free(buf);
	}
}

static void test_decode_refuses_trailing_bytes(void **state)
{
	(void)state;
	for (size_t which = 0; which < SAMPLE_MESSAGES; which++) {
		size_t len = 0;
		uint8_t *buf = sample_message(which, &len);
		uint8_t *longer = malloc(len + 2);
		assert_non_null(longer);
		memcpy(longer, buf, len);
		longer[len] = 0x00;
		longer[len + 1] = 0x00;
		assert_decode_fails(longer, len + 1, CARELOG_EPROTO);
		assert_decode_fails(longer, len + 2, CARELOG_EPROTO);
		free(longer);
		free(buf);
	}
}

static void test_decode_refuses_unknown_version_with_eversion(void **state)
{
	(void)state;
	const uint64_t versions[] = {0, 2, 127, 255, 1ull << 40, UINT64_MAX};
	for (size_t t = 0; t < sizeof(wire_types); t++) {
		for (size_t v = 0; v < sizeof(versions) / sizeof(versions[0]); v++) {
			struct shape s = shape_valid(wire_types[t]);
			s.version = versions[v];
			assert_int_equal(decode_shape(&s, BREAK_NONE, 0, NULL), CARELOG_EVERSION);
		}
	}
	/* A future version may be shorter or longer: judged on the version alone. */
	const uint8_t only_version[] = {0x91, 0x02};
	assert_decode_fails(only_version, sizeof(only_version), CARELOG_EVERSION);
	const uint8_t v2_other_shape[] = {0x93, 0x02, 0xa1, 'x', 0xc0};
	assert_decode_fails(v2_other_shape, sizeof(v2_other_shape), CARELOG_EVERSION);
	/* Not a version at all: malformed. */
	const uint8_t only_v1[] = {0x91, 0x01};
	assert_decode_fails(only_v1, sizeof(only_v1), CARELOG_EPROTO);
	const uint8_t empty_array[] = {0x90};
	assert_decode_fails(empty_array, sizeof(empty_array), CARELOG_EPROTO);
	const uint8_t negative_version[] = {0x92, 0xff, 0x01};
	assert_decode_fails(negative_version, sizeof(negative_version), CARELOG_EPROTO);
	const uint8_t not_array[] = {0x01};
	assert_decode_fails(not_array, sizeof(not_array), CARELOG_EPROTO);
	const uint8_t map[] = {0x81, 0x01, 0x01};
	assert_decode_fails(map, sizeof(map), CARELOG_EPROTO);
}

static void test_decode_refuses_unknown_types(void **state)
{
	(void)state;
	const uint8_t wire_zero[] = {0x92, 0x01, 0x00};
	assert_decode_fails(wire_zero, sizeof(wire_zero), CARELOG_EPROTO);
	const uint8_t wire_five[] = {0x94, 0x01, 0x05, 0x00, 0x00};
	assert_decode_fails(wire_five, sizeof(wire_five), CARELOG_EPROTO);
	const uint8_t wire_big[] = {0x92, 0x01, 0xcd, 0x01, 0x01};
	assert_decode_fails(wire_big, sizeof(wire_big), CARELOG_EPROTO);
	const uint8_t raft_types[] = {0, CONSENSUS_MSG_READ_INDEX_RESP + 1, 0x7f};
	for (size_t i = 0; i < sizeof(raft_types); i++) {
		struct shape s = shape_valid(REPLICATION_WIRE_RAFT);
		s.raft_type = raft_types[i];
		s.entries = 0;
		assert_int_equal(decode_shape(&s, BREAK_NONE, 0, NULL), CARELOG_EPROTO);
	}
}

static void test_decode_accepts_256_entries_and_refuses_257(void **state)
{
	(void)state;
	struct shape s = shape_valid(REPLICATION_WIRE_RAFT);
	s.entries = CONSENSUS_APPEND_ENTRIES_MAX;
	assert_int_equal(decode_shape(&s, BREAK_NONE, 0, NULL), CARELOG_OK);
	s.entries = CONSENSUS_APPEND_ENTRIES_MAX + 1;
	assert_int_equal(decode_shape(&s, BREAK_NONE, 0, NULL), CARELOG_EPROTO);
}

static void test_decode_refuses_entries_on_non_append(void **state)
{
	(void)state;
	for (uint8_t t = CONSENSUS_MSG_APPEND_RESP; t <= CONSENSUS_MSG_READ_INDEX_RESP; t++) {
		struct shape s = shape_valid(REPLICATION_WIRE_RAFT);
		s.raft_type = t;
		s.entries = 0;
		assert_int_equal(decode_shape(&s, BREAK_NONE, 0, NULL), CARELOG_OK);
		s.entries = 1;
		assert_int_equal(decode_shape(&s, BREAK_NONE, 0, NULL), CARELOG_EPROTO);
	}
}

static void test_decode_refuses_bad_entry_type_and_wrong_array_lengths(void **state)
{
	(void)state;
	struct shape s = shape_valid(REPLICATION_WIRE_RAFT);
	s.entry_type = CONSENSUS_ENTRY_CONF;
	assert_int_equal(decode_shape(&s, BREAK_NONE, 0, NULL), CARELOG_OK);
	s.entry_type = 2;
	assert_int_equal(decode_shape(&s, BREAK_NONE, 0, NULL), CARELOG_EPROTO);
	s = shape_valid(REPLICATION_WIRE_RAFT);
	s.entry_fields = 5;
	assert_int_equal(decode_shape(&s, BREAK_NONE, 0, NULL), CARELOG_EPROTO);
	s = shape_valid(REPLICATION_WIRE_PROGRESS);
	s.member_fields = 4;
	assert_int_equal(decode_shape(&s, BREAK_NONE, 0, NULL), CARELOG_EPROTO);
	for (size_t t = 0; t < sizeof(wire_types); t++) {
		s = shape_valid(wire_types[t]);
		s.extra_fields = 1;
		assert_int_equal(decode_shape(&s, BREAK_NONE, 0, NULL), CARELOG_EPROTO);
		/* One element fewer announced than written: the last one is a trailing byte. */
		s.extra_fields = -1;
		assert_int_equal(decode_shape(&s, BREAK_NONE, 0, NULL), CARELOG_EPROTO);
	}
}

/* Every element of every message type, replaced in turn by a wrong type, is refused. */
static void test_decode_refuses_wrong_type_in_every_field(void **state)
{
	(void)state;
	const enum build_break hows[] = {BREAK_STR, BREAK_NIL, BREAK_SWAP};
	size_t checked = 0;
	for (size_t t = 0; t < sizeof(wire_types); t++) {
		struct shape s = shape_valid(wire_types[t]);
		size_t elements = 0;
		/* BREAK_STR at an index beyond the last counts every element without breaking. */
		assert_int_equal(decode_shape(&s, BREAK_STR, SIZE_MAX, &elements), CARELOG_OK);
		assert_true(elements >= 5);
		for (size_t h = 0; h < 3; h++) {
			for (size_t e = 0; e < elements; e++) {
				int rc = decode_shape(&s, hows[h], e, NULL);
				if (rc != CARELOG_EPROTO) {
					fail_msg("type %u, break %zu at element %zu: %d",
					         wire_types[t], h, e, rc);
				}
				checked++;
			}
		}
	}
	printf("wrong-type refusals checked: %zu\n", checked);
}

static void test_decode_refuses_bad_request_keys(void **state)
{
	(void)state;
	const uint8_t types[] = {REPLICATION_WIRE_FORWARD, REPLICATION_WIRE_FORWARD_RESULT};
	for (size_t t = 0; t < 2; t++) {
		struct shape s = shape_valid(types[t]);
		s.key_len = REPLICATION_WIRE_REQUEST_KEY_BYTES_MAX;
		assert_int_equal(decode_shape(&s, BREAK_NONE, 0, NULL), CARELOG_OK);
		s.key_len = REPLICATION_WIRE_REQUEST_KEY_BYTES_MAX + 1;
		assert_int_equal(decode_shape(&s, BREAK_NONE, 0, NULL), CARELOG_EPROTO);
		s.key_len = 0;
		assert_int_equal(decode_shape(&s, BREAK_NONE, 0, NULL), CARELOG_EPROTO);
	}
}

static void test_decode_accepts_64_members_and_refuses_65(void **state)
{
	(void)state;
	struct shape s = shape_valid(REPLICATION_WIRE_PROGRESS);
	s.members = REPLICATION_WIRE_MEMBERS_MAX;
	assert_int_equal(decode_shape(&s, BREAK_NONE, 0, NULL), CARELOG_OK);
	s.members = REPLICATION_WIRE_MEMBERS_MAX + 1;
	assert_int_equal(decode_shape(&s, BREAK_NONE, 0, NULL), CARELOG_EPROTO);
}

/* Each value has one byte form: longer integer, length and count forms are refused. */
static void test_decode_refuses_non_canonical_forms(void **state)
{
	(void)state;
	struct form {
		uint8_t bytes[24];
		size_t len;
		int rc;
	};
	/* FORWARD_RESULT [1, 3, bin "k", err, index] in canonical and longer forms. */
	const struct form forms[] = {
	    {{0x95, 0x01, 0x03, 0xc4, 0x01, 'k', 0x0f, 0x07}, 8, CARELOG_OK},
	    {{0x95, 0x01, 0x03, 0xc4, 0x01, 'k', 0xff, 0x07}, 8, CARELOG_OK},       /* -1 */
	    {{0x95, 0x01, 0x03, 0xc4, 0x01, 'k', 0xd0, 0xdf, 0x07}, 9, CARELOG_OK}, /* -33 */
	    {{0x95, 0x01, 0x03, 0xc4, 0x01, 'k', 0xd1, 0xff, 0x7f, 0x07},
	     10,
	     CARELOG_OK},                                                           /* -129 */
	    {{0x95, 0x01, 0x03, 0xc4, 0x01, 'k', 0xcc, 0x80, 0x07}, 9, CARELOG_OK}, /* 128 */
	    {{0x95, 0x01, 0x03, 0xc4, 0x01, 'k', 0x0f, 0xcc, 0x80}, 9, CARELOG_OK},
	    /* version, type, err and index in longer forms */
	    {{0x95, 0xcc, 0x01, 0x03, 0xc4, 0x01, 'k', 0x0f, 0x07}, 9, CARELOG_EPROTO},
	    {{0x95, 0x01, 0xcd, 0x00, 0x03, 0xc4, 0x01, 'k', 0x0f, 0x07}, 10, CARELOG_EPROTO},
	    {{0x95, 0x01, 0x03, 0xc4, 0x01, 'k', 0xcc, 0x0f, 0x07}, 9, CARELOG_EPROTO},
	    {{0x95, 0x01, 0x03, 0xc4, 0x01, 'k', 0xd0, 0x0f, 0x07}, 9, CARELOG_EPROTO},
	    {{0x95, 0x01, 0x03, 0xc4, 0x01, 'k', 0xd0, 0xff, 0x07}, 9, CARELOG_EPROTO},
	    {{0x95, 0x01, 0x03, 0xc4, 0x01, 'k', 0xd1, 0xff, 0x9c, 0x07}, 10, CARELOG_EPROTO},
	    {{0x95, 0x01, 0x03, 0xc4, 0x01, 'k', 0xd2, 0xff, 0xff, 0x80, 0x00, 0x07},
	     12,
	     CARELOG_EPROTO},
	    {{0x95, 0x01, 0x03, 0xc4, 0x01, 'k', 0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	      0xff, 0x07},
	     16,
	     CARELOG_EPROTO}, /* int64 is never an i32 */
	    {{0x95, 0x01, 0x03, 0xc4, 0x01, 'k', 0xce, 0x80, 0x00, 0x00, 0x00, 0x07},
	     12,
	     CARELOG_EPROTO}, /* above INT32_MAX */
	    {{0x95, 0x01, 0x03, 0xc4, 0x01, 'k', 0x0f, 0xcf, 0, 0, 0, 0, 0, 0, 0, 0x07},
	     16,
	     CARELOG_EPROTO},
	    {{0x95, 0x01, 0x03, 0xc4, 0x01, 'k', 0x0f, 0xce, 0x00, 0x00, 0x01, 0x2c},
	     12,
	     CARELOG_EPROTO},
	    {{0x95, 0x01, 0x03, 0xc4, 0x01, 'k', 0x0f, 0xcd, 0x00, 0xff}, 10, CARELOG_EPROTO},
	    /* array and bin headers in longer forms; a str where a bin belongs */
	    {{0xdc, 0x00, 0x05, 0x01, 0x03, 0xc4, 0x01, 'k', 0x0f, 0x07}, 10, CARELOG_EPROTO},
	    {{0xdd, 0x00, 0x00, 0x00, 0x05, 0x01, 0x03, 0xc4, 0x01, 'k', 0x0f, 0x07},
	     12,
	     CARELOG_EPROTO},
	    {{0x95, 0x01, 0x03, 0xc5, 0x00, 0x01, 'k', 0x0f, 0x07}, 9, CARELOG_EPROTO},
	    {{0x95, 0x01, 0x03, 0xc6, 0x00, 0x00, 0x00, 0x01, 'k', 0x0f, 0x07}, 11, CARELOG_EPROTO},
	    {{0x95, 0x01, 0x03, 0xa1, 'k', 0x0f, 0x07}, 7, CARELOG_EPROTO},
	    /* an array count larger than the bytes left */
	    {{0xdd, 0xff, 0xff, 0xff, 0xff, 0x01, 0x03}, 7, CARELOG_EPROTO},
	};
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		struct replication_wire_msg out;
		int rc = decode(forms[i].bytes, forms[i].len, entries_scratch, &out);
		if (rc != forms[i].rc) {
			fail_msg("form %zu: %d, expected %d", i, rc, forms[i].rc);
		}
	}
}

static void test_decode_reports_why_naming_the_field(void **state)
{
	(void)state;
	struct shape s = shape_valid(REPLICATION_WIRE_PROGRESS);
	s.members = REPLICATION_WIRE_MEMBERS_MAX + 1;
	struct build b = {0};
	build_shape(&b, &s);
	char why[WHY_BYTES];
	struct replication_wire_msg out;
	assert_int_equal(replication_wire_decode(b.buf, b.len, entries_scratch,
	                                         CONSENSUS_APPEND_ENTRIES_MAX, &out, why,
	                                         sizeof(why)),
	                 CARELOG_EPROTO);
	assert_non_null(strstr(why, "progress.members"));
	free(b.buf);

	const uint8_t v9[] = {0x92, 0x09, 0x01};
	assert_int_equal(replication_wire_decode(v9, sizeof(v9), entries_scratch,
	                                         CONSENSUS_APPEND_ENTRIES_MAX, &out, why,
	                                         sizeof(why)),
	                 CARELOG_EVERSION);
	assert_non_null(strstr(why, "version"));
	const uint8_t truncated[] = {0x92, 0x01};
	assert_int_equal(replication_wire_decode(truncated, sizeof(truncated), entries_scratch,
	                                         CONSENSUS_APPEND_ENTRIES_MAX, &out, why, 4),
	                 CARELOG_EPROTO);
	assert_int_equal(strlen(why), 3); /* clipped to the caller's buffer */
}

static void test_decode_refuses_bad_arguments(void **state)
{
	(void)state;
	size_t len = 0;
	uint8_t *buf = sample_message(1, &len);
	struct replication_wire_msg out;
	assert_int_equal(replication_wire_decode(buf, len, entries_scratch,
	                                         CONSENSUS_APPEND_ENTRIES_MAX - 1, &out, NULL, 0),
	                 CARELOG_EINVAL);
	assert_int_equal(
	    replication_wire_decode(buf, len, NULL, CONSENSUS_APPEND_ENTRIES_MAX, &out, NULL, 0),
	    CARELOG_EINVAL);
	assert_int_equal(replication_wire_decode(NULL, len, entries_scratch,
	                                         CONSENSUS_APPEND_ENTRIES_MAX, &out, NULL, 0),
	                 CARELOG_EINVAL);
	assert_int_equal(replication_wire_decode(buf, len, entries_scratch,
	                                         CONSENSUS_APPEND_ENTRIES_MAX, NULL, NULL, 0),
	                 CARELOG_EINVAL);
	assert_int_equal(replication_wire_decode(NULL, 0, entries_scratch,
	                                         CONSENSUS_APPEND_ENTRIES_MAX, &out, NULL, 0),
	                 CARELOG_EPROTO);
	assert_int_equal(replication_wire_decode(buf, len, entries_scratch,
	                                         CONSENSUS_APPEND_ENTRIES_MAX, &out, NULL, 0),
	                 CARELOG_OK);
	free(buf);
	assert_string_equal(replication_wire_type_name(REPLICATION_WIRE_FORWARD), "forward");
	assert_string_equal(replication_wire_type_name(0), "unknown");
	assert_string_equal(replication_wire_type_name(200), "unknown");
}

/* ---------------------------------------------------------------- random mutations */

static size_t mutate(uint64_t *s, uint8_t *buf, size_t len, size_t cap)
{
	static const uint8_t interesting[] = {0x00, 0x01, 0x7f, 0x80, 0x90, 0x9f, 0xc0, 0xc1,
	                                      0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xcc, 0xcd, 0xce,
	                                      0xcf, 0xd0, 0xd2, 0xd3, 0xdc, 0xdd, 0xe0, 0xff};
	size_t n = 1 + rnd_below(s, MUTATIONS_PER_INPUT_MAX);
	for (size_t i = 0; i < n; i++) {
		size_t at = len > 0 ? rnd_below(s, len) : 0;
		switch (rnd_below(s, 6)) {
		case 0: /* flip a bit */
			if (len > 0) {
				buf[at] ^= (uint8_t)(1u << rnd_below(s, 8));
			}
			break;
		case 1: /* an interesting type byte */
			if (len > 0) {
				buf[at] = interesting[rnd_below(s, sizeof(interesting))];
			}
			break;
		case 2: /* a random byte */
			if (len > 0) {
				buf[at] = (uint8_t)rnd_next(s);
			}
			break;
		case 3: /* insert a byte */
			if (len < cap) {
				memmove(buf + at + 1, buf + at, len - at);
				buf[at] = interesting[rnd_below(s, sizeof(interesting))];
				len++;
			}
			break;
		case 4: /* delete a byte */
			if (len > 0) {
				memmove(buf + at, buf + at + 1, len - at - 1);
				len--;
			}
			break;
		default: /* truncate */
			len = at;
			break;
		}
	}
	return len;
}

static uint64_t test_seed(void)
{
	const char *env = getenv("CARELOG_WIRE_SEED");
	if (env != NULL && env[0] != '\0') {
		return strtoull(env, NULL, 10);
	}
	return (uint64_t)time(NULL);
}

static void test_random_mutations_never_crash_and_accepted_reencode_identically(void **state)
{
	(void)state;
	uint64_t seed = test_seed();
	printf("wire mutation seed %llu (CARELOG_WIRE_SEED=%llu reproduces)\n",
	       (unsigned long long)seed, (unsigned long long)seed);
	fflush(stdout);
	uint64_t s = seed;
	uint8_t *samples[SAMPLE_MESSAGES];
	size_t sample_lens[SAMPLE_MESSAGES];
	size_t cap = 0;
	for (size_t i = 0; i < SAMPLE_MESSAGES; i++) {
		samples[i] = sample_message(i, &sample_lens[i]);
		cap = sample_lens[i] > cap ? sample_lens[i] : cap;
	}
	cap += MUTATION_SLACK_BYTES;
	uint8_t *buf = malloc(cap);
	assert_non_null(buf);
	size_t counts[3] = {0}; /* OK, EPROTO, EVERSION */
	for (size_t it = 0; it < MUTATION_ITERATIONS; it++) {
		size_t which = rnd_below(&s, SAMPLE_MESSAGES);
		memcpy(buf, samples[which], sample_lens[which]);
		size_t len = mutate(&s, buf, sample_lens[which], cap);
		/* Decode from an exactly sized copy so ASan catches reads past the end. */
		uint8_t *exact = malloc(len > 0 ? len : 1);
		assert_non_null(exact);
		memcpy(exact, buf, len);
		struct replication_wire_msg out;
		int rc = decode(exact, len, entries_scratch, &out);
		if (rc == CARELOG_OK) {
			counts[0]++;
			size_t again_len = 0;
			uint8_t *again = encode(&out, &again_len);
			if (again_len != len || memcmp(again, exact, len) != 0) {
				fail_msg("seed %llu iteration %zu: accepted input re-encodes "
				         "differently",
				         (unsigned long long)seed, it);
			}
			struct consensus_entry entries2[CONSENSUS_APPEND_ENTRIES_MAX];
			struct replication_wire_msg out2;
			assert_int_equal(decode(again, again_len, entries2, &out2), CARELOG_OK);
			assert_msg_equal(&out, &out2);
			free(again);
		} else if (rc == CARELOG_EPROTO) {
			counts[1]++;
		} else if (rc == CARELOG_EVERSION) {
			counts[2]++;
		} else {
			fail_msg("seed %llu iteration %zu: unexpected error %d",
			         (unsigned long long)seed, it, rc);
		}
		free(exact);
	}
	printf("wire mutations: %d iterations, %zu accepted, %zu EPROTO, %zu EVERSION\n",
	       MUTATION_ITERATIONS, counts[0], counts[1], counts[2]);
	assert_true(counts[0] > 0 && counts[1] > 0);
	free(buf);
	for (size_t i = 0; i < SAMPLE_MESSAGES; i++) {
		free(samples[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_raft_every_message_type_round_trips_every_field),
	    cmocka_unit_test(test_raft_append_round_trips_0_1_and_256_entries),
	    cmocka_unit_test(test_raft_append_round_trips_empty_and_large_data),
	    cmocka_unit_test(test_forward_round_trips_keys_and_records),
	    cmocka_unit_test(test_forward_result_round_trips_every_error_width),
	    cmocka_unit_test(test_progress_round_trips_0_1_and_64_members),
	    cmocka_unit_test(test_encoder_output_matches_independent_canonical_writer),
	    cmocka_unit_test(test_documented_heartbeat_example_decodes_and_encodes),
	    cmocka_unit_test(test_raft_size_bound_holds_with_every_field_at_its_widest),
	    cmocka_unit_test(test_encode_refuses_short_buffer_and_leaves_len_untouched),
	    cmocka_unit_test(test_encode_refuses_what_decode_would_refuse),
	    cmocka_unit_test(test_decode_refuses_truncation_at_every_byte),
	    cmocka_unit_test(test_decode_refuses_trailing_bytes),
	    cmocka_unit_test(test_decode_refuses_unknown_version_with_eversion),
	    cmocka_unit_test(test_decode_refuses_unknown_types),
	    cmocka_unit_test(test_decode_accepts_256_entries_and_refuses_257),
	    cmocka_unit_test(test_decode_refuses_entries_on_non_append),
	    cmocka_unit_test(test_decode_refuses_bad_entry_type_and_wrong_array_lengths),
	    cmocka_unit_test(test_decode_refuses_wrong_type_in_every_field),
	    cmocka_unit_test(test_decode_refuses_bad_request_keys),
	    cmocka_unit_test(test_decode_accepts_64_members_and_refuses_65),
	    cmocka_unit_test(test_decode_refuses_non_canonical_forms),
	    cmocka_unit_test(test_decode_reports_why_naming_the_field),
	    cmocka_unit_test(test_decode_refuses_bad_arguments),
	    cmocka_unit_test(test_random_mutations_never_crash_and_accepted_reencode_identically),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
