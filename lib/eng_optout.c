#include "eng_optout.h"

#include <stdio.h>
#include <string.h>

static const char *const outcome_names[] = {"applied", "unchanged", "stale"};

const char *eng_optout_outcome_name(enum eng_optout_outcome o)
{
	return (unsigned)o < 3 ? outcome_names[o] : "unknown";
}

bool eng_optout_source_valid(const char *s)
{
	static const char *const ok[] = {"whatsapp", "web", "cli", "api"};
	for (size_t i = 0; s && i < sizeof(ok) / sizeof(*ok); i++)
		if (strcmp(s, ok[i]) == 0)
			return true;
	return false;
}

/* $1 user  $2 opt_out  $3 at (NULL: now())  $4 source  $5 reason
 * $6 run id  $7 message id */
static const char apply_sql[] =
	"WITH old AS ("
	"  SELECT p.user_id, p.reengagement_opt_out AS v,"
	"         p.reengagement_opt_out_updated_at AS t,"
	"         p.reengagement_opt_out_source AS src"
	"  FROM engagement.user_preferences p WHERE p.user_id = $1::uuid FOR UPDATE"
	"), d AS ("
	"  SELECT old.*, coalesce($3::timestamptz, now()) AS at,"
	"    CASE WHEN old.t IS NOT NULL AND coalesce($3::timestamptz, now()) < old.t"
	"         THEN 'stale'"
	"         WHEN old.v = $2::bool THEN 'unchanged' ELSE 'applied' END AS outcome"
	"  FROM old"
	"), upd AS ("
	"  UPDATE engagement.user_preferences p SET reengagement_opt_out = $2::bool,"
	"    reengagement_opt_out_updated_at = d.at,"
	"    reengagement_opt_out_source = $4"
	"  FROM d WHERE p.user_id = d.user_id AND d.outcome <> 'stale'"
	"  RETURNING p.user_id"
	"), audit AS ("
	"  INSERT INTO engagement.audit_log"
	"    (user_id, message_id, event, source, details, run_id)"
	"  SELECT d.user_id, $7::bigint,"
	"    CASE WHEN d.outcome = 'unchanged' THEN 'reengagement_reaffirmed'"
	"         WHEN $2::bool THEN 'reengagement_opted_out'"
	"         ELSE 'reengagement_opted_in' END,"
	"    $4,"
	"    jsonb_build_object('old_value', d.v, 'new_value', $2::bool,"
	"      'at', d.at, 'previous_at', d.t, 'previous_source', d.src,"
	"      'reason', $5::text),"
	"    $6::uuid"
	"  FROM d WHERE d.outcome <> 'stale'"
	"), ob AS ("
	"  INSERT INTO engagement.outbox_events"
	"    (aggregate_type, aggregate_id, event_type, payload, correlation_id, user_id)"
	"  SELECT 'user', d.user_id::text, 'preferences.reengagement_changed',"
	"    jsonb_build_object('user_id', d.user_id, 'opt_out', $2::bool,"
	"      'source', $4, 'at', d.at),"
	"    $6::uuid, d.user_id"
	"  FROM d WHERE d.outcome = 'applied'"
	")"
	"SELECT d.outcome, d.v, (extract(epoch FROM d.at) * 1000000)::bigint,"
	"  CASE WHEN d.outcome = 'applied' THEN pg_notify('engagement_preferences',"
	"    json_build_object('user_id', d.user_id, 'opt_out', $2::bool,"
	"      'source', $4, 'at', d.at)::text) END"
	"  FROM d";

enum eng_status eng_optout_apply(struct eng_db *db,
				 const struct eng_optout_change *c,
				 struct eng_optout_result *res,
				 struct eng_err *err)
{
	char at[32];
	if (c->at)
		eng_time_format(c->at, at);
	const char *ensure[] = {c->user_id};
	long long n = 0;
	/* A preference row for a user who exists (none for one who does not). */
	if (eng_db_exec_count(db,
			      "INSERT INTO engagement.user_preferences (user_id) "
			      "SELECT id FROM engagement.users WHERE id = $1::uuid "
			      "ON CONFLICT (user_id) DO NOTHING",
			      1, ensure, &n, err))
		return err->status;

	const char *p[] = {c->user_id, c->opt_out ? "true" : "false",
			   c->at ? at : NULL, c->source, c->reason, c->run_id,
			   c->message_id};
	PGresult *r = eng_db_query(db, apply_sql, 7, p, err);
	if (!r)
		return err->status;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return eng_err_set(err, ENG_ENOUSER, "no user with id %s", c->user_id);
	}
	const char *o = PQgetvalue(r, 0, 0);
	res->outcome = strcmp(o, "applied") == 0     ? ENG_OPTOUT_APPLIED
		       : strcmp(o, "unchanged") == 0 ? ENG_OPTOUT_UNCHANGED
						     : ENG_OPTOUT_STALE;
	res->old_value = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
	res->at = eng_db_epoch_us(PQgetvalue(r, 0, 2));
	PQclear(r);
	return ENG_OK;
}
