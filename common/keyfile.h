/* Node identity key files: DIR/node.key (secret seed, hex, mode 0600) and DIR/node.pub. */
#ifndef CARELOG_COMMON_KEYFILE_H
#define CARELOG_COMMON_KEYFILE_H

#include "common/crypto.h"

#include <stdbool.h>
#include <stddef.h>

/*
 * node.key holds the 32-byte Ed25519 seed as 64 lower-case hex digits and a newline; it is
 * created with mode 0600 and refused at load if group or others may read or write it.
 * node.pub holds the 32-byte public key the same way. See docs/operations.md.
 */

/* Creates DIR (0700 if missing) and writes a fresh key pair; CARELOG_EEXIST if DIR/node.key
 * exists (never overwrites a key). */
int cl_keyfile_generate(const char *dir, uint8_t out_public[CL_SIGN_PUBLIC_BYTES]);

/* Loads a secret key file. On failure returns CARELOG_ENOTFOUND (missing), CARELOG_EDENIED
 * (mode wider than 0600), CARELOG_EINVAL (wrong size or not hex) or CARELOG_EIO, and writes a
 * message naming the file and the problem into err. The secret is never printed. */
int cl_keyfile_load_secret(const char *path, uint8_t out_secret[CL_SIGN_SECRET_BYTES],
			   uint8_t out_public[CL_SIGN_PUBLIC_BYTES], char *err, size_t err_len);

/* Loads a public key file (same errors, no mode check). */
int cl_keyfile_load_public(const char *path, uint8_t out_public[CL_SIGN_PUBLIC_BYTES], char *err,
			   size_t err_len);

#endif
