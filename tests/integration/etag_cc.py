"""ETag / If-None-Match and the client's Cache-Control.

Issue 4, done when: "If-None-Match with the ETag gets 304 and an empty
body." Also: stored answers carry a strong ETag derived from the body, 304
on hits and on fresh misses, `If-None-Match: *`; client `no-cache` refetches
(coalesced) and stores, `no-store` neither reads nor writes;
`ignore_client_no_cache = on` makes no-cache a normal request.
"""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cache_lib as c  # noqa: E402
import lcgtest as t  # noqa: E402

V1, V2 = c.V1, c.V2
STRONG = re.compile(r'^"[\x21\x23-\x7e\x80-\xff]*"$')  # RFC 9110 entity-tag, not W/
tap = t.Tap()
env = t.Env("lcgate-etag-cc")
mock = env.mock()
g = c.start_gate(tap, env, c.gate_conf(mock), name="lcgate")
g2 = c.start_gate(tap, env, c.gate_conf(mock), name="lcgate-fresh")
if g is None or g2 is None:
    tap.done(env)

K = V1 + "?limit=5"
# --- ETag --------------------------------------------------------------------
mock.reset()
r1 = c.get(g.port, K)
r2 = c.get(g.port, K)
etag = r1.header("etag")
tap.ok(r1.status == 200 and c.xc(r1) == "MISS" and etag is not None
       and STRONG.match(etag) is not None,
       "a stored miss carries a strong, quoted ETag", r1.headers)
tap.ok(c.xc(r2) == "HIT" and etag is not None and r2.header("etag") == etag,
       "the hit carries the same ETag",
       (r2.header("etag"), etag))
other = c.get(g.port, V2 + "?page_size=5")
tap.ok(other.header("etag") is not None and other.header("etag") != etag,
       "a different body has a different ETag", (other.header("etag"), etag))

before = c.upstream_gets(mock, V1)
for inm, what in ((str(etag), "the ETag"), ("*", "*"),
                  ('"nope", ' + str(etag), "a list holding it")):
    r = c.get(g.port, K, headers={"If-None-Match": inm})
    tap.ok(r.status == 304 and r.body == b"",
           "hit, If-None-Match: %s -> 304 with an empty body" % what, r)
    tap.ok(r.status == 304 and etag is not None and r.header("etag") == etag,
           "hit, If-None-Match: %s -> the 304 names the ETag" % what, (r.header("etag"), etag))
tap.eq(c.upstream_gets(mock, V1), before, "the 304s cost no upstream request")
r = c.get(g.port, K, headers={"If-None-Match": '"0123456789abcdef"'})
tap.ok(r.status == 200 and r.body == r1.body and etag is not None and r.header("etag") == etag,
       "hit, If-None-Match with another ETag -> 200 with the body", r)

# A fresh miss (another instance, empty cache, same upstream data): the new
# body's ETag matches, so the answer is a 304 too, and it is stored.
before = c.upstream_gets(mock, V1)
r = c.get(g2.port, K, headers={"If-None-Match": str(etag)})
tap.ok(r.status == 304 and r.body == b"" and c.upstream_gets(mock, V1) == before + 1,
       "fresh miss whose new body has that ETag: 304 with an empty body", r)
r = c.get(g2.port, K)
tap.ok(r.status == 200 and c.xc(r) == "HIT" and r.body == r1.body and etag is not None
       and r.header("etag") == etag,
       "and it was stored: the next request is a HIT, same body and ETag", r)
r = c.get(g2.port, V1 + "?limit=6", headers={"If-None-Match": str(etag)})
tap.ok(r.status == 200 and c.xc(r) == "MISS" and c.ids(r),
       "fresh miss, If-None-Match with another body's ETag -> 200 with the body", r)
r = c.get(g2.port, V1 + "?limit=8", headers={"If-None-Match": "*"})
tap.ok(r.status == 304 and r.body == b"", "fresh miss, If-None-Match: * -> 304", r)

# --- Cache-Control: no-cache --------------------------------------------------
new_id = c.create_direct(mock, "v1")  # the upstream's answer changes
mock.reset()
r = c.get(g.port, K, headers={"Cache-Control": "no-cache"})
tap.ok(r.status == 200 and new_id in c.ids(r) and c.upstream_gets(mock, V1) == 1,
       "no-cache on a cached key refetches (the new item is there)",
       (r.status, c.upstream_gets(mock, V1)))
tap.eq(c.cs(r), c.CS_NO_CACHE, "no-cache: Cache-Status says fwd=request; stored")
h = c.get(g.port, K)
tap.ok(c.xc(h) == "HIT" and h.body == r.body and c.upstream_gets(mock, V1) == 1,
       "no-cache stores: the next plain request is a HIT with the refetched body", h)

K3 = V1 + "?limit=7"
c.get(g.port, K3)
mock.reset()
mock.fault(delay_ms=1000, match="limit=7", count=-1)
res, _ = c.concurrent([(g.port, K3, {"Cache-Control": "no-cache"})] * 10, timeout=10)
n_up = c.upstream_gets(mock, V1)
c.clear_fault(mock)
tap.ok(n_up == 1 and all(r.status == 200 for r in res) and len(set(r.body for r in res)) == 1,
       "10 concurrent no-cache requests for one key: 1 upstream request, one body",
       "upstream requests %d\n%s" % (n_up, c.summary(res)))

# --- Cache-Control: no-store --------------------------------------------------
old = c.get(g.port, K)
new_id2 = c.create_direct(mock, "v1")
mock.reset()
r = c.get(g.port, K, headers={"Cache-Control": "no-store"})
tap.ok(r.status == 200 and c.xc(r) == "BYPASS" and new_id2 in c.ids(r)
       and c.upstream_gets(mock, V1) == 1,
       "no-store on a cached key does not read the cache: BYPASS, from the upstream", r)
h = c.get(g.port, K)
tap.ok(c.xc(h) == "HIT" and h.body == old.body and new_id2 not in c.ids(h),
       "no-store does not write: the entry is still the old one", h)
K4 = V1 + "?limit=9"
r = c.get(g.port, K4, headers={"Cache-Control": "no-store"})
h = c.get(g.port, K4)
tap.ok(c.xc(r) == "BYPASS" and c.xc(h) == "MISS",
       "no-store on a new key stores nothing: the next request is a MISS", (c.xc(r), c.xc(h)))

# --- ignore_client_no_cache = on ---------------------------------------------
g3 = c.start_gate(tap, env, c.gate_conf(mock, cache={"ignore_client_no_cache": "on"}),
                  name="lcgate-ignore")
if g3:
    c.get(g3.port, K)
    mock.reset()
    r = c.get(g3.port, K, headers={"Cache-Control": "no-cache"})
    tap.ok(c.xc(r) == "HIT" and (c.cs(r) or "").startswith("lcgate; hit; ttl=")
           and c.upstream_gets(mock, V1) == 0,
           "ignore_client_no_cache = on: no-cache is a normal HIT", r)
    r = c.get(g3.port, K, headers={"Cache-Control": "no-store"})
    tap.ok(c.xc(r) == "BYPASS" and c.upstream_gets(mock, V1) == 1,
           "ignore_client_no_cache = on: no-store still bypasses", r)
tap.done(env)
