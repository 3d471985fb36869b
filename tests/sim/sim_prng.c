/* xoshiro256** with splitmix64 seeding, and FNV-1a: deterministic randomness and hashing. */
#include "sim_prng.h"

#include "common/assert.h"

static uint64_t sim_splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void sim_prng_seed(struct sim_prng *p, uint64_t seed)
{
	uint64_t state = seed;
	for (unsigned i = 0; i < 4; i++) {
		p->s[i] = sim_splitmix64(&state);
	}
	/* xoshiro must not start from the all-zero state; splitmix64 never yields four zeros. */
	CL_ASSERT((p->s[0] | p->s[1] | p->s[2] | p->s[3]) != 0);
}

void sim_prng_split(struct sim_prng *p, uint64_t label, struct sim_prng *out)
{
	uint64_t base = sim_prng_next(p);
	sim_prng_seed(out, base ^ (label * 0xd1342543de82ef95ULL));
}

static uint64_t sim_rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t sim_prng_next(struct sim_prng *p)
{
	uint64_t *s = p->s;
	uint64_t result = sim_rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = sim_rotl(s[3], 45);
	return result;
}

uint64_t sim_prng_below(struct sim_prng *p, uint64_t bound)
{
	if (bound == 0) {
		return 0;
	}
	/* Rejection sampling: no modulo bias, so distributions do not depend on the bound. */
	uint64_t limit = UINT64_MAX - (UINT64_MAX % bound);
	for (;;) {
		uint64_t v = sim_prng_next(p);
		if (v < limit) {
			return v % bound;
		}
	}
}

uint64_t sim_prng_range(struct sim_prng *p, uint64_t lo, uint64_t hi)
{
	CL_ASSERT(lo <= hi);
	if (lo == 0 && hi == UINT64_MAX) {
		return sim_prng_next(p);
	}
	return lo + sim_prng_below(p, hi - lo + 1);
}

bool sim_prng_chance_ppm(struct sim_prng *p, uint32_t per_million)
{
	return sim_prng_below(p, 1000000) < per_million;
}

bool sim_prng_chance_pct(struct sim_prng *p, uint32_t pct)
{
	return sim_prng_below(p, 100) < pct;
}

uint64_t sim_fnv_init(void)
{
	return 0xcbf29ce484222325ULL;
}

uint64_t sim_fnv_bytes(uint64_t h, const void *data, uint64_t len)
{
	const uint8_t *b = data;
	for (uint64_t i = 0; i < len; i++) {
		h ^= b[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

uint64_t sim_fnv_u64(uint64_t h, uint64_t v)
{
	/* Byte by byte in a fixed order, so the hash is the same on every host. */
	for (unsigned i = 0; i < 8; i++) {
		h ^= (uint8_t)(v >> (8 * i));
		h *= 0x100000001b3ULL;
	}
	return h;
}
