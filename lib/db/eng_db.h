/*
 * The database connection every program opens, and the query helpers that
 * turn libpq failures into struct eng_err with the right status.
 *
 * Every statement with a value in it goes through eng_db_query/eng_db_exec
 * (PQexecParams, text parameters, unnamed statements: safe through
 * PgBouncer's transaction pooling, which forbids session state).
 */
#ifndef ENG_DB_H
#define ENG_DB_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "eng_err.h"
#include "eng_time.h"

#define ENG_DB_SECRETS 8

struct eng_db {
	PGconn *conn;
	bool busy;        /* a statement sent with eng_db_send is running */
	PGresult *first;  /* its first result, while the rest is awaited */
	/* what of the connection string may be a password (or part of one):
	 * cut out of every message libpq writes about connecting */
	char *secrets[ENG_DB_SECRETS];
	size_t nsecrets;
	/* the server went away under a statement: a server that dies at once
	 * (stopped -m immediate, killed, its host lost: a failover) closes
	 * the socket without an error, and libpq may still report
	 * CONNECTION_OK until the next call; eng_db_alive says false */
	bool lost;
	/* the connection with every host of the string, kept (closed) while
	 * one host of it, tried on its own, serves (eng_db_hosts.c): a
	 * reconnect walks the whole list again from it, never only the host
	 * that served before */
	PGconn *walk;
};

#define ENG_DB_INIT {NULL, false, NULL, {NULL}, 0, false, NULL}

/* conninfo: a keyword string or URI; NULL means DATABASE_URL, then libpq's
 * defaults. application_name is forced to appname. A conninfo libpq cannot
 * parse gives ENG_ECONFIG; unreachable ENG_ETEMP; refused credentials
 * ENG_EPERM; a database that does not exist ENG_ECONFIG. */
enum eng_status eng_db_connect(struct eng_db *db, const char *conninfo,
			       const char *appname, struct eng_err *err);
void eng_db_close(struct eng_db *db);

/* The server a connection needs. ENG_DB_PRIMARY (what eng_db_connect
 * opens): one that takes writes, target_session_attrs=read-write unless the
 * connection string or PGTARGETSESSIONATTRS says otherwise, so that of
 * several hosts (host=a,b port=p,q) the primary is chosen, whichever it is
 * now. ENG_DB_ANY: reads only, a hot standby will do (engagement-status);
 * libpq's default, or what the connection string asks
 * (target_session_attrs=prefer-standby). */
enum eng_db_session { ENG_DB_PRIMARY, ENG_DB_ANY };
enum eng_status eng_db_open(struct eng_db *db, const char *conninfo,
			    const char *appname, enum eng_db_session session,
			    struct eng_err *err);

/* libpq walks a list of hosts only past those it cannot reach or that
 * cannot take connections now; when a server refused a connection of
 * several hosts (a FATAL in failed's message), try each host on its own,
 * in order, with the rest of failed's options: the connection, or NULL
 * (eng_db_hosts.c). */
PGconn *eng_db_each_host(PGconn *failed);
/* (exposed for tests) How many hosts a host and a hostaddr list name; the
 * i-th item of a comma-separated list (the only item of a one-item list),
 * NULL past its end; the caller frees it. */
size_t eng_db_host_count(const char *hosts, const char *hostaddrs);
char *eng_db_host_item(const char *list, size_t i);

/* Whether a connection string carries a password (false when it cannot be
 * parsed). */
bool eng_db_has_password(const char *conninfo);

/* The words of conninfo that may be a password or part of one (exposed
 * for tests): the password libpq parsed, and in a URI what stands between
 * the user name's ':' and the last '@', whole and cut at / : @ ? # & = ,
 * (a password with such a character ends the user part early: libpq then
 * reads a piece of it as a host, a port or a database, and quotes it in
 * its error). At most max, longest first, each at least 3 bytes; the
 * caller frees them. */
size_t eng_db_secret_words(const char *conninfo, char **out, size_t max);
/* Replace every occurrence of the words in msg (a buffer of cap bytes)
 * with "***". */
void eng_db_redact(char *msg, size_t cap, char *const *words, size_t n);

/* Classify a failed connection attempt (exposed for tests). */
enum eng_status eng_db_classify_connect_error(const char *msg,
					      bool needs_password);

/* Fill err from a failed result (r may be NULL). Returns err->status. */
enum eng_status eng_db_error(struct eng_db *db, const PGresult *r,
			     struct eng_err *err);

/* Run one statement. On success returns the result (caller PQclear()s);
 * on failure returns NULL and fills err. */
PGresult *eng_db_query(struct eng_db *db, const char *sql, int nparams,
		       const char *const *params, struct eng_err *err);
/* Run one statement and discard its result. */
enum eng_status eng_db_exec(struct eng_db *db, const char *sql, int nparams,
			    const char *const *params, struct eng_err *err);
/* Same, returning the number of rows the command touched in *rows. */
enum eng_status eng_db_exec_count(struct eng_db *db, const char *sql,
				  int nparams, const char *const *params,
				  long long *rows, struct eng_err *err);

enum eng_status eng_db_begin(struct eng_db *db, struct eng_err *err);
enum eng_status eng_db_commit(struct eng_db *db, struct eng_err *err);
/* Roll back whatever transaction is open; never fails loudly. */
void eng_db_rollback(struct eng_db *db);
bool eng_db_in_transaction(struct eng_db *db);
bool eng_db_alive(struct eng_db *db);
/* Read what has arrived (notifications, results) without blocking: false,
 * and the connection marked lost, when the server is gone. */
bool eng_db_consume(struct eng_db *db);

/* Reconnect with the same parameters after the connection was lost:
 * ENG_OK when it is back, else the connection error (ENG_ETEMP while the
 * server is down). */
enum eng_status eng_db_reconnect(struct eng_db *db, struct eng_err *err);

/*
 * Asynchronous statements (libpq's PQsendQueryParams): a program that must
 * keep other work going (HTTP requests) while a statement runs sends it,
 * waits for the socket along with its other descriptors, and collects the
 * result when it is complete. One statement at a time per connection.
 */
enum eng_status eng_db_send(struct eng_db *db, const char *sql, int nparams,
			    const char *const *params, struct eng_err *err);
/* Constant SQL of several statements (no parameters), e.g. "BEGIN; SET
 * LOCAL ...". */
enum eng_status eng_db_send_simple(struct eng_db *db, const char *sql,
				   struct eng_err *err);
/* Read what has arrived, never blocking. *done stays false while the
 * statement runs; once true, *res is its (last) result, which the caller
 * PQclear()s, or NULL and an error when it failed. */
enum eng_status eng_db_ready(struct eng_db *db, bool *done, PGresult **res,
			     struct eng_err *err);
/* The socket to wait on (-1 without a connection). */
int eng_db_socket(const struct eng_db *db);

/* PostgreSQL array literals for a parameter ($1::uuid[], $1::bigint[],
 * ...); the caller frees them. Text elements are quoted and escaped, so
 * any string is safe; a NULL element is SQL NULL. */
char *eng_db_text_array(const char *const *v, size_t n);
char *eng_db_int_array(const long long *v, size_t n);
/* Instants, as eng_time_format writes them. */
char *eng_db_time_array(const eng_time *v, size_t n);

/* Run a DELETE of at most batch rows (sql, with its parameters; or a
 * SELECT of a purge function that returns how many it deleted) again and
 * again while it deletes a full batch, for about two seconds at most, so
 * that a large backlog is purged in bounded steps; *n: rows deleted. */
enum eng_status eng_db_purge(struct eng_db *db, const char *sql, int nparams,
			     const char *const *params, long long batch,
			     long long *n, struct eng_err *err);

/* Whether a relation (e.g. "engagement.schema_migrations") exists. */
enum eng_status eng_db_relation_exists(struct eng_db *db, const char *name,
				       bool *exists, struct eng_err *err);

/* The highest applied migration, or 0 when the schema is not installed. */
enum eng_status eng_db_schema_version(struct eng_db *db, int *version,
				      struct eng_err *err);
/* ENG_ECONFIG with an actionable message when the schema is older than
 * need or not installed. */
enum eng_status eng_db_check_schema(struct eng_db *db, int need,
				    struct eng_err *err);

/* The database's clock (now()), read in one statement. */
enum eng_status eng_db_now(struct eng_db *db, eng_time *out,
			   struct eng_err *err);

/* Parse a timestamptz rendered by SQL as epoch microseconds text. */
eng_time eng_db_epoch_us(const char *s);

#endif
