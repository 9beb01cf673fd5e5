#include "eng_batch.h"

#include "eng_log.h"

static enum eng_status sp(struct eng_db *db, const char *sql,
			  struct eng_err *err)
{
	return eng_db_exec(db, sql, 0, NULL, err);
}

enum eng_status eng_batch_apply(struct eng_db *db, size_t n,
				const struct eng_batch_ops *ops, void *ctx,
				size_t *nfailed, struct eng_err *err)
{
	struct eng_err e = ENG_ERR_INIT;
	*nfailed = 0;
	if (n == 0)
		return ENG_OK;
	if (sp(db, "SAVEPOINT eng_batch", err))
		return err->status;
	if (ops->all(ctx, db, &e) == ENG_OK)
		return sp(db, "RELEASE SAVEPOINT eng_batch", err);
	if (!eng_db_alive(db))
		return eng_err_set(err, ENG_ETEMP, "lost the database connection: %s",
				   e.msg);
	eng_log(ENG_DEBUG, "batch_retried_row_by_row", ENG_I("items", n),
		ENG_S("error", e.msg));
	if (sp(db, "ROLLBACK TO SAVEPOINT eng_batch", err))
		return err->status;

	for (size_t i = 0; i < n; i++) {
		if (sp(db, "SAVEPOINT eng_item", err))
			return err->status;
		eng_err_clear(&e);
		if (ops->one(ctx, db, i, &e) == ENG_OK) {
			if (sp(db, "RELEASE SAVEPOINT eng_item", err))
				return err->status;
			continue;
		}
		if (!eng_db_alive(db))
			return eng_err_set(err, ENG_ETEMP,
					   "lost the database connection: %s", e.msg);
		if (sp(db, "ROLLBACK TO SAVEPOINT eng_item", err) ||
		    sp(db, "RELEASE SAVEPOINT eng_item", err))
			return err->status;
		(*nfailed)++;
		if (ops->failed)
			ops->failed(ctx, i, &e);
	}
	return sp(db, "RELEASE SAVEPOINT eng_batch", err);
}
