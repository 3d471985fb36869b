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

/* Context codec (strict decode). */
int membership_encode(const struct membership *m, uint8_t *out, size_t out_capacity,
		      size_t *out_len);
int membership_decode(const uint8_t *bytes, size_t len, struct membership *out);

/* NULL if absent. */
const struct membership_member *membership_find(const struct membership *m, uint64_t id);

/* Parses a genesis file. On error returns CARELOG_ECONFIG and writes a message naming the line
 * or key into `err` (err_len bytes). */
int membership_genesis_load(const char *path, struct membership *out, char *err, size_t err_len);
/* Writes a genesis file (mode 0644). */
int membership_genesis_write(const char *path, const struct membership *m);

/* The CONF entry data for a genesis: every voter and learner added, context = whole m. */
int membership_genesis_entry(const struct membership *m, uint8_t *out, size_t out_capacity,
			     size_t *out_len);

#endif
