/* How old an entry may be, and what to do with it: pure functions of the
 * entry, the configuration and the time (cache_int.h). */
#include "cache_int.h"
#include "conf.h"

uint64_t cache_ttl(const struct conf *conf, const char *project_id)
{
    const struct conf_project *p = conf_project(conf, project_id);

    return p && p->has_ttl ? p->ttl_ms : conf->ttl_ms;
}

uint64_t cache_keep_ms(const struct conf *conf, const char *project_id)
{
    uint64_t swr = conf->stale_while_revalidate_ms, sie = conf->stale_if_error_ms;

    return cache_ttl(conf, project_id) + (swr > sie ? swr : sie);
}

int cache_gens_match(const struct centry *e, const struct gens *g)
{
    return g->proj != 0 && g->all != 0 && e->gen_proj == g->proj && e->gen_all == g->all;
}

int cache_fresh(const struct centry *e, const struct gens *g, int64_t now_ms, int64_t ttl_ms)
{
    return e != NULL && cache_gens_match(e, g) && now_ms - e->stored_ms < ttl_ms;
}

enum verdict cache_judge(const struct conf *conf, const struct centry *e, int64_t now_ms,
                         int64_t ttl_ms, int no_cache)
{
    int64_t age;

    if (e == NULL)
        return V_MISS;
    age = now_ms - e->stored_ms;
    /* A client's no-cache asks for a fetch, but an entry it may not be
     * given fresh still stands in if the fetch fails. */
    no_cache = no_cache && !conf->ignore_client_no_cache;
    if (!no_cache && age < ttl_ms)
        return V_FRESH;
    if (!no_cache && age < ttl_ms + (int64_t)conf->stale_while_revalidate_ms)
        return V_REVALIDATE;
    if (age < ttl_ms + (int64_t)conf->stale_if_error_ms)
        return V_FALLBACK;
    return V_MISS;
}
