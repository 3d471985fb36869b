/* The crypto adapter over libsodium, plus CRC32C and hex helpers. */
#include "common/crypto.h"

#include "carelog/errors.h"

#include <pthread.h>
#include <sodium.h>
#include <string.h>

CL_STATIC_ASSERT(sizeof(crypto_hash_sha256_state) <= sizeof(((struct cl_sha256_ctx *)0)->opaque),
		 "cl_sha256_ctx too small for libsodium's state");
CL_STATIC_ASSERT(crypto_sign_PUBLICKEYBYTES == CL_SIGN_PUBLIC_BYTES, "ed25519 public key size");
CL_STATIC_ASSERT(crypto_sign_SECRETKEYBYTES == CL_SIGN_SECRET_BYTES, "ed25519 secret key size");
CL_STATIC_ASSERT(crypto_sign_BYTES == CL_SIGNATURE_BYTES, "ed25519 signature size");
CL_STATIC_ASSERT(crypto_sign_SEEDBYTES == CL_SIGN_SEED_BYTES, "ed25519 seed size");
CL_STATIC_ASSERT(crypto_hash_sha256_BYTES == CL_SHA256_BYTES, "sha256 size");
CL_STATIC_ASSERT(crypto_scalarmult_BYTES == CL_DH_PUBLIC_BYTES, "x25519 public key size");
CL_STATIC_ASSERT(crypto_scalarmult_SCALARBYTES == CL_DH_SECRET_BYTES, "x25519 secret size");
CL_STATIC_ASSERT(crypto_scalarmult_BYTES == CL_DH_SHARED_BYTES, "x25519 shared size");
CL_STATIC_ASSERT(crypto_generichash_KEYBYTES_MAX == CL_BLAKE2B_KEY_BYTES_MAX, "blake2b key");
CL_STATIC_ASSERT(crypto_aead_xchacha20poly1305_ietf_KEYBYTES == CL_AEAD_KEY_BYTES, "aead key");
CL_STATIC_ASSERT(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES == CL_AEAD_NONCE_BYTES,
		 "aead nonce");
CL_STATIC_ASSERT(crypto_aead_xchacha20poly1305_ietf_ABYTES == CL_AEAD_TAG_BYTES, "aead tag");

static const char *const sign_domain_strings[] = {
	[CL_SIGN_DOMAIN_ENTRY] = "carelog entry v1",
	[CL_SIGN_DOMAIN_HANDSHAKE] = "carelog handshake v1",
};

enum { SIGN_DOMAIN_BYTES_MAX = 32 };

int cl_crypto_init(void)
{
	return sodium_init() < 0 ? CARELOG_ECRYPTO : CARELOG_OK;
}

int cl_sign_keypair(uint8_t out_public[CL_SIGN_PUBLIC_BYTES],
		    uint8_t out_secret[CL_SIGN_SECRET_BYTES])
{
	return crypto_sign_keypair(out_public, out_secret) == 0 ? CARELOG_OK : CARELOG_ECRYPTO;
}

int cl_sign_keypair_from_seed(uint8_t out_public[CL_SIGN_PUBLIC_BYTES],
			      uint8_t out_secret[CL_SIGN_SECRET_BYTES],
			      const uint8_t seed[CL_SIGN_SEED_BYTES])
{
	return crypto_sign_seed_keypair(out_public, out_secret, seed) == 0 ? CARELOG_OK
									   : CARELOG_ECRYPTO;
}

/* Builds `domain || 0 || message` in `buf`; returns its length. */
static size_t sign_input(uint8_t *buf, enum cl_sign_domain domain, const uint8_t *message,
			 size_t message_len)
{
	CL_ASSERT((size_t)domain < CL_ARRAY_LEN(sign_domain_strings));
	const char *prefix = sign_domain_strings[domain];
	size_t prefix_len = strlen(prefix) + 1; /* the NUL separates domain and message */
	CL_ASSERT(prefix_len <= SIGN_DOMAIN_BYTES_MAX);
	memcpy(buf, prefix, prefix_len);
	if (message_len > 0) {
		memcpy(buf + prefix_len, message, message_len);
	}
	return prefix_len + message_len;
}

int cl_sign(uint8_t out_signature[CL_SIGNATURE_BYTES], enum cl_sign_domain domain,
	    const uint8_t *message, size_t message_len, const uint8_t secret[CL_SIGN_SECRET_BYTES])
{
	if (message_len > CL_SIGN_MESSAGE_BYTES_MAX) {
		return CARELOG_ETOOBIG;
	}
	uint8_t *buf = sodium_malloc(SIGN_DOMAIN_BYTES_MAX + message_len);
	if (buf == NULL) {
		return CARELOG_ENOMEM;
	}
	size_t len = sign_input(buf, domain, message, message_len);
	int rc = crypto_sign_detached(out_signature, NULL, buf, len, secret) == 0 ? CARELOG_OK
										    : CARELOG_ECRYPTO;
	sodium_free(buf);
	return rc;
}

int cl_verify(const uint8_t signature[CL_SIGNATURE_BYTES], enum cl_sign_domain domain,
	      const uint8_t *message, size_t message_len,
	      const uint8_t public_key[CL_SIGN_PUBLIC_BYTES])
{
	if (message_len > CL_SIGN_MESSAGE_BYTES_MAX) {
		return CARELOG_ETOOBIG;
	}
	uint8_t stack_buf[SIGN_DOMAIN_BYTES_MAX + 4096];
	uint8_t *buf = stack_buf;
	if (message_len > sizeof(stack_buf) - SIGN_DOMAIN_BYTES_MAX) {
		buf = sodium_malloc(SIGN_DOMAIN_BYTES_MAX + message_len);
		if (buf == NULL) {
			return CARELOG_ENOMEM;
		}
	}
	size_t len = sign_input(buf, domain, message, message_len);
	int ok = crypto_sign_verify_detached(signature, buf, len, public_key) == 0;
	if (buf != stack_buf) {
		sodium_free(buf);
	}
	return ok ? CARELOG_OK : CARELOG_EBADSIG;
}

void cl_sha256(uint8_t out[CL_SHA256_BYTES], const uint8_t *data, size_t len)
{
	crypto_hash_sha256(out, data, len);
}

void cl_sha256_init(struct cl_sha256_ctx *ctx)
{
	crypto_hash_sha256_init((crypto_hash_sha256_state *)(void *)ctx->opaque);
}

void cl_sha256_update(struct cl_sha256_ctx *ctx, const uint8_t *data, size_t len)
{
	crypto_hash_sha256_update((crypto_hash_sha256_state *)(void *)ctx->opaque, data, len);
}

void cl_sha256_final(struct cl_sha256_ctx *ctx, uint8_t out[CL_SHA256_BYTES])
{
	crypto_hash_sha256_final((crypto_hash_sha256_state *)(void *)ctx->opaque, out);
}

/* CRC32C, reflected polynomial 0x82F63B78. Stored values include entry bodies (KiBs), and a
 * timeline read checks ~200 of them: the SSE4.2 instruction when the CPU has it (checked
 * once), else slice-by-8 tables (~4x the byte-wise loop). Same results either way. */
static uint32_t crc32c_table[8][256];
static int crc32c_mode; /* 1 tables, 2 hardware; set once */
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

static void crc32c_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++) {
			c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
		}
		crc32c_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++) {
		for (int t = 1; t < 8; t++) {
			uint32_t prev = crc32c_table[t - 1][i];
			crc32c_table[t][i] = crc32c_table[0][prev & 0xFFu] ^ (prev >> 8);
		}
	}
	int mode = 1;
#if defined(__x86_64__) && defined(__GNUC__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("sse4.2")) {
		mode = 2;
	}
#endif
	crc32c_mode = mode;
}

static uint32_t crc32c_tables(uint32_t crc, const uint8_t *p, size_t len)
{
	while (len >= 8) {
		uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
				     (uint32_t)p[3] << 24);
		uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 |
			      (uint32_t)p[7] << 24;
		crc = crc32c_table[7][lo & 0xFFu] ^ crc32c_table[6][(lo >> 8) & 0xFFu] ^
		      crc32c_table[5][(lo >> 16) & 0xFFu] ^ crc32c_table[4][lo >> 24] ^
		      crc32c_table[3][hi & 0xFFu] ^ crc32c_table[2][(hi >> 8) & 0xFFu] ^
		      crc32c_table[1][(hi >> 16) & 0xFFu] ^ crc32c_table[0][hi >> 24];
		p += 8;
		len -= 8;
	}
	while (len-- > 0) {
		crc = crc32c_table[0][(crc ^ *p++) & 0xFFu] ^ (crc >> 8);
	}
	return crc;
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p,
							    size_t len)
{
	uint64_t c = crc;
	while (len >= 8) {
		uint64_t v;
		memcpy(&v, p, sizeof(v)); /* unaligned-safe; little-endian as the instruction wants */
		c = __builtin_ia32_crc32di(c, v);
		p += 8;
		len -= 8;
	}
	uint32_t c32 = (uint32_t)c;
	while (len-- > 0) {
		c32 = __builtin_ia32_crc32qi(c32, *p++);
	}
	return c32;
}
#endif

uint32_t cl_crc32c(uint32_t crc, const void *data, size_t len)
{
	pthread_once(&crc32c_once, crc32c_init);
	int mode = crc32c_mode;
	crc = ~crc;
#if defined(__x86_64__) && defined(__GNUC__)
	if (mode == 2) {
		return ~crc32c_hw(crc, data, len);
	}
#endif
	return ~crc32c_tables(crc, data, len);
}

void cl_random_bytes(void *out, size_t len)
{
	randombytes_buf(out, len);
}

uint64_t cl_random_u64(void)
{
	uint64_t v;
	randombytes_buf(&v, sizeof(v));
	return v;
}

void cl_memzero(void *ptr, size_t len)
{
	if (ptr != NULL && len > 0) {
		sodium_memzero(ptr, len);
	}
}

int cl_memcmp_ct(const void *a, const void *b, size_t len)
{
	return sodium_memcmp(a, b, len);
}

char *cl_hex_encode(char *out, const uint8_t *in, size_t in_len)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < in_len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0x0F];
	}
	out[2 * in_len] = '\0';
	return out;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	if (c >= 'a' && c <= 'f') {
		return c - 'a' + 10;
	}
	if (c >= 'A' && c <= 'F') {
		return c - 'A' + 10;
	}
	return -1;
}

int cl_hex_decode(uint8_t *out, size_t out_len, const char *in)
{
	for (size_t i = 0; i < 2 * out_len; i++) {
		if (hex_digit(in[i]) < 0) {
			return CARELOG_EINVAL;
		}
	}
	char end = in[2 * out_len];
	if (end != '\0' && end != '\n' && end != '\r' && end != ' ' && end != '\t') {
		return CARELOG_EINVAL;
	}
	for (size_t i = 0; i < out_len; i++) {
		out[i] = (uint8_t)(hex_digit(in[2 * i]) << 4 | hex_digit(in[2 * i + 1]));
	}
	return CARELOG_OK;
}

int cl_dh_keypair(uint8_t out_public[CL_DH_PUBLIC_BYTES], uint8_t out_secret[CL_DH_SECRET_BYTES])
{
	randombytes_buf(out_secret, CL_DH_SECRET_BYTES);
	if (crypto_scalarmult_base(out_public, out_secret) != 0) {
		sodium_memzero(out_secret, CL_DH_SECRET_BYTES);
		return CARELOG_ECRYPTO;
	}
	return CARELOG_OK;
}

int cl_dh_shared(uint8_t out_shared[CL_DH_SHARED_BYTES], const uint8_t secret[CL_DH_SECRET_BYTES],
		 const uint8_t peer_public[CL_DH_PUBLIC_BYTES])
{
	/* libsodium returns -1 when the output is all zeros (a low-order point). */
	if (crypto_scalarmult(out_shared, secret, peer_public) != 0) {
		sodium_memzero(out_shared, CL_DH_SHARED_BYTES);
		return CARELOG_ECRYPTO;
	}
	return CARELOG_OK;
}

void cl_blake2b_256(uint8_t out[CL_BLAKE2B_256_BYTES], const uint8_t *key, size_t key_len,
		    const uint8_t *message, size_t message_len)
{
	CL_ASSERT(key_len <= CL_BLAKE2B_KEY_BYTES_MAX);
	int rc = crypto_generichash(out, CL_BLAKE2B_256_BYTES, message, message_len,
				    key_len > 0 ? key : NULL, key_len);
	CL_ASSERT(rc == 0); /* fails only on out-of-range lengths, excluded above */
}

int cl_aead_seal(uint8_t *out, const uint8_t *message, size_t message_len, const uint8_t *ad,
		 size_t ad_len, const uint8_t nonce[CL_AEAD_NONCE_BYTES],
		 const uint8_t key[CL_AEAD_KEY_BYTES])
{
	if (message_len > crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX) {
		return CARELOG_ETOOBIG;
	}
	unsigned long long out_len = 0;
	return crypto_aead_xchacha20poly1305_ietf_encrypt(out, &out_len, message, message_len, ad,
							  ad_len, NULL, nonce, key) == 0
		       ? CARELOG_OK
		       : CARELOG_ECRYPTO;
}

int cl_aead_open(uint8_t *out, const uint8_t *sealed, size_t sealed_len, const uint8_t *ad,
		 size_t ad_len, const uint8_t nonce[CL_AEAD_NONCE_BYTES],
		 const uint8_t key[CL_AEAD_KEY_BYTES])
{
	if (sealed_len < CL_AEAD_TAG_BYTES) {
		return CARELOG_ECORRUPT;
	}
	/* Detached, so the tag need not be copied: libsodium verifies it before it writes any
	 * plaintext (on failure it clears `out`). */
	size_t body_len = sealed_len - CL_AEAD_TAG_BYTES;
	return crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
		       out, NULL, sealed, body_len, sealed + body_len, ad, ad_len, nonce, key) == 0
		       ? CARELOG_OK
		       : CARELOG_ECORRUPT;
}
