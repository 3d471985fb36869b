/* The daemon's wiring: startup checks that refuse clearly, recovery, loop and server. */
#include "node/daemon/node.h"

#include "carelog/errors.h"
#include "common/assert.h"
#include "common/crypto.h"
#include "common/keyfile.h"
#include "common/log.h"
#include "node/access/access.h"
#include "node/daemon/audit.h"
#include "node/daemon/server.h"
#include "replication/transport.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	NODE_READERS_EXTRA = 16,          /* read transactions beyond one per client context */
	NODE_STOP_REPLY_WAIT_MS = 2000,   /* a clean stop waits this long for replies to leave */
	NODE_STOP_LEFTOVER_WAIT_MS = 500, /* ...and this long for the loop's last answers */
	NODE_GENESIS_ENTRY_BYTES_MAX =
	    MEMBERSHIP_CONTEXT_BYTES_MAX + CONSENSUS_CONF_HEADER_BYTES_MAX,
};

struct node {
	struct node_config config;
	uint8_t secret[CL_SIGN_SECRET_BYTES];
	uint8_t public_key[CL_SIGN_PUBLIC_BYTES];
	struct storage *storage;
	struct node_apply_state state; /* after recovery */
	node_clock_ms_fn clock_ms;
	void *clock_ctx;
	node_audit_append_fn audit_append; /* test seam; NULL = storage */
	void *audit_append_ctx;
	struct node_loop *loop;
	struct node_server *server;
	struct node_audit *audit;
	struct replication_transport *transport;
	/* A joining node (not in the genesis) trusts the genesis members until it has applied a
	 * configuration of its own from the log. NULL otherwise. */
	struct membership *genesis_trust;
	_Atomic(struct node_loop *) receiving_loop; /* the transport's thread delivers here */
	bool running;
	uint64_t stopped_applied_index; /* what the loop had applied when it stopped */
};

static void hex_id(char out[2 * NODE_CONFIG_CLUSTER_ID_BYTES + 1], const uint8_t *id)
{
	cl_hex_encode(out, id, NODE_CONFIG_CLUSTER_ID_BYTES);
}

/* Loads the genesis file into `m` and checks it is for config's cluster. */
static int node_load_genesis(struct node *n, struct membership *m, char *err, size_t err_len)
{
	const struct node_config *c = &n->config;
	if (c->genesis_file[0] == '\0') {
		snprintf(err, err_len,
		         "data dir %s has no applied cluster configuration and [node] genesis_file is "
		         "not set: give the genesis file made by `carelogctl cluster init`",
		         c->data_dir);
		return CARELOG_ECONFIG;
	}
	char why[NODE_CONFIG_ERR_BYTES] = "";
	int rc = membership_genesis_load(c->genesis_file, m, why, sizeof(why));
	char want[33], have[33];
	hex_id(want, c->cluster_id);
	if (rc != CARELOG_OK) {
		snprintf(err, err_len, "genesis_file %s: %s", c->genesis_file, why);
	} else if (!m->has_cluster_id || memcmp(m->cluster_id, c->cluster_id, 16) != 0) {
		hex_id(have, m->cluster_id);
		snprintf(err, err_len, "genesis_file %s is for cluster %s, config says cluster %s",
		         c->genesis_file, m->has_cluster_id ? have : "(none)", want);
		rc = CARELOG_EMISMATCH;
	}
	return rc;
}

/* Fresh data dir: check the genesis file against config and key, write the genesis (a
 * genesis voter) or only the identity (a joining node, caught up from the leader). */
static int node_genesis(struct node *n, char *err, size_t err_len)
{
	const struct node_config *c = &n->config;
	struct membership *m = malloc(sizeof(*m));
	uint8_t *entry = malloc(NODE_GENESIS_ENTRY_BYTES_MAX);
	if (m == NULL || entry == NULL) {
		free(m);
		free(entry);
		return CARELOG_ENOMEM;
	}
	int rc = node_load_genesis(n, m, err, err_len);
	size_t entry_len = 0;
	char want[33];
	hex_id(want, c->cluster_id);
	bool joining = rc == CARELOG_OK && membership_find(m, c->node_id) == NULL;
	if (rc != CARELOG_OK || joining) {
		/* checked above, or a joining node: nothing to encode */
	} else if (memcmp(membership_find(m, c->node_id)->public_key, n->public_key,
	                  CL_SIGN_PUBLIC_BYTES) != 0) {
		snprintf(err, err_len,
		         "key in %s is not the key pinned for node %llu in genesis_file %s",
		         c->key_file, (unsigned long long)c->node_id, c->genesis_file);
		rc = CARELOG_EMISMATCH;
	} else {
		rc = membership_genesis_entry(m, entry, NODE_GENESIS_ENTRY_BYTES_MAX, &entry_len);
		if (rc != CARELOG_OK) {
			snprintf(err, err_len,
			         "genesis_file %s: cannot encode the genesis entry: %s",
			         c->genesis_file, carelog_strerror(rc));
		}
	}
	struct storage_txn *t = NULL;
	if (rc == CARELOG_OK) {
		rc = storage_txn_begin_write(n->storage, &t);
	}
	if (rc == CARELOG_OK) {
		struct storage_identity id = {.node_id = c->node_id};
		memcpy(id.cluster_id, c->cluster_id, sizeof(id.cluster_id));
		rc = storage_identity_put(t, &id);
	}
	if (rc == CARELOG_OK && !joining) {
		struct storage_entry genesis = {.index = 1,
		                                .term = 1,
		                                .type = CONSENSUS_ENTRY_CONF,
		                                .data_len = (uint32_t)entry_len,
		                                .data = entry};
		rc = storage_log_append(t, &genesis, 1);
	}
	if (rc == CARELOG_OK && !joining) {
		struct storage_hard_state hs = {.term = 1, .vote = 0, .commit = 1};
		rc = storage_hard_state_put(t, &hs);
	}
	if (t != NULL) {
		if (rc == CARELOG_OK) {
			rc = storage_txn_commit(t);
		} else {
			storage_txn_abort(t);
		}
		if (rc != CARELOG_OK) {
			snprintf(err, err_len, "data dir %s: cannot write the genesis: %s",
			         c->data_dir, carelog_strerror(rc));
		} else if (joining) {
			cl_log_info("node.joining", "cluster=%s genesis_members=%u", want, m->count);
		} else {
			cl_log_info("node.genesis", "cluster=%s members=%u", want, m->count);
		}
	}
	free(m);
	free(entry);
	return rc;
}

/* Existing data dir: it must belong to config's cluster and node. */
static int node_check_identity(struct node *n, const struct storage_identity *id, char *err,
                               size_t err_len)
{
	const struct node_config *c = &n->config;
	if (memcmp(id->cluster_id, c->cluster_id, sizeof(id->cluster_id)) == 0 &&
	    id->node_id == c->node_id) {
		return CARELOG_OK;
	}
	char have[33], want[33];
	hex_id(have, id->cluster_id);
	hex_id(want, c->cluster_id);
	snprintf(err, err_len,
	         "data dir %s belongs to cluster %s node %llu, config says cluster %s "
	         "node %llu",
	         c->data_dir, have, (unsigned long long)id->node_id, want,
	         (unsigned long long)c->node_id);
	return CARELOG_EMISMATCH;
}

int node_recover(struct storage *s, struct node_apply_state *st, uint32_t batch_entries_max)
{
	CL_ASSERT(batch_entries_max > 0);
	for (;;) {
		struct storage_txn *t = NULL;
		struct storage_hard_state hs;
		int rc = storage_txn_begin_write(s, &t);
		if (rc == CARELOG_OK) {
			rc = storage_hard_state_get(t, &hs);
			if (rc == CARELOG_ENOTFOUND) {
				rc = CARELOG_OK; /* a joining node: nothing stored yet */
				hs = (struct storage_hard_state){0};
			}
		}
		if (rc == CARELOG_OK && hs.commit <= st->applied_index) {
			storage_txn_abort(t);
			return CARELOG_OK;
		}
		struct node_apply_state next = *st;
		uint64_t first = next.applied_index + 1;
		for (uint32_t i = 0;
		     rc == CARELOG_OK && i < batch_entries_max && next.applied_index < hs.commit;
		     i++) {
			/* One entry at a time: a value read in a write txn is valid only until the
			 * next write. */
			struct storage_entry se;
			rc = storage_log_get(t, next.applied_index + 1, &se);
			struct consensus_entry e = {.term = se.term,
			                            .index = se.index,
			                            .type = se.type,
			                            .data_len = se.data_len,
			                            .data = se.data};
			struct node_apply_outcome outcome;
			if (rc == CARELOG_OK) {
				rc = node_apply_entries(t, &next, &e, 1, &outcome);
			}
		}
		if (rc == CARELOG_OK) {
			rc = storage_txn_commit(t);
		} else {
			storage_txn_abort(t);
		}
		if (rc != CARELOG_OK) {
			return rc;
		}
		cl_log_info("node.recovered", "from_index=%llu to_index=%llu",
		            (unsigned long long)first, (unsigned long long)next.applied_index);
		*st = next;
	}
}

/* The applied configuration must pin our key for our node id. */
static int node_check_pinned(struct node *n, char *err, size_t err_len)
{
	const struct node_config *c = &n->config;
	const struct membership_member *self =
	    n->state.has_membership ? membership_find(&n->state.membership, c->node_id) : NULL;
	if (self == NULL) {
		/* Joining and part way through catching up (or removed): the log's members are
		 * the peers to trust; the leader contacts this node once it is added. */
		cl_log_warn("node.not_a_member", "node=%llu applied_index=%llu",
		            (unsigned long long)c->node_id,
		            (unsigned long long)n->state.applied_index);
		if (c->replication_listen[0] == '\0') {
			snprintf(err, err_len,
			         "node %llu is not in the cluster configuration applied at index %llu: "
			         "set [replication] listen to the address it is (to be) added with",
			         (unsigned long long)c->node_id,
			         (unsigned long long)n->state.applied_index);
			return CARELOG_ECONFIG;
		}
		return CARELOG_OK;
	}
	if (memcmp(self->public_key, n->public_key, CL_SIGN_PUBLIC_BYTES) != 0) {
		snprintf(
		    err, err_len,
		    "key in %s is not the key pinned for node %llu in the cluster configuration",
		    c->key_file, (unsigned long long)c->node_id);
		return CARELOG_EMISMATCH;
	}
	return CARELOG_OK;
}

static int node_open_storage(struct node *n, char *err, size_t err_len)
{
	const struct node_config *c = &n->config;
	struct storage_options options = {
	    .dir = c->data_dir,
	    .map_size_bytes = c->storage_map_size_bytes,
	    .readers_max = c->client_requests_max + NODE_READERS_EXTRA,
	};
	int rc = storage_open(&options, &n->storage);
	if (rc == CARELOG_EBUSY) {
		snprintf(err, err_len,
		         "data dir %s is in use by another process (another carelogd?)",
		         c->data_dir);
		return rc;
	}
	if (rc != CARELOG_OK) {
		snprintf(err, err_len, "data dir %s: cannot open storage: %s", c->data_dir,
		         carelog_strerror(rc));
		return rc;
	}
	struct storage_txn *t = NULL;
	struct storage_identity id;
	rc = storage_txn_begin_read(n->storage, &t);
	if (rc == CARELOG_OK) {
		rc = storage_identity_get(t, &id);
		storage_txn_abort(t);
	}
	if (rc == CARELOG_ENOTFOUND) {
		return node_genesis(n, err, err_len);
	}
	if (rc != CARELOG_OK) {
		snprintf(err, err_len, "data dir %s: cannot read its identity: %s", c->data_dir,
		         carelog_strerror(rc));
		return rc;
	}
	return node_check_identity(n, &id, err, err_len);
}

int node_open(const struct node_config *config, struct node **out, char *err, size_t err_len)
{
	if (cl_crypto_init() != CARELOG_OK) {
		snprintf(err, err_len, "cannot initialise the crypto library");
		return CARELOG_ECRYPTO;
	}
	struct node *n = calloc(1, sizeof(*n));
	if (n == NULL) {
		snprintf(err, err_len, "out of memory");
		return CARELOG_ENOMEM;
	}
	n->config = *config;
	n->clock_ms = node_clock_wall_ms;
	char why[NODE_CONFIG_ERR_BYTES] = "";
	int rc =
	    cl_keyfile_load_secret(config->key_file, n->secret, n->public_key, why, sizeof(why));
	if (rc != CARELOG_OK) {
		if (why[0] != '\0') {
			snprintf(err, err_len, "%s", why); /* names the file and the problem */
		} else {
			snprintf(err, err_len, "key_file %s: %s", config->key_file,
			         carelog_strerror(rc));
		}
	}
	if (rc == CARELOG_OK) {
		rc = node_open_storage(n, err, err_len);
	}
	struct storage_txn *t = NULL;
	if (rc == CARELOG_OK) {
		rc = storage_txn_begin_read(n->storage, &t);
		if (rc == CARELOG_OK) {
			rc = node_apply_load(t, &n->state);
			storage_txn_abort(t);
		}
		if (rc == CARELOG_OK) {
			rc = node_recover(n->storage, &n->state, config->batch_entries_max);
		}
		if (rc != CARELOG_OK) {
			snprintf(err, err_len,
			         "data dir %s: cannot apply committed entries: %s (see "
			         "event=apply.stopped)",
			         config->data_dir, carelog_strerror(rc));
		}
	}
	if (rc == CARELOG_OK && n->state.has_membership) {
		rc = node_check_pinned(n, err, err_len);
	} else if (rc == CARELOG_OK) {
		/* Joining: trust the genesis members' keys until the log says otherwise. */
		n->genesis_trust = malloc(sizeof(*n->genesis_trust));
		rc = n->genesis_trust == NULL ? CARELOG_ENOMEM
		                              : node_load_genesis(n, n->genesis_trust, err, err_len);
		if (rc == CARELOG_OK && config->replication_listen[0] == '\0') {
			snprintf(err, err_len,
			         "node %llu is not in the cluster configuration yet: set [replication] "
			         "listen to the address you give `carelogctl member add-learner`",
			         (unsigned long long)config->node_id);
			rc = CARELOG_ECONFIG;
		}
	}
	if (rc != CARELOG_OK) {
		node_close(n);
		return rc;
	}
	*out = n;
	return CARELOG_OK;
}

void node_set_clock(struct node *n, node_clock_ms_fn clock_ms, void *clock_ctx)
{
	n->clock_ms = clock_ms;
	n->clock_ctx = clock_ctx;
}

void node_set_audit_append(struct node *n, node_audit_append_fn append, void *append_ctx)
{
	n->audit_append = append;
	n->audit_append_ctx = append_ctx;
}

/* --- the peer transport --- */

static void node_on_peer_message(void *ctx, uint64_t from, uint8_t channel,
                                 const uint8_t *payload, size_t len)
{
	struct node *n = ctx;
	struct node_loop *l = atomic_load(&n->receiving_loop);
	if (l != NULL) {
		node_loop_receive(l, from, channel, payload, len);
	}
}

/* The peers to trust and dial: every member but us, at its address or the [peers] override. */
static void node_set_peers(void *ctx, const struct membership *m)
{
	struct node *n = ctx;
	if (n->transport == NULL) {
		return;
	}
	struct replication_peer *peers = calloc(MEMBERSHIP_MEMBERS_MAX, sizeof(*peers));
	if (peers == NULL) {
		cl_log_error("peers.update_failed", "err=%s", carelog_errname(CARELOG_ENOMEM));
		return;
	}
	size_t count = 0;
	for (uint32_t i = 0; i < m->count; i++) {
		const struct membership_member *mm = &m->members[i];
		if (mm->id == n->config.node_id) {
			continue;
		}
		const char *url = mm->address;
		for (uint32_t p = 0; p < n->config.peers_count; p++) {
			if (n->config.peers[p].id == mm->id) {
				url = n->config.peers[p].url;
			}
		}
		peers[count].id = mm->id;
		snprintf(peers[count].url, sizeof(peers[count].url), "%s", url);
		memcpy(peers[count].public_key, mm->public_key, sizeof(peers[count].public_key));
		count++;
	}
	int rc = replication_transport_set_peers(n->transport, peers, count);
	if (rc != CARELOG_OK) {
		cl_log_error("peers.update_failed", "err=%s", carelog_errname(rc));
	} else {
		cl_log_info("peers.updated", "peers=%zu", count);
	}
	free(peers);
}

/* The applied membership changed (loop thread; once at loop creation): peers, this node's
 * organisation for the server's actors, the body limit audit batches must fit. */
static void node_on_members(void *ctx, const struct membership *m)
{
	struct node *n = ctx;
	node_set_peers(n, m);
	const struct membership_member *self = membership_find(m, n->config.node_id);
	if (n->server != NULL) {
		node_server_set_org(n->server, self != NULL ? self->org : "");
	}
	if (n->audit != NULL) {
		node_audit_set_body_max(n->audit, m->has_params
		                                      ? m->params.body_max_bytes
		                                      : MEMBERSHIP_BODY_MAX_BYTES_DEFAULT);
	}
}

/* The loop's one reply callback: audit batches to the shipper, the rest to the server. */
static void node_on_reply(void *ctx, struct node_waiter waiter,
                          const struct node_append_result *result)
{
	struct node *n = ctx;
	if (node_audit_owns(n->audit, waiter)) {
		node_audit_on_reply(n->audit, waiter, result);
	} else {
		node_server_on_reply(n->server, waiter, result);
	}
}

/* The shipper's way into the loop (it is stopped before the loop is). */
static int node_audit_submit(void *ctx, struct node_append_item *item)
{
	struct node *n = ctx;
	return n->loop != NULL ? node_loop_submit(n->loop, item) : CARELOG_ECLOSED;
}

static int node_audit_open_queue(struct node *n, char *err, size_t err_len)
{
	const struct node_config *c = &n->config;
	char dir[NODE_CONFIG_PATH_BYTES_MAX + 16];
	int len = c->audit_dir[0] != '\0' ? snprintf(dir, sizeof(dir), "%s", c->audit_dir)
	                                  : snprintf(dir, sizeof(dir), "%s/audit", c->data_dir);
	if (len < 0 || (size_t)len >= sizeof(dir)) {
		snprintf(err, err_len, "the audit dir path is too long (set [audit] dir)");
		return CARELOG_ECONFIG;
	}
	/* What this node already shipped, as far as this replica has applied (audit.h). */
	uint64_t shipped_max = 0;
	struct storage_txn *t = NULL;
	int rc = storage_txn_begin_read(n->storage, &t);
	if (rc == CARELOG_OK) {
		rc = access_audit_seq_max(t, c->node_id, &shipped_max);
	}
	storage_txn_abort(t);
	if (rc != CARELOG_OK) {
		snprintf(err, err_len, "cannot read the audit sequence from the store: %s",
		         carelog_strerror(rc));
		return rc;
	}
	struct node_audit_config ac = {
	    .seq_floor = shipped_max,
	    .node_id = c->node_id,
	    .dir = dir,
	    .map_size_bytes = c->audit_map_size_bytes,
	    .queue_rows_max = c->audit_queue_rows_max,
	    .ship_interval_ms = c->audit_ship_interval_ms,
	    .body_max_bytes = n->state.membership.has_params
	                          ? n->state.membership.params.body_max_bytes
	                          : MEMBERSHIP_BODY_MAX_BYTES_DEFAULT,
	    .clock_ms = n->clock_ms,
	    .clock_ctx = n->clock_ctx,
	    .submit = node_audit_submit,
	    .submit_ctx = n,
	    .append = n->audit_append,
	    .append_ctx = n->audit_append_ctx,
	};
	return node_audit_open(&ac, &n->audit, err, err_len);
}

static void node_transport_stats(void *ctx, struct proto_transport_stats *out)
{
	struct node *n = ctx;
	if (n->transport == NULL) {
		return;
	}
	struct replication_transport_stats st;
	replication_transport_get_stats(n->transport, &st);
	out->sent = st.sent;
	out->received = st.received;
	out->dropped_auth = st.dropped_auth;
	out->dropped_replay = st.dropped_replay;
	out->dropped_unknown = st.dropped_unknown_peer;
	out->handshakes = st.handshakes_done;
}

static int node_send(void *ctx, uint64_t to, uint8_t channel, const uint8_t *payload, size_t len)
{
	struct node *n = ctx;
	return replication_transport_send(n->transport, to, channel, payload, len);
}

static int node_transport_start(struct node *n, char *err, size_t err_len)
{
	const struct node_config *c = &n->config;
	const char *listen = c->replication_listen;
	if (listen[0] == '\0') {
		const struct membership_member *self =
		    membership_find(&n->state.membership, c->node_id);
		CL_ASSERT(self != NULL); /* node_open: a member, or joining with listen set */
		listen = self->address;
	}
	/* One append message carries up to append_bytes_max and always at least one entry, which
	 * may be as large as the replicated body limit allows: never refuse what we must send. */
	uint64_t body_max = n->state.membership.has_params ? n->state.membership.params.body_max_bytes
	                                                   : MEMBERSHIP_BODY_MAX_BYTES_DEFAULT;
	uint64_t message_bytes_max = c->replication_append_bytes_max +
	                             node_config_request_bytes_max(c, body_max) + (1u << 20);
	if (c->replication_message_bytes_max > message_bytes_max) {
		message_bytes_max = c->replication_message_bytes_max;
	}
	if (message_bytes_max > REPLICATION_SESSION_PAYLOAD_BYTES_MAX) {
		/* Bodies near the 64 MiB format limit do not fit a peer message: keep the
		 * replicated body_max_bytes well below it (the default is 1 MiB). */
		message_bytes_max = REPLICATION_SESSION_PAYLOAD_BYTES_MAX;
	}
	struct replication_transport_config tc = {
	    .node_id = c->node_id,
	    .secret_key = n->secret,
	    .listen_url = listen,
	    .message_bytes_max = message_bytes_max,
	    .on_message = node_on_peer_message,
	    .ctx = n,
	};
	memcpy(tc.cluster_id, c->cluster_id, sizeof(tc.cluster_id));
	char why[NODE_CONFIG_ERR_BYTES] = "";
	int rc = replication_transport_create(&tc, &n->transport, why, sizeof(why));
	if (rc != CARELOG_OK) {
		snprintf(err, err_len, "peer endpoint %s: %s", listen,
		         why[0] != '\0' ? why : carelog_strerror(rc));
		return rc;
	}
	if (n->genesis_trust != NULL) {
		node_set_peers(n, n->genesis_trust);
	}
	return CARELOG_OK;
}

int node_start(struct node *n, char *err, size_t err_len)
{
	const struct node_config *c = &n->config;
	uint64_t body_max = n->state.membership.has_params
	                        ? n->state.membership.params.body_max_bytes
	                        : MEMBERSHIP_BODY_MAX_BYTES_DEFAULT;
	uint64_t request_bytes_max = node_config_request_bytes_max(c, body_max);
	int rc = node_transport_start(n, err, err_len);
	if (rc != CARELOG_OK) {
		return rc;
	}
	/* The audit queue first: no request is served without it. */
	rc = node_audit_open_queue(n, err, err_len);
	bool have_message = rc != CARELOG_OK;
	if (rc == CARELOG_OK) {
		struct node_server_config sc = {
		    .node_id = c->node_id,
		    .endpoint = c->client_endpoint,
		    .requests_max = c->client_requests_max,
		    .request_bytes_max = request_bytes_max,
		    .timeout_ms = c->client_timeout_ms,
		    .stale_lag_max = c->client_stale_lag_max,
		    .transport_stats = node_transport_stats,
		    .transport_ctx = n,
		    .actor_default = c->actor_default,
		    .actor_default_role = c->actor_default_role,
		    .unit = c->unit,
		    .clock_ms = n->clock_ms,
		    .clock_ctx = n->clock_ctx,
		    .audit = n->audit,
		};
		rc = node_server_create(&sc, n->storage, &n->server);
	}
	if (rc == CARELOG_OK) {
		struct node_loop_config lc = {
		    .node_id = c->node_id,
		    .secret_key = n->secret,
		    .actor_default = c->actor_default,
		    .actor_default_role = c->actor_default_role,
		    .unit = c->unit,
		    .queue_max = c->client_requests_max,
		    .batch_entries_max = c->batch_entries_max,
		    .batch_bytes_max = c->batch_bytes_max,
		    .request_bytes_max = request_bytes_max,
		    .clock_ms = n->clock_ms,
		    .clock_ctx = n->clock_ctx,
		    .reply = node_on_reply,
		    .reply_ctx = n,
		    .applied = node_server_on_applied,
		    .applied_ctx = n->server,
		    .request_timeout_ms = 2 * c->client_timeout_ms + 1000,
		    .send = node_send,
		    .send_ctx = n,
		    .members = node_on_members,
		    .members_ctx = n,
		    .tick_ms = c->replication_tick_ms,
		    .election_ticks = c->replication_election_ticks,
		    .heartbeat_ticks = c->replication_heartbeat_ticks,
		    .inflight_msgs_max = c->replication_inflight_msgs_max,
		    .append_bytes_max = c->replication_append_bytes_max,
		};
		rc = node_loop_create(&lc, n->storage, &n->state, &n->loop);
	}
	if (rc == CARELOG_OK) {
		node_server_set_loop(n->server, n->loop);
		atomic_store(&n->receiving_loop, n->loop);
		rc = node_loop_start(n->loop);
	}
	if (rc == CARELOG_OK) {
		rc = node_audit_start_shipper(n->audit);
	}
	if (rc != CARELOG_OK && !have_message) {
		snprintf(err, err_len, "cannot start the node: %s", carelog_strerror(rc));
	} else if (rc == CARELOG_OK) {
		rc = node_server_start(n->server, err, err_len);
	}
	if (rc != CARELOG_OK) {
		if (n->server != NULL) {
			node_server_stop_accepting(n->server);
		}
		if (n->audit != NULL) {
			node_audit_stop_shipper(n->audit);
			node_audit_stop_writer(n->audit);
		}
		if (n->loop != NULL) {
			node_loop_answer_leftovers(n->loop);
		}
		replication_transport_destroy(n->transport);
		n->transport = NULL;
		atomic_store(&n->receiving_loop, NULL);
		node_server_destroy(n->server, 0);
		n->server = NULL;
		node_loop_destroy(n->loop);
		n->loop = NULL;
		node_audit_close(n->audit);
		n->audit = NULL;
		return rc;
	}
	n->running = true;
	return CARELOG_OK;
}

/*
 * A clean stop, in the order that answers everything taken and audits every answer:
 * stop taking appends; let requests in flight finish (the loop answers appends, the audit
 * writer makes their rows durable, replies leave); stop the shipper; drain the audit writer
 * (from now on a late request is answered "node is stopping", never served unaudited); stop
 * the loop (finishes its batch); then tear down.
 */
void node_stop(struct node *n)
{
	if (!n->running) {
		return;
	}
	node_server_stop_accepting(n->server);
	uint32_t left = node_server_drain(n->server, NODE_STOP_REPLY_WAIT_MS);
	if (left > 0) {
		cl_log_warn("node.stop_requests_left", "requests=%u", left);
	}
	node_audit_stop_shipper(n->audit);
	node_loop_stop(n->loop); /* finishes the queue and the batch in flight, answers */
	n->stopped_applied_index = node_loop_applied_index(n->loop);
	/* No peer payload arrives after this; the loop (which sends) has stopped. */
	replication_transport_destroy(n->transport);
	n->transport = NULL;
	atomic_store(&n->receiving_loop, NULL);
	node_loop_answer_leftovers(n->loop); /* while the server still exists */
	/* Those answers (a committed append among them) leave only once their audit rows are
	 * written: the writer stops after they are out, so a clean stop answers what it did. */
	left = node_server_drain(n->server, NODE_STOP_LEFTOVER_WAIT_MS);
	if (left > 0) {
		cl_log_warn("node.stop_requests_left", "requests=%u", left);
	}
	node_audit_stop_writer(n->audit);
	/* The server's callbacks (a read served late, a status) may still look at the loop's
	 * published state: free the loop only once the server is gone. */
	node_server_destroy(n->server, NODE_STOP_LEFTOVER_WAIT_MS);
	n->server = NULL;
	node_loop_destroy(n->loop);
	n->loop = NULL;
	/* Last: the loop may have answered a shipper waiter until it was destroyed. */
	node_audit_close(n->audit);
	n->audit = NULL;
	n->running = false;
}

void node_close(struct node *n)
{
	if (n == NULL) {
		return;
	}
	node_stop(n);
	storage_close(n->storage);
	free(n->genesis_trust);
	cl_memzero(n->secret, sizeof(n->secret));
	free(n);
}

uint64_t node_applied_index(const struct node *n)
{
	if (n->loop != NULL) {
		return node_loop_applied_index(n->loop);
	}
	return n->stopped_applied_index > n->state.applied_index ? n->stopped_applied_index
	                                                         : n->state.applied_index;
}

const char *node_endpoint(const struct node *n)
{
	return n->config.client_endpoint;
}
