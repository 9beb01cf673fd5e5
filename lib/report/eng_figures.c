/* engagement-status's metric families and the readers its collectors
 * share (eng_figures.h). */
#include "eng_figures.h"

#include <stdarg.h>
#include <stdlib.h>

#include "eng_json.h"

json_t *eng_fig_family(struct figures *f, const char *name, const char *type,
		       const char *help)
{
	json_t *samples = json_array();
	json_array_append_new(f->families, json_pack("{s:s, s:s, s:s, s:o}", "name", name,
						     "type", type, "help", help, "samples",
						     samples));
	return samples;
}

void eng_fig_sample(json_t *samples, double v, ...)
{
	json_t *labels = json_object();
	va_list ap;
	va_start(ap, v);
	for (const char *k; (k = va_arg(ap, const char *)) != NULL;) {
		const char *val = va_arg(ap, const char *);
		json_object_set_new(labels, k, json_string(val ? val : ""));
	}
	va_end(ap);
	json_array_append_new(samples, json_pack("{s:o, s:f}", "labels", labels, "value", v));
}

double eng_fig_num(const PGresult *r, int row, const char *col)
{
	int c = PQfnumber(r, col);
	return c < 0 || PQgetisnull(r, row, c) ? 0 : atof(PQgetvalue(r, row, c));
}

const char *eng_fig_txt(const PGresult *r, int row, const char *col)
{
	int c = PQfnumber(r, col);
	return c < 0 || PQgetisnull(r, row, c) ? "" : PQgetvalue(r, row, c);
}

json_t *eng_fig_json(const PGresult *r, int row, const char *col, bool words)
{
	int c = PQfnumber(r, col);
	if (c < 0 || PQgetisnull(r, row, c))
		return json_null();
	return words ? eng_json_masked(PQgetvalue(r, row, c)) : eng_json_str(PQgetvalue(r, row, c));
}

PGresult *eng_fig_query(const struct eng_job *job, const char *sql, int n,
			const char *const *p, struct eng_err *err)
{
	PGresult *r = eng_db_query(job->db, sql, n, p, err);
	if (!r)
		eng_err_prefix(err, "could not read the figures");
	return r;
}
