/* The single-voter seam: a consensus-shaped ready/advance cycle for a node that is its own quorum.
 */
#ifndef CARELOG_NODE_DAEMON_SOLO_H
#define CARELOG_NODE_DAEMON_SOLO_H

/*
 * Shaped like consensus.h's RawNode loop so the replicated node swaps in the consensus core by
 * changing wiring, not semantics:
 *
 *     solo_propose(s, data, len, &index);     leader stamps the next index, fixed term
 *     while (solo_has_ready(s)) {
 *         solo_ready(s, &rd);
 *         one write txn: apply(rd.committed); persist(rd.entries, rd.hard_state); commit+sync
 *         solo_advance(s, &rd);               or solo_discard(s, &rd) if the txn failed
 *     }
 *
 * A single voter is its own quorum: an entry is committed once it is durable locally. So the
 * hard state handed out with a batch already commits that batch's entries (they become durable
 * in the same transaction), and the entries are handed out as `committed` in the *next* ready,
 * after solo_advance acknowledged they were persisted, exactly as the consensus core does.
 *
 * Bounds: at most entries_max entries and bytes_max data bytes are held (proposed, not yet
 * applied); solo_propose returns CARELOG_EBUSY past them. Entry data is copied on propose and
 * owned by the seam; everything `rd` points at is borrowed until solo_advance/solo_discard.
 */

#include "consensus/consensus.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct solo_config {
	uint64_t node_id;
	uint32_t entries_max; /* entries held: proposed and not yet applied */
	uint64_t bytes_max;   /* data bytes held */
};

struct solo;

/*
 * `hard_state` is what storage holds (term >= 1); `last_index` the last stored log index, which
 * for a single voter equals hard_state->commit; everything up to `applied` has been applied
 * (the caller re-applies committed-but-unapplied entries from storage before creating the
 * seam, so applied == commit here).
 */
int solo_create(const struct solo_config *config, const struct consensus_hard_state *hard_state,
                uint64_t last_index, uint64_t applied, struct solo **out);
/* Accepts NULL. */
void solo_destroy(struct solo *s);

/* Copies `data` into a new NORMAL entry at the next index (*out_index). CARELOG_EBUSY when the
 * bounds are reached (retry after the next advance), CARELOG_ENOMEM, CARELOG_ETOOBIG if a
 * single entry exceeds bytes_max. */
int solo_propose(struct solo *s, const uint8_t *data, uint32_t data_len, uint64_t *out_index);

/* Entries to persist, or persisted entries to apply. */
bool solo_has_ready(const struct solo *s);

/* Fills `rd`: entries = proposed since the last ready; hard_state (term fixed, vote = self,
 * commit = last entry of this batch); committed = entries persisted by earlier batches and not
 * yet applied. Messages and read states are always empty. Only one ready may be outstanding. */
int solo_ready(struct solo *s, struct consensus_ready *rd);

/* `rd` was persisted and its committed entries applied: frees applied entries' data. */
void solo_advance(struct solo *s, const struct consensus_ready *rd);

/* The transaction carrying `rd` failed (e.g. CARELOG_EMAPFULL): rd.entries were never persisted
 * and are dropped (their indexes will be reused), rd.committed will be handed out again. */
void solo_discard(struct solo *s, const struct consensus_ready *rd);

/* Last index persisted (== commit for a single voter) and last applied. */
uint64_t solo_commit_index(const struct solo *s);
uint64_t solo_applied_index(const struct solo *s);
uint64_t solo_term(const struct solo *s);

#endif
