#include "eng_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_buf.h"
#include "eng_log.h"

/* Strip libpq's "connection to server ... failed: " preamble and newlines so
 * the message fits one log line. */
static void tidy_libpq_message(const char *in, char *out, size_t outsz)
{
	const char *p = in ? in : "";
	snprintf(out, outsz, "%s", p);
	for (char *q = out; *q; q++)
		if (*q == '\n' || *q == '\r' || *q == '\t')
			*q = ' ';
	size_t n = strlen(out);
	while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '.'))
		out[--n] = '\0';
}

static void wipe_secrets(struct eng_db *db)
{
	for (size_t i = 0; i < db->nsecrets; i++) {
		memset(db->secrets[i], 0, strlen(db->secrets[i]));
		free(db->secrets[i]);
		db->secrets[i] = NULL;
	}
	db->nsecrets = 0;
}

/* A libpq message about connecting, one line, with nothing of a password. */
static void connect_message(const struct eng_db *db, const PGconn *c, char *out,
			    size_t outsz)
{
	tidy_libpq_message(PQerrorMessage(c), out, outsz);
	eng_db_redact(out, outsz, db->secrets, db->nsecrets);
}

enum eng_status eng_db_classify_connect_error(const char *msg,
					      bool needs_password)
{
	static const char *const perm[] = {
		"password authentication failed",
		"authentication failed",
		"no pg_hba.conf entry",
		"pg_hba.conf rejects",
		"is not permitted to log in",
		"permission denied for database",
		"no password supplied",
		"role \"",
	};
	static const char *const config[] = {
		"database \"",    /* database "x" does not exist */
		"invalid ",       /* invalid sslmode value, invalid port ... */
		"unrecognized ",  /* unrecognized SSL mode */
		"missing \"=\"",  /* conninfo syntax */
		"unterminated quoted string",
	};
	if (needs_password)
		return ENG_EPERM;
	if (!msg)
		return ENG_ETEMP;
	for (size_t i = 0; i < sizeof(perm) / sizeof(*perm); i++)
		if (strstr(msg, perm[i]))
			return ENG_EPERM;
	if (strstr(msg, "does not exist") && strstr(msg, "database \""))
		return ENG_ECONFIG;
	for (size_t i = 1; i < sizeof(config) / sizeof(*config); i++)
		if (strstr(msg, config[i]) && !strstr(msg, "FATAL"))
			return ENG_ECONFIG;
	return ENG_ETEMP;
}

/* Server notices become log lines: stderr carries JSON only. */
static void on_notice(void *arg, const PGresult *r)
{
	(void)arg;
	const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
	enum eng_level lvl = sev && strcmp(sev, "WARNING") == 0 ? ENG_WARN
								 : ENG_DEBUG;
	eng_log(lvl, "db_notice", ENG_S("severity", sev ? sev : ""),
		ENG_S("message", msg ? msg : ""));
}

enum eng_status eng_db_connect(struct eng_db *db, const char *conninfo,
			       const char *appname, struct eng_err *err)
{
	return eng_db_open(db, conninfo, appname, ENG_DB_PRIMARY, err);
}

/* The connection that serves, from walk (a connection with every host,
 * just tried: libpq's walk through the list): walk itself, or (when a
 * server refused and there are several hosts) one host of it tried on its
 * own (eng_db_hosts.c), walk then kept for the next reconnect. */
static void take_walk(struct eng_db *db, PGconn *walk)
{
	PGconn *alt = walk && PQstatus(walk) != CONNECTION_OK ? eng_db_each_host(walk) : NULL;
	if (db->conn && db->conn != walk)
		PQfinish(db->conn);
	if (db->walk && db->walk != walk)
		PQfinish(db->walk);
	db->conn = alt ? alt : walk;
	db->walk = alt ? walk : NULL;
	if (db->conn)
		PQsetNoticeReceiver(db->conn, on_notice, NULL);
}

enum eng_status eng_db_open(struct eng_db *db, const char *conninfo,
			    const char *appname, enum eng_db_session session,
			    struct eng_err *err)
{
	const char *keys[9];
	const char *vals[9];
	int k = 0;

	if (!conninfo || !*conninfo) {
		const char *env = getenv("DATABASE_URL");
		conninfo = env && *env ? env : NULL;
	}
	if (conninfo) {
		char *perr = NULL;
		PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
		if (!opts) {
			/* libpq's message quotes the part it could not parse,
			 * which may be a password: it is not shown */
			PQfreemem(perr);
			return eng_err_set(err, ENG_ECONFIG,
					   "invalid connection string: libpq cannot parse "
					   "it (its message is not shown: it may quote a "
					   "password)");
		}
		PQconninfoFree(opts);
	}
	/* Entries before dbname may be overridden by the conninfo; entries
	 * after it override the conninfo (libpq processes them in order). */
	if (!getenv("PGCONNECT_TIMEOUT")) {
		keys[k] = "connect_timeout";
		vals[k++] = "10";
	}
	/* over TCP, a primary that vanished (its host lost, a network cut)
	 * sends nothing: without keepalives a statement would wait for the
	 * kernel's retransmissions (15 minutes) before the failover is seen.
	 * Dead within about 25 s instead (the connection string may say
	 * otherwise; ignored on Unix sockets). */
	static const char *const tcp[][2] = {
		{"keepalives_idle", "10"}, {"keepalives_interval", "5"},
		{"keepalives_count", "3"},
	};
	for (size_t i = 0; i < sizeof(tcp) / sizeof(tcp[0]); i++) {
		keys[k] = tcp[i][0];
		vals[k++] = tcp[i][1];
	}
	/* a writer never settles on a standby: of several hosts, the one
	 * that takes writes (the connection string may say otherwise) */
	if (session == ENG_DB_PRIMARY && !getenv("PGTARGETSESSIONATTRS")) {
		keys[k] = "target_session_attrs";
		vals[k++] = "read-write";
	}
	if (conninfo) {
		keys[k] = "dbname";
		vals[k++] = conninfo;
	}
	keys[k] = "application_name";
	vals[k++] = appname;
	keys[k] = NULL;
	vals[k] = NULL;

	wipe_secrets(db);
	db->nsecrets = eng_db_secret_words(conninfo, db->secrets, ENG_DB_SECRETS);
	db->lost = false;
	db->conn = db->walk = NULL; /* (a new connection: nothing of an old one is read) */
	take_walk(db, PQconnectdbParams(keys, vals, 1));
	if (!db->conn)
		return eng_err_set(err, ENG_EINTERNAL,
				   "out of memory opening a connection");
	if (PQstatus(db->conn) != CONNECTION_OK) {
		char m[400];
		connect_message(db, db->conn, m, sizeof(m));
		enum eng_status st = eng_db_classify_connect_error(
			m, PQconnectionNeedsPassword(db->conn));
		PQfinish(db->conn);
		db->conn = NULL;
		switch (st) {
		case ENG_EPERM:
			return eng_err_set(err, st,
					   "the database refused the credentials: %s",
					   m);
		case ENG_ECONFIG:
			return eng_err_set(err, st,
					   "cannot connect with this configuration: %s",
					   m);
		default:
			return eng_err_set(err, ENG_ETEMP,
					   "database unreachable, try again later: %s",
					   m);
		}
	}
	return ENG_OK;
}

bool eng_db_has_password(const char *conninfo)
{
	char *perr = NULL;
	PQconninfoOption *opts = conninfo ? PQconninfoParse(conninfo, &perr) : NULL;
	bool has = false;
	for (PQconninfoOption *o = opts; o && o->keyword; o++)
		if (strcmp(o->keyword, "password") == 0 && o->val && *o->val)
			has = true;
	PQconninfoFree(opts);
	PQfreemem(perr);
	return has;
}

void eng_db_close(struct eng_db *db)
{
	wipe_secrets(db);
	PQclear(db->first);
	db->first = NULL;
	db->busy = false;
	db->lost = false;
	if (db->conn)
		PQfinish(db->conn);
	if (db->walk)
		PQfinish(db->walk);
	db->conn = NULL;
	db->walk = NULL;
}

enum eng_status eng_db_reconnect(struct eng_db *db, struct eng_err *err)
{
	if (!db->conn)
		return eng_err_set(err, ENG_ETEMP, "no database connection");
	PQclear(db->first);
	db->first = NULL;
	db->busy = false;
	db->lost = false;
	/* the whole list again (after a failover the old host is gone or a
	 * standby): never only the host used before */
	PGconn *walk = db->walk ? db->walk : db->conn;
	PQreset(walk);
	take_walk(db, walk);
	if (PQstatus(db->conn) == CONNECTION_OK)
		return ENG_OK;
	char m[400];
	connect_message(db, db->conn, m, sizeof(m));
	enum eng_status st = eng_db_classify_connect_error(
		m, PQconnectionNeedsPassword(db->conn));
	return eng_err_set(err, st == ENG_EPERM ? st : ENG_ETEMP,
			   "database unreachable, try again later: %s", m);
}

static enum eng_status sent(struct eng_db *db, int ok, struct eng_err *err)
{
	if (!ok)
		return eng_db_error(db, NULL, err);
	db->busy = true;
	return ENG_OK;
}

enum eng_status eng_db_send(struct eng_db *db, const char *sql, int nparams,
			    const char *const *params, struct eng_err *err)
{
	if (!db->conn)
		return eng_err_set(err, ENG_ETEMP, "no database connection");
	return sent(db, PQsendQueryParams(db->conn, sql, nparams, NULL, params,
					  NULL, NULL, 0),
		    err);
}

enum eng_status eng_db_send_simple(struct eng_db *db, const char *sql,
				   struct eng_err *err)
{
	if (!db->conn)
		return eng_err_set(err, ENG_ETEMP, "no database connection");
	return sent(db, PQsendQuery(db->conn, sql), err);
}

static bool result_ok(const PGresult *r)
{
	ExecStatusType s = PQresultStatus(r);
	return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
}

enum eng_status eng_db_ready(struct eng_db *db, bool *done, PGresult **res,
			     struct eng_err *err)
{
	*done = false;
	*res = NULL;
	if (!db->busy)
		return eng_err_set(err, ENG_EINTERNAL, "no statement is running");
	enum eng_status st = ENG_OK;
	if (!PQconsumeInput(db->conn)) {
		st = eng_db_error(db, NULL, err);
		goto finished;
	}
	/* Results until the terminating NULL, each taken only when complete,
	 * so that nothing here waits. A failed one wins; otherwise the last. */
	while (!PQisBusy(db->conn)) {
		PGresult *r = PQgetResult(db->conn);
		if (!r)
			goto finished;
		if (db->first && result_ok(db->first)) {
			PQclear(db->first);
			db->first = r;
		} else if (db->first) {
			PQclear(r);
		} else {
			db->first = r;
		}
	}
	return ENG_OK;
finished:
	*done = true;
	db->busy = false;
	if (st == ENG_OK && db->first && result_ok(db->first)) {
		*res = db->first;
	} else {
		if (st == ENG_OK)
			st = eng_db_error(db, db->first, err);
		PQclear(db->first);
	}
	db->first = NULL;
	return st;
}

int eng_db_socket(const struct eng_db *db)
{
	return db->conn ? PQsocket(db->conn) : -1;
}

char *eng_db_text_array(const char *const *v, size_t n)
{
	struct eng_buf b = ENG_BUF_INIT(SIZE_MAX / 2);
	eng_buf_addc(&b, '{');
	for (size_t i = 0; i < n; i++) {
		if (i)
			eng_buf_addc(&b, ',');
		if (!v[i]) {
			eng_buf_adds(&b, "NULL");
			continue;
		}
		eng_buf_addc(&b, '"');
		for (const char *p = v[i]; *p; p++) {
			if (*p == '"' || *p == '\\')
				eng_buf_addc(&b, '\\');
			eng_buf_addc(&b, *p);
		}
		eng_buf_addc(&b, '"');
	}
	eng_buf_addc(&b, '}');
	return eng_buf_detach(&b);
}

char *eng_db_time_array(const eng_time *v, size_t n)
{
	struct eng_buf b = ENG_BUF_INIT(SIZE_MAX / 2);
	char ts[32];
	eng_buf_addc(&b, '{');
	for (size_t i = 0; i < n; i++) {
		eng_time_format(v[i], ts);
		eng_buf_addf(&b, i ? ",%s" : "%s", ts);
	}
	eng_buf_addc(&b, '}');
	return eng_buf_detach(&b);
}

char *eng_db_int_array(const long long *v, size_t n)
{
	struct eng_buf b = ENG_BUF_INIT(SIZE_MAX / 2);
	eng_buf_addc(&b, '{');
	for (size_t i = 0; i < n; i++)
		eng_buf_addf(&b, i ? ",%lld" : "%lld", v[i]);
	eng_buf_addc(&b, '}');
	return eng_buf_detach(&b);
}

bool eng_db_alive(struct eng_db *db)
{
	return db->conn && !db->lost && PQstatus(db->conn) == CONNECTION_OK;
}

bool eng_db_consume(struct eng_db *db)
{
	if (!eng_db_alive(db))
		return false;
	if (!PQconsumeInput(db->conn) || PQstatus(db->conn) != CONNECTION_OK)
		db->lost = true;
	return !db->lost;
}

enum eng_status eng_db_error(struct eng_db *db, const PGresult *r,
			     struct eng_err *err)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	const char *primary =
		r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *detail =
		r ? PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL) : NULL;
	char m[400];

	if (!primary) {
		tidy_libpq_message(db->conn ? PQerrorMessage(db->conn)
					    : "no connection",
				   m, sizeof(m));
		eng_db_redact(m, sizeof(m), db->secrets, db->nsecrets);
	}
	else if (detail)
		snprintf(m, sizeof(m), "%s (%s)", primary, detail);
	else
		snprintf(m, sizeof(m), "%s", primary);

	/* an error libpq made up (no SQLSTATE): is the server still there? */
	if (!state && eng_db_alive(db))
		(void)eng_db_consume(db);
	enum eng_status st;
	if (!eng_db_alive(db))
		st = ENG_ETEMP; /* lost mid-run: whatever it was, retry later */
	else
		st = eng_status_from_sqlstate(state);
	eng_err_set(err, st, "%s", m);
	if (state)
		snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", state);
	return st;
}

PGresult *eng_db_query(struct eng_db *db, const char *sql, int nparams,
		       const char *const *params, struct eng_err *err)
{
	if (!db->conn) {
		eng_err_set(err, ENG_ETEMP, "no database connection");
		return NULL;
	}
	PGresult *r = PQexecParams(db->conn, sql, nparams, NULL, params, NULL,
				   NULL, 0);
	ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK)
		return r;
	eng_db_error(db, r, err);
	PQclear(r);
	return NULL;
}

enum eng_status eng_db_exec_count(struct eng_db *db, const char *sql,
				  int nparams, const char *const *params,
				  long long *rows, struct eng_err *err)
{
	PGresult *r = eng_db_query(db, sql, nparams, params, err);
	if (!r)
		return err->status;
	if (rows) {
		const char *t = PQcmdTuples(r);
		*rows = t && *t ? atoll(t) : 0;
	}
	PQclear(r);
	return ENG_OK;
}

enum eng_status eng_db_exec(struct eng_db *db, const char *sql, int nparams,
			    const char *const *params, struct eng_err *err)
{
	return eng_db_exec_count(db, sql, nparams, params, NULL, err);
}

enum eng_status eng_db_begin(struct eng_db *db, struct eng_err *err)
{
	return eng_db_exec(db, "BEGIN", 0, NULL, err);
}

enum eng_status eng_db_commit(struct eng_db *db, struct eng_err *err)
{
	PGresult *r = eng_db_query(db, "COMMIT", 0, NULL, err);
	if (!r)
		return err->status;
	/* COMMIT of an aborted transaction reports ROLLBACK. */
	bool rolled_back = strcmp(PQcmdStatus(r), "ROLLBACK") == 0;
	PQclear(r);
	if (rolled_back)
		return eng_err_set(err, ENG_EINTERNAL,
				   "the transaction was rolled back");
	return ENG_OK;
}

void eng_db_rollback(struct eng_db *db)
{
	if (db->conn && eng_db_in_transaction(db))
		PQclear(PQexec(db->conn, "ROLLBACK"));
}

bool eng_db_in_transaction(struct eng_db *db)
{
	if (!db->conn)
		return false;
	PGTransactionStatusType t = PQtransactionStatus(db->conn);
	return t == PQTRANS_INTRANS || t == PQTRANS_INERROR;
}

enum eng_status eng_db_relation_exists(struct eng_db *db, const char *name,
				       bool *exists, struct eng_err *err)
{
	const char *p[] = {name};
	PGresult *r = eng_db_query(db, "SELECT to_regclass($1) IS NOT NULL", 1,
				   p, err);
	if (!r)
		return err->status;
	*exists = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	return ENG_OK;
}

enum eng_status eng_db_schema_version(struct eng_db *db, int *version,
				      struct eng_err *err)
{
	/* One round trip: a missing table or schema means "not installed". */
	*version = 0;
	PGresult *r = eng_db_query(db,
				   "SELECT coalesce(max(version), 0) "
				   "FROM engagement.schema_migrations",
				   0, NULL, err);
	if (!r) {
		if (eng_db_alive(db) && (strcmp(err->sqlstate, "42P01") == 0 ||
					 strcmp(err->sqlstate, "3F000") == 0)) {
			eng_err_clear(err);
			return ENG_OK;
		}
		return err->status;
	}
	*version = atoi(PQgetvalue(r, 0, 0));
	PQclear(r);
	return ENG_OK;
}

enum eng_status eng_db_check_schema(struct eng_db *db, int need,
				    struct eng_err *err)
{
	int have = 0;
	if (eng_db_schema_version(db, &have, err))
		return err->status;
	if (have == 0)
		return eng_err_set(err, ENG_ECONFIG,
				   "the engagement schema is not installed in this "
				   "database: run \"migrate up\"");
	if (have < need)
		return eng_err_set(err, ENG_ECONFIG,
				   "database schema is at %d, this program needs %d: "
				   "run \"migrate up\"",
				   have, need);
	return ENG_OK;
}

eng_time eng_db_epoch_us(const char *s)
{
	return s ? (eng_time)strtoll(s, NULL, 10) : 0;
}

enum eng_status eng_db_now(struct eng_db *db, eng_time *out,
			   struct eng_err *err)
{
	PGresult *r = eng_db_query(
		db, "SELECT (extract(epoch FROM now()) * 1000000)::bigint", 0,
		NULL, err);
	if (!r)
		return err->status;
	*out = eng_db_epoch_us(PQgetvalue(r, 0, 0));
	PQclear(r);
	return ENG_OK;
}

enum eng_status eng_db_purge(struct eng_db *db, const char *sql, int nparams,
			     const char *const *params, long long batch,
			     long long *n, struct eng_err *err)
{
	int64_t t0 = eng_mono_us();
	long long k = 0;
	*n = 0;
	do {
		PGresult *r = eng_db_query(db, sql, nparams, params, err);
		if (!r)
			return err->status;
		/* a DELETE's count, or what a purge function returns */
		const char *t = PQntuples(r) == 1 && PQnfields(r) == 1 ? PQgetvalue(r, 0, 0)
								       : PQcmdTuples(r);
		k = t && *t ? atoll(t) : 0;
		PQclear(r);
		*n += k;
	} while (k == batch && eng_mono_us() - t0 < 2 * ENG_USEC_PER_SEC);
	return ENG_OK;
}
