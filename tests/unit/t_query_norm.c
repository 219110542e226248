/* t_query_norm: list query normalization and the upstream's 422 bodies.
 * Expected bodies are the bytes FastAPI + pydantic v2 answer with. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query_norm.h"
#include "tap.h"

#define U1 "67e55044-10b1-426f-9247-bb680e5fe0c8"
#define U1_UPPER "67E55044-10B1-426F-9247-BB680E5FE0C8"
#define U1_SIMPLE "67e5504410b1426f9247bb680e5fe0c8"
#define U2 "936da01f-9abd-4d9d-80c7-02af85c822a8"

#define INT_MSG "Input should be a valid integer, unable to parse string as an integer"
#define UUID_CHAR "invalid character: expected an optional prefix of `urn:uuid:` " \
                  "followed by [0-9a-fA-F-], found "
#define V1_STATUS "'pending', 'running', 'dispatched', 'completed', 'failed' or 'cancelled'"
#define V2_STATUS "'PENDING', 'THROTTLED', 'RUNNING', 'COMPLETED', 'FAILED' or 'CANCELLED'"
#define DT_MSG "Input should be a valid datetime or date, "

struct eq_case {
    const char *name;
    const char *a, *b;
    int equivalent;
};

static const struct eq_case v1_eq[] = {
    {"param order does not matter", "limit=10&offset=20", "offset=20&limit=10", 1},
    {"%5F equals _ in an unknown name", "x_y=1", "x%5Fy=1", 1},
    {"%5F equals _ in a known name", "job%5Ftype=parse", "job_type=parse", 1},
    {"every byte of a name may be escaped", "%6C%69%6D%69%74=5", "limit=5", 1},
    {"+ equals %20 in an unknown value", "q=a+b", "q=a%20b", 1},
    {"+ equals %20 in directory_id", "directory_id=a+b", "directory_id=a%20b", 1},
    {"%2B is a plus, not a space", "directory_id=a%2Bb", "directory_id=a+b", 0},
    {"lowercase and uppercase hex escapes agree", "q=%c3%a9", "q=%C3%A9", 1},
    {"~ bare equals %7E", "q=~", "q=%7E", 1},
    {"limit 010 is 10", "limit=010", "limit=10", 1},
    {"limit 10.0 is 10", "limit=10.0", "limit=10", 1},
    {"limit 1_0 is 10", "limit=1_0", "limit=10", 1},
    {"limit 1_0.00 is 10", "limit=1_0.00", "limit=10", 1},
    {"limit with a leading space is 10", "limit=%2010", "limit=10", 1},
    {"limit with a raw + (a space) is 10", "limit=+10", "limit=10", 1},
    {"limit with %2B sign is 10", "limit=%2B10", "limit=10", 1},
    {"limit with a trailing tab is 10", "limit=10%09", "limit=10", 1},
    {"limit with a leading no-break space is 10", "limit=%C2%A010", "limit=10", 1},
    {"limit with an ideographic space is 10", "limit=10%E3%80%80", "limit=10", 1},
    {"limit 1000.000 is 1000", "limit=1000.000", "limit=1000", 1},
    {"limit=50 equals no limit", "limit=50", "", 1},
    {"limit=050 equals no limit", "limit=050", "", 1},
    {"limit=5_0 equals no limit", "limit=5_0", "", 1},
    {"offset=0 equals no offset", "offset=0", "", 1},
    {"offset=-0 equals no offset", "offset=-0", "", 1},
    {"offset=0.0 equals no offset", "offset=0.0", "", 1},
    {"offset 1_000 is 1000", "offset=1_000", "offset=1000", 1},
    {"huge offset with leading zeros", "offset=000123456789012345678901234567890",
     "offset=123456789012345678901234567890", 1},
    {"limit 10 is not 11", "limit=10", "limit=11", 0},
    {"limit 51 is not the default", "limit=51", "", 0},
    {"offset 1 is not the default", "offset=1", "", 0},
    {"repeated limit: the last wins", "limit=5&limit=7", "limit=7", 1},
    {"repeated limit: the first is not it", "limit=5&limit=7", "limit=5", 0},
    {"an invalid earlier limit is ignored", "limit=ten&limit=7", "limit=7", 1},
    {"repeated status: the last wins", "status=failed&status=pending", "status=pending", 1},
    {"different status", "status=failed", "status=pending", 0},
    {"different job_type", "job_type=parse", "job_type=extract", 0},
    {"uuid upper equals lower", "project_id=" U1_UPPER, "project_id=" U1, 1},
    {"uuid simple equals hyphenated", "project_id=" U1_SIMPLE, "project_id=" U1, 1},
    {"uuid in braces", "project_id={" U1 "}", "project_id=" U1, 1},
    {"uuid with escaped braces", "project_id=%7B" U1_UPPER "%7D", "project_id=" U1, 1},
    {"uuid as urn", "project_id=urn:uuid:" U1, "project_id=" U1, 1},
    {"uuid as escaped urn", "project_id=urn%3Auuid%3A" U1, "project_id=" U1, 1},
    {"organization_id spellings", "organization_id=" U1_SIMPLE, "organization_id={" U1 "}", 1},
    {"different project_id", "project_id=" U1, "project_id=" U2, 0},
    {"project_id is not organization_id", "project_id=" U1, "organization_id=" U1, 0},
    {"empty directory_id is not absent", "directory_id=", "", 0},
    {"bare directory_id equals empty one", "directory_id", "directory_id=", 1},
    {"directory_id is case-sensitive", "directory_id=Dir", "directory_id=dir", 0},
    {"directory_id %41 equals A", "directory_id=%41", "directory_id=A", 1},
    {"an unknown param is kept", "foo=1", "", 0},
    {"unknown param values differ", "foo=1", "foo=2", 0},
    {"unknown names of different case differ", "Limit=5", "limit=5", 0},
    {"unknown repeated values keep their order", "tag=a&tag=b", "tag=b&tag=a", 0},
    {"unknown repeated is not single", "tag=a&tag=a", "tag=a", 0},
    {"different unknown names sort", "b=1&a=2", "a=2&b=1", 1},
    {"unknown interleaved with known", "tag=a&limit=5&tag=b", "limit=5&tag=a&tag=b", 1},
    {"empty pieces are skipped", "&&limit=5&", "limit=5", 1},
    {"only ampersands equal an empty query", "&&&", "", 1},
    {"= inside a value", "q=a=b", "q=a%3Db", 1},
    {"escaped & is data", "q=a%26b", "q=a&b", 0},
    {"; is not a separator", "q=a;b=c", "q=a&b=c", 0},
};

static const struct eq_case v2_eq[] = {
    {"param order does not matter", "page_size=20&status=RUNNING", "status=RUNNING&page_size=20", 1},
    {"page_size=20 is not absent (no default)", "page_size=20", "", 0},
    {"page_size=0 is not absent", "page_size=0", "", 0},
    {"page_size 020 is 20", "page_size=020", "page_size=20", 1},
    {"page_size 2_0 is 20", "page_size=2_0", "page_size=20", 1},
    {"page_size 20.0 is 20", "page_size=20.0", "page_size=20", 1},
    {"page_size with spaces is 20", "page_size=%2020%20", "page_size=20", 1},
    {"page_size with a raw + is 20", "page_size=+20", "page_size=20", 1},
    {"page_size -0 is 0", "page_size=-0", "page_size=0", 1},
    {"page_size -007 is -7", "page_size=-007", "page_size=-7", 1},
    {"page_size 20 is not 21", "page_size=20", "page_size=21", 0},
    {"repeated page_size: the last wins", "page_size=5&page_size=7", "page_size=7", 1},
    {"empty page_token is not absent", "page_token=", "", 0},
    {"page_token + equals %20", "page_token=a+b", "page_token=a%20b", 1},
    {"page_token is case-sensitive", "page_token=abc", "page_token=ABC", 0},
    {"page_token %2F equals /", "page_token=a%2Fb", "page_token=a/b", 1},
    {"repeated status: the last wins", "status=FAILED&status=RUNNING", "status=RUNNING", 1},
    {"different status", "status=FAILED", "status=RUNNING", 0},
    {"+01:00 equals Z an hour earlier", "created_at_on_or_after=2025-01-01T01:00:00%2B01:00",
     "created_at_on_or_after=2025-01-01T00:00:00Z", 1},
    {"Z equals the unix timestamp", "created_at_on_or_after=2025-01-01T00:00:00Z",
     "created_at_on_or_after=1735689600", 1},
    {"+01:00 equals the unix timestamp", "created_at_on_or_after=2025-01-01T01:00:00%2B01:00",
     "created_at_on_or_after=1735689600", 1},
    {"milliseconds timestamp equals seconds", "created_at_on_or_after=1735689600000",
     "created_at_on_or_after=1735689600", 1},
    {"float timestamp keeps the fraction", "created_at_on_or_after=1735689600.5",
     "created_at_on_or_after=2025-01-01T00:00:00.5Z", 1},
    {"%2B-signed timestamp", "created_at_on_or_after=%2B1735689600",
     "created_at_on_or_after=1735689600", 1},
    {"negative timestamp", "created_at_on_or_after=-1",
     "created_at_on_or_after=1969-12-31T23:59:59Z", 1},
    {"lowercase z equals Z", "created_at_on_or_after=2025-01-01T00:00:00z",
     "created_at_on_or_after=2025-01-01T00:00:00Z", 1},
    {"t separator equals T when aware", "created_at_on_or_after=2025-01-01t00:00:00Z",
     "created_at_on_or_after=2025-01-01T00:00:00Z", 1},
    {"space separator equals T when aware", "created_at_on_or_after=2025-01-01%2000:00:00Z",
     "created_at_on_or_after=2025-01-01T00:00:00Z", 1},
    {"raw + is a space separator", "created_at_on_or_after=2025-01-01+00:00:00Z",
     "created_at_on_or_after=2025-01-01T00:00:00Z", 1},
    {"_ separator equals T when aware", "created_at_on_or_after=2025-01-01_00:00:00Z",
     "created_at_on_or_after=2025-01-01T00:00:00Z", 1},
    {"+0100 equals +01:00", "created_at_on_or_after=2025-01-01T01:00:00%2B0100",
     "created_at_on_or_after=2025-01-01T01:00:00%2B01:00", 1},
    {"-05:30 is converted", "created_at_on_or_after=2024-12-31T18:30:00-05:30",
     "created_at_on_or_after=2025-01-01T00:00:00Z", 1},
    {"U+2212 minus equals -", "created_at_on_or_after=2024-12-31T23:00:00%E2%88%9201:00",
     "created_at_on_or_after=2025-01-01T00:00:00Z", 1},
    {"seconds omitted when aware", "created_at_on_or_after=2025-01-01T00:00Z",
     "created_at_on_or_after=2025-01-01T00:00:00Z", 1},
    {"zero fraction when aware", "created_at_on_or_after=2025-01-01T00:00:00.000000Z",
     "created_at_on_or_after=2025-01-01T00:00:00Z", 1},
    {".5 equals .500000", "created_at_on_or_after=2025-01-01T00:00:00.5Z",
     "created_at_on_or_after=2025-01-01T00:00:00.500000Z", 1},
    {", fraction separator equals .", "created_at_on_or_after=2025-01-01T00:00:00,5Z",
     "created_at_on_or_after=2025-01-01T00:00:00.5Z", 1},
    {"a seventh fraction digit is dropped", "created_at_on_or_after=2025-01-01T00:00:00.1234567Z",
     "created_at_on_or_after=2025-01-01T00:00:00.123456Z", 1},
    {"offset crossing the year", "created_at_on_or_after=2025-01-01T00:30:00%2B01:00",
     "created_at_on_or_after=2024-12-31T23:30:00Z", 1},
    {"offset of 23:59", "created_at_on_or_after=2025-01-01T00:00:00%2B23:59",
     "created_at_on_or_after=2024-12-31T00:01:00Z", 1},
    {"leap day equals its timestamp", "created_at_on_or_before=2024-02-29T12:00:00Z",
     "created_at_on_or_before=1709208000", 1},
    {"naive is not aware", "created_at_on_or_after=2025-01-01T00:00:00",
     "created_at_on_or_after=2025-01-01T00:00:00Z", 0},
    {"naive seconds omitted equal :00", "created_at_on_or_after=2025-01-01T00:00:00",
     "created_at_on_or_after=2025-01-01T00:00", 1},
    {"naive t separator equals T", "created_at_on_or_after=2025-01-01t00:00:00",
     "created_at_on_or_after=2025-01-01T00:00:00", 1},
    {"naive space separator equals T", "created_at_on_or_after=2023-11-15%2000:00:00",
     "created_at_on_or_after=2023-11-15T00:00:00", 1},
    {"naive _ separator equals T", "created_at_on_or_after=2023-11-15_00:00:00",
     "created_at_on_or_after=2023-11-15T00:00:00", 1},
    {"naive zero fraction equals none", "created_at_on_or_after=2023-11-15T00:00:00.000",
     "created_at_on_or_after=2023-11-15T00:00:00", 1},
    {"bare date equals naive midnight", "created_at_on_or_after=2023-11-15",
     "created_at_on_or_after=2023-11-15T00:00:00", 1},
    {"bare date equals naive midnight without seconds", "created_at_on_or_after=2023-11-15",
     "created_at_on_or_after=2023-11-15t00:00", 1},
    {"naive .5 equals ,500000", "created_at_on_or_after=2023-11-15T10:20:30.5",
     "created_at_on_or_after=2023-11-15T10:20:30,500000", 1},
    {"naive seventh fraction digit is dropped",
     "created_at_on_or_after=2023-11-15T10:20:30.1234567",
     "created_at_on_or_after=2023-11-15T10:20:30.123456", 1},
    {"naive .5 is not .0", "created_at_on_or_after=2023-11-15T10:20:30.5",
     "created_at_on_or_after=2023-11-15T10:20:30", 0},
    {"naive midnight is not the next second", "created_at_on_or_after=2023-11-15",
     "created_at_on_or_after=2023-11-15T00:00:01", 0},
    {"bare date is naive", "created_at_on_or_after=2025-01-01",
     "created_at_on_or_after=2025-01-01T00:00:00Z", 0},
    {"bare date is not its aware timestamp", "created_at_on_or_after=2025-01-01",
     "created_at_on_or_after=1735689600", 0},
    {"naive is not aware +00:00", "created_at_on_or_after=2025-01-01T00:00",
     "created_at_on_or_after=2025-01-01T00:00%2B00:00", 0},
    {"naive + and %20 agree", "created_at_on_or_after=2025-01-01+10:00",
     "created_at_on_or_after=2025-01-01%2010:00", 1},
    {"different instants", "created_at_on_or_after=2025-01-01T00:00:00Z",
     "created_at_on_or_after=2025-01-01T00:00:01Z", 0},
    {"after is not before", "created_at_on_or_after=1735689600",
     "created_at_on_or_before=1735689600", 0},
    {"repeated created_at: the last wins",
     "created_at_on_or_before=2020-01-01&created_at_on_or_before=1735689600",
     "created_at_on_or_before=2025-01-01T00:00:00Z", 1},
    {"empty source_directory_id is not absent", "source_directory_id=", "", 0},
    {"project_id is a plain string", "project_id=" U1_UPPER, "project_id=" U1, 0},
    {"project_id braces are kept", "project_id={" U1 "}", "project_id=" U1, 0},
    {"same project_id", "project_id=p1", "project_id=p%31", 1},
    {"different organization_id", "organization_id=o1", "organization_id=o2", 0},
    {"expand is an unknown param and kept", "expand=results", "", 0},
    {"unknown params sort by name", "zz=1&aa=2&page_size=3", "aa=2&page_size=3&zz=1", 1},
    {"unknown repeated values keep their order", "tag=a&tag=b", "tag=b&tag=a", 0},
};

struct canon_case {
    const char *name;
    enum qn_route route;
    const char *query;
    const char *canonical;
    const char *project_id;
};

static const struct canon_case canon_cases[] = {
    {"v1 empty query", QN_V1_BATCH_JOBS, "", "", NULL},
    {"v1 defaults written out vanish", QN_V1_BATCH_JOBS, "limit=50&offset=0", "", NULL},
    {"v1 integers in canonical spelling", QN_V1_BATCH_JOBS, "limit=010&offset=1_000",
     "limit=10&offset=1000", NULL},
    {"v1 sorted by name", QN_V1_BATCH_JOBS, "status=pending&job_type=parse&limit=20",
     "job_type=parse&limit=20&status=pending", NULL},
    {"v1 uuid lowercased and hyphenated", QN_V1_BATCH_JOBS, "project_id={" U1_UPPER "}",
     "project_id=" U1, U1},
    {"v1 simple organization_id", QN_V1_BATCH_JOBS, "organization_id=" U1_SIMPLE,
     "organization_id=" U1, NULL},
    {"v1 space and slash escaped", QN_V1_BATCH_JOBS, "directory_id=a+b%2Fc",
     "directory_id=a%20b%2Fc", NULL},
    {"v1 empty directory_id kept", QN_V1_BATCH_JOBS, "directory_id=", "directory_id=", NULL},
    {"v1 unknown params stable-sorted", QN_V1_BATCH_JOBS, "zeta=1&alpha=2&zeta=0",
     "alpha=2&zeta=1&zeta=0", NULL},
    {"v1 bare name gets =", QN_V1_BATCH_JOBS, "flag", "flag=", NULL},
    {"v1 empty name kept", QN_V1_BATCH_JOBS, "=x", "=x", NULL},
    {"v1 hex escapes uppercase", QN_V1_BATCH_JOBS, "q=%c3%a9", "q=%C3%A9", NULL},
    {"v1 only unreserved bytes bare", QN_V1_BATCH_JOBS, "q=~-._!*'()",
     "q=~-._%21%2A%27%28%29", NULL},
    {"v1 control byte escaped", QN_V1_BATCH_JOBS, "q=%01", "q=%01", NULL},
    {"v1 big offset kept exactly", QN_V1_BATCH_JOBS, "offset=000123456789012345678901234567890",
     "offset=123456789012345678901234567890", NULL},
    {"v1 signed limit, -0 offset", QN_V1_BATCH_JOBS, "limit=%2B7&offset=-0", "limit=7", NULL},
    {"v1 bounds are inclusive", QN_V1_BATCH_JOBS, "limit=1000&offset=0", "limit=1000", NULL},
    {"v1 every parameter", QN_V1_BATCH_JOBS,
     "organization_id=" U2 "&project_id=" U1 "&directory_id=d&job_type=classify"
     "&status=cancelled&offset=5&limit=1",
     "directory_id=d&job_type=classify&limit=1&offset=5&organization_id=" U2
     "&project_id=" U1 "&status=cancelled",
     U1},
    {"v2 page_size kept", QN_V2_BATCHES, "page_size=20", "page_size=20", NULL},
    {"v2 negative page_size kept", QN_V2_BATCHES, "page_size=-5", "page_size=-5", NULL},
    {"v2 aware to UTC", QN_V2_BATCHES, "created_at_on_or_after=2025-01-01T01:00:00%2B01:00",
     "created_at_on_or_after=2025-01-01T00%3A00%3A00Z", NULL},
    {"v2 float timestamp", QN_V2_BATCHES, "created_at_on_or_before=1735689600.25",
     "created_at_on_or_before=2025-01-01T00%3A00%3A00.250000Z", NULL},
    {"v2 milliseconds timestamp", QN_V2_BATCHES, "created_at_on_or_after=1735689600123",
     "created_at_on_or_after=2025-01-01T00%3A00%3A00.123000Z", NULL},
    {"v2 exponent float timestamp", QN_V2_BATCHES, "created_at_on_or_after=1.5e3",
     "created_at_on_or_after=1970-01-01T00%3A25%3A00Z", NULL},
    {"v2 bare date as naive midnight", QN_V2_BATCHES, "created_at_on_or_after=2025-01-01",
     "created_at_on_or_after=2025-01-01T00%3A00%3A00", NULL},
    {"v2 naive in one spelling", QN_V2_BATCHES, "created_at_on_or_after=2025-01-01+10:00",
     "created_at_on_or_after=2025-01-01T10%3A00%3A00", NULL},
    {"v2 naive zero fraction dropped", QN_V2_BATCHES,
     "created_at_on_or_before=2023-11-15t00:00:00.000",
     "created_at_on_or_before=2023-11-15T00%3A00%3A00", NULL},
    {"v2 naive fraction to six digits", QN_V2_BATCHES,
     "created_at_on_or_before=2023-11-15_23:59:59,25",
     "created_at_on_or_before=2023-11-15T23%3A59%3A59.250000", NULL},
    {"v2 naive year 1 and 9999 kept", QN_V2_BATCHES,
     "created_at_on_or_after=0001-01-01&created_at_on_or_before=9999-12-31%2023:59",
     "created_at_on_or_after=0001-01-01T00%3A00%3A00"
     "&created_at_on_or_before=9999-12-31T23%3A59%3A00", NULL},
    {"v2 aware before year 1 in UTC kept", QN_V2_BATCHES,
     "created_at_on_or_after=0001-01-01T00:00:00%2B01:00",
     "created_at_on_or_after=0001-01-01T00%3A00%3A00%2B01%3A00", NULL},
    {"v2 aware past 9999 in UTC kept", QN_V2_BATCHES,
     "created_at_on_or_after=9999-12-31T23:00:00-01:00",
     "created_at_on_or_after=9999-12-31T23%3A00%3A00-01%3A00", NULL},
    {"v2 empty page_token kept", QN_V2_BATCHES, "page_token=&status=COMPLETED",
     "page_token=&status=COMPLETED", NULL},
    {"v2 project_id as given", QN_V2_BATCHES, "project_id=ABC", "project_id=ABC", "ABC"},
    {"v2 empty project_id is present", QN_V2_BATCHES, "project_id=", "project_id=", ""},
    {"v2 project_id last wins", QN_V2_BATCHES, "project_id=a&project_id=b", "project_id=b", "b"},
};

struct bad_case {
    const char *name;
    enum qn_route route;
    const char *query;
    const char *body;
};

static const struct bad_case bad_cases[] = {
    {"v1 limit not an integer", QN_V1_BATCH_JOBS, "limit=ten",
     "{\"detail\":[{\"type\":\"int_parsing\",\"loc\":[\"query\",\"limit\"],\"msg\":\"" INT_MSG
     "\",\"input\":\"ten\"}]}"},
    {"v1 limit empty", QN_V1_BATCH_JOBS, "limit=",
     "{\"detail\":[{\"type\":\"int_parsing\",\"loc\":[\"query\",\"limit\"],\"msg\":\"" INT_MSG
     "\",\"input\":\"\"}]}"},
    {"v1 bare limit is empty", QN_V1_BATCH_JOBS, "limit",
     "{\"detail\":[{\"type\":\"int_parsing\",\"loc\":[\"query\",\"limit\"],\"msg\":\"" INT_MSG
     "\",\"input\":\"\"}]}"},
    {"v1 limit below 1", QN_V1_BATCH_JOBS, "limit=0",
     "{\"detail\":[{\"type\":\"greater_than_equal\",\"loc\":[\"query\",\"limit\"],\"msg\":"
     "\"Input should be greater than or equal to 1\",\"input\":\"0\",\"ctx\":{\"ge\":1}}]}"},
    {"v1 limit above 1000, input as sent", QN_V1_BATCH_JOBS, "limit=1_001",
     "{\"detail\":[{\"type\":\"less_than_equal\",\"loc\":[\"query\",\"limit\"],\"msg\":"
     "\"Input should be less than or equal to 1000\",\"input\":\"1_001\",\"ctx\":{\"le\":1000}}]}"},
    {"v1 negative offset", QN_V1_BATCH_JOBS, "offset=-1",
     "{\"detail\":[{\"type\":\"greater_than_equal\",\"loc\":[\"query\",\"offset\"],\"msg\":"
     "\"Input should be greater than or equal to 0\",\"input\":\"-1\",\"ctx\":{\"ge\":0}}]}"},
    {"v1 limit 10.5", QN_V1_BATCH_JOBS, "limit=10.5",
     "{\"detail\":[{\"type\":\"int_parsing\",\"loc\":[\"query\",\"limit\"],\"msg\":\"" INT_MSG
     "\",\"input\":\"10.5\"}]}"},
    {"v1 limit 1e1", QN_V1_BATCH_JOBS, "limit=1e1",
     "{\"detail\":[{\"type\":\"int_parsing\",\"loc\":[\"query\",\"limit\"],\"msg\":\"" INT_MSG
     "\",\"input\":\"1e1\"}]}"},
    {"v1 limit with a bare trailing point", QN_V1_BATCH_JOBS, "limit=10.",
     "{\"detail\":[{\"type\":\"int_parsing\",\"loc\":[\"query\",\"limit\"],\"msg\":\"" INT_MSG
     "\",\"input\":\"10.\"}]}"},
    {"v1 limit double underscore", QN_V1_BATCH_JOBS, "limit=1__0",
     "{\"detail\":[{\"type\":\"int_parsing\",\"loc\":[\"query\",\"limit\"],\"msg\":\"" INT_MSG
     "\",\"input\":\"1__0\"}]}"},
    {"v1 limit trailing underscore", QN_V1_BATCH_JOBS, "limit=10_",
     "{\"detail\":[{\"type\":\"int_parsing\",\"loc\":[\"query\",\"limit\"],\"msg\":\"" INT_MSG
     "\",\"input\":\"10_\"}]}"},
    {"v1 limit two signs", QN_V1_BATCH_JOBS, "limit=%2B-5",
     "{\"detail\":[{\"type\":\"int_parsing\",\"loc\":[\"query\",\"limit\"],\"msg\":\"" INT_MSG
     "\",\"input\":\"+-5\"}]}"},
    {"v1 status case-sensitive", QN_V1_BATCH_JOBS, "status=PENDING",
     "{\"detail\":[{\"type\":\"enum\",\"loc\":[\"query\",\"status\"],\"msg\":\"Input should be "
     V1_STATUS "\",\"input\":\"PENDING\",\"ctx\":{\"expected\":\"" V1_STATUS "\"}}]}"},
    {"v1 status empty", QN_V1_BATCH_JOBS, "status=",
     "{\"detail\":[{\"type\":\"enum\",\"loc\":[\"query\",\"status\"],\"msg\":\"Input should be "
     V1_STATUS "\",\"input\":\"\",\"ctx\":{\"expected\":\"" V1_STATUS "\"}}]}"},
    {"v1 job_type unknown", QN_V1_BATCH_JOBS, "job_type=Parse",
     "{\"detail\":[{\"type\":\"enum\",\"loc\":[\"query\",\"job_type\"],\"msg\":\"Input should be "
     "'parse', 'extract' or 'classify'\",\"input\":\"Parse\",\"ctx\":{\"expected\":"
     "\"'parse', 'extract' or 'classify'\"}}]}"},
    {"v1 project_id bad character", QN_V1_BATCH_JOBS, "project_id=not-a-uuid",
     "{\"detail\":[{\"type\":\"uuid_parsing\",\"loc\":[\"query\",\"project_id\"],\"msg\":"
     "\"Input should be a valid UUID, " UUID_CHAR "`n` at 1\",\"input\":\"not-a-uuid\","
     "\"ctx\":{\"error\":\"" UUID_CHAR "`n` at 1\"}}]}"},
    {"v1 project_id empty", QN_V1_BATCH_JOBS, "project_id=",
     "{\"detail\":[{\"type\":\"uuid_parsing\",\"loc\":[\"query\",\"project_id\"],\"msg\":"
     "\"Input should be a valid UUID, invalid length: expected length 32 for simple format, "
     "found 0\",\"input\":\"\",\"ctx\":{\"error\":\"invalid length: expected length 32 for "
     "simple format, found 0\"}}]}"},
    {"v1 project_id 34 hex digits", QN_V1_BATCH_JOBS, "project_id=" U1_SIMPLE "aa",
     "{\"detail\":[{\"type\":\"uuid_parsing\",\"loc\":[\"query\",\"project_id\"],\"msg\":"
     "\"Input should be a valid UUID, invalid length: expected length 32 for simple format, "
     "found 34\",\"input\":\"" U1_SIMPLE "aa\",\"ctx\":{\"error\":\"invalid length: expected "
     "length 32 for simple format, found 34\"}}]}"},
    {"v1 project_id four groups", QN_V1_BATCH_JOBS, "project_id=67e55044-10b1-426f-9247",
     "{\"detail\":[{\"type\":\"uuid_parsing\",\"loc\":[\"query\",\"project_id\"],\"msg\":"
     "\"Input should be a valid UUID, invalid group count: expected 5, found 4\",\"input\":"
     "\"67e55044-10b1-426f-9247\",\"ctx\":{\"error\":\"invalid group count: expected 5, "
     "found 4\"}}]}"},
    {"v1 project_id short first group", QN_V1_BATCH_JOBS,
     "project_id=67e5504-410b1-426f-9247-bb680e5fe0c8",
     "{\"detail\":[{\"type\":\"uuid_parsing\",\"loc\":[\"query\",\"project_id\"],\"msg\":"
     "\"Input should be a valid UUID, invalid group length in group 0: expected 8, found 7\","
     "\"input\":\"67e5504-410b1-426f-9247-bb680e5fe0c8\",\"ctx\":{\"error\":\"invalid group "
     "length in group 0: expected 8, found 7\"}}]}"},
    {"v1 organization_id short last group", QN_V1_BATCH_JOBS,
     "organization_id=67e55044-10b1-426f-9247-bb680e5fe0c",
     "{\"detail\":[{\"type\":\"uuid_parsing\",\"loc\":[\"query\",\"organization_id\"],\"msg\":"
     "\"Input should be a valid UUID, invalid group length in group 4: expected 12, found 11\","
     "\"input\":\"67e55044-10b1-426f-9247-bb680e5fe0c\",\"ctx\":{\"error\":\"invalid group "
     "length in group 4: expected 12, found 11\"}}]}"},
    {"v1 urn with a bad digit counts inside the urn", QN_V1_BATCH_JOBS,
     "project_id=urn:uuid:67e55044-10b1-426f-9247-bb680e5fe0cg",
     "{\"detail\":[{\"type\":\"uuid_parsing\",\"loc\":[\"query\",\"project_id\"],\"msg\":"
     "\"Input should be a valid UUID, " UUID_CHAR "`g` at 36\",\"input\":\"urn:uuid:"
     "67e55044-10b1-426f-9247-bb680e5fe0cg\",\"ctx\":{\"error\":\"" UUID_CHAR "`g` at 36\"}}]}"},
    {"v1 uuid with a non-ASCII character", QN_V1_BATCH_JOBS, "project_id=%C3%A9",
     "{\"detail\":[{\"type\":\"uuid_parsing\",\"loc\":[\"query\",\"project_id\"],\"msg\":"
     "\"Input should be a valid UUID, " UUID_CHAR "`\xc3\xa9` at 1\",\"input\":\"\xc3\xa9\","
     "\"ctx\":{\"error\":\"" UUID_CHAR "`\xc3\xa9` at 1\"}}]}"},
    {"v1 several errors in schema order", QN_V1_BATCH_JOBS,
     "project_id=1&status=nope&offset=x&limit=0",
     "{\"detail\":["
     "{\"type\":\"greater_than_equal\",\"loc\":[\"query\",\"limit\"],\"msg\":\"Input should be "
     "greater than or equal to 1\",\"input\":\"0\",\"ctx\":{\"ge\":1}},"
     "{\"type\":\"int_parsing\",\"loc\":[\"query\",\"offset\"],\"msg\":\"" INT_MSG
     "\",\"input\":\"x\"},"
     "{\"type\":\"enum\",\"loc\":[\"query\",\"status\"],\"msg\":\"Input should be " V1_STATUS
     "\",\"input\":\"nope\",\"ctx\":{\"expected\":\"" V1_STATUS "\"}},"
     "{\"type\":\"uuid_parsing\",\"loc\":[\"query\",\"project_id\"],\"msg\":\"Input should be "
     "a valid UUID, invalid length: expected length 32 for simple format, found 1\",\"input\":"
     "\"1\",\"ctx\":{\"error\":\"invalid length: expected length 32 for simple format, "
     "found 1\"}}]}"},
    {"v1 the last of a repeated param is validated", QN_V1_BATCH_JOBS, "limit=5&limit=ten",
     "{\"detail\":[{\"type\":\"int_parsing\",\"loc\":[\"query\",\"limit\"],\"msg\":\"" INT_MSG
     "\",\"input\":\"ten\"}]}"},
    {"v1 control bytes escaped as Python does", QN_V1_BATCH_JOBS, "limit=%1F%0A",
     "{\"detail\":[{\"type\":\"int_parsing\",\"loc\":[\"query\",\"limit\"],\"msg\":\"" INT_MSG
     "\",\"input\":\"\\u001f\\n\"}]}"},
    {"v1 quote and backslash escaped", QN_V1_BATCH_JOBS, "status=%22%5C",
     "{\"detail\":[{\"type\":\"enum\",\"loc\":[\"query\",\"status\"],\"msg\":\"Input should be "
     V1_STATUS "\",\"input\":\"\\\"\\\\\",\"ctx\":{\"expected\":\"" V1_STATUS "\"}}]}"},
    {"v2 page_size not an integer", QN_V2_BATCHES, "page_size=ten",
     "{\"detail\":[{\"type\":\"int_parsing\",\"loc\":[\"query\",\"page_size\"],\"msg\":\""
     INT_MSG "\",\"input\":\"ten\"}]}"},
    {"v2 page_size empty", QN_V2_BATCHES, "page_size=",
     "{\"detail\":[{\"type\":\"int_parsing\",\"loc\":[\"query\",\"page_size\"],\"msg\":\""
     INT_MSG "\",\"input\":\"\"}]}"},
    {"v2 status lowercase", QN_V2_BATCHES, "status=running",
     "{\"detail\":[{\"type\":\"enum\",\"loc\":[\"query\",\"status\"],\"msg\":\"Input should be "
     V2_STATUS "\",\"input\":\"running\",\"ctx\":{\"expected\":\"" V2_STATUS "\"}}]}"},
    {"v2 datetime empty", QN_V2_BATCHES, "created_at_on_or_after=",
     "{\"detail\":[{\"type\":\"datetime_from_date_parsing\",\"loc\":[\"query\","
     "\"created_at_on_or_after\"],\"msg\":\"" DT_MSG "input is too short\",\"input\":\"\","
     "\"ctx\":{\"error\":\"input is too short\"}}]}"},
    {"v2 datetime word", QN_V2_BATCHES, "created_at_on_or_after=yesterday",
     "{\"detail\":[{\"type\":\"datetime_from_date_parsing\",\"loc\":[\"query\","
     "\"created_at_on_or_after\"],\"msg\":\"" DT_MSG "input is too short\",\"input\":"
     "\"yesterday\",\"ctx\":{\"error\":\"input is too short\"}}]}"},
    {"v2 datetime month 13", QN_V2_BATCHES, "created_at_on_or_after=2025-13-01",
     "{\"detail\":[{\"type\":\"datetime_from_date_parsing\",\"loc\":[\"query\","
     "\"created_at_on_or_after\"],\"msg\":\"" DT_MSG "month value is outside expected range of "
     "1-12\",\"input\":\"2025-13-01\",\"ctx\":{\"error\":\"month value is outside expected "
     "range of 1-12\"}}]}"},
    {"v2 datetime 29 February of a common year", QN_V2_BATCHES,
     "created_at_on_or_before=2025-02-29",
     "{\"detail\":[{\"type\":\"datetime_from_date_parsing\",\"loc\":[\"query\","
     "\"created_at_on_or_before\"],\"msg\":\"" DT_MSG "day value is outside expected range\","
     "\"input\":\"2025-02-29\",\"ctx\":{\"error\":\"day value is outside expected range\"}}]}"},
    {"v2 datetime slashes", QN_V2_BATCHES, "created_at_on_or_after=2025/01/01",
     "{\"detail\":[{\"type\":\"datetime_from_date_parsing\",\"loc\":[\"query\","
     "\"created_at_on_or_after\"],\"msg\":\"" DT_MSG "invalid date separator, expected `-`\","
     "\"input\":\"2025/01/01\",\"ctx\":{\"error\":\"invalid date separator, expected `-`\"}}]}"},
    {"v2 datetime letters in the year", QN_V2_BATCHES, "created_at_on_or_after=abcd-01-01",
     "{\"detail\":[{\"type\":\"datetime_from_date_parsing\",\"loc\":[\"query\","
     "\"created_at_on_or_after\"],\"msg\":\"" DT_MSG "invalid character in year\",\"input\":"
     "\"abcd-01-01\",\"ctx\":{\"error\":\"invalid character in year\"}}]}"},
    {"v2 datetime hour 25 reports the date parser's reason", QN_V2_BATCHES,
     "created_at_on_or_after=2025-01-01T25:00:00",
     "{\"detail\":[{\"type\":\"datetime_from_date_parsing\",\"loc\":[\"query\","
     "\"created_at_on_or_after\"],\"msg\":\"" DT_MSG "unexpected extra characters at the end "
     "of the input\",\"input\":\"2025-01-01T25:00:00\",\"ctx\":{\"error\":\"unexpected extra "
     "characters at the end of the input\"}}]}"},
    {"v2 datetime offset of 24 hours", QN_V2_BATCHES,
     "created_at_on_or_after=2025-01-01T00:00:00%2B24:00",
     "{\"detail\":[{\"type\":\"datetime_from_date_parsing\",\"loc\":[\"query\","
     "\"created_at_on_or_after\"],\"msg\":\"" DT_MSG "unexpected extra characters at the end "
     "of the input\",\"input\":\"2025-01-01T00:00:00+24:00\",\"ctx\":{\"error\":\"unexpected "
     "extra characters at the end of the input\"}}]}"},
    {"v2 datetime year 0", QN_V2_BATCHES, "created_at_on_or_before=0000-01-01",
     "{\"detail\":[{\"type\":\"datetime_parsing\",\"loc\":[\"query\",\"created_at_on_or_before\"],"
     "\"msg\":\"Input should be a valid datetime, year 0 is out of range\",\"input\":"
     "\"0000-01-01\",\"ctx\":{\"error\":\"year 0 is out of range\"}}]}"},
    {"v2 timestamp after 9999", QN_V2_BATCHES, "created_at_on_or_after=300000000000000",
     "{\"detail\":[{\"type\":\"datetime_from_date_parsing\",\"loc\":[\"query\","
     "\"created_at_on_or_after\"],\"msg\":\"" DT_MSG "dates after 9999 are not supported as "
     "unix timestamps\",\"input\":\"300000000000000\",\"ctx\":{\"error\":\"dates after 9999 "
     "are not supported as unix timestamps\"}}]}"},
    {"v2 timestamp before 0000", QN_V2_BATCHES, "created_at_on_or_after=-70000000000000",
     "{\"detail\":[{\"type\":\"datetime_from_date_parsing\",\"loc\":[\"query\","
     "\"created_at_on_or_after\"],\"msg\":\"" DT_MSG "dates before 0000 are not supported as "
     "unix timestamps\",\"input\":\"-70000000000000\",\"ctx\":{\"error\":\"dates before 0000 "
     "are not supported as unix timestamps\"}}]}"},
    {"v2 integer too long for a timestamp", QN_V2_BATCHES,
     "created_at_on_or_after=99999999999999999999",
     "{\"detail\":[{\"type\":\"datetime_from_date_parsing\",\"loc\":[\"query\","
     "\"created_at_on_or_after\"],\"msg\":\"" DT_MSG "invalid date separator, expected `-`\","
     "\"input\":\"99999999999999999999\",\"ctx\":{\"error\":\"invalid date separator, "
     "expected `-`\"}}]}"},
    {"v2 several errors in schema order", QN_V2_BATCHES,
     "created_at_on_or_before=x&status=x&created_at_on_or_after=2025-01-01T00:00:00.Z&"
     "project_id=",
     "{\"detail\":["
     "{\"type\":\"enum\",\"loc\":[\"query\",\"status\"],\"msg\":\"Input should be " V2_STATUS
     "\",\"input\":\"x\",\"ctx\":{\"expected\":\"" V2_STATUS "\"}},"
     "{\"type\":\"datetime_from_date_parsing\",\"loc\":[\"query\",\"created_at_on_or_after\"],"
     "\"msg\":\"" DT_MSG "unexpected extra characters at the end of the input\",\"input\":"
     "\"2025-01-01T00:00:00.Z\",\"ctx\":{\"error\":\"unexpected extra characters at the end of "
     "the input\"}},"
     "{\"type\":\"datetime_from_date_parsing\",\"loc\":[\"query\",\"created_at_on_or_before\"],"
     "\"msg\":\"" DT_MSG "input is too short\",\"input\":\"x\",\"ctx\":{\"error\":\"input is too "
     "short\"}}]}"},
};

struct malformed_case {
    const char *name;
    const char *query;
    size_t max_params;
    const char *body; /* NULL: only the status is checked */
};

static const struct malformed_case malformed_cases[] = {
    {"lone % at the end", "limit=%", 0,
     "{\"detail\":\"Malformed query string: invalid percent-encoding\"}"},
    {"% with one hex digit", "limit=%4", 0, NULL},
    {"% with non-hex digits", "q=%zz", 0, NULL},
    {"bad % in a name", "a%=1", 0, NULL},
    {"bad % in an unknown param", "x=1&y=%G0", 0, NULL},
    {"truncated UTF-8 sequence", "q=%C3", 0,
     "{\"detail\":\"Malformed query string: invalid UTF-8\"}"},
    {"byte FF", "q=%FF", 0, NULL},
    {"encoded surrogate", "q=%ED%A0%80", 0, NULL},
    {"overlong encoding", "q=%C0%AF", 0, NULL},
    {"above U+10FFFF", "q=%F4%90%80%80", 0, NULL},
    {"non-UTF-8 name", "%FF=1", 0, NULL},
    {"encoded NUL", "q=%00", 0, NULL},
    {"raw non-ASCII byte", "q=\xc3\xa9", 0, NULL},
    {"too many params", "a=1&b=2&c=3&d=4", 3, "{\"detail\":\"Too many query parameters\"}"},
    {"too many even when repeated", "limit=1&limit=2&limit=3", 2, NULL},
    {"malformed wins over invalid", "limit=ten&q=%", 0, NULL},
};

static int run(enum qn_route r, const char *q, size_t max, struct qn_result *res)
{
    if (qn_normalize(r, q, max, res) != 0) {
        memset(res, 0, sizeof *res);
        res->status = -1;
        return -1;
    }
    return 0;
}

static void test_equivalences(enum qn_route r, const struct eq_case *cases, size_t n)
{
    const char *route = qn_routes[r].name;
    for (size_t i = 0; i < n; i++) {
        struct qn_result a, b;
        run(r, cases[i].a, 0, &a);
        run(r, cases[i].b, 0, &b);
        int ok = a.status == QN_OK && b.status == QN_OK &&
                 (strcmp(a.canonical, b.canonical) == 0) == cases[i].equivalent;
        if (!tap_ok(ok, "%s: %s (%s)", route, cases[i].name,
                    cases[i].equivalent ? "same key" : "different keys"))
            printf("#   a: %s -> %d %s\n#   b: %s -> %d %s\n", cases[i].a, a.status,
                   a.canonical ? a.canonical : a.body, cases[i].b, b.status,
                   b.canonical ? b.canonical : b.body);
        qn_result_free(&a);
        qn_result_free(&b);
    }
}

static void test_canonicals(void)
{
    for (size_t i = 0; i < sizeof canon_cases / sizeof canon_cases[0]; i++) {
        const struct canon_case *c = &canon_cases[i];
        struct qn_result res;
        run(c->route, c->query, 0, &res);
        tap_is_str(res.status == QN_OK ? res.canonical : res.body, c->canonical,
                   "canonical: %s", c->name);
        tap_is_str(res.project_id, c->project_id, "project_id out: %s", c->name);
        qn_result_free(&res);
    }
}

static void test_invalid(void)
{
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad_case *c = &bad_cases[i];
        struct qn_result res;
        run(c->route, c->query, 0, &res);
        tap_ok(res.status == QN_INVALID && res.canonical == NULL && res.project_id == NULL,
               "422: %s is QN_INVALID", c->name);
        tap_is_str(res.body, c->body, "422 body: %s", c->name);
        qn_result_free(&res);
    }
}

static void test_int_size(void)
{
    size_t n = 4301;
    char *q = malloc(n + 16), *big;
    struct qn_result res;

    strcpy(q, "page_size=");
    memset(q + 10, '7', n);
    q[10 + n] = '\0';
    run(QN_V2_BATCHES, q, 0, &res);
    tap_ok(res.status == QN_INVALID && res.body &&
               strstr(res.body, "{\"detail\":[{\"type\":\"int_parsing_size\",\"loc\":[\"query\","
                                "\"page_size\"],\"msg\":\"Unable to parse input string as an "
                                "integer, exceeded maximum size\",\"input\":\"777") == res.body,
           "4301 digits: int_parsing_size");
    qn_result_free(&res);

    q[10 + n - 1] = '\0';
    run(QN_V2_BATCHES, q, 0, &res);
    tap_ok(res.status == QN_OK && strcmp(res.canonical, q) == 0,
           "4300 digits: a valid integer, kept exactly");
    qn_result_free(&res);

    q[10] = '-';
    run(QN_V2_BATCHES, q, 0, &res);
    tap_ok(res.status == QN_OK, "a sign and 4299 digits: valid");
    qn_result_free(&res);
    q[10 + n - 1] = '7';
    run(QN_V2_BATCHES, q, 0, &res);
    tap_ok(res.status == QN_INVALID && strstr(res.body, "\"type\":\"int_parsing_size\""),
           "a sign and 4300 digits: the sign counts, int_parsing_size");
    qn_result_free(&res);

    /* the bound is jiter's, on sign and digits as sent: spaces make it plain
     * int_parsing, leading zeros make it a valid cleaned integer */
    big = malloc(n + 32);
    memset(q + 10, '7', n);
    q[10 + n] = '\0';
    snprintf(big, n + 32, "page_size=%%20%s", q + 10);
    run(QN_V2_BATCHES, big, 0, &res);
    tap_ok(res.status == QN_INVALID && strstr(res.body, "\"type\":\"int_parsing\","),
           "4301 digits after a space: int_parsing");
    qn_result_free(&res);

    memset(q + 10, '0', n - 1);
    q[10 + n - 1] = '5';
    run(QN_V2_BATCHES, q, 0, &res);
    tap_is_str(res.canonical, "page_size=5", "4300 leading zeros: 5");
    qn_result_free(&res);
    free(big);
    free(q);
}

static void test_malformed(void)
{
    for (size_t i = 0; i < sizeof malformed_cases / sizeof malformed_cases[0]; i++) {
        const struct malformed_case *c = &malformed_cases[i];
        for (int r = 0; r < QN_NROUTES; r++) {
            struct qn_result res;
            run((enum qn_route)r, c->query, c->max_params, &res);
            tap_ok(res.status == QN_MALFORMED && res.canonical == NULL && res.body != NULL &&
                       strncmp(res.body, "{\"detail\":\"", 11) == 0,
                   "400 %s: %s", qn_routes[r].name, c->name);
            if (c->body != NULL)
                tap_is_str(res.body, c->body, "400 body %s: %s", qn_routes[r].name, c->name);
            qn_result_free(&res);
        }
    }
}

static void test_max_params(void)
{
    struct qn_result res;
    run(QN_V1_BATCH_JOBS, "a=1&b=2&c=3", 3, &res);
    tap_is_str(res.canonical, "a=1&b=2&c=3", "exactly max_params pieces pass");
    qn_result_free(&res);
    run(QN_V1_BATCH_JOBS, "&a=1&&b=2&&&", 2, &res);
    tap_is_str(res.canonical, "a=1&b=2", "empty pieces do not count against max_params");
    qn_result_free(&res);

    size_t n = 5000, len = 0;
    char *q = malloc(n * 8 + 1);
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(q + len, "%sp=%zu", i ? "&" : "", i % 10);
    run(QN_V1_BATCH_JOBS, q, 0, &res);
    tap_ok(res.status == QN_OK && strlen(res.canonical) == len,
           "max_params 0: 5000 params, all kept in order");
    qn_result_free(&res);
    run(QN_V1_BATCH_JOBS, q, 4999, &res);
    tap_ok(res.status == QN_MALFORMED, "5000 params over max_params 4999");
    qn_result_free(&res);
    free(q);
}

/* From here on the tests read the schema table: a new parameter or enum
 * value in qn_routes[] is covered without a new line here. */

static char *param_query(const char *name, const char *value)
{
    size_t n = strlen(name) + strlen(value) + 2;
    char *q = malloc(n);
    snprintf(q, n, "%s=%s", name, value);
    return q;
}

static char *norm(enum qn_route r, const char *name, const char *value, int *status)
{
    struct qn_result res;
    char *q = param_query(name, value), *out;
    run(r, q, 0, &res);
    free(q);
    *status = res.status;
    out = res.status == QN_OK ? res.canonical : res.body;
    res.canonical = res.body = NULL;
    qn_result_free(&res);
    return out;
}

static void test_schema_enums(enum qn_route r, const struct qn_param *p)
{
    const char *route = qn_routes[r].name;
    int st;
    for (const char *const *e = p->enums; *e != NULL; e++) {
        char *want = param_query(p->name, *e);
        char *got = norm(r, p->name, *e, &st);
        tap_is_str(got, want, "%s: %s=%s accepted", route, p->name, *e);
        free(got);
        free(want);

        char *upper = strdup(*e);
        for (char *c = upper; *c; c++)
            *c = (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
        got = norm(r, p->name, upper, &st);
        tap_ok(st == QN_INVALID && strstr(got, "\"type\":\"enum\""),
               "%s: %s=%s (case swapped) is an enum error", route, p->name, upper);
        free(got);
        free(upper);
    }
    char *got = norm(r, p->name, "", &st);
    tap_ok(st == QN_INVALID && strstr(got, "\"type\":\"enum\"") && strstr(got, p->name),
           "%s: empty %s is an enum error", route, p->name);
    free(got);
}

static void test_schema_int(enum qn_route r, const struct qn_param *p)
{
    const char *route = qn_routes[r].name;
    char want[512], v[32], *got;
    int st;

    snprintf(want, sizeof want,
             "{\"detail\":[{\"type\":\"int_parsing\",\"loc\":[\"query\",\"%s\"],\"msg\":\""
             INT_MSG "\",\"input\":\"ten\"}]}", p->name);
    got = norm(r, p->name, "ten", &st);
    tap_is_str(got, want, "%s: %s=ten is int_parsing", route, p->name);
    free(got);

    got = norm(r, p->name, "", &st);
    tap_ok(st == QN_INVALID && strstr(got, "\"type\":\"int_parsing\""),
           "%s: empty %s is int_parsing", route, p->name);
    free(got);

    if (p->has_ge) {
        snprintf(v, sizeof v, "%lld", p->ge - 1);
        snprintf(want, sizeof want,
                 "{\"detail\":[{\"type\":\"greater_than_equal\",\"loc\":[\"query\",\"%s\"],"
                 "\"msg\":\"Input should be greater than or equal to %lld\",\"input\":\"%s\","
                 "\"ctx\":{\"ge\":%lld}}]}", p->name, p->ge, v, p->ge);
        got = norm(r, p->name, v, &st);
        tap_is_str(got, want, "%s: %s=%s is below ge", route, p->name, v);
        free(got);
        snprintf(v, sizeof v, "%lld", p->ge);
        got = norm(r, p->name, v, &st);
        tap_ok(st == QN_OK, "%s: %s=%s (ge) accepted", route, p->name, v);
        free(got);
    }
    if (p->has_le) {
        snprintf(v, sizeof v, "%lld", p->le + 1);
        snprintf(want, sizeof want,
                 "{\"detail\":[{\"type\":\"less_than_equal\",\"loc\":[\"query\",\"%s\"],"
                 "\"msg\":\"Input should be less than or equal to %lld\",\"input\":\"%s\","
                 "\"ctx\":{\"le\":%lld}}]}", p->name, p->le, v, p->le);
        got = norm(r, p->name, v, &st);
        tap_is_str(got, want, "%s: %s=%s is above le", route, p->name, v);
        free(got);
        snprintf(v, sizeof v, "%lld", p->le);
        got = norm(r, p->name, v, &st);
        tap_ok(st == QN_OK, "%s: %s=%s (le) accepted", route, p->name, v);
        free(got);
    }
    if (p->dflt != NULL) {
        char spelled[64];
        snprintf(spelled, sizeof spelled, "00%s.0", p->dflt);
        got = norm(r, p->name, spelled, &st);
        tap_is_str(got, "", "%s: %s=%s equals its default, dropped", route, p->name, spelled);
        free(got);
    } else {
        got = norm(r, p->name, "1", &st);
        snprintf(want, sizeof want, "%s=1", p->name);
        tap_is_str(got, want, "%s: %s has no default: written out, kept", route, p->name);
        free(got);
    }
}

static void test_schema_str(enum qn_route r, const struct qn_param *p)
{
    const char *route = qn_routes[r].name;
    char want[128];
    int st;
    char *got = norm(r, p->name, "", &st);
    snprintf(want, sizeof want, "%s=", p->name);
    tap_is_str(got, want, "%s: empty %s is kept, not absent", route, p->name);
    free(got);
    got = norm(r, p->name, "A+b%2Fc%7E", &st);
    snprintf(want, sizeof want, "%s=A%%20b%%2Fc~", p->name);
    tap_is_str(got, want, "%s: %s kept byte for byte", route, p->name);
    free(got);
}

static void test_schema_uuid(enum qn_route r, const struct qn_param *p)
{
    static const char *const spellings[] = {U1, U1_UPPER, U1_SIMPLE, "{" U1 "}",
                                            "urn:uuid:" U1, "%7B" U1_UPPER "%7D"};
    const char *route = qn_routes[r].name;
    char want[128];
    int st;
    snprintf(want, sizeof want, "%s=" U1, p->name);
    for (size_t i = 0; i < sizeof spellings / sizeof spellings[0]; i++) {
        char *got = norm(r, p->name, spellings[i], &st);
        tap_is_str(got, want, "%s: %s=%s is canonical", route, p->name, spellings[i]);
        free(got);
    }
    char *got = norm(r, p->name, "", &st);
    tap_ok(st == QN_INVALID && strstr(got, "\"type\":\"uuid_parsing\"") && strstr(got, p->name),
           "%s: empty %s is uuid_parsing", route, p->name);
    free(got);
}

static void test_schema_datetime(enum qn_route r, const struct qn_param *p)
{
    const char *route = qn_routes[r].name;
    char want[512];
    int st;
    char *got = norm(r, p->name, "2025-01-01T01:00:00%2B01:00", &st);
    snprintf(want, sizeof want, "%s=2025-01-01T00%%3A00%%3A00Z", p->name);
    tap_is_str(got, want, "%s: %s aware value in UTC", route, p->name);
    free(got);
    got = norm(r, p->name, "", &st);
    snprintf(want, sizeof want,
             "{\"detail\":[{\"type\":\"datetime_from_date_parsing\",\"loc\":[\"query\",\"%s\"],"
             "\"msg\":\"" DT_MSG "input is too short\",\"input\":\"\",\"ctx\":{\"error\":"
             "\"input is too short\"}}]}", p->name);
    tap_is_str(got, want, "%s: empty %s is too short", route, p->name);
    free(got);
}

static void test_schema(void)
{
    static const char *const good[] = {
        [QN_INT] = "7", [QN_ENUM] = NULL, [QN_STR] = "s", [QN_UUID] = U2,
        [QN_DATETIME] = "2025-01-01T00:00:00Z",
    };
    for (int r = 0; r < QN_NROUTES; r++) {
        const struct qn_schema *sc = &qn_routes[r];
        tap_ok(qn_route_by_path(sc->path) == r, "route by path: %s", sc->path);
        for (size_t k = 0; k < sc->nparams; k++) {
            const struct qn_param *p = &sc->params[k];
            switch (p->type) {
            case QN_INT: test_schema_int((enum qn_route)r, p); break;
            case QN_ENUM: test_schema_enums((enum qn_route)r, p); break;
            case QN_STR: test_schema_str((enum qn_route)r, p); break;
            case QN_UUID: test_schema_uuid((enum qn_route)r, p); break;
            case QN_DATETIME: test_schema_datetime((enum qn_route)r, p); break;
            }
            /* the last of a repeated known param wins; an escaped name is the name */
            const char *v = p->type == QN_ENUM ? p->enums[0] : good[p->type];
            char a[512], b[512], esc[256] = "";
            for (const char *c = p->name; *c; c++)
                snprintf(esc + strlen(esc), sizeof esc - strlen(esc), "%%%02X",
                         (unsigned char)*c);
            snprintf(a, sizeof a, "%s=%s&%s=%s", p->name, p->enums ? p->enums[1] : "x", esc, v);
            snprintf(b, sizeof b, "%s=%s", p->name, v);
            struct qn_result ra, rb;
            run((enum qn_route)r, a, 0, &ra);
            run((enum qn_route)r, b, 0, &rb);
            tap_ok(ra.status == QN_OK && rb.status == QN_OK &&
                       strcmp(ra.canonical, rb.canonical) == 0,
                   "%s: repeated %s, escaped name, last wins", sc->name, p->name);
            qn_result_free(&ra);
            qn_result_free(&rb);
        }
    }
}

static void test_routes(void)
{
    tap_ok(qn_route_by_path("/api/v1/beta/batch-processing") == QN_V1_BATCH_JOBS,
           "route: v1 path");
    tap_ok(qn_route_by_path("/api/v2/batches") == QN_V2_BATCHES, "route: v2 path");
    tap_ok(qn_route_by_path("/api/v2/batches/") == -1, "route: trailing slash is another path");
    tap_ok(qn_route_by_path("/api/v2/batches/abc") == -1, "route: a single batch is not a list");
    tap_ok(qn_route_by_path("/api/v2/batch") == -1, "route: a prefix is not a match");
    tap_ok(qn_route_by_path("/API/v2/batches") == -1, "route: paths are case-sensitive");
    tap_ok(qn_route_by_path("") == -1, "route: empty path");
    tap_ok(qn_route_by_path(NULL) == -1, "route: NULL path");
    tap_is_str(qn_routes[QN_V1_BATCH_JOBS].name, "v1_batch_jobs", "route name: v1");
    tap_is_str(qn_routes[QN_V2_BATCHES].name, "v2_batches", "route name: v2");
}

static void test_api_edges(void)
{
    struct qn_result res;
    tap_ok(qn_normalize(QN_V1_BATCH_JOBS, NULL, 0, &res) == 0 && res.status == QN_OK &&
               strcmp(res.canonical, "") == 0 && res.project_id == NULL && res.body == NULL,
           "NULL query is the empty canonical query");
    qn_result_free(&res);
    qn_result_free(&res);
    tap_ok(res.canonical == NULL, "qn_result_free twice is harmless");
    tap_ok(qn_normalize(QN_NROUTES, "", 0, &res) == -1, "unknown route: -1");
    tap_ok(qn_normalize(QN_V1_BATCH_JOBS, "", 0, NULL) == -1, "NULL result: -1");
}

int main(void)
{
    test_routes();
    test_equivalences(QN_V1_BATCH_JOBS, v1_eq, sizeof v1_eq / sizeof v1_eq[0]);
    test_equivalences(QN_V2_BATCHES, v2_eq, sizeof v2_eq / sizeof v2_eq[0]);
    test_canonicals();
    test_invalid();
    test_int_size();
    test_malformed();
    test_max_params();
    test_schema();
    test_api_edges();
    return tap_done();
}
