/* The node's event loop: batches appends into one synced write transaction each (group commit). */
#include "node/daemon/loop.h"

#include "carelog/errors.h"
#include "common/assert.h"
#include "common/log.h"
#include "node/daemon/solo.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum {
	LOOP_RETRY_PAUSE_S = 1,
	LOOP_RECORD_OVERHEAD_BYTES = 256, /* record framing, signature, salt, stamp */
};

/* One in-flight request id: proposed, not yet applied. Slot = index % proposals_cap. */
struct loop_proposal {
	bool used;
	uint64_t index;
	uint8_t key[NODE_REQUEST_KEY_BYTES_MAX];
	size_t key_len;
	uint32_t hash;
	struct loop_proposal *bucket_next;
	uint32_t waiters_count;
	struct node_waiter waiters[NODE_LOOP_WAITERS_PER_PROPOSAL_MAX];
};

struct node_loop {
	struct node_loop_config config;
	struct storage *storage;
	struct solo *solo;
	struct node_apply_state state;   /* as committed */
	struct node_apply_state scratch; /* applied into during a transaction */

	/* The submit queue (ring), guarded by mu. */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct node_append_item **queue;
	uint32_t queue_head, queue_count;
	bool stopping;
	bool thread_running;
	pthread_t thread;

	/* Loop-thread only. */
	struct node_append_item **batch; /* drained items, capacity batch_entries_max */
	struct loop_proposal *proposals; /* capacity = solo entries_max */
	uint32_t proposals_cap;
	struct loop_proposal **buckets; /* 2 * proposals_cap heads */
	uint32_t buckets_count;
	struct storage_entry *persist; /* conversion buffer for storage_log_append */
	struct node_apply_outcome *outcomes;
	uint8_t *record_buf; /* one encoded record */
	size_t record_buf_cap;

	_Atomic uint64_t applied_index;
	_Atomic uint64_t commit_index;
};

uint64_t node_clock_wall_ms(void *ctx)
{
	(void)ctx;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int node_append_item_create(const uint8_t *message, size_t len, struct node_waiter waiter,
                            struct node_append_item **out)
{
	struct node_append_item *item = malloc(sizeof(*item) + len);
	if (item == NULL) {
		return CARELOG_ENOMEM;
	}
	memcpy(item->bytes, message, len);
	item->bytes_len = len;
	item->waiter = waiter;
	struct proto_request req;
	int rc = proto_request_decode(item->bytes, len, &req);
	if (rc == CARELOG_OK && req.op != PROTO_OP_APPEND) {
		rc = CARELOG_EINVAL;
	}
	if (rc != CARELOG_OK) {
		free(item);
		return rc;
	}
	item->req = req.u.append;
	*out = item;
	return CARELOG_OK;
}

void node_append_item_free(struct node_append_item *item)
{
	free(item);
}

static void loop_fatal(struct node_loop *l, int err)
{
	cl_log(CL_LOG_FATAL, "node.fatal", "err=%s", carelog_errname(err));
	if (l->config.fatal != NULL) {
		l->config.fatal(l->config.fatal_ctx, err);
		return;
	}
	_exit(1); /* never retry after a failed sync: what is on disk is unknown */
}

static void reply_error(struct node_loop *l, struct node_waiter w, int err, const char *msg)
{
	struct node_append_result r;
	memset(&r, 0, sizeof(r));
	r.err = err;
	snprintf(r.msg, sizeof(r.msg), "%s", msg);
	l->config.reply(l->config.reply_ctx, w, &r);
}

static void reply_committed(struct node_loop *l, struct node_waiter w, uint64_t index,
                            const uint8_t id[JOURNAL_ID_BYTES], bool duplicate)
{
	struct node_append_result r;
	memset(&r, 0, sizeof(r));
	r.err = CARELOG_OK;
	r.index = index;
	memcpy(r.id, id, JOURNAL_ID_BYTES);
	r.duplicate = duplicate;
	l->config.reply(l->config.reply_ctx, w, &r);
}

/* --- in-flight proposals by index and by request key --- */

static uint32_t key_hash(const uint8_t *key, size_t len)
{
	uint32_t h = 2166136261u; /* FNV-1a: keys are not attacker-chosen beyond one org's ids */
	for (size_t i = 0; i < len; i++) {
		h = (h ^ key[i]) * 16777619u;
	}
	return h;
}

static struct loop_proposal *proposal_find_key(struct node_loop *l, const uint8_t *key, size_t len)
{
	uint32_t h = key_hash(key, len);
	for (struct loop_proposal *p = l->buckets[h % l->buckets_count]; p != NULL;
	     p = p->bucket_next) {
		if (p->hash == h && p->key_len == len && memcmp(p->key, key, len) == 0) {
			return p;
		}
	}
	return NULL;
}

static struct loop_proposal *proposal_at(struct node_loop *l, uint64_t index)
{
	struct loop_proposal *p = &l->proposals[index % l->proposals_cap];
	return (p->used && p->index == index) ? p : NULL;
}

static void proposal_insert(struct node_loop *l, uint64_t index, const uint8_t *key, size_t len,
                            struct node_waiter w)
{
	struct loop_proposal *p = &l->proposals[index % l->proposals_cap];
	CL_ASSERT(!p->used); /* the solo window never exceeds proposals_cap */
	p->used = true;
	p->index = index;
	memcpy(p->key, key, len);
	p->key_len = len;
	p->hash = key_hash(key, len);
	p->waiters_count = 1;
	p->waiters[0] = w;
	struct loop_proposal **head = &l->buckets[p->hash % l->buckets_count];
	p->bucket_next = *head;
	*head = p;
}

static void proposal_remove(struct node_loop *l, struct loop_proposal *p)
{
	struct loop_proposal **link = &l->buckets[p->hash % l->buckets_count];
	while (*link != p) {
		CL_ASSERT(*link != NULL);
		link = &(*link)->bucket_next;
	}
	*link = p->bucket_next;
	p->used = false;
	p->bucket_next = NULL;
}

/* --- signing one append --- */

/* Copies a view into a NUL-terminated field of at most cap - 1 bytes. */
static bool view_copy(const struct proto_str *v, char *dst, size_t cap)
{
	if (v->len == 0) {
		dst[0] = '\0'; /* an absent field may have a NULL pointer */
		return true;
	}
	if (v->len >= cap || memchr(v->ptr, '\0', v->len) != NULL) {
		return false;
	}
	memcpy(dst, v->ptr, v->len);
	dst[v->len] = '\0';
	return true;
}

struct loop_append_text {
	char kind[JOURNAL_KIND_BYTES_MAX + 1];
	char patient[JOURNAL_PATIENT_BYTES_MAX + 1];
	char author[JOURNAL_ACTOR_BYTES_MAX + 1];
	char role[JOURNAL_ROLE_BYTES_MAX + 1];
	char status[JOURNAL_STATUS_BYTES_MAX + 1];
	char sensitivity[JOURNAL_SENSITIVITY_BYTES_MAX + 1];
	char request_id[JOURNAL_REQUEST_ID_BYTES_MAX + 1];
	char media_type[JOURNAL_MEDIA_TYPE_BYTES_MAX + 1];
};

/* Fills `text` from the request; on a field that does not fit returns its name. */
static const char *append_text(const struct proto_append_req *req, const char *actor_default,
                               struct loop_append_text *text)
{
	const struct {
		const struct proto_str *v;
		char *dst;
		size_t cap;
		const char *name;
	} fields[] = {
	    {&req->kind, text->kind, sizeof(text->kind), "kind"},
	    {&req->patient, text->patient, sizeof(text->patient), "patient"},
	    {&req->actor.id, text->author, sizeof(text->author), "actor"},
	    {&req->actor.role, text->role, sizeof(text->role), "actor role"},
	    {&req->status, text->status, sizeof(text->status), "status"},
	    {&req->sensitivity, text->sensitivity, sizeof(text->sensitivity), "sensitivity"},
	    {&req->request_id, text->request_id, sizeof(text->request_id), "request_id"},
	    {&req->media_type, text->media_type, sizeof(text->media_type), "media_type"},
	};
	for (size_t i = 0; i < CL_ARRAY_LEN(fields); i++) {
		if (!view_copy(fields[i].v, fields[i].dst, fields[i].cap)) {
			return fields[i].name;
		}
	}
	if (text->author[0] == '\0') {
		snprintf(text->author, sizeof(text->author), "%s", actor_default);
	}
	if (text->role[0] == '\0') {
		/* The format requires a role; an actor named without one gets this marker. */
		snprintf(text->role, sizeof(text->role), "%s", NODE_LOOP_ROLE_DEFAULT);
	}
	return NULL;
}

/* Signs, encodes and proposes one new append; answers its waiter on any refusal. */
static void loop_propose_new(struct node_loop *l, const struct node_append_item *item,
                             const struct membership_member *self, const uint8_t *key,
                             size_t key_len)
{
	struct loop_append_text text;
	const char *bad = append_text(&item->req, l->config.actor_default, &text);
	if (bad != NULL) {
		char what[NODE_LOOP_MESSAGE_BYTES_MAX];
		snprintf(what, sizeof(what), "%s is too long or contains NUL", bad);
		reply_error(l, item->waiter, CARELOG_EINVAL, what);
		return;
	}
	const struct proto_append_req *req = &item->req;
	struct journal_append in = {
	    .kind = text.kind,
	    .patient = text.patient,
	    .author = text.author,
	    .role = text.role,
	    .unit = l->config.unit,
	    .status = text.status,
	    .sensitivity = text.sensitivity,
	    .request_id = text.request_id,
	    .media_type = text.media_type,
	    .clinical_time_ms = req->clinical_time_ms,
	    .has_corrects = req->has_corrects,
	    .body = (const uint8_t *)req->body.ptr,
	    .body_len = req->body.len,
	};
	if (req->has_corrects) {
		memcpy(in.corrects, req->corrects, sizeof(in.corrects));
	}
	struct journal_signer signer = {
	    .node_id = l->config.node_id,
	    .org = self->org,
	    .secret_key = l->config.secret_key,
	};
	uint64_t body_max = l->state.membership.has_params
	                        ? l->state.membership.params.body_max_bytes
	                        : MEMBERSHIP_BODY_MAX_BYTES_DEFAULT;
	if (req->body.len > body_max) {
		struct node_append_result r;
		memset(&r, 0, sizeof(r));
		r.err = CARELOG_ETOOBIG;
		snprintf(r.msg, sizeof(r.msg),
		         "body is %zu bytes; the cluster's body_max_bytes is %llu", req->body.len,
		         (unsigned long long)body_max);
		l->config.reply(l->config.reply_ctx, item->waiter, &r);
		return;
	}
	uint64_t now_ms = l->config.clock_ms(l->config.clock_ctx);
	struct journal_signed signed_entry;
	const char *reason = NULL;
	int rc = journal_sign(&in, &signer, now_ms, body_max, &signed_entry, &reason);
	if (rc != CARELOG_OK) {
		char what[NODE_LOOP_MESSAGE_BYTES_MAX];
		if (reason != NULL && strcmp(reason, "unknown kind") == 0) {
			/* Name the kind and the known ones: kinds are not patient data. */
			int n =
			    snprintf(what, sizeof(what), "unknown kind '%s'; known:", text.kind);
			for (size_t i = 0;
			     journal_kinds[i] != NULL && n > 0 && (size_t)n < sizeof(what); i++) {
				n += snprintf(what + n, sizeof(what) - (size_t)n, " %s",
				              journal_kinds[i]);
			}
		} else {
			snprintf(what, sizeof(what), "%s",
			         reason != NULL ? reason : carelog_strerror(rc));
		}
		reply_error(l, item->waiter, rc, what);
		return;
	}
	struct journal_record record = {
	    .leader_time_ms = now_ms,
	    .header = signed_entry.header_buf,
	    .header_len = signed_entry.header_len,
	    .signature = signed_entry.signature,
	    .salt = signed_entry.salt,
	    .body = in.body,
	    .body_len = in.body_len,
	};
	size_t need = journal_record_size(record.header_len, record.body_len);
	if (need > l->record_buf_cap) {
		reply_error(l, item->waiter, CARELOG_ETOOBIG,
		            "record exceeds the node's request_bytes_max");
		return;
	}
	size_t record_len = 0;
	rc = journal_record_encode(&record, l->record_buf, l->record_buf_cap, &record_len);
	if (rc != CARELOG_OK) {
		reply_error(l, item->waiter, rc, "cannot encode the record");
		return;
	}
	uint64_t index = 0;
	rc = solo_propose(l->solo, l->record_buf, (uint32_t)record_len, &index);
	if (rc != CARELOG_OK) {
		reply_error(l, item->waiter, rc,
		            rc == CARELOG_EBUSY ? "too many appends in flight: retry"
		                                : "cannot propose");
		return;
	}
	proposal_insert(l, index, key, key_len, item->waiter);
}

/* Exactly once, then sign and propose. `rt` is a read transaction over committed state. */
static void loop_handle_append(struct node_loop *l, struct storage_txn *rt,
                               const struct node_append_item *item)
{
	const struct membership_member *self =
	    l->state.has_membership ? membership_find(&l->state.membership, l->config.node_id)
	                            : NULL;
	if (self == NULL) {
		reply_error(l, item->waiter, CARELOG_EDENIED,
		            "this node is not in the applied cluster configuration");
		return;
	}
	if (item->req.request_id.len == 0) {
		reply_error(l, item->waiter, CARELOG_EINVAL, "request_id is required");
		return;
	}
	uint8_t key[NODE_REQUEST_KEY_BYTES_MAX];
	size_t key_len = 0;
	if (node_request_key(self->org, strlen(self->org), item->req.request_id.ptr,
	                     item->req.request_id.len, key, &key_len) != CARELOG_OK) {
		reply_error(l, item->waiter, CARELOG_EINVAL, "request_id is longer than 64 bytes");
		return;
	}
	struct loop_proposal *p = proposal_find_key(l, key, key_len);
	if (p != NULL) {
		if (p->waiters_count == NODE_LOOP_WAITERS_PER_PROPOSAL_MAX) {
			reply_error(l, item->waiter, CARELOG_EBUSY,
			            "too many retries of this request id in flight");
			return;
		}
		p->waiters[p->waiters_count++] = item->waiter;
		return;
	}
	uint64_t first_index = 0;
	uint8_t first_id[JOURNAL_ID_BYTES];
	int rc = rt == NULL ? CARELOG_EIO
	                    : storage_index_request_get(rt, key, key_len, &first_index, first_id);
	if (rc == CARELOG_OK) {
		reply_committed(l, item->waiter, first_index, first_id, true);
		return;
	}
	if (rc != CARELOG_ENOTFOUND) {
		reply_error(l, item->waiter, rc, "cannot read the request index");
		return;
	}
	loop_propose_new(l, item, self, key, key_len);
}

/* --- one ready batch, one transaction --- */

static void answer_outcome(struct node_loop *l, const struct node_apply_outcome *o)
{
	struct loop_proposal *p = proposal_at(l, o->index);
	if (p == NULL) {
		return; /* nobody here waits (recovered entry, or waiters timed out: still fine) */
	}
	for (uint32_t i = 0; i < p->waiters_count; i++) {
		bool attached = i > 0;
		if (o->kind == NODE_APPLY_KIND_RECORD && o->status == NODE_APPLY_ACCEPTED) {
			reply_committed(l, p->waiters[i], o->answer_index, o->answer_id, attached);
		} else if (o->kind == NODE_APPLY_KIND_RECORD && o->status == NODE_APPLY_DUPLICATE) {
			reply_committed(l, p->waiters[i], o->answer_index, o->answer_id, true);
		} else {
			char what[NODE_LOOP_MESSAGE_BYTES_MAX];
			snprintf(what, sizeof(what), "entry %llu was rejected when applied: %s",
			         (unsigned long long)o->index,
			         o->reason != NULL ? o->reason : "not a record");
			reply_error(l, p->waiters[i],
			            o->reject_err != CARELOG_OK ? o->reject_err : CARELOG_EPROTO,
			            what);
		}
	}
	proposal_remove(l, p);
}

static void refuse_entries(struct node_loop *l, const struct consensus_ready *rd, int err)
{
	for (size_t i = 0; i < rd->entries_count; i++) {
		struct loop_proposal *p = proposal_at(l, rd->entries[i].index);
		if (p == NULL) {
			continue;
		}
		for (uint32_t w = 0; w < p->waiters_count; w++) {
			reply_error(l, p->waiters[w], err,
			            err == CARELOG_EMAPFULL
			                ? "storage map is full: raise [storage] map_size_bytes and "
			                  "restart; the append was not stored"
			                : "the append could not be stored");
		}
		proposal_remove(l, p);
	}
}

/* Runs one ready batch through one write transaction. Returns CARELOG_OK or a recoverable
 * error (the batch's appends were refused); fatal errors do not return. */
static int loop_run_ready(struct node_loop *l)
{
	struct consensus_ready rd;
	int rc = solo_ready(l->solo, &rd);
	CL_ASSERT(rc == CARELOG_OK);
	l->scratch = l->state;
	struct storage_txn *t = NULL;
	rc = storage_txn_begin_write(l->storage, &t);
	if (rc == CARELOG_OK) {
		rc = node_apply_entries(t, &l->scratch, rd.committed, rd.committed_count,
		                        l->outcomes);
	}
	if (rc == CARELOG_EVERSION || rc == CARELOG_EUNKNOWN ||
	    (rc == CARELOG_EPROTO && rd.committed_count > 0)) {
		storage_txn_abort(t);
		loop_fatal(l, rc); /* apply.stopped already names the index and the reason */
		return rc;
	}
	for (size_t i = 0; i < rd.entries_count && rc == CARELOG_OK; i++) {
		const struct consensus_entry *e = &rd.entries[i];
		l->persist[i] = (struct storage_entry){.index = e->index,
		                                       .term = e->term,
		                                       .type = e->type,
		                                       .data_len = e->data_len,
		                                       .data = e->data};
	}
	if (rc == CARELOG_OK && rd.entries_count > 0) {
		rc = storage_log_append(t, l->persist, rd.entries_count);
	}
	if (rc == CARELOG_OK && rd.hard_state_changed) {
		struct storage_hard_state hs = {.term = rd.hard_state.term,
		                                .vote = rd.hard_state.vote,
		                                .commit = rd.hard_state.commit};
		rc = storage_hard_state_put(t, &hs);
	}
	uint64_t sync_us = 0;
	if (rc == CARELOG_OK) {
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		rc = storage_txn_commit(t);
		t = NULL;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		sync_us = (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000L +
		                     (t1.tv_nsec - t0.tv_nsec) / 1000L);
	}
	if (rc != CARELOG_OK) {
		storage_txn_abort(t);
		if (rc == CARELOG_EMAPFULL || rc == CARELOG_ENOMEM || rc == CARELOG_EBUSY) {
			cl_log_error("loop.batch_refused", "err=%s entries=%zu",
			             carelog_errname(rc), rd.entries_count);
			refuse_entries(l, &rd, rc);
			solo_discard(l->solo, &rd);
			return rc;
		}
		loop_fatal(l, rc); /* CARELOG_EIO: a failed sync; anything else: unknown disk */
		return rc;
	}
	l->state = l->scratch;
	/* Group commit at work: entries per synced transaction (log_level = debug). */
	cl_log_debug("loop.batch", "persisted=%zu applied=%zu commit_index=%llu commit_us=%llu",
	             rd.entries_count, rd.committed_count, (unsigned long long)rd.hard_state.commit,
	             (unsigned long long)sync_us);
	solo_advance(l->solo, &rd);
	atomic_store(&l->commit_index, solo_commit_index(l->solo));
	atomic_store(&l->applied_index, l->state.applied_index);
	CL_ASSERT(l->state.applied_index == solo_applied_index(l->solo));
	if (l->config.applied != NULL) {
		l->config.applied(l->config.applied_ctx, l->state.applied_index,
		                  solo_commit_index(l->solo));
	}
	for (size_t i = 0; i < rd.committed_count; i++) {
		answer_outcome(l, &l->outcomes[i]);
	}
	return CARELOG_OK;
}

/* Takes up to a batch of queued items (mu held). */
static uint32_t queue_drain(struct node_loop *l)
{
	uint32_t n = 0;
	uint64_t bytes = 0;
	while (l->queue_count > 0 && n < l->config.batch_entries_max) {
		struct node_append_item *item = l->queue[l->queue_head];
		if (n > 0 && bytes + item->bytes_len > l->config.batch_bytes_max) {
			break;
		}
		bytes += item->bytes_len;
		l->batch[n++] = item;
		l->queue_head = (l->queue_head + 1) % l->config.queue_max;
		l->queue_count--;
	}
	return n;
}

/* Handles drained items and runs ready batches; returns a recoverable batch error. */
static int loop_process(struct node_loop *l, uint32_t n)
{
	if (n > 0) {
		struct storage_txn *rt = NULL;
		if (storage_txn_begin_read(l->storage, &rt) != CARELOG_OK) {
			rt = NULL; /* each append is then refused with the read error */
		}
		for (uint32_t i = 0; i < n; i++) {
			loop_handle_append(l, rt, l->batch[i]);
			node_append_item_free(l->batch[i]);
			l->batch[i] = NULL;
		}
		storage_txn_abort(rt);
	}
	/* Entries proposed now are persisted by this ready; applied by the next. */
	while (solo_has_ready(l->solo)) {
		int rc = loop_run_ready(l);
		if (rc != CARELOG_OK) {
			return rc;
		}
		pthread_mutex_lock(&l->mu);
		bool more_queued = l->queue_count > 0;
		pthread_mutex_unlock(&l->mu);
		if (more_queued) {
			break; /* take new appends into the next transaction (group commit) */
		}
	}
	return CARELOG_OK;
}

int node_loop_run_until_idle(struct node_loop *l)
{
	for (;;) {
		pthread_mutex_lock(&l->mu);
		uint32_t n = queue_drain(l);
		pthread_mutex_unlock(&l->mu);
		if (n == 0 && !solo_has_ready(l->solo)) {
			return CARELOG_OK;
		}
		int rc = loop_process(l, n);
		if (rc != CARELOG_OK) {
			return rc;
		}
	}
}

static void *loop_thread(void *arg)
{
	struct node_loop *l = arg;
	int last_rc = CARELOG_OK;
	for (;;) {
		pthread_mutex_lock(&l->mu);
		if (last_rc != CARELOG_OK && !l->stopping) {
			/* A refused batch (map full): committed entries wait to be applied; retry
			 * after a pause instead of spinning. New appends still wake us. */
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += LOOP_RETRY_PAUSE_S;
			pthread_cond_timedwait(&l->cond, &l->mu, &until);
		}
		while (l->queue_count == 0 && !solo_has_ready(l->solo) && !l->stopping) {
			pthread_cond_wait(&l->cond, &l->mu);
		}
		uint32_t n = queue_drain(l);
		bool done =
		    n == 0 && l->stopping && (!solo_has_ready(l->solo) || last_rc != CARELOG_OK);
		pthread_mutex_unlock(&l->mu);
		if (done) {
			return NULL;
		}
		last_rc = loop_process(l, n);
	}
}

/* Frees the seam and the buffers (not the mutex/condvar: create may fail before them). */
static void loop_free(struct node_loop *l)
{
	solo_destroy(l->solo);
	free(l->queue);
	free(l->batch);
	free(l->proposals);
	free(l->buckets);
	free(l->persist);
	free(l->outcomes);
	free(l->record_buf);
	free(l);
}

int node_loop_create(const struct node_loop_config *config, struct storage *s,
                     const struct node_apply_state *state, struct node_loop **out)
{
	if (config->queue_max == 0 || config->batch_entries_max == 0 ||
	    config->batch_bytes_max == 0 || config->reply == NULL || config->secret_key == NULL) {
		return CARELOG_EINVAL;
	}
	struct node_loop *l = calloc(1, sizeof(*l));
	if (l == NULL) {
		return CARELOG_ENOMEM;
	}
	l->config = *config;
	if (l->config.clock_ms == NULL) {
		l->config.clock_ms = node_clock_wall_ms;
	}
	l->storage = s;
	l->state = *state;
	/* One batch being persisted plus one being applied are held at once. */
	uint32_t held_max = 2 * config->batch_entries_max;
	l->proposals_cap = held_max;
	l->buckets_count = 2 * held_max;
	l->record_buf_cap =
	    config->request_bytes_max + JOURNAL_HEADER_BYTES_MAX + LOOP_RECORD_OVERHEAD_BYTES;
	struct solo_config sc = {
	    .node_id = config->node_id,
	    .entries_max = held_max,
	    /* A record is its request's body plus a signed header: bound both batches. */
	    .bytes_max = 2 * (config->batch_bytes_max + l->record_buf_cap +
	                      (uint64_t)config->batch_entries_max *
	                          (JOURNAL_HEADER_BYTES_MAX + LOOP_RECORD_OVERHEAD_BYTES)),
	};
	int rc = CARELOG_ENOMEM;
	l->queue = calloc(config->queue_max, sizeof(*l->queue));
	l->batch = calloc(config->batch_entries_max, sizeof(*l->batch));
	l->proposals = calloc(l->proposals_cap, sizeof(*l->proposals));
	l->buckets = calloc(l->buckets_count, sizeof(*l->buckets));
	l->persist = calloc(held_max, sizeof(*l->persist));
	l->outcomes = calloc(held_max, sizeof(*l->outcomes));
	l->record_buf = malloc(l->record_buf_cap);
	if (l->queue != NULL && l->batch != NULL && l->proposals != NULL && l->buckets != NULL &&
	    l->persist != NULL && l->outcomes != NULL && l->record_buf != NULL) {
		struct storage_txn *t = NULL;
		struct storage_hard_state hs;
		uint64_t last_index = 0, last_term = 0;
		rc = storage_txn_begin_read(s, &t);
		if (rc == CARELOG_OK) {
			rc = storage_hard_state_get(t, &hs);
		}
		if (rc == CARELOG_OK) {
			rc = storage_log_last(t, &last_index, &last_term);
		}
		storage_txn_abort(t);
		if (rc == CARELOG_OK) {
			struct consensus_hard_state chs = {
			    .term = hs.term, .vote = hs.vote, .commit = hs.commit};
			rc = solo_create(&sc, &chs, last_index, state->applied_index, &l->solo);
		}
		if (rc == CARELOG_OK) {
			atomic_store(&l->commit_index, hs.commit);
			atomic_store(&l->applied_index, state->applied_index);
		}
	}
	if (rc == CARELOG_OK &&
	    (pthread_mutex_init(&l->mu, NULL) != 0 || pthread_cond_init(&l->cond, NULL) != 0)) {
		rc = CARELOG_ENOMEM;
	}
	if (rc != CARELOG_OK) {
		loop_free(l);
		return rc;
	}
	*out = l;
	return CARELOG_OK;
}

int node_loop_start(struct node_loop *l)
{
	CL_ASSERT(!l->thread_running);
	if (pthread_create(&l->thread, NULL, loop_thread, l) != 0) {
		return CARELOG_ENOMEM;
	}
	l->thread_running = true;
	return CARELOG_OK;
}

void node_loop_stop(struct node_loop *l)
{
	pthread_mutex_lock(&l->mu);
	l->stopping = true;
	pthread_cond_signal(&l->cond);
	pthread_mutex_unlock(&l->mu);
	if (l->thread_running) {
		pthread_join(l->thread, NULL);
		l->thread_running = false;
	}
}

int node_loop_submit(struct node_loop *l, struct node_append_item *item)
{
	pthread_mutex_lock(&l->mu);
	int rc = CARELOG_OK;
	if (l->stopping) {
		rc = CARELOG_ECLOSED;
	} else if (l->queue_count == l->config.queue_max) {
		rc = CARELOG_EBUSY;
	} else {
		uint32_t tail = (l->queue_head + l->queue_count) % l->config.queue_max;
		l->queue[tail] = item;
		l->queue_count++;
		pthread_cond_signal(&l->cond);
	}
	pthread_mutex_unlock(&l->mu);
	return rc;
}

void node_loop_destroy(struct node_loop *l)
{
	if (l == NULL) {
		return;
	}
	node_loop_stop(l);
	/* Whatever is still queued (stop drains, so only after a fatal path) is answered. */
	while (l->queue_count > 0) {
		struct node_append_item *item = l->queue[l->queue_head];
		l->queue_head = (l->queue_head + 1) % l->config.queue_max;
		l->queue_count--;
		reply_error(l, item->waiter, CARELOG_ECLOSED, "node is stopping");
		node_append_item_free(item);
	}
	for (uint32_t i = 0; i < l->proposals_cap; i++) {
		struct loop_proposal *p = &l->proposals[i];
		for (uint32_t w = 0; p->used && w < p->waiters_count; w++) {
			reply_error(l, p->waiters[w], CARELOG_EPENDING,
			            "node stopped before the append was applied");
		}
	}
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->cond);
	loop_free(l);
}

uint64_t node_loop_applied_index(const struct node_loop *l)
{
	return atomic_load(&l->applied_index);
}

uint64_t node_loop_commit_index(const struct node_loop *l)
{
	return atomic_load(&l->commit_index);
}
