/* The node's event loop: drives the consensus core, signs, persists, applies, answers. */
#include "node/daemon/loop.h"

#include "carelog/errors.h"
#include "common/assert.h"
#include "common/crypto.h"
#include "common/log.h"
#include "node/daemon/raftlog.h"
#include "node/journal/policy.h"
#include "replication/wire.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum {
	LOOP_RECORD_OVERHEAD_BYTES = 256, /* record framing, signature, salt, stamp */
	LOOP_INBOUND_CONTROL_MAX = 4096,  /* queued control payloads (votes, acks, forwards) */
	LOOP_INBOUND_BULK_MAX = 64,       /* queued bulk payloads (appends with entries) */
	LOOP_INBOUND_PER_ROUND_MAX = 256, /* payloads handled between two ready batches */
	/* Appends taken into one write transaction: a follower syncs once for all of them. */
	LOOP_INBOUND_BULK_PER_ROUND_MAX = 32,
	LOOP_PROGRESS_PERIOD_MS = 1000, /* the leader's member table to everyone */
	LOOP_STOP_ROUNDS_MAX = 64,      /* ready batches run while stopping */
	LOOP_READS_MAX = 1024,          /* pending linearizable read points */
	LOOP_TICK_MS_DEFAULT = 100,
	LOOP_ELECTION_TICKS_DEFAULT = 10,
	LOOP_INFLIGHT_MSGS_DEFAULT = 32,
	LOOP_APPEND_BYTES_DEFAULT = 4 * 1024 * 1024,
	LOOP_CATCHUP_LOG_PERIOD_MS = 2000, /* a follower far behind reports its progress */
	LOOP_SWEEP_PERIOD_MS = 100,        /* expiry of forgotten requests */
	LOOP_MAP_RESERVE_BYTES_MIN = 16 * 1024 * 1024, /* map kept free for replicated writes */
	/* An encoded policy body from one request (its longest fields are 512-byte texts). */
	LOOP_POLICY_BODY_BYTES_MAX = 8192,
};

/* One in-flight request key: signed here (waiters) or forwarded to us (leader, no waiters). */
struct loop_proposal {
	bool used;
	uint64_t index; /* proposed index on the leader; 0 if forwarded */
	uint64_t deadline_ms;
	uint8_t key[NODE_REQUEST_KEY_BYTES_MAX];
	size_t key_len;
	uint32_t hash;
	struct loop_proposal *bucket_next;
	uint8_t *record; /* signed here and not proposed by us: kept to forward again */
	size_t record_len;
	uint32_t waiters_count;
	struct node_waiter waiters[NODE_LOOP_WAITERS_PER_PROPOSAL_MAX];
};

/* A waiter for a configuration entry (membership change), a read point or a transfer. */
struct loop_pending {
	bool used;
	uint8_t op; /* PROTO_OP_MEMBER, PROTO_OP_READ or PROTO_OP_TRANSFER */
	uint64_t index; /* MEMBER: the CONF entry; READ: the ctx; TRANSFER: the target */
	uint64_t deadline_ms;
	struct node_waiter waiter;
};

/* A record signed (or forwarded to us) this round, proposed with the others at the end of
 * the round: one append message per follower for all of them. */
struct loop_stage {
	uint8_t *record;
	size_t len;
	struct loop_proposal *p;
	uint64_t origin; /* the forwarding node (answered with FORWARD_RESULT); 0 = ours */
};

struct loop_inbound {
	uint64_t from;
	size_t len;
	uint8_t bytes[];
};

struct loop_ring {
	struct loop_inbound **items;
	uint32_t cap, head, count;
};

struct node_loop {
	struct node_loop_config config;
	struct storage *storage;
	struct consensus *core;
	struct consensus_allocator alloc;
	struct node_raftlog raftlog;
	struct node_apply_state state;   /* as committed */
	struct node_apply_state scratch; /* applied into during a transaction */

	/* Guarded by mu: the client queue, the inbound rings, stopping, the status copy. */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct node_append_item **queue;
	uint32_t queue_head, queue_count;
	struct loop_ring inbound_control, inbound_bulk;
	bool stopping;
	bool sleeping; /* the loop thread waits on cond: only then is a signal needed */
	uint64_t peer_drops; /* peer payloads dropped (queue full, undecodable, refused) */
	bool thread_running;
	pthread_t thread;
	struct node_loop_status status;

	/* Loop-thread only. */
	struct node_append_item **batch; /* drained items, capacity batch_entries_max */
	struct loop_inbound **inbound_batch;
	uint32_t inbound_batch_count;
	struct loop_proposal *proposals;
	uint32_t proposals_cap;
	uint32_t proposals_count;
	struct loop_proposal **buckets;
	uint32_t buckets_count;
	struct loop_pending *pendings; /* capacity LOOP_READS_MAX */
	struct loop_stage *stage;      /* capacity stage_cap */
	struct consensus_proposal *stage_items;
	uint32_t stage_cap, stage_count;
	uint64_t read_ctx_next;
	struct storage_entry *persist;      /* conversion buffer for storage_log_append */
	struct node_apply_outcome *outcomes; /* capacity CONSENSUS_READY_ENTRIES_MAX */
	uint8_t *record_buf;                 /* one encoded record */
	struct policy_body *policy_scratch;  /* a policy request's body (large: audit rows) */
	uint8_t *policy_buf;                 /* its encoding, LOOP_POLICY_BODY_BYTES_MAX */
	size_t record_buf_cap;
	uint8_t *wire_buf; /* one encoded peer payload */
	size_t wire_buf_cap;
	struct consensus_entry *wire_entries; /* decode scratch */
	uint64_t next_tick_ms;
	uint64_t last_progress_sent_ms;
	uint64_t progress_heard_ms;
	uint64_t leader_commit_heard;
	struct replication_wire_progress progress_heard; /* followers: the leader's table */
	bool has_progress_heard;
	uint64_t last_catchup_log_ms;
	uint64_t last_sweep_ms;
	uint64_t verified_signatures;
	uint64_t syncs;
	bool map_nearly_full; /* refuse new appends before a Raft write could fail */
	uint64_t map_used_bytes, map_size_bytes;
	uint64_t durable_term; /* term and vote as last synced */
	uint64_t durable_vote;

	_Atomic uint64_t applied_index;
	_Atomic uint64_t commit_index;
	_Atomic uint64_t known_commit_index;
};

uint64_t node_clock_wall_ms(void *ctx)
{
	(void)ctx;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct timespec node_deadline_after_ms(uint32_t ms)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	return until;
}

static uint64_t monotonic_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
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
	int rc = proto_request_decode(item->bytes, len, &item->req);
	if (rc == CARELOG_OK && item->req.op != PROTO_OP_APPEND &&
	    item->req.op != PROTO_OP_POLICY && item->req.op != PROTO_OP_READ &&
	    item->req.op != PROTO_OP_MEMBER && item->req.op != PROTO_OP_TRANSFER) {
		rc = CARELOG_EINVAL;
	}
	if (rc != CARELOG_OK) {
		free(item);
		return rc;
	}
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

static void reply_index(struct node_loop *l, struct node_waiter w, uint64_t index,
                        const uint8_t *id, bool duplicate)
{
	struct node_append_result r;
	memset(&r, 0, sizeof(r));
	r.err = CARELOG_OK;
	r.index = index;
	if (id != NULL) {
		memcpy(r.id, id, JOURNAL_ID_BYTES);
	}
	r.duplicate = duplicate;
	l->config.reply(l->config.reply_ctx, w, &r);
}

/* Names the leader (or says none is known) for a refusal on a non-leader. */
static void reply_not_leader(struct node_loop *l, struct node_waiter w, const char *what)
{
	struct consensus_status st;
	consensus_get_status(l->core, &st);
	char msg[NODE_LOOP_MESSAGE_BYTES_MAX];
	if (st.soft_state.leader != 0) {
		snprintf(msg, sizeof(msg), "%s: this node is not the leader; run it on node %llu",
		         what, (unsigned long long)st.soft_state.leader);
	} else {
		snprintf(msg, sizeof(msg), "%s: no leader is known (no quorum reachable?)", what);
	}
	reply_error(l, w, CARELOG_ENOTLEADER, msg);
}

static bool is_leader(const struct node_loop *l)
{
	struct consensus_status st;
	consensus_get_status(l->core, &st);
	return st.soft_state.role == CONSENSUS_ROLE_LEADER;
}

static uint64_t leader_of(const struct node_loop *l)
{
	struct consensus_status st;
	consensus_get_status(l->core, &st);
	return st.soft_state.leader;
}

/* --- peers --- */

/* Encodes and sends one wire message; drops it (Raft retransmits) when it cannot go. */
static void peer_send(struct node_loop *l, uint64_t to, const struct replication_wire_msg *m)
{
	if (l->config.send == NULL || to == 0 || to == l->config.node_id) {
		return;
	}
	size_t len = 0;
	int rc = replication_wire_encode(m, l->wire_buf, l->wire_buf_cap, &len);
	if (rc != CARELOG_OK) {
		cl_log_warn("peer.encode_failed", "to=%llu type=%u err=%s", (unsigned long long)to,
		            m->type, carelog_errname(rc));
		return;
	}
	uint8_t channel = NODE_LOOP_CHANNEL_CONTROL;
	if (m->type == REPLICATION_WIRE_RAFT && m->u.raft.entries_count > 0) {
		channel = NODE_LOOP_CHANNEL_BULK; /* votes and heartbeats never wait behind these */
	}
	(void)l->config.send(l->config.send_ctx, to, channel, l->wire_buf, len);
}

static void send_raft(struct node_loop *l, const struct consensus_message *msgs, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		struct replication_wire_msg m = {.type = REPLICATION_WIRE_RAFT};
		m.u.raft = msgs[i];
		peer_send(l, msgs[i].to, &m);
	}
}

/* --- in-flight proposals by request key --- */

static uint32_t key_hash(const uint8_t *key, size_t len)
{
	uint32_t h = 2166136261u; /* FNV-1a: keys are not attacker-chosen beyond one org's ids */
	for (size_t i = 0; i < len; i++) {
		h = (h ^ key[i]) * 16777619u;
	}
	return h;
}

static struct loop_proposal *proposal_find(struct node_loop *l, const uint8_t *key, size_t len)
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

/* A free slot with `key` inserted, or NULL when all proposals_cap slots are in flight. */
static struct loop_proposal *proposal_insert(struct node_loop *l, const uint8_t *key, size_t len)
{
	if (l->proposals_count == l->proposals_cap) {
		return NULL;
	}
	uint32_t start = key_hash(key, len) % l->proposals_cap;
	struct loop_proposal *p = NULL;
	for (uint32_t i = 0; i < l->proposals_cap; i++) {
		struct loop_proposal *q = &l->proposals[(start + i) % l->proposals_cap];
		if (!q->used) {
			p = q;
			break;
		}
	}
	CL_ASSERT(p != NULL); /* proposals_count < proposals_cap */
	memset(p, 0, sizeof(*p));
	p->used = true;
	memcpy(p->key, key, len);
	p->key_len = len;
	p->hash = key_hash(key, len);
	p->deadline_ms = monotonic_ms() + l->config.request_timeout_ms;
	struct loop_proposal **head = &l->buckets[p->hash % l->buckets_count];
	p->bucket_next = *head;
	*head = p;
	l->proposals_count++;
	return p;
}

static void proposal_remove(struct node_loop *l, struct loop_proposal *p)
{
	struct loop_proposal **link = &l->buckets[p->hash % l->buckets_count];
	while (*link != p) {
		CL_ASSERT(*link != NULL);
		link = &(*link)->bucket_next;
	}
	*link = p->bucket_next;
	free(p->record);
	p->record = NULL;
	p->used = false;
	p->bucket_next = NULL;
	CL_ASSERT(l->proposals_count > 0);
	l->proposals_count--;
}

static void proposal_fail(struct node_loop *l, struct loop_proposal *p, int err, const char *msg)
{
	for (uint32_t w = 0; w < p->waiters_count; w++) {
		reply_error(l, p->waiters[w], err, msg);
	}
	proposal_remove(l, p);
}

/* --- pending membership changes and read points --- */

static struct loop_pending *pending_add(struct node_loop *l, uint8_t op, uint64_t index,
                                        struct node_waiter w)
{
	for (uint32_t i = 0; i < LOOP_READS_MAX; i++) {
		struct loop_pending *p = &l->pendings[i];
		if (!p->used) {
			*p = (struct loop_pending){.used = true,
			                           .op = op,
			                           .index = index,
			                           .deadline_ms =
			                               monotonic_ms() + l->config.request_timeout_ms,
			                           .waiter = w};
			return p;
		}
	}
	return NULL;
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
	char unit[JOURNAL_UNIT_BYTES_MAX + 1];
	char status[JOURNAL_STATUS_BYTES_MAX + 1];
	char sensitivity[JOURNAL_SENSITIVITY_BYTES_MAX + 1];
	char request_id[JOURNAL_REQUEST_ID_BYTES_MAX + 1];
	char media_type[JOURNAL_MEDIA_TYPE_BYTES_MAX + 1];
};

struct loop_view_field {
	const struct proto_str *v;
	char *dst;
	size_t cap;
	const char *name;
};

/* Copies each view into its field; on one that does not fit returns its name. */
static const char *copy_fields(const struct loop_view_field *fields, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		if (!view_copy(fields[i].v, fields[i].dst, fields[i].cap)) {
			return fields[i].name;
		}
	}
	return NULL;
}

/* The author of an entry: the request's actor (req->actor), with the node's defaults for what
 * it leaves out (actor_default, actor_default_role, the node's unit). The organisation is never
 * the request's: it is the signing node's, from the applied configuration. */
static const char *actor_text(const struct node_loop *l, const struct proto_actor *actor,
                              struct loop_append_text *text)
{
	const struct loop_view_field fields[] = {
	    {&actor->id, text->author, sizeof(text->author), "actor"},
	    {&actor->role, text->role, sizeof(text->role), "actor role"},
	    {&actor->unit, text->unit, sizeof(text->unit), "actor unit"},
	};
	const char *bad = copy_fields(fields, CL_ARRAY_LEN(fields));
	if (bad != NULL) {
		return bad;
	}
	if (text->author[0] == '\0') {
		snprintf(text->author, sizeof(text->author), "%s", l->config.actor_default);
	}
	if (text->role[0] == '\0') {
		const char *role = l->config.actor_default_role;
		snprintf(text->role, sizeof(text->role), "%s",
		         role != NULL && role[0] != '\0' ? role : NODE_LOOP_ROLE_DEFAULT);
	}
	if (text->unit[0] == '\0' && l->config.unit != NULL) {
		snprintf(text->unit, sizeof(text->unit), "%s", l->config.unit);
	}
	return NULL;
}

/* Fills `text` from an append request; on a field that does not fit returns its name. */
static const char *append_text(const struct node_loop *l, const struct proto_request *req,
                               struct loop_append_text *text)
{
	const struct proto_append_req *a = &req->u.append;
	const struct loop_view_field fields[] = {
	    {&a->kind, text->kind, sizeof(text->kind), "kind"},
	    {&a->patient, text->patient, sizeof(text->patient), "patient"},
	    {&a->status, text->status, sizeof(text->status), "status"},
	    {&a->sensitivity, text->sensitivity, sizeof(text->sensitivity), "sensitivity"},
	    {&a->request_id, text->request_id, sizeof(text->request_id), "request_id"},
	    {&a->media_type, text->media_type, sizeof(text->media_type), "media_type"},
	};
	const char *bad = copy_fields(fields, CL_ARRAY_LEN(fields));
	if (bad == NULL) {
		bad = actor_text(l, &req->actor, text);
	}
	if (bad == NULL && text->media_type[0] == '\0' &&
	    policy_kind_of(text->kind) != POLICY_KIND_NONE) {
		/* A policy kind appended as such (the node's audit batches): its media type. */
		snprintf(text->media_type, sizeof(text->media_type), "%s", POLICY_MEDIA_TYPE);
	}
	return bad;
}

static uint64_t body_max_bytes(const struct node_loop *l)
{
	return l->state.membership.has_params ? l->state.membership.params.body_max_bytes
	                                      : MEMBERSHIP_BODY_MAX_BYTES_DEFAULT;
}

/* --- policy entries (PROTO_OP_POLICY): a policy body signed like an append of its kind --- */

/* The body's keys per kind, for a refusal that says what the rules are (node/journal/policy.h,
 * docs/entry-format.md section 10). */
static const char *policy_rules_text(enum policy_kind k)
{
	switch (k) {
	case POLICY_KIND_PATIENT:
		return "birth_date YYYY-MM-DD (a real calendar date)";
	case POLICY_KIND_CARE_RELATION:
		return "org 1-64 bytes, unit 0-64, from_ms, to_ms 0 or > from_ms, up to 6 distinct "
		       "shielded categories";
	case POLICY_KIND_BLOCK:
		return "exactly one of target_org / actor (a person), scope all|category|entry, "
		       "category for scope category, ref (the entry) for scope entry";
	case POLICY_KIND_WITHHOLD:
		return "ref (the entry), from patient|guardians, text (the reason) 1-256 bytes";
	case POLICY_KIND_PROXY_GRANT:
		return "actor (the proxy) 1-64 bytes, relation parent|chosen, level read|full, "
		       "from_ms, to_ms 0 or later";
	case POLICY_KIND_AMBULANCE:
		return "actor (the crew member) 1-64 bytes, from_ms, to_ms > from_ms";
	case POLICY_KIND_BTG_GRANT:
		return "reason_code 1-32 bytes, text (the reason) 1-512 bytes, hours 1-720";
	case POLICY_KIND_BTG_REVIEW:
		return "ref (the grant), outcome justified|unjustified, text 0-512 bytes";
	case POLICY_KIND_ERASURE:
		return "ref (the entry), text (the legal basis) 1-512 bytes";
	case POLICY_KIND_PARAMS:
		return "implicit_window_days 1-3650, btg_hours_max 1-720, ambulance_hours_max "
		       "1-168";
	case POLICY_KIND_CARE_RELATION_END:
	case POLICY_KIND_BLOCK_LIFT:
	case POLICY_KIND_WITHHOLD_LIFT:
	case POLICY_KIND_PROXY_REVOKE:
		return "ref (the entry it ends)";
	default:
		return "see docs/entry-format.md section 10";
	}
}

/* Kinds that act on an entry named by ref: their patient may be left out of the request and is
 * then the referenced entry's. */
static bool policy_kind_refers(enum policy_kind k)
{
	return k == POLICY_KIND_ERASURE || k == POLICY_KIND_WITHHOLD ||
	       k == POLICY_KIND_WITHHOLD_LIFT || k == POLICY_KIND_BLOCK_LIFT ||
	       k == POLICY_KIND_CARE_RELATION_END || k == POLICY_KIND_PROXY_REVOKE ||
	       k == POLICY_KIND_BTG_REVIEW;
}

/* The patient of the accepted entry `id` into `out` (cap bytes). On failure writes why. */
static int referenced_patient(struct storage_txn *rt, const uint8_t id[JOURNAL_ID_BYTES], char *out,
                              size_t cap, char *why, size_t why_len)
{
	char id_hex[2 * JOURNAL_ID_BYTES + 1];
	cl_hex_encode(id_hex, id, JOURNAL_ID_BYTES);
	uint64_t index = 0;
	uint8_t status = 0;
	int rc = rt == NULL ? CARELOG_EIO : storage_index_entry_get(rt, id, &index, &status);
	if (rc == CARELOG_ENOTFOUND || (rc == CARELOG_OK && status != NODE_APPLY_ACCEPTED)) {
		snprintf(why, why_len, "ref: no accepted entry with id %s on this node", id_hex);
		return CARELOG_ENOTFOUND;
	}
	struct storage_entry e;
	if (rc == CARELOG_OK) {
		rc = storage_log_get(rt, index, &e);
	}
	struct journal_record rec;
	if (rc == CARELOG_OK && journal_record_decode(e.data, e.data_len, &rec) != CARELOG_OK) {
		rc = CARELOG_ECORRUPT;
	}
	struct journal_header h;
	if (rc == CARELOG_OK &&
	    journal_header_decode(rec.header, rec.header_len, &h) != CARELOG_OK) {
		rc = CARELOG_ECORRUPT;
	}
	if (rc != CARELOG_OK) {
		snprintf(why, why_len, "ref: cannot read entry %s at index %llu (%s)", id_hex,
		         (unsigned long long)index, carelog_errname(rc));
		return rc;
	}
	snprintf(out, cap, "%s", h.patient);
	return CARELOG_OK;
}

/*
 * Builds the policy body of a PROTO_OP_POLICY request (struct proto_policy_req names the
 * fields of struct policy_body), encodes it into l->policy_buf and fills the header text:
 * media type POLICY_MEDIA_TYPE, sensitivity normal, the actor as author. The patient of a kind
 * acting on an entry may be left out (then the referenced entry's); region-wide kinds use
 * POLICY_REGION_PATIENT. On a refusal answers the waiter and returns false.
 */
static bool policy_prepare(struct node_loop *l, struct storage_txn *rt,
                           const struct node_append_item *item,
                           const struct membership_member *self, struct loop_append_text *text,
                           size_t *out_body_len)
{
	const struct proto_policy_req *p = &item->req.u.policy;
	struct policy_body *b = l->policy_scratch;
	memset(b, 0, sizeof(*b));
	char what[NODE_LOOP_MESSAGE_BYTES_MAX];
	const struct loop_view_field fields[] = {
	    {&p->kind, text->kind, sizeof(text->kind), "kind"},
	    {&p->patient, text->patient, sizeof(text->patient), "patient"},
	    {&p->request_id, text->request_id, sizeof(text->request_id), "request_id"},
	    {&p->org, b->org, sizeof(b->org), "org"},
	    {&p->unit, b->unit, sizeof(b->unit), "unit"},
	    {&p->actor, b->actor, sizeof(b->actor), "actor"},
	    {&p->target_org, b->target_org, sizeof(b->target_org), "target_org"},
	    {&p->word, b->word, sizeof(b->word), "word"},
	    {&p->level, b->level, sizeof(b->level), "level"},
	    {&p->category, b->category, sizeof(b->category), "category"},
	    {&p->reason_code, b->reason_code, sizeof(b->reason_code), "reason_code"},
	    {&p->text, b->text, sizeof(b->text), "text"},
	    {&p->birth_date, b->birth_date, sizeof(b->birth_date), "birth_date"},
	};
	const char *bad = copy_fields(fields, CL_ARRAY_LEN(fields));
	if (bad == NULL) {
		bad = actor_text(l, &item->req.actor, text);
	}
	if (bad == NULL && p->categories_count > POLICY_CATEGORIES_MAX) {
		bad = "categories";
	}
	for (uint32_t i = 0; bad == NULL && i < p->categories_count; i++) {
		if (!view_copy(&p->categories[i], b->categories[i], sizeof(b->categories[i]))) {
			bad = "categories";
		}
	}
	if (bad != NULL) {
		snprintf(what, sizeof(what), "%s is too long or contains NUL", bad);
		reply_error(l, item->waiter, CARELOG_EINVAL, what);
		return false;
	}
	b->kind = policy_kind_of(text->kind);
	if (b->kind == POLICY_KIND_NONE || b->kind == POLICY_KIND_AUDIT_BATCH) {
		int n = snprintf(what, sizeof(what), "%s '%s'; policy kinds:",
		                 b->kind == POLICY_KIND_NONE ? "not a policy kind"
		                                             : "written by the node itself",
		                 text->kind);
		for (int k = POLICY_KIND_PATIENT;
		     k < POLICY_KIND_AUDIT_BATCH && n > 0 && (size_t)n < sizeof(what); k++) {
			n += snprintf(what + n, sizeof(what) - (size_t)n, " %s",
			              policy_kind_name((enum policy_kind)k));
		}
		reply_error(l, item->waiter, CARELOG_EINVAL, what);
		return false;
	}
	b->categories_count = p->categories_count;
	b->has_ref = p->has_ref;
	memcpy(b->ref, p->ref, sizeof(b->ref));
	b->from_ms = p->from_ms;
	b->to_ms = p->to_ms;
	b->hours = p->hours;
	b->implicit_window_days = p->implicit_window_days;
	b->btg_hours_max = p->btg_hours_max;
	b->ambulance_hours_max = p->ambulance_hours_max;
	if (b->kind == POLICY_KIND_CARE_RELATION && b->org[0] == '\0') {
		snprintf(b->org, sizeof(b->org), "%s", self->org); /* the node's organisation */
	}
	if (b->kind == POLICY_KIND_PARAMS) {
		if (text->patient[0] != '\0' && strcmp(text->patient, POLICY_REGION_PATIENT) != 0) {
			reply_error(l, item->waiter, CARELOG_EINVAL,
			            "policy-params is region-wide: leave patient out");
			return false;
		}
		snprintf(text->patient, sizeof(text->patient), "%s", POLICY_REGION_PATIENT);
	} else if (text->patient[0] == '\0') {
		if (!policy_kind_refers(b->kind) || !b->has_ref) {
			snprintf(what, sizeof(what), "patient is required for a %s entry",
			         text->kind);
			reply_error(l, item->waiter, CARELOG_EINVAL, what);
			return false;
		}
		int rc = referenced_patient(rt, b->ref, text->patient, sizeof(text->patient), what,
		                            sizeof(what));
		if (rc != CARELOG_OK) {
			reply_error(l, item->waiter, rc, what);
			return false;
		}
	}
	int rc = policy_body_encode(b, l->policy_buf, LOOP_POLICY_BODY_BYTES_MAX, out_body_len);
	if (rc != CARELOG_OK) {
		snprintf(what, sizeof(what), "invalid %s entry (%s): %s", text->kind,
		         carelog_errname(rc), policy_rules_text(b->kind));
		reply_error(l, item->waiter, rc == CARELOG_ETOOBIG ? rc : CARELOG_EINVAL, what);
		return false;
	}
	snprintf(text->status, sizeof(text->status), "final");
	snprintf(text->sensitivity, sizeof(text->sensitivity), "normal");
	snprintf(text->media_type, sizeof(text->media_type), "%s", POLICY_MEDIA_TYPE);
	return true;
}

/* The journal input of an append or policy item (text and body views filled); false when the
 * waiter was answered with a refusal. */
static bool write_input(struct node_loop *l, struct storage_txn *rt,
                        const struct node_append_item *item, const struct membership_member *self,
                        struct loop_append_text *text, struct journal_append *in)
{
	memset(text, 0, sizeof(*text));
	memset(in, 0, sizeof(*in));
	if (item->req.op == PROTO_OP_POLICY) {
		size_t body_len = 0;
		if (!policy_prepare(l, rt, item, self, text, &body_len)) {
			return false;
		}
		in->body = l->policy_buf;
		in->body_len = body_len;
	} else {
		const struct proto_append_req *req = &item->req.u.append;
		const char *bad = append_text(l, &item->req, text);
		if (bad != NULL) {
			char what[NODE_LOOP_MESSAGE_BYTES_MAX];
			snprintf(what, sizeof(what), "%s is too long or contains NUL", bad);
			reply_error(l, item->waiter, CARELOG_EINVAL, what);
			return false;
		}
		in->clinical_time_ms = req->clinical_time_ms;
		in->has_corrects = req->has_corrects;
		if (req->has_corrects) {
			memcpy(in->corrects, req->corrects, sizeof(in->corrects));
		}
		in->body = (const uint8_t *)req->body.ptr;
		in->body_len = req->body.len;
	}
	in->kind = text->kind;
	in->patient = text->patient;
	in->author = text->author;
	in->role = text->role;
	in->unit = text->unit;
	in->status = text->status;
	in->sensitivity = text->sensitivity;
	in->request_id = text->request_id;
	in->media_type = text->media_type;
	return true;
}

/* Signs an append or policy item into l->record_buf (leader time = now); answers the waiter on
 * a refusal. */
static bool sign_record(struct node_loop *l, struct storage_txn *rt,
                        const struct node_append_item *item, const struct membership_member *self,
                        size_t *out_len)
{
	struct loop_append_text text;
	struct journal_append in;
	if (!write_input(l, rt, item, self, &text, &in)) {
		return false;
	}
	char what[NODE_LOOP_MESSAGE_BYTES_MAX];
	struct journal_signer signer = {
	    .node_id = l->config.node_id,
	    .org = self->org,
	    .secret_key = l->config.secret_key,
	};
	uint64_t body_max = body_max_bytes(l);
	if (in.body_len > body_max) {
		snprintf(what, sizeof(what),
		         "body is %zu bytes; the cluster's body_max_bytes is %llu", in.body_len,
		         (unsigned long long)body_max);
		reply_error(l, item->waiter, CARELOG_ETOOBIG, what);
		return false;
	}
	uint64_t now_ms = l->config.clock_ms(l->config.clock_ctx);
	struct journal_signed signed_entry;
	const char *reason = NULL;
	int rc = journal_sign(&in, &signer, now_ms, body_max, &signed_entry, &reason);
	if (rc != CARELOG_OK) {
		if (reason != NULL && strcmp(reason, "unknown kind") == 0) {
			/* Name the kind and the known ones: kinds are not patient data. */
			int n = snprintf(what, sizeof(what), "unknown kind '%s'; known:", text.kind);
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
		return false;
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
	if (journal_record_size(record.header_len, record.body_len) > l->record_buf_cap) {
		reply_error(l, item->waiter, CARELOG_ETOOBIG,
		            "record exceeds the node's request_bytes_max");
		return false;
	}
	rc = journal_record_encode(&record, l->record_buf, l->record_buf_cap, out_len);
	if (rc != CARELOG_OK) {
		reply_error(l, item->waiter, rc, "cannot encode the record");
		return false;
	}
	return true;
}

/* Re-stamps a record with the leader's time into l->record_buf (DESIGN: the leader stamps
 * each log entry with its time; the stamp is outside the author's signature). */
static int restamp_record(struct node_loop *l, const uint8_t *record, size_t len,
                          size_t *out_len)
{
	struct journal_record r;
	int rc = journal_record_decode(record, len, &r);
	if (rc != CARELOG_OK) {
		return rc;
	}
	r.leader_time_ms = l->config.clock_ms(l->config.clock_ctx);
	if (journal_record_size(r.header_len, r.body_len) > l->record_buf_cap) {
		return CARELOG_ETOOBIG;
	}
	return journal_record_encode(&r, l->record_buf, l->record_buf_cap, out_len);
}

static int propose_record(struct node_loop *l, const uint8_t *record, size_t len,
                          uint64_t *out_index)
{
	if (len > UINT32_MAX) {
		return CARELOG_ETOOBIG;
	}
	return consensus_propose(l->core, record, (uint32_t)len, out_index);
}

static const char *propose_error_text(int rc)
{
	switch (rc) {
	case CARELOG_EBUSY:
		return "too many appends in flight: retry with the same request id";
	case CARELOG_ECLOSED:
		return "leadership is being transferred: retry with the same request id";
	case CARELOG_ENOTLEADER:
		return "leadership changed: retry with the same request id";
	default:
		return "cannot propose";
	}
}

static void stage_flush(struct node_loop *l);

/* Stages a copy of `record` for proposal `p` (the batch is proposed by stage_flush). */
static int stage_record(struct node_loop *l, struct loop_proposal *p, const uint8_t *record,
                        size_t len, uint64_t origin)
{
	if (len > UINT32_MAX) {
		return CARELOG_ETOOBIG;
	}
	if (l->stage_count == l->stage_cap) {
		stage_flush(l);
	}
	uint8_t *copy = malloc(len);
	if (copy == NULL) {
		return CARELOG_ENOMEM;
	}
	memcpy(copy, record, len);
	l->stage[l->stage_count++] =
	    (struct loop_stage){.record = copy, .len = len, .p = p, .origin = origin};
	return CARELOG_OK;
}

/* Tells the node that forwarded the append with `key` what became of it. */
static void forward_result(struct node_loop *l, uint64_t to, const uint8_t *key, size_t key_len,
                           int err, uint64_t index)
{
	struct replication_wire_msg m = {.type = REPLICATION_WIRE_FORWARD_RESULT};
	m.u.forward_result.request_key = key;
	m.u.forward_result.request_key_len = (uint32_t)key_len;
	m.u.forward_result.err = err;
	m.u.forward_result.index = index;
	peer_send(l, to, &m);
}

/* Proposes everything staged this round in one batch (Raft thesis 10.2: batching). */
static void stage_flush(struct node_loop *l)
{
	if (l->stage_count == 0) {
		return;
	}
	for (uint32_t i = 0; i < l->stage_count; i++) {
		l->stage_items[i] = (struct consensus_proposal){.data = l->stage[i].record,
		                                                .data_len = (uint32_t)l->stage[i].len};
	}
	size_t proposed = 0;
	uint64_t first = 0;
	int rc = consensus_propose_batch(l->core, l->stage_items, l->stage_count, &proposed, &first);
	for (uint32_t i = 0; i < l->stage_count; i++) {
		struct loop_stage *st = &l->stage[i];
		int err = i < proposed ? CARELOG_OK : rc;
		uint64_t index = i < proposed ? first + i : 0;
		if (st->origin != 0) {
			forward_result(l, st->origin, st->p->key, st->p->key_len, err, index);
		}
		if (err == CARELOG_OK) {
			st->p->index = index;
		} else if (st->p->waiters_count > 0) {
			proposal_fail(l, st->p, err == CARELOG_ENOMEM ? err : CARELOG_EPENDING,
			              propose_error_text(err));
		} else {
			proposal_remove(l, st->p);
		}
		free(st->record);
	}
	l->stage_count = 0;
}

/* Forwards a proposal's record to the leader (a follower or learner). */
static void forward_to_leader(struct node_loop *l, const struct loop_proposal *p)
{
	struct replication_wire_msg m = {.type = REPLICATION_WIRE_FORWARD};
	m.u.forward.request_key = p->key;
	m.u.forward.request_key_len = (uint32_t)p->key_len;
	m.u.forward.record = p->record;
	m.u.forward.record_len = (uint32_t)p->record_len;
	peer_send(l, leader_of(l), &m);
}

/* Sends a signed record on its way again (a retry, a leader change): proposed here if this
 * node leads now, else forwarded to the leader it knows. */
static void proposal_resend(struct node_loop *l, struct loop_proposal *p)
{
	CL_ASSERT(p->record != NULL);
	if (!is_leader(l)) {
		if (leader_of(l) != 0) {
			forward_to_leader(l, p);
		}
		return;
	}
	size_t len = 0;
	int rc = restamp_record(l, p->record, p->record_len, &len);
	if (rc == CARELOG_OK) {
		rc = propose_record(l, l->record_buf, len, &p->index);
	}
	if (rc != CARELOG_OK) {
		proposal_fail(l, p, rc == CARELOG_ENOMEM ? rc : CARELOG_EPENDING,
		              propose_error_text(rc));
		return;
	}
	free(p->record); /* proposed by us now: a later leader change fails it for a re-sign */
	p->record = NULL;
	p->record_len = 0;
}

/* A request id already committed: its first entry's index and id, or that entry's refusal
 * (the same answer every retry gets). */
static void reply_committed(struct node_loop *l, struct storage_txn *rt, struct node_waiter w,
                            uint64_t first_index, const uint8_t first_id[JOURNAL_ID_BYTES])
{
	uint64_t index = 0;
	uint8_t status = 0;
	int rc = storage_index_entry_get(rt, first_id, &index, &status);
	if (rc == CARELOG_OK && status == NODE_APPLY_REFUSED) {
		char msg[NODE_LOOP_MESSAGE_BYTES_MAX];
		node_apply_refusal_text(rt, first_index, first_id, msg, sizeof(msg));
		reply_error(l, w, CARELOG_EDENIED, msg);
		return;
	}
	if (rc != CARELOG_OK && rc != CARELOG_ENOTFOUND) {
		reply_error(l, w, rc, "cannot read the entry index");
		return;
	}
	reply_index(l, w, first_index, first_id, true);
}

/* Exactly once, then sign and propose or forward (appends and policy entries alike). `rt`
 * reads committed state. */
static void handle_append(struct node_loop *l, struct storage_txn *rt,
                          const struct node_append_item *item)
{
	const struct membership_member *self =
	    l->state.has_membership ? membership_find(&l->state.membership, l->config.node_id)
	                            : NULL;
	if (self == NULL) {
		reply_error(l, item->waiter, CARELOG_EDENIED,
		            "this node is not in the applied cluster configuration (still catching "
		            "up?)");
		return;
	}
	const struct proto_str *request_id = item->req.op == PROTO_OP_POLICY
	                                         ? &item->req.u.policy.request_id
	                                         : &item->req.u.append.request_id;
	if (l->map_nearly_full) {
		char msg[NODE_LOOP_MESSAGE_BYTES_MAX];
		snprintf(msg, sizeof(msg),
		         "storage map nearly full (%llu of %llu bytes used): raise [storage] "
		         "map_size_bytes and restart; the append was not stored",
		         (unsigned long long)l->map_used_bytes, (unsigned long long)l->map_size_bytes);
		reply_error(l, item->waiter, CARELOG_EMAPFULL, msg);
		return;
	}
	if (request_id->len == 0) {
		reply_error(l, item->waiter, CARELOG_EINVAL, "request_id is required");
		return;
	}
	uint8_t key[NODE_REQUEST_KEY_BYTES_MAX];
	size_t key_len = 0;
	if (node_request_key(self->org, strlen(self->org), request_id->ptr, request_id->len, key,
	                     &key_len) != CARELOG_OK) {
		reply_error(l, item->waiter, CARELOG_EINVAL, "request_id is longer than 64 bytes");
		return;
	}
	struct loop_proposal *p = proposal_find(l, key, key_len);
	if (p != NULL) {
		if (p->waiters_count == NODE_LOOP_WAITERS_PER_PROPOSAL_MAX) {
			reply_error(l, item->waiter, CARELOG_EBUSY,
			            "too many retries of this request id in flight");
			return;
		}
		p->waiters[p->waiters_count++] = item->waiter;
		p->deadline_ms = monotonic_ms() + l->config.request_timeout_ms;
		if (p->record != NULL) {
			proposal_resend(l, p); /* a retry: the forward may have been lost */
		}
		return;
	}
	uint64_t first_index = 0;
	uint8_t first_id[JOURNAL_ID_BYTES];
	int rc = rt == NULL ? CARELOG_EIO
	                    : storage_index_request_get(rt, key, key_len, &first_index, first_id);
	if (rc == CARELOG_OK) {
		reply_committed(l, rt, item->waiter, first_index, first_id);
		return;
	}
	if (rc != CARELOG_ENOTFOUND) {
		reply_error(l, item->waiter, rc, "cannot read the request index");
		return;
	}
	bool leader = is_leader(l);
	if (!leader && leader_of(l) == 0) {
		reply_error(l, item->waiter, CARELOG_EPENDING,
		            "no leader is known (no quorum reachable?): not stored; retry with the "
		            "same request id");
		return;
	}
	size_t record_len = 0;
	if (!sign_record(l, rt, item, self, &record_len)) {
		return;
	}
	p = proposal_insert(l, key, key_len);
	if (p == NULL) {
		reply_error(l, item->waiter, CARELOG_EBUSY, "too many appends in flight: retry");
		return;
	}
	p->waiters[p->waiters_count++] = item->waiter;
	if (leader) {
		rc = stage_record(l, p, l->record_buf, record_len, 0);
		if (rc != CARELOG_OK) {
			proposal_fail(l, p, rc, "cannot stage the append");
		}
		return;
	}
	p->record = malloc(record_len);
	if (p->record == NULL) {
		proposal_fail(l, p, CARELOG_ENOMEM, "out of memory");
		return;
	}
	memcpy(p->record, l->record_buf, record_len);
	p->record_len = record_len;
	forward_to_leader(l, p);
}

/* The leader takes a record a follower or learner signed (answered at stage_flush). */
static void handle_forward(struct node_loop *l, uint64_t from,
                           const struct replication_wire_forward *f)
{
	if (f->request_key_len == 0 || f->request_key_len > NODE_REQUEST_KEY_BYTES_MAX) {
		return;
	}
	if (!is_leader(l)) {
		forward_result(l, from, f->request_key, f->request_key_len, CARELOG_ENOTLEADER, 0);
		return;
	}
	if (proposal_find(l, f->request_key, f->request_key_len) != NULL) {
		return; /* already proposed here: the origin learns by applying it */
	}
	size_t len = 0;
	int rc = restamp_record(l, f->record, f->record_len, &len);
	struct loop_proposal *p = NULL;
	if (rc == CARELOG_OK) {
		p = proposal_insert(l, f->request_key, f->request_key_len);
		rc = p == NULL ? CARELOG_EBUSY : CARELOG_OK;
	}
	if (rc == CARELOG_OK) {
		rc = stage_record(l, p, l->record_buf, len, from);
		if (rc != CARELOG_OK) {
			proposal_remove(l, p);
		}
	}
	if (rc != CARELOG_OK) {
		forward_result(l, from, f->request_key, f->request_key_len, rc, 0);
	}
}

/* A refused forward fails fast unless the refusal is "ask the new leader". */
static void handle_forward_result(struct node_loop *l, const struct replication_wire_forward_result *r)
{
	if (r->err == CARELOG_OK || r->request_key_len > NODE_REQUEST_KEY_BYTES_MAX) {
		return;
	}
	struct loop_proposal *p = proposal_find(l, r->request_key, r->request_key_len);
	if (p == NULL || p->record == NULL) {
		return;
	}
	if (r->err == CARELOG_ENOTLEADER && leader_of(l) != 0) {
		forward_to_leader(l, p);
		return;
	}
	char msg[NODE_LOOP_MESSAGE_BYTES_MAX];
	snprintf(msg, sizeof(msg), "the leader refused the append (%s): %s",
	         carelog_errname(r->err), propose_error_text(r->err));
	proposal_fail(l, p, r->err == CARELOG_ETOOBIG ? r->err : CARELOG_EPENDING, msg);
}

/* --- membership changes, transfers, read points --- */

static void handle_member(struct node_loop *l, const struct node_append_item *item)
{
	const struct proto_member_req *req = &item->req.u.member;
	if (!is_leader(l)) {
		reply_not_leader(l, item->waiter, "membership change");
		return;
	}
	struct membership *next = malloc(sizeof(*next));
	uint8_t *context = malloc(MEMBERSHIP_CONTEXT_BYTES_MAX);
	if (next == NULL || context == NULL) {
		reply_error(l, item->waiter, CARELOG_ENOMEM, "out of memory");
		goto out;
	}
	*next = l->state.membership;
	next->has_cluster_id = false; /* genesis only */
	struct consensus_conf_change cc = {.transition = CONSENSUS_CONF_TRANSITION_AUTO, .count = 1};
	cc.changes[0].node_id = req->id;
	char msg[NODE_LOOP_MESSAGE_BYTES_MAX];
	struct membership_member *m = NULL;
	for (uint32_t i = 0; i < next->count; i++) {
		if (next->members[i].id == req->id) {
			m = &next->members[i];
		}
	}
	if (req->action == PROTO_MEMBER_ADD_LEARNER) {
		bool used = m != NULL || req->id == 0;
		struct storage_txn *rt = NULL;
		if (!used && storage_txn_begin_read(l->storage, &rt) == CARELOG_OK) {
			if (node_apply_member_id_used(rt, req->id, &used) != CARELOG_OK) {
				used = false; /* unreadable: the membership check above still holds */
			}
			storage_txn_abort(rt);
		}
		if (used) {
			snprintf(msg, sizeof(msg),
			         "node %llu is or was a member: node ids are never reused (give the new "
			         "node a new id)",
			         (unsigned long long)req->id);
			reply_error(l, item->waiter, CARELOG_EEXIST, msg);
			goto out;
		}
		if (next->count == MEMBERSHIP_MEMBERS_MAX || !req->has_public_key ||
		    req->org.len == 0 || req->org.len > MEMBERSHIP_ORG_BYTES_MAX ||
		    req->address.len == 0 || req->address.len > MEMBERSHIP_ADDRESS_BYTES_MAX) {
			reply_error(l, item->waiter, CARELOG_EINVAL,
			            "add-learner needs id, org (1-64), address (1-128) and public key, "
			            "and room in the membership");
			goto out;
		}
		/* Keep members ascending by id. */
		uint32_t at = next->count;
		while (at > 0 && next->members[at - 1].id > req->id) {
			next->members[at] = next->members[at - 1];
			at--;
		}
		m = &next->members[at];
		memset(m, 0, sizeof(*m));
		m->id = req->id;
		memcpy(m->org, req->org.ptr, req->org.len);
		memcpy(m->address, req->address.ptr, req->address.len);
		memcpy(m->public_key, req->public_key, sizeof(m->public_key));
		m->voter = false;
		next->count++;
		cc.changes[0].op = CONSENSUS_CONF_ADD_LEARNER;
	} else if (m == NULL) {
		snprintf(msg, sizeof(msg), "node %llu is not a member", (unsigned long long)req->id);
		reply_error(l, item->waiter, CARELOG_ENOTFOUND, msg);
		goto out;
	} else if (req->action == PROTO_MEMBER_PROMOTE) {
		if (m->voter) {
			snprintf(msg, sizeof(msg), "node %llu is already a voter",
			         (unsigned long long)req->id);
			reply_error(l, item->waiter, CARELOG_EINVAL, msg);
			goto out;
		}
		m->voter = true;
		cc.changes[0].op = CONSENSUS_CONF_ADD_VOTER;
	} else if (req->action == PROTO_MEMBER_REMOVE) {
		uint32_t at = (uint32_t)(m - next->members);
		memmove(&next->members[at], &next->members[at + 1],
		        (next->count - at - 1) * sizeof(next->members[0]));
		next->count--;
		cc.changes[0].op = CONSENSUS_CONF_REMOVE;
	} else {
		reply_error(l, item->waiter, CARELOG_EINVAL, "unknown membership action");
		goto out;
	}
	const char *why = NULL;
	size_t context_len = 0;
	int rc = membership_check(next, &why);
	if (rc == CARELOG_OK) {
		rc = membership_encode(next, context, MEMBERSHIP_CONTEXT_BYTES_MAX, &context_len);
	}
	if (rc != CARELOG_OK) {
		snprintf(msg, sizeof(msg), "the new membership is invalid: %s",
		         why != NULL ? why : carelog_strerror(rc));
		reply_error(l, item->waiter, CARELOG_EINVAL, msg);
		goto out;
	}
	uint64_t index = 0;
	rc = consensus_propose_conf_change(l->core, &cc, context, (uint32_t)context_len, &index);
	if (rc != CARELOG_OK) {
		snprintf(msg, sizeof(msg), "%s",
		         rc == CARELOG_EBUSY    ? "an earlier membership change is not applied yet: retry"
		         : rc == CARELOG_EINVAL ? "the change would leave no valid configuration (e.g. "
		                                  "removing the last voter)"
		                                : propose_error_text(rc));
		reply_error(l, item->waiter, rc, msg);
		goto out;
	}
	if (pending_add(l, PROTO_OP_MEMBER, index, item->waiter) == NULL) {
		reply_index(l, item->waiter, index, NULL, false); /* proposed; not waited for */
	}
	cl_log_info("member.proposed", "action=%u node=%llu index=%llu", req->action,
	            (unsigned long long)req->id, (unsigned long long)index);
out:
	free(next);
	free(context);
}

static void answer_transfer(struct node_loop *l, struct node_waiter w, uint64_t leader)
{
	struct node_append_result r;
	memset(&r, 0, sizeof(r));
	r.leader_id = leader;
	l->config.reply(l->config.reply_ctx, w, &r);
}

/* Transfers answer once the target leads (as far as this node has heard). */
static void answer_transfers(struct node_loop *l)
{
	uint64_t leader = leader_of(l);
	for (uint32_t i = 0; leader != 0 && i < LOOP_READS_MAX; i++) {
		struct loop_pending *p = &l->pendings[i];
		if (p->used && p->op == PROTO_OP_TRANSFER && p->index == leader) {
			p->used = false;
			answer_transfer(l, p->waiter, leader);
		}
	}
}

static void handle_transfer(struct node_loop *l, const struct node_append_item *item)
{
	uint64_t to = item->req.u.transfer.to;
	if (!is_leader(l)) {
		reply_not_leader(l, item->waiter, "transfer-leader");
		return;
	}
	int rc = consensus_transfer_leader(l->core, to);
	if (rc != CARELOG_OK) {
		char msg[NODE_LOOP_MESSAGE_BYTES_MAX];
		snprintf(msg, sizeof(msg), "cannot transfer leadership to node %llu: %s",
		         (unsigned long long)to,
		         rc == CARELOG_ENOTFOUND ? "not a member"
		         : rc == CARELOG_EINVAL  ? "a learner cannot lead (promote it first)"
		                                 : carelog_strerror(rc));
		reply_error(l, item->waiter, rc, msg);
		return;
	}
	cl_log_info("leader.transfer", "to=%llu", (unsigned long long)to);
	if (to == l->config.node_id) {
		answer_transfer(l, item->waiter, to);
	} else if (pending_add(l, PROTO_OP_TRANSFER, to, item->waiter) == NULL) {
		reply_error(l, item->waiter, CARELOG_EBUSY, "too many requests waiting");
	}
}

static void handle_read_index(struct node_loop *l, const struct node_append_item *item)
{
	uint64_t ctx = ++l->read_ctx_next;
	struct loop_pending *p = pending_add(l, PROTO_OP_READ, ctx, item->waiter);
	if (p == NULL) {
		reply_error(l, item->waiter, CARELOG_EBUSY, "too many linearizable reads waiting");
		return;
	}
	int rc = consensus_read_index(l->core, ctx);
	if (rc != CARELOG_OK) {
		p->used = false;
		reply_error(l, item->waiter, rc == CARELOG_ENOTLEADER ? CARELOG_ENOTLEADER : rc,
		            rc == CARELOG_ENOTLEADER
		                ? "no leader is known: a linearizable read is not possible now"
		                : "too many linearizable reads waiting at the leader");
	}
}

static void handle_item(struct node_loop *l, struct storage_txn *rt,
                        const struct node_append_item *item)
{
	switch (item->req.op) {
	case PROTO_OP_APPEND:
	case PROTO_OP_POLICY:
		handle_append(l, rt, item);
		break;
	case PROTO_OP_READ:
		handle_read_index(l, item);
		break;
	case PROTO_OP_MEMBER:
		handle_member(l, item);
		break;
	case PROTO_OP_TRANSFER:
		handle_transfer(l, item);
		break;
	default:
		reply_error(l, item->waiter, CARELOG_EINVAL, "not an operation of the loop");
		break;
	}
}

/* --- peer payloads --- */

static void handle_progress(struct node_loop *l, uint64_t from,
                            const struct replication_wire_progress *p)
{
	if (from != leader_of(l)) {
		return; /* only the leader we follow speaks for the members */
	}
	l->progress_heard = *p;
	l->has_progress_heard = true;
	l->progress_heard_ms = monotonic_ms();
	if (p->commit > l->leader_commit_heard) {
		l->leader_commit_heard = p->commit;
	}
}

/* Counts a dropped peer payload and logs it: at warn for the 1st, 2nd, 4th, 8th... (the count
 * carries the total), else at debug. Raft retransmits what matters. */
static void peer_drop(struct node_loop *l, uint64_t from, const char *reason, const char *detail)
{
	pthread_mutex_lock(&l->mu);
	uint64_t n = ++l->peer_drops;
	pthread_mutex_unlock(&l->mu);
	enum cl_log_level level = (n & (n - 1)) == 0 ? CL_LOG_WARN : CL_LOG_DEBUG;
	cl_log(level, "peer.dropped", "from=%llu reason=%s count=%llu detail=\"%s\"",
	       (unsigned long long)from, reason, (unsigned long long)n, detail);
}

static void handle_inbound(struct node_loop *l, const struct loop_inbound *in)
{
	struct replication_wire_msg m;
	char why[160];
	int rc = replication_wire_decode(in->bytes, in->len, l->wire_entries,
	                                 CONSENSUS_APPEND_ENTRIES_MAX, &m, why, sizeof(why));
	if (rc != CARELOG_OK) {
		peer_drop(l, in->from, carelog_errname(rc), why); /* names field and offset only */
		return;
	}
	switch (m.type) {
	case REPLICATION_WIRE_RAFT:
		if (m.u.raft.from != in->from || m.u.raft.to != l->config.node_id) {
			peer_drop(l, in->from, "misaddressed", "a peer speaks only for itself");
			return;
		}
		if (m.u.raft.type == CONSENSUS_MSG_APPEND && m.u.raft.commit > l->leader_commit_heard) {
			l->leader_commit_heard = m.u.raft.commit;
		}
		rc = consensus_step(l->core, &m.u.raft);
		if (rc != CARELOG_OK && rc != CARELOG_ENOMEM) {
			peer_drop(l, in->from, carelog_errname(rc), "refused by the consensus core");
			if (rc == CARELOG_EIO || rc == CARELOG_ECORRUPT) {
				loop_fatal(l, rc);
			}
		}
		break;
	case REPLICATION_WIRE_FORWARD:
		handle_forward(l, in->from, &m.u.forward);
		break;
	case REPLICATION_WIRE_FORWARD_RESULT:
		handle_forward_result(l, &m.u.forward_result);
		break;
	case REPLICATION_WIRE_PROGRESS:
		handle_progress(l, in->from, &m.u.progress);
		break;
	default:
		peer_drop(l, in->from, "unknown_type", replication_wire_type_name(m.type));
		break;
	}
}

static void ring_push(struct loop_ring *r, struct loop_inbound *in)
{
	r->items[(r->head + r->count) % r->cap] = in;
	r->count++;
}

static struct loop_inbound *ring_pop(struct loop_ring *r)
{
	struct loop_inbound *in = r->items[r->head];
	r->head = (r->head + 1) % r->cap;
	r->count--;
	return in;
}

void node_loop_receive(struct node_loop *l, uint64_t from, uint8_t channel, const uint8_t *payload,
                       size_t len)
{
	struct loop_inbound *in = malloc(sizeof(*in) + len);
	pthread_mutex_lock(&l->mu);
	struct loop_ring *r = channel == NODE_LOOP_CHANNEL_BULK ? &l->inbound_bulk
	                                                        : &l->inbound_control;
	if (in == NULL || r->count == r->cap || l->stopping) {
		bool stopping = l->stopping;
		const char *reason = in == NULL ? "ENOMEM" : "queue_full";
		pthread_mutex_unlock(&l->mu);
		free(in);
		if (!stopping) {
			peer_drop(l, from, reason,
			          channel == NODE_LOOP_CHANNEL_BULK ? "bulk" : "control");
		}
		return;
	}
	in->from = from;
	in->len = len;
	memcpy(in->bytes, payload, len);
	ring_push(r, in);
	if (l->sleeping) {
		pthread_cond_signal(&l->cond); /* a busy loop drains the rings before it sleeps */
	}
	pthread_mutex_unlock(&l->mu);
}

/* --- one ready batch, one transaction --- */

static void answer_outcome(struct node_loop *l, const struct node_apply_outcome *o)
{
	if (o->kind != NODE_APPLY_KIND_RECORD || o->request_key_len == 0) {
		return; /* a rejected record: its waiter (if any) is told "pending" at the timeout */
	}
	struct loop_proposal *p = proposal_find(l, o->request_key, o->request_key_len);
	if (p == NULL) {
		return; /* nobody here waits (another node's entry, a recovered one, timed out) */
	}
	if (o->reject_err == CARELOG_EDENIED) {
		/* Refused at apply (or a copy of a refused request): every waiter hears why. */
		proposal_fail(l, p, CARELOG_EDENIED, o->refused_reason);
		return;
	}
	for (uint32_t i = 0; i < p->waiters_count; i++) {
		bool duplicate = i > 0 || o->status == NODE_APPLY_DUPLICATE;
		reply_index(l, p->waiters[i], o->answer_index, o->answer_id, duplicate);
	}
	proposal_remove(l, p);
}

static void answer_conf_applied(struct node_loop *l, uint64_t index)
{
	for (uint32_t i = 0; i < LOOP_READS_MAX; i++) {
		struct loop_pending *p = &l->pendings[i];
		if (p->used && p->op == PROTO_OP_MEMBER && p->index == index) {
			p->used = false;
			reply_index(l, p->waiter, index, NULL, false);
		}
	}
}

static void answer_read_states(struct node_loop *l, const struct consensus_ready *rd)
{
	for (size_t r = 0; r < rd->read_states_count; r++) {
		for (uint32_t i = 0; i < LOOP_READS_MAX; i++) {
			struct loop_pending *p = &l->pendings[i];
			if (p->used && p->op == PROTO_OP_READ && p->index == rd->read_states[r].ctx) {
				p->used = false;
				reply_index(l, p->waiter, rd->read_states[r].index, NULL, false);
			}
		}
	}
}

/* Applies committed CONF entries to the core (their membership is already stored). */
static void apply_conf_changes(struct node_loop *l, const struct consensus_ready *rd)
{
	bool changed = false;
	for (size_t i = 0; i < rd->committed_count; i++) {
		const struct consensus_entry *e = &rd->committed[i];
		if (e->type != CONSENSUS_ENTRY_CONF) {
			continue;
		}
		struct consensus_conf_change cc;
		const uint8_t *context = NULL;
		uint32_t context_len = 0;
		struct consensus_conf_state cs;
		int rc = consensus_conf_decode(e->data, e->data_len, &cc, &context, &context_len);
		if (rc == CARELOG_OK) {
			rc = consensus_apply_conf_change(l->core, &cc, &cs);
		}
		if (rc != CARELOG_OK) {
			/* Every node judges alike: the configuration stays as it was. */
			cl_log_warn("conf.refused", "index=%llu err=%s", (unsigned long long)e->index,
			            carelog_errname(rc));
		} else {
			cl_log_info("conf.applied", "index=%llu voters=%u learners=%u joint=%s",
			            (unsigned long long)e->index, cs.voters_count, cs.learners_count,
			            cs.voters_outgoing_count > 0 ? "yes" : "no");
		}
		changed = true;
	}
	if (changed && l->config.members != NULL && l->state.has_membership) {
		l->config.members(l->config.members_ctx, &l->state.membership);
	}
}

static void publish_status(struct node_loop *l)
{
	struct consensus_status cst;
	consensus_get_status(l->core, &cst);
	uint64_t now = monotonic_ms();
	pthread_mutex_lock(&l->mu);
	struct node_loop_status *s = &l->status;
	s->term = cst.hard_state.term;
	s->leader_id = cst.soft_state.leader;
	s->role = cst.soft_state.role;
	s->commit_index = cst.hard_state.commit;
	s->known_commit_index = l->leader_commit_heard > cst.hard_state.commit
	                            ? l->leader_commit_heard
	                            : cst.hard_state.commit;
	s->applied_index = l->state.applied_index;
	s->last_index = l->raftlog.last_index;
	s->learner = false;
	const struct membership_member *self =
	    l->state.has_membership ? membership_find(&l->state.membership, l->config.node_id)
	                            : NULL;
	if (self != NULL && !self->voter) {
		s->learner = true;
	}
	atomic_store(&l->known_commit_index, s->known_commit_index);
	s->verified_signatures = l->verified_signatures;
	s->syncs = l->syncs;
	s->members_count = 0;
	if (cst.soft_state.role == CONSENSUS_ROLE_LEADER) {
		s->progress_age_ms = 0;
		for (uint32_t i = 0; i < cst.progress_count && i < NODE_LOOP_MEMBERS_MAX; i++) {
			s->members[i].id = cst.progress[i].id;
			s->members[i].has_match = true;
			s->members[i].match_index = cst.progress[i].id == l->config.node_id
			                                ? l->raftlog.last_index
			                                : cst.progress[i].match;
			s->members_count++;
		}
	} else if (l->has_progress_heard) {
		s->progress_age_ms = now - l->progress_heard_ms;
		for (uint32_t i = 0; i < l->progress_heard.members_count && i < NODE_LOOP_MEMBERS_MAX;
		     i++) {
			s->members[i].id = l->progress_heard.members[i].id;
			s->members[i].has_match = true;
			s->members[i].match_index = l->progress_heard.members[i].match;
			s->members_count++;
		}
	}
	pthread_mutex_unlock(&l->mu);
}

/* Runs one ready batch through one write transaction; failures to persist are fatal. */
static int loop_run_ready(struct node_loop *l)
{
	struct consensus_ready rd;
	int rc = consensus_ready(l->core, &rd);
	if (rc != CARELOG_OK) {
		cl_log_error("loop.ready_failed", "err=%s", carelog_errname(rc));
		if (rc == CARELOG_EIO || rc == CARELOG_ECORRUPT) {
			loop_fatal(l, rc);
		}
		return rc;
	}
	/* A leader's appends may leave before its own write (Raft thesis 10.2.1). */
	send_raft(l, rd.messages_early, rd.messages_early_count);
	l->scratch = l->state;
	bool write = rd.entries_count > 0 || rd.hard_state_changed || rd.committed_count > 0;
	struct storage_txn *t = NULL;
	if (write) {
		CL_ASSERT(rd.committed_count <= CONSENSUS_READY_ENTRIES_MAX);
		rc = storage_txn_begin_write(l->storage, &t);
		/* New entries go into the log before anything is applied: a follower may be told
		 * an entry is committed in the very batch that brings it, and applying reads the
		 * log (the entry a correction, an erasure or a lift refers to), and an erasure
		 * rewrites an earlier record, which a later append of it must not restore. */
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
		if (rc == CARELOG_OK) {
			struct consensus_hard_state hs = rd.hard_state;
			struct storage_hard_state shs = {
			    .term = hs.term, .vote = hs.vote, .commit = hs.commit};
			rc = storage_hard_state_put(t, &shs);
		}
		if (rc == CARELOG_OK) {
			rc = node_apply_entries(t, &l->scratch, rd.committed, rd.committed_count,
			                        l->outcomes);
			if (rc == CARELOG_EVERSION || rc == CARELOG_EUNKNOWN ||
			    (rc == CARELOG_EPROTO && rd.committed_count > 0)) {
				storage_txn_abort(t);
				loop_fatal(l,
				           rc); /* apply.stopped names the index and the reason */
				return rc;
			}
		}
		uint64_t commit_start_us = 0;
		/* Entries, term and vote must be durable before anything that depends on them
		 * leaves (Raft's persistence rule). Applying committed entries and a newer commit
		 * index can be redone from the durable log after a crash: their meta page goes
		 * without a sync of its own (the next synced commit covers it). */
		bool redoable = rd.entries_count == 0 && rd.hard_state.term == l->durable_term &&
		                rd.hard_state.vote == l->durable_vote;
		if (rc == CARELOG_OK) {
			commit_start_us = monotonic_us();
			rc = redoable ? storage_txn_commit_redoable(t) : storage_txn_commit(t);
			t = NULL;
		}
		if (rc != CARELOG_OK) {
			storage_txn_abort(t);
			if (rc == CARELOG_EMAPFULL) {
				cl_log(CL_LOG_FATAL, "storage.map_full",
				       "remedy=\"raise [storage] map_size_bytes and restart\"");
			}
			loop_fatal(l, rc); /* a Raft promise cannot be taken back: stop */
			return rc;
		}
		l->syncs++;
		l->durable_term = rd.hard_state.term;
		l->durable_vote = rd.hard_state.vote;
		/* Group commit at work: entries per synced transaction (log_level = debug). */
		cl_log_debug("loop.batch",
		             "persisted=%zu applied=%zu early=%zu after=%zu commit_index=%llu "
		             "commit_us=%llu",
		             rd.entries_count, rd.committed_count, rd.messages_early_count,
		             rd.messages_count, (unsigned long long)rd.hard_state.commit,
		             (unsigned long long)(monotonic_us() - commit_start_us));
		if (rd.entries_count > 0) {
			l->raftlog.last_index = rd.entries[rd.entries_count - 1].index;
		}
	}
	l->state = l->scratch;
	for (size_t i = 0; i < rd.committed_count; i++) {
		if (l->outcomes[i].signature_verified) {
			l->verified_signatures++;
		}
	}
	apply_conf_changes(l, &rd);
	send_raft(l, rd.messages, rd.messages_count);
	answer_read_states(l, &rd);
	consensus_advance(l->core, &rd);
	struct consensus_status cst;
	consensus_get_status(l->core, &cst);
	atomic_store(&l->commit_index, cst.hard_state.commit);
	atomic_store(&l->applied_index, l->state.applied_index);
	if (l->config.applied != NULL && rd.committed_count > 0) {
		uint64_t known = l->leader_commit_heard > cst.hard_state.commit ? l->leader_commit_heard
		                                                                : cst.hard_state.commit;
		l->config.applied(l->config.applied_ctx, l->state.applied_index, known);
	}
	for (size_t i = 0; i < rd.committed_count; i++) {
		answer_outcome(l, &l->outcomes[i]);
		if (rd.committed[i].type == CONSENSUS_ENTRY_CONF) {
			answer_conf_applied(l, rd.committed[i].index);
		}
	}
	return CARELOG_OK;
}

/* --- housekeeping on the loop thread --- */

static void broadcast_progress(struct node_loop *l, uint64_t now)
{
	if (now - l->last_progress_sent_ms < LOOP_PROGRESS_PERIOD_MS || !is_leader(l) ||
	    l->config.send == NULL) {
		return;
	}
	l->last_progress_sent_ms = now;
	struct consensus_status cst;
	consensus_get_status(l->core, &cst);
	struct replication_wire_msg m = {.type = REPLICATION_WIRE_PROGRESS};
	struct replication_wire_progress *p = &m.u.progress;
	p->term = cst.hard_state.term;
	p->leader = l->config.node_id;
	p->commit = cst.hard_state.commit;
	for (uint32_t i = 0; i < cst.progress_count && i < REPLICATION_WIRE_MEMBERS_MAX; i++) {
		p->members[i].id = cst.progress[i].id;
		p->members[i].match = cst.progress[i].id == l->config.node_id ? l->raftlog.last_index
		                                                              : cst.progress[i].match;
		p->members[i].voter = cst.progress[i].voter;
		p->members_count++;
	}
	for (uint32_t i = 0; i < cst.progress_count; i++) {
		peer_send(l, cst.progress[i].id, &m);
	}
}

/* Forgets requests whose clients were told "pending" by now; forwards again after a leader
 * change. */
static void sweep(struct node_loop *l, uint64_t now, bool leader_changed)
{
	if (!leader_changed && now - l->last_sweep_ms < LOOP_SWEEP_PERIOD_MS) {
		return;
	}
	l->last_sweep_ms = now;
	for (uint32_t i = 0; i < l->proposals_cap; i++) {
		struct loop_proposal *p = &l->proposals[i];
		if (!p->used) {
			continue;
		}
		if (now >= p->deadline_ms) {
			proposal_fail(l, p, CARELOG_EPENDING,
			              "not committed in time: the outcome is pending; retry with the "
			              "same request id");
		} else if (leader_changed && p->record == NULL && !is_leader(l)) {
			/* Proposed while we led: it may still commit, or be overwritten. A retry
			 * signs again and forwards; applying two copies keeps the first. */
			proposal_fail(l, p, CARELOG_EPENDING,
			              "leadership changed before the append committed: the outcome is "
			              "pending; retry with the same request id");
		} else if (leader_changed && p->record != NULL) {
			proposal_resend(l, p);
		}
	}
	for (uint32_t i = 0; i < LOOP_READS_MAX; i++) {
		struct loop_pending *p = &l->pendings[i];
		if (p->used && now >= p->deadline_ms) {
			p->used = false;
			if (p->op == PROTO_OP_MEMBER) {
				reply_error(l, p->waiter, CARELOG_EPENDING,
				            "the membership change is not known to be committed yet: "
				            "check `status` before trying again");
			} else {
				reply_error(l, p->waiter, CARELOG_ETIMEDOUT,
				            p->op == PROTO_OP_READ
				                ? "no read point from the leader in time"
				                : "the new leader was not elected in time");
			}
		}
	}
}

static void log_catchup(struct node_loop *l, uint64_t now)
{
	if (now - l->last_catchup_log_ms < LOOP_CATCHUP_LOG_PERIOD_MS) {
		return;
	}
	uint64_t known = l->leader_commit_heard;
	if (known > l->state.applied_index + 1000) {
		l->last_catchup_log_ms = now;
		cl_log_info("catchup.progress", "applied_index=%llu leader_commit=%llu",
		            (unsigned long long)l->state.applied_index, (unsigned long long)known);
	}
}

/* --- the thread --- */

/* Takes up to a batch of queued items and inbound payloads (mu held). */
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
	/* Control before bulk: votes and heartbeats never wait behind catch-up. */
	l->inbound_batch_count = 0;
	while (l->inbound_control.count > 0 && l->inbound_batch_count < LOOP_INBOUND_PER_ROUND_MAX) {
		l->inbound_batch[l->inbound_batch_count++] = ring_pop(&l->inbound_control);
	}
	uint32_t bulk = 0;
	while (l->inbound_bulk.count > 0 && bulk < LOOP_INBOUND_BULK_PER_ROUND_MAX &&
	       l->inbound_batch_count < LOOP_INBOUND_PER_ROUND_MAX) {
		l->inbound_batch[l->inbound_batch_count++] = ring_pop(&l->inbound_bulk);
		bulk++;
	}
	return n;
}

static bool has_input(const struct node_loop *l)
{
	return l->queue_count > 0 || l->inbound_control.count > 0 || l->inbound_bulk.count > 0;
}

static void do_ticks(struct node_loop *l, uint64_t now)
{
	uint32_t n = 0;
	while (now >= l->next_tick_ms && n < 10) {
		int rc = consensus_tick(l->core);
		if (rc == CARELOG_EIO || rc == CARELOG_ECORRUPT) {
			loop_fatal(l, rc);
		}
		l->next_tick_ms += l->config.tick_ms;
		n++;
	}
	if (now >= l->next_tick_ms) {
		l->next_tick_ms = now + l->config.tick_ms; /* the loop was held up: do not burst */
	}
}

/* A write the core has asked for cannot be refused (its promises are made): new appends are
 * refused while less than a reserve of the map is left, so a full map stops writes
 * region-wide with a clear error instead of stopping nodes. */
static void map_check(struct node_loop *l)
{
	struct storage_stats st;
	if (storage_stats_get(l->storage, &st) != CARELOG_OK) {
		return;
	}
	uint64_t reserve = st.map_size_bytes / 20;
	uint64_t floor_bytes = 4 * l->config.batch_bytes_max + LOOP_MAP_RESERVE_BYTES_MIN;
	reserve = reserve > floor_bytes ? reserve : floor_bytes;
	bool full = st.used_bytes + reserve > st.map_size_bytes;
	if (full && !l->map_nearly_full) {
		cl_log_error("storage.map_nearly_full",
		             "used_bytes=%llu map_size_bytes=%llu remedy=\"raise [storage] "
		             "map_size_bytes and restart\"",
		             (unsigned long long)st.used_bytes, (unsigned long long)st.map_size_bytes);
	}
	l->map_nearly_full = full;
	l->map_used_bytes = st.used_bytes;
	l->map_size_bytes = st.map_size_bytes;
}

/* Handles drained input and runs ready batches; returns an error only from a ready. */
static int loop_process(struct node_loop *l, uint32_t n)
{
	uint64_t leader_before = leader_of(l);
	for (uint32_t i = 0; i < l->inbound_batch_count; i++) {
		handle_inbound(l, l->inbound_batch[i]);
		free(l->inbound_batch[i]);
		l->inbound_batch[i] = NULL;
	}
	l->inbound_batch_count = 0;
	if (n > 0) {
		map_check(l);
		struct storage_txn *rt = NULL;
		if (storage_txn_begin_read(l->storage, &rt) != CARELOG_OK) {
			rt = NULL; /* each append is then refused with the read error */
		}
		for (uint32_t i = 0; i < n; i++) {
			handle_item(l, rt, l->batch[i]);
			node_append_item_free(l->batch[i]);
			l->batch[i] = NULL;
		}
		storage_txn_abort(rt);
	}
	stage_flush(l);
	while (consensus_has_ready(l->core)) {
		int rc = loop_run_ready(l);
		if (rc != CARELOG_OK) {
			return rc;
		}
		pthread_mutex_lock(&l->mu);
		bool more = has_input(l);
		pthread_mutex_unlock(&l->mu);
		if (more) {
			break; /* take new input into the next transaction (group commit) */
		}
	}
	uint64_t now = monotonic_ms();
	bool leader_changed = leader_of(l) != leader_before;
	if (leader_changed) {
		struct consensus_status cst;
		consensus_get_status(l->core, &cst);
		cl_log_info("leader.changed", "leader=%llu term=%llu",
		            (unsigned long long)cst.soft_state.leader,
		            (unsigned long long)cst.hard_state.term);
		l->has_progress_heard = false;
	}
	if (leader_changed) {
		answer_transfers(l);
	}
	sweep(l, now, leader_changed);
	broadcast_progress(l, now);
	log_catchup(l, now);
	publish_status(l);
	return CARELOG_OK;
}

int node_loop_run_until_idle(struct node_loop *l)
{
	for (;;) {
		pthread_mutex_lock(&l->mu);
		uint32_t n = queue_drain(l);
		pthread_mutex_unlock(&l->mu);
		if (n == 0 && l->inbound_batch_count == 0 && !consensus_has_ready(l->core)) {
			return CARELOG_OK;
		}
		int rc = loop_process(l, n);
		if (rc != CARELOG_OK) {
			return rc;
		}
	}
}

void node_loop_tick(struct node_loop *l)
{
	int rc = consensus_tick(l->core);
	if (rc == CARELOG_EIO || rc == CARELOG_ECORRUPT) {
		loop_fatal(l, rc);
	}
}

static void *loop_thread(void *arg)
{
	struct node_loop *l = arg;
	uint32_t stop_rounds = 0;
	for (;;) {
		pthread_mutex_lock(&l->mu);
		while (!has_input(l) && !consensus_has_ready(l->core) && !l->stopping) {
			uint64_t now = monotonic_ms();
			if (now >= l->next_tick_ms) {
				break;
			}
			uint64_t wait_ms = l->next_tick_ms - now;
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += (time_t)(wait_ms / 1000u);
			until.tv_nsec += (long)(wait_ms % 1000u) * 1000000L;
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			l->sleeping = true;
			pthread_cond_timedwait(&l->cond, &l->mu, &until);
			l->sleeping = false;
		}
		uint32_t n = queue_drain(l);
		bool stopping = l->stopping;
		pthread_mutex_unlock(&l->mu);
		if (stopping && (stop_rounds++ >= LOOP_STOP_ROUNDS_MAX ||
		                 (n == 0 && l->inbound_batch_count == 0 &&
		                  !consensus_has_ready(l->core)))) {
			for (uint32_t i = 0; i < n; i++) {
				reply_error(l, l->batch[i]->waiter, CARELOG_ECLOSED, "node is stopping");
				node_append_item_free(l->batch[i]);
			}
			for (uint32_t i = 0; i < l->inbound_batch_count; i++) {
				free(l->inbound_batch[i]);
			}
			l->inbound_batch_count = 0;
			return NULL;
		}
		do_ticks(l, monotonic_ms());
		(void)loop_process(l, n);
	}
}

/* --- lifecycle --- */

static void *core_alloc(void *ctx, size_t size_bytes)
{
	(void)ctx;
	return malloc(size_bytes);
}

static void core_free(void *ctx, void *ptr, size_t size_bytes)
{
	(void)ctx;
	(void)size_bytes;
	free(ptr);
}

static bool ring_init(struct loop_ring *r, uint32_t cap)
{
	r->items = calloc(cap, sizeof(*r->items));
	r->cap = cap;
	return r->items != NULL;
}

static void ring_free(struct loop_ring *r)
{
	while (r->items != NULL && r->count > 0) {
		free(ring_pop(r));
	}
	free(r->items);
}

/* Frees everything (not the mutex/condvar: create may fail before them). */
static void loop_free(struct node_loop *l)
{
	consensus_destroy(l->core);
	free(l->queue);
	free(l->batch);
	ring_free(&l->inbound_control);
	ring_free(&l->inbound_bulk);
	free(l->inbound_batch);
	for (uint32_t i = 0; l->proposals != NULL && i < l->proposals_cap; i++) {
		free(l->proposals[i].record);
	}
	free(l->proposals);
	free(l->buckets);
	free(l->pendings);
	for (uint32_t i = 0; l->stage != NULL && i < l->stage_count; i++) {
		free(l->stage[i].record);
	}
	free(l->stage);
	free(l->stage_items);
	free(l->persist);
	free(l->outcomes);
	free(l->record_buf);
	free(l->policy_scratch);
	free(l->policy_buf);
	free(l->wire_buf);
	free(l->wire_entries);
	free(l);
}

/* The core's configuration as applied: voters and learners from the applied membership. */
static int core_create(struct node_loop *l, const struct storage_hard_state *hs)
{
	const struct membership *m = &l->state.membership;
	consensus_node_id voters[MEMBERSHIP_MEMBERS_MAX];
	consensus_node_id learners[MEMBERSHIP_MEMBERS_MAX];
	uint32_t nv = 0, nl = 0;
	for (uint32_t i = 0; l->state.has_membership && i < m->count; i++) {
		if (m->members[i].voter) {
			voters[nv++] = m->members[i].id;
		} else {
			learners[nl++] = m->members[i].id;
		}
	}
	struct consensus_conf_state cs = {
	    .voters = voters, .voters_count = nv, .learners = learners, .learners_count = nl};
	uint64_t seed = l->config.seed;
	if (seed == 0) {
		cl_random_bytes(&seed, sizeof(seed));
	}
	struct consensus_config cc = {
	    .id = l->config.node_id,
	    .election_ticks = l->config.election_ticks,
	    .heartbeat_ticks = l->config.heartbeat_ticks,
	    .seed = seed,
	    .pre_vote = true,
	    .check_quorum = true,
	    .members_max = MEMBERSHIP_MEMBERS_MAX,
	    .inflight_msgs_max = l->config.inflight_msgs_max,
	    .append_bytes_max = l->config.append_bytes_max,
	    .uncommitted_bytes_max = 4 * (l->config.batch_bytes_max + l->record_buf_cap),
	    .ready_bytes_max = l->config.batch_bytes_max,
	    .read_index_max = LOOP_READS_MAX,
	    .applied = l->state.applied_index,
	    .allocator = &l->alloc,
	    .log = &l->raftlog.ops,
	};
	struct consensus_hard_state chs = {.term = hs->term, .vote = hs->vote, .commit = hs->commit};
	int rc = consensus_create(&cc, &chs, &cs, &l->core);
	if (rc != CARELOG_OK) {
		return rc;
	}
	/* A lone voter need not wait an election timeout to lead (and serve) after a start. */
	if (nv == 1 && voters[0] == l->config.node_id) {
		rc = consensus_campaign(l->core);
	}
	return rc;
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
	if (l->config.tick_ms == 0) {
		l->config.tick_ms = LOOP_TICK_MS_DEFAULT;
	}
	if (l->config.election_ticks == 0) {
		l->config.election_ticks = LOOP_ELECTION_TICKS_DEFAULT;
	}
	if (l->config.heartbeat_ticks == 0) {
		l->config.heartbeat_ticks = 1;
	}
	if (l->config.inflight_msgs_max == 0) {
		l->config.inflight_msgs_max = LOOP_INFLIGHT_MSGS_DEFAULT;
	}
	if (l->config.append_bytes_max == 0) {
		l->config.append_bytes_max = LOOP_APPEND_BYTES_DEFAULT;
	}
	if (l->config.request_timeout_ms == 0) {
		l->config.request_timeout_ms = 30000;
	}
	l->alloc = (struct consensus_allocator){.alloc = core_alloc, .free = core_free};
	l->storage = s;
	l->state = *state;
	/* Each in-flight request id holds a slot until applied or forgotten. */
	l->proposals_cap = CONSENSUS_UNSTABLE_ENTRIES_MAX + config->queue_max;
	l->buckets_count = 2 * l->proposals_cap;
	l->record_buf_cap =
	    config->request_bytes_max + JOURNAL_HEADER_BYTES_MAX + LOOP_RECORD_OVERHEAD_BYTES;
	l->wire_buf_cap = l->config.append_bytes_max + l->record_buf_cap +
	                  (uint64_t)CONSENSUS_APPEND_ENTRIES_MAX * 64u + 4096u;
	int rc = CARELOG_ENOMEM;
	l->queue = calloc(config->queue_max, sizeof(*l->queue));
	l->batch = calloc(config->batch_entries_max, sizeof(*l->batch));
	l->inbound_batch = calloc(LOOP_INBOUND_PER_ROUND_MAX, sizeof(*l->inbound_batch));
	l->proposals = calloc(l->proposals_cap, sizeof(*l->proposals));
	l->buckets = calloc(l->buckets_count, sizeof(*l->buckets));
	l->pendings = calloc(LOOP_READS_MAX, sizeof(*l->pendings));
	l->stage_cap = config->batch_entries_max + LOOP_INBOUND_PER_ROUND_MAX;
	l->stage = calloc(l->stage_cap, sizeof(*l->stage));
	l->stage_items = calloc(l->stage_cap, sizeof(*l->stage_items));
	l->persist = calloc(CONSENSUS_UNSTABLE_ENTRIES_MAX, sizeof(*l->persist));
	l->outcomes = calloc(CONSENSUS_READY_ENTRIES_MAX, sizeof(*l->outcomes));
	l->record_buf = malloc(l->record_buf_cap);
	l->policy_scratch = malloc(sizeof(*l->policy_scratch));
	l->policy_buf = malloc(LOOP_POLICY_BODY_BYTES_MAX);
	l->wire_buf = malloc(l->wire_buf_cap);
	l->wire_entries = calloc(CONSENSUS_APPEND_ENTRIES_MAX, sizeof(*l->wire_entries));
	bool rings = ring_init(&l->inbound_control, LOOP_INBOUND_CONTROL_MAX) &&
	             ring_init(&l->inbound_bulk, LOOP_INBOUND_BULK_MAX);
	if (rings && l->queue != NULL && l->batch != NULL && l->inbound_batch != NULL &&
	    l->proposals != NULL && l->buckets != NULL && l->pendings != NULL && l->stage != NULL &&
	    l->stage_items != NULL && l->persist != NULL && l->outcomes != NULL &&
	    l->record_buf != NULL && l->policy_scratch != NULL && l->policy_buf != NULL &&
	    l->wire_buf != NULL && l->wire_entries != NULL) {
		struct storage_txn *t = NULL;
		struct storage_hard_state hs = {0};
		uint64_t last_term = 0;
		rc = storage_txn_begin_read(s, &t);
		if (rc == CARELOG_OK) {
			rc = storage_hard_state_get(t, &hs);
			if (rc == CARELOG_ENOTFOUND) {
				rc = CARELOG_OK; /* a joining node: nothing voted, nothing stored */
			}
		}
		if (rc == CARELOG_OK) {
			rc = storage_log_last(t, &l->raftlog.last_index, &last_term);
		}
		storage_txn_abort(t);
		if (rc == CARELOG_OK) {
			l->durable_term = hs.term;
			l->durable_vote = hs.vote;
			node_raftlog_init(&l->raftlog, s);
			rc = core_create(l, &hs);
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
	l->next_tick_ms = monotonic_ms() + l->config.tick_ms;
	publish_status(l);
	if (l->config.members != NULL && l->state.has_membership) {
		l->config.members(l->config.members_ctx, &l->state.membership);
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
		if (l->sleeping) {
			pthread_cond_signal(&l->cond);
		}
	}
	pthread_mutex_unlock(&l->mu);
	return rc;
}

void node_loop_get_status(struct node_loop *l, struct node_loop_status *out)
{
	pthread_mutex_lock(&l->mu);
	*out = l->status;
	pthread_mutex_unlock(&l->mu);
}

void node_loop_answer_leftovers(struct node_loop *l)
{
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
		if (p->used) {
			proposal_fail(l, p, CARELOG_EPENDING,
			              "node stopped before the append was applied: retry with the "
			              "same request id");
		}
	}
	for (uint32_t i = 0; i < LOOP_READS_MAX; i++) {
		if (l->pendings[i].used) {
			l->pendings[i].used = false;
			reply_error(l, l->pendings[i].waiter, CARELOG_ECLOSED, "node is stopping");
		}
	}
}

void node_loop_destroy(struct node_loop *l)
{
	if (l == NULL) {
		return;
	}
	node_loop_answer_leftovers(l);
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

uint64_t node_loop_known_commit_index(const struct node_loop *l)
{
	return atomic_load(&l->known_commit_index);
}
