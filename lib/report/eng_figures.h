/*
 * engagement-status's figures as metric families in JSON (the exposition
 * is written from them), and the small readers its collectors share. For
 * lib/report alone.
 */
#ifndef ENG_FIGURES_H
#define ENG_FIGURES_H

#include <jansson.h>
#include <libpq-fe.h>

#include "eng_job.h"

struct figures {
	json_t *families; /* [{name, type, help, samples: [{labels, value}]}] */
	eng_time now;     /* the database's clock */
};

/* A new family; its samples array (owned by the family). */
json_t *eng_fig_family(struct figures *f, const char *name, const char *type,
		       const char *help);

/* eng_fig_sample(samples, value, "label", "value", ..., NULL) */
void eng_fig_sample(json_t *samples, double v, ...);

/* A column as a number (0 for NULL), as text ("" for NULL), or as JSON
 * (null for NULL; masked like a log value when words: text people wrote). */
double eng_fig_num(const PGresult *r, int row, const char *col);
const char *eng_fig_txt(const PGresult *r, int row, const char *col);
json_t *eng_fig_json(const PGresult *r, int row, const char *col, bool words);

/* A query of the figures (its error prefixed), or NULL. */
PGresult *eng_fig_query(const struct eng_job *job, const char *sql, int n,
			const char *const *p, struct eng_err *err);

/* Write text to path (the file of option opt) atomically: path.PID in the
 * same folder, then rename. The previous file stays when anything fails
 * (ENG_ECANTCREAT). */
enum eng_status eng_fig_write_file(const char *opt, const char *path, const char *text,
				   struct eng_err *err);

/* What the account's figures give the checks. */
struct eng_account {
	double pause_age;      /* the oldest pause in force, seconds (0: none) */
	double paused_templates; /* templates Meta reports PAUSED */
	double red_templates;  /* templates whose quality is RED */
	double limit_used;     /* percent of the messaging limit used in 24 h (0: none) */
};

/* The pauses in force, the templates as Meta reports them, the messaging
 * limit and its use, what the last day's messages were priced: metric
 * families and summary keys pauses, templates, messaging_limit and
 * pricing_last_day. Inside the caller's read-only transaction. */
enum eng_status eng_account_figures(const struct eng_job *job, struct figures *f,
				    json_t *sum, struct eng_account *got,
				    struct eng_err *err);

#endif
