/* The table behind carelog_strerror and carelog_errname. */
#include "carelog/errors.h"

#include <stddef.h>

struct error_row {
	const char *name;
	const char *text;
};

static const struct error_row error_table[CARELOG_ERROR_COUNT_] = {
	[CARELOG_OK] = {"OK", "success"},
	[CARELOG_ENOMEM] = {"ENOMEM", "out of memory"},
	[CARELOG_EINVAL] = {"EINVAL", "invalid argument"},
	[CARELOG_ECORRUPT] = {"ECORRUPT", "data failed its checksum or hash (corrupt)"},
	[CARELOG_ENOTFOUND] = {"ENOTFOUND", "not found"},
	[CARELOG_EIO] = {"EIO", "input/output error"},
	[CARELOG_EMAPFULL] = {"EMAPFULL",
			      "storage map is full: raise map_size_bytes in the node config and restart"},
	[CARELOG_ETOOBIG] = {"ETOOBIG", "value exceeds its limit"},
	[CARELOG_EPROTO] = {"EPROTO", "malformed message or record"},
	[CARELOG_EVERSION] = {"EVERSION", "unsupported format or protocol version"},
	[CARELOG_EBADSIG] = {"EBADSIG", "signature verification failed"},
	[CARELOG_ETIMEDOUT] = {"ETIMEDOUT", "timed out"},
	[CARELOG_EPENDING] = {"EPENDING", "outcome pending: retry with the same request id"},
	[CARELOG_ECLOSED] = {"ECLOSED", "closed or stopping"},
	[CARELOG_ECONFIG] = {"ECONFIG", "bad configuration"},
	[CARELOG_ENOTLEADER] = {"ENOTLEADER", "this node is not the leader"},
	[CARELOG_EEXIST] = {"EEXIST", "already exists"},
	[CARELOG_ECRYPTO] = {"ECRYPTO", "cryptographic library failure"},
	[CARELOG_EBUSY] = {"EBUSY", "busy: a bounded queue is full, retry later"},
	[CARELOG_EMISMATCH] = {"EMISMATCH", "identity mismatch (cluster id, node id or key)"},
	[CARELOG_ECONNECT] = {"ECONNECT", "cannot reach the endpoint"},
	[CARELOG_ECOMPACTED] = {"ECOMPACTED", "requested log range is no longer available"},
	[CARELOG_EDENIED] = {"EDENIED", "not allowed"},
	[CARELOG_ESTALE] = {"ESTALE", "local replica is too far behind"},
	[CARELOG_EUNKNOWN] = {"EUNKNOWN", "unknown kind or format value"},
};

const char *carelog_strerror(int error)
{
	if (error < 0 || error >= CARELOG_ERROR_COUNT_ || error_table[error].text == NULL) {
		return "unknown error code";
	}
	return error_table[error].text;
}

const char *carelog_errname(int error)
{
	if (error < 0 || error >= CARELOG_ERROR_COUNT_ || error_table[error].name == NULL) {
		return "EUNKNOWNCODE";
	}
	return error_table[error].name;
}
