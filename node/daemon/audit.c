/* The node's audit queue service: a group-committing writer thread and a shipper thread. */
#include "node/daemon/audit.h"

#include "carelog/errors.h"
#include "common/assert.h"
#include "common/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
	AUDIT_ENCODE_BUF_BYTES = 1 << 20, /* encoded rows of one synced append */
	/* An audit-batch body: the map, "v", "node", "first_seq", "rows" and the array header,
	 * then per row a bin header (bin16: rows are at most 4096 bytes; bin32 counted). */
	AUDIT_BATCH_OVERHEAD_BYTES = 64,
	AUDIT_BATCH_ROW_OVERHEAD_BYTES = 5,
	AUDIT_SCAN_STOP = -1,               /* a scan visitor's "enough" (not an error code) */
	AUDIT_REQUEST_ID_BYTES_MAX = 64,    /* = JOURNAL_REQUEST_ID_BYTES_MAX */
	AUDIT_SHIP_FAILURES_LOG_EVERY = 50, /* failed passes in a row between two warn lines */
};

/* One recorded row waiting for the writer. */
struct audit_slot {
	struct policy_audit_row row;
	node_audit_done_fn done;
	void *ctx;
	int err; /* the writer's verdict for this row */
};

struct node_audit {
	struct node_audit_config config;
	char *dir;
	struct storage_audit *store;
	pthread_mutex_t mu;
	pthread_cond_t writer_cond;  /* rows queued, or stop */
	pthread_cond_t shipper_cond; /* rows waiting past the threshold, an answer, or stop */

	/* The queue (mu): a ring of `cap` slots; the writer owns [head, head + taken) until it
	 * has answered them. */
	struct audit_slot *ring;
	uint32_t cap, head, count;
	bool writer_running, writer_stopping;
	pthread_t writer;

	/* Writer thread only. */
	uint64_t next_seq;
	uint8_t *encode_buf;
	const uint8_t **rows;
	size_t *lens;

	/* Shipper (mu for what the loop's answer touches). */
	bool shipper_running, shipper_stop, ship_wanted;
	pthread_t shipper;
	bool in_flight, answered;
	uint64_t generation;
	struct node_append_result answer;
	uint64_t deadline_ms; /* monotonic */
	/* Shipper only: the range last sent and not yet known shipped (resent as it was). */
	bool have_range;
	uint64_t range_first, range_last;
	bool body_max_warned;
	uint64_t failures_in_row; /* passes that failed since the last shipped batch */
	uint8_t *ship_rows_buf;
	size_t *ship_offsets;
	struct policy_body *batch;
	uint8_t *body_buf;

	/* Shared counters (mu). */
	uint64_t body_max_bytes;
	uint64_t shipped_seq; /* as last known */
	uint64_t written_seq; /* the last sequence written */
	uint64_t syncs, rows_written, write_failures, batches_shipped, ship_failures, busy_refusals;
};

static uint64_t audit_monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int audit_append_storage(void *ctx, struct storage_audit *s, const uint8_t *const *rows,
                                const size_t *lens, size_t count, uint64_t *out_first_seq)
{
	(void)ctx;
	return storage_audit_append(s, rows, lens, count, out_first_seq);
}

/* --- the writer --- */

/* Encodes as many of the `n` slots from ring[start] as the encode buffer holds, appends them
 * (one sync) and answers them. Returns how many slots it took. Writer thread. */
static uint32_t audit_write_batch(struct node_audit *a, uint32_t start, uint32_t n)
{
	size_t used = 0;
	size_t encoded = 0;
	uint32_t taken = 0;
	while (taken < n && used + POLICY_AUDIT_ROW_BYTES_MAX <= AUDIT_ENCODE_BUF_BYTES) {
		struct audit_slot *slot = &a->ring[(start + taken) % a->cap];
		taken++;
		slot->row.seq = a->next_seq + encoded;
		size_t len = 0;
		slot->err = policy_audit_row_encode(&slot->row, a->encode_buf + used,
		                                    POLICY_AUDIT_ROW_BYTES_MAX, &len);
		if (slot->err != CARELOG_OK) {
			cl_log_error("audit.row_refused", "err=%s action=%s",
			             carelog_errname(slot->err), slot->row.action);
			continue;
		}
		CL_ASSERT(len > 0 && len <= POLICY_AUDIT_ROW_BYTES_MAX);
		a->rows[encoded] = a->encode_buf + used;
		a->lens[encoded] = len;
		used += len;
		encoded++;
	}
	CL_ASSERT(taken > 0);
	int rc = CARELOG_OK;
	if (encoded > 0) {
		uint64_t first = 0;
		rc = a->config.append(a->config.append_ctx, a->store, a->rows, a->lens, encoded,
		                      &first);
		if (rc == CARELOG_OK) {
			/* One writer: storage numbers the rows exactly as we did. */
			CL_ASSERT(first == a->next_seq);
			a->next_seq += encoded;
		} else {
			struct storage_audit_stats st;
			if (storage_audit_stats_get(a->store, &st) == CARELOG_OK) {
				a->next_seq = st.next_seq;
			}
			cl_log_error("audit.append_failed", "err=%s rows=%zu", carelog_errname(rc),
			             encoded);
		}
	}
	pthread_mutex_lock(&a->mu);
	if (encoded > 0 && rc == CARELOG_OK) {
		a->syncs++;
		a->rows_written += encoded;
		a->written_seq = a->next_seq - 1;
		if (a->written_seq - a->shipped_seq >= NODE_AUDIT_SHIP_ROWS_WAITING) {
			a->ship_wanted = true;
			pthread_cond_signal(&a->shipper_cond);
		}
	} else if (encoded > 0) {
		a->write_failures++;
	}
	pthread_mutex_unlock(&a->mu);
	/* Answer outside the lock: done sends replies and may record again. */
	for (uint32_t i = 0; i < taken; i++) {
		struct audit_slot *slot = &a->ring[(start + i) % a->cap];
		int err = slot->err != CARELOG_OK ? slot->err : rc;
		slot->done(slot->ctx, err);
	}
	return taken;
}

static void *audit_writer_thread(void *arg)
{
	struct node_audit *a = arg;
	pthread_mutex_lock(&a->mu);
	for (;;) {
		while (a->count == 0 && !a->writer_stopping) {
			pthread_cond_wait(&a->writer_cond, &a->mu);
		}
		if (a->count == 0) {
			break; /* stopping, and everything taken was answered */
		}
		/* Everything queued (group commit), bounded by a batch. */
		uint32_t n = a->count;
		if (n > NODE_AUDIT_WRITE_BATCH_ROWS_MAX) {
			n = NODE_AUDIT_WRITE_BATCH_ROWS_MAX;
		}
		uint32_t start = a->head;
		pthread_mutex_unlock(&a->mu);
		uint32_t taken = audit_write_batch(a, start, n);
		pthread_mutex_lock(&a->mu);
		a->head = (a->head + taken) % a->cap;
		a->count -= taken;
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

void node_audit_record(struct node_audit *a, const struct policy_audit_row *row,
                       node_audit_done_fn done, void *ctx)
{
	uint64_t now_ms = a->config.clock_ms(a->config.clock_ctx);
	pthread_mutex_lock(&a->mu);
	if (!a->writer_running || a->writer_stopping) {
		pthread_mutex_unlock(&a->mu);
		done(ctx, CARELOG_ECLOSED);
		return;
	}
	if (a->count == a->cap) {
		a->busy_refusals++;
		pthread_mutex_unlock(&a->mu);
		done(ctx, CARELOG_EBUSY);
		return;
	}
	struct audit_slot *slot = &a->ring[(a->head + a->count) % a->cap];
	slot->row = *row;
	slot->row.node_id = a->config.node_id;
	slot->row.time_ms = now_ms;
	slot->row.seq = 0; /* numbered by the writer */
	slot->done = done;
	slot->ctx = ctx;
	slot->err = CARELOG_OK;
	a->count++;
	pthread_cond_signal(&a->writer_cond);
	pthread_mutex_unlock(&a->mu);
}

void node_audit_stop_writer(struct node_audit *a)
{
	pthread_mutex_lock(&a->mu);
	bool running = a->writer_running;
	a->writer_stopping = true;
	pthread_cond_signal(&a->writer_cond);
	pthread_mutex_unlock(&a->mu);
	if (running) {
		pthread_join(a->writer, NULL);
		pthread_mutex_lock(&a->mu);
		a->writer_running = false;
		pthread_mutex_unlock(&a->mu);
	}
}

/* --- the shipper --- */

struct ship_scan {
	struct node_audit *a;
	uint64_t expect_seq;
	uint32_t rows_max;
	uint32_t count;
	size_t bytes;  /* of ship_rows_buf used */
	size_t budget; /* body bytes the rows may take */
	size_t used;
};

static int ship_scan_visit(void *arg, uint64_t seq, const uint8_t *row, size_t len)
{
	struct ship_scan *s = arg;
	if (seq != s->expect_seq || s->count == s->rows_max) {
		return AUDIT_SCAN_STOP; /* a gap (never expected) or full */
	}
	size_t cost = len + AUDIT_BATCH_ROW_OVERHEAD_BYTES;
	if (s->count > 0 && s->used + cost > s->budget) {
		return AUDIT_SCAN_STOP;
	}
	if (s->bytes + len > NODE_AUDIT_SHIP_BATCH_BYTES_MAX + STORAGE_AUDIT_ROW_BYTES_MAX) {
		return AUDIT_SCAN_STOP; /* cannot happen within the budget; bounds the copy */
	}
	memcpy(s->a->ship_rows_buf + s->bytes, row, len);
	s->a->ship_offsets[s->count] = s->bytes;
	s->a->batch->rows_len[s->count] = len;
	s->bytes += len;
	s->used += cost;
	s->count++;
	s->expect_seq++;
	return 0;
}

/* Builds the item for rows [first, first + rows) already copied into the batch. */
static int ship_item(struct node_audit *a, uint64_t first, uint64_t last, struct node_waiter waiter,
                     struct node_append_item **out)
{
	size_t body_len = 0;
	int rc = policy_body_encode(a->batch, a->body_buf, POLICY_AUDIT_BATCH_BYTES_MAX, &body_len);
	if (rc != CARELOG_OK) {
		cl_log_error("audit.batch_encode_failed", "first_seq=%llu last_seq=%llu err=%s",
		             (unsigned long long)first, (unsigned long long)last,
		             carelog_errname(rc));
		return rc;
	}
	char request_id[AUDIT_REQUEST_ID_BYTES_MAX + 1];
	char actor[JOURNAL_ACTOR_BYTES_MAX + 1];
	int n = snprintf(request_id, sizeof(request_id), "audit-%llu-%llu-%llu",
	                 (unsigned long long)a->config.node_id, (unsigned long long)first,
	                 (unsigned long long)last);
	int m = snprintf(actor, sizeof(actor), "node-%llu", (unsigned long long)a->config.node_id);
	if (n < 0 || (size_t)n >= sizeof(request_id) || m < 0 || (size_t)m >= sizeof(actor)) {
		return CARELOG_ETOOBIG; /* only for ids near 2^64 */
	}
	struct proto_request req;
	memset(&req, 0, sizeof(req));
	req.version = PROTO_VERSION;
	req.op = PROTO_OP_APPEND;
	req.actor.id = (struct proto_str){.ptr = actor, .len = strlen(actor)};
	req.actor.role = (struct proto_str){.ptr = "system", .len = 6};
	struct proto_append_req *ap = &req.u.append;
	ap->patient =
	    (struct proto_str){.ptr = POLICY_REGION_PATIENT, .len = strlen(POLICY_REGION_PATIENT)};
	ap->kind = (struct proto_str){.ptr = "audit-batch", .len = strlen("audit-batch")};
	ap->request_id = (struct proto_str){.ptr = request_id, .len = strlen(request_id)};
	ap->media_type =
	    (struct proto_str){.ptr = POLICY_MEDIA_TYPE, .len = strlen(POLICY_MEDIA_TYPE)};
	ap->body = (struct proto_str){.ptr = (const char *)a->body_buf, .len = body_len};
	struct proto_buf buf = {0};
	rc = proto_request_encode(&req, &buf);
	if (rc == CARELOG_OK) {
		rc = node_append_item_create(buf.data, buf.len, waiter, out);
	}
	proto_buf_free(&buf);
	return rc;
}

/* Takes the answer to the batch in flight, if any. Returns true when one was taken. */
static bool ship_take_answer(struct node_audit *a, int *out_rc)
{
	pthread_mutex_lock(&a->mu);
	if (!a->in_flight) {
		pthread_mutex_unlock(&a->mu);
		return false;
	}
	bool answered = a->answered;
	struct node_append_result answer = a->answer;
	bool expired = !answered && audit_monotonic_ms() >= a->deadline_ms;
	if (answered || expired) {
		a->in_flight = false;
		a->generation++; /* a late answer to this send is ignored */
	}
	pthread_mutex_unlock(&a->mu);
	if (!answered && !expired) {
		*out_rc = CARELOG_OK;
		return true; /* still waiting */
	}
	int rc = CARELOG_OK;
	if (answered && answer.err == CARELOG_OK) {
		rc = storage_audit_mark_shipped(a->store, a->range_last);
		if (rc == CARELOG_OK) {
			cl_log_debug(
			    "audit.shipped", "first_seq=%llu last_seq=%llu index=%llu dup=%d",
			    (unsigned long long)a->range_first, (unsigned long long)a->range_last,
			    (unsigned long long)answer.index, answer.duplicate ? 1 : 0);
			a->have_range = false;
			a->failures_in_row = 0;
			pthread_mutex_lock(&a->mu);
			a->shipped_seq = a->range_last;
			a->batches_shipped++;
			pthread_mutex_unlock(&a->mu);
			*out_rc = CARELOG_OK;
			return false; /* go on with the next batch at once */
		}
		cl_log_error("audit.mark_shipped_failed", "last_seq=%llu err=%s",
		             (unsigned long long)a->range_last, carelog_errname(rc));
	} else {
		/* Pending, refused, or no answer: the same range goes again next pass. */
		rc = answered ? answer.err : CARELOG_ETIMEDOUT;
		a->failures_in_row++;
		if (rc == CARELOG_ETOOBIG) {
			/* The cluster's body limit shrank below this range. The loop answers
			 * ETOOBIG only when nothing is in flight or committed under this request
			 * id, and would refuse the same range for ever: rebuild it to fit. */
			a->have_range = false;
		}
		/* Without a leader (or while joining) every pass fails: warn now and then. */
		bool loud = a->failures_in_row == 1 ||
		            a->failures_in_row % AUDIT_SHIP_FAILURES_LOG_EVERY == 0;
		cl_log(loud ? CL_LOG_WARN : CL_LOG_DEBUG, "audit.ship_failed",
		       "first_seq=%llu last_seq=%llu err=%s failures_in_row=%llu msg=\"%s\"",
		       (unsigned long long)a->range_first, (unsigned long long)a->range_last,
		       carelog_errname(rc), (unsigned long long)a->failures_in_row,
		       answered ? answer.msg : "no answer in time");
	}
	pthread_mutex_lock(&a->mu);
	a->ship_failures++;
	pthread_mutex_unlock(&a->mu);
	*out_rc = rc;
	return true;
}

/* Copies the next rows into the batch: the remembered range, or from shipped_seq + 1. */
static int ship_collect(struct node_audit *a, struct ship_scan *scan)
{
	pthread_mutex_lock(&a->mu);
	uint64_t body_max = a->body_max_bytes;
	pthread_mutex_unlock(&a->mu);
	size_t budget = NODE_AUDIT_SHIP_BATCH_BYTES_MAX;
	if (body_max < (uint64_t)budget + AUDIT_BATCH_OVERHEAD_BYTES) {
		budget = body_max > AUDIT_BATCH_OVERHEAD_BYTES
		             ? (size_t)(body_max - AUDIT_BATCH_OVERHEAD_BYTES)
		             : 0;
	}
	*scan =
	    (struct ship_scan){.a = a, .rows_max = POLICY_AUDIT_BATCH_ROWS_MAX, .budget = budget};
	if (a->have_range) {
		scan->expect_seq = a->range_first;
		scan->rows_max = (uint32_t)(a->range_last - a->range_first + 1);
		scan->budget = SIZE_MAX; /* it fitted when first sent */
	} else {
		struct storage_audit_stats st;
		int rc = storage_audit_stats_get(a->store, &st);
		if (rc != CARELOG_OK) {
			return rc;
		}
		scan->expect_seq = st.shipped_seq + 1;
	}
	uint64_t first = scan->expect_seq;
	int rc = storage_audit_scan(a->store, first, scan->rows_max, ship_scan_visit, scan);
	if (rc == AUDIT_SCAN_STOP) {
		rc = CARELOG_OK;
	}
	if (rc == CARELOG_OK && a->have_range && scan->count != scan->rows_max) {
		/* Not the rows sent before (never expected: only this thread deletes rows). */
		cl_log_error("audit.range_lost", "first_seq=%llu last_seq=%llu found=%u",
		             (unsigned long long)a->range_first, (unsigned long long)a->range_last,
		             scan->count);
		a->have_range = false;
		rc = CARELOG_ECORRUPT;
	}
	return rc;
}

int node_audit_ship_step(struct node_audit *a)
{
	int rc = CARELOG_OK;
	if (ship_take_answer(a, &rc)) {
		return rc; /* in flight, or failed: retried next pass */
	}
	if (rc != CARELOG_OK || a->config.submit == NULL) {
		return rc;
	}
	struct ship_scan scan;
	rc = ship_collect(a, &scan);
	if (rc != CARELOG_OK || scan.count == 0) {
		return rc;
	}
	uint64_t first = scan.expect_seq - scan.count;
	uint64_t last = scan.expect_seq - 1;
	if (scan.used + AUDIT_BATCH_OVERHEAD_BYTES > scan.budget && !a->body_max_warned &&
	    !a->have_range) {
		a->body_max_warned = true;
		cl_log_error("audit.row_exceeds_body_max", "seq=%llu bytes=%zu",
		             (unsigned long long)first, scan.bytes);
	}
	struct policy_body *b = a->batch;
	b->kind = POLICY_KIND_AUDIT_BATCH;
	b->node_id = a->config.node_id;
	b->first_seq = first;
	b->rows_count = scan.count;
	for (uint32_t i = 0; i < scan.count; i++) {
		b->rows[i] = a->ship_rows_buf + a->ship_offsets[i];
	}
	pthread_mutex_lock(&a->mu);
	a->generation++;
	struct node_waiter waiter = {.owner = a, .generation = a->generation};
	pthread_mutex_unlock(&a->mu);
	struct node_append_item *item = NULL;
	rc = ship_item(a, first, last, waiter, &item);
	if (rc != CARELOG_OK) {
		return rc;
	}
	a->have_range = true;
	a->range_first = first;
	a->range_last = last;
	pthread_mutex_lock(&a->mu);
	a->in_flight = true;
	a->answered = false;
	a->deadline_ms = audit_monotonic_ms() + a->config.ship_timeout_ms;
	pthread_mutex_unlock(&a->mu);
	/* Without the lock: a submit may answer at once (tests) through node_audit_on_reply. */
	rc = a->config.submit(a->config.submit_ctx, item);
	if (rc != CARELOG_OK) {
		node_append_item_free(item);
		pthread_mutex_lock(&a->mu);
		if (a->in_flight && a->generation == waiter.generation) {
			a->in_flight = false;
			a->generation++;
		}
		a->ship_failures++;
		pthread_mutex_unlock(&a->mu);
		cl_log_debug("audit.ship_deferred", "first_seq=%llu last_seq=%llu err=%s",
		             (unsigned long long)first, (unsigned long long)last,
		             carelog_errname(rc));
	}
	return rc;
}

void node_audit_on_reply(struct node_audit *a, struct node_waiter waiter,
                         const struct node_append_result *result)
{
	pthread_mutex_lock(&a->mu);
	if (a->in_flight && !a->answered && waiter.generation == a->generation) {
		a->answer = *result;
		a->answered = true;
		pthread_cond_signal(&a->shipper_cond);
	}
	pthread_mutex_unlock(&a->mu);
}

bool node_audit_owns(const struct node_audit *a, struct node_waiter waiter)
{
	return a != NULL && waiter.owner == (const void *)a;
}

/*
 * A pass every ship_interval_ms (it takes the answer to the batch in flight and sends the next);
 * sooner when NODE_AUDIT_SHIP_ROWS_WAITING rows wait -- but never sooner after a failed pass (no
 * leader, loop queue full), so a stream of new rows does not turn retries into a busy loop.
 */
static void *audit_shipper_thread(void *arg)
{
	struct node_audit *a = arg;
	bool backoff = false;
	pthread_mutex_lock(&a->mu);
	while (!a->shipper_stop) {
		struct timespec until = node_deadline_after_ms(a->config.ship_interval_ms);
		/* An answer alone does not start the next batch at once: under a steady read load
		 * that would ship one small batch per commit round (tens of log entries a second).
		 * Batches go out every interval, or sooner only when many rows wait. */
		while (!a->shipper_stop && !(a->ship_wanted && !backoff)) {
			if (pthread_cond_timedwait(&a->shipper_cond, &a->mu, &until) != 0) {
				break; /* the interval is over */
			}
		}
		if (a->shipper_stop) {
			break;
		}
		a->ship_wanted = false;
		pthread_mutex_unlock(&a->mu);
		int rc = node_audit_ship_step(a);
		backoff = rc != CARELOG_OK;
		pthread_mutex_lock(&a->mu);
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

int node_audit_start_shipper(struct node_audit *a)
{
	CL_ASSERT(a->config.submit != NULL);
	CL_ASSERT(!a->shipper_running);
	a->shipper_stop = false;
	if (pthread_create(&a->shipper, NULL, audit_shipper_thread, a) != 0) {
		return CARELOG_ENOMEM;
	}
	a->shipper_running = true;
	return CARELOG_OK;
}

void node_audit_stop_shipper(struct node_audit *a)
{
	if (!a->shipper_running) {
		return;
	}
	pthread_mutex_lock(&a->mu);
	a->shipper_stop = true;
	pthread_cond_signal(&a->shipper_cond);
	pthread_mutex_unlock(&a->mu);
	pthread_join(a->shipper, NULL);
	a->shipper_running = false;
}

void node_audit_set_body_max(struct node_audit *a, uint64_t body_max_bytes)
{
	pthread_mutex_lock(&a->mu);
	a->body_max_bytes = body_max_bytes;
	pthread_mutex_unlock(&a->mu);
}

/* --- queries --- */

struct pending_scan {
	const char *patient, *actor_org, *actor_id;
	int (*visit)(void *arg, const uint8_t *row, size_t len);
	void *arg;
	struct policy_audit_row row;
};

static int pending_visit(void *arg, uint64_t seq, const uint8_t *row, size_t len)
{
	struct pending_scan *p = arg;
	int rc = policy_audit_row_decode(row, len, &p->row);
	if (rc != CARELOG_OK) {
		cl_log_error("audit.row_undecodable", "seq=%llu err=%s", (unsigned long long)seq,
		             carelog_errname(rc));
		return CARELOG_OK; /* never served; the others still are */
	}
	bool match = p->patient != NULL && p->patient[0] != '\0'
	                 ? strcmp(p->row.patient, p->patient) == 0
	                 : p->actor_id != NULL && strcmp(p->row.actor, p->actor_id) == 0 &&
	                       (p->actor_org == NULL || strcmp(p->row.org, p->actor_org) == 0);
	return match ? p->visit(p->arg, row, len) : 0;
}

int node_audit_pending(void *ctx, const char *patient, const char *actor_org, const char *actor_id,
                       int (*visit)(void *arg, const uint8_t *row, size_t len), void *arg)
{
	struct node_audit *a = ctx;
	struct storage_audit_stats st;
	int rc = storage_audit_stats_get(a->store, &st);
	if (rc != CARELOG_OK) {
		return rc;
	}
	uint64_t from = st.shipped_seq + 1;
	if (st.next_seq > NODE_AUDIT_PENDING_SCAN_ROWS_MAX &&
	    st.next_seq - NODE_AUDIT_PENDING_SCAN_ROWS_MAX > from) {
		from = st.next_seq - NODE_AUDIT_PENDING_SCAN_ROWS_MAX;
	}
	struct pending_scan *p = malloc(sizeof(*p));
	if (p == NULL) {
		return CARELOG_ENOMEM;
	}
	*p = (struct pending_scan){.patient = patient,
	                           .actor_org = actor_org,
	                           .actor_id = actor_id,
	                           .visit = visit,
	                           .arg = arg};
	rc = storage_audit_scan(a->store, from, NODE_AUDIT_PENDING_SCAN_ROWS_MAX, pending_visit, p);
	free(p);
	return rc;
}

int node_audit_get_stats(struct node_audit *a, struct node_audit_stats *out)
{
	struct storage_audit_stats st;
	int rc = storage_audit_stats_get(a->store, &st);
	if (rc != CARELOG_OK) {
		return rc;
	}
	pthread_mutex_lock(&a->mu);
	*out = (struct node_audit_stats){
	    .waiting_rows = a->count,
	    .queued_rows = st.queued_rows,
	    .next_seq = st.next_seq,
	    .shipped_seq = st.shipped_seq,
	    .syncs = a->syncs,
	    .rows_written = a->rows_written,
	    .write_failures = a->write_failures,
	    .batches_shipped = a->batches_shipped,
	    .ship_failures = a->ship_failures,
	    .busy_refusals = a->busy_refusals,
	};
	pthread_mutex_unlock(&a->mu);
	return CARELOG_OK;
}

/* --- lifecycle --- */

static int audit_alloc(struct node_audit *a)
{
	a->ring = calloc(a->cap, sizeof(*a->ring));
	a->encode_buf = malloc(AUDIT_ENCODE_BUF_BYTES);
	a->rows = calloc(NODE_AUDIT_WRITE_BATCH_ROWS_MAX, sizeof(*a->rows));
	a->lens = calloc(NODE_AUDIT_WRITE_BATCH_ROWS_MAX, sizeof(*a->lens));
	a->ship_rows_buf = malloc(NODE_AUDIT_SHIP_BATCH_BYTES_MAX + STORAGE_AUDIT_ROW_BYTES_MAX);
	a->ship_offsets = calloc(POLICY_AUDIT_BATCH_ROWS_MAX, sizeof(*a->ship_offsets));
	a->batch = calloc(1, sizeof(*a->batch));
	a->body_buf = malloc(POLICY_AUDIT_BATCH_BYTES_MAX);
	bool ok = a->ring != NULL && a->encode_buf != NULL && a->rows != NULL && a->lens != NULL &&
	          a->ship_rows_buf != NULL && a->ship_offsets != NULL && a->batch != NULL &&
	          a->body_buf != NULL;
	return ok ? CARELOG_OK : CARELOG_ENOMEM;
}

static void audit_free(struct node_audit *a)
{
	free(a->ring);
	free(a->encode_buf);
	free(a->rows);
	free(a->lens);
	free(a->ship_rows_buf);
	free(a->ship_offsets);
	free(a->batch);
	free(a->body_buf);
	free(a->dir);
	free(a);
}

/* The queue is behind what the log already holds from this node (its dir was lost or replaced
 * by an older copy): an empty one continues above it; one holding rows cannot be renumbered. */
static int audit_continue_above(struct node_audit *a, struct storage_audit_stats *st)
{
	uint64_t floor = a->config.seq_floor;
	if (st->queued_rows != 0) {
		cl_log_error("audit.queue_behind_log",
		             "next_seq=%llu seq_floor=%llu queued_rows=%llu msg=\"the audit queue "
		             "holds rows numbered below what this node already shipped; batches that "
		             "reuse a shipped range are taken as duplicates\"",
		             (unsigned long long)st->next_seq, (unsigned long long)floor,
		             (unsigned long long)st->queued_rows);
		return CARELOG_OK;
	}
	uint64_t next = floor + POLICY_AUDIT_BATCH_ROWS_MAX + 1; /* past a batch in flight */
	int rc = storage_audit_skip_to(a->store, next);
	if (rc == CARELOG_OK) {
		cl_log_warn("audit.sequence_continued",
		            "next_seq=%llu was=%llu msg=\"the audit queue is behind the log (lost or "
		            "replaced): numbering continues above what this node shipped\"",
		            (unsigned long long)next, (unsigned long long)st->next_seq);
		rc = storage_audit_stats_get(a->store, st);
	}
	return rc;
}

int node_audit_open(const struct node_audit_config *config, struct node_audit **out, char *err,
                    size_t err_len)
{
	CL_ASSERT(config->dir != NULL && config->node_id != 0);
	if (config->queue_rows_max > NODE_AUDIT_QUEUE_ROWS_LIMIT) {
		snprintf(err, err_len, "audit queue_rows_max %u is above %u",
		         config->queue_rows_max, (unsigned)NODE_AUDIT_QUEUE_ROWS_LIMIT);
		return CARELOG_EINVAL;
	}
	struct node_audit *a = calloc(1, sizeof(*a));
	if (a == NULL) {
		snprintf(err, err_len, "out of memory");
		return CARELOG_ENOMEM;
	}
	a->config = *config;
	struct node_audit_config *c = &a->config;
	c->queue_rows_max =
	    c->queue_rows_max != 0 ? c->queue_rows_max : NODE_AUDIT_QUEUE_ROWS_DEFAULT;
	c->ship_interval_ms =
	    c->ship_interval_ms != 0 ? c->ship_interval_ms : NODE_AUDIT_SHIP_INTERVAL_MS_DEFAULT;
	c->ship_timeout_ms =
	    c->ship_timeout_ms != 0 ? c->ship_timeout_ms : NODE_AUDIT_SHIP_TIMEOUT_MS_DEFAULT;
	if (c->clock_ms == NULL) {
		c->clock_ms = node_clock_wall_ms;
	}
	if (c->append == NULL) {
		c->append = audit_append_storage;
	}
	a->body_max_bytes =
	    c->body_max_bytes != 0 ? c->body_max_bytes : MEMBERSHIP_BODY_MAX_BYTES_DEFAULT;
	a->cap = c->queue_rows_max;
	a->dir = strdup(config->dir);
	c->dir = a->dir;
	int rc = a->dir == NULL ? CARELOG_ENOMEM : audit_alloc(a);
	if (rc != CARELOG_OK) {
		snprintf(err, err_len, "out of memory");
		audit_free(a);
		return rc;
	}
	struct storage_audit_options options = {.dir = a->dir, .map_size_bytes = c->map_size_bytes};
	rc = storage_audit_open(&options, &a->store);
	struct storage_audit_stats st;
	if (rc == CARELOG_OK) {
		rc = storage_audit_stats_get(a->store, &st);
	}
	if (rc != CARELOG_OK) {
		if (rc == CARELOG_EBUSY) {
			snprintf(err, err_len,
			         "audit dir %s is in use by another process (another carelogd?)",
			         a->dir);
		} else {
			snprintf(err, err_len, "audit dir %s: cannot open the audit queue: %s",
			         a->dir, carelog_strerror(rc));
		}
		storage_audit_close(a->store);
		audit_free(a);
		return rc;
	}
	if (rc == CARELOG_OK && c->seq_floor >= st.next_seq) {
		rc = audit_continue_above(a, &st);
	}
	if (rc != CARELOG_OK) {
		snprintf(err, err_len, "audit dir %s: cannot continue the sequence: %s", a->dir,
		         carelog_strerror(rc));
		storage_audit_close(a->store);
		audit_free(a);
		return rc;
	}
	a->next_seq = st.next_seq;
	a->written_seq = st.next_seq - 1;
	a->shipped_seq = st.shipped_seq;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->writer_cond, NULL);
	pthread_cond_init(&a->shipper_cond, NULL);
	if (pthread_create(&a->writer, NULL, audit_writer_thread, a) != 0) {
		snprintf(err, err_len, "cannot start the audit writer thread");
		pthread_mutex_destroy(&a->mu);
		pthread_cond_destroy(&a->writer_cond);
		pthread_cond_destroy(&a->shipper_cond);
		storage_audit_close(a->store);
		audit_free(a);
		return CARELOG_ENOMEM;
	}
	a->writer_running = true;
	cl_log_info("audit.opened", "next_seq=%llu shipped_seq=%llu queued_rows=%llu",
	            (unsigned long long)st.next_seq, (unsigned long long)st.shipped_seq,
	            (unsigned long long)st.queued_rows);
	*out = a;
	return CARELOG_OK;
}

void node_audit_close(struct node_audit *a)
{
	if (a == NULL) {
		return;
	}
	node_audit_stop_shipper(a);
	node_audit_stop_writer(a);
	storage_audit_close(a->store);
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->writer_cond);
	pthread_cond_destroy(&a->shipper_cond);
	audit_free(a);
}
