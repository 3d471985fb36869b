/* Unit tests for the event loop: exactly once per request id, group commit, refusals. */
#include "carelog/errors.h"
#include "fixture.h"
#include "node/daemon/loop.h"

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

static void submit(struct test_ctx *t, uint64_t waiter_id, const char *request_id, const char *body)
{
	struct proto_request req;
	memset(&req, 0, sizeof(req));
	req.version = PROTO_VERSION;
	req.op = PROTO_OP_APPEND;
	struct proto_append_req *a = &req.u.append;
	a->patient = (struct proto_str){"01017012345", 11};
	a->kind = (struct proto_str){"note", 4};
	a->request_id = (struct proto_str){request_id, strlen(request_id)};
	a->body = (struct proto_str){body, strlen(body)};
	a->actor.id = (struct proto_str){"hpr-1", 5};
	a->actor.role = (struct proto_str){"nurse", 5};
	struct proto_buf buf = {0};
	assert_int_equal(proto_request_encode(&req, &buf), CARELOG_OK);
	struct node_append_item *item = NULL;
	struct node_waiter w = {.owner = t, .generation = waiter_id};
	assert_int_equal(node_append_item_create(buf.data, buf.len, w, &item), CARELOG_OK);
	proto_buf_free(&buf);
	assert_int_equal(node_loop_submit(t->loop, item), CARELOG_OK);
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
	assert_int_equal(r->index, 3);
	assert_false(r->duplicate);
	assert_int_equal(node_loop_applied_index(t->loop), 3);
	assert_int_equal(node_loop_commit_index(t->loop), 3);
	/* The stored entry carries the leader stamp from the clock seam and the actor. */
	struct storage_txn *rt = NULL;
	struct storage_entry e;
	assert_int_equal(storage_txn_begin_read(t->s, &rt), CARELOG_OK);
	assert_int_equal(storage_log_get(rt, 3, &e), CARELOG_OK);
	struct journal_record rec;
	struct journal_header h;
	uint8_t id[JOURNAL_ID_BYTES];
	assert_int_equal(journal_record_decode(e.data, e.data_len, &rec), CARELOG_OK);
	assert_int_equal(journal_verify(&rec, t->f.public_key, &h, id), CARELOG_OK);
	assert_int_equal(rec.leader_time_ms, t->now_ms);
	assert_string_equal(h.author, "hpr-1");
	assert_string_equal(h.org, FIXTURE_ORG);
	assert_string_equal(h.unit, "ward-7");
	assert_memory_equal(id, r->id, sizeof(id));
	struct storage_hard_state hs;
	assert_int_equal(storage_hard_state_get(rt, &hs), CARELOG_OK);
	assert_int_equal(hs.commit, 3);
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
	assert_int_equal(log_last(t), 3); /* signed and proposed once */
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
	assert_int_equal(log_last(t), 3);
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
		assert_int_equal(r->index, i + 3); /* submission order is log order */
	}
	assert_int_equal(node_loop_applied_index(t->loop), 22);
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
	assert_int_equal(log_last(t), 2); /* the genesis and the leader's no-op only */
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
	assert_int_equal(node_loop_applied_index(t->loop), 66);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_loop_append_is_answered_after_it_is_applied_durably, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_loop_same_request_id_twice_in_one_batch_gives_one_entry, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_loop_same_request_id_across_batches_gives_one_entry, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_loop_group_commits_many_appends_in_order, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_loop_refuses_bad_appends_with_reasons, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_loop_queue_is_bounded, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_loop_refuses_appends_when_the_map_is_nearly_full,
	                                    setup_map_nearly_full, teardown),
	};
	return cmocka_run_group_tests_name("daemon_loop", tests, NULL, NULL);
}
