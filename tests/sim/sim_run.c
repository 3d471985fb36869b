/* One seed's run: the profile it draws, faults and workload interleaved, then a liveness phase. */
#include <stdio.h>
#include <string.h>

#include "carelog/errors.h"
#include "common/assert.h"
#include "common/bytes.h"
#include "sim.h"

/* Default length of the fault phase, in ticks (election timeouts are 10-20 ticks). */
enum { SIM_TICKS_DEFAULT = 8000 };
/* The liveness phase must commit a fresh proposal within this many election timeouts. */
enum { SIM_LIVENESS_ELECTIONS_MAX = 30 };
/* ... plus this many ticks per uncommitted entry in the logs when faults stop. */
enum { SIM_LIVENESS_TICKS_PER_ENTRY = 4 };
/* Voters the workload keeps at least (it never removes below this). */
enum { SIM_VOTERS_MIN = 3 };
/* Proposal data buffer: tag, id, padding. */
enum { SIM_PROPOSAL_BUF_BYTES = 128 };

static void sim_trace_ev(struct sim *sim, uint32_t kind, uint64_t node, uint64_t a, uint64_t b,
                         uint64_t c, uint64_t d, uint64_t e, uint64_t f)
{
	sim_trace_event(&sim->trace, kind, node, a, b, c, d, e, f);
}

static void sim_profile_draw(struct sim *sim, struct sim_prng *r)
{
	struct sim_profile *p = &sim->prof;
	memset(p, 0, sizeof(*p));
	static const uint64_t append_bytes[] = {128, 512, 4096};
	static const uint64_t uncommitted_bytes[] = {1024, 8192, 1u << 20};
	static const uint64_t ready_bytes[] = {256, 4096, 1u << 20};
	p->voters_initial =
	    sim->opt.nodes != 0 ? sim->opt.nodes : (uint32_t)sim_prng_range(r, 3, 5);
	p->election_ticks = 10;
	p->heartbeat_ticks = (uint32_t)sim_prng_range(r, 1, 3);
	p->pre_vote = sim_prng_chance_pct(r, 75);
	p->check_quorum = sim_prng_chance_pct(r, 75);
	p->inflight_msgs_max = (uint32_t)sim_prng_range(r, 1, 8);
	p->append_bytes_max = append_bytes[sim_prng_below(r, 3)];
	p->uncommitted_bytes_max = uncommitted_bytes[sim_prng_below(r, 3)];
	p->ready_bytes_max = ready_bytes[sim_prng_below(r, 3)];
	p->read_index_max = (uint32_t)sim_prng_range(r, 2, 16);
	p->members_max = 12;
	p->net.loss_ppm = sim_prng_chance_pct(r, 20) ? 0 : (uint32_t)sim_prng_range(r, 0, 300000);
	p->net.dup_ppm = sim_prng_chance_pct(r, 40) ? 0 : (uint32_t)sim_prng_range(r, 1000, 100000);
	p->net.delay_min_ticks = 1;
	p->net.delay_max_ticks = (uint32_t)sim_prng_range(r, 1, 1 + sim_prng_below(r, 7));
	p->net.spike_ppm = sim_prng_chance_pct(r, 50) ? 0 : (uint32_t)sim_prng_range(r, 100, 20000);
	p->net.spike_max_ticks = 3 * p->election_ticks;
	p->enomem_ppm = sim_prng_chance_pct(r, 40) ? 0 : (uint32_t)sim_prng_range(r, 50, 20000);
	p->crash_ppm = sim_prng_chance_pct(r, 10) ? 0 : (uint32_t)sim_prng_range(r, 100, 3000);
	p->crash_ready_ppm =
	    sim_prng_chance_pct(r, 20) ? 0 : (uint32_t)sim_prng_range(r, 100, 3000);
	p->down_ticks_max = (uint32_t)sim_prng_range(r, 5, 6 * p->election_ticks);
	p->partition_ppm =
	    sim_prng_chance_pct(r, 10) ? 0 : (uint32_t)sim_prng_range(r, 2000, 30000);
	p->partition_ticks_max =
	    (uint32_t)sim_prng_range(r, p->election_ticks, 10 * p->election_ticks);
	p->propose_pct = (uint32_t)sim_prng_range(r, 5, 60);
	p->read_pct = (uint32_t)sim_prng_range(r, 0, 30);
	p->conf_ppm = (uint32_t)sim_prng_range(r, 2000, 20000);
	p->transfer_ppm = (uint32_t)sim_prng_range(r, 0, 5000);
	p->tick_skip_pct_max = sim_prng_chance_pct(r, 50) ? 0 : (uint32_t)sim_prng_range(r, 1, 20);
	p->reapply_pct = sim_prng_chance_pct(r, 70) ? 0 : (uint32_t)sim_prng_range(r, 10, 50);
	uint64_t total = p->voters_initial + sim_prng_range(r, 2, 10);
	p->nodes_total_max = (uint32_t)(total < SIM_NODES_MAX - 1 ? total : SIM_NODES_MAX - 1);
}

/* ---- choosing nodes ------------------------------------------------------------------------ */

static struct sim_node *sim_pick_up(struct sim *sim)
{
	consensus_node_id ids[SIM_NODES_MAX];
	uint32_t n = 0;
	for (uint64_t id = 1; id < sim->next_id; id++) {
		if (sim->nodes[id].up) {
			ids[n++] = id;
		}
	}
	return n == 0 ? NULL : &sim->nodes[ids[sim_prng_below(&sim->prng, n)]];
}

static struct sim_node *sim_pick_leader(struct sim *sim)
{
	consensus_node_id ids[SIM_NODES_MAX];
	uint32_t n = 0;
	for (uint64_t id = 1; id < sim->next_id; id++) {
		if (sim_node_role(&sim->nodes[id]) == CONSENSUS_ROLE_LEADER) {
			ids[n++] = id;
		}
	}
	return n == 0 ? NULL : &sim->nodes[ids[sim_prng_below(&sim->prng, n)]];
}

static consensus_node_id sim_pick_id(struct sim *sim, const consensus_node_id *ids, uint32_t count,
                                     consensus_node_id except)
{
	consensus_node_id c[SIM_CONF_IDS_MAX];
	uint32_t n = 0;
	for (uint32_t i = 0; i < count; i++) {
		if (ids[i] != except) {
			c[n++] = ids[i];
		}
	}
	return n == 0 ? 0 : c[sim_prng_below(&sim->prng, n)];
}

/* The configuration of the node that has applied the most (all agree up to their index). */
static const struct sim_conf *sim_latest_conf(const struct sim *sim)
{
	const struct sim_conf *best = NULL;
	uint64_t best_index = 0;
	for (uint64_t id = 1; id < sim->next_id; id++) {
		const struct sim_node *n = &sim->nodes[id];
		if (n->exists && n->disk.applied.index >= best_index) {
			best_index = n->disk.applied.index;
			best = &n->disk.applied.conf;
		}
	}
	return best;
}

/* ---- workload ------------------------------------------------------------------------------ */

static bool sim_rc_in(int rc, const int *allowed, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		if (allowed[i] == rc) {
			return true;
		}
	}
	return false;
}

static void sim_after_request(struct sim *sim, struct sim_node *n, int rc, const char *what,
                              const int *allowed, size_t allowed_count)
{
	if (!sim_rc_in(rc, allowed, allowed_count)) {
		sim_violation_set(&sim->viol, "requests return documented errors",
		                  "n%u: %s returned %s", (unsigned)n->id, what,
		                  carelog_errname(rc));
		return;
	}
	if (rc == CARELOG_ENOMEM) {
		sim_trace_ev(sim, SIM_EV_ENOMEM, n->id, 3, 0, 0, 0, 0, 0);
	}
	sim_node_drain(sim, n);
}

static uint64_t sim_propose_at(struct sim *sim, struct sim_node *n)
{
	uint8_t buf[SIM_PROPOSAL_BUF_BYTES];
	uint32_t len = 0;
	uint64_t id = sim_proposal_make(sim, buf, sizeof(buf), &len);
	uint64_t index = 0;
	int rc = consensus_propose(n->core, buf, len, &index);
	sim_trace_ev(sim, SIM_EV_PROPOSE, n->id, id, (uint64_t)rc, index, 0, 0, 0);
	sim->stats.proposals++;
	if (rc == CARELOG_OK) {
		if (n->pending_count == SIM_PENDING_MAX) {
			/* The client gave up on the oldest one. */
			memmove(&n->pending[0], &n->pending[1],
			        (SIM_PENDING_MAX - 1) * sizeof(n->pending[0]));
			n->pending_count--;
		}
		n->pending[n->pending_count++] = (struct sim_pending_proposal){index, id};
	}
	static const int allowed[] = {CARELOG_OK, CARELOG_ENOMEM, CARELOG_ENOTLEADER, CARELOG_EBUSY,
	                              CARELOG_ECLOSED};
	sim_after_request(sim, n, rc, "consensus_propose", allowed, CL_ARRAY_LEN(allowed));
	return rc == CARELOG_OK ? id : 0;
}

static void sim_workload_propose(struct sim *sim)
{
	struct sim_node *n = sim_prng_chance_pct(&sim->prng, 80) ? sim_pick_leader(sim) : NULL;
	if (n == NULL) {
		n = sim_pick_up(sim);
	}
	if (n != NULL) {
		(void)sim_propose_at(sim, n);
	}
}

static void sim_workload_read(struct sim *sim)
{
	struct sim_node *n = sim_pick_up(sim);
	if (n == NULL) {
		return;
	}
	uint64_t ctx = ++sim->next_read_ctx;
	int rc = consensus_read_index(n->core, ctx);
	sim_trace_ev(sim, SIM_EV_READ, n->id, ctx, (uint64_t)rc, sim->hist.acked_index_max, 0, 0,
	             0);
	if (rc == CARELOG_OK) {
		if (n->reads_count == SIM_READS_MAX) {
			memmove(&n->reads[0], &n->reads[1],
			        (SIM_READS_MAX - 1) * sizeof(n->reads[0]));
			n->reads_count--;
		}
		n->reads[n->reads_count++] =
		    (struct sim_pending_read){.ctx = ctx, .required = sim->hist.acked_index_max};
	}
	static const int allowed[] = {CARELOG_OK, CARELOG_ENOMEM, CARELOG_ENOTLEADER, CARELOG_EBUSY,
	                              CARELOG_ECLOSED};
	sim_after_request(sim, n, rc, "consensus_read_index", allowed, CL_ARRAY_LEN(allowed));
}

enum sim_conf_kind {
	SIM_CONF_ADD_LEARNER = 1,
	SIM_CONF_PROMOTE = 2,
	SIM_CONF_REMOVE_LEARNER = 3,
	SIM_CONF_REMOVE_VOTER = 4,
	SIM_CONF_DEMOTE = 5,
	SIM_CONF_REPLACE = 6,
	SIM_CONF_LEAVE_JOINT = 7,
};

/* A node that may be added as a learner: started but never a member, or a brand new one. */
static consensus_node_id sim_joinable_node(struct sim *sim, const struct sim_conf *conf)
{
	for (uint64_t id = 1; id < sim->next_id; id++) {
		const struct sim_node *x = &sim->nodes[id];
		if (x->exists && !x->retired && !x->stopped && !sim_conf_has_member(conf, id)) {
			return id;
		}
	}
	if (sim->next_id > sim->prof.nodes_total_max) {
		return 0;
	}
	consensus_node_id id = sim->next_id++;
	sim->nodes[id].id = id;
	sim->stats.learners_added++;
	sim_node_start_new(sim, &sim->nodes[id], false);
	return id;
}

static void sim_propose_conf(struct sim *sim, struct sim_node *leader, enum sim_conf_kind kind,
                             struct consensus_conf_change *cc, consensus_node_id target,
                             consensus_node_id retire)
{
	uint8_t ctx[8];
	cl_put_u64be(ctx, target);
	uint64_t index = 0;
	int rc = consensus_propose_conf_change(leader->core, cc, ctx, sizeof(ctx), &index);
	sim_trace_ev(sim, SIM_EV_CONF_PROPOSE, leader->id, kind, target, (uint64_t)rc, index, 0, 0);
	if (rc == CARELOG_OK && retire != 0) {
		sim->nodes[retire].retired = true;
		sim->nodes[retire].retire_index = index;
	}
	static const int allowed[] = {CARELOG_OK,    CARELOG_ENOMEM,  CARELOG_ENOTLEADER,
	                              CARELOG_EBUSY, CARELOG_ECLOSED, CARELOG_EINVAL};
	sim_after_request(sim, leader, rc, "consensus_propose_conf_change", allowed,
	                  CL_ARRAY_LEN(allowed));
}

static void sim_workload_conf(struct sim *sim, struct sim_node *leader)
{
	const struct sim_conf conf = leader->disk.applied.conf; /* a copy: proposing may apply */
	struct consensus_conf_change cc;
	memset(&cc, 0, sizeof(cc));
	cc.transition = CONSENSUS_CONF_TRANSITION_AUTO;
	if (sim_conf_is_joint(&conf)) {
		/* Only an explicit joint configuration waits for the workload to leave it. */
		if (!conf.auto_leave) {
			sim_propose_conf(sim, leader, SIM_CONF_LEAVE_JOINT, &cc, 0, 0);
		}
		return;
	}
	enum sim_conf_kind kind = (enum sim_conf_kind)sim_prng_range(&sim->prng, 1, 6);
	consensus_node_id learner = sim_pick_id(sim, conf.learners, conf.learners_count, 0);
	bool voters_spare = conf.voters_count > SIM_VOTERS_MIN;
	consensus_node_id voter = sim_pick_id(sim, conf.voters, conf.voters_count, 0);
	if ((kind == SIM_CONF_PROMOTE || kind == SIM_CONF_REMOVE_LEARNER ||
	     kind == SIM_CONF_REPLACE) &&
	    learner == 0) {
		kind = SIM_CONF_ADD_LEARNER;
	}
	if ((kind == SIM_CONF_REMOVE_VOTER || kind == SIM_CONF_DEMOTE) && !voters_spare) {
		kind = learner != 0 ? SIM_CONF_PROMOTE : SIM_CONF_ADD_LEARNER;
	}
	consensus_node_id target = 0;
	consensus_node_id retire = 0;
	cc.count = 1;
	switch (kind) {
	case SIM_CONF_ADD_LEARNER:
		if (conf.voters_count + conf.learners_count + 2 > sim->prof.members_max) {
			return; /* stay within the core's members_max */
		}
		target = sim_joinable_node(sim, &conf);
		if (target == 0 || !leader->up) {
			return;
		}
		cc.changes[0].op = CONSENSUS_CONF_ADD_LEARNER;
		break;
	case SIM_CONF_PROMOTE:
		target = learner;
		cc.changes[0].op = CONSENSUS_CONF_ADD_VOTER;
		break;
	case SIM_CONF_REMOVE_LEARNER:
		target = retire = learner;
		cc.changes[0].op = CONSENSUS_CONF_REMOVE;
		break;
	case SIM_CONF_REMOVE_VOTER:
		target = retire = voter; /* sometimes the leader itself */
		cc.changes[0].op = CONSENSUS_CONF_REMOVE;
		break;
	case SIM_CONF_DEMOTE:
		target = voter;
		cc.changes[0].op = CONSENSUS_CONF_ADD_LEARNER;
		break;
	case SIM_CONF_REPLACE:
		/* Two voters change at once: joint consensus (thesis 4.3). */
		target = learner;
		retire = voter;
		cc.count = 2;
		cc.changes[0].op = CONSENSUS_CONF_ADD_VOTER;
		cc.changes[1].op = CONSENSUS_CONF_REMOVE;
		cc.changes[1].node_id = voter;
		cc.transition = (uint8_t)sim_prng_below(&sim->prng, 3);
		break;
	case SIM_CONF_LEAVE_JOINT:
		CL_UNREACHABLE();
	}
	cc.changes[0].node_id = target;
	sim_propose_conf(sim, leader, kind, &cc, target, retire);
}

static void sim_workload_transfer(struct sim *sim, struct sim_node *leader)
{
	const struct sim_conf *conf = &leader->disk.applied.conf;
	consensus_node_id to = sim_pick_id(sim, conf->voters, conf->voters_count, leader->id);
	if (to == 0) {
		return;
	}
	int rc = consensus_transfer_leader(leader->core, to);
	sim_trace_ev(sim, SIM_EV_TRANSFER, leader->id, to, (uint64_t)rc, 0, 0, 0, 0);
	if (rc == CARELOG_OK) {
		sim->stats.transfers++;
	}
	static const int allowed[] = {CARELOG_OK, CARELOG_ENOMEM, CARELOG_ENOTLEADER, CARELOG_EBUSY,
	                              CARELOG_EINVAL};
	sim_after_request(sim, leader, rc, "consensus_transfer_leader", allowed,
	                  CL_ARRAY_LEN(allowed));
}

static void sim_workload(struct sim *sim)
{
	const struct sim_profile *p = &sim->prof;
	if (sim_prng_chance_pct(&sim->prng, p->propose_pct)) {
		sim_workload_propose(sim);
	}
	if (!sim->viol.set && sim_prng_chance_pct(&sim->prng, p->read_pct)) {
		sim_workload_read(sim);
	}
	if (!sim->viol.set && sim_prng_chance_ppm(&sim->prng, p->conf_ppm)) {
		struct sim_node *leader = sim_pick_leader(sim);
		if (leader != NULL) {
			sim_workload_conf(sim, leader);
		}
	}
	if (!sim->viol.set && sim_prng_chance_ppm(&sim->prng, p->transfer_ppm)) {
		struct sim_node *leader = sim_pick_leader(sim);
		if (leader != NULL) {
			sim_workload_transfer(sim, leader);
		}
	}
}

/* ---- faults -------------------------------------------------------------------------------- */

static void sim_link_fault_add(struct sim *sim, consensus_node_id from, consensus_node_id to,
                               bool clog, uint64_t heal_tick)
{
	CL_ASSERT(sim->link_faults_count < SIM_LINK_FAULTS_MAX);
	sim->link_faults[sim->link_faults_count++] =
	    (struct sim_link_fault){(uint8_t)from, (uint8_t)to, clog, heal_tick};
	if (clog) {
		sim_net_set_clog(&sim->net, from, to, true);
		sim_trace_ev(sim, SIM_EV_CLOG, from, to, 0, 0, 0, 0, 0);
	} else {
		sim_net_set_cut(&sim->net, from, to, true);
	}
}

static void sim_link_faults_heal_due(struct sim *sim, bool all)
{
	for (uint32_t i = 0; i < sim->link_faults_count; i++) {
		struct sim_link_fault *f = &sim->link_faults[i];
		if (!all && f->heal_tick > sim->tick) {
			continue;
		}
		if (f->clog) {
			sim_net_set_clog(&sim->net, f->from, f->to, false);
			sim_trace_ev(sim, SIM_EV_UNCLOG, f->from, f->to, 0, 0, 0, 0, 0);
		} else {
			sim_net_set_cut(&sim->net, f->from, f->to, false);
		}
		sim->link_faults[i] = sim->link_faults[--sim->link_faults_count];
		i--;
		if (sim->link_faults_count == 0) {
			sim_trace_ev(sim, SIM_EV_HEAL, 0, 0, 0, 0, 0, 0, 0);
		}
	}
}

enum sim_partition_kind {
	SIM_PARTITION_ISOLATE = 0,
	SIM_PARTITION_SPLIT = 1,
	SIM_PARTITION_ONE_WAY = 2,
	SIM_PARTITION_CLOG = 3,
};

static void sim_partition_start(struct sim *sim)
{
	consensus_node_id live[SIM_NODES_MAX];
	uint32_t k = 0;
	for (uint64_t id = 1; id < sim->next_id; id++) {
		if (sim->nodes[id].exists && !sim->nodes[id].stopped) {
			live[k++] = id;
		}
	}
	if (k < 2) {
		return;
	}
	/* Shuffle, then side A is a prefix (Fisher-Yates, bounded by k). */
	for (uint32_t i = k - 1; i > 0; i--) {
		uint32_t j = (uint32_t)sim_prng_below(&sim->prng, i + 1);
		consensus_node_id t = live[i];
		live[i] = live[j];
		live[j] = t;
	}
	enum sim_partition_kind kind = (enum sim_partition_kind)sim_prng_below(&sim->prng, 4);
	uint64_t dur =
	    sim_prng_range(&sim->prng, sim->prof.election_ticks, sim->prof.partition_ticks_max);
	uint32_t side =
	    kind == SIM_PARTITION_ISOLATE ? 1 : (uint32_t)sim_prng_range(&sim->prng, 1, k / 2);
	uint64_t mask = sim_ids_mask(live, side);
	bool one_way = kind == SIM_PARTITION_ONE_WAY;
	bool reverse = one_way && sim_prng_chance_pct(&sim->prng, 50);
	sim->stats.partitions++;
	sim_trace_ev(sim, SIM_EV_PARTITION, 0, kind, mask, one_way, 0, 0, 0);
	if (kind == SIM_PARTITION_CLOG) {
		/* Random directed links clogged, each healed at its own random time. */
		uint32_t links = (uint32_t)sim_prng_range(&sim->prng, 1, k * (k - 1));
		for (uint32_t i = 0; i < links; i++) {
			consensus_node_id a = live[sim_prng_below(&sim->prng, k)];
			consensus_node_id b = live[sim_prng_below(&sim->prng, k)];
			if (a == b || sim->net.clog[a][b]) {
				continue;
			}
			sim_link_fault_add(sim, a, b, true,
			                   sim->tick + sim_prng_range(&sim->prng, 1, dur));
		}
		return;
	}
	for (uint32_t i = 0; i < side; i++) {
		for (uint32_t j = side; j < k; j++) {
			/* Links heal one by one, in random order, around the end of the partition.
			 */
			uint64_t heal =
			    sim->tick + dur + sim_prng_below(&sim->prng, sim->prof.election_ticks);
			if (!one_way || !reverse) {
				sim_link_fault_add(sim, live[i], live[j], false, heal);
			}
			if (!one_way || reverse) {
				sim_link_fault_add(sim, live[j], live[i], false, heal);
			}
		}
	}
}

static void sim_faults_tick(struct sim *sim)
{
	sim_link_faults_heal_due(sim, false);
	if (sim->link_faults_count == 0 &&
	    sim_prng_chance_ppm(&sim->prng, sim->prof.partition_ppm)) {
		sim_partition_start(sim);
	}
	for (uint64_t id = 1; id < sim->next_id && !sim->viol.set; id++) {
		struct sim_node *n = &sim->nodes[id];
		if (n->up && sim_prng_chance_ppm(&sim->crash_prng, sim->prof.crash_ppm)) {
			sim_node_crash(sim, n, SIM_CRASH_IDLE);
		}
	}
}

/* ---- the clock ----------------------------------------------------------------------------- */

static void sim_restarts_and_stops(struct sim *sim)
{
	for (uint64_t id = 1; id < sim->next_id && !sim->viol.set; id++) {
		struct sim_node *n = &sim->nodes[id];
		if (n->stop_at != 0 && n->stop_at <= sim->tick && !n->stopped) {
			sim_node_stop(sim, n);
		}
		if (n->exists && !n->up && !n->stopped && n->down_until <= sim->tick) {
			(void)sim_node_restart(sim, n);
		}
	}
}

static void sim_tick_nodes(struct sim *sim)
{
	uint64_t count = sim->next_id - 1;
	uint64_t start = sim_prng_below(&sim->prng, count);
	for (uint64_t i = 0; i < count && !sim->viol.set; i++) {
		struct sim_node *n = &sim->nodes[1 + (start + i) % count];
		if (!n->up) {
			continue;
		}
		if (n->tick_skip_pct != 0 && sim_prng_chance_pct(&sim->prng, n->tick_skip_pct)) {
			continue; /* a slow clock */
		}
		sim_node_tick(sim, n);
	}
}

static void sim_step_tick(struct sim *sim)
{
	sim->tick++;
	sim->trace.tick = sim->tick;
	sim->stats.ticks++;
	if (sim->faults) {
		sim_faults_tick(sim);
	}
	if (!sim->viol.set) {
		sim_deliver_due(sim);
	}
	if (!sim->viol.set) {
		sim_tick_nodes(sim);
	}
	if (!sim->viol.set) {
		sim_restarts_and_stops(sim);
	}
}

/* ---- phases -------------------------------------------------------------------------------- */

static void sim_liveness_prepare(struct sim *sim)
{
	sim->faults = false;
	sim_trace_ev(sim, SIM_EV_PHASE, 0, 1, 0, 0, 0, 0, 0);
	sim_link_faults_heal_due(sim, true);
	sim_net_heal(&sim->net);
	sim->net.opt.loss_ppm = 0;
	sim->net.opt.dup_ppm = 0;
	sim->net.opt.spike_ppm = 0;
	sim->net.opt.delay_max_ticks = sim->net.opt.delay_min_ticks;
	sim->net.opt.fifo = true;
	const struct sim_conf *latest = sim_latest_conf(sim);
	uint64_t latest_index = 0;
	for (uint64_t id = 1; id < sim->next_id; id++) {
		const struct sim_node *n = &sim->nodes[id];
		if (n->exists && n->disk.applied.index > latest_index) {
			latest_index = n->disk.applied.index;
		}
	}
	for (uint64_t id = 1; id < sim->next_id; id++) {
		struct sim_node *n = &sim->nodes[id];
		n->alloc.fail_ppm = 0;
		n->down_until = sim->tick;
		/* The operator stops nodes the configuration no longer names. */
		if (n->retired && !n->stopped && latest != NULL &&
		    latest_index >= n->retire_index && !sim_conf_has_member(latest, id)) {
			sim_node_stop(sim, n);
		}
	}
}

/* Sum of applied indexes of the up members still below `index` (0 when all caught up). */
static uint64_t sim_members_lag(struct sim *sim, uint64_t index, uint64_t *out_progress)
{
	const struct sim_conf *latest = sim_latest_conf(sim);
	uint64_t lagging = 0;
	uint64_t progress = 0;
	for (uint64_t id = 1; id < sim->next_id; id++) {
		const struct sim_node *n = &sim->nodes[id];
		if (n->up && sim_conf_has_member(latest, id) && n->disk.applied.index < index) {
			lagging++;
			progress += n->disk.applied.index;
		}
	}
	*out_progress = progress;
	return lagging;
}

static void sim_report_lagging(struct sim *sim, const char *invariant, uint64_t ticks)
{
	char lag[256] = "";
	size_t used = 0;
	const struct sim_conf *latest = sim_latest_conf(sim);
	for (uint64_t id = 1; id < sim->next_id && used < sizeof(lag) - 64; id++) {
		const struct sim_node *n = &sim->nodes[id];
		if (n->up && sim_conf_has_member(latest, id) &&
		    n->disk.applied.index < sim->liveness_index) {
			int w = snprintf(lag + used, sizeof(lag) - used,
			                 " n%u(applied %llu, log %llu, commit %llu)", (unsigned)id,
			                 (unsigned long long)n->disk.applied.index,
			                 (unsigned long long)n->disk.log_len,
			                 (unsigned long long)n->disk.hard_durable.commit);
			used += w > 0 ? (size_t)w : 0;
		}
	}
	sim_violation_set(&sim->viol, invariant,
	                  "members had not applied index %llu, no progress for %llu ticks:%s",
	                  (unsigned long long)sim->liveness_index, (unsigned long long)ticks, lag);
}

/* After the commit: every member catches up, each stall shorter than the commit bound. */
static void sim_liveness_catch_up(struct sim *sim, uint64_t stall_ticks_max)
{
	uint64_t progress = 0;
	uint64_t last_progress_tick = sim->tick;
	uint64_t last_progress = 0;
	(void)sim_members_lag(sim, sim->liveness_index, &last_progress);
	/* Bounded: every iteration either makes progress (at most liveness_index per member) or
	 * counts towards the stall bound. */
	while (!sim->viol.set && sim_members_lag(sim, sim->liveness_index, &progress) != 0) {
		if (progress != last_progress) {
			last_progress = progress;
			last_progress_tick = sim->tick;
		} else if (sim->tick - last_progress_tick >= stall_ticks_max) {
			sim_report_lagging(sim, "liveness: members catch up after healing",
			                   stall_ticks_max);
			return;
		}
		sim_step_tick(sim);
	}
}

static void sim_liveness(struct sim *sim)
{
	sim_liveness_prepare(sim);
	/* The bound: a few elections, plus time to bring the most lagging member up to the
	 * longest log (a quorum may need it before anything new can commit). */
	uint64_t log_max = 0;
	uint64_t log_min = UINT64_MAX;
	const struct sim_conf *latest = sim_latest_conf(sim);
	for (uint64_t id = 1; id < sim->next_id; id++) {
		const struct sim_node *n = &sim->nodes[id];
		if (n->exists && !n->stopped) {
			log_max = n->disk.log_len > log_max ? n->disk.log_len : log_max;
			if (latest != NULL && sim_conf_has_member(latest, id) &&
			    n->disk.log_len < log_min) {
				log_min = n->disk.log_len;
			}
		}
	}
	log_min = log_min > log_max ? log_max : log_min;
	uint64_t budget = (uint64_t)SIM_LIVENESS_ELECTIONS_MAX * sim->prof.election_ticks +
	                  SIM_LIVENESS_TICKS_PER_ENTRY * (log_max - log_min);
	uint64_t repropose_ticks = 3 * (uint64_t)sim->prof.election_ticks;
	uint64_t proposed_at = 0;
	uint64_t start = sim->tick;
	sim->liveness_id = 0;
	sim->liveness_acked = false;
	while (!sim->viol.set && !sim->liveness_acked && sim->tick - start < budget) {
		sim_step_tick(sim);
		if (sim->viol.set || sim->liveness_acked) {
			break;
		}
		struct sim_node *leader = sim_pick_leader(sim);
		if (leader == NULL) {
			continue;
		}
		const struct sim_conf *conf = &leader->disk.applied.conf;
		if (sim_conf_is_joint(conf) && !conf->auto_leave) {
			sim_workload_conf(sim, leader);
		}
		if (leader->up &&
		    (sim->liveness_id == 0 || sim->tick - proposed_at >= repropose_ticks)) {
			uint64_t id = sim_propose_at(sim, leader);
			if (id != 0) {
				sim->liveness_id = id;
				proposed_at = sim->tick;
			}
		}
	}
	if (sim->viol.set) {
		return;
	}
	if (!sim->liveness_acked) {
		sim_violation_set(&sim->viol, "liveness: commit after healing",
		                  "no proposal committed within %llu ticks after faults stopped",
		                  (unsigned long long)budget);
		return;
	}
	sim_liveness_catch_up(sim, (uint64_t)SIM_LIVENESS_ELECTIONS_MAX * sim->prof.election_ticks);
}

bool sim_run(struct sim *sim, uint64_t seed, const struct sim_options *opt)
{
	memset(sim, 0, sizeof(*sim));
	sim->seed = seed;
	sim->opt = *opt;
	struct sim_prng root;
	sim_prng_seed(&root, seed);
	struct sim_prng profile_prng;
	sim_prng_split(&root, 1, &profile_prng);
	sim_prng_split(&root, 2, &sim->prng);
	sim_prng_split(&root, 3, &sim->crash_prng);
	struct sim_prng net_prng;
	sim_prng_split(&root, 4, &net_prng);
	sim_profile_draw(sim, &profile_prng);
	sim_trace_init(&sim->trace, opt->verbose);
	sim_net_init(&sim->net, sim_prng_next(&net_prng), &sim->prof.net);
	sim_history_init(&sim->hist);
	sim->faults = true;
	sim_trace_ev(sim, SIM_EV_PHASE, 0, 0, sim->prof.voters_initial, 0, 0, 0, 0);

	sim->next_id = 1;
	for (uint32_t i = 0; i < sim->prof.voters_initial; i++) {
		consensus_node_id id = sim->next_id++;
		sim->nodes[id].id = id;
		sim_node_start_new(sim, &sim->nodes[id], true);
	}
	uint64_t ticks = opt->ticks != 0 ? opt->ticks : SIM_TICKS_DEFAULT;
	while (!sim->viol.set && sim->tick < ticks) {
		sim_step_tick(sim);
		if (!sim->viol.set) {
			sim_workload(sim);
		}
	}
	if (!sim->viol.set) {
		sim_liveness(sim);
	}
	/* No acknowledged proposal lost: every member's log (all caught up after the liveness
	 * phase) holds each acknowledged proposal at its index. */
	const struct sim_conf *latest = sim_latest_conf(sim);
	for (uint64_t id = 1; id < sim->next_id && !sim->viol.set; id++) {
		const struct sim_node *n = &sim->nodes[id];
		if (n->up && latest != NULL && sim_conf_has_member(latest, id)) {
			sim_check_acked_present(&sim->hist, &sim->viol, id, &n->disk,
			                        sim_entry_proposal_id);
		}
	}
	/* Tear down: every core must give back all it allocated. */
	for (uint64_t id = 1; id < sim->next_id; id++) {
		struct sim_node *n = &sim->nodes[id];
		if (n->alloc.bytes_peak > sim->stats.mem_peak_bytes) {
			sim->stats.mem_peak_bytes = n->alloc.bytes_peak;
		}
		if (n->up && !sim->viol.set) { /* after a violation the report shows the cores */
			consensus_destroy(n->core);
			n->core = NULL;
			n->up = false;
			if (n->alloc.bytes_live != 0 || n->alloc.bad_frees != 0) {
				sim_violation_set(
				    &sim->viol, "core frees exactly what it allocated",
				    "n%u at the end: %llu bytes live, %llu bad frees", (unsigned)id,
				    (unsigned long long)n->alloc.bytes_live,
				    (unsigned long long)n->alloc.bad_frees);
			}
		}
		sim->stats.enomem += n->alloc.failures;
	}
	return !sim->viol.set;
}

void sim_dump_nodes(const struct sim *sim, FILE *out)
{
	static const char *const roles[] = {"follower", "pre-candidate", "candidate", "leader"};
	for (uint64_t id = 1; id < sim->next_id; id++) {
		const struct sim_node *n = &sim->nodes[id];
		const struct sim_disk *d = &n->disk;
		const struct sim_conf *c = &d->applied.conf;
		const char *state = n->stopped ? "stopped" : n->up ? "up" : "down";
		const char *role = "-";
		consensus_node_id leader = 0;
		if (n->up) {
			struct consensus_status st;
			consensus_get_status(n->core, &st);
			role = st.soft_state.role < 4 ? roles[st.soft_state.role] : "?";
			leader = st.soft_state.leader;
		}
		fprintf(
		    out,
		    "  n%u %s %s leader=n%llu term=%llu vote=n%llu commit=%llu log=%llu "
		    "(last term %llu) applied=%llu voters=%#llx outgoing=%#llx "
		    "learners=%#llx%s%s\n",
		    (unsigned)id, state, role, (unsigned long long)leader,
		    (unsigned long long)d->hard_durable.term,
		    (unsigned long long)d->hard_durable.vote,
		    (unsigned long long)d->hard_durable.commit, (unsigned long long)d->log_len,
		    (unsigned long long)sim_disk_term(d, d->log_len),
		    (unsigned long long)d->applied.index,
		    (unsigned long long)sim_ids_mask(c->voters, c->voters_count),
		    (unsigned long long)sim_ids_mask(c->outgoing, c->outgoing_count),
		    (unsigned long long)(sim_ids_mask(c->learners, c->learners_count) |
		                         sim_ids_mask(c->learners_next, c->learners_next_count)),
		    n->retired ? " retired" : "", c->auto_leave ? " auto-leave" : "");
	}
}

void sim_free(struct sim *sim)
{
	for (uint64_t id = 1; id < SIM_NODES_MAX; id++) {
		struct sim_node *n = &sim->nodes[id];
		if (n->up) {
			consensus_destroy(n->core);
			n->core = NULL;
			n->up = false;
		}
		sim_disk_free(&n->disk);
	}
	sim_net_free(&sim->net);
	sim_history_free(&sim->hist);
}
