/* Unit tests of the simulator's parts: PRNG, network, disk, allocator, trace and invariant checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "carelog/errors.h"
#include "sim_alloc.h"
#include "sim_check.h"
#include "sim_disk.h"
#include "sim_net.h"
#include "sim_prng.h"
#include "sim_trace.h"

/* ---- PRNG ---- */

static void test_prng_same_seed_gives_same_stream(void **state)
{
	(void)state;
	struct sim_prng a, b, c;
	sim_prng_seed(&a, 42);
	sim_prng_seed(&b, 42);
	sim_prng_seed(&c, 43);
	bool differs = false;
	for (int i = 0; i < 1000; i++) {
		uint64_t x = sim_prng_next(&a);
		assert_int_equal(x, sim_prng_next(&b));
		differs |= x != sim_prng_next(&c);
	}
	assert_true(differs);
}

static void test_prng_bounds_and_chances_hold(void **state)
{
	(void)state;
	struct sim_prng p;
	sim_prng_seed(&p, 7);
	unsigned hits = 0;
	bool seen_lo = false, seen_hi = false;
	for (int i = 0; i < 10000; i++) {
		uint64_t v = sim_prng_range(&p, 3, 9);
		assert_true(v >= 3 && v <= 9);
		seen_lo |= v == 3;
		seen_hi |= v == 9;
		assert_true(sim_prng_below(&p, 5) < 5);
		assert_false(sim_prng_chance_ppm(&p, 0));
		assert_true(sim_prng_chance_ppm(&p, 1000000));
		hits += sim_prng_chance_pct(&p, 30);
	}
	assert_true(seen_lo && seen_hi);
	assert_in_range(hits, 2700, 3300);
	assert_int_equal(sim_prng_below(&p, 0), 0);
}

/* ---- trace ---- */

static void test_trace_hash_covers_every_field(void **state)
{
	(void)state;
	struct sim_trace a, b, c;
	sim_trace_init(&a, NULL);
	sim_trace_init(&b, NULL);
	sim_trace_init(&c, NULL);
	sim_trace_event(&a, SIM_EV_SEND, 1, 2, 3, 4, 5, 6, 7);
	sim_trace_event(&b, SIM_EV_SEND, 1, 2, 3, 4, 5, 6, 7);
	sim_trace_event(&c, SIM_EV_SEND, 1, 2, 3, 4, 5, 6, 8);
	assert_int_equal(a.hash, b.hash);
	assert_int_not_equal(a.hash, c.hash);
	b.tick = 1;
	sim_trace_event(&a, SIM_EV_TICK, 1, 0, 0, 0, 0, 0, 0);
	sim_trace_event(&b, SIM_EV_TICK, 1, 0, 0, 0, 0, 0, 0);
	assert_int_not_equal(a.hash, b.hash);
}

static void test_trace_ring_keeps_the_last_events(void **state)
{
	(void)state;
	struct sim_trace t;
	sim_trace_init(&t, NULL);
	for (uint64_t i = 0; i < SIM_TRACE_RING + 10; i++) {
		sim_trace_event(&t, SIM_EV_PROPOSE, 1, i, 0, 0, 0, 0, 0);
	}
	assert_int_equal(t.count, SIM_TRACE_RING + 10);
	const struct sim_event *last = &t.ring[(t.count - 1) % SIM_TRACE_RING];
	assert_int_equal(last->a, SIM_TRACE_RING + 9);
	char buf[256];
	sim_trace_format(last, buf, sizeof(buf));
	assert_non_null(strstr(buf, "propose"));
}

/* ---- network ---- */

static struct consensus_message msg(consensus_node_id from, consensus_node_id to, uint64_t term)
{
	struct consensus_message m;
	memset(&m, 0, sizeof(m));
	m.type = CONSENSUS_MSG_HEARTBEAT;
	m.from = from;
	m.to = to;
	m.term = term;
	return m;
}

static uint32_t drain(struct sim_net *n, uint64_t now, uint32_t *dropped)
{
	uint32_t got = 0;
	struct sim_packet p;
	bool cut = false;
	while (sim_net_pop(n, now, &p, &cut)) {
		if (cut) {
			(*dropped)++;
		} else {
			got++;
		}
		sim_packet_free(&p);
	}
	return got;
}

static void test_net_without_faults_delivers_everything_within_the_delay(void **state)
{
	(void)state;
	struct sim_net_options o = {.delay_min_ticks = 2, .delay_max_ticks = 5};
	struct sim_net n;
	sim_net_init(&n, 1, &o);
	for (uint64_t i = 0; i < 100; i++) {
		struct consensus_message m = msg(1, 2, i);
		enum sim_drop_reason r;
		assert_true(sim_net_send(&n, 10, &m, &r));
	}
	uint32_t dropped = 0;
	assert_int_equal(drain(&n, 11, &dropped), 0);
	uint32_t got = drain(&n, 15, &dropped);
	assert_int_equal(got, 100);
	assert_int_equal(dropped, 0);
	sim_net_free(&n);
}

static void test_net_delivers_in_random_order(void **state)
{
	(void)state;
	struct sim_net_options o = {.delay_min_ticks = 1, .delay_max_ticks = 1};
	struct sim_net n;
	sim_net_init(&n, 5, &o);
	for (uint64_t i = 0; i < 50; i++) {
		struct consensus_message m = msg(1, 2, i);
		enum sim_drop_reason r;
		assert_true(sim_net_send(&n, 0, &m, &r));
	}
	bool reordered = false;
	uint64_t prev = 0;
	struct sim_packet p;
	bool cut;
	while (sim_net_pop(&n, 1, &p, &cut)) {
		reordered |= p.msg.term < prev;
		prev = p.msg.term;
		sim_packet_free(&p);
	}
	assert_true(reordered);
	sim_net_free(&n);
}

static void test_net_total_loss_drops_everything(void **state)
{
	(void)state;
	struct sim_net_options o = {
	    .loss_ppm = 1000000, .delay_min_ticks = 1, .delay_max_ticks = 1};
	struct sim_net n;
	sim_net_init(&n, 1, &o);
	struct consensus_message m = msg(1, 2, 1);
	enum sim_drop_reason r = SIM_DROP_FULL;
	assert_false(sim_net_send(&n, 0, &m, &r));
	assert_int_equal(r, SIM_DROP_LOSS);
	uint32_t dropped = 0;
	assert_int_equal(drain(&n, 100, &dropped), 0);
	sim_net_free(&n);
}

static void test_net_duplication_delivers_twice(void **state)
{
	(void)state;
	struct sim_net_options o = {.dup_ppm = 1000000, .delay_min_ticks = 1, .delay_max_ticks = 3};
	struct sim_net n;
	sim_net_init(&n, 1, &o);
	struct consensus_message m = msg(1, 2, 1);
	enum sim_drop_reason r;
	assert_true(sim_net_send(&n, 0, &m, &r));
	uint32_t dropped = 0;
	assert_int_equal(drain(&n, 10, &dropped), 2);
	sim_net_free(&n);
}

static void test_net_cut_link_drops_one_direction_only(void **state)
{
	(void)state;
	struct sim_net_options o = {.delay_min_ticks = 1, .delay_max_ticks = 1};
	struct sim_net n;
	sim_net_init(&n, 1, &o);
	sim_net_set_cut(&n, 1, 2, true);
	struct consensus_message a = msg(1, 2, 1);
	struct consensus_message b = msg(2, 1, 1);
	enum sim_drop_reason r;
	assert_true(sim_net_send(&n, 0, &a, &r));
	assert_true(sim_net_send(&n, 0, &b, &r));
	uint32_t dropped = 0;
	assert_int_equal(drain(&n, 1, &dropped), 1);
	assert_int_equal(dropped, 1);
	assert_true(sim_net_any_fault(&n));
	sim_net_heal(&n);
	assert_false(sim_net_any_fault(&n));
	assert_true(sim_net_send(&n, 1, &a, &r));
	dropped = 0;
	assert_int_equal(drain(&n, 2, &dropped), 1);
	assert_int_equal(dropped, 0);
	sim_net_free(&n);
}

static void test_net_clogged_link_holds_packets_until_unclogged(void **state)
{
	(void)state;
	struct sim_net_options o = {.delay_min_ticks = 1, .delay_max_ticks = 1};
	struct sim_net n;
	sim_net_init(&n, 1, &o);
	sim_net_set_clog(&n, 1, 2, true);
	struct consensus_message a = msg(1, 2, 1);
	enum sim_drop_reason r;
	assert_true(sim_net_send(&n, 0, &a, &r));
	uint32_t dropped = 0;
	for (uint64_t t = 1; t < 50; t++) {
		assert_int_equal(drain(&n, t, &dropped), 0);
	}
	assert_int_equal(n.count, 1);
	sim_net_set_clog(&n, 1, 2, false);
	assert_int_equal(drain(&n, 100, &dropped), 1);
	assert_int_equal(dropped, 0);
	sim_net_free(&n);
}

static void test_net_copies_entries_deeply(void **state)
{
	(void)state;
	struct sim_net_options o = {.delay_min_ticks = 1, .delay_max_ticks = 1};
	struct sim_net n;
	sim_net_init(&n, 1, &o);
	uint8_t data[4] = {1, 2, 3, 4};
	struct consensus_entry e = {.term = 1, .index = 1, .data_len = 4, .data = data};
	struct consensus_message m = msg(1, 2, 1);
	m.type = CONSENSUS_MSG_APPEND;
	m.entries = &e;
	m.entries_count = 1;
	enum sim_drop_reason r;
	assert_true(sim_net_send(&n, 0, &m, &r));
	data[0] = 9;
	struct sim_packet p;
	bool cut;
	assert_true(sim_net_pop(&n, 1, &p, &cut));
	assert_int_equal(p.msg.entries_count, 1);
	assert_int_equal(p.msg.entries[0].data[0], 1);
	sim_packet_free(&p);
	sim_net_free(&n);
}

static void test_net_forget_node_drops_its_packets(void **state)
{
	(void)state;
	struct sim_net_options o = {.delay_min_ticks = 1, .delay_max_ticks = 4};
	struct sim_net n;
	sim_net_init(&n, 1, &o);
	enum sim_drop_reason r;
	for (consensus_node_id to = 2; to <= 4; to++) {
		struct consensus_message m = msg(1, to, 1);
		assert_true(sim_net_send(&n, 0, &m, &r));
		struct consensus_message back = msg(to, 1, 1);
		assert_true(sim_net_send(&n, 0, &back, &r));
	}
	sim_net_forget_node(&n, 3);
	uint32_t dropped = 0;
	assert_int_equal(drain(&n, 10, &dropped), 4);
	sim_net_free(&n);
}

/* ---- disk ---- */

static struct consensus_entry ent(uint64_t term, uint64_t index, const char *data)
{
	return (struct consensus_entry){.term = term,
	                                .index = index,
	                                .type = CONSENSUS_ENTRY_NORMAL,
	                                .data_len = (uint32_t)strlen(data),
	                                .data = (const uint8_t *)data};
}

static void write_ok(struct sim_disk *d, const struct consensus_entry *e, size_t n,
                     uint64_t want_truncated)
{
	uint64_t truncated = 99;
	assert_int_equal(sim_disk_write(d, e, n, &truncated), CARELOG_OK);
	assert_int_equal(truncated, want_truncated);
}

static void test_disk_crash_loses_unsynced_entries_and_hard_state(void **state)
{
	(void)state;
	struct sim_disk d;
	sim_disk_init(&d);
	struct consensus_entry e[3] = {ent(1, 1, "a"), ent(1, 2, "b"), ent(1, 3, "c")};
	write_ok(&d, e, 2, 0);
	struct consensus_hard_state hs = {.term = 1, .vote = 2, .commit = 1};
	sim_disk_write_hard_state(&d, &hs);
	sim_disk_sync(&d);
	write_ok(&d, &e[2], 1, 0);
	struct consensus_hard_state hs2 = {.term = 2, .vote = 3, .commit = 2};
	sim_disk_write_hard_state(&d, &hs2);
	assert_int_equal(d.ops.last_index(d.ops.ctx), 3);
	sim_disk_crash(&d);
	assert_int_equal(d.log_len, 2);
	assert_int_equal(d.hard.term, 1);
	assert_int_equal(d.hard.vote, 2);
	uint64_t term = 0;
	assert_int_equal(d.ops.term(d.ops.ctx, 3, &term), CARELOG_ENOTFOUND);
	assert_int_equal(d.ops.term(d.ops.ctx, 2, &term), CARELOG_OK);
	assert_int_equal(term, 1);
	sim_disk_free(&d);
}

static void test_disk_crash_restores_a_truncated_durable_suffix(void **state)
{
	(void)state;
	struct sim_disk d;
	sim_disk_init(&d);
	struct consensus_entry e[3] = {ent(1, 1, "a"), ent(1, 2, "b"), ent(1, 3, "c")};
	write_ok(&d, e, 3, 0);
	sim_disk_sync(&d);
	uint64_t prefix3 = sim_disk_prefix(&d, 3);
	struct consensus_entry over[2] = {ent(2, 2, "x"), ent(2, 3, "y")};
	write_ok(&d, over, 2, 2);
	assert_int_equal(sim_disk_term(&d, 2), 2);
	/* A second unsynced overwrite reaching lower still. */
	struct consensus_entry lower = ent(3, 1, "z");
	write_ok(&d, &lower, 1, 1);
	assert_int_equal(d.log_len, 1);
	sim_disk_crash(&d);
	assert_int_equal(d.log_len, 3);
	assert_int_equal(sim_disk_term(&d, 1), 1);
	assert_int_equal(sim_disk_term(&d, 2), 1);
	assert_int_equal(sim_disk_prefix(&d, 3), prefix3);
	assert_memory_equal(sim_disk_entry(&d, 2)->data, "b", 1);
	/* And a synced overwrite sticks. */
	write_ok(&d, over, 2, 2);
	sim_disk_sync(&d);
	sim_disk_crash(&d);
	assert_int_equal(sim_disk_term(&d, 3), 2);
	sim_disk_free(&d);
}

static void test_disk_rejects_a_gap(void **state)
{
	(void)state;
	struct sim_disk d;
	sim_disk_init(&d);
	struct consensus_entry e = ent(1, 2, "a");
	uint64_t truncated = 0;
	assert_int_equal(sim_disk_write(&d, &e, 1, &truncated), CARELOG_EINVAL);
	struct consensus_entry bad[2] = {ent(1, 1, "a"), ent(1, 3, "b")};
	assert_int_equal(sim_disk_write(&d, bad, 2, &truncated), CARELOG_EINVAL);
	assert_int_equal(d.log_len, 0);
	sim_disk_free(&d);
}

static void test_disk_prefix_hash_depends_on_earlier_entries(void **state)
{
	(void)state;
	struct sim_disk a, b;
	sim_disk_init(&a);
	sim_disk_init(&b);
	struct consensus_entry ea[2] = {ent(1, 1, "a"), ent(1, 2, "same")};
	struct consensus_entry eb[2] = {ent(1, 1, "b"), ent(1, 2, "same")};
	write_ok(&a, ea, 2, 0);
	write_ok(&b, eb, 2, 0);
	assert_int_equal(sim_disk_entry(&a, 2)->data_hash, sim_disk_entry(&b, 2)->data_hash);
	assert_int_not_equal(sim_disk_prefix(&a, 2), sim_disk_prefix(&b, 2));
	sim_disk_free(&a);
	sim_disk_free(&b);
}

static void test_disk_entries_op_respects_bytes_max_but_returns_one(void **state)
{
	(void)state;
	struct sim_disk d;
	sim_disk_init(&d);
	struct consensus_entry e[3] = {ent(1, 1, "aaaa"), ent(1, 2, "bbbb"), ent(1, 3, "")};
	write_ok(&d, e, 3, 0);
	struct sim_alloc a;
	sim_alloc_init(&a, 1, 0);
	struct consensus_entry out[3];
	size_t count = 0;
	assert_int_equal(d.ops.entries(d.ops.ctx, 1, 4, 2, &a.ops, out, 3, &count), CARELOG_OK);
	assert_int_equal(count, 1);
	a.ops.free(a.ops.ctx, (void *)(uintptr_t)out[0].data, out[0].data_len);
	assert_int_equal(d.ops.entries(d.ops.ctx, 1, 4, 100, &a.ops, out, 3, &count), CARELOG_OK);
	assert_int_equal(count, 3);
	assert_null(out[2].data);
	for (size_t i = 0; i < 2; i++) {
		a.ops.free(a.ops.ctx, (void *)(uintptr_t)out[i].data, out[i].data_len);
	}
	assert_int_equal(a.bytes_live, 0);
	assert_int_equal(d.ops.entries(d.ops.ctx, 2, 5, 100, &a.ops, out, 3, &count),
	                 CARELOG_ENOTFOUND);
	sim_disk_free(&d);
}

static void test_disk_entries_op_frees_everything_on_enomem(void **state)
{
	(void)state;
	struct sim_disk d;
	sim_disk_init(&d);
	struct consensus_entry e[2] = {ent(1, 1, "aaaa"), ent(1, 2, "bbbb")};
	write_ok(&d, e, 2, 0);
	struct sim_alloc a;
	sim_alloc_init(&a, 1, 500000);
	unsigned enomem = 0;
	for (int i = 0; i < 50; i++) {
		struct consensus_entry out[2];
		size_t count = 77;
		int rc = d.ops.entries(d.ops.ctx, 1, 3, 100, &a.ops, out, 2, &count);
		if (rc == CARELOG_ENOMEM) {
			enomem++;
			assert_int_equal(count, 77);
		} else {
			assert_int_equal(rc, CARELOG_OK);
			for (size_t j = 0; j < count; j++) {
				a.ops.free(a.ops.ctx, (void *)(uintptr_t)out[j].data,
				           out[j].data_len);
			}
		}
		assert_int_equal(a.bytes_live, 0);
	}
	assert_true(enomem > 0);
	sim_disk_free(&d);
}

static void test_conf_roundtrip_and_membership(void **state)
{
	(void)state;
	consensus_node_id voters[] = {1, 2, 3};
	consensus_node_id outgoing[] = {1, 2, 4};
	consensus_node_id learners[] = {5};
	struct consensus_conf_state cs = {.voters = voters,
	                                  .voters_count = 3,
	                                  .voters_outgoing = outgoing,
	                                  .voters_outgoing_count = 3,
	                                  .learners = learners,
	                                  .learners_count = 1,
	                                  .auto_leave = true};
	struct sim_conf c;
	sim_conf_from_state(&c, &cs);
	assert_true(sim_conf_is_joint(&c));
	assert_true(sim_conf_has_voter(&c, 4));
	assert_false(sim_conf_has_voter(&c, 5));
	assert_true(sim_conf_has_member(&c, 5));
	assert_false(sim_conf_has_member(&c, 6));
	struct consensus_conf_state back;
	sim_conf_to_state(&c, &back);
	assert_int_equal(back.voters_outgoing_count, 3);
	assert_true(back.auto_leave);
	assert_int_equal(sim_ids_mask(voters, 3), 0xe);
}

/* ---- allocator ---- */

static void test_alloc_fails_at_its_rate_unless_suppressed(void **state)
{
	(void)state;
	struct sim_alloc a;
	sim_alloc_init(&a, 3, 100000);
	unsigned failed = 0;
	for (int i = 0; i < 10000; i++) {
		void *p = a.ops.alloc(a.ops.ctx, 16);
		if (p == NULL) {
			failed++;
		} else {
			a.ops.free(a.ops.ctx, p, 16);
		}
	}
	assert_in_range(failed, 800, 1200);
	assert_int_equal(a.failures, failed);
	a.suppress = true;
	for (int i = 0; i < 1000; i++) {
		void *p = a.ops.alloc(a.ops.ctx, 8);
		assert_non_null(p);
		a.ops.free(a.ops.ctx, p, 8);
	}
	assert_int_equal(a.bytes_live, 0);
	assert_int_equal(a.bad_frees, 0);
}

static void test_alloc_counts_live_bytes_and_catches_a_wrong_size(void **state)
{
	(void)state;
	struct sim_alloc a;
	sim_alloc_init(&a, 3, 0);
	void *p = a.ops.alloc(a.ops.ctx, 100);
	void *q = a.ops.alloc(a.ops.ctx, 50);
	assert_int_equal(a.bytes_live, 150);
	assert_int_equal(a.bytes_peak, 150);
	a.ops.free(a.ops.ctx, p, 99);
	assert_int_equal(a.bad_frees, 1);
	assert_int_equal(a.bytes_live, 150);
	a.ops.free(a.ops.ctx, p, 100);
	a.ops.free(a.ops.ctx, q, 50);
	a.ops.free(a.ops.ctx, NULL, 0);
	assert_int_equal(a.bytes_live, 0);
	assert_int_equal(a.blocks_live, 0);
}

/* ---- invariant checks ---- */

struct checks {
	struct sim_history h;
	struct sim_violation v;
	struct sim_disk d[3];
};

static int checks_setup(void **state)
{
	struct checks *c = calloc(1, sizeof(*c));
	sim_history_init(&c->h);
	for (int i = 0; i < 3; i++) {
		sim_disk_init(&c->d[i]);
	}
	*state = c;
	return 0;
}

static int checks_teardown(void **state)
{
	struct checks *c = *state;
	sim_history_free(&c->h);
	for (int i = 0; i < 3; i++) {
		sim_disk_free(&c->d[i]);
	}
	free(c);
	return 0;
}

/* Writes entries to disk `i` and runs the write checks as the node (i + 1). */
static void node_write(struct checks *c, int i, const struct consensus_entry *e, size_t n,
                       bool leader)
{
	uint64_t truncated = 0;
	assert_int_equal(sim_disk_write(&c->d[i], e, n, &truncated), CARELOG_OK);
	sim_check_log_write(&c->h, &c->v, (consensus_node_id)i + 1, &c->d[i], e[0].index,
	                    e[n - 1].index, truncated, leader);
}

static void test_check_two_leaders_in_one_term(void **state)
{
	struct checks *c = *state;
	sim_check_leader(&c->h, &c->v, 3, 1);
	sim_check_leader(&c->h, &c->v, 3, 1);
	sim_check_leader(&c->h, &c->v, 4, 2);
	assert_false(c->v.set);
	sim_check_leader(&c->h, &c->v, 3, 2);
	assert_true(c->v.set);
	assert_string_equal(c->v.invariant, "election safety");
}

static void test_check_log_matching_conflict(void **state)
{
	struct checks *c = *state;
	struct consensus_entry a[2] = {ent(1, 1, "a"), ent(2, 2, "b")};
	struct consensus_entry b[2] = {ent(1, 1, "X"), ent(2, 2, "b")};
	node_write(c, 0, a, 2, false);
	node_write(c, 1, a, 2, false);
	assert_false(c->v.set);
	/* Same (index 2, term 2), different entry before it: the previous-term check was skipped.
	 */
	node_write(c, 2, b, 2, false);
	assert_true(c->v.set);
	assert_string_equal(c->v.invariant, "log matching");
}

static void test_check_leader_truncating_its_log(void **state)
{
	struct checks *c = *state;
	struct consensus_entry a[2] = {ent(1, 1, "a"), ent(1, 2, "b")};
	node_write(c, 0, a, 2, true);
	struct consensus_entry b = ent(1, 2, "b");
	node_write(c, 1, a, 2, false);
	node_write(c, 1, &b, 1, false); /* a follower rewriting is fine */
	assert_false(c->v.set);
	node_write(c, 0, &b, 1, true);
	assert_true(c->v.set);
	assert_string_equal(c->v.invariant, "leader append-only");
}

static void test_check_commits_that_disagree(void **state)
{
	struct checks *c = *state;
	struct consensus_entry a[2] = {ent(1, 1, "a"), ent(1, 2, "b")};
	struct consensus_entry b[2] = {ent(1, 1, "a"), ent(2, 2, "c")};
	node_write(c, 0, a, 2, false);
	node_write(c, 1, b, 2, false);
	sim_check_commit(&c->h, &c->v, 1, &c->d[0], 2, 1);
	assert_int_equal(c->h.commit_max, 2);
	sim_check_commit(&c->h, &c->v, 2, &c->d[1], 1, 2);
	assert_false(c->v.set);
	sim_check_commit(&c->h, &c->v, 2, &c->d[1], 2, 2);
	assert_true(c->v.set);
	assert_string_equal(c->v.invariant, "state machine safety (committed entries agree)");
}

static void test_check_commit_beyond_the_log(void **state)
{
	struct checks *c = *state;
	struct consensus_entry a = ent(1, 1, "a");
	node_write(c, 0, &a, 1, false);
	sim_check_commit(&c->h, &c->v, 1, &c->d[0], 2, 1);
	assert_true(c->v.set);
}

static void test_check_later_term_overwrites_committed_entry(void **state)
{
	struct checks *c = *state;
	struct consensus_entry a[2] = {ent(1, 1, "a"), ent(2, 2, "b")};
	node_write(c, 0, a, 2, false);
	sim_check_commit(&c->h, &c->v, 1, &c->d[0], 2, 2);
	/* A stale leader of term 1 writing there is allowed (it can never commit it) ... */
	struct consensus_entry stale[2] = {ent(1, 1, "a"), ent(1, 2, "old")};
	node_write(c, 1, stale, 2, false);
	assert_false(c->v.set);
	/* ... a leader of term 3 is not: it must hold the entry committed in term 2. */
	struct consensus_entry late[2] = {ent(1, 1, "a"), ent(3, 2, "new")};
	node_write(c, 2, late, 2, false);
	assert_true(c->v.set);
	assert_string_equal(c->v.invariant, "leader completeness");
}

static void test_check_new_leader_without_committed_entries(void **state)
{
	struct checks *c = *state;
	struct consensus_entry a[2] = {ent(1, 1, "a"), ent(1, 2, "b")};
	node_write(c, 0, a, 2, false);
	node_write(c, 1, a, 1, false);
	sim_check_commit(&c->h, &c->v, 1, &c->d[0], 2, 1);
	/* Committed by term 1: a leader of term 1 lagging is possible, one of term 2 is not. */
	sim_check_leader_complete(&c->h, &c->v, 2, &c->d[1], 1);
	assert_false(c->v.set);
	sim_check_leader_complete(&c->h, &c->v, 1, &c->d[0], 2);
	assert_false(c->v.set);
	sim_check_leader_complete(&c->h, &c->v, 2, &c->d[1], 2);
	assert_true(c->v.set);
	assert_string_equal(c->v.invariant, "leader completeness");
}

static void test_check_vote_quorum_plain_and_joint(void **state)
{
	struct checks *c = *state;
	struct sim_conf conf;
	memset(&conf, 0, sizeof(conf));
	conf.voters_count = 3;
	conf.voters[0] = 1;
	conf.voters[1] = 2;
	conf.voters[2] = 3;
	sim_history_record_vote(&c->h, 5, 1, 1);
	sim_check_vote_quorum(&c->h, &c->v, 5, 1, &conf);
	assert_true(c->v.set);
	memset(&c->v, 0, sizeof(c->v));
	sim_history_record_vote(&c->h, 5, 3, 1);
	sim_history_record_vote(&c->h, 4, 2, 1); /* another term does not count */
	sim_check_vote_quorum(&c->h, &c->v, 5, 1, &conf);
	assert_false(c->v.set);
	conf.outgoing_count = 3;
	conf.outgoing[0] = 2;
	conf.outgoing[1] = 4;
	conf.outgoing[2] = 5;
	sim_check_vote_quorum(&c->h, &c->v, 5, 1, &conf);
	assert_true(c->v.set);
	assert_string_equal(c->v.invariant, "leader elected by a quorum of durable votes");
}

static void test_check_hard_state_going_backwards(void **state)
{
	struct checks *c = *state;
	struct consensus_hard_state a = {.term = 3, .vote = 2, .commit = 5};
	struct consensus_hard_state same_term_new_vote = {.term = 3, .vote = 1, .commit = 5};
	struct consensus_hard_state lower_commit = {.term = 4, .vote = 0, .commit = 4};
	struct consensus_hard_state lower_term = {.term = 2, .vote = 2, .commit = 5};
	struct consensus_hard_state fine = {.term = 4, .vote = 0, .commit = 5};
	sim_check_hard_state(&c->v, 1, "t", &a, &fine);
	assert_false(c->v.set);
	sim_check_hard_state(&c->v, 1, "t", &a, &same_term_new_vote);
	assert_string_equal(c->v.invariant, "one vote per term");
	memset(&c->v, 0, sizeof(c->v));
	sim_check_hard_state(&c->v, 1, "t", &a, &lower_commit);
	assert_string_equal(c->v.invariant, "commit never decreases");
	memset(&c->v, 0, sizeof(c->v));
	sim_check_hard_state(&c->v, 1, "t", &a, &lower_term);
	assert_string_equal(c->v.invariant, "term never decreases");
}

static void test_check_applied_chains_and_proposals(void **state)
{
	struct checks *c = *state;
	sim_check_apply(&c->h, &c->v, 1, 1, 111);
	sim_check_apply(&c->h, &c->v, 1, 2, 222);
	sim_check_apply(&c->h, &c->v, 2, 1, 111);
	sim_check_proposal_applied(&c->h, &c->v, 1, 7, 2);
	sim_check_proposal_applied(&c->h, &c->v, 2, 7, 2);
	assert_false(c->v.set);
	sim_check_proposal_applied(&c->h, &c->v, 2, 7, 3);
	assert_string_equal(c->v.invariant, "each proposal applied once");
	memset(&c->v, 0, sizeof(c->v));
	sim_check_apply(&c->h, &c->v, 2, 2, 333);
	assert_string_equal(c->v.invariant, "same applied sequence everywhere");
}

static void test_check_read_missing_an_acknowledged_write(void **state)
{
	struct checks *c = *state;
	sim_history_ack(&c->h, 1, 5);
	sim_history_ack(&c->h, 2, 3);
	assert_int_equal(c->h.acked_index_max, 5);
	sim_check_read(&c->v, 1, 1, 5, c->h.acked_index_max);
	assert_false(c->v.set);
	sim_check_read(&c->v, 1, 2, 4, c->h.acked_index_max);
	assert_true(c->v.set);
	assert_string_equal(c->v.invariant, "linearizable ReadIndex");
}

static uint64_t first_byte_id(const struct sim_log_entry *e)
{
	return e->data_len == 0 ? 0 : e->data[0];
}

static void test_check_acknowledged_proposal_lost(void **state)
{
	struct checks *c = *state;
	struct consensus_entry a[2] = {ent(1, 1, "\x07"), ent(1, 2, "\x08")};
	struct consensus_entry b[2] = {ent(1, 1, "\x07"), ent(2, 2, "\x09")};
	node_write(c, 0, a, 2, false);
	node_write(c, 1, b, 2, false);
	node_write(c, 2, a, 1, false);
	sim_history_ack(&c->h, 8, 2);
	sim_check_acked_present(&c->h, &c->v, 1, &c->d[0], first_byte_id);
	sim_check_acked_present(&c->h, &c->v, 3, &c->d[2], first_byte_id); /* too short: fine */
	assert_false(c->v.set);
	sim_check_acked_present(&c->h, &c->v, 2, &c->d[1], first_byte_id);
	assert_true(c->v.set);
	assert_string_equal(c->v.invariant, "no acknowledged proposal lost");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_prng_same_seed_gives_same_stream),
	    cmocka_unit_test(test_prng_bounds_and_chances_hold),
	    cmocka_unit_test(test_trace_hash_covers_every_field),
	    cmocka_unit_test(test_trace_ring_keeps_the_last_events),
	    cmocka_unit_test(test_net_without_faults_delivers_everything_within_the_delay),
	    cmocka_unit_test(test_net_delivers_in_random_order),
	    cmocka_unit_test(test_net_total_loss_drops_everything),
	    cmocka_unit_test(test_net_duplication_delivers_twice),
	    cmocka_unit_test(test_net_cut_link_drops_one_direction_only),
	    cmocka_unit_test(test_net_clogged_link_holds_packets_until_unclogged),
	    cmocka_unit_test(test_net_copies_entries_deeply),
	    cmocka_unit_test(test_net_forget_node_drops_its_packets),
	    cmocka_unit_test(test_disk_crash_loses_unsynced_entries_and_hard_state),
	    cmocka_unit_test(test_disk_crash_restores_a_truncated_durable_suffix),
	    cmocka_unit_test(test_disk_rejects_a_gap),
	    cmocka_unit_test(test_disk_prefix_hash_depends_on_earlier_entries),
	    cmocka_unit_test(test_disk_entries_op_respects_bytes_max_but_returns_one),
	    cmocka_unit_test(test_disk_entries_op_frees_everything_on_enomem),
	    cmocka_unit_test(test_conf_roundtrip_and_membership),
	    cmocka_unit_test(test_alloc_fails_at_its_rate_unless_suppressed),
	    cmocka_unit_test(test_alloc_counts_live_bytes_and_catches_a_wrong_size),
	    cmocka_unit_test_setup_teardown(test_check_two_leaders_in_one_term, checks_setup,
	                                    checks_teardown),
	    cmocka_unit_test_setup_teardown(test_check_log_matching_conflict, checks_setup,
	                                    checks_teardown),
	    cmocka_unit_test_setup_teardown(test_check_leader_truncating_its_log, checks_setup,
	                                    checks_teardown),
	    cmocka_unit_test_setup_teardown(test_check_commits_that_disagree, checks_setup,
	                                    checks_teardown),
	    cmocka_unit_test_setup_teardown(test_check_commit_beyond_the_log, checks_setup,
	                                    checks_teardown),
	    cmocka_unit_test_setup_teardown(test_check_later_term_overwrites_committed_entry,
	                                    checks_setup, checks_teardown),
	    cmocka_unit_test_setup_teardown(test_check_new_leader_without_committed_entries,
	                                    checks_setup, checks_teardown),
	    cmocka_unit_test_setup_teardown(test_check_vote_quorum_plain_and_joint, checks_setup,
	                                    checks_teardown),
	    cmocka_unit_test_setup_teardown(test_check_hard_state_going_backwards, checks_setup,
	                                    checks_teardown),
	    cmocka_unit_test_setup_teardown(test_check_applied_chains_and_proposals, checks_setup,
	                                    checks_teardown),
	    cmocka_unit_test_setup_teardown(test_check_read_missing_an_acknowledged_write,
	                                    checks_setup, checks_teardown),
	    cmocka_unit_test_setup_teardown(test_check_acknowledged_proposal_lost, checks_setup,
	                                    checks_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
