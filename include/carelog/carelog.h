/* libcarelog: the client library clinical applications link to append to and read the journal. */
#ifndef CARELOG_CARELOG_H
#define CARELOG_CARELOG_H

#include "carelog/errors.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * @mainpage libcarelog
 *
 * A client talks to one carelogd node over its client endpoint (nng req/rep; the protocol is
 * docs/client-protocol.md). Every function that can fail returns a carelog_error code
 * (carelog/errors.h; carelog_strerror() gives the text). When the node refused the request,
 * carelog_last_message() gives the node's explanation.
 *
 * Threads: a struct carelog_client may be shared by any number of threads; each call uses
 * its own nng context, so calls run concurrently over one connection. Results belong to the
 * caller and may be used and freed from any thread.
 *
 * Ownership: arguments are borrowed for the duration of the call only. Every result a call
 * allocates (`**out`) is one block owned by the caller and freed with its matching *_free
 * function; the strings inside it are NUL-terminated copies that live until that free.
 * Outputs are written only on success (the one exception, carelog_append's pending outcome,
 * is documented there). Destructors accept NULL.
 *
 * Timeouts: `timeout_ms` bounds the whole call (connect, send, node work, reply); 0 means
 * CARELOG_TIMEOUT_MS_DEFAULT; more than 24 hours counts as 24 hours. The node is asked to answer a little earlier than that, so a
 * slow commit comes back as a "pending" answer rather than a client-side timeout.
 */

enum {
	CARELOG_ID_BYTES = 32,                 /* entry ids and chain heads: SHA-256 */
	CARELOG_ID_HEX_BYTES = 65,             /* 64 hex digits + NUL */
	CARELOG_REQUEST_ID_HEX_BYTES = 33,     /* 16 random bytes as 32 hex digits + NUL */
	CARELOG_REQUEST_ID_BYTES_MAX = 64,     /* a caller-chosen request id */
	CARELOG_TIMEOUT_MS_DEFAULT = 10000,
	CARELOG_READ_LIMIT_MAX = 1000,         /* entries per carelog_read */
	CARELOG_MESSAGE_BYTES_MAX = 80 * 1024 * 1024, /* largest request sent, largest reply accepted */
};

struct carelog_client;

/*
 * Creates a client for `endpoint` ("ipc:///run/carelog/client.sock", "tcp://host:port").
 * Connecting happens in the background and is retried, so a client may be opened before its
 * node starts; a call made while no connection exists fails with CARELOG_ECONNECT once its
 * timeout passes.
 * @return CARELOG_OK, CARELOG_EINVAL (endpoint NULL or not a URL nng knows), CARELOG_ENOMEM,
 *         CARELOG_ECONNECT (the transport refused the endpoint).
 */
CARELOG_API int carelog_client_open(const char *endpoint, struct carelog_client **out_client);

/* Closes the connection and frees the client. No call on `client` may be running or start
 * afterwards. Accepts NULL. Returns within about 2 s even when nng 1.5.2's socket close
 * blocks (it can after a call gave up on a reply: docs/client-protocol.md, "Known close
 * bug"); that socket is then left to nng until the process exits. */
CARELOG_API void carelog_client_close(struct carelog_client *client);

/*
 * The node's (or the library's) explanation of the last call on this thread that failed,
 * e.g. "no care relation for this patient"; "" when there is none. Thread-local storage,
 * valid until the next libcarelog call on the same thread.
 */
CARELOG_API const char *carelog_last_message(void);

/* Writes a fresh request id: 16 random bytes as 32 lower-case hex digits and a NUL.
 * @return CARELOG_OK, or CARELOG_ECRYPTO if the system's random source is unavailable. */
CARELOG_API int carelog_request_id_generate(char out[CARELOG_REQUEST_ID_HEX_BYTES]);

/* ------------------------------------------------------------------ append */

struct carelog_append_args {
	const char *patient;     /* required */
	const char *kind;        /* required: "note", "observation", ... (see carelogctl append --help) */
	const void *body;        /* body_len bytes; may be NULL when body_len is 0 */
	size_t body_len;
	const char *request_id;  /* NULL or "": the library generates one (returned in the result) */
	const char *actor;       /* practitioner id; NULL or "": the node's configured default */
	const char *role;        /* optional */
	const char *media_type;  /* optional, node default "text/plain" */
	const char *status;      /* optional: preliminary|final|amended|entered-in-error */
	const char *sensitivity; /* optional: normal|psychiatry|... */
	uint64_t clinical_time_ms; /* 0 = the author time */
	const uint8_t *corrects; /* NULL, or the CARELOG_ID_BYTES id of the entry this corrects */
};

struct carelog_append_result {
	bool committed;    /* true: index and id are final */
	bool duplicate;    /* the request id had committed before: index/id of that first entry */
	uint64_t index;
	uint8_t id[CARELOG_ID_BYTES];
	char request_id[CARELOG_REQUEST_ID_BYTES_MAX + 1];
};

/*
 * Appends one entry and waits until it is committed.
 * @return CARELOG_OK with `out` filled (committed = true).
 *         CARELOG_EPENDING when the outcome is not known in time (the node said pending, the
 *         reply timed out after the request was sent, or the connection dropped meanwhile).
 *         Then, and only then on failure, out->request_id is filled and everything else in
 *         `out` is zero: retry with args->request_id = out->request_id, which is safe — the
 *         node appends at most one entry per request id.
 *         CARELOG_ECONNECT when the request never left (no connection within the timeout): it
 *         was not appended. CARELOG_EINVAL for missing patient/kind or a request id longer than
 *         CARELOG_REQUEST_ID_BYTES_MAX; CARELOG_ETOOBIG, without sending anything, for a
 *         field over its protocol limit (body over 64 MiB, patient over 64 bytes, ...) or a
 *         request that would encode to more than CARELOG_MESSAGE_BYTES_MAX, with
 *         carelog_last_message() naming the field and sizes; CARELOG_ETOOBIG from the node
 *         when the request exceeds its request_bytes_max (nothing was appended); any
 *         error the node returns (CARELOG_EDENIED, CARELOG_ENOTLEADER, ...) with
 *         carelog_last_message().
 */
CARELOG_API int carelog_append(struct carelog_client *client,
			       const struct carelog_append_args *args, uint32_t timeout_ms,
			       struct carelog_append_result *out);

/* ------------------------------------------------------------------ entries */

/* One journal entry as a node serves it. Every string is NUL-terminated (possibly "") and
 * lives in the result block it came from. */
struct carelog_entry {
	uint64_t index;
	uint8_t id[CARELOG_ID_BYTES];
	const char *kind;
	const char *patient;
	const char *author;
	const char *role;
	const char *org;
	const char *unit;
	uint64_t node_id;          /* the node whose key signed it */
	uint64_t time_ms;          /* the leader's stamp, ms since the Unix epoch, UTC */
	uint64_t author_time_ms;
	uint64_t clinical_time_ms;
	const char *status;
	const char *sensitivity;
	const char *media_type;
	const char *request_id;
	bool has_corrects;
	uint8_t corrects[CARELOG_ID_BYTES];
	bool body_erased;          /* lawfully erased: body_len is 0 */
	const uint8_t *body;       /* body_len bytes followed by a NUL (not counted) */
	size_t body_len;
};

/* ------------------------------------------------------------------ read */

enum carelog_consistency {
	CARELOG_CONSISTENCY_LOCAL = 0,        /* served by this node's replica (reports its lag) */
	CARELOG_CONSISTENCY_LINEARIZABLE = 1, /* ReadIndex through the leader */
};

struct carelog_read_args {
	const char *patient;   /* required */
	const char *actor;     /* NULL or "": node default */
	const char *role;      /* optional */
	enum carelog_consistency consistency;
	uint64_t min_index;    /* 0, or wait (within the timeout) until the node applied this */
	const char *kind;      /* NULL or "": every kind */
	uint64_t since_index;  /* only entries with index > since_index */
	uint32_t limit;        /* 0 = node default (100); at most CARELOG_READ_LIMIT_MAX */
};

struct carelog_read_result {
	uint64_t applied_index;
	uint64_t lag;          /* commit index the node knows - applied_index */
	bool stale;            /* lag beyond the node's threshold: entries may be missing */
	uint32_t withheld;     /* entries this actor may not see */
	bool more;             /* more entries follow: read again with since_index = last index */
	size_t entries_count;
	const struct carelog_entry *entries; /* ascending index */
};

/*
 * Reads a patient's timeline. On CARELOG_OK *out_result is one allocation, freed with
 * carelog_read_result_free. CARELOG_ETIMEDOUT when min_index was not reached in time,
 * CARELOG_EDENIED, CARELOG_ECONNECT, ... as for the other calls.
 */
CARELOG_API int carelog_read(struct carelog_client *client, const struct carelog_read_args *args,
			     uint32_t timeout_ms, struct carelog_read_result **out_result);
CARELOG_API void carelog_read_result_free(struct carelog_read_result *result);

/* ------------------------------------------------------------------ get */

struct carelog_get_args {
	uint8_t id[CARELOG_ID_BYTES];
	const char *actor; /* NULL or "": node default */
	const char *role;
};

/* One entry by id. CARELOG_ENOTFOUND if no such entry. Free with carelog_entry_free. */
CARELOG_API int carelog_get(struct carelog_client *client, const struct carelog_get_args *args,
			    uint32_t timeout_ms, struct carelog_entry **out_entry);
CARELOG_API void carelog_entry_free(struct carelog_entry *entry);

/* ------------------------------------------------------------------ status */

struct carelog_member {
	uint64_t id;
	const char *role; /* "voter" | "learner" */
	uint64_t match_index;
};

struct carelog_status {
	uint64_t node_id;
	const char *role; /* "leader" | "follower" | "candidate" | "learner" */
	uint64_t term;
	uint64_t leader_id; /* 0 = none known */
	uint64_t commit_index;
	uint64_t applied_index;
	uint8_t chain_head[CARELOG_ID_BYTES]; /* hash-chain head at applied_index */
	size_t members_count;
	const struct carelog_member *members;
};

CARELOG_API int carelog_status(struct carelog_client *client, uint32_t timeout_ms,
			       struct carelog_status **out_status);
CARELOG_API void carelog_status_free(struct carelog_status *status);

/* ------------------------------------------------------------------ verify */

struct carelog_verify_result {
	bool ok;                  /* signatures, chain and indexes all hold */
	uint64_t entries_checked;
	uint64_t values_checked;
	uint64_t problems_count;  /* found in total */
	size_t problems_listed;   /* at most 100 of them are listed */
	const char *const *problems;
	uint8_t chain_head[CARELOG_ID_BYTES];
	uint64_t applied_index;
};

/* Asks the node to check its replica. CARELOG_OK means the check ran; see result->ok. */
CARELOG_API int carelog_verify(struct carelog_client *client, uint32_t timeout_ms,
			       struct carelog_verify_result **out_result);
CARELOG_API void carelog_verify_result_free(struct carelog_verify_result *result);

#ifdef __cplusplus
}
#endif
#endif
