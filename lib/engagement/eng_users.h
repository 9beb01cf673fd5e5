/*
 * Naming users in inbound data: by id or by phone, resolved in bulk; and
 * cutting a stream of items into runs of distinct users (so that each run
 * can be applied set-based while one user's items keep their order).
 */
#ifndef ENG_USERS_H
#define ENG_USERS_H

#include <stdbool.h>
#include <stddef.h>

#include "eng_db.h"
#include "eng_err.h"
#include "eng_job.h"
#include "eng_lines.h"
#include "eng_time.h"
#include <jansson.h>

struct eng_user_ref {
	char user_id[37]; /* given, or filled from phone */
	char phone[24];   /* when the item names a phone ("" otherwise) */
	bool found;       /* set by eng_users_resolve */
};

/* A user named on the command line by --user UUID or --phone E164 (the
 * other NULL): ENG_EDATA, event invalid_input, when the value is
 * malformed. */
enum eng_status eng_user_ref_from_args(const char *user, const char *phone,
				       struct eng_user_ref *ref, struct eng_err *err);
/* Look that user up: ENG_ENOUSER when there is none; else ENG_OK with
 * user_id filled (and put in the summary). */
enum eng_status eng_user_find(const struct eng_job *job, struct eng_user_ref *ref,
			      struct eng_err *err);

/* Look up n users in one query: fills user_id for phones and sets found. */
enum eng_status eng_users_resolve(struct eng_db *db, struct eng_user_ref **refs,
				  size_t n, struct eng_err *err);

/* A program's own field of a batch line: 1 when it took key, 0 when key is
 * not one of its fields, -1 (ENG_EDATA in err) when the value is malformed. */
typedef int (*eng_line_field_fn)(void *ctx, const char *key, const json_t *v,
			   struct eng_err *err);

/* A batch line: a JSON object (duplicate keys refused) with exactly one of
 * "user_id" and "phone" (into who), and maybe "at" (into *at) and "id"
 * (into id, ENG_EVENT_ID_MAX + 1 bytes); every other key goes to field(),
 * and one it does not take is refused. ENG_OK, or ENG_EDATA with err
 * saying what is wrong. */
enum eng_status eng_line_parse(const char *text, size_t len, struct eng_user_ref *who,
			       eng_time *at, char *id, eng_line_field_fn field, void *ctx,
			       struct eng_err *err);

/* An inbound event's identity (a WhatsApp message's wamid, a batch line's
 * "id", --id): at most this long. */
#define ENG_EVENT_ID_MAX 128

/* An inbound event's "id" (a non-empty string of at most max bytes, no
 * control characters) into out (max + 1 bytes); ENG_EDATA otherwise. */
enum eng_status eng_event_id_parse(const json_t *v, char *out, struct eng_err *err);

/* The not-found message for a reference ("no user with phone +55***21"). */
void eng_users_not_found(const struct eng_user_ref *r, struct eng_err *err);

/* A set of user ids for cutting runs; holds up to ENG_IDSET_MAX ids. */
#define ENG_IDSET_MAX 1000
struct eng_idset {
	const char *slot[2 * ENG_IDSET_MAX + 1];
	size_t n;
};
void eng_idset_clear(struct eng_idset *set);
/* false when id is already in the set, or the set is full */
bool eng_idset_add(struct eng_idset *set, const char *id);

/*
 * Applying a stream of user-keyed items (inbound events, preference
 * changes) set-based, in order: items are taken ENG_IDSET_MAX at a time,
 * their users resolved in one query (unknown ones fail), and cut into runs
 * of distinct users (or, with any_users, the whole window is one run: the
 * database function applies one person's items in order); each run is one
 * transaction (one for everything with dry_run, which the caller holds)
 * applied by `apply`, and when that fails the run is bisected down to the
 * items that fail on their own.
 */
struct eng_items {
	size_t n;
	void *ctx;
	struct eng_user_ref *(*who)(void *ctx, size_t i);
	bool (*failed)(void *ctx, size_t i);
	void (*fail)(void *ctx, size_t i, const struct eng_err *e);
	/* Apply items idx[0..k) (distinct users, unless any_users) in the
	 * open transaction.
	 * Results must be (re)written by every call: a failed call is retried
	 * in parts. */
	enum eng_status (*apply)(void *ctx, struct eng_db *db, const size_t *idx,
				 size_t k, struct eng_err *err);
	bool any_users; /* a run may hold one person's several items */
};

/* An error only when the whole run must stop (connection lost). *done:
 * items [0, *done) are settled (committed, or failed on their own); the
 * rest were not applied (all n on success). */
enum eng_status eng_items_apply(struct eng_db *db, const struct eng_items *it,
				bool dry_run, size_t *done, struct eng_err *err);

/* A --batch run of JSON lines: read block lines at a time (take() parses
 * line i of the block), apply each block (an error only when the run must
 * stop: a bad item is counted by the caller), stop between blocks on a
 * signal; a dry run is one transaction, rolled back. The summary gets
 * "lines", then summarize()'s counts; ENG_PARTIAL when it says an item
 * failed. */
struct eng_line_job {
	const char *path; /* a file, or "-" for stdin */
	size_t block;
	eng_line_fn take;
	enum eng_status (*apply)(void *ctx, const struct eng_job *job, size_t n,
				 struct eng_err *err);
	bool (*summarize)(void *ctx, const struct eng_job *job);
	void *ctx;
};
enum eng_status eng_lines_run(const struct eng_job *job, const struct eng_line_job *lj,
			      struct eng_err *err);
/* The log line of a batch line that failed. */
void eng_log_line_failed(long line, const char *user_id, const struct eng_err *e);

#endif
