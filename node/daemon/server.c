/* The client API server: the one file of the daemon that talks to nng. */
#include "node/daemon/server.h"

#include "carelog/errors.h"
#include "common/assert.h"
#include "common/log.h"
#include "node/daemon/serve.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

enum {
	SERVER_IPC_PATH_BYTES_MAX = sizeof(((struct sockaddr_un *)0)->sun_path),
	SERVER_PROBE_WAIT_MS = 1000, /* for a live node's protocol header */
	SERVER_PIPE_WAIT_MS = 500,   /* for the socket to report the probe's connection */
	/* A probe is a local connect and an 8-byte exchange: cheap enough to run every second,
	 * so a listener hit by nanomsg/nng#1518 is back within about 3 s. */
	SERVER_WATCHDOG_PERIOD_MS = 1000,
	SERVER_WATCHDOG_FAILURES_MAX = 2, /* probes missed in a row before a listener restart */
	SERVER_ERROR_MESSAGE_BYTES_MAX = 320,
	SERVER_REASON_BYTES_MAX = 200, /* a denial's reason */
};

/* The operator role (status, verify, member, transfer) and the node's own (never a client's). */
#define SERVER_ROLE_OPERATOR "operator"
#define SERVER_ROLE_SYSTEM   "system"

enum server_work_state {
	WORK_RECV = 0,
	WORK_HANDLE = 1, /* a request is being handled on a callback thread */
	WORK_WAIT_APPEND = 2,
	WORK_WAIT_READ = 3,
	WORK_WAIT_AUDIT = 4, /* the reply waits for its audit row to be durable */
	WORK_SEND = 5,
};

/* One nng context and what it is doing. */
struct server_work {
	struct node_server *srv;
	nng_ctx ctx;
	nng_aio *io;    /* recv and send */
	nng_aio *timer; /* waits: append timeout, min-index */
	pthread_mutex_t mu;
	enum server_work_state state;
	uint64_t generation; /* which request a loop answer belongs to */
	nng_msg *request;    /* kept while waiting: the decoded request views point into it */
	struct proto_request req;
	uint32_t wait_ms;
	bool result_ready;
	struct node_append_result result;
	uint64_t wait_index; /* WAIT_READ: serve once applied >= this */
	bool in_wait_list;   /* guarded by srv->wait_mu */
	struct server_work *wait_next;
	/* Who asks (the request's actor with the node's defaults; org = this node's). */
	struct access_actor actor;
	char purpose[POLICY_PURPOSE_BYTES_MAX + 1];
	/* POLICY: the patient taken from the referenced entry when the request leaves it empty. */
	char patient[JOURNAL_PATIENT_BYTES_MAX + 1];
	/* This request's audit row, and the reply held until the row is durable. */
	struct policy_audit_row audit;
	struct proto_buf reply;
};

struct node_server {
	struct node_server_config config;
	struct node_serve serve;
	struct node_loop *loop;
	nng_socket sock;
	bool sock_open;
	nng_listener listener;
	/* Endpoint watchdog (ipc): see watchdog_thread. */
	pthread_t watchdog;
	bool watchdog_running;
	bool watchdog_stop;   /* guarded by watchdog_mu */
	uint64_t pipes_added; /* guarded by watchdog_mu: connections the socket took */
	pthread_mutex_t watchdog_mu;
	pthread_cond_t watchdog_cond;
	char ipc_wanted[SERVER_IPC_PATH_BYTES_MAX]; /* the endpoint's socket file */
	char ipc_path[SERVER_IPC_PATH_BYTES_MAX];   /* set once we listen: ours to remove */
	struct server_work *works;
	uint32_t works_count;
	atomic_bool accepting;
	/* Held around "accepting? then submit to the loop": once node_server_stop_accepting
	 * returns, no thread is inside node_loop_submit or will enter it, so the loop can be
	 * stopped and destroyed while nng callbacks still run. */
	pthread_mutex_t submit_mu;
	_Atomic uint64_t applied_index;
	_Atomic uint64_t commit_index;
	/* Readers parked on --min-index / linearizable, woken by node_server_on_applied. */
	pthread_mutex_t wait_mu;
	struct server_work *wait_head;
	/* Contexts between a received request and its sent reply (for a clean stop). */
	pthread_mutex_t busy_mu;
	pthread_cond_t busy_cond;
	uint32_t busy_count;
	/* This node's organisation in the applied membership ("" until known). */
	pthread_mutex_t org_mu;
	char org[JOURNAL_ORG_BYTES_MAX + 1];
};

static int nng_to_carelog(int rv)
{
	switch (rv) {
	case 0:
		return CARELOG_OK;
	case NNG_ENOMEM:
		return CARELOG_ENOMEM;
	case NNG_ETIMEDOUT:
		return CARELOG_ETIMEDOUT;
	case NNG_ECLOSED:
		return CARELOG_ECLOSED;
	case NNG_EADDRINUSE:
		return CARELOG_EEXIST;
	case NNG_EADDRINVAL:
	case NNG_EINVAL:
		return CARELOG_EINVAL;
	default:
		return CARELOG_EIO;
	}
}

static void busy_change(struct node_server *srv, int delta)
{
	pthread_mutex_lock(&srv->busy_mu);
	if (delta > 0) {
		srv->busy_count++;
	} else {
		CL_ASSERT(srv->busy_count > 0);
		srv->busy_count--;
		pthread_cond_broadcast(&srv->busy_cond);
	}
	pthread_mutex_unlock(&srv->busy_mu);
}

/* Sends `reply` (consumed) on the work's context; the io callback then receives again. */
static void work_send(struct server_work *w, struct proto_buf *reply)
{
	pthread_mutex_lock(&w->mu);
	w->state = WORK_SEND;
	pthread_mutex_unlock(&w->mu);
	if (w->request != NULL) {
		nng_msg_free(w->request);
		w->request = NULL;
	}
	nng_msg *msg = NULL;
	if (reply->len == 0 || nng_msg_alloc(&msg, 0) != 0 ||
	    nng_msg_append(msg, reply->data, reply->len) != 0) {
		/* Nothing can be sent: the client times out and retries. Receive again. */
		if (msg != NULL) {
			nng_msg_free(msg);
		}
		proto_buf_free(reply);
		cl_log_error("server.reply_failed", "err=ENOMEM");
		pthread_mutex_lock(&w->mu);
		w->state = WORK_RECV;
		pthread_mutex_unlock(&w->mu);
		busy_change(w->srv, -1);
		nng_ctx_recv(w->ctx, w->io);
		return;
	}
	proto_buf_free(reply);
	nng_aio_set_msg(w->io, msg);
	nng_ctx_send(w->ctx, w->io);
}

/* An error reply sent as it is: only for requests that could not be decoded (no actor, no
 * audit row). Everything decoded goes through work_finish. */
static void work_send_error(struct server_work *w, uint8_t op, int err, const char *msg)
{
	struct proto_buf out = {0};
	if (node_serve_error(op, err, &out, "%s", msg) != CARELOG_OK) {
		proto_buf_free(&out);
	}
	work_send(w, &out);
}

/* --- audit: every decoded request's row is durable before its reply leaves --- */

/* Copies a view into a NUL-terminated field; false when it does not fit or holds a NUL. */
static bool view_copy(struct proto_str v, char *dst, size_t cap)
{
	if (v.len >= cap || (v.len > 0 && memchr(v.ptr, '\0', v.len) != NULL)) {
		return false;
	}
	if (v.len > 0) {
		memcpy(dst, v.ptr, v.len);
	}
	dst[v.len] = '\0';
	return true;
}

/* The audit row's action for the request (docs/entry-format.md section 11). */
static const char *audit_action(const struct proto_request *req)
{
	if (req->op == PROTO_OP_POLICY) {
		const struct proto_str k = req->u.policy.kind;
		if (k.len == 9 && memcmp(k.ptr, "btg-grant", 9) == 0) {
			return "btg";
		}
		if (k.len == 10 && memcmp(k.ptr, "btg-review", 10) == 0) {
			return "btg-review";
		}
		return "policy";
	}
	return proto_op_name(req->op);
}

/* The patient a request names (the serve functions set the one they judged). */
static struct proto_str request_patient(const struct proto_request *req)
{
	switch (req->op) {
	case PROTO_OP_APPEND:
		return req->u.append.patient;
	case PROTO_OP_READ:
		return req->u.read.patient;
	case PROTO_OP_POLICY:
		return req->u.policy.patient;
	case PROTO_OP_ACCESS_LOG:
		return req->u.access_log.patient;
	case PROTO_OP_BTG_LIST:
		return req->u.btg_list.patient;
	default:
		return (struct proto_str){.ptr = "", .len = 0};
	}
}

/* Starts the request's row: nothing decided yet (denied, basis none). */
static void audit_begin(struct server_work *w)
{
	struct policy_audit_row *r = &w->audit;
	memset(r, 0, sizeof(*r));
	snprintf(r->action, sizeof(r->action), "%s", audit_action(&w->req));
	snprintf(r->basis, sizeof(r->basis), "%s", access_basis_name(ACCESS_BASIS_NONE));
	if (!view_copy(request_patient(&w->req), r->patient, sizeof(r->patient))) {
		r->patient[0] = '\0';
	}
	if (w->req.op == PROTO_OP_GET) {
		r->has_entry = true;
		memcpy(r->entry, w->req.u.get.id, sizeof(r->entry));
	}
}

/* The error code an encoded reply carries (CARELOG_ENOMEM for none). */
static int reply_err(const struct proto_buf *out)
{
	if (out->len == 0) {
		return CARELOG_ENOMEM;
	}
	int err = CARELOG_OK;
	int rc = proto_reply_peek_err(out->data, out->len, &err);
	return rc == CARELOG_OK ? err : rc;
}

static void audit_done(void *ctx, int err)
{
	struct server_work *w = ctx;
	struct proto_buf out = w->reply;
	w->reply = (struct proto_buf){0};
	if (err == CARELOG_OK) {
		work_send(w, &out);
		return;
	}
	/* Not durable: the answer never leaves, only an error does. */
	proto_buf_free(&out);
	char msg[SERVER_ERROR_MESSAGE_BYTES_MAX];
	if (err == CARELOG_EBUSY) {
		snprintf(msg, sizeof(msg),
		         "the audit queue is full: the access cannot be recorded, retry later "
		         "(nothing is served unaudited)");
	} else if (err == CARELOG_ECLOSED) {
		snprintf(msg, sizeof(msg),
		         "node is stopping: the access cannot be recorded (nothing is served "
		         "unaudited)");
	} else {
		snprintf(msg, sizeof(msg),
		         "the access cannot be recorded in the audit queue (%s): nothing is served "
		         "unaudited",
		         carelog_errname(err));
	}
	work_send_error(w, w->req.op, err, msg);
}

/* Records the request's row (outcome = the reply's error) and sends `out` (consumed) once it
 * is durable, or an error if it cannot be made durable. */
static void work_finish(struct server_work *w, struct proto_buf *out)
{
#ifdef CARELOG_BENCH_UNAUDITED
	/* Benchmark-only build (tests/bench: audited vs unaudited reads): no row, no wait. */
	work_send(w, out);
	return;
#endif
	struct policy_audit_row *r = &w->audit;
	snprintf(r->actor, sizeof(r->actor), "%s", w->actor.id);
	snprintf(r->role, sizeof(r->role), "%s", w->actor.role);
	snprintf(r->org, sizeof(r->org), "%s", w->actor.org);
	snprintf(r->unit, sizeof(r->unit), "%s", w->actor.unit);
	snprintf(r->purpose, sizeof(r->purpose), "%s", w->purpose);
	snprintf(r->outcome, sizeof(r->outcome), "%s", carelog_errname(reply_err(out)));
	w->reply = *out;
	*out = (struct proto_buf){0};
	pthread_mutex_lock(&w->mu);
	w->state = WORK_WAIT_AUDIT;
	pthread_mutex_unlock(&w->mu);
	node_audit_record(w->srv->config.audit, r, audit_done, w); /* may answer at once */
}

static void work_finish_error(struct server_work *w, int err, const char *msg)
{
	struct proto_buf out = {0};
	if (node_serve_error(w->req.op, err, &out, "%s", msg) != CARELOG_OK) {
		proto_buf_free(&out);
	}
	work_finish(w, &out);
}

static void work_deny(struct server_work *w, const char *reason)
{
	w->audit.allowed = false;
	snprintf(w->audit.basis, sizeof(w->audit.basis), "%s",
	         access_basis_name(ACCESS_BASIS_NONE));
	work_finish_error(w, CARELOG_EDENIED, reason);
}

/* --- appends --- */

static void append_reply(struct server_work *w)
{
	struct proto_buf out = {0};
	const struct node_append_result *r = &w->result;
	struct proto_str request_id =
	    w->req.op == PROTO_OP_POLICY ? w->req.u.policy.request_id : w->req.u.append.request_id;
	if (!w->result_ready) {
		char msg[160];
		snprintf(msg, sizeof(msg),
		         "not committed within %u ms: the outcome is pending; "
		         "retry with the same request id",
		         w->wait_ms);
		struct proto_reply rep;
		memset(&rep, 0, sizeof(rep));
		rep.version = PROTO_VERSION;
		rep.op = w->req.op;
		rep.err = CARELOG_EPENDING;
		rep.msg = (struct proto_str){.ptr = msg, .len = strlen(msg)};
		rep.u.append.committed = false;
		rep.u.append.request_id = request_id;
		if (proto_reply_encode(&rep, &out) != CARELOG_OK) {
			proto_buf_free(&out);
		}
	} else if (r->err != CARELOG_OK) {
		if (r->err == CARELOG_EDENIED) {
			w->audit.allowed = false; /* refused when applied */
			snprintf(w->audit.basis, sizeof(w->audit.basis), "%s",
			         access_basis_name(ACCESS_BASIS_NONE));
		}
		if (node_serve_error(w->req.op, r->err, &out, "%s", r->msg) != CARELOG_OK) {
			proto_buf_free(&out);
		}
	} else {
		struct proto_reply rep;
		memset(&rep, 0, sizeof(rep));
		rep.version = PROTO_VERSION;
		rep.op = w->req.op;
		rep.err = CARELOG_OK;
		rep.msg = (struct proto_str){.ptr = "", .len = 0};
		rep.u.append.committed = true;
		rep.u.append.index = r->index;
		memcpy(rep.u.append.id, r->id, sizeof(rep.u.append.id));
		rep.u.append.request_id = request_id;
		rep.u.append.duplicate = r->duplicate;
		if (proto_reply_encode(&rep, &out) != CARELOG_OK) {
			proto_buf_free(&out);
		}
		w->audit.count = 1;
		w->audit.has_entry = true;
		memcpy(w->audit.entry, r->id, sizeof(w->audit.entry));
	}
	work_finish(w, &out);
}

/* The request as the loop must see it: the resolved actor (and, for POLICY, the patient the
 * node filled in), so the loop signs exactly who was judged here. */
static int loop_item_create(struct server_work *w, struct node_waiter waiter,
                            struct node_append_item **out)
{
	struct proto_request req = w->req;
	req.actor.id = (struct proto_str){.ptr = w->actor.id, .len = strlen(w->actor.id)};
	req.actor.role = (struct proto_str){.ptr = w->actor.role, .len = strlen(w->actor.role)};
	req.actor.unit = (struct proto_str){.ptr = w->actor.unit, .len = strlen(w->actor.unit)};
	req.actor.purpose = (struct proto_str){.ptr = w->purpose, .len = strlen(w->purpose)};
	if (req.op == PROTO_OP_POLICY && req.u.policy.patient.len == 0 && w->patient[0] != '\0') {
		req.u.policy.patient =
		    (struct proto_str){.ptr = w->patient, .len = strlen(w->patient)};
	}
	struct proto_buf buf = {0};
	int rc = proto_request_encode(&req, &buf);
	if (rc == CARELOG_OK) {
		rc = node_append_item_create(buf.data, buf.len, waiter, out);
	}
	proto_buf_free(&buf);
	return rc;
}

/* Hands the request to the loop (appends, policy entries, linearizable read points,
 * membership changes, transfers) and parks the context on its timer until the loop answers. */
static void submit_to_loop(struct server_work *w)
{
	struct node_server *srv = w->srv;
	if (!atomic_load(&srv->accepting) || srv->loop == NULL) {
		work_finish_error(w, CARELOG_ECLOSED, "node is stopping");
		return;
	}
	pthread_mutex_lock(&w->mu);
	w->generation++;
	w->result_ready = false;
	w->state = WORK_WAIT_APPEND;
	struct node_waiter waiter = {.owner = w, .generation = w->generation};
	pthread_mutex_unlock(&w->mu);

	struct node_append_item *item = NULL;
	int rc = loop_item_create(w, waiter, &item);
	if (rc == CARELOG_OK) {
		pthread_mutex_lock(&srv->submit_mu);
		rc = atomic_load(&srv->accepting) ? node_loop_submit(srv->loop, item)
		                                  : CARELOG_ECLOSED;
		pthread_mutex_unlock(&srv->submit_mu);
		if (rc != CARELOG_OK) {
			node_append_item_free(item);
		}
	}
	if (rc != CARELOG_OK) {
		pthread_mutex_lock(&w->mu);
		w->state = WORK_HANDLE; /* no loop answer will come */
		pthread_mutex_unlock(&w->mu);
		work_finish_error(w, rc,
		                  rc == CARELOG_EBUSY     ? "too many requests queued: retry later"
		                  : rc == CARELOG_ECLOSED ? "node is stopping"
		                                          : carelog_strerror(rc));
		return;
	}
	/* Park on the timer; the loop's answer cancels it (or already arrived). */
	pthread_mutex_lock(&w->mu);
	nng_sleep_aio((nng_duration)w->wait_ms, w->timer);
	if (w->result_ready) {
		nng_aio_cancel(w->timer);
	}
	pthread_mutex_unlock(&w->mu);
}

/* The loop's answer to a member change or transfer (or its absence in time). */
static void admin_reply(struct server_work *w)
{
	struct proto_buf out = {0};
	uint8_t op = w->req.op;
	const struct node_append_result *r = &w->result;
	int rc;
	if (!w->result_ready && op == PROTO_OP_MEMBER) {
		rc = node_serve_error(op, CARELOG_EPENDING, &out,
		                      "not known to be committed within %u ms: check `status` "
		                      "before trying again",
		                      w->wait_ms);
	} else if (!w->result_ready) {
		rc = node_serve_error(op, CARELOG_ETIMEDOUT, &out,
		                      "no new leader within %u ms: check `status`", w->wait_ms);
	} else if (r->err != CARELOG_OK) {
		rc = node_serve_error(op, r->err, &out, "%s", r->msg);
	} else {
		struct proto_reply rep;
		memset(&rep, 0, sizeof(rep));
		rep.version = PROTO_VERSION;
		rep.op = op;
		rep.msg = (struct proto_str){.ptr = "", .len = 0};
		if (op == PROTO_OP_MEMBER) {
			rep.u.member.index = r->index;
		} else {
			rep.u.transfer.leader_id = r->leader_id;
		}
		rc = proto_reply_encode(&rep, &out);
	}
	if (rc != CARELOG_OK) {
		proto_buf_free(&out);
	}
	work_finish(w, &out);
}

static void wait_list_remove(struct node_server *srv, struct server_work *w)
{
	if (!w->in_wait_list) {
		return;
	}
	struct server_work **link = &srv->wait_head;
	while (*link != w) {
		link = &(*link)->wait_next;
	}
	*link = w->wait_next;
	w->wait_next = NULL;
	w->in_wait_list = false;
}

void node_server_on_reply(void *ctx, struct node_waiter waiter,
                          const struct node_append_result *result)
{
	(void)ctx;
	struct server_work *w = waiter.owner;
	struct node_server *srv = w->srv;
	/* A linearizable read's point: wait (same timer) until applied reaches it. Lock order
	 * wait_mu then w->mu; the timer callback takes them one after the other, never nested. */
	pthread_mutex_lock(&srv->wait_mu);
	pthread_mutex_lock(&w->mu);
	if (w->generation == waiter.generation && w->state == WORK_WAIT_APPEND &&
	    !w->result_ready && w->req.op == PROTO_OP_READ && result->err == CARELOG_OK) {
		uint64_t target = w->req.u.read.min_index;
		w->wait_index = result->index > target ? result->index : target;
		w->state = WORK_WAIT_READ;
		w->in_wait_list = true;
		w->wait_next = srv->wait_head;
		srv->wait_head = w;
		if (w->wait_index <= atomic_load(&srv->applied_index)) {
			wait_list_remove(srv, w);
			nng_aio_cancel(w->timer); /* its callback serves the read */
		}
		pthread_mutex_unlock(&w->mu);
		pthread_mutex_unlock(&srv->wait_mu);
		return;
	}
	pthread_mutex_unlock(&srv->wait_mu);
	if (w->generation == waiter.generation && w->state == WORK_WAIT_APPEND &&
	    !w->result_ready) {
		w->result = *result;
		w->result_ready = true;
		/* The cancel completes the timer aio on an nng thread, never inline. */
		nng_aio_cancel(w->timer);
	}
	pthread_mutex_unlock(&w->mu);
}

/* --- reads that wait for an applied index --- */

void node_server_on_applied(void *ctx, uint64_t applied_index, uint64_t commit_index)
{
	struct node_server *srv = ctx;
	atomic_store(&srv->commit_index, commit_index);
	atomic_store(&srv->applied_index, applied_index);
	pthread_mutex_lock(&srv->wait_mu);
	struct server_work **link = &srv->wait_head;
	while (*link != NULL) {
		struct server_work *w = *link;
		if (w->wait_index <= applied_index) {
			*link = w->wait_next;
			w->wait_next = NULL;
			w->in_wait_list = false;
			nng_aio_cancel(w->timer); /* its callback serves the read */
		} else {
			link = &w->wait_next;
		}
	}
	pthread_mutex_unlock(&srv->wait_mu);
}

static uint64_t server_now_ms(const struct node_server *srv)
{
	return srv->config.clock_ms(srv->config.clock_ctx);
}

static void serve_read_now(struct server_work *w)
{
	struct node_server *srv = w->srv;
	struct proto_buf out = {0};
	if (node_serve_read(&srv->serve, &w->actor, server_now_ms(srv), &w->req, &out, &w->audit) !=
	    CARELOG_OK) {
		proto_buf_free(&out);
	}
	work_finish(w, &out);
}

static void handle_read(struct server_work *w)
{
	struct node_server *srv = w->srv;
	const struct proto_read_req *req = &w->req.u.read;
	uint64_t target = req->min_index;
	if (req->consistency == PROTO_CONSISTENCY_LINEARIZABLE) {
		/* ReadIndex (Raft thesis 6.4) through the loop, also from followers and learners:
		 * the answer is a read point; the read waits until this replica applied it. */
		submit_to_loop(w);
		return;
	}
	if (req->consistency != PROTO_CONSISTENCY_LOCAL) {
		work_finish_error(w, CARELOG_EINVAL, "unknown consistency level");
		return;
	}
	if (target <= atomic_load(&srv->applied_index)) {
		serve_read_now(w);
		return;
	}
	pthread_mutex_lock(&w->mu);
	w->state = WORK_WAIT_READ;
	w->wait_index = target;
	pthread_mutex_unlock(&w->mu);
	pthread_mutex_lock(&srv->wait_mu);
	w->in_wait_list = true;
	w->wait_next = srv->wait_head;
	srv->wait_head = w;
	nng_sleep_aio((nng_duration)w->wait_ms, w->timer);
	if (target <= atomic_load(&srv->applied_index)) {
		wait_list_remove(srv, w); /* applied moved before we parked */
		nng_aio_cancel(w->timer);
	}
	pthread_mutex_unlock(&srv->wait_mu);
}

static void timer_callback(void *arg)
{
	struct server_work *w = arg;
	struct node_server *srv = w->srv;
	pthread_mutex_lock(&srv->wait_mu);
	wait_list_remove(srv, w);
	pthread_mutex_unlock(&srv->wait_mu);
	pthread_mutex_lock(&w->mu);
	enum server_work_state state = w->state;
	if (state == WORK_WAIT_APPEND || state == WORK_WAIT_READ) {
		w->state = WORK_HANDLE; /* a late loop answer for this generation is ignored now */
	}
	pthread_mutex_unlock(&w->mu);
	uint8_t op = w->req.op;
	if (state == WORK_WAIT_APPEND && (op == PROTO_OP_APPEND || op == PROTO_OP_POLICY)) {
		append_reply(w);
	} else if (state == WORK_WAIT_APPEND && op == PROTO_OP_READ) {
		if (w->result_ready) {
			work_finish_error(w, w->result.err, w->result.msg);
		} else {
			char msg[160];
			snprintf(msg, sizeof(msg),
			         "no linearizable read point from the leader within %u ms (no quorum "
			         "reachable?)",
			         w->wait_ms);
			work_finish_error(w, CARELOG_ETIMEDOUT, msg);
		}
	} else if (state == WORK_WAIT_APPEND) {
		admin_reply(w);
	} else if (state == WORK_WAIT_READ) {
		uint64_t applied = atomic_load(&srv->applied_index);
		if (applied >= w->wait_index) {
			serve_read_now(w);
		} else {
			char msg[160];
			snprintf(msg, sizeof(msg),
			         "applied index %llu did not reach %llu within %u ms",
			         (unsigned long long)applied, (unsigned long long)w->wait_index,
			         w->wait_ms);
			work_finish_error(w, CARELOG_ETIMEDOUT, msg);
		}
	}
}

/* --- who asks, and may they --- */

/* The request's actor with the node's defaults; false with a reason when it may not act. */
static bool resolve_actor(struct server_work *w, char *reason, size_t reason_len)
{
	struct node_server *srv = w->srv;
	const struct proto_actor *a = &w->req.actor;
	struct access_actor *out = &w->actor;
	memset(out, 0, sizeof(*out));
	w->purpose[0] = '\0';
	/* The decoder enforced the protocol's limits, which equal these fields' sizes. */
	if (!view_copy(a->id, out->id, sizeof(out->id)) ||
	    !view_copy(a->role, out->role, sizeof(out->role)) ||
	    !view_copy(a->unit, out->unit, sizeof(out->unit)) ||
	    !view_copy(a->purpose, w->purpose, sizeof(w->purpose))) {
		memset(out, 0, sizeof(*out));
		snprintf(reason, reason_len,
		         "the actor's id, role, unit or purpose is too long or "
		         "contains NUL");
		return false;
	}
	if (out->id[0] == '\0' && srv->config.actor_default != NULL) {
		snprintf(out->id, sizeof(out->id), "%s", srv->config.actor_default);
	}
	if (out->role[0] == '\0' && srv->config.actor_default_role != NULL) {
		snprintf(out->role, sizeof(out->role), "%s", srv->config.actor_default_role);
	}
	if (out->unit[0] == '\0' && srv->config.unit != NULL) {
		snprintf(out->unit, sizeof(out->unit), "%s", srv->config.unit);
	}
	pthread_mutex_lock(&srv->org_mu);
	snprintf(out->org, sizeof(out->org), "%s", srv->org);
	pthread_mutex_unlock(&srv->org_mu);
	if (strcmp(out->role, SERVER_ROLE_SYSTEM) == 0) {
		snprintf(reason, reason_len,
		         "role system is the node's own; a client may not act as it");
		return false;
	}
	if (out->role[0] == '\0') {
		snprintf(reason, reason_len, "no role given for the person asking");
		return false;
	}
	return true;
}

/* The patient of entry `id` (a POLICY request that leaves its patient to the node). */
static int ref_patient(struct node_server *srv, const uint8_t id[JOURNAL_ID_BYTES],
                       char out[JOURNAL_PATIENT_BYTES_MAX + 1], char *why, size_t why_len)
{
	char id_hex[2 * JOURNAL_ID_BYTES + 1];
	cl_hex_encode(id_hex, id, JOURNAL_ID_BYTES);
	struct storage_txn *t = NULL;
	int rc = storage_txn_begin_read(srv->serve.storage, &t);
	uint64_t index = 0;
	uint8_t status = 0;
	struct storage_entry e;
	struct journal_record rec;
	struct journal_header *h = malloc(sizeof(*h));
	if (rc == CARELOG_OK && h == NULL) {
		rc = CARELOG_ENOMEM;
	}
	if (rc == CARELOG_OK) {
		rc = storage_index_entry_get(t, id, &index, &status);
	}
	if (rc == CARELOG_OK) {
		rc = storage_log_get(t, index, &e);
	}
	if (rc == CARELOG_OK &&
	    (e.type != CONSENSUS_ENTRY_NORMAL ||
	     journal_record_decode(e.data, e.data_len, &rec) != CARELOG_OK ||
	     journal_header_decode(rec.header, rec.header_len, h) != CARELOG_OK)) {
		rc = CARELOG_ECORRUPT;
	}
	if (rc == CARELOG_OK) {
		snprintf(out, JOURNAL_PATIENT_BYTES_MAX + 1, "%s", h->patient);
	} else if (rc == CARELOG_ENOTFOUND) {
		snprintf(why, why_len, "no entry with id %s (the entry this policy refers to)",
		         id_hex);
	} else {
		snprintf(why, why_len, "cannot look up entry %s: %s", id_hex, carelog_strerror(rc));
	}
	storage_txn_abort(t);
	free(h);
	return rc;
}

/* APPEND and POLICY: judged early with the policy applied here (apply judges again, at
 * leader time, for good); allowed ones go to the loop. */
static void handle_write(struct server_work *w)
{
	struct node_server *srv = w->srv;
	char kind[JOURNAL_KIND_BYTES_MAX + 1];
	char why[SERVER_REASON_BYTES_MAX];
	const struct proto_str kind_view =
	    w->req.op == PROTO_OP_POLICY ? w->req.u.policy.kind : w->req.u.append.kind;
	w->patient[0] = '\0';
	if (!view_copy(request_patient(&w->req), w->patient, sizeof(w->patient)) ||
	    !view_copy(kind_view, kind, sizeof(kind))) {
		work_finish_error(w, CARELOG_EINVAL, "patient or kind is too long or contains NUL");
		return;
	}
	if (!journal_kind_known(kind)) {
		/* The loop refuses it naming the known kinds; nothing is written. */
		submit_to_loop(w);
		return;
	}
	const struct proto_policy_req *pol = &w->req.u.policy;
	if (w->req.op == PROTO_OP_POLICY && w->patient[0] == '\0') {
		if (pol->has_ref) {
			int rc = ref_patient(srv, pol->ref, w->patient, why, sizeof(why));
			if (rc != CARELOG_OK) {
				work_finish_error(w, rc, why);
				return;
			}
		} else if (policy_kind_of(kind) == POLICY_KIND_PARAMS) {
			snprintf(w->patient, sizeof(w->patient), "%s", POLICY_REGION_PATIENT);
		}
		snprintf(w->audit.patient, sizeof(w->audit.patient), "%s", w->patient);
	}
	struct storage_txn *t = NULL;
	bool allowed = false;
	enum access_basis basis = ACCESS_BASIS_NONE;
	why[0] = '\0';
	int rc = storage_txn_begin_read(srv->serve.storage, &t);
	if (rc == CARELOG_OK) {
		rc = access_decide_write(t, &w->actor, w->patient, kind, server_now_ms(srv),
		                         &allowed, &basis, why, sizeof(why));
		storage_txn_abort(t);
	}
	if (rc != CARELOG_OK) {
		char msg[SERVER_ERROR_MESSAGE_BYTES_MAX];
		snprintf(msg, sizeof(msg), "cannot judge the write: %s", carelog_strerror(rc));
		work_finish_error(w, rc, msg);
		return;
	}
	if (!allowed) {
		work_deny(w, why[0] != '\0' ? why : "not allowed");
		return;
	}
	w->audit.allowed = true;
	snprintf(w->audit.basis, sizeof(w->audit.basis), "%s", access_basis_name(basis));
	submit_to_loop(w);
}

/* status, verify, member, transfer: the operator's. */
static void handle_operator(struct server_work *w)
{
	struct node_server *srv = w->srv;
	if (strcmp(w->actor.role, SERVER_ROLE_OPERATOR) != 0) {
		char why[SERVER_REASON_BYTES_MAX];
		snprintf(why, sizeof(why), "role %s may not run %s (role operator only)",
		         w->actor.role, proto_op_name(w->req.op));
		work_deny(w, why);
		return;
	}
	w->audit.allowed = true;
	snprintf(w->audit.basis, sizeof(w->audit.basis), "%s",
	         access_basis_name(ACCESS_BASIS_ROLE));
	struct proto_buf out = {0};
	int rc;
	switch (w->req.op) {
	case PROTO_OP_STATUS:
		rc = node_serve_status(&srv->serve, &out);
		break;
	case PROTO_OP_VERIFY:
		rc = node_serve_verify(&srv->serve, &out);
		break;
	default:
		submit_to_loop(w); /* member, transfer */
		return;
	}
	if (rc != CARELOG_OK) {
		proto_buf_free(&out);
	}
	work_finish(w, &out);
}

/* --- dispatch --- */

static void handle_decoded(struct server_work *w)
{
	struct node_server *srv = w->srv;
	char why[SERVER_REASON_BYTES_MAX];
	audit_begin(w);
	if (!resolve_actor(w, why, sizeof(why))) {
		work_deny(w, why);
		return;
	}
	enum access_op_class op_class = access_op_class(w->req.op);
	if (w->actor.org[0] == '\0' && op_class != ACCESS_OP_OPERATOR) {
		/* Decisions need the organisation. Operator ops do not (the role decides), so a
		 * joining node can still be watched and managed while it catches up. */
		work_deny(w, "this node has not applied its membership yet");
		return;
	}
	typedef int (*serve_fn)(const struct node_serve *, const struct access_actor *, uint64_t,
	                        const struct proto_request *, struct proto_buf *,
	                        struct policy_audit_row *);
	serve_fn serve = NULL;
	switch (op_class) {
	case ACCESS_OP_OPERATOR:
		handle_operator(w);
		return;
	case ACCESS_OP_PATIENT_WRITE:
		handle_write(w);
		return;
	case ACCESS_OP_PATIENT_READ:
		if (w->req.op == PROTO_OP_READ) {
			handle_read(w);
			return;
		}
		serve = node_serve_get;
		break;
	case ACCESS_OP_ACCESS_LOG:
		serve = node_serve_access_log;
		break;
	case ACCESS_OP_BTG_LIST:
		serve = node_serve_btg_list;
		break;
	case ACCESS_OP_UNKNOWN:
	default:
		snprintf(why, sizeof(why), "operation %s is not allowed to anyone",
		         proto_op_name(w->req.op));
		work_deny(w, why);
		return;
	}
	struct proto_buf out = {0};
	if (serve(&srv->serve, &w->actor, server_now_ms(srv), &w->req, &out, &w->audit) !=
	    CARELOG_OK) {
		proto_buf_free(&out);
	}
	work_finish(w, &out);
}

static void handle_request(struct server_work *w)
{
	struct node_server *srv = w->srv;
	const uint8_t *body = nng_msg_body(w->request);
	size_t len = nng_msg_len(w->request);
	char msg[SERVER_ERROR_MESSAGE_BYTES_MAX];
	/* nng receives up to PROTO_MESSAGE_BYTES_MAX (above it, it drops the message without a
	 * word); this node's own limit is enforced here so the client hears which limit. */
	if ((uint64_t)len > srv->config.request_bytes_max) {
		snprintf(msg, sizeof(msg),
		         "request is %zu bytes; this node accepts at most %llu (request_bytes_max)",
		         len, (unsigned long long)srv->config.request_bytes_max);
		work_send_error(w, 0, CARELOG_ETOOBIG, msg);
		return;
	}
	char reason[SERVER_ERROR_MESSAGE_BYTES_MAX / 2];
	reason[0] = '\0';
	int rc = proto_request_decode_reason(body, len, &w->req, reason, sizeof(reason));
	if (rc != CARELOG_OK) {
		/* Nothing decoded: no actor to audit, and nothing is served. */
		const char *what = rc == CARELOG_EVERSION  ? "unsupported protocol version"
		                   : rc == CARELOG_ETOOBIG ? "request exceeds a protocol limit"
		                                           : "malformed request";
		snprintf(msg, sizeof(msg), "%s (%zu bytes): %s", what, len,
		         reason[0] != '\0' ? reason : carelog_errname(rc));
		work_send_error(w, 0, rc, msg);
		return;
	}
	w->wait_ms = w->req.timeout_ms != 0 ? w->req.timeout_ms : srv->config.timeout_ms;
	handle_decoded(w);
}

static void io_callback(void *arg)
{
	struct server_work *w = arg;
	int rv = nng_aio_result(w->io);
	pthread_mutex_lock(&w->mu);
	enum server_work_state state = w->state;
	pthread_mutex_unlock(&w->mu);
	if (state == WORK_SEND) {
		if (rv != 0) {
			nng_msg_free(nng_aio_get_msg(w->io)); /* not sent: still ours */
			nng_aio_set_msg(w->io, NULL);
		}
		pthread_mutex_lock(&w->mu);
		w->state = WORK_RECV;
		pthread_mutex_unlock(&w->mu);
		busy_change(w->srv, -1);
		if (rv == NNG_ECLOSED) {
			return;
		}
		nng_ctx_recv(w->ctx, w->io);
		return;
	}
	CL_ASSERT(state == WORK_RECV);
	if (rv != 0) {
		if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
			return; /* shutting down */
		}
		nng_ctx_recv(w->ctx, w->io);
		return;
	}
	pthread_mutex_lock(&w->mu);
	w->state = WORK_HANDLE;
	pthread_mutex_unlock(&w->mu);
	busy_change(w->srv, +1);
	w->request = nng_aio_get_msg(w->io);
	nng_aio_set_msg(w->io, NULL);
	handle_request(w);
}

/* --- lifecycle --- */

/* The status reply's "audit" map from the queue's counters (ctx = the audit queue). */
static int server_audit_stats(void *ctx, struct proto_audit_stats *out)
{
	struct node_audit_stats st;
	int rc = node_audit_get_stats(ctx, &st);
	if (rc == CARELOG_OK) {
		*out = (struct proto_audit_stats){
		    .queued_rows = st.queued_rows,
		    .next_seq = st.next_seq,
		    .shipped_seq = st.shipped_seq,
		    .syncs = st.syncs,
		    .write_failures = st.write_failures,
		    .ship_failures = st.ship_failures,
		};
	}
	return rc;
}

int node_server_create(const struct node_server_config *config, struct storage *s,
                       struct node_server **out)
{
	if (config->requests_max == 0 || config->endpoint == NULL || config->audit == NULL) {
		return CARELOG_EINVAL;
	}
	struct node_server *srv = calloc(1, sizeof(*srv));
	if (srv == NULL) {
		return CARELOG_ENOMEM;
	}
	srv->config = *config;
	if (srv->config.clock_ms == NULL) {
		srv->config.clock_ms = node_clock_wall_ms;
	}
	srv->serve = (struct node_serve){.storage = s,
	                                 .node_id = config->node_id,
	                                 .stale_lag_max = config->stale_lag_max,
	                                 .transport_stats = config->transport_stats,
	                                 .transport_ctx = config->transport_ctx,
	                                 .audit_pending = node_audit_pending,
	                                 .audit_stats = server_audit_stats,
	                                 .audit_ctx = config->audit};
	srv->works = calloc(config->requests_max, sizeof(*srv->works));
	if (srv->works == NULL) {
		free(srv);
		return CARELOG_ENOMEM;
	}
	pthread_mutex_init(&srv->wait_mu, NULL);
	pthread_mutex_init(&srv->submit_mu, NULL);
	pthread_mutex_init(&srv->watchdog_mu, NULL);
	pthread_cond_init(&srv->watchdog_cond, NULL);
	pthread_mutex_init(&srv->busy_mu, NULL);
	pthread_cond_init(&srv->busy_cond, NULL);
	pthread_mutex_init(&srv->org_mu, NULL);
	atomic_store(&srv->accepting, true);
	/* Seed the published indexes from storage; the loop keeps them current. */
	struct storage_txn *t = NULL;
	if (storage_txn_begin_read(s, &t) == CARELOG_OK) {
		struct storage_hard_state hs;
		struct storage_applied applied;
		if (storage_hard_state_get(t, &hs) == CARELOG_OK &&
		    storage_applied_get(t, &applied) == CARELOG_OK) {
			atomic_store(&srv->commit_index, hs.commit);
			atomic_store(&srv->applied_index, applied.index);
		}
		storage_txn_abort(t);
	}
	*out = srv;
	return CARELOG_OK;
}

void node_server_set_org(struct node_server *srv, const char *org)
{
	pthread_mutex_lock(&srv->org_mu);
	snprintf(srv->org, sizeof(srv->org), "%s", org != NULL ? org : "");
	pthread_mutex_unlock(&srv->org_mu);
}

void node_server_set_loop(struct node_server *srv, struct node_loop *loop)
{
	srv->loop = loop;
	srv->serve.loop = loop;
}

/*
 * Completes the SP protocol header exchange on a probe connection before it is closed: nng
 * 1.5.2's listener stops accepting after a peer disconnects during negotiation
 * (nanomsg/nng#1518), so a bare connect-and-close would break the live node it found. We
 * speak as a req0 peer (rep0's partner), wait briefly for the 8-byte reply header, then close.
 */
static bool ipc_probe_handshake(int fd)
{
	static const uint8_t req0_header[8] = {0x00, 'S', 'P', 0x00, 0x00, 0x30, 0x00, 0x00};
	if (write(fd, req0_header, sizeof(req0_header)) != (ssize_t)sizeof(req0_header)) {
		return false;
	}
	uint8_t reply[8];
	size_t got = 0;
	while (got < sizeof(reply)) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		if (poll(&pfd, 1, SERVER_PROBE_WAIT_MS) <= 0) {
			return false;
		}
		ssize_t n = read(fd, reply + got, sizeof(reply) - got);
		if (n <= 0) {
			return false;
		}
		got += (size_t)n;
	}
	return reply[0] == 0x00 && reply[1] == 'S' && reply[2] == 'P';
}

/* Connects to an ipc socket and completes the header exchange; false if nothing answers. */
static bool ipc_self_probe(const char *path)
{
	struct sockaddr_un addr;
	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	CL_ASSERT(strlen(path) < sizeof(addr.sun_path));
	memcpy(addr.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return true; /* cannot tell: do not disturb the listener */
	}
	bool ok = connect(fd, (const struct sockaddr *)&addr, sizeof(addr)) == 0 &&
	          ipc_probe_handshake(fd);
	close(fd);
	return ok;
}

/* For ipc:// endpoints: refuses a socket a live process answers on, removes a stale one. */
static int ipc_prepare(struct node_server *srv, char *err, size_t err_len)
{
	const char *url = srv->config.endpoint;
	if (strncmp(url, "ipc://", 6) != 0) {
		return CARELOG_OK;
	}
	const char *path = url + 6;
	struct sockaddr_un addr;
	if (strlen(path) >= sizeof(addr.sun_path) || strlen(path) >= sizeof(srv->ipc_wanted)) {
		snprintf(err, err_len, "endpoint %s: socket path longer than %zu bytes", url,
		         sizeof(addr.sun_path) - 1);
		return CARELOG_EINVAL;
	}
	snprintf(srv->ipc_wanted, sizeof(srv->ipc_wanted), "%s", path);
	struct stat st;
	if (lstat(path, &st) != 0) {
		return CARELOG_OK;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, err_len, "endpoint %s: %s exists and is not a socket", url, path);
		return CARELOG_EEXIST;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, err_len, "endpoint %s: cannot probe the socket: %s", url,
		         strerror(errno));
		return CARELOG_EIO;
	}
	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	memcpy(addr.sun_path, path, strlen(path) + 1);
	int connected = connect(fd, (const struct sockaddr *)&addr, sizeof(addr));
	int e = errno;
	if (connected == 0) {
		(void)ipc_probe_handshake(fd);
	}
	close(fd);
	if (connected == 0) {
		snprintf(err, err_len,
		         "endpoint %s is in use by a running process (another carelogd?)", url);
		return CARELOG_EEXIST;
	}
	if (e != ECONNREFUSED) {
		snprintf(err, err_len, "endpoint %s: cannot probe the socket: %s", url,
		         strerror(e));
		return CARELOG_EIO;
	}
	if (unlink(path) != 0) {
		snprintf(err, err_len, "endpoint %s: cannot remove the stale socket: %s", url,
		         strerror(errno));
		return CARELOG_EIO;
	}
	cl_log_info("server.stale_socket_removed", "endpoint=%s", url);
	return CARELOG_OK;
}

/* Listens on the endpoint; for ipc the socket file becomes ours and mode 0600. */
static int server_listen(struct node_server *srv, char *err, size_t err_len)
{
	/* The socket must never be reachable by others, not even between listen and chmod. */
	mode_t old_mask = umask(0077);
	int rv = nng_listen(srv->sock, srv->config.endpoint, &srv->listener, 0);
	umask(old_mask);
	if (rv != 0) {
		snprintf(err, err_len, "cannot listen on %s: %s", srv->config.endpoint,
		         nng_strerror(rv));
		return nng_to_carelog(rv);
	}
	/* Only now is the socket file ours: a refused start must never remove another
	 * process's socket. */
	memcpy(srv->ipc_path, srv->ipc_wanted, sizeof(srv->ipc_path));
	if (srv->ipc_path[0] != '\0' && chmod(srv->ipc_path, 0600) != 0) {
		snprintf(err, err_len, "cannot make %s mode 0600: %s", srv->ipc_path,
		         strerror(errno));
		return CARELOG_EIO;
	}
	return CARELOG_OK;
}

/* Counts connections the socket took over from its listener (nng pipe add). */
static void pipe_added(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
	(void)pipe;
	(void)ev;
	struct node_server *srv = arg;
	pthread_mutex_lock(&srv->watchdog_mu);
	srv->pipes_added++;
	pthread_cond_broadcast(&srv->watchdog_cond);
	pthread_mutex_unlock(&srv->watchdog_mu);
}

/* Waits up to SERVER_PIPE_WAIT_MS for a connection added after `before`. */
static bool pipe_added_since(struct node_server *srv, uint64_t before)
{
	struct timespec until = node_deadline_after_ms(SERVER_PIPE_WAIT_MS);
	pthread_mutex_lock(&srv->watchdog_mu);
	while (srv->pipes_added == before && !srv->watchdog_stop) {
		if (pthread_cond_timedwait(&srv->watchdog_cond, &srv->watchdog_mu, &until) != 0) {
			break;
		}
	}
	bool added = srv->pipes_added != before;
	pthread_mutex_unlock(&srv->watchdog_mu);
	return added;
}

/*
 * nng 1.5.2's listener stops handing new connections to the socket for good once a peer
 * disconnects during the protocol header exchange (nanomsg/nng#1518): one `nc -U` or one
 * client killed at the wrong moment would cut the node off from every new client, while the
 * header exchange itself still succeeds. Every SERVER_WATCHDOG_PERIOD_MS the watchdog
 * connects to its own ipc socket, completes the exchange and waits for the socket to report
 * the new pipe; after SERVER_WATCHDOG_FAILURES_MAX misses in a row it re-creates the listener
 * (connections it had accepted are dropped; clients reconnect, and retry appends with the
 * same request id).
 */
static void *watchdog_thread(void *arg)
{
	struct node_server *srv = arg;
	uint32_t misses = 0;
	pthread_mutex_lock(&srv->watchdog_mu);
	while (!srv->watchdog_stop) {
		struct timespec until = node_deadline_after_ms(SERVER_WATCHDOG_PERIOD_MS);
		while (!srv->watchdog_stop &&
		       pthread_cond_timedwait(&srv->watchdog_cond, &srv->watchdog_mu, &until) ==
		           0) {
			/* woken by a new connection or a stop: sleep out the period */
		}
		if (srv->watchdog_stop) {
			break;
		}
		uint64_t before = srv->pipes_added;
		pthread_mutex_unlock(&srv->watchdog_mu);
		bool healthy = ipc_self_probe(srv->ipc_path) && pipe_added_since(srv, before);
		misses = healthy ? 0 : misses + 1;
		if (misses >= SERVER_WATCHDOG_FAILURES_MAX) {
			misses = 0;
			cl_log_warn("server.listener_restarted",
			            "endpoint=%s reason=new_connections_not_taken",
			            srv->config.endpoint);
			nng_listener_close(srv->listener);
			unlink(srv->ipc_path);
			char err[256];
			if (server_listen(srv, err, sizeof(err)) != CARELOG_OK) {
				cl_log_error("server.listen_failed", "msg=\"%s\"", err);
			}
		}
		pthread_mutex_lock(&srv->watchdog_mu);
	}
	pthread_mutex_unlock(&srv->watchdog_mu);
	return NULL;
}

int node_server_start(struct node_server *srv, char *err, size_t err_len)
{
#ifdef CARELOG_BENCH_UNAUDITED
	cl_log_warn("daemon.unaudited_build",
	            "msg=\"benchmark build: requests are NOT audited; never run it for real\"");
#endif
	int rc = ipc_prepare(srv, err, err_len);
	if (rc != CARELOG_OK) {
		return rc;
	}
	int rv = nng_rep0_open(&srv->sock);
	if (rv != 0) {
		snprintf(err, err_len, "cannot open the client socket: %s", nng_strerror(rv));
		return nng_to_carelog(rv);
	}
	srv->sock_open = true;
	rv = nng_pipe_notify(srv->sock, NNG_PIPE_EV_ADD_POST, pipe_added, srv);
	if (rv != 0) {
		snprintf(err, err_len, "cannot watch client connections: %s", nng_strerror(rv));
		return nng_to_carelog(rv);
	}
	/* The absolute ceiling, not request_bytes_max: nng drops a larger message silently, and
	 * a request over this node's limit must get an error reply naming it (handle_request). */
	rv = nng_socket_set_size(srv->sock, NNG_OPT_RECVMAXSZ, (size_t)PROTO_MESSAGE_BYTES_MAX);
	for (uint32_t i = 0; i < srv->config.requests_max && rv == 0; i++) {
		struct server_work *w = &srv->works[i];
		w->srv = srv;
		pthread_mutex_init(&w->mu, NULL);
		rv = nng_aio_alloc(&w->io, io_callback, w);
		if (rv == 0) {
			rv = nng_aio_alloc(&w->timer, timer_callback, w);
		}
		if (rv == 0) {
			rv = nng_ctx_open(&w->ctx, srv->sock);
		}
		srv->works_count = i + 1;
	}
	if (rv != 0) {
		snprintf(err, err_len, "cannot set up %u client contexts: %s",
		         srv->config.requests_max, nng_strerror(rv));
		return nng_to_carelog(rv);
	}
	rc = server_listen(srv, err, err_len);
	if (rc != CARELOG_OK) {
		return rc;
	}
	for (uint32_t i = 0; i < srv->works_count; i++) {
		nng_ctx_recv(srv->works[i].ctx, srv->works[i].io);
	}
	if (srv->ipc_path[0] != '\0') {
		if (pthread_create(&srv->watchdog, NULL, watchdog_thread, srv) != 0) {
			snprintf(err, err_len, "cannot start the endpoint watchdog");
			return CARELOG_ENOMEM;
		}
		srv->watchdog_running = true;
	}
	return CARELOG_OK;
}

void node_server_stop_accepting(struct node_server *srv)
{
	pthread_mutex_lock(&srv->submit_mu);
	atomic_store(&srv->accepting, false);
	pthread_mutex_unlock(&srv->submit_mu);
}

uint32_t node_server_drain(struct node_server *srv, uint32_t wait_ms)
{
	struct timespec until = node_deadline_after_ms(wait_ms);
	pthread_mutex_lock(&srv->busy_mu);
	while (srv->busy_count > 0) {
		if (pthread_cond_timedwait(&srv->busy_cond, &srv->busy_mu, &until) != 0) {
			break;
		}
	}
	uint32_t left = srv->busy_count;
	pthread_mutex_unlock(&srv->busy_mu);
	return left;
}

void node_server_destroy(struct node_server *srv, uint32_t wait_ms)
{
	if (srv == NULL) {
		return;
	}
	node_server_stop_accepting(srv);
	if (srv->watchdog_running) {
		pthread_mutex_lock(&srv->watchdog_mu);
		srv->watchdog_stop = true;
		pthread_cond_signal(&srv->watchdog_cond);
		pthread_mutex_unlock(&srv->watchdog_mu);
		pthread_join(srv->watchdog, NULL);
	}
	uint32_t left = node_server_drain(srv, wait_ms);
	if (left > 0) {
		cl_log_warn("server.stop_unanswered", "requests=%u", left);
	}
	/* Stop every aio before closing the socket: nng 1.5.2 may panic when a callback starts
	 * an operation on a context the close is tearing down. Timers first (their callbacks
	 * send on io), then io; a stopped aio refuses new operations without a callback. */
	for (uint32_t i = 0; i < srv->works_count; i++) {
		if (srv->works[i].timer != NULL) {
			nng_aio_stop(srv->works[i].timer);
		}
	}
	for (uint32_t i = 0; i < srv->works_count; i++) {
		if (srv->works[i].io != NULL) {
			nng_aio_stop(srv->works[i].io);
		}
	}
	if (srv->sock_open) {
		nng_close(srv->sock);
	}
	for (uint32_t i = 0; i < srv->works_count; i++) {
		struct server_work *w = &srv->works[i];
		nng_aio_free(w->timer);
		nng_aio_free(w->io);
		if (w->request != NULL) {
			nng_msg_free(w->request);
		}
		proto_buf_free(&w->reply);
		pthread_mutex_destroy(&w->mu);
	}
	if (srv->ipc_path[0] != '\0') {
		unlink(srv->ipc_path);
	}
	pthread_mutex_destroy(&srv->wait_mu);
	pthread_mutex_destroy(&srv->submit_mu);
	pthread_mutex_destroy(&srv->watchdog_mu);
	pthread_cond_destroy(&srv->watchdog_cond);
	pthread_mutex_destroy(&srv->busy_mu);
	pthread_cond_destroy(&srv->busy_cond);
	pthread_mutex_destroy(&srv->org_mu);
	free(srv->works);
	free(srv);
}
