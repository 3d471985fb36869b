/* libcarelog over nng req0: one socket per client, one context per call, results as owned blocks. */
#include "carelog/carelog.h"

#include "common/assert.h"
#include "common/crypto.h"
#include "node/api/proto.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

CL_STATIC_ASSERT((int)CARELOG_ID_BYTES == (int)PROTO_ID_BYTES, "entry ids are SHA-256 on both sides");
CL_STATIC_ASSERT((int)CARELOG_READ_LIMIT_MAX == (int)PROTO_READ_LIMIT_MAX, "one page limit");
CL_STATIC_ASSERT((int)CARELOG_REQUEST_ID_BYTES_MAX == (int)PROTO_REQUEST_ID_BYTES_MAX, "one id limit");
CL_STATIC_ASSERT((int)CARELOG_MESSAGE_BYTES_MAX == (int)PROTO_MESSAGE_BYTES_MAX, "one message limit");
CL_STATIC_ASSERT((int)CARELOG_PUBLIC_KEY_BYTES == (int)PROTO_PUBLIC_KEY_BYTES, "Ed25519 keys");
CL_STATIC_ASSERT((int)CARELOG_ORG_BYTES_MAX == (int)PROTO_ORG_BYTES_MAX, "one org limit");
CL_STATIC_ASSERT((int)CARELOG_ADDRESS_BYTES_MAX == (int)PROTO_ADDRESS_BYTES_MAX, "one address limit");
CL_STATIC_ASSERT((int)CARELOG_ACTOR_BYTES_MAX == (int)PROTO_ACTOR_BYTES_MAX, "one actor limit");
CL_STATIC_ASSERT((int)CARELOG_ROLE_BYTES_MAX == (int)PROTO_ROLE_BYTES_MAX, "one role limit");
CL_STATIC_ASSERT((int)CARELOG_UNIT_BYTES_MAX == (int)PROTO_UNIT_BYTES_MAX, "one unit limit");
CL_STATIC_ASSERT((int)CARELOG_PURPOSE_BYTES_MAX == (int)PROTO_PURPOSE_BYTES_MAX,
		 "one purpose limit");
CL_STATIC_ASSERT((int)CARELOG_CATEGORIES_MAX == (int)PROTO_CATEGORIES_MAX, "one categories limit");
CL_STATIC_ASSERT((int)CARELOG_ACCESS_LOG_ROWS_MAX == (int)PROTO_ACCESS_LOG_ROWS_MAX,
		 "one rows limit");
CL_STATIC_ASSERT((int)CARELOG_BTG_GRANTS_MAX == (int)PROTO_BTG_GRANTS_MAX, "one grants limit");

enum {
	CLIENT_MESSAGE_TEXT_BYTES = PROTO_MSG_BYTES_MAX + 256,
	CLIENT_ENDPOINT_BYTES_MAX = 512,
	CLIENT_RECONNECT_MS_MIN = 100,
	CLIENT_RECONNECT_MS_MAX = 2000,
	CLIENT_REPLY_MARGIN_MS_MAX = 1000, /* the node answers this much before the caller gives up */
	CLIENT_TIMEOUT_MS_MAX = 24 * 3600 * 1000, /* longer timeouts are clamped (nng durations are int32) */
	CLIENT_CLOSE_WAIT_MS_MAX = 2000, /* carelog_client_close never blocks longer (see there) */
};

/* Fault seam (STYLE.md 10): tests that compile client.c themselves with
 * -DCLIENT_FAULT_SEAMS replace the socket close to make it block. The shared library always
 * calls nng_close. */
#ifdef CLIENT_FAULT_SEAMS
extern int (*client_socket_close_fn)(nng_socket socket);
int (*client_socket_close_fn)(nng_socket socket) = nng_close;
#else
static int (*const client_socket_close_fn)(nng_socket socket) = nng_close;
#endif

/* Who acts: NUL-terminated copies, "" = the node's default. */
struct client_actor {
	char id[PROTO_ACTOR_BYTES_MAX + 1];
	char role[PROTO_ROLE_BYTES_MAX + 1];
	char unit[PROTO_UNIT_BYTES_MAX + 1];
	char purpose[PROTO_PURPOSE_BYTES_MAX + 1];
};

struct carelog_client {
	nng_socket socket;
	nng_dialer dialer;
	char endpoint[CLIENT_ENDPOINT_BYTES_MAX];
	pthread_mutex_t actor_lock; /* guards actor: carelog_client_set_actor vs. running calls */
	struct client_actor actor;  /* the default sent with every request */
};

/* ------------------------------------------------------------------ messages */

static _Thread_local char client_message[CLIENT_MESSAGE_TEXT_BYTES];

const char *carelog_last_message(void)
{
	return client_message;
}

CL_PRINTF(1, 2)
static void client_message_set(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(client_message, sizeof(client_message), fmt, ap);
	va_end(ap);
}

static void client_message_clear(void)
{
	client_message[0] = '\0';
}

/* ------------------------------------------------------------------ nng adapter */

/* What a call knew when nng failed: it decides between "never sent" and "outcome unknown". */
enum client_phase {
	CLIENT_PHASE_SETUP,
	CLIENT_PHASE_SEND,    /* the request had not reached a connection */
	CLIENT_PHASE_RECEIVE, /* the request was on its way or at the node */
};

/* What a caller should do when a change it sent may or may not have happened. */
static const char *client_unknown_outcome_hint(uint8_t op)
{
	switch (op) {
	case PROTO_OP_APPEND:
		return "the append may still commit: retry with the same request id";
	case PROTO_OP_POLICY:
		return "the policy entry may still commit: retry with the same request id";
	default:
		return "the membership change may still take effect: check status before trying "
		       "again";
	}
}

/* Ops that append with a request id: "pending" is their unknown outcome, retried safely. */
static bool client_op_appends(uint8_t op)
{
	return op == PROTO_OP_APPEND || op == PROTO_OP_POLICY;
}

/* The one place nng's errors become carelog's. Appends (clinical and policy) and membership
 * changes whose request left come back CARELOG_EPENDING: only they change the cluster, so only
 * for them does "no answer" mean "outcome unknown" rather than a plain failure. */
static int client_nng_error(int rv, enum client_phase phase, uint8_t op,
			    const struct carelog_client *client, uint32_t timeout_ms)
{
	CL_ASSERT(rv != 0);
	bool sent = phase == CLIENT_PHASE_RECEIVE;
	bool changes = client_op_appends(op) || op == PROTO_OP_MEMBER;
	const char *hint = client_unknown_outcome_hint(op);
	switch (rv) {
	case NNG_ENOMEM:
		client_message_set("out of memory");
		return CARELOG_ENOMEM;
	case NNG_EINVAL:
	case NNG_EADDRINVAL:
	case NNG_ENOTSUP:
		client_message_set("endpoint \"%s\" is not a usable nng URL (%s)", client->endpoint,
				   nng_strerror(rv));
		return CARELOG_EINVAL;
	case NNG_EMSGSIZE:
		client_message_set("message larger than %d bytes", CARELOG_MESSAGE_BYTES_MAX);
		return CARELOG_ETOOBIG;
	case NNG_ETIMEDOUT:
		if (!sent) {
			client_message_set("no connection to %s within %u ms (is carelogd running?)",
					   client->endpoint, timeout_ms);
			return CARELOG_ECONNECT;
		}
		if (changes) {
			client_message_set("no answer from %s within %u ms; %s", client->endpoint,
					   timeout_ms, hint);
			return CARELOG_EPENDING;
		}
		client_message_set("no answer from %s within %u ms", client->endpoint, timeout_ms);
		return CARELOG_ETIMEDOUT;
	case NNG_ECONNREFUSED:
	case NNG_ECONNRESET:
	case NNG_ECONNSHUT:
	case NNG_ECONNABORTED:
	case NNG_ECLOSED:
	case NNG_EUNREACHABLE:
	case NNG_ENOENT:
	case NNG_EADDRINUSE:
	case NNG_EPEERAUTH:
		if (sent && changes) {
			client_message_set("connection to %s lost after sending (%s); %s",
					   client->endpoint, nng_strerror(rv), hint);
			return CARELOG_EPENDING;
		}
		client_message_set("cannot reach %s: %s", client->endpoint, nng_strerror(rv));
		return CARELOG_ECONNECT;
	case NNG_EPROTO:
		client_message_set("protocol error talking to %s", client->endpoint);
		return CARELOG_EPROTO;
	default:
		if (sent && changes) {
			client_message_set("%s after sending to %s; %s", nng_strerror(rv),
					   client->endpoint, hint);
			return CARELOG_EPENDING;
		}
		client_message_set("%s: %s", client->endpoint, nng_strerror(rv));
		return CARELOG_EIO;
	}
}

/* ------------------------------------------------------------------ client */

int carelog_client_open(const char *endpoint, struct carelog_client **out_client)
{
	client_message_clear();
	if (endpoint == NULL || out_client == NULL || endpoint[0] == '\0') {
		client_message_set("no endpoint given");
		return CARELOG_EINVAL;
	}
	if (strlen(endpoint) >= CLIENT_ENDPOINT_BYTES_MAX) {
		client_message_set("endpoint longer than %d bytes", CLIENT_ENDPOINT_BYTES_MAX - 1);
		return CARELOG_EINVAL;
	}
	if (cl_crypto_init() != CARELOG_OK) {
		client_message_set("cannot initialise the random source");
		return CARELOG_ECRYPTO;
	}
	struct carelog_client *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		return CARELOG_ENOMEM;
	}
	if (pthread_mutex_init(&c->actor_lock, NULL) != 0) {
		free(c);
		return CARELOG_ENOMEM;
	}
	snprintf(c->endpoint, sizeof(c->endpoint), "%s", endpoint);
	int rv = nng_req0_open(&c->socket);
	if (rv != 0) {
		int rc = client_nng_error(rv, CLIENT_PHASE_SETUP, 0, c, 0);
		pthread_mutex_destroy(&c->actor_lock);
		free(c);
		return rc;
	}
	/* Options set on the socket are inherited by the dialer created below. Resends are off
	 * per context (see client_call): the caller decides about retries, with the same
	 * request id for appends. */
	rv = nng_socket_set_size(c->socket, NNG_OPT_RECVMAXSZ, CARELOG_MESSAGE_BYTES_MAX);
	if (rv == 0) {
		rv = nng_socket_set_ms(c->socket, NNG_OPT_RECONNMINT, CLIENT_RECONNECT_MS_MIN);
	}
	if (rv == 0) {
		rv = nng_socket_set_ms(c->socket, NNG_OPT_RECONNMAXT, CLIENT_RECONNECT_MS_MAX);
	}
	if (rv == 0) {
		rv = nng_socket_set_ms(c->socket, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	}
	if (rv == 0) {
		/* Non-blocking: the client may start before its node, and reconnects forever. */
		rv = nng_dial(c->socket, c->endpoint, &c->dialer, NNG_FLAG_NONBLOCK);
	}
	if (rv != 0) {
		int rc = client_nng_error(rv, CLIENT_PHASE_SETUP, 0, c, 0);
		nng_close(c->socket);
		pthread_mutex_destroy(&c->actor_lock);
		free(c);
		return rc;
	}
	*out_client = c;
	return CARELOG_OK;
}

/* One socket close running on its own thread. Whoever finishes last (the closer thread or
 * carelog_client_close giving up on it) frees the struct. */
struct client_closer {
	pthread_mutex_t lock;
	pthread_cond_t done_cv;
	nng_socket socket;
	bool done;
	bool abandoned;
};

static void client_closer_free(struct client_closer *k)
{
	pthread_cond_destroy(&k->done_cv);
	pthread_mutex_destroy(&k->lock);
	free(k);
}

static void *client_closer_run(void *arg)
{
	struct client_closer *k = arg;
	(void)client_socket_close_fn(k->socket);
	pthread_mutex_lock(&k->lock);
	k->done = true;
	bool abandoned = k->abandoned;
	pthread_cond_signal(&k->done_cv);
	pthread_mutex_unlock(&k->lock);
	if (abandoned) {
		client_closer_free(k);
	}
	return NULL;
}

/* Closes `socket` waiting at most CLIENT_CLOSE_WAIT_MS_MAX. nng 1.5.2's nng_close can block
 * forever when the socket closes while a pipe is still busy with a request that gave up
 * (a reply arriving after a 1 ms timeout, a connection reset in the middle of a large send):
 * its reaper waits for a pipe task that never runs (upstream close deadlocks
 * nanomsg/nng#1543, #1813). A caller that got "pending" must not hang for that, so the close
 * runs on a thread we wait for with a bound; past it the thread is left to finish (or not)
 * on its own, which costs one socket until the process exits. */
static void client_socket_close_bounded(nng_socket socket)
{
	struct client_closer *k = calloc(1, sizeof(*k));
	pthread_condattr_t attr;
	bool ready = k != NULL && pthread_condattr_init(&attr) == 0;
	if (ready) {
		ready = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 &&
			pthread_cond_init(&k->done_cv, &attr) == 0;
		pthread_condattr_destroy(&attr);
	}
	if (ready && pthread_mutex_init(&k->lock, NULL) != 0) {
		pthread_cond_destroy(&k->done_cv);
		ready = false;
	}
	pthread_t thread;
	if (ready) {
		k->socket = socket;
		if (pthread_create(&thread, NULL, client_closer_run, k) != 0) {
			client_closer_free(k);
			ready = false;
		}
	} else {
		free(k);
	}
	if (!ready) {
		(void)client_socket_close_fn(socket); /* no thread to spare: close unbounded */
		return;
	}
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += CLIENT_CLOSE_WAIT_MS_MAX / 1000;
	deadline.tv_nsec += (long)(CLIENT_CLOSE_WAIT_MS_MAX % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&k->lock);
	while (!k->done) {
		if (pthread_cond_timedwait(&k->done_cv, &k->lock, &deadline) == ETIMEDOUT) {
			break;
		}
	}
	bool done = k->done;
	k->abandoned = !done;
	pthread_mutex_unlock(&k->lock);
	if (done) {
		pthread_join(thread, NULL);
		client_closer_free(k);
	} else {
		pthread_detach(thread); /* it frees k when (if) nng_close returns */
	}
}

void carelog_client_close(struct carelog_client *client)
{
	if (client == NULL) {
		return;
	}
	client_socket_close_bounded(client->socket);
	pthread_mutex_destroy(&client->actor_lock);
	free(client);
}

/* ------------------------------------------------------------------ actor */

int carelog_client_set_actor(struct carelog_client *client, const char *id, const char *role,
			     const char *unit, const char *purpose)
{
	client_message_clear();
	if (client == NULL) {
		return CARELOG_EINVAL;
	}
	struct client_actor next;
	const struct {
		const char *name;
		const char *value;
		char *dst;
		size_t cap;
	} fields[] = {
	    {"actor id", id, next.id, sizeof(next.id)},
	    {"actor role", role, next.role, sizeof(next.role)},
	    {"actor unit", unit, next.unit, sizeof(next.unit)},
	    {"actor purpose", purpose, next.purpose, sizeof(next.purpose)},
	};
	for (size_t i = 0; i < CL_ARRAY_LEN(fields); i++) {
		const char *v = fields[i].value != NULL ? fields[i].value : "";
		size_t len = strlen(v);
		if (len >= fields[i].cap) {
			client_message_set("%s is %zu bytes, at most %zu are allowed",
			                   fields[i].name, len, fields[i].cap - 1);
			return CARELOG_ETOOBIG;
		}
		memcpy(fields[i].dst, v, len + 1);
	}
	pthread_mutex_lock(&client->actor_lock);
	client->actor = next;
	pthread_mutex_unlock(&client->actor_lock);
	return CARELOG_OK;
}

/* The actor a request sends: the fields the call set (per-call overrides, views the caller
 * keeps alive), the client's default for the others, copied into `store` under the lock so a
 * concurrent carelog_client_set_actor cannot change them while the request is encoded. */
static void client_actor_merge(struct carelog_client *client, struct proto_actor *actor,
			       struct client_actor *store)
{
	pthread_mutex_lock(&client->actor_lock);
	*store = client->actor;
	pthread_mutex_unlock(&client->actor_lock);
	struct {
		struct proto_str *field;
		const char *dflt;
	} fields[] = {
	    {&actor->id, store->id},
	    {&actor->role, store->role},
	    {&actor->unit, store->unit},
	    {&actor->purpose, store->purpose},
	};
	for (size_t i = 0; i < CL_ARRAY_LEN(fields); i++) {
		if (fields[i].field->len == 0) {
			*fields[i].field =
			    (struct proto_str){fields[i].dflt, strlen(fields[i].dflt)};
		}
	}
}

int carelog_request_id_generate(char out[CARELOG_REQUEST_ID_HEX_BYTES])
{
	CL_ASSERT(out != NULL);
	if (cl_crypto_init() != CARELOG_OK) {
		client_message_set("cannot initialise the random source");
		return CARELOG_ECRYPTO;
	}
	uint8_t raw[(CARELOG_REQUEST_ID_HEX_BYTES - 1) / 2];
	cl_random_bytes(raw, sizeof(raw));
	cl_hex_encode(out, raw, sizeof(raw));
	return CARELOG_OK;
}

static uint64_t client_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* How long the node may work: a little less than the caller waits, so that a commit that
 * takes too long comes back as the node's "pending" instead of a silent client timeout. */
static uint32_t client_node_timeout_ms(uint32_t timeout_ms)
{
	uint32_t margin = timeout_ms / 10;
	if (margin > CLIENT_REPLY_MARGIN_MS_MAX) {
		margin = CLIENT_REPLY_MARGIN_MS_MAX;
	}
	if (margin < 50) {
		margin = timeout_ms / 2;
	}
	uint32_t t = timeout_ms - margin;
	return t > 0 ? t : 1;
}

/* One exchange: the reply stays in *out_msg (the decoded views point into it). */
struct client_exchange {
	nng_msg *reply_msg;
	struct proto_arena arena;
	struct proto_reply reply;
};

static void client_exchange_free(struct client_exchange *x)
{
	if (x->reply_msg != NULL) {
		nng_msg_free(x->reply_msg);
		x->reply_msg = NULL;
	}
	proto_arena_free(&x->arena);
}

static int client_send_receive(struct carelog_client *client, nng_ctx ctx, nng_aio *aio,
			       const struct proto_buf *request, uint32_t timeout_ms, uint8_t op,
			       nng_msg **out_reply)
{
	nng_msg *msg;
	int rv = nng_msg_alloc(&msg, 0);
	if (rv == 0) {
		rv = nng_msg_append(msg, request->data, request->len);
		if (rv != 0) {
			nng_msg_free(msg);
		}
	}
	if (rv != 0) {
		return client_nng_error(rv, CLIENT_PHASE_SETUP, op, client, timeout_ms);
	}
	uint64_t start_ms = client_now_ms();
	nng_aio_set_msg(aio, msg);
	nng_aio_set_timeout(aio, (nng_duration)timeout_ms);
	nng_ctx_send(ctx, aio);
	nng_aio_wait(aio);
	rv = nng_aio_result(aio);
	if (rv != 0) {
		nng_msg_free(nng_aio_get_msg(aio)); /* a failed send gives the message back */
		nng_aio_set_msg(aio, NULL);
		return client_nng_error(rv, CLIENT_PHASE_SEND, op, client, timeout_ms);
	}
	uint64_t spent_ms = client_now_ms() - start_ms;
	uint32_t left_ms = spent_ms < timeout_ms ? (uint32_t)(timeout_ms - spent_ms) : 1;
	nng_aio_set_timeout(aio, (nng_duration)left_ms);
	nng_ctx_recv(ctx, aio);
	nng_aio_wait(aio);
	rv = nng_aio_result(aio);
	if (rv != 0) {
		return client_nng_error(rv, CLIENT_PHASE_RECEIVE, op, client, timeout_ms);
	}
	*out_reply = nng_aio_get_msg(aio);
	nng_aio_set_msg(aio, NULL);
	return CARELOG_OK;
}

/*
 * Sends `req` and decodes the answer into x->reply. Returns the node's error when it sent one
 * (with its message in carelog_last_message), so callers only handle success and the
 * append-specific pending case.
 */
static int client_call(struct carelog_client *client, struct proto_request *req,
		       uint32_t timeout_ms, struct client_exchange *x)
{
	CL_ASSERT(client != NULL);
	memset(x, 0, sizeof(*x));
	bool is_append = client_op_appends(req->op);
	if (timeout_ms == 0) {
		timeout_ms = CARELOG_TIMEOUT_MS_DEFAULT;
	}
	if (timeout_ms > CLIENT_TIMEOUT_MS_MAX) {
		timeout_ms = CLIENT_TIMEOUT_MS_MAX;
	}
	req->version = PROTO_VERSION;
	req->timeout_ms = client_node_timeout_ms(timeout_ms);
	struct client_actor actor; /* the views in req->actor point here until encoded */
	client_actor_merge(client, &req->actor, &actor);
	struct proto_buf request = {0};
	int rc = proto_request_encode(req, &request);
	memset(&req->actor, 0, sizeof(req->actor)); /* `actor` ends with this call */
	if (rc == CARELOG_OK && request.len > (size_t)PROTO_MESSAGE_BYTES_MAX) {
		proto_buf_free(&request); /* the encoder refuses this already; never send it */
		rc = CARELOG_ETOOBIG;
	}
	if (rc != CARELOG_OK) {
		/* The calls check each field with its own message first, so what is left here is
		 * the message ceiling (or a field a newer codec limits). */
		if (rc == CARELOG_ETOOBIG) {
			client_message_set("%s request exceeds a protocol limit (a field, or %d bytes "
					   "for the whole message); not sent",
					   proto_op_name(req->op), PROTO_MESSAGE_BYTES_MAX);
		} else {
			client_message_set("%s request not encodable: %s", proto_op_name(req->op),
					   carelog_strerror(rc));
		}
		return rc;
	}
	nng_ctx ctx;
	nng_aio *aio = NULL;
	int rv = nng_ctx_open(&ctx, client->socket);
	if (rv != 0) {
		proto_buf_free(&request);
		return client_nng_error(rv, CLIENT_PHASE_SETUP, req->op, client, timeout_ms);
	}
	rv = nng_ctx_set_ms(ctx, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	if (rv == 0) {
		rv = nng_aio_alloc(&aio, NULL, NULL);
	}
	if (rv != 0) {
		rc = client_nng_error(rv, CLIENT_PHASE_SETUP, req->op, client, timeout_ms);
	} else {
		rc = client_send_receive(client, ctx, aio, &request, timeout_ms, req->op,
					 &x->reply_msg);
	}
	if (aio != NULL) {
		nng_aio_free(aio);
	}
	nng_ctx_close(ctx);
	proto_buf_free(&request);
	if (rc != CARELOG_OK) {
		return rc;
	}
	char why[256];
	rc = proto_reply_decode_reason(nng_msg_body(x->reply_msg), nng_msg_len(x->reply_msg),
				       &x->arena, &x->reply, why, sizeof(why));
	if (rc != CARELOG_OK) {
		client_message_set("malformed reply from %s: %s", client->endpoint, why);
		client_exchange_free(x);
		return rc == CARELOG_ENOMEM ? rc : rc == CARELOG_EVERSION ? rc : CARELOG_EPROTO;
	}
	if (x->reply.err != CARELOG_OK) {
		client_message_set("%.*s", (int)x->reply.msg.len, x->reply.msg.ptr);
		rc = x->reply.err;
		if (rc == CARELOG_EPENDING && is_append) {
			return rc; /* the caller reports pending with the request id */
		}
		client_exchange_free(x);
		return rc;
	}
	if (x->reply.op != req->op) {
		client_message_set("reply from %s answers \"%s\", not \"%s\"", client->endpoint,
				   proto_op_name(x->reply.op), proto_op_name(req->op));
		client_exchange_free(x);
		return CARELOG_EPROTO;
	}
	return CARELOG_OK;
}

/* ------------------------------------------------------------------ result blocks */

/* Results are one malloc block: the struct, its arrays, then NUL-terminated copies. */
struct client_pool {
	char *next;
	char *end;
};

static size_t str_size(struct proto_str s)
{
	return s.len + 1;
}

static const char *pool_copy(struct client_pool *p, struct proto_str s)
{
	CL_ASSERT((size_t)(p->end - p->next) >= s.len + 1);
	char *out = p->next;
	if (s.len > 0) {
		memcpy(out, s.ptr, s.len);
	}
	out[s.len] = '\0';
	p->next += s.len + 1;
	return out;
}

static size_t entry_strings_size(const struct proto_entry *e)
{
	return str_size(e->kind) + str_size(e->patient) + str_size(e->author) + str_size(e->role) +
	       str_size(e->org) + str_size(e->unit) + str_size(e->status) +
	       str_size(e->sensitivity) + str_size(e->media_type) + str_size(e->request_id) +
	       str_size(e->body) + str_size(e->erased_author) + str_size(e->erased_org) +
	       str_size(e->erased_basis);
}

static void entry_fill(struct carelog_entry *d, const struct proto_entry *s,
		       struct client_pool *p)
{
	d->index = s->index;
	memcpy(d->id, s->id, CARELOG_ID_BYTES);
	d->kind = pool_copy(p, s->kind);
	d->patient = pool_copy(p, s->patient);
	d->author = pool_copy(p, s->author);
	d->role = pool_copy(p, s->role);
	d->org = pool_copy(p, s->org);
	d->unit = pool_copy(p, s->unit);
	d->node_id = s->node_id;
	d->time_ms = s->time_ms;
	d->author_time_ms = s->author_time_ms;
	d->clinical_time_ms = s->clinical_time_ms;
	d->status = pool_copy(p, s->status);
	d->sensitivity = pool_copy(p, s->sensitivity);
	d->media_type = pool_copy(p, s->media_type);
	d->request_id = pool_copy(p, s->request_id);
	d->has_corrects = s->has_corrects;
	memcpy(d->corrects, s->corrects, CARELOG_ID_BYTES);
	d->body_erased = s->body_erased;
	d->body = (const uint8_t *)pool_copy(p, s->body);
	d->body_len = s->body.len;
	d->has_superseded_by = s->has_superseded_by;
	memcpy(d->superseded_by, s->superseded_by, CARELOG_ID_BYTES);
	d->erased_index = s->erased_index;
	d->erased_time_ms = s->erased_time_ms;
	d->erased_author = pool_copy(p, s->erased_author);
	d->erased_org = pool_copy(p, s->erased_org);
	d->erased_basis = pool_copy(p, s->erased_basis);
}

static const char *opt(const char *s)
{
	return s != NULL ? s : "";
}

static struct proto_str view(const char *s)
{
	return (struct proto_str){.ptr = opt(s), .len = strlen(opt(s))};
}

static struct proto_actor actor_view(const char *id, const char *role)
{
	return (struct proto_actor){.id = view(id), .role = view(role)};
}

/* Refuses a field over its protocol limit before anything is encoded or sent, naming it, so
 * the caller learns which value to shorten instead of a bare CARELOG_ETOOBIG. */
static int client_check_size(const char *field, size_t len, size_t max)
{
	if (len <= max) {
		return CARELOG_OK;
	}
	client_message_set("%s is %zu bytes, at most %zu are allowed; not sent", field, len, max);
	return CARELOG_ETOOBIG;
}

static int client_check_actor(const char *actor, const char *role)
{
	int rc = client_check_size("actor", strlen(opt(actor)), PROTO_ACTOR_BYTES_MAX);
	if (rc == CARELOG_OK) {
		rc = client_check_size("role", strlen(opt(role)), PROTO_ROLE_BYTES_MAX);
	}
	return rc;
}

static int client_check_append(const struct carelog_append_args *args)
{
	int rc = client_check_actor(args->actor, args->role);
	const struct {
		const char *field;
		size_t len;
		size_t max;
	} sizes[] = {
		{"patient", strlen(args->patient), PROTO_PATIENT_BYTES_MAX},
		{"kind", strlen(args->kind), PROTO_KIND_BYTES_MAX},
		{"media type", strlen(opt(args->media_type)), PROTO_MEDIA_TYPE_BYTES_MAX},
		{"status", strlen(opt(args->status)), PROTO_STATUS_BYTES_MAX},
		{"sensitivity", strlen(opt(args->sensitivity)), PROTO_SENSITIVITY_BYTES_MAX},
		{"body", args->body_len, PROTO_BODY_BYTES_MAX},
	};
	for (size_t i = 0; i < CL_ARRAY_LEN(sizes) && rc == CARELOG_OK; i++) {
		rc = client_check_size(sizes[i].field, sizes[i].len, sizes[i].max);
	}
	return rc;
}

/* ------------------------------------------------------------------ calls */

/* The request id an append sends: the caller's, or a fresh one. */
static int client_request_id(const char *given, char out[CARELOG_REQUEST_ID_BYTES_MAX + 1])
{
	if (opt(given)[0] == '\0') {
		return carelog_request_id_generate(out);
	}
	if (strlen(given) > CARELOG_REQUEST_ID_BYTES_MAX) {
		client_message_set("request id longer than %d bytes", CARELOG_REQUEST_ID_BYTES_MAX);
		return CARELOG_EINVAL;
	}
	snprintf(out, CARELOG_REQUEST_ID_BYTES_MAX + 1, "%s", given);
	return CARELOG_OK;
}

/* Sends an append (clinical or policy) and reports committed / pending / failed. */
static int client_append_call(struct carelog_client *client, struct proto_request *req,
			      const char *request_id, uint32_t timeout_ms,
			      struct carelog_append_result *out)
{
	struct client_exchange x;
	int rc = client_call(client, req, timeout_ms, &x);
	bool pending = rc == CARELOG_EPENDING || (rc == CARELOG_OK && !x.reply.u.append.committed);
	if (pending) {
		if (rc == CARELOG_OK) {
			client_message_set("not committed in time; retry with the same request id");
		}
		memset(out, 0, sizeof(*out));
		snprintf(out->request_id, sizeof(out->request_id), "%s", request_id);
		client_exchange_free(&x);
		return CARELOG_EPENDING;
	}
	if (rc != CARELOG_OK) {
		return rc;
	}
	const struct proto_append_reply *r = &x.reply.u.append;
	struct carelog_append_result res = {
	    .committed = true, .duplicate = r->duplicate, .index = r->index};
	memcpy(res.id, r->id, CARELOG_ID_BYTES);
	/* The node echoes the request id; we report the one we sent, which is what a retry
	 * must reuse. */
	snprintf(res.request_id, sizeof(res.request_id), "%s", request_id);
	*out = res;
	client_exchange_free(&x);
	return CARELOG_OK;
}

int carelog_append(struct carelog_client *client, const struct carelog_append_args *args,
		   uint32_t timeout_ms, struct carelog_append_result *out)
{
	client_message_clear();
	if (client == NULL || args == NULL || out == NULL) {
		return CARELOG_EINVAL;
	}
	if (opt(args->patient)[0] == '\0' || opt(args->kind)[0] == '\0') {
		client_message_set("patient and kind are required");
		return CARELOG_EINVAL;
	}
	if (args->body == NULL && args->body_len > 0) {
		client_message_set("body is NULL with a length");
		return CARELOG_EINVAL;
	}
	int size_rc = client_check_append(args);
	if (size_rc != CARELOG_OK) {
		return size_rc;
	}
	char request_id[CARELOG_REQUEST_ID_BYTES_MAX + 1];
	int id_rc = client_request_id(args->request_id, request_id);
	if (id_rc != CARELOG_OK) {
		return id_rc;
	}
	struct proto_request req = {.op = PROTO_OP_APPEND};
	struct proto_append_req *a = &req.u.append;
	req.actor = actor_view(args->actor, args->role);
	a->patient = view(args->patient);
	a->kind = view(args->kind);
	a->request_id = view(request_id);
	a->media_type = view(args->media_type);
	a->status = view(args->status);
	a->sensitivity = view(args->sensitivity);
	a->clinical_time_ms = args->clinical_time_ms;
	if (args->corrects != NULL) {
		a->has_corrects = true;
		memcpy(a->corrects, args->corrects, CARELOG_ID_BYTES);
	}
	a->body = (struct proto_str){.ptr = args->body_len > 0 ? args->body : "",
				     .len = args->body_len};
	return client_append_call(client, &req, request_id, timeout_ms, out);
}

int carelog_read(struct carelog_client *client, const struct carelog_read_args *args,
		 uint32_t timeout_ms, struct carelog_read_result **out_result)
{
	client_message_clear();
	if (client == NULL || args == NULL || out_result == NULL) {
		return CARELOG_EINVAL;
	}
	if (opt(args->patient)[0] == '\0') {
		client_message_set("patient is required");
		return CARELOG_EINVAL;
	}
	if (args->consistency != CARELOG_CONSISTENCY_LOCAL &&
	    args->consistency != CARELOG_CONSISTENCY_LINEARIZABLE) {
		client_message_set("unknown consistency %d", (int)args->consistency);
		return CARELOG_EINVAL;
	}
	int size_rc = client_check_actor(args->actor, args->role);
	if (size_rc == CARELOG_OK) {
		size_rc = client_check_size("patient", strlen(args->patient),
					    PROTO_PATIENT_BYTES_MAX);
	}
	if (size_rc == CARELOG_OK) {
		size_rc = client_check_size("kind", strlen(opt(args->kind)), PROTO_KIND_BYTES_MAX);
	}
	if (size_rc == CARELOG_OK && args->limit > CARELOG_READ_LIMIT_MAX) {
		client_message_set("limit %u is above %d entries; not sent", args->limit,
				   CARELOG_READ_LIMIT_MAX);
		size_rc = CARELOG_ETOOBIG;
	}
	if (size_rc != CARELOG_OK) {
		return size_rc;
	}
	struct proto_request req = {.op = PROTO_OP_READ};
	struct proto_read_req *q = &req.u.read;
	req.actor = actor_view(args->actor, args->role);
	q->patient = view(args->patient);
	q->consistency = (uint8_t)args->consistency;
	q->min_index = args->min_index;
	q->kind = view(args->kind);
	q->since_index = args->since_index;
	q->limit = args->limit;
	q->history = args->history;
	struct client_exchange x;
	int rc = client_call(client, &req, timeout_ms, &x);
	if (rc != CARELOG_OK) {
		return rc;
	}
	const struct proto_read_reply *r = &x.reply.u.read;
	size_t size = sizeof(struct carelog_read_result) +
	              (size_t)r->entries_count * sizeof(struct carelog_entry) +
	              (size_t)r->withheld_reasons_count * sizeof(struct carelog_withheld_reason) +
	              str_size(r->basis);
	for (uint32_t i = 0; i < r->entries_count; i++) {
		size += entry_strings_size(&r->entries[i]);
	}
	for (uint32_t i = 0; i < r->withheld_reasons_count; i++) {
		size += str_size(r->withheld_reasons[i].reason);
	}
	struct carelog_read_result *res = calloc(1, size);
	if (res == NULL) {
		client_exchange_free(&x);
		return CARELOG_ENOMEM;
	}
	struct carelog_entry *entries = (struct carelog_entry *)(res + 1);
	struct carelog_withheld_reason *reasons =
	    (struct carelog_withheld_reason *)(entries + r->entries_count);
	struct client_pool pool = {.next = (char *)(reasons + r->withheld_reasons_count),
				   .end = (char *)res + size};
	res->applied_index = r->applied_index;
	res->lag = r->lag;
	res->stale = r->stale;
	res->withheld = r->withheld;
	res->more = r->more;
	res->entries_count = r->entries_count;
	res->entries = r->entries_count > 0 ? entries : NULL;
	for (uint32_t i = 0; i < r->entries_count; i++) {
		entry_fill(&entries[i], &r->entries[i], &pool);
	}
	res->basis = pool_copy(&pool, r->basis);
	res->withheld_reasons_count = r->withheld_reasons_count;
	res->withheld_reasons = r->withheld_reasons_count > 0 ? reasons : NULL;
	for (uint32_t i = 0; i < r->withheld_reasons_count; i++) {
		reasons[i].reason = pool_copy(&pool, r->withheld_reasons[i].reason);
		reasons[i].count = r->withheld_reasons[i].count;
	}
	CL_ASSERT(pool.next == pool.end);
	client_exchange_free(&x);
	*out_result = res;
	return CARELOG_OK;
}

void carelog_read_result_free(struct carelog_read_result *result)
{
	free(result);
}

int carelog_get(struct carelog_client *client, const struct carelog_get_args *args,
		uint32_t timeout_ms, struct carelog_entry **out_entry)
{
	client_message_clear();
	if (client == NULL || args == NULL || out_entry == NULL) {
		return CARELOG_EINVAL;
	}
	int size_rc = client_check_actor(args->actor, args->role);
	if (size_rc != CARELOG_OK) {
		return size_rc;
	}
	struct proto_request req = {.op = PROTO_OP_GET};
	req.actor = actor_view(args->actor, args->role);
	memcpy(req.u.get.id, args->id, CARELOG_ID_BYTES);
	struct client_exchange x;
	int rc = client_call(client, &req, timeout_ms, &x);
	if (rc != CARELOG_OK) {
		return rc;
	}
	size_t size = sizeof(struct carelog_entry) + entry_strings_size(&x.reply.u.get);
	struct carelog_entry *e = calloc(1, size);
	if (e == NULL) {
		client_exchange_free(&x);
		return CARELOG_ENOMEM;
	}
	struct client_pool pool = {.next = (char *)(e + 1), .end = (char *)e + size};
	entry_fill(e, &x.reply.u.get, &pool);
	CL_ASSERT(pool.next == pool.end);
	client_exchange_free(&x);
	*out_entry = e;
	return CARELOG_OK;
}

void carelog_entry_free(struct carelog_entry *entry)
{
	free(entry);
}

int carelog_status(struct carelog_client *client, uint32_t timeout_ms,
		   struct carelog_status **out_status)
{
	client_message_clear();
	if (client == NULL || out_status == NULL) {
		return CARELOG_EINVAL;
	}
	struct proto_request req = {.op = PROTO_OP_STATUS};
	struct client_exchange x;
	int rc = client_call(client, &req, timeout_ms, &x);
	if (rc != CARELOG_OK) {
		return rc;
	}
	const struct proto_status_reply *s = &x.reply.u.status;
	size_t size = sizeof(struct carelog_status) +
		      (size_t)s->members_count * sizeof(struct carelog_member) + str_size(s->role);
	for (uint32_t i = 0; i < s->members_count; i++) {
		size += str_size(s->members[i].role) + str_size(s->members[i].org) +
			str_size(s->members[i].address);
	}
	struct carelog_status *res = calloc(1, size);
	if (res == NULL) {
		client_exchange_free(&x);
		return CARELOG_ENOMEM;
	}
	struct carelog_member *members = (struct carelog_member *)(res + 1);
	struct client_pool pool = {.next = (char *)(members + s->members_count),
				   .end = (char *)res + size};
	res->node_id = s->node_id;
	res->role = pool_copy(&pool, s->role);
	res->term = s->term;
	res->leader_id = s->leader_id;
	res->commit_index = s->commit_index;
	res->applied_index = s->applied_index;
	memcpy(res->chain_head, s->chain_head, CARELOG_ID_BYTES);
	res->members_count = s->members_count;
	res->members = s->members_count > 0 ? members : NULL;
	res->last_index = s->last_index;
	res->progress_age_ms = s->progress_age_ms;
	res->verified_signatures = s->verified_signatures;
	res->syncs = s->syncs;
	res->transport = (struct carelog_transport_stats){
		.sent = s->transport.sent,
		.received = s->transport.received,
		.dropped_auth = s->transport.dropped_auth,
		.dropped_replay = s->transport.dropped_replay,
		.dropped_unknown = s->transport.dropped_unknown,
		.handshakes = s->transport.handshakes,
	};
	res->has_audit = s->has_audit;
	res->audit = (struct carelog_audit_stats){
		.queued_rows = s->audit.queued_rows,
		.next_seq = s->audit.next_seq,
		.shipped_seq = s->audit.shipped_seq,
		.syncs = s->audit.syncs,
		.write_failures = s->audit.write_failures,
		.ship_failures = s->audit.ship_failures,
	};
	for (uint32_t i = 0; i < s->members_count; i++) {
		const struct proto_member *m = &s->members[i];
		members[i].id = m->id;
		members[i].role = pool_copy(&pool, m->role);
		members[i].org = pool_copy(&pool, m->org);
		members[i].address = pool_copy(&pool, m->address);
		members[i].has_match = m->has_match;
		members[i].match_index = m->has_match ? m->match_index : 0;
		members[i].lag = m->lag;
	}
	CL_ASSERT(pool.next == pool.end);
	client_exchange_free(&x);
	*out_status = res;
	return CARELOG_OK;
}

void carelog_status_free(struct carelog_status *status)
{
	free(status);
}

/* ------------------------------------------------------------------ membership */

static int client_member_call(struct carelog_client *client, struct proto_request *req,
			      uint32_t timeout_ms, uint64_t *out_index)
{
	struct client_exchange x;
	int rc = client_call(client, req, timeout_ms, &x);
	if (rc != CARELOG_OK) {
		return rc;
	}
	*out_index = x.reply.u.member.index;
	client_exchange_free(&x);
	return CARELOG_OK;
}

static int client_check_node_id(uint64_t id)
{
	if (id == 0) {
		client_message_set("node id 0 is not a node id");
		return CARELOG_EINVAL;
	}
	return CARELOG_OK;
}

int carelog_member_add_learner(struct carelog_client *client,
			       const struct carelog_learner_args *args, uint32_t timeout_ms,
			       uint64_t *out_index)
{
	client_message_clear();
	if (client == NULL || args == NULL || out_index == NULL) {
		return CARELOG_EINVAL;
	}
	int rc = client_check_node_id(args->id);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (opt(args->org)[0] == '\0' || opt(args->address)[0] == '\0' ||
	    args->public_key == NULL) {
		client_message_set("org, address and public key are required");
		return CARELOG_EINVAL;
	}
	rc = client_check_size("org", strlen(args->org), PROTO_ORG_BYTES_MAX);
	if (rc == CARELOG_OK) {
		rc = client_check_size("address", strlen(args->address), PROTO_ADDRESS_BYTES_MAX);
	}
	if (rc != CARELOG_OK) {
		return rc;
	}
	struct proto_request req = {.op = PROTO_OP_MEMBER};
	struct proto_member_req *m = &req.u.member;
	m->action = PROTO_MEMBER_ADD_LEARNER;
	m->id = args->id;
	m->org = view(args->org);
	m->address = view(args->address);
	m->has_public_key = true;
	memcpy(m->public_key, args->public_key, PROTO_PUBLIC_KEY_BYTES);
	return client_member_call(client, &req, timeout_ms, out_index);
}

static int client_member_simple(struct carelog_client *client, uint8_t action, uint64_t id,
				uint32_t timeout_ms, uint64_t *out_index)
{
	client_message_clear();
	if (client == NULL || out_index == NULL) {
		return CARELOG_EINVAL;
	}
	int rc = client_check_node_id(id);
	if (rc != CARELOG_OK) {
		return rc;
	}
	struct proto_request req = {.op = PROTO_OP_MEMBER};
	req.u.member.action = action;
	req.u.member.id = id;
	return client_member_call(client, &req, timeout_ms, out_index);
}

int carelog_member_promote(struct carelog_client *client, uint64_t id, uint32_t timeout_ms,
			   uint64_t *out_index)
{
	return client_member_simple(client, PROTO_MEMBER_PROMOTE, id, timeout_ms, out_index);
}

int carelog_member_remove(struct carelog_client *client, uint64_t id, uint32_t timeout_ms,
			  uint64_t *out_index)
{
	return client_member_simple(client, PROTO_MEMBER_REMOVE, id, timeout_ms, out_index);
}

int carelog_transfer_leader(struct carelog_client *client, uint64_t to, uint32_t timeout_ms,
			    uint64_t *out_leader_id)
{
	client_message_clear();
	if (client == NULL || out_leader_id == NULL) {
		return CARELOG_EINVAL;
	}
	int rc = client_check_node_id(to);
	if (rc != CARELOG_OK) {
		return rc;
	}
	struct proto_request req = {.op = PROTO_OP_TRANSFER};
	req.u.transfer.to = to;
	struct client_exchange x;
	rc = client_call(client, &req, timeout_ms, &x);
	if (rc != CARELOG_OK) {
		return rc;
	}
	*out_leader_id = x.reply.u.transfer.leader_id;
	client_exchange_free(&x);
	return CARELOG_OK;
}

int carelog_verify(struct carelog_client *client, uint32_t timeout_ms,
		   struct carelog_verify_result **out_result)
{
	client_message_clear();
	if (client == NULL || out_result == NULL) {
		return CARELOG_EINVAL;
	}
	struct proto_request req = {.op = PROTO_OP_VERIFY};
	struct client_exchange x;
	int rc = client_call(client, &req, timeout_ms, &x);
	if (rc != CARELOG_OK) {
		return rc;
	}
	const struct proto_verify_reply *v = &x.reply.u.verify;
	size_t size = sizeof(struct carelog_verify_result) +
		      (size_t)v->problems_listed * sizeof(char *);
	for (uint32_t i = 0; i < v->problems_listed; i++) {
		size += str_size(v->problems[i]);
	}
	struct carelog_verify_result *res = calloc(1, size);
	if (res == NULL) {
		client_exchange_free(&x);
		return CARELOG_ENOMEM;
	}
	const char **problems = (const char **)(res + 1);
	struct client_pool pool = {.next = (char *)(problems + v->problems_listed),
				   .end = (char *)res + size};
	res->ok = v->ok;
	res->entries_checked = v->entries_checked;
	res->values_checked = v->values_checked;
	res->problems_count = v->problems_count;
	res->problems_listed = v->problems_listed;
	res->problems = v->problems_listed > 0 ? problems : NULL;
	for (uint32_t i = 0; i < v->problems_listed; i++) {
		problems[i] = pool_copy(&pool, v->problems[i]);
	}
	memcpy(res->chain_head, v->chain_head, CARELOG_ID_BYTES);
	res->applied_index = v->applied_index;
	CL_ASSERT(pool.next == pool.end);
	client_exchange_free(&x);
	*out_result = res;
	return CARELOG_OK;
}

void carelog_verify_result_free(struct carelog_verify_result *result)
{
	free(result);
}

/* ------------------------------------------------------------------ clinical access */

static int client_check_policy(const struct carelog_policy_args *a)
{
	const struct {
		const char *field;
		const char *value;
		size_t max;
	} sizes[] = {
	    {"kind", a->kind, PROTO_KIND_BYTES_MAX},
	    {"patient", a->patient, PROTO_PATIENT_BYTES_MAX},
	    {"org", a->org, PROTO_ORG_BYTES_MAX},
	    {"unit", a->unit, PROTO_UNIT_BYTES_MAX},
	    {"actor", a->actor, PROTO_ACTOR_BYTES_MAX},
	    {"target org", a->target_org, PROTO_ORG_BYTES_MAX},
	    {"word", a->word, PROTO_WORD_BYTES_MAX},
	    {"level", a->level, PROTO_WORD_BYTES_MAX},
	    {"category", a->category, PROTO_SENSITIVITY_BYTES_MAX},
	    {"reason code", a->reason_code, PROTO_REASON_CODE_BYTES_MAX},
	    {"text", a->text, PROTO_TEXT_BYTES_MAX},
	    {"birth date", a->birth_date, PROTO_BIRTH_DATE_BYTES_MAX},
	};
	int rc = CARELOG_OK;
	for (size_t i = 0; i < CL_ARRAY_LEN(sizes) && rc == CARELOG_OK; i++) {
		rc = client_check_size(sizes[i].field, strlen(opt(sizes[i].value)), sizes[i].max);
	}
	if (rc == CARELOG_OK && a->categories_count > CARELOG_CATEGORIES_MAX) {
		client_message_set("%zu categories, at most %d are allowed; not sent",
		                   a->categories_count, CARELOG_CATEGORIES_MAX);
		rc = CARELOG_ETOOBIG;
	}
	if (rc == CARELOG_OK && a->categories_count > 0 && a->categories == NULL) {
		client_message_set("categories is NULL with a count");
		rc = CARELOG_EINVAL;
	}
	for (size_t i = 0; i < a->categories_count && rc == CARELOG_OK; i++) {
		rc = client_check_size("category", strlen(opt(a->categories[i])),
		                       PROTO_SENSITIVITY_BYTES_MAX);
	}
	return rc;
}

int carelog_policy(struct carelog_client *client, const struct carelog_policy_args *args,
		   uint32_t timeout_ms, struct carelog_append_result *out)
{
	client_message_clear();
	if (client == NULL || args == NULL || out == NULL) {
		return CARELOG_EINVAL;
	}
	if (opt(args->kind)[0] == '\0') {
		client_message_set("kind is required");
		return CARELOG_EINVAL;
	}
	int rc = client_check_policy(args);
	if (rc != CARELOG_OK) {
		return rc;
	}
	char request_id[CARELOG_REQUEST_ID_BYTES_MAX + 1];
	rc = client_request_id(args->request_id, request_id);
	if (rc != CARELOG_OK) {
		return rc;
	}
	struct proto_request req = {.op = PROTO_OP_POLICY};
	struct proto_policy_req *p = &req.u.policy;
	p->kind = view(args->kind);
	p->patient = view(args->patient);
	p->request_id = view(request_id);
	p->org = view(args->org);
	p->unit = view(args->unit);
	p->actor = view(args->actor);
	p->target_org = view(args->target_org);
	p->word = view(args->word);
	p->level = view(args->level);
	p->category = view(args->category);
	p->reason_code = view(args->reason_code);
	p->text = view(args->text);
	p->birth_date = view(args->birth_date);
	p->categories_count = (uint32_t)args->categories_count;
	for (size_t i = 0; i < args->categories_count; i++) {
		p->categories[i] = view(args->categories[i]);
	}
	if (args->ref != NULL) {
		p->has_ref = true;
		memcpy(p->ref, args->ref, CARELOG_ID_BYTES);
	}
	p->from_ms = args->from_ms;
	p->to_ms = args->to_ms;
	p->hours = args->hours;
	p->implicit_window_days = args->implicit_window_days;
	p->btg_hours_max = args->btg_hours_max;
	p->ambulance_hours_max = args->ambulance_hours_max;
	return client_append_call(client, &req, request_id, timeout_ms, out);
}

int carelog_access_log(struct carelog_client *client, const struct carelog_access_log_args *args,
		       uint32_t timeout_ms, struct carelog_access_log **out_log)
{
	client_message_clear();
	if (client == NULL || args == NULL || out_log == NULL) {
		return CARELOG_EINVAL;
	}
	bool by_patient = opt(args->patient)[0] != '\0';
	bool by_actor = opt(args->actor_id)[0] != '\0';
	if (by_patient == by_actor) {
		client_message_set("name exactly one of a patient and an actor");
		return CARELOG_EINVAL;
	}
	if (by_patient && opt(args->actor_org)[0] != '\0') {
		client_message_set("an organisation goes with an actor, not with a patient");
		return CARELOG_EINVAL;
	}
	int rc = client_check_size("patient", strlen(opt(args->patient)), PROTO_PATIENT_BYTES_MAX);
	if (rc == CARELOG_OK) {
		rc = client_check_size("actor", strlen(opt(args->actor_id)), PROTO_ACTOR_BYTES_MAX);
	}
	if (rc == CARELOG_OK) {
		rc = client_check_size("org", strlen(opt(args->actor_org)), PROTO_ORG_BYTES_MAX);
	}
	if (rc == CARELOG_OK && args->limit > CARELOG_ACCESS_LOG_ROWS_MAX) {
		client_message_set("limit %u is above %d rows; not sent", args->limit,
		                   CARELOG_ACCESS_LOG_ROWS_MAX);
		rc = CARELOG_ETOOBIG;
	}
	if (rc != CARELOG_OK) {
		return rc;
	}
	struct proto_request req = {.op = PROTO_OP_ACCESS_LOG};
	req.u.access_log.patient = view(args->patient);
	req.u.access_log.actor_id = view(args->actor_id);
	req.u.access_log.actor_org = view(args->actor_org);
	req.u.access_log.limit = args->limit;
	struct client_exchange x;
	rc = client_call(client, &req, timeout_ms, &x);
	if (rc != CARELOG_OK) {
		return rc;
	}
	const struct proto_access_log_reply *a = &x.reply.u.access_log;
	size_t size = sizeof(struct carelog_access_log) +
	              (size_t)a->rows_count * sizeof(struct carelog_access_row);
	for (uint32_t i = 0; i < a->rows_count; i++) {
		const struct proto_access_row *w = &a->rows[i];
		size += str_size(w->actor) + str_size(w->role) + str_size(w->org) +
		        str_size(w->unit) + str_size(w->patient) + str_size(w->action) +
		        str_size(w->basis) + str_size(w->purpose) + str_size(w->outcome);
	}
	struct carelog_access_log *res = calloc(1, size);
	if (res == NULL) {
		client_exchange_free(&x);
		return CARELOG_ENOMEM;
	}
	struct carelog_access_row *rows = (struct carelog_access_row *)(res + 1);
	struct client_pool pool = {.next = (char *)(rows + a->rows_count),
	                           .end = (char *)res + size};
	res->applied_index = a->applied_index;
	res->rows_count = a->rows_count;
	res->rows = a->rows_count > 0 ? rows : NULL;
	for (uint32_t i = 0; i < a->rows_count; i++) {
		const struct proto_access_row *w = &a->rows[i];
		struct carelog_access_row *d = &rows[i];
		d->node_id = w->node_id;
		d->seq = w->seq;
		d->time_ms = w->time_ms;
		d->actor = pool_copy(&pool, w->actor);
		d->role = pool_copy(&pool, w->role);
		d->org = pool_copy(&pool, w->org);
		d->unit = pool_copy(&pool, w->unit);
		d->patient = pool_copy(&pool, w->patient);
		d->action = pool_copy(&pool, w->action);
		d->allowed = w->allowed;
		d->basis = pool_copy(&pool, w->basis);
		d->count = w->count;
		d->withheld = w->withheld;
		d->has_entry = w->has_entry;
		memcpy(d->entry, w->entry, CARELOG_ID_BYTES);
		d->purpose = pool_copy(&pool, w->purpose);
		d->outcome = pool_copy(&pool, w->outcome);
		d->shipped = w->shipped;
	}
	CL_ASSERT(pool.next == pool.end);
	client_exchange_free(&x);
	*out_log = res;
	return CARELOG_OK;
}

void carelog_access_log_free(struct carelog_access_log *log)
{
	free(log);
}

int carelog_btg_list(struct carelog_client *client, const struct carelog_btg_list_args *args,
		     uint32_t timeout_ms, struct carelog_btg_list **out_list)
{
	client_message_clear();
	if (client == NULL || args == NULL || out_list == NULL) {
		return CARELOG_EINVAL;
	}
	int rc = client_check_size("patient", strlen(opt(args->patient)), PROTO_PATIENT_BYTES_MAX);
	if (rc == CARELOG_OK && args->limit > CARELOG_BTG_GRANTS_MAX) {
		client_message_set("limit %u is above %d grants; not sent", args->limit,
		                   CARELOG_BTG_GRANTS_MAX);
		rc = CARELOG_ETOOBIG;
	}
	if (rc != CARELOG_OK) {
		return rc;
	}
	struct proto_request req = {.op = PROTO_OP_BTG_LIST};
	req.u.btg_list.patient = view(args->patient);
	req.u.btg_list.limit = args->limit;
	struct client_exchange x;
	rc = client_call(client, &req, timeout_ms, &x);
	if (rc != CARELOG_OK) {
		return rc;
	}
	const struct proto_btg_list_reply *b = &x.reply.u.btg_list;
	size_t size = sizeof(struct carelog_btg_list) +
	              (size_t)b->grants_count * sizeof(struct carelog_btg_grant);
	for (uint32_t i = 0; i < b->grants_count; i++) {
		const struct proto_btg_grant *g = &b->grants[i];
		size += str_size(g->patient) + str_size(g->actor) + str_size(g->role) +
		        str_size(g->org) + str_size(g->unit) + str_size(g->reason_code) +
		        str_size(g->reason_text);
	}
	struct carelog_btg_list *res = calloc(1, size);
	if (res == NULL) {
		client_exchange_free(&x);
		return CARELOG_ENOMEM;
	}
	struct carelog_btg_grant *grants = (struct carelog_btg_grant *)(res + 1);
	struct client_pool pool = {.next = (char *)(grants + b->grants_count),
	                           .end = (char *)res + size};
	res->grants_count = b->grants_count;
	res->grants = b->grants_count > 0 ? grants : NULL;
	for (uint32_t i = 0; i < b->grants_count; i++) {
		const struct proto_btg_grant *g = &b->grants[i];
		struct carelog_btg_grant *d = &grants[i];
		memcpy(d->id, g->id, CARELOG_ID_BYTES);
		d->index = g->index;
		d->patient = pool_copy(&pool, g->patient);
		d->actor = pool_copy(&pool, g->actor);
		d->role = pool_copy(&pool, g->role);
		d->org = pool_copy(&pool, g->org);
		d->unit = pool_copy(&pool, g->unit);
		d->granted_ms = g->granted_ms;
		d->expires_ms = g->expires_ms;
		d->reason_code = pool_copy(&pool, g->reason_code);
		d->reason_text = pool_copy(&pool, g->reason_text);
	}
	CL_ASSERT(pool.next == pool.end);
	client_exchange_free(&x);
	*out_list = res;
	return CARELOG_OK;
}

void carelog_btg_list_free(struct carelog_btg_list *list)
{
	free(list);
}
