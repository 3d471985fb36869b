/* Membership changes with etcd-io/raft semantics: a configuration takes effect when applied;
 * one voter at a time directly, more through joint consensus (Raft thesis 4.1, 4.3). */
#include "consensus/internal.h"

#include <string.h>

static size_t ids_bytes(const struct consensus *c)
{
	return (size_t)c->members_max * sizeof(consensus_node_id);
}

int cs_conf_alloc(struct consensus *c, struct cs_conf *conf)
{
	consensus_node_id **lists[] = {&conf->voters, &conf->voters_outgoing, &conf->learners,
	                               &conf->learners_next};
	for (size_t i = 0; i < CL_ARRAY_LEN(lists); i++) {
		*lists[i] = cs_alloc(c, ids_bytes(c));
		if (*lists[i] == NULL) {
			return CARELOG_ENOMEM;
		}
	}
	return CARELOG_OK;
}

void cs_conf_free(struct consensus *c, struct cs_conf *conf)
{
	cs_free(c, conf->voters, ids_bytes(c));
	cs_free(c, conf->voters_outgoing, ids_bytes(c));
	cs_free(c, conf->learners, ids_bytes(c));
	cs_free(c, conf->learners_next, ids_bytes(c));
}

static bool contains(const consensus_node_id *ids, uint32_t n, consensus_node_id id)
{
	for (uint32_t i = 0; i < n; i++) {
		if (ids[i] == id) {
			return true;
		}
	}
	return false;
}

static bool list_add(const struct consensus *c, consensus_node_id *ids, uint32_t *n,
                     consensus_node_id id)
{
	if (contains(ids, *n, id)) {
		return true;
	}
	if (*n >= c->members_max) {
		return false;
	}
	ids[(*n)++] = id;
	return true;
}

static void list_remove(consensus_node_id *ids, uint32_t *n, consensus_node_id id)
{
	for (uint32_t i = 0; i < *n; i++) {
		if (ids[i] == id) {
			memmove(ids + i, ids + i + 1, (*n - i - 1) * sizeof(*ids));
			(*n)--;
			return;
		}
	}
}

static void conf_copy(const struct consensus *c, struct cs_conf *dst, const struct cs_conf *src)
{
	size_t b = ids_bytes(c);
	memcpy(dst->voters, src->voters, b);
	memcpy(dst->voters_outgoing, src->voters_outgoing, b);
	memcpy(dst->learners, src->learners, b);
	memcpy(dst->learners_next, src->learners_next, b);
	dst->voters_count = src->voters_count;
	dst->voters_outgoing_count = src->voters_outgoing_count;
	dst->learners_count = src->learners_count;
	dst->learners_next_count = src->learners_next_count;
	dst->auto_leave = src->auto_leave;
}

/* Number of distinct members; the lists are disjoint except outgoing voters. */
static uint32_t members_count(const struct cs_conf *conf)
{
	uint32_t n = conf->voters_count + conf->learners_count;
	for (uint32_t i = 0; i < conf->voters_outgoing_count; i++) {
		consensus_node_id id = conf->voters_outgoing[i];
		if (!contains(conf->voters, conf->voters_count, id) &&
		    !contains(conf->learners, conf->learners_count, id)) {
			n++;
		}
	}
	return n;
}

static bool lists_disjoint(const consensus_node_id *a, uint32_t na, const consensus_node_id *b,
                           uint32_t nb)
{
	for (uint32_t i = 0; i < na; i++) {
		if (contains(b, nb, a[i])) {
			return false;
		}
	}
	return true;
}

static bool list_unique(const consensus_node_id *a, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		if (a[i] == 0 || contains(a + i + 1, n - i - 1, a[i])) {
			return false;
		}
	}
	return true;
}

/* etcd-io/raft confchange checkInvariants, as error returns. */
static bool conf_valid(const struct consensus *c, const struct cs_conf *f)
{
	if (!list_unique(f->voters, f->voters_count) ||
	    !list_unique(f->voters_outgoing, f->voters_outgoing_count) ||
	    !list_unique(f->learners, f->learners_count) ||
	    !list_unique(f->learners_next, f->learners_next_count)) {
		return false;
	}
	/* Learners are never voters on either side; learners_next are outgoing voters only. */
	if (!lists_disjoint(f->learners, f->learners_count, f->voters, f->voters_count) ||
	    !lists_disjoint(f->learners, f->learners_count, f->voters_outgoing,
	                    f->voters_outgoing_count) ||
	    !lists_disjoint(f->learners_next, f->learners_next_count, f->voters, f->voters_count) ||
	    !lists_disjoint(f->learners_next, f->learners_next_count, f->learners,
	                    f->learners_count)) {
		return false;
	}
	for (uint32_t i = 0; i < f->learners_next_count; i++) {
		if (!contains(f->voters_outgoing, f->voters_outgoing_count, f->learners_next[i])) {
			return false;
		}
	}
	if (f->voters_outgoing_count == 0 && (f->learners_next_count > 0 || f->auto_leave)) {
		return false;
	}
	return members_count(f) <= c->members_max;
}

static bool cc_valid(const struct consensus_conf_change *cc)
{
	if (cc->transition > CONSENSUS_CONF_TRANSITION_EXPLICIT ||
	    cc->count > CONSENSUS_CONF_CHANGES_MAX) {
		return false;
	}
	for (uint32_t i = 0; i < cc->count; i++) {
		if (cc->changes[i].op < CONSENSUS_CONF_ADD_VOTER ||
		    cc->changes[i].op > CONSENSUS_CONF_REMOVE || cc->changes[i].node_id == 0) {
			return false;
		}
	}
	return true;
}

static int apply_ops(const struct consensus *c, struct cs_conf *f,
                     const struct consensus_conf_change *cc)
{
	for (uint32_t i = 0; i < cc->count; i++) {
		consensus_node_id id = cc->changes[i].node_id;
		switch (cc->changes[i].op) {
		case CONSENSUS_CONF_ADD_VOTER:
			list_remove(f->learners, &f->learners_count, id);
			list_remove(f->learners_next, &f->learners_next_count, id);
			if (!list_add(c, f->voters, &f->voters_count, id)) {
				return CARELOG_EINVAL;
			}
			break;
		case CONSENSUS_CONF_ADD_LEARNER:
			if (contains(f->learners, f->learners_count, id)) {
				break;
			}
			list_remove(f->voters, &f->voters_count, id);
			/* An outgoing voter keeps voting until the joint config is left, then
			 * becomes a learner (etcd-io/raft LearnersNext). */
			if (contains(f->voters_outgoing, f->voters_outgoing_count, id)) {
				if (!list_add(c, f->learners_next, &f->learners_next_count, id)) {
					return CARELOG_EINVAL;
				}
			} else if (!list_add(c, f->learners, &f->learners_count, id)) {
				return CARELOG_EINVAL;
			}
			break;
		default:
			list_remove(f->voters, &f->voters_count, id);
			list_remove(f->learners, &f->learners_count, id);
			list_remove(f->learners_next, &f->learners_next_count, id);
			break;
		}
	}
	if (f->voters_count == 0) {
		return CARELOG_EINVAL; /* removing every voter would leave no quorum */
	}
	return CARELOG_OK;
}

static uint32_t voters_changed(const struct cs_conf *a, const struct cs_conf *b)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < a->voters_count; i++) {
		n += contains(b->voters, b->voters_count, a->voters[i]) ? 0u : 1u;
	}
	for (uint32_t i = 0; i < b->voters_count; i++) {
		n += contains(a->voters, a->voters_count, b->voters[i]) ? 0u : 1u;
	}
	return n;
}

/* Computes into `f` the configuration that applying `cc` to the current one gives. */
static int conf_next(struct consensus *c, const struct consensus_conf_change *cc, struct cs_conf *f)
{
	const struct cs_conf *cur = &c->conf;
	conf_copy(c, f, cur);
	if (cc->count == 0) {
		if (!cs_conf_is_joint(cur)) {
			return CARELOG_EINVAL;
		}
		/* Leave joint: demoted outgoing voters become learners. */
		for (uint32_t i = 0; i < f->learners_next_count; i++) {
			(void)list_add(c, f->learners, &f->learners_count, f->learners_next[i]);
		}
		f->learners_next_count = 0;
		f->voters_outgoing_count = 0;
		f->auto_leave = false;
		return conf_valid(c, f) ? CARELOG_OK : CARELOG_EINVAL;
	}
	if (cs_conf_is_joint(cur)) {
		return CARELOG_EINVAL;
	}
	int rc = apply_ops(c, f, cc);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (cc->transition == CONSENSUS_CONF_TRANSITION_AUTO &&
	    (voters_changed(cur, f) <= 1 || cur->voters_count == 0)) {
		/* Thesis 4.1: one voter at a time keeps every majority of the old and new sets
		 * overlapping, so no joint phase is needed. From an empty configuration (a node
		 * that joins and applies the region's genesis entry from the log) there is no old
		 * majority to overlap: the genesis voters take effect at once, exactly as on the
		 * voters that bootstrapped from it. */
		return conf_valid(c, f) ? CARELOG_OK : CARELOG_EINVAL;
	}
	/* Thesis 4.3: joint consensus; decisions need majorities of both voter sets. */
	conf_copy(c, f, cur);
	memcpy(f->voters_outgoing, cur->voters, cur->voters_count * sizeof(consensus_node_id));
	f->voters_outgoing_count = cur->voters_count;
	rc = apply_ops(c, f, cc);
	if (rc != CARELOG_OK) {
		return rc;
	}
	f->auto_leave = cc->transition != CONSENSUS_CONF_TRANSITION_EXPLICIT;
	return conf_valid(c, f) ? CARELOG_OK : CARELOG_EINVAL;
}

/* Makes the progress set match the members: drop the removed, add the new (probing). */
static void progress_sync(struct consensus *c)
{
	uint32_t i = 0;
	while (i < c->progress_count) {
		if (cs_conf_is_member(&c->conf, c->progress[i].id)) {
			i++;
			continue;
		}
		/* Swap with the last slot so every slot keeps its own inflight ring. */
		struct cs_progress tmp = c->progress[i];
		c->progress[i] = c->progress[c->progress_count - 1];
		c->progress[c->progress_count - 1] = tmp;
		c->progress_count--;
	}
	const struct cs_conf *f = &c->conf;
	const consensus_node_id *lists[] = {f->voters, f->voters_outgoing, f->learners,
	                                    f->learners_next};
	uint32_t counts[] = {f->voters_count, f->voters_outgoing_count, f->learners_count,
	                     f->learners_next_count};
	for (size_t l = 0; l < CL_ARRAY_LEN(lists); l++) {
		for (uint32_t k = 0; k < counts[l]; k++) {
			if (cs_progress_find(c, lists[l][k]) != NULL) {
				continue;
			}
			CL_ASSERT(c->progress_count < c->members_max);
			cs_progress_init(c, &c->progress[c->progress_count], lists[l][k]);
			c->progress_count++;
		}
	}
}

int cs_conf_load(struct consensus *c, const struct consensus_conf_state *cs)
{
	const consensus_node_id *lists[] = {cs->voters, cs->voters_outgoing, cs->learners,
	                                    cs->learners_next};
	uint32_t counts[] = {cs->voters_count, cs->voters_outgoing_count, cs->learners_count,
	                     cs->learners_next_count};
	consensus_node_id *dst[] = {c->conf.voters, c->conf.voters_outgoing, c->conf.learners,
	                            c->conf.learners_next};
	for (size_t l = 0; l < CL_ARRAY_LEN(lists); l++) {
		if (counts[l] > c->members_max || (counts[l] > 0 && lists[l] == NULL)) {
			return CARELOG_EINVAL;
		}
		if (counts[l] > 0) {
			memcpy(dst[l], lists[l], counts[l] * sizeof(consensus_node_id));
		}
	}
	c->conf.voters_count = cs->voters_count;
	c->conf.voters_outgoing_count = cs->voters_outgoing_count;
	c->conf.learners_count = cs->learners_count;
	c->conf.learners_next_count = cs->learners_next_count;
	c->conf.auto_leave = cs->auto_leave;
	if (!conf_valid(c, &c->conf)) {
		return CARELOG_EINVAL;
	}
	progress_sync(c);
	return CARELOG_OK;
}

void cs_conf_export(const struct consensus *c, struct consensus_conf_state *out)
{
	out->voters = c->conf.voters;
	out->voters_count = c->conf.voters_count;
	out->voters_outgoing = c->conf.voters_outgoing;
	out->voters_outgoing_count = c->conf.voters_outgoing_count;
	out->learners = c->conf.learners;
	out->learners_count = c->conf.learners_count;
	out->learners_next = c->conf.learners_next;
	out->learners_next_count = c->conf.learners_next_count;
	out->auto_leave = c->conf.auto_leave;
}

int consensus_propose_conf_change(struct consensus *c, const struct consensus_conf_change *cc,
                                  const uint8_t *context, uint32_t context_len, uint64_t *out_index)
{
	CL_ASSERT(!c->in_ready);
	if (cc == NULL || !cc_valid(cc) || (context == NULL && context_len > 0)) {
		return CARELOG_EINVAL;
	}
	if (c->role != CONSENSUS_ROLE_LEADER) {
		return CARELOG_ENOTLEADER;
	}
	if (c->transferee != 0) {
		return CARELOG_ECLOSED;
	}
	/* Thesis 4.1: one change at a time; the next waits until this one is applied. */
	if (c->pending_conf_index > c->applied) {
		return CARELOG_EBUSY;
	}
	/* Refuse now what applying would refuse, so no invalid change is ever committed. */
	int rc = conf_next(c, cc, &c->conf_scratch);
	if (rc != CARELOG_OK) {
		return rc;
	}
	uint64_t len = 3 + 9 * (uint64_t)cc->count + 4 + context_len;
	if (len > UINT32_MAX) {
		return CARELOG_ETOOBIG;
	}
	if ((c->uncommitted_bytes > 0 && c->uncommitted_bytes + len > c->uncommitted_bytes_max) ||
	    !cs_log_has_room(c)) {
		return CARELOG_EBUSY;
	}
	uint8_t *data = cs_alloc(c, (size_t)len);
	if (data == NULL) {
		return CARELOG_ENOMEM;
	}
	size_t used;
	rc = consensus_conf_encode(cc, context, context_len, data, (size_t)len, &used);
	CL_ASSERT(rc == CARELOG_OK && used == len);
	uint64_t index;
	rc = cs_append_local(c, CONSENSUS_ENTRY_CONF, data, (uint32_t)len, &index);
	CL_ASSERT(rc == CARELOG_OK);
	c->pending_conf_index = index;
	(void)cs_bcast_append(c);
	if (out_index != NULL) {
		*out_index = index;
	}
	return CARELOG_OK;
}

/* etcd-io/raft switchToConfig: what the leader does once a new configuration is in force. */
static void after_switch(struct consensus *c)
{
	if (c->role != CONSENSUS_ROLE_LEADER) {
		return;
	}
	if (!cs_promotable(c)) {
		/* Thesis 4.2.2: a leader removed (or demoted) by a change steps down once the
		 * change is applied. */
		cs_become_follower(c, c->term, 0);
		return;
	}
	bool committed = false;
	(void)cs_maybe_commit(c, &committed);
	if (committed) {
		(void)cs_bcast_append(c);
	} else {
		for (uint32_t i = 0; i < c->progress_count; i++) {
			if (c->progress[i].id != c->id) {
				bool sent;
				(void)cs_send_append(c, &c->progress[i], false, &sent);
			}
		}
	}
	if (c->transferee != 0 && !cs_conf_is_voter(&c->conf, c->transferee)) {
		cs_abort_transfer(c);
	}
}

int consensus_apply_conf_change(struct consensus *c, const struct consensus_conf_change *cc,
                                struct consensus_conf_state *out_conf_state)
{
	if (cc == NULL || !cc_valid(cc)) {
		return CARELOG_EINVAL;
	}
	int rc = conf_next(c, cc, &c->conf_scratch);
	if (rc != CARELOG_OK) {
		return rc;
	}
	struct cs_conf tmp = c->conf;
	c->conf = c->conf_scratch;
	c->conf_scratch = tmp;
	progress_sync(c);
	after_switch(c);
	if (out_conf_state != NULL) {
		cs_conf_export(c, out_conf_state);
	}
	return CARELOG_OK;
}
