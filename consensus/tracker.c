/* Membership lookups and majorities, simple and joint (Raft thesis 4.3; etcd-io/raft quorum/). */
#include "consensus/internal.h"

#include <string.h>

static bool ids_contain(const consensus_node_id *ids, uint32_t count, consensus_node_id id)
{
	for (uint32_t i = 0; i < count; i++) {
		if (ids[i] == id) {
			return true;
		}
	}
	return false;
}

bool cs_conf_is_joint(const struct cs_conf *conf)
{
	return conf->voters_outgoing_count > 0;
}

bool cs_conf_is_voter(const struct cs_conf *conf, consensus_node_id id)
{
	return ids_contain(conf->voters, conf->voters_count, id) ||
	       ids_contain(conf->voters_outgoing, conf->voters_outgoing_count, id);
}

bool cs_conf_is_member(const struct cs_conf *conf, consensus_node_id id)
{
	return cs_conf_is_voter(conf, id) ||
	       ids_contain(conf->learners, conf->learners_count, id) ||
	       ids_contain(conf->learners_next, conf->learners_next_count, id);
}

/* Only voters campaign; learners and removed nodes never do (thesis 4.2.1). */
bool cs_promotable(const struct consensus *c)
{
	return cs_conf_is_voter(&c->conf, c->id);
}

bool cs_single_voter(const struct consensus *c)
{
	return c->conf.voters_count == 1 && c->conf.voters[0] == c->id &&
	       !cs_conf_is_joint(&c->conf);
}

struct cs_progress *cs_progress_find(struct consensus *c, consensus_node_id id)
{
	for (uint32_t i = 0; i < c->progress_count; i++) {
		if (c->progress[i].id == id) {
			return &c->progress[i];
		}
	}
	return NULL;
}

static const struct cs_progress *progress_find_const(const struct consensus *c,
                                                     consensus_node_id id)
{
	for (uint32_t i = 0; i < c->progress_count; i++) {
		if (c->progress[i].id == id) {
			return &c->progress[i];
		}
	}
	return NULL;
}

void cs_progress_init(struct consensus *c, struct cs_progress *pr, consensus_node_id id)
{
	pr->id = id;
	pr->match = 0;
	pr->next = cs_log_last_index(c) + 1;
	pr->state = CONSENSUS_PROGRESS_PROBE;
	pr->probe_sent = false;
	/* etcd-io/raft: a new member counts as recently active, so check-quorum does not depose
	 * the leader before the member had a chance to answer. */
	pr->recent_active = true;
	pr->vote = CS_VOTE_NONE;
	pr->read_ack = 0;
	pr->inflight_start = 0;
	pr->inflight_count = 0;
	pr->inflight_bytes_total = 0;
}

/* Raft paper Figure 2: on election, nextIndex = last log index + 1 and matchIndex = 0; our own
 * match is what is durable. */
void cs_progress_reset_all(struct consensus *c)
{
	for (uint32_t i = 0; i < c->progress_count; i++) {
		struct cs_progress *pr = &c->progress[i];
		cs_progress_init(c, pr, pr->id);
		if (pr->id == c->id) {
			pr->match = cs_log_stable_index(c);
		}
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a;
	uint64_t y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* Insertion sort: at most members_max values, no libc qsort needed in a hot path that is
 * short anyway. */
static void sort_u64(uint64_t *v, uint32_t n)
{
	for (uint32_t i = 1; i < n; i++) {
		uint64_t x = v[i];
		uint32_t j = i;
		while (j > 0 && cmp_u64(&v[j - 1], &x) > 0) {
			v[j] = v[j - 1];
			j--;
		}
		v[j] = x;
	}
}

enum cs_value_kind { CS_VALUE_MATCH, CS_VALUE_READ_ACK };

/* The largest value a majority of `ids` has reached; UINT64_MAX for an empty set so a joint
 * minimum ignores it (etcd-io/raft MajorityConfig.CommittedIndex). */
static uint64_t majority_value(struct consensus *c, const consensus_node_id *ids, uint32_t n,
                               enum cs_value_kind kind)
{
	if (n == 0) {
		return UINT64_MAX;
	}
	CL_ASSERT(n <= c->members_max);
	for (uint32_t i = 0; i < n; i++) {
		/* Every member has a progress (progress_sync). */
		const struct cs_progress *pr = progress_find_const(c, ids[i]);
		CL_ASSERT(pr != NULL);
		uint64_t v = kind == CS_VALUE_MATCH ? pr->match : pr->read_ack;
		if (kind == CS_VALUE_READ_ACK && ids[i] == c->id) {
			v = UINT64_MAX; /* the leader always agrees with itself */
		}
		c->scratch_u64[i] = v;
	}
	sort_u64(c->scratch_u64, n);
	return c->scratch_u64[n - (n / 2 + 1)];
}

static uint64_t joint_value(struct consensus *c, enum cs_value_kind kind)
{
	uint64_t in = majority_value(c, c->conf.voters, c->conf.voters_count, kind);
	uint64_t out =
	    majority_value(c, c->conf.voters_outgoing, c->conf.voters_outgoing_count, kind);
	return in < out ? in : out;
}

/* Thesis 4.3: in a joint configuration an entry commits only with both majorities. */
uint64_t cs_quorum_committed_index(struct consensus *c)
{
	return joint_value(c, CS_VALUE_MATCH);
}

uint64_t cs_quorum_read_seq(struct consensus *c)
{
	return joint_value(c, CS_VALUE_READ_ACK);
}

enum cs_record { CS_RECORD_VOTE, CS_RECORD_ACTIVE };

static enum cs_quorum_result majority_result(const struct consensus *c,
                                             const consensus_node_id *ids, uint32_t n,
                                             enum cs_record what)
{
	if (n == 0) {
		return CS_QUORUM_WON;
	}
	uint32_t yes = 0;
	uint32_t missing = 0;
	for (uint32_t i = 0; i < n; i++) {
		const struct cs_progress *pr = progress_find_const(c, ids[i]);
		CL_ASSERT(pr != NULL);
		if (what == CS_RECORD_ACTIVE) {
			yes += (pr->recent_active || ids[i] == c->id) ? 1u : 0u;
			continue;
		}
		if (pr->vote == CS_VOTE_GRANTED) {
			yes++;
		} else if (pr->vote == CS_VOTE_NONE) {
			missing++;
		}
	}
	uint32_t quorum = n / 2 + 1;
	if (yes >= quorum) {
		return CS_QUORUM_WON;
	}
	if (yes + missing >= quorum) {
		return CS_QUORUM_PENDING;
	}
	return CS_QUORUM_LOST;
}

static enum cs_quorum_result joint_result(const struct consensus *c, enum cs_record what)
{
	enum cs_quorum_result in = majority_result(c, c->conf.voters, c->conf.voters_count, what);
	enum cs_quorum_result out =
	    majority_result(c, c->conf.voters_outgoing, c->conf.voters_outgoing_count, what);
	if (in == out) {
		return in;
	}
	if (in == CS_QUORUM_LOST || out == CS_QUORUM_LOST) {
		return CS_QUORUM_LOST;
	}
	return CS_QUORUM_PENDING;
}

enum cs_quorum_result cs_quorum_vote_result(const struct consensus *c)
{
	return joint_result(c, CS_RECORD_VOTE);
}

/* Thesis 6.2 check-quorum: a quorum (both majorities while joint) was heard from. */
bool cs_quorum_active(const struct consensus *c)
{
	return joint_result(c, CS_RECORD_ACTIVE) == CS_QUORUM_WON;
}
