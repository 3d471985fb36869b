/* In-memory cluster for the consensus scenario tests (see fixture.h). */
#include "fixture.h"

#include "carelog/errors.h"

#include <stdarg.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- allocator ---- */

static void *fx_alloc_fn(void *ctx, size_t size)
{
	struct fx_alloc *a = ctx;
	a->allocs++;
	if (a->fail_at != 0 &&
	    (a->allocs == a->fail_at || (a->fail_all && a->allocs > a->fail_at))) {
		a->failures++;
		return NULL;
	}
	void *p = malloc(size);
	assert_non_null(p);
	a->bytes_outstanding += (int64_t)size;
	return p;
}

static void fx_free_fn(void *ctx, void *p, size_t size)
{
	struct fx_alloc *a = ctx;
	a->frees++;
	a->bytes_outstanding -= (int64_t)size;
	free(p);
}

void fx_alloc_init(struct fx_alloc *a)
{
	memset(a, 0, sizeof(*a));
	a->ops.ctx = a;
	a->ops.alloc = fx_alloc_fn;
	a->ops.free = fx_free_fn;
}

/* ---- stable log ---- */

static uint64_t log_last_index(void *ctx)
{
	struct fx_log *l = ctx;
	return l->count;
}

static int log_term(void *ctx, uint64_t index, uint64_t *out)
{
	struct fx_log *l = ctx;
	if (l->fail_term != 0) {
		return l->fail_term;
	}
	if (index == 0) {
		*out = 0;
		return CARELOG_OK;
	}
	if (index > l->count) {
		return CARELOG_ENOTFOUND;
	}
	*out = l->entries[index - 1].term;
	return CARELOG_OK;
}

static int log_entries(void *ctx, uint64_t lo, uint64_t hi, uint64_t bytes_max,
                       const struct consensus_allocator *alloc, struct consensus_entry *out,
                       size_t cap, size_t *out_count)
{
	struct fx_log *l = ctx;
	if (l->fail_entries != 0) {
		return l->fail_entries;
	}
	assert_true(lo >= 1 && lo < hi && hi <= l->count + 1);
	size_t n = 0;
	uint64_t bytes = 0;
	for (uint64_t i = lo; i < hi && n < cap; i++) {
		const struct fx_entry *e = &l->entries[i - 1];
		if (n > 0 && bytes + e->data_len > bytes_max) {
			break;
		}
		uint8_t *data = NULL;
		if (e->data_len > 0) {
			data = alloc->alloc(alloc->ctx, e->data_len);
			if (data == NULL) {
				for (size_t j = 0; j < n; j++) {
					uint8_t *d;
					memcpy(&d, &out[j].data, sizeof(d));
					if (d != NULL) {
						alloc->free(alloc->ctx, d, out[j].data_len);
					}
				}
				return CARELOG_ENOMEM;
			}
			memcpy(data, e->data, e->data_len);
		}
		out[n] = (struct consensus_entry){.term = e->term,
		                                  .index = i,
		                                  .type = e->type,
		                                  .data_len = e->data_len,
		                                  .data = data};
		bytes += e->data_len;
		n++;
	}
	*out_count = n;
	return CARELOG_OK;
}

static void log_truncate(struct fx_log *l, uint64_t from_index)
{
	while (l->count >= from_index && l->count > 0) {
		free(l->entries[l->count - 1].data);
		l->count--;
	}
}

static void log_push(struct fx_log *l, uint64_t term, uint8_t type, const uint8_t *data,
                     uint32_t len)
{
	if (l->count == l->capacity) {
		l->capacity = l->capacity ? l->capacity * 2 : 64;
		l->entries = realloc(l->entries, l->capacity * sizeof(*l->entries));
		assert_non_null(l->entries);
	}
	struct fx_entry *e = &l->entries[l->count++];
	e->term = term;
	e->type = type;
	e->data_len = len;
	e->data = NULL;
	if (len > 0) {
		e->data = malloc(len);
		memcpy(e->data, data, len);
	}
}

static void log_init(struct fx_log *l)
{
	memset(l, 0, sizeof(*l));
	l->ops.ctx = l;
	l->ops.last_index = log_last_index;
	l->ops.term = log_term;
	l->ops.entries = log_entries;
}

/* ---- nodes ---- */

struct fx_node *fx_node(struct fx_cluster *cl, consensus_node_id id)
{
	assert_true(id >= 1 && id <= cl->count);
	return &cl->nodes[id - 1];
}

struct consensus *fx_core(struct fx_cluster *cl, consensus_node_id id)
{
	return fx_node(cl, id)->c;
}

static void node_start(struct fx_node *n)
{
	struct consensus_conf_state cs = {
	    .voters = n->voters,
	    .voters_count = n->voters_count,
	    .voters_outgoing = n->voters_out,
	    .voters_outgoing_count = n->voters_out_count,
	    .learners = n->learners,
	    .learners_count = n->learners_count,
	    .learners_next = n->learners_next,
	    .learners_next_count = n->learners_next_count,
	    .auto_leave = n->auto_leave,
	};
	n->config.applied = n->applied;
	n->config.allocator = &n->alloc.ops;
	n->config.log = &n->log.ops;
	int rc = consensus_create(&n->config, &n->hs, &cs, &n->c);
	assert_int_equal(rc, CARELOG_OK);
	n->down = false;
}

static void node_stop(struct fx_node *n)
{
	consensus_destroy(n->c);
	n->c = NULL;
	assert_int_equal(n->alloc.bytes_outstanding, 0);
}

struct fx_cluster *fx_new(const struct fx_options *o)
{
	struct fx_cluster *cl = calloc(1, sizeof(*cl));
	assert_non_null(cl);
	cl->count = o->voters + o->learners + o->extra;
	assert_true(cl->count <= FX_NODES_MAX);
	for (uint32_t i = 0; i < cl->count; i++) {
		struct fx_node *n = &cl->nodes[i];
		n->id = i + 1;
		fx_alloc_init(&n->alloc);
		log_init(&n->log);
		n->config = (struct consensus_config){
		    .id = n->id,
		    .election_ticks = 10,
		    .heartbeat_ticks = 1,
		    .seed = o->seed + 1000 * n->id,
		    .pre_vote = o->pre_vote,
		    .check_quorum = o->check_quorum,
		    .members_max = FX_NODES_MAX,
		    .inflight_msgs_max = o->inflight_msgs_max ? o->inflight_msgs_max : 256,
		    .append_bytes_max = o->append_bytes_max ? o->append_bytes_max : 1u << 20,
		    .uncommitted_bytes_max =
		        o->uncommitted_bytes_max ? o->uncommitted_bytes_max : 1u << 30,
		    .ready_bytes_max = 1u << 20,
		    .read_index_max = 16,
		};
		/* Extra nodes know the initial configuration (as if they had applied the genesis
		 * entry) without being in it. */
		{
			for (uint32_t v = 0; v < o->voters; v++) {
				n->voters[n->voters_count++] = v + 1;
			}
			for (uint32_t l = 0; l < o->learners; l++) {
				n->learners[n->learners_count++] = o->voters + l + 1;
			}
		}
		node_start(n);
	}
	return cl;
}

static void msg_free(struct fx_msg *m)
{
	for (uint32_t i = 0; i < m->m.entries_count; i++) {
		uint8_t *d;
		memcpy(&d, &m->entries[i].data, sizeof(d));
		free(d);
	}
	free(m->entries);
	m->entries = NULL;
}

void fx_drop_pending(struct fx_cluster *cl)
{
	for (uint32_t i = 0; i < cl->pending_count; i++) {
		msg_free(&cl->pending[i]);
	}
	cl->pending_count = 0;
}

void fx_free(struct fx_cluster *cl)
{
	fx_drop_pending(cl);
	for (uint32_t i = 0; i < cl->count; i++) {
		struct fx_node *n = &cl->nodes[i];
		node_stop(n);
		log_truncate(&n->log, 1);
		free(n->log.entries);
	}
	free(cl);
}

void fx_restart(struct fx_cluster *cl, consensus_node_id id)
{
	struct fx_node *n = fx_node(cl, id);
	node_stop(n);
	node_start(n);
}

void fx_set_log(struct fx_cluster *cl, consensus_node_id id, const uint64_t *terms, uint64_t count,
                uint64_t term, consensus_node_id vote, uint64_t commit)
{
	struct fx_node *n = fx_node(cl, id);
	log_truncate(&n->log, 1);
	for (uint64_t i = 0; i < count; i++) {
		log_push(&n->log, terms[i], CONSENSUS_ENTRY_NORMAL, NULL, 0);
	}
	n->hs = (struct consensus_hard_state){.term = term, .vote = vote, .commit = commit};
	n->applied = commit;
	fx_restart(cl, id);
}

static void queue_msg(struct fx_cluster *cl, const struct consensus_message *m)
{
	assert_true(cl->pending_count < FX_PENDING_MAX);
	struct fx_msg *q = &cl->pending[cl->pending_count++];
	q->m = *m;
	q->entries = NULL;
	if (m->entries_count > 0) {
		q->entries = calloc(m->entries_count, sizeof(*q->entries));
		for (uint32_t i = 0; i < m->entries_count; i++) {
			q->entries[i] = m->entries[i];
			q->entries[i].data = NULL;
			if (m->entries[i].data_len > 0) {
				uint8_t *d = malloc(m->entries[i].data_len);
				memcpy(d, m->entries[i].data, m->entries[i].data_len);
				q->entries[i].data = d;
			}
		}
	}
	q->m.entries = q->entries;
}

static void apply_conf(struct fx_node *n, const struct consensus_conf_change *cc)
{
	struct consensus_conf_state cs;
	int rc = consensus_apply_conf_change(n->c, cc, &cs);
	assert_int_equal(rc, CARELOG_OK);
	n->voters_count = cs.voters_count;
	memcpy(n->voters, cs.voters, cs.voters_count * sizeof(consensus_node_id));
	n->voters_out_count = cs.voters_outgoing_count;
	memcpy(n->voters_out, cs.voters_outgoing,
	       cs.voters_outgoing_count * sizeof(consensus_node_id));
	n->learners_count = cs.learners_count;
	memcpy(n->learners, cs.learners, cs.learners_count * sizeof(consensus_node_id));
	n->learners_next_count = cs.learners_next_count;
	memcpy(n->learners_next, cs.learners_next,
	       cs.learners_next_count * sizeof(consensus_node_id));
	n->auto_leave = cs.auto_leave;
}

static void apply_entry(struct fx_node *n, const struct consensus_entry *e)
{
	assert_int_equal(e->index, n->applied + 1);
	n->applied = e->index;
	if (n->applied_count < FX_APPLIED_MAX) {
		struct fx_applied *a = &n->applied_entries[n->applied_count++];
		a->index = e->index;
		a->term = e->term;
		a->type = e->type;
		size_t len = e->data_len < sizeof(a->data) - 1 ? e->data_len : sizeof(a->data) - 1;
		memset(a->data, 0, sizeof(a->data));
		if (len > 0) {
			memcpy(a->data, e->data, len);
		}
	}
	if (e->type == CONSENSUS_ENTRY_CONF) {
		struct consensus_conf_change cc;
		int rc = consensus_conf_decode(e->data, e->data_len, &cc, NULL, NULL);
		assert_int_equal(rc, CARELOG_OK);
		if (n->defer_conf) {
			assert_true(n->deferred_count < 8);
			n->deferred[n->deferred_count++] = cc;
		} else {
			apply_conf(n, &cc);
		}
	}
}

void fx_apply_deferred(struct fx_cluster *cl, consensus_node_id id)
{
	struct fx_node *n = fx_node(cl, id);
	for (uint32_t i = 0; i < n->deferred_count; i++) {
		apply_conf(n, &n->deferred[i]);
	}
	n->deferred_count = 0;
	fx_process(cl, id);
}

bool fx_ready_once(struct fx_cluster *cl, consensus_node_id id, struct consensus_ready *out)
{
	struct fx_node *n = fx_node(cl, id);
	if (!consensus_has_ready(n->c)) {
		return false;
	}
	{
		struct consensus_ready rd;
		int rc = consensus_ready(n->c, &rd);
		if (rc != CARELOG_OK) {
			return false; /* e.g. injected storage or memory failure: try again later */
		}
		if (out != NULL) {
			*out = rd;
		}
		n->ready_batches++;
		for (size_t i = 0; i < rd.messages_early_count; i++) {
			assert_int_equal(rd.messages_early[i].type, CONSENSUS_MSG_APPEND);
			queue_msg(cl, &rd.messages_early[i]);
			n->early_msgs_seen++;
		}
		if (rd.entries_count > 0) {
			log_truncate(&n->log, rd.entries[0].index);
			assert_int_equal(n->log.count + 1, rd.entries[0].index);
			for (size_t i = 0; i < rd.entries_count; i++) {
				const struct consensus_entry *e = &rd.entries[i];
				log_push(&n->log, e->term, e->type, e->data, e->data_len);
			}
		}
		if (rd.hard_state_changed) {
			/* Term and vote never go backwards; commit never decreases. */
			assert_true(rd.hard_state.term >= n->hs.term);
			assert_true(rd.hard_state.commit >= n->hs.commit);
			n->hs = rd.hard_state;
		}
		for (size_t i = 0; i < rd.messages_count; i++) {
			queue_msg(cl, &rd.messages[i]);
		}
		for (size_t i = 0; i < rd.committed_count; i++) {
			apply_entry(n, &rd.committed[i]);
		}
		for (size_t i = 0; i < rd.read_states_count; i++) {
			assert_true(n->reads_count < FX_READS_MAX);
			n->reads[n->reads_count++] = rd.read_states[i];
		}
		consensus_advance(n->c, &rd);
	}
	return true;
}

void fx_process(struct fx_cluster *cl, consensus_node_id id)
{
	struct fx_node *n = fx_node(cl, id);
	if (n->down || n->hold_ready) {
		return;
	}
	for (int round = 0; round < 1000 && fx_ready_once(cl, id, NULL); round++) {
	}
}

void fx_process_all(struct fx_cluster *cl)
{
	for (uint32_t i = 1; i <= cl->count; i++) {
		fx_process(cl, i);
	}
}

static bool deliverable(const struct fx_cluster *cl, const struct consensus_message *m)
{
	if (m->to < 1 || m->to > cl->count || cl->nodes[m->to - 1].down) {
		return false;
	}
	if (cl->cut[m->from][m->to] || cl->drop_type[m->type]) {
		return false;
	}
	return true;
}

static void deliver_at(struct fx_cluster *cl, uint32_t i, bool process)
{
	struct fx_msg msg = cl->pending[i];
	memmove(&cl->pending[i], &cl->pending[i + 1],
	        (cl->pending_count - i - 1) * sizeof(cl->pending[0]));
	cl->pending_count--;
	if (deliverable(cl, &msg.m)) {
		struct fx_node *n = fx_node(cl, msg.m.to);
		int rc = consensus_step(n->c, &msg.m);
		assert_true(rc == CARELOG_OK || rc == CARELOG_ENOMEM || rc == CARELOG_EIO);
		cl->delivered++;
		if (process) {
			fx_process(cl, msg.m.to);
		}
	} else {
		cl->dropped++;
	}
	msg_free(&msg);
}

void fx_deliver_at(struct fx_cluster *cl, uint32_t i, bool duplicate)
{
	assert_true(i < cl->pending_count);
	if (duplicate) {
		queue_msg(cl, &cl->pending[i].m);
	}
	deliver_at(cl, i, true);
}

void fx_deliver(struct fx_cluster *cl)
{
	fx_process_all(cl);
	for (int round = 0; round < FX_DELIVER_ROUNDS_MAX && cl->pending_count > 0; round++) {
		deliver_at(cl, 0, true);
	}
	assert_int_equal(cl->pending_count, 0);
}

static bool msg_matches(const struct consensus_message *m, uint8_t type, consensus_node_id from,
                        consensus_node_id to)
{
	return (type == 0 || m->type == type) && (from == 0 || m->from == from) &&
	       (to == 0 || m->to == to);
}

uint32_t fx_deliver_only(struct fx_cluster *cl, uint8_t type, consensus_node_id from,
                         consensus_node_id to)
{
	fx_process_all(cl);
	uint32_t snapshot = cl->pending_count;
	uint32_t delivered = 0;
	uint32_t i = 0;
	/* Only the messages queued now; what they cause is appended after and kept. */
	for (uint32_t seen = 0; seen < snapshot; seen++) {
		if (msg_matches(&cl->pending[i].m, type, from, to)) {
			deliver_at(cl, i, false);
			delivered++;
		} else {
			i++;
		}
	}
	fx_process_all(cl);
	return delivered;
}

uint32_t fx_count_pending(const struct fx_cluster *cl, uint8_t type, consensus_node_id from,
                          consensus_node_id to)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < cl->pending_count; i++) {
		n += msg_matches(&cl->pending[i].m, type, from, to) ? 1u : 0u;
	}
	return n;
}

const struct consensus_message *fx_find_pending(const struct fx_cluster *cl, uint8_t type,
                                                consensus_node_id from, consensus_node_id to)
{
	for (uint32_t i = cl->pending_count; i > 0; i--) {
		if (msg_matches(&cl->pending[i - 1].m, type, from, to)) {
			return &cl->pending[i - 1].m;
		}
	}
	return NULL;
}

void fx_tick(struct fx_cluster *cl, consensus_node_id id, uint32_t ticks)
{
	struct fx_node *n = fx_node(cl, id);
	for (uint32_t t = 0; t < ticks && !n->down; t++) {
		assert_int_equal(consensus_tick(n->c), CARELOG_OK);
		fx_process(cl, id);
	}
}

void fx_tick_all(struct fx_cluster *cl, uint32_t ticks)
{
	for (uint32_t t = 0; t < ticks; t++) {
		for (uint32_t i = 1; i <= cl->count; i++) {
			if (!cl->nodes[i - 1].down) {
				int rc = consensus_tick(cl->nodes[i - 1].c);
				assert_true(rc == CARELOG_OK || rc == CARELOG_EIO);
			}
		}
		fx_deliver(cl);
	}
}

void fx_isolate(struct fx_cluster *cl, consensus_node_id id)
{
	for (uint32_t i = 1; i <= cl->count; i++) {
		cl->cut[id][i] = true;
		cl->cut[i][id] = true;
	}
}

void fx_cut(struct fx_cluster *cl, consensus_node_id a, consensus_node_id b)
{
	cl->cut[a][b] = true;
	cl->cut[b][a] = true;
}

void fx_heal(struct fx_cluster *cl)
{
	memset(cl->cut, 0, sizeof(cl->cut));
	memset(cl->drop_type, 0, sizeof(cl->drop_type));
}

uint8_t fx_elect(struct fx_cluster *cl, consensus_node_id id)
{
	assert_int_equal(consensus_campaign(fx_core(cl, id)), CARELOG_OK);
	fx_deliver(cl);
	return fx_role(cl, id);
}

int fx_propose(struct fx_cluster *cl, consensus_node_id id, const char *text)
{
	int rc =
	    consensus_propose(fx_core(cl, id), (const uint8_t *)text, (uint32_t)strlen(text), NULL);
	fx_process(cl, id);
	return rc;
}

int fx_conf(struct fx_cluster *cl, consensus_node_id id, uint8_t op, consensus_node_id node)
{
	struct consensus_conf_change cc = {.count = 1};
	cc.changes[0].op = op;
	cc.changes[0].node_id = node;
	int rc =
	    consensus_propose_conf_change(fx_core(cl, id), &cc, (const uint8_t *)"ctx", 3, NULL);
	fx_process(cl, id);
	return rc;
}

static void status(struct fx_cluster *cl, consensus_node_id id, struct consensus_status *st)
{
	consensus_get_status(fx_core(cl, id), st);
}

uint8_t fx_role(struct fx_cluster *cl, consensus_node_id id)
{
	struct consensus_status st;
	status(cl, id, &st);
	return st.soft_state.role;
}

uint64_t fx_term(struct fx_cluster *cl, consensus_node_id id)
{
	struct consensus_status st;
	status(cl, id, &st);
	return st.hard_state.term;
}

uint64_t fx_commit(struct fx_cluster *cl, consensus_node_id id)
{
	struct consensus_status st;
	status(cl, id, &st);
	return st.hard_state.commit;
}

consensus_node_id fx_leader(struct fx_cluster *cl, consensus_node_id id)
{
	struct consensus_status st;
	status(cl, id, &st);
	return st.soft_state.leader;
}

consensus_node_id fx_find_leader(struct fx_cluster *cl)
{
	consensus_node_id best = 0;
	uint64_t best_term = 0;
	for (uint32_t i = 1; i <= cl->count; i++) {
		if (cl->nodes[i - 1].down) {
			continue;
		}
		if (fx_role(cl, i) == CONSENSUS_ROLE_LEADER && fx_term(cl, i) >= best_term) {
			best = i;
			best_term = fx_term(cl, i);
		}
	}
	return best;
}

const struct consensus_progress *fx_progress(struct fx_cluster *cl, consensus_node_id leader,
                                             consensus_node_id of)
{
	struct consensus_status st;
	status(cl, leader, &st);
	for (uint32_t i = 0; i < st.progress_count; i++) {
		if (st.progress[i].id == of) {
			return &st.progress[i];
		}
	}
	return NULL;
}

uint64_t fx_log_term(struct fx_cluster *cl, consensus_node_id id, uint64_t index)
{
	struct fx_node *n = fx_node(cl, id);
	if (index == 0 || index > n->log.count) {
		return 0;
	}
	return n->log.entries[index - 1].term;
}

uint64_t fx_log_last(struct fx_cluster *cl, consensus_node_id id)
{
	return fx_node(cl, id)->log.count;
}

bool fx_logs_equal(struct fx_cluster *cl, consensus_node_id a, consensus_node_id b)
{
	struct fx_log *x = &fx_node(cl, a)->log;
	struct fx_log *y = &fx_node(cl, b)->log;
	if (x->count != y->count) {
		return false;
	}
	for (uint64_t i = 0; i < x->count; i++) {
		if (x->entries[i].term != y->entries[i].term ||
		    x->entries[i].data_len != y->entries[i].data_len ||
		    (x->entries[i].data_len > 0 &&
		     memcmp(x->entries[i].data, y->entries[i].data, x->entries[i].data_len) != 0)) {
			return false;
		}
	}
	return true;
}

int fx_step(struct fx_cluster *cl, const struct consensus_message *m)
{
	int rc = consensus_step(fx_core(cl, m->to), m);
	fx_process(cl, m->to);
	return rc;
}
