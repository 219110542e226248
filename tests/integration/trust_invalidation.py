"""Invalidation of what was written (issue 12, "What is wrong today", bullet
5: "A write can invalidate everything").

- A write naming project `*` (or `%2A`, or an empty project_id) must not
  invalidate project A's lists (main: the generation of project `*` is the
  global one). Memory store and Redis store. The gateway's key here is
  KEY_B, whose default project at the mock is B, so none of these writes
  lands in project A at the mock (an empty project_id creates in B).
- Everything lcgate writes to Redis has an expiry (main: generation
  counters have none).
- A generation that Redis lost never revives a list invalidated before it:
  a write, then every `lcg:1:gen:*` key deleted before any read, and the
  next list must be a MISS holding the write's item.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cache_lib as c  # noqa: E402
import lcgtest as t  # noqa: E402
import trust as tr  # noqa: E402

V1, V2 = tr.V1, tr.V2
A, B = tr.A, tr.B
BODY = json.dumps(tr.V2_BODY).encode()

tap = t.Tap()
env = t.Env("lcgate-trust-inval")
mock = env.mock()
LISTS = (V1 + "?project_id=%s&limit=7" % A, V2 + "?project_id=%s&page_size=7" % A)
WRITES = [("*", "project_id=*"), ("%2A", "project_id=%2A"), ("empty", "project_id=")]


def write(g, query):
    return c.get(g.port, V2 + "?" + query, method="POST", body=BODY, headers=dict(tr.JH))


def warm_lists(g):
    return [tr.warm_hit(g.port, p) for p in LISTS]


def odd_writes(sc, g, names):
    """names: control (cached), one per WRITES, control (A's write)."""
    ws = warm_lists(g)
    sc.ok(all(c.xc(r) == "HIT" for r in ws), names[0], [tr.show(r) for r in ws])
    for (label, query), name in zip(WRITES, names[1:]):
        warm_lists(g)
        w = write(g, query)
        rs = [c.get(g.port, p) for p in LISTS]
        sc.ok(w.status == 200 and all(c.xc(r) == "HIT" for r in rs), name,
              "write %s\nlists after it: %s" % (tr.show(w), [c.xc(r) for r in rs]))
    warm_lists(g)
    w = write(g, "project_id=" + A)
    rs = [c.get(g.port, p) for p in LISTS]
    sc.ok(w.status == 200 and all(c.xc(r) == "MISS" for r in rs), names[-1],
          "write %s\nlists after it: %s" % (tr.show(w), [c.xc(r) for r in rs]))


def odd_names():
    return (["control: project A's v1 and v2 lists are cached (HIT)"]
            + ["POST /api/v2/batches?%s (200): project A's lists are still HITs" % q
               for _, q in WRITES]
            + ["control: POST /api/v2/batches?project_id=A: project A's lists are MISSes"])


# --- memory ----------------------------------------------------------------------
names = odd_names()
with tr.Scenario(tap, "invalidation, memory", names) as sc:
    g = sc.gate(env, c.gate_conf(mock), name="lcgate-mem", key=t.KEY_B)
    odd_writes(sc, g, names)

# --- Redis -----------------------------------------------------------------------
names = odd_names() + [
    "control: a project with rate = 1/min, burst = 1 answers 200 then 429",
    "control: lcgate wrote keys to Redis",
    "every key lcgate wrote to Redis has an expiry (PTTL > 0)",
]
with tr.Scenario(tap, "invalidation, Redis", names) as sc:
    redis = env.redis()
    R = tr.project("inval-rated")
    conf = c.gate_conf(mock, cache=c.redis_cache(redis))
    conf['project "%s"' % R] = {"rate": "1/min", "burst": "1"}
    g = sc.gate(env, conf, name="lcgate-redis", key=t.KEY_B)
    odd_writes(sc, g, names[:len(WRITES) + 2])
    # More writers of keys: random projects' writes, a rate-limited project.
    for _ in range(3):
        write(g, "project_id=" + tr.rand_project())
    rs = [c.get(g.port, V1 + "?project_id=%s&limit=5" % R) for _ in range(2)]
    sc.ok([r.status for r in rs] == [200, 429], names[-3], [tr.show(r) for r in rs])
    time.sleep(0.3)
    rc = tr.Redis(redis.port)
    keys = rc.scan()
    pttl = {k: rc.cmd("PTTL", k) for k in keys}
    rc.close()
    sc.ok(len(keys) > 0, names[-2], "keys: %d" % len(keys))
    bad = sorted((k, v) for k, v in pttl.items() if not (isinstance(v, int) and v > 0))
    sc.ok(keys and not bad, names[-1],
          "%d of %d keys without an expiry:\n%s" % (
              len(bad), len(keys), "\n".join("%r PTTL %s" % kv for kv in bad[:20])))


# --- a lost generation -------------------------------------------------------------
def gens(port):
    rc = tr.Redis(port)
    try:
        return {k: rc.cmd("GET", k) for k in rc.scan("lcg:1:gen:*")}
    finally:
        rc.close()


def del_gens(port):
    rc = tr.Redis(port)
    try:
        ks = rc.scan("lcg:1:gen:*")
        for k in ks:
            rc.cmd("DEL", k)
        return len(ks)
    finally:
        rc.close()


def write_and_wait(g, port):
    """A write to project A; returns (answer, new id, whether Redis showed
    the generations change within 2 s)."""
    before = gens(port)
    w = write(g, "project_id=" + A)
    new_id = (c.js(w) or {}).get("id") or "no-id"
    deadline = time.monotonic() + 2
    changed = False
    while time.monotonic() < deadline:
        if gens(port) != before:
            changed = True
            break
        time.sleep(0.02)
    return w, new_id, changed


names = [
    "control: a list of project A: MISS, then HIT",
    "control: a write to project A makes it a MISS with the new item, then a HIT",
    "the generation keys deleted: the list still holds the write's item",
    "a write, then the generation keys deleted before any read: the next list is a MISS "
    "with the write's item",
]
with tr.Scenario(tap, "lost generation (Redis, l1_ttl = 0s)", names) as sc:
    redis = env.redis()
    g = sc.gate(env, c.gate_conf(mock, cache=c.redis_cache(redis, l1_ttl="0s")),
                name="lcgate-lostgen", key=t.KEY_A)
    L = V2 + "?project_id=%s&page_size=9" % A
    r1, r2 = c.get(g.port, L), c.get(g.port, L)
    sc.ok(c.xc(r1) == "MISS" and c.xc(r2) == "HIT", names[0], (tr.show(r1), tr.show(r2)))
    w, id1, changed = write_and_wait(g, redis.port)
    r3, r4 = c.get(g.port, L), c.get(g.port, L)
    sc.ok(w.status == 200 and changed and c.xc(r3) == "MISS" and id1 in c.ids(r3)
          and c.xc(r4) == "HIT", names[1],
          "write %s (generations changed in Redis: %s)\nthen %s, %s; new item in it: %s"
          % (tr.show(w), changed, c.xc(r3), c.xc(r4), id1 in c.ids(r3)))
    n = del_gens(redis.port)
    r5 = c.get(g.port, L)
    sc.ok(r5.status == 200 and id1 in c.ids(r5), names[2],
          "deleted %d generation keys; then %s; the write's item in it: %s"
          % (n, tr.show(r5), id1 in c.ids(r5)))
    tr.warm_hit(g.port, L)
    w, id2, changed = write_and_wait(g, redis.port)
    n = del_gens(redis.port)
    r6 = c.get(g.port, L)
    sc.ok(w.status == 200 and c.xc(r6) == "MISS" and id2 in c.ids(r6), names[3],
          "write %s (generations changed in Redis: %s); deleted %d generation keys\n"
          "then %s; the write's item in it: %s" % (tr.show(w), changed, n, c.xc(r6),
                                                   id2 in c.ids(r6)))

tap.done(env)
