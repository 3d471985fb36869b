/* Scenario tests: log replication, commit rules, backtracking and flow control (Raft paper
 * 5.3, 5.4; thesis 10.2). */
#include "fixture.h"

#include "carelog/errors.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

/* Elects node 1 by delivering only the election messages, leaving its appends queued. */
static void elect_quietly(struct fx_cluster *cl, consensus_node_id id)
{
	assert_int_equal(consensus_campaign(fx_core(cl, id)), CARELOG_OK);
	fx_process(cl, id);
	fx_deliver_only(cl, CONSENSUS_MSG_PRE_VOTE, id, 0);
	fx_deliver_only(cl, CONSENSUS_MSG_PRE_VOTE_RESP, 0, id);
	fx_deliver_only(cl, CONSENSUS_MSG_VOTE, id, 0);
	fx_deliver_only(cl, CONSENSUS_MSG_VOTE_RESP, 0, id);
	assert_int_equal(fx_role(cl, id), CONSENSUS_ROLE_LEADER);
}

/* Raft paper Figure 7: whatever the followers hold, the leader's log wins. */
static void test_figure7_follower_logs_converge_to_the_leader(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 7};
	struct fx_cluster *cl = fx_new(&o);
	const uint64_t leader[] = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6};
	const uint64_t a[] = {1, 1, 1, 4, 4, 5, 5, 6, 6};
	const uint64_t b[] = {1, 1, 1, 4};
	const uint64_t c[] = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6};
	const uint64_t d[] = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7};
	const uint64_t e[] = {1, 1, 1, 4, 4, 4, 4};
	const uint64_t f[] = {1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3};
	fx_set_log(cl, 1, leader, 10, 7, 0, 0);
	fx_set_log(cl, 2, a, 9, 7, 0, 0);
	fx_set_log(cl, 3, b, 4, 7, 0, 0);
	fx_set_log(cl, 4, c, 11, 7, 0, 0);
	fx_set_log(cl, 5, d, 12, 7, 0, 0);
	fx_set_log(cl, 6, e, 7, 7, 0, 0);
	fx_set_log(cl, 7, f, 11, 7, 0, 0);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	assert_int_equal(fx_term(cl, 1), 8);
	fx_tick_all(cl, 2);
	for (consensus_node_id id = 2; id <= 7; id++) {
		assert_true(fx_logs_equal(cl, 1, id));
		assert_int_equal(fx_commit(cl, id), 11);
	}
	assert_int_equal(fx_log_last(cl, 1), 11);
	assert_int_equal(fx_log_term(cl, 1, 11), 8);
	fx_free(cl);
}

/* Raft paper Figure 8: an entry of an earlier term is not committed by counting replicas. */
static void test_figure8_earlier_term_entry_not_committed_by_replica_count(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 5};
	struct fx_cluster *cl = fx_new(&o);
	const uint64_t s12[] = {1, 2};
	const uint64_t s34[] = {1};
	const uint64_t s5[] = {1, 3};
	fx_set_log(cl, 1, s12, 2, 3, 0, 1);
	fx_set_log(cl, 2, s12, 2, 3, 0, 1);
	fx_set_log(cl, 3, s34, 1, 3, 0, 1);
	fx_set_log(cl, 4, s34, 1, 3, 0, 1);
	fx_set_log(cl, 5, s5, 2, 3, 0, 1);
	elect_quietly(cl, 1);
	assert_int_equal(fx_term(cl, 1), 4);
	fx_drop_pending(cl);
	/* Index 2 (term 2) reaches a majority: S1, S2, S3. */
	for (consensus_node_id id = 2; id <= 3; id++) {
		struct consensus_message ack = {
		    .type = CONSENSUS_MSG_APPEND_RESP,
		    .from = id,
		    .to = 1,
		    .term = 4,
		    .index = 2,
		};
		assert_int_equal(fx_step(cl, &ack), CARELOG_OK);
	}
	assert_int_equal(fx_progress(cl, 1, 3)->match, 2);
	assert_int_equal(fx_commit(cl, 1), 1);
	/* Once the term-4 no-op at index 3 reaches a majority, both commit. */
	for (consensus_node_id id = 2; id <= 3; id++) {
		struct consensus_message ack = {
		    .type = CONSENSUS_MSG_APPEND_RESP,
		    .from = id,
		    .to = 1,
		    .term = 4,
		    .index = 3,
		};
		assert_int_equal(fx_step(cl, &ack), CARELOG_OK);
	}
	assert_int_equal(fx_commit(cl, 1), 3);
	fx_drop_pending(cl);
	fx_free(cl);
}

static void test_follower_rejects_mismatched_append_and_truncates_only_on_conflict(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 3};
	struct fx_cluster *cl = fx_new(&o);
	const uint64_t log[] = {1, 1, 2, 2};
	fx_set_log(cl, 1, log, 4, 2, 0, 1);
	struct consensus_entry e3 = {.term = 2, .index = 3};
	struct consensus_message app = {
	    .type = CONSENSUS_MSG_APPEND,
	    .from = 2,
	    .to = 1,
	    .term = 2,
	    .index = 2,
	    .log_term = 2, /* we have term 1 at index 2 */
	    .entries = &e3,
	    .entries_count = 1,
	};
	assert_int_equal(fx_step(cl, &app), CARELOG_OK);
	const struct consensus_message *r = fx_find_pending(cl, CONSENSUS_MSG_APPEND_RESP, 1, 2);
	assert_true(r->reject);
	assert_int_equal(r->index, 2);
	assert_int_equal(fx_log_last(cl, 1), 4);
	/* A matching, shorter append (a delayed one) truncates nothing and acks only its end. */
	fx_drop_pending(cl);
	app.log_term = 1;
	assert_int_equal(fx_step(cl, &app), CARELOG_OK);
	r = fx_find_pending(cl, CONSENSUS_MSG_APPEND_RESP, 1, 2);
	assert_false(r->reject);
	assert_int_equal(r->index, 3);
	assert_int_equal(fx_log_last(cl, 1), 4);
	/* A conflicting entry cuts the suffix from the conflict on. */
	fx_drop_pending(cl);
	struct consensus_message app3 = app;
	app3.term = 3;
	struct consensus_entry e3b = {.term = 3, .index = 3};
	app3.entries = &e3b;
	assert_int_equal(fx_step(cl, &app3), CARELOG_OK);
	assert_int_equal(fx_log_last(cl, 1), 3);
	assert_int_equal(fx_log_term(cl, 1, 3), 3);
	assert_int_equal(fx_log_term(cl, 1, 2), 1);
	/* An append below our commit is answered with the commit. */
	fx_drop_pending(cl);
	struct consensus_message old = {
	    .type = CONSENSUS_MSG_APPEND,
	    .from = 2,
	    .to = 1,
	    .term = 3,
	    .index = 0,
	    .log_term = 0,
	};
	assert_int_equal(fx_step(cl, &old), CARELOG_OK);
	r = fx_find_pending(cl, CONSENSUS_MSG_APPEND_RESP, 1, 2);
	assert_false(r->reject);
	assert_int_equal(r->index, 1);
	fx_free(cl);
}

/* etcd-io/raft TestFastLogRejection cases. */
static void test_fast_backtracking_lands_where_expected(void **state)
{
	(void)state;
	struct {
		uint64_t leader[12];
		uint64_t leader_n;
		uint64_t follower[12];
		uint64_t follower_n;
		uint64_t hint_index, hint_term;
		uint64_t next_prev_index, next_prev_term;
	} cases[] = {
	    {{1, 2, 2, 4, 4, 4, 4}, 7, {1, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3}, 11, 7, 3, 3, 2},
	    {{1, 2, 2, 3, 3, 3, 3}, 7, {1, 2, 2, 4, 4, 4, 4, 4, 4, 4}, 10, 3, 2, 3, 2},
	    {{1, 2, 2, 4, 4, 4, 4}, 7, {1, 2, 2}, 3, 3, 2, 3, 2},
	    {{1, 1, 1, 1, 1, 1, 1}, 7, {1, 1}, 2, 2, 1, 2, 1},
	    {{1, 2, 4, 4, 5, 5}, 6, {1, 2, 3, 3, 3}, 5, 5, 3, 2, 2},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fx_options o = {.voters = 2};
		struct fx_cluster *cl = fx_new(&o);
		uint64_t top = 0;
		for (uint64_t k = 0; k < cases[i].leader_n; k++) {
			top = cases[i].leader[k] > top ? cases[i].leader[k] : top;
		}
		for (uint64_t k = 0; k < cases[i].follower_n; k++) {
			top = cases[i].follower[k] > top ? cases[i].follower[k] : top;
		}
		fx_set_log(cl, 1, cases[i].leader, cases[i].leader_n, top, 0, 1);
		fx_set_log(cl, 2, cases[i].follower, cases[i].follower_n, top, 0, 1);
		/* The follower may refuse its vote when its log is ahead: ask it anyway with a
		 * crafted grant. */
		assert_int_equal(consensus_campaign(fx_core(cl, 1)), CARELOG_OK);
		fx_process(cl, 1);
		fx_drop_pending(cl);
		struct consensus_message grant = {
		    .type = CONSENSUS_MSG_VOTE_RESP,
		    .from = 2,
		    .to = 1,
		    .term = top + 1,
		};
		assert_int_equal(fx_step(cl, &grant), CARELOG_OK);
		assert_int_equal(fx_role(cl, 1), CONSENSUS_ROLE_LEADER);
		const struct consensus_message *app =
		    fx_find_pending(cl, CONSENSUS_MSG_APPEND, 1, 2);
		assert_non_null(app);
		assert_int_equal(app->index, cases[i].leader_n);
		assert_int_equal(fx_deliver_only(cl, CONSENSUS_MSG_APPEND, 1, 2), 1);
		const struct consensus_message *rej =
		    fx_find_pending(cl, CONSENSUS_MSG_APPEND_RESP, 2, 1);
		assert_non_null(rej);
		assert_true(rej->reject);
		assert_int_equal(rej->reject_hint, cases[i].hint_index);
		assert_int_equal(rej->log_term, cases[i].hint_term);
		assert_int_equal(fx_deliver_only(cl, CONSENSUS_MSG_APPEND_RESP, 2, 1), 1);
		app = fx_find_pending(cl, CONSENSUS_MSG_APPEND, 1, 2);
		assert_non_null(app);
		assert_int_equal(app->index, cases[i].next_prev_index);
		assert_int_equal(app->log_term, cases[i].next_prev_term);
		fx_deliver(cl);
		assert_true(fx_logs_equal(cl, 1, 2));
		fx_free(cl);
	}
}

static void test_stale_rejection_never_moves_next_below_match(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 3};
	struct fx_cluster *cl = fx_new(&o);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(fx_propose(cl, 1, "e"), CARELOG_OK);
	}
	fx_deliver(cl);
	const struct consensus_progress *p = fx_progress(cl, 1, 2);
	assert_int_equal(p->match, 5);
	assert_int_equal(p->state, CONSENSUS_PROGRESS_REPLICATE);
	/* A rejection of an old probe arrives late. */
	struct consensus_message rej = {
	    .type = CONSENSUS_MSG_APPEND_RESP,
	    .from = 2,
	    .to = 1,
	    .term = 1,
	    .reject = true,
	    .index = 3,
	    .reject_hint = 0,
	    .log_term = 0,
	};
	assert_int_equal(fx_step(cl, &rej), CARELOG_OK);
	p = fx_progress(cl, 1, 2);
	assert_int_equal(p->match, 5);
	assert_int_equal(p->next, 6);
	assert_int_equal(p->state, CONSENSUS_PROGRESS_REPLICATE);
	/* A fresh rejection above match drops to probing from match + 1, never lower. */
	rej.index = 6;
	assert_int_equal(fx_propose(cl, 1, "f"), CARELOG_OK);
	fx_drop_pending(cl);
	assert_int_equal(fx_step(cl, &rej), CARELOG_OK);
	p = fx_progress(cl, 1, 2);
	assert_int_equal(p->state, CONSENSUS_PROGRESS_PROBE);
	assert_int_equal(p->match, 5);
	assert_int_equal(p->next, 6);
	/* In probe state, a rejection that does not answer the outstanding probe is stale. */
	rej.index = 2;
	assert_int_equal(fx_step(cl, &rej), CARELOG_OK);
	assert_int_equal(fx_progress(cl, 1, 2)->next, 6);
	fx_deliver(cl);
	assert_true(fx_logs_equal(cl, 1, 2));
	fx_free(cl);
}

static void test_ack_from_an_older_term_is_not_counted(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 3};
	struct fx_cluster *cl = fx_new(&o);
	const uint64_t l1[] = {1, 2, 2};
	const uint64_t l2[] = {1};
	fx_set_log(cl, 1, l1, 3, 2, 0, 1);
	fx_set_log(cl, 2, l2, 1, 2, 0, 1);
	fx_set_log(cl, 3, l2, 1, 2, 0, 1);
	/* Node 2 is elected in term 3; its no-op overwrites index 2 at node 3. */
	elect_quietly(cl, 2);
	fx_drop_pending(cl);
	/* Node 3 once acked index 3 to the term-2 leader; that answer arrives now. */
	struct consensus_message old = {
	    .type = CONSENSUS_MSG_APPEND_RESP,
	    .from = 3,
	    .to = 2,
	    .term = 2,
	    .index = 3,
	};
	assert_int_equal(fx_step(cl, &old), CARELOG_OK);
	assert_int_equal(fx_progress(cl, 2, 3)->match, 0);
	assert_int_equal(fx_commit(cl, 2), 1);
	/* Same term but for more than the leader ever sent: refused as malformed. */
	old.term = 3;
	old.index = 9;
	assert_int_equal(fx_step(cl, &old), CARELOG_EPROTO);
	assert_int_equal(fx_commit(cl, 2), 1);
	fx_tick_all(cl, 2);
	for (consensus_node_id id = 1; id <= 3; id++) {
		assert_true(fx_logs_equal(cl, 2, id));
	}
	assert_int_equal(fx_log_term(cl, 1, 2), 3);
	fx_free(cl);
}

/* A follower acks entries from one leader, then (before its disk write) a newer leader
 * overwrites them at the same indexes: the first ack must never leave the node. */
static void test_ack_for_entries_overwritten_before_persisting_is_not_sent(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 3};
	struct fx_cluster *cl = fx_new(&o);
	struct fx_node *f = fx_node(cl, 1);
	f->hold_ready = true;
	struct consensus_entry old[3] = {
	    {.term = 1, .index = 1},
	    {.term = 1, .index = 2},
	    {.term = 1, .index = 3},
	};
	struct consensus_message a1 = {
	    .type = CONSENSUS_MSG_APPEND,
	    .from = 2,
	    .to = 1,
	    .term = 1,
	    .entries = old,
	    .entries_count = 3,
	};
	assert_int_equal(consensus_step(f->c, &a1), CARELOG_OK);
	struct consensus_entry fresh = {.term = 2, .index = 1};
	struct consensus_message a2 = {
	    .type = CONSENSUS_MSG_APPEND,
	    .from = 3,
	    .to = 1,
	    .term = 2,
	    .entries = &fresh,
	    .entries_count = 1,
	};
	assert_int_equal(consensus_step(f->c, &a2), CARELOG_OK);
	struct consensus_ready rd;
	assert_true(fx_ready_once(cl, 1, &rd));
	assert_int_equal(rd.entries_count, 1);
	assert_int_equal(fx_log_last(cl, 1), 1);
	assert_int_equal(fx_count_pending(cl, CONSENSUS_MSG_APPEND_RESP, 1, 2), 0);
	const struct consensus_message *r = fx_find_pending(cl, CONSENSUS_MSG_APPEND_RESP, 1, 3);
	assert_non_null(r);
	assert_int_equal(r->index, 1);
	assert_int_equal(r->term, 2);
	fx_free(cl);
}

static void test_follower_ack_covers_only_the_matched_prefix(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 3};
	struct fx_cluster *cl = fx_new(&o);
	const uint64_t stale[] = {1, 1, 1, 1};
	fx_set_log(cl, 1, stale, 4, 1, 0, 1);
	struct consensus_entry e = {.term = 1, .index = 2};
	struct consensus_message app = {
	    .type = CONSENSUS_MSG_APPEND,
	    .from = 2,
	    .to = 1,
	    .term = 2,
	    .index = 1,
	    .log_term = 1,
	    .commit = 9,
	    .entries = &e,
	    .entries_count = 1,
	};
	assert_int_equal(fx_step(cl, &app), CARELOG_OK);
	const struct consensus_message *r = fx_find_pending(cl, CONSENSUS_MSG_APPEND_RESP, 1, 2);
	assert_false(r->reject);
	assert_int_equal(r->index, 2);
	/* Commit is capped by what this append proved, not by the leader's commit. */
	assert_int_equal(fx_commit(cl, 1), 2);
	fx_free(cl);
}

static void test_flow_control_pauses_and_resumes(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 2, .inflight_msgs_max = 2};
	struct fx_cluster *cl = fx_new(&o);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	assert_int_equal(fx_progress(cl, 1, 2)->state, CONSENSUS_PROGRESS_REPLICATE);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(fx_propose(cl, 1, "p"), CARELOG_OK);
	}
	/* Only two appends are in flight; the rest wait. */
	assert_int_equal(fx_count_pending(cl, CONSENSUS_MSG_APPEND, 1, 2), 2);
	assert_int_equal(fx_progress(cl, 1, 2)->inflight_count, 2);
	assert_int_equal(fx_progress(cl, 1, 2)->next, 4);
	/* Acks open the window again. */
	assert_int_equal(fx_deliver_only(cl, CONSENSUS_MSG_APPEND, 1, 2), 2);
	assert_int_equal(fx_deliver_only(cl, CONSENSUS_MSG_APPEND_RESP, 2, 1), 2);
	assert_int_equal(fx_count_pending(cl, CONSENSUS_MSG_APPEND, 1, 2), 2);
	fx_deliver(cl);
	assert_true(fx_logs_equal(cl, 1, 2));
	assert_int_equal(fx_commit(cl, 1), 6);
	assert_int_equal(fx_progress(cl, 1, 2)->inflight_count, 0);
	fx_free(cl);
}

static void test_full_window_of_lost_appends_recovers_on_heartbeat(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 2, .inflight_msgs_max = 2};
	struct fx_cluster *cl = fx_new(&o);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(fx_propose(cl, 1, "q"), CARELOG_OK);
	}
	fx_drop_pending(cl); /* the network lost the whole window */
	assert_true(fx_progress(cl, 1, 2)->inflight_count == 2);
	fx_tick_all(cl, 5);
	assert_true(fx_logs_equal(cl, 1, 2));
	assert_int_equal(fx_commit(cl, 2), 5);
	fx_free(cl);
}

static void test_uncommitted_size_cap(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 3, .uncommitted_bytes_max = 10};
	struct fx_cluster *cl = fx_new(&o);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	fx_isolate(cl, 1);
	/* One entry always fits when nothing is pending, even if it is larger than the cap. */
	assert_int_equal(fx_propose(cl, 1, "0123456789abc"), CARELOG_OK);
	assert_int_equal(fx_propose(cl, 1, "x"), CARELOG_EBUSY);
	fx_heal(cl);
	fx_tick_all(cl, 2);
	assert_int_equal(fx_commit(cl, 1), 2);
	fx_isolate(cl, 1);
	assert_int_equal(fx_propose(cl, 1, "12345"), CARELOG_OK);
	assert_int_equal(fx_propose(cl, 1, "12345"), CARELOG_OK);
	assert_int_equal(fx_propose(cl, 1, "1"), CARELOG_EBUSY);
	/* Empty proposals never count. */
	assert_int_equal(consensus_propose(fx_core(cl, 1), NULL, 0, NULL), CARELOG_OK);
	fx_heal(cl);
	fx_tick_all(cl, 2);
	assert_int_equal(fx_commit(cl, 1), 5);
	assert_int_equal(fx_propose(cl, 1, "12345"), CARELOG_OK);
	fx_free(cl);
}

static void test_single_voter_commits_on_local_persistence(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 1};
	struct fx_cluster *cl = fx_new(&o);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	struct fx_node *n = fx_node(cl, 1);
	n->hold_ready = true;
	uint64_t index = 0;
	assert_int_equal(consensus_propose(n->c, (const uint8_t *)"solo", 4, &index), CARELOG_OK);
	assert_int_equal(index, 2);
	assert_int_equal(fx_commit(cl, 1), 1);
	struct consensus_ready rd;
	assert_true(fx_ready_once(cl, 1, &rd));
	assert_int_equal(rd.entries_count, 1);
	assert_int_equal(rd.committed_count, 0);
	assert_int_equal(rd.hard_state.commit, 1);
	/* Persisted: now it commits, and the next batch applies. */
	assert_int_equal(fx_commit(cl, 1), 2);
	assert_int_equal(n->applied, 1);
	assert_true(fx_ready_once(cl, 1, &rd));
	assert_int_equal(rd.hard_state.commit, 2);
	assert_int_equal(rd.committed_count, 1);
	assert_int_equal(n->applied, 2);
	assert_string_equal(n->applied_entries[n->applied_count - 1].data, "solo");
	fx_free(cl);
}

static void test_leader_appends_leave_before_persistence(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 3};
	struct fx_cluster *cl = fx_new(&o);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	struct fx_node *n = fx_node(cl, 1);
	assert_int_equal(consensus_propose(n->c, (const uint8_t *)"e", 1, NULL), CARELOG_OK);
	struct consensus_ready rd;
	assert_int_equal(consensus_ready(n->c, &rd), CARELOG_OK);
	assert_int_equal(rd.entries_count, 1);
	assert_int_equal(rd.messages_early_count, 2);
	for (size_t i = 0; i < rd.messages_early_count; i++) {
		assert_int_equal(rd.messages_early[i].type, CONSENSUS_MSG_APPEND);
		assert_int_equal(rd.messages_early[i].entries_count, 1);
		assert_memory_equal(rd.messages_early[i].entries[0].data, "e", 1);
	}
	consensus_advance(n->c, &rd);
	fx_drop_pending(cl);
	fx_tick_all(cl, 3);
	assert_true(fx_logs_equal(cl, 1, 3));
	fx_free(cl);
}

static void test_large_backlog_is_sent_in_bounded_appends(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 2, .append_bytes_max = 16, .inflight_msgs_max = 4};
	struct fx_cluster *cl = fx_new(&o);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	fx_isolate(cl, 2);
	for (int i = 0; i < 40; i++) {
		assert_int_equal(fx_propose(cl, 1, "0123456789"), CARELOG_OK);
	}
	fx_drop_pending(cl);
	fx_heal(cl);
	fx_tick_all(cl, 30);
	assert_true(fx_logs_equal(cl, 1, 2));
	assert_int_equal(fx_commit(cl, 2), 41);
	assert_int_equal(fx_node(cl, 2)->applied, 41);
	fx_free(cl);
}

/* A batch of proposals leaves as one append per follower (the leader's group commit), and a
 * refusal part way stops the batch with the entries before it proposed. */
static void test_batch_proposal_sends_one_append_per_follower(void **state)
{
	(void)state;
	struct fx_options o = {.voters = 3, .uncommitted_bytes_max = 40};
	struct fx_cluster *cl = fx_new(&o);
	assert_int_equal(fx_elect(cl, 1), CONSENSUS_ROLE_LEADER);
	fx_tick_all(cl, 1);
	uint64_t last = fx_log_last(cl, 1);
	struct consensus_proposal items[5];
	for (size_t i = 0; i < 5; i++) {
		items[i] = (struct consensus_proposal){.data = (const uint8_t *)"entry-0", .data_len = 7};
	}
	size_t proposed = 0;
	uint64_t first = 0;
	assert_int_equal(consensus_propose_batch(fx_core(cl, 1), items, 5, &proposed, &first),
	                 CARELOG_OK);
	assert_int_equal(proposed, 5);
	assert_int_equal(first, last + 1);
	fx_process(cl, 1);
	assert_int_equal(fx_count_pending(cl, CONSENSUS_MSG_APPEND, 1, 2), 1);
	assert_int_equal(fx_count_pending(cl, CONSENSUS_MSG_APPEND, 1, 3), 1);
	const struct consensus_message *m = fx_find_pending(cl, CONSENSUS_MSG_APPEND, 1, 2);
	assert_non_null(m);
	assert_int_equal(m->entries_count, 5);
	fx_deliver(cl);
	fx_tick_all(cl, 1);
	assert_int_equal(fx_commit(cl, 1), last + 5);
	items[0].data = NULL; /* refused: data NULL with a length */
	assert_int_equal(consensus_propose_batch(fx_core(cl, 1), items, 5, &proposed, NULL),
	                 CARELOG_EINVAL);
	assert_int_equal(proposed, 0);
	items[0].data = items[1].data;
	/* Uncommitted: 3 x 7 = 21 bytes, then 28 and 35 fit under the 40-byte cap, 42 not. */
	assert_int_equal(consensus_propose_batch(fx_core(cl, 1), items, 3, &proposed, NULL),
	                 CARELOG_OK);
	assert_int_equal(consensus_propose_batch(fx_core(cl, 1), items, 5, &proposed, &first),
	                 CARELOG_EBUSY);
	assert_int_equal(proposed, 2);
	assert_int_equal(first, last + 9);
	/* Followers refuse batches: only the leader proposes. */
	assert_int_equal(consensus_propose_batch(fx_core(cl, 2), items, 1, &proposed, NULL),
	                 CARELOG_ENOTLEADER);
	assert_int_equal(proposed, 0);
	fx_free(cl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_figure7_follower_logs_converge_to_the_leader),
	    cmocka_unit_test(test_batch_proposal_sends_one_append_per_follower),
	    cmocka_unit_test(test_figure8_earlier_term_entry_not_committed_by_replica_count),
	    cmocka_unit_test(
	        test_follower_rejects_mismatched_append_and_truncates_only_on_conflict),
	    cmocka_unit_test(test_fast_backtracking_lands_where_expected),
	    cmocka_unit_test(test_stale_rejection_never_moves_next_below_match),
	    cmocka_unit_test(test_ack_from_an_older_term_is_not_counted),
	    cmocka_unit_test(test_ack_for_entries_overwritten_before_persisting_is_not_sent),
	    cmocka_unit_test(test_follower_ack_covers_only_the_matched_prefix),
	    cmocka_unit_test(test_flow_control_pauses_and_resumes),
	    cmocka_unit_test(test_full_window_of_lost_appends_recovers_on_heartbeat),
	    cmocka_unit_test(test_uncommitted_size_cap),
	    cmocka_unit_test(test_single_voter_commits_on_local_persistence),
	    cmocka_unit_test(test_leader_appends_leave_before_persistence),
	    cmocka_unit_test(test_large_backlog_is_sent_in_bounded_appends),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
