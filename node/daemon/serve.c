/* Serving status, read, get and verify from one read transaction each (never the writer's). */
#include "node/daemon/serve.h"

#include "carelog/errors.h"
#include "common/assert.h"
#include "common/log.h"
#include "node/daemon/apply.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SERVE_SCAN_CHUNK = 128, SERVE_MESSAGE_BYTES_MAX = 512 };

int node_serve_error(uint8_t op, int err, struct proto_buf *out, const char *fmt, ...)
{
	char msg[SERVE_MESSAGE_BYTES_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	proto_buf_free(out);
	return proto_reply_encode_error(op, err, msg, out);
}

static struct proto_str str_of(const char *s)
{
	return (struct proto_str){.ptr = s, .len = strlen(s)};
}

static void reply_init(struct proto_reply *rep, uint8_t op)
{
	memset(rep, 0, sizeof(*rep));
	rep->version = PROTO_VERSION;
	rep->op = op;
	rep->err = CARELOG_OK;
	rep->msg = str_of("");
}

/* Copies a request view into a NUL-terminated buffer; false if too long or holding a NUL. */
static bool view_text(const struct proto_str *v, char *dst, size_t cap)
{
	if (v->len >= cap || (v->len > 0 && memchr(v->ptr, '\0', v->len) != NULL)) {
		return false;
	}
	if (v->len > 0) {
		memcpy(dst, v->ptr, v->len);
	}
	dst[v->len] = '\0';
	return true;
}

/* The node's committed view: hard state, applied state and membership. */
struct serve_view {
	struct storage_hard_state hs;
	struct storage_applied applied;
	bool has_membership;
	struct membership *membership; /* heap: ~15 KiB */
};

static int view_load(struct storage_txn *t, struct serve_view *v)
{
	int rc = storage_hard_state_get(t, &v->hs);
	if (rc == CARELOG_ENOTFOUND) {
		memset(&v->hs, 0, sizeof(v->hs)); /* a joining node before its first write */
		rc = CARELOG_OK;
	}
	if (rc == CARELOG_OK) {
		rc = storage_applied_get(t, &v->applied);
		if (rc == CARELOG_ENOTFOUND) {
			memset(&v->applied, 0, sizeof(v->applied));
			rc = CARELOG_OK;
		}
	}
	if (rc == CARELOG_OK && v->membership != NULL) { /* reads and gets need none */
		rc = node_apply_read_membership(t, v->membership);
		v->has_membership = rc == CARELOG_OK;
		if (rc == CARELOG_ENOTFOUND) {
			rc = CARELOG_OK;
		}
	}
	return rc;
}

/* Names why a loaded entry is not served: logged and replied by index, never the data. */
static int entry_corrupt(uint64_t index, const char *what, char *why, size_t why_len)
{
	snprintf(why, why_len, "entry at index %llu failed its integrity check (%s)",
	         (unsigned long long)index, what);
	cl_log_error("serve.corrupt", "index=%llu what=\"%s\"", (unsigned long long)index, what);
	return CARELOG_ECORRUPT;
}

/*
 * Loads the entry at `index` for a read or get and checks its integrity without a signature
 * check (apply verified the signature once, and `verify` re-checks it; ~60 us per entry here
 * would dominate every timeline read): storage's value CRC, record and header decode, the
 * body against the header's size and salted hash (an erased body passes), and that the
 * entry_index row of this header's id points at `index` with status accepted (or duplicate
 * when `duplicate_ok`: a get by id). A header altered on disk, even with a recomputed CRC,
 * has another id, so the row check catches it. On failure fills `why` naming the index
 * (never the data) and returns CARELOG_ECORRUPT or a storage error.
 */
static int load_entry(struct storage_txn *t, uint64_t index, bool duplicate_ok,
                      struct journal_record *rec, struct journal_header *h,
                      uint8_t id[JOURNAL_ID_BYTES], char *why, size_t why_len)
{
	struct storage_entry e;
	int rc = storage_log_get(t, index, &e);
	if (rc == CARELOG_ECORRUPT) {
		snprintf(why, why_len, "log/%llu failed its checksum", (unsigned long long)index);
		return rc;
	}
	if (rc == CARELOG_ENOTFOUND) {
		snprintf(why, why_len, "index %llu is indexed but missing from the log",
		         (unsigned long long)index);
		return CARELOG_ECORRUPT;
	}
	if (rc != CARELOG_OK) {
		snprintf(why, why_len, "cannot read log/%llu: %s", (unsigned long long)index,
		         carelog_errname(rc));
		return rc;
	}
	if (e.type != CONSENSUS_ENTRY_NORMAL || e.data_len == 0 ||
	    journal_record_decode(e.data, e.data_len, rec) != CARELOG_OK ||
	    journal_header_decode(rec->header, rec->header_len, h) != CARELOG_OK) {
		return entry_corrupt(index, "not a journal record", why, why_len);
	}
	journal_entry_id(rec->header, rec->header_len, id);
	uint64_t row_index = 0;
	uint8_t row_status = 0;
	rc = storage_index_entry_get(t, id, &row_index, &row_status);
	bool row_matches =
	    row_index == index && (row_status == NODE_APPLY_ACCEPTED ||
	                           (duplicate_ok && row_status == NODE_APPLY_DUPLICATE));
	if (rc == CARELOG_ENOTFOUND || (rc == CARELOG_OK && !row_matches)) {
		return entry_corrupt(index, "its header does not match the entry index", why,
		                     why_len);
	}
	if (rc != CARELOG_OK) {
		snprintf(why, why_len, "cannot look up the entry index row of log/%llu: %s",
		         (unsigned long long)index, carelog_errname(rc));
		return rc;
	}
	if (rec->salt == NULL) {
		/* Erased lawfully: no salt, no body. */
		return rec->body == NULL
		           ? CARELOG_OK
		           : entry_corrupt(index, "a body without its salt", why, why_len);
	}
	if ((rec->body == NULL && rec->body_len != 0) || (uint64_t)rec->body_len != h->body_size) {
		return entry_corrupt(index, "body size differs from the header's", why, why_len);
	}
	uint8_t hash[CL_SHA256_BYTES];
	journal_body_hash(rec->salt, rec->body, rec->body_len, hash);
	if (memcmp(hash, h->body_hash, sizeof(hash)) != 0) {
		return entry_corrupt(index, "body does not match the header's body hash", why,
		                     why_len);
	}
	return CARELOG_OK;
}

/* What access adds to a served entry: the newer version, the erasure. */
struct entry_extra {
	bool superseded;
	uint8_t superseded_by[JOURNAL_ID_BYTES];
	const struct access_erasure *erasure; /* NULL: not erased, or no record of who erased */
};

static void entry_fill(struct proto_entry *out, uint64_t index, const uint8_t *id,
                       const struct journal_header *h, const struct journal_record *r,
                       const struct entry_extra *x)
{
	/* Filled in a local and copied out: GCC 12 with UBSan misjudges memcpy into *out. */
	struct proto_entry e;
	memset(&e, 0, sizeof(e));
	e.index = index;
	memcpy(e.id, id, sizeof(e.id));
	e.kind = str_of(h->kind);
	e.patient = str_of(h->patient);
	e.author = str_of(h->author);
	e.role = str_of(h->role);
	e.org = str_of(h->org);
	e.unit = str_of(h->unit);
	e.node_id = h->node_id;
	e.time_ms = r->leader_time_ms;
	e.author_time_ms = h->author_time_ms;
	e.clinical_time_ms = h->clinical_time_ms;
	e.status = str_of(h->status);
	e.sensitivity = str_of(h->sensitivity);
	e.media_type = str_of(h->media_type);
	e.request_id = str_of(h->request_id);
	e.has_corrects = h->has_corrects;
	memcpy(e.corrects, h->corrects, sizeof(e.corrects));
	e.body = (struct proto_str){.ptr = (const char *)r->body,
	                            .len = r->body != NULL ? r->body_len : 0};
	e.body_erased = r->salt == NULL; /* load_entry passed: no salt means erased lawfully */
	e.erased_author = str_of("");
	e.erased_org = str_of("");
	e.erased_basis = str_of("");
	if (x->superseded) {
		e.has_superseded_by = true;
		memcpy(e.superseded_by, x->superseded_by, sizeof(e.superseded_by));
	}
	if (e.body_erased && x->erasure != NULL) {
		e.erased_index = x->erasure->tombstone_index;
		e.erased_time_ms = x->erasure->time_ms;
		e.erased_author = str_of(x->erasure->author);
		e.erased_org = str_of(x->erasure->org);
		e.erased_basis = str_of(x->erasure->basis);
	}
	*out = e;
}

/* --- the access row of a request (the server fills who, when, what and the outcome) --- */

static void audit_begin(struct policy_audit_row *audit)
{
	if (audit == NULL) {
		return;
	}
	audit->patient[0] = '\0';
	audit->allowed = false;
	snprintf(audit->basis, sizeof(audit->basis), "%s", access_basis_name(ACCESS_BASIS_NONE));
	audit->count = 0;
	audit->withheld = 0;
	audit->has_entry = false;
}

static void audit_patient(struct policy_audit_row *audit, const char *patient)
{
	if (audit != NULL) {
		snprintf(audit->patient, sizeof(audit->patient), "%s", patient);
	}
}

static void audit_entry(struct policy_audit_row *audit, const uint8_t id[JOURNAL_ID_BYTES])
{
	if (audit != NULL) {
		audit->has_entry = true;
		memcpy(audit->entry, id, JOURNAL_ID_BYTES);
	}
}

static void audit_decision(struct policy_audit_row *audit, bool allowed, enum access_basis basis,
                           uint64_t count, uint64_t withheld)
{
	if (audit != NULL) {
		audit->allowed = allowed;
		snprintf(audit->basis, sizeof(audit->basis), "%s",
		         access_basis_name(allowed ? basis : ACCESS_BASIS_NONE));
		audit->count = count;
		audit->withheld = withheld;
	}
}

/* Superseded and erasure facts of an entry for `x` (erasure into `erasure`, the caller's). */
static int entry_extra_load(struct storage_txn *t, const uint8_t id[JOURNAL_ID_BYTES],
                            const struct journal_record *rec, struct access_erasure *erasure,
                            struct entry_extra *x)
{
	memset(x, 0, sizeof(*x));
	int rc = access_superseded(t, id, &x->superseded, x->superseded_by);
	if (rc != CARELOG_OK || rec->salt != NULL) {
		return rc;
	}
	bool erased = false;
	rc = access_erased(t, id, &erased, erasure);
	if (rc == CARELOG_OK && erased) {
		x->erasure = erasure;
	}
	return rc;
}

/* --- status --- */

/* Role, leader and counters from the loop's published status. */
static void status_from_loop(const struct node_loop_status *ls, struct proto_status_reply *st)
{
	static const char *const roles[] = {"follower", "candidate", "candidate", "leader"};
	st->role = str_of(ls->learner ? "learner" : roles[ls->role & 3u]);
	st->term = ls->term;
	st->leader_id = ls->leader_id;
	st->commit_index = ls->commit_index;
	st->applied_index = ls->applied_index;
	st->last_index = ls->last_index;
	st->progress_age_ms = ls->progress_age_ms;
	st->verified_signatures = ls->verified_signatures;
	st->syncs = ls->syncs;
}

/* A member's match index and lag behind the leader's log, as the leader last reported. */
static void member_progress(const struct node_loop_status *ls, struct proto_member *pm)
{
	uint64_t leader_last = 0;
	for (uint32_t i = 0; i < ls->members_count; i++) {
		if (ls->members[i].id == ls->leader_id) {
			leader_last = ls->members[i].match_index;
		}
	}
	for (uint32_t i = 0; i < ls->members_count; i++) {
		if (ls->members[i].id == pm->id && ls->members[i].has_match) {
			pm->has_match = true;
			pm->match_index = ls->members[i].match_index;
			pm->lag = leader_last > pm->match_index ? leader_last - pm->match_index : 0;
		}
	}
}

int node_serve_status(const struct node_serve *sv, struct proto_buf *out)
{
	struct serve_view v = {.membership = malloc(sizeof(struct membership))};
	struct proto_member *members = calloc(PROTO_MEMBERS_MAX, sizeof(*members));
	struct storage_txn *t = NULL;
	int rc = (v.membership == NULL || members == NULL) ? CARELOG_ENOMEM : CARELOG_OK;
	if (rc == CARELOG_OK) {
		rc = storage_txn_begin_read(sv->storage, &t);
	}
	if (rc == CARELOG_OK) {
		rc = view_load(t, &v);
	}
	if (rc != CARELOG_OK) {
		rc = node_serve_error(PROTO_OP_STATUS, rc, out, "cannot read the node state: %s",
		                      carelog_strerror(rc));
	} else {
		struct proto_reply rep;
		reply_init(&rep, PROTO_OP_STATUS);
		struct proto_status_reply *st = &rep.u.status;
		st->node_id = sv->node_id;
		st->term = v.hs.term;
		st->commit_index = v.hs.commit;
		st->applied_index = v.applied.index;
		memcpy(st->chain_head, v.applied.chain_head, sizeof(st->chain_head));
		struct node_loop_status *ls = NULL;
		if (sv->loop != NULL) {
			ls = malloc(sizeof(*ls));
			if (ls != NULL) {
				node_loop_get_status(sv->loop, ls);
			}
		}
		if (ls != NULL) {
			status_from_loop(ls, st);
		} else {
			st->role = str_of("leader"); /* no loop (tests): a lone voter's store */
			st->leader_id = sv->node_id;
		}
		if (sv->transport_stats != NULL) {
			sv->transport_stats(sv->transport_ctx, &st->transport);
		}
		if (sv->audit_stats != NULL) {
			/* Status stays answerable when the queue cannot be read: it is how an
			 * operator looks for what is wrong. The reply then lacks "audit". */
			int arc = sv->audit_stats(sv->audit_ctx, &st->audit);
			st->has_audit = arc == CARELOG_OK;
			if (arc != CARELOG_OK) {
				cl_log_warn("serve.audit_stats_failed", "err=%s",
				            carelog_errname(arc));
			}
		}
		uint32_t n = 0;
		for (uint32_t i = 0;
		     v.has_membership && i < v.membership->count && n < PROTO_MEMBERS_MAX; i++) {
			const struct membership_member *m = &v.membership->members[i];
			members[n] = (struct proto_member){
			    .id = m->id,
			    .role = str_of(m->voter ? "voter" : "learner"),
			    .org = str_of(m->org),
			    .address = str_of(m->address),
			};
			if (ls != NULL) {
				member_progress(ls, &members[n]);
			} else if (m->id == sv->node_id) {
				members[n].has_match = true;
				members[n].match_index = v.hs.commit;
			}
			n++;
		}
		free(ls);
		st->members_count = n;
		st->members = members;
		rc = proto_reply_encode(&rep, out);
	}
	storage_txn_abort(t);
	free(members);
	free(v.membership);
	return rc;
}

/* --- read --- */

struct read_scratch {
	struct proto_entry *entries;
	struct journal_header *headers;
	struct access_erasure **erasures; /* per returned entry, only for erased ones */
	uint32_t withheld_counts[ACCESS_WITHHELD_COUNT_];
	struct proto_withheld_reason reasons[ACCESS_WITHHELD_COUNT_];
	struct serve_view view;
	bool error_replied; /* a failure part-way was answered with an error reply */
};

static void read_scratch_free(struct read_scratch *r, uint32_t limit)
{
	for (uint32_t i = 0; r->erasures != NULL && i < limit; i++) {
		free(r->erasures[i]);
	}
	free(r->erasures);
	free(r->entries);
	free(r->headers);
}

/* Encodes an error reply for a read that failed part-way (r->error_replied says whether it
 * could be); returns `rc`. */
static int read_fail(struct read_scratch *r, int rc, struct proto_buf *out, const char *why)
{
	CL_ASSERT(rc != CARELOG_OK);
	r->error_replied = node_serve_error(PROTO_OP_READ, rc, out, "%s", why) == CARELOG_OK;
	return rc;
}

/* Takes the entry at `index` into the reply if the decision shows it (else counts why not). */
static int read_take(struct storage_txn *t, const struct proto_read_req *req,
                     const struct access_read_decision *d, const char *kind, uint64_t index,
                     struct read_scratch *r, struct proto_read_reply *rr, struct proto_buf *out)
{
	struct journal_record rec;
	struct journal_header *h = &r->headers[rr->entries_count];
	uint8_t id[JOURNAL_ID_BYTES];
	char why[SERVE_MESSAGE_BYTES_MAX];
	int rc = load_entry(t, index, false, &rec, h, id, why, sizeof(why));
	if (rc != CARELOG_OK) {
		return read_fail(r, rc, out, why);
	}
	if (kind[0] != '\0' && strcmp(h->kind, kind) != 0) {
		return CARELOG_OK;
	}
	struct access_erasure **erasure = &r->erasures[rr->entries_count];
	if (rec.salt == NULL && *erasure == NULL) {
		*erasure = malloc(sizeof(**erasure));
		if (*erasure == NULL) {
			return read_fail(r, CARELOG_ENOMEM, out, "out of memory");
		}
	}
	struct entry_extra x;
	rc = entry_extra_load(t, id, &rec, *erasure, &x);
	enum access_withheld w = ACCESS_SHOWN;
	if (rc == CARELOG_OK && (!x.superseded || req->history)) {
		rc = access_entry_visible(t, d, h, id, &w);
		if (rc == CARELOG_ENOTFOUND) {
			return CARELOG_OK; /* part of no patient's record: never shown, not counted
			                    */
		}
	}
	if (rc != CARELOG_OK) {
		snprintf(why, sizeof(why), "cannot judge the entry at index %llu: %s",
		         (unsigned long long)index, carelog_strerror(rc));
		return read_fail(r, rc, out, why);
	}
	if (x.superseded && !req->history) {
		return CARELOG_OK; /* an older version: its newer one is judged on its own */
	}
	if (w != ACCESS_SHOWN) {
		CL_ASSERT((unsigned)w < ACCESS_WITHHELD_COUNT_);
		r->withheld_counts[w]++;
		rr->withheld++;
		return CARELOG_OK;
	}
	entry_fill(&r->entries[rr->entries_count], index, id, h, &rec, &x);
	rr->entries_count++;
	return CARELOG_OK;
}

/* Scans the patient's index rows and fills rep->u.read with what decision `d` shows; on a
 * problem encodes the error into out (read_fail) and returns its code. */
static int read_collect(struct storage_txn *t, const struct proto_read_req *req,
                        const struct access_read_decision *d, const char *kind, uint32_t limit,
                        struct read_scratch *r, struct proto_read_reply *rr, struct proto_buf *out)
{
	uint64_t from = req->since_index + 1;
	if (from == 0) {
		return CARELOG_OK; /* since_index = UINT64_MAX: nothing after it */
	}
	uint64_t indexes[SERVE_SCAN_CHUNK];
	uint64_t scanned = 0;
	for (;;) {
		size_t n = 0;
		bool chunk_more = false;
		int rc = storage_index_patient_scan(t, d->patient_key, from, indexes,
		                                    SERVE_SCAN_CHUNK, &n, &chunk_more);
		if (rc != CARELOG_OK) {
			char why[SERVE_MESSAGE_BYTES_MAX];
			snprintf(why, sizeof(why),
			         "patient index failed (%s) at or after index %llu",
			         carelog_errname(rc), (unsigned long long)from);
			return read_fail(r, rc, out, why);
		}
		for (size_t j = 0; j < n; j++) {
			if (rr->entries_count == limit || scanned == NODE_READ_SCAN_INDEXES_MAX) {
				rr->more = true;
				return CARELOG_OK;
			}
			scanned++;
			rc = read_take(t, req, d, kind, indexes[j], r, rr, out);
			if (rc != CARELOG_OK) {
				return rc;
			}
		}
		if (!chunk_more || n == 0) {
			return CARELOG_OK;
		}
		from = indexes[n - 1] + 1;
	}
}

/* The withheld counts as reasons in words, in the order access checks them. */
static void read_reasons(struct read_scratch *r, struct proto_read_reply *rr)
{
	uint32_t n = 0;
	for (int w = ACCESS_WITHHELD_BLOCKED; w < ACCESS_WITHHELD_COUNT_; w++) {
		if (r->withheld_counts[w] > 0) {
			r->reasons[n++] = (struct proto_withheld_reason){
			    .reason = str_of(access_withheld_text((enum access_withheld)w)),
			    .count = r->withheld_counts[w]};
		}
	}
	CL_STATIC_ASSERT((int)ACCESS_WITHHELD_COUNT_ <= (int)PROTO_WITHHELD_REASONS_MAX,
	                 "every withheld reason fits a read reply");
	rr->withheld_reasons_count = n;
	rr->withheld_reasons = r->reasons;
}

/* The read's lag behind the commit index this node knows of (the leader's, as last heard): a
 * learner still catching up must never look current. */
static void read_freshness(const struct node_serve *sv, const struct serve_view *v,
                           struct proto_read_reply *rr)
{
	rr->applied_index = v->applied.index;
	uint64_t known_commit = v->hs.commit;
	if (sv->loop != NULL && node_loop_known_commit_index(sv->loop) > known_commit) {
		known_commit = node_loop_known_commit_index(sv->loop);
	}
	rr->lag = known_commit > v->applied.index ? known_commit - v->applied.index : 0;
	rr->stale = rr->lag > sv->stale_lag_max;
}

int node_serve_read(const struct node_serve *sv, const struct access_actor *actor, uint64_t now_ms,
                    const struct proto_request *req, struct proto_buf *out,
                    struct policy_audit_row *audit)
{
	const struct proto_read_req *rq = &req->u.read;
	char patient[JOURNAL_PATIENT_BYTES_MAX + 1];
	char kind[JOURNAL_KIND_BYTES_MAX + 1];
	audit_begin(audit);
	if (rq->patient.len == 0 || !view_text(&rq->patient, patient, sizeof(patient))) {
		return node_serve_error(PROTO_OP_READ, CARELOG_EINVAL, out,
		                        "patient must be 1 to %d bytes without NUL",
		                        JOURNAL_PATIENT_BYTES_MAX);
	}
	audit_patient(audit, patient);
	if (!view_text(&rq->kind, kind, sizeof(kind))) {
		return node_serve_error(PROTO_OP_READ, CARELOG_EINVAL, out,
		                        "kind is longer than %d bytes", JOURNAL_KIND_BYTES_MAX);
	}
	uint32_t limit = rq->limit == 0 ? NODE_READ_LIMIT_DEFAULT : rq->limit;
	if (limit > PROTO_READ_LIMIT_MAX) {
		return node_serve_error(PROTO_OP_READ, CARELOG_EINVAL, out,
		                        "limit %u exceeds the maximum of %d entries per read",
		                        limit, PROTO_READ_LIMIT_MAX);
	}
	struct read_scratch r = {
	    .entries = calloc(limit, sizeof(struct proto_entry)),
	    .headers = calloc(limit, sizeof(struct journal_header)),
	    .erasures = calloc(limit, sizeof(struct access_erasure *)),
	};
	struct access_read_decision *d = malloc(sizeof(*d));
	struct storage_txn *t = NULL;
	int rc = (r.entries == NULL || r.headers == NULL || r.erasures == NULL || d == NULL)
	             ? CARELOG_ENOMEM
	             : CARELOG_OK;
	if (rc == CARELOG_OK) {
		rc = storage_txn_begin_read(sv->storage, &t);
	}
	if (rc == CARELOG_OK) {
		rc = view_load(t, &r.view);
	}
	if (rc != CARELOG_OK) {
		rc = node_serve_error(PROTO_OP_READ, rc, out, "cannot read the node state: %s",
		                      carelog_strerror(rc));
	} else if ((rc = access_decide_read(t, actor, patient, now_ms, d)) != CARELOG_OK) {
		rc = node_serve_error(PROTO_OP_READ, rc, out, "cannot decide access: %s",
		                      carelog_strerror(rc));
	} else if (!d->allowed) {
		rc = node_serve_error(PROTO_OP_READ, CARELOG_EDENIED, out, "%s", d->reason);
	} else {
		struct proto_reply rep;
		reply_init(&rep, PROTO_OP_READ);
		struct proto_read_reply *rr = &rep.u.read;
		read_freshness(sv, &r.view, rr);
		rr->entries = r.entries;
		rr->basis = str_of(access_basis_name(d->basis));
		rc = read_collect(t, rq, d, kind, limit, &r, rr, out);
		read_reasons(&r, rr);
		audit_decision(audit, true, d->basis, rr->entries_count, rr->withheld);
		if (rc == CARELOG_OK) {
			rc = proto_reply_encode(&rep, out); /* bodies are views into the txn */
		} else {
			rc = r.error_replied ? CARELOG_OK : CARELOG_ENOMEM;
		}
	}
	storage_txn_abort(t);
	read_scratch_free(&r, limit);
	free(d);
	return rc;
}

/* --- get --- */

/* Serves one loaded entry under the decision for its patient (the reply into `out`). */
static int get_judged(struct storage_txn *t, const struct access_actor *actor, uint64_t now_ms,
                      uint64_t index, const uint8_t id[JOURNAL_ID_BYTES],
                      const struct journal_header *h, const struct journal_record *rec,
                      struct proto_buf *out, struct policy_audit_row *audit)
{
	audit_patient(audit, h->patient);
	struct access_read_decision *d = malloc(sizeof(*d));
	struct access_erasure *erasure = malloc(sizeof(*erasure));
	int rc = d == NULL || erasure == NULL ? CARELOG_ENOMEM : CARELOG_OK;
	if (rc == CARELOG_OK) {
		rc = access_decide_read(t, actor, h->patient, now_ms, d);
	}
	struct entry_extra x;
	memset(&x, 0, sizeof(x));
	enum access_withheld w = ACCESS_SHOWN;
	bool recordless = false;
	if (rc == CARELOG_OK && d->allowed) {
		rc = access_entry_visible(t, d, h, id, &w);
		if (rc == CARELOG_ENOTFOUND) {
			recordless = true; /* region-wide: never served */
			rc = CARELOG_OK;
		} else if (rc == CARELOG_OK) {
			rc = entry_extra_load(t, id, rec, erasure, &x);
		}
	}
	if (rc != CARELOG_OK) {
		rc = node_serve_error(PROTO_OP_GET, rc, out,
		                      "cannot judge the entry at index %llu: %s",
		                      (unsigned long long)index, carelog_strerror(rc));
	} else if (!d->allowed) {
		rc = node_serve_error(PROTO_OP_GET, CARELOG_EDENIED, out, "%s", d->reason);
	} else if (recordless) {
		rc = node_serve_error(PROTO_OP_GET, CARELOG_EDENIED, out,
		                      "entry at index %llu is region-wide, part of no patient's "
		                      "record: it is not served",
		                      (unsigned long long)index);
	} else if (w != ACCESS_SHOWN) {
		audit_decision(audit, false, d->basis, 0, 1);
		rc = node_serve_error(PROTO_OP_GET, CARELOG_EDENIED, out, "withheld: %s",
		                      access_withheld_text(w));
	} else {
		audit_decision(audit, true, d->basis, 1, 0);
		struct proto_reply rep;
		reply_init(&rep, PROTO_OP_GET);
		entry_fill(&rep.u.get, index, id, h, rec, &x);
		rc = proto_reply_encode(&rep, out);
	}
	free(d);
	free(erasure);
	return rc;
}

int node_serve_get(const struct node_serve *sv, const struct access_actor *actor, uint64_t now_ms,
                   const struct proto_request *req, struct proto_buf *out,
                   struct policy_audit_row *audit)
{
	const struct proto_get_req *g = &req->u.get;
	audit_begin(audit);
	audit_entry(audit, g->id);
	char id_hex[2 * PROTO_ID_BYTES + 1];
	cl_hex_encode(id_hex, g->id, PROTO_ID_BYTES);
	struct serve_view v = {.membership = NULL};
	struct journal_header *h = malloc(sizeof(*h));
	struct storage_txn *t = NULL;
	int rc = h == NULL ? CARELOG_ENOMEM : CARELOG_OK;
	if (rc == CARELOG_OK) {
		rc = storage_txn_begin_read(sv->storage, &t);
	}
	if (rc == CARELOG_OK) {
		rc = view_load(t, &v);
	}
	uint64_t index = 0;
	uint8_t status = 0;
	if (rc == CARELOG_OK) {
		rc = storage_index_entry_get(t, g->id, &index, &status);
	}
	if (rc == CARELOG_ENOTFOUND) {
		rc = node_serve_error(PROTO_OP_GET, rc, out, "no entry with id %s", id_hex);
	} else if (rc != CARELOG_OK) {
		rc = node_serve_error(PROTO_OP_GET, rc, out, "cannot look up entry %s: %s", id_hex,
		                      carelog_strerror(rc));
	} else if (status == NODE_APPLY_REJECTED) {
		rc = node_serve_error(PROTO_OP_GET, CARELOG_EBADSIG, out,
		                      "entry %s at index %llu was rejected when applied", id_hex,
		                      (unsigned long long)index);
	} else if (status == NODE_APPLY_REFUSED) {
		rc = node_serve_error(PROTO_OP_GET, CARELOG_ENOTFOUND, out,
		                      "entry %s at index %llu was refused when applied (its author "
		                      "was not allowed to write it): it is part of no record",
		                      id_hex, (unsigned long long)index);
	} else {
		struct journal_record rec;
		uint8_t id[JOURNAL_ID_BYTES];
		char why[SERVE_MESSAGE_BYTES_MAX];
		rc = load_entry(t, index, true, &rec, h, id, why, sizeof(why));
		if (rc == CARELOG_OK && memcmp(id, g->id, sizeof(id)) != 0) {
			snprintf(why, sizeof(why),
			         "entry_index/%s points at index %llu, which holds "
			         "another entry",
			         id_hex, (unsigned long long)index);
			rc = CARELOG_ECORRUPT;
		}
		if (rc != CARELOG_OK) {
			rc = node_serve_error(PROTO_OP_GET, rc, out, "%s", why);
		} else {
			rc = get_judged(t, actor, now_ms, index, id, h, &rec, out, audit);
		}
	}
	storage_txn_abort(t);
	free(h);
	return rc;
}

/* --- access log --- */

/* Rows gathered from the log's index and this node's queue: the newest `cap`, one per
 * (node, seq). */
struct log_rows {
	struct policy_audit_row *rows;
	bool *shipped;
	uint32_t count, cap;
};

/* Newer first: time, then node and sequence (a total order, so replies are stable). */
static int newer_first(uint64_t a_time, uint64_t a_node, uint64_t a_seq, uint64_t b_time,
                       uint64_t b_node, uint64_t b_seq)
{
	if (a_time != b_time) {
		return a_time > b_time ? -1 : 1;
	}
	if (a_node != b_node) {
		return a_node > b_node ? -1 : 1;
	}
	return a_seq > b_seq ? -1 : a_seq < b_seq ? 1 : 0;
}

static int row_order(const struct policy_audit_row *a, const struct policy_audit_row *b)
{
	return newer_first(a->time_ms, a->node_id, a->seq, b->time_ms, b->node_id, b->seq);
}

static void log_rows_add(struct log_rows *c, const struct policy_audit_row *row, bool shipped)
{
	uint32_t oldest = 0;
	for (uint32_t i = 0; i < c->count; i++) {
		if (c->rows[i].node_id == row->node_id && c->rows[i].seq == row->seq) {
			c->shipped[i] = c->shipped[i] || shipped; /* shipped meanwhile: one row */
			return;
		}
		if (row_order(&c->rows[i], &c->rows[oldest]) > 0) {
			oldest = i;
		}
	}
	uint32_t at = c->count;
	if (c->count == c->cap) {
		if (c->cap == 0 || row_order(row, &c->rows[oldest]) >= 0) {
			return; /* older than every row kept */
		}
		at = oldest;
	} else {
		c->count++;
	}
	c->rows[at] = *row;
	c->shipped[at] = shipped;
}

static int log_rows_visit(struct log_rows *c, const uint8_t *bytes, size_t len, bool shipped)
{
	struct policy_audit_row row;
	int rc = policy_audit_row_decode(bytes, len, &row);
	if (rc != CARELOG_OK) {
		cl_log_error("serve.audit_row_corrupt", "shipped=%d err=%s", shipped ? 1 : 0,
		             carelog_errname(rc));
		return CARELOG_ECORRUPT; /* stops the walk; never served */
	}
	log_rows_add(c, &row, shipped);
	return 0;
}

static int visit_shipped(void *arg, const uint8_t *row, size_t len)
{
	return log_rows_visit(arg, row, len, true);
}

static int visit_pending(void *arg, const uint8_t *row, size_t len)
{
	return log_rows_visit(arg, row, len, false);
}

/* The same order over the reply's views (sorted once the shipped flags are attached). */
static int access_row_cmp(const void *a, const void *b)
{
	const struct proto_access_row *x = a, *y = b;
	return newer_first(x->time_ms, x->node_id, x->seq, y->time_ms, y->node_id, y->seq);
}

/* Who may read which access log: by patient the patient, an active proxy of the patient or an
 * auditor; by actor an auditor or the actor themself. */
static int access_log_decide(struct storage_txn *t, const struct access_actor *actor,
                             uint64_t now_ms, const char *patient, const char *actor_org,
                             const char *actor_id, enum access_basis *out_basis, char *reason,
                             size_t reason_len)
{
	*out_basis = ACCESS_BASIS_NONE;
	if (strcmp(actor->role, "auditor") == 0) {
		*out_basis = ACCESS_BASIS_ROLE;
		return CARELOG_OK;
	}
	if (patient[0] == '\0') {
		if (strcmp(actor->id, actor_id) == 0 && strcmp(actor->org, actor_org) == 0) {
			*out_basis = ACCESS_BASIS_SELF;
		} else {
			snprintf(reason, reason_len,
			         "only an auditor, or the person themself, may read what a person "
			         "accessed");
		}
		return CARELOG_OK;
	}
	if (strcmp(actor->role, "patient") != 0 && strcmp(actor->role, "proxy") != 0) {
		snprintf(reason, reason_len,
		         "role %s may not read a patient's access log (the patient, their proxy or "
		         "an auditor may)",
		         actor->role[0] != '\0' ? actor->role : "(none)");
		return CARELOG_OK;
	}
	struct access_read_decision *d = malloc(sizeof(*d));
	if (d == NULL) {
		return CARELOG_ENOMEM;
	}
	int rc = access_decide_read(t, actor, patient, now_ms, d);
	if (rc == CARELOG_OK) {
		if (d->allowed &&
		    (d->basis == ACCESS_BASIS_SELF || d->basis == ACCESS_BASIS_PROXY)) {
			*out_basis = d->basis;
		} else {
			snprintf(reason, reason_len, "%s",
			         d->allowed
			             ? "only the patient, their proxy or an auditor may read "
			               "a patient's access log"
			             : d->reason);
		}
	}
	free(d);
	return rc;
}

/* Gathers, orders and encodes the rows an allowed access-log request asks for. */
static int access_log_reply(const struct node_serve *sv, struct storage_txn *t,
                            const struct serve_view *v, const char *patient, const char *actor_org,
                            const char *actor_id, uint32_t limit, struct proto_buf *out,
                            uint64_t *out_count)
{
	struct log_rows c = {.rows = calloc(limit, sizeof(struct policy_audit_row)),
	                     .shipped = calloc(limit, sizeof(bool)),
	                     .cap = limit};
	struct proto_access_row *rows = calloc(limit, sizeof(*rows));
	int rc = c.rows == NULL || c.shipped == NULL || rows == NULL ? CARELOG_ENOMEM : CARELOG_OK;
	bool by_patient = patient[0] != '\0';
	if (rc == CARELOG_OK) {
		rc = access_log_query(t, by_patient ? patient : NULL, by_patient ? "" : actor_org,
		                      by_patient ? "" : actor_id, limit, visit_shipped, &c);
	}
	if (rc == CARELOG_OK && sv->audit_pending != NULL) {
		rc = sv->audit_pending(sv->audit_ctx, by_patient ? patient : NULL,
		                       by_patient ? "" : actor_org, by_patient ? "" : actor_id,
		                       visit_pending, &c);
	}
	if (rc != CARELOG_OK) {
		rc = node_serve_error(PROTO_OP_ACCESS_LOG, rc, out,
		                      "cannot read the access log: %s", carelog_strerror(rc));
	} else {
		struct proto_reply rep;
		reply_init(&rep, PROTO_OP_ACCESS_LOG);
		rep.u.access_log.applied_index = v->applied.index;
		for (uint32_t i = 0; i < c.count; i++) {
			const struct policy_audit_row *r = &c.rows[i];
			rows[i] = (struct proto_access_row){
			    .node_id = r->node_id,
			    .seq = r->seq,
			    .time_ms = r->time_ms,
			    .actor = str_of(r->actor),
			    .role = str_of(r->role),
			    .org = str_of(r->org),
			    .unit = str_of(r->unit),
			    .patient = str_of(r->patient),
			    .action = str_of(r->action),
			    .allowed = r->allowed,
			    .basis = str_of(r->basis),
			    .count = r->count,
			    .withheld = r->withheld,
			    .has_entry = r->has_entry,
			    .purpose = str_of(r->purpose),
			    .outcome = str_of(r->outcome),
			    .shipped = c.shipped[i],
			};
			memcpy(rows[i].entry, r->entry, sizeof(rows[i].entry));
		}
		qsort(rows, c.count, sizeof(*rows), access_row_cmp);
		rep.u.access_log.rows_count = c.count;
		rep.u.access_log.rows = rows;
		*out_count = c.count;
		rc = proto_reply_encode(&rep, out);
	}
	free(c.rows);
	free(c.shipped);
	free(rows);
	return rc;
}

int node_serve_access_log(const struct node_serve *sv, const struct access_actor *actor,
                          uint64_t now_ms, const struct proto_request *req, struct proto_buf *out,
                          struct policy_audit_row *audit)
{
	const struct proto_access_log_req *q = &req->u.access_log;
	char patient[JOURNAL_PATIENT_BYTES_MAX + 1];
	char actor_id[JOURNAL_ACTOR_BYTES_MAX + 1];
	char actor_org[JOURNAL_ORG_BYTES_MAX + 1];
	audit_begin(audit);
	if (!view_text(&q->patient, patient, sizeof(patient)) ||
	    !view_text(&q->actor_id, actor_id, sizeof(actor_id)) ||
	    !view_text(&q->actor_org, actor_org, sizeof(actor_org)) ||
	    (patient[0] == '\0') == (actor_id[0] == '\0')) {
		return node_serve_error(PROTO_OP_ACCESS_LOG, CARELOG_EINVAL, out,
		                        "name exactly one of patient or actor (each at most %d "
		                        "bytes, without NUL)",
		                        JOURNAL_PATIENT_BYTES_MAX);
	}
	audit_patient(audit, patient);
	if (actor_org[0] == '\0') {
		snprintf(actor_org, sizeof(actor_org), "%s", actor->org); /* the serving node's */
	}
	uint32_t limit = q->limit == 0 ? NODE_ACCESS_LOG_LIMIT_DEFAULT : q->limit;
	if (limit > PROTO_ACCESS_LOG_ROWS_MAX) {
		return node_serve_error(PROTO_OP_ACCESS_LOG, CARELOG_EINVAL, out,
		                        "limit %u exceeds the maximum of %d rows per answer", limit,
		                        PROTO_ACCESS_LOG_ROWS_MAX);
	}
	struct serve_view v = {.membership = NULL};
	struct storage_txn *t = NULL;
	int rc = storage_txn_begin_read(sv->storage, &t);
	if (rc == CARELOG_OK) {
		rc = view_load(t, &v);
	}
	enum access_basis basis = ACCESS_BASIS_NONE;
	char reason[SERVE_MESSAGE_BYTES_MAX] = "";
	if (rc == CARELOG_OK) {
		rc = access_log_decide(t, actor, now_ms, patient, actor_org, actor_id, &basis,
		                       reason, sizeof(reason));
	}
	if (rc != CARELOG_OK) {
		rc = node_serve_error(PROTO_OP_ACCESS_LOG, rc, out,
		                      "cannot read the node state: %s", carelog_strerror(rc));
	} else if (basis == ACCESS_BASIS_NONE) {
		rc = node_serve_error(PROTO_OP_ACCESS_LOG, CARELOG_EDENIED, out, "%s", reason);
	} else {
		uint64_t count = 0;
		rc = access_log_reply(sv, t, &v, patient, actor_org, actor_id, limit, out, &count);
		audit_decision(audit, true, basis, count, 0);
	}
	storage_txn_abort(t);
	return rc;
}

/* --- open break-the-glass grants --- */

struct btg_grants {
	struct access_btg *grants;
	uint32_t count, cap;
};

static int visit_btg(void *arg, const struct access_btg *g)
{
	struct btg_grants *c = arg;
	if (c->count < c->cap) { /* access_btg_open stops at the limit itself */
		c->grants[c->count++] = *g;
	}
	return 0;
}

static int btg_list_reply(struct storage_txn *t, const char *patient, uint32_t limit,
                          struct proto_buf *out, uint64_t *out_count)
{
	struct btg_grants c = {.grants = calloc(limit, sizeof(struct access_btg)), .cap = limit};
	struct proto_btg_grant *grants = calloc(limit, sizeof(*grants));
	int rc = c.grants == NULL || grants == NULL ? CARELOG_ENOMEM : CARELOG_OK;
	if (rc == CARELOG_OK) {
		rc = access_btg_open(t, patient[0] != '\0' ? patient : NULL, limit, visit_btg, &c);
	}
	if (rc != CARELOG_OK) {
		rc = node_serve_error(PROTO_OP_BTG_LIST, rc, out,
		                      "cannot read the break-the-glass grants: %s",
		                      carelog_strerror(rc));
	} else {
		for (uint32_t i = 0; i < c.count; i++) {
			const struct access_btg *g = &c.grants[i];
			grants[i] = (struct proto_btg_grant){
			    .index = g->index,
			    .patient = str_of(g->patient),
			    .actor = str_of(g->actor),
			    .role = str_of(g->role),
			    .org = str_of(g->org),
			    .unit = str_of(g->unit),
			    .granted_ms = g->granted_ms,
			    .expires_ms = g->expires_ms,
			    .reason_code = str_of(g->reason_code),
			    .reason_text = str_of(g->reason_text),
			};
			memcpy(grants[i].id, g->id, sizeof(grants[i].id));
		}
		struct proto_reply rep;
		reply_init(&rep, PROTO_OP_BTG_LIST);
		rep.u.btg_list.grants_count = c.count;
		rep.u.btg_list.grants = grants;
		*out_count = c.count;
		rc = proto_reply_encode(&rep, out);
	}
	free(c.grants);
	free(grants);
	return rc;
}

int node_serve_btg_list(const struct node_serve *sv, const struct access_actor *actor,
                        uint64_t now_ms, const struct proto_request *req, struct proto_buf *out,
                        struct policy_audit_row *audit)
{
	(void)now_ms; /* open = not reviewed; expired ones still wait for their review */
	const struct proto_btg_list_req *q = &req->u.btg_list;
	char patient[JOURNAL_PATIENT_BYTES_MAX + 1];
	audit_begin(audit);
	if (!view_text(&q->patient, patient, sizeof(patient))) {
		return node_serve_error(PROTO_OP_BTG_LIST, CARELOG_EINVAL, out,
		                        "patient is longer than %d bytes or contains NUL",
		                        JOURNAL_PATIENT_BYTES_MAX);
	}
	audit_patient(audit, patient);
	uint32_t limit = q->limit == 0 ? NODE_BTG_LIST_LIMIT_DEFAULT : q->limit;
	if (limit > PROTO_BTG_GRANTS_MAX) {
		return node_serve_error(PROTO_OP_BTG_LIST, CARELOG_EINVAL, out,
		                        "limit %u exceeds the maximum of %d grants per answer",
		                        limit, PROTO_BTG_GRANTS_MAX);
	}
	if (strcmp(actor->role, "auditor") != 0 && strcmp(actor->role, "admin") != 0) {
		return node_serve_error(
		    PROTO_OP_BTG_LIST, CARELOG_EDENIED, out,
		    "role %s may not list break-the-glass grants (an auditor or "
		    "admin may)",
		    actor->role[0] != '\0' ? actor->role : "(none)");
	}
	struct storage_txn *t = NULL;
	int rc = storage_txn_begin_read(sv->storage, &t);
	if (rc != CARELOG_OK) {
		rc = node_serve_error(PROTO_OP_BTG_LIST, rc, out, "cannot read the node state: %s",
		                      carelog_strerror(rc));
	} else {
		uint64_t count = 0;
		rc = btg_list_reply(t, patient, limit, out, &count);
		audit_decision(audit, true, ACCESS_BASIS_ROLE, count, 0);
	}
	storage_txn_abort(t);
	return rc;
}

/* --- verify --- */

struct verify_walk {
	struct storage_txn *t;
	struct node_apply_state *state; /* replayed from genesis */
	struct membership *conf;
	struct node_apply_class *cls;
	uint64_t entries_checked;
	uint64_t problems_count;
	uint32_t problems_listed;
	char (*problem_text)[NODE_PROBLEM_BYTES_MAX];
	struct proto_str *problems;
	bool stopped;
	uint64_t chain_broken_at; /* first log index that could not be read */
};

static void problem(struct verify_walk *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void problem(struct verify_walk *w, const char *fmt, ...)
{
	w->problems_count++;
	if (w->problems_listed == PROTO_PROBLEMS_MAX) {
		return;
	}
	char *text = w->problem_text[w->problems_listed];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, NODE_PROBLEM_BYTES_MAX, fmt, ap);
	va_end(ap);
	w->problems[w->problems_listed++] = str_of(text);
}

static void verify_corrupt(void *arg, const char *db, const char *key)
{
	problem(arg, "%s/%s: checksum mismatch", db, key);
}

/* Checks that an applied record's index rows exist and agree with the log. */
static void verify_record_rows(struct verify_walk *w, uint64_t index)
{
	const struct node_apply_class *c = w->cls;
	char id_hex[2 * JOURNAL_ID_BYTES + 1];
	cl_hex_encode(id_hex, c->id, sizeof(c->id));
	uint64_t ei = 0;
	uint8_t es = 0;
	int rc = storage_index_entry_get(w->t, c->id, &ei, &es);
	if (rc != CARELOG_OK) {
		problem(w, "entry_index/%s: %s (log/%llu)", id_hex,
		        rc == CARELOG_ENOTFOUND ? "missing" : carelog_errname(rc),
		        (unsigned long long)index);
		return;
	}
	if (ei < index) {
		/* The same signed header replayed later is a recorded no-op; the row must then
		 * point at the first copy, which carries this very id. */
		struct storage_entry first;
		struct journal_record rec;
		uint8_t first_id[JOURNAL_ID_BYTES];
		rc = storage_log_get(w->t, ei, &first);
		if (rc == CARELOG_OK) {
			rc = journal_record_decode(first.data, first.data_len, &rec);
		}
		if (rc == CARELOG_OK) {
			journal_entry_id(rec.header, rec.header_len, first_id);
			rc = memcmp(first_id, c->id, sizeof(first_id)) == 0 ? CARELOG_OK
			                                                     : CARELOG_EMISMATCH;
		}
		if (rc != CARELOG_OK) {
			problem(w, "entry_index/%s: points at %llu, which does not hold it (log/%llu "
			        "does)", id_hex, (unsigned long long)ei, (unsigned long long)index);
		}
		return;
	}
	if (ei != index) {
		problem(w, "entry_index/%s: points at %llu, the log has it at %llu", id_hex,
		        (unsigned long long)ei, (unsigned long long)index);
		return;
	}
	if (c->verdict != CARELOG_OK) {
		if (es != NODE_APPLY_REJECTED) {
			problem(w,
			        "entry_index/%s: status %u, but log/%llu fails verification (%s)",
			        id_hex, es, (unsigned long long)index, carelog_errname(c->verdict));
		}
		return;
	}
	uint8_t key[NODE_REQUEST_KEY_BYTES_MAX];
	size_t key_len = 0;
	rc = node_request_key(c->header.org, strlen(c->header.org), c->header.request_id,
	                      strlen(c->header.request_id), key, &key_len);
	uint64_t ri = 0;
	uint8_t rid[JOURNAL_ID_BYTES];
	if (rc == CARELOG_OK) {
		rc = storage_index_request_get(w->t, key, key_len, &ri, rid);
	}
	if (rc != CARELOG_OK) {
		problem(w, "request_index: row for log/%llu %s", (unsigned long long)index,
		        rc == CARELOG_ENOTFOUND ? "missing" : carelog_errname(rc));
		return;
	}
	if (ri < index) {
		if (es != NODE_APPLY_DUPLICATE) {
			problem(w,
			        "entry_index/%s: status %u, but log/%llu repeats the request of "
			        "log/%llu",
			        id_hex, es, (unsigned long long)index, (unsigned long long)ri);
		}
		return;
	}
	if (ri != index || memcmp(rid, c->id, sizeof(rid)) != 0 ||
	    (es != NODE_APPLY_ACCEPTED && es != NODE_APPLY_REFUSED)) {
		problem(w, "request_index: row for log/%llu points at %llu (entry status %u)",
		        (unsigned long long)index, (unsigned long long)ri, es);
		return;
	}
	/* Accepted entries of a patient are in the patient's index; refused ones and region-wide
	 * ones ("-") never are. */
	bool want_row = es == NODE_APPLY_ACCEPTED && node_apply_patient_indexed(c->header.patient);
	uint8_t patient_key[CL_SHA256_BYTES];
	journal_patient_key(c->header.patient, patient_key);
	uint64_t pi = 0;
	size_t n = 0;
	bool more = false;
	rc = storage_index_patient_scan(w->t, patient_key, index, &pi, 1, &n, &more);
	bool has_row = rc == CARELOG_OK && n == 1 && pi == index;
	if (rc != CARELOG_OK || has_row != want_row) {
		problem(w, "patient_index: row for log/%llu %s", (unsigned long long)index,
		        rc != CARELOG_OK ? carelog_errname(rc)
		        : want_row       ? "missing"
		                         : "present, but the entry is refused or region-wide");
	}
}

static void verify_visit(struct verify_walk *w, const struct storage_entry *se)
{
	struct consensus_entry e = {.term = se->term,
	                            .index = se->index,
	                            .type = se->type,
	                            .data_len = se->data_len,
	                            .data = se->data};
	if (e.index != w->state->applied_index + 1) {
		problem(w, "log/%llu: expected index %llu (a gap in the log)",
		        (unsigned long long)e.index,
		        (unsigned long long)w->state->applied_index + 1);
		w->stopped = true;
		return;
	}
	const char *reason = NULL;
	int rc = node_apply_classify(w->state, &e, w->conf, w->cls, &reason);
	if (rc != CARELOG_OK) {
		problem(w, "log/%llu: %s (%s)", (unsigned long long)e.index, reason,
		        carelog_errname(rc));
		w->stopped = true;
		return;
	}
	if (w->cls->kind == NODE_APPLY_KIND_CONF) {
		w->state->membership = *w->conf;
		w->state->has_membership = true;
	} else if (w->cls->kind == NODE_APPLY_KIND_RECORD) {
		verify_record_rows(w, e.index);
	}
	uint8_t leaf[CL_SHA256_BYTES];
	node_apply_leaf(&e, w->cls, leaf);
	journal_chain_extend(w->state->chain_head, leaf);
	w->state->applied_index = e.index;
	w->entries_checked++;
}

/* Walks log entries 1..applied_index one by one, so a corrupt entry (already listed by
 * storage_verify) is skipped and the rest are still checked. */
static int verify_walk_log(struct verify_walk *w, uint64_t applied_index)
{
	for (uint64_t i = 1; i <= applied_index && !w->stopped; i++) {
		struct storage_entry se;
		int rc = storage_log_get(w->t, i, &se);
		if (rc == CARELOG_ECORRUPT || rc == CARELOG_ENOTFOUND) {
			if (rc == CARELOG_ENOTFOUND) {
				problem(w, "log/%llu: missing below the applied index",
				        (unsigned long long)i);
			}
			if (w->chain_broken_at == 0) {
				w->chain_broken_at = i;
			}
			w->state->applied_index = i; /* skip it; later entries are still checked */
			continue;
		}
		if (rc != CARELOG_OK) {
			return rc;
		}
		verify_visit(w, &se);
	}
	return CARELOG_OK;
}

int node_serve_verify(const struct node_serve *sv, struct proto_buf *out)
{
	struct verify_walk w = {
	    .state = calloc(1, sizeof(struct node_apply_state)),
	    .conf = malloc(sizeof(struct membership)),
	    .cls = malloc(sizeof(struct node_apply_class)),
	    .problem_text = calloc(PROTO_PROBLEMS_MAX, NODE_PROBLEM_BYTES_MAX),
	    .problems = calloc(PROTO_PROBLEMS_MAX, sizeof(struct proto_str)),
	};
	int rc = (w.state == NULL || w.conf == NULL || w.cls == NULL || w.problem_text == NULL ||
	          w.problems == NULL)
	             ? CARELOG_ENOMEM
	             : CARELOG_OK;
	uint64_t values_checked = 0, corrupt_count = 0;
	if (rc == CARELOG_OK) {
		rc = storage_verify(sv->storage, verify_corrupt, &w, &values_checked,
		                    &corrupt_count);
	}
	struct storage_applied applied;
	memset(&applied, 0, sizeof(applied));
	if (rc == CARELOG_OK) {
		rc = storage_txn_begin_read(sv->storage, &w.t);
	}
	if (rc == CARELOG_OK) {
		rc = storage_applied_get(w.t, &applied);
	}
	if (rc == CARELOG_OK) {
		rc = verify_walk_log(&w, applied.index);
	}
	if (rc == CARELOG_OK && !w.stopped) {
		if (w.chain_broken_at != 0) {
			problem(&w, "applied/chain_head: cannot be recomputed past log/%llu",
			        (unsigned long long)w.chain_broken_at);
		} else if (w.state->applied_index != applied.index) {
			problem(&w, "log: walked to %llu, applied index is %llu",
			        (unsigned long long)w.state->applied_index,
			        (unsigned long long)applied.index);
		} else if (memcmp(w.state->chain_head, applied.chain_head, CL_SHA256_BYTES) != 0) {
			problem(&w,
			        "applied/chain_head: the recomputed chain head differs from the "
			        "stored one at index %llu",
			        (unsigned long long)applied.index);
		}
	}
	if (rc != CARELOG_OK) {
		rc = node_serve_error(PROTO_OP_VERIFY, rc, out, "verify could not run: %s",
		                      carelog_strerror(rc));
	} else {
		struct proto_reply rep;
		reply_init(&rep, PROTO_OP_VERIFY);
		struct proto_verify_reply *vr = &rep.u.verify;
		vr->ok = w.problems_count == 0;
		vr->entries_checked = w.entries_checked;
		vr->values_checked = values_checked;
		vr->problems_count = w.problems_count;
		vr->problems_listed = w.problems_listed;
		vr->problems = w.problems;
		memcpy(vr->chain_head, applied.chain_head, sizeof(vr->chain_head));
		vr->applied_index = applied.index;
		rc = proto_reply_encode(&rep, out);
		cl_log_info("verify.done", "ok=%d entries=%llu values=%llu problems=%llu",
		            vr->ok ? 1 : 0, (unsigned long long)w.entries_checked,
		            (unsigned long long)values_checked,
		            (unsigned long long)w.problems_count);
	}
	storage_txn_abort(w.t);
	free(w.state);
	free(w.conf);
	free(w.cls);
	free(w.problem_text);
	free(w.problems);
	return rc;
}
