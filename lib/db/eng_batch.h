/*
 * Set-based work that isolates failures: apply a batch of items with one
 * statement; if that fails (one bad row, a trigger, a constraint), roll it
 * back and apply each half under its own savepoint, recursing down to the
 * single items that fail. k bad items among n cost O(k log n) statements,
 * and one item's failure neither stops nor undoes the others.
 *
 * Runs inside the caller's open transaction. ops->range must record its
 * results only when it succeeds: a failed range is done again in halves.
 */
#ifndef ENG_BATCH_H
#define ENG_BATCH_H

#include <stddef.h>

#include "eng_db.h"
#include "eng_err.h"

struct eng_batch_ops {
	/* Apply items [off, off + n). */
	enum eng_status (*range)(void *ctx, struct eng_db *db, size_t off,
				 size_t n, struct eng_err *err);
	/* Told of each item that failed on its own (may be NULL). */
	void (*failed)(void *ctx, size_t i, const struct eng_err *err);
};

/* ENG_OK when the batch is done (some items may have failed: *nfailed);
 * an error only when the whole run must stop (connection lost). */
enum eng_status eng_batch_apply(struct eng_db *db, size_t n,
				const struct eng_batch_ops *ops, void *ctx,
				size_t *nfailed, struct eng_err *err);

#endif
