#include "eng_optout.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_buf.h"
#include "eng_json.h"
#include "eng_log.h"
#include "eng_parse.h"
#include "eng_phrase.h"

static const char *const outcome_names[] = {"applied", "unchanged", "stale",
					    "duplicate"};

const char *eng_optout_outcome_name(enum eng_optout_outcome o)
{
	return (unsigned)o < 4 ? outcome_names[o] : "unknown";
}

const char *const eng_optout_sources[ENG_OPTOUT_NSOURCES] = {"whatsapp", "web", "cli", "api"};

bool eng_optout_source_valid(const char *s)
{
	for (size_t i = 0; s && i < ENG_OPTOUT_NSOURCES; i++)
		if (strcmp(s, eng_optout_sources[i]) == 0)
			return true;
	return false;
}

/* $1: a JSON array of changes, in order; $2 the run. One row back per
 * change whose user exists: its position (1-based), outcome, old value and
 * instant (migration 0014 says the rest). */
static const char *const apply_sql[] = {
	[ENG_VIA_CHANGE] = "SELECT ord - 1, outcome, old_value, at_us"
			   " FROM engagement.change_preferences($1::jsonb, $2::uuid)",
	[ENG_VIA_WHATSAPP] = "SELECT ord - 1, outcome, old_value, at_us"
			     " FROM engagement.record_whatsapp_preferences($1::jsonb, $2::uuid)",
};

enum eng_status eng_optout_apply_many(struct eng_db *db, enum eng_optout_via via,
				      const char *run_id, const struct eng_optout_change *c,
				      size_t n, struct eng_optout_result *res,
				      struct eng_err *err)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++) {
		char at[32];
		json_t *o = json_object();
		json_object_set_new(o, "user_id", json_string(c[i].user_id));
		json_object_set_new(o, "opt_out", json_boolean(c[i].opt_out));
		if (c[i].at != ENG_TIME_NONE) {
			eng_time_format(c[i].at, at);
			json_object_set_new(o, "at", json_string(at));
		}
		if (via == ENG_VIA_WHATSAPP) {
			json_object_set_new(o, "phrase_locale",
					    json_string(c[i].phrase_locale ? c[i].phrase_locale : "?"));
		} else {
			json_object_set_new(o, "source", json_string(c[i].source));
			if (c[i].reason)
				json_object_set_new(o, "reason", eng_json_str(c[i].reason));
		}
		if (c[i].event_id && *c[i].event_id)
			json_object_set_new(o, "event_id", json_string(c[i].event_id));
		json_array_append_new(arr, o);
		memset(&res[i], 0, sizeof(res[i]));
	}
	char *changes = eng_json_dump(arr);
	json_decref(arr);
	const char *p[] = {changes, run_id};
	PGresult *r = eng_db_query(db, apply_sql[via], 2, p, err);
	free(changes);
	if (!r)
		return err->status;
	for (int k = 0; k < PQntuples(r); k++) {
		size_t i = (size_t)atoll(PQgetvalue(r, k, 0));
		if (i >= n)
			continue;
		const char *o = PQgetvalue(r, k, 1);
		res[i].found = true;
		res[i].future = strcmp(o, "future") == 0;
		res[i].outcome = strcmp(o, "applied") == 0     ? ENG_OPTOUT_APPLIED
				 : strcmp(o, "unchanged") == 0 ? ENG_OPTOUT_UNCHANGED
				 : strcmp(o, "duplicate") == 0 ? ENG_OPTOUT_DUPLICATE
							       : ENG_OPTOUT_STALE;
		res[i].old_value = strcmp(PQgetvalue(r, k, 2), "t") == 0;
		res[i].at = eng_db_epoch_us(PQgetvalue(r, k, 3));
	}
	PQclear(r);
	return ENG_OK;
}

/* A change that found no user (deleted meanwhile) or came from the future
 * is an error of its own. */
static enum eng_status check_result(const struct eng_optout_change *c,
				    const struct eng_optout_result *res,
				    struct eng_err *err)
{
	char at[32];
	if (!res->found)
		return eng_err_set(err, ENG_ENOUSER, "no user with id %s", c->user_id);
	if (res->future) {
		eng_time_format(c->at, at);
		return eng_err_set(err, ENG_EDATA,
				   "the change is dated %s, more than %d minutes "
				   "ahead of the database clock: refused",
				   at, ENG_FUTURE_SKEW_S / 60);
	}
	return ENG_OK;
}

enum eng_status eng_optout_apply(struct eng_db *db, const char *run_id,
				 const struct eng_optout_change *c,
				 struct eng_optout_result *res,
				 struct eng_err *err)
{
	if (eng_optout_apply_many(db, ENG_VIA_CHANGE, run_id, c, 1, res, err))
		return err->status;
	return check_result(c, res, err);
}

/* ---- batches ------------------------------------------------------------ */

struct optout_fields {
	struct eng_optout_item *it;
	bool have_value;
};

static int optout_field(void *ctx, const char *key, const json_t *v, struct eng_err *err)
{
	struct optout_fields *f = ctx;
	if (strcmp(key, "opt_out") == 0) {
		if (!json_is_boolean(v)) {
			eng_err_set(err, ENG_EDATA, "\"opt_out\" must be true or false");
			return -1;
		}
		f->it->opt_out = json_is_true(v);
		f->have_value = true;
	} else if (strcmp(key, "source") == 0) {
		if (!json_is_string(v) || !eng_optout_source_valid(json_string_value(v))) {
			eng_err_set(err, ENG_EDATA, "\"source\" must be whatsapp, web, cli or api");
			return -1;
		}
		snprintf(f->it->source, sizeof(f->it->source), "%s", json_string_value(v));
	} else if (strcmp(key, "reason") == 0) {
		if (!json_is_string(v) || json_string_length(v) > 500) {
			eng_err_set(err, ENG_EDATA,
				    "\"reason\" must be a string of at most 500 bytes");
			return -1;
		}
		free(f->it->reason);
		f->it->reason = eng_xstrdup(json_string_value(v));
	} else {
		return 0;
	}
	return 1;
}

enum eng_status eng_optout_parse_json(const char *text, size_t len,
				      struct eng_optout_item *it,
				      struct eng_err *err)
{
	it->at = ENG_TIME_NONE;
	struct optout_fields f = {it, false};
	if (eng_line_parse(text, len, &it->who, &it->at, it->id, optout_field, &f, err))
		return err->status;
	if (!f.have_value)
		return eng_err_set(err, ENG_EDATA, "\"opt_out\" (true or false) is missing");
	if (!it->source[0])
		return eng_err_set(err, ENG_EDATA, "\"source\" is missing");
	return ENG_OK;
}

void eng_optout_item_release(struct eng_optout_item *it)
{
	free(it->reason);
	it->reason = NULL;
}

struct items_ctx {
	struct eng_optout_item *it;
	const char *run_id;
	enum eng_optout_via via;
};

static struct eng_user_ref *it_who(void *ctx, size_t i)
{
	return &((struct items_ctx *)ctx)->it[i].who;
}

static bool it_failed(void *ctx, size_t i)
{
	return ((struct items_ctx *)ctx)->it[i].failed;
}

static void it_fail(void *ctx, size_t i, const struct eng_err *e)
{
	struct eng_optout_item *it = &((struct items_ctx *)ctx)->it[i];
	it->failed = true;
	it->err = *e;
}

static enum eng_status it_apply(void *ctx, struct eng_db *db, const size_t *idx,
				size_t k, struct eng_err *err)
{
	struct items_ctx *x = ctx;
	struct eng_optout_change *c = eng_xcalloc(k + 1, sizeof(*c));
	struct eng_optout_result *res = eng_xcalloc(k + 1, sizeof(*res));
	for (size_t i = 0; i < k; i++) {
		struct eng_optout_item *it = &x->it[idx[i]];
		c[i] = (struct eng_optout_change){it->who.user_id, it->opt_out, it->source,
						  it->at, it->reason, it->id, it->phrase_locale};
	}
	enum eng_status st = eng_optout_apply_many(db, x->via, x->run_id, c, k, res, err);
	for (size_t i = 0; st == ENG_OK && i < k; i++) {
		struct eng_err e = ENG_ERR_INIT;
		x->it[idx[i]].res = res[i];
		if (check_result(&c[i], &res[i], &e))
			it_fail(ctx, idx[i], &e);
	}
	free(c);
	free(res);
	return st;
}

enum eng_status eng_optout_apply_items(struct eng_db *db, enum eng_optout_via via,
				       struct eng_optout_item *it, size_t n,
				       const char *run_id, bool dry_run,
				       size_t *done, struct eng_err *err)
{
	struct items_ctx x = {it, run_id, via};
	/* one person's changes in one call, in order: last write wins there */
	struct eng_items items = {n, &x, it_who, it_failed, it_fail, it_apply, true};
	return eng_items_apply(db, &items, dry_run, done, err);
}

/* ---- optout-set ---------------------------------------------------------------- */

enum eng_status eng_optout_from_args(const struct eng_optout_args *a,
				     struct eng_optout_request *rq, struct eng_err *err)
{
	memset(rq, 0, sizeof(*rq));
	if (eng_user_ref_from_args(a->user, a->phone, &rq->who, err))
		return err->status;
	rq->opt_out = a->opt_out;
	rq->at = ENG_TIME_NONE;
	const char *phrase_locale = NULL;
	if (a->text && !eng_phrase_match(a->text, &rq->opt_out, &phrase_locale)) {
		eng_err_set(err, ENG_EDATA,
			    "unknown phrase: expected stop reminders, start reminders, "
			    "parar lembretes, ativar lembretes, parar recordatorios or "
			    "activar recordatorios");
		return eng_err_event(err, "unknown_phrase");
	}
	if (a->at && eng_time_parse(a->at, &rq->at)) {
		eng_err_set(err, ENG_EDATA,
			    "invalid --at \"%.60s\": expected an RFC 3339 timestamp", a->at);
		return eng_err_event(err, "invalid_input");
	}
	rq->source = a->source;
	int n = 0;
	if (a->text)
		n = snprintf(rq->reason, sizeof(rq->reason), "%s%sphrase \"%s\" (%s)%s%s",
			     a->reason ? a->reason : "", a->reason ? "; " : "", a->text,
			     phrase_locale, a->locale ? ", user locale " : "",
			     a->locale ? a->locale : "");
	else if (a->reason)
		n = snprintf(rq->reason, sizeof(rq->reason), "%s", a->reason);
	if (n < 0 || (size_t)n >= sizeof(rq->reason)) /* never cut a consent record */
		return eng_err_set(err, ENG_EDATA, "the reason, phrase and locale are "
				   "longer than %zu bytes together", sizeof(rq->reason) - 1);
	return ENG_OK;
}

enum eng_status eng_optout_set(const struct eng_job *job, struct eng_optout_request *rq,
			       struct eng_err *err)
{
	if (eng_user_find(job, &rq->who, err))
		return err->status;
	struct eng_optout_change ch = {rq->who.user_id, rq->opt_out, rq->source, rq->at,
				       rq->reason[0] ? rq->reason : NULL, NULL, NULL};
	struct eng_optout_result res;
	enum eng_status st = eng_db_begin(job->db, err);
	if (st == ENG_OK)
		st = eng_optout_apply(job->db, job->run_id, &ch, &res, err);
	if (st == ENG_OK && job->dry_run)
		eng_db_rollback(job->db);
	else if (st == ENG_OK)
		st = eng_db_commit(job->db, err);
	if (st)
		return st;

	char at[32];
	eng_time_format_ms(res.at, at);
	json_object_set_new(job->summary, "opt_out", json_boolean(ch.opt_out));
	eng_job_set_str(job, "outcome", eng_optout_outcome_name(res.outcome));
	json_object_set_new(job->summary, "previous", json_boolean(res.old_value));
	eng_job_set_str(job, "source", ch.source);
	eng_job_set_str(job, "at", at);
	eng_log(ENG_INFO, "preference_changed", ENG_S("user_id", ch.user_id),
		ENG_B("opt_out", ch.opt_out), ENG_S("source", ch.source),
		ENG_S("outcome", eng_optout_outcome_name(res.outcome)));
	return ENG_OK;
}

static json_t *ts_json(const char *epoch_us)
{
	char ts[32];
	if (!epoch_us || !*epoch_us)
		return json_null();
	eng_time_format_ms(eng_db_epoch_us(epoch_us), ts);
	return json_string(ts);
}

static json_t *str_or_null(const PGresult *r, int c)
{
	return PQgetisnull(r, 0, c) ? json_null() : json_string(PQgetvalue(r, 0, c));
}

enum eng_status eng_optout_show(const struct eng_job *job, struct eng_user_ref *who,
				struct eng_err *err)
{
	if (eng_user_find(job, who, err))
		return err->status;
	const char *p[] = {who->user_id};
	PGresult *r = eng_db_query(
		job->db,
		"SELECT coalesce(p.reengagement_opt_out, false) AS opt_out,"
		"  (extract(epoch FROM p.reengagement_opt_out_updated_at) * 1000000)::bigint"
		"    AS updated_us,"
		"  p.reengagement_opt_out_source AS source, coalesce(p.locale, 'en') AS locale,"
		"  coalesce(p.timezone, 'UTC') AS timezone,"
		"  to_char(p.quiet_hours_start, 'HH24:MI') AS quiet_start,"
		"  to_char(p.quiet_hours_end, 'HH24:MI') AS quiet_end,"
		"  coalesce(p.preferred_destination, 'individual') AS destination"
		" FROM engagement.users u"
		" LEFT JOIN engagement.user_preferences p ON p.user_id = u.id"
		" WHERE u.id = $1::uuid",
		1, p, err);
	if (!r)
		return err->status;
	if (PQntuples(r) != 1) { /* erased since it was found */
		PQclear(r);
		eng_users_not_found(who, err);
		return err->status;
	}
#define COL(name) PQfnumber(r, name)
	json_t *pref = json_object();
	json_object_set_new(pref, "user_id", json_string(who->user_id));
	json_object_set_new(pref, "reengagement_opt_out",
			    json_boolean(strcmp(PQgetvalue(r, 0, COL("opt_out")), "t") == 0));
	json_object_set_new(pref, "updated_at", ts_json(PQgetvalue(r, 0, COL("updated_us"))));
	json_object_set_new(pref, "source", str_or_null(r, COL("source")));
	json_object_set_new(pref, "locale", str_or_null(r, COL("locale")));
	json_object_set_new(pref, "timezone", str_or_null(r, COL("timezone")));
	json_object_set_new(pref, "quiet_hours",
			    PQgetisnull(r, 0, COL("quiet_start"))
				    ? json_null()
				    : json_pack("{s:s, s:s}", "start",
						PQgetvalue(r, 0, COL("quiet_start")), "end",
						PQgetvalue(r, 0, COL("quiet_end"))));
	json_object_set_new(pref, "preferred_destination", str_or_null(r, COL("destination")));
#undef COL
	PQclear(r);
	json_object_set_new(job->summary, "preference", pref);
	return ENG_OK;
}

#define BLOCK 10000

struct batch {
	struct eng_optout_item *it; /* the block */
	long long counts[4], failed, malformed;
};

/* A malformed line stays in the block, failed, to be reported in order. */
static void take_line(void *ctx, size_t i, long lineno, const char *text, size_t len,
		      bool too_long)
{
	struct batch *b = ctx;
	struct eng_optout_item *x = &b->it[i];
	struct eng_err perr = ENG_ERR_INIT;
	memset(x, 0, sizeof(*x));
	x->line = lineno;
	if (too_long)
		eng_err_set(&perr, ENG_EDATA, "line longer than %d bytes", ENG_LINE_MAX);
	else
		eng_optout_parse_json(text, len, x, &perr);
	if (perr.status) {
		b->malformed++;
		x->failed = true;
		x->err = perr;
	}
}

static enum eng_status apply_block(void *ctx, const struct eng_job *job, size_t n,
				   struct eng_err *err)
{
	struct batch *b = ctx;
	struct eng_optout_item *it = b->it;
	size_t done;
	enum eng_status st = eng_optout_apply_items(job->db, ENG_VIA_CHANGE, it, n, job->run_id,
						    job->dry_run, &done, err);
	for (size_t i = 0; i < done; i++) {
		if (it[i].failed) {
			b->failed++;
			eng_log_line_failed(it[i].line, it[i].who.user_id, &it[i].err);
		} else {
			b->counts[it[i].res.outcome]++;
			eng_log(ENG_INFO, "line_result", ENG_I("line", it[i].line),
				ENG_S("user_id", it[i].who.user_id),
				ENG_B("opt_out", it[i].opt_out),
				ENG_S("outcome", eng_optout_outcome_name(it[i].res.outcome)));
		}
	}
	for (size_t i = 0; i < n; i++)
		eng_optout_item_release(&it[i]);
	return st;
}

static bool summarize(void *ctx, const struct eng_job *job)
{
	struct batch *b = ctx;
	eng_job_set_int(job, "applied", b->counts[ENG_OPTOUT_APPLIED]);
	eng_job_set_int(job, "unchanged", b->counts[ENG_OPTOUT_UNCHANGED]);
	eng_job_set_int(job, "stale", b->counts[ENG_OPTOUT_STALE]);
	eng_job_set_int(job, "duplicates", b->counts[ENG_OPTOUT_DUPLICATE]);
	eng_job_set_int(job, "failed", b->failed);
	eng_job_set_int(job, "malformed", b->malformed);
	return b->failed > 0;
}

enum eng_status eng_optout_batch(const struct eng_job *job, const char *path,
				 struct eng_err *err)
{
	struct batch b = {.it = eng_xcalloc(BLOCK, sizeof(*b.it))};
	struct eng_line_job lj = {path, BLOCK, take_line, apply_block, summarize, &b};
	enum eng_status st = eng_lines_run(job, &lj, err);
	free(b.it);
	return st;
}
