/* Scenario tests: terms, votes and elections (Raft paper 5.1, 5.2, 5.4.1; thesis 4.2.3, 6.2,
 * 9.6). */
#include "fixture.h"

#include "carelog/errors.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

static struct fx_cluster *cluster(uint32_t voters, bool pre_vote, bool check_quorum)
{
	struct fx_options o = {
	    .voters = voters, .pre_vote = pre_vote, .check_quorum = check_quorum};
	return fx_new(&o);
}

static void test_single_voter_elects_itself_and_commits_its_noop(void **state)
{
	(void)state;
	struct fx_cluster *cl = cluster(1, false, false);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	assert_int_equal(fx_term(cl, 1), 1);
	/* The no-op is committed and applied once it is persisted. */
	assert_int_equal(fx_commit(cl, 1), 1);
	assert_int_equal(fx_node(cl, 1)->applied, 1);
	fx_free(cl);
}

/* etcd-io/raft TestLeaderElection: outcomes by how many voters answer. */
static void test_election_outcome_by_cluster_size_and_reachable_voters(void **state)
{
	(void)state;
	struct {
		uint32_t voters;
		uint32_t down;
		uint8_t role;
	} cases[] = {
	    {1, 0, CONSENSUS_ROLE_LEADER},    {3, 0, CONSENSUS_ROLE_LEADER},
	    {3, 1, CONSENSUS_ROLE_LEADER},    {3, 2, CONSENSUS_ROLE_CANDIDATE},
	    {5, 0, CONSENSUS_ROLE_LEADER},    {5, 2, CONSENSUS_ROLE_LEADER},
	    {5, 3, CONSENSUS_ROLE_CANDIDATE},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (int pre = 0; pre < 2; pre++) {
			struct fx_cluster *cl = cluster(cases[i].voters, pre == 1, false);
			for (uint32_t d = 0; d < cases[i].down; d++) {
				fx_isolate(cl, cases[i].voters - d);
			}
			uint8_t want = cases[i].role;
			if (pre == 1 && want == CONSENSUS_ROLE_CANDIDATE) {
				want = CONSENSUS_ROLE_PRE_CANDIDATE;
			}
			assert_int_equal(fx_elect(cl, 1), want);
			assert_int_equal(fx_term(cl, 1),
			                 want == CONSENSUS_ROLE_PRE_CANDIDATE ? 0 : 1);
			if (want == CONSENSUS_ROLE_LEADER) {
				for (uint32_t n = 2; n <= cases[i].voters - cases[i].down; n++) {
					assert_int_equal(fx_leader(cl, n), 1);
					assert_int_equal(fx_term(cl, n), 1);
				}
			}
			fx_free(cl);
		}
	}
}

static void test_higher_term_message_updates_term_and_deposes_leader(void **state)
{
	(void)state;
	struct fx_cluster *cl = cluster(3, false, false);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	struct consensus_message hb = {
	    .type = CONSENSUS_MSG_HEARTBEAT,
	    .from = 2,
	    .to = 1,
	    .term = 5,
	};
	assert_int_equal(fx_step(cl, &hb), CARELOG_OK);
	assert_int_equal(fx_role(cl, 1), CONSENSUS_ROLE_FOLLOWER);
	assert_int_equal(fx_term(cl, 1), 5);
	assert_int_equal(fx_leader(cl, 1), 2);
	/* The new term is persisted with no vote. */
	assert_int_equal(fx_node(cl, 1)->hs.term, 5);
	assert_int_equal(fx_node(cl, 1)->hs.vote, 0);
	fx_free(cl);
}

static void test_stale_term_message_is_dropped(void **state)
{
	(void)state;
	struct fx_cluster *cl = cluster(3, false, false);
	fx_set_log(cl, 1, NULL, 0, 3, 0, 0);
	fx_drop_pending(cl);
	struct consensus_message app = {
	    .type = CONSENSUS_MSG_APPEND,
	    .from = 2,
	    .to = 1,
	    .term = 2,
	};
	struct consensus_entry e = {.term = 2, .index = 1};
	app.entries = &e;
	app.entries_count = 1;
	assert_int_equal(fx_step(cl, &app), CARELOG_OK);
	assert_int_equal(fx_term(cl, 1), 3);
	assert_int_equal(fx_log_last(cl, 1), 0);
	assert_int_equal(fx_leader(cl, 1), 0);
	assert_int_equal(cl->pending_count, 0);
	struct consensus_message vote = {
	    .type = CONSENSUS_MSG_VOTE,
	    .from = 2,
	    .to = 1,
	    .term = 2,
	};
	assert_int_equal(fx_step(cl, &vote), CARELOG_OK);
	assert_int_equal(fx_node(cl, 1)->hs.vote, 0);
	assert_int_equal(cl->pending_count, 0);
	fx_free(cl);
}

static void test_stale_leader_told_new_term_when_check_quorum(void **state)
{
	(void)state;
	struct fx_cluster *cl = cluster(3, false, true);
	fx_set_log(cl, 1, NULL, 0, 3, 0, 0);
	struct consensus_message hb = {
	    .type = CONSENSUS_MSG_HEARTBEAT, .from = 2, .to = 1, .term = 2};
	assert_int_equal(fx_step(cl, &hb), CARELOG_OK);
	const struct consensus_message *r = fx_find_pending(cl, CONSENSUS_MSG_APPEND_RESP, 1, 2);
	assert_non_null(r);
	assert_int_equal(r->term, 3);
	fx_free(cl);
}

static void test_one_vote_per_term(void **state)
{
	(void)state;
	struct fx_cluster *cl = cluster(3, false, false);
	struct consensus_message v2 = {.type = CONSENSUS_MSG_VOTE, .from = 2, .to = 1, .term = 1};
	struct consensus_message v3 = {.type = CONSENSUS_MSG_VOTE, .from = 3, .to = 1, .term = 1};
	assert_int_equal(fx_step(cl, &v2), CARELOG_OK);
	assert_int_equal(fx_node(cl, 1)->hs.vote, 2);
	const struct consensus_message *r = fx_find_pending(cl, CONSENSUS_MSG_VOTE_RESP, 1, 2);
	assert_non_null(r);
	assert_false(r->reject);
	assert_int_equal(fx_step(cl, &v3), CARELOG_OK);
	r = fx_find_pending(cl, CONSENSUS_MSG_VOTE_RESP, 1, 3);
	assert_non_null(r);
	assert_true(r->reject);
	assert_int_equal(fx_node(cl, 1)->hs.vote, 2);
	/* A repeated request from the same candidate (its answer was lost) is granted again. */
	fx_drop_pending(cl);
	assert_int_equal(fx_step(cl, &v2), CARELOG_OK);
	r = fx_find_pending(cl, CONSENSUS_MSG_VOTE_RESP, 1, 2);
	assert_non_null(r);
	assert_false(r->reject);
	/* A restart keeps the vote (it was persisted before the answer left). */
	fx_restart(cl, 1);
	fx_drop_pending(cl);
	assert_int_equal(fx_step(cl, &v3), CARELOG_OK);
	r = fx_find_pending(cl, CONSENSUS_MSG_VOTE_RESP, 1, 3);
	assert_true(r->reject);
	fx_free(cl);
}

static void test_vote_refused_to_candidate_whose_log_is_behind(void **state)
{
	(void)state;
	struct fx_cluster *cl = cluster(3, false, false);
	uint64_t terms[] = {1, 1, 2};
	fx_set_log(cl, 1, terms, 3, 2, 0, 0);
	struct {
		uint64_t last_term;
		uint64_t last_index;
		bool granted;
	} cases[] = {
	    {1, 5, false},               /* lower last term loses even with a longer log */
	    {2, 2, false},               /* same term, shorter */
	    {2, 3, true},                /* same term, same length */
	    {2, 9, true},  {3, 1, true}, /* higher last term wins */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fx_drop_pending(cl);
		struct consensus_message v = {
		    .type = CONSENSUS_MSG_VOTE,
		    .from = 2,
		    .to = 1,
		    .term = 3 + i,
		    .log_term = cases[i].last_term,
		    .index = cases[i].last_index,
		};
		assert_int_equal(fx_step(cl, &v), CARELOG_OK);
		const struct consensus_message *r =
		    fx_find_pending(cl, CONSENSUS_MSG_VOTE_RESP, 1, 2);
		assert_non_null(r);
		assert_int_equal(r->reject, !cases[i].granted);
		assert_int_equal(fx_node(cl, 1)->hs.vote, cases[i].granted ? 2 : 0);
	}
	fx_free(cl);
}

static void test_vote_answer_waits_for_durable_vote(void **state)
{
	(void)state;
	struct fx_cluster *cl = cluster(3, false, false);
	struct fx_node *n = fx_node(cl, 1);
	struct consensus_message v = {.type = CONSENSUS_MSG_VOTE, .from = 2, .to = 1, .term = 1};
	assert_int_equal(consensus_step(n->c, &v), CARELOG_OK);
	struct consensus_ready rd;
	assert_int_equal(consensus_ready(n->c, &rd), CARELOG_OK);
	assert_true(rd.hard_state_changed);
	assert_int_equal(rd.hard_state.vote, 2);
	assert_int_equal(rd.hard_state.term, 1);
	assert_int_equal(rd.messages_early_count, 0);
	assert_int_equal(rd.messages_count, 1);
	assert_int_equal(rd.messages[0].type, CONSENSUS_MSG_VOTE_RESP);
	consensus_advance(n->c, &rd);
	assert_false(consensus_has_ready(n->c));
	fx_free(cl);
}

/* A vote granted but overtaken by a higher term before the disk write is never durable, so
 * its answer must not leave. */
static void test_vote_overtaken_by_a_higher_term_before_persisting_is_not_sent(void **state)
{
	(void)state;
	struct fx_cluster *cl = cluster(3, false, false);
	struct fx_node *n = fx_node(cl, 1);
	n->hold_ready = true;
	struct consensus_message v = {.type = CONSENSUS_MSG_VOTE, .from = 2, .to = 1, .term = 4};
	assert_int_equal(consensus_step(n->c, &v), CARELOG_OK);
	struct consensus_message v3 = {.type = CONSENSUS_MSG_VOTE, .from = 3, .to = 1, .term = 5};
	assert_int_equal(consensus_step(n->c, &v3), CARELOG_OK);
	struct consensus_ready rd;
	assert_true(fx_ready_once(cl, 1, &rd));
	assert_int_equal(rd.hard_state.term, 5);
	assert_int_equal(rd.hard_state.vote, 3);
	assert_int_equal(fx_count_pending(cl, CONSENSUS_MSG_VOTE_RESP, 1, 2), 0);
	const struct consensus_message *r = fx_find_pending(cl, CONSENSUS_MSG_VOTE_RESP, 1, 3);
	assert_non_null(r);
	assert_false(r->reject);
	fx_free(cl);
}

/* etcd-io/raft TestDuelingCandidates: without pre-vote a cut-off node deposes the leader. */
static void test_dueling_candidates_without_pre_vote(void **state)
{
	(void)state;
	struct fx_cluster *cl = cluster(3, false, false);
	fx_cut(cl, 1, 3);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	/* 3 cannot win: 2 already voted in term 1. */
	assert_int_equal(fx_elect(cl, 3), CONSENSUS_ROLE_CANDIDATE);
	fx_heal(cl);
	/* 3 campaigns again at term 2: everybody moves to term 2, but 3's log is behind. */
	assert_int_equal(fx_elect(cl, 3), CONSENSUS_ROLE_FOLLOWER);
	for (consensus_node_id id = 1; id <= 3; id++) {
		assert_int_equal(fx_term(cl, id), 2);
		assert_int_equal(fx_role(cl, id), CONSENSUS_ROLE_FOLLOWER);
	}
	fx_free(cl);
}

/* etcd-io/raft TestDuelingPreCandidates: with pre-vote the leader keeps its term. */
static void test_dueling_candidates_with_pre_vote(void **state)
{
	(void)state;
	struct fx_cluster *cl = cluster(3, true, false);
	fx_cut(cl, 1, 3);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	assert_int_equal(fx_elect(cl, 3), CONSENSUS_ROLE_FOLLOWER);
	fx_heal(cl);
	assert_int_equal(fx_elect(cl, 3), CONSENSUS_ROLE_FOLLOWER);
	assert_int_equal(fx_role(cl, 1), CONSENSUS_ROLE_LEADER);
	for (consensus_node_id id = 1; id <= 2; id++) {
		assert_int_equal(fx_term(cl, id), 1);
	}
	/* 3 learned term 1 from the rejections of its pre-votes, and follows 1 now. */
	assert_int_equal(fx_term(cl, 3), 1);
	fx_tick_all(cl, 1);
	assert_int_equal(fx_leader(cl, 3), 1);
	fx_free(cl);
}

static void test_rejoining_partitioned_node_does_not_depose_leader_with_pre_vote(void **state)
{
	(void)state;
	for (int pre = 0; pre < 2; pre++) {
		struct fx_cluster *cl = cluster(3, pre == 1, false);
		assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
		assert_int_equal(fx_propose(cl, 1, "a"), CARELOG_OK);
		fx_deliver(cl);
		fx_isolate(cl, 3);
		/* Long enough for several election timeouts at node 3. */
		for (int t = 0; t < 60; t++) {
			fx_tick(cl, 3, 1);
			fx_drop_pending(cl);
		}
		fx_heal(cl);
		fx_tick_all(cl, 30);
		if (pre == 1) {
			assert_int_equal(fx_role(cl, 1), CONSENSUS_ROLE_LEADER);
			assert_int_equal(fx_term(cl, 1), 1);
			assert_int_equal(fx_term(cl, 3), 1);
			assert_int_equal(fx_leader(cl, 3), 1);
		} else {
			/* Without pre-vote node 3's inflated term disrupts the leader. */
			assert_true(fx_term(cl, 1) > 1);
		}
		fx_free(cl);
	}
}

static void test_leader_steps_down_without_quorum(void **state)
{
	(void)state;
	struct fx_cluster *cl = cluster(3, false, true);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	fx_isolate(cl, 1);
	/* One election timeout may pass with the votes of the election counted as contact. */
	fx_tick(cl, 1, 10);
	fx_drop_pending(cl);
	assert_int_equal(fx_role(cl, 1), CONSENSUS_ROLE_LEADER);
	fx_tick(cl, 1, 10);
	assert_int_equal(fx_role(cl, 1), CONSENSUS_ROLE_FOLLOWER);
	assert_int_equal(fx_term(cl, 1), 1);
	assert_int_equal(consensus_propose(fx_core(cl, 1), NULL, 0, NULL), CARELOG_ENOTLEADER);
	fx_free(cl);
}

static void test_leader_with_quorum_keeps_leading_under_check_quorum(void **state)
{
	(void)state;
	struct fx_cluster *cl = cluster(3, false, true);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	fx_isolate(cl, 3);
	for (int t = 0; t < 50; t++) {
		fx_tick(cl, 1, 1);
		fx_tick(cl, 2, 1);
		fx_deliver(cl);
	}
	assert_int_equal(fx_role(cl, 1), CONSENSUS_ROLE_LEADER);
	assert_int_equal(fx_term(cl, 1), 1);
	fx_free(cl);
}

/* etcd-io/raft TestFreeStuckCandidateWithCheckQuorum. */
static void test_stuck_candidate_freed_after_heal(void **state)
{
	(void)state;
	struct fx_cluster *cl = cluster(3, false, true);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	fx_isolate(cl, 3);
	for (int t = 0; t < 50; t++) {
		fx_tick_all(cl, 1);
	}
	assert_int_equal(fx_role(cl, 3), CONSENSUS_ROLE_CANDIDATE);
	assert_int_equal(fx_role(cl, 1), CONSENSUS_ROLE_LEADER);
	uint64_t stuck_term = fx_term(cl, 3);
	assert_true(stuck_term > fx_term(cl, 1));
	fx_heal(cl);
	/* The leader's heartbeat reaches 3, whose answer carries the higher term: the leader
	 * steps down and a new election at a higher term follows. */
	for (int t = 0;
	     t < 60 && fx_find_leader(cl) == 0 ? true
	                                       : fx_term(cl, fx_find_leader(cl)) <= stuck_term;
	     t++) {
		fx_tick_all(cl, 1);
	}
	consensus_node_id leader = fx_find_leader(cl);
	assert_true(leader != 0);
	assert_true(fx_term(cl, leader) > stuck_term);
	fx_tick_all(cl, 2);
	for (consensus_node_id id = 1; id <= 3; id++) {
		assert_int_equal(fx_leader(cl, id), leader);
	}
	fx_free(cl);
}

static void test_follower_in_lease_ignores_vote_requests(void **state)
{
	(void)state;
	struct fx_cluster *cl = cluster(3, false, true);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	struct consensus_message v = {
	    .type = CONSENSUS_MSG_VOTE,
	    .from = 3,
	    .to = 2,
	    .term = 5,
	    .log_term = 9,
	    .index = 9,
	};
	assert_int_equal(fx_step(cl, &v), CARELOG_OK);
	assert_int_equal(fx_term(cl, 2), 1);
	assert_null(fx_find_pending(cl, CONSENSUS_MSG_VOTE_RESP, 2, 3));
	/* A transfer campaign is honoured. */
	v.transfer = true;
	assert_int_equal(fx_step(cl, &v), CARELOG_OK);
	assert_int_equal(fx_term(cl, 2), 5);
	assert_non_null(fx_find_pending(cl, CONSENSUS_MSG_VOTE_RESP, 2, 3));
	fx_free(cl);
}

static void test_learner_never_campaigns(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 2, .learners = 1};
	struct fx_cluster *cl = fx_new(&o);
	fx_tick(cl, 3, 100);
	assert_int_equal(fx_role(cl, 3), CONSENSUS_ROLE_FOLLOWER);
	assert_int_equal(fx_term(cl, 3), 0);
	assert_int_equal(cl->pending_count, 0);
	assert_int_equal(consensus_campaign(fx_core(cl, 3)), CARELOG_OK);
	assert_int_equal(fx_term(cl, 3), 0);
	struct consensus_message tn = {
	    .type = CONSENSUS_MSG_TIMEOUT_NOW, .from = 1, .to = 3, .term = 0};
	assert_int_equal(fx_step(cl, &tn), CARELOG_OK);
	assert_int_equal(fx_role(cl, 3), CONSENSUS_ROLE_FOLLOWER);
	/* The learner still replicates. */
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	assert_int_equal(fx_propose(cl, 1, "x"), CARELOG_OK);
	fx_deliver(cl);
	assert_true(fx_logs_equal(cl, 1, 3));
	assert_int_equal(fx_commit(cl, 3), 2);
	fx_free(cl);
}

static void test_randomised_timeouts_elect_one_leader(void **state)
{
	(void)state;
	for (uint64_t seed = 1; seed <= 20; seed++) {
		struct fx_options o = {
		    .voters = 5, .pre_vote = seed % 2 == 0, .check_quorum = true, .seed = seed};
		struct fx_cluster *cl = fx_new(&o);
		fx_tick_all(cl, 60);
		consensus_node_id leader = fx_find_leader(cl);
		assert_true(leader != 0);
		uint32_t leaders = 0;
		for (consensus_node_id id = 1; id <= 5; id++) {
			leaders += fx_role(cl, id) == CONSENSUS_ROLE_LEADER ? 1u : 0u;
			assert_int_equal(fx_leader(cl, id), leader);
		}
		assert_int_equal(leaders, 1);
		fx_free(cl);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_single_voter_elects_itself_and_commits_its_noop),
	    cmocka_unit_test(test_election_outcome_by_cluster_size_and_reachable_voters),
	    cmocka_unit_test(test_higher_term_message_updates_term_and_deposes_leader),
	    cmocka_unit_test(test_stale_term_message_is_dropped),
	    cmocka_unit_test(test_stale_leader_told_new_term_when_check_quorum),
	    cmocka_unit_test(test_one_vote_per_term),
	    cmocka_unit_test(test_vote_refused_to_candidate_whose_log_is_behind),
	    cmocka_unit_test(test_vote_answer_waits_for_durable_vote),
	    cmocka_unit_test(test_vote_overtaken_by_a_higher_term_before_persisting_is_not_sent),
	    cmocka_unit_test(test_dueling_candidates_without_pre_vote),
	    cmocka_unit_test(test_dueling_candidates_with_pre_vote),
	    cmocka_unit_test(test_rejoining_partitioned_node_does_not_depose_leader_with_pre_vote),
	    cmocka_unit_test(test_leader_steps_down_without_quorum),
	    cmocka_unit_test(test_leader_with_quorum_keeps_leading_under_check_quorum),
	    cmocka_unit_test(test_stuck_candidate_freed_after_heal),
	    cmocka_unit_test(test_follower_in_lease_ignores_vote_requests),
	    cmocka_unit_test(test_learner_never_campaigns),
	    cmocka_unit_test(test_randomised_timeouts_elect_one_leader),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
