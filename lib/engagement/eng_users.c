#include "eng_users.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_batch.h"
#include "eng_buf.h"
#include "eng_log.h"
#include "eng_mask.h"
#include "eng_parse.h"
#include "eng_state.h"

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

enum eng_status eng_users_resolve(struct eng_db *db, struct eng_user_ref **refs,
				  size_t n, struct eng_err *err)
{
	const char **ids = eng_xcalloc(n + 1, sizeof(*ids));
	const char **phones = eng_xcalloc(n + 1, sizeof(*phones));
	size_t ni = 0, np = 0;
	for (size_t i = 0; i < n; i++) {
		refs[i]->found = false;
		if (refs[i]->phone[0])
			phones[np++] = refs[i]->phone;
		else
			ids[ni++] = refs[i]->user_id;
	}
	char *aids = eng_db_text_array(ids, ni);
	char *aphones = eng_db_text_array(phones, np);
	const char *p[] = {aids, aphones};
	PGresult *r = eng_db_query(db,
				   "SELECT id::text, phone_e164 FROM engagement.users "
				   "WHERE id = ANY ($1::uuid[]) OR phone_e164 = ANY ($2::text[])",
				   2, p, err);
	free(aids);
	free(aphones);
	free(ids);
	free(phones);
	if (!r)
		return err->status;

	size_t rows = (size_t)PQntuples(r);
	const char **by_id = eng_xcalloc(rows + 1, sizeof(*by_id));
	const char **by_phone = eng_xcalloc(2 * rows + 2, sizeof(*by_phone)); /* pairs */
	for (size_t i = 0; i < rows; i++) {
		by_id[i] = PQgetvalue(r, (int)i, 0);
		by_phone[2 * i] = PQgetvalue(r, (int)i, 1);
		by_phone[2 * i + 1] = PQgetvalue(r, (int)i, 0);
	}
	qsort(by_id, rows, sizeof(*by_id), cmp_str);
	qsort(by_phone, rows, 2 * sizeof(*by_phone), cmp_str);
	for (size_t i = 0; i < n; i++) {
		struct eng_user_ref *u = refs[i];
		if (u->phone[0]) {
			const char *key = u->phone;
			const char **hit = bsearch(&key, by_phone, rows,
						   2 * sizeof(*by_phone), cmp_str);
			if (hit) {
				snprintf(u->user_id, sizeof(u->user_id), "%s", hit[1]);
				u->found = true;
			}
		} else {
			const char *key = u->user_id;
			u->found = bsearch(&key, by_id, rows, sizeof(*by_id), cmp_str) != NULL;
		}
	}
	free(by_id);
	free(by_phone);
	PQclear(r);
	return ENG_OK;
}

/* The fields every line may carry: 1 when key is one of them, -1 (err
 * filled) when its value is malformed, 0 for other keys. */
static int common_field(const char *key, const json_t *v, struct eng_user_ref *who,
			int *seen, eng_time *at, char *id, struct eng_err *err)
{
	if (strcmp(key, "at") == 0) {
		if (!json_is_string(v) || eng_time_parse(json_string_value(v), at)) {
			eng_err_set(err, ENG_EDATA, "\"at\" is not an RFC 3339 timestamp");
			return -1;
		}
		return 1;
	}
	if (strcmp(key, "id") == 0)
		return eng_event_id_parse(v, id, err) ? -1 : 1;
	if (strcmp(key, "user_id") == 0) {
		(*seen)++;
		if (!json_is_string(v) || eng_parse_uuid(json_string_value(v), who->user_id)) {
			eng_err_set(err, ENG_EDATA, "\"user_id\" is not a UUID");
			return -1;
		}
		return 1;
	}
	if (strcmp(key, "phone") == 0) {
		(*seen)++;
		if (!json_is_string(v) || !eng_is_e164(json_string_value(v))) {
			eng_err_set(err, ENG_EDATA, "\"phone\" is not an E.164 number "
				    "(+ and 8 to 15 digits)");
			return -1;
		}
		snprintf(who->phone, sizeof(who->phone), "%s", json_string_value(v));
		return 1;
	}
	return 0;
}

enum eng_status eng_line_parse(const char *text, size_t len, struct eng_user_ref *who,
			       eng_time *at, char *id, eng_line_field_fn field, void *ctx,
			       struct eng_err *err)
{
	json_error_t je;
	json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!o)
		return eng_err_set(err, ENG_EDATA, "not valid JSON: %s", je.text);
	enum eng_status st = ENG_OK;
	int seen = 0;
	const char *key;
	json_t *v;
	if (!json_is_object(o)) {
		st = eng_err_set(err, ENG_EDATA, "expected a JSON object");
		goto out;
	}
	json_object_foreach(o, key, v) {
		int taken = common_field(key, v, who, &seen, at, id, err);
		if (taken == 0)
			taken = field(ctx, key, v, err);
		if (taken == 0)
			st = eng_err_set(err, ENG_EDATA, "unknown field \"%.40s\"", key);
		else if (taken < 0)
			st = err->status;
		if (st)
			goto out;
	}
	if (seen != 1)
		st = eng_err_set(err, ENG_EDATA,
				 "give exactly one of \"user_id\" and \"phone\"");
out:
	json_decref(o);
	return st;
}

void eng_users_not_found(const struct eng_user_ref *r, struct eng_err *err)
{
	if (r->phone[0]) {
		char masked[32];
		eng_mask_phone(r->phone, masked, sizeof(masked));
		eng_err_set(err, ENG_ENOUSER, "no user with phone %s", masked);
	} else {
		eng_err_set(err, ENG_ENOUSER, "no user with id %s", r->user_id);
	}
}

void eng_idset_clear(struct eng_idset *set)
{
	memset(set, 0, sizeof(*set));
}

bool eng_idset_add(struct eng_idset *set, const char *id)
{
	size_t cap = sizeof(set->slot) / sizeof(*set->slot);
	if (set->n >= ENG_IDSET_MAX)
		return false;
	for (size_t i = eng_hash_str(id) % cap;; i = (i + 1) % cap) {
		if (!set->slot[i]) {
			set->slot[i] = id;
			set->n++;
			return true;
		}
		if (strcmp(set->slot[i], id) == 0)
			return false;
	}
}

struct run_ctx {
	const struct eng_items *it;
	const size_t *idx;
};

static enum eng_status run_range(void *ctx, struct eng_db *db, size_t off,
				 size_t n, struct eng_err *err)
{
	struct run_ctx *r = ctx;
	return r->it->apply(r->it->ctx, db, r->idx + off, n, err);
}

static void run_failed(void *ctx, size_t i, const struct eng_err *e)
{
	struct run_ctx *r = ctx;
	r->it->fail(r->it->ctx, r->idx[i], e);
}

static const struct eng_batch_ops run_ops = {run_range, run_failed};

static enum eng_status apply_run(struct eng_db *db, const struct eng_items *it,
				 const size_t *idx, size_t k, bool dry_run,
				 struct eng_err *err)
{
	struct run_ctx r = {it, idx};
	size_t nfailed;
	enum eng_status st = ENG_OK;
	if (!dry_run && (st = eng_db_begin(db, err)))
		return st;
	st = eng_batch_apply(db, k, &run_ops, &r, &nfailed, err);
	if (st == ENG_OK && !dry_run)
		st = eng_db_commit(db, err);
	if (st && !dry_run)
		eng_db_rollback(db);
	return st;
}

enum eng_status eng_items_apply(struct eng_db *db, const struct eng_items *it,
				bool dry_run, size_t *done, struct eng_err *err)
{
	struct eng_user_ref **refs = eng_xcalloc(ENG_IDSET_MAX, sizeof(*refs));
	size_t *pos = eng_xcalloc(ENG_IDSET_MAX, sizeof(*pos));
	size_t *idx = eng_xcalloc(ENG_IDSET_MAX, sizeof(*idx));
	struct eng_idset *seen = eng_xcalloc(1, sizeof(*seen));
	enum eng_status st = ENG_OK;

	for (size_t w = 0; w < it->n && st == ENG_OK; w += ENG_IDSET_MAX) {
		size_t wn = it->n - w < ENG_IDSET_MAX ? it->n - w : ENG_IDSET_MAX;
		size_t k = 0;
		for (size_t i = w; i < w + wn; i++)
			if (!it->failed(it->ctx, i)) {
				refs[k] = it->who(it->ctx, i);
				pos[k++] = i;
			}
		*done = w;
		if ((st = eng_users_resolve(db, refs, k, err)))
			break;
		for (size_t j = 0; j < k; j++)
			if (!refs[j]->found) {
				struct eng_err e = ENG_ERR_INIT;
				eng_users_not_found(refs[j], &e);
				it->fail(it->ctx, pos[j], &e);
			}
		/* runs of distinct users, in order */
		size_t i = w;
		while (i < w + wn && st == ENG_OK) {
			size_t nrun = 0;
			eng_idset_clear(seen);
			for (; i < w + wn; i++) {
				if (it->failed(it->ctx, i))
					continue;
				if (!it->any_users &&
				    !eng_idset_add(seen, it->who(it->ctx, i)->user_id))
					break; /* same user again: next run */
				idx[nrun++] = i;
			}
			if (nrun && (st = apply_run(db, it, idx, nrun, dry_run, err)))
				*done = idx[0]; /* this run was rolled back */
		}
	}
	if (st == ENG_OK)
		*done = it->n;
	free(refs);
	free(pos);
	free(idx);
	free(seen);
	return st;
}

/* ---- the command line ------------------------------------------------------- */

enum eng_status eng_user_ref_from_args(const char *user, const char *phone,
				       struct eng_user_ref *ref, struct eng_err *err)
{
	memset(ref, 0, sizeof(*ref));
	if (user && eng_parse_uuid(user, ref->user_id)) {
		eng_err_set(err, ENG_EDATA, "invalid --user \"%.60s\": not a UUID", user);
		return eng_err_event(err, "invalid_input");
	}
	if (phone) {
		if (!eng_is_e164(phone)) {
			eng_err_set(err, ENG_EDATA,
				    "invalid --phone: not an E.164 number (a + and 8 "
				    "to 15 digits, the first not 0)");
			return eng_err_event(err, "invalid_input");
		}
		snprintf(ref->phone, sizeof(ref->phone), "%s", phone);
	}
	return ENG_OK;
}

enum eng_status eng_user_find(const struct eng_job *job, struct eng_user_ref *ref,
			      struct eng_err *err)
{
	struct eng_user_ref *refs[] = {ref};
	if (eng_users_resolve(job->db, refs, 1, err))
		return err->status;
	if (!ref->found) {
		eng_users_not_found(ref, err);
		return err->status;
	}
	eng_job_set_str(job, "user_id", ref->user_id);
	return ENG_OK;
}

/* ---- --batch ----------------------------------------------------------------- */

enum eng_status eng_lines_run(const struct eng_job *job, const struct eng_line_job *lj,
			      struct eng_err *err)
{
	struct eng_lines in;
	if (eng_lines_open(&in, lj->path, err))
		return err->status;
	long long lines = 0;
	bool eof = false;
	enum eng_status st = job->dry_run ? eng_db_begin(job->db, err) : ENG_OK;
	bool rehearsal = st == ENG_OK && job->dry_run;
	while (st == ENG_OK && !eof) {
		size_t n = 0;
		if ((st = eng_lines_block(&in, lj->block, lj->take, lj->ctx, &n, &eof, err)) ||
		    n == 0)
			break;
		lines += (long long)n;
		st = lj->apply(lj->ctx, job, n, err);
		if (st == ENG_OK && eng_interrupted)
			st = eng_err_set(err, ENG_ETEMP, "interrupted by signal %d after line %ld",
					 (int)eng_interrupted, in.lineno);
	}
	if (rehearsal)
		eng_db_rollback(job->db);
	eng_lines_close(&in);
	eng_job_set_int(job, "lines", lines);
	bool failed = lj->summarize(lj->ctx, job);
	if (st == ENG_OK && failed)
		return eng_err_set(err, ENG_PARTIAL, "some lines failed (line_failed in the log)");
	return st;
}

void eng_log_line_failed(long line, const char *user_id, const struct eng_err *e)
{
	eng_log(ENG_ERROR, "line_failed", ENG_I("line", line),
		ENG_S("user_id", user_id && user_id[0] ? user_id : NULL), ENG_S("error", e->msg),
		ENG_S("error_class", eng_status_name(e->status)));
}

enum eng_status eng_event_id_parse(const json_t *v, char *out, struct eng_err *err)
{
	const char *s = json_is_string(v) ? json_string_value(v) : NULL;
	size_t n = s ? json_string_length(v) : 0;
	bool ok = s && n >= 1 && n <= 128 && strlen(s) == n;
	for (size_t i = 0; ok && i < n; i++)
		ok = (unsigned char)s[i] >= 0x20 && s[i] != 0x7f;
	if (!ok)
		return eng_err_set(err, ENG_EDATA,
				   "\"id\" must be a string of 1 to 128 printable bytes");
	memcpy(out, s, n + 1);
	return ENG_OK;
}
