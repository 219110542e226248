#include "redis_purge.h"

#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "redis_conn.h"
#include "redis_url.h"

#define JOB_MAGIC 0x5250524au    /* "RPRJ" */
#define SCAN_COUNT "1000"

struct job {
    uint32_t magic;
    struct redis_purges *p;
    struct redis_conn *c;
    char *pattern;               /* MATCH pattern: escaped prefix + '*' */
    size_t plen;
    char cursor[24];
    uint64_t found;
    unsigned steps;
};

static void job_free(struct job *job)
{
    job->magic = 0;
    free(job->pattern);
    free(job);
}

static void job_fail(struct job *job, const char *why)
{
    job->p->errors++;
    log_warn("redis: purge aborted after %u steps and %" PRIu64 " keys: %s", job->steps,
             job->found, why);
    job_free(job);
}

static void on_scan(void *arg, const redisReply *reply);

static int scan_step(struct job *job)
{
    const char *argv[6] = {"SCAN", job->cursor, "MATCH", job->pattern, "COUNT", SCAN_COUNT};
    size_t lens[6] = {4, strlen(job->cursor), 5, job->plen, 5, sizeof(SCAN_COUNT) - 1};

    return redis_conn_send(job->c, "SCAN", 6, argv, lens, NULL, on_scan, job);
}

static void on_unlink(void *arg, const redisReply *reply)
{
    struct redis_purges *p = arg;

    if (reply != NULL && reply->type == REDIS_REPLY_INTEGER) {
        p->keys += (uint64_t)reply->integer;
        return;
    }
    if (reply == NULL && p->abandon)
        return;
    p->errors++;
    if (reply != NULL && ratelog_take(&p->rl))
        log_warn("redis: UNLINK failed: %s%s",
                 redis_url_safe_msg(p->url, reply->type == REDIS_REPLY_ERROR
                                                ? reply->str
                                                : "unexpected reply type"),
                 p->rl.more);
}

/* UNLINK the keys of one SCAN answer. */
static int unlink_keys(struct job *job, const redisReply *keys)
{
    const char **argv = malloc((keys->elements + 1) * sizeof(*argv));
    size_t *lens = malloc((keys->elements + 1) * sizeof(*lens)), i;
    int rc = -1;

    if (argv == NULL || lens == NULL)
        goto out;
    argv[0] = "UNLINK";
    lens[0] = 6;
    for (i = 0; i < keys->elements; i++) {
        if (keys->element[i]->type != REDIS_REPLY_STRING)
            goto out;
        argv[i + 1] = keys->element[i]->str;
        lens[i + 1] = keys->element[i]->len;
    }
    rc = redis_conn_send(job->c, "UNLINK", (int)keys->elements + 1, argv, lens, NULL,
                         on_unlink, job->p);
out:
    free(argv);
    free(lens);
    return rc;
}

/* One SCAN answer: unlink what it found and go on from its cursor. */
static void on_scan(void *arg, const redisReply *reply)
{
    struct job *job = arg;
    const redisReply *cur, *keys;

    assert(job->magic == JOB_MAGIC);
    if (reply == NULL) {
        if (job->p->abandon)
            job_free(job);
        else
            job_fail(job, "the connection was lost");
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        job_fail(job, redis_url_safe_msg(job->p->url, reply->str));
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[0]->len >= sizeof(job->cursor) ||
        reply->element[1]->type != REDIS_REPLY_ARRAY) {
        job_fail(job, "unexpected SCAN reply");
        return;
    }
    cur = reply->element[0];
    keys = reply->element[1];
    job->steps++;
    if (keys->elements > 0 && unlink_keys(job, keys) != 0) {
        job_fail(job, "cannot send UNLINK");
        return;
    }
    job->found += keys->elements;
    if (strcmp(cur->str, "0") == 0) {
        job->p->done++;
        log_info("redis: purge done: %" PRIu64 " keys in %u steps", job->found, job->steps);
        job_free(job);
        return;
    }
    memcpy(job->cursor, cur->str, cur->len + 1);
    if (scan_step(job) != 0)
        job_fail(job, "cannot send SCAN");
}

/* SCAN ... MATCH takes a glob: escape its special characters. */
static char *glob_prefix(const char *prefix, size_t *len)
{
    size_t n = strlen(prefix), i, j = 0;
    char *p = malloc(2 * n + 2);

    if (p == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        if (strchr("*?[]\\", prefix[i]) != NULL)
            p[j++] = '\\';
        p[j++] = prefix[i];
    }
    p[j++] = '*';
    p[j] = '\0';
    *len = j;
    return p;
}

void redis_purge(struct redis_purges *p, struct redis_conn *c, const char *prefix)
{
    struct job *job;

    if ((job = calloc(1, sizeof(*job))) == NULL ||
        (job->pattern = glob_prefix(prefix, &job->plen)) == NULL) {
        free(job);
        p->errors++;
        log_warn("redis: purge not done: out of memory");
        return;
    }
    job->magic = JOB_MAGIC;
    job->p = p;
    job->c = c;
    strcpy(job->cursor, "0");
    if (scan_step(job) != 0)
        job_fail(job, "cannot send SCAN");
}
