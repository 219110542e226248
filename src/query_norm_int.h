/* query_norm_int: what the parts of the normalizer (query_norm.h) share,
 * and nothing outside them includes:
 *   query_norm.c        the routes' schemas, the query's items checked and
 *                       sorted, the canonical query and the 422 body;
 *   query_norm_value.c  int, enum, str and UUID values, and the helpers;
 *   query_norm_time.c   datetime values.
 * Pure, as query_norm.h says. */
#ifndef LCGATE_QUERY_NORM_INT_H
#define LCGATE_QUERY_NORM_INT_H

#include <stddef.h>

#include "query_norm.h"

/* A growing NUL-terminated string; oom once an allocation failed (every
 * later put is then ignored). Start it zeroed. */
struct qn_buf {
    char *p;
    size_t len, cap;
    int oom;
};

void qn_put(struct qn_buf *b, const void *s, size_t n);
void qn_put_str(struct qn_buf *b, const char *s);
/* The buffer's string ("" when nothing was put), or NULL when out of
 * memory; the buffer is then empty. */
char *qn_take(struct qn_buf *b);
/* s[0..n) as a new string, or NULL. */
char *qn_dupn(const char *s, size_t n);

static inline int qn_is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* Why a value is rejected: the fields of one pydantic error. */
struct qn_fail {
    const char *type;
    char *msg;
    const char *ctx_key; /* NULL: no "ctx" */
    char *ctx_str;       /* the ctx value; NULL: ctx_num */
    long long ctx_num;
};

/* pydantic's "<prefix><error>" messages, which also carry ctx
 * {"error": error}: 1, or -1 out of memory. */
int qn_fail_error(struct qn_fail *f, const char *type, const char *prefix, const char *error);

/* A validator: v[0..n) of parameter p. 0 with *canon set (a new string),
 * 1 with *f set, -1 out of memory. */
typedef int (*qn_check_fn)(const struct qn_param *p, const char *v, size_t n, char **canon,
                           struct qn_fail *f);

int qn_check_int(const struct qn_param *p, const char *v, size_t n, char **canon,
                 struct qn_fail *f);
int qn_check_enum(const struct qn_param *p, const char *v, size_t n, char **canon,
                  struct qn_fail *f);
int qn_check_str(const struct qn_param *p, const char *v, size_t n, char **canon,
                 struct qn_fail *f);
int qn_check_uuid(const struct qn_param *p, const char *v, size_t n, char **canon,
                  struct qn_fail *f);
int qn_check_datetime(const struct qn_param *p, const char *v, size_t n, char **canon,
                      struct qn_fail *f);

#endif
