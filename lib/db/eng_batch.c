#include "eng_batch.h"

#include "eng_log.h"

static enum eng_status sp(struct eng_db *db, const char *sql,
			  struct eng_err *err)
{
	return eng_db_exec(db, sql, 0, NULL, err);
}

/* Apply [off, off + n) under a savepoint; on failure, split. */
static enum eng_status attempt(struct eng_db *db, size_t off, size_t n,
			       const struct eng_batch_ops *ops, void *ctx,
			       size_t *nfailed, struct eng_err *err)
{
	struct eng_err e = ENG_ERR_INIT;
	if (sp(db, "SAVEPOINT eng_batch", err))
		return err->status;
	if (ops->range(ctx, db, off, n, &e) == ENG_OK)
		return sp(db, "RELEASE SAVEPOINT eng_batch", err);
	if (!eng_db_alive(db))
		return eng_err_set(err, ENG_ETEMP, "lost the database connection: %s",
				   e.msg);
	if (sp(db, "ROLLBACK TO SAVEPOINT eng_batch", err) ||
	    sp(db, "RELEASE SAVEPOINT eng_batch", err))
		return err->status;
	if (n == 1) {
		(*nfailed)++;
		if (ops->failed)
			ops->failed(ctx, off, &e);
		return ENG_OK;
	}
	eng_log(ENG_DEBUG, "batch_split", ENG_I("offset", off), ENG_I("items", n),
		ENG_S("error", e.msg));
	size_t half = n / 2;
	enum eng_status st = attempt(db, off, half, ops, ctx, nfailed, err);
	if (st == ENG_OK)
		st = attempt(db, off + half, n - half, ops, ctx, nfailed, err);
	return st;
}

enum eng_status eng_batch_apply(struct eng_db *db, size_t n,
				const struct eng_batch_ops *ops, void *ctx,
				size_t *nfailed, struct eng_err *err)
{
	*nfailed = 0;
	if (n == 0)
		return ENG_OK;
	return attempt(db, 0, n, ops, ctx, nfailed, err);
}
