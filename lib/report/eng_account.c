/* engagement-status: the account's figures (eng_figures.h) — the pauses in
 * force, the templates as Meta reports them, the messaging limit and how
 * much of it the last 24 hours used, and the last day's pricing. */
#include "eng_figures.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "eng_json.h"

#define N(a) (sizeof(a) / sizeof(*(a)))
#define ISO(col) "to_char(" col ", 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* ---- pauses ---------------------------------------------------------------------- */

static const char *const pause_scopes[] = {"all", "type", "template"};
static const char *const pause_sources[] = {"operator", "meta"};

static json_t *pause_json(const PGresult *r, int i)
{
	json_t *p = json_object();
	json_object_set_new(p, "id", json_integer((json_int_t)eng_fig_num(r, i, "id")));
	json_object_set_new(p, "scope", eng_fig_json(r, i, "scope", false));
	json_object_set_new(p, "value", eng_fig_json(r, i, "value", false));
	json_object_set_new(p, "reason", eng_fig_json(r, i, "reason", true));
	json_object_set_new(p, "source", eng_fig_json(r, i, "source", false));
	json_object_set_new(p, "paused_by", eng_fig_json(r, i, "paused_by", true));
	json_object_set_new(p, "paused_at", eng_fig_json(r, i, "paused_at", false));
	json_object_set_new(p, "until", eng_fig_json(r, i, "until", false));
	json_object_set_new(p, "age_seconds",
			    json_integer((json_int_t)floor(eng_fig_num(r, i, "age"))));
	return p;
}

/* The pauses in force (engagement.active_pauses, the rule's one home),
 * oldest first. */
static enum eng_status pauses(const struct eng_job *job, struct figures *f, json_t *sum,
			      struct eng_account *got, struct eng_err *err)
{
	PGresult *r = eng_fig_query(job,
				    "SELECT id, scope, value, reason, source, paused_by,"
				    "  " ISO("paused_at") " AS paused_at, " ISO("until") " AS until,"
				    "  greatest(extract(epoch FROM now() - paused_at), 0) AS age"
				    " FROM engagement.active_pauses(now()) ORDER BY paused_at, id",
				    0, NULL, err);
	if (!r)
		return err->status;
	double n[N(pause_scopes)][N(pause_sources)] = {{0}};
	json_t *list = json_array();
	for (int i = 0; i < PQntuples(r); i++) {
		for (size_t a = 0; a < N(pause_scopes); a++)
			for (size_t b = 0; b < N(pause_sources); b++)
				n[a][b] += strcmp(eng_fig_txt(r, i, "scope"), pause_scopes[a]) == 0 &&
					   strcmp(eng_fig_txt(r, i, "source"), pause_sources[b]) == 0;
		got->pause_age = fmax(got->pause_age, eng_fig_num(r, i, "age"));
		json_array_append_new(list, pause_json(r, i));
	}
	PQclear(r);
	json_t *s = eng_fig_family(f, "engagement_send_pauses_active", "gauge",
				   "Pauses of sending in force, by scope (all, type, template) "
				   "and source (operator, meta)");
	for (size_t a = 0; a < N(pause_scopes); a++)
		for (size_t b = 0; b < N(pause_sources); b++)
			eng_fig_sample(s, n[a][b], "scope", pause_scopes[a], "source",
				       pause_sources[b], NULL);
	eng_fig_sample(eng_fig_family(f, "engagement_send_pause_oldest_age_seconds", "gauge",
				      "Age of the oldest pause of sending in force (0: none)"),
		       got->pause_age, NULL);
	json_object_set_new(sum, "pauses", list);
	return ENG_OK;
}

/* ---- templates ------------------------------------------------------------------- */

/* Counts by a label: the known values always (zero or not), then any other
 * value met, in order. */
struct tally {
	const char *value[32];
	double n[32];
	size_t len;
};

static void tally_add(struct tally *t, const char *v)
{
	for (size_t i = 0; i < t->len; i++)
		if (strcmp(t->value[i], v) == 0) {
			t->n[i]++;
			return;
		}
	if (t->len < N(t->value)) {
		t->value[t->len] = v;
		t->n[t->len++] = 1;
	}
}

static json_t *tally_out(const struct tally *t, json_t *samples, const char *label)
{
	json_t *o = json_object();
	for (size_t i = 0; i < t->len; i++) {
		eng_fig_sample(samples, t->n[i], label, t->value[i], NULL);
		json_object_set_new(o, t->value[i], json_integer((json_int_t)t->n[i]));
	}
	return o;
}

static json_t *template_json(const PGresult *r, int i)
{
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}",
			 "template_key", eng_fig_json(r, i, "template_key", false),
			 "locale", eng_fig_json(r, i, "locale", false),
			 "provider_status", eng_fig_json(r, i, "provider_status", false),
			 "quality", eng_fig_json(r, i, "quality", false),
			 "status_changed_at", eng_fig_json(r, i, "status_changed_at", false),
			 "quality_changed_at", eng_fig_json(r, i, "quality_changed_at", false));
}

/* Each template row (a key in a locale) by Meta's status and quality;
 * "unreported" where Meta never said. */
static enum eng_status templates(const struct eng_job *job, struct figures *f, json_t *sum,
				 struct eng_account *got, struct eng_err *err)
{
	PGresult *r = eng_fig_query(job,
				    "SELECT template_key, locale, provider_status, quality,"
				    "  " ISO("status_changed_at") " AS status_changed_at,"
				    "  " ISO("quality_changed_at") " AS quality_changed_at,"
				    "  coalesce(provider_status, 'unreported') AS s,"
				    "  coalesce(quality, 'unreported') AS q"
				    " FROM engagement.message_templates ORDER BY 1, 2",
				    0, NULL, err);
	if (!r)
		return err->status;
	struct tally st = {{"APPROVED", "PAUSED", "DISABLED", "REJECTED", "PENDING",
			    "unreported"}, {0}, 6};
	struct tally q = {{"GREEN", "YELLOW", "RED", "UNKNOWN", "unreported"}, {0}, 5};
	json_t *list = json_array();
	for (int i = 0; i < PQntuples(r); i++) {
		tally_add(&st, eng_fig_txt(r, i, "s"));
		tally_add(&q, eng_fig_txt(r, i, "q"));
		json_array_append_new(list, template_json(r, i));
	}
	got->paused_templates = st.n[1];
	got->red_templates = q.n[2];
	json_t *jt = json_object();
	json_object_set_new(jt, "by_status",
			    tally_out(&st, eng_fig_family(f, "engagement_templates_by_status", "gauge",
							  "Templates (a key in a locale) by the status "
							  "Meta reports (unreported: never said)"),
				      "provider_status"));
	json_object_set_new(jt, "by_quality",
			    tally_out(&q, eng_fig_family(f, "engagement_templates_by_quality", "gauge",
							 "Templates (a key in a locale) by the quality "
							 "Meta reports (unreported: never said)"),
				      "quality"));
	json_object_set_new(jt, "list", list);
	json_object_set_new(sum, "templates", jt);
	PQclear(r); /* the tallies' values pointed into it */
	return ENG_OK;
}

/* ---- the messaging limit ------------------------------------------------------- */

/* The limit ('*': the business portfolio's) and the people reached in the
 * last 24 hours. No row: not known (never reported nor set). */
static enum eng_status limit(const struct eng_job *job, struct figures *f, json_t *sum,
			     struct eng_account *got, struct eng_err *err)
{
	PGresult *r = eng_fig_query(job,
				    "SELECT l.tier, l.max_recipients_24h AS max, l.source,"
				    "  " ISO("l.changed_at") " AS changed_at,"
				    "  (SELECT count(*) FROM engagement.limit_reached r"
				    "   WHERE r.reached_at > now() - interval '24 hours') AS reached"
				    " FROM (VALUES (1)) v(one)"
				    " LEFT JOIN engagement.messaging_limits l ON l.phone_number_id = '*'",
				    0, NULL, err);
	if (!r)
		return err->status;
	bool known = !PQgetisnull(r, 0, PQfnumber(r, "tier"));
	bool unlimited = known && PQgetisnull(r, 0, PQfnumber(r, "max"));
	double max = eng_fig_num(r, 0, "max"), reached = eng_fig_num(r, 0, "reached");
	got->limit_used = max > 0 ? 100.0 * reached / max : 0;
	json_t *jl = json_object();
	json_object_set_new(jl, "tier", eng_fig_json(r, 0, "tier", false));
	json_object_set_new(jl, "max_recipients_24h",
			    max > 0 ? json_integer((json_int_t)max) : json_null());
	json_object_set_new(jl, "unlimited", json_boolean(unlimited));
	json_object_set_new(jl, "source", eng_fig_json(r, 0, "source", false));
	json_object_set_new(jl, "changed_at", eng_fig_json(r, 0, "changed_at", false));
	json_object_set_new(jl, "reached_24h", json_integer((json_int_t)reached));
	json_object_set_new(jl, "used_percent",
			    max > 0 ? json_real(round(got->limit_used * 10) / 10) : json_null());
	eng_fig_sample(eng_fig_family(f, "engagement_messaging_limit_recipients", "gauge",
				      "The messaging limit: different people in any moving 24 "
				      "hours (0: unlimited or not known), by tier"),
		       max, "tier", known ? eng_fig_txt(r, 0, "tier") : "unknown", NULL);
	PQclear(r);
	eng_fig_sample(eng_fig_family(f, "engagement_messaging_limit_reached_24h", "gauge",
				      "Different people reached in the last 24 hours"),
		       reached, NULL);
	eng_fig_sample(eng_fig_family(f, "engagement_messaging_limit_used_ratio", "gauge",
				      "Share of the messaging limit the last 24 hours used "
				      "(0: unlimited or not known)"),
		       max > 0 ? reached / max : 0, NULL);
	json_object_set_new(sum, "messaging_limit", jl);
	return ENG_OK;
}

/* ---- cost ---------------------------------------------------------------------- */

/* Messages first priced in the last day, and those billable, by Meta's
 * category (engagement.message_counts kinds priced and billable). */
static enum eng_status pricing(const struct eng_job *job, struct figures *f, json_t *sum,
			       struct eng_err *err)
{
	PGresult *r = eng_fig_query(job,
				    "SELECT code AS category,"
				    "  sum(n) FILTER (WHERE kind = 'priced') AS priced,"
				    "  sum(n) FILTER (WHERE kind = 'billable') AS billable"
				    " FROM engagement.message_counts"
				    " WHERE minute >= now() - interval '24 hours'"
				    "   AND kind IN ('priced', 'billable')"
				    " GROUP BY 1 ORDER BY 1",
				    0, NULL, err);
	if (!r)
		return err->status;
	struct tally cat = {{"authentication", "marketing", "service", "utility"}, {0}, 4};
	double priced[N(cat.value)] = {0}, billable[N(cat.value)] = {0};
	for (int i = 0; i < PQntuples(r); i++) {
		tally_add(&cat, eng_fig_txt(r, i, "category"));
		for (size_t c = 0; c < cat.len; c++)
			if (strcmp(cat.value[c], eng_fig_txt(r, i, "category")) == 0) {
				priced[c] += eng_fig_num(r, i, "priced");
				billable[c] += eng_fig_num(r, i, "billable");
			}
	}
	json_t *sp = eng_fig_family(f, "engagement_priced_messages", "gauge",
				    "Messages sent that Meta priced in the last day, by its category");
	json_t *sb = eng_fig_family(f, "engagement_billable_messages", "gauge",
				    "Messages Meta will bill, of those priced in the last day, by "
				    "its category");
	json_t *jp = json_object();
	for (size_t c = 0; c < cat.len; c++) {
		eng_fig_sample(sp, priced[c], "category", cat.value[c], NULL);
		eng_fig_sample(sb, billable[c], "category", cat.value[c], NULL);
		json_object_set_new(jp, cat.value[c],
				    json_pack("{s:I, s:I}", "sent", (json_int_t)priced[c],
					      "billable", (json_int_t)billable[c]));
	}
	PQclear(r);
	json_object_set_new(sum, "pricing_last_day", jp);
	return ENG_OK;
}

enum eng_status eng_account_figures(const struct eng_job *job, struct figures *f,
				    json_t *sum, struct eng_account *got,
				    struct eng_err *err)
{
	enum eng_status st = pauses(job, f, sum, got, err);
	if (st == ENG_OK)
		st = templates(job, f, sum, got, err);
	if (st == ENG_OK)
		st = limit(job, f, sum, got, err);
	if (st == ENG_OK)
		st = pricing(job, f, sum, err);
	return st;
}
