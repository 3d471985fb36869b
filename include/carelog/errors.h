/* carelog error codes: one numbered table shared by the node, the tools and libcarelog. */
#ifndef CARELOG_ERRORS_H
#define CARELOG_ERRORS_H

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define CARELOG_API __attribute__((visibility("default")))
#else
#define CARELOG_API
#endif

/*
 * Every function in carelog that can fail returns one of these. The numbers are part of the
 * public interface (they travel in client replies): never renumber, only append.
 */
enum carelog_error {
	CARELOG_OK = 0,
	CARELOG_ENOMEM = 1,       /* out of memory */
	CARELOG_EINVAL = 2,       /* invalid argument */
	CARELOG_ECORRUPT = 3,     /* stored or received data failed its checksum or hash */
	CARELOG_ENOTFOUND = 4,    /* no such entry, key or file */
	CARELOG_EIO = 5,          /* input/output error */
	CARELOG_EMAPFULL = 6,     /* storage map full: raise map_size_bytes */
	CARELOG_ETOOBIG = 7,      /* a value exceeds its limit */
	CARELOG_EPROTO = 8,       /* malformed message or record */
	CARELOG_EVERSION = 9,     /* unsupported format or protocol version */
	CARELOG_EBADSIG = 10,     /* signature verification failed */
	CARELOG_ETIMEDOUT = 11,   /* timed out */
	CARELOG_EPENDING = 12,    /* outcome pending: retry with the same request id */
	CARELOG_ECLOSED = 13,     /* closed or stopping */
	CARELOG_ECONFIG = 14,     /* bad configuration */
	CARELOG_ENOTLEADER = 15,  /* this node is not the leader */
	CARELOG_EEXIST = 16,      /* already exists */
	CARELOG_ECRYPTO = 17,     /* cryptographic library failure */
	CARELOG_EBUSY = 18,       /* a bounded queue or window is full: retry later */
	CARELOG_EMISMATCH = 19,   /* identity mismatch (cluster id, node id, key) */
	CARELOG_ECONNECT = 20,    /* cannot reach the endpoint */
	CARELOG_ECOMPACTED = 21,  /* requested log range no longer available */
	CARELOG_EDENIED = 22,     /* not allowed */
	CARELOG_ESTALE = 23,      /* local replica too far behind */
	CARELOG_EUNKNOWN = 24,    /* unknown kind or format value */
	CARELOG_ERROR_COUNT_ = 25 /* not an error: one past the last code */
};

/* A short English description of `error`; never NULL, static storage. */
CARELOG_API const char *carelog_strerror(int error);

/* The stable symbolic name ("ECORRUPT") of `error`, for logs and JSON; never NULL. */
CARELOG_API const char *carelog_errname(int error);

#ifdef __cplusplus
}
#endif
#endif
