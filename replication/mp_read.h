/* A strict, zero-copy msgpack reader for replication's wire payloads (no allocation). */
#ifndef CARELOG_REPLICATION_MP_READ_H
#define CARELOG_REPLICATION_MP_READ_H

/*
 * Internal to replication/ (wire.c). Reads one item at a time from a byte range, in the
 * canonical form msgpack-c's packer writes and nothing else: integers in their shortest form
 * (non-negative values always as unsigned), bins and arrays with the shortest length header.
 * Every value therefore has exactly one byte form, so a decoded message re-encodes to the
 * bytes it came from. Other msgpack types (str, map, float, nil, ext) are never part of a
 * wire payload and are refused.
 *
 * node/api/proto.c holds a reader of the same kind for the client protocol, static to that
 * file and deliberately lenient (it accepts non-canonical integers from other clients);
 * this one is for peers that all run carelog's encoder.
 *
 * Every function returns CARELOG_OK or CARELOG_EPROTO. On failure the reader stops (later
 * calls fail too) and keeps the first failure's description for replication_mp_why.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
	REPLICATION_MP_WHY_BYTES = 96, /* room for the first failure's description */
};

struct replication_mp_reader {
	const uint8_t *start;
	const uint8_t *p;
	const uint8_t *end;
	bool failed;
	char why[REPLICATION_MP_WHY_BYTES];
};

/* Starts reading `len` bytes at `bytes` (borrowed while reading and while views are used). */
void replication_mp_reader_init(struct replication_mp_reader *r, const uint8_t *bytes, size_t len);

/* An array header; *out_count is the element count (never more than the bytes left). */
int replication_mp_read_array(struct replication_mp_reader *r, const char *field,
                              uint32_t *out_count);

/* An array header whose count must be exactly `count`. */
int replication_mp_read_array_of(struct replication_mp_reader *r, const char *field,
                                 uint32_t count);

/* An unsigned integer no greater than `max`. */
int replication_mp_read_uint(struct replication_mp_reader *r, const char *field, uint64_t max,
                             uint64_t *out);

/* A signed 32-bit integer. */
int replication_mp_read_i32(struct replication_mp_reader *r, const char *field, int32_t *out);

int replication_mp_read_bool(struct replication_mp_reader *r, const char *field, bool *out);

/* A bin of at most `len_max` bytes; *out_ptr points into the input (never NULL, also when
 * the length is 0). */
int replication_mp_read_bin(struct replication_mp_reader *r, const char *field, uint32_t len_max,
                            const uint8_t **out_ptr, uint32_t *out_len);

/* CARELOG_EPROTO if bytes are left over. */
int replication_mp_read_end(struct replication_mp_reader *r);

/* Fails the reader with a description (used by callers for checks beyond the syntax). */
int replication_mp_fail(struct replication_mp_reader *r, const char *field, const char *what);

/* The first failure's description ("" while none). */
const char *replication_mp_why(const struct replication_mp_reader *r);

#endif
