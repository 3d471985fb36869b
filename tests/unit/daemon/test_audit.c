/* Unit tests for the audit queue service: durable before done, group commit, faults, shipping. */
#include "carelog/errors.h"
#include "common/assert.h"
#include "fixture.h"
#include "node/daemon/audit.h"

#include <pthread.h>
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
	TEST_NODE_ID = 7,
	TEST_WAIT_MS_MAX = 10000,
	TEST_ITEMS_MAX = 16,
	TEST_THREADS = 8,
	TEST_ROWS_PER_THREAD = 25,
};

/* What the fake loop received: decoded copies of each submitted item. */
struct shipped {
	struct node_waiter waiter;
	char request_id[80];
	char actor[80], role[40], patient[80], kind[40], media_type[80];
	uint8_t op;
	size_t body_len;
	uint64_t node_id, first_seq;
	uint32_t rows_count;
	uint64_t row_seqs[POLICY_AUDIT_BATCH_ROWS_MAX];
};

struct test_ctx {
	struct fixture f;
	char dir[300];
	uint64_t now_ms;
	struct node_audit *audit;
	/* append seam: an error to return, or a gate that holds appends */
	int append_err;
	bool gate_closed;
	uint32_t appends_entered;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	/* done callbacks */
	uint32_t done_count;
	uint32_t done_errs[CARELOG_ERROR_COUNT_];
	/* submit seam */
	int submit_err;
	uint32_t items_count;
	struct shipped items[TEST_ITEMS_MAX];
};

static uint64_t test_clock(void *ctx)
{
	struct test_ctx *t = ctx;
	return t->now_ms;
}

static int test_append(void *ctx, struct storage_audit *a, const uint8_t *const *rows,
                       const size_t *lens, size_t count, uint64_t *out_first_seq)
{
	struct test_ctx *t = ctx;
	pthread_mutex_lock(&t->mu);
	t->appends_entered++;
	pthread_cond_broadcast(&t->cond);
	while (t->gate_closed) {
		pthread_cond_wait(&t->cond, &t->mu);
	}
	int err = t->append_err;
	pthread_mutex_unlock(&t->mu);
	if (err != CARELOG_OK) {
		return err;
	}
	return storage_audit_append(a, rows, lens, count, out_first_seq);
}

static void copy_view(char *dst, size_t cap, struct proto_str v)
{
	assert_true(v.len < cap);
	memcpy(dst, v.ptr, v.len);
	dst[v.len] = '\0';
}

static int test_submit(void *ctx, struct node_append_item *item)
{
	struct test_ctx *t = ctx;
	if (t->submit_err != CARELOG_OK) {
		return t->submit_err;
	}
	assert_true(t->items_count < TEST_ITEMS_MAX);
	struct shipped *s = &t->items[t->items_count++];
	memset(s, 0, sizeof(*s));
	s->waiter = item->waiter;
	s->op = item->req.op;
	const struct proto_append_req *ap = &item->req.u.append;
	copy_view(s->request_id, sizeof(s->request_id), ap->request_id);
	copy_view(s->actor, sizeof(s->actor), item->req.actor.id);
	copy_view(s->role, sizeof(s->role), item->req.actor.role);
	copy_view(s->patient, sizeof(s->patient), ap->patient);
	copy_view(s->kind, sizeof(s->kind), ap->kind);
	copy_view(s->media_type, sizeof(s->media_type), ap->media_type);
	s->body_len = ap->body.len;
	struct policy_body *b = malloc(sizeof(*b));
	assert_non_null(b);
	assert_int_equal(policy_body_decode(POLICY_KIND_AUDIT_BATCH, (const uint8_t *)ap->body.ptr,
	                                    ap->body.len, b),
	                 CARELOG_OK);
	s->node_id = b->node_id;
	s->first_seq = b->first_seq;
	s->rows_count = b->rows_count;
	for (uint32_t i = 0; i < b->rows_count; i++) {
		struct policy_audit_row row;
		assert_int_equal(policy_audit_row_decode(b->rows[i], b->rows_len[i], &row),
		                 CARELOG_OK);
		s->row_seqs[i] = row.seq;
	}
	free(b);
	node_append_item_free(item); /* the loop would own it */
	return CARELOG_OK;
}

static void test_done(void *ctx, int err)
{
	struct test_ctx *t = ctx;
	pthread_mutex_lock(&t->mu);
	t->done_count++;
	CL_ASSERT(err >= 0 && err < CARELOG_ERROR_COUNT_);
	t->done_errs[err]++;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->mu);
}

static void wait_done(struct test_ctx *t, uint32_t count)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += TEST_WAIT_MS_MAX / 1000;
	pthread_mutex_lock(&t->mu);
	while (t->done_count < count) {
		assert_int_equal(pthread_cond_timedwait(&t->cond, &t->mu, &until), 0);
	}
	pthread_mutex_unlock(&t->mu);
}

static void open_audit(struct test_ctx *t, uint32_t queue_rows_max, uint64_t body_max_bytes)
{
	struct node_audit_config c = {
	    .node_id = TEST_NODE_ID,
	    .dir = t->dir,
	    .map_size_bytes = 16ULL << 20,
	    .queue_rows_max = queue_rows_max,
	    .body_max_bytes = body_max_bytes,
	    .clock_ms = test_clock,
	    .clock_ctx = t,
	    .submit = test_submit,
	    .submit_ctx = t,
	    .append = test_append,
	    .append_ctx = t,
	};
	char err[512] = "";
	assert_int_equal(node_audit_open(&c, &t->audit, err, sizeof(err)), CARELOG_OK);
}

static int setup(void **state)
{
	struct test_ctx *t = calloc(1, sizeof(*t));
	assert_non_null(t);
	fixture_init(&t->f);
	snprintf(t->dir, sizeof(t->dir), "%s/audit", t->f.dir);
	t->now_ms = 1700000000000ULL;
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cond, NULL);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct test_ctx *t = *state;
	pthread_mutex_lock(&t->mu);
	t->gate_closed = false;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->mu);
	node_audit_close(t->audit);
	fixture_cleanup(&t->f);
	pthread_mutex_destroy(&t->mu);
	pthread_cond_destroy(&t->cond);
	free(t);
	return 0;
}

static struct policy_audit_row row_for(const char *patient, const char *actor, const char *org)
{
	struct policy_audit_row r;
	memset(&r, 0, sizeof(r));
	snprintf(r.actor, sizeof(r.actor), "%s", actor);
	snprintf(r.role, sizeof(r.role), "physician");
	snprintf(r.org, sizeof(r.org), "%s", org);
	snprintf(r.unit, sizeof(r.unit), "ward-3");
	snprintf(r.patient, sizeof(r.patient), "%s", patient);
	snprintf(r.action, sizeof(r.action), "read");
	r.allowed = true;
	snprintf(r.basis, sizeof(r.basis), "relation");
	r.count = 2;
	snprintf(r.purpose, sizeof(r.purpose), "ward round");
	snprintf(r.outcome, sizeof(r.outcome), "OK");
	return r;
}

static void record_rows(struct test_ctx *t, uint32_t n)
{
	struct policy_audit_row r = row_for("p1", "hpr-1", FIXTURE_ORG);
	for (uint32_t i = 0; i < n; i++) {
		node_audit_record(t->audit, &r, test_done, t);
	}
}

struct found_rows {
	uint32_t count;
	uint64_t seqs[64];
	struct policy_audit_row last;
};

static int collect_row(void *arg, uint64_t seq, const uint8_t *row, size_t len)
{
	struct found_rows *f = arg;
	assert_true(f->count < 64);
	assert_int_equal(policy_audit_row_decode(row, len, &f->last), CARELOG_OK);
	assert_int_equal(f->last.seq, seq);
	f->seqs[f->count++] = seq;
	return 0;
}

static void test_audit_rows_are_durable_when_done_says_ok(void **state)
{
	struct test_ctx *t = *state;
	open_audit(t, 0, 0);
	record_rows(t, 5);
	wait_done(t, 5);
	assert_int_equal(t->done_errs[CARELOG_OK], 5);
	/* Close and read the environment afresh: what done confirmed is on disk. */
	node_audit_close(t->audit);
	t->audit = NULL;
	struct storage_audit_options o = {.dir = t->dir, .map_size_bytes = 16ULL << 20};
	struct storage_audit *s = NULL;
	assert_int_equal(storage_audit_open(&o, &s), CARELOG_OK);
	struct found_rows f = {0};
	assert_int_equal(storage_audit_scan(s, 1, 100, collect_row, &f), CARELOG_OK);
	storage_audit_close(s);
	assert_int_equal(f.count, 5);
	for (uint32_t i = 0; i < 5; i++) {
		assert_int_equal(f.seqs[i], i + 1);
	}
	assert_int_equal(f.last.node_id, TEST_NODE_ID);
	assert_int_equal(f.last.time_ms, t->now_ms);
	assert_string_equal(f.last.patient, "p1");
	assert_string_equal(f.last.purpose, "ward round");
	/* Numbering goes on across a restart. */
	open_audit(t, 0, 0);
	record_rows(t, 1);
	wait_done(t, 6);
	struct node_audit_stats st;
	assert_int_equal(node_audit_get_stats(t->audit, &st), CARELOG_OK);
	assert_int_equal(st.next_seq, 7);
	assert_int_equal(st.queued_rows, 6);
}

struct recorder {
	struct test_ctx *t;
	uint32_t index;
};

static void *recorder_thread(void *arg)
{
	struct recorder *r = arg;
	char actor[32];
	snprintf(actor, sizeof(actor), "hpr-%u", r->index);
	struct policy_audit_row row = row_for("p1", actor, FIXTURE_ORG);
	for (uint32_t i = 0; i < TEST_ROWS_PER_THREAD; i++) {
		node_audit_record(r->t->audit, &row, test_done, r->t);
	}
	return NULL;
}

static void test_audit_concurrent_rows_share_one_sync(void **state)
{
	struct test_ctx *t = *state;
	open_audit(t, 0, 0);
	/* The first row's sync is held while the others arrive from many threads: they must all
	 * go into the next append together. */
	t->gate_closed = true;
	record_rows(t, 1);
	pthread_mutex_lock(&t->mu);
	while (t->appends_entered == 0) {
		pthread_cond_wait(&t->cond, &t->mu);
	}
	pthread_mutex_unlock(&t->mu);
	pthread_t th[TEST_THREADS];
	struct recorder rec[TEST_THREADS];
	for (uint32_t i = 0; i < TEST_THREADS; i++) {
		rec[i] = (struct recorder){.t = t, .index = i};
		assert_int_equal(pthread_create(&th[i], NULL, recorder_thread, &rec[i]), 0);
	}
	for (uint32_t i = 0; i < TEST_THREADS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
	}
	struct node_audit_stats st;
	assert_int_equal(node_audit_get_stats(t->audit, &st), CARELOG_OK);
	assert_int_equal(st.waiting_rows, 1 + TEST_THREADS * TEST_ROWS_PER_THREAD);
	assert_int_equal(t->done_count, 0); /* nothing answered before its sync */
	pthread_mutex_lock(&t->mu);
	t->gate_closed = false;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->mu);
	const uint32_t total = 1 + TEST_THREADS * TEST_ROWS_PER_THREAD;
	wait_done(t, total);
	assert_int_equal(t->done_errs[CARELOG_OK], total);
	assert_int_equal(node_audit_get_stats(t->audit, &st), CARELOG_OK);
	print_message("%u rows, %llu syncs\n", total, (unsigned long long)st.syncs);
	assert_int_equal(st.syncs, 2); /* the held one, then everyone else at once */
	assert_int_equal(st.rows_written, total);
	assert_int_equal(st.next_seq, total + 1);
}

static void test_audit_failed_append_answers_every_row_with_the_error(void **state)
{
	struct test_ctx *t = *state;
	open_audit(t, 0, 0);
	t->gate_closed = true;
	t->append_err = CARELOG_EIO;
	record_rows(t, 1);
	pthread_mutex_lock(&t->mu);
	while (t->appends_entered == 0) {
		pthread_cond_wait(&t->cond, &t->mu);
	}
	pthread_mutex_unlock(&t->mu);
	record_rows(t, 3);
	pthread_mutex_lock(&t->mu);
	t->gate_closed = false;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->mu);
	wait_done(t, 4);
	assert_int_equal(t->done_errs[CARELOG_EIO], 4);
	assert_int_equal(t->done_errs[CARELOG_OK], 0);
	struct node_audit_stats st;
	assert_int_equal(node_audit_get_stats(t->audit, &st), CARELOG_OK);
	assert_int_equal(st.write_failures, 2);
	assert_int_equal(st.rows_written, 0);
	/* A failed append numbers nothing: the next row is seq 1. */
	t->append_err = CARELOG_OK;
	record_rows(t, 1);
	wait_done(t, 5);
	assert_int_equal(t->done_errs[CARELOG_OK], 1);
	assert_int_equal(node_audit_get_stats(t->audit, &st), CARELOG_OK);
	assert_int_equal(st.next_seq, 2);
	/* A row the codec refuses is answered with its own error; the others are written. */
	struct policy_audit_row bad = row_for("p1", "hpr-1", FIXTURE_ORG);
	bad.action[0] = '\0';
	node_audit_record(t->audit, &bad, test_done, t);
	wait_done(t, 6);
	assert_int_equal(t->done_errs[CARELOG_EINVAL], 1);
}

static void test_audit_full_queue_refuses_at_once_and_stop_closes(void **state)
{
	struct test_ctx *t = *state;
	open_audit(t, 2, 0);
	t->gate_closed = true;
	record_rows(t, 1); /* taken by the writer, held in its append */
	pthread_mutex_lock(&t->mu);
	while (t->appends_entered == 0) {
		pthread_cond_wait(&t->cond, &t->mu);
	}
	pthread_mutex_unlock(&t->mu);
	record_rows(t, 1); /* the queue's second slot */
	record_rows(t, 1); /* full */
	assert_int_equal(t->done_count, 1);
	assert_int_equal(t->done_errs[CARELOG_EBUSY], 1);
	pthread_mutex_lock(&t->mu);
	t->gate_closed = false;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->mu);
	/* Stopping writes what was queued, then refuses. */
	node_audit_stop_writer(t->audit);
	assert_int_equal(t->done_count, 3);
	assert_int_equal(t->done_errs[CARELOG_OK], 2);
	record_rows(t, 1);
	assert_int_equal(t->done_errs[CARELOG_ECLOSED], 1);
	struct node_audit_stats st;
	assert_int_equal(node_audit_get_stats(t->audit, &st), CARELOG_OK);
	assert_int_equal(st.busy_refusals, 1);
}

static void answer(struct test_ctx *t, uint32_t item, int err, bool duplicate)
{
	struct node_append_result r;
	memset(&r, 0, sizeof(r));
	r.err = err;
	r.index = 40 + item;
	r.duplicate = duplicate;
	snprintf(r.msg, sizeof(r.msg), "%s", err == CARELOG_OK ? "" : "not committed in time");
	node_audit_on_reply(t->audit, t->items[item].waiter, &r);
}

static void test_audit_shipper_retries_the_same_range_with_the_same_request_id(void **state)
{
	struct test_ctx *t = *state;
	open_audit(t, 0, 0);
	record_rows(t, 5);
	wait_done(t, 5);
	assert_int_equal(node_audit_ship_step(t->audit), CARELOG_OK);
	assert_int_equal(t->items_count, 1);
	struct shipped *s = &t->items[0];
	assert_int_equal(s->op, PROTO_OP_APPEND);
	assert_string_equal(s->request_id, "audit-7-1-5");
	assert_string_equal(s->actor, "node-7");
	assert_string_equal(s->role, "system");
	assert_string_equal(s->patient, "-");
	assert_string_equal(s->kind, "audit-batch");
	assert_string_equal(s->media_type, POLICY_MEDIA_TYPE);
	assert_int_equal(s->node_id, 7);
	assert_int_equal(s->first_seq, 1);
	assert_int_equal(s->rows_count, 5);
	assert_int_equal(s->row_seqs[4], 5);
	assert_true(node_audit_owns(t->audit, s->waiter));
	/* Nothing new is sent while it is in flight. */
	assert_int_equal(node_audit_ship_step(t->audit), CARELOG_OK);
	assert_int_equal(t->items_count, 1);

	/* Pending: more rows arrive, but the retry is the same range under the same id. */
	answer(t, 0, CARELOG_EPENDING, false);
	record_rows(t, 2);
	wait_done(t, 7);
	assert_int_equal(node_audit_ship_step(t->audit), CARELOG_EPENDING);
	assert_int_equal(t->items_count, 1);
	assert_int_equal(node_audit_ship_step(t->audit), CARELOG_OK);
	assert_int_equal(t->items_count, 2);
	assert_string_equal(t->items[1].request_id, "audit-7-1-5");
	assert_int_equal(t->items[1].rows_count, 5);

	/* A loop that refuses the item: still that range next time. */
	answer(t, 1, CARELOG_ENOTLEADER, false);
	assert_int_equal(node_audit_ship_step(t->audit), CARELOG_ENOTLEADER);
	t->submit_err = CARELOG_EBUSY;
	assert_int_equal(node_audit_ship_step(t->audit), CARELOG_EBUSY);
	t->submit_err = CARELOG_OK;
	assert_int_equal(node_audit_ship_step(t->audit), CARELOG_OK);
	assert_int_equal(t->items_count, 3);
	assert_string_equal(t->items[2].request_id, "audit-7-1-5");

	/* Committed: marked shipped, and the next range goes out in the same pass. */
	answer(t, 2, CARELOG_OK, false);
	assert_int_equal(node_audit_ship_step(t->audit), CARELOG_OK);
	struct node_audit_stats st;
	assert_int_equal(node_audit_get_stats(t->audit, &st), CARELOG_OK);
	assert_int_equal(st.shipped_seq, 5);
	assert_int_equal(st.queued_rows, 2);
	assert_int_equal(t->items_count, 4);
	assert_string_equal(t->items[3].request_id, "audit-7-6-7");
	assert_int_equal(t->items[3].first_seq, 6);
	assert_int_equal(t->items[3].rows_count, 2);
	/* A late answer to an old send changes nothing. */
	answer(t, 1, CARELOG_OK, false);
	/* Duplicate (committed before, answer lost) counts as shipped. */
	answer(t, 3, CARELOG_OK, true);
	assert_int_equal(node_audit_ship_step(t->audit), CARELOG_OK);
	assert_int_equal(node_audit_get_stats(t->audit, &st), CARELOG_OK);
	assert_int_equal(st.shipped_seq, 7);
	assert_int_equal(st.queued_rows, 0);
	assert_int_equal(st.batches_shipped, 2);
	assert_int_equal(t->items_count, 4); /* nothing left to send */
}

static void test_audit_batches_fit_the_cluster_body_limit(void **state)
{
	struct test_ctx *t = *state;
	open_audit(t, 0, 4096);
	record_rows(t, 40);
	wait_done(t, 40);
	assert_int_equal(node_audit_ship_step(t->audit), CARELOG_OK);
	assert_int_equal(t->items_count, 1);
	uint32_t first_rows = t->items[0].rows_count;
	print_message("a 4096-byte body holds %u rows (%zu bytes)\n", first_rows,
	              t->items[0].body_len);
	assert_true(first_rows > 1 && first_rows < 40);
	assert_true(t->items[0].body_len <= 4096);
	/* The limit grows: the next batch takes the rest. */
	node_audit_set_body_max(t->audit, 1 << 20);
	answer(t, 0, CARELOG_OK, false);
	assert_int_equal(node_audit_ship_step(t->audit), CARELOG_OK);
	assert_int_equal(t->items_count, 2);
	assert_int_equal(t->items[1].first_seq, first_rows + 1);
	assert_int_equal(t->items[1].rows_count, 40 - first_rows);
}

/* The cluster's body limit shrank while a batch was in flight: the loop refuses the old range
 * as too big (nothing appended under its request id), so resending it as it was would be
 * refused forever and the queue would never drain. The next batch must fit the new limit. */
static void test_audit_batch_refused_as_too_big_is_rebuilt_within_the_new_limit(void **state)
{
	struct test_ctx *t = *state;
	open_audit(t, 0, 0);
	record_rows(t, 40);
	wait_done(t, 40);
	assert_int_equal(node_audit_ship_step(t->audit), CARELOG_OK);
	assert_int_equal(t->items_count, 1);
	assert_int_equal(t->items[0].rows_count, 40);
	assert_true(t->items[0].body_len > 4096);
	node_audit_set_body_max(t->audit, 4096);
	answer(t, 0, CARELOG_ETOOBIG, false);
	assert_int_equal(node_audit_ship_step(t->audit), CARELOG_ETOOBIG);
	assert_int_equal(node_audit_ship_step(t->audit), CARELOG_OK);
	assert_int_equal(t->items_count, 2);
	assert_int_equal(t->items[1].first_seq, 1);
	assert_true(t->items[1].rows_count > 1 && t->items[1].rows_count < 40);
	assert_true(t->items[1].body_len <= 4096);
	char want[80];
	snprintf(want, sizeof(want), "audit-7-1-%u", t->items[1].rows_count);
	assert_string_equal(t->items[1].request_id, want);
	/* Committed: the rest follows, every row shipped once. */
	uint32_t first_rows = t->items[1].rows_count;
	answer(t, 1, CARELOG_OK, false);
	assert_int_equal(node_audit_ship_step(t->audit), CARELOG_OK);
	assert_int_equal(t->items_count, 3);
	assert_int_equal(t->items[2].first_seq, first_rows + 1);
}

struct pending_seen {
	uint32_t count;
	char patients[16][JOURNAL_PATIENT_BYTES_MAX + 1];
};

static int pending_collect(void *arg, const uint8_t *row, size_t len)
{
	struct pending_seen *p = arg;
	struct policy_audit_row r;
	assert_int_equal(policy_audit_row_decode(row, len, &r), CARELOG_OK);
	assert_true(p->count < 16);
	snprintf(p->patients[p->count++], sizeof(p->patients[0]), "%s", r.patient);
	return 0;
}

static void test_audit_pending_rows_match_patient_or_actor_until_shipped(void **state)
{
	struct test_ctx *t = *state;
	open_audit(t, 0, 0);
	struct policy_audit_row a1 = row_for("p-a", "hpr-1", FIXTURE_ORG);
	struct policy_audit_row b1 = row_for("p-b", "hpr-2", FIXTURE_ORG);
	struct policy_audit_row a2 = row_for("p-a", "hpr-2", "other-org");
	node_audit_record(t->audit, &a1, test_done, t);
	node_audit_record(t->audit, &b1, test_done, t);
	node_audit_record(t->audit, &a2, test_done, t);
	wait_done(t, 3);
	struct pending_seen seen = {0};
	assert_int_equal(node_audit_pending(t->audit, "p-a", NULL, NULL, pending_collect, &seen),
	                 CARELOG_OK);
	assert_int_equal(seen.count, 2);
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(
	    node_audit_pending(t->audit, NULL, FIXTURE_ORG, "hpr-2", pending_collect, &seen),
	    CARELOG_OK);
	assert_int_equal(seen.count, 1);
	assert_string_equal(seen.patients[0], "p-b");
	/* Once shipped they are the log's to answer, not the queue's. */
	assert_int_equal(node_audit_ship_step(t->audit), CARELOG_OK);
	answer(t, 0, CARELOG_OK, false);
	assert_int_equal(node_audit_ship_step(t->audit), CARELOG_OK);
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(node_audit_pending(t->audit, "p-a", NULL, NULL, pending_collect, &seen),
	                 CARELOG_OK);
	assert_int_equal(seen.count, 0);
}

/* A node whose audit dir was lost (or replaced by an older copy) starts with an empty queue
 * behind what it already shipped: it continues above that (and above a batch that may be in
 * flight), so its batches never reuse a committed request id and vanish as duplicates. */
static void test_audit_queue_behind_the_log_continues_above_it(void **state)
{
	struct test_ctx *t = *state;
	struct node_audit_config c = {
	    .node_id = TEST_NODE_ID,
	    .dir = t->dir,
	    .map_size_bytes = 16ULL << 20,
	    .clock_ms = test_clock,
	    .clock_ctx = t,
	    .submit = test_submit,
	    .submit_ctx = t,
	    .append = test_append,
	    .append_ctx = t,
	    .seq_floor = 40, /* the log holds this node's rows up to 40 */
	};
	char err[512] = "";
	assert_int_equal(node_audit_open(&c, &t->audit, err, sizeof(err)), CARELOG_OK);
	struct node_audit_stats st;
	assert_int_equal(node_audit_get_stats(t->audit, &st), CARELOG_OK);
	uint64_t first = 40 + POLICY_AUDIT_BATCH_ROWS_MAX + 1;
	assert_int_equal(st.next_seq, first);
	assert_int_equal(st.shipped_seq, first - 1);
	record_rows(t, 3);
	wait_done(t, 3);
	assert_int_equal(node_audit_get_stats(t->audit, &st), CARELOG_OK);
	assert_int_equal(st.next_seq, first + 3);
	assert_int_equal(st.queued_rows, 3);
	node_audit_close(t->audit);
	t->audit = NULL;
	/* An intact queue ahead of the log moves nowhere (rows queued or not). */
	assert_int_equal(node_audit_open(&c, &t->audit, err, sizeof(err)), CARELOG_OK);
	assert_int_equal(node_audit_get_stats(t->audit, &st), CARELOG_OK);
	assert_int_equal(st.next_seq, first + 3);
	assert_int_equal(st.queued_rows, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_audit_rows_are_durable_when_done_says_ok, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_audit_concurrent_rows_share_one_sync, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(
	        test_audit_failed_append_answers_every_row_with_the_error, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_audit_full_queue_refuses_at_once_and_stop_closes,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_audit_shipper_retries_the_same_range_with_the_same_request_id, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(test_audit_batches_fit_the_cluster_body_limit, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(
	        test_audit_batch_refused_as_too_big_is_rebuilt_within_the_new_limit, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_audit_pending_rows_match_patient_or_actor_until_shipped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_audit_queue_behind_the_log_continues_above_it,
	                                    setup, teardown),
	};
	return cmocka_run_group_tests_name("daemon_audit", tests, NULL, NULL);
}
