/* Scenario tests: membership changes, learners, joint consensus (Raft thesis 4.1-4.3;
 * etcd-io/raft ConfChangeV2 semantics: a configuration takes effect when applied). */
#include "fixture.h"

#include "carelog/errors.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

static bool is_in(const consensus_node_id *ids, uint32_t n, consensus_node_id id)
{
	for (uint32_t i = 0; i < n; i++) {
		if (ids[i] == id) {
			return true;
		}
	}
	return false;
}

static void test_removing_a_node_lowers_the_quorum_only_when_applied(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 4};
	struct fx_cluster *cl = fx_new(&o);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	fx_node(cl, 1)->defer_conf = true;
	assert_int_equal(fx_conf(cl, 1, CONSENSUS_CONF_REMOVE, 4), CARELOG_OK);
	fx_deliver(cl);
	assert_int_equal(fx_commit(cl, 1), 2);
	assert_int_equal(fx_node(cl, 1)->deferred_count, 1);
	/* Committed but not applied: 4 voters still, a quorum is 3. */
	fx_isolate(cl, 3);
	fx_isolate(cl, 4);
	assert_int_equal(fx_propose(cl, 1, "x"), CARELOG_OK);
	fx_deliver(cl);
	assert_int_equal(fx_commit(cl, 1), 2);
	/* Applied: {1,2,3}, and 1 + 2 are a majority. */
	fx_apply_deferred(cl, 1);
	fx_deliver(cl);
	assert_int_equal(fx_commit(cl, 1), 3);
	assert_int_equal(fx_node(cl, 1)->voters_count, 3);
	assert_null(fx_progress(cl, 1, 4));
	fx_free(cl);
}

static void test_removed_leader_steps_down_after_the_removal_applies(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 3, .check_quorum = true, .pre_vote = true};
	struct fx_cluster *cl = fx_new(&o);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	fx_node(cl, 1)->defer_conf = true;
	assert_int_equal(fx_conf(cl, 1, CONSENSUS_CONF_REMOVE, 1), CARELOG_OK);
	fx_deliver(cl);
	assert_int_equal(fx_commit(cl, 1), 2);
	/* Still leading until it applies the change (it keeps replicating the commit). */
	assert_int_equal(fx_role(cl, 1), CONSENSUS_ROLE_LEADER);
	fx_apply_deferred(cl, 1);
	assert_int_equal(fx_role(cl, 1), CONSENSUS_ROLE_FOLLOWER);
	assert_int_equal(consensus_propose(fx_core(cl, 1), NULL, 0, NULL), CARELOG_ENOTLEADER);
	fx_isolate(cl, 1);
	fx_tick_all(cl, 40);
	consensus_node_id leader = fx_find_leader(cl);
	assert_true(leader == 2 || leader == 3);
	assert_int_equal(fx_node(cl, leader)->voters_count, 2);
	/* The removed node never campaigns. */
	assert_int_equal(fx_role(cl, 1), CONSENSUS_ROLE_FOLLOWER);
	assert_int_equal(fx_term(cl, 1), 1);
	fx_free(cl);
}

static int propose_joint(struct fx_cluster *cl, consensus_node_id leader, uint8_t transition)
{
	struct consensus_conf_change cc = {.transition = transition, .count = 2};
	cc.changes[0].op = CONSENSUS_CONF_ADD_VOTER;
	cc.changes[0].node_id = 4;
	cc.changes[1].op = CONSENSUS_CONF_ADD_VOTER;
	cc.changes[1].node_id = 5;
	int rc = consensus_propose_conf_change(fx_core(cl, leader), &cc, NULL, 0, NULL);
	fx_process(cl, leader);
	return rc;
}

static void test_joint_configuration_needs_both_majorities(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 3, .extra = 2};
	struct fx_cluster *cl = fx_new(&o);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	/* {1,2,3} -> {1,4,5}: two voters out, two in. */
	struct consensus_conf_change cc = {.transition = CONSENSUS_CONF_TRANSITION_EXPLICIT,
	                                   .count = 4};
	cc.changes[0].op = CONSENSUS_CONF_REMOVE;
	cc.changes[0].node_id = 2;
	cc.changes[1].op = CONSENSUS_CONF_REMOVE;
	cc.changes[1].node_id = 3;
	cc.changes[2].op = CONSENSUS_CONF_ADD_VOTER;
	cc.changes[2].node_id = 4;
	cc.changes[3].op = CONSENSUS_CONF_ADD_VOTER;
	cc.changes[3].node_id = 5;
	assert_int_equal(consensus_propose_conf_change(fx_core(cl, 1), &cc, NULL, 0, NULL),
	                 CARELOG_OK);
	fx_deliver(cl);
	struct fx_node *n = fx_node(cl, 1);
	assert_int_equal(n->voters_count, 3);
	assert_int_equal(n->voters_out_count, 3);
	assert_false(n->auto_leave);
	/* New majority {1,4,5} without the old one (only 1 of {1,2,3}): no commit. */
	fx_isolate(cl, 2);
	fx_isolate(cl, 3);
	uint64_t commit = fx_commit(cl, 1);
	assert_int_equal(fx_propose(cl, 1, "j"), CARELOG_OK);
	fx_tick_all(cl, 3);
	assert_int_equal(fx_commit(cl, 1), commit);
	/* "j" now reaches the old majority too and commits; "k" reaches only the old majority
	 * (only 1 of {1,4,5}): no commit. */
	fx_heal(cl);
	fx_isolate(cl, 4);
	fx_isolate(cl, 5);
	assert_int_equal(fx_propose(cl, 1, "k"), CARELOG_OK);
	fx_tick_all(cl, 3);
	assert_int_equal(fx_commit(cl, 1), commit + 1);
	/* One majority of each: {1,2} and {1,4}. */
	fx_heal(cl);
	fx_isolate(cl, 3);
	fx_isolate(cl, 5);
	fx_tick_all(cl, 3);
	assert_int_equal(fx_commit(cl, 1), commit + 2);
	/* A new change while joint is refused; leaving is explicit. */
	assert_int_equal(fx_conf(cl, 1, CONSENSUS_CONF_ADD_LEARNER, 2), CARELOG_EINVAL);
	fx_heal(cl);
	struct consensus_conf_change leave = {.count = 0};
	assert_int_equal(consensus_propose_conf_change(n->c, &leave, NULL, 0, NULL), CARELOG_OK);
	fx_deliver(cl);
	assert_int_equal(n->voters_out_count, 0);
	assert_int_equal(n->voters_count, 3);
	assert_null(fx_progress(cl, 1, 2));
	for (consensus_node_id id = 4; id <= 5; id++) {
		assert_true(fx_logs_equal(cl, 1, id));
		assert_int_equal(fx_node(cl, id)->voters_count, 3);
		assert_int_equal(fx_node(cl, id)->voters_out_count, 0);
	}
	fx_free(cl);
}

static void test_joint_configuration_is_left_automatically(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 3, .extra = 2};
	struct fx_cluster *cl = fx_new(&o);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	assert_int_equal(propose_joint(cl, 1, CONSENSUS_CONF_TRANSITION_AUTO), CARELOG_OK);
	fx_deliver(cl);
	fx_tick_all(cl, 2);
	struct fx_node *n = fx_node(cl, 1);
	assert_int_equal(n->voters_count, 5);
	assert_int_equal(n->voters_out_count, 0);
	assert_false(n->auto_leave);
	/* The leave entry is the empty conf change appended by the leader. */
	const struct fx_applied *last = &n->applied_entries[n->applied_count - 1];
	assert_int_equal(last->type, CONSENSUS_ENTRY_CONF);
	for (consensus_node_id id = 2; id <= 5; id++) {
		assert_int_equal(fx_node(cl, id)->voters_out_count, 0);
		assert_int_equal(fx_node(cl, id)->voters_count, 5);
	}
	/* All five vote now: isolating two old voters leaves a working majority. */
	fx_isolate(cl, 2);
	fx_isolate(cl, 3);
	uint64_t commit = fx_commit(cl, 1);
	assert_int_equal(fx_propose(cl, 1, "five"), CARELOG_OK);
	fx_deliver(cl);
	assert_int_equal(fx_commit(cl, 1), commit + 1);
	fx_free(cl);
}

static void test_demoting_a_voter_through_joint_keeps_it_voting_until_leave(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 3, .extra = 1};
	struct fx_cluster *cl = fx_new(&o);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	struct consensus_conf_change cc = {.transition = CONSENSUS_CONF_TRANSITION_EXPLICIT,
	                                   .count = 2};
	cc.changes[0].op = CONSENSUS_CONF_ADD_LEARNER;
	cc.changes[0].node_id = 3;
	cc.changes[1].op = CONSENSUS_CONF_ADD_VOTER;
	cc.changes[1].node_id = 4;
	assert_int_equal(consensus_propose_conf_change(fx_core(cl, 1), &cc, NULL, 0, NULL),
	                 CARELOG_OK);
	fx_deliver(cl);
	struct fx_node *n = fx_node(cl, 1);
	assert_int_equal(n->learners_next_count, 1);
	assert_int_equal(n->learners_next[0], 3);
	assert_true(is_in(n->voters_out, n->voters_out_count, 3));
	struct consensus_conf_change leave = {.count = 0};
	assert_int_equal(consensus_propose_conf_change(n->c, &leave, NULL, 0, NULL), CARELOG_OK);
	fx_deliver(cl);
	assert_int_equal(n->learners_count, 1);
	assert_int_equal(n->learners[0], 3);
	assert_int_equal(n->learners_next_count, 0);
	assert_false(is_in(n->voters, n->voters_count, 3));
	/* 3 is a learner now: it never campaigns. */
	fx_tick(cl, 3, 50);
	assert_int_equal(fx_role(cl, 3), CONSENSUS_ROLE_FOLLOWER);
	fx_free(cl);
}

static void test_learner_added_catches_up_then_promoted_votes(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 1, .extra = 1};
	struct fx_cluster *cl = fx_new(&o);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(fx_propose(cl, 1, "before"), CARELOG_OK);
	}
	assert_int_equal(fx_conf(cl, 1, CONSENSUS_CONF_ADD_LEARNER, 2), CARELOG_OK);
	fx_deliver(cl);
	fx_tick_all(cl, 2);
	assert_true(fx_logs_equal(cl, 1, 2));
	/* The learner does not count: the single voter still commits alone. */
	fx_isolate(cl, 2);
	uint64_t commit = fx_commit(cl, 1);
	assert_int_equal(fx_propose(cl, 1, "alone"), CARELOG_OK);
	assert_int_equal(fx_commit(cl, 1), commit + 1);
	fx_heal(cl);
	assert_int_equal(fx_conf(cl, 1, CONSENSUS_CONF_ADD_VOTER, 2), CARELOG_OK);
	fx_deliver(cl);
	fx_tick_all(cl, 2);
	assert_int_equal(fx_node(cl, 2)->voters_count, 2);
	/* Now 2 is needed for a commit. */
	fx_isolate(cl, 2);
	commit = fx_commit(cl, 1);
	assert_int_equal(fx_propose(cl, 1, "pair"), CARELOG_OK);
	fx_tick_all(cl, 2);
	assert_int_equal(fx_commit(cl, 1), commit);
	fx_heal(cl);
	fx_tick_all(cl, 2);
	assert_int_equal(fx_commit(cl, 1), commit + 1);
	fx_free(cl);
}

/* A node that joins empty applies the region's genesis entry (every first voter in one
 * change) from the log: it must end with the voters the bootstrapped nodes started with,
 * not a joint configuration with an empty outgoing half. */
static void test_genesis_change_from_an_empty_configuration_takes_effect_directly(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 1, .extra = 1};
	struct fx_cluster *cl = fx_new(&o);
	/* Node 2 restarts as a joining node does: no configuration at all. */
	fx_node(cl, 2)->voters_count = 0;
	fx_restart(cl, 2);
	struct consensus_conf_change cc = {.transition = CONSENSUS_CONF_TRANSITION_AUTO, .count = 3};
	for (uint8_t i = 0; i < 3; i++) {
		cc.changes[i].op = CONSENSUS_CONF_ADD_VOTER;
		cc.changes[i].node_id = (consensus_node_id)(i + 1);
	}
	struct consensus_conf_state cs;
	assert_int_equal(consensus_apply_conf_change(fx_core(cl, 2), &cc, &cs), CARELOG_OK);
	assert_int_equal(cs.voters_count, 3);
	assert_int_equal(cs.voters_outgoing_count, 0);
	assert_false(cs.auto_leave);
	/* With voters in place, the same change of three voters is joint again. */
	struct consensus_conf_change more = {.transition = CONSENSUS_CONF_TRANSITION_AUTO, .count = 2};
	more.changes[0].op = CONSENSUS_CONF_ADD_VOTER;
	more.changes[0].node_id = 4;
	more.changes[1].op = CONSENSUS_CONF_ADD_VOTER;
	more.changes[1].node_id = 5;
	assert_int_equal(consensus_apply_conf_change(fx_core(cl, 2), &more, &cs), CARELOG_OK);
	assert_int_equal(cs.voters_outgoing_count, 3);
	fx_free(cl);
}

static void test_at_most_one_pending_conf_change(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 3, .extra = 2};
	struct fx_cluster *cl = fx_new(&o);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	assert_int_equal(fx_conf(cl, 1, CONSENSUS_CONF_ADD_LEARNER, 4), CARELOG_OK);
	assert_int_equal(fx_conf(cl, 1, CONSENSUS_CONF_ADD_LEARNER, 5), CARELOG_EBUSY);
	fx_deliver(cl);
	assert_int_equal(fx_conf(cl, 1, CONSENSUS_CONF_ADD_LEARNER, 5), CARELOG_OK);
	fx_deliver(cl);
	assert_int_equal(fx_node(cl, 1)->learners_count, 2);
	fx_free(cl);
}

static void test_new_leader_waits_for_unapplied_conf_before_more_changes(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 3, .extra = 1};
	struct fx_cluster *cl = fx_new(&o);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	/* A new leader conservatively treats its whole log as possibly holding a change
	 * until its first commit is applied. */
	fx_node(cl, 2)->hold_ready = false;
	assert_int_equal(fx_elect(cl, 2), CONSENSUS_ROLE_LEADER);
	fx_node(cl, 2)->hold_ready = true;
	assert_int_equal(consensus_campaign(fx_core(cl, 3)), CARELOG_OK);
	fx_node(cl, 2)->hold_ready = false;
	fx_deliver(cl);
	consensus_node_id leader = fx_find_leader(cl);
	assert_true(leader != 0);
	fx_tick_all(cl, 2);
	assert_int_equal(fx_conf(cl, leader, CONSENSUS_CONF_ADD_LEARNER, 4), CARELOG_OK);
	fx_free(cl);
}

static void test_invalid_conf_changes_are_refused(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 1, .extra = 1};
	struct fx_cluster *cl = fx_new(&o);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	struct consensus *c = fx_core(cl, 1);
	/* Removing the last voter. */
	assert_int_equal(fx_conf(cl, 1, CONSENSUS_CONF_REMOVE, 1), CARELOG_EINVAL);
	/* Leaving a joint configuration that is not there. */
	struct consensus_conf_change leave = {.count = 0};
	assert_int_equal(consensus_propose_conf_change(c, &leave, NULL, 0, NULL), CARELOG_EINVAL);
	assert_int_equal(consensus_apply_conf_change(c, &leave, NULL), CARELOG_EINVAL);
	/* Bad op, id 0, too many changes, bad transition, context without bytes. */
	struct consensus_conf_change bad = {.count = 1};
	bad.changes[0].op = 9;
	bad.changes[0].node_id = 2;
	assert_int_equal(consensus_propose_conf_change(c, &bad, NULL, 0, NULL), CARELOG_EINVAL);
	bad.changes[0].op = CONSENSUS_CONF_ADD_VOTER;
	bad.changes[0].node_id = 0;
	assert_int_equal(consensus_apply_conf_change(c, &bad, NULL), CARELOG_EINVAL);
	bad.changes[0].node_id = 2;
	bad.count = CONSENSUS_CONF_CHANGES_MAX + 1;
	assert_int_equal(consensus_propose_conf_change(c, &bad, NULL, 0, NULL), CARELOG_EINVAL);
	bad.count = 1;
	bad.transition = 7;
	assert_int_equal(consensus_propose_conf_change(c, &bad, NULL, 0, NULL), CARELOG_EINVAL);
	bad.transition = 0;
	assert_int_equal(consensus_propose_conf_change(c, &bad, NULL, 3, NULL), CARELOG_EINVAL);
	assert_int_equal(consensus_propose_conf_change(c, NULL, NULL, 0, NULL), CARELOG_EINVAL);
	/* More members than members_max. */
	struct consensus_conf_change many = {.transition = CONSENSUS_CONF_TRANSITION_AUTO,
	                                     .count = CONSENSUS_CONF_CHANGES_MAX};
	for (uint32_t i = 0; i < many.count; i++) {
		many.changes[i].op = CONSENSUS_CONF_ADD_LEARNER;
		many.changes[i].node_id = 100 + i;
	}
	assert_int_equal(consensus_propose_conf_change(c, &many, NULL, 0, NULL), CARELOG_EINVAL);
	/* Only leaders propose. */
	assert_int_equal(fx_conf(cl, 2, CONSENSUS_CONF_ADD_VOTER, 2), CARELOG_ENOTLEADER);
	fx_free(cl);
}

static void test_conf_codec_round_trips_and_rejects_bad_input(void **state)
{
	(void)state;
	struct consensus_conf_change cc = {.transition = CONSENSUS_CONF_TRANSITION_IMPLICIT,
	                                   .count = 2};
	cc.changes[0].op = CONSENSUS_CONF_ADD_VOTER;
	cc.changes[0].node_id = 0x0102030405060708ull;
	cc.changes[1].op = CONSENSUS_CONF_REMOVE;
	cc.changes[1].node_id = 9;
	uint8_t buf[CONSENSUS_CONF_HEADER_BYTES_MAX + 8];
	size_t len = 0;
	assert_int_equal(
	    consensus_conf_encode(&cc, (const uint8_t *)"meta", 4, buf, sizeof(buf), &len),
	    CARELOG_OK);
	assert_int_equal(len, 3 + 18 + 4 + 4);
	assert_int_equal(buf[0], 1);
	assert_int_equal(buf[4], 1);
	struct consensus_conf_change out;
	const uint8_t *ctx = NULL;
	uint32_t ctx_len = 0;
	assert_int_equal(consensus_conf_decode(buf, len, &out, &ctx, &ctx_len), CARELOG_OK);
	assert_int_equal(out.transition, cc.transition);
	assert_int_equal(out.count, 2);
	assert_int_equal(out.changes[0].node_id, cc.changes[0].node_id);
	assert_int_equal(out.changes[1].op, CONSENSUS_CONF_REMOVE);
	assert_int_equal(ctx_len, 4);
	assert_memory_equal(ctx, "meta", 4);
	/* Too small an output buffer. */
	assert_int_equal(consensus_conf_encode(&cc, NULL, 0, buf, 10, &len), CARELOG_ETOOBIG);
	assert_int_equal(consensus_conf_encode(&cc, NULL, 5, buf, sizeof(buf), &len),
	                 CARELOG_EINVAL);
	assert_int_equal(consensus_conf_encode(NULL, NULL, 0, buf, sizeof(buf), &len),
	                 CARELOG_EINVAL);
	/* Truncated, wrong version, trailing bytes, bad op, too many changes. */
	assert_int_equal(
	    consensus_conf_encode(&cc, (const uint8_t *)"meta", 4, buf, sizeof(buf), &len),
	    CARELOG_OK);
	assert_int_equal(consensus_conf_decode(buf, 2, &out, NULL, NULL), CARELOG_EPROTO);
	assert_int_equal(consensus_conf_decode(buf, len - 1, &out, NULL, NULL), CARELOG_EPROTO);
	assert_int_equal(consensus_conf_decode(buf, 10, &out, NULL, NULL), CARELOG_EPROTO);
	uint8_t copy[sizeof(buf)];
	memcpy(copy, buf, len);
	copy[0] = 2;
	assert_int_equal(consensus_conf_decode(copy, len, &out, NULL, NULL), CARELOG_EVERSION);
	memcpy(copy, buf, len);
	copy[3] = 7;
	assert_int_equal(consensus_conf_decode(copy, len, &out, NULL, NULL), CARELOG_EPROTO);
	memcpy(copy, buf, len);
	copy[2] = CONSENSUS_CONF_CHANGES_MAX + 1;
	assert_int_equal(consensus_conf_decode(copy, len, &out, NULL, NULL), CARELOG_EPROTO);
	assert_int_equal(consensus_conf_decode(NULL, 4, &out, NULL, NULL), CARELOG_EINVAL);
	/* The empty leave change, no context. */
	struct consensus_conf_change leave = {0};
	assert_int_equal(consensus_conf_encode(&leave, NULL, 0, buf, sizeof(buf), &len),
	                 CARELOG_OK);
	assert_int_equal(len, 7);
	assert_int_equal(consensus_conf_decode(buf, len, &out, &ctx, &ctx_len), CARELOG_OK);
	assert_int_equal(out.count, 0);
	assert_null(ctx);
	assert_int_equal(ctx_len, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_removing_a_node_lowers_the_quorum_only_when_applied),
	    cmocka_unit_test(test_removed_leader_steps_down_after_the_removal_applies),
	    cmocka_unit_test(test_joint_configuration_needs_both_majorities),
	    cmocka_unit_test(test_joint_configuration_is_left_automatically),
	    cmocka_unit_test(test_demoting_a_voter_through_joint_keeps_it_voting_until_leave),
	    cmocka_unit_test(test_learner_added_catches_up_then_promoted_votes),
	    cmocka_unit_test(test_genesis_change_from_an_empty_configuration_takes_effect_directly),
	    cmocka_unit_test(test_at_most_one_pending_conf_change),
	    cmocka_unit_test(test_new_leader_waits_for_unapplied_conf_before_more_changes),
	    cmocka_unit_test(test_invalid_conf_changes_are_refused),
	    cmocka_unit_test(test_conf_codec_round_trips_and_rejects_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
