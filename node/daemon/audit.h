/* The node's audit queue service: every access made durable before its answer, then shipped. */
#ifndef CARELOG_NODE_DAEMON_AUDIT_H
#define CARELOG_NODE_DAEMON_AUDIT_H

/*
 * DESIGN.md "Access": every client request (allowed, denied or failed) makes one audit row
 * that is durable in the node's audit queue (storage/storage_audit.h, its own LMDB environment
 * at <data_dir>/audit) BEFORE its reply leaves.
 *
 *   node_audit_record  (any thread) stamps the row with this node's id and clock, and queues
 *                      it; a full queue answers CARELOG_EBUSY at once.
 *   writer thread      takes everything queued (up to NODE_AUDIT_WRITE_BATCH_ROWS_MAX rows),
 *                      numbers the rows (seq), encodes them and appends them in ONE synced
 *                      transaction (group commit: many requests share one sync), then calls
 *                      each row's done(ctx, err). err != CARELOG_OK means the row is NOT
 *                      durable: the request must be answered with an error, never with content.
 *   shipper thread     every ship_interval_ms, or sooner when NODE_AUDIT_SHIP_ROWS_WAITING rows
 *                      wait, reads the unshipped rows (at most POLICY_AUDIT_BATCH_ROWS_MAX and
 *                      about NODE_AUDIT_SHIP_BATCH_BYTES_MAX, and within the cluster's
 *                      body_max_bytes) and submits them as one audit-batch APPEND (patient "-",
 *                      actor "node-<id>" role system, request id "audit-<node>-<first>-<last>").
 *                      Committed or duplicate: the rows are marked shipped (deleted from the
 *                      queue). Pending, refused or no answer in time: the SAME range is sent
 *                      again later with the same request id, so it is applied exactly once
 *                      (but ETOOBIG: the body limit shrank, so the range is rebuilt to fit).
 *
 * Rows are numbered on the writer thread (one writer: it knows the next sequence), so a failed
 * append consumes no sequence numbers.
 */

#include "node/daemon/loop.h"
#include "node/journal/policy.h"
#include "storage/storage_audit.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
	NODE_AUDIT_QUEUE_ROWS_DEFAULT = 4096,         /* rows waiting for the writer */
	NODE_AUDIT_QUEUE_ROWS_LIMIT = 1 << 20,        /* largest queue_rows_max accepted */
	NODE_AUDIT_WRITE_BATCH_ROWS_MAX = 1024,       /* rows per synced append */
	NODE_AUDIT_SHIP_INTERVAL_MS_DEFAULT = 200,    /* a ship pass at least this often */
	NODE_AUDIT_SHIP_ROWS_WAITING = 500,           /* ...or as soon as this many rows wait */
	NODE_AUDIT_SHIP_BATCH_BYTES_MAX = 512 * 1024, /* encoded rows per audit-batch */
	NODE_AUDIT_SHIP_TIMEOUT_MS_DEFAULT = 15000, /* a batch unanswered this long is sent again */
	NODE_AUDIT_PENDING_SCAN_ROWS_MAX = 100000,  /* newest unshipped rows an access-log query
	                                               looks at */
};

/* Called once per recorded row: CARELOG_OK when the row is durable. */
typedef void (*node_audit_done_fn)(void *ctx, int err);
/* Hands an audit-batch item to the loop (node_loop_submit); ownership of `item` passes on
 * CARELOG_OK. */
typedef int (*node_audit_submit_fn)(void *ctx, struct node_append_item *item);
/* Fault seam with storage_audit_append's contract (tests make appends fail). */
typedef int (*node_audit_append_fn)(void *ctx, struct storage_audit *a, const uint8_t *const *rows,
                                    const size_t *lens, size_t count, uint64_t *out_first_seq);

struct node_audit_config {
	uint64_t node_id;
	const char *dir;           /* the queue's environment (created 0700); copied */
	uint64_t map_size_bytes;   /* 0 = storage's default (1 GiB) */
	uint32_t queue_rows_max;   /* 0 = NODE_AUDIT_QUEUE_ROWS_DEFAULT */
	uint32_t ship_interval_ms; /* 0 = NODE_AUDIT_SHIP_INTERVAL_MS_DEFAULT */
	uint32_t ship_timeout_ms;  /* 0 = NODE_AUDIT_SHIP_TIMEOUT_MS_DEFAULT */
	uint64_t body_max_bytes;   /* the cluster's body limit until node_audit_set_body_max;
	                              0 = MEMBERSHIP_BODY_MAX_BYTES_DEFAULT */
	node_clock_ms_fn clock_ms; /* rows' time_ms; NULL = wall clock */
	void *clock_ctx;
	node_audit_submit_fn submit; /* NULL = nothing is shipped */
	void *submit_ctx;
	node_audit_append_fn append; /* NULL = storage_audit_append */
	void *append_ctx;
	/* The highest sequence of this node's rows already applied from the log
	 * (access_audit_seq_max; 0 = none). A queue whose next sequence is not above it was lost
	 * or replaced by an older copy: when empty it continues above it, leaving room for one
	 * more batch that may be committed but not applied here, so its batches never reuse a
	 * committed request id (which would be dropped as a duplicate). */
	uint64_t seq_floor;
};

struct node_audit;

/* Opens the queue's environment and starts the writer thread. CARELOG_ECORRUPT, CARELOG_EIO,
 * CARELOG_EBUSY (in use by another process) ... with a message naming the dir in err. */
int node_audit_open(const struct node_audit_config *config, struct node_audit **out, char *err,
                    size_t err_len);
/* Stops everything still running (node_audit_stop_shipper, node_audit_stop_writer), closes the
 * environment, frees. Accepts NULL. Nothing may call into `a` afterwards (the loop's answers
 * included: destroy the loop first). */
void node_audit_close(struct node_audit *a);

/* Copies `row`, fills node_id, time_ms (the clock) and, on the writer thread, seq; done runs
 * exactly once: on the writer thread after the sync, or at once on the caller's thread when
 * the queue is full (CARELOG_EBUSY) or stopped (CARELOG_ECLOSED). The caller must not hold a
 * lock that done takes. Thread-safe. */
void node_audit_record(struct node_audit *a, const struct policy_audit_row *row,
                       node_audit_done_fn done, void *ctx);

/* Starts the shipper thread (config.submit must be set). */
int node_audit_start_shipper(struct node_audit *a);
/* Stops and joins the shipper; a batch in flight is sent again at the next start (same rows,
 * maybe another range: rows are deduplicated by (node, seq) when read). Idempotent. */
void node_audit_stop_shipper(struct node_audit *a);
/* Refuses new rows (CARELOG_ECLOSED), writes what is queued, answers it, joins the writer.
 * Idempotent. */
void node_audit_stop_writer(struct node_audit *a);

/* The cluster's replicated body limit changed (audit batches must fit it). Thread-safe. */
void node_audit_set_body_max(struct node_audit *a, uint64_t body_max_bytes);

/* The loop's answer for a shipper waiter (node.c routes answers whose waiter.owner is `a`
 * here). Called on the loop thread. */
void node_audit_on_reply(struct node_audit *a, struct node_waiter waiter,
                         const struct node_append_result *result);
/* Whether a loop waiter belongs to the shipper of `a`. */
bool node_audit_owns(const struct node_audit *a, struct node_waiter waiter);

/* Without the shipper thread (tests): one pass: takes the answer of the batch in flight
 * (committed: marks shipped; failed: keeps the range for the next pass) or, when none is in
 * flight, submits the next batch. Returns CARELOG_OK or the storage / submit error. */
int node_audit_ship_step(struct node_audit *a);

/* This node's unshipped rows matching `patient` (non-empty), or else actor `actor_id` of org
 * `actor_org`, oldest first (the newest NODE_AUDIT_PENDING_SCAN_ROWS_MAX at most): visit gets
 * the encoded row. The signature of node_serve's audit_pending hook (ctx = the audit queue). */
int node_audit_pending(void *ctx, const char *patient, const char *actor_org, const char *actor_id,
                       int (*visit)(void *arg, const uint8_t *row, size_t len), void *arg);

struct node_audit_stats {
	uint64_t waiting_rows; /* recorded, not yet written */
	uint64_t queued_rows;  /* written, not yet shipped */
	uint64_t next_seq;
	uint64_t shipped_seq;
	uint64_t syncs;          /* synced appends since open */
	uint64_t rows_written;   /* since open */
	uint64_t write_failures; /* appends that failed since open (their rows were refused) */
	uint64_t batches_shipped;
	uint64_t ship_failures; /* batches answered with an error or not answered in time */
	uint64_t busy_refusals; /* rows refused because the queue was full */
};
int node_audit_get_stats(struct node_audit *a, struct node_audit_stats *out);

#endif
