/* engagement-status's metric families and the readers its collectors
 * share (eng_figures.h). */
#include "eng_figures.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eng_buf.h"
#include "eng_json.h"
#include "eng_status.h"

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

/* ---- output ------------------------------------------------------------------------ */

static void add_label_value(struct eng_buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			eng_buf_addc(b, '\\');
		if (*s == '\n') {
			eng_buf_adds(b, "\\n");
			continue;
		}
		eng_buf_addc(b, *s);
	}
}

char *eng_prometheus_text(const json_t *families)
{
	struct eng_buf b = ENG_BUF_INIT(SIZE_MAX / 2);
	size_t i, j;
	const json_t *fam, *s;
	json_array_foreach(families, i, fam) {
		const char *name = json_string_value(json_object_get(fam, "name"));
		eng_buf_addf(&b, "# HELP %s %s\n# TYPE %s %s\n", name,
			     json_string_value(json_object_get(fam, "help")), name,
			     json_string_value(json_object_get(fam, "type")));
		json_array_foreach(json_object_get(fam, "samples"), j, s) {
			eng_buf_adds(&b, name);
			const json_t *labels = json_object_get(s, "labels");
			if (json_object_size(labels)) {
				const char *k;
				const json_t *v;
				bool first = true;
				eng_buf_addc(&b, '{');
				json_object_foreach((json_t *)labels, k, v) {
					eng_buf_addf(&b, "%s%s=\"", first ? "" : ",", k);
					add_label_value(&b, json_string_value(v));
					eng_buf_addc(&b, '"');
					first = false;
				}
				eng_buf_addc(&b, '}');
			}
			double v = json_real_value(json_object_get(s, "value"));
			if (v == floor(v) && fabs(v) < 1e15)
				eng_buf_addf(&b, " %.0f\n", v);
			else
				eng_buf_addf(&b, " %.10g\n", v);
		}
	}
	return eng_buf_detach(&b);
}

/* Write text to path (the file of option opt) atomically: path.PID in the
 * same folder, then rename. The previous file stays when anything fails. */
enum eng_status eng_fig_write_file(const char *opt, const char *path, const char *text,
				   struct eng_err *err)
{
	char tmp[4096];
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.%ld", path, (long)getpid()) >= sizeof(tmp))
		return eng_err_set(err, ENG_ECONFIG, "%s is too long", opt);
	FILE *out = fopen(tmp, "w");
	if (!out)
		return eng_err_set(err, ENG_ECANTCREAT, "cannot write %.300s: %s (the previous "
				   "file is kept)",
				   tmp, strerror(errno));
	size_t n = strlen(text);
	bool ok = fwrite(text, 1, n, out) == n;
	ok = fflush(out) == 0 && ok;
	ok = fsync(fileno(out)) == 0 && ok;
	int e = errno;
	ok = fclose(out) == 0 && ok;
	if (!ok || rename(tmp, path) != 0) {
		e = ok ? errno : e;
		unlink(tmp);
		return eng_err_set(err, ENG_ECANTCREAT, "cannot write %.300s: %s (the previous "
				   "file is kept)",
				   path, strerror(e));
	}
	return ENG_OK;
}
