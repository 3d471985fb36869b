/* The simulated network: a min-heap of packets in flight, and per-link cut and clog state. */
#include "sim_net.h"

#include <stdlib.h>
#include <string.h>

#include "common/assert.h"

/* How long a clogged link holds a packet before the packet is considered again. */
enum { SIM_NET_CLOG_RETRY_TICKS_MAX = 4 };

void sim_net_init(struct sim_net *n, uint64_t seed, const struct sim_net_options *opt)
{
	memset(n, 0, sizeof(*n));
	n->opt = *opt;
	CL_ASSERT(opt->delay_min_ticks <= opt->delay_max_ticks);
	sim_prng_seed(&n->prng, seed);
	n->heap = calloc(SIM_NET_PACKETS_MAX, sizeof(*n->heap));
	CL_ASSERT(n->heap != NULL);
}

void sim_packet_free(struct sim_packet *p)
{
	if (p->entries != NULL) {
		for (uint32_t i = 0; i < p->msg.entries_count; i++) {
			free((void *)(uintptr_t)p->entries[i].data);
		}
		free(p->entries);
	}
	p->entries = NULL;
	p->msg.entries = NULL;
	p->msg.entries_count = 0;
}

void sim_net_free(struct sim_net *n)
{
	if (n == NULL || n->heap == NULL) {
		return;
	}
	for (uint32_t i = 0; i < n->count; i++) {
		sim_packet_free(&n->heap[i]);
	}
	free(n->heap);
	n->heap = NULL;
	n->count = 0;
}

static bool sim_packet_before(const struct sim_packet *a, const struct sim_packet *b)
{
	if (a->deliver_tick != b->deliver_tick) {
		return a->deliver_tick < b->deliver_tick;
	}
	return a->order < b->order;
}

static void sim_heap_swap(struct sim_packet *a, struct sim_packet *b)
{
	struct sim_packet t = *a;
	*a = *b;
	*b = t;
}

static void sim_heap_push(struct sim_net *n, const struct sim_packet *p)
{
	CL_ASSERT(n->count < SIM_NET_PACKETS_MAX);
	uint32_t i = n->count++;
	n->heap[i] = *p;
	while (i > 0) {
		uint32_t parent = (i - 1) / 2;
		if (!sim_packet_before(&n->heap[i], &n->heap[parent])) {
			break;
		}
		sim_heap_swap(&n->heap[i], &n->heap[parent]);
		i = parent;
	}
}

static void sim_heap_pop(struct sim_net *n, struct sim_packet *out)
{
	CL_ASSERT(n->count > 0);
	*out = n->heap[0];
	n->heap[0] = n->heap[--n->count];
	uint32_t i = 0;
	for (;;) {
		uint32_t l = 2 * i + 1;
		uint32_t r = l + 1;
		uint32_t m = i;
		if (l < n->count && sim_packet_before(&n->heap[l], &n->heap[m])) {
			m = l;
		}
		if (r < n->count && sim_packet_before(&n->heap[r], &n->heap[m])) {
			m = r;
		}
		if (m == i) {
			break;
		}
		sim_heap_swap(&n->heap[i], &n->heap[m]);
		i = m;
	}
}

static void sim_packet_copy(struct sim_packet *p, const struct consensus_message *m)
{
	p->msg = *m;
	p->entries = NULL;
	p->msg.entries = NULL;
	if (m->entries_count == 0) {
		return;
	}
	p->entries = calloc(m->entries_count, sizeof(*p->entries));
	CL_ASSERT(p->entries != NULL);
	for (uint32_t i = 0; i < m->entries_count; i++) {
		p->entries[i] = m->entries[i];
		p->entries[i].data = NULL;
		if (m->entries[i].data_len != 0) {
			uint8_t *d = malloc(m->entries[i].data_len);
			CL_ASSERT(d != NULL);
			memcpy(d, m->entries[i].data, m->entries[i].data_len);
			p->entries[i].data = d;
		}
	}
	p->msg.entries = p->entries;
}

static uint64_t sim_net_delay(struct sim_net *n)
{
	if (n->opt.spike_ppm != 0 && sim_prng_chance_ppm(&n->prng, n->opt.spike_ppm)) {
		return sim_prng_range(&n->prng, n->opt.delay_max_ticks,
		                      n->opt.delay_max_ticks + n->opt.spike_max_ticks);
	}
	return sim_prng_range(&n->prng, n->opt.delay_min_ticks, n->opt.delay_max_ticks);
}

bool sim_net_send(struct sim_net *n, uint64_t now, const struct consensus_message *m,
                  enum sim_drop_reason *out_reason)
{
	n->sent++;
	if (n->opt.loss_ppm != 0 && sim_prng_chance_ppm(&n->prng, n->opt.loss_ppm)) {
		n->dropped++;
		*out_reason = SIM_DROP_LOSS;
		return false;
	}
	unsigned copies = 1;
	if (n->opt.dup_ppm != 0 && sim_prng_chance_ppm(&n->prng, n->opt.dup_ppm)) {
		copies = 2;
		n->duplicated++;
	}
	for (unsigned i = 0; i < copies; i++) {
		if (n->count >= SIM_NET_PACKETS_MAX) {
			n->dropped++;
			*out_reason = SIM_DROP_FULL;
			return i > 0;
		}
		struct sim_packet p;
		sim_packet_copy(&p, m);
		p.deliver_tick = now + sim_net_delay(n);
		p.order = n->opt.fifo ? ++n->seq : sim_prng_next(&n->prng);
		sim_heap_push(n, &p);
	}
	return true;
}

bool sim_net_pop(struct sim_net *n, uint64_t now, struct sim_packet *out, bool *out_dropped)
{
	/* Bounded: each held-back packet moves to a later tick, so at most `count` iterations. */
	for (uint32_t budget = n->count; budget > 0; budget--) {
		if (n->count == 0 || n->heap[0].deliver_tick > now) {
			return false;
		}
		struct sim_packet p;
		sim_heap_pop(n, &p);
		consensus_node_id from = p.msg.from;
		consensus_node_id to = p.msg.to;
		bool known = from < SIM_NET_NODES_MAX && to < SIM_NET_NODES_MAX;
		if (known && n->clog[from][to]) {
			p.deliver_tick =
			    now + sim_prng_range(&n->prng, 1, SIM_NET_CLOG_RETRY_TICKS_MAX);
			p.order = sim_prng_next(&n->prng);
			sim_heap_push(n, &p);
			continue;
		}
		*out = p;
		*out_dropped = known && n->cut[from][to];
		if (*out_dropped) {
			n->dropped++;
		} else {
			n->delivered++;
		}
		return true;
	}
	return false;
}

void sim_net_set_cut(struct sim_net *n, consensus_node_id from, consensus_node_id to, bool cut)
{
	CL_ASSERT(from < SIM_NET_NODES_MAX && to < SIM_NET_NODES_MAX);
	n->cut[from][to] = cut;
}

void sim_net_set_clog(struct sim_net *n, consensus_node_id from, consensus_node_id to, bool clog)
{
	CL_ASSERT(from < SIM_NET_NODES_MAX && to < SIM_NET_NODES_MAX);
	n->clog[from][to] = clog;
}

void sim_net_heal(struct sim_net *n)
{
	memset(n->cut, 0, sizeof(n->cut));
	memset(n->clog, 0, sizeof(n->clog));
}

bool sim_net_any_fault(const struct sim_net *n)
{
	for (unsigned i = 0; i < SIM_NET_NODES_MAX; i++) {
		for (unsigned j = 0; j < SIM_NET_NODES_MAX; j++) {
			if (n->cut[i][j] || n->clog[i][j]) {
				return true;
			}
		}
	}
	return false;
}

void sim_net_forget_node(struct sim_net *n, consensus_node_id id)
{
	uint32_t kept = 0;
	struct sim_packet *all = n->heap;
	uint32_t total = n->count;
	/* Rebuild the heap without the node's packets; order is restored by re-pushing. */
	struct sim_packet *keep = calloc(total == 0 ? 1 : total, sizeof(*keep));
	CL_ASSERT(keep != NULL);
	for (uint32_t i = 0; i < total; i++) {
		if (all[i].msg.from == id || all[i].msg.to == id) {
			sim_packet_free(&all[i]);
		} else {
			keep[kept++] = all[i];
		}
	}
	n->count = 0;
	for (uint32_t i = 0; i < kept; i++) {
		sim_heap_push(n, &keep[i]);
	}
	free(keep);
}
