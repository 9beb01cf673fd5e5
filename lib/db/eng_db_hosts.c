/*
 * A connection string that names several hosts (host=a,b port=p,q
 * target_session_attrs=read-write): libpq walks the list, but only past
 * hosts it cannot reach or that answer "cannot connect now" (57P03). Any
 * other refusal from a server ends its walk at that host: a standby that
 * has not yet replayed a new database, a standby out of connection slots,
 * a pg_hba.conf that differs between nodes. After a failover the first
 * host is often such a standby, and the primary behind it never tried.
 *
 * So when a connection with several hosts fails and a server refused it,
 * each host is tried again on its own, in the order given, with everything
 * else of the connection as it was (target_session_attrs included: a
 * standby is still passed over). libpq keeps choosing; no host is pinned.
 */
#include "eng_db.h"

#include <stdlib.h>
#include <string.h>

#include "eng_buf.h"

/* The n-th of a comma-separated list (the only one when it has one);
 * NULL when the list is empty or shorter. The caller frees it. */
static char *nth(const char *list, size_t n)
{
	if (!list || !*list)
		return NULL;
	size_t count = 1;
	for (const char *p = list; *p; p++)
		count += *p == ',';
	if (count == 1)
		return eng_xstrdup(list);
	const char *p = list;
	for (size_t i = 0; i < n && p; i++) {
		p = strchr(p, ',');
		if (p)
			p++;
	}
	if (!p)
		return NULL;
	size_t len = strcspn(p, ",");
	char *out = eng_xmalloc(len + 1);
	memcpy(out, p, len);
	out[len] = '\0';
	return out;
}

size_t eng_db_host_count(const char *hosts, const char *hostaddrs)
{
	size_t n = 0;
	const char *lists[] = {hosts, hostaddrs};
	for (size_t k = 0; k < 2; k++) {
		if (!lists[k] || !*lists[k])
			continue;
		size_t c = 1;
		for (const char *p = lists[k]; *p; p++)
			c += *p == ',';
		if (c > n)
			n = c;
	}
	return n;
}

char *eng_db_host_item(const char *list, size_t i)
{
	return nth(list, i);
}

/* The options of conn as libpq resolved them (defaults and environment
 * included), with host, hostaddr and port replaced by the i-th of each. */
static PGconn *connect_one(PQconninfoOption *opts, size_t i)
{
	size_t n = 0;
	for (PQconninfoOption *o = opts; o->keyword; o++)
		n++;
	const char **keys = eng_xmalloc((n + 1) * sizeof(*keys));
	const char **vals = eng_xmalloc((n + 1) * sizeof(*vals));
	char *own[3] = {NULL, NULL, NULL};
	size_t k = 0;
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		const char *v = o->val;
		int which = strcmp(o->keyword, "host") == 0       ? 0
			    : strcmp(o->keyword, "hostaddr") == 0 ? 1
			    : strcmp(o->keyword, "port") == 0     ? 2
								  : -1;
		if (which >= 0)
			v = own[which] = nth(o->val, i);
		if (!v || !*v)
			continue;
		keys[k] = o->keyword;
		vals[k++] = v;
	}
	keys[k] = NULL;
	vals[k] = NULL;
	PGconn *c = PQconnectdbParams(keys, vals, 0);
	for (size_t j = 0; j < 3; j++)
		free(own[j]);
	free(keys);
	free(vals);
	return c;
}

PGconn *eng_db_each_host(PGconn *failed)
{
	const char *msg = failed ? PQerrorMessage(failed) : NULL;
	/* only when a server refused (libpq reports it as FATAL): hosts that
	 * were down were already tried */
	if (!msg || !strstr(msg, "FATAL"))
		return NULL;
	PQconninfoOption *opts = PQconninfo(failed);
	if (!opts)
		return NULL;
	const char *host = NULL, *addr = NULL;
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (strcmp(o->keyword, "host") == 0)
			host = o->val;
		else if (strcmp(o->keyword, "hostaddr") == 0)
			addr = o->val;
	}
	size_t n = eng_db_host_count(host, addr);
	PGconn *c = NULL;
	for (size_t i = 0; n > 1 && i < n; i++) {
		c = connect_one(opts, i);
		if (c && PQstatus(c) == CONNECTION_OK)
			break;
		PQfinish(c);
		c = NULL;
	}
	PQconninfoFree(opts);
	return c;
}
