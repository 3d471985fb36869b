/* Unit tests for apply (outcomes, indexes, rejection, refusal, version stop, chain agreement)
 * and for serving what it applied under the access decisions (read, get, access-log,
 * btg-list, verify). */
#include "carelog/errors.h"
#include "common/crypto.h"
#include "fixture.h"
#include "node/access/access.h"
#include "node/daemon/apply.h"
#include "node/daemon/serve.h"
#include "node/journal/policy.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

enum { RECORD_CAP = 8192 };

#define T0 1700000000000ULL /* leader time of the test entries */

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

/* --- signing entries of any kind as node 1 --- */

/* Signs `in` as node 1 (org st-olavs) at `time_ms` and encodes the record. */
static size_t sign_entry(const struct fixture *f, const struct journal_append *in, uint64_t time_ms,
                         uint8_t *out, size_t cap, uint8_t out_id[JOURNAL_ID_BYTES])
{
	struct journal_signer signer = {
	    .node_id = FIXTURE_NODE_ID, .org = FIXTURE_ORG, .secret_key = f->secret};
	struct journal_signed sig;
	const char *reason = NULL;
	int rc = journal_sign(in, &signer, time_ms, 4096, &sig, &reason);
	if (rc != CARELOG_OK) {
		fail_msg("journal_sign: %s (%s)", carelog_errname(rc), reason ? reason : "");
	}
	struct journal_record r = {.leader_time_ms = time_ms,
	                           .header = sig.header_buf,
	                           .header_len = sig.header_len,
	                           .signature = sig.signature,
	                           .salt = sig.salt,
	                           .body = in->body,
	                           .body_len = in->body_len};
	size_t len = 0;
	assert_int_equal(journal_record_encode(&r, out, cap, &len), CARELOG_OK);
	if (out_id != NULL) {
		memcpy(out_id, sig.id, JOURNAL_ID_BYTES);
	}
	return len;
}

/* A clinical entry by physician hpr-1234 of unit cardiology. */
static size_t clinical_record(const struct fixture *f, const char *patient, const char *request_id,
                              const char *sensitivity, const char *status, const uint8_t *corrects,
                              uint64_t time_ms, uint8_t *out, size_t cap,
                              uint8_t out_id[JOURNAL_ID_BYTES])
{
	struct journal_append in = {
	    .kind = "note",
	    .patient = patient,
	    .author = "hpr-1234",
	    .role = "physician",
	    .unit = "cardiology",
	    .status = status,
	    .sensitivity = sensitivity,
	    .request_id = request_id,
	    .has_corrects = corrects != NULL,
	    .body = (const uint8_t *)"clinical text",
	    .body_len = 13,
	};
	if (corrects != NULL) {
		memcpy(in.corrects, corrects, JOURNAL_ID_BYTES);
	}
	return sign_entry(f, &in, time_ms, out, cap, out_id);
}

/* A policy entry with body `b` by `author` of `role`. */
static size_t policy_record(const struct fixture *f, const struct policy_body *b,
                            const char *patient, const char *author, const char *role,
                            const char *request_id, uint64_t time_ms, uint8_t *out, size_t cap,
                            uint8_t out_id[JOURNAL_ID_BYTES])
{
	static uint8_t body[RECORD_CAP];
	size_t body_len = 0;
	assert_int_equal(policy_body_encode(b, body, sizeof(body), &body_len), CARELOG_OK);
	struct journal_append in = {
	    .kind = policy_kind_name(b->kind),
	    .patient = patient,
	    .author = author,
	    .role = role,
	    .unit = "",
	    .request_id = request_id,
	    .media_type = POLICY_MEDIA_TYPE,
	    .body = body,
	    .body_len = body_len,
	};
	return sign_entry(f, &in, time_ms, out, cap, out_id);
}

/* A care relation between `patient` and the whole of st-olavs, recorded by its admin. */
static size_t relation_record(const struct fixture *f, const char *patient, const char *request_id,
                              uint8_t *out, size_t cap, uint8_t out_id[JOURNAL_ID_BYTES])
{
	static struct policy_body b;
	memset(&b, 0, sizeof(b));
	b.kind = POLICY_KIND_CARE_RELATION;
	snprintf(b.org, sizeof(b.org), "%s", FIXTURE_ORG);
	return policy_record(f, &b, patient, "adm-1", "admin", request_id, T0, out, cap, out_id);
}

/* Applies one record at the next index; returns its outcome. */
static struct node_apply_outcome apply_one_record(struct test_ctx *t, const uint8_t *rec,
                                                  size_t len)
{
	struct consensus_entry e = normal(t->sa.applied_index + 1, rec, len);
	struct node_apply_outcome out;
	assert_int_equal(apply_batch(t->a, &t->sa, &e, 1, &out), CARELOG_OK);
	return out;
}

/* Applies a care relation for `patient` (must be accepted). */
static void relate(struct test_ctx *t, const char *patient, const char *request_id)
{
	static uint8_t rec[RECORD_CAP];
	size_t len = relation_record(&t->f, patient, request_id, rec, sizeof(rec), NULL);
	struct node_apply_outcome o = apply_one_record(t, rec, len);
	assert_int_equal(o.status, NODE_APPLY_ACCEPTED);
}

static size_t patient_rows(struct storage *s, const char *patient, uint64_t *rows, size_t cap)
{
	struct storage_txn *rt = NULL;
	assert_int_equal(storage_txn_begin_read(s, &rt), CARELOG_OK);
	uint8_t pk[CL_SHA256_BYTES];
	journal_patient_key(patient, pk);
	size_t n = 0;
	bool more = false;
	assert_int_equal(storage_index_patient_scan(rt, pk, 0, rows, cap, &n, &more), CARELOG_OK);
	storage_txn_abort(rt);
	return n;
}

static uint8_t entry_status(struct storage *s, const uint8_t id[JOURNAL_ID_BYTES])
{
	struct storage_txn *rt = NULL;
	assert_int_equal(storage_txn_begin_read(s, &rt), CARELOG_OK);
	uint64_t index = 0;
	uint8_t status = 99;
	assert_int_equal(storage_index_entry_get(rt, id, &index, &status), CARELOG_OK);
	storage_txn_abort(rt);
	return status;
}

static void test_apply_accepted_record_is_indexed_by_id_request_and_patient(void **state)
{
	struct test_ctx *t = *state;
	relate(t, "01017012345", "rel-1"); /* index 2: the author's organisation treats them */
	static uint8_t rec[RECORD_CAP];
	uint8_t id[JOURNAL_ID_BYTES];
	size_t len =
	    fixture_record(&t->f, "01017012345", "req-1", "BP 120/80", 1000, rec, sizeof(rec), id);
	struct consensus_entry e = normal(3, rec, len);
	struct node_apply_outcome out;
	uint8_t chain_before[CL_SHA256_BYTES];
	memcpy(chain_before, t->sa.chain_head, sizeof(chain_before));
	assert_int_equal(apply_batch(t->a, &t->sa, &e, 1, &out), CARELOG_OK);
	assert_int_equal(out.kind, NODE_APPLY_KIND_RECORD);
	assert_int_equal(out.status, NODE_APPLY_ACCEPTED);
	assert_int_equal(out.reject_err, CARELOG_OK);
	assert_int_equal(out.answer_index, 3);
	assert_memory_equal(out.answer_id, id, sizeof(id));
	assert_memory_not_equal(chain_before, t->sa.chain_head, sizeof(chain_before));

	struct storage_txn *rt = NULL;
	assert_int_equal(storage_txn_begin_read(t->a, &rt), CARELOG_OK);
	uint64_t index = 0;
	uint8_t status = 9;
	assert_int_equal(storage_index_entry_get(rt, id, &index, &status), CARELOG_OK);
	assert_int_equal(index, 3);
	assert_int_equal(status, NODE_APPLY_ACCEPTED);
	uint8_t key[NODE_REQUEST_KEY_BYTES_MAX];
	size_t key_len = 0;
	request_key("req-1", key, &key_len);
	uint8_t rid[JOURNAL_ID_BYTES];
	assert_int_equal(storage_index_request_get(rt, key, key_len, &index, rid), CARELOG_OK);
	assert_int_equal(index, 3);
	assert_memory_equal(rid, id, sizeof(id));
	uint8_t pk[CL_SHA256_BYTES];
	journal_patient_key("01017012345", pk);
	uint64_t rows[4];
	size_t n = 0;
	bool more = true;
	assert_int_equal(storage_index_patient_scan(rt, pk, 0, rows, 4, &n, &more), CARELOG_OK);
	assert_int_equal(n, 2); /* the care relation and the note: the patient's record */
	assert_int_equal(rows[0], 2);
	assert_int_equal(rows[1], 3);
	struct storage_applied applied;
	assert_int_equal(storage_applied_get(rt, &applied), CARELOG_OK);
	assert_int_equal(applied.index, 3);
	assert_memory_equal(applied.chain_head, t->sa.chain_head, CL_SHA256_BYTES);
	storage_txn_abort(rt);
}

static void test_apply_duplicate_request_id_is_a_recorded_noop_answering_the_first(void **state)
{
	struct test_ctx *t = *state;
	relate(t, "p1", "rel-p1"); /* index 2 */
	static uint8_t r1[RECORD_CAP], r2[RECORD_CAP];
	uint8_t id1[JOURNAL_ID_BYTES], id2[JOURNAL_ID_BYTES];
	size_t l1 = fixture_record(&t->f, "p1", "req-dup", "first", 1000, r1, sizeof(r1), id1);
	size_t l2 = fixture_record(&t->f, "p1", "req-dup", "second", 2000, r2, sizeof(r2), id2);
	assert_memory_not_equal(id1, id2, sizeof(id1));
	struct consensus_entry e[2] = {normal(3, r1, l1), normal(4, r2, l2)};
	struct node_apply_outcome out[2];
	assert_int_equal(apply_batch(t->a, &t->sa, e, 2, out), CARELOG_OK);
	assert_int_equal(out[0].status, NODE_APPLY_ACCEPTED);
	assert_int_equal(out[1].status, NODE_APPLY_DUPLICATE);
	assert_int_equal(out[1].reject_err, CARELOG_OK);
	assert_int_equal(out[1].answer_index, 3);
	assert_memory_equal(out[1].answer_id, id1, sizeof(id1));
	assert_int_equal(t->sa.applied_index, 4);

	struct storage_txn *rt = NULL;
	assert_int_equal(storage_txn_begin_read(t->a, &rt), CARELOG_OK);
	uint64_t index = 0;
	uint8_t status = 0;
	assert_int_equal(storage_index_entry_get(rt, id2, &index, &status), CARELOG_OK);
	assert_int_equal(index, 4);
	assert_int_equal(status, NODE_APPLY_DUPLICATE);
	storage_txn_abort(rt);
	uint64_t rows[4];
	/* The relation and the first copy: the duplicate is not in the patient's timeline. */
	assert_int_equal(patient_rows(t->a, "p1", rows, 4), 2);
	assert_int_equal(rows[1], 3);
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
	assert_int_equal(out[0].status, NODE_APPLY_REFUSED); /* no care relation */
	assert_int_equal(out[1].kind, NODE_APPLY_KIND_NOOP);
	assert_int_equal(out[2].status, NODE_APPLY_REFUSED);
	assert_int_equal(out[3].status, NODE_APPLY_DUPLICATE); /* request c-1 again */
	assert_int_equal(out[3].reject_err, CARELOG_EDENIED);  /* ... of a refused request */
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

/* --- refusal at apply --- */

/* A clinician without a care relation writes: every node records the same refusal (status 3),
 * the waiting client hears why, the patient's record does not have it, and a second copy of
 * the request (a retry signed again) answers with the same refusal. */
static void test_apply_clinical_entry_without_relation_is_refused_identically(void **state)
{
	struct test_ctx *t = *state;
	struct storage *b = NULL;
	struct node_apply_state sb;
	fixture_open_store(&t->f, "b", &b, &sb);
	static uint8_t r1[RECORD_CAP], r2[RECORD_CAP];
	uint8_t id1[JOURNAL_ID_BYTES], id2[JOURNAL_ID_BYTES];
	size_t l1 = fixture_record(&t->f, "p-nobody", "req-ref", "first", T0, r1, sizeof(r1), id1);
	size_t l2 =
	    fixture_record(&t->f, "p-nobody", "req-ref", "again", T0 + 9, r2, sizeof(r2), id2);
	struct consensus_entry e[2] = {normal(2, r1, l1), normal(3, r2, l2)};
	struct node_apply_outcome oa[2], ob[2];
	assert_int_equal(apply_batch(t->a, &t->sa, e, 2, oa), CARELOG_OK);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(apply_batch(b, &sb, &e[i], 1, &ob[i]), CARELOG_OK);
	}
	assert_int_equal(oa[0].kind, NODE_APPLY_KIND_RECORD);
	assert_int_equal(oa[0].status, NODE_APPLY_REFUSED);
	assert_int_equal(ob[0].status, NODE_APPLY_REFUSED);
	assert_int_equal(oa[0].reject_err, CARELOG_EDENIED);
	assert_non_null(strstr(oa[0].refused_reason, "care relation"));
	assert_string_equal(oa[0].refused_reason, ob[0].refused_reason);
	assert_null(strstr(oa[0].refused_reason, "p-nobody")); /* never the patient id */
	assert_true(oa[0].request_key_len > 0);                /* the waiter is answered */
	assert_int_equal(oa[1].status, NODE_APPLY_DUPLICATE);
	assert_int_equal(oa[1].reject_err, CARELOG_EDENIED);
	assert_int_equal(oa[1].answer_index, 2);
	assert_string_equal(oa[1].refused_reason, oa[0].refused_reason); /* the same refusal */
	assert_memory_equal(t->sa.chain_head, sb.chain_head, CL_SHA256_BYTES);
	assert_int_equal(entry_status(t->a, id1), NODE_APPLY_REFUSED);
	assert_int_equal(entry_status(b, id1), NODE_APPLY_REFUSED);
	assert_int_equal(entry_status(t->a, id2), NODE_APPLY_DUPLICATE);
	uint64_t rows[4];
	assert_int_equal(patient_rows(t->a, "p-nobody", rows, 4), 0);
	assert_int_equal(patient_rows(b, "p-nobody", rows, 4), 0);
	/* The request row stays: a retry is never signed and judged a second time. */
	struct storage_txn *rt = NULL;
	assert_int_equal(storage_txn_begin_read(t->a, &rt), CARELOG_OK);
	uint8_t key[NODE_REQUEST_KEY_BYTES_MAX];
	size_t key_len = 0;
	request_key("req-ref", key, &key_len);
	uint64_t index = 0;
	uint8_t rid[JOURNAL_ID_BYTES];
	assert_int_equal(storage_index_request_get(rt, key, key_len, &index, rid), CARELOG_OK);
	assert_int_equal(index, 2);
	assert_memory_equal(rid, id1, sizeof(rid));
	storage_txn_abort(rt);
	storage_close(b);
}

/* Region-wide entries (patient "-") change the policy state but are in no patient's index. */
static void test_apply_region_wide_entry_is_not_indexed_by_patient(void **state)
{
	struct test_ctx *t = *state;
	static struct policy_body b;
	memset(&b, 0, sizeof(b));
	b.kind = POLICY_KIND_PARAMS;
	b.implicit_window_days = 30;
	b.btg_hours_max = 48;
	b.ambulance_hours_max = 12;
	static uint8_t rec[RECORD_CAP];
	size_t len = policy_record(&t->f, &b, POLICY_REGION_PATIENT, "op-1", "operator", "params-1",
	                           T0, rec, sizeof(rec), NULL);
	struct node_apply_outcome o = apply_one_record(t, rec, len);
	assert_int_equal(o.status, NODE_APPLY_ACCEPTED);
	uint64_t rows[4];
	assert_int_equal(patient_rows(t->a, POLICY_REGION_PATIENT, rows, 4), 0);
	struct storage_txn *rt = NULL;
	struct access_params params;
	assert_int_equal(storage_txn_begin_read(t->a, &rt), CARELOG_OK);
	assert_int_equal(access_params_get(rt, &params), CARELOG_OK);
	storage_txn_abort(rt);
	assert_int_equal(params.implicit_window_days, 30);
	assert_int_equal(params.btg_hours_max, 48);
	/* The same kind from a clinician is refused, and not indexed either. */
	len = policy_record(&t->f, &b, POLICY_REGION_PATIENT, "hpr-1", "physician", "params-2", T0,
	                    rec, sizeof(rec), NULL);
	o = apply_one_record(t, rec, len);
	assert_int_equal(o.status, NODE_APPLY_REFUSED);
	assert_non_null(strstr(o.refused_reason, "operator"));
}

/* --- serving under the access decisions --- */

static struct access_actor actor_of(const char *id, const char *role, const char *unit)
{
	struct access_actor a;
	memset(&a, 0, sizeof(a));
	snprintf(a.id, sizeof(a.id), "%s", id);
	snprintf(a.role, sizeof(a.role), "%s", role);
	snprintf(a.org, sizeof(a.org), "%s", FIXTURE_ORG);
	snprintf(a.unit, sizeof(a.unit), "%s", unit);
	return a;
}

/* A served reply decoded; free with proto_arena_free(&arena) and proto_buf_free(&buf). */
struct served {
	struct proto_buf buf;
	struct proto_arena arena;
	struct proto_reply rep;
	struct policy_audit_row audit;
};

typedef int (*serve_fn)(const struct node_serve *, const struct access_actor *, uint64_t,
                        const struct proto_request *, struct proto_buf *,
                        struct policy_audit_row *);

static void serve(struct test_ctx *t, serve_fn fn, const struct access_actor *actor,
                  const struct proto_request *req, struct served *out)
{
	memset(out, 0, sizeof(*out));
	struct node_serve sv = {.storage = t->a, .node_id = FIXTURE_NODE_ID, .stale_lag_max = 10};
	assert_int_equal(fn(&sv, actor, T0 + 1000, req, &out->buf, &out->audit), CARELOG_OK);
	assert_int_equal(proto_reply_decode(out->buf.data, out->buf.len, &out->arena, &out->rep),
	                 CARELOG_OK);
}

static void served_free(struct served *s)
{
	proto_arena_free(&s->arena);
	proto_buf_free(&s->buf);
}

static struct proto_request read_request(const char *patient, bool history)
{
	struct proto_request req;
	memset(&req, 0, sizeof(req));
	req.version = PROTO_VERSION;
	req.op = PROTO_OP_READ;
	req.u.read.patient = (struct proto_str){patient, strlen(patient)};
	req.u.read.history = history;
	return req;
}

static struct proto_request get_request(const uint8_t id[JOURNAL_ID_BYTES])
{
	struct proto_request req;
	memset(&req, 0, sizeof(req));
	req.version = PROTO_VERSION;
	req.op = PROTO_OP_GET;
	memcpy(req.u.get.id, id, JOURNAL_ID_BYTES);
	return req;
}

static bool view_is(struct proto_str v, const char *s)
{
	return v.len == strlen(s) && (v.len == 0 || memcmp(v.ptr, s, v.len) == 0);
}

/* A relation reader sees the normal entry; the psychiatry entry of another unit is withheld and
 * counted with its reason; a reader of another organisation without a relation is denied. */
static void test_serve_read_shows_what_the_decision_allows_and_counts_withheld(void **state)
{
	struct test_ctx *t = *state;
	relate(t, "p-read", "rel-read"); /* index 2 */
	static uint8_t rec[RECORD_CAP];
	size_t len = clinical_record(&t->f, "p-read", "n-1", "normal", NULL, NULL, T0 + 1, rec,
	                             sizeof(rec), NULL);
	assert_int_equal(apply_one_record(t, rec, len).status, NODE_APPLY_ACCEPTED);
	len = clinical_record(&t->f, "p-read", "n-2", "psychiatry", NULL, NULL, T0 + 2, rec,
	                      sizeof(rec), NULL);
	assert_int_equal(apply_one_record(t, rec, len).status, NODE_APPLY_ACCEPTED);

	struct access_actor er = actor_of("hpr-9", "physician", "emergency");
	struct proto_request req = read_request("p-read", false);
	req.u.read.kind = (struct proto_str){"note", 4};
	struct served r;
	serve(t, node_serve_read, &er, &req, &r);
	assert_int_equal(r.rep.err, CARELOG_OK);
	assert_true(view_is(r.rep.u.read.basis, "relation"));
	assert_int_equal(r.rep.u.read.entries_count, 1);
	assert_true(view_is(r.rep.u.read.entries[0].request_id, "n-1"));
	assert_int_equal(r.rep.u.read.withheld, 1);
	assert_int_equal(r.rep.u.read.withheld_reasons_count, 1);
	assert_int_equal(r.rep.u.read.withheld_reasons[0].count, 1);
	assert_true(view_is(r.rep.u.read.withheld_reasons[0].reason,
	                    access_withheld_text(ACCESS_WITHHELD_SHIELDED)));
	assert_string_equal(r.audit.patient, "p-read");
	assert_true(r.audit.allowed);
	assert_string_equal(r.audit.basis, "relation");
	assert_int_equal(r.audit.count, 1);
	assert_int_equal(r.audit.withheld, 1);
	served_free(&r);

	/* Its own unit sees the shielded entry too. */
	struct access_actor cardio = actor_of("hpr-1234", "physician", "cardiology");
	serve(t, node_serve_read, &cardio, &req, &r);
	assert_int_equal(r.rep.u.read.entries_count, 2);
	assert_int_equal(r.rep.u.read.withheld, 0);
	served_free(&r);

	struct access_actor stranger = actor_of("hpr-7", "nurse", "ward");
	snprintf(stranger.org, sizeof(stranger.org), "kommune-4");
	serve(t, node_serve_read, &stranger, &req, &r);
	assert_int_equal(r.rep.err, CARELOG_EDENIED);
	assert_non_null(strstr((const char *)r.rep.msg.ptr, "kommune-4"));
	assert_false(r.audit.allowed);
	assert_string_equal(r.audit.basis, "none");
	assert_string_equal(r.audit.patient, "p-read");
	served_free(&r);

	struct access_actor admin = actor_of("adm-1", "admin", "");
	serve(t, node_serve_read, &admin, &req, &r);
	assert_int_equal(r.rep.err, CARELOG_EDENIED);
	served_free(&r);
}

/* An amended entry hides its old version unless history is asked for; then the old one says
 * which version replaced it. */
static void test_serve_read_hides_superseded_versions_unless_history(void **state)
{
	struct test_ctx *t = *state;
	relate(t, "p-hist", "rel-hist");
	static uint8_t rec[RECORD_CAP];
	uint8_t old_id[JOURNAL_ID_BYTES], new_id[JOURNAL_ID_BYTES];
	size_t len = clinical_record(&t->f, "p-hist", "v-1", "normal", NULL, NULL, T0 + 1, rec,
	                             sizeof(rec), old_id);
	assert_int_equal(apply_one_record(t, rec, len).status, NODE_APPLY_ACCEPTED);
	len = clinical_record(&t->f, "p-hist", "v-2", "normal", "amended", old_id, T0 + 2, rec,
	                      sizeof(rec), new_id);
	assert_int_equal(apply_one_record(t, rec, len).status, NODE_APPLY_ACCEPTED);
	/* A second correction of the old version is refused: correct the newest one. */
	len = clinical_record(&t->f, "p-hist", "v-3", "normal", "amended", old_id, T0 + 3, rec,
	                      sizeof(rec), NULL);
	assert_int_equal(apply_one_record(t, rec, len).status, NODE_APPLY_REFUSED);

	struct access_actor doc = actor_of("hpr-1234", "physician", "cardiology");
	struct proto_request req = read_request("p-hist", false);
	req.u.read.kind = (struct proto_str){"note", 4};
	struct served r;
	serve(t, node_serve_read, &doc, &req, &r);
	assert_int_equal(r.rep.u.read.entries_count, 1);
	assert_memory_equal(r.rep.u.read.entries[0].id, new_id, JOURNAL_ID_BYTES);
	assert_int_equal(r.rep.u.read.withheld, 0); /* an old version is not "withheld" */
	served_free(&r);
	req.u.read.history = true;
	serve(t, node_serve_read, &doc, &req, &r);
	assert_int_equal(r.rep.u.read.entries_count, 2);
	assert_memory_equal(r.rep.u.read.entries[0].id, old_id, JOURNAL_ID_BYTES);
	assert_true(r.rep.u.read.entries[0].has_superseded_by);
	assert_memory_equal(r.rep.u.read.entries[0].superseded_by, new_id, JOURNAL_ID_BYTES);
	assert_false(r.rep.u.read.entries[1].has_superseded_by);
	served_free(&r);
	/* get by id shows the old version with its successor. */
	struct proto_request g = get_request(old_id);
	serve(t, node_serve_get, &doc, &g, &r);
	assert_int_equal(r.rep.err, CARELOG_OK);
	assert_true(r.rep.u.get.has_superseded_by);
	assert_true(r.audit.has_entry);
	assert_memory_equal(r.audit.entry, old_id, JOURNAL_ID_BYTES);
	assert_int_equal(r.audit.count, 1);
	served_free(&r);
}

/* get: a withheld entry is denied with its reason; region-wide and refused entries are never
 * served. */
static void test_serve_get_denies_withheld_region_wide_and_refused_entries(void **state)
{
	struct test_ctx *t = *state;
	relate(t, "p-get", "rel-get");
	static uint8_t rec[RECORD_CAP];
	uint8_t shielded_id[JOURNAL_ID_BYTES], refused_id[JOURNAL_ID_BYTES];
	uint8_t params_id[JOURNAL_ID_BYTES];
	size_t len = clinical_record(&t->f, "p-get", "g-1", "psychiatry", NULL, NULL, T0 + 1, rec,
	                             sizeof(rec), shielded_id);
	assert_int_equal(apply_one_record(t, rec, len).status, NODE_APPLY_ACCEPTED);
	len = clinical_record(&t->f, "p-other", "g-2", "normal", NULL, NULL, T0 + 2, rec,
	                      sizeof(rec), refused_id);
	assert_int_equal(apply_one_record(t, rec, len).status, NODE_APPLY_REFUSED);
	static struct policy_body b;
	memset(&b, 0, sizeof(b));
	b.kind = POLICY_KIND_PARAMS;
	b.implicit_window_days = 90;
	b.btg_hours_max = 120;
	b.ambulance_hours_max = 24;
	len = policy_record(&t->f, &b, POLICY_REGION_PATIENT, "op-1", "operator", "params", T0, rec,
	                    sizeof(rec), params_id);
	assert_int_equal(apply_one_record(t, rec, len).status, NODE_APPLY_ACCEPTED);

	struct access_actor er = actor_of("hpr-9", "physician", "emergency");
	struct served r;
	struct proto_request g = get_request(shielded_id);
	serve(t, node_serve_get, &er, &g, &r);
	assert_int_equal(r.rep.err, CARELOG_EDENIED);
	assert_non_null(strstr((const char *)r.rep.msg.ptr, "withheld: "));
	assert_false(r.audit.allowed);
	assert_int_equal(r.audit.withheld, 1);
	assert_string_equal(r.audit.patient, "p-get");
	served_free(&r);
	g = get_request(params_id);
	serve(t, node_serve_get, &er, &g, &r);
	assert_int_equal(r.rep.err, CARELOG_EDENIED);
	served_free(&r);
	struct access_actor op = actor_of("op-1", "operator", "");
	serve(t, node_serve_get, &op, &g, &r);
	assert_int_equal(r.rep.err, CARELOG_EDENIED);
	served_free(&r);
	g = get_request(refused_id);
	serve(t, node_serve_get, &er, &g, &r);
	assert_int_equal(r.rep.err, CARELOG_ENOTFOUND);
	assert_non_null(strstr((const char *)r.rep.msg.ptr, "refused when applied"));
	served_free(&r);
}

/* Lawful erasure: the body and salt leave the record, the chain and verify still hold, and get
 * says when, by whom and on which basis. */
static void test_apply_erasure_strips_the_body_and_serving_says_who_erased_it(void **state)
{
	struct test_ctx *t = *state;
	relate(t, "p-erase", "rel-erase");
	static uint8_t rec[RECORD_CAP];
	uint8_t id[JOURNAL_ID_BYTES];
	size_t len = clinical_record(&t->f, "p-erase", "e-1", "normal", NULL, NULL, T0 + 1, rec,
	                             sizeof(rec), id);
	struct node_apply_outcome o = apply_one_record(t, rec, len);
	assert_int_equal(o.status, NODE_APPLY_ACCEPTED);
	uint64_t erased_index = o.index;
	static struct policy_body b;
	memset(&b, 0, sizeof(b));
	b.kind = POLICY_KIND_ERASURE;
	b.has_ref = true;
	memcpy(b.ref, id, sizeof(b.ref));
	snprintf(b.text, sizeof(b.text), "court order 2026/17");
	len = policy_record(&t->f, &b, "p-erase", "adm-1", "admin", "erase-1", T0 + 5, rec,
	                    sizeof(rec), NULL);
	o = apply_one_record(t, rec, len);
	assert_int_equal(o.status, NODE_APPLY_ACCEPTED);
	uint64_t tombstone = o.index;

	struct storage_txn *rt = NULL;
	struct storage_entry e;
	struct journal_record r;
	assert_int_equal(storage_txn_begin_read(t->a, &rt), CARELOG_OK);
	assert_int_equal(storage_log_get(rt, erased_index, &e), CARELOG_OK);
	assert_int_equal(journal_record_decode(e.data, e.data_len, &r), CARELOG_OK);
	assert_null(r.salt);
	assert_null(r.body);
	assert_null(memmem(e.data, e.data_len, "clinical text", 13));
	storage_txn_abort(rt);

	struct access_actor doc = actor_of("hpr-1234", "physician", "cardiology");
	struct proto_request g = get_request(id);
	struct served s;
	serve(t, node_serve_get, &doc, &g, &s);
	assert_int_equal(s.rep.err, CARELOG_OK);
	assert_true(s.rep.u.get.body_erased);
	assert_int_equal(s.rep.u.get.body.len, 0);
	assert_int_equal(s.rep.u.get.erased_index, tombstone);
	assert_int_equal(s.rep.u.get.erased_time_ms, T0 + 5);
	assert_true(view_is(s.rep.u.get.erased_author, "adm-1"));
	assert_true(view_is(s.rep.u.get.erased_org, FIXTURE_ORG));
	assert_true(view_is(s.rep.u.get.erased_basis, "court order 2026/17"));
	served_free(&s);
	struct proto_request rd = read_request("p-erase", false);
	serve(t, node_serve_read, &doc, &rd, &s);
	bool seen = false;
	for (uint32_t i = 0; i < s.rep.u.read.entries_count; i++) {
		if (memcmp(s.rep.u.read.entries[i].id, id, JOURNAL_ID_BYTES) == 0) {
			seen = true;
			assert_true(s.rep.u.read.entries[i].body_erased);
			assert_int_equal(s.rep.u.read.entries[i].erased_index, tombstone);
		}
	}
	assert_true(seen);
	served_free(&s);

	/* verify replays every entry (the stripped one included) and agrees with the chain. */
	struct node_serve sv = {.storage = t->a, .node_id = FIXTURE_NODE_ID};
	struct proto_buf buf = {0};
	assert_int_equal(node_serve_verify(&sv, &buf), CARELOG_OK);
	struct proto_arena arena = {0};
	struct proto_reply rep;
	assert_int_equal(proto_reply_decode(buf.data, buf.len, &arena, &rep), CARELOG_OK);
	if (!rep.u.verify.ok) {
		for (uint32_t i = 0; i < rep.u.verify.problems_listed; i++) {
			print_message("problem: %.*s\n", (int)rep.u.verify.problems[i].len,
			              rep.u.verify.problems[i].ptr);
		}
	}
	assert_true(rep.u.verify.ok);
	assert_int_equal(rep.u.verify.applied_index, tombstone);
	proto_arena_free(&arena);
	proto_buf_free(&buf);
}

/* --- access log and break-the-glass list --- */

static size_t audit_row(uint64_t seq, uint64_t time_ms, const char *actor, const char *patient,
                        uint8_t *out, size_t cap)
{
	struct policy_audit_row row;
	memset(&row, 0, sizeof(row));
	row.node_id = FIXTURE_NODE_ID;
	row.seq = seq;
	row.time_ms = time_ms;
	snprintf(row.actor, sizeof(row.actor), "%s", actor);
	snprintf(row.role, sizeof(row.role), "physician");
	snprintf(row.org, sizeof(row.org), "%s", FIXTURE_ORG);
	snprintf(row.unit, sizeof(row.unit), "cardiology");
	snprintf(row.patient, sizeof(row.patient), "%s", patient);
	snprintf(row.action, sizeof(row.action), "read");
	row.allowed = true;
	snprintf(row.basis, sizeof(row.basis), "relation");
	row.count = seq;
	snprintf(row.outcome, sizeof(row.outcome), "OK");
	size_t len = 0;
	assert_int_equal(policy_audit_row_encode(&row, out, cap, &len), CARELOG_OK);
	return len;
}

/* Applies an audit batch of node 1 with rows 1..3 about p-log (read by hpr-1234). */
static void ship_rows(struct test_ctx *t)
{
	static uint8_t rows[3][POLICY_AUDIT_ROW_BYTES_MAX];
	static struct policy_body b;
	memset(&b, 0, sizeof(b));
	b.kind = POLICY_KIND_AUDIT_BATCH;
	b.node_id = FIXTURE_NODE_ID;
	b.first_seq = 1;
	b.rows_count = 3;
	for (uint64_t i = 0; i < 3; i++) {
		b.rows_len[i] =
		    audit_row(i + 1, T0 + 10 * i, "hpr-1234", "p-log", rows[i], sizeof(rows[i]));
		b.rows[i] = rows[i];
	}
	static uint8_t rec[RECORD_CAP];
	size_t len = policy_record(&t->f, &b, POLICY_REGION_PATIENT, "node-1", "system",
	                           "audit-1-1-3", T0 + 50, rec, sizeof(rec), NULL);
	assert_int_equal(apply_one_record(t, rec, len).status, NODE_APPLY_ACCEPTED);
}

/* This node's unshipped rows: seq 3 (shipped meanwhile) and seq 4 (not yet). */
static int pending_rows(void *ctx, const char *patient, const char *actor_org, const char *actor_id,
                        int (*visit)(void *arg, const uint8_t *row, size_t len), void *arg)
{
	(void)ctx;
	(void)actor_org;
	bool by_me = patient == NULL && strcmp(actor_id, "hpr-1234") == 0;
	if (!by_me && (patient == NULL || strcmp(patient, "p-log") != 0)) {
		return CARELOG_OK;
	}
	uint8_t row[POLICY_AUDIT_ROW_BYTES_MAX];
	for (uint64_t seq = 3; seq <= 4; seq++) {
		size_t len =
		    audit_row(seq, T0 + 10 * (seq - 1), "hpr-1234", "p-log", row, sizeof(row));
		int rc = visit(arg, row, len);
		if (rc != 0) {
			return rc;
		}
	}
	return CARELOG_OK;
}

static void test_serve_access_log_merges_shipped_and_pending_rows_newest_first(void **state)
{
	struct test_ctx *t = *state;
	ship_rows(t);
	uint64_t rows[4];
	assert_int_equal(patient_rows(t->a, "p-log", rows, 4), 0); /* rows are not entries */
	struct proto_request req;
	memset(&req, 0, sizeof(req));
	req.version = PROTO_VERSION;
	req.op = PROTO_OP_ACCESS_LOG;
	req.u.access_log.patient = (struct proto_str){"p-log", 5};
	struct node_serve sv = {
	    .storage = t->a, .node_id = FIXTURE_NODE_ID, .audit_pending = pending_rows};
	struct access_actor auditor = actor_of("aud-1", "auditor", "");
	struct served s;
	memset(&s, 0, sizeof(s));
	assert_int_equal(node_serve_access_log(&sv, &auditor, T0, &req, &s.buf, &s.audit),
	                 CARELOG_OK);
	assert_int_equal(proto_reply_decode(s.buf.data, s.buf.len, &s.arena, &s.rep), CARELOG_OK);
	assert_int_equal(s.rep.err, CARELOG_OK);
	const struct proto_access_log_reply *lr = &s.rep.u.access_log;
	assert_int_equal(lr->rows_count, 4);
	for (uint32_t i = 0; i < 4; i++) {
		assert_int_equal(lr->rows[i].seq, 4 - i); /* newest first, (node, seq) once */
		assert_int_equal(lr->rows[i].shipped, i != 0);
		assert_true(view_is(lr->rows[i].patient, "p-log"));
	}
	assert_true(s.audit.allowed);
	assert_string_equal(s.audit.basis, "role");
	assert_int_equal(s.audit.count, 4);
	served_free(&s);

	/* Without the queue hook: the shipped rows only; a limit keeps the newest. */
	req.u.access_log.limit = 2;
	serve(t, node_serve_access_log, &auditor, &req, &s);
	assert_int_equal(s.rep.u.access_log.rows_count, 2);
	assert_int_equal(s.rep.u.access_log.rows[0].seq, 3);
	assert_int_equal(s.rep.u.access_log.rows[1].seq, 2);
	served_free(&s);
	req.u.access_log.limit = 0;

	/* The patient may read their own log; a clinician may not. */
	struct access_actor self = actor_of("p-log", "patient", "");
	serve(t, node_serve_access_log, &self, &req, &s);
	assert_int_equal(s.rep.err, CARELOG_OK);
	assert_string_equal(s.audit.basis, "self");
	served_free(&s);
	struct access_actor doc = actor_of("hpr-1234", "physician", "cardiology");
	serve(t, node_serve_access_log, &doc, &req, &s);
	assert_int_equal(s.rep.err, CARELOG_EDENIED);
	assert_false(s.audit.allowed);
	served_free(&s);

	/* By actor: the person themself or an auditor. */
	memset(&req.u.access_log, 0, sizeof(req.u.access_log));
	req.u.access_log.actor_id = (struct proto_str){"hpr-1234", 8};
	serve(t, node_serve_access_log, &doc, &req, &s);
	assert_int_equal(s.rep.err, CARELOG_OK);
	assert_int_equal(s.rep.u.access_log.rows_count, 3);
	assert_string_equal(s.audit.patient, "");
	served_free(&s);
	struct access_actor other = actor_of("hpr-2", "physician", "cardiology");
	serve(t, node_serve_access_log, &other, &req, &s);
	assert_int_equal(s.rep.err, CARELOG_EDENIED);
	served_free(&s);
}

static void test_serve_btg_list_shows_open_grants_to_auditors_only(void **state)
{
	struct test_ctx *t = *state;
	static struct policy_body b;
	memset(&b, 0, sizeof(b));
	b.kind = POLICY_KIND_BTG_GRANT;
	snprintf(b.reason_code, sizeof(b.reason_code), "emergency");
	snprintf(b.text, sizeof(b.text), "unconscious on arrival");
	b.hours = 4;
	static uint8_t rec[RECORD_CAP];
	uint8_t id[JOURNAL_ID_BYTES];
	size_t len = policy_record(&t->f, &b, "p-btg", "hpr-1234", "physician", "btg-1", T0, rec,
	                           sizeof(rec), id);
	assert_int_equal(apply_one_record(t, rec, len).status, NODE_APPLY_ACCEPTED);
	struct proto_request req;
	memset(&req, 0, sizeof(req));
	req.version = PROTO_VERSION;
	req.op = PROTO_OP_BTG_LIST;
	struct access_actor auditor = actor_of("aud-1", "auditor", "");
	struct served s;
	serve(t, node_serve_btg_list, &auditor, &req, &s);
	assert_int_equal(s.rep.err, CARELOG_OK);
	assert_int_equal(s.rep.u.btg_list.grants_count, 1);
	const struct proto_btg_grant *g = &s.rep.u.btg_list.grants[0];
	assert_memory_equal(g->id, id, JOURNAL_ID_BYTES);
	assert_true(view_is(g->patient, "p-btg"));
	assert_true(view_is(g->actor, "hpr-1234"));
	assert_true(view_is(g->reason_code, "emergency"));
	assert_int_equal(g->granted_ms, T0);
	assert_int_equal(g->expires_ms, T0 + 4 * 3600 * 1000ULL);
	assert_string_equal(s.audit.basis, "role");
	assert_int_equal(s.audit.count, 1);
	served_free(&s);
	/* The grant lets the clinician read now. */
	struct access_actor doc = actor_of("hpr-1234", "physician", "cardiology");
	struct proto_request rd = read_request("p-btg", false);
	serve(t, node_serve_read, &doc, &rd, &s);
	assert_int_equal(s.rep.err, CARELOG_OK);
	assert_true(view_is(s.rep.u.read.basis, "btg"));
	served_free(&s);
	serve(t, node_serve_btg_list, &doc, &req, &s);
	assert_int_equal(s.rep.err, CARELOG_EDENIED);
	served_free(&s);
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
	    cmocka_unit_test_setup_teardown(
	        test_apply_clinical_entry_without_relation_is_refused_identically, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_apply_region_wide_entry_is_not_indexed_by_patient,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_serve_read_shows_what_the_decision_allows_and_counts_withheld, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_serve_read_hides_superseded_versions_unless_history, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_serve_get_denies_withheld_region_wide_and_refused_entries, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_apply_erasure_strips_the_body_and_serving_says_who_erased_it, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_serve_access_log_merges_shipped_and_pending_rows_newest_first, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(test_serve_btg_list_shows_open_grants_to_auditors_only,
	                                    setup, teardown),
	};
	return cmocka_run_group_tests_name("daemon_apply", tests, NULL, NULL);
}
