/*
 * Schema migrations: files NNNN_name.up.sql / NNNN_name.down.sql, compiled
 * into the binary or read from a folder, applied one transaction each under
 * an advisory lock, recorded in engagement.schema_migrations with a
 * SHA-256 checksum of the up file (line endings normalised).
 */
#ifndef ENG_MIGRATE_H
#define ENG_MIGRATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "eng_db.h"
#include "eng_err.h"

struct eng_migration {
	int version;
	char *name;
	char *up_file;   /* shown in messages: "sql/0001_init.up.sql" */
	char *down_file; /* NULL when there is no down file */
	char *up_sql;
	char *down_sql;
	char checksum[65];
};

struct eng_migration_set {
	struct eng_migration *v; /* sorted by version */
	size_t n, cap;
};

/* Files compiled into the binary (generated from sql/ at build time). */
struct eng_embedded_sql {
	const char *name;
	const char *text;
};
extern const struct eng_embedded_sql eng_embedded_sql[];

enum eng_status eng_mig_load_embedded(struct eng_migration_set *set,
				      struct eng_err *err);
enum eng_status eng_mig_load_dir(struct eng_migration_set *set,
				 const char *dir, struct eng_err *err);
void eng_mig_set_release(struct eng_migration_set *set);

enum eng_mig_cmd { ENG_MIG_UP, ENG_MIG_DOWN, ENG_MIG_STATUS, ENG_MIG_VERIFY };

struct eng_mig_opts {
	enum eng_mig_cmd cmd;
	int to;                  /* -1: not given */
	int steps;               /* -1: not given */
	int lock_wait_s;         /* --lock-wait */
	long lock_timeout_ms;
	bool dry_run;
};

/* Run one command against db, filling summary. Returns ENG_OK or the
 * error (err filled). */
enum eng_status eng_mig_run(struct eng_db *db,
			    const struct eng_migration_set *set,
			    const struct eng_mig_opts *o, json_t *summary,
			    struct eng_err *err);

/* migrate new NAME: write the next pair of files into dir. */
enum eng_status eng_mig_new(const char *dir, const char *name,
			    json_t *summary, struct eng_err *err);

/* The advisory lock key every migrate run takes. */
#define ENG_MIG_LOCK_KEY "7236251001"

#endif
