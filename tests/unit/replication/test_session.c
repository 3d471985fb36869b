/* Unit tests for replication/session: handshake, sealing, replay, tampering, resets, fuzzing. */
#include "carelog/errors.h"
#include "common/bytes.h"
#include "common/crypto.h"
#include "replication/session.h"

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
	PAYLOAD_MAX = 4096,
	FRAME_MAX = PAYLOAD_MAX + REPLICATION_SESSION_DATA_OVERHEAD_BYTES,
	MUTATION_ROUNDS = 20000,
	POOL_DATA_FRAMES = 8,
};

static const uint8_t CLUSTER[REPLICATION_SESSION_CLUSTER_ID_BYTES] = "cluster-one-----";
static const uint8_t OTHER_CLUSTER[REPLICATION_SESSION_CLUSTER_ID_BYTES] = "cluster-two-----";

struct node_key {
	uint8_t pk[CL_SIGN_PUBLIC_BYTES];
	uint8_t sk[CL_SIGN_SECRET_BYTES];
};

static struct node_key key_a, key_b, key_c, key_impostor;

static int setup_keys(void **state)
{
	(void)state;
	if (cl_crypto_init() != CARELOG_OK || cl_sign_keypair(key_a.pk, key_a.sk) != CARELOG_OK ||
	    cl_sign_keypair(key_b.pk, key_b.sk) != CARELOG_OK ||
	    cl_sign_keypair(key_c.pk, key_c.sk) != CARELOG_OK ||
	    cl_sign_keypair(key_impostor.pk, key_impostor.sk) != CARELOG_OK) {
		return -1;
	}
	return 0;
}

/* A table for `self` (signing with `sk`) trusting one peer. */
static struct replication_session_table *table_new(uint64_t self, const struct node_key *k,
                                                   const uint8_t *cluster, uint64_t peer,
                                                   const uint8_t *peer_pk)
{
	struct replication_session_config c = {
	    .self_id = self,
	    .secret_key = k->sk,
	    .peers_max = 4,
	    .payload_bytes_max = PAYLOAD_MAX,
	};
	memcpy(c.cluster_id, cluster, sizeof(c.cluster_id));
	struct replication_session_table *t = NULL;
	assert_int_equal(replication_session_table_create(&c, &t), CARELOG_OK);
	struct replication_session_peer p = {.id = peer};
	memcpy(p.public_key, peer_pk, sizeof(p.public_key));
	assert_int_equal(replication_session_set_peers(t, &p, 1), CARELOG_OK);
	return t;
}

struct frame {
	size_t len;
	uint8_t bytes[FRAME_MAX];
};

static uint64_t drops(const struct replication_session_table *t, enum replication_drop reason)
{
	struct replication_session_stats st;
	replication_session_get_stats(t, &st);
	return st.dropped[reason];
}

/* Opens a copy of `f` (open decrypts in place) at `t`. */
static void open_copy(struct replication_session_table *t, const struct frame *f, uint64_t now,
                      struct replication_session_result *res, struct frame *scratch)
{
	*scratch = *f;
	replication_session_open(t, scratch->bytes, scratch->len, now, res);
}

/* from's sending session to `to` via INIT and RESP. */
static void handshake(struct replication_session_table *from, uint64_t from_id,
                      struct replication_session_table *to, uint64_t to_id, uint64_t now)
{
	struct frame init, scratch;
	struct replication_session_result res;
	assert_int_equal(replication_session_initiate(from, to_id, now, init.bytes, &init.len),
	                 CARELOG_OK);
	assert_int_equal(init.len, REPLICATION_SESSION_INIT_BYTES);
	open_copy(to, &init, now, &res, &scratch);
	assert_int_equal(res.outcome, REPLICATION_SESSION_REPLY);
	assert_int_equal(res.peer, from_id);
	assert_int_equal(res.reply_len, REPLICATION_SESSION_RESP_BYTES);
	replication_session_open(from, res.reply, res.reply_len, now, &res);
	assert_int_equal(res.outcome, REPLICATION_SESSION_ESTABLISHED);
	assert_int_equal(res.peer, to_id);
	assert_true(replication_session_is_established(from, to_id));
}

static void payload_fill(uint8_t *p, size_t len, uint32_t tag)
{
	for (size_t i = 0; i < len; i++) {
		p[i] = (uint8_t)(tag * 31u + i * 7u);
	}
}

static void seal(struct replication_session_table *t, uint64_t to, uint8_t channel,
                 const uint8_t *payload, size_t len, struct frame *out)
{
	assert_int_equal(replication_session_seal(t, to, channel, payload, len, out->bytes,
	                                          sizeof(out->bytes), &out->len),
	                 CARELOG_OK);
	assert_int_equal(out->len, len + REPLICATION_SESSION_DATA_OVERHEAD_BYTES);
}

/* Seals a payload at `from`, opens it at `to`, checks it arrives intact. */
static void round_trip(struct replication_session_table *from, uint64_t from_id,
                       struct replication_session_table *to, uint64_t to_id, uint8_t channel,
                       size_t len, uint32_t tag)
{
	uint8_t payload[PAYLOAD_MAX];
	struct frame f, scratch;
	struct replication_session_result res;
	payload_fill(payload, len, tag);
	seal(from, to_id, channel, payload, len, &f);
	open_copy(to, &f, 0, &res, &scratch);
	assert_int_equal(res.outcome, REPLICATION_SESSION_PAYLOAD);
	assert_int_equal(res.peer, from_id);
	assert_int_equal(res.channel, channel);
	assert_int_equal(res.payload_len, len);
	assert_memory_equal(res.payload, payload, len);
}

static void test_crypto_aead_rejects_tampering_and_dh_rejects_low_order_key(void **state)
{
	(void)state;
	uint8_t key[CL_AEAD_KEY_BYTES] = {1}, nonce[CL_AEAD_NONCE_BYTES] = {2};
	uint8_t msg[40], sealed[40 + CL_AEAD_TAG_BYTES], opened[40];
	payload_fill(msg, sizeof(msg), 9);
	assert_int_equal(
	    cl_aead_seal(sealed, msg, sizeof(msg), (const uint8_t *)"ad", 2, nonce, key),
	    CARELOG_OK);
	assert_int_equal(
	    cl_aead_open(opened, sealed, sizeof(sealed), (const uint8_t *)"ad", 2, nonce, key),
	    CARELOG_OK);
	assert_memory_equal(opened, msg, sizeof(msg));
	assert_int_equal(
	    cl_aead_open(opened, sealed, sizeof(sealed), (const uint8_t *)"aD", 2, nonce, key),
	    CARELOG_ECORRUPT);
	sealed[3] ^= 1;
	assert_int_equal(
	    cl_aead_open(opened, sealed, sizeof(sealed), (const uint8_t *)"ad", 2, nonce, key),
	    CARELOG_ECORRUPT);
	assert_int_equal(cl_aead_open(opened, sealed, CL_AEAD_TAG_BYTES - 1, NULL, 0, nonce, key),
	                 CARELOG_ECORRUPT);

	uint8_t pk[CL_DH_PUBLIC_BYTES], sk[CL_DH_SECRET_BYTES], zero[CL_DH_PUBLIC_BYTES] = {0};
	uint8_t pk2[CL_DH_PUBLIC_BYTES], sk2[CL_DH_SECRET_BYTES];
	uint8_t s1[CL_DH_SHARED_BYTES], s2[CL_DH_SHARED_BYTES];
	assert_int_equal(cl_dh_keypair(pk, sk), CARELOG_OK);
	assert_int_equal(cl_dh_keypair(pk2, sk2), CARELOG_OK);
	assert_int_equal(cl_dh_shared(s1, sk, pk2), CARELOG_OK);
	assert_int_equal(cl_dh_shared(s2, sk2, pk), CARELOG_OK);
	assert_memory_equal(s1, s2, sizeof(s1));
	assert_int_equal(cl_dh_shared(s1, sk, zero), CARELOG_ECRYPTO);

	/* BLAKE2b-256 keyed: the key changes the output. */
	uint8_t h1[CL_BLAKE2B_256_BYTES], h2[CL_BLAKE2B_256_BYTES];
	cl_blake2b_256(h1, s2, sizeof(s2), msg, sizeof(msg));
	cl_blake2b_256(h2, NULL, 0, msg, sizeof(msg));
	assert_memory_not_equal(h1, h2, sizeof(h1));
}

static void test_handshake_establishes_both_ends_and_data_flows_on_both_channels(void **state)
{
	(void)state;
	struct replication_session_table *a = table_new(NODE_A, &key_a, CLUSTER, NODE_B, key_b.pk);
	struct replication_session_table *b = table_new(NODE_B, &key_b, CLUSTER, NODE_A, key_a.pk);
	uint8_t p[8] = {0};
	struct frame f;
	assert_int_equal(
	    replication_session_seal(a, NODE_B, 0, p, sizeof(p), f.bytes, sizeof(f.bytes), &f.len),
	    CARELOG_EBUSY);
	handshake(a, NODE_A, b, NODE_B, 0);
	handshake(b, NODE_B, a, NODE_A, 0);
	for (uint8_t ch = 0; ch < REPLICATION_SESSION_CHANNELS; ch++) {
		for (uint32_t i = 0; i < 5; i++) {
			round_trip(a, NODE_A, b, NODE_B, ch, 100 * i, i);
			round_trip(b, NODE_B, a, NODE_A, ch, 3 * i + 1, i + 50);
		}
	}
	round_trip(a, NODE_A, b, NODE_B, REPLICATION_CHANNEL_BULK, PAYLOAD_MAX, 77);
	uint8_t big[PAYLOAD_MAX + 1] = {0};
	uint8_t out[PAYLOAD_MAX + 1 + REPLICATION_SESSION_DATA_OVERHEAD_BYTES];
	size_t out_len = 0;
	assert_int_equal(
	    replication_session_seal(a, NODE_B, 1, big, sizeof(big), out, sizeof(out), &out_len),
	    CARELOG_ETOOBIG);
	assert_int_equal(replication_session_seal(a, NODE_B, 2, big, 1, out, sizeof(out), &out_len),
	                 CARELOG_EINVAL);
	assert_int_equal(replication_session_seal(a, NODE_C, 0, big, 1, out, sizeof(out), &out_len),
	                 CARELOG_ENOTFOUND);
	struct replication_session_stats st;
	replication_session_get_stats(b, &st);
	assert_int_equal(st.payloads_opened, 11);
	assert_int_equal(st.handshakes_done, 1);
	assert_int_equal(st.inits_answered, 1);
	for (int r = 0; r < REPLICATION_DROP_COUNT_; r++) {
		assert_int_equal(st.dropped[r], 0);
	}
	replication_session_table_destroy(a);
	replication_session_table_destroy(b);
}

static void test_replayed_data_is_dropped_and_counters_are_per_channel(void **state)
{
	(void)state;
	struct replication_session_table *a = table_new(NODE_A, &key_a, CLUSTER, NODE_B, key_b.pk);
	struct replication_session_table *b = table_new(NODE_B, &key_b, CLUSTER, NODE_A, key_a.pk);
	handshake(a, NODE_A, b, NODE_B, 0);
	uint8_t p[16];
	payload_fill(p, sizeof(p), 1);
	struct frame c0[3], c1, scratch;
	struct replication_session_result res;
	for (int i = 0; i < 3; i++) {
		seal(a, NODE_B, 0, p, sizeof(p), &c0[i]);
	}
	seal(a, NODE_B, 1, p, sizeof(p), &c1);
	open_copy(b, &c0[2], 0, &res, &scratch); /* counter 3 first: 1 and 2 are then too old */
	assert_int_equal(res.outcome, REPLICATION_SESSION_PAYLOAD);
	open_copy(b, &c0[2], 0, &res, &scratch);
	assert_int_equal(res.outcome, REPLICATION_SESSION_DROPPED);
	assert_int_equal(res.reason, REPLICATION_DROP_REPLAY);
	open_copy(b, &c0[0], 0, &res, &scratch);
	assert_int_equal(res.reason, REPLICATION_DROP_REPLAY);
	assert_int_equal(drops(b, REPLICATION_DROP_REPLAY), 2);
	open_copy(b, &c1, 0, &res, &scratch); /* counter 1 on the bulk channel is fresh */
	assert_int_equal(res.outcome, REPLICATION_SESSION_PAYLOAD);
	assert_int_equal(res.channel, 1);
	replication_session_table_destroy(a);
	replication_session_table_destroy(b);
}

static void test_bit_flipped_data_is_dropped_before_decoding(void **state)
{
	(void)state;
	struct replication_session_table *a = table_new(NODE_A, &key_a, CLUSTER, NODE_B, key_b.pk);
	struct replication_session_table *b = table_new(NODE_B, &key_b, CLUSTER, NODE_A, key_a.pk);
	handshake(a, NODE_A, b, NODE_B, 0);
	uint8_t p[64];
	payload_fill(p, sizeof(p), 3);
	struct frame f, scratch;
	struct replication_session_result res;
	seal(a, NODE_B, 1, p, sizeof(p), &f);
	uint64_t total_before = 0, total_after = 0;
	struct replication_session_stats st;
	replication_session_get_stats(b, &st);
	for (int r = 0; r < REPLICATION_DROP_COUNT_; r++) {
		total_before += st.dropped[r];
	}
	for (size_t i = 0; i < f.len; i++) {
		scratch = f;
		scratch.bytes[i] ^= (uint8_t)(1u << (i % 8));
		/* now_ms keeps every RESET inside one rate-limit window: flipped session ids */
		replication_session_open(b, scratch.bytes, scratch.len, 1, &res);
		assert_int_not_equal(res.outcome, REPLICATION_SESSION_PAYLOAD);
		if (i >= REPLICATION_SESSION_DATA_AD_BYTES) {
			assert_int_equal(res.reason, REPLICATION_DROP_BAD_MAC);
		}
	}
	replication_session_get_stats(b, &st);
	for (int r = 0; r < REPLICATION_DROP_COUNT_; r++) {
		total_after += st.dropped[r];
	}
	assert_int_equal(total_after - total_before, f.len);
	assert_true(st.dropped[REPLICATION_DROP_BAD_MAC] >= f.len - 51);
	assert_int_equal(st.payloads_opened, 0);
	/* The session survives the noise: the untouched frame opens. */
	open_copy(b, &f, 1, &res, &scratch);
	assert_int_equal(res.outcome, REPLICATION_SESSION_PAYLOAD);
	assert_memory_equal(res.payload, p, sizeof(p));
	replication_session_table_destroy(a);
	replication_session_table_destroy(b);
}

static void test_unknown_node_and_impostor_key_get_no_session(void **state)
{
	(void)state;
	struct replication_session_table *b = table_new(NODE_B, &key_b, CLUSTER, NODE_A, key_a.pk);
	struct frame init, scratch;
	struct replication_session_result res;
	/* Node C has B's key but B does not know C. */
	struct replication_session_table *c = table_new(NODE_C, &key_c, CLUSTER, NODE_B, key_b.pk);
	assert_int_equal(replication_session_initiate(c, NODE_B, 0, init.bytes, &init.len),
	                 CARELOG_OK);
	open_copy(b, &init, 0, &res, &scratch);
	assert_int_equal(res.outcome, REPLICATION_SESSION_DROPPED);
	assert_int_equal(res.reason, REPLICATION_DROP_UNKNOWN_PEER);
	/* An impostor claims A's id with a key of its own. */
	struct replication_session_table *imp =
	    table_new(NODE_A, &key_impostor, CLUSTER, NODE_B, key_b.pk);
	assert_int_equal(replication_session_initiate(imp, NODE_B, 0, init.bytes, &init.len),
	                 CARELOG_OK);
	open_copy(b, &init, 0, &res, &scratch);
	assert_int_equal(res.outcome, REPLICATION_SESSION_DROPPED);
	assert_int_equal(res.reason, REPLICATION_DROP_BAD_SIGNATURE);
	/* Its DATA, sealed with any key, finds no session. */
	uint8_t p[4] = {1, 2, 3, 4};
	struct frame data;
	data.len = REPLICATION_SESSION_DATA_OVERHEAD_BYTES + sizeof(p);
	memcpy(data.bytes, init.bytes, REPLICATION_SESSION_HEADER_BYTES);
	data.bytes[1] = REPLICATION_FRAME_DATA;
	cl_put_u64be(data.bytes + REPLICATION_SESSION_HEADER_BYTES, 1);
	memset(data.bytes + REPLICATION_SESSION_DATA_AD_BYTES, 0xAB, data.len - 51);
	open_copy(b, &data, 0, &res, &scratch);
	assert_int_not_equal(res.outcome, REPLICATION_SESSION_PAYLOAD);
	assert_int_equal(res.reason, REPLICATION_DROP_NO_SESSION);
	struct replication_session_stats st;
	replication_session_get_stats(b, &st);
	assert_int_equal(st.inits_answered, 0);
	assert_int_equal(st.payloads_opened, 0);

	/* The impostor answering A's INIT in B's name: A stays without a session. */
	struct replication_session_table *a = table_new(NODE_A, &key_a, CLUSTER, NODE_B, key_b.pk);
	struct replication_session_table *imp_b =
	    table_new(NODE_B, &key_impostor, CLUSTER, NODE_A, key_a.pk);
	assert_int_equal(replication_session_initiate(a, NODE_B, 0, init.bytes, &init.len),
	                 CARELOG_OK);
	open_copy(imp_b, &init, 0, &res, &scratch); /* it trusts A, so it answers */
	assert_int_equal(res.outcome, REPLICATION_SESSION_REPLY);
	replication_session_open(a, res.reply, res.reply_len, 0, &res);
	assert_int_equal(res.outcome, REPLICATION_SESSION_DROPPED);
	assert_int_equal(res.reason, REPLICATION_DROP_BAD_SIGNATURE);
	assert_false(replication_session_is_established(a, NODE_B));
	replication_session_table_destroy(a);
	replication_session_table_destroy(imp_b);
	replication_session_table_destroy(imp);
	replication_session_table_destroy(c);
	replication_session_table_destroy(b);
}

static void test_wrong_cluster_wrong_version_and_not_for_me_are_dropped(void **state)
{
	(void)state;
	struct replication_session_table *b = table_new(NODE_B, &key_b, CLUSTER, NODE_A, key_a.pk);
	struct replication_session_table *a2 =
	    table_new(NODE_A, &key_a, OTHER_CLUSTER, NODE_B, key_b.pk);
	struct replication_session_table *a_to_c =
	    table_new(NODE_A, &key_a, CLUSTER, NODE_C, key_c.pk);
	struct frame init, scratch;
	struct replication_session_result res;
	assert_int_equal(replication_session_initiate(a2, NODE_B, 0, init.bytes, &init.len),
	                 CARELOG_OK);
	open_copy(b, &init, 0, &res, &scratch);
	assert_int_equal(res.reason, REPLICATION_DROP_CLUSTER);
	init.bytes[0] = 2;
	open_copy(b, &init, 0, &res, &scratch);
	assert_int_equal(res.reason, REPLICATION_DROP_VERSION);
	assert_int_equal(replication_session_initiate(a_to_c, NODE_C, 0, init.bytes, &init.len),
	                 CARELOG_OK);
	open_copy(b, &init, 0, &res, &scratch);
	assert_int_equal(res.reason, REPLICATION_DROP_NOT_FOR_ME);
	assert_int_equal(drops(b, REPLICATION_DROP_CLUSTER), 1);
	assert_int_equal(drops(b, REPLICATION_DROP_VERSION), 1);
	assert_int_equal(drops(b, REPLICATION_DROP_NOT_FOR_ME), 1);
	replication_session_table_destroy(a_to_c);
	replication_session_table_destroy(a2);
	replication_session_table_destroy(b);
}

static void test_low_order_ephemeral_key_is_refused(void **state)
{
	(void)state;
	struct replication_session_table *a = table_new(NODE_A, &key_a, CLUSTER, NODE_B, key_b.pk);
	struct replication_session_table *b = table_new(NODE_B, &key_b, CLUSTER, NODE_A, key_a.pk);
	struct frame init, scratch;
	struct replication_session_result res;
	assert_int_equal(replication_session_initiate(a, NODE_B, 0, init.bytes, &init.len),
	                 CARELOG_OK);
	/* A correctly signed INIT whose ephemeral key is the identity point. */
	memset(init.bytes + 43, 0, CL_DH_PUBLIC_BYTES);
	uint8_t msg[4 + 75];
	memcpy(msg, "init", 4);
	memcpy(msg + 4, init.bytes, 75);
	assert_int_equal(
	    cl_sign(init.bytes + 75, CL_SIGN_DOMAIN_HANDSHAKE, msg, sizeof(msg), key_a.sk),
	    CARELOG_OK);
	open_copy(b, &init, 0, &res, &scratch);
	assert_int_equal(res.outcome, REPLICATION_SESSION_DROPPED);
	assert_int_equal(res.reason, REPLICATION_DROP_BAD_KEY);
	replication_session_table_destroy(a);
	replication_session_table_destroy(b);
}

static void test_replayed_init_does_not_break_the_live_session(void **state)
{
	(void)state;
	struct replication_session_table *a = table_new(NODE_A, &key_a, CLUSTER, NODE_B, key_b.pk);
	struct replication_session_table *b = table_new(NODE_B, &key_b, CLUSTER, NODE_A, key_a.pk);
	struct frame old_init, init, scratch;
	struct replication_session_result res;
	/* An earlier handshake, recorded by an attacker. */
	assert_int_equal(replication_session_initiate(a, NODE_B, 0, old_init.bytes, &old_init.len),
	                 CARELOG_OK);
	/* The live one. */
	assert_int_equal(replication_session_initiate(a, NODE_B, 1000, init.bytes, &init.len),
	                 CARELOG_OK);
	open_copy(b, &init, 1000, &res, &scratch);
	assert_int_equal(res.outcome, REPLICATION_SESSION_REPLY);
	replication_session_open(a, res.reply, res.reply_len, 1000, &res);
	assert_int_equal(res.outcome, REPLICATION_SESSION_ESTABLISHED);
	round_trip(a, NODE_A, b, NODE_B, 0, 10, 1);
	/* The live INIT again: a replay, no answer. */
	open_copy(b, &init, 1001, &res, &scratch);
	assert_int_equal(res.outcome, REPLICATION_SESSION_DROPPED);
	assert_int_equal(res.reason, REPLICATION_DROP_REPLAY);
	/* The old INIT: answered (B cannot tell), but only as a pending session. */
	open_copy(b, &old_init, 1002, &res, &scratch);
	assert_int_equal(res.outcome, REPLICATION_SESSION_REPLY);
	struct frame resp;
	resp.len = res.reply_len;
	memcpy(resp.bytes, res.reply, res.reply_len);
	round_trip(a, NODE_A, b, NODE_B, 0, 10, 2);
	round_trip(a, NODE_A, b, NODE_B, 1, 10, 3);
	/* Its RESP reaching A matches nothing A waits for. */
	open_copy(a, &resp, 1003, &res, &scratch);
	assert_int_equal(res.outcome, REPLICATION_SESSION_DROPPED);
	assert_int_equal(res.reason, REPLICATION_DROP_STALE);
	assert_true(replication_session_is_established(a, NODE_B));
	round_trip(a, NODE_A, b, NODE_B, 0, 10, 4);
	replication_session_table_destroy(a);
	replication_session_table_destroy(b);
}

static void test_restarted_receiver_answers_reset_and_sender_rehandshakes(void **state)
{
	(void)state;
	struct replication_session_table *a = table_new(NODE_A, &key_a, CLUSTER, NODE_B, key_b.pk);
	struct replication_session_table *b = table_new(NODE_B, &key_b, CLUSTER, NODE_A, key_a.pk);
	handshake(a, NODE_A, b, NODE_B, 0);
	round_trip(a, NODE_A, b, NODE_B, 0, 10, 1);
	replication_session_table_destroy(b); /* B restarts with no sessions */
	b = table_new(NODE_B, &key_b, CLUSTER, NODE_A, key_a.pk);
	uint8_t p[10];
	payload_fill(p, sizeof(p), 5);
	struct frame f, reset, scratch;
	struct replication_session_result res;
	seal(a, NODE_B, 0, p, sizeof(p), &f);
	open_copy(b, &f, 5000, &res, &scratch);
	assert_int_equal(res.outcome, REPLICATION_SESSION_REPLY);
	assert_int_equal(res.reason, REPLICATION_DROP_NO_SESSION);
	assert_int_equal(res.reply_len, REPLICATION_SESSION_RESET_BYTES);
	reset.len = res.reply_len;
	memcpy(reset.bytes, res.reply, res.reply_len);
	/* Rate limit: within the interval no second RESET, after it one more. */
	open_copy(b, &f, 5000 + REPLICATION_SESSION_RESET_INTERVAL_MS - 1, &res, &scratch);
	assert_int_equal(res.outcome, REPLICATION_SESSION_DROPPED);
	assert_int_equal(res.reason, REPLICATION_DROP_NO_SESSION);
	open_copy(b, &f, 5000 + REPLICATION_SESSION_RESET_INTERVAL_MS, &res, &scratch);
	assert_int_equal(res.outcome, REPLICATION_SESSION_REPLY);
	assert_int_equal(drops(b, REPLICATION_DROP_NO_SESSION), 3);
	/* A tampered RESET is refused; the real one drops A's session. */
	scratch = reset;
	scratch.bytes[50] ^= 1; /* the nonce */
	replication_session_open(a, scratch.bytes, scratch.len, 5000, &res);
	assert_int_equal(res.reason, REPLICATION_DROP_BAD_SIGNATURE);
	assert_true(replication_session_is_established(a, NODE_B));
	open_copy(a, &reset, 5000, &res, &scratch);
	assert_int_equal(res.outcome, REPLICATION_SESSION_RESET);
	assert_int_equal(res.peer, NODE_B);
	assert_false(replication_session_is_established(a, NODE_B));
	/* Replayed, it matches nothing any more. */
	open_copy(a, &reset, 5000, &res, &scratch);
	assert_int_equal(res.reason, REPLICATION_DROP_STALE);
	handshake(a, NODE_A, b, NODE_B, 5000);
	round_trip(a, NODE_A, b, NODE_B, 0, 10, 2);
	round_trip(a, NODE_A, b, NODE_B, 1, 10, 3);
	replication_session_table_destroy(a);
	replication_session_table_destroy(b);
}

static void test_initiate_is_rate_limited_and_retried(void **state)
{
	(void)state;
	struct replication_session_table *a = table_new(NODE_A, &key_a, CLUSTER, NODE_B, key_b.pk);
	struct replication_session_table *b = table_new(NODE_B, &key_b, CLUSTER, NODE_A, key_a.pk);
	struct frame lost, init, scratch;
	struct replication_session_result res;
	assert_int_equal(replication_session_initiate(a, NODE_B, 100, lost.bytes, &lost.len),
	                 CARELOG_OK);
	assert_int_equal(replication_session_initiate(a, NODE_B, 599, init.bytes, &init.len),
	                 CARELOG_EBUSY);
	assert_int_equal(replication_session_initiate(a, NODE_B, 600, init.bytes, &init.len),
	                 CARELOG_OK);
	/* The first INIT arrives late: its RESP is stale at A; the retry completes. */
	open_copy(b, &lost, 600, &res, &scratch);
	assert_int_equal(res.outcome, REPLICATION_SESSION_REPLY);
	replication_session_open(a, res.reply, res.reply_len, 600, &res);
	assert_int_equal(res.reason, REPLICATION_DROP_STALE);
	open_copy(b, &init, 600, &res, &scratch);
	replication_session_open(a, res.reply, res.reply_len, 600, &res);
	assert_int_equal(res.outcome, REPLICATION_SESSION_ESTABLISHED);
	round_trip(a, NODE_A, b, NODE_B, 0, 1, 1);
	replication_session_table_destroy(a);
	replication_session_table_destroy(b);
}

static void test_set_peers_forgets_removed_peers_and_changed_keys(void **state)
{
	(void)state;
	struct replication_session_table *a = table_new(NODE_A, &key_a, CLUSTER, NODE_B, key_b.pk);
	struct replication_session_table *b = table_new(NODE_B, &key_b, CLUSTER, NODE_A, key_a.pk);
	handshake(a, NODE_A, b, NODE_B, 0);
	struct replication_session_peer peers[2] = {{.id = NODE_B}, {.id = NODE_C}};
	memcpy(peers[0].public_key, key_b.pk, sizeof(key_b.pk));
	memcpy(peers[1].public_key, key_c.pk, sizeof(key_c.pk));
	assert_int_equal(replication_session_set_peers(a, peers, 2), CARELOG_OK);
	assert_true(replication_session_is_established(a, NODE_B)); /* same key: kept */
	memcpy(peers[0].public_key, key_impostor.pk, sizeof(key_impostor.pk));
	assert_int_equal(replication_session_set_peers(a, peers, 2), CARELOG_OK);
	assert_false(replication_session_is_established(a, NODE_B)); /* new key: forgotten */
	assert_int_equal(replication_session_set_peers(a, peers + 1, 1), CARELOG_OK);
	uint8_t out[100];
	size_t out_len = 0;
	assert_int_equal(replication_session_seal(a, NODE_B, 0, out, 1, out, sizeof(out), &out_len),
	                 CARELOG_ENOTFOUND);
	struct replication_session_peer bad[2] = {{.id = NODE_C}, {.id = NODE_C}};
	assert_int_equal(replication_session_set_peers(a, bad, 2), CARELOG_EINVAL);
	bad[1].id = NODE_A;
	assert_int_equal(replication_session_set_peers(a, bad, 2), CARELOG_EINVAL);
	bad[1].id = 0;
	assert_int_equal(replication_session_set_peers(a, bad, 2), CARELOG_EINVAL);
	struct replication_session_peer many[5] = {
	    {.id = 11}, {.id = 12}, {.id = 13}, {.id = 14}, {.id = 15}};
	assert_int_equal(replication_session_set_peers(a, many, 5), CARELOG_ETOOBIG);
	replication_session_table_destroy(a);
	replication_session_table_destroy(b);
}

static void test_truncated_and_oversized_frames_are_dropped(void **state)
{
	(void)state;
	struct replication_session_table *a = table_new(NODE_A, &key_a, CLUSTER, NODE_B, key_b.pk);
	struct replication_session_table *b = table_new(NODE_B, &key_b, CLUSTER, NODE_A, key_a.pk);
	struct frame init, scratch;
	struct replication_session_result res;
	assert_int_equal(replication_session_initiate(a, NODE_B, 0, init.bytes, &init.len),
	                 CARELOG_OK);
	for (size_t len = 0; len < init.len; len++) {
		scratch = init;
		replication_session_open(b, scratch.bytes, len, 0, &res);
		assert_int_equal(res.outcome, REPLICATION_SESSION_DROPPED);
		assert_int_equal(res.reason, REPLICATION_DROP_MALFORMED);
	}
	scratch = init;
	replication_session_open(b, scratch.bytes, init.len + 1, 0, &res);
	assert_int_equal(res.reason, REPLICATION_DROP_MALFORMED);
	/* DATA larger than the receiver's limit, from a sender allowing more. */
	struct replication_session_config c = {.self_id = NODE_A,
	                                       .secret_key = key_a.sk,
	                                       .peers_max = 1,
	                                       .payload_bytes_max = 2 * PAYLOAD_MAX};
	memcpy(c.cluster_id, CLUSTER, sizeof(c.cluster_id));
	struct replication_session_table *big = NULL;
	assert_int_equal(replication_session_table_create(&c, &big), CARELOG_OK);
	struct replication_session_peer pb = {.id = NODE_B};
	memcpy(pb.public_key, key_b.pk, sizeof(pb.public_key));
	assert_int_equal(replication_session_set_peers(big, &pb, 1), CARELOG_OK);
	handshake(big, NODE_A, b, NODE_B, 0);
	static uint8_t payload[PAYLOAD_MAX + 1];
	static uint8_t frame[PAYLOAD_MAX + 1 + REPLICATION_SESSION_DATA_OVERHEAD_BYTES];
	size_t frame_len = 0;
	assert_int_equal(replication_session_seal(big, NODE_B, 1, payload, sizeof(payload), frame,
	                                          sizeof(frame), &frame_len),
	                 CARELOG_OK);
	replication_session_open(b, frame, frame_len, 0, &res);
	assert_int_equal(res.reason, REPLICATION_DROP_MALFORMED);
	/* A DATA frame cut inside its tag. */
	assert_int_equal(
	    replication_session_seal(big, NODE_B, 1, payload, 3, frame, sizeof(frame), &frame_len),
	    CARELOG_OK);
	replication_session_open(b, frame, frame_len - 4, 0, &res);
	assert_int_equal(res.reason, REPLICATION_DROP_MALFORMED);
	assert_int_equal(replication_session_table_create(&c, NULL), CARELOG_EINVAL);
	c.peers_max = REPLICATION_SESSION_PEERS_MAX + 1;
	struct replication_session_table *none = NULL;
	assert_int_equal(replication_session_table_create(&c, &none), CARELOG_EINVAL);
	assert_null(none);
	replication_session_table_destroy(big);
	replication_session_table_destroy(a);
	replication_session_table_destroy(b);
}

/* --- randomised mutation --- */

struct pool_frame {
	struct frame f;
	int receiver; /* 0: A, 1: B */
	bool has_payload;
	size_t payload_len;
	uint8_t payload[5 * 2 * POOL_DATA_FRAMES];
};

static uint64_t rng_next(uint64_t *s)
{
	/* splitmix64: small, and a seed reproduces the run exactly */
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static void mutate(struct frame *f, uint64_t *rng)
{
	uint64_t ops = 1 + rng_next(rng) % 4;
	for (uint64_t k = 0; k < ops; k++) {
		uint64_t r = rng_next(rng);
		size_t pos = f->len > 0 ? (size_t)(r >> 8) % f->len : 0;
		switch (r % 6) {
		case 0:
		case 1: /* bit flip */
			if (f->len > 0) {
				f->bytes[pos] ^= (uint8_t)(1u << ((r >> 4) % 8));
			}
			break;
		case 2: /* random byte */
			if (f->len > 0) {
				f->bytes[pos] = (uint8_t)(r >> 40);
			}
			break;
		case 3: /* truncate */
			f->len = pos;
			break;
		case 4: /* extend */
			if (f->len + 16 <= sizeof(f->bytes)) {
				for (int i = 0; i < 16; i++) {
					f->bytes[f->len++] = (uint8_t)rng_next(rng);
				}
			}
			break;
		default: /* header field to a plausible value: ids, type, channel */
			if (f->len > 35) {
				size_t at = (size_t)((r >> 8) % 3);
				static const size_t fields[3] = {1, 2, 27};
				f->bytes[fields[at]] = (uint8_t)((r >> 20) % 5);
			}
			break;
		}
	}
}

static void test_random_mutations_never_crash_nor_deliver_altered_payloads(void **state)
{
	(void)state;
	const char *env = getenv("CARELOG_SESSION_SEED");
	uint64_t seed = env != NULL ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
	fprintf(stderr, "session mutation seed %llu (CARELOG_SESSION_SEED=%llu reproduces)\n",
	        (unsigned long long)seed, (unsigned long long)seed);
	uint64_t rng = seed;
	struct replication_session_table *t[2] = {
	    table_new(NODE_A, &key_a, CLUSTER, NODE_B, key_b.pk),
	    table_new(NODE_B, &key_b, CLUSTER, NODE_A, key_a.pk),
	};
	static struct pool_frame pool[3 + 2 * POOL_DATA_FRAMES];
	size_t n = 0;
	struct replication_session_result res;
	/* INIT A->B (B answers; that RESP is kept), then sessions both ways. */
	assert_int_equal(
	    replication_session_initiate(t[0], NODE_B, 0, pool[n].f.bytes, &pool[n].f.len),
	    CARELOG_OK);
	pool[n].receiver = 1;
	struct frame scratch;
	open_copy(t[1], &pool[n].f, 0, &res, &scratch);
	n++;
	pool[n].f.len = res.reply_len;
	memcpy(pool[n].f.bytes, res.reply, res.reply_len);
	pool[n].receiver = 0;
	open_copy(t[0], &pool[n].f, 0, &res, &scratch);
	assert_int_equal(res.outcome, REPLICATION_SESSION_ESTABLISHED);
	n++;
	handshake(t[1], NODE_B, t[0], NODE_A, 0);
	for (int i = 0; i < 2 * POOL_DATA_FRAMES; i++) {
		struct pool_frame *pf = &pool[n++];
		int from = i % 2;
		pf->receiver = 1 - from;
		pf->has_payload = true;
		pf->payload_len = (size_t)(i * 5);
		payload_fill(pf->payload, pf->payload_len, (uint32_t)i);
		seal(t[from], from == 0 ? NODE_B : NODE_A, (uint8_t)((i / 2) % 2), pf->payload,
		     pf->payload_len, &pf->f);
	}
	/* A RESET from a restarted B for A's live session. */
	struct replication_session_table *b2 = table_new(NODE_B, &key_b, CLUSTER, NODE_A, key_a.pk);
	open_copy(b2, &pool[2].f, 0, &res, &scratch); /* pool[2]: DATA A->B */
	assert_int_equal(res.outcome, REPLICATION_SESSION_REPLY);
	pool[n].f.len = res.reply_len;
	memcpy(pool[n].f.bytes, res.reply, res.reply_len);
	pool[n].receiver = 0;
	n++;
	replication_session_table_destroy(b2);

	uint64_t delivered = 0;
	for (int round = 0; round < MUTATION_ROUNDS; round++) {
		const struct pool_frame *pf = &pool[rng_next(&rng) % n];
		scratch = pf->f;
		if (rng_next(&rng) % 8 != 0) { /* one in eight goes through untouched */
			mutate(&scratch, &rng);
		}
		uint64_t now = (uint64_t)round;
		replication_session_open(t[pf->receiver], scratch.bytes, scratch.len, now, &res);
		if (res.outcome == REPLICATION_SESSION_PAYLOAD) {
			delivered++;
			if (!pf->has_payload || res.payload_len != pf->payload_len ||
			    memcmp(res.payload, pf->payload, pf->payload_len) != 0) {
				fail_msg("seed %llu round %d: altered payload delivered",
				         (unsigned long long)seed, round);
			}
		}
		if (res.outcome == REPLICATION_SESSION_RESET) {
			/* Keep A->B DATA meaningful: re-handshake as the transport would. */
			handshake(t[0], NODE_A, t[1], NODE_B, now + 1000);
		}
	}
	/* Each pool DATA frame can be delivered at most once (replay rule); untouched ones are. */
	fprintf(stderr, "%d mutated or replayed frames, %llu payloads delivered\n", MUTATION_ROUNDS,
	        (unsigned long long)delivered);
	assert_true(delivered >= 1);
	assert_true(delivered <= 2 * POOL_DATA_FRAMES);
	replication_session_table_destroy(t[0]);
	replication_session_table_destroy(t[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_crypto_aead_rejects_tampering_and_dh_rejects_low_order_key),
	    cmocka_unit_test(test_handshake_establishes_both_ends_and_data_flows_on_both_channels),
	    cmocka_unit_test(test_replayed_data_is_dropped_and_counters_are_per_channel),
	    cmocka_unit_test(test_bit_flipped_data_is_dropped_before_decoding),
	    cmocka_unit_test(test_unknown_node_and_impostor_key_get_no_session),
	    cmocka_unit_test(test_wrong_cluster_wrong_version_and_not_for_me_are_dropped),
	    cmocka_unit_test(test_low_order_ephemeral_key_is_refused),
	    cmocka_unit_test(test_replayed_init_does_not_break_the_live_session),
	    cmocka_unit_test(test_restarted_receiver_answers_reset_and_sender_rehandshakes),
	    cmocka_unit_test(test_initiate_is_rate_limited_and_retried),
	    cmocka_unit_test(test_set_peers_forgets_removed_peers_and_changed_keys),
	    cmocka_unit_test(test_truncated_and_oversized_frames_are_dropped),
	    cmocka_unit_test(test_random_mutations_never_crash_nor_deliver_altered_payloads),
	};
	return cmocka_run_group_tests(tests, setup_keys, NULL);
}
