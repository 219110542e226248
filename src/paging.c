#include "paging.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

/* The value of name in a canonical query (names there are never escaped). */
static long long canonical_int(const char *canonical, const char *name, long long dflt)
{
    size_t n = strlen(name);
    const char *p = canonical;

    while (p && *p) {
        if (strncmp(p, name, n) == 0 && p[n] == '=')
            return strtoll(p + n + 1, NULL, 10);
        p = strchr(p, '&');
        if (p)
            p++;
    }
    return dflt;
}

static char *renormalize(enum qn_route r, const char *canonical, const char *extra)
{
    size_t n = strlen(canonical) + strlen(extra) + 2;
    char *raw = malloc(n), *out = NULL;
    struct qn_result res;

    if (raw == NULL)
        return NULL;
    /* The last occurrence wins, so appending replaces the old value. */
    snprintf(raw, n, "%s%s%s", canonical, *canonical ? "&" : "", extra);
    if (qn_normalize(r, raw, 0, &res) == 0) {
        if (res.status == QN_OK) {
            out = res.canonical;
            res.canonical = NULL;
        }
        qn_result_free(&res);
    }
    free(raw);
    return out;
}

static char *pct(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = malloc(strlen(s) * 3 + 1), *o = out;

    if (out == NULL)
        return NULL;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            *o++ = (char)ch;
        } else {
            *o++ = '%';
            *o++ = hex[ch >> 4];
            *o++ = hex[ch & 15];
        }
    }
    *o = '\0';
    return out;
}

char *pg_next(enum qn_route r, const char *canonical, const char *body, size_t len)
{
    static const char *items_path[] = {"items", NULL};
    static const char *total_path[] = {"total_size", NULL};
    static const char *token_path[] = {"next_page_token", NULL};
    char *copy = malloc(len + 1), *next = NULL, extra[64];
    yajl_val root, v;

    if (copy == NULL)
        return NULL;
    memcpy(copy, body, len);
    copy[len] = '\0';
    root = yajl_tree_parse(copy, NULL, 0);
    free(copy);
    if (root == NULL || !YAJL_IS_OBJECT(root))
        goto out;
    if (r == QN_V1_BATCH_JOBS) {
        yajl_val items = yajl_tree_get(root, items_path, yajl_t_array);
        long long offset = canonical_int(canonical, "offset", 0), seen;
        v = yajl_tree_get(root, total_path, yajl_t_number);
        if (items == NULL || v == NULL || !YAJL_IS_INTEGER(v) || YAJL_GET_ARRAY(items)->len == 0)
            goto out;
        seen = offset + (long long)YAJL_GET_ARRAY(items)->len;
        if (seen >= YAJL_GET_INTEGER(v))
            goto out;
        snprintf(extra, sizeof(extra), "offset=%lld", seen);
        next = renormalize(r, canonical, extra);
    } else {
        char *tok, *param;
        size_t n;
        v = yajl_tree_get(root, token_path, yajl_t_string);
        if (v == NULL || *YAJL_GET_STRING(v) == '\0' || (tok = pct(YAJL_GET_STRING(v))) == NULL)
            goto out;
        n = strlen(tok) + sizeof("page_token=");
        if ((param = malloc(n)) != NULL) {
            snprintf(param, n, "page_token=%s", tok);
            next = renormalize(r, canonical, param);
            free(param);
        }
        free(tok);
    }
out:
    yajl_tree_free(root);
    return next;
}
