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

char *eng_pg_array(const char *const *v, size_t n)
{
	struct eng_buf b = ENG_BUF_INIT(SIZE_MAX / 2);
	eng_buf_addc(&b, '{');
	for (size_t i = 0; i < n; i++) {
		if (i)
			eng_buf_addc(&b, ',');
		eng_buf_adds(&b, v[i]);
	}
	eng_buf_addc(&b, '}');
	return eng_buf_detach(&b);
}

char *eng_pg_time_array(const eng_time *v, size_t n)
{
	struct eng_buf b = ENG_BUF_INIT(SIZE_MAX / 2);
	char ts[32];
	eng_buf_addc(&b, '{');
	for (size_t i = 0; i < n; i++) {
		if (i)
			eng_buf_addc(&b, ',');
		eng_time_format(v[i], ts);
		eng_buf_adds(&b, ts);
	}
	eng_buf_addc(&b, '}');
	return eng_buf_detach(&b);
}

/*
 * One statement for any trigger: its side effects are selected with CASE
 * on $2. Parameters:
 *  $1 user ids uuid[]   $2 trigger          $3 valid from-states text[]
 *  $4 to-state          $5 instants timestamptz[] (parallel to $1)
 *  $6 run id            $7 activity_before  $8 due_before
 *  $9 skip opted out    $10 goodbye hours   $11 remind days
 *  $12 only if at >= state_changed_at
 */
static const char transition_sql[] =
	"WITH input AS ("
	"  SELECT i.user_id, i.at, i.ord"
	"  FROM unnest($1::uuid[], $5::timestamptz[]) WITH ORDINALITY"
	"       AS i(user_id, at, ord)"
	"), cand AS ("
	"  SELECT s.user_id, s.state AS from_state,"
	"         s.last_activity_at AS prev_activity, i.at, i.ord"
	"  FROM engagement.engagement_states s JOIN input i USING (user_id)"
	"  WHERE s.state = ANY ($3::text[])"
	"    AND ($7::timestamptz IS NULL OR s.last_activity_at < $7)"
	"    AND ($8::timestamptz IS NULL OR"
	"         CASE $2 WHEN 'goodbye_timeout' THEN s.goodbye_expires_at"
	"                 WHEN 'reminder_due' THEN s.remind_at END < $8)"
	"    AND (NOT $12::bool OR s.state_changed_at <= i.at)"
	"    AND (NOT $9::bool OR NOT EXISTS ("
	"         SELECT 1 FROM engagement.user_preferences p"
	"         WHERE p.user_id = s.user_id AND p.reengagement_opt_out))"
	"  ORDER BY s.user_id"
	"  FOR UPDATE OF s"
	"), upd AS ("
	"  UPDATE engagement.engagement_states s SET"
	"    state = $4,"
	"    state_changed_at = c.at,"
	"    last_activity_at = CASE WHEN $2 = 'user_message'"
	"        THEN greatest(s.last_activity_at, c.at) ELSE s.last_activity_at END,"
	"    goodbye_sent_at = CASE $2 WHEN 'inactivity_14d' THEN c.at"
	"        WHEN 'user_message' THEN NULL ELSE s.goodbye_sent_at END,"
	"    goodbye_expires_at = CASE $2"
	"        WHEN 'inactivity_14d' THEN c.at + make_interval(hours => $10::int)"
	"        WHEN 'user_message' THEN NULL ELSE s.goodbye_expires_at END,"
	"    remind_at = CASE $2"
	"        WHEN 'goodbye_response_2' THEN c.at + make_interval(days => $11::int)"
	"        WHEN 'user_message' THEN NULL WHEN 'reminder_due' THEN NULL"
	"        ELSE s.remind_at END"
	"  FROM cand c WHERE s.user_id = c.user_id"
	"  RETURNING s.user_id, c.from_state, c.prev_activity, c.at, c.ord,"
	"            s.goodbye_expires_at"
	"), tr AS ("
	"  INSERT INTO engagement.state_transitions"
	"    (user_id, from_state, to_state, trigger, run_id, metadata, created_at)"
	"  SELECT u.user_id, u.from_state, $4, $2, $6::uuid,"
	"    jsonb_build_object('days_inactive', greatest(0, floor("
	"        extract(epoch FROM (u.at - u.prev_activity)) / 86400))::int)"
	"    || CASE $2 WHEN 'goodbye_response_1' THEN '{\"response_type\":\"confused\"}'"
	"               WHEN 'goodbye_response_2' THEN '{\"response_type\":\"busy\"}'"
	"               WHEN 'goodbye_response_3' THEN '{\"response_type\":\"all_good\"}'"
	"               WHEN 'goodbye_timeout' THEN '{\"response_type\":\"timeout\"}'"
	"               ELSE '{}' END::jsonb"
	"    || CASE WHEN $2 = 'user_message' AND u.from_state = 'dormant'"
	"            THEN jsonb_build_object('unprompted_return',"
	"                 u.at - u.prev_activity >= interval '3 days')"
	"            ELSE '{}'::jsonb END,"
	"    u.at"
	"  FROM upd u"
	"  RETURNING id, user_id, from_state, metadata, created_at"
	"), tr_out AS ("
	"  INSERT INTO engagement.outbox_events"
	"    (aggregate_type, aggregate_id, event_type, payload, correlation_id, user_id)"
	"  SELECT 'user', t.user_id::text, 'engagement.state_changed',"
	"    jsonb_build_object('user_id', t.user_id, 'transition_id', t.id,"
	"      'from_state', t.from_state, 'to_state', $4, 'trigger', $2,"
	"      'occurred_at', t.created_at, 'metadata', t.metadata),"
	"    $6::uuid, t.user_id"
	"  FROM tr t"
	"), mq AS ("
	"  INSERT INTO engagement.message_queue (user_id, message_type, template_key,"
	"    params, idempotency_key, scheduled_for, next_attempt_at, expires_at, run_id)"
	"  SELECT u.user_id, 'goodbye', 'goodbye', '{}',"
	"    u.user_id::text || ':goodbye_sent:' ||"
	"        to_char(u.at AT TIME ZONE 'UTC', 'YYYY-MM-DD'),"
	"    u.at, u.at, u.goodbye_expires_at, $6::uuid"
	"  FROM upd u WHERE $2 = 'inactivity_14d'"
	"  ON CONFLICT (idempotency_key) DO NOTHING"
	"  RETURNING id, user_id"
	"), mq_out AS ("
	"  INSERT INTO engagement.outbox_events"
	"    (aggregate_type, aggregate_id, event_type, payload, correlation_id, user_id)"
	"  SELECT 'message', m.id::text, 'message.queued',"
	"    jsonb_build_object('message_id', m.id, 'user_id', m.user_id,"
	"      'message_type', 'goodbye'),"
	"    $6::uuid, m.user_id"
	"  FROM mq m"
	")"
	"SELECT u.ord - 1, u.from_state, m.id IS NOT NULL"
	"  FROM upd u LEFT JOIN mq m USING (user_id)";

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

	char *ids = eng_pg_array(b->user_ids, b->n);
	char *ats = eng_pg_time_array(b->at, b->n);
	char *froms = eng_pg_array(from, nfrom);
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
	PGresult *r = eng_db_query(db, transition_sql, 12, p, err);
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
