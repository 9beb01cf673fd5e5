#include "eng_pool.h"

#include <stdlib.h>
#include <string.h>

#include "eng_time.h"

void eng_curl_defaults(CURL *e, long timeout_ms, long connect_timeout_ms,
		       const char *user_agent)
{
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https,http");
	/* plain http only goes to loopback: never through a proxy */
	curl_easy_setopt(e, CURLOPT_NOPROXY, "localhost,127.0.0.0/8,::1");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, user_agent);
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct eng_pool_slot *sl = userdata;
	size_t n = size * nmemb;
	eng_buf_add(&sl->answer, ptr, n); /* past max_answer: cut, still parsed */
	return n;
}

/* libcurl asks this right before the request is sent on its connection. */
static int on_prereq(void *clientp, char *primary_ip, char *local_ip,
		     int primary_port, int local_port)
{
	(void)primary_ip;
	(void)local_ip;
	(void)primary_port;
	(void)local_port;
	struct eng_pool_slot *sl = clientp;
	struct eng_pool *p = sl->pool;
	if (p->cfg.gate && !p->cfg.gate(sl->tag, p->cfg.gate_ctx))
		return CURL_PREREQFUNC_ABORT;
	sl->on_wire = true;
	return CURL_PREREQFUNC_OK;
}

enum eng_status eng_pool_init(struct eng_pool *p, const struct eng_pool_cfg *cfg,
			      struct eng_err *err)
{
	memset(p, 0, sizeof(*p));
	p->cfg = *cfg;
	p->multi = curl_multi_init();
	if (!p->multi)
		return eng_err_set(err, ENG_EINTERNAL, "curl_multi_init failed");
	curl_multi_setopt(p->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)cfg->size);
	curl_multi_setopt(p->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)cfg->size);
	curl_multi_setopt(p->multi, CURLMOPT_MAXCONNECTS, (long)cfg->size);
	p->slots = eng_xcalloc((size_t)cfg->size, sizeof(*p->slots));
	for (int i = 0; i < cfg->size; i++) {
		struct eng_pool_slot *sl = &p->slots[i];
		sl->pool = p;
		eng_buf_init(&sl->answer, cfg->max_answer);
		sl->easy = curl_easy_init();
		if (!sl->easy)
			return eng_err_set(err, ENG_EINTERNAL, "curl_easy_init failed");
		eng_curl_defaults(sl->easy, cfg->timeout_ms, cfg->connect_timeout_ms,
				  cfg->user_agent);
		curl_easy_setopt(sl->easy, CURLOPT_URL, cfg->url);
		curl_easy_setopt(sl->easy, CURLOPT_HTTPHEADER, cfg->headers);
		curl_easy_setopt(sl->easy, CURLOPT_WRITEFUNCTION, on_data);
		curl_easy_setopt(sl->easy, CURLOPT_WRITEDATA, sl);
		curl_easy_setopt(sl->easy, CURLOPT_PRIVATE, (char *)sl);
		curl_easy_setopt(sl->easy, CURLOPT_ERRORBUFFER, sl->errbuf);
		curl_easy_setopt(sl->easy, CURLOPT_PREREQFUNCTION, on_prereq);
		curl_easy_setopt(sl->easy, CURLOPT_PREREQDATA, sl);
	}
	return ENG_OK;
}

void eng_pool_release(struct eng_pool *p)
{
	for (int i = 0; p->slots && i < p->cfg.size; i++) {
		struct eng_pool_slot *sl = &p->slots[i];
		if (sl->easy) {
			if (sl->tag)
				curl_multi_remove_handle(p->multi, sl->easy);
			curl_easy_cleanup(sl->easy);
		}
		eng_buf_release(&sl->answer);
	}
	free(p->slots);
	p->slots = NULL;
	if (p->multi)
		curl_multi_cleanup(p->multi);
	p->multi = NULL;
	p->in_flight = 0;
}

enum eng_status eng_pool_start(struct eng_pool *p, const char *body, size_t len,
			       void *tag, struct eng_err *err)
{
	struct eng_pool_slot *sl = NULL;
	for (int i = 0; i < p->cfg.size && !sl; i++)
		if (!p->slots[i].tag)
			sl = &p->slots[i];
	if (!sl)
		return eng_err_set(err, ENG_EINTERNAL, "no free request slot");
	eng_buf_reset(&sl->answer);
	sl->errbuf[0] = '\0';
	sl->on_wire = false;
	sl->t0 = eng_mono_us();
	curl_easy_setopt(sl->easy, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(sl->easy, CURLOPT_POSTFIELDSIZE, (long)len);
	if (curl_multi_add_handle(p->multi, sl->easy) != CURLM_OK)
		return eng_err_set(err, ENG_EINTERNAL, "curl_multi_add_handle failed");
	sl->tag = tag;
	p->in_flight++;
	return ENG_OK;
}

enum eng_status eng_pool_perform(struct eng_pool *p, struct eng_err *err)
{
	int still;
	CURLMcode mc = curl_multi_perform(p->multi, &still);
	if (mc != CURLM_OK)
		return eng_err_set(err, ENG_EINTERNAL, "libcurl: %s",
				   curl_multi_strerror(mc));
	return ENG_OK;
}

enum eng_status eng_pool_wait(struct eng_pool *p, struct curl_waitfd *extra,
			      unsigned nextra, int timeout_ms, struct eng_err *err)
{
	CURLMcode mc = curl_multi_poll(p->multi, extra, nextra, timeout_ms, NULL);
	if (mc != CURLM_OK)
		return eng_err_set(err, ENG_EINTERNAL, "libcurl: %s",
				   curl_multi_strerror(mc));
	return eng_pool_perform(p, err);
}

bool eng_pool_next(struct eng_pool *p, struct eng_pool_done *d)
{
	CURLMsg *cm;
	int left;
	while ((cm = curl_multi_info_read(p->multi, &left)) != NULL) {
		if (cm->msg != CURLMSG_DONE)
			continue;
		struct eng_pool_slot *sl = NULL;
		curl_easy_getinfo(cm->easy_handle, CURLINFO_PRIVATE, (char **)&sl);
		memset(d, 0, sizeof(*d));
		d->rc = cm->data.result;
		curl_multi_remove_handle(p->multi, cm->easy_handle);
		if (d->rc == CURLE_OK)
			curl_easy_getinfo(sl->easy, CURLINFO_RESPONSE_CODE, &d->http_status);
		d->tag = sl->tag;
		d->answer = eng_buf_str(&sl->answer);
		d->answer_len = sl->answer.len;
		d->errbuf = sl->errbuf;
		d->ms = (double)(eng_mono_us() - sl->t0) / 1000.0;
		d->on_wire = sl->on_wire;
		sl->tag = NULL;
		p->in_flight--;
		return true;
	}
	return false;
}

bool eng_pool_on_wire(const struct eng_pool *p, const void *tag)
{
	for (int i = 0; i < p->cfg.size; i++)
		if (p->slots[i].tag == tag)
			return p->slots[i].on_wire;
	return false;
}
