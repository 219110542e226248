#!/usr/bin/env python3
"""A paging loop like an SDK's: GET /api/v2/batches page after page on one
keep-alive connection, following next_page_token until it is null, with
THINK_MS of "work on the page's items" between pages. The list (served by
slow_upstream.py) is named by TAG, so each run has its own keys.

Checks every page (status 200, the expected page number, the list's own
items) and, after a pause long enough for a late prefetch to show up, how
many requests reached the upstream for this list.
Prints one TSV line (and one line per page on stderr: page, start ms,
latency ms, X-Cache, Cache-Status or X-Varnish):
  total_ms  p50_ms  max_ms  upstream_requests  pages_ok  pages_seen  x_cache_hits  joined
total_ms runs from the first request to the last page's answer; x_cache_hits
counts answers with X-Cache: HIT or (varnish) an X-Varnish with two ids; joined
counts lcgate answers that waited for a fetch already under way (Cache-Status
"collapsed": with prefetch, the next page's prefetch).
Usage: paging.py PORT SLOW_UPSTREAM_PORT TAG PAGES THINK_MS PAGE_MS [PAGE_SIZE]"""
import http.client
import json
import sys
import time

port, upport, tag = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
pages, think, page_ms = int(sys.argv[4]), float(sys.argv[5]) / 1000.0, float(sys.argv[6])
size = int(sys.argv[7]) if len(sys.argv) > 7 else 20


def upcount():
    c = http.client.HTTPConnection("127.0.0.1", upport, timeout=10)
    c.request("GET", "/__count?tag=" + tag)
    d = json.loads(c.getresponse().read())
    c.close()
    return d.get("tag", 0)


before = upcount()
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
lat, ok, hits, joined, seen = [], 0, 0, 0, 0
token = None
t0 = time.monotonic()
t_end = t0
while seen < pages + 5:  # a broken chain must not loop forever
    path = "/api/v2/batches?page_size=%d&project_id=%s" % (size, tag)
    if token:
        path += "&page_token=" + token
    s = time.monotonic()
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        b = r.read()
    except Exception:
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        lat.append((time.monotonic() - s) * 1000)
        seen += 1
        break
    t_end = time.monotonic()
    lat.append((t_end - s) * 1000)
    seen += 1
    # per page on stderr: page, start and latency (ms), X-Cache, Cache-Status
    sys.stderr.write("%d\t%.1f\t%.1f\t%s\t%s\n" % (seen, (s - t0) * 1000, lat[-1], r.getheader("X-Cache", "-"),
                                                   r.getheader("Cache-Status", r.getheader("X-Varnish", "-"))))
    if r.getheader("X-Cache", "").upper().startswith("HIT") or \
            len(r.getheader("X-Varnish", "").split()) == 2:
        hits += 1
    if "collapsed" in r.getheader("Cache-Status", ""):
        joined += 1
    try:
        d = json.loads(b) if r.status == 200 else {}
    except ValueError:
        d = {}
    items = d.get("items") or []
    if d.get("page") == seen and len(items) == size and \
            all(i.get("project_id") == tag and i.get("page") == seen for i in items):
        ok += 1
    token = d.get("next_page_token")
    if not token:
        break
    time.sleep(think)
conn.close()
total = (t_end - t0) * 1000
# a prefetch that would go past the last page would show up within a page's delay
time.sleep(2 * page_ms / 1000.0 + 0.3)
after = upcount()
lat.sort()
print("%.0f\t%.0f\t%.0f\t%d\t%d\t%d\t%d\t%d" % (total, lat[len(lat) // 2], lat[-1], after - before,
                                               ok, seen, hits, joined))
