/* The simulated network: loss, duplication, delay (hence reordering), cuts and clogged links. */
#ifndef CARELOG_SIM_NET_H
#define CARELOG_SIM_NET_H

#include <stdbool.h>
#include <stdint.h>

#include "consensus/consensus.h"
#include "sim_prng.h"

/* Node ids run 1..SIM_NET_NODES_MAX - 1 (ids are never reused within a run). */
enum { SIM_NET_NODES_MAX = 16 };
/* Packets in flight; beyond it the network drops (a congested switch). */
enum { SIM_NET_PACKETS_MAX = 8192 };

enum sim_drop_reason {
	SIM_DROP_LOSS = 0,
	SIM_DROP_CUT = 1,
	SIM_DROP_DOWN = 2,
	SIM_DROP_FULL = 3,
	SIM_DROP_ENOMEM = 4,
	SIM_DROP_UNKNOWN = 5,
};

struct sim_net_options {
	uint32_t loss_ppm;
	uint32_t dup_ppm;
	uint32_t delay_min_ticks;
	uint32_t delay_max_ticks;
	uint32_t spike_ppm; /* a packet is delayed far beyond delay_max */
	uint32_t spike_max_ticks;
	bool fifo; /* packets due the same tick keep their send order (no reordering) */
};

/* A message in flight with deep copies of its entries (owned by the packet). */
struct sim_packet {
	uint64_t deliver_tick;
	uint64_t order; /* random tie-break among packets due the same tick */
	struct consensus_message msg;
	struct consensus_entry *entries;
};

struct sim_net {
	struct sim_net_options opt;
	struct sim_prng prng;
	struct sim_packet *heap; /* min-heap on (deliver_tick, order) */
	uint32_t count;
	bool cut[SIM_NET_NODES_MAX][SIM_NET_NODES_MAX];  /* from -> to: dropped */
	bool clog[SIM_NET_NODES_MAX][SIM_NET_NODES_MAX]; /* from -> to: held back */
	uint64_t sent, delivered, dropped, duplicated;
	uint64_t seq; /* send order, for fifo */
};

void sim_net_init(struct sim_net *n, uint64_t seed, const struct sim_net_options *opt);
void sim_net_free(struct sim_net *n);

/*
 * Queues a copy of `m` (entries deep-copied) due at now + a random delay, maybe twice.
 * Returns false (dropped, *out_reason set) if the packet is lost or the network is full.
 */
bool sim_net_send(struct sim_net *n, uint64_t now, const struct consensus_message *m,
                  enum sim_drop_reason *out_reason);

/*
 * Takes the next packet due at or before `now`. Returns false if none is due. A packet on a cut
 * link is returned with *out_dropped = true (the caller traces and frees it); a packet on a
 * clogged link is held back and not returned.
 */
bool sim_net_pop(struct sim_net *n, uint64_t now, struct sim_packet *out, bool *out_dropped);
void sim_packet_free(struct sim_packet *p);

/* Link control (ids must be < SIM_NET_NODES_MAX). */
void sim_net_set_cut(struct sim_net *n, consensus_node_id from, consensus_node_id to, bool cut);
void sim_net_set_clog(struct sim_net *n, consensus_node_id from, consensus_node_id to, bool clog);
void sim_net_heal(struct sim_net *n);
bool sim_net_any_fault(const struct sim_net *n);
/* Drops packets in flight to or from `id` (a stopped node's sockets are gone). */
void sim_net_forget_node(struct sim_net *n, consensus_node_id id);

#endif
