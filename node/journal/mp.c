/* The journal module's msgpack adapter: fixed-buffer packing, bounded strict unpacking. */
#include "node/journal/mp.h"

#include "carelog/errors.h"
#include "common/assert.h"
#include "common/bytes.h"

#include <string.h>

/* msgpack_packer callback: append to the caller's buffer, or compare with expected bytes. */
static int journal_mp_write(void *data, const char *buf, size_t len)
{
	struct journal_mp_writer *w = data;
	if (w->failed) {
		return -1;
	}
	if (len > w->capacity - w->len) {
		w->failed = true;
		return -1;
	}
	if (w->out != NULL) {
		memcpy(w->out + w->len, buf, len);
	} else if ((const uint8_t *)buf != w->expect + w->len &&
		   memcmp(w->expect + w->len, buf, len) != 0) {
		/* The pointer test skips comparing a large body with itself. */
		w->failed = true;
		return -1;
	}
	w->len += len;
	return 0;
}

void journal_mp_writer_init(struct journal_mp_writer *w, msgpack_packer *pk, uint8_t *out,
			    size_t capacity)
{
	CL_ASSERT(out != NULL || capacity == 0);
	*w = (struct journal_mp_writer){.out = out, .capacity = capacity};
	msgpack_packer_init(pk, w, journal_mp_write);
}

void journal_mp_writer_init_compare(struct journal_mp_writer *w, msgpack_packer *pk,
				    const uint8_t *expect, size_t expect_len)
{
	CL_ASSERT(expect != NULL);
	*w = (struct journal_mp_writer){.capacity = expect_len, .expect = expect};
	msgpack_packer_init(pk, w, journal_mp_write);
}

bool journal_mp_writer_done(const struct journal_mp_writer *w)
{
	if (w->failed) {
		return false;
	}
	return w->out != NULL || w->len == w->capacity;
}

/* How the bytes after one msgpack type byte are laid out. */
struct journal_mp_shape {
	size_t field_bytes;  /* bytes after the type byte holding a value, length or count */
	bool is_blob;	     /* field is a length of that many following bytes */
	bool is_container;   /* field (or the low bits) is an element count */
	size_t per_element;  /* 1 for arrays, 2 for maps (key and value) */
	size_t inline_count; /* fixmap/fixarray/fixstr: count or length in the type byte */
	bool inline_value;   /* count or length is inline_count, no field */
};

/* The layout of the element starting with type byte `b`; false for refused type bytes (0xc1
 * and the ext types carelog never writes). */
static bool journal_mp_shape_of(uint8_t b, struct journal_mp_shape *s)
{
	*s = (struct journal_mp_shape){0};
	if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
		return true; /* fixints, nil, booleans: the type byte is everything */
	}
	if (b <= 0x8f || (b >= 0x90 && b <= 0x9f)) {
		s->is_container = true;
		s->inline_value = true;
		s->inline_count = b & 0x0fU;
		s->per_element = b <= 0x8f ? 2 : 1;
		return true;
	}
	if (b >= 0xa0 && b <= 0xbf) {
		s->is_blob = true;
		s->inline_value = true;
		s->inline_count = b & 0x1fU;
		return true;
	}
	switch (b) {
	case 0xc4:
	case 0xd9:
		s->is_blob = true;
		s->field_bytes = 1;
		return true;
	case 0xc5:
	case 0xda:
		s->is_blob = true;
		s->field_bytes = 2;
		return true;
	case 0xc6:
	case 0xdb:
		s->is_blob = true;
		s->field_bytes = 4;
		return true;
	case 0xca:
		s->field_bytes = 4;
		return true;
	case 0xcb:
		s->field_bytes = 8;
		return true;
	case 0xcc:
	case 0xd0:
		s->field_bytes = 1;
		return true;
	case 0xcd:
	case 0xd1:
		s->field_bytes = 2;
		return true;
	case 0xce:
	case 0xd2:
		s->field_bytes = 4;
		return true;
	case 0xcf:
	case 0xd3:
		s->field_bytes = 8;
		return true;
	case 0xdc:
		s->is_container = true;
		s->per_element = 1;
		s->field_bytes = 2;
		return true;
	case 0xdd:
		s->is_container = true;
		s->per_element = 1;
		s->field_bytes = 4;
		return true;
	case 0xde:
		s->is_container = true;
		s->per_element = 2;
		s->field_bytes = 2;
		return true;
	case 0xdf:
		s->is_container = true;
		s->per_element = 2;
		s->field_bytes = 4;
		return true;
	default:
		return false; /* 0xc1 reserved; ext types carelog never writes */
	}
}

static size_t journal_mp_field(const uint8_t *p, size_t field_bytes)
{
	switch (field_bytes) {
	case 1:
		return p[0];
	case 2:
		return cl_get_u16be(p);
	case 4:
		return cl_get_u32be(p);
	default:
		CL_UNREACHABLE();
	}
}

int journal_mp_scan(const uint8_t *bytes, size_t len)
{
	if (bytes == NULL || len == 0) {
		return CARELOG_EPROTO;
	}
	/* remaining[d]: elements still to read in the container open at depth d. */
	size_t remaining[JOURNAL_MP_DEPTH_MAX + 1];
	size_t depth = 0;
	size_t pending_total = 1; /* elements announced but not yet read, at every depth */
	size_t pos = 0;
	remaining[0] = 1;
	/* Each iteration reads one element (at least one byte) or closes one container, so the
	 * loop runs at most 2 * len + 1 times. */
	for (;;) {
		if (remaining[depth] == 0) {
			if (depth == 0) {
				break;
			}
			depth--;
			continue;
		}
		if (pos >= len) {
			return CARELOG_EPROTO;
		}
		remaining[depth]--;
		pending_total--;
		struct journal_mp_shape s;
		if (!journal_mp_shape_of(bytes[pos], &s)) {
			return CARELOG_EPROTO;
		}
		pos++;
		if (s.field_bytes > len - pos) {
			return CARELOG_EPROTO;
		}
		size_t value = s.inline_value ? s.inline_count : 0;
		if (s.is_blob || s.is_container) {
			if (!s.inline_value) {
				value = journal_mp_field(bytes + pos, s.field_bytes);
			}
		}
		pos += s.field_bytes;
		if (s.is_blob) {
			if (value > len - pos) {
				return CARELOG_EPROTO;
			}
			pos += value;
		} else if (s.is_container && value > 0) {
			if (depth == JOURNAL_MP_DEPTH_MAX) {
				return CARELOG_EPROTO;
			}
			/* Every element takes at least one byte: a count beyond the bytes left is a
			 * lie, refused before msgpack-c allocates for it. value < 2^32, so no
			 * overflow in the multiplication on a 64-bit size_t; check anyway. */
			if (value > (len - pos) / s.per_element) {
				return CARELOG_EPROTO;
			}
			size_t elements = value * s.per_element;
			if (elements > len - pos - pending_total) {
				return CARELOG_EPROTO;
			}
			pending_total += elements;
			depth++;
			remaining[depth] = elements;
		}
		if (pending_total > len - pos) {
			return CARELOG_EPROTO; /* more elements announced than bytes left */
		}
	}
	CL_ASSERT(pending_total == 0);
	return pos == len ? CARELOG_OK : CARELOG_EPROTO;
}

int journal_mp_unpack(msgpack_unpacked *u, const uint8_t *bytes, size_t len)
{
	msgpack_unpacked_init(u);
	int rc = journal_mp_scan(bytes, len);
	if (rc != CARELOG_OK) {
		return rc;
	}
	size_t off = 0;
	msgpack_unpack_return ret = msgpack_unpack_next(u, (const char *)bytes, len, &off);
	if (ret == MSGPACK_UNPACK_NOMEM_ERROR) {
		return CARELOG_ENOMEM;
	}
	if (ret != MSGPACK_UNPACK_SUCCESS || off != len) {
		return CARELOG_EPROTO;
	}
	return CARELOG_OK;
}

bool journal_mp_is_key(const msgpack_object *o, const char *key)
{
	size_t key_len = strlen(key);
	return o->type == MSGPACK_OBJECT_STR && o->via.str.size == key_len &&
	       memcmp(o->via.str.ptr, key, key_len) == 0;
}

bool journal_mp_copy_str(const msgpack_object *o, char *out, size_t max_len, bool allow_empty)
{
	if (o->type != MSGPACK_OBJECT_STR) {
		return false;
	}
	size_t n = o->via.str.size;
	if (n > max_len || (n == 0 && !allow_empty)) {
		return false;
	}
	if (n > 0 && memchr(o->via.str.ptr, 0, n) != NULL) {
		return false; /* would not survive as a C string */
	}
	if (n > 0) {
		memcpy(out, o->via.str.ptr, n);
	}
	out[n] = '\0';
	return true;
}

int journal_mp_pack_cstr(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);
	if (msgpack_pack_str(pk, n) != 0) {
		return -1;
	}
	return msgpack_pack_str_body(pk, s, n);
}
