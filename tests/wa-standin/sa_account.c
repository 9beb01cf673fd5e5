/*
 * Meta's account rules: templates paused or disabled (132015, 132016), the
 * pair rate (131056), the messaging limit (131049 or 130429), the pricing
 * category of each template, what they counted, and their controls
 * (POST /_standin/template, /_standin/limits, /_standin/reset,
 * GET /_standin/account). See "Meta's account rules" in README.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "standin.h"

#define SA_DAY_MS 86400000LL
#define SA_MAX_WINDOW_MS (30 * SA_DAY_MS)
#define SA_DEFAULT_CATEGORY "marketing"

static const struct sa_refusal refusal_paused = {
	400, 132015, 2494010, "Template is Paused",
	"The template is paused due to low quality, so it cannot be sent in a "
	"template message."};
static const struct sa_refusal refusal_disabled = {
	400, 132016, 2494010, "Template is disabled",
	"The template has been paused too many times due to low quality and is "
	"now permanently disabled."};
static const struct sa_refusal refusal_pair = {
	400, 131056, 2494010, "(Business Account, Consumer Account) pair rate limit hit",
	"Too many messages sent from the sender phone number to the same "
	"recipient phone number in a short period of time."};
static const struct sa_refusal refusal_limit_131049 = {
	400, 131049, 2494010,
	"This message was not delivered to maintain healthy ecosystem engagement.",
	"In order to maintain a healthy ecosystem engagement, the message "
	"failed to be delivered."};
static const struct sa_refusal refusal_limit_130429 = {
	429, 130429, 2494055, "Rate limit hit",
	"Cloud API message throughput has been reached."};

static const char *const status_names[] = {"APPROVED", "PAUSED", "DISABLED"};

static long long now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ---- set-up ---- */

static void init_counters(struct sa_account *ac)
{
	ac->templates = json_object();
	ac->recipients = json_object();
	ac->refusals = json_object();
}

static void init_reach(struct sa_account *ac)
{
	ac->reached = json_object();
	ac->last = json_object();
}

static void free_rules(struct sa_account *ac)
{
	for (size_t i = 0; i < ac->n_rules; i++) {
		free(ac->rules[i].name);
		free(ac->rules[i].lang);
	}
	free(ac->rules);
	ac->rules = NULL;
	ac->n_rules = ac->cap_rules = 0;
}

void sa_account_init(struct sa_server *srv)
{
	struct sa_account *ac = &srv->account;
	pthread_mutex_init(&ac->mu, NULL);
	ac->pair_ms = srv->cfg.pair_interval_ms;
	ac->limit = srv->cfg.messaging_limit;
	ac->limit_code = 131049;
	ac->window_ms = SA_DAY_MS;
	init_counters(ac);
	init_reach(ac);
}

void sa_account_free(struct sa_server *srv)
{
	struct sa_account *ac = &srv->account;
	free_rules(ac);
	json_decref(ac->templates);
	json_decref(ac->recipients);
	json_decref(ac->refusals);
	json_decref(ac->reached);
	json_decref(ac->last);
	pthread_mutex_destroy(&ac->mu);
}

void sa_account_lock(struct sa_server *srv)
{
	pthread_mutex_lock(&srv->account.mu);
}

void sa_account_unlock(struct sa_server *srv)
{
	pthread_mutex_unlock(&srv->account.mu);
}

/* ---- templates ---- */

/* lang with '-' read as '_' (at most 31 characters) into out. */
static void norm_lang(const char *lang, char out[32])
{
	size_t i = 0;
	for (; lang && lang[i] && i < 31; i++)
		out[i] = lang[i] == '-' ? '_' : lang[i];
	out[i] = '\0';
}

static struct sa_rule *find_rule(struct sa_account *ac, const char *name,
				 const char *lang /* normalised or NULL */)
{
	for (size_t i = 0; i < ac->n_rules; i++) {
		struct sa_rule *r = &ac->rules[i];
		if (strcmp(r->name, name) != 0)
			continue;
		if (!lang ? !r->lang : r->lang && strcmp(r->lang, lang) == 0)
			return r;
	}
	return NULL;
}

static struct sa_rule *add_rule(struct sa_account *ac, const char *name,
				const char *lang)
{
	struct sa_rule *r = find_rule(ac, name, lang);
	if (r)
		return r;
	if (ac->n_rules == ac->cap_rules) {
		size_t cap = ac->cap_rules ? 2 * ac->cap_rules : 8;
		struct sa_rule *n = realloc(ac->rules, cap * sizeof *n);
		if (!n)
			return NULL;
		ac->rules = n;
		ac->cap_rules = cap;
	}
	r = &ac->rules[ac->n_rules];
	memset(r, 0, sizeof *r);
	r->name = strdup(name);
	r->lang = lang ? strdup(lang) : NULL;
	if (!r->name || (lang && !r->lang)) {
		free(r->name);
		free(r->lang);
		return NULL;
	}
	ac->n_rules++;
	return r;
}

/* What holds for name in lang (normalised; NULL: the every-language rule). */
struct resolved {
	enum sa_tpl_status status;
	const char *category;
	bool billable;
};

static struct resolved resolve(struct sa_account *ac, const char *name, const char *lang)
{
	struct resolved out = {SA_TPL_APPROVED, SA_DEFAULT_CATEGORY, true};
	const struct sa_rule *all = find_rule(ac, name, NULL);
	const struct sa_rule *one = lang ? find_rule(ac, name, lang) : NULL;
	const struct sa_rule *layers[2] = {all, one};
	for (int i = 0; i < 2; i++) {
		const struct sa_rule *r = layers[i];
		if (!r)
			continue;
		if (r->has_status)
			out.status = r->status;
		if (r->has_category)
			out.category = r->category;
		if (r->has_billable)
			out.billable = r->billable;
	}
	return out;
}

long long sa_template_id(const char *name, const char *lang)
{
	char l[32];
	norm_lang(lang, l);
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (const char *p = name; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	h = (h ^ 0x1f) * 1099511628211ULL;
	for (const char *p = l; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return (long long)(100000000000000ULL + h % 900000000000000ULL);
}

void sa_account_pricing(struct sa_server *srv, const char *name, const char *lang,
			char category[33], bool *billable)
{
	struct sa_account *ac = &srv->account;
	char l[32];
	norm_lang(lang, l);
	pthread_mutex_lock(&ac->mu);
	struct resolved r = name ? resolve(ac, name, l)
				 : (struct resolved){SA_TPL_APPROVED, SA_DEFAULT_CATEGORY, true};
	snprintf(category, 33, "%s", r.category);
	*billable = r.billable;
	pthread_mutex_unlock(&ac->mu);
}

/* ---- the send path ---- */

static const char *body_to(const json_t *body)
{
	return json_string_value(json_object_get(body, "to"));
}

static const char *body_name(const json_t *body)
{
	return json_string_value(json_object_get(json_object_get(body, "template"), "name"));
}

static const char *body_lang(const json_t *body)
{
	return json_string_value(json_object_get(
		json_object_get(json_object_get(body, "template"), "language"), "code"));
}

/* Recipients reached within the window; caller holds the lock. */
static long long limit_used(struct sa_account *ac, long long now)
{
	long long n = 0;
	const char *k;
	json_t *v;
	json_object_foreach(ac->reached, k, v) {
		(void)k;
		if (json_integer_value(v) > now - ac->window_ms)
			n++;
	}
	return n;
}

/* obj[key] += 1 (an integer, created at 0). */
static void bump(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	if (json_is_integer(v))
		json_integer_set(v, json_integer_value(v) + 1);
	else
		json_object_set_new(obj, key, json_integer(1));
}

/* refusals[code] += 1 (lock held). */
static void count_refusal(struct sa_account *ac, long code)
{
	char c[24];
	snprintf(c, sizeof c, "%ld", code);
	bump(ac->refusals, c);
}

bool sa_account_refuse(struct sa_server *srv, const json_t *body, struct sa_refusal *out)
{
	struct sa_account *ac = &srv->account;
	const char *to = body_to(body), *name = body_name(body);
	char l[32];
	norm_lang(body_lang(body), l);
	const struct sa_refusal *ref = NULL;
	long long now = now_ms();
	if (name && ac->n_rules) {
		struct resolved r = resolve(ac, name, l);
		if (r.status == SA_TPL_PAUSED)
			ref = &refusal_paused;
		else if (r.status == SA_TPL_DISABLED)
			ref = &refusal_disabled;
	}
	if (!ref && to && ac->limit >= 0) {
		const json_t *t = json_object_get(ac->reached, to);
		bool known = t && json_integer_value(t) > now - ac->window_ms;
		if (!known && limit_used(ac, now) >= ac->limit)
			ref = ac->limit_code == 130429 ? &refusal_limit_130429
						       : &refusal_limit_131049;
	}
	if (!ref && to && ac->pair_ms) {
		const json_t *t = json_object_get(ac->last, to);
		if (t && now - json_integer_value(t) < (long long)ac->pair_ms)
			ref = &refusal_pair;
	}
	if (!ref)
		return false;
	*out = *ref;
	count_refusal(ac, ref->code);
	return true;
}

/* obj[key], an object, created when missing (NULL: out of memory). */
static json_t *child(json_t *obj, const char *key)
{
	json_t *c = json_object_get(obj, key);
	if (json_is_object(c))
		return c;
	c = json_object();
	if (json_object_set_new(obj, key, c) != 0)
		return NULL;
	return c;
}

/* {requests, accepted, by_code} counters. */
static void count_into(json_t *counters, const char *code, bool accepted)
{
	if (!counters)
		return;
	if (!json_object_get(counters, "requests")) {
		json_object_set_new(counters, "requests", json_integer(0));
		json_object_set_new(counters, "accepted", json_integer(0));
		json_object_set_new(counters, "by_code", json_object());
	}
	bump(counters, "requests");
	if (accepted)
		bump(counters, "accepted");
	if (code)
		bump(json_object_get(counters, "by_code"), code);
}

void sa_account_count(struct sa_server *srv, const json_t *body, long code, bool accepted)
{
	struct sa_account *ac = &srv->account;
	const char *to = body_to(body), *name = body_name(body), *lang = body_lang(body);
	char c[24];
	snprintf(c, sizeof c, "%ld", code);
	const char *cp = code ? c : NULL;
	if (name && lang)
		count_into(child(child(ac->templates, name), lang), cp, accepted);
	if (to)
		count_into(child(ac->recipients, to), cp, accepted);
	if (accepted && to) {
		long long now = now_ms();
		json_object_set_new(ac->reached, to, json_integer(now));
		json_object_set_new(ac->last, to, json_integer(now));
	}
}

/* ---- applying account webhooks ---- */

static long long tier_limit(const char *tier, bool *known)
{
	static const struct {
		const char *name;
		long long n;
	} tiers[] = {{"TIER_50", 50},	  {"TIER_250", 250},	{"TIER_1K", 1000},
		     {"TIER_2K", 2000},	  {"TIER_10K", 10000},	{"TIER_100K", 100000},
		     {"TIER_UNLIMITED", -1}};
	*known = false;
	for (size_t i = 0; tier && i < sizeof tiers / sizeof tiers[0]; i++)
		if (strcmp(tier, tiers[i].name) == 0) {
			*known = true;
			return tiers[i].n;
		}
	return 0;
}

void sa_account_apply(struct sa_server *srv, const char *field, const json_t *value)
{
	struct sa_account *ac = &srv->account;
	pthread_mutex_lock(&ac->mu);
	if (strcmp(field, "message_template_status_update") == 0) {
		const char *ev = json_string_value(json_object_get(value, "event"));
		const char *name =
			json_string_value(json_object_get(value, "message_template_name"));
		char l[32];
		norm_lang(json_string_value(json_object_get(value, "message_template_language")),
			  l);
		int st = -1;
		if (ev && (strcmp(ev, "APPROVED") == 0 || strcmp(ev, "REINSTATED") == 0))
			st = SA_TPL_APPROVED;
		else if (ev && strcmp(ev, "PAUSED") == 0)
			st = SA_TPL_PAUSED;
		else if (ev && strcmp(ev, "DISABLED") == 0)
			st = SA_TPL_DISABLED;
		struct sa_rule *r = st >= 0 && name ? add_rule(ac, name, l) : NULL;
		if (r) {
			r->has_status = true;
			r->status = (enum sa_tpl_status)st;
		}
	} else if (strcmp(field, "phone_number_quality_update") == 0) {
		const json_t *m = json_object_get(value, "max_daily_conversations_per_business");
		const char *ms = json_string_value(m);
		bool known = false;
		long long n = 0;
		if (json_is_integer(m)) {
			n = json_integer_value(m);
			known = true;
		} else if (ms && strcmp(ms, "unlimited") == 0) {
			n = -1;
			known = true;
		} else if (ms && *ms && sa_is_digits(ms, strlen(ms)) && strlen(ms) <= 12) {
			n = strtoll(ms, NULL, 10);
			known = true;
		} else {
			n = tier_limit(json_string_value(json_object_get(value, "current_limit")),
				       &known);
		}
		if (known)
			ac->limit = n;
	}
	pthread_mutex_unlock(&ac->mu);
}

/* ---- control endpoints ---- */

static json_t *rule_json(struct sa_account *ac, const struct sa_rule *r)
{
	struct resolved v = resolve(ac, r->name, r->lang);
	return json_pack("{s:s, s:o, s:s, s:s, s:b, s:I}", "name", r->name, "language",
			 r->lang ? json_string(r->lang) : json_null(), "status",
			 status_names[v.status], "category", v.category, "billable",
			 v.billable, "message_template_id",
			 (json_int_t)sa_template_id(r->name, r->lang ? r->lang : ""));
}

static bool is_category(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 32)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || *s == '_'))
			return false;
	return true;
}

json_t *sa_account_template(struct sa_server *srv, const json_t *req, unsigned *status)
{
	static const char *const allowed[] = {"name", "language", "status", "category",
					      "billable", NULL};
	if (!json_is_object(req))
		return sa_refuse(status, 400, "the request must be a JSON object");
	const char *bad = sa_unknown_member(req, allowed);
	if (bad)
		return sa_refuse(status, 400, "unknown member \"%s\"", bad);
	const json_t *name = json_object_get(req, "name");
	if (!json_is_string(name) || json_string_length(name) == 0 ||
	    json_string_length(name) > 512)
		return sa_refuse(status, 400,
				 "\"name\" (the template's name) is required: a non-empty "
				 "string of at most 512 characters");
	const json_t *lang = json_object_get(req, "language");
	char l[32] = "";
	if (lang && !json_is_null(lang)) {
		if (!json_is_string(lang) || json_string_length(lang) > 31)
			return sa_refuse(status, 400,
					 "\"language\" must be a language code such as "
					 "pt_BR or pt-BR, or null");
		norm_lang(json_string_value(lang), l);
		if (!sa_is_language(l))
			return sa_refuse(status, 400,
					 "\"language\" must be a language code such as "
					 "pt_BR or pt-BR, not \"%s\"",
					 json_string_value(lang));
	}
	const json_t *st = json_object_get(req, "status");
	int s = -1;
	if (st) {
		const char *sv = json_string_value(st);
		if (sv && (strcmp(sv, "APPROVED") == 0 || strcmp(sv, "REINSTATED") == 0))
			s = SA_TPL_APPROVED;
		else if (sv && strcmp(sv, "PAUSED") == 0)
			s = SA_TPL_PAUSED;
		else if (sv && strcmp(sv, "DISABLED") == 0)
			s = SA_TPL_DISABLED;
		else
			return sa_refuse(status, 400,
					 "\"status\" must be APPROVED, REINSTATED, PAUSED "
					 "or DISABLED");
	}
	const json_t *cat = json_object_get(req, "category");
	if (cat && (!json_is_string(cat) || !is_category(json_string_value(cat))))
		return sa_refuse(status, 400,
				 "\"category\" must be lowercase letters and _ (at most "
				 "32), e.g. marketing, utility, authentication, service");
	const json_t *bill = json_object_get(req, "billable");
	if (bill && !json_is_boolean(bill))
		return sa_refuse(status, 400, "\"billable\" must be true or false");

	struct sa_account *ac = &srv->account;
	pthread_mutex_lock(&ac->mu);
	struct sa_rule *r = add_rule(ac, json_string_value(name), l[0] ? l : NULL);
	if (!r) {
		pthread_mutex_unlock(&ac->mu);
		return sa_refuse(status, 500, "out of memory");
	}
	if (s >= 0) {
		r->has_status = true;
		r->status = (enum sa_tpl_status)s;
	}
	if (cat) {
		r->has_category = true;
		snprintf(r->category, sizeof r->category, "%s", json_string_value(cat));
	}
	if (bill) {
		r->has_billable = true;
		r->billable = json_is_true(bill);
	}
	json_t *ans = rule_json(ac, r);
	pthread_mutex_unlock(&ac->mu);
	*status = 200;
	return ans;
}

/* An optional whole number member in [lo, hi]: false when present and not. */
static bool opt_range(const json_t *req, const char *key, long long lo, long long hi,
		      bool *given, long long *out)
{
	const json_t *v = json_object_get(req, key);
	*given = v != NULL;
	if (!v)
		return true;
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
		return false;
	*out = (long long)json_integer_value(v);
	return true;
}

static json_t *limits_json(struct sa_account *ac)
{
	return json_pack("{s:I, s:o, s:I, s:I, s:I}", "pair_interval_ms",
			 (json_int_t)ac->pair_ms, "messaging_limit",
			 ac->limit >= 0 ? json_integer(ac->limit) : json_null(), "limit_code",
			 (json_int_t)ac->limit_code, "limit_window_ms",
			 (json_int_t)ac->window_ms, "limit_used",
			 (json_int_t)limit_used(ac, now_ms()));
}

json_t *sa_account_limits(struct sa_server *srv, const json_t *req, unsigned *status)
{
	static const char *const allowed[] = {"pair_interval_ms", "messaging_limit",
					      "limit_code", "limit_window_ms", "reached",
					      "reached_ago_ms", NULL};
	if (!json_is_object(req))
		return sa_refuse(status, 400, "the request must be a JSON object");
	const char *bad = sa_unknown_member(req, allowed);
	if (bad)
		return sa_refuse(status, 400, "unknown member \"%s\"", bad);
	bool g_pair, g_limit = false, g_code, g_window, g_ago;
	long long pair = 0, limit = -1, code = 0, window = 0, ago = 0;
	if (!opt_range(req, "pair_interval_ms", 0, SA_DAY_MS, &g_pair, &pair))
		return sa_refuse(status, 400,
				 "\"pair_interval_ms\" must be a whole number from 0 (off) "
				 "to 86400000");
	const json_t *lj = json_object_get(req, "messaging_limit");
	if (lj) {
		g_limit = true;
		if (json_is_null(lj))
			limit = -1;
		else if (json_is_integer(lj) && json_integer_value(lj) >= 0 &&
			 json_integer_value(lj) <= 1000000000)
			limit = (long long)json_integer_value(lj);
		else
			return sa_refuse(status, 400,
					 "\"messaging_limit\" must be a whole number from 0 "
					 "to 1000000000, or null (no limit)");
	}
	if (!opt_range(req, "limit_code", 0, 1000000, &g_code, &code) ||
	    (g_code && code != 131049 && code != 130429))
		return sa_refuse(status, 400, "\"limit_code\" must be 131049 or 130429");
	if (!opt_range(req, "limit_window_ms", 1, SA_MAX_WINDOW_MS, &g_window, &window))
		return sa_refuse(status, 400,
				 "\"limit_window_ms\" must be a whole number from 1 to "
				 "2592000000");
	if (!opt_range(req, "reached_ago_ms", 0, SA_MAX_WINDOW_MS, &g_ago, &ago))
		return sa_refuse(status, 400,
				 "\"reached_ago_ms\" must be a whole number from 0 to "
				 "2592000000");
	const json_t *reached = json_object_get(req, "reached");
	if (reached) {
		size_t i;
		const json_t *v;
		if (!json_is_array(reached))
			return sa_refuse(status, 400,
					 "\"reached\" must be an array of recipients");
		json_array_foreach(reached, i, v) {
			if (!json_is_string(v) || json_string_length(v) == 0 ||
			    json_string_length(v) > 64)
				return sa_refuse(status, 400,
						 "\"reached\"[%zu] must be a recipient (`to` "
						 "as sent, e.g. +5511987654321)",
						 i);
		}
	}

	struct sa_account *ac = &srv->account;
	pthread_mutex_lock(&ac->mu);
	if (g_pair)
		ac->pair_ms = (unsigned)pair;
	if (g_limit)
		ac->limit = limit;
	if (g_code)
		ac->limit_code = (long)code;
	if (g_window)
		ac->window_ms = window;
	if (reached) {
		long long when = now_ms() - ago;
		size_t i;
		const json_t *v;
		json_array_foreach(reached, i, v) {
			const json_t *t = json_object_get(ac->reached, json_string_value(v));
			if (!t || json_integer_value(t) < when)
				json_object_set_new(ac->reached, json_string_value(v),
						    json_integer(when));
		}
	}
	json_t *ans = limits_json(ac);
	pthread_mutex_unlock(&ac->mu);
	*status = 200;
	return ans;
}

json_t *sa_account_reset(struct sa_server *srv, const json_t *req, unsigned *status)
{
	static const char *const allowed[] = {"reached", "rules", NULL};
	if (!json_is_object(req))
		return sa_refuse(status, 400, "the request must be a JSON object");
	const char *bad = sa_unknown_member(req, allowed);
	if (bad)
		return sa_refuse(status, 400, "unknown member \"%s\"", bad);
	const json_t *reached = json_object_get(req, "reached"),
		     *rules = json_object_get(req, "rules");
	if ((reached && !json_is_boolean(reached)) || (rules && !json_is_boolean(rules)))
		return sa_refuse(status, 400, "\"reached\" and \"rules\" must be true or false");
	struct sa_account *ac = &srv->account;
	pthread_mutex_lock(&ac->mu);
	json_decref(ac->templates);
	json_decref(ac->recipients);
	json_decref(ac->refusals);
	init_counters(ac);
	if (json_is_true(reached)) {
		json_decref(ac->reached);
		json_decref(ac->last);
		init_reach(ac);
	}
	if (json_is_true(rules)) {
		free_rules(ac);
		ac->pair_ms = 0;
		ac->limit = -1;
		ac->limit_code = 131049;
		ac->window_ms = SA_DAY_MS;
	}
	pthread_mutex_unlock(&ac->mu);
	*status = 200;
	return json_pack("{s:b}", "reset", 1);
}

json_t *sa_account_get(struct sa_server *srv)
{
	struct sa_account *ac = &srv->account;
	pthread_mutex_lock(&ac->mu);
	json_t *j = limits_json(ac);
	json_object_set_new(j, "refusals", json_deep_copy(ac->refusals));
	json_object_set_new(j, "templates", json_deep_copy(ac->templates));
	json_object_set_new(j, "recipients", json_deep_copy(ac->recipients));
	json_t *rules = json_array();
	for (size_t i = 0; i < ac->n_rules; i++)
		json_array_append_new(rules, rule_json(ac, &ac->rules[i]));
	json_object_set_new(j, "rules", rules);
	pthread_mutex_unlock(&ac->mu);
	return j;
}
