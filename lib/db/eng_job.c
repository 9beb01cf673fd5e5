#include "eng_job.h"

#include "eng_json.h"

void eng_job_set_int(const struct eng_job *j, const char *key, long long v)
{
	json_object_set_new(j->summary, key, json_integer(v));
}

void eng_job_set_str(const struct eng_job *j, const char *key, const char *v)
{
	json_object_set_new(j->summary, key, eng_json_masked(v));
}
