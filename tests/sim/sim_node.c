/* The node harness: drives one real core through ready batches over a simulated disk and network.
 */
#include <string.h>

#include "carelog/errors.h"
#include "common/assert.h"
#include "common/bytes.h"
#include "sim.h"

/* The first byte of a client proposal's data; the next 8 are its unique id (big-endian). */
enum { SIM_PROPOSAL_TAG = 'P', SIM_PROPOSAL_HEADER_BYTES = 9, SIM_PROPOSAL_PAD_MAX = 96 };

static void sim_trace_ev(struct sim *sim, uint32_t kind, uint64_t node, uint64_t a, uint64_t b,
                         uint64_t c, uint64_t d, uint64_t e, uint64_t f)
{
	sim_trace_event(&sim->trace, kind, node, a, b, c, d, e, f);
}

int sim_node_role(const struct sim_node *n)
{
	if (!n->up) {
		return -1;
	}
	struct consensus_status st;
	consensus_get_status(n->core, &st);
	return st.soft_state.role;
}

static void sim_node_config(struct sim *sim, struct sim_node *n)
{
	const struct sim_profile *p = &sim->prof;
	memset(&n->cfg, 0, sizeof(n->cfg));
	n->cfg.id = n->id;
	n->cfg.election_ticks = p->election_ticks;
	n->cfg.heartbeat_ticks = p->heartbeat_ticks;
	/* A fresh jitter stream per incarnation, still a pure function of the seed. */
	n->cfg.seed = sim->seed * 0x9e3779b97f4a7c15ULL + n->id * 1000003ULL + sim->stats.restarts;
	n->cfg.pre_vote = p->pre_vote;
	n->cfg.check_quorum = p->check_quorum;
	n->cfg.members_max = p->members_max;
	n->cfg.inflight_msgs_max = p->inflight_msgs_max;
	n->cfg.append_bytes_max = p->append_bytes_max;
	n->cfg.uncommitted_bytes_max = p->uncommitted_bytes_max;
	n->cfg.ready_bytes_max = p->ready_bytes_max;
	n->cfg.read_index_max = p->read_index_max;
	n->cfg.applied = n->disk.applied_durable.index;
	n->cfg.allocator = &n->alloc.ops;
	n->cfg.log = &n->disk.ops;
}

static uint64_t sim_chain_extend(uint64_t chain, uint64_t term, uint64_t index, uint8_t type,
                                 uint64_t data_hash)
{
	return sim_entry_prefix_hash(chain, term, index, type, data_hash);
}

static void sim_check_alloc_clean(struct sim *sim, struct sim_node *n, const char *when)
{
	if (n->alloc.bytes_live != 0 || n->alloc.blocks_live != 0 || n->alloc.bad_frees != 0) {
		sim_violation_set(
		    &sim->viol, "core frees exactly what it allocated",
		    "n%u after %s: %llu bytes in %llu blocks still live, %llu bad frees",
		    (unsigned)n->id, when, (unsigned long long)n->alloc.bytes_live,
		    (unsigned long long)n->alloc.blocks_live,
		    (unsigned long long)n->alloc.bad_frees);
	}
}

/* The genesis configuration: one CONF entry per initial voter (each a simple change), so a node
 * that joins later replays them from an empty configuration to the same result. */
static void sim_write_genesis(struct sim *sim, struct sim_node *n)
{
	uint32_t voters = sim->prof.voters_initial;
	struct consensus_entry entries[SIM_NODES_MAX];
	memset(entries, 0, sizeof(entries));
	uint8_t bufs[SIM_NODES_MAX][CONSENSUS_CONF_HEADER_BYTES_MAX];
	uint64_t chain = 0;
	for (uint32_t i = 0; i < voters; i++) {
		struct consensus_conf_change cc;
		memset(&cc, 0, sizeof(cc));
		cc.transition = CONSENSUS_CONF_TRANSITION_AUTO;
		cc.count = 1;
		cc.changes[0].op = CONSENSUS_CONF_ADD_VOTER;
		cc.changes[0].node_id = i + 1;
		size_t len = 0;
		int rc = consensus_conf_encode(&cc, NULL, 0, bufs[i], sizeof(bufs[i]), &len);
		CL_ASSERT(rc == CARELOG_OK);
		entries[i] = (struct consensus_entry){.term = 1,
		                                      .index = i + 1,
		                                      .type = CONSENSUS_ENTRY_CONF,
		                                      .data_len = (uint32_t)len,
		                                      .data = bufs[i]};
		chain = sim_chain_extend(chain, 1, i + 1, CONSENSUS_ENTRY_CONF,
		                         sim_fnv_bytes(sim_fnv_init(), bufs[i], len));
	}
	uint64_t truncated = 0;
	int rc = sim_disk_write(&n->disk, entries, voters, &truncated);
	CL_ASSERT(rc == CARELOG_OK);
	struct consensus_hard_state hs = {.term = 1, .vote = 0, .commit = voters};
	sim_disk_write_hard_state(&n->disk, &hs);
	sim_disk_sync(&n->disk);
	n->disk.applied.index = voters;
	n->disk.applied.chain = chain;
	memset(&n->disk.applied.conf, 0, sizeof(n->disk.applied.conf));
	for (uint32_t i = 0; i < voters; i++) {
		n->disk.applied.conf.voters[i] = i + 1;
	}
	n->disk.applied.conf.voters_count = voters;
	sim_disk_sync_applied(&n->disk);
	sim->genesis_chain = chain;
}

void sim_node_start_new(struct sim *sim, struct sim_node *n, bool genesis_voter)
{
	CL_ASSERT(!n->exists);
	n->exists = true;
	sim_alloc_init(&n->alloc, sim->seed ^ (n->id * 0x2545f4914f6cdd1dULL),
	               sim->prof.enomem_ppm);
	sim_disk_init(&n->disk);
	n->tick_skip_pct = (uint32_t)sim_prng_below(&sim->prng, sim->prof.tick_skip_pct_max + 1);
	if (genesis_voter) {
		sim_write_genesis(sim, n);
		/* The history starts with the genesis everyone agrees on. */
		sim_check_commit(&sim->hist, &sim->viol, n->id, &n->disk,
		                 n->disk.hard_durable.commit, 1);
		uint64_t chain = 0;
		for (uint64_t i = 1; i <= n->disk.log_len; i++) {
			const struct sim_log_entry *e = sim_disk_entry(&n->disk, i);
			sim_check_log_write(&sim->hist, &sim->viol, n->id, &n->disk, i, i, 0,
			                    false);
			chain = sim_chain_extend(chain, e->term, e->index, e->type, e->data_hash);
			sim_check_apply(&sim->hist, &sim->viol, n->id, i, chain);
		}
	} else {
		sim_trace_ev(sim, SIM_EV_NODE_ADD, n->id, 0, 0, 0, 0, 0, 0);
	}
	n->down_until = sim->tick;
	(void)sim_node_restart(sim, n);
}

bool sim_node_restart(struct sim *sim, struct sim_node *n)
{
	CL_ASSERT(n->exists && !n->up && !n->stopped);
	if (sim->prof.reapply_pct != 0 && n->disk.applied_durable.index != 0 &&
	    sim_prng_chance_pct(&sim->crash_prng, sim->prof.reapply_pct)) {
		/* The node kept its log but not its state machine: it restarts at applied index 0
		 * with the configuration as of index 0 (empty) and applies everything again. */
		memset(&n->disk.applied, 0, sizeof(n->disk.applied));
		sim_disk_sync_applied(&n->disk);
		sim->stats.reapplies++;
	}
	sim_node_config(sim, n);
	struct consensus_conf_state cs;
	sim_conf_to_state(&n->disk.applied_durable.conf, &cs);
	struct consensus_hard_state hs = n->disk.hard_durable;
	struct consensus *core = NULL;
	int rc = consensus_create(&n->cfg, &hs, &cs, &core);
	sim_trace_ev(sim, SIM_EV_RESTART, n->id, n->cfg.applied, hs.term, hs.commit, (uint64_t)rc,
	             0, 0);
	if (rc == CARELOG_ENOMEM) {
		sim_check_alloc_clean(sim, n, "a failed consensus_create");
		return false;
	}
	if (rc != CARELOG_OK) {
		sim_violation_set(&sim->viol, "restart from persisted state",
		                  "n%u: consensus_create failed with %s (term %llu commit %llu "
		                  "applied %llu log %llu)",
		                  (unsigned)n->id, carelog_errname(rc), (unsigned long long)hs.term,
		                  (unsigned long long)hs.commit, (unsigned long long)n->cfg.applied,
		                  (unsigned long long)n->disk.log_len);
		return false;
	}
	n->core = core;
	n->up = true;
	n->mem_hard = hs;
	n->mem_role = CONSENSUS_ROLE_FOLLOWER;
	sim->stats.restarts++;
	struct consensus_status st;
	consensus_get_status(core, &st);
	if (st.hard_state.term != hs.term || st.hard_state.vote != hs.vote ||
	    st.hard_state.commit != hs.commit) {
		sim_violation_set(&sim->viol, "commit, term and vote survive restart",
		                  "n%u restarted with term %llu vote %llu commit %llu, persisted "
		                  "term %llu vote %llu commit %llu",
		                  (unsigned)n->id, (unsigned long long)st.hard_state.term,
		                  (unsigned long long)st.hard_state.vote,
		                  (unsigned long long)st.hard_state.commit,
		                  (unsigned long long)hs.term, (unsigned long long)hs.vote,
		                  (unsigned long long)hs.commit);
	}
	sim_node_drain(sim, n);
	return true;
}

static void sim_node_take_down(struct sim *sim, struct sim_node *n, const char *why)
{
	if (n->alloc.bytes_peak > sim->stats.mem_peak_bytes) {
		sim->stats.mem_peak_bytes = n->alloc.bytes_peak;
	}
	consensus_destroy(n->core);
	n->core = NULL;
	n->up = false;
	sim_check_alloc_clean(sim, n, why);
	sim_disk_crash(&n->disk);
	n->pending_count = 0;
	n->reads_count = 0;
}

void sim_node_crash(struct sim *sim, struct sim_node *n, enum sim_crash_point point)
{
	CL_ASSERT(n->up);
	sim_trace_ev(sim, SIM_EV_CRASH, n->id, point, 0, 0, 0, 0, 0);
	sim->stats.crashes++;
	sim_node_take_down(sim, n, "a crash (consensus_destroy)");
	/* Half of the restarts are quick (a supervisor restarts the process at once). */
	uint64_t down_max = sim->prof.down_ticks_max == 0 ? 1 : sim->prof.down_ticks_max;
	if (sim_prng_chance_pct(&sim->crash_prng, 50)) {
		down_max = down_max < 3 ? down_max : 3;
	}
	n->down_until = sim->tick + sim_prng_range(&sim->crash_prng, 1, down_max);
}

void sim_node_stop(struct sim *sim, struct sim_node *n)
{
	sim_trace_ev(sim, SIM_EV_NODE_STOP, n->id, 0, 0, 0, 0, 0, 0);
	if (n->up) {
		sim_node_take_down(sim, n, "a stop (consensus_destroy)");
	}
	n->stopped = true;
	sim_net_forget_node(&sim->net, n->id);
}

/* ---- sending ---------------------------------------------------------------------------- */

/* A message may leave only when what it vouches for is durable (Raft §5.1, thesis 10.2.1). */
static void sim_check_message_durable(struct sim *sim, const struct sim_node *n,
                                      const struct consensus_message *m, bool early)
{
	const struct consensus_hard_state *hd = &n->disk.hard_durable;
	const char *when = early ? "in messages_early" : "after persisting";
	if (m->type != CONSENSUS_MSG_PRE_VOTE && m->type != CONSENSUS_MSG_PRE_VOTE_RESP &&
	    m->term > hd->term) {
		sim_violation_set(&sim->viol, "persist before send",
		                  "n%u sent %s to n%llu for term %llu %s, durable term is %llu",
		                  (unsigned)n->id, sim_msg_type_name(m->type),
		                  (unsigned long long)m->to, (unsigned long long)m->term, when,
		                  (unsigned long long)hd->term);
		return;
	}
	/* A grant is safe once the vote is durable, or once a later term is: a node whose durable
	 * term passed m->term can never vote in m->term again (the grant may have waited in a
	 * ready batch that failed with ENOMEM while the node moved on). */
	if (m->type == CONSENSUS_MSG_VOTE_RESP && !m->reject && hd->term <= m->term &&
	    (hd->term != m->term || hd->vote != m->to)) {
		sim_violation_set(
		    &sim->viol, "vote persisted before it is granted",
		    "n%u granted its vote in term %llu to n%llu %s, durable term %llu "
		    "vote n%llu",
		    (unsigned)n->id, (unsigned long long)m->term, (unsigned long long)m->to, when,
		    (unsigned long long)hd->term, (unsigned long long)hd->vote);
		return;
	}
	if (m->type == CONSENSUS_MSG_APPEND_RESP && !m->reject && m->index > n->disk.durable_len) {
		sim_violation_set(
		    &sim->viol, "persist before send",
		    "n%u acknowledged entries up to %llu %s, durable log ends at %llu",
		    (unsigned)n->id, (unsigned long long)m->index, when,
		    (unsigned long long)n->disk.durable_len);
	}
}

static void sim_send(struct sim *sim, const struct sim_node *n, const struct consensus_message *m,
                     bool early)
{
	if (m->from != n->id || m->to == 0 || m->to >= SIM_NODES_MAX || m->to == n->id ||
	    !sim->nodes[m->to].exists) {
		sim_violation_set(&sim->viol, "messages go between members",
		                  "n%u emitted %s from n%llu to n%llu", (unsigned)n->id,
		                  sim_msg_type_name(m->type), (unsigned long long)m->from,
		                  (unsigned long long)m->to);
		return;
	}
	if (!sim->opt.outcome_only) {
		sim_check_message_durable(sim, n, m, early);
	}
	uint64_t f = m->commit | (m->reject ? 1ULL << 63 : 0);
	sim_trace_ev(sim, SIM_EV_SEND, n->id, m->to, m->type, m->term, m->index, m->entries_count,
	             f);
	enum sim_drop_reason reason = SIM_DROP_LOSS;
	if (!sim_net_send(&sim->net, sim->tick, m, &reason)) {
		sim_trace_ev(sim, SIM_EV_DROP, n->id, m->to, m->type, reason, 0, 0, 0);
	}
}

/* ---- applying --------------------------------------------------------------------------- */

uint64_t sim_proposal_make(struct sim *sim, uint8_t *buf, uint32_t cap, uint32_t *out_len)
{
	CL_ASSERT(cap >= SIM_PROPOSAL_HEADER_BYTES + SIM_PROPOSAL_PAD_MAX);
	uint64_t id = ++sim->next_proposal_id;
	buf[0] = SIM_PROPOSAL_TAG;
	cl_put_u64be(buf + 1, id);
	uint32_t pad = (uint32_t)sim_prng_below(&sim->prng, SIM_PROPOSAL_PAD_MAX + 1);
	for (uint32_t i = 0; i < pad; i++) {
		buf[SIM_PROPOSAL_HEADER_BYTES + i] = (uint8_t)sim_prng_next(&sim->prng);
	}
	*out_len = SIM_PROPOSAL_HEADER_BYTES + pad;
	return id;
}

uint64_t sim_entry_proposal_id(const struct sim_log_entry *e)
{
	if (e->type != CONSENSUS_ENTRY_NORMAL || e->data_len < SIM_PROPOSAL_HEADER_BYTES ||
	    e->data[0] != SIM_PROPOSAL_TAG) {
		return 0;
	}
	return cl_get_u64be(e->data + 1);
}

static void sim_pending_resolve(struct sim *sim, struct sim_node *n, uint64_t index, uint64_t id)
{
	for (uint32_t i = 0; i < n->pending_count; i++) {
		if (n->pending[i].index != index) {
			continue;
		}
		if (n->pending[i].id == id) {
			if (id == sim->liveness_id) {
				sim->liveness_acked = true;
				sim->liveness_index = index;
			}
			sim_history_ack(&sim->hist, id, index);
			sim->stats.acked++;
			sim_trace_ev(sim, SIM_EV_ACK, n->id, id, index, 0, 0, 0, 0);
		}
		/* Either acknowledged or overwritten by another leader's entry: done. */
		n->pending[i] = n->pending[--n->pending_count];
		i--;
	}
}

static void sim_node_serve_reads(struct sim *sim, struct sim_node *n)
{
	for (uint32_t i = 0; i < n->reads_count; i++) {
		struct sim_pending_read *r = &n->reads[i];
		if (!r->answered || r->index > n->disk.applied.index) {
			continue;
		}
		sim_check_read(&sim->viol, n->id, r->ctx, r->index, r->required);
		sim->stats.reads++;
		sim_trace_ev(sim, SIM_EV_READ_DONE, n->id, r->ctx, r->index, n->disk.applied.index,
		             0, 0, 0);
		n->reads[i] = n->reads[--n->reads_count];
		i--;
	}
}

/* A retired node is stopped (a while) after a configuration at or after its removal has been
 * applied without it: then the removal is committed and the node is never needed again. */
static void sim_schedule_stops(struct sim *sim, const struct sim_conf *conf, uint64_t index)
{
	for (uint64_t id = 1; id < sim->next_id; id++) {
		struct sim_node *x = &sim->nodes[id];
		if (x->retired && !x->stopped && x->stop_at == 0 && index >= x->retire_index &&
		    !sim_conf_has_member(conf, id)) {
			x->stop_at = sim->tick + 1 + sim_prng_below(&sim->prng, 50);
		}
	}
}

static bool sim_apply_conf(struct sim *sim, struct sim_node *n, const struct consensus_entry *e,
                           bool first_time)
{
	struct consensus_conf_change cc;
	const uint8_t *ctx = NULL;
	uint32_t ctx_len = 0;
	int rc = consensus_conf_decode(e->data, e->data_len, &cc, &ctx, &ctx_len);
	if (rc != CARELOG_OK) {
		sim_violation_set(&sim->viol, "committed configuration entries decode",
		                  "n%u: CONF entry at %llu does not decode: %s", (unsigned)n->id,
		                  (unsigned long long)e->index, carelog_errname(rc));
		return false;
	}
	struct consensus_conf_state out;
	for (unsigned attempt = 0; attempt < SIM_APPLY_RETRIES_MAX; attempt++) {
		/* A real node retries until memory is back; the last try cannot fail here. */
		n->alloc.suppress = attempt + 1 == SIM_APPLY_RETRIES_MAX;
		rc = consensus_apply_conf_change(n->core, &cc, &out);
		n->alloc.suppress = false;
		if (rc != CARELOG_ENOMEM) {
			break;
		}
		sim_trace_ev(sim, SIM_EV_ENOMEM, n->id, 1, 0, 0, 0, 0, 0);
	}
	if (rc != CARELOG_OK) {
		sim_violation_set(&sim->viol, "committed configuration changes apply",
		                  "n%u: consensus_apply_conf_change(index %llu) failed: %s",
		                  (unsigned)n->id, (unsigned long long)e->index,
		                  carelog_errname(rc));
		return false;
	}
	sim_conf_from_state(&n->disk.applied.conf, &out);
	const struct sim_conf *c = &n->disk.applied.conf;
	sim_trace_ev(sim, SIM_EV_CONF_APPLY, n->id, e->index,
	             sim_ids_mask(c->voters, c->voters_count),
	             sim_ids_mask(c->learners, c->learners_count) |
	                 sim_ids_mask(c->learners_next, c->learners_next_count),
	             sim_ids_mask(c->outgoing, c->outgoing_count), 0, 0);
	if (first_time) {
		sim->stats.conf_changes++;
	}
	sim_schedule_stops(sim, c, e->index);
	return true;
}

/* Applies one committed entry; false if the run must stop (violation). */
static bool sim_apply_entry(struct sim *sim, struct sim_node *n, const struct consensus_entry *e)
{
	struct sim_disk *d = &n->disk;
	if (e->index != d->applied.index + 1) {
		sim_violation_set(&sim->viol, "committed entries are handed out in order",
		                  "n%u got committed entry %llu after applying %llu",
		                  (unsigned)n->id, (unsigned long long)e->index,
		                  (unsigned long long)d->applied.index);
		return false;
	}
	if (e->index > d->hard_durable.commit) {
		sim_violation_set(&sim->viol, "only committed entries are applied",
		                  "n%u was handed entry %llu to apply, durable commit is %llu",
		                  (unsigned)n->id, (unsigned long long)e->index,
		                  (unsigned long long)d->hard_durable.commit);
		return false;
	}
	uint64_t data_hash = sim_fnv_bytes(sim_fnv_init(), e->data, e->data_len);
	const struct sim_log_entry *s = sim_disk_entry(d, e->index);
	if (s == NULL || s->term != e->term || s->type != e->type || s->data_hash != data_hash) {
		sim_violation_set(&sim->viol, "applied entries are the stored entries",
		                  "n%u applied entry %llu term %llu that differs from its log",
		                  (unsigned)n->id, (unsigned long long)e->index,
		                  (unsigned long long)e->term);
		return false;
	}
	d->applied.chain =
	    sim_chain_extend(d->applied.chain, e->term, e->index, e->type, data_hash);
	d->applied.index = e->index;
	bool first_time = e->index > sim->hist.chain_len;
	sim_check_apply(&sim->hist, &sim->viol, n->id, e->index, d->applied.chain);
	sim_trace_ev(sim, SIM_EV_APPLY, n->id, e->index, e->term, d->applied.chain, 0, 0, 0);
	if (first_time) {
		sim->stats.commits++;
	}
	if (e->type == CONSENSUS_ENTRY_CONF) {
		return sim_apply_conf(sim, n, e, first_time);
	}
	if (e->data_len >= SIM_PROPOSAL_HEADER_BYTES && e->data[0] == SIM_PROPOSAL_TAG) {
		uint64_t id = cl_get_u64be(e->data + 1);
		sim_check_proposal_applied(&sim->hist, &sim->viol, n->id, id, e->index);
		sim_pending_resolve(sim, n, e->index, id);
	} else {
		sim_pending_resolve(sim, n, e->index, 0);
	}
	return !sim->viol.set;
}

/* ---- the ready loop ----------------------------------------------------------------------- */

static bool sim_crash_if(struct sim *sim, struct sim_node *n, uint32_t chosen,
                         enum sim_crash_point here)
{
	if (chosen != (uint32_t)here) {
		return false;
	}
	sim_node_crash(sim, n, here);
	return true;
}

static void sim_record_vote(struct sim *sim, struct sim_node *n)
{
	const struct consensus_hard_state *hd = &n->disk.hard_durable;
	if (hd->vote != 0 &&
	    (hd->term != n->vote_recorded.term || hd->vote != n->vote_recorded.vote)) {
		sim_history_record_vote(&sim->hist, hd->term, n->id, hd->vote);
		n->vote_recorded = *hd;
	}
}

static bool sim_ready_persist(struct sim *sim, struct sim_node *n, const struct consensus_ready *rd,
                              bool is_leader)
{
	struct sim_disk *d = &n->disk;
	if (rd->entries_count != 0) {
		uint64_t truncated = 0;
		int rc = sim_disk_write(d, rd->entries, rd->entries_count, &truncated);
		if (rc != CARELOG_OK) {
			sim_violation_set(
			    &sim->viol, "ready entries extend the log",
			    "n%u: ready entries %llu..%llu do not follow a log of %llu",
			    (unsigned)n->id, (unsigned long long)rd->entries[0].index,
			    (unsigned long long)rd->entries[rd->entries_count - 1].index,
			    (unsigned long long)d->log_len);
			return false;
		}
		sim_check_log_write(&sim->hist, &sim->viol, n->id, d, rd->entries[0].index,
		                    rd->entries[rd->entries_count - 1].index, truncated, is_leader);
	}
	if (rd->hard_state_changed) {
		sim_check_hard_state(&sim->viol, n->id, "persisted", &d->hard, &rd->hard_state);
		sim_disk_write_hard_state(d, &rd->hard_state);
	}
	return !sim->viol.set;
}

/* Handles one ready batch. Returns false when the node crashed or the run must stop. */
static bool sim_node_handle_ready(struct sim *sim, struct sim_node *n)
{
	struct consensus_ready rd;
	int rc = consensus_ready(n->core, &rd);
	if (rc == CARELOG_ENOMEM) {
		sim_trace_ev(sim, SIM_EV_ENOMEM, n->id, 2, 0, 0, 0, 0, 0);
		return false;
	}
	if (rc != CARELOG_OK) {
		sim_violation_set(&sim->viol, "consensus_ready succeeds or reports ENOMEM",
		                  "n%u: consensus_ready failed: %s", (unsigned)n->id,
		                  carelog_errname(rc));
		return false;
	}
	struct consensus_status st;
	consensus_get_status(n->core, &st);
	bool is_leader = st.soft_state.role == CONSENSUS_ROLE_LEADER;
	sim_trace_ev(sim, SIM_EV_READY, n->id, rd.hard_state.term, rd.hard_state.vote,
	             rd.hard_state.commit, rd.entries_count,
	             rd.entries_count != 0 ? rd.entries[0].index : 0,
	             ((uint64_t)(rd.messages_count & 0xffff) << 48) |
	                 ((uint64_t)(rd.messages_early_count & 0xffff) << 32) |
	                 (rd.committed_count & 0xffffffff));
	uint32_t crash_at = SIM_CRASH_POINTS_;
	uint64_t crash_mid = 0;
	/* Crashes are likelier around what matters most: a ready that changes term or vote. */
	bool vote_changes = rd.hard_state_changed && (rd.hard_state.term != n->disk.hard.term ||
	                                              rd.hard_state.vote != n->disk.hard.vote);
	uint64_t ppm =
	    (uint64_t)sim->prof.crash_ready_ppm * (vote_changes ? SIM_CRASH_VOTE_FACTOR : 1);
	if (sim->faults &&
	    sim_prng_chance_ppm(&sim->crash_prng, (uint32_t)(ppm < 1000000 ? ppm : 1000000))) {
		crash_at = (uint32_t)sim_prng_below(&sim->crash_prng, SIM_CRASH_IDLE);
		crash_mid = sim_prng_below(&sim->crash_prng, rd.committed_count + 1);
	}

	for (size_t i = 0; i < rd.messages_early_count && !sim->viol.set; i++) {
		sim_send(sim, n, &rd.messages_early[i], true);
	}
	if (sim->viol.set || sim_crash_if(sim, n, crash_at, SIM_CRASH_BEFORE_PERSIST)) {
		return false;
	}
	if (!sim_ready_persist(sim, n, &rd, is_leader) ||
	    sim_crash_if(sim, n, crash_at, SIM_CRASH_BEFORE_SYNC)) {
		return false;
	}
	sim_disk_sync(&n->disk);
	sim_record_vote(sim, n);
	if (rd.hard_state_changed || rd.entries_count != 0) {
		sim_check_commit(&sim->hist, &sim->viol, n->id, &n->disk,
		                 n->disk.hard_durable.commit, n->disk.hard_durable.term);
	}
	if (sim->viol.set || sim_crash_if(sim, n, crash_at, SIM_CRASH_BEFORE_SEND)) {
		return false;
	}
	for (size_t i = 0; i < rd.messages_count && !sim->viol.set; i++) {
		sim_send(sim, n, &rd.messages[i], false);
	}
	if (sim->viol.set || sim_crash_if(sim, n, crash_at, SIM_CRASH_BEFORE_APPLY)) {
		return false;
	}
	/* Crashing mid-apply (after crash_mid entries) loses the unsynced apply batch. */
	for (size_t i = 0; i <= rd.committed_count; i++) {
		if (crash_at == SIM_CRASH_MID_APPLY && crash_mid == i) {
			sim_node_crash(sim, n, SIM_CRASH_MID_APPLY);
			return false;
		}
		if (i < rd.committed_count && !sim_apply_entry(sim, n, &rd.committed[i])) {
			return false;
		}
	}
	sim_disk_sync_applied(&n->disk);
	for (size_t i = 0; i < rd.read_states_count; i++) {
		const struct consensus_read_state *rs = &rd.read_states[i];
		for (uint32_t j = 0; j < n->reads_count; j++) {
			if (n->reads[j].ctx == rs->ctx && !n->reads[j].answered) {
				n->reads[j].answered = true;
				n->reads[j].index = rs->index;
			}
		}
	}
	if (sim_crash_if(sim, n, crash_at, SIM_CRASH_BEFORE_ADVANCE)) {
		return false;
	}
	consensus_advance(n->core, &rd);
	sim_node_serve_reads(sim, n);
	return !sim->viol.set;
}

/* The status checks made after every step of a node. */
static void sim_node_check_status(struct sim *sim, struct sim_node *n)
{
	struct consensus_status st;
	consensus_get_status(n->core, &st);
	if (st.id != n->id) {
		sim_violation_set(&sim->viol, "status reports the node", "n%u reports id %llu",
		                  (unsigned)n->id, (unsigned long long)st.id);
		return;
	}
	sim_check_hard_state(&sim->viol, n->id, "in memory", &n->mem_hard, &st.hard_state);
	struct consensus_hard_state before = n->mem_hard;
	bool was_leader = n->mem_role == CONSENSUS_ROLE_LEADER;
	n->mem_hard = st.hard_state;
	n->mem_role = st.soft_state.role;
	if (!sim->opt.outcome_only && was_leader && st.soft_state.role == CONSENSUS_ROLE_LEADER &&
	    st.hard_state.term == before.term && st.hard_state.commit > before.commit) {
		/* Raft §5.4.2 (Figure 8): a leader advances its commit index only to an entry of
		 * its own term; earlier entries are committed indirectly, never by counting. */
		const struct sim_log_entry *e = sim_disk_entry(&n->disk, st.hard_state.commit);
		if (e != NULL && e->term != st.hard_state.term) {
			sim_violation_set(
			    &sim->viol, "leader commits only entries of its term",
			    "leader n%u of term %llu moved its commit index %llu -> %llu "
			    "onto an entry of term %llu",
			    (unsigned)n->id, (unsigned long long)st.hard_state.term,
			    (unsigned long long)before.commit,
			    (unsigned long long)st.hard_state.commit, (unsigned long long)e->term);
			return;
		}
	}
	if (!consensus_has_ready(n->core)) {
		const struct consensus_hard_state *hd = &n->disk.hard_durable;
		if (st.hard_state.term != hd->term || st.hard_state.vote != hd->vote ||
		    st.hard_state.commit != hd->commit) {
			sim_violation_set(
			    &sim->viol, "hard state handed out for persistence",
			    "n%u has no ready but term %llu vote %llu commit %llu in "
			    "memory vs %llu %llu %llu durable",
			    (unsigned)n->id, (unsigned long long)st.hard_state.term,
			    (unsigned long long)st.hard_state.vote,
			    (unsigned long long)st.hard_state.commit, (unsigned long long)hd->term,
			    (unsigned long long)hd->vote, (unsigned long long)hd->commit);
			return;
		}
	}
	if (st.soft_state.role != CONSENSUS_ROLE_LEADER) {
		return;
	}
	uint64_t term = st.hard_state.term;
	sim_check_leader(&sim->hist, &sim->viol, term, n->id);
	if (n->leader_term != term) {
		n->leader_term = term;
		sim->stats.leader_changes++;
		sim_trace_ev(sim, SIM_EV_LEADER, n->id, term, 0, 0, 0, 0, 0);
		if (!sim->opt.outcome_only) {
			sim_check_vote_quorum(&sim->hist, &sim->viol, term, n->id,
			                      &n->disk.applied.conf);
		}
		sim_check_leader_complete(&sim->hist, &sim->viol, n->id, &n->disk, term);
	}
	if (sim->opt.outcome_only) {
		return;
	}
	/* A configuration takes effect when applied (thesis 4.1): the leader tracks exactly the
	 * members of the configuration this node has applied. */
	const struct sim_conf *c = &n->disk.applied.conf;
	uint64_t want_voters =
	    sim_ids_mask(c->voters, c->voters_count) | sim_ids_mask(c->outgoing, c->outgoing_count);
	uint64_t want_all = want_voters | sim_ids_mask(c->learners, c->learners_count) |
	                    sim_ids_mask(c->learners_next, c->learners_next_count);
	uint64_t got_voters = 0;
	uint64_t got_all = 0;
	for (uint32_t i = 0; i < st.progress_count; i++) {
		uint64_t bit = st.progress[i].id < 64 ? 1ULL << st.progress[i].id : 0;
		got_all |= bit;
		if (st.progress[i].voter) {
			got_voters |= bit;
		}
	}
	if (got_all != want_all || got_voters != want_voters) {
		sim_violation_set(&sim->viol, "configuration in force is the applied one",
		                  "leader n%u tracks members %#llx (voters %#llx), applied "
		                  "configuration has %#llx (voters %#llx)",
		                  (unsigned)n->id, (unsigned long long)got_all,
		                  (unsigned long long)got_voters, (unsigned long long)want_all,
		                  (unsigned long long)want_voters);
	}
}

void sim_node_drain(struct sim *sim, struct sim_node *n)
{
	for (unsigned i = 0; i < SIM_READY_LOOPS_MAX && n->up && !sim->viol.set; i++) {
		if (!consensus_has_ready(n->core)) {
			break;
		}
		if (!sim_node_handle_ready(sim, n)) {
			break;
		}
	}
	if (n->up && !sim->viol.set) {
		sim_node_check_status(sim, n);
	}
}

void sim_node_after_input(struct sim *sim, struct sim_node *n, int rc, const char *what)
{
	if (rc == CARELOG_ENOMEM) {
		sim_trace_ev(sim, SIM_EV_ENOMEM, n->id, 0, 0, 0, 0, 0, 0);
	} else if (rc != CARELOG_OK) {
		sim_violation_set(&sim->viol, "inputs succeed or report ENOMEM",
		                  "n%u: %s failed: %s", (unsigned)n->id, what, carelog_errname(rc));
		return;
	}
	sim_node_drain(sim, n);
}

void sim_node_tick(struct sim *sim, struct sim_node *n)
{
	sim_trace_ev(sim, SIM_EV_TICK, n->id, 0, 0, 0, 0, 0, 0);
	int rc = consensus_tick(n->core);
	sim_node_after_input(sim, n, rc, "consensus_tick");
}

/* Bound on deliveries in one tick (each delivery is one step). */
enum { SIM_DELIVERIES_PER_TICK_MAX = 4 * SIM_NET_PACKETS_MAX };

void sim_deliver_due(struct sim *sim)
{
	for (unsigned i = 0; i < SIM_DELIVERIES_PER_TICK_MAX && !sim->viol.set; i++) {
		struct sim_packet p;
		bool dropped = false;
		if (!sim_net_pop(&sim->net, sim->tick, &p, &dropped)) {
			return;
		}
		struct sim_node *dst = &sim->nodes[p.msg.to];
		if (dropped || !dst->up) {
			sim_trace_ev(sim, SIM_EV_DROP, p.msg.from, p.msg.to, p.msg.type,
			             dropped ? SIM_DROP_CUT : SIM_DROP_DOWN, 0, 0, 0);
			sim_packet_free(&p);
			continue;
		}
		const struct consensus_message *m = &p.msg;
		sim_trace_ev(sim, SIM_EV_DELIVER, m->from, m->to, m->type, m->term, m->index,
		             m->entries_count, m->commit | (m->reject ? 1ULL << 63 : 0));
		int rc = consensus_step(dst->core, m);
		sim_packet_free(&p);
		sim_node_after_input(sim, dst, rc, "consensus_step");
	}
}
