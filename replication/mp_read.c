/* A strict, zero-copy msgpack reader for replication's wire payloads (no allocation). */
#include "replication/mp_read.h"

#include "carelog/errors.h"
#include "common/assert.h"

#include <stdarg.h>
#include <stdio.h>

/* Type bytes of the msgpack forms this reader accepts (msgpack spec, "formats"). */
enum {
	MP_FIXINT_MAX = 0x7f,
	MP_FIXARRAY_MIN = 0x90,
	MP_FIXARRAY_MAX = 0x9f,
	MP_FALSE = 0xc2,
	MP_TRUE = 0xc3,
	MP_BIN8 = 0xc4,
	MP_BIN16 = 0xc5,
	MP_BIN32 = 0xc6,
	MP_UINT8 = 0xcc,
	MP_UINT16 = 0xcd,
	MP_UINT32 = 0xce,
	MP_UINT64 = 0xcf,
	MP_INT8 = 0xd0,
	MP_INT16 = 0xd1,
	MP_INT32 = 0xd2,
	MP_ARRAY16 = 0xdc,
	MP_ARRAY32 = 0xdd,
	MP_NEGATIVE_FIXINT_MIN = 0xe0,
};

CL_PRINTF(3, 4)
static int mp_fail(struct replication_mp_reader *r, const char *field, const char *fmt, ...)
{
	if (!r->failed) {
		r->failed = true;
		int n = snprintf(r->why, sizeof(r->why), "%s: ", field);
		if (n > 0 && (size_t)n < sizeof(r->why)) {
			va_list ap;
			va_start(ap, fmt);
			vsnprintf(r->why + n, sizeof(r->why) - (size_t)n, fmt, ap);
			va_end(ap);
		}
	}
	return CARELOG_EPROTO;
}

int replication_mp_fail(struct replication_mp_reader *r, const char *field, const char *what)
{
	return mp_fail(r, field, "%s", what);
}

const char *replication_mp_why(const struct replication_mp_reader *r)
{
	return r->why;
}

void replication_mp_reader_init(struct replication_mp_reader *r, const uint8_t *bytes, size_t len)
{
	CL_ASSERT(bytes != NULL || len == 0);
	*r = (struct replication_mp_reader){.start = bytes, .p = bytes, .end = bytes + len};
}

static size_t mp_left(const struct replication_mp_reader *r)
{
	return (size_t)(r->end - r->p);
}

static size_t mp_offset(const struct replication_mp_reader *r)
{
	return (size_t)(r->p - r->start);
}

static uint64_t mp_be(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		v = v << 8 | p[i];
	}
	return v;
}

/* Takes `n` bytes; *out points at them. */
static int mp_take(struct replication_mp_reader *r, const char *field, size_t n,
                   const uint8_t **out)
{
	if (r->failed) {
		return CARELOG_EPROTO;
	}
	if (mp_left(r) < n) {
		return mp_fail(r, field, "truncated at byte %zu", mp_offset(r));
	}
	*out = r->p;
	r->p += n;
	return CARELOG_OK;
}

/* Reads the type byte. */
static int mp_type(struct replication_mp_reader *r, const char *field, uint8_t *out)
{
	const uint8_t *p = NULL;
	int rc = mp_take(r, field, 1, &p);
	if (rc == CARELOG_OK && p != NULL) { /* never NULL after a take; says so to the compiler */
		*out = p[0];
	}
	return rc;
}

/* Reads an n-byte big-endian length or value following a type byte. */
static int mp_be_field(struct replication_mp_reader *r, const char *field, size_t n, uint64_t *out)
{
	const uint8_t *p = NULL;
	int rc = mp_take(r, field, n, &p);
	if (rc == CARELOG_OK) {
		*out = mp_be(p, n);
	}
	return rc;
}

static int mp_wrong_type(struct replication_mp_reader *r, const char *field, const char *expected,
                         uint8_t b)
{
	r->p--; /* report the offset of the type byte */
	return mp_fail(r, field, "%s expected, type byte 0x%02x at byte %zu", expected, b,
	               mp_offset(r));
}

static int mp_not_canonical(struct replication_mp_reader *r, const char *field, size_t at)
{
	return mp_fail(r, field, "not in shortest form at byte %zu", at);
}

int replication_mp_read_array(struct replication_mp_reader *r, const char *field,
                              uint32_t *out_count)
{
	uint8_t b = 0;
	int rc = mp_type(r, field, &b);
	if (rc != CARELOG_OK) {
		return rc;
	}
	size_t at = mp_offset(r) - 1;
	uint64_t n = 0;
	if (b >= MP_FIXARRAY_MIN && b <= MP_FIXARRAY_MAX) {
		n = b & 0x0fU;
	} else if (b == MP_ARRAY16 || b == MP_ARRAY32) {
		rc = mp_be_field(r, field, b == MP_ARRAY16 ? 2 : 4, &n);
		if (rc != CARELOG_OK) {
			return rc;
		}
		if (n < (b == MP_ARRAY16 ? 16U : 65536U)) {
			return mp_not_canonical(r, field, at);
		}
	} else {
		return mp_wrong_type(r, field, "array", b);
	}
	/* Every element takes at least one byte: a count beyond the bytes left is a lie, refused
	 * before any caller loops over it. */
	if (n > mp_left(r)) {
		return mp_fail(r, field, "array of %llu elements with %zu bytes left",
		               (unsigned long long)n, mp_left(r));
	}
	*out_count = (uint32_t)n;
	return CARELOG_OK;
}

int replication_mp_read_array_of(struct replication_mp_reader *r, const char *field, uint32_t count)
{
	uint32_t n = 0;
	int rc = replication_mp_read_array(r, field, &n);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (n != count) {
		return mp_fail(r, field, "array of %u elements, %u expected", n, count);
	}
	return CARELOG_OK;
}

int replication_mp_read_uint(struct replication_mp_reader *r, const char *field, uint64_t max,
                             uint64_t *out)
{
	uint8_t b = 0;
	int rc = mp_type(r, field, &b);
	if (rc != CARELOG_OK) {
		return rc;
	}
	size_t at = mp_offset(r) - 1;
	uint64_t v = 0;
	if (b <= MP_FIXINT_MAX) {
		v = b;
	} else if (b >= MP_UINT8 && b <= MP_UINT64) {
		size_t width = (size_t)1 << (b - MP_UINT8);
		rc = mp_be_field(r, field, width, &v);
		if (rc != CARELOG_OK) {
			return rc;
		}
		/* The smallest value that needs this width: 0x80, 2^8, 2^16, 2^32. */
		uint64_t min = b == MP_UINT8 ? 0x80U : (uint64_t)1 << (width * 4);
		if (v < min) {
			return mp_not_canonical(r, field, at);
		}
	} else {
		return mp_wrong_type(r, field, "unsigned integer", b);
	}
	if (v > max) {
		return mp_fail(r, field, "%llu above the limit %llu", (unsigned long long)v,
		               (unsigned long long)max);
	}
	*out = v;
	return CARELOG_OK;
}

int replication_mp_read_i32(struct replication_mp_reader *r, const char *field, int32_t *out)
{
	uint8_t b = 0;
	int rc = mp_type(r, field, &b);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (b <= MP_FIXINT_MAX || (b >= MP_UINT8 && b <= MP_UINT64)) {
		r->p--;
		uint64_t v = 0;
		rc = replication_mp_read_uint(r, field, INT32_MAX, &v);
		if (rc == CARELOG_OK) {
			*out = (int32_t)v;
		}
		return rc;
	}
	size_t at = mp_offset(r) - 1;
	int64_t v = 0;
	if (b >= MP_NEGATIVE_FIXINT_MIN) {
		v = (int64_t)b - 256;
	} else if (b >= MP_INT8 && b <= MP_INT32) {
		size_t width = (size_t)1 << (b - MP_INT8);
		uint64_t raw = 0;
		rc = mp_be_field(r, field, width, &raw);
		if (rc != CARELOG_OK) {
			return rc;
		}
		/* Sign-extend the two's complement value of `width` bytes. */
		uint64_t sign = (uint64_t)1 << (width * 8 - 1);
		v = raw & sign ? -(int64_t)(sign * 2 - raw) : (int64_t)raw;
		/* Canonical negative values: int8 below -32, int16 below -128, int32 below -2^15;
		 * non-negative values are always written unsigned. */
		int64_t below = b == MP_INT8 ? -32 : -((int64_t)1 << (width * 4 - 1));
		if (v >= below) {
			return mp_not_canonical(r, field, at);
		}
	} else {
		/* int64 is refused with the rest: every i32 fits the forms above. */
		return mp_wrong_type(r, field, "32-bit integer", b);
	}
	*out = (int32_t)v;
	return CARELOG_OK;
}

int replication_mp_read_bool(struct replication_mp_reader *r, const char *field, bool *out)
{
	uint8_t b = 0;
	int rc = mp_type(r, field, &b);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (b != MP_FALSE && b != MP_TRUE) {
		return mp_wrong_type(r, field, "bool", b);
	}
	*out = b == MP_TRUE;
	return CARELOG_OK;
}

int replication_mp_read_bin(struct replication_mp_reader *r, const char *field, uint32_t len_max,
                            const uint8_t **out_ptr, uint32_t *out_len)
{
	uint8_t b = 0;
	int rc = mp_type(r, field, &b);
	if (rc != CARELOG_OK) {
		return rc;
	}
	size_t at = mp_offset(r) - 1;
	if (b < MP_BIN8 || b > MP_BIN32) {
		return mp_wrong_type(r, field, "bin", b);
	}
	size_t width = (size_t)1 << (b - MP_BIN8);
	uint64_t n = 0;
	rc = mp_be_field(r, field, width, &n);
	if (rc != CARELOG_OK) {
		return rc;
	}
	if (b != MP_BIN8 && n < (uint64_t)1 << (width * 4)) {
		return mp_not_canonical(r, field, at);
	}
	if (n > len_max) {
		return mp_fail(r, field, "%llu bytes, at most %u allowed", (unsigned long long)n,
		               len_max);
	}
	const uint8_t *p = NULL;
	rc = mp_take(r, field, (size_t)n, &p);
	if (rc != CARELOG_OK) {
		return rc;
	}
	*out_ptr = p;
	*out_len = (uint32_t)n;
	return CARELOG_OK;
}

int replication_mp_read_end(struct replication_mp_reader *r)
{
	if (r->failed) {
		return CARELOG_EPROTO;
	}
	if (mp_left(r) != 0) {
		return mp_fail(r, "message", "%zu trailing bytes after byte %zu", mp_left(r),
		               mp_offset(r));
	}
	return CARELOG_OK;
}
