"""Invalid list queries get the upstream's own 422 body from lcgate, and
the upstream is never asked."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import lcgtest as t  # noqa: E402

V1 = "/api/v1/beta/batch-processing"
V2 = "/api/v2/batches"
tap = t.Tap()
env = t.Env("lcgate-422")
mock = env.mock()
g = env.lcgate({"upstream": {"base_url": mock.url}}, env={"LLAMA_CLOUD_API_KEY": t.KEY_A})

cases = [
    (V1, "limit=ten", "int_parsing"),
    (V1, "limit=", "int_parsing"),
    (V1, "limit=10.5", "int_parsing"),
    (V1, "limit=1e1", "int_parsing"),
    (V1, "limit=0", "greater_than_equal"),
    (V1, "limit=1001", "less_than_equal"),
    (V1, "offset=-1", "greater_than_equal"),
    (V1, "offset=", "int_parsing"),
    (V1, "status=PENDING", "enum"),
    (V1, "status=", "enum"),
    (V1, "job_type=split", "enum"),
    (V1, "project_id=not-a-uuid", "uuid_parsing"),
    (V1, "project_id=", "uuid_parsing"),
    (V1, "organization_id=1234", "uuid_parsing"),
    (V1, "limit=0&status=x&project_id=y", "greater_than_equal"),
    (V2, "page_size=abc", "int_parsing"),
    (V2, "page_size=", "int_parsing"),
    (V2, "status=running", "enum"),
    (V2, "status=", "enum"),
    (V2, "created_at_on_or_after=yesterday", "datetime_from_date_parsing"),
    (V2, "created_at_on_or_before=2025-13-01", "datetime_from_date_parsing"),
    (V2, "created_at_on_or_after=", "datetime_from_date_parsing"),
]
mock.reset()
for path, q, typ in cases:
    r = g.get(path + "?" + q)
    try:
        detail = r.json()["detail"]
        shape = (isinstance(detail, list) and all(
            set(d) >= {"type", "loc", "msg", "input"} and d["loc"][0] == "query"
            for d in detail))
    except Exception:
        detail, shape = None, False
    tap.ok(r.status == 422 and shape and detail[0]["type"] == typ,
           "%s?%s is 422 %s" % (path, q, typ), r)
tap.eq(mock.count(), 0, "the upstream counted 0 requests for %d invalid queries" % len(cases))

# The body is the upstream's own, byte for byte.
same = 0
diffs = []
for path, q, typ in cases:
    ours = g.get(path + "?" + q)
    theirs = mock.get(path + "?" + q)
    if ours.body == theirs.body and theirs.status == 422:
        same += 1
    else:
        diffs.append((q, ours.body, theirs.body))
tap.ok(same == len(cases), "every 422 body equals the upstream's (%d/%d)" % (same, len(cases)),
       "\n".join("%s\n ours:   %s\n theirs: %s" % d for d in diffs[:5]))

r = g.get(V1 + "?limit=%zz")
tap.ok(r.status == 400 and isinstance(r.json()["detail"], str),
       "bad percent-encoding is 400 JSON", r)
r = g.get(V1 + "?directory_id=%ff%fe")
tap.ok(r.status == 400, "non-UTF-8 in a list query is 400", r)
r = g.get(V1 + "?" + "&".join("x%d=1" % i for i in range(300)))
tap.ok(r.status == 400, "too many parameters is 400", r)
tap.done(env)
