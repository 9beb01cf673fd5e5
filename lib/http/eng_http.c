#include "eng_http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_buf.h"

/* localhost, ::1, or an IPv4 literal in 127.0.0.0/8 (not "127.evil.com"). */
static bool is_loopback(const char *host)
{
	struct in_addr a;
	if (strcmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0 ||
	    strcmp(host, "::1") == 0)
		return true;
	return inet_pton(AF_INET, host, &a) == 1 &&
	       (ntohl(a.s_addr) >> 24) == 127;
}

enum eng_status eng_http_check_url(const char *url, const char *what,
				   char *out, size_t outsz, struct eng_err *err)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *query = NULL;
	enum eng_status st = ENG_OK;
	if (!u)
		return eng_err_set(err, ENG_EINTERNAL, "out of memory");
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		/* the text is not echoed: it may hold a credential */
		st = eng_err_set(err, ENG_ECONFIG, "%s is not a valid URL", what);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK && query) {
		st = eng_err_set(err, ENG_ECONFIG, "%s must not have a query string",
				 what);
		goto out;
	}
	char *extra = NULL;
	bool has_extra = (curl_url_get(u, CURLUPART_USER, &extra, 0) == CURLUE_OK && extra) ||
			 (curl_url_get(u, CURLUPART_FRAGMENT, &extra, 0) == CURLUE_OK && extra);
	curl_free(extra);
	if (has_extra) {
		st = eng_err_set(err, ENG_ECONFIG,
				 "%s must not carry a user name or a #fragment", what);
		goto out;
	}
	if (strcmp(scheme, "https") != 0 &&
	    !(strcmp(scheme, "http") == 0 && is_loopback(host))) {
		st = eng_err_set(err, ENG_ECONFIG,
				 "%s must be https (plain http only to a loopback "
				 "host), not %.16s://%.200s",
				 what, scheme, host);
		goto out;
	}
	size_t n = strlen(url);
	while (n > 0 && url[n - 1] == '/')
		n--;
	if (n == 0 || n >= outsz) {
		st = eng_err_set(err, ENG_ECONFIG, "%s is too long", what);
		goto out;
	}
	memcpy(out, url, n);
	out[n] = '\0';
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(query);
	curl_url_cleanup(u);
	return st;
}

enum eng_status eng_http_read_secret(const char *path, const char *what,
				     char **out, struct eng_err *err)
{
	*out = NULL;
	/* not blocking on a FIFO; what is opened is what is checked */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return eng_err_set(err, ENG_ECONFIG, "cannot read %s %.200s: %s", what,
				   path, strerror(e));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return eng_err_set(err, ENG_ECONFIG,
				   "%s %.200s is not a regular file: put the secret in "
				   "a file of its own",
				   what, path);
	}
	if (st.st_mode & 077) {
		close(fd);
		return eng_err_set(err, ENG_ECONFIG,
				   "%s %.200s is readable by group or others (mode %04o): "
				   "chmod 600 %.200s",
				   what, path, (unsigned)(st.st_mode & 07777), path);
	}
	FILE *f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		return eng_err_set(err, ENG_ECONFIG, "cannot read %s %.200s: %s", what,
				   path, strerror(errno));
	}
	struct eng_buf b = ENG_BUF_INIT(16 * 1024);
	int rc = eng_buf_read(&b, f);
	fclose(f);
	if (rc) {
		if (b.data)
			memset(b.data, 0, b.len);
		eng_buf_release(&b);
		return eng_err_set(err, ENG_ECONFIG, "cannot read %s %.200s%s", what,
				   path, rc == EFBIG ? ": larger than 16 KiB" : "");
	}
	char *t = eng_buf_detach(&b);
	size_t len = strlen(t);
	while (len > 0 && isspace((unsigned char)t[len - 1]))
		t[--len] = '\0';
	if (len == 0) {
		eng_http_wipe(t);
		return eng_err_set(err, ENG_ECONFIG, "%s %.200s is empty", what, path);
	}
	*out = t;
	return ENG_OK;
}

void eng_http_wipe(char *secret)
{
	if (!secret)
		return;
	volatile char *p = secret;
	while (*p)
		*p++ = '\0';
	free(secret);
}
