/* request_read: queries, paths, project ids and bodies read as the upstream
 * (Starlette, uvicorn, pydantic, Python's json) reads them. */
#include <stdlib.h>
#include <string.h>

#include "request_read.h"
#include "tap.h"

#define A "0b9b5a8e-7f7e-4c1e-9a4e-1f2d3c4b5a60"
#define A_UP "0B9B5A8E-7F7E-4C1E-9A4E-1F2D3C4B5A60"
#define A_SIMPLE "0b9b5a8e7f7e4c1e9a4e1f2d3c4b5a60"
#define B "6a1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"

/* The value the upstream reads for name in raw, or "(absent)" or
 * "(malformed)". */
static const char *last_of(const char *raw, const char *name, char *buf, size_t len)
{
    struct rr_query q;
    const struct rr_param *p;
    const char *why;

    if (rr_query_parse(raw, 0, &q, &why) != RR_OK)
        return "(malformed)";
    p = rr_query_last(&q, name);
    snprintf(buf, len, "%s", p ? p->value : "(absent)");
    rr_query_free(&q);
    return buf;
}

static void queries(void)
{
    static const struct {
        const char *name, *raw, *want;
    } cases[] = {
        {"the last of repeated parameters wins", "project_id=" A "&project_id=" B, B},
        {"a piece without '=' is a name, not a failure", "x&project_id=" B, B},
        {"empty pieces are skipped", "&project_id=" B, B},
        {"names are percent-decoded", "project%5Fid=" B, B},
        {"names are case-sensitive", "PROJECT_ID=" A "&project_id=" B, B},
        {"a decoded name is the same name", "project_id=" A "&project%5Fid=" B, B},
        {"an upper-case name is another name", "project_id=" A "&PROJECT_ID=" B, A},
        {"'+' is a space", "project_id=a+b", "a b"},
        {"%2B is a plus", "project_id=a%2Bb", "a+b"},
        {"a name alone has an empty value", "project_id", ""},
        {"an empty value is present", "project_id=", ""},
        {"only '&' separates (not ';')", "project_id=" A ";project_id=" B, A ";project_id=" B},
        {"absent", "limit=5", "(absent)"},
        {"no query", "", "(absent)"},
        {"bad percent-encoding is refused", "project_id=%zz", "(malformed)"},
        {"a truncated escape is refused", "project_id=%4", "(malformed)"},
        {"an encoded NUL is refused", "project_id=a%00", "(malformed)"},
        {"invalid UTF-8 is refused", "project_id=%ff", "(malformed)"},
        {"a raw non-ASCII byte is refused", "project_id=\xc3\xa9", "(malformed)"},
        {"UTF-8 is decoded", "project_id=%C3%A9", "\xc3\xa9"},
        {"a raw '#' is refused (curl would end the query there)",
         "project_id=" A "#&project_id=" B, "(malformed)"},
        {"an encoded '#' is a '#'", "project_id=a%23b", "a#b"},
        {"a raw space is refused", "project_id=a b", "(malformed)"},
    };
    char buf[256];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        tap_is_str(last_of(cases[i].raw, "project_id", buf, sizeof(buf)), cases[i].want,
                   "query: %s", cases[i].name);
    {
        struct rr_query q;
        const char *why;
        tap_ok(rr_query_parse("a=1&b=2&c=3", 2, &q, &why) == RR_MALFORMED &&
                   strcmp(why, "Too many query parameters") == 0,
               "query: more pieces than max_params is refused");
        tap_ok(rr_query_parse("a=1&&b=2&", 2, &q, &why) == RR_OK && q.n == 2,
               "query: empty pieces do not count");
        rr_query_free(&q);
        tap_ok(rr_query_parse(NULL, 0, &q, &why) == RR_OK && q.n == 0, "query: NULL is empty");
        rr_query_free(&q);
    }
}

static const char *path_of(const char *raw, char *buf, size_t len)
{
    char *out;
    const char *why;

    if (rr_path_decode(raw, &out, &why) != RR_OK)
        return "(refused)";
    snprintf(buf, len, "%s", out);
    free(out);
    return buf;
}

static void paths(void)
{
    static const struct {
        const char *name, *raw, *want;
    } cases[] = {
        {"plain", "/api/v2/batches", "/api/v2/batches"},
        {"an escaped letter", "/api/v2/%62atches", "/api/v2/batches"},
        {"an escaped slash", "/api/v2%2Fbatches", "/api/v2/batches"},
        {"'+' stays", "/api/v1/files/a+b", "/api/v1/files/a+b"},
        {"a space", "/api/v1/files/a%20b", "/api/v1/files/a b"},
        {"a backslash", "/api/..\\__mock/stats", "(refused)"},
        {"an escaped backslash", "/api/%5C__mock", "(refused)"},
        {"a lower-case escaped backslash", "/api/%5c__mock", "(refused)"},
        {"a dot segment", "/api/./v2/batches", "(refused)"},
        {"a dot-dot segment", "/api/../admin", "(refused)"},
        {"an escaped dot-dot", "/api/%2E%2E/admin", "(refused)"},
        {"a trailing dot-dot", "/api/v1/..", "(refused)"},
        {"dots inside a name", "/api/v1/files/a..b", "/api/v1/files/a..b"},
        {"three dots", "/api/v1/files/...", "/api/v1/files/..."},
        {"an encoded control byte", "/api/v1/files/a%0Ab", "(refused)"},
        {"an encoded NUL", "/api/v1/files/a%00", "(refused)"},
        {"bad percent-encoding", "/api/v1/files/%zz", "(refused)"},
        {"invalid UTF-8", "/api/v1/files/%ff", "(refused)"},
        {"a raw non-ASCII byte", "/api/v1/files/\xc3\xa9", "(refused)"},
        {"a raw '#'", "/api/v1/files/a#b", "(refused)"},
    };
    char buf[256];
    size_t n;
    const char *p;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        tap_is_str(path_of(cases[i].raw, buf, sizeof(buf)), cases[i].want, "path: %s",
                   cases[i].name);
    {
        char *e = rr_path_encode("/api/v1/files/a b%c?d#\xc3\xa9:@!$&'()*+,;=");
        tap_is_str(e, "/api/v1/files/a%20b%25c%3Fd%23%C3%A9:@!$&'()*+,;=",
                   "path: encoded again, it decodes to the same path");
        tap_is_str(path_of(e, buf, sizeof(buf)), "/api/v1/files/a b%c?d#\xc3\xa9:@!$&'()*+,;=",
                   "path: the encoded form reads back");
        free(e);
    }
    p = rr_path_project("/api/v1/projects/" A_UP "/files", &n);
    tap_ok(p != NULL && n == 36 && strncmp(p, A_UP, 36) == 0,
           "path: /projects/<uuid>/... names a project");
    p = rr_path_project("/api/v1/projects/{" A "}", &n);
    tap_ok(p != NULL && n == 38, "path: a UUID in braces names a project");
    tap_ok(rr_path_project("/api/v1/projects/current", &n) == NULL,
           "path: a segment that is no UUID names none (the key's own project)");
    tap_ok(rr_path_project("/api/v1/projects", &n) == NULL, "path: the list names none");
    p = rr_path_project("/api/v1/organizations/x/projects/" B, &n);
    tap_ok(p != NULL && strncmp(p, B, 36) == 0, "path: /projects/<uuid> anywhere");
    p = rr_path_project("/api/v1/projects/" A "/copy/projects/" B, &n);
    p = p ? rr_path_project(p + n, &n) : NULL;
    tap_ok(p != NULL && strncmp(p, B, 36) == 0 && rr_path_project(p + n, &n) == NULL,
           "path: called again after one, the next; then none");
}

static void projects(void)
{
    static const struct {
        const char *name, *in, *want;
    } cases[] = {
        {"lowercase hyphenated", A, A},
        {"upper case", A_UP, A},
        {"simple form", A_SIMPLE, A},
        {"braces", "{" A_UP "}", A},
        {"urn", "urn:uuid:" A, A},
        {"not a UUID is kept", "team-X", "team-X"},
        {"'*' is kept", "*", "*"},
        {"empty is kept", "", ""},
        {"35 characters is kept", "0b9b5a8e-7f7e-4c1e-9a4e-1f2d3c4b5a6", "0b9b5a8e-7f7e-4c1e-9a4e-1f2d3c4b5a6"},
        {"wrong hyphens are kept", "0b9b5a8e7-f7e-4c1e-9a4e-1f2d3c4b5a60", "0b9b5a8e7-f7e-4c1e-9a4e-1f2d3c4b5a60"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *c = rr_project_canon(cases[i].in, strlen(cases[i].in));
        tap_is_str(c, cases[i].want, "project: %s", cases[i].name);
        free(c);
    }
}

static const char *body_of(const char *ct, const char *body, size_t len, char *buf, size_t n)
{
    char *out = NULL;

    switch (rr_body_member(ct, body, len, "project_id", &out)) {
    case RR_BODY_FOUND:
        snprintf(buf, n, "%s", out);
        free(out);
        return buf;
    case RR_BODY_ABSENT:
        return "(absent)";
    case RR_BODY_UNREADABLE:
        return "(unreadable)";
    default:
        return "(nomem)";
    }
}

static void bodies(void)
{
    static const struct {
        const char *name, *ct, *body, *want;
    } cases[] = {
        {"JSON", "application/json", "{\"project_id\":\"" A "\"}", A},
        {"duplicate keys: the last wins", "application/json",
         "{\"project_id\":\"" A "\",\"project_id\":\"" B "\"}", B},
        {"a later null unsets it", NULL, "{\"project_id\":\"" A "\",\"project_id\":null}",
         "(absent)"},
        {"no Content-Type is JSON", NULL, "{\"project_id\":\"" B "\"}", B},
        {"a +json type is JSON", "application/vnd.x+json; charset=utf-8",
         "{\"project_id\":\"" B "\"}", B},
        {"text/plain holding JSON is read too", "text/plain", "{\"project_id\":\"" B "\"}", B},
        {"nested members do not count", NULL, "{\"a\":{\"project_id\":\"" B "\"}}",
         "(absent)"},
        {"nested after the member", NULL,
         "{\"project_id\":\"" A "\",\"x\":{\"project_id\":\"" B "\"}}", A},
        {"an escaped key is the same key", NULL, "{\"project\\u005fid\":\"" B "\"}", B},
        {"an escaped value", NULL, "{\"project_id\":\"\\u0036a1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d\"}", B},
        {"a number is not a project", NULL, "{\"project_id\":5}", "(absent)"},
        {"a top-level array", NULL, "[{\"project_id\":\"" B "\"}]", "(absent)"},
        {"NaN (Python reads it, yajl does not)", "application/json",
         "{\"project_id\":\"" B "\",\"x\":NaN}", "(unreadable)"},
        {"a BOM", NULL, "\xef\xbb\xbf{\"project_id\":\"" B "\"}", "(unreadable)"},
        {"broken JSON typed as JSON", "application/json", "{\"project_id\":", "(unreadable)"},
        {"text that is not JSON", "text/plain", "hello", "(absent)"},
        {"a form", "application/x-www-form-urlencoded", "a=1&project_id=" A "&project_id=" B, B},
        {"a form with bad encoding", "application/x-www-form-urlencoded", "project_id=%zz",
         "(unreadable)"},
        {"multipart naming the member", "multipart/form-data; boundary=x",
         "--x\r\nContent-Disposition: form-data; name=\"project_id\"\r\n\r\n" B "\r\n--x--",
         "(unreadable)"},
        {"multipart without it", "multipart/form-data; boundary=x",
         "--x\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc\r\n--x--", "(absent)"},
        {"empty", "application/json", "", "(absent)"},
    };
    char buf[256];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        tap_is_str(body_of(cases[i].ct, cases[i].body, strlen(cases[i].body), buf, sizeof(buf)),
                   cases[i].want, "body: %s", cases[i].name);
    {
        static const char utf16[] = "{\0\"\0p\0\"\0:\0\"\0x\0\"\0}\0";
        tap_is_str(body_of(NULL, utf16, sizeof(utf16) - 1, buf, sizeof(buf)), "(unreadable)",
                   "body: UTF-16 JSON (Python reads it) is unreadable");
    }
}

int main(void)
{
    queries();
    paths();
    projects();
    bodies();
    return tap_done();
}
