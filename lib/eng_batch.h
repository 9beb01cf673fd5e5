/*
 * Set-based work that isolates failures: apply a batch of items with one
 * statement; if that fails (one bad row, a trigger, a constraint), roll the
 * batch back and apply the items one by one, each under its own savepoint,
 * so that one item's failure neither stops nor undoes the others.
 *
 * Runs inside the caller's open transaction. ops->all records its results
 * only when it succeeds (or ops->one overwrites them): after a failed
 * attempt, every item is done again by ops->one.
 */
#ifndef ENG_BATCH_H
#define ENG_BATCH_H

#include <stddef.h>

#include "eng_db.h"
#include "eng_err.h"

struct eng_batch_ops {
	enum eng_status (*all)(void *ctx, struct eng_db *db, struct eng_err *err);
	enum eng_status (*one)(void *ctx, struct eng_db *db, size_t i,
			       struct eng_err *err);
	/* Told of each item that failed on its own (may be NULL). */
	void (*failed)(void *ctx, size_t i, const struct eng_err *err);
};

/* ENG_OK when the batch is done (some items may have failed: *nfailed);
 * an error only when the whole run must stop (connection lost). */
enum eng_status eng_batch_apply(struct eng_db *db, size_t n,
				const struct eng_batch_ops *ops, void *ctx,
				size_t *nfailed, struct eng_err *err);

#endif
