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

static void entry_fill(struct proto_entry *out, uint64_t index, const uint8_t *id,
                       const struct journal_header *h, const struct journal_record *r)
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
	*out = e;
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
	struct serve_view view;
};

static void read_scratch_free(struct read_scratch *r)
{
	free(r->entries);
	free(r->headers);
}

/* Scans the patient's index rows and fills rep->u.read; on a problem encodes the error into
 * out and returns CARELOG_ECORRUPT (or a storage error). */
static int read_collect(const struct node_serve *sv, struct storage_txn *t,
                        const struct proto_read_req *req,
                        const uint8_t patient_key[CL_SHA256_BYTES], const char *kind,
                        uint32_t limit, struct read_scratch *r, struct proto_read_reply *rr,
                        struct proto_buf *out)
{
	(void)sv;
	uint64_t from = req->since_index + 1;
	if (from == 0) {
		return CARELOG_OK; /* since_index = UINT64_MAX: nothing after it */
	}
	uint64_t indexes[SERVE_SCAN_CHUNK];
	uint64_t scanned = 0;
	for (;;) {
		size_t n = 0;
		bool chunk_more = false;
		int rc = storage_index_patient_scan(t, patient_key, from, indexes, SERVE_SCAN_CHUNK,
		                                    &n, &chunk_more);
		if (rc != CARELOG_OK) {
			return node_serve_error(PROTO_OP_READ, rc, out,
			                        "patient index failed (%s) at or after index %llu",
			                        carelog_errname(rc),
			                        (unsigned long long)from) == CARELOG_OK
			           ? rc
			           : CARELOG_ENOMEM;
		}
		for (size_t j = 0; j < n; j++) {
			if (rr->entries_count == limit || scanned == NODE_READ_SCAN_INDEXES_MAX) {
				rr->more = true;
				return CARELOG_OK;
			}
			scanned++;
			struct journal_record rec;
			struct journal_header *h = &r->headers[rr->entries_count];
			uint8_t id[JOURNAL_ID_BYTES];
			char why[SERVE_MESSAGE_BYTES_MAX];
			rc = load_entry(t, indexes[j], false, &rec, h, id, why, sizeof(why));
			if (rc != CARELOG_OK) {
				return node_serve_error(PROTO_OP_READ, rc, out, "%s", why) ==
				               CARELOG_OK
				           ? rc
				           : CARELOG_ENOMEM;
			}
			if (kind[0] != '\0' && strcmp(h->kind, kind) != 0) {
				continue;
			}
			entry_fill(&r->entries[rr->entries_count], indexes[j], id, h, &rec);
			rr->entries_count++;
		}
		if (!chunk_more || n == 0) {
			return CARELOG_OK;
		}
		from = indexes[n - 1] + 1;
	}
}

int node_serve_read(const struct node_serve *sv, const struct proto_read_req *req,
                    struct proto_buf *out)
{
	char patient[JOURNAL_PATIENT_BYTES_MAX + 1];
	char kind[JOURNAL_KIND_BYTES_MAX + 1];
	if (req->patient.len == 0 || !view_text(&req->patient, patient, sizeof(patient))) {
		return node_serve_error(PROTO_OP_READ, CARELOG_EINVAL, out,
		                        "patient must be 1 to %d bytes without NUL",
		                        JOURNAL_PATIENT_BYTES_MAX);
	}
	if (!view_text(&req->kind, kind, sizeof(kind))) {
		return node_serve_error(PROTO_OP_READ, CARELOG_EINVAL, out,
		                        "kind is longer than %d bytes", JOURNAL_KIND_BYTES_MAX);
	}
	uint32_t limit = req->limit == 0 ? NODE_READ_LIMIT_DEFAULT : req->limit;
	if (limit > PROTO_READ_LIMIT_MAX) {
		return node_serve_error(PROTO_OP_READ, CARELOG_EINVAL, out,
		                        "limit %u exceeds the maximum of %d entries per read",
		                        limit, PROTO_READ_LIMIT_MAX);
	}
	struct read_scratch r = {
	    .entries = calloc(limit, sizeof(struct proto_entry)),
	    .headers = calloc(limit, sizeof(struct journal_header)),
	};
	struct storage_txn *t = NULL;
	int rc = (r.entries == NULL || r.headers == NULL) ? CARELOG_ENOMEM : CARELOG_OK;
	if (rc == CARELOG_OK) {
		rc = storage_txn_begin_read(sv->storage, &t);
	}
	if (rc == CARELOG_OK) {
		rc = view_load(t, &r.view);
	}
	if (rc != CARELOG_OK) {
		rc = node_serve_error(PROTO_OP_READ, rc, out, "cannot read the node state: %s",
		                      carelog_strerror(rc));
		storage_txn_abort(t);
		read_scratch_free(&r);
		return rc;
	}
	struct proto_reply rep;
	reply_init(&rep, PROTO_OP_READ);
	struct proto_read_reply *rr = &rep.u.read;
	rr->applied_index = r.view.applied.index;
	/* Lag behind the commit index this node knows of (the leader's, as last heard): a
	 * learner still catching up must never look current. */
	uint64_t known_commit = r.view.hs.commit;
	if (sv->loop != NULL && node_loop_known_commit_index(sv->loop) > known_commit) {
		known_commit = node_loop_known_commit_index(sv->loop);
	}
	rr->lag = known_commit > r.view.applied.index ? known_commit - r.view.applied.index : 0;
	rr->stale = rr->lag > sv->stale_lag_max;
	rr->withheld = 0; /* access rules come later */
	rr->entries = r.entries;
	uint8_t patient_key[CL_SHA256_BYTES];
	journal_patient_key(patient, patient_key);
	rc = read_collect(sv, t, req, patient_key, kind, limit, &r, rr, out);
	if (rc == CARELOG_OK) {
		rc =
		    proto_reply_encode(&rep, out); /* bodies are views into the txn: encode first */
	} else if (rc != CARELOG_ENOMEM) {
		rc = CARELOG_OK; /* an error reply was encoded */
	}
	storage_txn_abort(t);
	read_scratch_free(&r);
	return rc;
}

/* --- get --- */

int node_serve_get(const struct node_serve *sv, const struct proto_get_req *req,
                   struct proto_buf *out)
{
	char id_hex[2 * PROTO_ID_BYTES + 1];
	cl_hex_encode(id_hex, req->id, PROTO_ID_BYTES);
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
		rc = storage_index_entry_get(t, req->id, &index, &status);
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
	} else {
		struct journal_record rec;
		uint8_t id[JOURNAL_ID_BYTES];
		char why[SERVE_MESSAGE_BYTES_MAX];
		rc = load_entry(t, index, true, &rec, h, id, why, sizeof(why));
		if (rc == CARELOG_OK && memcmp(id, req->id, sizeof(id)) != 0) {
			snprintf(why, sizeof(why),
			         "entry_index/%s points at index %llu, which holds "
			         "another entry",
			         id_hex, (unsigned long long)index);
			rc = CARELOG_ECORRUPT;
		}
		if (rc != CARELOG_OK) {
			rc = node_serve_error(PROTO_OP_GET, rc, out, "%s", why);
		} else {
			struct proto_reply rep;
			reply_init(&rep, PROTO_OP_GET);
			entry_fill(&rep.u.get, index, id, h, &rec);
			rc = proto_reply_encode(&rep, out);
		}
	}
	storage_txn_abort(t);
	free(h);
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
	if (ri != index || memcmp(rid, c->id, sizeof(rid)) != 0 || es != NODE_APPLY_ACCEPTED) {
		problem(w, "request_index: row for log/%llu points at %llu (entry status %u)",
		        (unsigned long long)index, (unsigned long long)ri, es);
		return;
	}
	uint8_t patient_key[CL_SHA256_BYTES];
	journal_patient_key(c->header.patient, patient_key);
	uint64_t pi = 0;
	size_t n = 0;
	bool more = false;
	rc = storage_index_patient_scan(w->t, patient_key, index, &pi, 1, &n, &more);
	if (rc != CARELOG_OK || n != 1 || pi != index) {
		problem(w, "patient_index: row for log/%llu %s", (unsigned long long)index,
		        rc != CARELOG_OK ? carelog_errname(rc) : "missing");
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
