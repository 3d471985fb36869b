/* The simulator's failing allocator: size headers, live-byte accounting, injected ENOMEM. */
#include "sim_alloc.h"

#include <stdlib.h>
#include <string.h>

#include "common/assert.h"

enum { SIM_ALLOC_HEADER_BYTES = 16 };
static const uint64_t sim_alloc_magic = 0x51a110c0ffeeULL;

static void *sim_alloc_alloc(void *ctx, size_t size_bytes)
{
	struct sim_alloc *a = ctx;
	if (!a->suppress && a->fail_ppm != 0 && sim_prng_chance_ppm(&a->prng, a->fail_ppm)) {
		a->failures++;
		return NULL;
	}
	uint8_t *block = malloc(size_bytes + SIM_ALLOC_HEADER_BYTES);
	if (block == NULL) {
		return NULL;
	}
	uint64_t header[2] = {(uint64_t)size_bytes, sim_alloc_magic};
	memcpy(block, header, sizeof(header));
	a->bytes_live += size_bytes;
	a->blocks_live++;
	if (a->bytes_live > a->bytes_peak) {
		a->bytes_peak = a->bytes_live;
	}
	return block + SIM_ALLOC_HEADER_BYTES;
}

static void sim_alloc_free(void *ctx, void *ptr, size_t size_bytes)
{
	struct sim_alloc *a = ctx;
	if (ptr == NULL) {
		return;
	}
	uint8_t *block = (uint8_t *)ptr - SIM_ALLOC_HEADER_BYTES;
	uint64_t header[2];
	memcpy(header, block, sizeof(header));
	if (header[1] != sim_alloc_magic || header[0] != (uint64_t)size_bytes ||
	    a->blocks_live == 0 || a->bytes_live < size_bytes) {
		/* Leak it rather than free something we do not understand; the run reports it. */
		a->bad_frees++;
		return;
	}
	header[1] = 0;
	memcpy(block, header, sizeof(header));
	a->bytes_live -= size_bytes;
	a->blocks_live--;
	free(block);
}

void sim_alloc_init(struct sim_alloc *a, uint64_t seed, uint32_t fail_ppm)
{
	memset(a, 0, sizeof(*a));
	a->ops.ctx = a;
	a->ops.alloc = sim_alloc_alloc;
	a->ops.free = sim_alloc_free;
	sim_prng_seed(&a->prng, seed);
	a->fail_ppm = fail_ppm;
}
