/* Unit tests for the event loop: exactly once per request id, group commit, refusals, policy
 * entries. */
#include "carelog/errors.h"
#include "fixture.h"
#include "node/daemon/loop.h"
#include "node/journal/policy.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

enum { RESULTS_MAX = 128 };

struct test_ctx {
	struct fixture f;
	struct storage *s;
	struct node_apply_state st;
	struct node_loop *loop;
	uint64_t now_ms;
	size_t results_count;
	struct node_waiter waiters[RESULTS_MAX];
	struct node_append_result results[RESULTS_MAX];
};

static void on_reply(void *ctx, struct node_waiter w, const struct node_append_result *r)
{
	struct test_ctx *t = ctx;
	assert_true(t->results_count < RESULTS_MAX);
	t->waiters[t->results_count] = w;
	t->results[t->results_count++] = *r;
}

static uint64_t test_clock(void *ctx)
{
	struct test_ctx *t = ctx;
	return t->now_ms;
}

static void on_fatal(void *ctx, int err)
{
	(void)ctx;
	fail_msg("fatal: %s", carelog_errname(err));
}

/* Bytes per write transaction; a large value makes the loop's map reserve exceed the test
 * store's 64 MiB map (setup_map_nearly_full). */
static uint64_t g_batch_bytes_max = 1 << 20;

#define PATIENT "01017012345"

static void submit_relation(struct test_ctx *t, uint64_t waiter_id, const char *request_id,
                            const char *patient);
static const struct node_append_result *result_for(struct test_ctx *t, uint64_t waiter_id);

static int setup(void **state)
{
	struct test_ctx *t = calloc(1, sizeof(*t));
	fixture_init(&t->f);
	fixture_open_store(&t->f, "a", &t->s, &t->st);
	t->now_ms = 1700000000000ULL;
	struct node_loop_config c = {
	    .node_id = FIXTURE_NODE_ID,
	    .secret_key = t->f.secret,
	    .actor_default = "system",
	    .unit = "ward-7",
	    .queue_max = 64,
	    .batch_entries_max = 8,
	    .batch_bytes_max = g_batch_bytes_max,
	    .request_bytes_max = 1 << 20,
	    .clock_ms = test_clock,
	    .clock_ctx = t,
	    .reply = on_reply,
	    .reply_ctx = t,
	    .fatal = on_fatal,
	};
	assert_int_equal(node_loop_create(&c, t->s, &t->st, &t->loop), CARELOG_OK);
	/* A lone voter campaigns at once: term 2, its no-op at index 2 (Raft thesis 6.4). */
	assert_int_equal(node_loop_run_until_idle(t->loop), CARELOG_OK);
	assert_int_equal(node_loop_applied_index(t->loop), 2);
	*state = t;
	return 0;
}

/* setup, then the hospital's admin records a care relation with PATIENT (index 3), so its
 * clinicians may write for them. */
static int setup_related(void **state)
{
	setup(state);
	struct test_ctx *t = *state;
	submit_relation(t, 9000, "rel-setup", PATIENT);
	assert_int_equal(node_loop_run_until_idle(t->loop), CARELOG_OK);
	assert_int_equal(result_for(t, 9000)->err, CARELOG_OK);
	assert_int_equal(node_loop_applied_index(t->loop), 3);
	t->results_count = 0;
	return 0;
}

static int setup_map_nearly_full(void **state)
{
	g_batch_bytes_max = 16u << 20; /* reserve 4 x 16 MiB + 16 MiB > the 64 MiB map */
	int rc = setup(state);
	g_batch_bytes_max = 1 << 20;
	return rc;
}

static int teardown(void **state)
{
	struct test_ctx *t = *state;
	node_loop_destroy(t->loop);
	storage_close(t->s);
	fixture_cleanup(&t->f);
	free(t);
	return 0;
}

static struct proto_str str(const char *s)
{
	return (struct proto_str){s, strlen(s)};
}

static void submit_request(struct test_ctx *t, uint64_t waiter_id, const struct proto_request *req)
{
	struct proto_buf buf = {0};
	assert_int_equal(proto_request_encode(req, &buf), CARELOG_OK);
	struct node_append_item *item = NULL;
	struct node_waiter w = {.owner = t, .generation = waiter_id};
	assert_int_equal(node_append_item_create(buf.data, buf.len, w, &item), CARELOG_OK);
	proto_buf_free(&buf);
	assert_int_equal(node_loop_submit(t->loop, item), CARELOG_OK);
}

/* A policy request by `actor_id` of `role`; the caller fills req.u.policy further. */
static struct proto_request policy_request(const char *kind, const char *patient,
                                           const char *request_id, const char *actor_id,
                                           const char *role)
{
	struct proto_request req;
	memset(&req, 0, sizeof(req));
	req.version = PROTO_VERSION;
	req.op = PROTO_OP_POLICY;
	req.actor.id = str(actor_id);
	req.actor.role = str(role);
	req.u.policy.kind = str(kind);
	req.u.policy.patient = str(patient);
	req.u.policy.request_id = str(request_id);
	return req;
}

/* The hospital's admin records a care relation with `patient` (org left out: the node's). */
static void submit_relation(struct test_ctx *t, uint64_t waiter_id, const char *request_id,
                            const char *patient)
{
	struct proto_request req =
	    policy_request("care-relation", patient, request_id, "adm-1", "admin");
	submit_request(t, waiter_id, &req);
}

/* An append of a note for `patient` by nurse hpr-1. */
static void submit_for(struct test_ctx *t, uint64_t waiter_id, const char *patient,
                       const char *request_id, const char *body)
{
	struct proto_request req;
	memset(&req, 0, sizeof(req));
	req.version = PROTO_VERSION;
	req.op = PROTO_OP_APPEND;
	struct proto_append_req *a = &req.u.append;
	a->patient = str(patient);
	a->kind = (struct proto_str){"note", 4};
	a->request_id = (struct proto_str){request_id, strlen(request_id)};
	a->body = (struct proto_str){body, strlen(body)};
	req.actor.id = (struct proto_str){"hpr-1", 5};
	req.actor.role = (struct proto_str){"nurse", 5};
	submit_request(t, waiter_id, &req);
}

static void submit(struct test_ctx *t, uint64_t waiter_id, const char *request_id, const char *body)
{
	submit_for(t, waiter_id, PATIENT, request_id, body);
}

/* The stored record at `index`, verified with the fixture's key. */
static void stored(struct test_ctx *t, uint64_t index, struct journal_header *h,
                   uint8_t id[JOURNAL_ID_BYTES], uint8_t *body, size_t *body_len)
{
	struct storage_txn *rt = NULL;
	struct storage_entry e;
	assert_int_equal(storage_txn_begin_read(t->s, &rt), CARELOG_OK);
	assert_int_equal(storage_log_get(rt, index, &e), CARELOG_OK);
	struct journal_record rec;
	assert_int_equal(journal_record_decode(e.data, e.data_len, &rec), CARELOG_OK);
	assert_int_equal(journal_verify(&rec, t->f.public_key, h, id), CARELOG_OK);
	if (body != NULL) {
		assert_non_null(rec.body);
		memcpy(body, rec.body, rec.body_len);
		*body_len = rec.body_len;
	}
	storage_txn_abort(rt);
}

static const struct node_append_result *result_for(struct test_ctx *t, uint64_t waiter_id)
{
	for (size_t i = 0; i < t->results_count; i++) {
		if (t->waiters[i].generation == waiter_id) {
			return &t->results[i];
		}
	}
	fail_msg("no result for waiter %llu", (unsigned long long)waiter_id);
	abort(); /* fail_msg does not return; say so to the compiler */
}

static uint64_t log_last(struct test_ctx *t)
{
	struct storage_txn *rt = NULL;
	uint64_t last = 0, term = 0;
	assert_int_equal(storage_txn_begin_read(t->s, &rt), CARELOG_OK);
	assert_int_equal(storage_log_last(rt, &last, &term), CARELOG_OK);
	storage_txn_abort(rt);
	return last;
}

static void test_loop_append_is_answered_after_it_is_applied_durably(void **state)
{
	struct test_ctx *t = *state;
	submit(t, 1, "req-a", "hello");
	assert_int_equal(node_loop_run_until_idle(t->loop), CARELOG_OK);
	assert_int_equal(t->results_count, 1);
	const struct node_append_result *r = result_for(t, 1);
	assert_int_equal(r->err, CARELOG_OK);
	assert_int_equal(r->index, 4);
	assert_false(r->duplicate);
	assert_int_equal(node_loop_applied_index(t->loop), 4);
	assert_int_equal(node_loop_commit_index(t->loop), 4);
	/* The stored entry carries the leader stamp from the clock seam and the actor. */
	struct storage_txn *rt = NULL;
	struct storage_entry e;
	assert_int_equal(storage_txn_begin_read(t->s, &rt), CARELOG_OK);
	assert_int_equal(storage_log_get(rt, 4, &e), CARELOG_OK);
	struct journal_record rec;
	struct journal_header h;
	uint8_t id[JOURNAL_ID_BYTES];
	assert_int_equal(journal_record_decode(e.data, e.data_len, &rec), CARELOG_OK);
	assert_int_equal(journal_verify(&rec, t->f.public_key, &h, id), CARELOG_OK);
	assert_int_equal(rec.leader_time_ms, t->now_ms);
	assert_string_equal(h.author, "hpr-1");
	assert_string_equal(h.role, "nurse");
	assert_string_equal(h.org, FIXTURE_ORG);
	assert_string_equal(h.unit, "ward-7"); /* the actor named none: the node's unit */
	assert_memory_equal(id, r->id, sizeof(id));
	struct storage_hard_state hs;
	assert_int_equal(storage_hard_state_get(rt, &hs), CARELOG_OK);
	assert_int_equal(hs.commit, 4);
	assert_int_equal(hs.term, 2);
	storage_txn_abort(rt);
}

static void test_loop_same_request_id_twice_in_one_batch_gives_one_entry(void **state)
{
	struct test_ctx *t = *state;
	submit(t, 1, "req-same", "body");
	submit(t, 2, "req-same", "body");
	assert_int_equal(node_loop_run_until_idle(t->loop), CARELOG_OK);
	assert_int_equal(t->results_count, 2);
	const struct node_append_result *r1 = result_for(t, 1);
	const struct node_append_result *r2 = result_for(t, 2);
	assert_int_equal(r1->err, CARELOG_OK);
	assert_int_equal(r2->err, CARELOG_OK);
	assert_int_equal(r1->index, r2->index);
	assert_memory_equal(r1->id, r2->id, JOURNAL_ID_BYTES);
	assert_false(r1->duplicate);
	assert_true(r2->duplicate);
	assert_int_equal(log_last(t), 4); /* signed and proposed once */
}

static void test_loop_same_request_id_across_batches_gives_one_entry(void **state)
{
	struct test_ctx *t = *state;
	submit(t, 1, "req-retry", "body");
	assert_int_equal(node_loop_run_until_idle(t->loop), CARELOG_OK);
	t->now_ms += 5000;
	submit(t, 2, "req-retry", "body");
	assert_int_equal(node_loop_run_until_idle(t->loop), CARELOG_OK);
	const struct node_append_result *r1 = result_for(t, 1);
	const struct node_append_result *r2 = result_for(t, 2);
	assert_int_equal(r2->err, CARELOG_OK);
	assert_true(r2->duplicate);
	assert_int_equal(r1->index, r2->index);
	assert_memory_equal(r1->id, r2->id, JOURNAL_ID_BYTES);
	assert_int_equal(log_last(t), 4);
}

static void test_loop_group_commits_many_appends_in_order(void **state)
{
	struct test_ctx *t = *state;
	char rid[32];
	for (uint64_t i = 0; i < 20; i++) {
		snprintf(rid, sizeof(rid), "req-%llu", (unsigned long long)i);
		submit(t, i + 1, rid, "x");
	}
	assert_int_equal(node_loop_run_until_idle(t->loop), CARELOG_OK);
	assert_int_equal(t->results_count, 20);
	for (uint64_t i = 0; i < 20; i++) {
		const struct node_append_result *r = result_for(t, i + 1);
		assert_int_equal(r->err, CARELOG_OK);
		assert_int_equal(r->index, i + 4); /* submission order is log order */
	}
	assert_int_equal(node_loop_applied_index(t->loop), 23);
}

static void test_loop_refuses_bad_appends_with_reasons(void **state)
{
	struct test_ctx *t = *state;
	char big[5000];
	memset(big, 'b', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	submit(t, 1, "req-big", big);
	submit(t, 2, "", "no request id");
	assert_int_equal(node_loop_run_until_idle(t->loop), CARELOG_OK);
	const struct node_append_result *r = result_for(t, 1);
	assert_int_equal(r->err, CARELOG_ETOOBIG);
	assert_string_equal(r->msg, "body is 4999 bytes; the cluster's body_max_bytes is 4096");
	r = result_for(t, 2);
	assert_int_equal(r->err, CARELOG_EINVAL);
	assert_non_null(strstr(r->msg, "request_id"));
	assert_int_equal(log_last(t), 3); /* the genesis, the leader's no-op, the relation */
}

static void test_loop_queue_is_bounded(void **state)
{
	struct test_ctx *t = *state;
	char rid[32];
	for (uint64_t i = 0; i < 64; i++) {
		snprintf(rid, sizeof(rid), "q-%llu", (unsigned long long)i);
		submit(t, i + 1, rid, "x");
	}
	struct proto_request req;
	memset(&req, 0, sizeof(req));
	req.version = PROTO_VERSION;
	req.op = PROTO_OP_APPEND;
	req.u.append.patient = (struct proto_str){"p", 1};
	req.u.append.kind = (struct proto_str){"note", 4};
	req.u.append.request_id = (struct proto_str){"overflow", 8};
	struct proto_buf buf = {0};
	assert_int_equal(proto_request_encode(&req, &buf), CARELOG_OK);
	struct node_append_item *item = NULL;
	assert_int_equal(
	    node_append_item_create(buf.data, buf.len, (struct node_waiter){t, 999}, &item),
	    CARELOG_OK);
	proto_buf_free(&buf);
	assert_int_equal(node_loop_submit(t->loop, item), CARELOG_EBUSY);
	node_append_item_free(item);
	assert_int_equal(node_loop_run_until_idle(t->loop), CARELOG_OK);
	assert_int_equal(t->results_count, 64);
	assert_int_equal(node_loop_applied_index(t->loop), 67);
}

/* A Raft write cannot be refused once the core asked for it: new appends are refused while
 * the map is nearly full, with the remedy, and nothing is stored. */
static void test_loop_refuses_appends_when_the_map_is_nearly_full(void **state)
{
	struct test_ctx *t = *state;
	submit(t, 1, "req-full", "body");
	assert_int_equal(node_loop_run_until_idle(t->loop), CARELOG_OK);
	const struct node_append_result *r = result_for(t, 1);
	assert_int_equal(r->err, CARELOG_EMAPFULL);
	assert_non_null(strstr(r->msg, "storage map nearly full"));
	assert_non_null(strstr(r->msg, "raise [storage] map_size_bytes"));
	assert_int_equal(log_last(t), 2); /* the genesis and the leader's no-op only */
}

/* The actor's unit, when named, is the header's unit. */
static void test_loop_actor_unit_goes_into_the_header(void **state)
{
	struct test_ctx *t = *state;
	struct proto_request req;
	memset(&req, 0, sizeof(req));
	req.version = PROTO_VERSION;
	req.op = PROTO_OP_APPEND;
	req.actor.id = str("hpr-2");
	req.actor.role = str("physician");
	req.actor.unit = str("icu");
	req.actor.purpose = str("ward round");
	req.u.append.patient = str(PATIENT);
	req.u.append.kind = str("observation");
	req.u.append.request_id = str("req-unit");
	req.u.append.body = str("SpO2 97");
	submit_request(t, 1, &req);
	assert_int_equal(node_loop_run_until_idle(t->loop), CARELOG_OK);
	const struct node_append_result *r = result_for(t, 1);
	assert_int_equal(r->err, CARELOG_OK);
	struct journal_header h;
	uint8_t id[JOURNAL_ID_BYTES];
	stored(t, r->index, &h, id, NULL, NULL);
	assert_string_equal(h.author, "hpr-2");
	assert_string_equal(h.role, "physician");
	assert_string_equal(h.unit, "icu");
}

/* A policy op goes through the loop like an append of its kind: encoded body, policy media
 * type, sensitivity normal, the actor as author, the node's org as the relation's org. A
 * kind acting on an entry may leave the patient out: the node takes the referenced entry's. */
static void test_loop_policy_entry_round_trip(void **state)
{
	struct test_ctx *t = *state;
	struct proto_request req =
	    policy_request("care-relation", "p-policy", "rel-1", "adm-1", "admin");
	req.u.policy.unit = str("cardiology");
	req.u.policy.from_ms = t->now_ms;
	req.u.policy.categories_count = 1;
	req.u.policy.categories[0] = str("psychiatry");
	submit_request(t, 1, &req);
	assert_int_equal(node_loop_run_until_idle(t->loop), CARELOG_OK);
	const struct node_append_result *r = result_for(t, 1);
	assert_int_equal(r->err, CARELOG_OK);
	assert_int_equal(r->index, 3);
	struct journal_header h;
	uint8_t id[JOURNAL_ID_BYTES];
	static uint8_t body[8192];
	size_t body_len = 0;
	stored(t, r->index, &h, id, body, &body_len);
	assert_memory_equal(id, r->id, sizeof(id));
	assert_string_equal(h.kind, "care-relation");
	assert_string_equal(h.patient, "p-policy");
	assert_string_equal(h.author, "adm-1");
	assert_string_equal(h.role, "admin");
	assert_string_equal(h.media_type, POLICY_MEDIA_TYPE);
	assert_string_equal(h.sensitivity, "normal");
	static struct policy_body b;
	assert_int_equal(policy_body_decode(POLICY_KIND_CARE_RELATION, body, body_len, &b),
	                 CARELOG_OK);
	assert_string_equal(b.org, FIXTURE_ORG);
	assert_string_equal(b.unit, "cardiology");
	assert_int_equal(b.from_ms, t->now_ms);
	assert_int_equal(b.categories_count, 1);
	assert_string_equal(b.categories[0], "psychiatry");
	/* Ending it names only the relation: the patient comes from it. */
	struct proto_request end =
	    policy_request("care-relation-end", "", "rel-1-end", "adm-1", "admin");
	end.u.policy.has_ref = true;
	memcpy(end.u.policy.ref, r->id, JOURNAL_ID_BYTES);
	submit_request(t, 2, &end);
	assert_int_equal(node_loop_run_until_idle(t->loop), CARELOG_OK);
	const struct node_append_result *r2 = result_for(t, 2);
	assert_int_equal(r2->err, CARELOG_OK);
	stored(t, r2->index, &h, id, NULL, NULL);
	assert_string_equal(h.kind, "care-relation-end");
	assert_string_equal(h.patient, "p-policy");
	/* A retry of the same request id is the same entry. */
	submit_request(t, 3, &req);
	assert_int_equal(node_loop_run_until_idle(t->loop), CARELOG_OK);
	assert_true(result_for(t, 3)->duplicate);
	assert_int_equal(result_for(t, 3)->index, r->index);
}

static void test_loop_refuses_bad_policy_requests_with_reasons(void **state)
{
	struct test_ctx *t = *state;
	struct proto_request req =
	    policy_request("policy-params", "", "params-0", "op-1", "operator");
	req.u.policy.implicit_window_days = 0; /* must be 1-3650 */
	req.u.policy.btg_hours_max = 24;
	req.u.policy.ambulance_hours_max = 12;
	submit_request(t, 1, &req);
	req = policy_request("note", "p", "not-policy", "adm-1", "admin");
	submit_request(t, 2, &req);
	req = policy_request("audit-batch", "-", "ab", "node-1", "system");
	submit_request(t, 3, &req);
	req = policy_request("block-lift", "", "no-patient", "adm-1", "admin");
	submit_request(t, 4, &req); /* neither a patient nor a ref */
	req = policy_request("withhold-lift", "", "bad-ref", "adm-1", "admin");
	req.u.policy.has_ref = true;
	memset(req.u.policy.ref, 0x5a, sizeof(req.u.policy.ref));
	submit_request(t, 5, &req);
	assert_int_equal(node_loop_run_until_idle(t->loop), CARELOG_OK);
	const struct node_append_result *r = result_for(t, 1);
	assert_int_equal(r->err, CARELOG_EINVAL);
	assert_non_null(strstr(r->msg, "implicit_window_days 1-3650"));
	r = result_for(t, 2);
	assert_int_equal(r->err, CARELOG_EINVAL);
	assert_non_null(strstr(r->msg, "not a policy kind 'note'"));
	assert_non_null(strstr(r->msg, "care-relation"));
	r = result_for(t, 3);
	assert_int_equal(r->err, CARELOG_EINVAL);
	assert_non_null(strstr(r->msg, "written by the node itself"));
	r = result_for(t, 4);
	assert_int_equal(r->err, CARELOG_EINVAL);
	assert_non_null(strstr(r->msg, "patient is required"));
	r = result_for(t, 5);
	assert_int_equal(r->err, CARELOG_ENOTFOUND);
	assert_non_null(strstr(r->msg, "no accepted entry with id 5a5a"));
	assert_int_equal(log_last(t), 2); /* nothing signed */
}

/* A write the author may not make is refused at apply: the client hears why, and so does every
 * retry of its request id, without a second entry. */
static void test_loop_refused_append_is_answered_denied_and_so_is_its_retry(void **state)
{
	struct test_ctx *t = *state;
	submit_for(t, 1, "p-stranger", "req-denied", "no relation here");
	assert_int_equal(node_loop_run_until_idle(t->loop), CARELOG_OK);
	const struct node_append_result *r = result_for(t, 1);
	assert_int_equal(r->err, CARELOG_EDENIED);
	assert_non_null(strstr(r->msg, "care relation"));
	assert_null(strstr(r->msg, "p-stranger"));
	uint64_t last = log_last(t);
	assert_int_equal(last, 4); /* recorded (refused) like any entry */
	t->now_ms += 1000;
	submit_for(t, 2, "p-stranger", "req-denied", "no relation here");
	submit_for(t, 3, "p-stranger", "req-denied", "no relation here");
	assert_int_equal(node_loop_run_until_idle(t->loop), CARELOG_OK);
	char first_msg[sizeof(r->msg)];
	snprintf(first_msg, sizeof(first_msg), "%s", r->msg);
	for (uint64_t w = 2; w <= 3; w++) {
		r = result_for(t, w);
		assert_int_equal(r->err, CARELOG_EDENIED);
		assert_string_equal(r->msg, first_msg); /* the same refusal, in the same words */
	}
	assert_int_equal(log_last(t), last);
	/* The organisation's admin records a relation; a new request id is then accepted. */
	submit_relation(t, 4, "rel-stranger", "p-stranger");
	assert_int_equal(node_loop_run_until_idle(t->loop), CARELOG_OK);
	submit_for(t, 5, "p-stranger", "req-allowed", "now related");
	assert_int_equal(node_loop_run_until_idle(t->loop), CARELOG_OK);
	assert_int_equal(result_for(t, 5)->err, CARELOG_OK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_loop_append_is_answered_after_it_is_applied_durably, setup_related, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_loop_same_request_id_twice_in_one_batch_gives_one_entry, setup_related,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_loop_same_request_id_across_batches_gives_one_entry, setup_related, teardown),
	    cmocka_unit_test_setup_teardown(test_loop_group_commits_many_appends_in_order,
	                                    setup_related, teardown),
	    cmocka_unit_test_setup_teardown(test_loop_refuses_bad_appends_with_reasons,
	                                    setup_related, teardown),
	    cmocka_unit_test_setup_teardown(test_loop_queue_is_bounded, setup_related, teardown),
	    cmocka_unit_test_setup_teardown(test_loop_actor_unit_goes_into_the_header,
	                                    setup_related, teardown),
	    cmocka_unit_test_setup_teardown(test_loop_policy_entry_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_loop_refuses_bad_policy_requests_with_reasons,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_loop_refused_append_is_answered_denied_and_so_is_its_retry, setup_related,
	        teardown),
	    cmocka_unit_test_setup_teardown(test_loop_refuses_appends_when_the_map_is_nearly_full,
	                                    setup_map_nearly_full, teardown),
	};
	return cmocka_run_group_tests_name("daemon_loop", tests, NULL, NULL);
}
