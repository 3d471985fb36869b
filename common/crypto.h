/* The crypto adapter: the only user of <sodium.h>. Ed25519, SHA-256, CRC32C, randomness. */
#ifndef CARELOG_COMMON_CRYPTO_H
#define CARELOG_COMMON_CRYPTO_H

#include "common/assert.h"

#include <stddef.h>
#include <stdint.h>

enum {
	CL_SIGN_PUBLIC_BYTES = 32,
	CL_SIGN_SEED_BYTES = 32,
	CL_SIGN_SECRET_BYTES = 64, /* libsodium layout: seed || public key */
	CL_SIGNATURE_BYTES = 64,
	CL_SHA256_BYTES = 32,
	CL_SIGN_MESSAGE_BYTES_MAX = 64 * 1024, /* bound on a signed message (headers, handshakes) */
};

/*
 * Signing domains: every signature is made over `domain string || 0x00 || message`, so a
 * signature of one kind can never pass as another. The strings are part of the entry format
 * (docs/entry-format.md): never change them.
 */
enum cl_sign_domain {
	CL_SIGN_DOMAIN_ENTRY = 0,     /* "carelog entry v1" */
	CL_SIGN_DOMAIN_HANDSHAKE = 1, /* "carelog handshake v1" */
};

/* Initialises libsodium; call once before any other function here. Thread-safe, idempotent. */
int cl_crypto_init(void) CL_MUST_CHECK;

/* Fresh key pair. */
int cl_sign_keypair(uint8_t out_public[CL_SIGN_PUBLIC_BYTES],
		    uint8_t out_secret[CL_SIGN_SECRET_BYTES]) CL_MUST_CHECK;

/* The key pair for a 32-byte seed (the on-disk form of a node key). */
int cl_sign_keypair_from_seed(uint8_t out_public[CL_SIGN_PUBLIC_BYTES],
			      uint8_t out_secret[CL_SIGN_SECRET_BYTES],
			      const uint8_t seed[CL_SIGN_SEED_BYTES]) CL_MUST_CHECK;

/* Signs `domain || 0 || message`. CARELOG_ETOOBIG if message_len > CL_SIGN_MESSAGE_BYTES_MAX. */
int cl_sign(uint8_t out_signature[CL_SIGNATURE_BYTES], enum cl_sign_domain domain,
	    const uint8_t *message, size_t message_len,
	    const uint8_t secret[CL_SIGN_SECRET_BYTES]) CL_MUST_CHECK;

/* CARELOG_OK if `signature` is valid for `domain || 0 || message` under `public_key`, else
 * CARELOG_EBADSIG (or CARELOG_ETOOBIG). */
int cl_verify(const uint8_t signature[CL_SIGNATURE_BYTES], enum cl_sign_domain domain,
	      const uint8_t *message, size_t message_len,
	      const uint8_t public_key[CL_SIGN_PUBLIC_BYTES]) CL_MUST_CHECK;

/* SHA-256, one shot. */
void cl_sha256(uint8_t out[CL_SHA256_BYTES], const uint8_t *data, size_t len);

/* SHA-256, incremental. The state is opaque storage sized for libsodium's. */
struct cl_sha256_ctx {
	_Alignas(16) uint8_t opaque[128];
};
void cl_sha256_init(struct cl_sha256_ctx *ctx);
void cl_sha256_update(struct cl_sha256_ctx *ctx, const uint8_t *data, size_t len);
void cl_sha256_final(struct cl_sha256_ctx *ctx, uint8_t out[CL_SHA256_BYTES]);

/* CRC32C (Castagnoli), used as the checksum of stored values. `crc` starts at 0. */
uint32_t cl_crc32c(uint32_t crc, const void *data, size_t len);

/* Cryptographically secure random bytes. */
void cl_random_bytes(void *out, size_t len);

/* A uniformly random uint64. */
uint64_t cl_random_u64(void);

/* Zeroes memory that held a secret; never optimised away. Accepts NULL with len 0. */
void cl_memzero(void *ptr, size_t len);

/* Constant-time comparison: 0 if equal. */
int cl_memcmp_ct(const void *a, const void *b, size_t len);

/* Lower-case hex of `in`; `out` must hold 2*in_len+1 bytes. Returns out. */
char *cl_hex_encode(char *out, const uint8_t *in, size_t in_len);

/* Decodes exactly `out_len` bytes from `in` (2*out_len hex digits, then NUL or whitespace);
 * CARELOG_EINVAL otherwise, `out` untouched. */
int cl_hex_decode(uint8_t *out, size_t out_len, const char *in) CL_MUST_CHECK;

#endif
