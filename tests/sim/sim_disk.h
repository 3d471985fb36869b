/* A simulated disk per node: a written view, a durable view, and a sync that joins them. */
#ifndef CARELOG_SIM_DISK_H
#define CARELOG_SIM_DISK_H

#include <stdbool.h>
#include <stdint.h>

#include "consensus/consensus.h"

/* Bound on the members one simulated configuration can name (voters + learners, incl. joint). */
enum { SIM_CONF_IDS_MAX = 16 };

/* One stored entry; `data` is owned by the disk. */
struct sim_log_entry {
	uint64_t term;
	uint64_t index;
	uint8_t type;
	uint32_t data_len;
	uint8_t *data;
	uint64_t data_hash;
	uint64_t prefix_hash; /* hash of this entry and every entry before it (log matching) */
};

/* A configuration as the node applied it (the node stores exactly this beside applied index). */
struct sim_conf {
	consensus_node_id voters[SIM_CONF_IDS_MAX];
	uint32_t voters_count;
	consensus_node_id outgoing[SIM_CONF_IDS_MAX];
	uint32_t outgoing_count;
	consensus_node_id learners[SIM_CONF_IDS_MAX];
	uint32_t learners_count;
	consensus_node_id learners_next[SIM_CONF_IDS_MAX];
	uint32_t learners_next_count;
	bool auto_leave;
};

/* The state machine's durable part: what applying has produced up to `index`. */
struct sim_applied {
	uint64_t index;
	uint64_t chain; /* hash chain over every applied entry */
	struct sim_conf conf;
};

/*
 * The written view is what the process sees (log ops read it); the durable view is what a crash
 * leaves. A sync makes the written view durable. Entries of the durable log that an unsynced
 * write truncated are kept in `undo` so that a crash can put them back.
 */
struct sim_disk {
	struct sim_log_entry *log; /* log[i - 1] holds index i */
	uint64_t log_len;
	uint64_t log_cap;
	struct consensus_hard_state hard;

	uint64_t durable_len;
	struct consensus_hard_state hard_durable;
	struct sim_log_entry *undo; /* durable entries [undo_first, durable_len] overwritten */
	uint64_t undo_first;        /* 0 = nothing overwritten since the last sync */
	uint64_t undo_cap;

	struct sim_applied applied;         /* volatile: applying since the last apply sync */
	struct sim_applied applied_durable; /* synced with the apply batch */

	struct consensus_log_ops ops; /* ops.ctx points back at this disk */
	uint64_t syncs;
};

void sim_disk_init(struct sim_disk *d);
void sim_disk_free(struct sim_disk *d);

/* Hash of an entry chained onto the entry before it. */
uint64_t sim_entry_prefix_hash(uint64_t prefix_before, uint64_t term, uint64_t index, uint8_t type,
                               uint64_t data_hash);

/*
 * Writes entries (unsynced), truncating the written log from entries[0].index first if needed.
 * CARELOG_EINVAL if the entries would leave a gap or are not contiguous (a core bug the caller
 * reports); the disk is unchanged then. `*out_truncated_from` is the first index removed, 0 if
 * nothing was removed.
 */
int sim_disk_write(struct sim_disk *d, const struct consensus_entry *entries, size_t count,
                   uint64_t *out_truncated_from);
void sim_disk_write_hard_state(struct sim_disk *d, const struct consensus_hard_state *hs);
/* Makes the written log and hard state durable. */
void sim_disk_sync(struct sim_disk *d);
/* Makes the volatile applied state durable (the apply transaction commits). */
void sim_disk_sync_applied(struct sim_disk *d);
/* A crash: everything not synced is lost. */
void sim_disk_crash(struct sim_disk *d);

const struct sim_log_entry *sim_disk_entry(const struct sim_disk *d, uint64_t index);
/* Term at `index` of the written log; 0 for index 0 or beyond the end. */
uint64_t sim_disk_term(const struct sim_disk *d, uint64_t index);
/* Prefix hash at `index` (0 for index 0); index must be <= log_len. */
uint64_t sim_disk_prefix(const struct sim_disk *d, uint64_t index);

/* Conversions between the stored configuration and the core's view. */
void sim_conf_from_state(struct sim_conf *out, const struct consensus_conf_state *cs);
void sim_conf_to_state(const struct sim_conf *conf, struct consensus_conf_state *out);
bool sim_conf_has_voter(const struct sim_conf *conf, consensus_node_id id);
bool sim_conf_has_member(const struct sim_conf *conf, consensus_node_id id);
bool sim_conf_is_joint(const struct sim_conf *conf);
/* Bit mask of ids (id < 64). */
uint64_t sim_ids_mask(const consensus_node_id *ids, uint32_t count);

#endif
