/* The daemon's wiring: startup checks, recovery, and the loop and server started together. */
#ifndef CARELOG_NODE_DAEMON_NODE_H
#define CARELOG_NODE_DAEMON_NODE_H

/*
 * node_open does every check that can refuse a start, each with a message naming the thing
 * that is wrong (DESIGN.md "Cluster identity"):
 *   - the key file loads (missing, wrong size, too open: the keyfile message names the file);
 *   - a fresh data dir: the genesis file loads, is for config's cluster id, lists this node,
 *     pins this key; then identity, genesis entry (index 1, term 1, CONF) and hard state
 *     {term 1, vote 0, commit 1} are written in one transaction;
 *   - an existing data dir belongs to config's cluster id and node id;
 *   - committed-but-unapplied entries are re-applied (recovery after a crash at any moment);
 *   - the key is the one the applied configuration pins for this node.
 */

#include "node/daemon/audit.h"
#include "node/daemon/config.h"
#include "node/daemon/loop.h"

#include <stddef.h>
#include <stdint.h>

struct node;

/* Refusals return CARELOG_ECONFIG / CARELOG_EMISMATCH / CARELOG_ENOTFOUND / storage errors with
 * the message in err. `config` is copied. */
int node_open(const struct node_config *config, struct node **out, char *err, size_t err_len);

/* Test seam: replace the clock before node_start (leader time stamps, serving decisions,
 * audit rows). */
void node_set_clock(struct node *n, node_clock_ms_fn clock_ms, void *clock_ctx);
/* Test seam (fault injection): replace the audit queue's append before node_start. */
void node_set_audit_append(struct node *n, node_audit_append_fn append, void *append_ctx);

/* Opens the audit queue (<data_dir>/audit or [audit] dir), starts the loop thread, the audit
 * shipper and the client server (listening). */
int node_start(struct node *n, char *err, size_t err_len);

/* Clean stop: stop taking appends; let requests in flight be answered and audited; stop the
 * shipper; drain the audit writer; stop the loop (finishing its batch); close the endpoint. */
void node_stop(struct node *n);

/* Closes storage and frees. Accepts NULL. */
void node_close(struct node *n);

uint64_t node_applied_index(const struct node *n);
const char *node_endpoint(const struct node *n);

/* Re-applies committed entries after applied (in write transactions of at most
 * batch_entries_max entries); `st` is updated. Exposed for tests. */
int node_recover(struct storage *s, struct node_apply_state *st, uint32_t batch_entries_max);

#endif
