/* The crypto adapter, the only user of <sodium.h>: signatures, DH, hashes, AEAD, CRC, random. */
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

/* --- Peer sessions: ephemeral X25519, BLAKE2b KDF, XChaCha20-Poly1305-IETF (docs/peer-sessions.md) --- */

enum {
	CL_DH_PUBLIC_BYTES = 32,
	CL_DH_SECRET_BYTES = 32,
	CL_DH_SHARED_BYTES = 32,
	CL_BLAKE2B_256_BYTES = 32,
	CL_BLAKE2B_KEY_BYTES_MAX = 64,
	CL_AEAD_KEY_BYTES = 32,
	CL_AEAD_NONCE_BYTES = 24,
	CL_AEAD_TAG_BYTES = 16,
};

/* A fresh ephemeral X25519 key pair. The caller zeroes `out_secret` (cl_memzero) once the
 * shared secret is derived. */
int cl_dh_keypair(uint8_t out_public[CL_DH_PUBLIC_BYTES],
		  uint8_t out_secret[CL_DH_SECRET_BYTES]) CL_MUST_CHECK;

/* X25519(secret, peer_public). CARELOG_ECRYPTO if the result is all zeros (a low-order peer
 * key: a peer forcing a known secret), `out_shared` then zeroed. The caller zeroes it after
 * use. */
int cl_dh_shared(uint8_t out_shared[CL_DH_SHARED_BYTES], const uint8_t secret[CL_DH_SECRET_BYTES],
		 const uint8_t peer_public[CL_DH_PUBLIC_BYTES]) CL_MUST_CHECK;

/* BLAKE2b with a 32-byte output, keyed when key_len > 0 (key_len <= CL_BLAKE2B_KEY_BYTES_MAX,
 * an invariant). */
void cl_blake2b_256(uint8_t out[CL_BLAKE2B_256_BYTES], const uint8_t *key, size_t key_len,
		    const uint8_t *message, size_t message_len);

/* XChaCha20-Poly1305-IETF: writes message_len + CL_AEAD_TAG_BYTES bytes (ciphertext || tag) to
 * `out`. `out` may equal `message` (in place); other overlaps are not allowed. */
int cl_aead_seal(uint8_t *out, const uint8_t *message, size_t message_len, const uint8_t *ad,
		 size_t ad_len, const uint8_t nonce[CL_AEAD_NONCE_BYTES],
		 const uint8_t key[CL_AEAD_KEY_BYTES]) CL_MUST_CHECK;

/* Checks the tag of `sealed` (sealed_len >= CL_AEAD_TAG_BYTES) before decrypting anything, then
 * writes sealed_len - CL_AEAD_TAG_BYTES plaintext bytes to `out` (which may equal `sealed`).
 * CARELOG_ECORRUPT if the tag does not verify (wrong key, nonce, ad, or altered bytes): no
 * plaintext is written, though libsodium may clear `out` (so `sealed` too when in place). */
int cl_aead_open(uint8_t *out, const uint8_t *sealed, size_t sealed_len, const uint8_t *ad,
		 size_t ad_len, const uint8_t nonce[CL_AEAD_NONCE_BYTES],
		 const uint8_t key[CL_AEAD_KEY_BYTES]) CL_MUST_CHECK;

#endif
