/* Serving the read-side client operations (status, read, get, verify, access-log, btg-list). */
#ifndef CARELOG_NODE_DAEMON_SERVE_H
#define CARELOG_NODE_DAEMON_SERVE_H

/*
 * Transport-free: each function encodes one complete reply (success or an error reply whose
 * message says what was wrong) into `out`, which must start empty. They return CARELOG_OK when
 * a reply was encoded, or CARELOG_ENOMEM when not even an error reply could be.
 *
 * A value that fails its checksum or an entry that fails its integrity check is never served:
 * the reply is CARELOG_ECORRUPT naming the index, never the data. Read and get check each
 * entry without its signature (apply verified it once; a per-entry Ed25519 check made a
 * 200-entry timeline read cost ~12 ms): value CRC, record and header decode, salted body hash
 * and size, and that the entry_index row of the header's id points at that index as accepted
 * (so an altered header, even with a recomputed CRC, is caught). Verify re-checks signatures.
 *
 * Patient data is served only after a decision (node/access/access.h) with the serving node's
 * clock (`now_ms`, from the caller's seam) over the policy state applied here:
 *   read        access_decide_read; denied -> CARELOG_EDENIED with the reason. Allowed: each
 *               entry of the patient's timeline passes access_entry_visible (withheld ones are
 *               counted per reason), superseded versions are left out unless req history
 *               (then shown with superseded_by), erased ones carry who erased them and why.
 *   get         the same decision for the entry's patient and visibility of that entry
 *               (withheld -> CARELOG_EDENIED "withheld: <reason>"); region-wide entries never.
 *   access_log  by patient: the patient, an active proxy of the patient, or role auditor; by
 *               actor: role auditor, or the actor themself. Rows shipped through the log
 *               (access_log_query) and this node's not yet shipped (audit_pending), deduplicated
 *               by (node, seq), newest first.
 *   btg_list    role auditor or admin: open break-the-glass grants (access_btg_open).
 * Each fills `audit` (patient, allowed, basis, count, withheld, entry; the server fills the
 * rest) for the access's audit row, whatever the answer; `audit` may be NULL (tests).
 */

#include "node/access/access.h"
#include "node/api/proto.h"
#include "node/daemon/loop.h"
#include "node/journal/policy.h"
#include "storage/storage.h"

#include <stdint.h>

enum {
	NODE_READ_LIMIT_DEFAULT = 100,
	NODE_READ_SCAN_INDEXES_MAX = 100000, /* patient index rows looked at per read */
	NODE_PROBLEM_BYTES_MAX = 200,
	NODE_ACCESS_LOG_LIMIT_DEFAULT = 100, /* rows per access-log answer when not asked */
	NODE_BTG_LIST_LIMIT_DEFAULT = 100,   /* grants per btg-list answer when not asked */
};

/* Visits this node's audit rows not yet shipped through the log that concern `patient` (or,
 * when it is NULL, were made by actor `actor_id` of `actor_org`): each encoded row
 * (policy_audit_row_encode) to visit(arg, row, len); a non-zero return of visit stops the walk
 * and is returned. */
typedef int (*node_serve_audit_pending_fn)(void *ctx, const char *patient, const char *actor_org,
                                           const char *actor_id,
                                           int (*visit)(void *arg, const uint8_t *row, size_t len),
                                           void *arg);

struct node_serve {
	struct storage *storage;
	uint64_t node_id;
	uint64_t stale_lag_max;
	struct node_loop *loop; /* NULL (tests): status from storage alone */
	void (*transport_stats)(void *ctx, struct proto_transport_stats *out); /* may be NULL */
	void *transport_ctx;
	/* This node's unshipped audit rows (may be NULL: then only the shipped ones). */
	node_serve_audit_pending_fn audit_pending;
	/* The audit queue's counters for status (may be NULL: the reply then has no "audit"). */
	int (*audit_stats)(void *ctx, struct proto_audit_stats *out);
	void *audit_ctx; /* for both audit hooks */
};

int node_serve_status(const struct node_serve *sv, struct proto_buf *out);
int node_serve_verify(const struct node_serve *sv, struct proto_buf *out);

/* `actor` is who asks (org = this node's); `req` the decoded request of that op. */
int node_serve_read(const struct node_serve *sv, const struct access_actor *actor, uint64_t now_ms,
                    const struct proto_request *req, struct proto_buf *out,
                    struct policy_audit_row *audit);
int node_serve_get(const struct node_serve *sv, const struct access_actor *actor, uint64_t now_ms,
                   const struct proto_request *req, struct proto_buf *out,
                   struct policy_audit_row *audit);
int node_serve_access_log(const struct node_serve *sv, const struct access_actor *actor,
                          uint64_t now_ms, const struct proto_request *req, struct proto_buf *out,
                          struct policy_audit_row *audit);
int node_serve_btg_list(const struct node_serve *sv, const struct access_actor *actor,
                        uint64_t now_ms, const struct proto_request *req, struct proto_buf *out,
                        struct policy_audit_row *audit);

/* An error reply with a formatted message. */
int node_serve_error(uint8_t op, int err, struct proto_buf *out, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
