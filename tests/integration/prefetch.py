"""Next-page prefetch, driven by the official TypeScript SDK (2.13.0) and by
the same paging loop in Python.

Issue 4, done when: "The official TypeScript SDK (2.13.0) paging through 10
pages of a v1 list and 10 pages of a v2 list through lcgate with
`prefetch = on`: the upstream sees exactly 10 requests per list (no extra,
no duplicate), and at least 9 of the 10 page answers are hits or collapsed
on a prefetch."

The mock holds 137 jobs and 57 batches per project: v1 with limit=14 and v2
with page_size=6 are exactly 10 pages each. The SDK pages without pausing;
the Python loop asks the SDK's exact queries and, with prefetch on, first
lets the prefetch of the next page reach the upstream (polling the mock).
With prefetch = off, both give 10 MISSes.
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cache_lib as c  # noqa: E402
import lcgtest as t  # noqa: E402

LISTS = (("v1", 14, c.V1), ("v2", 6, c.V2))
SETTLE = 1.0  # after the last page: time for any extra prefetch to show up

tap = t.Tap()
env = t.Env("lcgate-prefetch")
sdk = c.sdk_dir(tap)
if sdk is None:
    tap.done(env)
mock = env.mock(extra=["--jobs", "137", "--batches", "57"])
gates = {}
for name, pf in (("on-sdk", "on"), ("on-py", "on"), ("off-sdk", "off"), ("off-py", "off")):
    gates[name] = c.start_gate(tap, env, c.gate_conf(mock, cache={"prefetch": pf}),
                               name="lcgate-" + name)


def hit_or_collapsed(xcache, cstatus):
    return xcache == "HIT" or "collapsed" in (cstatus or "").split("; ")


def upstream_report(path):
    time.sleep(SETTLE)
    return c.upstream_gets(mock, path), c.upstream_queries(mock, path)


def by_sdk(gate, route, size, path, ref):
    mock.reset()
    try:
        got = c.sdk_pages(sdk, "http://127.0.0.1:%d" % gate.port, "no-key-of-its-own",
                          route, size)
    except Exception as e:
        tap.ok(False, "SDK %s pages through lcgate" % route, e)
        return None
    n, qs = upstream_report(path)
    pages = [(p["x_cache"], p["cache_status"]) for p in got["pages"]]
    tap.ok(got["ids"] == ref["ids"] and len(got["pages"]) == 10,
           "SDK %s: 10 pages through lcgate, exactly the upstream's items" % route,
           (len(got["pages"]), len(got["ids"]), len(ref["ids"])))
    return n, qs, pages


def by_python(gate, route, path, queries, wait):
    """The SDK's exact queries, one after the other; before asking page i,
    wait (up to `wait` s) for the upstream to have seen i requests + 1."""
    mock.reset()
    pages, ids = [], []
    for i, q in enumerate(queries):
        if i > 0:
            c.wait_upstream(mock, path, i + 1, wait)
        r = c.get(gate.port, path + "?" + q, timeout=10)
        pages.append((c.xc(r), c.cs(r)))
        ids += c.ids(r)
        if r.status != 200:
            tap.diag("%s page %d: %r" % (route, i + 1, r))
    n, qs = upstream_report(path)
    return n, qs, pages, ids


def check_on(label, route, n, qs, pages):
    tap.ok(n == 10 and len(qs) == 10 and len(set(qs)) == 10,
           "%s %s, prefetch on: the upstream saw exactly 10 requests, no duplicate, no extra"
           % (label, route), "upstream requests %d, queries:\n%s" % (n, "\n".join(qs)))
    good = sum(1 for x, s in pages if hit_or_collapsed(x, s))
    tap.ok(good >= 9, "%s %s, prefetch on: %d of 10 page answers were HIT or collapsed (>= 9)"
           % (label, route, good), "\n".join("page %d: %s | %s" % (i + 1, x, s)
                                            for i, (x, s) in enumerate(pages)))


def check_off(label, route, n, pages):
    tap.ok(n == 10 and len(pages) == 10 and all(x == "MISS" for x, _ in pages),
           "%s %s, prefetch off: 10 MISSes, 10 upstream requests" % (label, route),
           "upstream requests %d\n%s" % (n, "\n".join("page %d: %s | %s" % (i + 1, x, s)
                                                      for i, (x, s) in enumerate(pages))))


for route, size, path in LISTS:
    # The reference: the SDK against the upstream itself; its exact queries.
    mock.reset()
    try:
        ref = c.sdk_pages(sdk, mock.url, t.KEY_A, route, size)
    except Exception as e:
        tap.ok(False, "SDK %s pages through the mock upstream" % route, e)
        continue
    queries = c.upstream_queries(mock, path)
    if not tap.ok(len(ref["pages"]) == 10 and len(queries) == 10,
                  "SDK %s, size %d: the list is exactly 10 pages upstream" % (route, size),
                  (len(ref["pages"]), queries)):
        continue
    tap.diag("SDK %s queries: %s" % (route, " ".join(queries)))

    g = gates["on-sdk"]
    if g:
        out = by_sdk(g, route, size, path, ref)
        if out:
            check_on("SDK", route, *out)
    g = gates["on-py"]
    if g:
        n, qs, pages, ids = by_python(g, route, path, queries, wait=1.0)
        tap.ok(ids == ref["ids"], "Python %s: the pages hold exactly the upstream's items" % route,
               (len(ids), len(ref["ids"])))
        check_on("Python", route, n, qs, pages)
    g = gates["off-sdk"]
    if g:
        out = by_sdk(g, route, size, path, ref)
        if out:
            check_off("SDK", route, out[0], out[2])
    g = gates["off-py"]
    if g:
        n, qs, pages, ids = by_python(g, route, path, queries, wait=0.3)
        check_off("Python", route, n, pages)
tap.done(env)
