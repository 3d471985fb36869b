/* The outbox: messages for the next ready batch, early (before persistence) or after it. */
#include "consensus/internal.h"

#include <string.h>

/*
 * Raft thesis 10.2.1: the leader may send its appends to followers before its own disk write
 * finishes, as long as the term they carry is already durable. Everything else (votes, acks,
 * heartbeats, answers) waits until the ready batch's hard state and entries are durable.
 */
bool cs_message_is_early(const struct consensus *c, const struct consensus_message *m)
{
	if (m->type != CONSENSUS_MSG_APPEND) {
		return false;
	}
	CL_ASSERT(c->role == CONSENSUS_ROLE_LEADER); /* only leaders send appends */
	return c->prev_hard_state.term == c->term;
}

static void owned_free(struct consensus *c, struct consensus_entry *owned, uint32_t used,
                       uint32_t capacity)
{
	if (owned != NULL) {
		cs_entries_free(c, owned, used);
		cs_free(c, owned, capacity * sizeof(*owned));
	}
}

/* Queues a copy of `m` from this node; `owned` (an array of `owned_capacity` slots holding
 * m->entries_count owned entries, or NULL) passes to the outbox. A full outbox drops the
 * message as a lossy network would; Raft retransmits. */
void cs_send(struct consensus *c, struct consensus_message *m, struct consensus_entry *owned,
             uint32_t owned_capacity)
{
	m->from = c->id;
	m->entries = owned;
	CL_ASSERT(m->to != 0 && m->to != c->id);
	CL_ASSERT(m->entries_count <= owned_capacity);
	bool early = cs_message_is_early(c, m);
	struct consensus_message *box = early ? c->msgs_early : c->msgs;
	struct cs_owned_entries *ents = early ? c->msgs_early_entries : c->msg_entries;
	uint32_t *count = early ? &c->msgs_early_count : &c->msgs_count;
	if (*count >= c->messages_max) {
		owned_free(c, owned, m->entries_count, owned_capacity);
		c->msgs_dropped++;
		return;
	}
	box[*count] = *m;
	ents[*count].entries = owned;
	ents[*count].capacity = owned_capacity;
	(*count)++;
}

static void release_box(struct consensus *c, struct consensus_message *box,
                        struct cs_owned_entries *ents, uint32_t *count, uint32_t *handed_out)
{
	CL_ASSERT(*handed_out <= *count);
	for (uint32_t i = 0; i < *handed_out; i++) {
		owned_free(c, ents[i].entries, box[i].entries_count, ents[i].capacity);
	}
	uint32_t rest = *count - *handed_out;
	memmove(box, box + *handed_out, rest * sizeof(*box));
	memmove(ents, ents + *handed_out, rest * sizeof(*ents));
	*count = rest;
	*handed_out = 0;
}

/* Frees the messages handed out in the last ready batch, keeping any queued since. */
void cs_messages_release(struct consensus *c)
{
	release_box(c, c->msgs, c->msg_entries, &c->msgs_count, &c->msgs_handed_out);
	release_box(c, c->msgs_early, c->msgs_early_entries, &c->msgs_early_count,
	            &c->msgs_early_handed_out);
}

/*
 * Entries from `index` on are being replaced before they were persisted. A queued (not yet
 * handed out) acknowledgement that covers them would claim entries this node will never hold,
 * and its leader could count it toward a commit: drop it (the leader retransmits). Acks already
 * handed out were sent after their entries were durable and stay true for their term.
 */
static bool stale_ack(const struct consensus_message *m, uint64_t index)
{
	return m->type == CONSENSUS_MSG_APPEND_RESP && !m->reject && m->index >= index;
}

static bool unpersisted_vote(const struct consensus_message *m, uint64_t term)
{
	return m->type == CONSENSUS_MSG_VOTE_RESP && !m->reject && m->term < term;
}

/* Removes queued (not handed out) messages the predicate picks. */
static void outbox_drop(struct consensus *c,
                        bool (*pick)(const struct consensus_message *m, uint64_t arg), uint64_t arg)
{
	CL_ASSERT(c->msgs_handed_out == 0);
	uint32_t kept = 0;
	for (uint32_t i = 0; i < c->msgs_count; i++) {
		const struct consensus_message *m = &c->msgs[i];
		if (pick(m, arg)) {
			CL_ASSERT(c->msg_entries[i].entries == NULL);
			continue;
		}
		c->msgs[kept] = c->msgs[i];
		c->msg_entries[kept] = c->msg_entries[i];
		kept++;
	}
	c->msgs_count = kept;
}

void cs_outbox_drop_acks_from(struct consensus *c, uint64_t index)
{
	outbox_drop(c, stale_ack, index);
}

/*
 * The term moves on before a granted vote was persisted: the vote will never be durable (the
 * next hard state carries the new term and no vote), so its answer must not leave (Raft paper
 * Figure 2: persist votedFor before responding). Dropping it is safe: the candidate times out.
 */
void cs_outbox_drop_votes_before(struct consensus *c, uint64_t term)
{
	outbox_drop(c, unpersisted_vote, term);
}
