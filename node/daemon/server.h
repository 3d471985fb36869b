/* The client API server: nng rep0 contexts serving every client op, each audited and judged. */
#ifndef CARELOG_NODE_DAEMON_SERVER_H
#define CARELOG_NODE_DAEMON_SERVER_H

/*
 * requests_max nng contexts each run recv -> handle -> send. Reads (status, read, get, verify)
 * are served on the nng callback thread with their own read transaction, so a clinical query
 * never blocks the writer. Appends are copied into the loop's queue; the reply goes out when
 * the loop answers (after the applying transaction committed) or, if the timeout passes first,
 * as "pending" (CARELOG_EPENDING: retry with the same request id).
 *
 * Waiting (append timeout, --min-index, linearizable reads) never blocks an nng thread: the
 * context parks on a timer aio that the loop cancels early when its answer or the awaited
 * applied index arrives.
 *
 * Every decoded request is judged for who asks (DESIGN.md "Access", docs/access.md): the
 * request's actor with the node's defaults (actor_default, actor_default_role, unit) and this
 * node's organisation from the applied membership (node_server_set_org; until it is known every
 * request but an operator's is denied, so a joining node can be watched while it catches up).
 * Role "system" is refused from clients. By op class (access_op_class): operator ops need role
 * operator; read and get are judged by node_serve_read/get; append and policy by
 * access_decide_write before they go to the loop (policy entries that leave their patient empty
 * get the referenced entry's); access-log and btg-list by their serve functions; anything else
 * is denied. Denials answer CARELOG_EDENIED with the reason.
 *
 * Every decoded request, allowed, denied or failed, makes one audit row (node/daemon/audit.h)
 * and its reply leaves only once that row is durable; if the row cannot be made durable the
 * reply is an error instead (nothing is served unaudited). An append's row is written when the
 * loop has answered (committed, pending or refused). Requests that cannot be decoded carry no
 * actor and get their error reply without a row.
 *
 * For ipc:// endpoints a stale socket file is removed only if no process answers on it, and
 * the socket is made 0600 (file permissions guard the local endpoint). A watchdog re-creates
 * the ipc listener if nng 1.5.2 stops taking new connections (nanomsg/nng#1518).
 */

#include "node/daemon/audit.h"
#include "node/daemon/loop.h"
#include "storage/storage.h"

#include <stdint.h>

struct node_server_config {
	uint64_t node_id;
	const char *endpoint;
	uint32_t requests_max;
	uint64_t request_bytes_max;
	uint32_t timeout_ms;    /* default wait when the request names none */
	uint64_t stale_lag_max; /* reads lagging more are marked stale */
	/* Peer transport counters for status (may be NULL). */
	void (*transport_stats)(void *ctx, struct proto_transport_stats *out);
	void *transport_ctx;
	/* The actor when a request names none (strings borrowed for the server's lifetime). */
	const char *actor_default;
	const char *actor_default_role;
	const char *unit;
	node_clock_ms_fn clock_ms; /* serving decisions' "now"; NULL = wall clock */
	void *clock_ctx;
	struct node_audit *audit; /* required; borrowed: must outlive the server's requests */
};

struct node_server;

/* Allocates the contexts; does not listen yet. `s` borrowed. */
int node_server_create(const struct node_server_config *config, struct storage *s,
                       struct node_server **out);
/* The loop that takes appends (set before node_server_start). */
void node_server_set_loop(struct node_server *srv, struct node_loop *loop);
/* This node's organisation in the applied membership (copied; "" = not known). Thread-safe. */
void node_server_set_org(struct node_server *srv, const char *org);
/* Listens and starts receiving. On failure writes a message naming the endpoint into err. */
int node_server_start(struct node_server *srv, char *err, size_t err_len);
/* New appends are refused with CARELOG_ECLOSED from now on; reads keep being served. */
void node_server_stop_accepting(struct node_server *srv);
/* Waits (up to wait_ms) until no request is between receive and reply; returns how many are
 * left. The loop and the audit writer must still run for appends and rows to be answered. */
uint32_t node_server_drain(struct node_server *srv, uint32_t wait_ms);
/* Waits (up to wait_ms) for replies in flight to leave, closes the socket, frees. NULL ok.
 * The audit writer must be stopped first (node_audit_stop_writer): a row answered after the
 * server is gone would send on a freed context. */
void node_server_destroy(struct node_server *srv, uint32_t wait_ms);

/* Loop callbacks (node_loop_config.reply / .applied with ctx = the server). */
void node_server_on_reply(void *ctx, struct node_waiter waiter,
                          const struct node_append_result *result);
void node_server_on_applied(void *ctx, uint64_t applied_index, uint64_t commit_index);

#endif
