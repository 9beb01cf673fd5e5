/*
 * engagement-status's report page (--html): one self-contained HTML file
 * for people, with no script and nothing fetched from anywhere (the style
 * inline, the charts inline SVG), drawn from the run's summary alone: what
 * the page shows is what the summary says, from the same queries.
 *
 * The figures the page shows that the summary does not always carry are
 * collected into it first (eng_page_figures), read-only, in the run's one
 * snapshot. Every figure on the page is an element with data-figure, the
 * JSON pointer (RFC 6901) of its value in the summary, and data-format, how
 * the value is written:
 *   int       an integer ("—" for null)
 *   num       a whole number as one, else one decimal ("never" for null)
 *   duration  seconds as "12.5s", "3m 05s", "4h 02m" or "2d 07h" (whole
 *             seconds, minutes, hours and days, cut, not rounded, past a
 *             minute); "never" for null or a negative value
 *   text      the string, HTML-escaped ("—" for null)
 * so that a test can read the page back and compare it with the summary.
 */
#ifndef ENG_PAGE_H
#define ENG_PAGE_H

#include <jansson.h>
#include <stddef.h>

#include "eng_job.h"

#define ENG_PAGE_FUNNEL_DAYS 7 /* the funnel: messages queued in these days */
#define ENG_PAGE_HOURS 48      /* sends and failures per hour */
#define ENG_PAGE_PREF_DAYS 14  /* opt-outs and opt-ins per day */
#define ENG_PAGE_RUNS 5        /* each job's last runs */

/* Add to summary what the page shows and the summary lacks: funnel_7d,
 * hourly_48h, preference_changes_14d and recent_runs (of programs, in that
 * order). Inside the caller's read-only transaction. */
enum eng_status eng_page_figures(const struct eng_job *job, const char *const *programs,
				 size_t nprograms, json_t *summary, struct eng_err *err);

/* The page, from a summary that eng_page_figures completed; caller frees. */
char *eng_page_html(const json_t *summary);

#endif
