#include "eng_state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const state_names[ENG_ST_COUNT] = {
	"active", "goodbye_sent", "help_flow", "remind_later", "dormant",
};

static const char *const trigger_names[ENG_TR_COUNT] = {
	"inactivity_14d",     "user_message",       "goodbye_response_1",
	"goodbye_response_2", "goodbye_response_3", "goodbye_timeout",
	"reminder_due",
};

static const char *const check_names[] = {
	[ENG_DUE_INACTIVITY] = "inactivity",
	[ENG_DUE_GOODBYE_TIMEOUT] = "goodbye_timeout",
	[ENG_DUE_REMINDER] = "reminder_due",
};

const char *eng_state_name(enum eng_state s)
{
	return (unsigned)s < ENG_ST_COUNT ? state_names[s] : "unknown";
}

const char *eng_trigger_name(enum eng_trigger t)
{
	return (unsigned)t < ENG_TR_COUNT ? trigger_names[t] : "unknown";
}

const char *eng_due_check_name(enum eng_due_check c)
{
	return (unsigned)c < sizeof(check_names) / sizeof(*check_names) ? check_names[c]
									  : "unknown";
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

/* The parameters every call of a daily check shares. */
struct due_params {
	char now[32], days[16], gh[16], rd[16], limit[16];
};

static void due_params(const struct eng_due_batch *b, struct due_params *p)
{
	eng_time_format(b->now, p->now);
	snprintf(p->days, sizeof(p->days), "%d",
		 b->inactivity_days > 0 ? b->inactivity_days : ENG_INACTIVITY_DAYS);
	snprintf(p->gh, sizeof(p->gh), "%d",
		 b->goodbye_hours > 0 ? b->goodbye_hours : ENG_GOODBYE_HOURS);
	snprintf(p->rd, sizeof(p->rd), "%d",
		 b->remind_days > 0 ? b->remind_days : ENG_REMIND_DAYS);
	snprintf(p->limit, sizeof(p->limit), "%d", b->limit);
}

enum eng_status eng_transition_due(struct eng_db *db, const struct eng_due_batch *b,
				   struct eng_due_result *res, struct eng_err *err)
{
	struct due_params dp;
	due_params(b, &dp);
	const char *p[] = {
		eng_due_check_name(b->check), dp.now, dp.days,
		b->after_k[0] ? b->after_k : NULL, b->after_id[0] ? b->after_id : NULL,
		dp.limit, b->run_id, dp.gh, dp.rd,
	};
	memset(res, 0, sizeof(*res));
	PGresult *r = eng_db_query(db,
				   "SELECT picked, moved, queued, last_key, last_id"
				   " FROM engagement.transition_due($1, $2::timestamptz, $3::int,"
				   "   $4::timestamptz, $5::uuid, $6::int, $7::uuid, $8::int, $9::int)",
				   9, p, err);
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

enum eng_status eng_due_candidates(struct eng_db *db, const struct eng_due_batch *b,
				   PGresult **out, struct eng_err *err)
{
	struct due_params dp;
	due_params(b, &dp);
	const char *p[] = {
		eng_due_check_name(b->check), dp.now, dp.days,
		b->after_k[0] ? b->after_k : NULL, b->after_id[0] ? b->after_id : NULL, dp.limit,
	};
	*out = eng_db_query(db,
			    "SELECT user_id, key FROM engagement.due_users($1, $2::timestamptz,"
			    "  $3::int, $4::timestamptz, $5::uuid, $6::int)",
			    6, p, err);
	return *out ? ENG_OK : err->status;
}

enum eng_status eng_transition_due_users(struct eng_db *db, const struct eng_due_batch *b,
					 const char *const *ids, size_t n, bool *moved,
					 bool *queued, struct eng_err *err)
{
	struct due_params dp;
	due_params(b, &dp);
	char *arr = eng_db_text_array(ids, n);
	const char *p[] = {
		eng_due_check_name(b->check), arr, dp.now, dp.days, b->run_id, dp.gh, dp.rd,
	};
	PGresult *r = eng_db_query(db,
				   "SELECT u.ord - 1, t.message_id IS NOT NULL"
				   " FROM engagement.transition_due_users($1, $2::uuid[],"
				   "   $3::timestamptz, $4::int, $5::uuid, $6::int, $7::int) t"
				   " JOIN unnest($2::uuid[]) WITH ORDINALITY u(user_id, ord)"
				   "   USING (user_id)",
				   7, p, err);
	free(arr);
	if (!r)
		return err->status;
	for (int i = 0; i < PQntuples(r); i++) {
		size_t k = (size_t)atoll(PQgetvalue(r, i, 0));
		if (k < n) {
			moved[k] = true;
			queued[k] = strcmp(PQgetvalue(r, i, 1), "t") == 0;
		}
	}
	PQclear(r);
	return ENG_OK;
}
