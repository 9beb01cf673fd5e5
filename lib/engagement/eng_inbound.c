#include "eng_inbound.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_buf.h"
#include "eng_crypto.h"
#include "eng_phrase.h"

int eng_inbound_goodbye_reply(const struct eng_inbound_msg *m)
{
	if (m->payload) {
		if (strncmp(m->payload, "goodbye_", 8) == 0 && m->payload[8] >= '1' &&
		    m->payload[8] <= '3' && m->payload[9] == '\0')
			return m->payload[8] - '0';
		return 0;
	}
	if (!m->text)
		return 0;
	/* "2", " 2 ", "2." (people type it so) */
	const char *p = m->text;
	while (isspace((unsigned char)*p))
		p++;
	if (*p < '1' || *p > '3')
		return 0;
	int n = *p++ - '0';
	while (*p == '.' || *p == ')' || isspace((unsigned char)*p))
		p++;
	return *p == '\0' ? n : 0;
}

/* The people's states, for telling a goodbye reply from activity. */
static PGresult *states_of(struct eng_db *db, const struct eng_inbound_msg *m, size_t n,
			   struct eng_err *err)
{
	const char **ids = eng_xcalloc(n + 1, sizeof(*ids));
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (m[i].who.found)
			ids[k++] = m[i].who.user_id;
	char *arr = eng_db_text_array(ids, k);
	const char *p[] = {arr};
	PGresult *r = eng_db_query(db,
				   "SELECT user_id::text, state FROM engagement.engagement_states "
				   "WHERE user_id = ANY ($1::uuid[])",
				   1, p, err);
	free(arr);
	free(ids);
	return r;
}

/* The users of a result (column 0, sorted), for bsearch. */
static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Who is in goodbye_sent now: their ids, sorted. */
static size_t goodbye_sent_ids(const PGresult *states, const char ***out)
{
	*out = eng_xcalloc((size_t)PQntuples(states) + 1, sizeof(**out));
	size_t n = 0;
	for (int i = 0; i < PQntuples(states); i++)
		if (strcmp(PQgetvalue(states, i, 1), "goodbye_sent") == 0)
			(*out)[n++] = PQgetvalue(states, i, 0);
	qsort(*out, n, sizeof(**out), cmp_str);
	return n;
}

/* first[i]: message i is its person's first here (in time order). */
struct by_user {
	const char *user_id;
	size_t i;
};

static int cmp_by_user(const void *a, const void *b)
{
	const struct by_user *x = a, *y = b;
	int c = strcmp(x->user_id, y->user_id);
	return c ? c : (x->i > y->i) - (x->i < y->i);
}

static bool *firsts(const struct eng_inbound_msg *m, size_t n)
{
	struct by_user *v = eng_xcalloc(n + 1, sizeof(*v));
	bool *first = eng_xcalloc(n + 1, sizeof(*first));
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (m[i].who.found)
			v[k++] = (struct by_user){m[i].who.user_id, i};
	qsort(v, k, sizeof(*v), cmp_by_user);
	for (size_t j = 0; j < k; j++)
		first[v[j].i] = j == 0 || strcmp(v[j - 1].user_id, v[j].user_id) != 0;
	free(v);
	return first;
}

/* A message's identity as an inbound event id (at most 128 bytes): its
 * wamid, or, for a longer one, "wamid-sha256:" and the wamid's SHA-256, so
 * that two long ids sharing a prefix stay two messages. */
static void event_id_of(const char *wamid, char out[ENG_EVENT_ID_MAX + 1])
{
	if (strlen(wamid) <= ENG_EVENT_ID_MAX) {
		snprintf(out, ENG_EVENT_ID_MAX + 1, "%s", wamid);
		return;
	}
	char hex[65];
	eng_sha256_hex(wamid, strlen(wamid), hex);
	snprintf(out, ENG_EVENT_ID_MAX + 1, "wamid-sha256:%s", hex);
}

void eng_inbound_interpret(const struct eng_inbound_msg *msgs, size_t n,
			   const char *const *gs, size_t ngs, struct eng_inbound *in)
{
	memset(in, 0, sizeof(*in));
	in->ev = eng_xcalloc(n + 1, sizeof(*in->ev));
	in->pref = eng_xcalloc(n + 1, sizeof(*in->pref));
	bool *first = firsts(msgs, n);
	for (size_t i = 0; i < n; i++) {
		const struct eng_inbound_msg *m = &msgs[i];
		if (!m->who.found)
			continue;
		struct eng_event *e = &in->ev[in->nev++];
		e->who = m->who;
		e->at = m->at;
		event_id_of(m->id, e->id);
		/* a reply to the goodbye only as the person's first message here:
		 * any message moves them out of goodbye_sent, so the next one is
		 * activity, whatever it says */
		const char *key = m->who.user_id;
		int reply = first[i] && bsearch(&key, gs, ngs, sizeof(*gs), cmp_str)
				    ? eng_inbound_goodbye_reply(m) : 0;
		e->activity = reply == 0;
		e->trigger = reply ? (enum eng_trigger)(ENG_TR_GOODBYE_RESPONSE_1 + reply - 1)
				   : ENG_TR_USER_MESSAGE;
		bool opt_out;
		const char *locale;
		if (m->text && eng_phrase_match(m->text, &opt_out, &locale)) {
			struct eng_optout_item *it = &in->pref[in->npref++];
			it->who = m->who;
			it->opt_out = opt_out;
			snprintf(it->source, sizeof(it->source), "whatsapp");
			it->at = m->at;
			snprintf(it->id, sizeof(it->id), "%s", e->id);
			snprintf(it->phrase_locale, sizeof(it->phrase_locale), "%s", locale);
		}
	}
	free(first);
}

enum eng_status eng_inbound_read(struct eng_db *db, const struct eng_inbound_msg *m,
				 size_t n, struct eng_inbound *in, struct eng_err *err)
{
	memset(in, 0, sizeof(*in));
	PGresult *states = states_of(db, m, n, err);
	if (!states)
		return err->status;
	const char **gs;
	size_t ngs = goodbye_sent_ids(states, &gs);
	eng_inbound_interpret(m, n, gs, ngs, in);
	free(gs);
	PQclear(states);
	return ENG_OK;
}

void eng_inbound_release(struct eng_inbound *in)
{
	for (size_t i = 0; i < in->npref; i++)
		eng_optout_item_release(&in->pref[i]);
	free(in->ev);
	free(in->pref);
	memset(in, 0, sizeof(*in));
}
