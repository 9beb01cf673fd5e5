#include "eng_state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_buf.h"

static const char *const state_names[ENG_ST_COUNT] = {
	"active", "goodbye_sent", "help_flow", "remind_later", "dormant",
};

static const char *const trigger_names[ENG_TR_COUNT] = {
	"inactivity_14d",     "user_message",       "goodbye_response_1",
	"goodbye_response_2", "goodbye_response_3", "goodbye_timeout",
	"reminder_due",
};

/* The ten valid transitions of DESIGN.md §1. */
static const struct {
	enum eng_state from;
	enum eng_trigger trigger;
	enum eng_state to;
} transitions[] = {
	{ENG_ST_ACTIVE, ENG_TR_INACTIVITY_14D, ENG_ST_GOODBYE_SENT},
	{ENG_ST_GOODBYE_SENT, ENG_TR_USER_MESSAGE, ENG_ST_ACTIVE},
	{ENG_ST_GOODBYE_SENT, ENG_TR_GOODBYE_RESPONSE_1, ENG_ST_HELP_FLOW},
	{ENG_ST_GOODBYE_SENT, ENG_TR_GOODBYE_RESPONSE_2, ENG_ST_REMIND_LATER},
	{ENG_ST_GOODBYE_SENT, ENG_TR_GOODBYE_RESPONSE_3, ENG_ST_DORMANT},
	{ENG_ST_GOODBYE_SENT, ENG_TR_GOODBYE_TIMEOUT, ENG_ST_DORMANT},
	{ENG_ST_HELP_FLOW, ENG_TR_USER_MESSAGE, ENG_ST_ACTIVE},
	{ENG_ST_REMIND_LATER, ENG_TR_USER_MESSAGE, ENG_ST_ACTIVE},
	{ENG_ST_REMIND_LATER, ENG_TR_REMINDER_DUE, ENG_ST_DORMANT},
	{ENG_ST_DORMANT, ENG_TR_USER_MESSAGE, ENG_ST_ACTIVE},
};
#define NTRANSITIONS (sizeof(transitions) / sizeof(*transitions))

const char *eng_state_name(enum eng_state s)
{
	return (unsigned)s < ENG_ST_COUNT ? state_names[s] : "unknown";
}

const char *eng_trigger_name(enum eng_trigger t)
{
	return (unsigned)t < ENG_TR_COUNT ? trigger_names[t] : "unknown";
}

int eng_state_parse(const char *s)
{
	for (int i = 0; i < ENG_ST_COUNT; i++)
		if (s && strcmp(s, state_names[i]) == 0)
			return i;
	return -1;
}

int eng_trigger_parse(const char *s)
{
	for (int i = 0; i < ENG_TR_COUNT; i++)
		if (s && strcmp(s, trigger_names[i]) == 0)
			return i;
	return -1;
}

int eng_transition_target(enum eng_state from, enum eng_trigger t)
{
	for (size_t i = 0; i < NTRANSITIONS; i++)
		if (transitions[i].from == from && transitions[i].trigger == t)
			return (int)transitions[i].to;
	return -1;
}

void eng_trigger_sources(enum eng_trigger t, char *out, size_t outsz)
{
	const char *names[ENG_ST_COUNT];
	size_t k = 0;
	for (size_t i = 0; i < NTRANSITIONS; i++)
		if (transitions[i].trigger == t)
			names[k++] = state_names[transitions[i].from];
	out[0] = '\0';
	for (size_t i = 0; i < k; i++) {
		size_t len = strlen(out);
		const char *sep = i == 0 ? "" : (i + 1 == k ? " or " : ", ");
		snprintf(out + len, outsz - len, "%s%s", sep, names[i]);
	}
}

/*
 * A transition is one statement: a head that yields the locked candidate
 * rows (cand: user_id, from_state, prev_activity, prev_changed, at, ord,
 * k), the shared body below (state update, transition rows, outbox events,
 * goodbye messages), and a tail that reports what moved. Side effects are
 * chosen with CASE on the trigger, $2. The body's parameters, in every
 * variant:
 *   $2 trigger   $4 to-state   $6 run id   $10 goodbye hours   $11 remind days
 * Outbox events go through the functions of migration 0012, called in
 * CTEs that only read: such a CTE runs only when referenced, so every tail
 * reads PUBLISHED (and TR_CANCEL's tails PUBLISHED_CANCELLED).
 */
/* Unless the flag parameter says otherwise, leave out who opted out (the
 * view of migration 0012, the one home of that test). */
#define NOT_OPTED_OUT(flag)                                                    \
	"    AND (NOT " flag "::bool OR NOT EXISTS ("                          \
	"         SELECT 1 FROM engagement.opted_out_users o"                  \
	"         WHERE o.user_id = s.user_id))"

#define TR_BODY                                                                \
	"upd AS ("                                                             \
	"  UPDATE engagement.engagement_states s SET"                          \
	"    state = $4,"                                                      \
	"    state_changed_at = c.at,"                                         \
	"    state_trigger = $2,"                                              \
	"    last_activity_at = CASE WHEN $2 = 'user_message'"                 \
	"        THEN greatest(s.last_activity_at, c.at) ELSE s.last_activity_at END," \
	"    goodbye_sent_at = CASE $2 WHEN 'inactivity_14d' THEN c.at"        \
	"        WHEN 'user_message' THEN NULL ELSE s.goodbye_sent_at END,"    \
	"    goodbye_expires_at = CASE $2"                                     \
	"        WHEN 'inactivity_14d' THEN c.at + make_interval(hours => $10::int)" \
	"        WHEN 'user_message' THEN NULL ELSE s.goodbye_expires_at END," \
	"    remind_at = CASE $2"                                              \
	"        WHEN 'goodbye_response_2' THEN c.at + make_interval(days => $11::int)" \
	"        WHEN 'user_message' THEN NULL WHEN 'reminder_due' THEN NULL"  \
	"        ELSE s.remind_at END"                                         \
	"  FROM cand c WHERE s.user_id = c.user_id"                            \
	"  RETURNING s.user_id, c.from_state, c.prev_activity, c.prev_changed," \
	"            c.at, c.ord, c.k,"                                         \
	"            s.goodbye_expires_at"                                     \
	"), tr AS ("                                                           \
	"  INSERT INTO engagement.state_transitions"                           \
	"    (user_id, from_state, to_state, trigger, run_id, metadata, created_at)" \
	"  SELECT u.user_id, u.from_state, $4, $2, $6::uuid,"                  \
	"    jsonb_build_object('days_inactive', greatest(0, floor("           \
	"        extract(epoch FROM (u.at - u.prev_activity)) / 86400))::int)" \
	"    || CASE $2 WHEN 'goodbye_response_1' THEN '{\"response_type\":\"confused\"}'" \
	"               WHEN 'goodbye_response_2' THEN '{\"response_type\":\"busy\"}'" \
	"               WHEN 'goodbye_response_3' THEN '{\"response_type\":\"all_good\"}'" \
	"               WHEN 'goodbye_timeout' THEN CASE WHEN EXISTS ("                \
	/* the goodbye never reached them: not sent, or a failed delivery */ \
	"                 SELECT 1 FROM (SELECT q.status, q.delivery_status"      \
	"                   FROM engagement.message_queue q"                     \
	"                   WHERE q.user_id = u.user_id AND q.message_type = 'goodbye'" \
	"                   ORDER BY q.id DESC LIMIT 1) g"                       \
	"                 WHERE g.status <> 'sent' OR g.delivery_status = 'failed')" \
	"               THEN '{\"response_type\":\"undelivered\"}'"             \
	"               ELSE '{\"response_type\":\"timeout\"}' END"               \
	"               ELSE '{}' END::jsonb"                                  \
	"    || CASE WHEN $2 = 'user_message' AND u.from_state = 'dormant'"    \
	"            THEN jsonb_build_object('unprompted_return',"             \
	"                 u.at - u.prev_changed >= interval '3 days')"          \
	"            ELSE '{}'::jsonb END,"                                    \
	"    u.at"                                                             \
	"  FROM upd u"                                                         \
	"  RETURNING id, user_id, from_state, metadata, created_at"            \
	"), tr_out AS ("                                                       \
	"  SELECT engagement.publish_transition_events("                       \
	"    array_agg(t.id ORDER BY t.id)) AS n FROM tr t"                    \
	"), mq AS ("                                                           \
	"  INSERT INTO engagement.message_queue (user_id, message_type, template_key," \
	"    params, idempotency_key, scheduled_for, next_attempt_at, expires_at, run_id)" \
	"  SELECT u.user_id, 'goodbye', 'goodbye', '{}',"                      \
	"    u.user_id::text || ':goodbye_sent:' ||"                           \
	"        to_char(u.at AT TIME ZONE 'UTC', 'YYYY-MM-DD'),"              \
	"    u.at, u.at, u.goodbye_expires_at, $6::uuid"                       \
	"  FROM upd u WHERE $2 = 'inactivity_14d'"                             \
	"  ON CONFLICT (idempotency_key) DO NOTHING"                           \
	"  RETURNING id, user_id"                                              \
	"), mq_out AS ("                                                       \
	"  SELECT engagement.publish_message_events('message.queued',"         \
	"    array_agg(m.id ORDER BY m.id), $6::uuid) AS n FROM mq m"          \
	/* Leaving goodbye_sent locks the goodbye a sender has claimed (a      \
	 * no-op update), so that its pre-send fence either sees this commit   \
	 * or has the request on the wire before this commits. */             \
	"), held AS ("                                                         \
	"  UPDATE engagement.message_queue q SET locked_until = q.locked_until" \
	"  FROM upd u"                                                         \
	"  WHERE u.from_state = 'goodbye_sent' AND q.user_id = u.user_id"      \
	"    AND q.message_type = 'goodbye' AND q.status = 'sending'"          \
	")"
#define PUBLISHED "(SELECT n FROM tr_out) + (SELECT n FROM mq_out)"
/* A user_message out of goodbye_sent also cancels the goodbye not yet sent
 * (the only move that does: the daily checks go without it, and without
 * the right to cancel messages). */
#define TR_CANCEL                                                              \
	", cancelled AS ("                                                     \
	"  UPDATE engagement.message_queue q"                                  \
	"  SET status = 'cancelled', last_error_code = 'user_returned',"       \
	"      last_error = 'the user wrote again before it was sent'"         \
	"  FROM upd u"                                                         \
	"  WHERE $2 = 'user_message' AND u.from_state = 'goodbye_sent'"        \
	"    AND q.user_id = u.user_id AND q.message_type = 'goodbye'"         \
	"    AND q.status = 'queued'"                                          \
	"  RETURNING q.id, q.user_id"                                          \
	"), cancelled_out AS ("                                                \
	"  SELECT engagement.publish_message_events('message.cancelled',"      \
	"    array_agg(q.id ORDER BY q.id), $6::uuid) AS n FROM cancelled q"   \
	")"
#define PUBLISHED_CANCELLED "(SELECT n FROM cancelled_out)"

/* Explicit users. More parameters:
 *  $1 user ids uuid[]   $3 valid from-states text[]
 *  $5 instants timestamptz[] (parallel to $1)   $7 activity_before
 *  $8 due_before   $9 skip opted out
 *  $12 an activity: not older than a state the user chose by a reply */
#define TR_EXPLICIT                                                            \
	"WITH input AS ("                                                      \
	"  SELECT i.user_id, i.at, i.ord"                                      \
	"  FROM unnest($1::uuid[], $5::timestamptz[]) WITH ORDINALITY"         \
	"       AS i(user_id, at, ord)"                                        \
	"), cand AS ("                                                         \
	"  SELECT s.user_id, s.state AS from_state,"                           \
	"         s.last_activity_at AS prev_activity,"                        \
	"         s.state_changed_at AS prev_changed, i.at, i.ord, NULL::text AS k" \
	"  FROM engagement.engagement_states s JOIN input i USING (user_id)"   \
	"  WHERE s.state = ANY ($3::text[])"                                   \
	"    AND ($7::timestamptz IS NULL OR s.last_activity_at < $7)"         \
	"    AND ($8::timestamptz IS NULL OR"                                  \
	"         CASE $2 WHEN 'goodbye_timeout' THEN s.goodbye_expires_at"    \
	"                 WHEN 'reminder_due' THEN s.remind_at END < $8)"      \
	"    AND (NOT $12::bool OR s.state_changed_at <= i.at"                 \
	"         OR coalesce(s.state_trigger, '') NOT LIKE 'goodbye_response_%')" \
	NOT_OPTED_OUT("$9")                                                    \
	"  ORDER BY s.user_id"                                                 \
	"  FOR UPDATE OF s"                                                    \
	"), " TR_BODY
#define TR_EXPLICIT_TAIL "  FROM upd u LEFT JOIN mq m USING (user_id)"

/* Explicit users, for every trigger but user_message and for user_message.
 * More parameters:
 *  $1 user ids uuid[]   $3 valid from-states text[]
 *  $5 instants timestamptz[] (parallel to $1)   $7 activity_before
 *  $8 due_before   $9 skip opted out
 *  $12 an activity: not older than a state the user chose by a reply */
static const char transition_sql[] =
	TR_EXPLICIT
	"SELECT u.ord - 1, u.from_state, m.id IS NOT NULL, " PUBLISHED
	TR_EXPLICIT_TAIL;
static const char transition_cancel_sql[] =
	TR_EXPLICIT TR_CANCEL
	"SELECT u.ord - 1, u.from_state, m.id IS NOT NULL,"
	"  " PUBLISHED " + " PUBLISHED_CANCELLED
	TR_EXPLICIT_TAIL;

/* The next batch of a daily check as one statement: picked by its own
 * index in (time, user_id) order after a keyset, then locked in user_id
 * order (the order every transition locks in, so that the daily job and
 * engagement-event never deadlock) and re-checked once locked. The keyset
 * and "is there more" come from what was picked, not from what moved (a
 * row changed meanwhile is dropped, not a reason to stop). More
 * parameters: $1 cutoff (col < $1)   $3 keyset time   $5 now
 *             $7 keyset user_id   $8 batch size   $9 skip opted out */
#define DUE_KEY(expr) "to_char(" expr " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
#define DUE_CAND(col, state)                                                   \
	"WITH pick AS MATERIALIZED ("                                          \
	"  SELECT s.user_id, s." col " AS key"                                 \
	"  FROM engagement.engagement_states s"                                \
	"  WHERE s.state = '" state "' AND s." col " < $1::timestamptz"        \
	"    AND ($3::timestamptz IS NULL OR (s." col ", s.user_id) > ($3, $7::uuid))" \
	NOT_OPTED_OUT("$9")                                                    \
	"  ORDER BY s." col ", s.user_id LIMIT $8::int"                        \
	"), cand AS ("                                                         \
	"  SELECT s.user_id, s.state AS from_state,"                           \
	"         s.last_activity_at AS prev_activity,"                        \
	"         s.state_changed_at AS prev_changed, $5::timestamptz AS at,"  \
	"         0::bigint AS ord, NULL::text AS k"                           \
	"  FROM engagement.engagement_states s"                                \
	"  WHERE s.user_id IN (SELECT user_id FROM pick)"                      \
	"    AND s.state = '" state "' AND s." col " < $1::timestamptz"        \
	NOT_OPTED_OUT("$9")                                                    \
	"  ORDER BY s.user_id"                                                 \
	"  FOR UPDATE OF s"                                                    \
	"), " TR_BODY                                                          \
	"SELECT (SELECT count(*) FROM pick), (SELECT count(*) FROM upd),"      \
	"  (SELECT count(*) FROM mq), l.k, l.user_id, " PUBLISHED              \
	"  FROM (SELECT 1) one LEFT JOIN (SELECT " DUE_KEY("key") " AS k, user_id" \
	"    FROM pick ORDER BY key DESC, user_id DESC LIMIT 1) l ON true"

/* The same candidates, neither locked nor changed (the fallback when a
 * batch fails: its users are then done in halves). */
#define DUE_IDS(col, state)                                                    \
	"SELECT s.user_id, " DUE_KEY("s." col)                                 \
	"  FROM engagement.engagement_states s"                                \
	"  WHERE s.state = '" state "' AND s." col " < $1::timestamptz"        \
	"    AND ($2::timestamptz IS NULL OR (s." col ", s.user_id) > ($2, $3::uuid))" \
	NOT_OPTED_OUT("$5")                                                    \
	"  ORDER BY s." col ", s.user_id LIMIT $4::int"

static const struct {
	enum eng_trigger trigger;
	const char *cand_sql;
	const char *ids_sql;
} due_checks[] = {
	[ENG_DUE_INACTIVITY] = {ENG_TR_INACTIVITY_14D,
				DUE_CAND("last_activity_at", "active"),
				DUE_IDS("last_activity_at", "active")},
	[ENG_DUE_GOODBYE_TIMEOUT] = {ENG_TR_GOODBYE_TIMEOUT,
				     DUE_CAND("goodbye_expires_at", "goodbye_sent"),
				     DUE_IDS("goodbye_expires_at", "goodbye_sent")},
	[ENG_DUE_REMINDER] = {ENG_TR_REMINDER_DUE,
			      DUE_CAND("remind_at", "remind_later"),
			      DUE_IDS("remind_at", "remind_later")},
};

enum eng_trigger eng_due_trigger(enum eng_due_check c)
{
	return due_checks[c].trigger;
}

static int target_of(enum eng_trigger t)
{
	for (size_t i = 0; i < NTRANSITIONS; i++)
		if (transitions[i].trigger == t)
			return (int)transitions[i].to;
	return -1;
}

enum eng_status eng_transition_due(struct eng_db *db,
				   const struct eng_due_batch *b,
				   struct eng_due_result *res,
				   struct eng_err *err)
{
	enum eng_trigger t = due_checks[b->check].trigger;
	char cutoff[32], now[32], gh[16], rd[16], limit[16];
	eng_time_format(b->cutoff, cutoff);
	eng_time_format(b->now, now);
	snprintf(gh, sizeof(gh), "%d",
		 b->goodbye_hours > 0 ? b->goodbye_hours : ENG_GOODBYE_HOURS);
	snprintf(rd, sizeof(rd), "%d",
		 b->remind_days > 0 ? b->remind_days : ENG_REMIND_DAYS);
	snprintf(limit, sizeof(limit), "%d", b->limit);
	const char *p[] = {
		cutoff,
		trigger_names[t],
		b->after_k[0] ? b->after_k : NULL,
		state_names[target_of(t)],
		now,
		b->run_id,
		b->after_id[0] ? b->after_id : NULL,
		limit,
		b->check == ENG_DUE_INACTIVITY ? "true" : "false",
		gh,
		rd,
	};
	res->picked = res->moved = res->queued = 0;
	res->last_k[0] = res->last_id[0] = '\0';
	PGresult *r = eng_db_query(db, due_checks[b->check].cand_sql, 11, p, err);
	if (!r)
		return err->status;
	res->picked = (size_t)atoll(PQgetvalue(r, 0, 0));
	res->moved = (size_t)atoll(PQgetvalue(r, 0, 1));
	res->queued = (size_t)atoll(PQgetvalue(r, 0, 2));
	snprintf(res->last_k, sizeof(res->last_k), "%s", PQgetvalue(r, 0, 3));
	snprintf(res->last_id, sizeof(res->last_id), "%s", PQgetvalue(r, 0, 4));
	PQclear(r);
	return ENG_OK;
}

enum eng_status eng_due_candidates(struct eng_db *db,
				   const struct eng_due_batch *b,
				   PGresult **out, struct eng_err *err)
{
	char cutoff[32], limit[16];
	eng_time_format(b->cutoff, cutoff);
	snprintf(limit, sizeof(limit), "%d", b->limit);
	const char *p[] = {
		cutoff,
		b->after_k[0] ? b->after_k : NULL,
		b->after_id[0] ? b->after_id : NULL,
		limit,
		b->check == ENG_DUE_INACTIVITY ? "true" : "false",
	};
	*out = eng_db_query(db, due_checks[b->check].ids_sql, 5, p, err);
	return *out ? ENG_OK : err->status;
}

enum eng_status eng_transition_batch(struct eng_db *db,
				     const struct eng_tr_batch *b,
				     struct eng_tr_result *res,
				     struct eng_err *err)
{
	res->n = 0;
	res->moved = NULL;
	if (b->n == 0)
		return ENG_OK;
	if ((unsigned)b->trigger >= ENG_TR_COUNT)
		return eng_err_set(err, ENG_EINTERNAL, "unknown trigger %d",
				   (int)b->trigger);

	/* From-states and target of this trigger. */
	const char *from[ENG_ST_COUNT];
	size_t nfrom = 0;
	int to = -1;
	for (size_t i = 0; i < NTRANSITIONS; i++)
		if (transitions[i].trigger == b->trigger) {
			from[nfrom++] = state_names[transitions[i].from];
			to = (int)transitions[i].to;
		}

	char *ids = eng_db_text_array(b->user_ids, b->n);
	char *ats = eng_db_time_array(b->at, b->n);
	char *froms = eng_db_text_array(from, nfrom);
	char act[32], due[32], gh[16], rd[16];
	if (b->activity_before)
		eng_time_format(b->activity_before, act);
	if (b->due_before)
		eng_time_format(b->due_before, due);
	snprintf(gh, sizeof(gh), "%d",
		 b->goodbye_hours > 0 ? b->goodbye_hours : ENG_GOODBYE_HOURS);
	snprintf(rd, sizeof(rd), "%d",
		 b->remind_days > 0 ? b->remind_days : ENG_REMIND_DAYS);

	const char *p[] = {
		ids,
		trigger_names[b->trigger],
		froms,
		state_names[to],
		ats,
		b->run_id,
		b->activity_before ? act : NULL,
		b->due_before ? due : NULL,
		b->skip_opted_out ? "true" : "false",
		gh,
		rd,
		b->after_state_change ? "true" : "false",
	};
	PGresult *r = eng_db_query(db,
				   b->trigger == ENG_TR_USER_MESSAGE ? transition_cancel_sql
								     : transition_sql,
				   12, p, err);
	free(ids);
	free(ats);
	free(froms);
	if (!r)
		return err->status;

	int rows = PQntuples(r);
	res->moved = eng_xcalloc((size_t)rows + 1, sizeof(*res->moved));
	for (int i = 0; i < rows; i++) {
		struct eng_tr_moved *m = &res->moved[i];
		m->index = (size_t)atoll(PQgetvalue(r, i, 0));
		int st = eng_state_parse(PQgetvalue(r, i, 1));
		m->from = st < 0 ? ENG_ST_ACTIVE : (enum eng_state)st;
		m->message_queued = strcmp(PQgetvalue(r, i, 2), "t") == 0;
	}
	res->n = (size_t)rows;
	PQclear(r);
	return ENG_OK;
}

void eng_tr_result_release(struct eng_tr_result *res)
{
	free(res->moved);
	res->moved = NULL;
	res->n = 0;
}
