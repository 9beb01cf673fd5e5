/* What a send request must look like (template messages only). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "standin.h"

static bool is_lower(char c)
{
	return c >= 'a' && c <= 'z';
}

static bool is_alpha(char c)
{
	return is_lower(c) || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

bool sa_is_digits(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_digit(s[i]))
			return false;
	return true;
}

bool sa_is_version(const char *s, size_t n)
{
	if (n < 4 || s[0] != 'v')
		return false;
	const char *dot = memchr(s, '.', n);
	if (!dot)
		return false;
	size_t major = (size_t)(dot - s) - 1;
	size_t minor = n - (size_t)(dot - s) - 1;
	return sa_is_digits(s + 1, major) && sa_is_digits(dot + 1, minor);
}

bool sa_is_phone(const char *s)
{
	if (s[0] != '+' || s[1] < '1' || s[1] > '9')
		return false;
	size_t n = strlen(s + 1);
	return n >= 8 && n <= 15 && sa_is_digits(s + 1, n);
}

bool sa_is_language(const char *s)
{
	size_t i = 0;
	while (is_lower(s[i]))
		i++;
	if (i < 2 || i > 3)
		return false;
	if (s[i] == '\0')
		return true;
	if (s[i] != '_')
		return false;
	size_t j = ++i;
	while (is_alpha(s[j]))
		j++;
	return s[j] == '\0' && j - i >= 2 && j - i <= 4;
}

static bool fail(char *detail, size_t n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static bool fail(char *detail, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, n, fmt, ap);
	va_end(ap);
	return false;
}

static bool check_parameters(const json_t *params, size_t ci, char *detail,
			     size_t n)
{
	if (!json_is_array(params))
		return fail(detail, n,
			    "template.components[%zu].parameters must be an array",
			    ci);
	size_t i, named = 0;
	const json_t *p;
	json_array_foreach(params, i, p) {
		if (!json_is_object(p))
			return fail(detail, n,
				    "template.components[%zu].parameters[%zu] must be an object",
				    ci, i);
		const char *type = json_string_value(json_object_get(p, "type"));
		if (!type)
			return fail(detail, n,
				    "template.components[%zu].parameters[%zu].type is required",
				    ci, i);
		if (strcmp(type, "text") != 0)
			return fail(detail, n,
				    "template.components[%zu].parameters[%zu].type must be \"text\" in a body component",
				    ci, i);
		if (!json_is_string(json_object_get(p, "text")))
			return fail(detail, n,
				    "template.components[%zu].parameters[%zu].text must be a string",
				    ci, i);
		const json_t *name = json_object_get(p, "parameter_name");
		if (name) {
			if (!json_is_string(name) || json_string_length(name) == 0)
				return fail(detail, n,
					    "template.components[%zu].parameters[%zu].parameter_name must be a non-empty string",
					    ci, i);
			named++;
		}
	}
	if (named != 0 && named != json_array_size(params))
		return fail(detail, n,
			    "template.components[%zu].parameters mixes named and positional parameters",
			    ci);
	return true;
}

static bool check_template(const json_t *tpl, char *detail, size_t n)
{
	if (!tpl)
		return fail(detail, n, "The parameter template is required.");
	if (!json_is_object(tpl))
		return fail(detail, n, "template must be an object");
	const json_t *name = json_object_get(tpl, "name");
	if (!json_is_string(name) || json_string_length(name) == 0)
		return fail(detail, n, "template.name must be a non-empty string");
	const json_t *lang = json_object_get(tpl, "language");
	if (!json_is_object(lang))
		return fail(detail, n,
			    "template.language must be an object with a code");
	const char *code = json_string_value(json_object_get(lang, "code"));
	if (!code || strlen(code) != json_string_length(json_object_get(lang, "code")) ||
	    !sa_is_language(code))
		return fail(detail, n,
			    "template.language.code must be a language code such as en, en_US or pt_BR");
	const json_t *comps = json_object_get(tpl, "components");
	if (!comps)
		return true;
	if (!json_is_array(comps))
		return fail(detail, n, "template.components must be an array");
	size_t i;
	const json_t *c;
	json_array_foreach(comps, i, c) {
		if (!json_is_object(c))
			return fail(detail, n,
				    "template.components[%zu] must be an object", i);
		const char *type = json_string_value(json_object_get(c, "type"));
		if (!type || !*type)
			return fail(detail, n,
				    "template.components[%zu].type must be a non-empty string",
				    i);
		const json_t *params = json_object_get(c, "parameters");
		if (strcmp(type, "body") == 0 && params &&
		    !check_parameters(params, i, detail, n))
			return false;
	}
	return true;
}

bool sa_check_message(const json_t *body, char *detail, size_t n)
{
	if (!json_is_object(body))
		return fail(detail, n, "the request body must be a JSON object");

	const json_t *mp = json_object_get(body, "messaging_product");
	if (!mp)
		return fail(detail, n,
			    "The parameter messaging_product is required.");
	if (!json_is_string(mp) || strcmp(json_string_value(mp), "whatsapp") != 0)
		return fail(detail, n, "messaging_product must be \"whatsapp\"");

	bool group = false;
	const json_t *rt = json_object_get(body, "recipient_type");
	if (rt) {
		const char *v = json_string_value(rt);
		if (v && strcmp(v, "group") == 0)
			group = true;
		else if (!v || strcmp(v, "individual") != 0)
			return fail(detail, n,
				    "recipient_type must be \"individual\" or \"group\"");
	}

	const json_t *to = json_object_get(body, "to");
	if (!to)
		return fail(detail, n, "The parameter to is required.");
	if (!json_is_string(to))
		return fail(detail, n, "to must be a string");
	const char *tov = json_string_value(to);
	if (group) {
		if (json_string_length(to) == 0)
			return fail(detail, n,
				    "to must be a non-empty group id for recipient_type \"group\"");
	} else if (strlen(tov) != json_string_length(to) || !sa_is_phone(tov)) {
		return fail(detail, n,
			    "to must be a phone number with + and country code (+[1-9] and 7 to 14 more digits)");
	}

	const json_t *type = json_object_get(body, "type");
	if (!type)
		return fail(detail, n, "The parameter type is required.");
	if (!json_is_string(type) || strcmp(json_string_value(type), "template") != 0)
		return fail(detail, n,
			    "type must be \"template\" (the stand-in takes template messages only)");

	if (!check_template(json_object_get(body, "template"), detail, n))
		return false;

	const json_t *opaque = json_object_get(body, "biz_opaque_callback_data");
	if (opaque) {
		if (!json_is_string(opaque))
			return fail(detail, n,
				    "biz_opaque_callback_data must be a string");
		size_t chars = sa_utf8_chars(json_string_value(opaque),
					     json_string_length(opaque));
		if (chars > SA_MAX_OPAQUE)
			return fail(detail, n,
				    "biz_opaque_callback_data is %zu characters long, at most %d allowed",
				    chars, SA_MAX_OPAQUE);
	}
	return true;
}

/* A string member, or null. */
static json_t *string_or_null(const json_t *v)
{
	return json_is_string(v) ? json_copy((json_t *)v) : json_null();
}

void sa_extract(const json_t *body, json_t *rec)
{
	bool obj = json_is_object(body);
	const json_t *tpl = obj ? json_object_get(body, "template") : NULL;
	const json_t *lang = json_is_object(tpl) ? json_object_get(tpl, "language") : NULL;

	json_object_set_new(rec, "to",
			    string_or_null(obj ? json_object_get(body, "to") : NULL));
	const json_t *rt = obj ? json_object_get(body, "recipient_type") : NULL;
	if (obj && !rt)
		json_object_set_new(rec, "recipient_type", json_string("individual"));
	else
		json_object_set_new(rec, "recipient_type", string_or_null(rt));
	json_object_set_new(rec, "template",
			    string_or_null(json_is_object(tpl) ? json_object_get(tpl, "name") : NULL));
	json_object_set_new(rec, "language",
			    string_or_null(json_is_object(lang) ? json_object_get(lang, "code") : NULL));

	json_t *texts = obj ? json_array() : json_null();
	json_t *names = json_null();
	const json_t *comps = json_is_object(tpl) ? json_object_get(tpl, "components") : NULL;
	size_t i;
	const json_t *c;
	json_array_foreach(comps, i, c) {
		const char *type = json_string_value(json_object_get(c, "type"));
		if (!type || strcmp(type, "body") != 0)
			continue;
		size_t j;
		const json_t *p;
		json_array_foreach(json_object_get(c, "parameters"), j, p) {
			const json_t *text = json_object_get(p, "text");
			const json_t *name = json_object_get(p, "parameter_name");
			if (json_is_array(texts))
				json_array_append_new(texts, string_or_null(text));
			if (json_is_string(name)) {
				if (json_is_null(names)) {
					names = json_array();
					/* Earlier positional ones get null names. */
					for (size_t k = 0; k + 1 < json_array_size(texts); k++)
						json_array_append_new(names, json_null());
				}
				json_array_append_new(names, json_copy((json_t *)name));
			} else if (json_is_array(names)) {
				json_array_append_new(names, json_null());
			}
		}
	}
	json_object_set_new(rec, "parameters", texts);
	json_object_set_new(rec, "parameter_names", names);
	json_object_set_new(rec, "biz_opaque_callback_data",
			    string_or_null(obj ? json_object_get(body, "biz_opaque_callback_data") : NULL));
}
