/* The deterministic cluster simulator: N real consensus cores, one seed, every invariant checked.
 */
#ifndef CARELOG_SIM_H
#define CARELOG_SIM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "consensus/consensus.h"
#include "sim_alloc.h"
#include "sim_check.h"
#include "sim_disk.h"
#include "sim_net.h"
#include "sim_prng.h"
#include "sim_trace.h"

/* Node ids 1..SIM_NODES_MAX - 1; a run never creates more (ids are never reused). */
enum { SIM_NODES_MAX = SIM_NET_NODES_MAX };
/* Proposals a node tracks until it applies their index (oldest forgotten beyond it). */
enum { SIM_PENDING_MAX = 128 };
/* ReadIndex requests a node tracks until answered and served (oldest forgotten beyond it). */
enum { SIM_READS_MAX = 32 };
/* Ready batches handled in a row before other nodes get a turn. */
enum { SIM_READY_LOOPS_MAX = 64 };
/* Bound on link faults alive at once (every directed link once as cut and once as clog). */
enum { SIM_LINK_FAULTS_MAX = 2 * SIM_NODES_MAX * SIM_NODES_MAX };
/* How much likelier a crash is inside a ready batch that changes the term or the vote. */
enum { SIM_CRASH_VOTE_FACTOR = 20 };
/* Retries of consensus_apply_conf_change on ENOMEM before failures are suppressed for it. */
enum { SIM_APPLY_RETRIES_MAX = 8 };

enum sim_crash_point {
	SIM_CRASH_BEFORE_PERSIST = 0, /* after messages_early left */
	SIM_CRASH_BEFORE_SYNC = 1,    /* written, not synced: lost */
	SIM_CRASH_BEFORE_SEND = 2,    /* synced, messages not sent */
	SIM_CRASH_BEFORE_APPLY = 3,
	SIM_CRASH_MID_APPLY = 4, /* some entries applied, apply batch not synced */
	SIM_CRASH_BEFORE_ADVANCE = 5,
	SIM_CRASH_IDLE = 6, /* between events */
	SIM_CRASH_POINTS_ = 7,
};

struct sim_options {
	uint64_t ticks; /* fault phase length; 0 = default */
	uint32_t nodes; /* initial voters; 0 = chosen per seed (3..5) */
	FILE *verbose;  /* every event printed here when not NULL */
	/* Check only outcomes (election safety, log matching, committed entries, applied
	 * sequence, acknowledged writes, reads), not the protocol rules that lead to them
	 * (persist before send, Figure 8 commit rule, configuration in force, vote quorum). */
	bool outcome_only;
};

/* What one seed chose (drawn once at the start of a run). */
struct sim_profile {
	uint32_t voters_initial;
	uint32_t election_ticks;
	uint32_t heartbeat_ticks;
	bool pre_vote;
	bool check_quorum;
	uint32_t inflight_msgs_max;
	uint64_t append_bytes_max;
	uint64_t uncommitted_bytes_max;
	uint64_t ready_bytes_max;
	uint32_t read_index_max;
	uint32_t members_max;
	struct sim_net_options net;
	uint32_t enomem_ppm;      /* per allocation */
	uint32_t crash_ppm;       /* per node per tick, when idle */
	uint32_t crash_ready_ppm; /* per ready batch, at a random point inside it */
	uint32_t down_ticks_max;
	uint32_t partition_ppm; /* per tick, when no partition is active */
	uint32_t partition_ticks_max;
	uint32_t propose_pct;       /* per tick */
	uint32_t read_pct;          /* per tick */
	uint32_t conf_ppm;          /* per tick */
	uint32_t transfer_ppm;      /* per tick */
	uint32_t tick_skip_pct_max; /* per node clock drift: a node misses this share of ticks */
	uint32_t nodes_total_max;   /* ids the run may create (initial voters + learners) */
	uint32_t reapply_pct;       /* a restart forgets the applied state and re-applies from 1 */
};

struct sim_pending_proposal {
	uint64_t index;
	uint64_t id;
};

struct sim_pending_read {
	uint64_t ctx;
	uint64_t required; /* highest acknowledged index when the read began */
	uint64_t index;    /* read index once answered, else 0 */
	bool answered;
};

struct sim_node {
	consensus_node_id id;
	bool exists;           /* has been started at least once */
	bool up;               /* its core is running */
	bool stopped;          /* decommissioned for good (removed from the configuration) */
	bool retired;          /* its removal was proposed: never added back */
	uint64_t retire_index; /* log index of the (last) proposed removal */
	struct consensus *core;
	struct sim_alloc alloc;
	struct sim_disk disk;
	struct consensus_config cfg;
	uint64_t down_until;
	uint64_t stop_at; /* 0 = not scheduled */
	uint32_t tick_skip_pct;

	/* What this incarnation's core reported last (checked for monotonicity). */
	struct consensus_hard_state mem_hard;
	uint8_t mem_role;
	uint64_t leader_term;                      /* last term it was seen leading, 0 = never */
	struct consensus_hard_state vote_recorded; /* last durable vote put into the history */

	struct sim_pending_proposal pending[SIM_PENDING_MAX];
	uint32_t pending_count;
	struct sim_pending_read reads[SIM_READS_MAX];
	uint32_t reads_count;
};

struct sim_link_fault {
	uint8_t from, to;
	bool clog; /* else cut */
	uint64_t heal_tick;
};

struct sim_stats {
	uint64_t commits;
	uint64_t leader_changes;
	uint64_t conf_changes;
	uint64_t crashes;
	uint64_t partitions;
	uint64_t reads;
	uint64_t transfers;
	uint64_t enomem;
	uint64_t proposals;
	uint64_t acked;
	uint64_t restarts;
	uint64_t learners_added;
	uint64_t ticks;
	uint64_t reapplies;      /* restarts with applied index 0 */
	uint64_t mem_peak_bytes; /* largest live allocation of one core */
};

struct sim {
	uint64_t seed;
	struct sim_options opt;
	struct sim_profile prof;
	struct sim_prng prng; /* workload and fault decisions */
	struct sim_prng crash_prng;
	struct sim_trace trace;
	struct sim_net net;
	struct sim_history hist;
	struct sim_violation viol;
	struct sim_node nodes[SIM_NODES_MAX];
	uint64_t next_id;
	uint64_t tick;
	bool faults; /* false in the liveness phase */
	struct sim_link_fault link_faults[SIM_LINK_FAULTS_MAX];
	uint32_t link_faults_count;
	uint64_t next_proposal_id;
	uint64_t next_read_ctx;
	uint64_t genesis_chain;
	uint64_t liveness_id; /* the proposal the liveness phase waits for */
	uint64_t liveness_index;
	bool liveness_acked;
	struct sim_stats stats;
};

/* Runs one seed to completion. Returns true if no invariant was violated (see sim->viol). */
bool sim_run(struct sim *sim, uint64_t seed, const struct sim_options *opt);
/* Prints every node's state (for a violation report). */
void sim_dump_nodes(const struct sim *sim, FILE *out);
/* Frees everything a run allocated (also after a violation). */
void sim_free(struct sim *sim);

/* sim_node.c: the node harness (exposed for sim_run.c). */
void sim_node_start_new(struct sim *sim, struct sim_node *n, bool genesis_voter);
bool sim_node_restart(struct sim *sim, struct sim_node *n);
void sim_node_crash(struct sim *sim, struct sim_node *n, enum sim_crash_point point);
void sim_node_stop(struct sim *sim, struct sim_node *n);
void sim_node_tick(struct sim *sim, struct sim_node *n);
void sim_deliver_due(struct sim *sim);
void sim_node_after_input(struct sim *sim, struct sim_node *n, int rc, const char *what);
void sim_node_drain(struct sim *sim, struct sim_node *n);
int sim_node_role(const struct sim_node *n);
uint64_t sim_entry_proposal_id(const struct sim_log_entry *e);
uint64_t sim_proposal_make(struct sim *sim, uint8_t *buf, uint32_t cap, uint32_t *out_len);

#endif
