/* The simulator's own PRNG (xoshiro256**, seeded by splitmix64): one seed drives a whole run. */
#ifndef CARELOG_SIM_PRNG_H
#define CARELOG_SIM_PRNG_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Never rand() or time(): every choice the simulator makes comes from a sim_prng so that a seed
 * reproduces a run bit for bit. Independent streams (network, disk, workload, each node's
 * allocator) are split off with sim_prng_split so that adding a draw in one place does not shift
 * every other decision of the run.
 */
struct sim_prng {
	uint64_t s[4];
};

void sim_prng_seed(struct sim_prng *p, uint64_t seed);
/* A new stream derived from `p` and a label; `p` advances once. */
void sim_prng_split(struct sim_prng *p, uint64_t label, struct sim_prng *out);
uint64_t sim_prng_next(struct sim_prng *p);
/* Uniform in [0, bound); bound 0 returns 0. */
uint64_t sim_prng_below(struct sim_prng *p, uint64_t bound);
/* Uniform in [lo, hi] (inclusive). */
uint64_t sim_prng_range(struct sim_prng *p, uint64_t lo, uint64_t hi);
/* True with probability per_million / 1,000,000. */
bool sim_prng_chance_ppm(struct sim_prng *p, uint32_t per_million);
/* True with probability pct / 100. */
bool sim_prng_chance_pct(struct sim_prng *p, uint32_t pct);

/* 64-bit FNV-1a, the simulator's hash for traces, logs and chains (a test, not a journal). */
uint64_t sim_fnv_init(void);
uint64_t sim_fnv_bytes(uint64_t h, const void *data, uint64_t len);
uint64_t sim_fnv_u64(uint64_t h, uint64_t v);

#endif
