/* Unit tests for the event loop in a region: three voters and a joining learner, in one
 * process, over an in-memory network the test drives (no nng, no clock: ticks by hand). Every
 * organisation's clinicians write under a care relation its admin recorded; refusals, erasures
 * and audit batches are applied alike on every node. */
#include "carelog/errors.h"
#include "common/crypto.h"
#include "node/access/access.h"
#include "node/daemon/loop.h"
#include "node/daemon/node.h"
#include "node/daemon/serve.h"
#include "node/journal/policy.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

enum {
	NODES_MAX = 4,        /* 3 voters + 1 learner */
	VOTERS = 3,
	NET_MSGS_MAX = 65536, /* in flight on the fake network */
	RESULTS_MAX = 256,
	TICKS_MAX = 400,      /* bound on any wait in ticks */
};

struct net_msg {
	uint64_t from, to;
	uint8_t channel;
	size_t len;
	uint8_t *bytes;
};

struct region;

struct rnode {
	struct region *r;
	uint64_t id;
	uint8_t public_key[CL_SIGN_PUBLIC_BYTES];
	uint8_t secret[CL_SIGN_SECRET_BYTES];
	struct storage *s;
	struct node_apply_state st;
	struct node_loop *loop;
	bool up;
};

struct result {
	uint64_t node;
	uint64_t tag;
	struct node_append_result r;
};

struct region {
	char dir[256];
	struct membership genesis;
	uint8_t genesis_entry[MEMBERSHIP_CONTEXT_BYTES_MAX + 128];
	size_t genesis_len;
	struct rnode nodes[NODES_MAX];
	uint32_t count;
	struct net_msg *net;
	size_t net_count;
	bool cut[NODES_MAX + 1][NODES_MAX + 1]; /* cut[from][to] */
	struct result results[RESULTS_MAX];
	size_t results_count;
	uint64_t now_ms;
};

/* --- the fake network --- */

static int net_send(void *ctx, uint64_t to, uint8_t channel, const uint8_t *payload, size_t len)
{
	struct rnode *n = ctx;
	struct region *r = n->r;
	if (to == 0 || to > NODES_MAX || r->cut[n->id][to] || r->net_count == NET_MSGS_MAX) {
		return CARELOG_OK; /* lost, as a network loses */
	}
	struct net_msg *m = &r->net[r->net_count++];
	*m = (struct net_msg){.from = n->id, .to = to, .channel = channel, .len = len};
	m->bytes = malloc(len);
	assert_non_null(m->bytes);
	memcpy(m->bytes, payload, len);
	return CARELOG_OK;
}

/* Delivers everything in flight (in send order); returns how many. */
static size_t net_deliver(struct region *r)
{
	size_t n = r->net_count;
	struct net_msg *batch = malloc(n * sizeof(*batch) + 1);
	assert_non_null(batch);
	memcpy(batch, r->net, n * sizeof(*batch));
	r->net_count = 0;
	for (size_t i = 0; i < n; i++) {
		struct net_msg *m = &batch[i];
		struct rnode *to = &r->nodes[m->to - 1];
		if (m->to <= r->count && to->up && !r->cut[m->from][m->to]) {
			node_loop_receive(to->loop, m->from, m->channel, m->bytes, m->len);
		}
		free(m->bytes);
	}
	free(batch);
	return n;
}

/* Runs every node and the network until nothing moves (bounded). */
static void pump(struct region *r)
{
	for (int round = 0; round < 1000; round++) {
		for (uint32_t i = 0; i < r->count; i++) {
			if (r->nodes[i].up) {
				assert_int_equal(node_loop_run_until_idle(r->nodes[i].loop), CARELOG_OK);
			}
		}
		if (net_deliver(r) == 0) {
			return;
		}
	}
	fail_msg("the region did not settle");
}

static void tick_all(struct region *r, uint32_t ticks)
{
	for (uint32_t t = 0; t < ticks; t++) {
		for (uint32_t i = 0; i < r->count; i++) {
			if (r->nodes[i].up) {
				node_loop_tick(r->nodes[i].loop);
			}
		}
		pump(r);
	}
}

/* --- loop callbacks --- */

static void on_reply(void *ctx, struct node_waiter w, const struct node_append_result *res)
{
	struct rnode *n = ctx;
	struct region *r = n->r;
	assert_true(r->results_count < RESULTS_MAX);
	r->results[r->results_count++] =
	    (struct result){.node = n->id, .tag = w.generation, .r = *res};
}

static uint64_t region_clock(void *ctx)
{
	struct rnode *n = ctx;
	return n->r->now_ms;
}

static void on_fatal(void *ctx, int err)
{
	(void)ctx;
	fail_msg("fatal: %s", carelog_errname(err));
}

/* --- setup --- */

static void node_store(struct region *r, struct rnode *n, bool write_genesis)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/node%llu", r->dir, (unsigned long long)n->id);
	struct storage_options o = {.dir = path, .map_size_bytes = 64ULL << 20, .readers_max = 16};
	assert_int_equal(storage_open(&o, &n->s), CARELOG_OK);
	struct storage_txn *t = NULL;
	assert_int_equal(storage_txn_begin_write(n->s, &t), CARELOG_OK);
	struct storage_identity id = {.node_id = n->id};
	memcpy(id.cluster_id, r->genesis.cluster_id, sizeof(id.cluster_id));
	assert_int_equal(storage_identity_put(t, &id), CARELOG_OK);
	if (write_genesis) {
		struct storage_entry e = {.index = 1,
		                          .term = 1,
		                          .type = CONSENSUS_ENTRY_CONF,
		                          .data_len = (uint32_t)r->genesis_len,
		                          .data = r->genesis_entry};
		assert_int_equal(storage_log_append(t, &e, 1), CARELOG_OK);
		struct storage_hard_state hs = {.term = 1, .vote = 0, .commit = 1};
		assert_int_equal(storage_hard_state_put(t, &hs), CARELOG_OK);
	}
	assert_int_equal(storage_txn_commit(t), CARELOG_OK);
	memset(&n->st, 0, sizeof(n->st));
	assert_int_equal(node_recover(n->s, &n->st, 16), CARELOG_OK);
}

static void node_loop_open(struct rnode *n)
{
	struct node_loop_config c = {
	    .node_id = n->id,
	    .secret_key = n->secret,
	    .actor_default = "system",
	    .unit = "ward-1",
	    .queue_max = 64,
	    .batch_entries_max = 16,
	    .batch_bytes_max = 1 << 20,
	    .request_bytes_max = 1 << 20,
	    .clock_ms = region_clock,
	    .clock_ctx = n,
	    .reply = on_reply,
	    .reply_ctx = n,
	    .fatal = on_fatal,
	    .send = net_send,
	    .send_ctx = n,
	    .seed = 1000 + n->id, /* deterministic election jitter */
	};
	assert_int_equal(node_loop_create(&c, n->s, &n->st, &n->loop), CARELOG_OK);
	n->up = true;
}

static int setup(void **state)
{
	assert_int_equal(cl_crypto_init(), CARELOG_OK);
	struct region *r = calloc(1, sizeof(*r));
	assert_non_null(r);
	r->net = calloc(NET_MSGS_MAX, sizeof(*r->net));
	assert_non_null(r->net);
	snprintf(r->dir, sizeof(r->dir), "/tmp/carelog-region-XXXXXX");
	assert_non_null(mkdtemp(r->dir));
	r->now_ms = 1700000000000ULL;
	r->count = NODES_MAX;
	struct membership *m = &r->genesis;
	m->has_cluster_id = true;
	for (size_t i = 0; i < sizeof(m->cluster_id); i++) {
		m->cluster_id[i] = (uint8_t)(0x10 + i);
	}
	m->has_params = true;
	m->params.body_max_bytes = 4096;
	for (uint32_t i = 0; i < NODES_MAX; i++) {
		struct rnode *n = &r->nodes[i];
		n->r = r;
		n->id = i + 1;
		assert_int_equal(cl_sign_keypair(n->public_key, n->secret), CARELOG_OK);
		if (i < VOTERS) {
			struct membership_member *mm = &m->members[m->count++];
			mm->id = n->id;
			snprintf(mm->org, sizeof(mm->org), "hospital-%u", i + 1);
			snprintf(mm->address, sizeof(mm->address), "tcp://127.0.0.1:%u", 7400 + i);
			memcpy(mm->public_key, n->public_key, sizeof(mm->public_key));
			mm->voter = true;
		}
	}
	assert_int_equal(membership_genesis_entry(m, r->genesis_entry, sizeof(r->genesis_entry),
	                                          &r->genesis_len),
	                 CARELOG_OK);
	for (uint32_t i = 0; i < NODES_MAX; i++) {
		node_store(r, &r->nodes[i], i < VOTERS);
		node_loop_open(&r->nodes[i]);
	}
	*state = r;
	return 0;
}

static int teardown(void **state)
{
	struct region *r = *state;
	for (uint32_t i = 0; i < r->count; i++) {
		node_loop_destroy(r->nodes[i].loop);
		storage_close(r->nodes[i].s);
	}
	for (size_t i = 0; i < r->net_count; i++) {
		free(r->net[i].bytes);
	}
	free(r->net);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", r->dir);
	assert_int_equal(system(cmd), 0);
	free(r);
	return 0;
}

/* --- helpers --- */

static uint64_t leader_of(struct region *r)
{
	uint64_t leader = 0;
	for (uint32_t i = 0; i < VOTERS; i++) {
		struct node_loop_status st;
		node_loop_get_status(r->nodes[i].loop, &st);
		if (r->nodes[i].up && st.role == CONSENSUS_ROLE_LEADER) {
			leader = r->nodes[i].id;
		}
	}
	return leader;
}

static uint64_t elect(struct region *r)
{
	for (uint32_t t = 0; t < TICKS_MAX; t++) {
		uint64_t leader = leader_of(r);
		if (leader != 0) {
			tick_all(r, 2); /* heartbeats: every node learns the leader */
			return leader;
		}
		tick_all(r, 1);
	}
	fail_msg("no leader within %d ticks", TICKS_MAX);
	return 0;
}

static void submit(struct region *r, uint64_t node, uint64_t tag, const struct proto_request *req)
{
	struct proto_buf buf = {0};
	assert_int_equal(proto_request_encode(req, &buf), CARELOG_OK);
	struct node_append_item *item = NULL;
	struct node_waiter w = {.owner = &r->nodes[node - 1], .generation = tag};
	assert_int_equal(node_append_item_create(buf.data, buf.len, w, &item), CARELOG_OK);
	proto_buf_free(&buf);
	assert_int_equal(node_loop_submit(r->nodes[node - 1].loop, item), CARELOG_OK);
}

static struct proto_str str(const char *s)
{
	return (struct proto_str){s, strlen(s)};
}

#define PATIENT "synthetic-0001"

/* A note for `patient` by physician hpr-1 of the node's organisation. */
static void submit_append_for(struct region *r, uint64_t node, uint64_t tag, const char *patient,
                              const char *request_id)
{
	struct proto_request req;
	memset(&req, 0, sizeof(req));
	req.version = PROTO_VERSION;
	req.op = PROTO_OP_APPEND;
	req.actor.id = str("hpr-1");
	req.actor.role = str("physician");
	req.u.append.patient = str(patient);
	req.u.append.kind = (struct proto_str){"note", 4};
	req.u.append.request_id = (struct proto_str){request_id, strlen(request_id)};
	req.u.append.body = (struct proto_str){"observation", 11};
	submit(r, node, tag, &req);
}

static void submit_append(struct region *r, uint64_t node, uint64_t tag, const char *request_id)
{
	submit_append_for(r, node, tag, PATIENT, request_id);
}

/* The admin of `node`'s organisation records a care relation with `patient` through it. */
static void submit_relation(struct region *r, uint64_t node, uint64_t tag, const char *patient)
{
	char request_id[48];
	snprintf(request_id, sizeof(request_id), "rel-%llu-%s", (unsigned long long)node, patient);
	struct proto_request req;
	memset(&req, 0, sizeof(req));
	req.version = PROTO_VERSION;
	req.op = PROTO_OP_POLICY;
	req.actor.id = str("adm-1");
	req.actor.role = str("admin");
	req.u.policy.kind = str("care-relation");
	req.u.policy.patient = str(patient);
	req.u.policy.request_id = (struct proto_str){request_id, strlen(request_id)};
	submit(r, node, tag, &req);
}

static void submit_linearizable_read(struct region *r, uint64_t node, uint64_t tag)
{
	struct proto_request req;
	memset(&req, 0, sizeof(req));
	req.version = PROTO_VERSION;
	req.op = PROTO_OP_READ;
	req.u.read.patient = (struct proto_str){"synthetic-0001", 14};
	req.u.read.consistency = PROTO_CONSISTENCY_LINEARIZABLE;
	submit(r, node, tag, &req);
}

static void submit_member(struct region *r, uint64_t node, uint64_t tag, uint8_t action,
                          uint64_t id)
{
	struct proto_request req;
	memset(&req, 0, sizeof(req));
	req.version = PROTO_VERSION;
	req.op = PROTO_OP_MEMBER;
	req.u.member.action = action;
	req.u.member.id = id;
	if (action == PROTO_MEMBER_ADD_LEARNER) {
		req.u.member.org = (struct proto_str){"kommune-4", 9};
		req.u.member.address = (struct proto_str){"tcp://127.0.0.1:7404", 20};
		req.u.member.has_public_key = true;
		memcpy(req.u.member.public_key, r->nodes[id - 1].public_key, CL_SIGN_PUBLIC_BYTES);
	}
	submit(r, node, tag, &req);
}

static void submit_transfer(struct region *r, uint64_t node, uint64_t tag, uint64_t to)
{
	struct proto_request req;
	memset(&req, 0, sizeof(req));
	req.version = PROTO_VERSION;
	req.op = PROTO_OP_TRANSFER;
	req.u.transfer.to = to;
	submit(r, node, tag, &req);
}

static const struct result *result_for(struct region *r, uint64_t tag)
{
	for (size_t i = 0; i < r->results_count; i++) {
		if (r->results[i].tag == tag) {
			return &r->results[i];
		}
	}
	return NULL;
}

/* The answer for `tag`, which must have come. */
static const struct result *answer(struct region *r, uint64_t tag)
{
	const struct result *res = result_for(r, tag);
	if (res == NULL) {
		fail_msg("no answer for request %llu", (unsigned long long)tag);
		abort(); /* fail_msg does not return; say so to the compiler */
	}
	return res;
}

/* Care relations between PATIENT and the organisation of each of `nodes` (committed). */
static void relate(struct region *r, const uint64_t *nodes, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		submit_relation(r, nodes[i], 9000 + nodes[i], PATIENT);
	}
	tick_all(r, 3);
	for (size_t i = 0; i < count; i++) {
		const struct result *res = answer(r, 9000 + nodes[i]);
		if (res->r.err != CARELOG_OK) {
			fail_msg("relation through node %llu: %s %s", (unsigned long long)nodes[i],
			         carelog_errname(res->r.err), res->r.msg);
		}
	}
}

static void relate_voters(struct region *r)
{
	const uint64_t voters[VOTERS] = {1, 2, 3};
	relate(r, voters, VOTERS);
}

/* Every up node has applied the same index with the same chain head. */
static void assert_converged(struct region *r, uint64_t want_applied_min)
{
	struct storage_applied first = {0};
	bool have = false;
	for (uint32_t i = 0; i < r->count; i++) {
		struct rnode *n = &r->nodes[i];
		if (!n->up) {
			continue;
		}
		struct storage_txn *t = NULL;
		struct storage_applied a;
		assert_int_equal(storage_txn_begin_read(n->s, &t), CARELOG_OK);
		assert_int_equal(storage_applied_get(t, &a), CARELOG_OK);
		storage_txn_abort(t);
		assert_true(a.index >= want_applied_min);
		if (!have) {
			first = a;
			have = true;
		} else {
			assert_int_equal(a.index, first.index);
			assert_memory_equal(a.chain_head, first.chain_head, sizeof(a.chain_head));
		}
	}
}

/* --- tests --- */

static void test_region_follower_append_is_forwarded_signed_by_its_org_and_committed(void **state)
{
	struct region *r = *state;
	r->nodes[3].up = false; /* the learner-to-be plays no part here */
	uint64_t leader = elect(r);
	relate_voters(r);
	uint64_t follower = leader == 1 ? 2 : 1;
	submit_append(r, follower, 1, "req-f1");
	submit_append(r, leader, 2, "req-l1");
	tick_all(r, 3);
	const struct result *a = answer(r, 1);
	const struct result *b = answer(r, 2);
	assert_int_equal(a->r.err, CARELOG_OK);
	assert_int_equal(b->r.err, CARELOG_OK);
	assert_int_not_equal(a->r.index, b->r.index);
	/* The follower's entry is signed with the follower's key (its organisation). */
	struct storage_txn *t = NULL;
	struct storage_entry e;
	struct rnode *ln = &r->nodes[leader - 1];
	assert_int_equal(storage_txn_begin_read(ln->s, &t), CARELOG_OK);
	assert_int_equal(storage_log_get(t, a->r.index, &e), CARELOG_OK);
	struct journal_record rec;
	struct journal_header h;
	uint8_t id[JOURNAL_ID_BYTES];
	assert_int_equal(journal_record_decode(e.data, e.data_len, &rec), CARELOG_OK);
	assert_int_equal(journal_verify(&rec, r->nodes[follower - 1].public_key, &h, id),
	                 CARELOG_OK);
	assert_int_equal(h.node_id, follower);
	assert_memory_equal(id, a->r.id, sizeof(id));
	storage_txn_abort(t);
	/* A retry of the follower's request id, anywhere it went, is the same entry. */
	submit_append(r, follower, 3, "req-f1");
	tick_all(r, 1);
	const struct result *c = answer(r, 3);
	assert_int_equal(c->r.err, CARELOG_OK);
	assert_true(c->r.duplicate);
	assert_int_equal(c->r.index, a->r.index);
	assert_converged(r, b->r.index > a->r.index ? b->r.index : a->r.index);
	struct node_loop_status st;
	node_loop_get_status(r->nodes[follower - 1].loop, &st);
	assert_true(st.verified_signatures >= 2); /* every node verifies every entry */
}

static void test_region_linearizable_read_point_comes_from_the_leader(void **state)
{
	struct region *r = *state;
	r->nodes[3].up = false;
	uint64_t leader = elect(r);
	relate_voters(r);
	uint64_t follower = leader == 3 ? 2 : 3;
	submit_append(r, leader, 1, "req-1");
	tick_all(r, 2);
	uint64_t committed = answer(r, 1)->r.index;
	submit_linearizable_read(r, follower, 2);
	tick_all(r, 2);
	const struct result *rd = answer(r, 2);
	assert_int_equal(rd->r.err, CARELOG_OK);
	assert_true(rd->r.index >= committed); /* the read point covers the acknowledged append */
}

static void test_region_isolated_leader_gives_no_read_point_and_majority_moves_on(void **state)
{
	struct region *r = *state;
	r->nodes[3].up = false;
	uint64_t old = elect(r);
	relate_voters(r);
	for (uint64_t other = 1; other <= NODES_MAX; other++) {
		r->cut[old][other] = true;
		r->cut[other][old] = true;
	}
	submit_linearizable_read(r, old, 1);
	tick_all(r, 60); /* several election timeouts */
	const struct result *rd = result_for(r, 1);
	assert_true(rd == NULL || rd->r.err != CARELOG_OK); /* never a read point */
	uint64_t now_leader = leader_of(r);
	assert_int_not_equal(now_leader, 0);
	assert_int_not_equal(now_leader, old);
	/* The majority commits; the old leader, healed, converges to it. */
	submit_append(r, now_leader, 2, "req-majority");
	tick_all(r, 3);
	assert_int_equal(answer(r, 2)->r.err, CARELOG_OK);
	memset(r->cut, 0, sizeof(r->cut));
	tick_all(r, 30);
	assert_converged(r, answer(r, 2)->r.index);
}

/* A follower forwards to a leader that is cut off: the forward is lost. Once a new leader is
 * elected (perhaps this very follower) the signed record goes there, and the append commits
 * without the client doing anything; a retry is the same entry. */
static void test_region_forward_lost_to_an_isolated_leader_commits_after_the_election(void **state)
{
	struct region *r = *state;
	r->nodes[3].up = false;
	uint64_t old = elect(r);
	relate_voters(r);
	for (uint64_t other = 1; other <= NODES_MAX; other++) {
		r->cut[old][other] = true;
		r->cut[other][old] = true;
	}
	uint64_t follower = old == 1 ? 2 : 1;
	submit_append(r, follower, 1, "req-lost");
	tick_all(r, 60);
	uint64_t now_leader = leader_of(r);
	assert_int_not_equal(now_leader, old);
	const struct result *a = answer(r, 1);
	assert_int_equal(a->r.err, CARELOG_OK);
	submit_append(r, follower, 2, "req-lost");
	tick_all(r, 2);
	assert_int_equal(answer(r, 2)->r.index, a->r.index);
	assert_true(answer(r, 2)->r.duplicate);
	memset(r->cut, 0, sizeof(r->cut));
	tick_all(r, 30);
	assert_converged(r, a->r.index);
}

static void test_region_joining_learner_catches_up_and_serves_a_read_point(void **state)
{
	struct region *r = *state;
	uint64_t leader = elect(r);
	relate_voters(r);
	char rid[32];
	for (uint64_t i = 0; i < 40; i++) {
		snprintf(rid, sizeof(rid), "req-%llu", (unsigned long long)i);
		submit_append(r, leader, 100 + i, rid);
	}
	tick_all(r, 3);
	/* Only the leader takes membership changes. */
	struct proto_request req;
	memset(&req, 0, sizeof(req));
	req.version = PROTO_VERSION;
	req.op = PROTO_OP_MEMBER;
	req.u.member.action = PROTO_MEMBER_ADD_LEARNER;
	req.u.member.id = 4;
	req.u.member.org = (struct proto_str){"kommune-4", 9};
	req.u.member.address = (struct proto_str){"tcp://127.0.0.1:7404", 20};
	req.u.member.has_public_key = true;
	memcpy(req.u.member.public_key, r->nodes[3].public_key, CL_SIGN_PUBLIC_BYTES);
	uint64_t follower = leader == 1 ? 2 : 1;
	submit(r, follower, 1, &req);
	submit(r, leader, 2, &req);
	tick_all(r, 20);
	assert_int_equal(answer(r, 1)->r.err, CARELOG_ENOTLEADER);
	assert_non_null(strstr(answer(r, 1)->r.msg, "not the leader"));
	const struct result *added = answer(r, 2);
	assert_int_equal(added->r.err, CARELOG_OK);
	assert_converged(r, added->r.index);
	struct node_loop_status st;
	node_loop_get_status(r->nodes[3].loop, &st);
	assert_true(st.learner);
	assert_int_equal(st.leader_id, leader);
	/* The learner appends (forwarded, signed as kommune-4) and reads linearizably. */
	const uint64_t learner[1] = {4};
	relate(r, learner, 1);
	submit_append(r, 4, 3, "req-learner");
	submit_linearizable_read(r, 4, 4);
	tick_all(r, 3);
	assert_int_equal(answer(r, 3)->r.err, CARELOG_OK);
	assert_int_equal(answer(r, 4)->r.err, CARELOG_OK);
	/* A second add of the same id is refused: ids are never reused. */
	submit(r, leader, 5, &req);
	tick_all(r, 1);
	assert_int_equal(answer(r, 5)->r.err, CARELOG_EEXIST);
}

/* The operator's path for a municipality that becomes a data centre: add it as a learner,
 * promote it, hand it the leadership, then remove a voter. A learner cannot be handed the
 * leadership, and a promoted voter cannot be promoted again. */
static void test_region_promote_transfer_and_remove(void **state)
{
	struct region *r = *state;
	uint64_t leader = elect(r);
	submit_member(r, leader, 1, PROTO_MEMBER_ADD_LEARNER, 4);
	tick_all(r, 10);
	assert_int_equal(answer(r, 1)->r.err, CARELOG_OK);
	const uint64_t newcomer[1] = {4};
	relate(r, newcomer, 1); /* kommune-4's clinicians will write */
	submit_transfer(r, leader, 2, 4);
	tick_all(r, 1);
	assert_int_equal(answer(r, 2)->r.err, CARELOG_EINVAL);
	assert_non_null(strstr(answer(r, 2)->r.msg, "learner cannot lead"));
	submit_member(r, leader, 3, PROTO_MEMBER_PROMOTE, 4);
	tick_all(r, 10);
	assert_int_equal(answer(r, 3)->r.err, CARELOG_OK);
	struct node_loop_status st;
	node_loop_get_status(r->nodes[3].loop, &st);
	assert_false(st.learner);
	submit_member(r, leader, 4, PROTO_MEMBER_PROMOTE, 4);
	tick_all(r, 1);
	assert_int_equal(answer(r, 4)->r.err, CARELOG_EINVAL);
	/* Transfer: answered once node 4 leads. */
	submit_transfer(r, leader, 5, 4);
	tick_all(r, 30);
	assert_int_equal(answer(r, 5)->r.err, CARELOG_OK);
	assert_int_equal(answer(r, 5)->r.leader_id, 4);
	node_loop_get_status(r->nodes[3].loop, &st);
	assert_int_equal(st.role, CONSENSUS_ROLE_LEADER);
	/* Remove the old leader; the remaining three voters keep committing. */
	submit_member(r, 4, 6, PROTO_MEMBER_REMOVE, leader);
	tick_all(r, 10);
	assert_int_equal(answer(r, 6)->r.err, CARELOG_OK);
	r->nodes[leader - 1].up = false; /* gone from the region */
	submit_append(r, 4, 7, "req-after-remove");
	tick_all(r, 3);
	assert_int_equal(answer(r, 7)->r.err, CARELOG_OK);
	assert_converged(r, answer(r, 7)->r.index);
	/* It is no longer a member: removing it again is refused. */
	submit_member(r, 4, 8, PROTO_MEMBER_REMOVE, leader);
	tick_all(r, 1);
	assert_int_equal(answer(r, 8)->r.err, CARELOG_ENOTFOUND);
	/* And its id is never given to another node. */
	struct proto_request req;
	memset(&req, 0, sizeof(req));
	req.version = PROTO_VERSION;
	req.op = PROTO_OP_MEMBER;
	req.u.member.action = PROTO_MEMBER_ADD_LEARNER;
	req.u.member.id = leader;
	req.u.member.org = (struct proto_str){"kommune-9", 9};
	req.u.member.address = (struct proto_str){"tcp://127.0.0.1:7409", 20};
	req.u.member.has_public_key = true;
	memset(req.u.member.public_key, 0x42, CL_SIGN_PUBLIC_BYTES);
	submit(r, 4, 9, &req);
	tick_all(r, 1);
	assert_int_equal(answer(r, 9)->r.err, CARELOG_EEXIST);
	assert_non_null(strstr(answer(r, 9)->r.msg, "never reused"));
}

/* --- refusals, erasure and audit batches: the same on every node --- */

static int count_row(void *arg, const uint8_t *row, size_t len)
{
	struct policy_audit_row decoded;
	assert_int_equal(policy_audit_row_decode(row, len, &decoded), CARELOG_OK);
	assert_string_equal(decoded.patient, PATIENT);
	(*(size_t *)arg)++;
	return 0;
}

/* The (index, id, entry status) the request `request_id` of `org` has at node `n`. */
static void request_at(struct rnode *n, const char *org, const char *request_id,
                       uint64_t *out_index, uint8_t out_id[JOURNAL_ID_BYTES], uint8_t *out_status)
{
	uint8_t key[NODE_REQUEST_KEY_BYTES_MAX];
	size_t key_len = 0;
	assert_int_equal(
	    node_request_key(org, strlen(org), request_id, strlen(request_id), key, &key_len),
	    CARELOG_OK);
	struct storage_txn *t = NULL;
	assert_int_equal(storage_txn_begin_read(n->s, &t), CARELOG_OK);
	assert_int_equal(storage_index_request_get(t, key, key_len, out_index, out_id), CARELOG_OK);
	uint64_t index = 0;
	assert_int_equal(storage_index_entry_get(t, out_id, &index, out_status), CARELOG_OK);
	assert_int_equal(index, *out_index);
	storage_txn_abort(t);
}

static size_t patient_rows_at(struct rnode *n, const char *patient)
{
	uint8_t pk[CL_SHA256_BYTES];
	journal_patient_key(patient, pk);
	uint64_t rows[8];
	size_t count = 0;
	bool more = false;
	struct storage_txn *t = NULL;
	assert_int_equal(storage_txn_begin_read(n->s, &t), CARELOG_OK);
	assert_int_equal(storage_index_patient_scan(t, pk, 0, rows, 8, &count, &more), CARELOG_OK);
	storage_txn_abort(t);
	return count;
}

/* verify on node `n` passes. */
static void assert_verify_ok(struct rnode *n)
{
	struct node_serve sv = {.storage = n->s, .node_id = n->id};
	struct proto_buf buf = {0};
	assert_int_equal(node_serve_verify(&sv, &buf), CARELOG_OK);
	struct proto_arena arena = {0};
	struct proto_reply rep;
	assert_int_equal(proto_reply_decode(buf.data, buf.len, &arena, &rep), CARELOG_OK);
	for (uint32_t i = 0; i < rep.u.verify.problems_listed; i++) {
		print_message("node %llu: %.*s\n", (unsigned long long)n->id,
		              (int)rep.u.verify.problems[i].len, rep.u.verify.problems[i].ptr);
	}
	assert_int_equal(rep.err, CARELOG_OK);
	assert_true(rep.u.verify.ok);
	proto_arena_free(&arena);
	proto_buf_free(&buf);
}

static const char *org_of(struct region *r, uint64_t node)
{
	const struct membership_member *m = membership_find(&r->genesis, node);
	assert_non_null(m);
	return m->org;
}

/* A clinician without a care relation appends through a follower: the entry is recorded as
 * refused (status 3) on every node, the client hears CARELOG_EDENIED and why, and so does a
 * retry; the patient's index has nothing on any node. */
static void test_region_refused_append_is_recorded_identically_on_every_node(void **state)
{
	struct region *r = *state;
	r->nodes[3].up = false;
	uint64_t leader = elect(r);
	uint64_t follower = leader == 1 ? 2 : 1;
	submit_append_for(r, follower, 1, "synthetic-0002", "req-norel");
	tick_all(r, 3);
	const struct result *a = answer(r, 1);
	assert_int_equal(a->r.err, CARELOG_EDENIED);
	assert_non_null(strstr(a->r.msg, "care relation"));
	assert_null(strstr(a->r.msg, "synthetic-0002"));
	submit_append_for(r, follower, 2, "synthetic-0002", "req-norel");
	tick_all(r, 1);
	assert_int_equal(answer(r, 2)->r.err, CARELOG_EDENIED);
	assert_converged(r, 2);
	uint64_t first_index = 0;
	uint8_t first_id[JOURNAL_ID_BYTES];
	for (uint32_t i = 0; i < VOTERS; i++) {
		uint64_t index = 0;
		uint8_t id[JOURNAL_ID_BYTES];
		uint8_t status = 0;
		request_at(&r->nodes[i], org_of(r, follower), "req-norel", &index, id, &status);
		assert_int_equal(status, NODE_APPLY_REFUSED);
		if (i == 0) {
			first_index = index;
			memcpy(first_id, id, sizeof(first_id));
		}
		assert_int_equal(index, first_index);
		assert_memory_equal(id, first_id, sizeof(id));
		assert_int_equal(patient_rows_at(&r->nodes[i], "synthetic-0002"), 0);
		assert_verify_ok(&r->nodes[i]);
	}
}

/* Lawful erasure while a voter is cut off: the leader and the other voter strip the body at
 * once; the cut-off voter, healed, receives the entry already stripped and then the erasure,
 * and ends with the same statuses, the same chain and a passing verify; get there says who
 * erased it and why. */
static void test_region_erasure_removes_the_body_on_every_node_and_verify_passes(void **state)
{
	struct region *r = *state;
	r->nodes[3].up = false;
	uint64_t leader = elect(r);
	relate_voters(r);
	uint64_t lagger = leader == 3 ? 2 : 3;
	for (uint64_t other = 1; other <= NODES_MAX; other++) {
		r->cut[lagger][other] = true;
		r->cut[other][lagger] = true;
	}
	submit_append(r, leader, 1, "req-to-erase");
	tick_all(r, 3);
	const struct result *a = answer(r, 1);
	assert_int_equal(a->r.err, CARELOG_OK);
	uint64_t erased_index = a->r.index;
	uint8_t erased_id[JOURNAL_ID_BYTES];
	memcpy(erased_id, a->r.id, sizeof(erased_id));
	struct proto_request req;
	memset(&req, 0, sizeof(req));
	req.version = PROTO_VERSION;
	req.op = PROTO_OP_POLICY;
	req.actor.id = str("adm-1");
	req.actor.role = str("admin");
	req.u.policy.kind = str("erasure");
	req.u.policy.request_id = str("erase-1"); /* patient left out: the entry's */
	req.u.policy.has_ref = true;
	memcpy(req.u.policy.ref, erased_id, JOURNAL_ID_BYTES);
	req.u.policy.text = str("Court order 2026/17 (personopplysningsloven art. 17)");
	submit(r, leader, 2, &req);
	tick_all(r, 3);
	const struct result *b = answer(r, 2);
	assert_int_equal(b->r.err, CARELOG_OK);
	uint64_t tombstone = b->r.index;
	memset(r->cut, 0, sizeof(r->cut));
	tick_all(r, 30);
	assert_converged(r, tombstone);
	uint8_t first_status = 0xff;
	for (uint32_t i = 0; i < VOTERS; i++) {
		struct rnode *n = &r->nodes[i];
		struct storage_txn *t = NULL;
		struct storage_entry e;
		struct journal_record rec;
		assert_int_equal(storage_txn_begin_read(n->s, &t), CARELOG_OK);
		assert_int_equal(storage_log_get(t, erased_index, &e), CARELOG_OK);
		assert_int_equal(journal_record_decode(e.data, e.data_len, &rec), CARELOG_OK);
		assert_null(rec.salt);
		assert_null(rec.body);
		assert_int_equal(rec.erased_by_index, tombstone); /* the lagger checked it */
		assert_null(memmem(e.data, e.data_len, "observation", 11));
		storage_txn_abort(t);
		uint64_t index = 0;
		uint8_t id[JOURNAL_ID_BYTES];
		uint8_t status = 0;
		request_at(n, org_of(r, leader), "erase-1", &index, id, &status);
		assert_int_equal(index, tombstone);
		if (first_status == 0xff) {
			first_status = status;
		}
		assert_int_equal(status, first_status); /* every node judged the erasure alike */
		assert_verify_ok(n);
	}
	assert_int_equal(first_status, NODE_APPLY_ACCEPTED);
	/* get on the node that was cut off: erased, by whom, when, why. */
	struct rnode *ln = &r->nodes[lagger - 1];
	struct node_serve sv = {.storage = ln->s, .node_id = ln->id};
	struct access_actor doc;
	memset(&doc, 0, sizeof(doc));
	snprintf(doc.id, sizeof(doc.id), "hpr-3");
	snprintf(doc.role, sizeof(doc.role), "physician");
	snprintf(doc.org, sizeof(doc.org), "%s", org_of(r, lagger));
	struct proto_request g;
	memset(&g, 0, sizeof(g));
	g.version = PROTO_VERSION;
	g.op = PROTO_OP_GET;
	memcpy(g.u.get.id, erased_id, JOURNAL_ID_BYTES);
	struct proto_buf buf = {0};
	struct policy_audit_row audit;
	memset(&audit, 0, sizeof(audit));
	assert_int_equal(node_serve_get(&sv, &doc, r->now_ms, &g, &buf, &audit), CARELOG_OK);
	struct proto_arena arena = {0};
	struct proto_reply rep;
	assert_int_equal(proto_reply_decode(buf.data, buf.len, &arena, &rep), CARELOG_OK);
	assert_int_equal(rep.err, CARELOG_OK);
	assert_true(rep.u.get.body_erased);
	assert_int_equal(rep.u.get.erased_index, tombstone);
	assert_int_equal(rep.u.get.erased_org.len, strlen(org_of(r, leader)));
	assert_int_equal(rep.u.get.erased_basis.len, req.u.policy.text.len);
	proto_arena_free(&arena);
	proto_buf_free(&buf);
}

/* The audit shipper's path: a node appends an audit batch of its own rows (role system,
 * patient "-") through a follower; every node indexes the rows, so the patient's access log
 * answers on a node that never served them. */
static void test_region_audit_batch_is_indexed_on_every_node(void **state)
{
	struct region *r = *state;
	r->nodes[3].up = false;
	uint64_t leader = elect(r);
	uint64_t shipper = leader == 1 ? 2 : 1;
	struct policy_audit_row row;
	memset(&row, 0, sizeof(row));
	row.node_id = shipper;
	row.seq = 1;
	row.time_ms = r->now_ms;
	snprintf(row.actor, sizeof(row.actor), "hpr-1");
	snprintf(row.role, sizeof(row.role), "physician");
	snprintf(row.org, sizeof(row.org), "%s", org_of(r, shipper));
	snprintf(row.patient, sizeof(row.patient), "%s", PATIENT);
	snprintf(row.action, sizeof(row.action), "read");
	row.allowed = true;
	snprintf(row.basis, sizeof(row.basis), "relation");
	snprintf(row.outcome, sizeof(row.outcome), "OK");
	static uint8_t row_bytes[POLICY_AUDIT_ROW_BYTES_MAX];
	size_t row_len = 0;
	assert_int_equal(policy_audit_row_encode(&row, row_bytes, sizeof(row_bytes), &row_len),
	                 CARELOG_OK);
	static struct policy_body batch;
	memset(&batch, 0, sizeof(batch));
	batch.kind = POLICY_KIND_AUDIT_BATCH;
	batch.node_id = shipper;
	batch.first_seq = 1;
	batch.rows_count = 1;
	batch.rows[0] = row_bytes;
	batch.rows_len[0] = row_len;
	static uint8_t body[8192];
	size_t body_len = 0;
	assert_int_equal(policy_body_encode(&batch, body, sizeof(body), &body_len), CARELOG_OK);
	char actor[32], request_id[64];
	snprintf(actor, sizeof(actor), "node-%llu", (unsigned long long)shipper);
	snprintf(request_id, sizeof(request_id), "audit-%llu-1-1", (unsigned long long)shipper);
	struct proto_request req;
	memset(&req, 0, sizeof(req));
	req.version = PROTO_VERSION;
	req.op = PROTO_OP_APPEND;
	req.actor.id = str(actor);
	req.actor.role = str("system");
	req.u.append.patient = str(POLICY_REGION_PATIENT);
	req.u.append.kind = str("audit-batch");
	req.u.append.request_id = str(request_id); /* media type left out: the policy one */
	req.u.append.body = (struct proto_str){(const char *)body, body_len};
	submit(r, shipper, 1, &req);
	tick_all(r, 3);
	assert_int_equal(answer(r, 1)->r.err, CARELOG_OK);
	assert_converged(r, answer(r, 1)->r.index);
	for (uint32_t i = 0; i < VOTERS; i++) {
		struct storage_txn *t = NULL;
		assert_int_equal(storage_txn_begin_read(r->nodes[i].s, &t), CARELOG_OK);
		size_t seen = 0;
		assert_int_equal(access_log_query(t, PATIENT, "", "", 10, count_row, &seen),
		                 CARELOG_OK);
		storage_txn_abort(t);
		assert_int_equal(seen, 1);
		assert_int_equal(patient_rows_at(&r->nodes[i], POLICY_REGION_PATIENT), 0);
		assert_verify_ok(&r->nodes[i]); /* accepted, and rightly in no patient's index */
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_region_follower_append_is_forwarded_signed_by_its_org_and_committed, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_region_linearizable_read_point_comes_from_the_leader, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_region_isolated_leader_gives_no_read_point_and_majority_moves_on, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_region_forward_lost_to_an_isolated_leader_commits_after_the_election, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_region_joining_learner_catches_up_and_serves_a_read_point, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_region_promote_transfer_and_remove, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(
	        test_region_refused_append_is_recorded_identically_on_every_node, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_region_erasure_removes_the_body_on_every_node_and_verify_passes, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(test_region_audit_batch_is_indexed_on_every_node, setup,
	                                    teardown),
	};
	return cmocka_run_group_tests_name("daemon_region", tests, NULL, NULL);
}
