/* Shared fixture for the daemon's unit tests: a temp data dir, a key, a genesis, a store. */
#ifndef CARELOG_TESTS_DAEMON_FIXTURE_H
#define CARELOG_TESTS_DAEMON_FIXTURE_H

#include "node/daemon/apply.h"
#include "storage/storage.h"

#include <stdint.h>

#define FIXTURE_ORG     "st-olavs"
#define FIXTURE_NODE_ID 1u

struct fixture {
	char dir[256];
	uint8_t public_key[CL_SIGN_PUBLIC_BYTES];
	uint8_t secret[CL_SIGN_SECRET_BYTES];
	struct membership membership;
	uint8_t genesis[MEMBERSHIP_CONTEXT_BYTES_MAX + 128];
	size_t genesis_len;
	struct storage *storage;
	struct node_apply_state state;
};

/* Makes a temp dir, a key pair and a one-voter membership (node 1, org st-olavs). */
void fixture_init(struct fixture *f);
/* Opens storage in dir/sub and writes + applies the genesis (state then at index 1). */
void fixture_open_store(struct fixture *f, const char *sub, struct storage **out_storage,
                        struct node_apply_state *out_state);
/* Removes the temp dir. */
void fixture_cleanup(struct fixture *f);

/* Signs one append as node 1 and encodes the record into out (returns its length). */
size_t fixture_record(const struct fixture *f, const char *patient, const char *request_id,
                      const char *body, uint64_t time_ms, uint8_t *out, size_t cap,
                      uint8_t out_id[JOURNAL_ID_BYTES]);

#endif
