/* Test-only: sends the raw bytes of a file as one nng req0 request and prints the reply in hex. */

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	RAWREQ_REQUEST_BYTES_MAX = 256 * 1024 * 1024, /* large enough for oversize tests */
	RAWREQ_TIMEOUT_MS = 10000,
};

static int rawreq_fail(const char *what, const char *detail)
{
	fprintf(stderr, "rawreq: %s: %s\n", what, detail);
	return 1;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: rawreq ENDPOINT FILE\n"
				"Sends FILE's bytes as one request; prints the reply bytes as hex.\n"
				"Exit 0 on a reply, 1 if none came (error on stderr).\n");
		return 2;
	}
	FILE *f = fopen(argv[2], "rb");
	if (f == NULL) {
		return rawreq_fail(argv[2], strerror(errno));
	}
	unsigned char *bytes = malloc(RAWREQ_REQUEST_BYTES_MAX);
	if (bytes == NULL) {
		(void)fclose(f);
		return rawreq_fail("request", "out of memory");
	}
	size_t len = fread(bytes, 1, RAWREQ_REQUEST_BYTES_MAX, f);
	(void)fclose(f);

	nng_socket sock;
	int rv = nng_req0_open(&sock);
	if (rv != 0) {
		free(bytes);
		return rawreq_fail("nng_req0_open", nng_strerror(rv));
	}
	(void)nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, RAWREQ_TIMEOUT_MS);
	(void)nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, RAWREQ_TIMEOUT_MS);
	(void)nng_socket_set_size(sock, NNG_OPT_RECVMAXSZ, 0);
	/* Non-blocking dial: the send below waits for the connection, bounded by SENDTIMEO. */
	rv = nng_dial(sock, argv[1], NULL, NNG_FLAG_NONBLOCK);
	if (rv == 0) {
		rv = nng_send(sock, bytes, len, 0);
	}
	free(bytes);
	if (rv != 0) {
		(void)nng_close(sock);
		return rawreq_fail("send", nng_strerror(rv));
	}
	char *reply = NULL;
	size_t reply_len = 0;
	rv = nng_recv(sock, &reply, &reply_len, NNG_FLAG_ALLOC);
	if (rv != 0) {
		(void)nng_close(sock);
		return rawreq_fail("recv", nng_strerror(rv));
	}
	for (size_t i = 0; i < reply_len; i++) {
		printf("%02x", (unsigned char)reply[i]);
	}
	printf("\n");
	nng_free(reply, reply_len);
	(void)nng_close(sock);
	return 0;
}
