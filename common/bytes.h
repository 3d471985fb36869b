/* Fixed-width big-endian encoding helpers, shared by every binary format in carelog. */
#ifndef CARELOG_COMMON_BYTES_H
#define CARELOG_COMMON_BYTES_H

#include <stdint.h>

static inline void cl_put_u16be(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void cl_put_u32be(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void cl_put_u64be(uint8_t *p, uint64_t v)
{
	cl_put_u32be(p, (uint32_t)(v >> 32));
	cl_put_u32be(p + 4, (uint32_t)v);
}

static inline uint16_t cl_get_u16be(const uint8_t *p)
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t cl_get_u32be(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t cl_get_u64be(const uint8_t *p)
{
	return (uint64_t)cl_get_u32be(p) << 32 | cl_get_u32be(p + 4);
}

#endif
