/* carelogd's INI configuration: inih drives the parse, this file judges every key. */
#include "node/daemon/config.h"

#include "carelog/errors.h"
#include "common/crypto.h"
#include "node/api/proto.h"
#include "node/daemon/audit.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char node_config_help[] =
    "Configuration file (INI). Unknown sections or keys refuse to start.\n"
    "  [node]\n"
    "  id             = N          this node's id (u64 > 0), required\n"
    "  cluster_id     = HEX32      the cluster id (32 hex digits), required\n"
    "  data_dir       = DIR        LMDB data directory, required\n"
    "  key_file       = FILE       node.key made by `carelogctl keygen`, required\n"
    "  genesis_file   = FILE       genesis from `carelogctl cluster init`; first start only\n"
    "  log_level      = info       debug | info | warn | error\n"
    "  actor_default  = system     practitioner id when a request names none\n"
    "  actor_default_role = operator  role when a request names none (not system)\n"
    "  unit           =            unit stamped into entries this node signs\n"
    "  [client]\n"
    "  endpoint          = ipc://<data_dir>/client.sock   ipc:// only (no remote clients yet)\n"
    "  requests_max      = 256     client requests in flight\n"
    "  request_bytes_max = 0       0 = body_max_bytes + 64 KiB, at least 1 MiB\n"
    "  timeout_ms        = 5000    default wait for commit or --min-index\n"
    "  stale_lag_max     = 1000    reads lagging more entries are marked stale\n"
    "  [storage]\n"
    "  map_size_bytes = 16GiB      LMDB map size (sparse file)\n"
    "  [audit]\n"
    "  dir              = <data_dir>/audit  the audit queue's LMDB environment\n"
    "  map_size_bytes   = 1GiB     its map size; when full, requests are refused\n"
    "  ship_interval_ms = 200      unshipped audit rows go into the log this often\n"
    "  queue_rows_max   = 4096     audit rows waiting for their sync; beyond: EBUSY\n"
    "  [batch]\n"
    "  entries_max = 1024          appends per write transaction (group commit)\n"
    "  bytes_max   = 8MiB          entry bytes per write transaction\n"
    "  [replication]\n"
    "  listen            = URL     peer listen URL; default: this node's member address\n"
    "  tick_ms           = 100     one consensus tick\n"
    "  election_ticks    = 10      election timeout in ticks (randomised up to twice)\n"
    "  heartbeat_ticks   = 1       leader heartbeat period in ticks\n"
    "  message_bytes_max = 16MiB   largest peer message sent or accepted\n"
    "  append_bytes_max  = 4MiB    entry bytes per append message (catch-up batch)\n"
    "  inflight_msgs_max = 32      appends in flight per follower\n"
    "  [peers]\n"
    "  ID = URL                    dial node ID at URL instead of its member address\n"
    "Sizes take K/KiB/M/MiB/G/GiB/T/TiB (1024s), KB/MB/GB/TB (1000s) or bytes.\n";

enum {
	CONFIG_REQUESTS_MAX_DEFAULT = 256,
	CONFIG_TIMEOUT_MS_DEFAULT = 5000,
	CONFIG_STALE_LAG_MAX_DEFAULT = 1000,
	CONFIG_BATCH_ENTRIES_MAX_DEFAULT = 1024,
	CONFIG_REQUEST_BYTES_MIN = 1024 * 1024,
	CONFIG_REQUEST_OVERHEAD_BYTES = 64 * 1024,
};

static const uint64_t config_map_size_default = 16ULL << 30;
static const uint64_t config_batch_bytes_default = 8ULL << 20;
static const uint64_t config_audit_map_size_default = 1ULL << 30;

void node_config_defaults(struct node_config *out)
{
	memset(out, 0, sizeof(*out));
	out->log_level = CL_LOG_INFO;
	snprintf(out->actor_default, sizeof(out->actor_default), "%s", "operator");
	snprintf(out->actor_default_role, sizeof(out->actor_default_role), "%s", "operator");
	out->audit_map_size_bytes = config_audit_map_size_default;
	out->audit_ship_interval_ms = NODE_AUDIT_SHIP_INTERVAL_MS_DEFAULT;
	out->audit_queue_rows_max = NODE_AUDIT_QUEUE_ROWS_DEFAULT;
	out->client_requests_max = CONFIG_REQUESTS_MAX_DEFAULT;
	out->client_timeout_ms = CONFIG_TIMEOUT_MS_DEFAULT;
	out->client_stale_lag_max = CONFIG_STALE_LAG_MAX_DEFAULT;
	out->storage_map_size_bytes = config_map_size_default;
	out->replication_tick_ms = 100;
	out->replication_election_ticks = 10;
	out->replication_heartbeat_ticks = 1;
	out->replication_message_bytes_max = 16ULL << 20;
	out->replication_append_bytes_max = 4ULL << 20;
	out->replication_inflight_msgs_max = 32;
	out->batch_entries_max = CONFIG_BATCH_ENTRIES_MAX_DEFAULT;
	out->batch_bytes_max = config_batch_bytes_default;
}

uint64_t node_config_request_bytes_max(const struct node_config *c, uint64_t body_max_bytes)
{
	if (c->client_request_bytes_max != 0) {
		return c->client_request_bytes_max;
	}
	uint64_t derived = body_max_bytes + CONFIG_REQUEST_OVERHEAD_BYTES;
	return derived < CONFIG_REQUEST_BYTES_MIN ? CONFIG_REQUEST_BYTES_MIN : derived;
}

static int parse_u64(const char *text, uint64_t *out)
{
	if (text[0] < '0' || text[0] > '9') {
		return CARELOG_EINVAL; /* strtoull would accept "-1" and " 1" */
	}
	errno = 0;
	char *end = NULL;
	unsigned long long v = strtoull(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0') {
		return CARELOG_EINVAL;
	}
	*out = (uint64_t)v;
	return CARELOG_OK;
}

int node_config_parse_size(const char *text, uint64_t *out_bytes)
{
	static const struct {
		const char *suffix;
		uint64_t factor;
	} suffixes[] = {
	    {"", 1},
	    {"B", 1},
	    {"K", 1ULL << 10},
	    {"KiB", 1ULL << 10},
	    {"M", 1ULL << 20},
	    {"MiB", 1ULL << 20},
	    {"G", 1ULL << 30},
	    {"GiB", 1ULL << 30},
	    {"T", 1ULL << 40},
	    {"TiB", 1ULL << 40},
	    {"KB", 1000ULL},
	    {"MB", 1000ULL * 1000},
	    {"GB", 1000ULL * 1000 * 1000},
	    {"TB", 1000ULL * 1000 * 1000 * 1000},
	};
	if (text[0] < '0' || text[0] > '9') {
		return CARELOG_EINVAL;
	}
	errno = 0;
	char *end = NULL;
	unsigned long long v = strtoull(text, &end, 10);
	if (errno != 0) {
		return CARELOG_EINVAL;
	}
	while (*end == ' ') {
		end++;
	}
	for (size_t i = 0; i < CL_ARRAY_LEN(suffixes); i++) {
		if (strcmp(end, suffixes[i].suffix) == 0) {
			if (v > UINT64_MAX / suffixes[i].factor) {
				return CARELOG_EINVAL;
			}
			*out_bytes = (uint64_t)v * suffixes[i].factor;
			return CARELOG_OK;
		}
	}
	return CARELOG_EINVAL;
}

/* Parse state shared by the line reader and the key handler. */
struct config_parse {
	struct node_config config;
	const char *name;
	/* The source: a FILE or a string. */
	FILE *file;
	const char *text;
	/* Line accounting: inih (as Debian builds it) does not pass line numbers to handlers. */
	int line;
	int line_too_long;
	int line_chars_max; /* what inih's line buffer holds */
	bool seen_id, seen_cluster_id, seen_data_dir, seen_key_file;
	bool failed;
	char err[NODE_CONFIG_ERR_BYTES];
};

static void config_fail(struct config_parse *p, const char *key, const char *fmt, ...)
    CL_PRINTF(3, 4);

static void config_fail(struct config_parse *p, const char *key, const char *fmt, ...)
{
	if (p->failed) {
		return; /* report the first problem only */
	}
	p->failed = true;
	int n = snprintf(p->err, sizeof(p->err), "config %s line %d: %s: ", p->name, p->line, key);
	if (n > 0 && (size_t)n < sizeof(p->err)) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(p->err + n, sizeof(p->err) - (size_t)n, fmt, ap);
		va_end(ap);
	}
}

/* Reads one line into str (inih's buffer of num bytes), counting lines. */
static char *config_read_line(char *str, int num, void *stream)
{
	struct config_parse *p = stream;
	char line[NODE_CONFIG_LINE_BYTES_MAX];
	size_t len = 0;
	if (p->file != NULL) {
		if (fgets(line, sizeof(line), p->file) == NULL) {
			return NULL;
		}
		len = strlen(line);
		if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
			int c;
			while ((c = fgetc(p->file)) != EOF && c != '\n') {
				/* drop the rest: the line is refused below */
			}
			len = (size_t)num; /* force the too-long path */
		}
	} else {
		if (*p->text == '\0') {
			return NULL;
		}
		const char *nl = strchr(p->text, '\n');
		size_t n = nl != NULL ? (size_t)(nl - p->text) + 1 : strlen(p->text);
		len = n < sizeof(line) ? n : sizeof(line) - 1;
		memcpy(line, p->text, len);
		line[len] = '\0';
		p->text += n;
		if (n >= sizeof(line)) {
			len = (size_t)num;
		}
	}
	p->line++;
	CL_ASSERT(num > 2);
	if (len + 1 > (size_t)num) {
		if (p->line_too_long == 0) {
			p->line_too_long = p->line;
			p->line_chars_max = num - 2;
		}
		str[0] = '\n'; /* hand inih an empty line; the error is reported after parsing */
		str[1] = '\0';
		return str;
	}
	memcpy(str, line, len + 1);
	return str;
}

static int set_string(struct config_parse *p, const char *key, const char *value, char *dst,
                      size_t dst_size)
{
	size_t len = strlen(value);
	if (len >= dst_size) {
		char limit[32];
		snprintf(limit, sizeof(limit), "%zu", dst_size - 1);
		config_fail(p, key, "longer than %s bytes", limit);
		return 0;
	}
	memcpy(dst, value, len + 1);
	return 1;
}

static int set_u64(struct config_parse *p, const char *key, const char *value, uint64_t min,
                   uint64_t max, uint64_t *dst)
{
	uint64_t v = 0;
	if (parse_u64(value, &v) != CARELOG_OK) {
		config_fail(p, key, "'%s' is not a whole number", value);
		return 0;
	}
	if (v < min || v > max) {
		char range[80];
		snprintf(range, sizeof(range), "must be in [%llu, %llu]", (unsigned long long)min,
		         (unsigned long long)max);
		config_fail(p, key, "%s", range);
		return 0;
	}
	*dst = v;
	return 1;
}

static int set_u32(struct config_parse *p, const char *key, const char *value, uint32_t min,
                   uint32_t max, uint32_t *dst)
{
	uint64_t v = 0;
	if (!set_u64(p, key, value, min, max, &v)) {
		return 0;
	}
	*dst = (uint32_t)v;
	return 1;
}

static int set_size(struct config_parse *p, const char *key, const char *value, uint64_t min,
                    uint64_t *dst)
{
	uint64_t v = 0;
	if (node_config_parse_size(value, &v) != CARELOG_OK) {
		config_fail(p, key, "'%s' is not a size (examples: 1048576, 64MiB, 16GiB)", value);
		return 0;
	}
	if (v < min) {
		char m[48];
		snprintf(m, sizeof(m), "must be at least %llu bytes", (unsigned long long)min);
		config_fail(p, key, "%s", m);
		return 0;
	}
	*dst = v;
	return 1;
}

static int handle_node(struct config_parse *p, const char *key, const char *value)
{
	struct node_config *c = &p->config;
	if (strcmp(key, "id") == 0) {
		p->seen_id = true;
		return set_u64(p, key, value, 1, UINT64_MAX, &c->node_id);
	}
	if (strcmp(key, "cluster_id") == 0) {
		p->seen_cluster_id = true;
		if (strlen(value) != 2 * NODE_CONFIG_CLUSTER_ID_BYTES ||
		    cl_hex_decode(c->cluster_id, sizeof(c->cluster_id), value) != CARELOG_OK) {
			config_fail(p, key, "'%s' is not 32 hex digits", value);
			return 0;
		}
		return 1;
	}
	if (strcmp(key, "data_dir") == 0) {
		p->seen_data_dir = value[0] != '\0';
		return set_string(p, key, value, c->data_dir, sizeof(c->data_dir));
	}
	if (strcmp(key, "key_file") == 0) {
		p->seen_key_file = value[0] != '\0';
		return set_string(p, key, value, c->key_file, sizeof(c->key_file));
	}
	if (strcmp(key, "genesis_file") == 0) {
		return set_string(p, key, value, c->genesis_file, sizeof(c->genesis_file));
	}
	if (strcmp(key, "log_level") == 0) {
		if (cl_log_level_parse(value, &c->log_level) != CARELOG_OK) {
			config_fail(p, key, "'%s' is not one of debug, info, warn, error", value);
			return 0;
		}
		return 1;
	}
	if (strcmp(key, "actor_default") == 0) {
		if (value[0] == '\0') {
			config_fail(p, key, "%s", "must not be empty");
			return 0;
		}
		return set_string(p, key, value, c->actor_default, sizeof(c->actor_default));
	}
	if (strcmp(key, "actor_default_role") == 0) {
		if (value[0] == '\0') {
			config_fail(p, key, "%s", "must not be empty");
			return 0;
		}
		if (strcmp(value, "system") == 0) {
			/* A request without a role would act as the node itself. */
			config_fail(
			    p, key, "%s",
			    "'system' is the node's own role, never a client's (use operator)");
			return 0;
		}
		return set_string(p, key, value, c->actor_default_role,
		                  sizeof(c->actor_default_role));
	}
	if (strcmp(key, "unit") == 0) {
		return set_string(p, key, value, c->unit, sizeof(c->unit));
	}
	config_fail(p, key, "%s", "unknown key in [node]");
	return 0;
}

static int handle_client(struct config_parse *p, const char *key, const char *value)
{
	struct node_config *c = &p->config;
	if (strcmp(key, "endpoint") == 0) {
		if (strncmp(value, "ipc://", 6) != 0 || value[6] == '\0') {
			/* The node trusts the actor a client names (DESIGN.md "Access"): only its
			 * own applications, behind the socket file's permissions, may name one. A
			 * remote endpoint would let anyone on the network act as anyone. */
			config_fail(p, key,
			            "'%s': only ipc://PATH endpoints are served (the socket file's "
			            "permissions admit the node's own applications; remote clients "
			            "need registered application keys, not supported yet)",
			            value);
			return 0;
		}
		return set_string(p, key, value, c->client_endpoint, sizeof(c->client_endpoint));
	}
	if (strcmp(key, "requests_max") == 0) {
		return set_u32(p, key, value, 1, NODE_CONFIG_REQUESTS_MAX_LIMIT,
		               &c->client_requests_max);
	}
	if (strcmp(key, "request_bytes_max") == 0) {
		if (strcmp(value, "0") == 0) {
			c->client_request_bytes_max = 0;
			return 1;
		}
		if (!set_size(p, key, value, 4096, &c->client_request_bytes_max)) {
			return 0;
		}
		/* The server receives up to the protocol's ceiling and refuses above this limit
		 * with a reply; above the ceiling nng would drop a request without a word. */
		if (c->client_request_bytes_max > PROTO_MESSAGE_BYTES_MAX) {
			config_fail(p, key, "must be at most %llu bytes (the protocol's maximum)",
			            (unsigned long long)PROTO_MESSAGE_BYTES_MAX);
			return 0;
		}
		return 1;
	}
	if (strcmp(key, "timeout_ms") == 0) {
		return set_u32(p, key, value, 1, 3600 * 1000, &c->client_timeout_ms);
	}
	if (strcmp(key, "stale_lag_max") == 0) {
		return set_u64(p, key, value, 0, UINT64_MAX, &c->client_stale_lag_max);
	}
	config_fail(p, key, "%s", "unknown key in [client]");
	return 0;
}

static int handle_audit(struct config_parse *p, const char *key, const char *value)
{
	struct node_config *c = &p->config;
	if (strcmp(key, "dir") == 0) {
		if (value[0] == '\0') {
			config_fail(p, key, "%s",
			            "must not be empty (leave it out for <data_dir>/audit)");
			return 0;
		}
		return set_string(p, key, value, c->audit_dir, sizeof(c->audit_dir));
	}
	if (strcmp(key, "map_size_bytes") == 0) {
		return set_size(p, key, value, 1ULL << 20, &c->audit_map_size_bytes);
	}
	if (strcmp(key, "ship_interval_ms") == 0) {
		return set_u32(p, key, value, 1, 60000, &c->audit_ship_interval_ms);
	}
	if (strcmp(key, "queue_rows_max") == 0) {
		return set_u32(p, key, value, 1, NODE_AUDIT_QUEUE_ROWS_LIMIT,
		               &c->audit_queue_rows_max);
	}
	config_fail(p, key, "%s", "unknown key in [audit]");
	return 0;
}

static int handle_replication(struct config_parse *p, const char *key, const char *value)
{
	struct node_config *c = &p->config;
	if (strcmp(key, "listen") == 0) {
		if (strstr(value, "://") == NULL) {
			config_fail(p, key, "'%s' is not a URL (tcp://HOST:PORT)", value);
			return 0;
		}
		return set_string(p, key, value, c->replication_listen,
		                  sizeof(c->replication_listen));
	}
	if (strcmp(key, "tick_ms") == 0) {
		return set_u32(p, key, value, 1, 10000, &c->replication_tick_ms);
	}
	if (strcmp(key, "election_ticks") == 0) {
		return set_u32(p, key, value, 2, 1000, &c->replication_election_ticks);
	}
	if (strcmp(key, "heartbeat_ticks") == 0) {
		return set_u32(p, key, value, 1, 999, &c->replication_heartbeat_ticks);
	}
	if (strcmp(key, "message_bytes_max") == 0) {
		return set_size(p, key, value, 1ULL << 20, &c->replication_message_bytes_max);
	}
	if (strcmp(key, "append_bytes_max") == 0) {
		return set_size(p, key, value, 4096, &c->replication_append_bytes_max);
	}
	if (strcmp(key, "inflight_msgs_max") == 0) {
		return set_u32(p, key, value, 1, 4096, &c->replication_inflight_msgs_max);
	}
	config_fail(p, key, "%s", "unknown key in [replication]");
	return 0;
}

static int handle_peer(struct config_parse *p, const char *key, const char *value)
{
	struct node_config *c = &p->config;
	uint64_t id = 0;
	if (parse_u64(key, &id) != CARELOG_OK || id == 0) {
		config_fail(p, key, "%s", "a [peers] key is a node id (u64 > 0)");
		return 0;
	}
	if (strstr(value, "://") == NULL) {
		config_fail(p, key, "'%s' is not a URL (tcp://HOST:PORT)", value);
		return 0;
	}
	for (uint32_t i = 0; i < c->peers_count; i++) {
		if (c->peers[i].id == id) {
			config_fail(p, key, "%s", "node listed twice in [peers]");
			return 0;
		}
	}
	if (c->peers_count == NODE_CONFIG_PEERS_MAX) {
		config_fail(p, key, "%s", "too many [peers] entries");
		return 0;
	}
	struct node_config_peer *peer = &c->peers[c->peers_count];
	if (!set_string(p, key, value, peer->url, sizeof(peer->url))) {
		return 0;
	}
	peer->id = id;
	c->peers_count++;
	return 1;
}

static int config_handle(void *user, const char *section, const char *key, const char *value)
{
	struct config_parse *p = user;
	struct node_config *c = &p->config;
	if (strcmp(section, "node") == 0) {
		return handle_node(p, key, value);
	}
	if (strcmp(section, "client") == 0) {
		return handle_client(p, key, value);
	}
	if (strcmp(section, "storage") == 0) {
		if (strcmp(key, "map_size_bytes") == 0) {
			return set_size(p, key, value, 1ULL << 20, &c->storage_map_size_bytes);
		}
		config_fail(p, key, "%s", "unknown key in [storage]");
		return 0;
	}
	if (strcmp(section, "batch") == 0) {
		if (strcmp(key, "entries_max") == 0) {
			return set_u32(p, key, value, 1, NODE_CONFIG_BATCH_ENTRIES_LIMIT,
			               &c->batch_entries_max);
		}
		if (strcmp(key, "bytes_max") == 0) {
			return set_size(p, key, value, 4096, &c->batch_bytes_max);
		}
		config_fail(p, key, "%s", "unknown key in [batch]");
		return 0;
	}
	if (strcmp(section, "replication") == 0) {
		return handle_replication(p, key, value);
	}
	if (strcmp(section, "audit") == 0) {
		return handle_audit(p, key, value);
	}
	if (strcmp(section, "peers") == 0) {
		return handle_peer(p, key, value);
	}
	if (section[0] == '\0') {
		config_fail(p, key, "%s",
		            "key outside any section (expected [node], [client], ...)");
		return 0;
	}
	char what[96];
	snprintf(what, sizeof(what), "unknown section [%.64s]", section);
	config_fail(p, key, "%s", what);
	return 0;
}

static int config_finish(struct config_parse *p, int ini_rc, struct node_config *out, char *err,
                         size_t err_len)
{
	if (p->line_too_long != 0 && !p->failed) {
		p->line = p->line_too_long;
		char what[64];
		snprintf(what, sizeof(what), "longer than %d characters", p->line_chars_max);
		config_fail(p, "line", "%s", what);
	}
	if (!p->failed && ini_rc > 0) {
		p->line = ini_rc;
		config_fail(p, "syntax", "%s", "expected `key = value` or `[section]`");
	}
	if (!p->failed) {
		const char *missing = !p->seen_id           ? "id"
		                      : !p->seen_cluster_id ? "cluster_id"
		                      : !p->seen_data_dir   ? "data_dir"
		                      : !p->seen_key_file   ? "key_file"
		                                            : NULL;
		if (missing != NULL) {
			snprintf(p->err, sizeof(p->err), "config %s: [node] %s is required",
			         p->name, missing);
			p->failed = true;
		}
	}
	if (!p->failed && p->config.replication_heartbeat_ticks >=
	                      p->config.replication_election_ticks) {
		snprintf(p->err, sizeof(p->err),
		         "config %s: [replication] heartbeat_ticks must be below election_ticks",
		         p->name);
		p->failed = true;
	}
	if (p->failed) {
		snprintf(err, err_len, "%s", p->err);
		return CARELOG_ECONFIG;
	}
	if (p->config.client_endpoint[0] == '\0') {
		int n = snprintf(p->config.client_endpoint, sizeof(p->config.client_endpoint),
		                 "ipc://%s/client.sock", p->config.data_dir);
		CL_ASSERT(n > 0 && (size_t)n < sizeof(p->config.client_endpoint));
	}
	if (p->config.audit_dir[0] == '\0') {
		int n = snprintf(p->config.audit_dir, sizeof(p->config.audit_dir), "%s/audit",
		                 p->config.data_dir);
		if (n < 0 || (size_t)n >= sizeof(p->config.audit_dir)) {
			snprintf(err, err_len,
			         "config %s: [node] data_dir is too long for the default [audit] "
			         "dir (set [audit] dir)",
			         p->name);
			return CARELOG_ECONFIG;
		}
	}
	*out = p->config;
	return CARELOG_OK;
}

static int config_parse(struct config_parse *p, struct node_config *out, char *err, size_t err_len)
{
	node_config_defaults(&p->config);
	int rc = ini_parse_stream(config_read_line, p, config_handle, p);
	if (rc < 0) {
		snprintf(err, err_len, "config %s: out of memory while parsing", p->name);
		return CARELOG_ENOMEM;
	}
	return config_finish(p, rc, out, err, err_len);
}

int node_config_parse_string(const char *text, const char *name, struct node_config *out, char *err,
                             size_t err_len)
{
	struct config_parse *p = calloc(1, sizeof(*p));
	if (p == NULL) {
		return CARELOG_ENOMEM;
	}
	p->name = name;
	p->text = text;
	int rc = config_parse(p, out, err, err_len);
	free(p);
	return rc;
}

int node_config_load(const char *path, struct node_config *out, char *err, size_t err_len)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		int e = errno;
		snprintf(err, err_len, "config %s: cannot open: %s", path, strerror(e));
		return e == ENOENT ? CARELOG_ENOTFOUND : CARELOG_ECONFIG;
	}
	struct config_parse *p = calloc(1, sizeof(*p));
	if (p == NULL) {
		fclose(f);
		return CARELOG_ENOMEM;
	}
	p->name = path;
	p->file = f;
	int rc = config_parse(p, out, err, err_len);
	fclose(f);
	free(p);
	return rc;
}
