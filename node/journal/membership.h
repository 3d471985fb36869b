/* Membership metadata carried in CONF entries' context, and the genesis configuration file. */
#ifndef CARELOG_NODE_MEMBERSHIP_H
#define CARELOG_NODE_MEMBERSHIP_H

/*
 * DESIGN.md "Cluster identity": membership, pinned keys and each node's organisation live in
 * the log as configuration entries. A CONF entry's data is consensus_conf_encode(change,
 * context) where the context is the msgpack map below (docs/entry-format.md):
 *
 *   {"v":1, "cluster_id": bin16 (genesis only), "members": [{"id":u64, "org":str,
 *    "address":str, "public_key":bin32, "voter":bool}, ...], "params": {"body_max_bytes":u64}}
 *
 * The genesis file written by `carelogctl cluster init` is text (INI, parsed with inih):
 *
 *   [cluster]
 *   id = <32 hex>
 *   body_max_bytes = 1048576
 *   [member.1]
 *   org = st-olavs
 *   address = tcp://127.0.0.1:7401
 *   public_key = <64 hex>
 *   voter = true
 *
 * and every voter turns it into the same bytes: log entry 1 (term 1, type CONF), the genesis.
 */

#include "common/crypto.h"
#include "node/journal/journal.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
	MEMBERSHIP_VERSION = 1,
	MEMBERSHIP_MEMBERS_MAX = 64,
	MEMBERSHIP_ORG_BYTES_MAX = 64,
	MEMBERSHIP_ADDRESS_BYTES_MAX = 128,
	MEMBERSHIP_CLUSTER_ID_BYTES = 16,
	MEMBERSHIP_CONTEXT_BYTES_MAX = 64 * 512,
	MEMBERSHIP_BODY_MAX_BYTES_DEFAULT = 1024 * 1024,
};

struct membership_member {
	uint64_t id;
	char org[MEMBERSHIP_ORG_BYTES_MAX + 1];
	char address[MEMBERSHIP_ADDRESS_BYTES_MAX + 1];
	uint8_t public_key[CL_SIGN_PUBLIC_BYTES];
	bool voter;
};

/* Replicated parameters: rules every node judges alike. */
struct membership_params {
	uint64_t body_max_bytes;
};

struct membership {
	bool has_cluster_id;
	uint8_t cluster_id[MEMBERSHIP_CLUSTER_ID_BYTES];
	uint32_t count; /* members, ascending id, unique */
	struct membership_member members[MEMBERSHIP_MEMBERS_MAX];
	bool has_params;
	struct membership_params params;
};

/* Checks the rules every membership obeys: count <= MEMBERSHIP_MEMBERS_MAX; ids non-zero,
 * unique and ascending; org 1-64 and address 1-128 printable ASCII without spaces, the address
 * containing "://"; public keys unique; params.body_max_bytes in 1..JOURNAL_BODY_BYTES_LIMIT.
 * CARELOG_EINVAL with a static reason (if `out_reason` is non-NULL). */
int membership_check(const struct membership *m, const char **out_reason);

/* Context codec. Encode: CARELOG_EINVAL if membership_check fails, CARELOG_ETOOBIG if
 * out_capacity is too small (MEMBERSHIP_CONTEXT_BYTES_MAX always suffices). Decode (strict:
 * exact keys and order, types, canonical msgpack, membership_check): CARELOG_EPROTO, or
 * CARELOG_EVERSION for an unknown "v"; `out` untouched on failure. */
int membership_encode(const struct membership *m, uint8_t *out, size_t out_capacity,
		      size_t *out_len);
int membership_decode(const uint8_t *bytes, size_t len, struct membership *out);

/* NULL if absent. */
const struct membership_member *membership_find(const struct membership *m, uint64_t id);

/* Verifies a NORMAL entry's record against the membership in force at its log position: the
 * header's node must be a member (CARELOG_EMISMATCH otherwise) whose org equals the header's
 * org (CARELOG_EMISMATCH otherwise), then journal_verify_decoded with that member's key.
 * Header decode errors first (CARELOG_EPROTO, CARELOG_EVERSION). Fills `out_header`, `out_id`
 * (either may be NULL) on success only. */
int membership_verify_record(const struct membership *m, const struct journal_record *r,
			     struct journal_header *out_header, uint8_t out_id[JOURNAL_ID_BYTES]);

/* Parses a genesis file. On error returns CARELOG_ECONFIG (CARELOG_ENOMEM if memory ran out)
 * and writes a message naming the file, section and key, or the line of a syntax error, into
 * `err` (err_len bytes), e.g. "genesis.ini: [member.2] public_key: not 64 hex digits".
 * Strict: unknown sections or keys, duplicate keys, missing required keys are errors.
 * [cluster] id is required; body_max_bytes defaults to MEMBERSHIP_BODY_MAX_BYTES_DEFAULT (the
 * result always has has_params); a member's voter defaults to true. A genesis needs 1 to
 * CONSENSUS_CONF_CHANGES_MAX (8) members, at least one voter, unique keys. Members come out
 * ascending by id whatever the file order. */
int membership_genesis_load(const char *path, struct membership *out, char *err, size_t err_len);

/* Writes a genesis file (mode 0644) deterministically: the same membership gives the same
 * bytes. The file appears complete or not at all and an existing file is never replaced
 * (CARELOG_EEXIST). CARELOG_EINVAL if `m` is not a valid genesis (see load), CARELOG_EIO. */
int membership_genesis_write(const char *path, const struct membership *m);

/* The CONF entry data for a genesis: consensus_conf_encode of a change adding every member in
 * ascending id order (ADD_VOTER or ADD_LEARNER), transition AUTO, context =
 * membership_encode(m). Byte-identical for equal memberships. CARELOG_ECONFIG if `m` is not a
 * valid genesis (more than CONSENSUS_CONF_CHANGES_MAX members, no voter, no cluster id, ...),
 * CARELOG_ETOOBIG if out_capacity is too small (CONSENSUS_CONF_HEADER_BYTES_MAX +
 * MEMBERSHIP_CONTEXT_BYTES_MAX always suffices). */
int membership_genesis_entry(const struct membership *m, uint8_t *out, size_t out_capacity,
			     size_t *out_len);

#endif
