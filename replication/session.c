/* Peer sessions: frames, the signed X25519 handshake, DATA seal/open; pure (see session.h). */
#include "replication/session.h"

#include "carelog/errors.h"
#include "common/bytes.h"

#include <stdlib.h>
#include <string.h>

/* Frame offsets (session.h has the layout). */
enum {
	OFF_VERSION = 0,
	OFF_TYPE = 1,
	OFF_CHANNEL = 2,
	OFF_CLUSTER = 3,
	OFF_FROM = 19,
	OFF_TO = 27,
	OFF_SESSION = 35,
	OFF_BODY = REPLICATION_SESSION_HEADER_BYTES,       /* 43: ephemeral key, nonce or counter */
	OFF_HANDSHAKE_SIG = OFF_BODY + CL_DH_PUBLIC_BYTES, /* 75 */
	OFF_RESET_SIG = OFF_BODY + REPLICATION_SESSION_RESET_NONCE_BYTES, /* 59 */
	OFF_CIPHERTEXT = REPLICATION_SESSION_DATA_AD_BYTES,               /* 51 */
	/* Signed message bounds: label || SHA-256(INIT) || frame before the signature. */
	SIGNED_BYTES_MAX = 8 + CL_SHA256_BYTES + OFF_HANDSHAKE_SIG,
};

CL_STATIC_ASSERT(OFF_SESSION + 8 == REPLICATION_SESSION_HEADER_BYTES, "header layout");
CL_STATIC_ASSERT(OFF_HANDSHAKE_SIG + CL_SIGNATURE_BYTES == REPLICATION_SESSION_INIT_BYTES,
                 "INIT layout");
CL_STATIC_ASSERT(OFF_RESET_SIG + CL_SIGNATURE_BYTES == REPLICATION_SESSION_RESET_BYTES,
                 "RESET layout");
CL_STATIC_ASSERT(REPLICATION_SESSION_DATA_OVERHEAD_BYTES == OFF_CIPHERTEXT + CL_AEAD_TAG_BYTES,
                 "DATA layout");

static const char KDF_LABEL[] = "carelog-session-v1"; /* the key derivation's message prefix */

enum send_state {
	SEND_NONE = 0,
	SEND_INITIATING = 1,
	SEND_ESTABLISHED = 2,
};

struct recv_session {
	bool used;
	uint64_t id;
	uint8_t key[CL_AEAD_KEY_BYTES];
	uint64_t last_counter[REPLICATION_SESSION_CHANNELS];
};

struct peer_slot {
	bool used;
	uint64_t id;
	uint8_t public_key[CL_SIGN_PUBLIC_BYTES];
	/* Our sending session to this peer. */
	enum send_state send_state;
	uint64_t send_id;
	uint8_t send_key[CL_AEAD_KEY_BYTES];                 /* ESTABLISHED */
	uint64_t send_counter[REPLICATION_SESSION_CHANNELS]; /* last used, per channel */
	uint8_t eph_secret[CL_DH_SECRET_BYTES];              /* INITIATING */
	uint8_t init_hash[CL_SHA256_BYTES];                  /* INITIATING: SHA-256(INIT) */
	uint64_t init_ms;                                    /* INITIATING: when INIT was made */
	/* Its sending sessions to us. */
	struct recv_session current;
	struct recv_session pending;
	bool reset_sent;
	uint64_t reset_ms;
};

struct replication_session_table {
	uint64_t self_id;
	uint8_t cluster_id[REPLICATION_SESSION_CLUSTER_ID_BYTES];
	uint8_t secret_key[CL_SIGN_SECRET_BYTES];
	uint32_t peers_max;
	uint64_t payload_bytes_max;
	struct replication_session_stats stats;
	struct peer_slot *peers; /* peers_max slots */
};

static const char *const drop_names[REPLICATION_DROP_COUNT_] = {
    [REPLICATION_DROP_MALFORMED] = "malformed",
    [REPLICATION_DROP_VERSION] = "version",
    [REPLICATION_DROP_NOT_FOR_ME] = "not_for_me",
    [REPLICATION_DROP_CLUSTER] = "cluster",
    [REPLICATION_DROP_UNKNOWN_PEER] = "unknown_peer",
    [REPLICATION_DROP_BAD_SIGNATURE] = "bad_signature",
    [REPLICATION_DROP_BAD_KEY] = "bad_key",
    [REPLICATION_DROP_NO_SESSION] = "no_session",
    [REPLICATION_DROP_BAD_MAC] = "bad_mac",
    [REPLICATION_DROP_REPLAY] = "replay",
    [REPLICATION_DROP_STALE] = "stale",
    [REPLICATION_DROP_LOCAL] = "local",
};

const char *replication_drop_name(enum replication_drop reason)
{
	if ((unsigned)reason >= (unsigned)REPLICATION_DROP_COUNT_) {
		return "unknown";
	}
	return drop_names[reason];
}

/* --- peers and secrets --- */

static void recv_forget(struct recv_session *r)
{
	cl_memzero(r, sizeof(*r));
}

static void send_forget(struct peer_slot *p)
{
	p->send_state = SEND_NONE;
	p->send_id = 0;
	cl_memzero(p->send_key, sizeof(p->send_key));
	cl_memzero(p->send_counter, sizeof(p->send_counter));
	cl_memzero(p->eph_secret, sizeof(p->eph_secret));
	cl_memzero(p->init_hash, sizeof(p->init_hash));
	p->init_ms = 0;
}

static void slot_forget(struct peer_slot *p)
{
	cl_memzero(p, sizeof(*p)); /* keys, ephemeral secret, counters: all of it */
}

static struct peer_slot *peer_find(const struct replication_session_table *t, uint64_t id)
{
	for (uint32_t i = 0; i < t->peers_max; i++) {
		if (t->peers[i].used && t->peers[i].id == id) {
			return &t->peers[i];
		}
	}
	return NULL;
}

int replication_session_table_create(const struct replication_session_config *config,
                                     struct replication_session_table **out)
{
	if (config == NULL || out == NULL || config->self_id == 0 || config->secret_key == NULL ||
	    config->peers_max == 0 || config->peers_max > REPLICATION_SESSION_PEERS_MAX ||
	    config->payload_bytes_max == 0 ||
	    config->payload_bytes_max > REPLICATION_SESSION_PAYLOAD_BYTES_MAX) {
		return CARELOG_EINVAL;
	}
	struct replication_session_table *t = calloc(1, sizeof(*t));
	struct peer_slot *peers = calloc(config->peers_max, sizeof(*peers));
	if (t == NULL || peers == NULL) {
		free(t);
		free(peers);
		return CARELOG_ENOMEM;
	}
	t->self_id = config->self_id;
	memcpy(t->cluster_id, config->cluster_id, sizeof(t->cluster_id));
	memcpy(t->secret_key, config->secret_key, sizeof(t->secret_key));
	t->peers_max = config->peers_max;
	t->payload_bytes_max = config->payload_bytes_max;
	t->peers = peers;
	*out = t;
	return CARELOG_OK;
}

void replication_session_table_destroy(struct replication_session_table *t)
{
	if (t == NULL) {
		return;
	}
	for (uint32_t i = 0; i < t->peers_max; i++) {
		slot_forget(&t->peers[i]);
	}
	cl_memzero(t->secret_key, sizeof(t->secret_key));
	free(t->peers);
	free(t);
}

size_t replication_session_frame_bytes_max(const struct replication_session_table *t)
{
	return (size_t)t->payload_bytes_max + REPLICATION_SESSION_DATA_OVERHEAD_BYTES;
}

int replication_session_set_peers(struct replication_session_table *t,
                                  const struct replication_session_peer *peers, size_t count)
{
	if (count > t->peers_max) {
		return CARELOG_ETOOBIG;
	}
	for (size_t i = 0; i < count; i++) {
		if (peers[i].id == 0 || peers[i].id == t->self_id) {
			return CARELOG_EINVAL;
		}
		for (size_t j = 0; j < i; j++) {
			if (peers[j].id == peers[i].id) {
				return CARELOG_EINVAL;
			}
		}
	}
	/* Forget peers that left or whose pinned key changed: a session authenticated by the old
	 * key must not outlive the key. */
	for (uint32_t s = 0; s < t->peers_max; s++) {
		struct peer_slot *p = &t->peers[s];
		if (!p->used) {
			continue;
		}
		bool keep = false;
		for (size_t i = 0; i < count && !keep; i++) {
			keep = peers[i].id == p->id && memcmp(peers[i].public_key, p->public_key,
			                                      sizeof(p->public_key)) == 0;
		}
		if (!keep) {
			slot_forget(p);
		}
	}
	for (size_t i = 0; i < count; i++) {
		if (peer_find(t, peers[i].id) != NULL) {
			continue;
		}
		struct peer_slot *free_slot = NULL;
		for (uint32_t s = 0; s < t->peers_max && free_slot == NULL; s++) {
			free_slot = t->peers[s].used ? NULL : &t->peers[s];
		}
		CL_ASSERT(free_slot != NULL); /* count <= peers_max and the rest were forgotten */
		free_slot->used = true;
		free_slot->id = peers[i].id;
		memcpy(free_slot->public_key, peers[i].public_key, sizeof(free_slot->public_key));
	}
	return CARELOG_OK;
}

bool replication_session_is_established(const struct replication_session_table *t, uint64_t peer)
{
	const struct peer_slot *p = peer_find(t, peer);
	return p != NULL && p->send_state == SEND_ESTABLISHED;
}

void replication_session_get_stats(const struct replication_session_table *t,
                                   struct replication_session_stats *out)
{
	*out = t->stats;
}

/* --- frame building blocks --- */

static void header_write(const struct replication_session_table *t, uint8_t *frame,
                         enum replication_frame_type type, uint8_t channel, uint64_t to,
                         uint64_t session_id)
{
	frame[OFF_VERSION] = REPLICATION_SESSION_VERSION;
	frame[OFF_TYPE] = (uint8_t)type;
	frame[OFF_CHANNEL] = channel;
	memcpy(frame + OFF_CLUSTER, t->cluster_id, sizeof(t->cluster_id));
	cl_put_u64be(frame + OFF_FROM, t->self_id);
	cl_put_u64be(frame + OFF_TO, to);
	cl_put_u64be(frame + OFF_SESSION, session_id);
}

/* label || [init_hash] || frame[0, signed_len): what a handshake signature covers. */
static size_t signed_message(uint8_t out[SIGNED_BYTES_MAX], const char *label,
                             const uint8_t *init_hash, const uint8_t *frame, size_t signed_len)
{
	size_t label_len = strlen(label);
	size_t n = 0;
	CL_ASSERT(label_len + CL_SHA256_BYTES + signed_len <= SIGNED_BYTES_MAX);
	memcpy(out, label, label_len);
	n += label_len;
	if (init_hash != NULL) {
		memcpy(out + n, init_hash, CL_SHA256_BYTES);
		n += CL_SHA256_BYTES;
	}
	memcpy(out + n, frame, signed_len);
	return n + signed_len;
}

static int handshake_sign(const struct replication_session_table *t, const char *label,
                          const uint8_t *init_hash, uint8_t *frame, size_t signed_len)
{
	uint8_t msg[SIGNED_BYTES_MAX];
	size_t msg_len = signed_message(msg, label, init_hash, frame, signed_len);
	return cl_sign(frame + signed_len, CL_SIGN_DOMAIN_HANDSHAKE, msg, msg_len, t->secret_key);
}

static bool handshake_verify(const struct peer_slot *p, const char *label, const uint8_t *init_hash,
                             const uint8_t *frame, size_t signed_len)
{
	uint8_t msg[SIGNED_BYTES_MAX];
	size_t msg_len = signed_message(msg, label, init_hash, frame, signed_len);
	return cl_verify(frame + signed_len, CL_SIGN_DOMAIN_HANDSHAKE, msg, msg_len,
	                 p->public_key) == CARELOG_OK;
}

/* key = BLAKE2b-256(key = X25519 shared secret, "carelog-session-v1" || H(INIT) || H(RESP)).
 * CARELOG_ECRYPTO for a low-order peer key. The shared secret never leaves this function. */
static int session_key_derive(uint8_t out_key[CL_AEAD_KEY_BYTES],
                              const uint8_t secret[CL_DH_SECRET_BYTES],
                              const uint8_t peer_public[CL_DH_PUBLIC_BYTES],
                              const uint8_t init_hash[CL_SHA256_BYTES],
                              const uint8_t resp_hash[CL_SHA256_BYTES])
{
	uint8_t shared[CL_DH_SHARED_BYTES];
	int rc = cl_dh_shared(shared, secret, peer_public);
	if (rc != CARELOG_OK) {
		return rc;
	}
	uint8_t msg[sizeof(KDF_LABEL) - 1 + 2 * CL_SHA256_BYTES];
	memcpy(msg, KDF_LABEL, sizeof(KDF_LABEL) - 1);
	memcpy(msg + sizeof(KDF_LABEL) - 1, init_hash, CL_SHA256_BYTES);
	memcpy(msg + sizeof(KDF_LABEL) - 1 + CL_SHA256_BYTES, resp_hash, CL_SHA256_BYTES);
	CL_STATIC_ASSERT(CL_BLAKE2B_256_BYTES == CL_AEAD_KEY_BYTES, "one key size");
	cl_blake2b_256(out_key, shared, sizeof(shared), msg, sizeof(msg));
	cl_memzero(shared, sizeof(shared));
	return CARELOG_OK;
}

/* nonce = channel || counter (big-endian) || zeros. Unique per key: counters only grow. */
static void data_nonce(uint8_t nonce[CL_AEAD_NONCE_BYTES], uint8_t channel, uint64_t counter)
{
	memset(nonce, 0, CL_AEAD_NONCE_BYTES);
	nonce[0] = channel;
	cl_put_u64be(nonce + 1, counter);
}

static uint64_t session_id_new(void)
{
	uint64_t id;
	do {
		id = cl_random_u64(); /* 0 means "no session" */
	} while (id == 0);
	return id;
}

/* --- sending --- */

int replication_session_seal(struct replication_session_table *t, uint64_t peer, uint8_t channel,
                             const uint8_t *payload, size_t len, uint8_t *out, size_t out_cap,
                             size_t *out_len)
{
	struct peer_slot *p = peer_find(t, peer);
	if (p == NULL) {
		return CARELOG_ENOTFOUND;
	}
	if (channel >= REPLICATION_SESSION_CHANNELS) {
		return CARELOG_EINVAL;
	}
	if ((uint64_t)len > t->payload_bytes_max) {
		return CARELOG_ETOOBIG;
	}
	if (out_cap < len + REPLICATION_SESSION_DATA_OVERHEAD_BYTES) {
		return CARELOG_EINVAL;
	}
	if (p->send_state != SEND_ESTABLISHED) {
		return CARELOG_EBUSY;
	}
	if (p->send_counter[channel] == UINT64_MAX) {
		send_forget(p); /* a nonce must never repeat: a new session gets new keys */
		return CARELOG_EBUSY;
	}
	uint64_t counter = p->send_counter[channel] + 1;
	header_write(t, out, REPLICATION_FRAME_DATA, channel, peer, p->send_id);
	cl_put_u64be(out + OFF_BODY, counter);
	uint8_t nonce[CL_AEAD_NONCE_BYTES];
	data_nonce(nonce, channel, counter);
	int rc = cl_aead_seal(out + OFF_CIPHERTEXT, payload, len, out, OFF_CIPHERTEXT, nonce,
	                      p->send_key);
	if (rc != CARELOG_OK) {
		return rc;
	}
	p->send_counter[channel] = counter;
	t->stats.payloads_sealed++;
	*out_len = len + REPLICATION_SESSION_DATA_OVERHEAD_BYTES;
	return CARELOG_OK;
}

int replication_session_initiate(struct replication_session_table *t, uint64_t peer,
                                 uint64_t now_ms,
                                 uint8_t out[REPLICATION_SESSION_HANDSHAKE_BYTES_MAX],
                                 size_t *out_len)
{
	struct peer_slot *p = peer_find(t, peer);
	if (p == NULL) {
		return CARELOG_ENOTFOUND;
	}
	if (p->send_state == SEND_INITIATING && now_ms >= p->init_ms &&
	    now_ms - p->init_ms < REPLICATION_SESSION_INIT_RETRY_MS) {
		return CARELOG_EBUSY;
	}
	uint8_t frame[REPLICATION_SESSION_INIT_BYTES];
	uint8_t eph_secret[CL_DH_SECRET_BYTES];
	uint64_t id = session_id_new();
	header_write(t, frame, REPLICATION_FRAME_INIT, REPLICATION_CHANNEL_CONTROL, peer, id);
	int rc = cl_dh_keypair(frame + OFF_BODY, eph_secret);
	if (rc == CARELOG_OK) {
		rc = handshake_sign(t, "init", NULL, frame, OFF_HANDSHAKE_SIG);
	}
	if (rc != CARELOG_OK) {
		cl_memzero(eph_secret, sizeof(eph_secret));
		return rc;
	}
	send_forget(p);
	p->send_state = SEND_INITIATING;
	p->send_id = id;
	memcpy(p->eph_secret, eph_secret, sizeof(eph_secret));
	cl_memzero(eph_secret, sizeof(eph_secret));
	cl_sha256(p->init_hash, frame, sizeof(frame));
	p->init_ms = now_ms;
	t->stats.inits_sent++;
	memcpy(out, frame, sizeof(frame));
	*out_len = sizeof(frame);
	return CARELOG_OK;
}

/* --- receiving --- */

static void drop(struct replication_session_table *t, struct replication_session_result *out,
                 enum replication_drop reason)
{
	t->stats.dropped[reason]++;
	out->outcome = REPLICATION_SESSION_DROPPED;
	out->reason = reason;
}

/* INIT from `p`: verify, answer with RESP, keep the derived key as the pending receive
 * session (it becomes current with its first authentic DATA). */
static void open_init(struct replication_session_table *t, struct peer_slot *p,
                      const uint8_t *frame, struct replication_session_result *out)
{
	uint64_t id = cl_get_u64be(frame + OFF_SESSION);
	/* An initiator never reuses a session id, so this is a replay: answering it would
	 * replace the pending session of a handshake in progress. */
	if ((p->current.used && p->current.id == id) || (p->pending.used && p->pending.id == id)) {
		drop(t, out, REPLICATION_DROP_REPLAY);
		return;
	}
	if (!handshake_verify(p, "init", NULL, frame, OFF_HANDSHAKE_SIG)) {
		drop(t, out, REPLICATION_DROP_BAD_SIGNATURE);
		return;
	}
	uint8_t init_hash[CL_SHA256_BYTES];
	uint8_t resp_hash[CL_SHA256_BYTES];
	uint8_t eph_secret[CL_DH_SECRET_BYTES];
	uint8_t key[CL_AEAD_KEY_BYTES];
	uint8_t *resp = out->reply;
	cl_sha256(init_hash, frame, REPLICATION_SESSION_INIT_BYTES);
	header_write(t, resp, REPLICATION_FRAME_RESP, REPLICATION_CHANNEL_CONTROL, p->id, id);
	int rc = cl_dh_keypair(resp + OFF_BODY, eph_secret);
	if (rc == CARELOG_OK) {
		rc = handshake_sign(t, "resp", init_hash, resp, OFF_HANDSHAKE_SIG);
	}
	enum replication_drop reason = REPLICATION_DROP_LOCAL;
	if (rc == CARELOG_OK) {
		cl_sha256(resp_hash, resp, REPLICATION_SESSION_RESP_BYTES);
		rc = session_key_derive(key, eph_secret, frame + OFF_BODY, init_hash, resp_hash);
		reason = REPLICATION_DROP_BAD_KEY; /* only the peer's key can fail the derivation */
	}
	cl_memzero(eph_secret, sizeof(eph_secret));
	if (rc != CARELOG_OK) {
		cl_memzero(key, sizeof(key));
		drop(t, out, reason);
		return;
	}
	recv_forget(&p->pending);
	p->pending.used = true;
	p->pending.id = id;
	memcpy(p->pending.key, key, sizeof(key));
	cl_memzero(key, sizeof(key));
	t->stats.inits_answered++;
	out->outcome = REPLICATION_SESSION_REPLY;
	out->reply_len = REPLICATION_SESSION_RESP_BYTES;
}

/* RESP from `p`: completes our sending session if it answers the INIT we are waiting on. */
static void open_resp(struct replication_session_table *t, struct peer_slot *p,
                      const uint8_t *frame, struct replication_session_result *out)
{
	uint64_t id = cl_get_u64be(frame + OFF_SESSION);
	if (p->send_state != SEND_INITIATING || p->send_id != id) {
		drop(t, out, REPLICATION_DROP_STALE);
		return;
	}
	if (!handshake_verify(p, "resp", p->init_hash, frame, OFF_HANDSHAKE_SIG)) {
		drop(t, out, REPLICATION_DROP_BAD_SIGNATURE);
		return;
	}
	uint8_t resp_hash[CL_SHA256_BYTES];
	uint8_t key[CL_AEAD_KEY_BYTES];
	cl_sha256(resp_hash, frame, REPLICATION_SESSION_RESP_BYTES);
	if (session_key_derive(key, p->eph_secret, frame + OFF_BODY, p->init_hash, resp_hash) !=
	    CARELOG_OK) {
		drop(t, out, REPLICATION_DROP_BAD_KEY);
		return;
	}
	send_forget(p); /* zeroes the ephemeral secret: forward secrecy */
	p->send_state = SEND_ESTABLISHED;
	p->send_id = id;
	memcpy(p->send_key, key, sizeof(key));
	cl_memzero(key, sizeof(key));
	t->stats.handshakes_done++;
	out->outcome = REPLICATION_SESSION_ESTABLISHED;
}

/* RESET from `p`: it has no receive session for our current sending session. */
static void open_reset(struct replication_session_table *t, struct peer_slot *p,
                       const uint8_t *frame, struct replication_session_result *out)
{
	uint64_t id = cl_get_u64be(frame + OFF_SESSION);
	if (p->send_state != SEND_ESTABLISHED || p->send_id != id) {
		drop(t, out, REPLICATION_DROP_STALE);
		return;
	}
	if (!handshake_verify(p, "reset", NULL, frame, OFF_RESET_SIG)) {
		drop(t, out, REPLICATION_DROP_BAD_SIGNATURE);
		return;
	}
	send_forget(p);
	t->stats.resets_accepted++;
	out->outcome = REPLICATION_SESSION_RESET;
}

/* DATA for a session we do not hold: ask the sender (rate-limited) to handshake again. */
static void answer_reset(struct replication_session_table *t, struct peer_slot *p,
                         uint64_t session_id, uint64_t now_ms,
                         struct replication_session_result *out)
{
	t->stats.dropped[REPLICATION_DROP_NO_SESSION]++;
	out->reason = REPLICATION_DROP_NO_SESSION;
	out->outcome = REPLICATION_SESSION_DROPPED;
	if (p->reset_sent && now_ms >= p->reset_ms &&
	    now_ms - p->reset_ms < REPLICATION_SESSION_RESET_INTERVAL_MS) {
		return;
	}
	uint8_t *reset = out->reply;
	header_write(t, reset, REPLICATION_FRAME_RESET, REPLICATION_CHANNEL_CONTROL, p->id,
	             session_id);
	cl_random_bytes(reset + OFF_BODY, REPLICATION_SESSION_RESET_NONCE_BYTES);
	if (handshake_sign(t, "reset", NULL, reset, OFF_RESET_SIG) != CARELOG_OK) {
		return;
	}
	p->reset_sent = true;
	p->reset_ms = now_ms;
	t->stats.resets_sent++;
	out->outcome = REPLICATION_SESSION_REPLY;
	out->reply_len = REPLICATION_SESSION_RESET_BYTES;
}

static void open_data(struct replication_session_table *t, struct peer_slot *p, uint8_t *frame,
                      size_t len, uint64_t now_ms, struct replication_session_result *out)
{
	uint64_t id = cl_get_u64be(frame + OFF_SESSION);
	uint8_t channel = frame[OFF_CHANNEL];
	uint64_t counter = cl_get_u64be(frame + OFF_BODY);
	/* Session ids of current and pending always differ (open_init refuses a repeated id). */
	struct recv_session *r = NULL;
	if (p->current.used && p->current.id == id) {
		r = &p->current;
	} else if (p->pending.used && p->pending.id == id) {
		r = &p->pending;
	}
	if (r == NULL) {
		answer_reset(t, p, id, now_ms, out);
		return;
	}
	uint8_t nonce[CL_AEAD_NONCE_BYTES];
	data_nonce(nonce, channel, counter);
	size_t sealed_len = len - OFF_CIPHERTEXT;
	/* The tag is checked before any plaintext is written (in place). */
	if (cl_aead_open(frame + OFF_CIPHERTEXT, frame + OFF_CIPHERTEXT, sealed_len, frame,
	                 OFF_CIPHERTEXT, nonce, r->key) != CARELOG_OK) {
		drop(t, out, REPLICATION_DROP_BAD_MAC);
		return;
	}
	if (counter <= r->last_counter[channel]) {
		drop(t, out, REPLICATION_DROP_REPLAY);
		return;
	}
	r->last_counter[channel] = counter;
	if (r == &p->pending) {
		/* The peer uses its new session: the old one is over. */
		recv_forget(&p->current);
		p->current = p->pending;
		recv_forget(&p->pending);
	}
	t->stats.payloads_opened++;
	out->outcome = REPLICATION_SESSION_PAYLOAD;
	out->channel = channel;
	out->payload = frame + OFF_CIPHERTEXT;
	out->payload_len = sealed_len - CL_AEAD_TAG_BYTES;
}

/* The exact length a frame of `type` must have, or whether DATA fits; false if neither. */
static bool frame_shape_ok(const struct replication_session_table *t, const uint8_t *frame,
                           size_t len)
{
	uint8_t channel = frame[OFF_CHANNEL];
	switch (frame[OFF_TYPE]) {
	case REPLICATION_FRAME_INIT:
		return len == REPLICATION_SESSION_INIT_BYTES &&
		       channel == REPLICATION_CHANNEL_CONTROL;
	case REPLICATION_FRAME_RESP:
		return len == REPLICATION_SESSION_RESP_BYTES &&
		       channel == REPLICATION_CHANNEL_CONTROL;
	case REPLICATION_FRAME_RESET:
		return len == REPLICATION_SESSION_RESET_BYTES &&
		       channel == REPLICATION_CHANNEL_CONTROL;
	case REPLICATION_FRAME_DATA:
		return len >= REPLICATION_SESSION_DATA_OVERHEAD_BYTES &&
		       len <= replication_session_frame_bytes_max(t) &&
		       channel < REPLICATION_SESSION_CHANNELS;
	default:
		return false;
	}
}

void replication_session_open(struct replication_session_table *t, uint8_t *frame, size_t len,
                              uint64_t now_ms, struct replication_session_result *out)
{
	memset(out, 0, offsetof(struct replication_session_result, reply));
	if (len == 0) {
		drop(t, out, REPLICATION_DROP_MALFORMED);
		return;
	}
	if (frame[OFF_VERSION] != REPLICATION_SESSION_VERSION) {
		drop(t, out, REPLICATION_DROP_VERSION);
		return;
	}
	if (len < REPLICATION_SESSION_HEADER_BYTES || !frame_shape_ok(t, frame, len)) {
		drop(t, out, REPLICATION_DROP_MALFORMED);
		return;
	}
	if (cl_get_u64be(frame + OFF_TO) != t->self_id) {
		drop(t, out, REPLICATION_DROP_NOT_FOR_ME);
		return;
	}
	if (memcmp(frame + OFF_CLUSTER, t->cluster_id, sizeof(t->cluster_id)) != 0) {
		drop(t, out, REPLICATION_DROP_CLUSTER);
		return;
	}
	struct peer_slot *p = peer_find(t, cl_get_u64be(frame + OFF_FROM));
	if (p == NULL) {
		drop(t, out, REPLICATION_DROP_UNKNOWN_PEER);
		return;
	}
	out->peer = p->id;
	switch (frame[OFF_TYPE]) {
	case REPLICATION_FRAME_INIT:
		open_init(t, p, frame, out);
		break;
	case REPLICATION_FRAME_RESP:
		open_resp(t, p, frame, out);
		break;
	case REPLICATION_FRAME_RESET:
		open_reset(t, p, frame, out);
		break;
	case REPLICATION_FRAME_DATA:
		open_data(t, p, frame, len, now_ms, out);
		break;
	default:
		CL_UNREACHABLE(); /* frame_shape_ok admits the four types only */
	}
}
