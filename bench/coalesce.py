#!/usr/bin/env python3
"""N concurrent identical GETs (pre-connected, released together by a
barrier) at a cache in front of slow_upstream.py. Prints one TSV line:
upstream_requests  ok_200  p50_ms  max_ms  min_ms
Usage: coalesce.py PORT SLOW_UPSTREAM_PORT N TAG"""
import http.client
import json
import sys
import threading
import time

port, upport, n, tag = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]


def upcount():
    c = http.client.HTTPConnection("127.0.0.1", upport, timeout=10)
    c.request("GET", "/__count")
    d = json.loads(c.getresponse().read())
    c.close()
    return d["total"]


before = upcount()
bar = threading.Barrier(n)
res = [None] * n
# one URL for all N clients, new for each call (so it is a miss everywhere)
path = "/api/v2/batches?page_size=20&project_id=coalesce-%s" % tag


def w(i):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.connect()
    bar.wait()
    t0 = time.monotonic()
    try:
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        res[i] = (r.status, time.monotonic() - t0)
    except Exception:
        res[i] = ("ERR", time.monotonic() - t0)
    c.close()


ts = [threading.Thread(target=w, args=(i,)) for i in range(n)]
for t in ts:
    t.start()
for t in ts:
    t.join()
time.sleep(0.3)
after = upcount()
lat = sorted(x[1] * 1000 for x in res)
ok = sum(1 for x in res if x[0] == 200)
print("%d\t%d\t%.0f\t%.0f\t%.0f" % (after - before, ok, lat[len(lat) // 2], lat[-1], lat[0]))
