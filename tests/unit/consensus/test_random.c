/* Randomised scenarios on the fixture: loss, duplication, reordering, partitions, restarts,
 * membership changes and transfers, with Raft's safety properties checked after every step
 * (a small cousin of the simulator in tests/sim; the seed is printed on failure). */
#include "fixture.h"

#include "carelog/errors.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	RND_SEEDS = 300,
	RND_STEPS = 1500,
	RND_TERMS_MAX = 4096,
	RND_NODES = 6,
	RND_LIVENESS_TICKS_MAX = 400,
};

static uint64_t rnd_next(uint64_t *s)
{
	*s += 0x9E3779B97F4A7C15ull;
	uint64_t z = *s;
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static uint32_t rnd(uint64_t *s, uint32_t n)
{
	return (uint32_t)(rnd_next(s) % n);
}

struct checker {
	consensus_node_id leader_of_term[RND_TERMS_MAX];
	uint64_t seed;
	/* ReadIndex: the highest commit any node knew when read `ctx` (the step) was asked. */
	uint64_t read_floor[RND_STEPS];
	uint32_t reads_checked[FX_NODES_MAX];
};

static struct fx_cluster *current;

static void dump(struct fx_cluster *cl)
{
	for (consensus_node_id id = 1; id <= cl->count; id++) {
		struct fx_node *n = fx_node(cl, id);
		struct consensus_status st;
		consensus_get_status(n->c, &st);
		fprintf(stderr,
		        "  node %llu role %u term %llu vote %llu lead %llu commit %llu applied "
		        "%llu last %llu voters",
		        (unsigned long long)id, st.soft_state.role,
		        (unsigned long long)st.hard_state.term,
		        (unsigned long long)st.hard_state.vote,
		        (unsigned long long)st.soft_state.leader,
		        (unsigned long long)st.hard_state.commit, (unsigned long long)st.applied,
		        (unsigned long long)n->log.count);
		for (uint32_t i = 0; i < n->voters_count; i++) {
			fprintf(stderr, " %llu", (unsigned long long)n->voters[i]);
		}
		fprintf(stderr, " lastterm %llu out",
		        (unsigned long long)fx_log_term(cl, id, n->log.count));
		for (uint32_t i = 0; i < n->voters_out_count; i++) {
			fprintf(stderr, " %llu", (unsigned long long)n->voters_out[i]);
		}
		fprintf(stderr, " learners");
		for (uint32_t i = 0; i < n->learners_count; i++) {
			fprintf(stderr, " %llu", (unsigned long long)n->learners[i]);
		}
		fprintf(stderr, "\n");
	}
}

static void violation(const struct checker *k, const char *what)
{
	if (current != NULL) {
		dump(current);
	}
	fprintf(stderr, "random scenario seed %llu: %s\n", (unsigned long long)k->seed, what);
	fail_msg("%s", what);
}

static void check(struct fx_cluster *cl, struct checker *k)
{
	for (consensus_node_id id = 1; id <= cl->count; id++) {
		if (fx_role(cl, id) == CONSENSUS_ROLE_LEADER) {
			uint64_t t = fx_term(cl, id);
			if (t < RND_TERMS_MAX) {
				if (k->leader_of_term[t] != 0 && k->leader_of_term[t] != id) {
					violation(k, "two leaders in one term");
				}
				k->leader_of_term[t] = id;
			}
		}
	}
	/* Linearizable reads: the read point covers everything committed before the request. */
	for (consensus_node_id id = 1; id <= cl->count; id++) {
		struct fx_node *n = fx_node(cl, id);
		for (uint32_t i = k->reads_checked[id - 1]; i < n->reads_count; i++) {
			if (n->reads[i].ctx >= RND_STEPS ||
			    n->reads[i].index < k->read_floor[n->reads[i].ctx]) {
				violation(k, "read index below a commit that preceded the read");
			}
		}
		k->reads_checked[id - 1] = n->reads_count;
		if (n->reads_count > FX_READS_MAX / 2) {
			n->reads_count = 0;
			k->reads_checked[id - 1] = 0;
		}
	}
	/* Committed prefixes agree (log matching + leader completeness), and applied sequences
	 * are prefixes of one another. */
	for (consensus_node_id a = 1; a <= cl->count; a++) {
		for (consensus_node_id b = a + 1; b <= cl->count; b++) {
			struct fx_node *na = fx_node(cl, a);
			struct fx_node *nb = fx_node(cl, b);
			uint64_t ca = na->hs.commit < na->log.count ? na->hs.commit : na->log.count;
			uint64_t cb = nb->hs.commit < nb->log.count ? nb->hs.commit : nb->log.count;
			uint64_t upto = ca < cb ? ca : cb;
			for (uint64_t i = 1; i <= upto; i++) {
				if (fx_log_term(cl, a, i) != fx_log_term(cl, b, i)) {
					violation(k, "committed entries differ");
				}
			}
			uint32_t n = na->applied_count < nb->applied_count ? na->applied_count
			                                                   : nb->applied_count;
			for (uint32_t i = 0; i < n; i++) {
				if (na->applied_entries[i].term != nb->applied_entries[i].term ||
				    strcmp(na->applied_entries[i].data,
				           nb->applied_entries[i].data) != 0) {
					violation(k, "applied sequences differ");
				}
			}
		}
	}
}

static bool member_is(struct fx_node *n, const consensus_node_id *ids, uint32_t count,
                      consensus_node_id id)
{
	(void)n;
	for (uint32_t i = 0; i < count; i++) {
		if (ids[i] == id) {
			return true;
		}
	}
	return false;
}

static void membership_step(struct fx_cluster *cl, consensus_node_id leader, uint64_t *s)
{
	struct fx_node *n = fx_node(cl, leader);
	consensus_node_id target = 5 + rnd(s, 2);
	struct consensus_conf_change cc = {.count = 1};
	cc.changes[0].node_id = target;
	if (member_is(n, n->voters, n->voters_count, target)) {
		cc.changes[0].op = rnd(s, 2) ? CONSENSUS_CONF_REMOVE : CONSENSUS_CONF_ADD_LEARNER;
	} else if (member_is(n, n->learners, n->learners_count, target)) {
		cc.changes[0].op = rnd(s, 2) ? CONSENSUS_CONF_ADD_VOTER : CONSENSUS_CONF_REMOVE;
	} else {
		cc.changes[0].op = CONSENSUS_CONF_ADD_LEARNER;
	}
	if (rnd(s, 4) == 0) {
		/* Two voters at once: joint consensus, left automatically. */
		cc.count = 2;
		cc.changes[0].op = CONSENSUS_CONF_ADD_VOTER;
		cc.changes[0].node_id = 5;
		cc.changes[1].op = CONSENSUS_CONF_ADD_VOTER;
		cc.changes[1].node_id = 6;
		if (member_is(n, n->voters, n->voters_count, 5)) {
			cc.changes[0].op = CONSENSUS_CONF_ADD_LEARNER;
			cc.changes[1].op = CONSENSUS_CONF_ADD_LEARNER;
		}
	}
	int rc = consensus_propose_conf_change(n->c, &cc, NULL, 0, NULL);
	assert_true(rc == CARELOG_OK || rc == CARELOG_EBUSY || rc == CARELOG_ECLOSED ||
	            rc == CARELOG_EINVAL);
	fx_process(cl, leader);
}

struct totals {
	uint64_t applied;
	uint64_t terms;
	uint64_t conf_applied;
	uint64_t reads;
};
static struct totals totals;

static void run_seed(uint64_t seed)
{
	uint64_t s = seed;
	uint32_t voters = 3 + rnd(&s, 2);
	struct fx_options o = {
	    .voters = voters,
	    .extra = RND_NODES - voters,
	    .pre_vote = rnd(&s, 2) == 1,
	    .check_quorum = rnd(&s, 2) == 1,
	    .inflight_msgs_max = 1 + rnd(&s, 4),
	    .append_bytes_max = 8 + rnd(&s, 64),
	    .seed = seed,
	};
	struct fx_cluster *cl = fx_new(&o);
	current = cl;
	static struct checker k;
	memset(&k, 0, sizeof(k));
	k.seed = seed;
	uint32_t loss_pct = rnd(&s, 20);
	uint64_t proposals = 0;
	for (uint32_t step = 0; step < RND_STEPS; step++) {
		uint32_t a = rnd(&s, 1000);
		consensus_node_id leader = fx_find_leader(cl);
		if (a < 450) {
			if (cl->pending_count > 0) {
				uint32_t i = rnd(&s, cl->pending_count);
				if (rnd(&s, 100) < loss_pct) {
					cl->pending[i].m.to = 99; /* undeliverable: lost */
				}
				fx_deliver_at(cl, i, rnd(&s, 100) < 3);
			}
		} else if (a < 800) {
			fx_tick(cl, 1 + rnd(&s, cl->count), 1);
		} else if (a < 900) {
			if (leader != 0) {
				char text[32];
				snprintf(text, sizeof(text), "p%llu",
				         (unsigned long long)proposals++);
				int rc = fx_propose(cl, leader, text);
				assert_true(rc == CARELOG_OK || rc == CARELOG_ECLOSED ||
				            rc == CARELOG_EBUSY);
			}
		} else if (a < 920) {
			fx_heal(cl);
			if (rnd(&s, 2)) {
				fx_isolate(cl, 1 + rnd(&s, cl->count));
			}
		} else if (a < 930) {
			consensus_node_id id = 1 + rnd(&s, cl->count);
			fx_restart(cl, id);
		} else if (a < 950) {
			consensus_node_id id = 1 + rnd(&s, cl->count);
			uint64_t floor = 0;
			for (consensus_node_id j = 1; j <= cl->count; j++) {
				uint64_t cj = fx_commit(cl, j);
				floor = cj > floor ? cj : floor;
			}
			k.read_floor[step] = floor;
			int rc = consensus_read_index(fx_core(cl, id), step);
			assert_true(rc == CARELOG_OK || rc == CARELOG_ENOTLEADER ||
			            rc == CARELOG_EBUSY);
			fx_process(cl, id);
		} else if (a < 970) {
			if (leader != 0) {
				membership_step(cl, leader, &s);
			}
		} else if (a < 980) {
			if (leader != 0) {
				int rc = consensus_transfer_leader(fx_core(cl, leader),
				                                   1 + rnd(&s, cl->count));
				(void)rc;
				fx_process(cl, leader);
			}
		} else if (a < 995) {
			/* A slow disk: the node keeps stepping without draining ready batches. */
			struct fx_node *n = fx_node(cl, 1 + rnd(&s, cl->count));
			n->hold_ready = !n->hold_ready;
			fx_process(cl, n->id);
		} else {
			fx_drop_pending(cl);
		}
		check(cl, &k);
	}
	/* Liveness: heal everything; a leader emerges and commits a new entry everywhere. */
	fx_heal(cl);
	for (consensus_node_id id = 1; id <= cl->count; id++) {
		fx_node(cl, id)->hold_ready = false;
	}
	/* Liveness: with the network healed, a new entry commits within a bound. Without
	 * pre-vote, nodes whose logs are behind can keep winning the timeout race and splitting
	 * votes (or deposing a fresh leader) for a while, so the bound is generous. */
	bool committed = false;
	for (uint32_t t = 0; t < RND_LIVENESS_TICKS_MAX && !committed; t++) {
		consensus_node_id leader = fx_find_leader(cl);
		if (leader != 0 && t % 20 == 0) {
			(void)fx_propose(cl, leader, "final");
		}
		fx_tick_all(cl, 1);
		for (consensus_node_id id = 1; id <= cl->count && !committed; id++) {
			struct fx_node *n = fx_node(cl, id);
			for (uint32_t i = 0; i < n->applied_count; i++) {
				committed =
				    committed || strcmp(n->applied_entries[i].data, "final") == 0;
			}
		}
	}
	if (!committed) {
		violation(&k, "no commit progress after healing");
	}
	check(cl, &k);
	for (consensus_node_id id = 1; id <= cl->count; id++) {
		struct fx_node *n = fx_node(cl, id);
		totals.reads += k.reads_checked[id - 1];
		if (id == 1) {
			totals.applied += n->applied_count;
			totals.terms += fx_term(cl, id);
			for (uint32_t i = 0; i < n->applied_count; i++) {
				totals.conf_applied +=
				    n->applied_entries[i].type == CONSENSUS_ENTRY_CONF;
			}
		}
	}
	fx_free(cl);
}

static void test_random_faults_keep_raft_safety_and_liveness(void **state)
{
	(void)state;
	const char *env = getenv("CONSENSUS_RANDOM_SEEDS");
	uint64_t seeds = env != NULL ? strtoull(env, NULL, 10) : RND_SEEDS;
	for (uint64_t seed = 1; seed <= seeds; seed++) {
		run_seed(seed);
	}
	printf("random scenarios: %llu seeds, node 1 applied %llu entries (%llu conf), %llu terms, "
	       "%llu reads answered\n",
	       (unsigned long long)seeds, (unsigned long long)totals.applied,
	       (unsigned long long)totals.conf_applied, (unsigned long long)totals.terms,
	       (unsigned long long)totals.reads);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_random_faults_keep_raft_safety_and_liveness),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
