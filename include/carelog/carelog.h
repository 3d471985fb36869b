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
 * caller and may be used and freed from any thread. carelog_client_set_actor may be called
 * from any thread at any time (it takes the client's lock); a call uses the actor that was set
 * when it started.
 *
 * Actor: every request names who acts (id, role, unit, purpose), for the node's access rules
 * and its access log (docs/access.md). carelog_client_set_actor sets a client default sent
 * with every request; the `actor` / `role` fields of carelog_append_args, carelog_read_args and
 * carelog_get_args override its id / role for one call. A field left empty takes the node's
 * configured default; the organisation is always the serving node's.
 *
 * Ownership: arguments are borrowed for the duration of the call only. Every result a call
 * allocates (`**out`) is one block owned by the caller and freed with its matching *_free
 * function; the strings inside it are NUL-terminated copies that live until that free.
 * Outputs are written only on success (the one exception, carelog_append's pending outcome,
 * is documented there). Destructors accept NULL.
 *
 * Timeouts: `timeout_ms` bounds the whole call (connect, send, node work, reply); 0 means
 * CARELOG_TIMEOUT_MS_DEFAULT; more than 24 hours counts as 24 hours. The node is asked to answer a
 * little earlier than that, so a slow commit comes back as a "pending" answer rather than a
 * client-side timeout.
 */

enum {
	CARELOG_ID_BYTES = 32,                 /* entry ids and chain heads: SHA-256 */
	CARELOG_ID_HEX_BYTES = 65,             /* 64 hex digits + NUL */
	CARELOG_REQUEST_ID_HEX_BYTES = 33,     /* 16 random bytes as 32 hex digits + NUL */
	CARELOG_REQUEST_ID_BYTES_MAX = 64,     /* a caller-chosen request id */
	CARELOG_TIMEOUT_MS_DEFAULT = 10000,
	CARELOG_READ_LIMIT_MAX = 1000,         /* entries per carelog_read */
	CARELOG_MESSAGE_BYTES_MAX =
	    80 * 1024 * 1024,               /* largest request sent, largest reply accepted */
	CARELOG_PUBLIC_KEY_BYTES = 32,         /* a node's Ed25519 public key (node.pub) */
	CARELOG_ORG_BYTES_MAX = 64,            /* a member's organisation */
	CARELOG_ADDRESS_BYTES_MAX = 128,       /* a member's peer address (tcp://host:port) */
	CARELOG_ACTOR_BYTES_MAX = 64,       /* actor id */
	CARELOG_ROLE_BYTES_MAX = 32,        /* actor role */
	CARELOG_UNIT_BYTES_MAX = 64,        /* actor unit */
	CARELOG_PURPOSE_BYTES_MAX = 128,    /* actor purpose */
	CARELOG_CATEGORIES_MAX = 6,         /* care-relation categories */
	CARELOG_ACCESS_LOG_ROWS_MAX = 1000, /* rows per carelog_access_log */
	CARELOG_BTG_GRANTS_MAX = 1000,      /* grants per carelog_btg_list */
};

struct carelog_client;

/*
 * Creates a client for `endpoint` ("ipc:///run/carelog/client.sock": nodes serve ipc only).
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

/*
 * Sets who acts in every later request on `client` (copied; NULL or "" leaves that field to
 * the node's default): `id` the practitioner's or person's id, `role` (physician, nurse, ...,
 * patient, proxy, admin, auditor, operator: docs/access.md), `unit` the actor's unit (empty:
 * the node's unit), `purpose` why, in words, for the access log. Per-call `actor` / `role`
 * arguments still override id / role. Thread-safe (see Threads above).
 * @return CARELOG_OK, CARELOG_EINVAL (client NULL), CARELOG_ETOOBIG for a field over
 *         CARELOG_ACTOR_BYTES_MAX / CARELOG_ROLE_BYTES_MAX / CARELOG_UNIT_BYTES_MAX /
 *         CARELOG_PURPOSE_BYTES_MAX (the previous actor is kept, carelog_last_message names it).
 */
CARELOG_API int carelog_client_set_actor(struct carelog_client *client, const char *id,
					 const char *role, const char *unit, const char *purpose);

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
	const char *actor;       /* overrides the client's actor id for this call; NULL or "": no */
	const char *role;        /* overrides the client's actor role; NULL or "": no */
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
	bool body_erased;          /* lawfully erased: body_len is 0; erased_* say by whom */
	const uint8_t *body;       /* body_len bytes followed by a NUL (not counted) */
	size_t body_len;
	bool has_superseded_by; /* a later version (amended, entered in error) replaces this */
	uint8_t superseded_by[CARELOG_ID_BYTES];
	uint64_t erased_index;     /* body_erased: the erasure entry's index ... */
	uint64_t erased_time_ms;   /* ... its time ... */
	const char *erased_author; /* ... who erased it ... */
	const char *erased_org;
	const char *erased_basis; /* ... and on which legal basis */
};

/* ------------------------------------------------------------------ read */

enum carelog_consistency {
	CARELOG_CONSISTENCY_LOCAL = 0,        /* served by this node's replica (reports its lag) */
	CARELOG_CONSISTENCY_LINEARIZABLE = 1, /* ReadIndex through the leader */
};

struct carelog_read_args {
	const char *patient;   /* required */
	const char *actor;     /* overrides the client's actor id; NULL or "": no */
	const char *role;      /* overrides the client's actor role; NULL or "": no */
	enum carelog_consistency consistency;
	uint64_t min_index;    /* 0, or wait (within the timeout) until the node applied this */
	const char *kind;      /* NULL or "": every kind */
	uint64_t since_index;  /* only entries with index > since_index */
	uint32_t limit;        /* 0 = node default (100); at most CARELOG_READ_LIMIT_MAX */
	bool history;          /* also superseded versions (amended, entered in error) */
};

/* How many entries were withheld for one reason. */
struct carelog_withheld_reason {
	const char *reason; /* "blocked by the patient", ... (docs/access.md) */
	uint32_t count;
};

struct carelog_read_result {
	uint64_t applied_index;
	uint64_t lag;          /* commit index the node knows - applied_index */
	bool stale;            /* lag beyond the node's threshold: entries may be missing */
	uint32_t withheld;     /* entries this actor may not see */
	bool more;             /* more entries follow: read again with since_index = last index */
	size_t entries_count;
	const struct carelog_entry *entries; /* ascending index */
	const char *basis; /* why this actor may read: relation, implicit, proxy, btg, self,
	                      assignment ("" from an older node) */
	size_t withheld_reasons_count;
	const struct carelog_withheld_reason
	    *withheld_reasons; /* their counts add up to withheld */
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
	const char *actor; /* overrides the client's actor id; NULL or "": no */
	const char *role;  /* overrides the client's actor role; NULL or "": no */
};

/* One entry by id. CARELOG_ENOTFOUND if no such entry. Free with carelog_entry_free. */
CARELOG_API int carelog_get(struct carelog_client *client, const struct carelog_get_args *args,
			    uint32_t timeout_ms, struct carelog_entry **out_entry);
CARELOG_API void carelog_entry_free(struct carelog_entry *entry);

/* ------------------------------------------------------------------ status */

/* A member as the serving node knows it. Its progress comes from the leader: on a non-leader
 * it is as old as carelog_status.progress_age_ms says. */
struct carelog_member {
	uint64_t id;
	const char *role;    /* "voter" | "learner" */
	uint64_t match_index; /* last log index known to be on that member; 0 when !has_match */
	const char *org;     /* "" when the node predates replication */
	const char *address; /* peer address; "" when the node predates replication */
	bool has_match;      /* false: the serving node has no progress for this member yet */
	uint64_t lag;        /* the leader's last index - match_index */
};

/* The node's peer transport since it started (all 0 from a single-node build). */
struct carelog_transport_stats {
	uint64_t sent;
	uint64_t received;
	uint64_t dropped_auth;    /* frames that failed authentication (bad key, AEAD, cluster) */
	uint64_t dropped_replay;  /* frames with a counter already seen */
	uint64_t dropped_unknown; /* frames from a peer not in the membership */
	uint64_t handshakes;      /* sessions established */
};

/* The node's audit queue: every request's audit row is durable there before its reply leaves,
 * then shipped through the replicated log. A growing queued_rows means rows are not leaving
 * (no leader reachable, or shipping fails: see ship_failures). */
struct carelog_audit_stats {
	uint64_t queued_rows;    /* written, not yet shipped */
	uint64_t next_seq;       /* the sequence the next row gets (1 on a fresh queue) */
	uint64_t shipped_seq;    /* every row up to this one has been shipped */
	uint64_t syncs;          /* synced appends to the queue since the node started */
	uint64_t write_failures; /* appends that failed since start (those requests got errors) */
	uint64_t ship_failures;  /* audit batches answered with an error or not in time */
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
	/* Replication (0 from a node that predates it): */
	uint64_t last_index;          /* last log index on this node */
	uint64_t progress_age_ms;     /* age of the members' progress on a non-leader; 0 on the leader */
	uint64_t verified_signatures; /* entry signatures this node verified at apply since start */
	uint64_t syncs;               /* synced write transactions since start */
	struct carelog_transport_stats transport;
	/* The audit queue (has_audit false and audit zeros from a node that predates it): */
	bool has_audit;
	struct carelog_audit_stats audit;
};

/* The node's view of the cluster. On CARELOG_OK *out_status is one allocation (members and
 * strings inside it), freed with carelog_status_free. */
CARELOG_API int carelog_status(struct carelog_client *client, uint32_t timeout_ms,
			       struct carelog_status **out_status);
CARELOG_API void carelog_status_free(struct carelog_status *status);

/* ------------------------------------------------------------------ membership */

/*
 * Membership changes and leadership transfer, sent to any node (a non-leader answers
 * CARELOG_ENOTLEADER naming the leader in carelog_last_message(); ask the leader).
 *
 * A membership call returns CARELOG_OK once the configuration entry is committed, with
 * *out_index its log index. CARELOG_EPENDING when that is not known in time (the node said
 * so, or the reply was lost after sending): the change may still take effect, so check
 * carelog_status before trying again. Other errors from the node (CARELOG_EEXIST for an id
 * already a member, CARELOG_ENOTFOUND for one that is not, CARELOG_EBUSY while another
 * change is in progress, CARELOG_EINVAL, CARELOG_EDENIED, ...) come with
 * carelog_last_message(). CARELOG_EINVAL without sending for an id of 0 or missing fields;
 * CARELOG_ETOOBIG without sending for an org or address over its limit.
 */

struct carelog_learner_args {
	uint64_t id;                 /* the new node's id: above 0, never reused */
	const char *org;             /* its organisation, 1-CARELOG_ORG_BYTES_MAX bytes */
	const char *address;         /* its peer address, 1-CARELOG_ADDRESS_BYTES_MAX bytes */
	const uint8_t *public_key;   /* CARELOG_PUBLIC_KEY_BYTES: its node.pub (carelogctl keygen) */
};

/* Adds a learner: it receives the log but does not vote until promoted. */
CARELOG_API int carelog_member_add_learner(struct carelog_client *client,
					   const struct carelog_learner_args *args,
					   uint32_t timeout_ms, uint64_t *out_index);
/* Makes learner `id` a voter (best once its lag is 0: see carelog_status). */
CARELOG_API int carelog_member_promote(struct carelog_client *client, uint64_t id,
				       uint32_t timeout_ms, uint64_t *out_index);
/* Removes member `id` (voter or learner) from the configuration. */
CARELOG_API int carelog_member_remove(struct carelog_client *client, uint64_t id,
				      uint32_t timeout_ms, uint64_t *out_index);

/*
 * Asks the leader to hand leadership to voter `to`. CARELOG_OK when `to` leads, with
 * *out_leader_id = to. CARELOG_ETIMEDOUT when it did not happen in time (leadership may
 * still move; see carelog_status), CARELOG_ENOTLEADER from a non-leader, CARELOG_EINVAL
 * for 0 or a non-voter, with carelog_last_message().
 */
CARELOG_API int carelog_transfer_leader(struct carelog_client *client, uint64_t to,
					uint32_t timeout_ms, uint64_t *out_leader_id);

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

/* ------------------------------------------------------------------ clinical access */

/*
 * A policy entry: care relations, blocks, withholds, proxies, ambulance assignments,
 * break-the-glass, reviews, erasure, demographics, parameters (docs/access.md says who may
 * write which). The node encodes the body (docs/entry-format.md section 10); fields a kind
 * does not use stay NULL / 0.
 *
 *   kind                  fields
 *   patient               patient, birth_date "YYYY-MM-DD"
 *   care-relation         patient, org (the node's), unit, from_ms, to_ms, categories
 *   care-relation-end     ref (the care-relation entry)
 *   block                 patient, target_org or actor (a person), word "all" | "category" |
 *                         "entry", category (scope category), ref (scope entry)
 *   block-lift            ref (the block)
 *   withhold              ref (the entry), word "patient" | "guardians", text (the reason)
 *   withhold-lift         ref (the withhold)
 *   proxy-grant           patient, actor (the proxy), word "parent" | "chosen", level
 *                         "read" | "full", from_ms, to_ms
 *   proxy-revoke          ref (the grant)
 *   ambulance-assignment  patient, actor (the crew member), from_ms, to_ms
 *   btg-grant             patient, reason_code, text (the reason), hours
 *   btg-review            ref (the grant), word "justified" | "unjustified", text
 *   erasure               ref (the entry), text (the legal basis)
 *   policy-params         implicit_window_days, btg_hours_max, ambulance_hours_max
 *
 * `patient` may be NULL for the kinds that name an entry in `ref`: the node takes it from there.
 */
struct carelog_policy_args {
	const char *kind; /* required */
	const char *patient;
	const char *request_id; /* NULL or "": generated (returned in the result) */
	const char *org;
	const char *unit;
	const char *actor; /* the person the entry is about (crew, proxy, blocked person) */
	const char *target_org;
	const char *word;
	const char *level;
	const char *category;
	const char *reason_code;
	const char *text;
	const char *birth_date;
	size_t categories_count; /* at most CARELOG_CATEGORIES_MAX */
	const char *const *categories;
	const uint8_t *ref;      /* NULL, or CARELOG_ID_BYTES */
	uint64_t from_ms, to_ms; /* 0 = now / open-ended */
	uint32_t hours;
	uint32_t implicit_window_days, btg_hours_max, ambulance_hours_max;
};

/*
 * Appends a policy entry as the client's actor and waits until it is committed: the same
 * outcomes as carelog_append (CARELOG_EPENDING with out->request_id to retry with;
 * CARELOG_EDENIED with the reason when the actor may not write it; CARELOG_EINVAL without
 * sending when kind is missing; CARELOG_ETOOBIG without sending for a field over its limit).
 */
CARELOG_API int carelog_policy(struct carelog_client *client,
			       const struct carelog_policy_args *args, uint32_t timeout_ms,
			       struct carelog_append_result *out);

/* Exactly one of patient / actor_id. */
struct carelog_access_log_args {
	const char *patient;   /* who accessed this patient's record ... */
	const char *actor_id;  /* ... or what this actor accessed */
	const char *actor_org; /* the actor's organisation; NULL or "": the node's */
	uint32_t limit;        /* 0 = 100; at most CARELOG_ACCESS_LOG_ROWS_MAX */
};

/* One access, as the serving node's audit recorded it. */
struct carelog_access_row {
	uint64_t node_id; /* the node that served it */
	uint64_t seq;     /* that node's audit sequence number */
	uint64_t time_ms; /* that node's clock, ms since the Unix epoch, UTC */
	const char *actor;
	const char *role;
	const char *org;
	const char *unit;
	const char *patient; /* "" for actions on no patient */
	const char *action;  /* read, get, append, policy, access-log, btg-list, status, ... */
	bool allowed;
	const char *basis; /* relation, implicit, proxy, btg, self, assignment, role, none */
	uint64_t count;    /* entries returned or written */
	uint64_t withheld;
	bool has_entry;
	uint8_t entry[CARELOG_ID_BYTES]; /* the entry read, written or acted on */
	const char *purpose;
	const char *outcome; /* "OK" or the error name of the answer */
	bool shipped;        /* replicated to every node (false: only on that node so far) */
};

struct carelog_access_log {
	uint64_t applied_index;
	size_t rows_count;
	const struct carelog_access_row *rows; /* newest first */
};

/*
 * The access log of a patient or an actor, across the region. Reading it is itself logged.
 * CARELOG_EINVAL without sending unless exactly one of patient / actor_id is given;
 * CARELOG_EDENIED when the actor may not see it (patients and proxies see their own record's,
 * auditors everyone's). Free with carelog_access_log_free.
 */
CARELOG_API int carelog_access_log(struct carelog_client *client,
				   const struct carelog_access_log_args *args, uint32_t timeout_ms,
				   struct carelog_access_log **out_log);
CARELOG_API void carelog_access_log_free(struct carelog_access_log *log);

struct carelog_btg_list_args {
	const char *patient; /* NULL or "": every patient */
	uint32_t limit;      /* 0 = 100; at most CARELOG_BTG_GRANTS_MAX */
};

/* An open (not yet reviewed) break-the-glass grant. */
struct carelog_btg_grant {
	uint8_t id[CARELOG_ID_BYTES]; /* the btg-grant entry */
	uint64_t index;
	const char *patient;
	const char *actor;
	const char *role;
	const char *org;
	const char *unit;
	uint64_t granted_ms;
	uint64_t expires_ms;
	const char *reason_code;
	const char *reason_text;
};

struct carelog_btg_list {
	size_t grants_count;
	const struct carelog_btg_grant *grants; /* oldest first */
};

/* Break-the-glass grants waiting for review (auditors, admins). Free with
 * carelog_btg_list_free. */
CARELOG_API int carelog_btg_list(struct carelog_client *client,
				 const struct carelog_btg_list_args *args, uint32_t timeout_ms,
				 struct carelog_btg_list **out_list);
CARELOG_API void carelog_btg_list_free(struct carelog_btg_list *list);

#ifdef __cplusplus
}
#endif
#endif
