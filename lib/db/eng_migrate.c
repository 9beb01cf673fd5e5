#include "eng_migrate.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "eng_buf.h"
#include "eng_crypto.h"
#include "eng_json.h"
#include "eng_log.h"
#include "eng_sql.h"
#include "eng_time.h"

#define MAX_FILE_BYTES (16 * 1024 * 1024)

/* ---- loading ---------------------------------------------------------- */

/* "0001_init.up.sql" -> version 1, name "init", up. 0 or -1. */
static int parse_filename(const char *fn, int *version, char *name,
			  size_t namesz, bool *up)
{
	const char *p = fn;
	long v = 0;
	if (!isdigit((unsigned char)*p))
		return -1;
	while (isdigit((unsigned char)*p)) {
		v = v * 10 + (*p - '0');
		if (v > 99999999)
			return -1;
		p++;
	}
	if (*p++ != '_' || v <= 0)
		return -1;
	const char *n0 = p;
	while (islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_')
		p++;
	size_t nlen = (size_t)(p - n0);
	if (nlen == 0 || nlen >= namesz)
		return -1;
	if (strcmp(p, ".up.sql") == 0)
		*up = true;
	else if (strcmp(p, ".down.sql") == 0)
		*up = false;
	else
		return -1;
	memcpy(name, n0, nlen);
	name[nlen] = '\0';
	*version = (int)v;
	return 0;
}

static enum eng_status add_file(struct eng_migration_set *set,
				const char *fn, const char *display,
				const char *text, struct eng_err *err)
{
	int version;
	char name[128];
	bool up;
	if (parse_filename(fn, &version, name, sizeof(name), &up))
		return ENG_OK; /* not a migration file: ignored */

	struct eng_migration *m = NULL;
	for (size_t i = 0; i < set->n; i++)
		if (set->v[i].version == version)
			m = &set->v[i];
	if (m && strcmp(m->name, name) != 0)
		return eng_err_set(err, ENG_EDATA,
				   "two migrations share version %d: \"%s\" and "
				   "\"%s\"",
				   version, m->name, name);
	if (!m) {
		ENG_GROW(set->v, set->n, set->cap);
		m = &set->v[set->n++];
		memset(m, 0, sizeof(*m));
		m->version = version;
		m->name = eng_xstrdup(name);
	}
	if (up) {
		m->up_file = eng_xstrdup(display);
		m->up_sql = eng_xstrdup(text);
		eng_sha256_text_hex(text, m->checksum);
	} else {
		m->down_file = eng_xstrdup(display);
		m->down_sql = eng_xstrdup(text);
	}
	return ENG_OK;
}

static int by_version(const void *a, const void *b)
{
	const struct eng_migration *x = a, *y = b;
	return (x->version > y->version) - (x->version < y->version);
}

static enum eng_status finish_load(struct eng_migration_set *set,
				   struct eng_err *err)
{
	qsort(set->v, set->n, sizeof(*set->v), by_version);
	for (size_t i = 0; i < set->n; i++)
		if (!set->v[i].up_sql)
			return eng_err_set(err, ENG_EDATA,
					   "migration %04d_%s has a down file but "
					   "no up file",
					   set->v[i].version, set->v[i].name);
	return ENG_OK;
}

enum eng_status eng_mig_load_embedded(struct eng_migration_set *set,
				      struct eng_err *err)
{
	set->v = NULL;
	set->n = set->cap = 0;
	for (const struct eng_embedded_sql *e = eng_embedded_sql; e->name; e++)
		if (add_file(set, e->name, e->name, e->text, err))
			return err->status;
	return finish_load(set, err);
}

static enum eng_status read_file(const char *path, char **out,
				 struct eng_err *err)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return eng_err_set(err, ENG_ECONFIG, "cannot read %s: %s", path,
				   strerror(errno));
	struct eng_buf b = ENG_BUF_INIT(MAX_FILE_BYTES);
	int rc = eng_buf_read(&b, f);
	fclose(f);
	enum eng_status st = ENG_OK;
	if (rc == 0 && memchr(eng_buf_str(&b), '\0', b.len))
		st = eng_err_set(err, ENG_EDATA, "%s contains a NUL byte", path);
	else if (rc == EFBIG)
		st = eng_err_set(err, ENG_EDATA, "%s is larger than %d bytes", path,
				 MAX_FILE_BYTES);
	else if (rc)
		st = eng_err_set(err, ENG_ECONFIG, "cannot read %s: %s", path, strerror(rc));
	if (st)
		eng_buf_release(&b);
	else
		*out = eng_buf_detach(&b);
	return st;
}

enum eng_status eng_mig_load_dir(struct eng_migration_set *set,
				 const char *dir, struct eng_err *err)
{
	set->v = NULL;
	set->n = set->cap = 0;
	DIR *d = opendir(dir);
	if (!d)
		return eng_err_set(err, ENG_ECONFIG,
				   "cannot open migrations folder %s: %s", dir,
				   strerror(errno));
	struct dirent *de;
	enum eng_status st = ENG_OK;
	while (st == ENG_OK && (de = readdir(d)) != NULL) {
		int v;
		char name[128];
		bool up;
		if (parse_filename(de->d_name, &v, name, sizeof(name), &up))
			continue;
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		char *text = NULL;
		st = read_file(path, &text, err);
		if (st == ENG_OK)
			st = add_file(set, de->d_name, path, text, err);
		free(text);
	}
	closedir(d);
	if (st)
		return st;
	return finish_load(set, err);
}

void eng_mig_set_release(struct eng_migration_set *set)
{
	for (size_t i = 0; i < set->n; i++) {
		struct eng_migration *m = &set->v[i];
		free(m->name);
		free(m->up_file);
		free(m->down_file);
		free(m->up_sql);
		free(m->down_sql);
	}
	free(set->v);
	set->v = NULL;
	set->n = set->cap = 0;
}

/* ---- state in the database -------------------------------------------- */

struct applied {
	int version;
	char *name;
	char checksum[65];
	char *applied_at;
};

struct applied_list {
	struct applied *v;
	size_t n;
};

static void applied_release(struct applied_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].name);
		free(l->v[i].applied_at);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static enum eng_status read_applied(struct eng_db *db, struct applied_list *l,
				    struct eng_err *err)
{
	l->v = NULL;
	l->n = 0;
	bool exists = false;
	if (eng_db_relation_exists(db, "engagement.schema_migrations", &exists,
				   err))
		return err->status;
	if (!exists)
		return ENG_OK;
	PGresult *r = eng_db_query(db,
			 "SELECT version, name, checksum, "
			 "to_char(applied_at AT TIME ZONE 'UTC', "
			 "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') "
			 "FROM engagement.schema_migrations ORDER BY version",
			 0, NULL, err);
	if (!r)
		return err->status;
	int n = PQntuples(r);
	l->v = eng_xcalloc((size_t)n + 1, sizeof(*l->v));
	for (int i = 0; i < n; i++) {
		struct applied *a = &l->v[i];
		a->version = atoi(PQgetvalue(r, i, 0));
		a->name = eng_xstrdup(PQgetvalue(r, i, 1));
		snprintf(a->checksum, sizeof(a->checksum), "%s",
			 PQgetvalue(r, i, 2));
		a->applied_at = eng_xstrdup(PQgetvalue(r, i, 3));
	}
	l->n = (size_t)n;
	PQclear(r);
	return ENG_OK;
}

static const struct applied *find_applied(const struct applied_list *l,
					  int version)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].version == version)
			return &l->v[i];
	return NULL;
}

static const struct eng_migration *find_mig(const struct eng_migration_set *s,
					    int version)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i].version == version)
			return &s->v[i];
	return NULL;
}

static int max_applied(const struct applied_list *l)
{
	return l->n ? l->v[l->n - 1].version : 0;
}

/* Fill the summary's view of every migration; count problems. */
struct overview {
	int current, latest, pending, drift, out_of_order, unknown;
	char first_problem[256];
};

static void overview(const struct eng_migration_set *set,
		     const struct applied_list *al, json_t *summary,
		     struct overview *ov)
{
	json_t *list = json_array();
	json_t *drift = json_array();
	json_t *ooo = json_array();
	memset(ov, 0, sizeof(*ov));
	ov->current = max_applied(al);
	ov->latest = set->n ? set->v[set->n - 1].version : 0;

	/* Merge known files and applied rows, in version order. */
	size_t i = 0, j = 0;
	while (i < set->n || j < al->n) {
		const struct eng_migration *m = i < set->n ? &set->v[i] : NULL;
		const struct applied *a = j < al->n ? &al->v[j] : NULL;
		if (m && a && m->version != a->version) {
			if (m->version < a->version)
				a = NULL;
			else
				m = NULL;
		}
		const char *state;
		if (m && a) {
			if (strcmp(m->checksum, a->checksum) != 0) {
				state = "drift";
				ov->drift++;
				json_array_append_new(drift, json_integer(m->version));
				if (!ov->first_problem[0])
					snprintf(ov->first_problem,
						 sizeof(ov->first_problem),
						 "%s changed after it was applied "
						 "(checksum drift)",
						 m->up_file);
			} else {
				state = "applied";
			}
		} else if (m) {
			if (m->version < ov->current) {
				state = "out_of_order";
				ov->out_of_order++;
				json_array_append_new(ooo, json_integer(m->version));
				if (!ov->first_problem[0])
					snprintf(ov->first_problem,
						 sizeof(ov->first_problem),
						 "%s is pending but numbered below "
						 "the newest applied migration %d "
						 "(out of order): renumber it",
						 m->up_file, ov->current);
			} else {
				state = "pending";
				ov->pending++;
			}
		} else {
			state = "unknown"; /* applied, but no file here */
			ov->unknown++;
		}
		json_t *row = json_object();
		json_object_set_new(row, "version",
				    json_integer(m ? m->version : a->version));
		json_object_set_new(row, "name",
				    eng_json_str(m ? m->name : a->name));
		json_object_set_new(row, "state", json_string(state));
		if (a)
			json_object_set_new(row, "applied_at",
					    json_string(a->applied_at));
		json_array_append_new(list, row);
		if (m)
			i++;
		if (a)
			j++;
	}
	json_object_set_new(summary, "current", json_integer(ov->current));
	json_object_set_new(summary, "latest", json_integer(ov->latest));
	json_object_set_new(summary, "pending", json_integer(ov->pending));
	json_object_set_new(summary, "drift", drift);
	json_object_set_new(summary, "out_of_order", ooo);
	json_object_set_new(summary, "migrations", list);
}

/* ---- locking ---------------------------------------------------------- */

static enum eng_status take_lock(struct eng_db *db, int wait_s,
				 struct eng_err *err)
{
	const char *p[] = {ENG_MIG_LOCK_KEY};
	int64_t deadline = eng_mono_us() + (int64_t)wait_s * 1000000;
	bool logged = false;
	for (;;) {
		PGresult *r = eng_db_query(
			db, "SELECT pg_try_advisory_lock($1::bigint)", 1, p, err);
		if (!r)
			return err->status;
		bool got = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
		PQclear(r);
		if (got)
			return ENG_OK;
		if (eng_interrupted)
			return eng_err_set(err, ENG_ETEMP,
					   "interrupted while waiting for the "
					   "migration lock");
		if (eng_mono_us() >= deadline)
			return eng_err_set(err, ENG_ETEMP,
					   "another migrate run holds the migration "
					   "lock; gave up after %d s (--lock-wait)",
					   wait_s);
		if (!logged) {
			eng_log(ENG_INFO, "waiting_for_lock",
				ENG_I("lock_wait_s", wait_s));
			logged = true;
		}
		struct timespec ts = {0, 200 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

static void release_lock(struct eng_db *db)
{
	struct eng_err err = ENG_ERR_INIT;
	const char *p[] = {ENG_MIG_LOCK_KEY};
	if (eng_db_alive(db))
		eng_db_exec(db, "SELECT pg_advisory_unlock($1::bigint)", 1, p,
			    &err);
}

static enum eng_status bootstrap(struct eng_db *db, struct eng_err *err)
{
	static const char *const stmts[] = {
		"CREATE SCHEMA IF NOT EXISTS engagement",
		"CREATE TABLE IF NOT EXISTS engagement.schema_migrations ("
		" version integer PRIMARY KEY CHECK (version > 0),"
		" name text NOT NULL,"
		" checksum text NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),"
		" applied_at timestamptz NOT NULL DEFAULT now(),"
		" duration_ms integer NOT NULL DEFAULT 0)",
	};
	for (size_t i = 0; i < sizeof(stmts) / sizeof(*stmts); i++)
		if (eng_db_exec(db, stmts[i], 0, NULL, err))
			return eng_err_prefix(err, "cannot create "
						   "engagement.schema_migrations");
	return ENG_OK;
}

/* ---- applying one file ------------------------------------------------ */

static enum eng_status set_lock_timeout(struct eng_db *db, const char *v,
					bool local, struct eng_err *err)
{
	const char *p[] = {v, local ? "true" : "false"};
	return eng_db_exec(db, "SELECT set_config('lock_timeout', $1, $2::bool)",
			   2, p, err);
}

/* A failing migration statement: 65 unless it is a "try again" (lock
 * timeout, lost connection: 75) or a privilege problem (77). */
static enum eng_status migration_status(enum eng_status st)
{
	if (st == ENG_ETEMP || st == ENG_EPERM)
		return st;
	return ENG_EDATA;
}

/* A statement of file failed: where (the server's position, else the
 * statement's first line), into err and failure. */
static enum eng_status statement_failed(struct eng_db *db, PGresult *res,
					const struct eng_sql_stmt *s, const char *file,
					json_t *failure, struct eng_err *err)
{
	const char *pos = res ? PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION) : NULL;
	int line = pos ? s->text_line + eng_sql_line_of(s->text, atoi(pos)) - 1 : s->line;
	eng_db_error(db, res, err);
	err->status = migration_status(err->status);
	json_object_set_new(failure, "file", json_string(file));
	json_object_set_new(failure, "line", json_integer(line));
	if (err->sqlstate[0])
		json_object_set_new(failure, "sqlstate", json_string(err->sqlstate));
	return eng_err_prefix(err, "%s:%d", file, line);
}

/* Run the statements of a migration file, in order, as they are written
 * (migration SQL, not values). */
static enum eng_status run_statements(struct eng_db *db, const struct eng_sql_list *stmts,
				      const char *file, json_t *failure,
				      struct eng_err *err)
{
	for (size_t i = 0; i < stmts->n; i++) {
		const struct eng_sql_stmt *s = &stmts->v[i];
		PGresult *res = PQexecParams(db->conn, s->text, 0, NULL, NULL, NULL, NULL, 0);
		ExecStatusType es = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
		enum eng_status st = ENG_OK;
		if (es != PGRES_COMMAND_OK && es != PGRES_TUPLES_OK && es != PGRES_EMPTY_QUERY)
			st = statement_failed(db, res, s, file, failure, err);
		PQclear(res);
		if (st)
			return st;
	}
	return ENG_OK;
}

/* schema_migrations says what is applied. */
/* After a migration up, in its own transaction: engagement.apply_grants
 * (migration 0012, idempotent) hands every function of the schema to
 * engagement_owner, takes EXECUTE from PUBLIC and grants what
 * program_grants says, so that no function a migration adds is callable
 * by anyone for a moment before it is granted (0014). Nothing before the
 * function exists. */
static enum eng_status harden(struct eng_db *db, struct eng_err *err)
{
	PGresult *r = eng_db_query(db,
				   "SELECT to_regprocedure('engagement.apply_grants()') IS NOT NULL",
				   0, NULL, err);
	if (!r)
		return err->status;
	bool have = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	if (!have)
		return ENG_OK;
	if (eng_db_exec(db, "SELECT engagement.apply_grants()", 0, NULL, err))
		return eng_err_prefix(err, "could not grant the program roles");
	return ENG_OK;
}

static enum eng_status record_version(struct eng_db *db, const struct eng_migration *m,
				      bool up, long long duration_ms, struct eng_err *err)
{
	char version[16], dur[32];
	snprintf(version, sizeof(version), "%d", m->version);
	snprintf(dur, sizeof(dur), "%lld", duration_ms);
	if (!up) {
		const char *p[] = {version};
		return eng_db_exec(db, "DELETE FROM engagement.schema_migrations "
				       "WHERE version = $1::int",
				   1, p, err);
	}
	const char *p[] = {version, m->name, m->checksum, dur};
	return eng_db_exec(db,
			   "INSERT INTO engagement.schema_migrations "
			   "(version, name, checksum, applied_at, duration_ms) "
			   "VALUES ($1::int, $2, $3, clock_timestamp(), $4::int)",
			   4, p, err);
}

/* Indexes of the engagement schema that are not valid (a CREATE INDEX
 * CONCURRENTLY interrupted or failed leaves one behind), as qualified,
 * quoted names. */
static PGresult *invalid_indexes(struct eng_db *db, struct eng_err *err)
{
	return eng_db_query(db,
			    "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_index i"
			    " JOIN pg_class c ON c.oid = i.indexrelid"
			    " JOIN pg_namespace n ON n.oid = c.relnamespace"
			    " WHERE n.nspname = 'engagement' AND NOT i.indisvalid ORDER BY 1",
			    0, NULL, err);
}

/* Before a no-transaction migration: drop what an interrupted one left
 * invalid, so that its CREATE INDEX CONCURRENTLY IF NOT EXISTS builds the
 * index again rather than keep the broken one. */
static enum eng_status drop_invalid_indexes(struct eng_db *db, const char *file,
					    struct eng_err *err)
{
	PGresult *r = invalid_indexes(db, err);
	if (!r)
		return err->status;
	enum eng_status st = ENG_OK;
	for (int i = 0; st == ENG_OK && i < PQntuples(r); i++) {
		/* the name is the catalog's, quoted by the server: not a value */
		char sql[600];
		snprintf(sql, sizeof(sql), "DROP INDEX CONCURRENTLY IF EXISTS %s",
			 PQgetvalue(r, i, 0));
		st = eng_db_exec(db, sql, 0, NULL, err);
		if (st == ENG_OK)
			eng_log(ENG_WARN, "invalid_index_dropped", ENG_S("index", PQgetvalue(r, i, 0)),
				ENG_S("file", file),
				ENG_S("reason", "left by an interrupted CREATE INDEX CONCURRENTLY: "
						"the migration builds it again"));
	}
	PQclear(r);
	return st;
}

/* After a no-transaction migration: it built every index whole, or it is
 * not recorded. */
static enum eng_status check_indexes(struct eng_db *db, const char *file, struct eng_err *err)
{
	PGresult *r = invalid_indexes(db, err);
	if (!r)
		return err->status;
	enum eng_status st = ENG_OK;
	if (PQntuples(r) > 0)
		st = eng_err_set(err, ENG_EDATA,
				 "%s left the index %s invalid (a CREATE INDEX CONCURRENTLY "
				 "failed or was interrupted): not recorded; migrate up again "
				 "drops and rebuilds it",
				 file, PQgetvalue(r, 0, 0));
	PQclear(r);
	return st;
}

/* Apply (up) or revert one migration: in its own transaction unless the
 * file says -- migrate:no-transaction (then checked for invalid indexes
 * before and after); lock_timeout for its statements only. */
static enum eng_status apply_file(struct eng_db *db,
				  const struct eng_migration *m, bool up,
				  long long lock_timeout_ms,
				  long long *duration_ms, json_t *failure,
				  struct eng_err *err)
{
	const char *file = up ? m->up_file : m->down_file;
	const char *sql = up ? m->up_sql : m->down_sql;
	struct eng_sql_list stmts;
	int bad_line = 0;
	int64_t t0 = eng_mono_us();

	if (eng_sql_split(sql, &stmts, &bad_line)) {
		json_object_set_new(failure, "file", json_string(file));
		json_object_set_new(failure, "line", json_integer(bad_line));
		return eng_err_set(err, ENG_EDATA,
				   "%s:%d: unterminated string, identifier, "
				   "comment or dollar-quoted body",
				   file, bad_line);
	}
	bool tx = !eng_sql_no_transaction(sql);
	char lt[32], saved[64] = "0";
	snprintf(lt, sizeof(lt), "%lldms", lock_timeout_ms);

	PGresult *r = eng_db_query(db, "SELECT current_setting('lock_timeout')", 0, NULL, err);
	enum eng_status st = r ? ENG_OK : err->status;
	if (r)
		snprintf(saved, sizeof(saved), "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	if (st == ENG_OK && tx)
		st = eng_db_begin(db, err);
	if (st == ENG_OK && !tx)
		st = drop_invalid_indexes(db, file, err);
	if (st == ENG_OK)
		st = set_lock_timeout(db, lt, tx, err);
	if (st == ENG_OK && (st = run_statements(db, &stmts, file, failure, err))) {
		/* the statement's own error: the transaction goes, or (without
		 * one) lock_timeout is put back */
		struct eng_err e2 = ENG_ERR_INIT;
		if (tx)
			eng_db_rollback(db);
		else if (eng_db_alive(db))
			set_lock_timeout(db, saved, false, &e2);
		eng_sql_list_release(&stmts);
		return st;
	}
	eng_sql_list_release(&stmts);
	if (st == ENG_OK)
		st = set_lock_timeout(db, saved, tx, err);
	if (st == ENG_OK && !tx)
		st = check_indexes(db, file, err);
	*duration_ms = (eng_mono_us() - t0) / 1000;
	if (st == ENG_OK && up)
		st = harden(db, err);
	if (st == ENG_OK)
		st = record_version(db, m, up, *duration_ms, err);
	if (st == ENG_OK && tx)
		st = eng_db_commit(db, err);
	if (st) {
		eng_db_rollback(db);
		json_object_set_new(failure, "file", json_string(file));
		eng_err_prefix(err, "%s", file);
	}
	return st;
}

static json_t *plan_entry(const struct eng_migration *m, bool up,
			  bool with_sql)
{
	json_t *o = json_object();
	json_object_set_new(o, "version", json_integer(m->version));
	json_object_set_new(o, "name", json_string(m->name));
	json_object_set_new(o, "file",
			    json_string(up ? m->up_file : m->down_file));
	if (with_sql)
		json_object_set_new(o, "sql",
				    eng_json_str(up ? m->up_sql : m->down_sql));
	return o;
}

static enum eng_status run_list(struct eng_db *db,
				const struct eng_migration **todo, size_t n,
				bool up, const struct eng_mig_opts *o,
				json_t *summary, struct eng_err *err)
{
	const char *key = up ? "applied" : "reverted";
	json_t *done = json_array();
	json_object_set_new(summary, key, done);
	if (o->dry_run) {
		json_t *plan = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(plan, plan_entry(todo[i], up, true));
		json_object_set_new(summary, "plan", plan);
		return ENG_OK;
	}
	for (size_t i = 0; i < n; i++) {
		long long ms = 0;
		json_t *failure = json_object();
		if (eng_interrupted) {
			json_decref(failure);
			return eng_err_set(err, ENG_ETEMP,
					   "interrupted by a signal; %zu of %zu "
					   "migrations done",
					   i, n);
		}
		if (apply_file(db, todo[i], up, o->lock_timeout_ms, &ms, failure,
			       err)) {
			json_object_set_new(failure, "version",
					    json_integer(todo[i]->version));
			json_object_set_new(failure, "error", eng_json_masked(err->msg));
			json_object_set_new(summary, "failed", failure);
			return err->status;
		}
		json_decref(failure);
		json_t *e = plan_entry(todo[i], up, false);
		json_object_set_new(e, "duration_ms", json_integer(ms));
		json_array_append_new(done, e);
		eng_log(ENG_INFO, up ? "migration_applied" : "migration_reverted",
			ENG_I("version", todo[i]->version),
			ENG_S("name", todo[i]->name), ENG_I("duration_ms", ms));
	}
	return ENG_OK;
}

static enum eng_status cmd_up(struct eng_db *db,
			      const struct eng_migration_set *set,
			      const struct applied_list *al,
			      const struct eng_mig_opts *o, json_t *summary,
			      const struct overview *ov, struct eng_err *err)
{
	if (ov->drift || ov->out_of_order)
		return eng_err_set(err, ENG_EDATA, "refusing to migrate: %s",
				   ov->first_problem);
	int target = o->to >= 0 ? o->to : ov->latest;
	if (o->to >= 0 && o->to > 0 && !find_mig(set, o->to))
		return eng_err_set(err, ENG_EUSAGE, "--to %d: no such migration",
				   o->to);
	const struct eng_migration **todo =
		eng_xcalloc(set->n + 1, sizeof(*todo));
	size_t n = 0;
	for (size_t i = 0; i < set->n; i++)
		if (set->v[i].version <= target && !find_applied(al, set->v[i].version))
			todo[n++] = &set->v[i];
	enum eng_status st = run_list(db, todo, n, true, o, summary, err);
	free(todo);
	return st;
}

static enum eng_status cmd_down(struct eng_db *db,
				const struct eng_migration_set *set,
				const struct applied_list *al,
				const struct eng_mig_opts *o, json_t *summary,
				struct eng_err *err)
{
	const struct eng_migration **todo =
		eng_xcalloc(al->n + 1, sizeof(*todo));
	size_t n = 0;
	int steps = o->steps >= 0 ? o->steps : (o->to >= 0 ? -1 : 1);
	enum eng_status st = ENG_OK;
	for (size_t k = al->n; k-- > 0;) {
		const struct applied *a = &al->v[k];
		if (o->to >= 0 && a->version <= o->to)
			break;
		if (steps >= 0 && (int)n >= steps)
			break;
		const struct eng_migration *m = find_mig(set, a->version);
		if (!m || !m->down_sql) {
			st = eng_err_set(err, ENG_EDATA,
					 "cannot revert migration %d (%s): no down "
					 "file for it",
					 a->version, a->name);
			break;
		}
		todo[n++] = m;
	}
	if (st == ENG_OK)
		st = run_list(db, todo, n, false, o, summary, err);
	free(todo);
	return st;
}

/* After up: give the program roles what they need (migration 0012's
 * engagement.apply_grants, idempotent, so roles an administrator created
 * since are granted now), and say how to create those the migrating role
 * could not. */
static enum eng_status grant_roles(struct eng_db *db, json_t *summary, struct eng_err *err)
{
	PGresult *r = eng_db_query(db,
				   "SELECT to_regprocedure('engagement.apply_grants()') IS NOT NULL",
				   0, NULL, err);
	if (!r)
		return err->status;
	bool have = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	if (!have)
		return ENG_OK;
	/* (the API's owner must also have the migrating role as a member, to
	 * be handed the functions) */
	r = eng_db_query(db,
			 "SELECT coalesce(string_agg(m, ' ' ORDER BY m), ''),"
			 "  coalesce(string_agg(CASE WHEN m = 'engagement_owner'"
			 "    AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = m) THEN ''"
			 "    ELSE format('CREATE ROLE %I NOLOGIN; ', m) END"
			 "    || CASE WHEN m = 'engagement_owner'"
			 "       THEN format('GRANT engagement_owner TO %I; ', current_user) ELSE '' END,"
			 "    '' ORDER BY m), '')"
			 " FROM unnest(engagement.apply_grants()) AS m",
			 0, NULL, err);
	if (!r)
		return eng_err_prefix(err, "could not grant the program roles");
	const char *missing = PQgetvalue(r, 0, 0), *sql = PQgetvalue(r, 0, 1);
	json_t *list = json_array();
	for (const char *p = missing; *p;) {
		size_t n = strcspn(p, " ");
		json_array_append_new(list, json_stringn(p, n));
		p += n + (p[n] == ' ');
	}
	json_object_set_new(summary, "roles_missing", list);
	if (*missing)
		eng_log(ENG_WARN, "roles_missing", ENG_S("roles", missing),
			ENG_S("message", "the migrating role may not create roles: as a "
					 "superuser or a role with CREATEROLE run the sql "
					 "below, then migrate up again to grant them"),
			ENG_S("sql", sql));
	PQclear(r);
	return ENG_OK;
}

enum eng_status eng_mig_run(struct eng_db *db,
			    const struct eng_migration_set *set,
			    const struct eng_mig_opts *o, json_t *summary,
			    struct eng_err *err)
{
	struct applied_list al = {NULL, 0};
	struct overview ov;
	bool writes = o->cmd == ENG_MIG_UP || o->cmd == ENG_MIG_DOWN;
	bool locked = false;
	enum eng_status st = ENG_OK;

	if (writes && !o->dry_run) {
		if ((st = take_lock(db, o->lock_wait_s, err)))
			goto out;
		locked = true;
		if ((st = bootstrap(db, err)))
			goto out;
	}
	if ((st = read_applied(db, &al, err)))
		goto out;
	overview(set, &al, summary, &ov);
	for (size_t i = 0; i < json_array_size(json_object_get(summary, "drift")); i++)
		eng_log(ENG_WARN, "migration_drift",
			ENG_I("version", json_integer_value(json_array_get(
				json_object_get(summary, "drift"), i))));

	json_t *invalid = json_array();
	json_object_set_new(summary, "invalid_indexes", invalid);
	if (o->cmd == ENG_MIG_STATUS || o->cmd == ENG_MIG_VERIFY) {
		PGresult *r = invalid_indexes(db, err);
		if (!r) {
			st = err->status;
			goto out;
		}
		for (int i = 0; i < PQntuples(r); i++) {
			json_array_append_new(invalid, json_string(PQgetvalue(r, i, 0)));
			eng_log(ENG_WARN, "invalid_index", ENG_S("index", PQgetvalue(r, i, 0)));
		}
		PQclear(r);
	}

	switch (o->cmd) {
	case ENG_MIG_STATUS:
		break;
	case ENG_MIG_VERIFY:
		if (ov.drift || ov.out_of_order)
			st = eng_err_set(err, ENG_EDATA, "%s", ov.first_problem);
		else if (json_array_size(invalid))
			st = eng_err_set(err, ENG_EDATA,
					 "the index %s is invalid (an interrupted CREATE INDEX "
					 "CONCURRENTLY): drop it with DROP INDEX CONCURRENTLY and "
					 "build it again",
					 json_string_value(json_array_get(invalid, 0)));
		else if (ov.pending)
			st = eng_err_set(err, ENG_ECONFIG,
					 "%d migration(s) pending: run \"migrate up\"",
					 ov.pending);
		break;
	case ENG_MIG_UP:
		st = cmd_up(db, set, &al, o, summary, &ov, err);
		if (st == ENG_OK && !o->dry_run)
			st = grant_roles(db, summary, err);
		break;
	case ENG_MIG_DOWN:
		st = cmd_down(db, set, &al, o, summary, err);
		break;
	}
	if (writes && !o->dry_run && eng_db_alive(db)) {
		/* Report where the schema ended up, after success or failure. */
		struct eng_err e2 = ENG_ERR_INIT;
		applied_release(&al);
		if (read_applied(db, &al, &e2) == ENG_OK)
			overview(set, &al, summary, &ov);
	}
out:
	if (locked)
		release_lock(db);
	applied_release(&al);
	return st;
}

/* ---- new -------------------------------------------------------------- */

static enum eng_status write_new(const char *path, const char *text,
				 struct eng_err *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
	if (fd < 0)
		return eng_err_set(err, errno == EEXIST ? ENG_EDATA : ENG_ECONFIG,
				   "cannot create %s: %s", path, strerror(errno));
	size_t n = strlen(text);
	bool ok = write(fd, text, n) == (ssize_t)n;
	ok = close(fd) == 0 && ok;
	if (!ok)
		return eng_err_set(err, ENG_ECONFIG, "cannot write %s", path);
	return ENG_OK;
}

enum eng_status eng_mig_new(const char *dir, const char *name,
			    json_t *summary, struct eng_err *err)
{
	size_t len = strlen(name);
	if (len == 0 || len > 100)
		return eng_err_set(err, ENG_EUSAGE,
				   "migration name must be 1 to 100 characters");
	for (size_t i = 0; i < len; i++)
		if (!(islower((unsigned char)name[i]) ||
		      isdigit((unsigned char)name[i]) || name[i] == '_'))
			return eng_err_set(err, ENG_EUSAGE,
					   "invalid migration name \"%s\": use "
					   "lowercase letters, digits and _",
					   name);

	struct eng_migration_set set;
	if (eng_mig_load_dir(&set, dir, err))
		return err->status;
	int next = set.n ? set.v[set.n - 1].version + 1 : 1;
	eng_mig_set_release(&set);

	char up[4096], down[4096], body[1024];
	snprintf(up, sizeof(up), "%s/%04d_%s.up.sql", dir, next, name);
	snprintf(down, sizeof(down), "%s/%04d_%s.down.sql", dir, next, name);
	snprintf(body, sizeof(body),
		 "-- %04d_%s: say what this changes and why.\n"
		 "-- Runs in one transaction. For CREATE INDEX CONCURRENTLY, make "
		 "the first\n-- line \"-- migrate:no-transaction\" and keep one "
		 "statement in the file.\n"
		 "-- A function that writes for a program: SECURITY DEFINER, SET "
		 "search_path =\n-- pg_catalog, pg_temp, schema-qualified names, its "
		 "rules inside; migrate\n-- hands it to engagement_owner, and nobody "
		 "may call it until a row of\n-- engagement.program_grants names a "
		 "role for it.\n\n",
		 next, name);
	if (write_new(up, body, err))
		return err->status;
	snprintf(body, sizeof(body),
		 "-- %04d_%s: undo exactly what the up file does.\n\n", next,
		 name);
	if (write_new(down, body, err)) {
		unlink(up);
		return err->status;
	}
	json_t *created = json_array();
	json_array_append_new(created, json_string(up));
	json_array_append_new(created, json_string(down));
	json_object_set_new(summary, "version", json_integer(next));
	json_object_set_new(summary, "created", created);
	return ENG_OK;
}
