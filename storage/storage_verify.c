/* storage_verify: walks every record of every database checking shape and checksum. */
#include "storage/storage_internal.h"

#include "carelog/errors.h"
#include "common/assert.h"
#include "common/bytes.h"
#include "common/log.h"

#include <stdio.h>

struct storage_verify_run {
	storage_corrupt_fn report;
	void *arg;
	uint64_t checked;
	uint64_t corrupt;
	uint64_t log_expected; /* next log index a contiguous log must hold */
};

static void storage_verify_report(struct storage_verify_run *run, enum storage_db db,
				  const char *key_text, const char *reason)
{
	run->corrupt++;
	cl_log_error("storage.corrupt", "db=%s key=%s reason=%s", storage_db_name(db), key_text,
		     reason);
	if (run->report != NULL) {
		run->report(run->arg, storage_db_name(db), key_text);
	}
}

static void storage_verify_record(struct storage_verify_run *run, enum storage_db db,
				  const MDB_val *k, const MDB_val *v)
{
	run->checked++;
	const char *problem = storage_record_problem(db, k, v);
	if (problem != NULL) {
		char text[STORAGE_KEY_TEXT_BYTES];
		storage_key_text(db, k, text, sizeof(text));
		storage_verify_report(run, db, text, problem);
	}
	if (db != STORAGE_DB_LOG || k->mv_size != STORAGE_INDEX_BYTES) {
		return;
	}
	/* The log starts at 1 and has no holes: a missing range is reported as "a-b". */
	uint64_t index = cl_get_u64be(k->mv_data);
	if (index > run->log_expected) {
		char text[STORAGE_KEY_TEXT_BYTES];
		if (index - 1 == run->log_expected) {
			snprintf(text, sizeof(text), "%llu", (unsigned long long)run->log_expected);
		} else {
			snprintf(text, sizeof(text), "%llu-%llu",
				 (unsigned long long)run->log_expected,
				 (unsigned long long)(index - 1));
		}
		storage_verify_report(run, db, text, "missing");
	}
	run->log_expected = index + 1;
}

/* Walks one database. A B-tree LMDB itself finds broken is reported once, as key "btree",
 * and the walk moves on to the next database. Bounded by the records stored. */
static void storage_verify_db(struct storage_verify_run *run, struct storage_txn *t,
			      enum storage_db db)
{
	MDB_cursor *cursor;
	if (storage_cursor_open(t, db, &cursor) != CARELOG_OK) {
		storage_verify_report(run, db, "btree", "cursor_open");
		return;
	}
	MDB_val k, v;
	int rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST);
	while (rc == 0) {
		storage_verify_record(run, db, &k, &v);
		rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cursor);
	if (rc != MDB_NOTFOUND) {
		(void)storage_error(t->storage, rc, "verify");
		storage_verify_report(run, db, "btree", "lmdb");
	}
}

int storage_verify(struct storage *s, storage_corrupt_fn report, void *arg,
		   uint64_t *out_checked_count, uint64_t *out_corrupt_count)
{
	CL_ASSERT(s != NULL);
	CL_ASSERT(out_checked_count != NULL && out_corrupt_count != NULL);
	struct storage_txn *t;
	int rc = storage_txn_begin_read(s, &t);
	if (rc != CARELOG_OK) {
		return rc;
	}
	struct storage_verify_run run = {.report = report, .arg = arg, .log_expected = 1};
	for (int db = 0; db < STORAGE_DB_COUNT; db++) {
		storage_verify_db(&run, t, (enum storage_db)db);
	}
	storage_txn_abort(t);
	cl_log_info("storage.verified", "checked=%llu corrupt=%llu",
		    (unsigned long long)run.checked, (unsigned long long)run.corrupt);
	*out_checked_count = run.checked;
	*out_corrupt_count = run.corrupt;
	return CARELOG_OK;
}
