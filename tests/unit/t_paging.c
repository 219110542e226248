/* paging: the next page's canonical query, as the SDKs would ask for it. */
#include <stdlib.h>
#include <string.h>

#include "paging.h"
#include "tap.h"

static void check(enum qn_route r, const char *canonical, const char *body, const char *want,
                  const char *name)
{
    char *got = pg_next(r, canonical, body, strlen(body));
    tap_is_str(got, want, "%s", name);
    free(got);
}

int main(void)
{
    const enum qn_route v1 = QN_V1_BATCH_JOBS, v2 = QN_V2_BATCHES;

    check(v1, "limit=2", "{\"items\":[{},{}],\"next_page_token\":null,\"total_size\":5}",
          "limit=2&offset=2", "v1 first page -> offset 2");
    check(v1, "limit=2&offset=2", "{\"items\":[{},{}],\"total_size\":5}",
          "limit=2&offset=4", "v1 middle page -> offset 4");
    check(v1, "limit=2&offset=4", "{\"items\":[{}],\"total_size\":5}", NULL,
          "v1 last page has no next");
    check(v1, "", "{\"items\":[{},{},{}],\"total_size\":100}", "offset=3",
          "v1 default limit keeps the query short");
    check(v1, "limit=3&status=failed",
          "{\"items\":[{},{},{}],\"total_size\":7}", "limit=3&offset=3&status=failed",
          "v1 filters are kept, in canonical order");
    check(v1, "limit=2", "{\"items\":[],\"total_size\":5}", NULL, "v1 empty page stops");
    check(v1, "limit=2", "{\"items\":[{},{}],\"total_size\":null}", NULL,
          "v1 without total_size stops (as the SDK does)");
    check(v2, "page_size=2", "{\"items\":[{}],\"next_page_token\":\"eyJvIjoyfQ\"}",
          "page_size=2&page_token=eyJvIjoyfQ", "v2 token is appended");
    check(v2, "page_size=2&page_token=abc", "{\"items\":[{}],\"next_page_token\":\"a+b/c=\"}",
          "page_size=2&page_token=a%2Bb%2Fc%3D", "v2 token replaces the old one, escaped");
    check(v2, "page_size=2", "{\"items\":[{}],\"next_page_token\":null}", NULL,
          "v2 null token is the last page");
    check(v2, "page_size=2", "{\"items\":[{}],\"next_page_token\":\"\"}", NULL,
          "v2 empty token is the last page");
    check(v2, "page_size=2", "not json", NULL, "a body that is not JSON has no next page");
    check(v2, "page_size=2", "[1,2]", NULL, "a body that is not an object has no next page");
    return tap_done();
}
