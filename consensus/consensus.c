/* Creation, destruction and the public inputs of the consensus core (etcd-io/raft RawNode). */
#include "consensus/internal.h"

#include <string.h>

/* Upper limits on the configured bounds, so the sizes computed from them cannot overflow. */
enum {
	CS_MEMBERS_MAX_LIMIT = 4096,
	CS_INFLIGHT_MSGS_MAX_LIMIT = 65536,
	CS_READ_INDEX_MAX_LIMIT = 65536,
	CS_ELECTION_TICKS_LIMIT = 1000000,
};

void *cs_alloc(struct consensus *c, size_t size_bytes)
{
	CL_ASSERT(size_bytes > 0);
	return c->alloc->alloc(c->alloc->ctx, size_bytes);
}

void cs_free(struct consensus *c, void *ptr, size_t size_bytes)
{
	if (ptr != NULL) {
		c->alloc->free(c->alloc->ctx, ptr, size_bytes);
	}
}

/* splitmix64 (Steele, Lea, Flood 2014): tiny, full period, deterministic from the seed. */
uint64_t cs_random(struct consensus *c)
{
	c->prng_state += 0x9E3779B97F4A7C15ull;
	uint64_t z = c->prng_state;
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static bool config_valid(const struct consensus_config *config)
{
	if (config->id == 0 || config->allocator == NULL || config->log == NULL) {
		return false;
	}
	if (config->allocator->alloc == NULL || config->allocator->free == NULL) {
		return false;
	}
	const struct consensus_log_ops *log = config->log;
	if (log->last_index == NULL || log->term == NULL || log->entries == NULL) {
		return false;
	}
	if (config->heartbeat_ticks == 0 || config->election_ticks <= config->heartbeat_ticks ||
	    config->election_ticks > CS_ELECTION_TICKS_LIMIT) {
		return false;
	}
	if (config->members_max == 0 || config->members_max > CS_MEMBERS_MAX_LIMIT) {
		return false;
	}
	if (config->inflight_msgs_max == 0 ||
	    config->inflight_msgs_max > CS_INFLIGHT_MSGS_MAX_LIMIT) {
		return false;
	}
	if (config->read_index_max == 0 || config->read_index_max > CS_READ_INDEX_MAX_LIMIT) {
		return false;
	}
	return config->append_bytes_max > 0 && config->uncommitted_bytes_max > 0 &&
	       config->ready_bytes_max > 0;
}

/* Allocates `count` zeroed elements of `size` into *out; false on failure. */
static bool alloc_array(struct consensus *c, void **out, size_t count, size_t size)
{
	*out = cs_alloc(c, count * size);
	if (*out == NULL) {
		return false;
	}
	memset(*out, 0, count * size);
	return true;
}

static size_t inflight_slots(const struct consensus *c)
{
	return (size_t)c->members_max * c->inflight_msgs_max;
}

static int allocate_arrays(struct consensus *c)
{
	size_t members = c->members_max;
	void *p;
	if (!alloc_array(c, &p, members, sizeof(struct cs_progress))) {
		return CARELOG_ENOMEM;
	}
	c->progress = p;
	/* One block of inflight rings, one slice per progress slot for the core's lifetime. */
	if (!alloc_array(c, &p, inflight_slots(c) * 2, sizeof(uint64_t))) {
		return CARELOG_ENOMEM;
	}
	uint64_t *rings = p;
	c->inflight_rings = rings;
	for (size_t i = 0; i < members; i++) {
		c->progress[i].inflight_index = rings + (2 * i) * c->inflight_msgs_max;
		c->progress[i].inflight_bytes = rings + (2 * i + 1) * c->inflight_msgs_max;
	}
	if (cs_conf_alloc(c, &c->conf) != CARELOG_OK ||
	    cs_conf_alloc(c, &c->conf_scratch) != CARELOG_OK) {
		return CARELOG_ENOMEM;
	}
	if (!alloc_array(c, &p, members, sizeof(uint64_t))) {
		return CARELOG_ENOMEM;
	}
	c->scratch_u64 = p;
	if (!alloc_array(c, &p, members, sizeof(struct consensus_progress))) {
		return CARELOG_ENOMEM;
	}
	c->status_progress = p;
	if (!alloc_array(c, &p, CONSENSUS_UNSTABLE_ENTRIES_MAX, sizeof(struct consensus_entry))) {
		return CARELOG_ENOMEM;
	}
	c->unstable = p;
	if (!alloc_array(c, &p, c->messages_max, sizeof(struct consensus_message))) {
		return CARELOG_ENOMEM;
	}
	c->msgs = p;
	if (!alloc_array(c, &p, c->messages_max, sizeof(struct cs_owned_entries))) {
		return CARELOG_ENOMEM;
	}
	c->msg_entries = p;
	if (!alloc_array(c, &p, c->messages_max, sizeof(struct consensus_message))) {
		return CARELOG_ENOMEM;
	}
	c->msgs_early = p;
	if (!alloc_array(c, &p, c->messages_max, sizeof(struct cs_owned_entries))) {
		return CARELOG_ENOMEM;
	}
	c->msgs_early_entries = p;
	if (!alloc_array(c, &p, CONSENSUS_READY_ENTRIES_MAX, sizeof(struct consensus_entry))) {
		return CARELOG_ENOMEM;
	}
	c->committed = p;
	if (!alloc_array(c, &p, c->read_index_max, sizeof(struct cs_read_request))) {
		return CARELOG_ENOMEM;
	}
	c->reads = p;
	if (!alloc_array(c, &p, c->read_index_max, sizeof(struct consensus_read_state))) {
		return CARELOG_ENOMEM;
	}
	c->read_states = p;
	return CARELOG_OK;
}

static void free_arrays(struct consensus *c)
{
	size_t members = c->members_max;
	cs_free(c, c->inflight_rings, inflight_slots(c) * 2 * sizeof(uint64_t));
	cs_free(c, c->progress, members * sizeof(struct cs_progress));
	cs_conf_free(c, &c->conf);
	cs_conf_free(c, &c->conf_scratch);
	cs_free(c, c->scratch_u64, members * sizeof(uint64_t));
	cs_free(c, c->status_progress, members * sizeof(struct consensus_progress));
	cs_free(c, c->unstable, CONSENSUS_UNSTABLE_ENTRIES_MAX * sizeof(struct consensus_entry));
	cs_free(c, c->msgs, c->messages_max * sizeof(struct consensus_message));
	cs_free(c, c->msg_entries, c->messages_max * sizeof(struct cs_owned_entries));
	cs_free(c, c->msgs_early, c->messages_max * sizeof(struct consensus_message));
	cs_free(c, c->msgs_early_entries, c->messages_max * sizeof(struct cs_owned_entries));
	cs_free(c, c->committed, CONSENSUS_READY_ENTRIES_MAX * sizeof(struct consensus_entry));
	cs_free(c, c->reads, c->read_index_max * sizeof(struct cs_read_request));
	cs_free(c, c->read_states, c->read_index_max * sizeof(struct consensus_read_state));
}

int consensus_create(const struct consensus_config *config,
                     const struct consensus_hard_state *hard_state,
                     const struct consensus_conf_state *conf_state, struct consensus **out)
{
	if (config == NULL || hard_state == NULL || conf_state == NULL || out == NULL) {
		return CARELOG_EINVAL;
	}
	if (!config_valid(config)) {
		return CARELOG_EINVAL;
	}
	uint64_t last = config->log->last_index(config->log->ctx);
	if (hard_state->commit > last || config->applied > hard_state->commit) {
		return CARELOG_EINVAL;
	}
	struct consensus *c = config->allocator->alloc(config->allocator->ctx, sizeof(*c));
	if (c == NULL) {
		return CARELOG_ENOMEM;
	}
	memset(c, 0, sizeof(*c));
	c->id = config->id;
	c->election_ticks = config->election_ticks;
	c->heartbeat_ticks = config->heartbeat_ticks;
	c->pre_vote = config->pre_vote;
	c->check_quorum = config->check_quorum;
	c->members_max = config->members_max;
	c->inflight_msgs_max = config->inflight_msgs_max;
	c->append_bytes_max = config->append_bytes_max;
	c->inflight_bytes_max = config->inflight_bytes_max != 0
	                            ? config->inflight_bytes_max
	                            : config->append_bytes_max * config->inflight_msgs_max;
	c->uncommitted_bytes_max = config->uncommitted_bytes_max;
	c->ready_bytes_max = config->ready_bytes_max;
	c->read_index_max = config->read_index_max;
	c->messages_max =
	    config->members_max * (config->inflight_msgs_max + 8) + config->read_index_max + 64;
	c->alloc = config->allocator;
	c->log = config->log;
	c->prng_state = config->seed ^ (config->id * 0xD1B54A32D192ED03ull);

	int rc = allocate_arrays(c);
	if (rc == CARELOG_OK) {
		rc = cs_conf_load(c, conf_state);
	}
	if (rc != CARELOG_OK) {
		free_arrays(c);
		config->allocator->free(config->allocator->ctx, c, sizeof(*c));
		return rc;
	}
	c->term = hard_state->term;
	c->vote = hard_state->vote;
	c->commit = hard_state->commit;
	c->applied = config->applied;
	c->prev_hard_state = *hard_state;
	c->unstable_offset = last + 1;
	cs_become_follower(c, c->term, 0);
	c->prev_soft_state.leader = 0;
	c->prev_soft_state.role = CONSENSUS_ROLE_FOLLOWER;
	*out = c;
	return CARELOG_OK;
}

void consensus_destroy(struct consensus *c)
{
	if (c == NULL) {
		return;
	}
	cs_messages_release(c);
	c->msgs_handed_out = c->msgs_count;
	c->msgs_early_handed_out = c->msgs_early_count;
	cs_messages_release(c);
	cs_entries_free(c, c->committed, c->committed_owned);
	cs_log_drop_unstable(c, c->unstable_count);
	const struct consensus_allocator *alloc = c->alloc;
	free_arrays(c);
	alloc->free(alloc->ctx, c, sizeof(*c));
}

int consensus_tick(struct consensus *c)
{
	CL_ASSERT(!c->in_ready);
	if (c->role == CONSENSUS_ROLE_LEADER) {
		return cs_tick_heartbeat(c);
	}
	return cs_tick_election(c);
}

int consensus_campaign(struct consensus *c)
{
	CL_ASSERT(!c->in_ready);
	return cs_hup(c, false);
}

/* Checks shared by every proposal (Raft thesis 3.10: no proposals during a transfer). */
static int propose_allowed(const struct consensus *c)
{
	if (c->role != CONSENSUS_ROLE_LEADER) {
		return CARELOG_ENOTLEADER;
	}
	if (c->transferee != 0) {
		return CARELOG_ECLOSED;
	}
	return CARELOG_OK;
}

/* etcd-io/raft increaseUncommittedSize: one entry may always go when nothing is pending. */
static bool uncommitted_fits(const struct consensus *c, uint64_t bytes)
{
	return c->uncommitted_bytes == 0 ||
	       c->uncommitted_bytes + bytes <= c->uncommitted_bytes_max;
}

/* Appends one proposal to the leader's log without sending it. */
static int propose_one(struct consensus *c, const struct consensus_proposal *p, uint64_t *out_index)
{
	if (p->data == NULL && p->data_len > 0) {
		return CARELOG_EINVAL;
	}
	if (!uncommitted_fits(c, p->data_len) || !cs_log_has_room(c)) {
		return CARELOG_EBUSY;
	}
	uint8_t *copy = NULL;
	if (p->data_len > 0) {
		copy = cs_alloc(c, p->data_len);
		if (copy == NULL) {
			return CARELOG_ENOMEM;
		}
		memcpy(copy, p->data, p->data_len);
	}
	int rc = cs_append_local(c, CONSENSUS_ENTRY_NORMAL, copy, p->data_len, out_index);
	CL_ASSERT(rc == CARELOG_OK);
	return CARELOG_OK;
}

int consensus_propose_batch(struct consensus *c, const struct consensus_proposal *items,
                            size_t count, size_t *out_proposed, uint64_t *out_first_index)
{
	CL_ASSERT(!c->in_ready);
	int rc = propose_allowed(c);
	size_t done = 0;
	uint64_t first = 0;
	for (size_t i = 0; i < count && rc == CARELOG_OK; i++) {
		uint64_t index = 0;
		rc = propose_one(c, &items[i], &index);
		if (rc == CARELOG_OK) {
			first = done == 0 ? index : first;
			CL_ASSERT(index == first + done);
			done++;
		}
	}
	if (done > 0) {
		/* One append per follower for the whole batch (the leader's group commit). */
		(void)cs_bcast_append(c);
	}
	*out_proposed = done;
	if (out_first_index != NULL && done > 0) {
		*out_first_index = first;
	}
	return rc;
}

int consensus_propose(struct consensus *c, const uint8_t *data, uint32_t data_len,
                      uint64_t *out_index)
{
	if (data == NULL && data_len > 0) {
		return CARELOG_EINVAL;
	}
	struct consensus_proposal p = {.data = data, .data_len = data_len};
	size_t proposed = 0;
	return consensus_propose_batch(c, &p, 1, &proposed, out_index);
}

int consensus_read_index(struct consensus *c, uint64_t ctx)
{
	CL_ASSERT(!c->in_ready);
	if (c->role == CONSENSUS_ROLE_LEADER) {
		return cs_read_request(c, c->id, ctx);
	}
	if (c->leader == 0) {
		return CARELOG_ENOTLEADER;
	}
	/* Followers and learners forward to the leader (thesis 6.4: "followers ... can also
	 * serve reads" after asking the leader for its read index). */
	struct consensus_message m = {
	    .type = CONSENSUS_MSG_READ_INDEX,
	    .to = c->leader,
	    .term = c->term,
	    .ctx = ctx,
	};
	cs_send(c, &m, NULL, 0);
	return CARELOG_OK;
}

int consensus_transfer_leader(struct consensus *c, consensus_node_id to)
{
	CL_ASSERT(!c->in_ready);
	if (c->role != CONSENSUS_ROLE_LEADER) {
		return CARELOG_ENOTLEADER;
	}
	struct cs_progress *pr = cs_progress_find(c, to);
	if (pr == NULL) {
		return CARELOG_ENOTFOUND;
	}
	if (!cs_conf_is_voter(&c->conf, to)) {
		return CARELOG_EINVAL;
	}
	if (c->transferee == to || to == c->id) {
		return CARELOG_OK;
	}
	cs_abort_transfer(c);
	/* Thesis 3.10: the transfer must finish within an election timeout, else it is
	 * abandoned (see cs_tick_heartbeat). */
	c->election_elapsed = 0;
	c->transferee = to;
	if (pr->match == cs_log_last_index(c)) {
		cs_send_timeout_now(c, to);
		return CARELOG_OK;
	}
	bool sent;
	(void)cs_send_append(c, pr, true, &sent);
	return CARELOG_OK;
}

/* Receiver-side term rules shared by every message (Raft paper 5.1, thesis 4.2.3, 9.6). */
static int step_term(struct consensus *c, const struct consensus_message *m, bool *out_drop)
{
	*out_drop = false;
	bool is_vote = m->type == CONSENSUS_MSG_VOTE || m->type == CONSENSUS_MSG_PRE_VOTE;
	if (m->term > c->term) {
		if (is_vote && !m->transfer && c->check_quorum && c->leader != 0 &&
		    c->election_elapsed < c->election_ticks) {
			/* Thesis 4.2.3: we heard from a live leader within the minimum election
			 * timeout, so this candidate is disruptive: ignore it without updating the
			 * term. A transfer (TIMEOUT_NOW) is exempt. */
			*out_drop = true;
			return CARELOG_OK;
		}
		if (m->type == CONSENSUS_MSG_PRE_VOTE) {
			/* Thesis 9.6: a pre-vote never changes the receiver's term. */
		} else if (m->type == CONSENSUS_MSG_PRE_VOTE_RESP && !m->reject) {
			/* The future term is adopted when the real election starts. */
		} else if (m->type == CONSENSUS_MSG_APPEND || m->type == CONSENSUS_MSG_HEARTBEAT) {
			cs_become_follower(c, m->term, m->from);
		} else {
			cs_become_follower(c, m->term, 0);
		}
		return CARELOG_OK;
	}
	if (m->term < c->term) {
		*out_drop = true;
		if ((c->check_quorum || c->pre_vote) &&
		    (m->type == CONSENSUS_MSG_APPEND || m->type == CONSENSUS_MSG_HEARTBEAT)) {
			/* A stale leader, or we are a candidate whose term ran ahead while cut off:
			 * with check-quorum and pre-vote nobody else would ever tell the old
			 * leader, so answer with our term and let it step down (etcd-io/raft "free
			 * stuck candidate"). */
			struct consensus_message r = {
			    .type = CONSENSUS_MSG_APPEND_RESP,
			    .to = m->from,
			    .term = c->term,
			};
			cs_send(c, &r, NULL, 0);
		} else if (m->type == CONSENSUS_MSG_PRE_VOTE) {
			/* Tell the pre-candidate our term so it can catch up (thesis 9.6). */
			struct consensus_message r = {
			    .type = CONSENSUS_MSG_PRE_VOTE_RESP,
			    .to = m->from,
			    .term = c->term,
			    .reject = true,
			};
			cs_send(c, &r, NULL, 0);
		}
	}
	return CARELOG_OK;
}

int consensus_step(struct consensus *c, const struct consensus_message *m)
{
	CL_ASSERT(!c->in_ready);
	if (m == NULL) {
		return CARELOG_EINVAL;
	}
	if (m->type < CONSENSUS_MSG_APPEND || m->type > CONSENSUS_MSG_READ_INDEX_RESP ||
	    (m->entries_count > 0 && m->entries == NULL)) {
		return CARELOG_EPROTO;
	}
	if (m->entries_count > 0 && m->type != CONSENSUS_MSG_APPEND) {
		return CARELOG_EPROTO;
	}
	if (m->to != c->id || m->from == 0 || m->from == c->id) {
		return CARELOG_OK;
	}
	bool drop;
	int rc = step_term(c, m, &drop);
	if (rc != CARELOG_OK || drop) {
		return rc;
	}
	switch (m->type) {
	case CONSENSUS_MSG_APPEND:
		return cs_recv_append(c, m);
	case CONSENSUS_MSG_APPEND_RESP:
		return cs_recv_append_resp(c, m);
	case CONSENSUS_MSG_HEARTBEAT:
		return cs_recv_heartbeat(c, m);
	case CONSENSUS_MSG_HEARTBEAT_RESP:
		return cs_recv_heartbeat_resp(c, m);
	case CONSENSUS_MSG_PRE_VOTE:
	case CONSENSUS_MSG_VOTE:
		return cs_recv_vote(c, m);
	case CONSENSUS_MSG_PRE_VOTE_RESP:
	case CONSENSUS_MSG_VOTE_RESP:
		return cs_recv_vote_resp(c, m);
	case CONSENSUS_MSG_TIMEOUT_NOW:
		return cs_recv_timeout_now(c, m);
	case CONSENSUS_MSG_READ_INDEX:
		return cs_recv_read_index(c, m);
	default:
		return cs_recv_read_index_resp(c, m);
	}
}
