/* A failing, accounting allocator handed to each simulated core (consensus_allocator). */
#ifndef CARELOG_SIM_ALLOC_H
#define CARELOG_SIM_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "consensus/consensus.h"
#include "sim_prng.h"

/*
 * Each allocation fails with probability fail_ppm / 1e6 (drawn from the allocator's own stream)
 * unless `suppress` is set. Every block carries a header with its size, so a free with the wrong
 * size or of a foreign pointer is caught, and bytes_live tells whether a destroyed core leaked.
 */
struct sim_alloc {
	struct consensus_allocator ops; /* ops.ctx points back at this struct */
	struct sim_prng prng;
	uint32_t fail_ppm;
	bool suppress;
	uint64_t bytes_live;
	uint64_t bytes_peak;
	uint64_t blocks_live;
	uint64_t failures;
	uint64_t bad_frees; /* frees whose size or header did not match: a core bug */
};

void sim_alloc_init(struct sim_alloc *a, uint64_t seed, uint32_t fail_ppm);

#endif
