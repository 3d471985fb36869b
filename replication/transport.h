/* The peer transport: authenticated frames between nodes over nng push0/pull0 (tcp). */
#ifndef CARELOG_REPLICATION_TRANSPORT_H
#define CARELOG_REPLICATION_TRANSPORT_H

#include "common/assert.h"
#include "replication/session.h"

#include <stddef.h>
#include <stdint.h>

/*
 * One transport per node. It listens (pull0) on its own URL and, per peer, dials two push0
 * sockets to the peer's URL: channel 0 (control) and channel 1 (bulk), opened on first use and
 * reconnecting in the background (100 ms .. 2 s), so nodes may start in any order. Every
 * message is one session frame (replication/session.h, docs/peer-sessions.md).
 *
 * Threads: one receive thread, owned by the transport, opens frames, answers handshakes and
 * calls on_message. Every other function may be called from any thread, except destroy
 * (not from on_message, and with no other call in progress).
 *
 * Delivery is at most once, in order per (peer, channel) or dropped: a full send buffer, a
 * handshake in progress, a peer that is down all drop and count. The caller (Raft)
 * retransmits.
 */

enum {
	REPLICATION_URL_BYTES_MAX = 256, /* including the NUL */
	REPLICATION_MESSAGE_BYTES_DEFAULT = 16 * 1024 * 1024,
	/* Send buffers, in messages, per peer. Control messages are small. Bulk holds Raft's
	 * window of appends in flight (inflight_msgs_max, 32 by default), so a full window is
	 * queued whole while the connection drains; its memory is bounded by that window times
	 * append_bytes_max. */
	REPLICATION_CONTROL_SENDBUF_MSGS = 256,
	REPLICATION_BULK_SENDBUF_MSGS = 32,
	REPLICATION_RECONNECT_MS_MIN = 100,
	REPLICATION_RECONNECT_MS_MAX = 2000,
	/* The receive thread wakes at least this often to notice destroy. */
	REPLICATION_RECV_POLL_MS = 100,
	/* Handshakes are started with every trusted peer lacking a session this often (and when
	 * the peer set changes), so an election's first votes find sessions in place. */
	REPLICATION_CONNECT_PERIOD_MS = 1000,
};

/* A peer: node id, the URL to dial (tcp://host:port) and its pinned Ed25519 public key. */
struct replication_peer {
	uint64_t id;
	char url[REPLICATION_URL_BYTES_MAX];
	uint8_t public_key[CL_SIGN_PUBLIC_BYTES];
};

/*
 * Called on the receive thread for each authentic payload, in arrival order. `payload` is
 * borrowed for the call only. Control and bulk frames are delivered as they arrive: the
 * callee should queue them separately and return quickly (one call at a time; the next frame
 * waits for it). It may call replication_transport_send / set_peers / get_stats.
 */
typedef void (*replication_message_fn)(void *ctx, uint64_t from, uint8_t channel,
                                       const uint8_t *payload, size_t len);

struct replication_transport_config {
	uint64_t node_id; /* non-zero */
	uint8_t cluster_id[REPLICATION_SESSION_CLUSTER_ID_BYTES];
	const uint8_t *secret_key; /* 64-byte Ed25519 secret: copied (zeroed at destroy) */
	const char *listen_url;    /* e.g. tcp://0.0.0.0:7401: copied */
	/* Largest payload, sent or received (0: REPLICATION_MESSAGE_BYTES_DEFAULT); at most
	 * REPLICATION_SESSION_PAYLOAD_BYTES_MAX. nng's receive limit is this + frame overhead. */
	uint64_t message_bytes_max;
	replication_message_fn on_message; /* required */
	void *ctx;                         /* passed to on_message */
};

struct replication_transport;

/*
 * Creates the transport, listens on listen_url and starts the receive thread. No peers are
 * trusted until replication_transport_set_peers. cl_crypto_init must have run.
 * CARELOG_EINVAL bad config (err says which field), CARELOG_EEXIST address in use,
 * CARELOG_ENOMEM, CARELOG_EIO. On failure `*out` is untouched and `err` (err_len bytes, may be
 * 0) holds a one-line reason.
 */
int replication_transport_create(const struct replication_transport_config *config,
                                 struct replication_transport **out, char *err,
                                 size_t err_len) CL_MUST_CHECK;

/*
 * Replaces the trusted peer set (copied; at most REPLICATION_SESSION_PEERS_MAX). Thread-safe.
 * Sessions with removed peers or peers whose key changed are forgotten; the sockets of removed
 * peers or peers whose URL changed are closed. CARELOG_EINVAL (id 0, own id, duplicate id,
 * empty or unterminated url), CARELOG_ETOOBIG; nothing changes on failure.
 */
int replication_transport_set_peers(struct replication_transport *transport,
                                    const struct replication_peer *peers,
                                    size_t count) CL_MUST_CHECK;

/*
 * Seals `payload` (borrowed for the call; copied into the frame) for `to` on `channel` and
 * queues it without blocking. Thread-safe.
 * CARELOG_OK queued (not a delivery guarantee); CARELOG_EBUSY dropped: no session yet (a
 * handshake is started or already in flight) or the send buffer is full; CARELOG_ENOTFOUND
 * `to` is not a peer; CARELOG_ETOOBIG len > message_bytes_max; CARELOG_EINVAL bad channel;
 * CARELOG_ENOMEM; CARELOG_EIO the socket to `to` could not be opened (bad url).
 */
int replication_transport_send(struct replication_transport *transport, uint64_t to,
                               uint8_t channel, const uint8_t *payload, size_t len) CL_MUST_CHECK;

struct replication_transport_stats {
	uint64_t sent;                    /* DATA frames queued */
	uint64_t received;                /* payloads delivered to on_message */
	uint64_t dropped_send_full;       /* send buffer full (peer slow or down) */
	uint64_t dropped_send_no_session; /* sends while a handshake was pending */
	uint64_t dropped_unknown_peer;    /* frames from a node with no pinned key */
	uint64_t dropped_bad_frame;       /* malformed, version, not for us, other cluster */
	uint64_t dropped_auth;            /* bad signature, bad MAC, bad ephemeral key */
	uint64_t dropped_replay;          /* DATA counter did not increase; repeated INIT */
	uint64_t dropped_no_session;      /* DATA for a session we do not hold */
	uint64_t dropped_stale;           /* RESP/RESET matching nothing of ours */
	uint64_t handshakes_done;         /* our sending sessions established */
	uint64_t resets_sent;
	uint64_t dropped[REPLICATION_DROP_COUNT_]; /* received frames, per reason */
};

/* A snapshot of the counters since create. Thread-safe. */
void replication_transport_get_stats(struct replication_transport *transport,
                                     struct replication_transport_stats *out);

/* Stops the receive thread (within about REPLICATION_RECV_POLL_MS plus one on_message call),
 * closes every socket, zeroes keys, frees. Not from on_message. Accepts NULL. */
void replication_transport_destroy(struct replication_transport *transport);

#endif
