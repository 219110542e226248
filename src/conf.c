#include "conf.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf_keys.h"
#include "log.h"
#include "redis_tls.h"
#include "request_read.h"

/* conf_keys has at most this many rows (checked in conf_load). */
#define MAX_KEYS 64

struct loader {
    struct conf *c;
    const char *path;
    int line;               /* of the line inih is handling */
    FILE *f;
    char *err;
    size_t errlen;
    int failed;
    int key_lines[MAX_KEYS];  /* where each key of conf_keys was set (-1: the
                                 environment), for the later checks */
    int client_line;        /* the first [client] key's line */
};

static void vfail(struct loader *l, const char *fmt, va_list ap)
{
    int n;

    if (l->failed++)
        return; /* the first error is the one reported */
    n = snprintf(l->err, l->errlen, "%s:%d: ", l->path, l->line);
    if (n < 0 || (size_t)n >= l->errlen)
        return;
    vsnprintf(l->err + n, l->errlen - (size_t)n, fmt, ap);
}

/* "FILE:LINE: reason" of the line being read; 0 (inih: stop). */
static int fail(struct loader *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int fail(struct loader *l, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfail(l, fmt, ap);
    va_end(ap);
    return 0;
}

/* The same of line (a check after reading); -1. */
static int fail_at(struct loader *l, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail_at(struct loader *l, int line, const char *fmt, ...)
{
    va_list ap;

    l->line = line;
    va_start(ap, fmt);
    vfail(l, fmt, ap);
    va_end(ap);
    return -1;
}

/* key's value v into obj (struct conf, conf_project or conf_client). */
static int set_key(const struct conf_key *k, void *obj, const char *v)
{
    if (k->parse != NULL)
        return k->parse(obj, v);
    return conf_value_parse(k->type, (char *)obj + k->off, v);
}

static int bad_value(struct loader *l, const struct conf_key *k, const char *v)
{
    if (k->bad_msg != NULL)
        return fail(l, "%s", k->bad_msg);
    return fail(l, "%s: expected %s, got '%s'", k->name, conf_type_hint(k->type), v);
}

/* `project "id"` or `client "name"`: the quoted name, or NULL. */
static const char *quoted(const char *section, const char *kind, char *buf, size_t len)
{
    size_t k = strlen(kind), n;

    if (strncmp(section, kind, k) != 0 || section[k] != ' ')
        return NULL;
    section += k + 1;
    while (*section == ' ')
        section++;
    n = strlen(section);
    if (n < 3 || section[0] != '"' || section[n - 1] != '"' || n - 2 >= len)
        return NULL;
    memcpy(buf, section + 1, n - 2);
    buf[n - 2] = '\0';
    return strchr(buf, '"') ? NULL : buf;
}

/* The element of a named-section array whose name (a char * at name_off)
 * is name, appended zeroed with that name when there is none. */
static void *named_get(void **arr, size_t *n, size_t size, size_t name_off, const char *name)
{
    char *base = *arr, *e;
    size_t i;

    for (i = 0; i < *n; i++)
        if (strcmp(*(char **)(base + i * size + name_off), name) == 0)
            return base + i * size;
    if ((base = realloc(base, (*n + 1) * size)) == NULL)
        return NULL;
    *arr = base;
    e = base + *n * size;
    memset(e, 0, size);
    if ((*(char **)(e + name_off) = strdup(name)) == NULL)
        return NULL;
    (*n)++;
    return e;
}

/* [project "ID"]: sections are found by the canonical id, so that two
 * spellings of one UUID cannot name two sections (one would silently win). */
static struct conf_project *project_get(struct loader *l, const char *spelled)
{
    char *id = rr_project_canon(spelled, strlen(spelled));
    struct conf_project *p = NULL;
    size_t i;

    if (id == NULL) {
        fail(l, "out of memory");
        return NULL;
    }
    for (i = 0; i < l->c->nprojects; i++) {
        if (strcmp(l->c->projects[i].id, id) != 0)
            continue;
        p = &l->c->projects[i];
        if (strcmp(p->section, spelled) != 0) {
            fail(l, "[project \"%s\"] names the same project as [project \"%s\"] "
                 "(project ids are UUIDs in any case)", spelled, p->section);
            p = NULL;
        }
        free(id);
        return p;
    }
    p = named_get((void **)&l->c->projects, &l->c->nprojects, sizeof(struct conf_project),
                  offsetof(struct conf_project, id), id);
    free(id);
    if (p == NULL || (p->section = strdup(spelled)) == NULL) {
        fail(l, "out of memory");
        return NULL;
    }
    return p;
}

static struct conf_client *client_get(struct loader *l, const char *name)
{
    return named_get((void **)&l->c->clients, &l->c->nclients, sizeof(struct conf_client),
                     offsetof(struct conf_client, name), name);
}


/* key = value in a [project] or [client] section (kind), whose struct is
 * obj and whose keys are rows[0..n). */
static int section_key(struct loader *l, const char *kind, const struct conf_key *rows,
                       size_t n, void *obj, const char *key, const char *value)
{
    const struct conf_key *k = conf_key_lookup(rows, n, key);
    char names[256];

    if (obj == NULL)
        return fail(l, "out of memory");
    if (k == NULL) {
        conf_key_names(rows, n, names, sizeof(names));
        return fail(l, "unknown key '%s' in [%s] (expected %s)", key, kind, names);
    }
    if (set_key(k, obj, value) != 0)
        return bad_value(l, k, value);
    if (k->has_off)
        *(int *)((char *)obj + k->has_off) = 1;
    return 1;
}

static int handler(void *user, const char *section, const char *key, const char *value)
{
    struct loader *l = user;
    char name[256];
    size_t i;
    int known_section = 0;

    if (key == NULL)
        return 1; /* a section header on its own */
    if (quoted(section, "project", name, sizeof(name))) {
        struct conf_project *p = project_get(l, name);
        return p ? section_key(l, "project", conf_project_keys, conf_nproject_keys, p, key,
                               value) : 0;
    }
    if (quoted(section, "client", name, sizeof(name))) {
        if (l->client_line == 0)
            l->client_line = l->line;
        return section_key(l, "client", conf_client_keys, conf_nclient_keys,
                           client_get(l, name), key, value);
    }
    for (i = 0; i < conf_nkeys; i++) {
        if (strcmp(conf_keys[i].section, section) != 0)
            continue;
        known_section = 1;
        if (strcmp(conf_keys[i].name, key) != 0)
            continue;
        if (l->key_lines[i])
            return fail(l, "%s is set twice (first on line %d)", key, l->key_lines[i]);
        l->key_lines[i] = l->line;
        if (set_key(&conf_keys[i], l->c, value) != 0)
            return bad_value(l, &conf_keys[i], value);
        return 1;
    }
    if (!known_section)
        return fail(l, "unknown section [%s] (expected server, upstream, cache, ratelimit, "
                    "project \"id\" or client \"name\")", section);
    return fail(l, "unknown key '%s' in [%s]", key, section);
}

static char *reader(char *str, int num, void *stream)
{
    struct loader *l = stream;
    char *r = fgets(str, num, l->f);

    if (r != NULL)
        l->line++;
    return r;
}

/* The key in path: the file without surrounding whitespace. */
static char *read_key(const char *path, char *why, size_t whylen)
{
    FILE *f = fopen(path, "r");
    char buf[4096];
    size_t n, start = 0;
    struct stat st;

    if (f == NULL) {
        snprintf(why, whylen, "cannot read api_key_file %s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & S_IROTH))
        log_warn("api_key_file %s is readable by every user: chmod o-r it", path);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    if (!feof(f)) {
        fclose(f);
        snprintf(why, whylen, "api_key_file %s is larger than 4 KiB; is it the right file?", path);
        return NULL;
    }
    fclose(f);
    while (n && isspace((unsigned char)buf[n - 1]))
        n--;
    while (start < n && isspace((unsigned char)buf[start]))
        start++;
    if (start == n) {
        snprintf(why, whylen, "api_key_file %s is empty", path);
        return NULL;
    }
    buf[n] = '\0';
    return strdup(buf + start);
}

/* $CREDENTIALS_DIRECTORY/llama_cloud_api_key when systemd passed one. */
static char *credential_key(const char *dir)
{
    char path[4096], why[512];

    snprintf(path, sizeof(path), "%s/llama_cloud_api_key", dir);
    if (access(path, R_OK) != 0)
        return NULL;
    return read_key(path, why, sizeof(why));
}


static int apply_env(struct loader *l)
{
    char var[96];
    size_t i;

    for (i = 0; i < conf_nkeys; i++) {
        const char *v;
        conf_key_env_name(&conf_keys[i], var, sizeof(var));
        if ((v = getenv(var)) == NULL)
            continue;
        if (set_key(&conf_keys[i], l->c, v) != 0) {
            snprintf(l->err, l->errlen, "%s: expected %s, got '%s'", var,
                     conf_type_hint(conf_keys[i].type), v);
            return -1;
        }
        l->key_lines[i] = -1;
    }
    return 0;
}

static int set_defaults(struct conf *c)
{
    size_t i;

    for (i = 0; i < conf_nkeys; i++)
        if (conf_keys[i].def != NULL && set_key(&conf_keys[i], c, conf_keys[i].def) != 0)
            return -1;
    return 0;
}

/* Where section's key was set: a line, -1 (the environment) or 0 (not). */
static int line_of(const struct loader *l, const char *section, const char *key)
{
    int i = conf_key_index(section, key);

    assert(i >= 0);
    return l->key_lines[i];
}

/* A burst not given: one window's worth of requests, at least 1. */
static unsigned default_burst(const struct rate *r)
{
    double n = r->count;

    return n < 1 ? 1 : n > 1e9 ? 1000000000u : (unsigned)(n + 0.999999);
}

/* The bounds of each key's row, once the environment had its say. */
static int check_bounds(struct loader *l)
{
    char msg[256];
    size_t i;

    for (i = 0; i < conf_nkeys; i++) {
        if (conf_key_in_bounds(&conf_keys[i], l->c))
            continue;
        conf_key_bound_msg(&conf_keys[i], msg, sizeof(msg));
        return fail_at(l, l->key_lines[i], "%s", msg);
    }
    return 0;
}

static int check_clients(struct loader *l)
{
    static const uint8_t zero[32];
    struct conf *c = l->c;
    size_t i;

    for (i = 0; i < c->nclients; i++) {
        struct conf_client *cl = &c->clients[i];
        if (cl->burst && !cl->has_rate)
            return fail_at(l, l->client_line, "[client \"%s\"] burst needs a rate", cl->name);
        if (cl->has_rate && cl->burst == 0)
            cl->burst = default_burst(&cl->rate);
    }
    for (i = 0; i < c->nclients; i++) {
        struct conf_client *cl = &c->clients[i];
        if (memcmp(cl->token_sha256, zero, 32) == 0 ||
            cl->nprojects + (size_t)cl->all_projects == 0)
            return fail_at(l, l->client_line, "[client \"%s\"] needs token_sha256 and projects",
                           cl->name);
    }
    return 0;
}

/* sentinels and sentinel_master go together (sentinel_password with
 * them), and take the password and database of a redis:// redis_url. */
static int check_sentinels(struct loader *l)
{
    int sl = line_of(l, "cache", "sentinels"), ml = line_of(l, "cache", "sentinel_master");
    int pl = line_of(l, "cache", "sentinel_password");

    if (sl != 0 && ml == 0)
        return fail_at(l, sl, "sentinels needs sentinel_master (the name they monitor)");
    if (sl == 0 && (ml != 0 || pl != 0))
        return fail_at(l, ml ? ml : pl, "%s needs sentinels",
                       ml ? "sentinel_master" : "sentinel_password");
    if (sl != 0 && strncmp(l->c->redis_url, "unix:", 5) == 0)
        return fail_at(l, sl, "sentinels needs a redis:// or rediss:// redis_url (its password, "
                       "database and TLS are used, its host and port are not)");
    return 0;
}

/* The redis_tls_* keys: only with rediss://, and, with store = redis, their
 * files usable now, so that lcgate -t and the start say which and why. */
static int check_redis_tls(struct loader *l)
{
    static const char *const keys[] = {"redis_tls_ca", "redis_tls_cert", "redis_tls_key",
                                       "redis_tls_server_name"};
    const struct conf *c = l->c;
    const struct redis_tls_conf tc = {c->redis_tls_ca, c->redis_tls_cert, c->redis_tls_key,
                                      c->redis_tls_server_name};
    struct redis_tls *t;
    char err[512];
    size_t i;

    if (strncmp(c->redis_url, "rediss://", 9) != 0) {
        for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
            if (line_of(l, "cache", keys[i]) != 0)
                return fail_at(l, line_of(l, "cache", keys[i]),
                               "%s needs redis_url = rediss://... (TLS to Redis)", keys[i]);
        return 0;
    }
    if (c->store != STORE_KIND_REDIS)
        return 0;
    if ((t = redis_tls_new(&tc, err, sizeof(err))) != NULL) {
        redis_tls_free(t);
        return 0;
    }
    /* err starts with the key at fault, else it is the URL's */
    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (strncmp(err, keys[i], strlen(keys[i])) == 0)
            return fail_at(l, line_of(l, "cache", keys[i]), "%s", err);
    return fail_at(l, line_of(l, "cache", "redis_url"), "%s", err);
}

/* The checks across keys, and what follows from which keys were set. */
static int check_across(struct loader *l)
{
    struct conf *c = l->c;
    int burst_line = line_of(l, "upstream", "burst");

    if (c->max_header_size < c->max_request_line)
        return fail_at(l, line_of(l, "server", "max_header_size"), "%s",
                       conf_keys[conf_key_index("server", "max_request_line")].bound_msg);
    if (!c->tls_cert != !c->tls_key)
        return fail_at(l, line_of(l, "server", c->tls_cert ? "tls_cert" : "tls_key"),
                       "tls_cert and tls_key go together: set both (TLS) or neither");
    c->has_admin_token = line_of(l, "server", "admin_token_sha256") != 0;
    c->has_key_rate = line_of(l, "upstream", "rate") != 0;
    if (c->has_key_rate && burst_line == 0)
        c->key_burst = default_burst(&c->key_rate);
    if (burst_line != 0 && !c->has_key_rate)
        return fail_at(l, burst_line, "[upstream] burst needs [upstream] rate");
    if (c->max_inflight_bytes < c->max_body)
        return fail_at(l, line_of(l, "server", "max_inflight_bytes"),
                       "max_inflight_bytes must be at least max_body");
    if (check_sentinels(l) != 0)
        return -1;
    if (check_redis_tls(l) != 0)
        return -1;
    return check_clients(l);
}

/* LLAMA_CLOUD_API_KEY without surrounding white space into *out (left
 * alone when unset or empty); -1 when out of memory. */
static int env_key(char **out)
{
    const char *env = getenv("LLAMA_CLOUD_API_KEY");
    size_t n;

    while (env && isspace((unsigned char)*env))
        env++;
    n = env ? strlen(env) : 0;
    while (n && isspace((unsigned char)env[n - 1]))
        n--;
    if (n && (*out = strndup(env, n)) == NULL)
        return -1;
    return 0;
}

/* The global key (api_key_file, else systemd's credential, else the
 * environment) and each project's. */
static int read_keys(struct loader *l)
{
    struct conf *c = l->c;
    const char *cred = getenv("CREDENTIALS_DIRECTORY");
    char why[512];
    size_t i;

    if (c->api_key_file) {
        if ((c->api_key = read_key(c->api_key_file, why, sizeof(why))) == NULL)
            return fail_at(l, line_of(l, "upstream", "api_key_file"), "%s", why);
    } else if ((cred == NULL || (c->api_key = credential_key(cred)) == NULL) &&
               env_key(&c->api_key) != 0) {
        return -1;
    }
    if (c->nclients > 0 && c->api_key == NULL)
        return fail_at(l, l->client_line, "[client] sections need an upstream key "
                       "(api_key_file or LLAMA_CLOUD_API_KEY): a client's token is never "
                       "forwarded");
    for (i = 0; i < c->nprojects; i++) {
        struct conf_project *p = &c->projects[i];
        if (p->api_key_file && (p->api_key = read_key(p->api_key_file, why, sizeof(why))) == NULL) {
            snprintf(l->err, l->errlen, "%s: [project \"%s\"] %s", l->path, p->id, why);
            return -1;
        }
    }
    return 0;
}

struct conf *conf_load(const char *path, char *err, size_t errlen)
{
    static int rows_checked;    /* conf_load runs on the main thread only */
    struct loader l;
    int rc;

    if (!rows_checked) {
        rows_checked = 1;
        conf_keys_check();
        assert(conf_nkeys <= MAX_KEYS);
    }
    memset(&l, 0, sizeof(l));
    l.path = path;
    l.err = err;
    l.errlen = errlen;
    if ((l.c = calloc(1, sizeof(*l.c))) == NULL || (l.c->path = strdup(path)) == NULL ||
        set_defaults(l.c) != 0) {
        snprintf(err, errlen, "%s: out of memory", path);
        conf_free(l.c);
        return NULL;
    }
    if ((l.f = fopen(path, "r")) == NULL) {
        snprintf(err, errlen, "%s:0: cannot open: %s", path, strerror(errno));
        conf_free(l.c);
        return NULL;
    }
    rc = ini_parse_stream(reader, &l, handler, &l);
    fclose(l.f);
    if (rc != 0 || l.failed) {
        if (!l.failed) {
            l.line = rc > 0 ? rc : 0;
            fail(&l, "syntax error (expected [section] or key = value)");
        }
        conf_free(l.c);
        return NULL;
    }
    if (apply_env(&l) != 0 || check_bounds(&l) != 0 || check_across(&l) != 0 ||
        read_keys(&l) != 0) {
        conf_free(l.c);
        return NULL;
    }
    return l.c;
}

void conf_hold(struct conf *c)
{
    __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
}

void conf_free(struct conf *c)
{
    size_t i, j;
    int holders;

    if (c == NULL)
        return;
    holders = __atomic_fetch_sub(&c->refs, 1, __ATOMIC_ACQ_REL);
    assert(holders >= 0);       /* freed once more than held */
    if (holders > 0)
        return;
    for (i = 0; i < conf_nkeys; i++)
        conf_value_free(conf_keys[i].type, (char *)c + conf_keys[i].off);
    for (i = 0; i < c->nprojects; i++) {
        free(c->projects[i].id);
        free(c->projects[i].section);
        free(c->projects[i].api_key_file);
        free(c->projects[i].api_key);
    }
    for (i = 0; i < c->nclients; i++) {
        for (j = 0; j < c->clients[i].nprojects; j++)
            free(c->clients[i].projects[j]);
        free(c->clients[i].projects);
        free(c->clients[i].name);
    }
    free(c->projects);
    free(c->clients);
    free(c->api_key);
    free(c->path);
    free(c);
}

const struct conf_project *conf_project(const struct conf *c, const char *id)
{
    size_t i;

    if (id == NULL)
        return NULL;
    for (i = 0; i < c->nprojects; i++)
        if (strcmp(c->projects[i].id, id) == 0)
            return &c->projects[i];
    return NULL;
}

const char *conf_api_key(const struct conf *c, const char *project_id)
{
    const struct conf_project *p = conf_project(c, project_id);

    return p && p->api_key ? p->api_key : c->api_key;
}


size_t conf_restart_changes(const struct conf *cur, const struct conf *next, char *buf,
                            size_t len)
{
    size_t i, n = 0, used = 0;

    buf[0] = '\0';
    for (i = 0; i < conf_nkeys; i++) {
        const struct conf_key *k = &conf_keys[i];
        int w;
        if (!(k->flags & CONF_RESTART) ||
            conf_value_equal(k->type, (const char *)cur + k->off, (const char *)next + k->off))
            continue;
        w = snprintf(buf + used, len - used, "%s%s", n++ ? ", " : "", k->name);
        if (w > 0 && (size_t)w < len - used)
            used += (size_t)w;
    }
    return n;
}
