/* engagement-status's report page (eng_page.h): one HTML file, its style
 * inline, its charts inline SVG, no script and no address of anything. */
#include "eng_page.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_buf.h"

struct page {
	struct eng_buf b;
	const json_t *root; /* the summary */
};

/* ---- values ---------------------------------------------------------------------- */

/* The value at a JSON pointer (RFC 6901), or NULL. */
static const json_t *pointer(const json_t *v, const char *ptr)
{
	char seg[256];
	while (v && *ptr == '/') {
		size_t n = 0;
		for (ptr++; *ptr && *ptr != '/' && n + 1 < sizeof(seg); ptr++) {
			char c = *ptr;
			if (c == '~' && (ptr[1] == '0' || ptr[1] == '1'))
				c = *++ptr == '0' ? '~' : '/';
			seg[n++] = c;
		}
		seg[n] = 0;
		v = json_is_array(v) ? json_array_get(v, strtoul(seg, NULL, 10))
				     : json_object_get(v, seg);
	}
	return v;
}

/* Append a pointer's segment (~ and / escaped). */
static void segment(struct eng_buf *b, const char *s)
{
	eng_buf_addc(b, '/');
	for (; *s; s++)
		if (*s == '~' || *s == '/')
			eng_buf_adds(b, *s == '~' ? "~0" : "~1");
		else
			eng_buf_addc(b, *s);
}

static void esc(struct eng_buf *b, const char *s)
{
	for (; *s; s++)
		switch (*s) {
		case '&': eng_buf_adds(b, "&amp;"); break;
		case '<': eng_buf_adds(b, "&lt;"); break;
		case '>': eng_buf_adds(b, "&gt;"); break;
		case '"': eng_buf_adds(b, "&quot;"); break;
		case '\'': eng_buf_adds(b, "&#39;"); break;
		default: eng_buf_addc(b, *s);
		}
}

static void duration(struct eng_buf *b, double s)
{
	long t = (long)s;
	if (s < 60)
		eng_buf_addf(b, "%.1fs", floor(s * 10) / 10);
	else if (t < 3600)
		eng_buf_addf(b, "%ldm %02lds", t / 60, t % 60);
	else if (t < 86400)
		eng_buf_addf(b, "%ldh %02ldm", t / 3600, t % 3600 / 60);
	else
		eng_buf_addf(b, "%ldd %02ldh", t / 86400, t % 86400 / 3600);
}

/* A value as data-format says (eng_page.h). */
static void value(struct eng_buf *b, const json_t *v, const char *fmt)
{
	double x = json_number_value(v);
	if (strcmp(fmt, "text") == 0)
		esc(b, json_is_string(v) ? json_string_value(v) : "—");
	else if (strcmp(fmt, "int") == 0 && json_is_number(v))
		eng_buf_addf(b, "%.0f", x);
	else if (strcmp(fmt, "int") == 0)
		eng_buf_adds(b, "—");
	else if (!json_is_number(v) || (strcmp(fmt, "duration") == 0 && x < 0))
		eng_buf_adds(b, "never");
	else if (strcmp(fmt, "duration") == 0)
		duration(b, x);
	else if (x == floor(x))
		eng_buf_addf(b, "%.0f", x);
	else
		eng_buf_addf(b, "%.1f", x);
}

/* <tag class="cls" data-figure="ptr" data-format="fmt">value</tag> */
static void fig_in(struct page *p, const char *tag, const char *cls, const char *ptr,
		   const char *fmt)
{
	eng_buf_addf(&p->b, "<%s class=\"%s\" data-figure=\"", tag, cls);
	esc(&p->b, ptr);
	eng_buf_addf(&p->b, "\" data-format=\"%s\">", fmt);
	value(&p->b, pointer(p->root, ptr), fmt);
	eng_buf_addf(&p->b, "</%s>", tag);
}

/* A figure in a table cell: fig(p, "int", "/queue/%s", ...) */
static void fig(struct page *p, const char *fmt, const char *ptrfmt, ...)
	__attribute__((format(printf, 3, 4)));
static void fig(struct page *p, const char *fmt, const char *ptrfmt, ...)
{
	char ptr[512];
	va_list ap;
	va_start(ap, ptrfmt);
	vsnprintf(ptr, sizeof(ptr), ptrfmt, ap);
	va_end(ap);
	fig_in(p, "td", strcmp(fmt, "text") == 0 ? "t" : "n", ptr, fmt);
}

/* The pointer base + one escaped segment per key (NULL ends). */
static char *ptr_of(const char *base, ...)
{
	struct eng_buf b = ENG_BUF_INIT(4096);
	eng_buf_adds(&b, base);
	va_list ap;
	va_start(ap, base);
	for (const char *k; (k = va_arg(ap, const char *)) != NULL;)
		segment(&b, k);
	va_end(ap);
	return eng_buf_detach(&b);
}

static double number_at(const struct page *p, const char *ptr)
{
	return json_number_value(pointer(p->root, ptr));
}

/* ---- drawing --------------------------------------------------------------------- */

/* A horizontal bar, value of max, in a cell. */
static void bar(struct page *p, double v, double max, const char *cls)
{
	double w = max > 0 ? 300.0 * v / max : 0;
	eng_buf_addf(&p->b,
		     "<td><svg class=\"bar\" width=\"300\" height=\"14\" role=\"img\">"
		     "<rect width=\"300\" height=\"14\" class=\"track\"/>"
		     "<rect width=\"%.1f\" height=\"14\" class=\"%s\"/></svg></td>",
		     w, cls);
}

/* Columns: for each element of the array at base, one column per key,
 * side by side; the label key's first and last values under the chart. */
static void columns(struct page *p, const char *base, const char *label,
		    const char *const *keys, const char *const *cls, size_t nkeys)
{
	const json_t *a = pointer(p->root, base);
	size_t n = json_array_size(a);
	double top = 0;
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < nkeys; k++)
			top = fmax(top, json_number_value(json_object_get(json_array_get(a, i),
									  keys[k])));
	double max = fmax(top, 1);
	double slot = 8.0 * (double)nkeys + 4, height = 120;
	eng_buf_addf(&p->b, "<svg class=\"cols\" width=\"%.0f\" height=\"%.0f\" role=\"img\">",
		     slot * (double)n, height);
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < nkeys; k++) {
			char ptr[256];
			snprintf(ptr, sizeof(ptr), "%s/%zu/%s", base, i, keys[k]);
			double v = number_at(p, ptr), h = height * v / max;
			eng_buf_addf(&p->b,
				     "<rect x=\"%.0f\" y=\"%.1f\" width=\"7\" height=\"%.1f\""
				     " class=\"%s\" data-figure=\"%s\" data-format=\"int\""
				     " data-value=\"%.0f\"><title>",
				     slot * (double)i + 8.0 * (double)k, height - h, h, cls[k], ptr, v);
			esc(&p->b, json_string_value(json_object_get(json_array_get(a, i), label)));
			eng_buf_addf(&p->b, " %s: %.0f</title></rect>", keys[k], v);
		}
	eng_buf_adds(&p->b, "</svg>");
	if (n > 0) {
		eng_buf_adds(&p->b, "<p class=\"axis\">");
		esc(&p->b, json_string_value(json_object_get(json_array_get(a, 0), label)));
		eng_buf_adds(&p->b, " … ");
		esc(&p->b, json_string_value(json_object_get(json_array_get(a, n - 1), label)));
		eng_buf_addf(&p->b, "; the tallest column %.0f</p>", top);
	}
}

static void legend(struct page *p, const char *const *keys, const char *const *cls, size_t n)
{
	eng_buf_adds(&p->b, "<p class=\"legend\">");
	for (size_t k = 0; k < n; k++)
		eng_buf_addf(&p->b, "<span class=\"key %s\"></span> %s ", cls[k], keys[k]);
	eng_buf_adds(&p->b, "</p>");
}

static void th(struct page *p, const char *const *heads)
{
	eng_buf_adds(&p->b, "<table><tr>");
	for (; *heads; heads++)
		eng_buf_addf(&p->b, "<th>%s</th>", *heads);
	eng_buf_adds(&p->b, "</tr>");
}

static void none(struct page *p, const char *what)
{
	eng_buf_addf(&p->b, "<p class=\"none\">%s</p>", what);
}

/* ---- sections -------------------------------------------------------------------- */

static void checks(struct page *p)
{
	const json_t *a = json_object_get(p->root, "checks");
	eng_buf_adds(&p->b, "<section id=\"checks\"><h2>Checks</h2>");
	th(p, (const char *const[]){"check", "crossed", "value", "threshold", NULL});
	for (size_t i = 0; i < json_array_size(a); i++) {
		bool crossed = json_is_true(json_object_get(json_array_get(a, i), "crossed"));
		eng_buf_addf(&p->b, "<tr class=\"%s\">", crossed ? "bad" : "good");
		fig(p, "text", "/checks/%zu/check", i);
		eng_buf_addf(&p->b, "<td>%s</td>", crossed ? "crossed" : "ok");
		fig(p, "num", "/checks/%zu/value", i);
		fig(p, "num", "/checks/%zu/threshold", i);
		eng_buf_adds(&p->b, "</tr>");
	}
	eng_buf_adds(&p->b, "</table></section>");
}

static void codes(struct page *p, size_t i, const char *key, const char *what)
{
	char base[64];
	snprintf(base, sizeof(base), "/funnel_7d/%zu/%s", i, key);
	size_t n = json_array_size(pointer(p->root, base));
	if (n == 0)
		return;
	eng_buf_addf(&p->b, "<h4>%s by error code</h4>", what);
	th(p, (const char *const[]){"code", "messages", NULL});
	for (size_t j = 0; j < n; j++) {
		eng_buf_adds(&p->b, "<tr>");
		fig(p, "text", "%s/%zu/code", base, j);
		fig(p, "int", "%s/%zu/messages", base, j);
		eng_buf_adds(&p->b, "</tr>");
	}
	eng_buf_adds(&p->b, "</table>");
}

static void funnel(struct page *p)
{
	static const char *const stages[] = {"queued", "sent", "delivered", "read", "failed",
					     "undelivered", "blocked", "cancelled", "waiting"};
	const json_t *a = json_object_get(p->root, "funnel_7d");
	eng_buf_addf(&p->b, "<section id=\"funnel\"><h2>Delivery funnel, messages queued in "
			    "the last %d days</h2>", ENG_PAGE_FUNNEL_DAYS);
	if (json_array_size(a) == 0)
		none(p, "No message queued.");
	for (size_t i = 0; i < json_array_size(a); i++) {
		char ptr[64];
		snprintf(ptr, sizeof(ptr), "/funnel_7d/%zu/message_type", i);
		fig_in(p, "h3", "t", ptr, "text");
		snprintf(ptr, sizeof(ptr), "/funnel_7d/%zu/queued", i);
		double queued = number_at(p, ptr);
		th(p, (const char *const[]){"stage", "", "messages", NULL});
		for (size_t s = 0; s < sizeof(stages) / sizeof(*stages); s++) {
			snprintf(ptr, sizeof(ptr), "/funnel_7d/%zu/%s", i, stages[s]);
			eng_buf_addf(&p->b, "<tr><td>%s</td>", stages[s]);
			bar(p, number_at(p, ptr), queued,
			    s >= 4 && s <= 5 ? "fail" : s > 5 ? "other" : "ok");
			fig(p, "int", "%s", ptr);
			eng_buf_adds(&p->b, "</tr>");
		}
		eng_buf_adds(&p->b, "</table>");
		codes(p, i, "failed_by_code", "Failed");
		codes(p, i, "undelivered_by_code", "Undelivered");
	}
	eng_buf_adds(&p->b, "</section>");
}

static void hourly(struct page *p)
{
	static const char *const keys[] = {"sent", "failed"}, *const cls[] = {"ok", "fail"};
	static const char *const outcomes[] = {"sent", "failed", "retried", "deferred",
					       "blocked", "cancelled", "handed_back",
					       "delivered", "read", "undelivered"};
	eng_buf_addf(&p->b, "<section id=\"hourly\"><h2>Sends and failures per hour, the last "
			    "%d hours (UTC)</h2>", ENG_PAGE_HOURS);
	legend(p, keys, cls, 2);
	columns(p, "/hourly_48h", "hour", keys, cls, 2);
	th(p, (const char *const[]){"outcome", "last hour", "last day", NULL});
	for (size_t k = 0; k < sizeof(outcomes) / sizeof(*outcomes); k++) {
		eng_buf_addf(&p->b, "<tr><td>%s</td>", outcomes[k]);
		fig(p, "int", "/last_hour/%s", outcomes[k]);
		fig(p, "int", "/last_day/%s", outcomes[k]);
		eng_buf_adds(&p->b, "</tr>");
	}
	eng_buf_adds(&p->b, "</table></section>");
}

static void queue(struct page *p)
{
	const json_t *q = json_object_get(p->root, "queue");
	eng_buf_adds(&p->b, "<section id=\"queue\"><h2>Queue by status</h2>");
	th(p, (const char *const[]){"status", "message type", "messages", NULL});
	const char *status;
	const json_t *by;
	json_object_foreach((json_t *)q, status, by) {
		if (!json_is_object(by))
			continue;
		const char *type;
		const json_t *n;
		json_object_foreach((json_t *)by, type, n) {
			char *ptr = ptr_of("/queue", status, type, NULL);
			bool est = strcmp(status, "finished_estimate") == 0;
			eng_buf_adds(&p->b, "<tr><td>");
			esc(&p->b, est ? type : status);
			eng_buf_adds(&p->b, "</td><td>");
			esc(&p->b, est ? "all (an estimate)" : type);
			eng_buf_adds(&p->b, "</td>");
			fig(p, "int", "%s", ptr);
			eng_buf_adds(&p->b, "</tr>");
			free(ptr);
		}
	}
	eng_buf_adds(&p->b, "<tr><td colspan=\"2\">oldest due message</td>");
	fig(p, "duration", "/queue/oldest_due_seconds");
	eng_buf_adds(&p->b, "</tr><tr><td colspan=\"2\">expired leases</td>");
	fig(p, "int", "/queue/expired_leases");
	eng_buf_adds(&p->b, "</tr></table></section>");
}

static void preferences(struct page *p)
{
	static const char *const keys[] = {"opt_out", "opt_in"}, *const cls[] = {"fail", "ok"};
	eng_buf_addf(&p->b, "<section id=\"preferences\"><h2>Opt-outs and opt-ins per day, "
			    "the last %d days (UTC)</h2>", ENG_PAGE_PREF_DAYS);
	legend(p, keys, cls, 2);
	columns(p, "/preference_changes_14d", "day", keys, cls, 2);
	eng_buf_adds(&p->b, "</section>");
}

static void pauses(struct page *p)
{
	static const char *const cols[] = {"scope", "value", "source", "reason", "paused_by",
					   "paused_at", "until"};
	size_t n = json_array_size(json_object_get(p->root, "pauses"));
	eng_buf_adds(&p->b, "<section id=\"pauses\"><h2>Pauses in force</h2>");
	if (n == 0) {
		none(p, "Sending is not paused.");
		eng_buf_adds(&p->b, "</section>");
		return;
	}
	th(p, (const char *const[]){"scope", "value", "source", "reason", "by", "since",
				    "until", "age", NULL});
	for (size_t i = 0; i < n; i++) {
		eng_buf_adds(&p->b, "<tr>");
		for (size_t c = 0; c < sizeof(cols) / sizeof(*cols); c++)
			fig(p, "text", "/pauses/%zu/%s", i, cols[c]);
		fig(p, "duration", "/pauses/%zu/age_seconds", i);
		eng_buf_adds(&p->b, "</tr>");
	}
	eng_buf_adds(&p->b, "</table></section>");
}

/* A table of one object's counts, each key a row. */
static void counts(struct page *p, const char *base, const char *head)
{
	const json_t *o = pointer(p->root, base);
	const char *k;
	const json_t *v;
	th(p, (const char *const[]){head, "", NULL});
	json_object_foreach((json_t *)o, k, v) {
		if (!json_is_integer(v))
			continue;
		char *ptr = ptr_of(base, k, NULL);
		eng_buf_adds(&p->b, "<tr><td>");
		esc(&p->b, k);
		eng_buf_adds(&p->b, "</td>");
		fig(p, "int", "%s", ptr);
		eng_buf_adds(&p->b, "</tr>");
		free(ptr);
	}
	eng_buf_adds(&p->b, "</table>");
}

static void templates(struct page *p)
{
	static const char *const cols[] = {"template_key", "locale", "provider_status",
					   "quality", "status_changed_at", "quality_changed_at"};
	const json_t *a = pointer(p->root, "/templates/list");
	eng_buf_adds(&p->b, "<section id=\"templates\"><h2>Templates as Meta reports them</h2>"
			    "<div class=\"row\">");
	counts(p, "/templates/by_status", "status");
	counts(p, "/templates/by_quality", "quality");
	eng_buf_adds(&p->b, "</div>");
	th(p, (const char *const[]){"template", "locale", "status", "quality", "status since",
				    "quality since", NULL});
	for (size_t i = 0; i < json_array_size(a); i++) {
		const json_t *t = json_array_get(a, i);
		const char *st = json_string_value(json_object_get(t, "provider_status"));
		const char *q = json_string_value(json_object_get(t, "quality"));
		bool bad = (st && strcmp(st, "PAUSED") == 0) || (q && strcmp(q, "RED") == 0);
		eng_buf_addf(&p->b, "<tr class=\"%s\">", bad ? "bad" : "good");
		for (size_t c = 0; c < sizeof(cols) / sizeof(*cols); c++)
			fig(p, "text", "/templates/list/%zu/%s", i, cols[c]);
		eng_buf_adds(&p->b, "</tr>");
	}
	eng_buf_adds(&p->b, "</table></section>");
}

static void limit(struct page *p)
{
	double used = number_at(p, "/messaging_limit/used_percent");
	eng_buf_adds(&p->b, "<section id=\"limit\"><h2>Messaging limit, the last 24 hours</h2>");
	th(p, (const char *const[]){"tier", "people per 24 h", "reached", "", "used, %", NULL});
	eng_buf_adds(&p->b, used > 80 ? "<tr class=\"bad\">" : "<tr>");
	fig(p, "text", "/messaging_limit/tier");
	fig(p, "int", "/messaging_limit/max_recipients_24h");
	fig(p, "int", "/messaging_limit/reached_24h");
	bar(p, fmin(used, 100), 100, used > 80 ? "fail" : "ok");
	fig(p, "num", "/messaging_limit/used_percent");
	eng_buf_adds(&p->b, "</tr></table><h3>Priced in the last day</h3>");
	th(p, (const char *const[]){"category", "sent", "billable", NULL});
	const char *cat;
	const json_t *v;
	json_object_foreach(json_object_get(p->root, "pricing_last_day"), cat, v) {
		char *sent = ptr_of("/pricing_last_day", cat, "sent", NULL);
		char *bill = ptr_of("/pricing_last_day", cat, "billable", NULL);
		eng_buf_adds(&p->b, "<tr><td>");
		esc(&p->b, cat);
		eng_buf_adds(&p->b, "</td>");
		fig(p, "int", "%s", sent);
		fig(p, "int", "%s", bill);
		eng_buf_adds(&p->b, "</tr>");
		free(sent);
		free(bill);
	}
	eng_buf_adds(&p->b, "</table></section>");
}

static void jobs(struct page *p)
{
	const json_t *a = json_object_get(p->root, "recent_runs");
	eng_buf_addf(&p->b, "<section id=\"jobs\"><h2>Jobs, their last %d runs</h2>",
		     ENG_PAGE_RUNS);
	for (size_t i = 0; i < json_array_size(a); i++) {
		char ptr[64];
		snprintf(ptr, sizeof(ptr), "/recent_runs/%zu/program", i);
		fig_in(p, "h3", "t", ptr, "text");
		size_t n = json_array_size(json_object_get(json_array_get(a, i), "runs"));
		if (n == 0) {
			none(p, "Never ran.");
			continue;
		}
		th(p, (const char *const[]){"started", "took", "status", "exit code", NULL});
		for (size_t j = 0; j < n; j++) {
			eng_buf_adds(&p->b, "<tr>");
			fig(p, "text", "/recent_runs/%zu/runs/%zu/started", i, j);
			fig(p, "duration", "/recent_runs/%zu/runs/%zu/duration_seconds", i, j);
			fig(p, "text", "/recent_runs/%zu/runs/%zu/status", i, j);
			fig(p, "int", "/recent_runs/%zu/runs/%zu/exit_code", i, j);
			eng_buf_adds(&p->b, "</tr>");
		}
		eng_buf_adds(&p->b, "</table>");
	}
	eng_buf_adds(&p->b, "</section>");
}

static const char style[] =
	"body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;max-width:70em}"
	"h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;margin-top:2em}"
	"h3{font-size:1em}table{border-collapse:collapse;margin:.5em 1em .5em 0}"
	"td,th{padding:2px 8px;text-align:left}td.n{text-align:right}"
	"tr.bad td{background:#fde2e1}.none{color:#666}.axis,.legend{color:#666;margin:0}"
	".row{display:flex;flex-wrap:wrap}.track{fill:#eee}.ok{fill:#3a7d44;background:#3a7d44}"
	".fail{fill:#c0392b;background:#c0392b}.other{fill:#888;background:#888}"
	".key{display:inline-block;width:10px;height:10px}svg.cols{display:block}";

char *eng_page_html(const json_t *summary)
{
	struct page p = {ENG_BUF_INIT(SIZE_MAX / 2), summary};
	eng_buf_addf(&p.b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
			   "<title>engagement status</title><style>%s</style></head><body>"
			   "<h1>engagement status</h1><p>As of ",
		     style);
	fig_in(&p, "span", "t", "/now", "text");
	eng_buf_adds(&p.b, " (the database's clock). Crossed checks: ");
	fig_in(&p, "span", "n", "/checks_failed", "int");
	eng_buf_adds(&p.b, " (counted with --check).</p>");
	checks(&p);
	funnel(&p);
	hourly(&p);
	queue(&p);
	preferences(&p);
	pauses(&p);
	templates(&p);
	limit(&p);
	jobs(&p);
	eng_buf_adds(&p.b, "<section id=\"people\"><h2>People by state</h2>");
	counts(&p, "/users", "state");
	eng_buf_adds(&p.b, "</section></body></html>\n");
	return eng_buf_detach(&p.b);
}
