/* The journal module's msgpack adapter: fixed-buffer packing, bounded strict unpacking. */
#ifndef CARELOG_NODE_JOURNAL_MP_H
#define CARELOG_NODE_JOURNAL_MP_H

/*
 * Internal to node/journal (journal.c, membership.c): the only files that include <msgpack.h>
 * for the entry format. Three tools make decoding strict without hand-parsing msgpack:
 *
 *   journal_mp_scan      a non-allocating walk that checks the bytes hold exactly one msgpack
 *                        object and that no container declares more elements than bytes remain
 *                        (msgpack-c allocates count * 24..48 bytes before reading elements, so
 *                        a 5-byte "array of 2^32" would otherwise ask for ~100 GB);
 *   journal_mp_unpack    scan, then msgpack_unpack_next into a msgpack_unpacked;
 *   journal_mp_writer    a msgpack_packer sink that either writes into a caller buffer (no
 *                        malloc) or compares against expected bytes: decoders re-pack what they
 *                        decoded in compare mode, so any non-canonical encoding (non-shortest
 *                        integers, str16 for short strings, reordered or duplicate keys) is
 *                        refused and every value has exactly one byte form.
 */

#include <msgpack.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
	/* Deepest nesting any carelog msgpack structure uses is 3 (context -> members -> member);
	 * anything deeper is malformed. Bounds the scan and stays below msgpack-c's own 32. */
	JOURNAL_MP_DEPTH_MAX = 8,
};

struct journal_mp_writer {
	uint8_t *out;	       /* write mode: destination, or NULL in compare mode */
	size_t capacity;       /* bytes available at out / expected bytes to compare against */
	const uint8_t *expect; /* compare mode: the bytes the packing must reproduce */
	size_t len;	       /* bytes produced so far */
	bool failed;	       /* overflow (write mode) or mismatch (compare mode) */
};

/* Write mode: packing appends to `out` and fails (no partial write past capacity) on overflow. */
void journal_mp_writer_init(struct journal_mp_writer *w, msgpack_packer *pk, uint8_t *out,
			    size_t capacity);

/* Compare mode: packing succeeds only while it reproduces `expect` byte for byte. */
void journal_mp_writer_init_compare(struct journal_mp_writer *w, msgpack_packer *pk,
				    const uint8_t *expect, size_t expect_len);

/* True if everything packed so far fit (write mode) or matched and covered all of `expect`
 * (compare mode). */
bool journal_mp_writer_done(const struct journal_mp_writer *w);

/* CARELOG_OK if `bytes` hold exactly one well-formed msgpack object within the bounds above,
 * CARELOG_EPROTO otherwise. Ext types and the reserved byte 0xc1 are refused. */
int journal_mp_scan(const uint8_t *bytes, size_t len);

/* journal_mp_scan, then msgpack_unpack_next. On CARELOG_OK `u` holds the object (views into
 * `bytes`, which must outlive it); the caller always calls msgpack_unpacked_destroy(u), which
 * this function has initialised. CARELOG_EPROTO or CARELOG_ENOMEM otherwise. */
int journal_mp_unpack(msgpack_unpacked *u, const uint8_t *bytes, size_t len);

/* True if `o` is a str equal to `key`. */
bool journal_mp_is_key(const msgpack_object *o, const char *key);

/* Copies a str of at most `max_len` bytes without NUL bytes into `out` (max_len + 1 bytes),
 * NUL-terminated. Empty strings only when `allow_empty`. False otherwise, `out` unspecified. */
bool journal_mp_copy_str(const msgpack_object *o, char *out, size_t max_len, bool allow_empty);

/* Packs a NUL-terminated string as a msgpack str. */
int journal_mp_pack_cstr(msgpack_packer *pk, const char *s);

#endif
