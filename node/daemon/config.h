/* carelogd's node-local INI configuration: parsing, defaults, validation. */
#ifndef CARELOG_NODE_DAEMON_CONFIG_H
#define CARELOG_NODE_DAEMON_CONFIG_H

/*
 * The INI file holds node-local settings only (DESIGN.md "Cluster identity"): membership,
 * pinned keys, organisations and the rules entries are judged by live in the log.
 *
 *   [node]
 *   id             = 1                       u64 > 0, required: this node's id in the cluster
 *   cluster_id     = <32 hex digits>         required: must match the data dir and genesis
 *   data_dir       = /var/lib/carelog        required: the LMDB environment (created 0700)
 *   key_file       = /etc/carelog/node.key   required: Ed25519 seed made by carelogctl keygen
 *   genesis_file   = /etc/carelog/genesis.ini  required on first start only (fresh data dir)
 *   log_level      = info                    debug | info | warn | error
 *   actor_default  = operator                id of the actor when a request names none
 *   actor_default_role = operator            role used when a request names none (never
 *                                            "system": that is the node's own role)
 *   unit           =                         this node's unit, stamped into entries it signs
 *                                            and the actor's unit when a request names none
 *
 *   [client]
 *   endpoint          = ipc://<data_dir>/client.sock   ipc:// only (socket made 0600; no remote
 *                                                     clients until application keys exist)
 *   requests_max      = 256                  client requests in flight (nng contexts)
 *   request_bytes_max = 0                    largest request accepted; 0 = derived at start:
 *                                            body_max_bytes (replicated) + 64 KiB, >= 1 MiB
 *   timeout_ms        = 5000                 default wait for commit / min-index
 *   stale_lag_max     = 1000                 a read lagging more entries is marked stale
 *
 *   [storage]
 *   map_size_bytes = 16GiB                   LMDB map size (sparse); raise it when full
 *
 *   [audit]                                  the audit queue (docs/operations.md)
 *   dir              = <data_dir>/audit      its own LMDB environment (created 0700)
 *   map_size_bytes   = 1GiB                  its map size (sparse); full = reads refused
 *   ship_interval_ms = 200                   unshipped rows go into the log this often
 *   queue_rows_max   = 4096                  rows waiting for the audit writer; beyond it
 *                                            requests are refused (CARELOG_EBUSY)
 *
 *   [batch]
 *   entries_max = 1024                       appends per write transaction (group commit)
 *   bytes_max   = 8MiB                       entry bytes per write transaction
 *
 *   [replication]
 *   listen            = <own member address>  nng URL to listen on for peers (e.g. to bind
 *                                              tcp://0.0.0.0:7401)
 *   tick_ms           = 100                  one consensus tick
 *   election_ticks    = 10                   election timeout, randomised in [n, 2n) ticks
 *   heartbeat_ticks   = 1                    leader heartbeat period
 *   message_bytes_max = 16MiB                largest peer message sent or accepted
 *   append_bytes_max  = 4MiB                 entry bytes per append message (catch-up batch)
 *   inflight_msgs_max = 32                   appends in flight per follower
 *
 *   [peers]
 *   <node id> = <url>                        dial that peer here instead of its member address
 *                                            (NAT, relays); at most NODE_CONFIG_PEERS_MAX
 *
 * Sizes accept a suffix: K/KiB/M/MiB/G/GiB/T/TiB (powers of 1024), KB/MB/GB/TB (powers of
 * 1000), B or none (bytes). Unknown sections or keys refuse to start, naming key and line.
 */

#include "common/log.h"

#include <stddef.h>
#include <stdint.h>

enum {
	NODE_CONFIG_PATH_BYTES_MAX = 1024,
	NODE_CONFIG_ENDPOINT_BYTES_MAX = 1024 + 16,
	NODE_CONFIG_NAME_BYTES_MAX = 64, /* actor_default, unit (journal limits) */
	NODE_CONFIG_ROLE_BYTES_MAX = 32, /* actor_default_role (journal limit) */
	NODE_CONFIG_CLUSTER_ID_BYTES = 16,
	NODE_CONFIG_ERR_BYTES = 512,
	NODE_CONFIG_LINE_BYTES_MAX = 4096, /* longest accepted line */
	NODE_CONFIG_REQUESTS_MAX_LIMIT = 65536,
	NODE_CONFIG_BATCH_ENTRIES_LIMIT = 1000000,
	NODE_CONFIG_PEERS_MAX = 64,
	NODE_CONFIG_URL_BYTES_MAX = 255,
};

struct node_config_peer {
	uint64_t id;
	char url[NODE_CONFIG_URL_BYTES_MAX + 1];
};

struct node_config {
	/* [node] */
	uint64_t node_id;
	uint8_t cluster_id[NODE_CONFIG_CLUSTER_ID_BYTES];
	char data_dir[NODE_CONFIG_PATH_BYTES_MAX];
	char key_file[NODE_CONFIG_PATH_BYTES_MAX];
	char genesis_file[NODE_CONFIG_PATH_BYTES_MAX]; /* "" = not given */
	enum cl_log_level log_level;
	char actor_default[NODE_CONFIG_NAME_BYTES_MAX + 1];
	char actor_default_role[NODE_CONFIG_ROLE_BYTES_MAX + 1];
	char unit[NODE_CONFIG_NAME_BYTES_MAX + 1];
	/* [client] */
	char client_endpoint[NODE_CONFIG_ENDPOINT_BYTES_MAX];
	uint32_t client_requests_max;
	uint64_t client_request_bytes_max; /* 0 = derive with node_config_request_bytes_max */
	uint32_t client_timeout_ms;
	uint64_t client_stale_lag_max;
	/* [storage] */
	uint64_t storage_map_size_bytes;
	/* [audit] */
	char audit_dir[NODE_CONFIG_PATH_BYTES_MAX]; /* "" in defaults: <data_dir>/audit at load */
	uint64_t audit_map_size_bytes;
	uint32_t audit_ship_interval_ms;
	uint32_t audit_queue_rows_max;
	/* [batch] */
	uint32_t batch_entries_max;
	uint64_t batch_bytes_max;
	/* [replication] */
	char replication_listen[NODE_CONFIG_URL_BYTES_MAX + 1]; /* "" = own member address */
	uint32_t replication_tick_ms;
	uint32_t replication_election_ticks;
	uint32_t replication_heartbeat_ticks;
	uint64_t replication_message_bytes_max;
	uint64_t replication_append_bytes_max;
	uint32_t replication_inflight_msgs_max;
	/* [peers] */
	uint32_t peers_count;
	struct node_config_peer peers[NODE_CONFIG_PEERS_MAX];
};

/* Fills every default (required keys empty / zero). */
void node_config_defaults(struct node_config *out);

/*
 * Parses the INI file at `path`. On failure returns CARELOG_ECONFIG (or CARELOG_ENOTFOUND if
 * the file cannot be opened) and writes "config FILE line N: key: what is wrong" (or
 * "config FILE: ...") into err; `out` is then untouched.
 */
int node_config_load(const char *path, struct node_config *out, char *err, size_t err_len);

/* The same, from text in memory; `name` stands for the file name in messages. */
int node_config_parse_string(const char *text, const char *name, struct node_config *out, char *err,
                             size_t err_len);

/* Parses "64GiB", "8MiB", "1000" ... into bytes. CARELOG_EINVAL on junk or overflow. */
int node_config_parse_size(const char *text, uint64_t *out_bytes);

/* The client request size limit: the configured value, or body_max_bytes + 64 KiB and at
 * least 1 MiB when not configured. */
uint64_t node_config_request_bytes_max(const struct node_config *c, uint64_t body_max_bytes);

/* The text printed by `carelogd --help` after the usage line: every key and its default. */
extern const char node_config_help[];

#endif
