/* Unit tests for apply: outcomes, indexes, rejection, version stop, chain agreement. */
#include "carelog/errors.h"
#include "common/crypto.h"
#include "fixture.h"
#include "node/daemon/apply.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

enum { RECORD_CAP = 8192 };

struct test_ctx {
	struct fixture f;
	struct storage *a;
	struct node_apply_state sa;
};

static int setup(void **state)
{
	struct test_ctx *t = calloc(1, sizeof(*t));
	fixture_init(&t->f);
	fixture_open_store(&t->f, "a", &t->a, &t->sa);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct test_ctx *t = *state;
	storage_close(t->a);
	fixture_cleanup(&t->f);
	free(t);
	return 0;
}

static struct consensus_entry normal(uint64_t index, const uint8_t *data, size_t len)
{
	return (struct consensus_entry){.term = 1,
	                                .index = index,
	                                .type = CONSENSUS_ENTRY_NORMAL,
	                                .data_len = (uint32_t)len,
	                                .data = data};
}

/* Appends the entries to the log and applies them in one committed write transaction. */
static int apply_batch(struct storage *s, struct node_apply_state *st,
                       const struct consensus_entry *e, size_t n, struct node_apply_outcome *out)
{
	struct storage_txn *t = NULL;
	assert_int_equal(storage_txn_begin_write(s, &t), CARELOG_OK);
	for (size_t i = 0; i < n; i++) {
		struct storage_entry se = {.index = e[i].index,
		                           .term = e[i].term,
		                           .type = e[i].type,
		                           .data_len = e[i].data_len,
		                           .data = e[i].data};
		assert_int_equal(storage_log_append(t, &se, 1), CARELOG_OK);
	}
	struct node_apply_state next = *st;
	int rc = node_apply_entries(t, &next, e, n, out);
	if (rc != CARELOG_OK) {
		storage_txn_abort(t);
		return rc;
	}
	assert_int_equal(storage_txn_commit(t), CARELOG_OK);
	*st = next;
	return CARELOG_OK;
}

static void request_key(const char *request_id, uint8_t *key, size_t *len)
{
	assert_int_equal(node_request_key(FIXTURE_ORG, strlen(FIXTURE_ORG), request_id,
	                                  strlen(request_id), key, len),
	                 CARELOG_OK);
}

static void test_apply_accepted_record_is_indexed_by_id_request_and_patient(void **state)
{
	struct test_ctx *t = *state;
	static uint8_t rec[RECORD_CAP];
	uint8_t id[JOURNAL_ID_BYTES];
	size_t len =
	    fixture_record(&t->f, "01017012345", "req-1", "BP 120/80", 1000, rec, sizeof(rec), id);
	struct consensus_entry e = normal(2, rec, len);
	struct node_apply_outcome out;
	uint8_t chain_before[CL_SHA256_BYTES];
	memcpy(chain_before, t->sa.chain_head, sizeof(chain_before));
	assert_int_equal(apply_batch(t->a, &t->sa, &e, 1, &out), CARELOG_OK);
	assert_int_equal(out.kind, NODE_APPLY_KIND_RECORD);
	assert_int_equal(out.status, NODE_APPLY_ACCEPTED);
	assert_int_equal(out.answer_index, 2);
	assert_memory_equal(out.answer_id, id, sizeof(id));
	assert_memory_not_equal(chain_before, t->sa.chain_head, sizeof(chain_before));

	struct storage_txn *rt = NULL;
	assert_int_equal(storage_txn_begin_read(t->a, &rt), CARELOG_OK);
	uint64_t index = 0;
	uint8_t status = 9;
	assert_int_equal(storage_index_entry_get(rt, id, &index, &status), CARELOG_OK);
	assert_int_equal(index, 2);
	assert_int_equal(status, NODE_APPLY_ACCEPTED);
	uint8_t key[NODE_REQUEST_KEY_BYTES_MAX];
	size_t key_len = 0;
	request_key("req-1", key, &key_len);
	uint8_t rid[JOURNAL_ID_BYTES];
	assert_int_equal(storage_index_request_get(rt, key, key_len, &index, rid), CARELOG_OK);
	assert_int_equal(index, 2);
	assert_memory_equal(rid, id, sizeof(id));
	uint8_t pk[CL_SHA256_BYTES];
	journal_patient_key("01017012345", pk);
	uint64_t rows[4];
	size_t n = 0;
	bool more = true;
	assert_int_equal(storage_index_patient_scan(rt, pk, 0, rows, 4, &n, &more), CARELOG_OK);
	assert_int_equal(n, 1);
	assert_int_equal(rows[0], 2);
	struct storage_applied applied;
	assert_int_equal(storage_applied_get(rt, &applied), CARELOG_OK);
	assert_int_equal(applied.index, 2);
	assert_memory_equal(applied.chain_head, t->sa.chain_head, CL_SHA256_BYTES);
	storage_txn_abort(rt);
}

static void test_apply_duplicate_request_id_is_a_recorded_noop_answering_the_first(void **state)
{
	struct test_ctx *t = *state;
	static uint8_t r1[RECORD_CAP], r2[RECORD_CAP];
	uint8_t id1[JOURNAL_ID_BYTES], id2[JOURNAL_ID_BYTES];
	size_t l1 = fixture_record(&t->f, "p1", "req-dup", "first", 1000, r1, sizeof(r1), id1);
	size_t l2 = fixture_record(&t->f, "p1", "req-dup", "second", 2000, r2, sizeof(r2), id2);
	assert_memory_not_equal(id1, id2, sizeof(id1));
	struct consensus_entry e[2] = {normal(2, r1, l1), normal(3, r2, l2)};
	struct node_apply_outcome out[2];
	assert_int_equal(apply_batch(t->a, &t->sa, e, 2, out), CARELOG_OK);
	assert_int_equal(out[0].status, NODE_APPLY_ACCEPTED);
	assert_int_equal(out[1].status, NODE_APPLY_DUPLICATE);
	assert_int_equal(out[1].answer_index, 2);
	assert_memory_equal(out[1].answer_id, id1, sizeof(id1));
	assert_int_equal(t->sa.applied_index, 3);

	struct storage_txn *rt = NULL;
	assert_int_equal(storage_txn_begin_read(t->a, &rt), CARELOG_OK);
	uint64_t index = 0;
	uint8_t status = 0;
	assert_int_equal(storage_index_entry_get(rt, id2, &index, &status), CARELOG_OK);
	assert_int_equal(index, 3);
	assert_int_equal(status, NODE_APPLY_DUPLICATE);
	uint8_t pk[CL_SHA256_BYTES];
	journal_patient_key("p1", pk);
	uint64_t rows[4];
	size_t n = 0;
	bool more = false;
	assert_int_equal(storage_index_patient_scan(rt, pk, 0, rows, 4, &n, &more), CARELOG_OK);
	assert_int_equal(n, 1); /* the duplicate is not in the patient's timeline */
	storage_txn_abort(rt);
}

/* A copy of a record with one signature bit flipped. */
static size_t tamper_signature(const uint8_t *rec, size_t len, uint8_t *out, size_t cap)
{
	struct journal_record r;
	assert_int_equal(journal_record_decode(rec, len, &r), CARELOG_OK);
	uint8_t sig[CL_SIGNATURE_BYTES];
	memcpy(sig, r.signature, sizeof(sig));
	sig[10] ^= 0x01;
	r.signature = sig;
	size_t out_len = 0;
	assert_int_equal(journal_record_encode(&r, out, cap, &out_len), CARELOG_OK);
	return out_len;
}

static void test_apply_bad_signature_is_rejected_identically_on_two_stores(void **state)
{
	struct test_ctx *t = *state;
	struct storage *b = NULL;
	struct node_apply_state sb;
	fixture_open_store(&t->f, "b", &b, &sb);
	static uint8_t good[RECORD_CAP], bad[RECORD_CAP];
	uint8_t id[JOURNAL_ID_BYTES];
	size_t gl = fixture_record(&t->f, "p2", "req-sig", "note", 1000, good, sizeof(good), id);
	size_t bl = tamper_signature(good, gl, bad, sizeof(bad));
	struct consensus_entry e = normal(2, bad, bl);
	struct node_apply_outcome oa, ob;
	assert_int_equal(apply_batch(t->a, &t->sa, &e, 1, &oa), CARELOG_OK);
	assert_int_equal(apply_batch(b, &sb, &e, 1, &ob), CARELOG_OK);
	assert_int_equal(oa.status, NODE_APPLY_REJECTED);
	assert_int_equal(oa.reject_err, CARELOG_EBADSIG);
	assert_int_equal(ob.status, NODE_APPLY_REJECTED);
	assert_memory_equal(t->sa.chain_head, sb.chain_head, CL_SHA256_BYTES);

	struct storage_txn *rt = NULL;
	assert_int_equal(storage_txn_begin_read(t->a, &rt), CARELOG_OK);
	uint64_t index = 0;
	uint8_t status = 0;
	assert_int_equal(storage_index_entry_get(rt, id, &index, &status), CARELOG_OK);
	assert_int_equal(status, NODE_APPLY_REJECTED);
	uint8_t key[NODE_REQUEST_KEY_BYTES_MAX];
	size_t key_len = 0;
	request_key("req-sig", key, &key_len);
	uint8_t rid[JOURNAL_ID_BYTES];
	assert_int_equal(storage_index_request_get(rt, key, key_len, &index, rid),
	                 CARELOG_ENOTFOUND);
	storage_txn_abort(rt);

	/* The genuine entry with the same request id is then accepted. */
	struct consensus_entry e2 = normal(3, good, gl);
	assert_int_equal(apply_batch(t->a, &t->sa, &e2, 1, &oa), CARELOG_OK);
	assert_int_equal(oa.status, NODE_APPLY_DUPLICATE); /* same signed header: a replay */
	storage_close(b);
}

static void test_apply_unknown_record_version_stops_apply(void **state)
{
	struct test_ctx *t = *state;
	static uint8_t rec[RECORD_CAP];
	size_t len = fixture_record(&t->f, "p3", "req-v", "x", 1000, rec, sizeof(rec), NULL);
	assert_int_equal(rec[0], 0x96); /* msgpack fixarray of 6 */
	assert_int_equal(rec[1], JOURNAL_RECORD_VERSION);
	rec[1] = JOURNAL_RECORD_VERSION + 1;
	struct consensus_entry e = normal(2, rec, len);
	struct node_apply_outcome out;
	uint8_t chain_before[CL_SHA256_BYTES];
	memcpy(chain_before, t->sa.chain_head, sizeof(chain_before));
	assert_int_equal(apply_batch(t->a, &t->sa, &e, 1, &out), CARELOG_EVERSION);
	assert_int_equal(t->sa.applied_index, 1); /* nothing applied, nothing guessed */
	assert_memory_equal(chain_before, t->sa.chain_head, sizeof(chain_before));
	struct storage_txn *rt = NULL;
	assert_int_equal(storage_txn_begin_read(t->a, &rt), CARELOG_OK);
	struct storage_applied applied;
	assert_int_equal(storage_applied_get(rt, &applied), CARELOG_OK);
	assert_int_equal(applied.index, 1);
	storage_txn_abort(rt);
}

static void test_apply_foreign_key_and_malformed_record_are_rejected(void **state)
{
	struct test_ctx *t = *state;
	/* Signed as node 1 but with a key the configuration does not pin. */
	struct fixture other;
	fixture_init(&other);
	static uint8_t rec[RECORD_CAP];
	size_t len = fixture_record(&other, "p4", "req-x", "x", 1000, rec, sizeof(rec), NULL);
	const uint8_t junk[] = {0x93, 0x01, 0x02};
	struct consensus_entry e[2] = {normal(2, rec, len), normal(3, junk, sizeof(junk))};
	struct node_apply_outcome out[2];
	assert_int_equal(apply_batch(t->a, &t->sa, e, 2, out), CARELOG_OK);
	assert_int_equal(out[0].status, NODE_APPLY_REJECTED);
	assert_int_equal(out[0].reject_err, CARELOG_EBADSIG); /* node 1's pinned key differs */
	assert_int_equal(out[1].kind, NODE_APPLY_KIND_OPAQUE);
	assert_int_equal(out[1].status, NODE_APPLY_REJECTED);
	assert_false(out[1].has_id);
	assert_int_equal(t->sa.applied_index, 3);
	fixture_cleanup(&other);
}

/* A record of node 1 whose header names kind "zzzz" (unknown to this node), signed with
 * `secret` over the edited header bytes. Same length as "note": the msgpack stays valid. */
static size_t unknown_kind_record(const struct fixture *f, const uint8_t *secret, uint8_t *out,
                                  size_t cap)
{
	static uint8_t rec[RECORD_CAP];
	size_t len = fixture_record(f, "p7", "req-k", "x", 1000, rec, sizeof(rec), NULL);
	struct journal_record r;
	assert_int_equal(journal_record_decode(rec, len, &r), CARELOG_OK);
	uint8_t header[JOURNAL_HEADER_BYTES_MAX];
	assert_true(r.header_len <= sizeof(header));
	memcpy(header, r.header, r.header_len);
	uint8_t *kind = memmem(header, r.header_len, "\xa4note", 5);
	assert_non_null(kind);
	assert_null(memmem(kind + 5, r.header_len - (size_t)(kind + 5 - header), "\xa4note", 5));
	memcpy(kind + 1, "zzzz", 4);
	uint8_t sig[CL_SIGNATURE_BYTES];
	assert_int_equal(cl_sign(sig, CL_SIGN_DOMAIN_ENTRY, header, r.header_len, secret),
	                 CARELOG_OK);
	r.header = header;
	r.signature = sig;
	size_t out_len = 0;
	assert_int_equal(journal_record_encode(&r, out, cap, &out_len), CARELOG_OK);
	return out_len;
}

/* Only an entry an authentic member signed may stop apply with an unknown kind. */
static void test_apply_unknown_kind_correctly_signed_stops_apply(void **state)
{
	struct test_ctx *t = *state;
	static uint8_t rec[RECORD_CAP];
	size_t len = unknown_kind_record(&t->f, t->f.secret, rec, sizeof(rec));
	struct consensus_entry e = normal(2, rec, len);
	struct node_apply_outcome out;
	assert_int_equal(apply_batch(t->a, &t->sa, &e, 1, &out), CARELOG_EUNKNOWN);
	assert_int_equal(t->sa.applied_index, 1); /* nothing applied, nothing guessed */
}

/* A forged entry naming an unknown kind must not halt apply region-wide: it is rejected. */
static void test_apply_unknown_kind_with_bad_signature_is_rejected_not_stopped(void **state)
{
	struct test_ctx *t = *state;
	struct fixture other; /* a key the configuration does not pin for node 1 */
	fixture_init(&other);
	static uint8_t rec[RECORD_CAP];
	size_t len = unknown_kind_record(&t->f, other.secret, rec, sizeof(rec));
	struct consensus_entry e = normal(2, rec, len);
	struct node_apply_outcome out;
	assert_int_equal(apply_batch(t->a, &t->sa, &e, 1, &out), CARELOG_OK);
	assert_int_equal(out.kind, NODE_APPLY_KIND_RECORD);
	assert_int_equal(out.status, NODE_APPLY_REJECTED);
	assert_int_equal(out.reject_err, CARELOG_EBADSIG);
	assert_int_equal(t->sa.applied_index, 2);
	fixture_cleanup(&other);
}

static void test_apply_chain_is_identical_across_stores_and_batchings(void **state)
{
	struct test_ctx *t = *state;
	struct storage *b = NULL;
	struct node_apply_state sb;
	fixture_open_store(&t->f, "b", &b, &sb);
	assert_memory_equal(t->sa.chain_head, sb.chain_head, CL_SHA256_BYTES);
	static uint8_t r[3][RECORD_CAP];
	size_t l[3];
	l[0] = fixture_record(&t->f, "p5", "c-1", "one", 1000, r[0], RECORD_CAP, NULL);
	l[1] = fixture_record(&t->f, "p5", "c-2", "two", 1001, r[1], RECORD_CAP, NULL);
	l[2] = fixture_record(&t->f, "p6", "c-1", "dup", 1002, r[2], RECORD_CAP, NULL);
	struct consensus_entry e[4] = {normal(2, r[0], l[0]), normal(3, NULL, 0),
	                               normal(4, r[1], l[1]), normal(5, r[2], l[2])};
	struct node_apply_outcome out[4];
	assert_int_equal(apply_batch(t->a, &t->sa, e, 4, out), CARELOG_OK);
	assert_int_equal(out[1].kind, NODE_APPLY_KIND_NOOP);
	assert_int_equal(out[3].status, NODE_APPLY_DUPLICATE);
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(apply_batch(b, &sb, &e[i], 1, &out[i]), CARELOG_OK);
	}
	assert_int_equal(t->sa.applied_index, 5);
	assert_int_equal(sb.applied_index, 5);
	assert_memory_equal(t->sa.chain_head, sb.chain_head, CL_SHA256_BYTES);
	/* Reloading from storage gives the same state. */
	struct storage_txn *rt = NULL;
	struct node_apply_state loaded;
	assert_int_equal(storage_txn_begin_read(b, &rt), CARELOG_OK);
	assert_int_equal(node_apply_load(rt, &loaded), CARELOG_OK);
	storage_txn_abort(rt);
	assert_int_equal(loaded.applied_index, 5);
	assert_memory_equal(loaded.chain_head, sb.chain_head, CL_SHA256_BYTES);
	assert_true(loaded.has_membership);
	assert_int_equal(loaded.membership.params.body_max_bytes, 4096);
	storage_close(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_apply_accepted_record_is_indexed_by_id_request_and_patient, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_apply_duplicate_request_id_is_a_recorded_noop_answering_the_first, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_apply_bad_signature_is_rejected_identically_on_two_stores, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_apply_unknown_record_version_stops_apply, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(
	        test_apply_foreign_key_and_malformed_record_are_rejected, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_apply_chain_is_identical_across_stores_and_batchings, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_apply_unknown_kind_correctly_signed_stops_apply,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_apply_unknown_kind_with_bad_signature_is_rejected_not_stopped, setup,
	        teardown),
	};
	return cmocka_run_group_tests_name("daemon_apply", tests, NULL, NULL);
}
