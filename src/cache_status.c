#include "cache_status.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

const char *cs_xcache(const struct answer *a)
{
    static const char *const names[] = {"HIT", "MISS", "STALE", "BYPASS"};

    return names[a->xcache];
}

const char *cs_detail(const struct answer *a)
{
    static const char *const names[] = {NULL, "stale-while-revalidate", "stale-if-error",
                                        "upstream-budget"};

    return names[a->detail];
}

/* Whole seconds of freshness left, or (stale) past it, rounded up. */
static long long ttl_s(const struct answer *a)
{
    return a->xcache == CX_STALE ? (-a->ttl_ms + 999) / 1000 : a->ttl_ms / 1000;
}

void cs_format(const struct answer *a, char *buf, size_t n)
{
    static const char *const fwd[] = {"", "uri-miss", "request", "bypass", "stale"};
    const char *detail = cs_detail(a);
    struct sbuf b = sb_init(buf, n);     /* on every answer: no printf */

    if (a->fwd == FWD_NONE) {
        sb_str(&b, a->xcache == CX_STALE ? "lcgate; hit; ttl=-" : "lcgate; hit; ttl=");
        sb_i64(&b, ttl_s(a));
    } else {
        sb_str(&b, "lcgate; fwd=");
        sb_str(&b, fwd[a->fwd]);
        if (a->fwd_status) {
            sb_str(&b, "; fwd-status=");
            sb_i64(&b, a->fwd_status);
        }
        if (a->wrote)
            sb_str(&b, "; stored");
        if (a->fwd == FWD_STALE) {
            sb_str(&b, "; ttl=-");
            sb_i64(&b, ttl_s(a));
        }
        if (a->collapsed)
            sb_str(&b, "; collapsed");
    }
    if (detail) {
        sb_str(&b, "; detail=");
        sb_str(&b, detail);
    }
    sb_len(&b);
}

int cs_error(const struct answer *a, char *detail, size_t n, int *retry)
{
    static const struct {
        int status;
        const char *detail;
    } errs[] = {
        [CE_NONE] = {500, "Out of memory"},
        [CE_OOM] = {500, "Out of memory"},
        [CE_STOPPING] = {503, "Shutting down"},
        [CE_UP_TIMEOUT] = {504, "Upstream timed out"},
        [CE_UP_BUSY] = {503, "Too many requests in flight"},
        [CE_UP_INVALID] = {502, "Upstream sent an invalid answer"},
        [CE_UP_UNREACHABLE] = {502, "Upstream unreachable"},
        [CE_UP_NOT_STARTED] = {502, "Upstream request could not be started"},
        [CE_BUDGET_KEY] = {429, "Rate limit exceeded for the upstream key"},
        [CE_BUDGET_PROJECT] = {429, "Rate limit exceeded for project "},
    };

    *retry = a->err == CE_UP_BUSY || a->err == CE_BUDGET_KEY || a->err == CE_BUDGET_PROJECT;
    if (a->err == CE_BUDGET_PROJECT)
        snprintf(detail, n, "%s%s", errs[a->err].detail, a->project ? a->project : "default");
    else
        snprintf(detail, n, "%s", errs[a->err].detail);
    return errs[a->err].status;
}
