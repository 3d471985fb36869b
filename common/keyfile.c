/* Reading and writing node identity key files. */
#include "common/keyfile.h"

#include "carelog/errors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { KEY_TEXT_BYTES = 2 * 32 + 1, KEY_FILE_BYTES_MAX = 256 };

static int write_hex_file(const char *path, const uint8_t *bytes, size_t len, mode_t mode)
{
	char text[2 * 64 + 2];
	CL_ASSERT(len <= 64);
	cl_hex_encode(text, bytes, len);
	text[2 * len] = '\n';
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		return errno == EEXIST ? CARELOG_EEXIST : CARELOG_EIO;
	}
	ssize_t n = write(fd, text, 2 * len + 1);
	int rc = (n == (ssize_t)(2 * len + 1) && fsync(fd) == 0) ? CARELOG_OK : CARELOG_EIO;
	close(fd);
	cl_memzero(text, sizeof(text));
	return rc;
}

int cl_keyfile_generate(const char *dir, uint8_t out_public[CL_SIGN_PUBLIC_BYTES])
{
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		return CARELOG_EIO;
	}
	char key_path[4096];
	char pub_path[4096];
	if ((size_t)snprintf(key_path, sizeof(key_path), "%s/node.key", dir) >= sizeof(key_path) ||
	    (size_t)snprintf(pub_path, sizeof(pub_path), "%s/node.pub", dir) >= sizeof(pub_path)) {
		return CARELOG_EINVAL;
	}
	if (access(key_path, F_OK) == 0) {
		return CARELOG_EEXIST;
	}
	uint8_t seed[CL_SIGN_SEED_BYTES];
	uint8_t secret[CL_SIGN_SECRET_BYTES];
	uint8_t public_key[CL_SIGN_PUBLIC_BYTES];
	cl_random_bytes(seed, sizeof(seed));
	int rc = cl_sign_keypair_from_seed(public_key, secret, seed);
	if (rc == CARELOG_OK) {
		rc = write_hex_file(key_path, seed, sizeof(seed), 0600);
	}
	if (rc == CARELOG_OK) {
		unlink(pub_path); /* a stale public key next to a new secret would mislead */
		rc = write_hex_file(pub_path, public_key, sizeof(public_key), 0644);
	}
	cl_memzero(seed, sizeof(seed));
	cl_memzero(secret, sizeof(secret));
	if (rc == CARELOG_OK) {
		memcpy(out_public, public_key, sizeof(public_key));
	}
	return rc;
}

/* Reads a hex key file of exactly `len` bytes into `out`. */
static int read_hex_file(const char *path, bool secret, uint8_t *out, size_t len, char *err,
			 size_t err_len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(err, err_len, "key file %s: %s", path, strerror(e));
		return e == ENOENT ? CARELOG_ENOTFOUND : CARELOG_EIO;
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		close(fd);
		snprintf(err, err_len, "key file %s: cannot stat", path);
		return CARELOG_EIO;
	}
	if (secret && (st.st_mode & 0077) != 0) {
		close(fd);
		snprintf(err, err_len,
			 "key file %s: mode %03o lets others read it; run: chmod 600 %s", path,
			 (unsigned)(st.st_mode & 0777), path);
		return CARELOG_EDENIED;
	}
	char text[KEY_FILE_BYTES_MAX + 1];
	ssize_t n = read(fd, text, KEY_FILE_BYTES_MAX);
	close(fd);
	if (n < 0) {
		snprintf(err, err_len, "key file %s: read failed", path);
		return CARELOG_EIO;
	}
	text[n] = '\0';
	size_t text_len = strcspn(text, "\r\n");
	int rc = CARELOG_OK;
	if (text_len != 2 * len || strspn(text + text_len, "\r\n") != (size_t)n - text_len) {
		snprintf(err, err_len,
			 "key file %s: wrong size: expected %zu hex digits (a %zu-byte key), found %zu "
			 "bytes",
			 path, 2 * len, len, (size_t)n);
		rc = CARELOG_EINVAL;
	} else if (cl_hex_decode(out, len, text) != CARELOG_OK) {
		snprintf(err, err_len, "key file %s: not a hex-encoded key", path);
		rc = CARELOG_EINVAL;
	}
	cl_memzero(text, sizeof(text));
	return rc;
}

int cl_keyfile_load_secret(const char *path, uint8_t out_secret[CL_SIGN_SECRET_BYTES],
			   uint8_t out_public[CL_SIGN_PUBLIC_BYTES], char *err, size_t err_len)
{
	uint8_t seed[CL_SIGN_SEED_BYTES];
	int rc = read_hex_file(path, true, seed, sizeof(seed), err, err_len);
	if (rc == CARELOG_OK) {
		rc = cl_sign_keypair_from_seed(out_public, out_secret, seed);
	}
	cl_memzero(seed, sizeof(seed));
	return rc;
}

int cl_keyfile_load_public(const char *path, uint8_t out_public[CL_SIGN_PUBLIC_BYTES], char *err,
			   size_t err_len)
{
	return read_hex_file(path, false, out_public, CL_SIGN_PUBLIC_BYTES, err, err_len);
}
