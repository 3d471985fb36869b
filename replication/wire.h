/* The versioned msgpack payloads nodes exchange inside session DATA frames (docs/wire-format.md).
 */
#ifndef CARELOG_REPLICATION_WIRE_H
#define CARELOG_REPLICATION_WIRE_H

/*
 * Every payload is one msgpack array `[version, type, ...fields]` (docs/wire-format.md gives
 * each field, its msgpack type and its bound). The encoder writes msgpack-c's canonical forms;
 * the decoder accepts exactly those (shortest integers and length headers, exact array
 * lengths, no trailing bytes), so every message has a single byte form and a decoded message
 * re-encodes to the bytes it came from.
 *
 * The codec holds no state and allocates nothing. Decoding is zero-copy: every pointer in a
 * decoded message points into the input bytes (or, for RAFT entries, into the caller's entries
 * array, whose data in turn points into the input).
 */

#include "consensus/consensus.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
	REPLICATION_WIRE_VERSION = 1,
	/* A request key is org || 0x00 || request id (NODE_REQUEST_KEY_BYTES_MAX, node/daemon). */
	REPLICATION_WIRE_REQUEST_KEY_BYTES_MAX = 129,
	/* Members listed in a PROGRESS message (voters and learners, incl. a joint config). */
	REPLICATION_WIRE_MEMBERS_MAX = 64,
	/* An encoded RAFT message is at most HEAD + entries_count * ENTRY + the entries' data
	 * bytes (every integer at its widest), so an APPEND within append_bytes_max of data fits
	 * a payload of append_bytes_max + HEAD + CONSENSUS_APPEND_ENTRIES_MAX * ENTRY. */
	REPLICATION_WIRE_RAFT_HEAD_BYTES_MAX = 81,
	REPLICATION_WIRE_RAFT_ENTRY_BYTES_MAX = 25,
};

enum replication_wire_type {
	REPLICATION_WIRE_RAFT = 1,           /* a consensus_message between cores */
	REPLICATION_WIRE_FORWARD = 2,        /* follower/learner -> leader: an append to propose */
	REPLICATION_WIRE_FORWARD_RESULT = 3, /* leader -> origin: what became of a FORWARD */
	REPLICATION_WIRE_PROGRESS = 4, /* leader -> all: term, commit and each member's match */
};

/* A FORWARD: the journal record a follower encoded and signed, for the leader to propose. */
struct replication_wire_forward {
	const uint8_t *request_key; /* 1..REPLICATION_WIRE_REQUEST_KEY_BYTES_MAX bytes */
	uint32_t request_key_len;
	const uint8_t *record; /* may be NULL when record_len is 0 (encode only) */
	uint32_t record_len;
};

/* A FORWARD_RESULT: err is a carelog code (CARELOG_OK: proposed at `index`, which is then
 * meaningful; otherwise refused, e.g. CARELOG_ENOTLEADER or CARELOG_EBUSY). Any i32 travels,
 * so codes a newer node adds arrive as they are. */
struct replication_wire_forward_result {
	const uint8_t *request_key; /* 1..REPLICATION_WIRE_REQUEST_KEY_BYTES_MAX bytes */
	uint32_t request_key_len;
	int32_t err;
	uint64_t index;
};

struct replication_wire_member {
	uint64_t id;
	uint64_t match;
	bool voter;
};

/* A PROGRESS: the leader's view, for status on followers (members copied, at most 64). */
struct replication_wire_progress {
	uint64_t term;
	uint64_t leader;
	uint64_t commit;
	uint32_t members_count;
	struct replication_wire_member members[REPLICATION_WIRE_MEMBERS_MAX];
};

struct replication_wire_msg {
	uint8_t type; /* enum replication_wire_type */
	union {
		struct consensus_message raft;
		struct replication_wire_forward forward;
		struct replication_wire_forward_result forward_result;
		struct replication_wire_progress progress;
	} u;
};

/*
 * The exact number of bytes replication_wire_encode writes for `m`, so the caller can size
 * its buffer (and check it against message_bytes_max before encoding). Errors: CARELOG_EINVAL
 * if `m` is something the decoder would refuse (unknown wire or consensus message type,
 * entries on a non-APPEND, more than CONSENSUS_APPEND_ENTRIES_MAX entries, an entry type other
 * than NORMAL/CONF, a request key empty or over REPLICATION_WIRE_REQUEST_KEY_BYTES_MAX, more
 * than REPLICATION_WIRE_MEMBERS_MAX members, NULL pointers with non-zero lengths);
 * CARELOG_ETOOBIG if the size does not fit a size_t. *out_len is untouched on failure.
 */
int replication_wire_encoded_size(const struct replication_wire_msg *m, size_t *out_len);

/*
 * Encodes `m` into out[0 .. out_capacity). On success *out_len is the number of bytes
 * written (equal to replication_wire_encoded_size). Errors: as replication_wire_encoded_size,
 * and CARELOG_ETOOBIG if out_capacity is too small; then `out` holds unspecified bytes and
 * *out_len is untouched. Nothing of `m` is kept.
 */
int replication_wire_encode(const struct replication_wire_msg *m, uint8_t *out, size_t out_capacity,
                            size_t *out_len);

/*
 * Decodes one payload of `len` bytes. `entries` (capacity at least CONSENSUS_APPEND_ENTRIES_MAX,
 * else CARELOG_EINVAL) receives a RAFT APPEND's entries; out->u.raft.entries points at it.
 * Every pointer in *out (and in `entries`) borrows from `bytes`: keep `bytes` alive and
 * unchanged while the message is used.
 *
 * Errors: CARELOG_EVERSION if the payload is an array whose first element is an unsigned
 * integer other than REPLICATION_WIRE_VERSION; CARELOG_EPROTO for anything else malformed
 * (wrong msgpack type or non-canonical form, wrong array length, unknown type, a bound
 * exceeded, trailing bytes); CARELOG_EINVAL for NULL arguments. On failure *out is untouched,
 * `entries` holds unspecified values, and `why` (if not NULL and why_len > 0) receives a
 * NUL-terminated description naming the field and byte offset (never payload content).
 */
int replication_wire_decode(const uint8_t *bytes, size_t len, struct consensus_entry *entries,
                            size_t entries_capacity, struct replication_wire_msg *out, char *why,
                            size_t why_len);

/* A stable name for a wire type ("raft", "forward", ...; "unknown" otherwise), for logs. */
const char *replication_wire_type_name(uint8_t type);

#endif
