/* Unit tests for common/: errors, crypto adapter, checksums, hex, key files. */
#include "carelog/errors.h"
#include "common/crypto.h"
#include "common/keyfile.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static void test_every_error_code_has_a_name_and_text(void **state)
{
	(void)state;
	for (int e = 0; e < CARELOG_ERROR_COUNT_; e++) {
		assert_string_not_equal(carelog_strerror(e), "unknown error code");
		assert_string_not_equal(carelog_errname(e), "EUNKNOWNCODE");
	}
	assert_string_equal(carelog_strerror(CARELOG_ERROR_COUNT_), "unknown error code");
	assert_string_equal(carelog_strerror(-1), "unknown error code");
	assert_string_equal(carelog_errname(CARELOG_ECORRUPT), "ECORRUPT");
}

static void test_sign_verify_round_trip_and_tampered_bytes_rejected(void **state)
{
	(void)state;
	uint8_t pk[CL_SIGN_PUBLIC_BYTES], sk[CL_SIGN_SECRET_BYTES], sig[CL_SIGNATURE_BYTES];
	assert_int_equal(cl_sign_keypair(pk, sk), CARELOG_OK);
	uint8_t msg[300];
	for (size_t i = 0; i < sizeof(msg); i++) {
		msg[i] = (uint8_t)i;
	}
	assert_int_equal(cl_sign(sig, CL_SIGN_DOMAIN_ENTRY, msg, sizeof(msg), sk), CARELOG_OK);
	assert_int_equal(cl_verify(sig, CL_SIGN_DOMAIN_ENTRY, msg, sizeof(msg), pk), CARELOG_OK);
	for (size_t i = 0; i < sizeof(msg); i += 37) {
		msg[i] ^= 0x01;
		assert_int_equal(cl_verify(sig, CL_SIGN_DOMAIN_ENTRY, msg, sizeof(msg), pk),
				 CARELOG_EBADSIG);
		msg[i] ^= 0x01;
	}
	sig[10] ^= 0x80;
	assert_int_equal(cl_verify(sig, CL_SIGN_DOMAIN_ENTRY, msg, sizeof(msg), pk), CARELOG_EBADSIG);
	sig[10] ^= 0x80;
	uint8_t other_pk[CL_SIGN_PUBLIC_BYTES], other_sk[CL_SIGN_SECRET_BYTES];
	assert_int_equal(cl_sign_keypair(other_pk, other_sk), CARELOG_OK);
	assert_int_equal(cl_verify(sig, CL_SIGN_DOMAIN_ENTRY, msg, sizeof(msg), other_pk),
			 CARELOG_EBADSIG);
}

static void test_signature_of_one_domain_never_passes_as_another(void **state)
{
	(void)state;
	uint8_t pk[CL_SIGN_PUBLIC_BYTES], sk[CL_SIGN_SECRET_BYTES], sig[CL_SIGNATURE_BYTES];
	assert_int_equal(cl_sign_keypair(pk, sk), CARELOG_OK);
	const uint8_t msg[] = "same bytes";
	assert_int_equal(cl_sign(sig, CL_SIGN_DOMAIN_HANDSHAKE, msg, sizeof(msg), sk), CARELOG_OK);
	assert_int_equal(cl_verify(sig, CL_SIGN_DOMAIN_ENTRY, msg, sizeof(msg), pk), CARELOG_EBADSIG);
	assert_int_equal(cl_verify(sig, CL_SIGN_DOMAIN_HANDSHAKE, msg, sizeof(msg), pk), CARELOG_OK);
}

static void test_sign_refuses_oversized_message(void **state)
{
	(void)state;
	uint8_t pk[CL_SIGN_PUBLIC_BYTES], sk[CL_SIGN_SECRET_BYTES], sig[CL_SIGNATURE_BYTES];
	assert_int_equal(cl_sign_keypair(pk, sk), CARELOG_OK);
	size_t len = CL_SIGN_MESSAGE_BYTES_MAX + 1;
	uint8_t *big = calloc(1, len);
	assert_non_null(big);
	assert_int_equal(cl_sign(sig, CL_SIGN_DOMAIN_ENTRY, big, len, sk), CARELOG_ETOOBIG);
	assert_int_equal(cl_verify(sig, CL_SIGN_DOMAIN_ENTRY, big, len, pk), CARELOG_ETOOBIG);
	free(big);
}

static void test_sha256_matches_known_vector_one_shot_and_incremental(void **state)
{
	(void)state;
	/* FIPS 180-2 test vector "abc". */
	static const char expected[] =
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
	uint8_t digest[CL_SHA256_BYTES];
	char hex[2 * CL_SHA256_BYTES + 1];
	cl_sha256(digest, (const uint8_t *)"abc", 3);
	assert_string_equal(cl_hex_encode(hex, digest, sizeof(digest)), expected);
	struct cl_sha256_ctx ctx;
	cl_sha256_init(&ctx);
	cl_sha256_update(&ctx, (const uint8_t *)"a", 1);
	cl_sha256_update(&ctx, (const uint8_t *)"bc", 2);
	cl_sha256_final(&ctx, digest);
	assert_string_equal(cl_hex_encode(hex, digest, sizeof(digest)), expected);
}

static void test_crc32c_matches_known_vector(void **state)
{
	(void)state;
	/* The CRC-32C check value (RFC 3720 appendix B.4). */
	assert_int_equal(cl_crc32c(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(cl_crc32c(0, "", 0), 0u);
	/* Incremental equals one shot. */
	assert_int_equal(cl_crc32c(cl_crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
}

/* Bit-at-a-time reference: the definition, not an optimisation. */
static uint32_t crc32c_reference(const uint8_t *p, size_t len)
{
	uint32_t crc = 0xFFFFFFFFu;
	for (size_t i = 0; i < len; i++) {
		crc ^= p[i];
		for (int k = 0; k < 8; k++) {
			crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
		}
	}
	return ~crc;
}

static void test_crc32c_matches_bitwise_reference_at_every_offset_and_length(void **state)
{
	(void)state;
	uint8_t buf[300];
	cl_random_bytes(buf, sizeof(buf));
	for (size_t off = 0; off < 9; off++) {
		for (size_t len = 0; len + off <= sizeof(buf); len += 7) {
			assert_int_equal(cl_crc32c(0, buf + off, len), crc32c_reference(buf + off, len));
		}
	}
}

static void test_hex_decode_rejects_bad_digits_and_lengths(void **state)
{
	(void)state;
	uint8_t out[2] = {0xAA, 0xBB};
	assert_int_equal(cl_hex_decode(out, 2, "0g12"), CARELOG_EINVAL);
	assert_int_equal(cl_hex_decode(out, 2, "012"), CARELOG_EINVAL);
	assert_int_equal(cl_hex_decode(out, 2, "01234"), CARELOG_EINVAL);
	assert_int_equal(out[0], 0xAA); /* untouched on failure */
	assert_int_equal(cl_hex_decode(out, 2, "0aFf\n"), CARELOG_OK);
	assert_int_equal(out[0], 0x0A);
	assert_int_equal(out[1], 0xFF);
}

static void make_temp_dir(char *path, size_t len)
{
	snprintf(path, len, "/tmp/carelog-test-common-XXXXXX");
	assert_non_null(mkdtemp(path));
}

static void test_keyfile_generate_then_load_gives_same_public_key(void **state)
{
	(void)state;
	char dir[64], path[128], err[256];
	make_temp_dir(dir, sizeof(dir));
	uint8_t pk[CL_SIGN_PUBLIC_BYTES], pk2[CL_SIGN_PUBLIC_BYTES], pk3[CL_SIGN_PUBLIC_BYTES];
	uint8_t sk[CL_SIGN_SECRET_BYTES];
	assert_int_equal(cl_keyfile_generate(dir, pk), CARELOG_OK);
	snprintf(path, sizeof(path), "%s/node.key", dir);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(cl_keyfile_load_secret(path, sk, pk2, err, sizeof(err)), CARELOG_OK);
	assert_memory_equal(pk, pk2, sizeof(pk));
	snprintf(path, sizeof(path), "%s/node.pub", dir);
	assert_int_equal(cl_keyfile_load_public(path, pk3, err, sizeof(err)), CARELOG_OK);
	assert_memory_equal(pk, pk3, sizeof(pk));
	/* Never overwrites an existing key. */
	assert_int_equal(cl_keyfile_generate(dir, pk2), CARELOG_EEXIST);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static void test_keyfile_refuses_wide_mode_wrong_size_and_missing_file(void **state)
{
	(void)state;
	char dir[64], path[128], err[256];
	make_temp_dir(dir, sizeof(dir));
	uint8_t pk[CL_SIGN_PUBLIC_BYTES], sk[CL_SIGN_SECRET_BYTES];
	assert_int_equal(cl_keyfile_generate(dir, pk), CARELOG_OK);
	snprintf(path, sizeof(path), "%s/node.key", dir);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(cl_keyfile_load_secret(path, sk, pk, err, sizeof(err)), CARELOG_EDENIED);
	assert_non_null(strstr(err, "chmod 600"));

	snprintf(path, sizeof(path), "%s/short.key", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("abcdef\n", f);
	fclose(f);
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(cl_keyfile_load_secret(path, sk, pk, err, sizeof(err)), CARELOG_EINVAL);
	assert_non_null(strstr(err, "wrong size"));
	assert_non_null(strstr(err, path));

	snprintf(path, sizeof(path), "%s/absent.key", dir);
	assert_int_equal(cl_keyfile_load_secret(path, sk, pk, err, sizeof(err)), CARELOG_ENOTFOUND);
	assert_non_null(strstr(err, "absent.key"));
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	if (cl_crypto_init() != CARELOG_OK) {
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_error_code_has_a_name_and_text),
		cmocka_unit_test(test_sign_verify_round_trip_and_tampered_bytes_rejected),
		cmocka_unit_test(test_signature_of_one_domain_never_passes_as_another),
		cmocka_unit_test(test_sign_refuses_oversized_message),
		cmocka_unit_test(test_sha256_matches_known_vector_one_shot_and_incremental),
		cmocka_unit_test(test_crc32c_matches_known_vector),
		cmocka_unit_test(test_crc32c_matches_bitwise_reference_at_every_offset_and_length),
		cmocka_unit_test(test_hex_decode_rejects_bad_digits_and_lengths),
		cmocka_unit_test(test_keyfile_generate_then_load_gives_same_public_key),
		cmocka_unit_test(test_keyfile_refuses_wide_mode_wrong_size_and_missing_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
