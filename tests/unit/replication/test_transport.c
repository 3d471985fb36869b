/* Unit tests for replication/transport: real nng sockets on 127.0.0.1 inside one process. */
#include "carelog/errors.h"
#include "common/crypto.h"
#include "replication/transport.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

enum {
	NODE_A = 1,
	NODE_B = 2,
	NODE_C = 3,
	INBOX_MAX = 256,
	INBOX_COPY_BYTES = 64,
	DEADLINE_MS = 10000, /* bound on every wait for the network */
	POLL_MS = 10,
	PORT_TRIES_MAX = 20,
	MESSAGE_MAX = 256 * 1024,
	DOWN_SENDS = 500,
	/* A blocking send would wait for the peer (forever: no send timeout is set); a generous
	 * bound keeps a loaded, sanitized test machine from failing the test. */
	SEND_CALL_MS_MAX = 1000,
};

static const uint8_t CLUSTER[REPLICATION_SESSION_CLUSTER_ID_BYTES] = "cluster-one-----";

struct inbox_msg {
	uint64_t from;
	uint8_t channel;
	size_t len;
	uint8_t data[INBOX_COPY_BYTES];
};

struct inbox {
	pthread_mutex_t mu;
	size_t count;
	struct inbox_msg msgs[INBOX_MAX];
};

struct node {
	uint64_t id;
	uint8_t pk[CL_SIGN_PUBLIC_BYTES];
	uint8_t sk[CL_SIGN_SECRET_BYTES];
	char url[REPLICATION_URL_BYTES_MAX];
	struct inbox inbox;
	struct replication_transport *t;
};

static uint64_t clock_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void pause_ms(long ms)
{
	struct timespec ts = {.tv_sec = 0, .tv_nsec = ms * 1000000L};
	nanosleep(&ts, NULL);
}

static void on_message(void *ctx, uint64_t from, uint8_t channel, const uint8_t *payload,
                       size_t len)
{
	struct inbox *in = ctx;
	pthread_mutex_lock(&in->mu);
	if (in->count < INBOX_MAX) {
		struct inbox_msg *m = &in->msgs[in->count++];
		m->from = from;
		m->channel = channel;
		m->len = len;
		memcpy(m->data, payload, len < INBOX_COPY_BYTES ? len : INBOX_COPY_BYTES);
	}
	pthread_mutex_unlock(&in->mu);
}

/* Messages in `in` from `from` on `channel` whose text starts with `prefix`. */
static size_t inbox_count(struct inbox *in, uint64_t from, uint8_t channel, const char *prefix)
{
	size_t n = 0;
	size_t plen = strlen(prefix);
	pthread_mutex_lock(&in->mu);
	for (size_t i = 0; i < in->count; i++) {
		const struct inbox_msg *m = &in->msgs[i];
		if (m->from == from && m->channel == channel && m->len >= plen &&
		    memcmp(m->data, prefix, plen) == 0) {
			n++;
		}
	}
	pthread_mutex_unlock(&in->mu);
	return n;
}

static size_t inbox_total(struct inbox *in)
{
	pthread_mutex_lock(&in->mu);
	size_t n = in->count;
	pthread_mutex_unlock(&in->mu);
	return n;
}

static void node_init(struct node *n, uint64_t id)
{
	memset(n, 0, sizeof(*n));
	n->id = id;
	assert_int_equal(cl_sign_keypair(n->pk, n->sk), CARELOG_OK);
	pthread_mutex_init(&n->inbox.mu, NULL);
}

static int transport_start_at(struct node *n, const char *url)
{
	struct replication_transport_config c = {
	    .node_id = n->id,
	    .secret_key = n->sk,
	    .listen_url = url,
	    .message_bytes_max = MESSAGE_MAX,
	    .on_message = on_message,
	    .ctx = &n->inbox,
	};
	memcpy(c.cluster_id, CLUSTER, sizeof(c.cluster_id));
	char err[256];
	return replication_transport_create(&c, &n->t, err, sizeof(err));
}

/* Starts `n` on a random high port of 127.0.0.1, retrying ports in use. */
static void transport_start(struct node *n)
{
	int rc = CARELOG_EEXIST;
	for (int i = 0; i < PORT_TRIES_MAX && rc == CARELOG_EEXIST; i++) {
		unsigned port = 20000u + (unsigned)(cl_random_u64() % 40000u);
		snprintf(n->url, sizeof(n->url), "tcp://127.0.0.1:%u", port);
		rc = transport_start_at(n, n->url);
	}
	assert_int_equal(rc, CARELOG_OK);
}

static void node_stop(struct node *n)
{
	replication_transport_destroy(n->t);
	n->t = NULL;
	pthread_mutex_destroy(&n->inbox.mu);
}

/* `self` trusts `peer` (its id and key) and dials it at `url`. */
static void trust(struct node *self, const struct node *const *peers, size_t count)
{
	struct replication_peer list[4];
	assert_true(count <= 4);
	for (size_t i = 0; i < count; i++) {
		memset(&list[i], 0, sizeof(list[i]));
		list[i].id = peers[i]->id;
		memcpy(list[i].url, peers[i]->url, sizeof(list[i].url));
		memcpy(list[i].public_key, peers[i]->pk, sizeof(list[i].public_key));
	}
	assert_int_equal(replication_transport_set_peers(self->t, list, count), CARELOG_OK);
}

/* Sends `text` from `from` to `to` on `channel` every POLL_MS until `to` has it (sends before
 * the handshake completes are dropped by design). Fails past DEADLINE_MS. */
static void send_until_delivered(struct node *from, struct node *to, uint8_t channel,
                                 const char *text)
{
	uint64_t deadline = clock_ms() + DEADLINE_MS;
	while (inbox_count(&to->inbox, from->id, channel, text) == 0) {
		if (clock_ms() > deadline) {
			fail_msg("'%s' from %llu to %llu channel %u not delivered within %d ms",
			         text, (unsigned long long)from->id, (unsigned long long)to->id,
			         channel, DEADLINE_MS);
		}
		int rc = replication_transport_send(from->t, to->id, channel, (const uint8_t *)text,
		                                    strlen(text));
		assert_true(rc == CARELOG_OK || rc == CARELOG_EBUSY);
		pause_ms(POLL_MS);
	}
}

static int setup(void **state)
{
	(void)state;
	return cl_crypto_init() == CARELOG_OK ? 0 : -1;
}

static void test_messages_flow_both_ways_on_both_channels_after_handshake(void **state)
{
	(void)state;
	static struct node a, b;
	node_init(&a, NODE_A);
	node_init(&b, NODE_B);
	transport_start(&a);
	transport_start(&b);
	const struct node *pa[] = {&a}, *pb[] = {&b};
	trust(&a, pb, 1);
	trust(&b, pa, 1);
	send_until_delivered(&a, &b, REPLICATION_CHANNEL_CONTROL, "a->b control");
	send_until_delivered(&a, &b, REPLICATION_CHANNEL_BULK, "a->b bulk");
	send_until_delivered(&b, &a, REPLICATION_CHANNEL_CONTROL, "b->a control");
	send_until_delivered(&b, &a, REPLICATION_CHANNEL_BULK, "b->a bulk");
	/* Established now: a burst as large as the send buffer is queued whole and arrives in
	 * order, on each channel. */
	enum { BURST = REPLICATION_BULK_SENDBUF_MSGS };
	for (uint8_t ch = 0; ch < REPLICATION_SESSION_CHANNELS; ch++) {
		for (int i = 0; i < BURST; i++) {
			char text[32];
			snprintf(text, sizeof(text), "burst %03d", i);
			assert_int_equal(replication_transport_send(
			                     a.t, NODE_B, ch, (const uint8_t *)text, strlen(text)),
			                 CARELOG_OK);
		}
	}
	uint64_t deadline = clock_ms() + DEADLINE_MS;
	while (inbox_count(&b.inbox, NODE_A, 0, "burst") < BURST ||
	       inbox_count(&b.inbox, NODE_A, 1, "burst") < BURST) {
		assert_true(clock_ms() < deadline);
		pause_ms(POLL_MS);
	}
	pthread_mutex_lock(&b.inbox.mu);
	int next[REPLICATION_SESSION_CHANNELS] = {0};
	for (size_t i = 0; i < b.inbox.count; i++) {
		const struct inbox_msg *m = &b.inbox.msgs[i];
		char want[32];
		snprintf(want, sizeof(want), "burst %03d", next[m->channel]);
		if (m->len == strlen(want) && memcmp(m->data, want, strlen(want)) == 0) {
			next[m->channel]++;
		}
	}
	pthread_mutex_unlock(&b.inbox.mu);
	assert_int_equal(next[0], BURST);
	assert_int_equal(next[1], BURST);
	uint8_t big[MESSAGE_MAX + 1] = {0};
	assert_int_equal(replication_transport_send(a.t, NODE_B, 1, big, sizeof(big)),
	                 CARELOG_ETOOBIG);
	assert_int_equal(replication_transport_send(a.t, NODE_C, 1, big, 1), CARELOG_ENOTFOUND);
	assert_int_equal(replication_transport_send(a.t, NODE_B, 2, big, 1), CARELOG_EINVAL);
	struct replication_transport_stats st;
	replication_transport_get_stats(b.t, &st);
	assert_true(st.handshakes_done >= 1);
	assert_true(st.received >= 2 * BURST + 2);
	assert_int_equal(st.dropped_auth, 0);
	assert_int_equal(st.dropped_unknown_peer, 0);
	assert_int_equal(st.dropped_replay, 0);
	node_stop(&a);
	node_stop(&b);
}

static void test_impostor_and_unknown_node_get_nothing_delivered(void **state)
{
	(void)state;
	static struct node a, b, impostor, c;
	node_init(&a, NODE_A);
	node_init(&b, NODE_B);
	node_init(&impostor, NODE_A); /* claims A's id, has its own key */
	node_init(&c, NODE_C);        /* a node B does not know */
	transport_start(&a);
	transport_start(&b);
	transport_start(&impostor);
	transport_start(&c);
	const struct node *pa[] = {&a}, *pb[] = {&b};
	trust(&b, pa, 1);
	trust(&a, pb, 1);
	trust(&impostor, pb, 1);
	trust(&c, pb, 1);
	/* Keep both knocking until B has counted several of each, bounded by the deadline. */
	uint64_t deadline = clock_ms() + DEADLINE_MS;
	struct replication_transport_stats st;
	for (;;) {
		replication_transport_get_stats(b.t, &st);
		if (st.dropped_auth >= 3 && st.dropped_unknown_peer >= 3) {
			break;
		}
		assert_true(clock_ms() < deadline);
		int rc =
		    replication_transport_send(impostor.t, NODE_B, 0, (const uint8_t *)"forged", 6);
		assert_true(rc == CARELOG_OK || rc == CARELOG_EBUSY);
		rc = replication_transport_send(c.t, NODE_B, 0, (const uint8_t *)"stranger", 8);
		assert_true(rc == CARELOG_OK || rc == CARELOG_EBUSY);
		pause_ms(POLL_MS);
	}
	assert_int_equal(st.dropped[REPLICATION_DROP_BAD_SIGNATURE], st.dropped_auth);
	assert_int_equal(inbox_total(&b.inbox), 0);
	assert_int_equal(st.received, 0);
	struct replication_transport_stats si;
	replication_transport_get_stats(impostor.t, &si);
	assert_int_equal(si.handshakes_done, 0);
	/* The real A still gets through. */
	send_until_delivered(&a, &b, REPLICATION_CHANNEL_CONTROL, "real a");
	assert_int_equal(inbox_count(&b.inbox, NODE_A, 0, "forged"), 0);
	assert_int_equal(inbox_count(&b.inbox, NODE_C, 0, "stranger"), 0);
	node_stop(&c);
	node_stop(&impostor);
	node_stop(&b);
	node_stop(&a);
}

static void test_sends_to_a_down_peer_never_block_and_a_restarted_peer_is_reached(void **state)
{
	(void)state;
	static struct node a, b;
	node_init(&a, NODE_A);
	node_init(&b, NODE_B);
	transport_start(&a);
	transport_start(&b);
	const struct node *pa[] = {&a}, *pb[] = {&b};
	trust(&a, pb, 1);
	trust(&b, pa, 1);
	/* C is a peer that never came up (nothing listens on port 1). */
	struct replication_peer peers[2] = {{.id = NODE_B}, {.id = NODE_C}};
	memcpy(peers[0].url, b.url, sizeof(peers[0].url));
	memcpy(peers[0].public_key, b.pk, sizeof(peers[0].public_key));
	strcpy(peers[1].url, "tcp://127.0.0.1:1");
	memcpy(peers[1].public_key, b.pk, sizeof(peers[1].public_key)); /* any key */
	assert_int_equal(replication_transport_set_peers(a.t, peers, 2), CARELOG_OK);
	send_until_delivered(&a, &b, REPLICATION_CHANNEL_BULK, "before");
	uint64_t slowest_c = 0;
	for (int i = 0; i < DOWN_SENDS; i++) {
		uint64_t t0 = clock_ms();
		assert_int_equal(replication_transport_send(a.t, NODE_C,
		                                            REPLICATION_CHANNEL_CONTROL,
		                                            (const uint8_t *)"x", 1),
		                 CARELOG_EBUSY); /* no session: the INIT waits in the buffer */
		uint64_t took = clock_ms() - t0;
		slowest_c = took > slowest_c ? took : slowest_c;
	}
	assert_true(slowest_c < SEND_CALL_MS_MAX);
	char url_b[REPLICATION_URL_BYTES_MAX];
	memcpy(url_b, b.url, sizeof(url_b));
	node_stop(&b); /* B goes down; A still holds its session */

	static uint8_t payload[64 * 1024];
	uint64_t slowest = 0;
	uint64_t start = clock_ms();
	for (int i = 0; i < DOWN_SENDS; i++) {
		uint64_t t0 = clock_ms();
		int rc = replication_transport_send(a.t, NODE_B, REPLICATION_CHANNEL_BULK, payload,
		                                    sizeof(payload));
		uint64_t took = clock_ms() - t0;
		slowest = took > slowest ? took : slowest;
		assert_true(rc == CARELOG_OK || rc == CARELOG_EBUSY);
	}
	struct replication_transport_stats st;
	replication_transport_get_stats(a.t, &st);
	fprintf(stderr,
	        "%d sends of 64 KiB to a down peer: %llu ms, slowest call %llu ms, "
	        "%llu dropped (buffer full)\n",
	        DOWN_SENDS, (unsigned long long)(clock_ms() - start), (unsigned long long)slowest,
	        (unsigned long long)st.dropped_send_full);
	assert_true(slowest < SEND_CALL_MS_MAX);
	assert_true(st.dropped_send_full > 0);

	/* B comes back (same key, same address) without sessions: A's DATA gets a RESET and A
	 * handshakes again. */
	uint8_t pk_b[CL_SIGN_PUBLIC_BYTES], sk_b[CL_SIGN_SECRET_BYTES];
	memcpy(pk_b, b.pk, sizeof(pk_b));
	memcpy(sk_b, b.sk, sizeof(sk_b));
	node_init(&b, NODE_B);
	memcpy(b.pk, pk_b, sizeof(pk_b));
	memcpy(b.sk, sk_b, sizeof(sk_b));
	memcpy(b.url, url_b, sizeof(b.url));
	int rc = CARELOG_EEXIST;
	uint64_t deadline = clock_ms() + DEADLINE_MS;
	while ((rc = transport_start_at(&b, url_b)) == CARELOG_EEXIST && clock_ms() < deadline) {
		pause_ms(POLL_MS); /* the old listener's port may linger briefly */
	}
	assert_int_equal(rc, CARELOG_OK);
	trust(&b, pa, 1);
	send_until_delivered(&a, &b, REPLICATION_CHANNEL_CONTROL, "after restart");
	replication_transport_get_stats(b.t, &st);
	assert_true(st.resets_sent >= 1);
	replication_transport_get_stats(a.t, &st);
	assert_true(st.handshakes_done >= 2);
	node_stop(&a);
	node_stop(&b);
}

static void test_create_rejects_bad_config_and_a_taken_address(void **state)
{
	(void)state;
	static struct node a, b;
	node_init(&a, NODE_A);
	node_init(&b, NODE_B);
	transport_start(&a);
	assert_int_equal(transport_start_at(&b, a.url), CARELOG_EEXIST);
	assert_null(b.t);
	struct replication_transport_config c = {.node_id = 0};
	struct replication_transport *t = NULL;
	char err[128];
	assert_int_equal(replication_transport_create(&c, &t, err, sizeof(err)), CARELOG_EINVAL);
	assert_null(t);
	assert_non_null(strstr(err, "node_id"));
	struct replication_peer bad = {.id = NODE_A}; /* own id */
	strcpy(bad.url, "tcp://127.0.0.1:1");
	assert_int_equal(replication_transport_set_peers(a.t, &bad, 1), CARELOG_EINVAL);
	bad.id = NODE_B;
	bad.url[0] = '\0';
	assert_int_equal(replication_transport_set_peers(a.t, &bad, 1), CARELOG_EINVAL);
	replication_transport_destroy(NULL);
	node_stop(&a);
	pthread_mutex_destroy(&b.inbox.mu);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_messages_flow_both_ways_on_both_channels_after_handshake),
	    cmocka_unit_test(test_impostor_and_unknown_node_get_nothing_delivered),
	    cmocka_unit_test(test_sends_to_a_down_peer_never_block_and_a_restarted_peer_is_reached),
	    cmocka_unit_test(test_create_rejects_bad_config_and_a_taken_address),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
