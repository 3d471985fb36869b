/* Authenticated peer sessions without I/O: frame layout, signed handshake, AEAD, replay rule. */
#ifndef CARELOG_REPLICATION_SESSION_H
#define CARELOG_REPLICATION_SESSION_H

#include "common/assert.h"
#include "common/crypto.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * One node's table of peer sessions (docs/peer-sessions.md has the format for operators).
 *
 * Every message between two nodes is one frame (big-endian):
 *
 *   u8 version (1) | u8 type | u8 channel | 16B cluster_id | u64 from | u64 to | u64 session_id
 *   INIT  (1): + 32B ephemeral X25519 public key + 64B signature
 *   RESP  (2): + 32B ephemeral X25519 public key + 64B signature
 *   RESET (3): + 16B random nonce + 64B signature
 *   DATA  (4): + u64 counter + XChaCha20-Poly1305-IETF ciphertext (payload + 16B tag)
 *
 * Sessions are per direction: A's sending session to B is made by INIT (A->B) and RESP (B->A)
 * and is B's receiving session from A. The table holds, per trusted peer, one sending session
 * and up to two receiving sessions (current + pending), so a replayed INIT cannot replace a
 * live session.
 *
 * Nothing here does I/O, reads a clock or takes a lock: time arrives as `now_ms` (any
 * monotonic millisecond clock), and the caller serialises calls on one table.
 */

enum {
	REPLICATION_SESSION_VERSION = 1,
	REPLICATION_SESSION_CLUSTER_ID_BYTES = 16,
	REPLICATION_SESSION_HEADER_BYTES = 3 + 16 + 8 + 8 + 8,                         /* 43 */
	REPLICATION_SESSION_INIT_BYTES = 43 + CL_DH_PUBLIC_BYTES + CL_SIGNATURE_BYTES, /* 139 */
	REPLICATION_SESSION_RESP_BYTES = 43 + CL_DH_PUBLIC_BYTES + CL_SIGNATURE_BYTES, /* 139 */
	REPLICATION_SESSION_RESET_NONCE_BYTES = 16,
	REPLICATION_SESSION_RESET_BYTES = 43 + 16 + CL_SIGNATURE_BYTES, /* 123 */
	REPLICATION_SESSION_HANDSHAKE_BYTES_MAX = 139, /* the largest INIT, RESP or RESET */
	REPLICATION_SESSION_DATA_AD_BYTES = 43 + 8,    /* header + counter: the AEAD's AD */
	REPLICATION_SESSION_DATA_OVERHEAD_BYTES = 43 + 8 + CL_AEAD_TAG_BYTES, /* 67 */
	REPLICATION_SESSION_CHANNELS = 2,
	/* Bounds: members of one cluster, and the largest payload a table may be configured for. */
	REPLICATION_SESSION_PEERS_MAX = 64,
	REPLICATION_SESSION_PAYLOAD_BYTES_MAX = 64 * 1024 * 1024,
	/* An INIT with no RESP is retried (with a new session) after this long. */
	REPLICATION_SESSION_INIT_RETRY_MS = 500,
	/* At most one RESET per peer per this interval: a flood of stale DATA costs one
	 * signature per interval, not one per frame. */
	REPLICATION_SESSION_RESET_INTERVAL_MS = 200,
};

enum replication_frame_type {
	REPLICATION_FRAME_INIT = 1,
	REPLICATION_FRAME_RESP = 2,
	REPLICATION_FRAME_RESET = 3,
	REPLICATION_FRAME_DATA = 4,
};

/* Channels: control (votes, heartbeats, empty appends, responses, forwards) never waits behind
 * bulk (appends carrying entries). Handshake frames travel on control. */
enum replication_channel {
	REPLICATION_CHANNEL_CONTROL = 0,
	REPLICATION_CHANNEL_BULK = 1,
};

/* Why a received frame was dropped; each reason has a counter (replication_session_open says
 * in which order the checks run). */
enum replication_drop {
	REPLICATION_DROP_MALFORMED = 0,     /* truncated, oversized, unknown type, bad channel */
	REPLICATION_DROP_VERSION = 1,       /* version byte is not 1 */
	REPLICATION_DROP_NOT_FOR_ME = 2,    /* `to` is not this node */
	REPLICATION_DROP_CLUSTER = 3,       /* another cluster's id */
	REPLICATION_DROP_UNKNOWN_PEER = 4,  /* `from` has no pinned key here */
	REPLICATION_DROP_BAD_SIGNATURE = 5, /* handshake not signed by the pinned key of `from` */
	REPLICATION_DROP_BAD_KEY = 6,       /* ephemeral key of a low order (no shared secret) */
	REPLICATION_DROP_NO_SESSION = 7, /* DATA for a session not held (a RESET may answer it) */
	REPLICATION_DROP_BAD_MAC = 8,    /* DATA that fails authentication */
	REPLICATION_DROP_REPLAY = 9,     /* DATA whose counter did not increase; a repeated INIT */
	REPLICATION_DROP_STALE = 10, /* RESP or RESET matching no handshake or session of ours */
	REPLICATION_DROP_LOCAL = 11, /* valid, but this node could not answer (no memory) */
	REPLICATION_DROP_COUNT_ = 12 /* not a reason: the number of reasons */
};

/* The stable name of `reason` ("bad_mac") for logs and status; never NULL. */
const char *replication_drop_name(enum replication_drop reason);

struct replication_session_config {
	uint64_t self_id; /* non-zero */
	uint8_t cluster_id[REPLICATION_SESSION_CLUSTER_ID_BYTES];
	const uint8_t *secret_key;  /* this node's Ed25519 secret (64 bytes): copied */
	uint32_t peers_max;         /* 1..REPLICATION_SESSION_PEERS_MAX */
	uint64_t payload_bytes_max; /* 1..REPLICATION_SESSION_PAYLOAD_BYTES_MAX */
};

/* A trusted peer: its node id and pinned Ed25519 public key. */
struct replication_session_peer {
	uint64_t id;
	uint8_t public_key[CL_SIGN_PUBLIC_BYTES];
};

struct replication_session_table;

/* Creates an empty table (no trusted peers). cl_crypto_init must have run.
 * CARELOG_EINVAL on a config out of bounds, CARELOG_ENOMEM. `*out` untouched on failure. */
int replication_session_table_create(const struct replication_session_config *config,
                                     struct replication_session_table **out) CL_MUST_CHECK;

/* Zeroes every key and secret, then frees. Accepts NULL. */
void replication_session_table_destroy(struct replication_session_table *table);

/* The largest frame this table sends or accepts: payload_bytes_max + DATA overhead. */
size_t replication_session_frame_bytes_max(const struct replication_session_table *table);

/*
 * Replaces the trusted peer set (`peers` is copied). Peers kept with the same key keep their
 * sessions; the sessions of removed peers and of peers whose key changed are forgotten (keys
 * zeroed). CARELOG_EINVAL if an id is 0, this node's, or repeated; CARELOG_ETOOBIG if count >
 * peers_max. The table is unchanged on failure.
 */
int replication_session_set_peers(struct replication_session_table *table,
                                  const struct replication_session_peer *peers,
                                  size_t count) CL_MUST_CHECK;

/*
 * Seals `payload` (borrowed for the call) into a DATA frame for `peer` on `channel`, written
 * to `out` (out_cap >= len + REPLICATION_SESSION_DATA_OVERHEAD_BYTES; must not overlap
 * `payload`). Uses the next counter of (session, channel).
 * CARELOG_OK, *out_len set; CARELOG_EBUSY no established sending session to `peer`: call
 * replication_session_initiate and drop or keep the payload; CARELOG_ENOTFOUND `peer` is not
 * trusted; CARELOG_ETOOBIG len > payload_bytes_max; CARELOG_EINVAL bad channel or out_cap.
 */
int replication_session_seal(struct replication_session_table *table, uint64_t peer,
                             uint8_t channel, const uint8_t *payload, size_t len, uint8_t *out,
                             size_t out_cap, size_t *out_len) CL_MUST_CHECK;

/*
 * Starts a new sending session to `peer` (dropping any current one) and writes its INIT frame
 * to `out`, to be sent on the control channel. CARELOG_EBUSY if an INIT to `peer` is already
 * waiting for its RESP and is younger than REPLICATION_SESSION_INIT_RETRY_MS (nothing to
 * send); CARELOG_ENOTFOUND `peer` not trusted; CARELOG_ECRYPTO / CARELOG_ENOMEM.
 */
int replication_session_initiate(struct replication_session_table *table, uint64_t peer,
                                 uint64_t now_ms,
                                 uint8_t out[REPLICATION_SESSION_HANDSHAKE_BYTES_MAX],
                                 size_t *out_len) CL_MUST_CHECK;

/* True if seal to `peer` would succeed now. */
bool replication_session_is_established(const struct replication_session_table *table,
                                        uint64_t peer);

enum replication_session_outcome {
	REPLICATION_SESSION_PAYLOAD = 1,     /* an authentic payload: peer, channel, payload */
	REPLICATION_SESSION_REPLY = 2,       /* send `reply` to `peer` (RESP to an INIT, RESET) */
	REPLICATION_SESSION_ESTABLISHED = 3, /* a RESP completed our sending session to `peer` */
	REPLICATION_SESSION_RESET = 4,       /* `peer` lost our session: it is dropped here;
	                                        call replication_session_initiate */
	REPLICATION_SESSION_DROPPED = 5,     /* see `reason` (counted) */
};

struct replication_session_result {
	enum replication_session_outcome outcome;
	uint64_t peer;   /* the frame's `from` once it passed the header checks; else 0 */
	uint8_t channel; /* PAYLOAD */
	/* PAYLOAD: the plaintext, decrypted in place inside the caller's frame buffer: valid as
	 * long as that buffer is. */
	const uint8_t *payload;
	size_t payload_len;
	enum replication_drop reason; /* DROPPED; for a REPLY that is a RESET: NO_SESSION */
	size_t reply_len;             /* REPLY */
	uint8_t reply[REPLICATION_SESSION_HANDSHAKE_BYTES_MAX];
};

/*
 * Opens one received frame. Checks, in order and before decoding any payload: version,
 * `to` == self, cluster id, `from` trusted, then per type: INIT signature; RESP/RESET match
 * a handshake or session of ours, then signature; DATA session known, AEAD tag, counter
 * strictly above the last accepted on (session, channel). A DATA frame is decrypted in place
 * (`frame` is modified, also when it is dropped after the tag check). Never fails: every
 * outcome, including drops, is in `*out`.
 */
void replication_session_open(struct replication_session_table *table, uint8_t *frame, size_t len,
                              uint64_t now_ms, struct replication_session_result *out);

struct replication_session_stats {
	uint64_t dropped[REPLICATION_DROP_COUNT_]; /* per reason */
	uint64_t inits_sent;                       /* INIT frames made (initiate) */
	uint64_t inits_answered;  /* RESP frames made (a pending receive session each) */
	uint64_t handshakes_done; /* our sending sessions established */
	uint64_t resets_sent;     /* RESET frames made */
	uint64_t resets_accepted; /* our sending sessions dropped on a peer's RESET */
	uint64_t payloads_sealed;
	uint64_t payloads_opened;
};

void replication_session_get_stats(const struct replication_session_table *table,
                                   struct replication_session_stats *out);

#endif
