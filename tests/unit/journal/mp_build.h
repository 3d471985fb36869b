/* A tiny msgpack writer for tests: builds deliberately odd encodings the codecs must refuse. */
#ifndef CARELOG_TESTS_UNIT_JOURNAL_MP_BUILD_H
#define CARELOG_TESTS_UNIT_JOURNAL_MP_BUILD_H

#include <stddef.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

enum { MP_BUILD_BYTES_MAX = 8192 };

struct mp_build {
	uint8_t buf[MP_BUILD_BYTES_MAX];
	size_t len;
};

static inline void mpb_raw(struct mp_build *b, const void *p, size_t n)
{
	if (n > MP_BUILD_BYTES_MAX - b->len) {
		abort(); /* a test bug, not input */
	}
	memcpy(b->buf + b->len, p, n);
	b->len += n;
}

static inline void mpb_byte(struct mp_build *b, uint8_t v)
{
	mpb_raw(b, &v, 1);
}

static inline void mpb_be(struct mp_build *b, uint64_t v, size_t bytes)
{
	for (size_t i = bytes; i > 0; i--) {
		mpb_byte(b, (uint8_t)(v >> (8 * (i - 1))));
	}
}

/* Shortest forms, as the format requires. */
static inline void mpb_map(struct mp_build *b, size_t n)
{
	if (n < 16) {
		mpb_byte(b, (uint8_t)(0x80 | n));
	} else {
		mpb_byte(b, 0xde);
		mpb_be(b, n, 2);
	}
}

static inline void mpb_array(struct mp_build *b, size_t n)
{
	if (n < 16) {
		mpb_byte(b, (uint8_t)(0x90 | n));
	} else {
		mpb_byte(b, 0xdc);
		mpb_be(b, n, 2);
	}
}

static inline void mpb_uint(struct mp_build *b, uint64_t v)
{
	if (v < 128) {
		mpb_byte(b, (uint8_t)v);
	} else if (v < 256) {
		mpb_byte(b, 0xcc);
		mpb_be(b, v, 1);
	} else if (v < 65536) {
		mpb_byte(b, 0xcd);
		mpb_be(b, v, 2);
	} else if (v <= 0xffffffffU) {
		mpb_byte(b, 0xce);
		mpb_be(b, v, 4);
	} else {
		mpb_byte(b, 0xcf);
		mpb_be(b, v, 8);
	}
}

static inline void mpb_strn(struct mp_build *b, const char *s, size_t n)
{
	if (n < 32) {
		mpb_byte(b, (uint8_t)(0xa0 | n));
	} else if (n < 256) {
		mpb_byte(b, 0xd9);
		mpb_be(b, n, 1);
	} else {
		mpb_byte(b, 0xda);
		mpb_be(b, n, 2);
	}
	mpb_raw(b, s, n);
}

static inline void mpb_str(struct mp_build *b, const char *s)
{
	mpb_strn(b, s, strlen(s));
}

static inline void mpb_bin(struct mp_build *b, const void *p, size_t n)
{
	if (n < 256) {
		mpb_byte(b, 0xc4);
		mpb_be(b, n, 1);
	} else {
		mpb_byte(b, 0xc5);
		mpb_be(b, n, 2);
	}
	mpb_raw(b, p, n);
}

static inline void mpb_nil(struct mp_build *b)
{
	mpb_byte(b, 0xc0);
}

static inline void mpb_bool(struct mp_build *b, int v)
{
	mpb_byte(b, v ? 0xc3 : 0xc2);
}

/* A deterministic PRNG for reproducible fuzz loops (xorshift64*). */
static inline uint64_t mpb_rand(uint64_t *state)
{
	uint64_t x = *state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dULL;
}

#endif
