/* The nng adapter of replication/: pull0 listener, push0 dialers, the receive thread. */
#include "replication/transport.h"

#include "carelog/errors.h"
#include "common/log.h"

#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct transport_peer {
	uint64_t id;
	char url[REPLICATION_URL_BYTES_MAX];
	bool sock_open[REPLICATION_SESSION_CHANNELS];
	nng_socket sock[REPLICATION_SESSION_CHANNELS]; /* push0, dialing url; opened on first use */
};

struct replication_transport {
	uint64_t node_id;
	uint64_t message_bytes_max;
	replication_message_fn on_message;
	void *ctx;
	nng_socket pull;
	bool pull_open;
	pthread_t thread;
	bool thread_running;
	atomic_bool stop;
	/* Guards everything below. Held for session work and non-blocking nng sends only, never
	 * across on_message or a socket close. */
	pthread_mutex_t mu;
	struct replication_session_table *table;
	struct transport_peer *peers; /* REPLICATION_SESSION_PEERS_MAX slots */
	size_t peers_count;
	uint64_t sent;
	uint64_t received;
	uint64_t dropped_send_full;
	uint64_t dropped_send_no_session;
};

static int nng_to_carelog(int rv)
{
	switch (rv) {
	case 0:
		return CARELOG_OK;
	case NNG_ENOMEM:
		return CARELOG_ENOMEM;
	case NNG_EAGAIN:
		return CARELOG_EBUSY;
	case NNG_ETIMEDOUT:
		return CARELOG_ETIMEDOUT;
	case NNG_ECLOSED:
		return CARELOG_ECLOSED;
	case NNG_EADDRINUSE:
		return CARELOG_EEXIST;
	case NNG_EADDRINVAL:
	case NNG_EINVAL:
	case NNG_ENOTSUP:
		return CARELOG_EINVAL;
	default:
		return CARELOG_EIO;
	}
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static struct transport_peer *peer_find(struct replication_transport *t, uint64_t id)
{
	for (size_t i = 0; i < t->peers_count; i++) {
		if (t->peers[i].id == id) {
			return &t->peers[i];
		}
	}
	return NULL;
}

static int push_open(const char *url, int sendbuf_msgs, nng_socket *out)
{
	nng_socket s;
	int rv = nng_push0_open(&s);
	if (rv != 0) {
		return rv;
	}
	/* A send buffer lets the first frames (the INIT) wait for the connection; when it is
	 * full, non-blocking sends fail with NNG_EAGAIN and the frame is dropped. */
	rv = nng_socket_set_int(s, NNG_OPT_SENDBUF, sendbuf_msgs);
	if (rv == 0) {
		rv = nng_socket_set_ms(s, NNG_OPT_RECONNMINT, REPLICATION_RECONNECT_MS_MIN);
	}
	if (rv == 0) {
		rv = nng_socket_set_ms(s, NNG_OPT_RECONNMAXT, REPLICATION_RECONNECT_MS_MAX);
	}
	if (rv == 0) {
		/* Non-blocking: the peer may not be up yet; nng keeps dialing in the background. */
		rv = nng_dial(s, url, NULL, NNG_FLAG_NONBLOCK);
	}
	if (rv != 0) {
		nng_close(s);
		return rv;
	}
	*out = s;
	return 0;
}

/* The push socket to `p` for `channel`, opened on first use. Caller holds mu. */
static int peer_socket(struct transport_peer *p, uint8_t channel, nng_socket *out)
{
	if (!p->sock_open[channel]) {
		int sendbuf = channel == REPLICATION_CHANNEL_CONTROL
		                  ? REPLICATION_CONTROL_SENDBUF_MSGS
		                  : REPLICATION_BULK_SENDBUF_MSGS;
		int rv = push_open(p->url, sendbuf, &p->sock[channel]);
		if (rv != 0) {
			cl_log_warn("replication.dial_failed", "peer=%llu channel=%u err=%s",
			            (unsigned long long)p->id, channel, nng_strerror(rv));
			return nng_to_carelog(rv);
		}
		p->sock_open[channel] = true;
	}
	*out = p->sock[channel];
	return CARELOG_OK;
}

/* Queues `msg` (consumed either way) to `peer` on `channel` without blocking. Caller holds
 * mu. */
static int send_msg_locked(struct replication_transport *t, uint64_t peer, uint8_t channel,
                           nng_msg *msg)
{
	struct transport_peer *p = peer_find(t, peer);
	nng_socket s;
	int rc = p == NULL ? CARELOG_ENOTFOUND : peer_socket(p, channel, &s);
	if (rc == CARELOG_OK) {
		int rv = nng_sendmsg(s, msg, NNG_FLAG_NONBLOCK);
		if (rv == 0) {
			return CARELOG_OK; /* nng owns msg now */
		}
		if (rv == NNG_EAGAIN) {
			t->dropped_send_full++;
		}
		rc = nng_to_carelog(rv);
	}
	nng_msg_free(msg);
	return rc;
}

/* Sends a handshake frame (INIT, RESP, RESET) on the control channel. Caller holds mu. */
static void send_handshake_locked(struct replication_transport *t, uint64_t peer,
                                  const uint8_t *frame, size_t len)
{
	nng_msg *msg = NULL;
	if (nng_msg_alloc(&msg, 0) != 0 || nng_msg_append(msg, frame, len) != 0) {
		if (msg != NULL) {
			nng_msg_free(msg);
		}
		return; /* the peer or our next send retries the handshake */
	}
	(void)send_msg_locked(t, peer, REPLICATION_CHANNEL_CONTROL, msg);
}

/* Starts a handshake to `peer` unless one is in flight. Caller holds mu. */
static void initiate_locked(struct replication_transport *t, uint64_t peer)
{
	uint8_t frame[REPLICATION_SESSION_HANDSHAKE_BYTES_MAX];
	size_t len = 0;
	if (replication_session_initiate(t->table, peer, now_ms(), frame, &len) == CARELOG_OK) {
		send_handshake_locked(t, peer, frame, len);
	}
}

int replication_transport_send(struct replication_transport *t, uint64_t to, uint8_t channel,
                               const uint8_t *payload, size_t len)
{
	if (channel >= REPLICATION_SESSION_CHANNELS) {
		return CARELOG_EINVAL;
	}
	if ((uint64_t)len > t->message_bytes_max) {
		return CARELOG_ETOOBIG;
	}
	/* Allocated outside the lock; the frame is sealed straight into the message body. */
	size_t frame_cap = len + REPLICATION_SESSION_DATA_OVERHEAD_BYTES;
	nng_msg *msg = NULL;
	if (nng_msg_alloc(&msg, frame_cap) != 0) {
		return CARELOG_ENOMEM;
	}
	size_t frame_len = 0;
	pthread_mutex_lock(&t->mu);
	int rc = replication_session_seal(t->table, to, channel, payload, len, nng_msg_body(msg),
	                                  frame_cap, &frame_len);
	if (rc == CARELOG_OK) {
		CL_ASSERT(frame_len == frame_cap);
		rc = send_msg_locked(t, to, channel, msg);
		msg = NULL;
		t->sent += rc == CARELOG_OK ? 1u : 0u;
	} else if (rc == CARELOG_EBUSY) {
		t->dropped_send_no_session++;
		initiate_locked(t, to);
	}
	pthread_mutex_unlock(&t->mu);
	if (msg != NULL) {
		nng_msg_free(msg);
	}
	return rc;
}

/* Logs a drop at warn for the 1st, 2nd, 4th, 8th... of each reason (bounded log volume; the
 * counters carry the totals), else at debug. */
static void log_drop(const struct replication_session_table *table,
                     const struct replication_session_result *res)
{
	struct replication_session_stats st;
	replication_session_get_stats(table, &st);
	uint64_t n = st.dropped[res->reason];
	enum cl_log_level level = (n & (n - 1)) == 0 ? CL_LOG_WARN : CL_LOG_DEBUG;
	cl_log(level, "replication.frame_dropped", "reason=%s from=%llu count=%llu",
	       replication_drop_name(res->reason), (unsigned long long)res->peer,
	       (unsigned long long)n);
}

static void handle_frame(struct replication_transport *t, nng_msg *msg)
{
	struct replication_session_result res;
	pthread_mutex_lock(&t->mu);
	replication_session_open(t->table, nng_msg_body(msg), nng_msg_len(msg), now_ms(), &res);
	switch (res.outcome) {
	case REPLICATION_SESSION_PAYLOAD:
		t->received++;
		break;
	case REPLICATION_SESSION_REPLY:
		send_handshake_locked(t, res.peer, res.reply, res.reply_len);
		break;
	case REPLICATION_SESSION_ESTABLISHED:
		cl_log_info("replication.session_established", "peer=%llu",
		            (unsigned long long)res.peer);
		break;
	case REPLICATION_SESSION_RESET:
		cl_log_info("replication.session_reset", "peer=%llu", (unsigned long long)res.peer);
		initiate_locked(t, res.peer);
		break;
	case REPLICATION_SESSION_DROPPED:
		log_drop(t->table, &res);
		break;
	}
	pthread_mutex_unlock(&t->mu);
	if (res.outcome == REPLICATION_SESSION_PAYLOAD) {
		t->on_message(t->ctx, res.peer, res.channel, res.payload, res.payload_len);
	}
}

/* Starts a handshake to every trusted peer we hold no sending session to (mu held). Votes
 * of an election go to peers a node may never have talked to (a learner just promoted): they
 * must not be lost to a handshake that only starts with the first message. Rate-limited per
 * peer by the session layer. */
static void connect_all_locked(struct replication_transport *t)
{
	for (size_t i = 0; i < t->peers_count; i++) {
		if (!replication_session_is_established(t->table, t->peers[i].id)) {
			initiate_locked(t, t->peers[i].id);
		}
	}
}

/* One thread receives everything: frames are opened in arrival order, so a control frame
 * waits at most for the frames that arrived before it (bulk ones are at most
 * message_bytes_max each: one AEAD pass and one on_message call). A receive timeout, not a
 * socket close, ends it: nothing of ours runs on nng's threads, so closing races nothing. */
static void *receive_thread(void *arg)
{
	struct replication_transport *t = arg;
	uint64_t connect_at_ms = 0;
	while (!atomic_load(&t->stop)) {
		uint64_t now = now_ms();
		if (now >= connect_at_ms) {
			connect_at_ms = now + REPLICATION_CONNECT_PERIOD_MS;
			pthread_mutex_lock(&t->mu);
			connect_all_locked(t);
			pthread_mutex_unlock(&t->mu);
		}
		nng_msg *msg = NULL;
		int rv = nng_recvmsg(t->pull, &msg, 0);
		if (rv == NNG_ETIMEDOUT) {
			continue;
		}
		if (rv == NNG_ECLOSED) {
			break;
		}
		if (rv != 0) {
			cl_log_warn("replication.recv_failed", "err=%s", nng_strerror(rv));
			continue;
		}
		handle_frame(t, msg);
		nng_msg_free(msg);
	}
	return NULL;
}

static bool url_ok(const char *url)
{
	size_t n = strnlen(url, REPLICATION_URL_BYTES_MAX);
	return n > 0 && n < REPLICATION_URL_BYTES_MAX;
}

int replication_transport_set_peers(struct replication_transport *t,
                                    const struct replication_peer *peers, size_t count)
{
	if (count > REPLICATION_SESSION_PEERS_MAX) {
		return CARELOG_ETOOBIG;
	}
	struct replication_session_peer trusted[REPLICATION_SESSION_PEERS_MAX];
	for (size_t i = 0; i < count; i++) {
		if (!url_ok(peers[i].url)) {
			return CARELOG_EINVAL;
		}
		trusted[i].id = peers[i].id;
		memcpy(trusted[i].public_key, peers[i].public_key, sizeof(trusted[i].public_key));
	}
	struct transport_peer *next = calloc(REPLICATION_SESSION_PEERS_MAX, sizeof(*next));
	if (next == NULL) {
		return CARELOG_ENOMEM;
	}
	pthread_mutex_lock(&t->mu);
	/* The session layer checks ids (0, own, duplicates) before it changes anything. */
	int rc = replication_session_set_peers(t->table, trusted, count);
	struct transport_peer *old = t->peers;
	size_t old_count = t->peers_count;
	if (rc == CARELOG_OK) {
		for (size_t i = 0; i < count; i++) {
			next[i].id = peers[i].id;
			memcpy(next[i].url, peers[i].url, strlen(peers[i].url) + 1);
			struct transport_peer *prev = peer_find(t, peers[i].id);
			if (prev != NULL && strcmp(prev->url, next[i].url) == 0) {
				/* Same peer, same address: keep its connections. */
				memcpy(next[i].sock, prev->sock, sizeof(next[i].sock));
				memcpy(next[i].sock_open, prev->sock_open,
				       sizeof(next[i].sock_open));
				memset(prev->sock_open, 0, sizeof(prev->sock_open));
			}
		}
		t->peers = next;
		t->peers_count = count;
		connect_all_locked(t);
	}
	pthread_mutex_unlock(&t->mu);
	if (rc != CARELOG_OK) {
		free(next);
		return rc;
	}
	/* Sockets no longer referenced: closed outside the lock (nng_close waits for its pipes). */
	for (size_t i = 0; i < old_count; i++) {
		for (size_t c = 0; c < REPLICATION_SESSION_CHANNELS; c++) {
			if (old[i].sock_open[c]) {
				nng_close(old[i].sock[c]);
			}
		}
	}
	free(old);
	return CARELOG_OK;
}

void replication_transport_get_stats(struct replication_transport *t,
                                     struct replication_transport_stats *out)
{
	struct replication_session_stats st;
	struct replication_transport_stats s;
	memset(&s, 0, sizeof(s));
	pthread_mutex_lock(&t->mu);
	replication_session_get_stats(t->table, &st);
	s.sent = t->sent;
	s.received = t->received;
	s.dropped_send_full = t->dropped_send_full;
	s.dropped_send_no_session = t->dropped_send_no_session;
	pthread_mutex_unlock(&t->mu);
	const uint64_t *d = st.dropped;
	s.dropped_unknown_peer = d[REPLICATION_DROP_UNKNOWN_PEER];
	s.dropped_bad_frame = d[REPLICATION_DROP_MALFORMED] + d[REPLICATION_DROP_VERSION] +
	                      d[REPLICATION_DROP_NOT_FOR_ME] + d[REPLICATION_DROP_CLUSTER];
	s.dropped_auth = d[REPLICATION_DROP_BAD_SIGNATURE] + d[REPLICATION_DROP_BAD_MAC] +
	                 d[REPLICATION_DROP_BAD_KEY];
	s.dropped_replay = d[REPLICATION_DROP_REPLAY];
	s.dropped_no_session = d[REPLICATION_DROP_NO_SESSION];
	s.dropped_stale = d[REPLICATION_DROP_STALE];
	s.handshakes_done = st.handshakes_done;
	s.resets_sent = st.resets_sent;
	memcpy(s.dropped, st.dropped, sizeof(s.dropped));
	*out = s;
}

void replication_transport_destroy(struct replication_transport *t)
{
	if (t == NULL) {
		return;
	}
	atomic_store(&t->stop, true);
	if (t->thread_running) {
		pthread_join(t->thread, NULL);
	}
	if (t->pull_open) {
		nng_close(t->pull);
	}
	for (size_t i = 0; i < t->peers_count; i++) {
		for (size_t c = 0; c < REPLICATION_SESSION_CHANNELS; c++) {
			if (t->peers[i].sock_open[c]) {
				nng_close(t->peers[i].sock[c]);
			}
		}
	}
	replication_session_table_destroy(t->table);
	pthread_mutex_destroy(&t->mu);
	free(t->peers);
	free(t);
}

static int create_fail(struct replication_transport *t, int rc, char *err, size_t err_len,
                       const char *what, const char *detail)
{
	if (err_len > 0) {
		snprintf(err, err_len, "%s%s%s", what, detail[0] != '\0' ? ": " : "", detail);
	}
	replication_transport_destroy(t);
	return rc;
}

int replication_transport_create(const struct replication_transport_config *config,
                                 struct replication_transport **out, char *err, size_t err_len)
{
	const char *bad = NULL;
	uint64_t message_max = config->message_bytes_max != 0 ? config->message_bytes_max
	                                                      : REPLICATION_MESSAGE_BYTES_DEFAULT;
	if (config->node_id == 0) {
		bad = "node_id is 0";
	} else if (config->secret_key == NULL) {
		bad = "no secret key";
	} else if (config->listen_url == NULL || !url_ok(config->listen_url)) {
		bad = "listen url empty or too long";
	} else if (config->on_message == NULL) {
		bad = "no on_message callback";
	} else if (message_max > REPLICATION_SESSION_PAYLOAD_BYTES_MAX) {
		bad = "message_bytes_max above 64 MiB";
	}
	if (bad != NULL) {
		return create_fail(NULL, CARELOG_EINVAL, err, err_len, "replication transport",
		                   bad);
	}
	struct replication_transport *t = calloc(1, sizeof(*t));
	struct transport_peer *peers = calloc(REPLICATION_SESSION_PEERS_MAX, sizeof(*peers));
	if (t == NULL || peers == NULL) {
		free(peers);
		free(t);
		return create_fail(NULL, CARELOG_ENOMEM, err, err_len, "out of memory", "");
	}
	t->node_id = config->node_id;
	t->message_bytes_max = message_max;
	t->on_message = config->on_message;
	t->ctx = config->ctx;
	t->peers = peers;
	atomic_init(&t->stop, false);
	pthread_mutex_init(&t->mu, NULL);
	struct replication_session_config sc = {
	    .self_id = config->node_id,
	    .secret_key = config->secret_key,
	    .peers_max = REPLICATION_SESSION_PEERS_MAX,
	    .payload_bytes_max = message_max,
	};
	memcpy(sc.cluster_id, config->cluster_id, sizeof(sc.cluster_id));
	int rc = replication_session_table_create(&sc, &t->table);
	if (rc != CARELOG_OK) {
		return create_fail(t, rc, err, err_len, "cannot create the session table", "");
	}
	int rv = nng_pull0_open(&t->pull);
	if (rv != 0) {
		return create_fail(t, nng_to_carelog(rv), err, err_len,
		                   "cannot open the peer socket", nng_strerror(rv));
	}
	t->pull_open = true;
	/* Larger frames never reach us: nng closes the connection that sent one. */
	rv = nng_socket_set_size(t->pull, NNG_OPT_RECVMAXSZ,
	                         replication_session_frame_bytes_max(t->table));
	if (rv == 0) {
		rv = nng_socket_set_ms(t->pull, NNG_OPT_RECVTIMEO, REPLICATION_RECV_POLL_MS);
	}
	if (rv != 0) {
		return create_fail(t, nng_to_carelog(rv), err, err_len,
		                   "cannot configure the peer socket", nng_strerror(rv));
	}
	rv = nng_listen(t->pull, config->listen_url, NULL, 0);
	if (rv != 0) {
		char detail[REPLICATION_URL_BYTES_MAX + 64];
		snprintf(detail, sizeof(detail), "%s: %s", config->listen_url, nng_strerror(rv));
		return create_fail(t, nng_to_carelog(rv), err, err_len, "cannot listen for peers",
		                   detail);
	}
	if (pthread_create(&t->thread, NULL, receive_thread, t) != 0) {
		return create_fail(t, CARELOG_ENOMEM, err, err_len,
		                   "cannot start the receive thread", "");
	}
	t->thread_running = true;
	cl_log_info("replication.listening", "url=%s frame_bytes_max=%zu", config->listen_url,
	            replication_session_frame_bytes_max(t->table));
	*out = t;
	return CARELOG_OK;
}
