"""Write invalidation and the admin purge, on two instances sharing Redis
and on one memory instance.

Issue 4, done when:
- "A create in project A through lcgate makes the next list of A a MISS that
  contains the new item, on both instances; a list of project B is still a
  HIT."
- "/admin/purge?project_id=A makes A's lists MISS and leaves B's cached."

The project of a write (and of a list) is its project_id query parameter,
else the key's default project: lists without project_id belong to the same
project as writes without one.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cache_lib as c  # noqa: E402
import lcgtest as t  # noqa: E402

V1, V2 = c.V1, c.V2
tap = t.Tap()
env = t.Env("lcgate-invalidation")
mock = env.mock()
redis = env.redis()
ga = c.start_gate(tap, env, c.gate_conf(mock, cache=c.redis_cache(redis)), name="lcgate-a")
gb = c.start_gate(tap, env, c.gate_conf(mock, cache=c.redis_cache(redis)), name="lcgate-b")
gm = c.start_gate(tap, env, c.gate_conf(mock), name="lcgate-mem")
BASE = {"v1": V1, "v2": V2}
SIZE = {"v1": "limit", "v2": "page_size"}


def lists(route, n):
    """Two lists of the key's default project and one of the other project."""
    b, s = BASE[route], SIZE[route]
    return (b + "?%s=%d" % (s, n), b + "?%s=%d" % (s, n + 1),
            b + "?%s=%d&project_id=%s" % (s, n, t.PROJ_B))


def warm(gates, paths):
    """Fill the cache; returns {(gate port, path): body} of the hits after."""
    for g in gates:
        for p in paths:
            c.get(g.port, p)
    out, bad = {}, []
    for g in gates:
        for p in paths:
            r = c.get(g.port, p)
            out[g.port, p] = r.body
            if r.status != 200 or c.xc(r) != "HIT":
                bad.append((g.port, p, r.status, c.xc(r)))
    tap.ok(not bad, "warm: every list is a HIT on every instance", bad)
    return out


def status_of(r, item_id):
    for it in (c.js(r) or {}).get("items", []):
        if it.get("id") == item_id:
            return it.get("status")
    return None


def writes_shared(route, n):
    """A and B share Redis: a write through either invalidates on both."""
    k1, k2, other = lists(route, n)
    before = warm((ga, gb), (k1, k2, other))

    # A create in the default project, through A.
    w = c.create_via(ga.port, route)
    new_id = (c.js(w) or {}).get("id") or "no-id"
    tap.ok(w.status == 200 and new_id != "no-id",
           "%s: create through instance A answers 200" % route, w)
    r1 = c.get(gb.port, k1)  # on the other instance, at once
    r2 = c.get(ga.port, k2)
    tap.ok(r1.status == 200 and c.xc(r1) == "MISS" and new_id in c.ids(r1),
           "%s: right after it, a list of that project on instance B is a MISS with the "
           "new item" % route, (r1.status, c.xc(r1), new_id, c.ids(r1)[:3]))
    tap.ok(r2.status == 200 and c.xc(r2) == "MISS" and new_id in c.ids(r2),
           "%s: and another list of it on instance A is a MISS with the new item" % route,
           (r2.status, c.xc(r2), new_id, c.ids(r2)[:3]))
    r3 = c.get(ga.port, k1)
    r4 = c.get(gb.port, k2)
    tap.ok(new_id in c.ids(r3) and new_id in c.ids(r4),
           "%s: neither instance serves the old list any more" % route,
           (c.xc(r3), c.xc(r4)))
    ro = [c.get(g.port, other) for g in (ga, gb)]
    tap.ok(all(r.status == 200 and c.xc(r) == "HIT" and r.body == before[g.port, other]
               for g, r in zip((ga, gb), ro)),
           "%s: a list of the other project (project_id=%s) is still a HIT on both"
           % (route, t.PROJ_B), c.summary(ro))

    # A create in the other project (project_id query), through B.
    before = warm((ga, gb), (k1, k2, other))
    w = c.create_via(gb.port, route, project=t.PROJ_B)
    id_b = (c.js(w) or {}).get("id") or "no-id"
    tap.ok(w.status == 200 and id_b != "no-id", "%s: create with project_id=%s through B answers 200"
           % (route, t.PROJ_B), w)
    r = c.get(ga.port, other)
    tap.ok(r.status == 200 and c.xc(r) == "MISS" and id_b in c.ids(r),
           "%s: the write's project is its project_id: that project's list on A is a MISS "
           "with the new item" % route, (r.status, c.xc(r), id_b, c.ids(r)[:3]))
    # lcgate cannot know whether the key's default project is the one the
    # write named, so it refetches the default project's lists too (never
    # a stale list); they are right, and do not show the other project's item.
    rk = [c.get(g.port, p) for g in (ga, gb) for p in (k1, k2)]
    tap.ok(all(r.status == 200 and id_b not in c.ids(r) for r in rk)
           and [r.body for r in rk] == [before[g.port, p] for g in (ga, gb) for p in (k1, k2)],
           "%s: the default project's lists are refetched (the key's default project might "
           "be the one named) and still hold only their own items" % route, c.summary(rk))

    # A write under the list path that is not a create: cancel the new item.
    warm((ga, gb), (k1, k2, other))
    w = c.get(gb.port, BASE[route] + "/" + new_id + "/cancel", method="POST", body=b"")
    tap.ok(w.status == 200, "%s: cancel through B answers 200" % route, w)
    r = c.get(ga.port, k1)
    tap.ok(c.xc(r) == "MISS" and status_of(r, new_id) in ("cancelled", "CANCELLED"),
           "%s: after a cancel (POST .../{id}/cancel) the list on A is a MISS showing it "
           "cancelled" % route, (c.xc(r), status_of(r, new_id)))

    # Neither a failed write nor a read invalidates anything.
    before = warm((ga, gb), (k1, k2, other))
    w = c.get(ga.port, BASE[route], method="POST", body=b'{"job_type": 1}',
              headers={"Content-Type": "application/json"})
    g1 = c.get(ga.port, BASE[route] + "/" + new_id)
    rk = [c.get(g.port, p) for g in (ga, gb) for p in (k1, k2, other)]
    tap.ok(w.status == 422 and g1.status == 200 and all(c.xc(r) == "HIT" for r in rk)
           and [r.body for r in rk] == [before[g.port, p] for g in (ga, gb)
                                        for p in (k1, k2, other)],
           "%s: a rejected write (422) and a GET of one item leave every list a HIT" % route,
           "write %d, get %d\n%s" % (w.status, g1.status, c.summary(rk)))


def writes_memory(route, n):
    k1, k2, other = lists(route, n)
    before = warm((gm,), (k1, k2, other))
    w = c.create_via(gm.port, route)
    new_id = (c.js(w) or {}).get("id") or "no-id"
    r1, r2, ro = c.get(gm.port, k1), c.get(gm.port, k2), c.get(gm.port, other)
    tap.ok(w.status == 200 and all(c.xc(r) == "MISS" and new_id in c.ids(r) for r in (r1, r2)),
           "memory %s: after a create, the project's lists are MISSes with the new item"
           % route, (w.status, c.xc(r1), c.xc(r2)))
    tap.ok(c.xc(ro) == "HIT" and ro.body == before[gm.port, other],
           "memory %s: the other project's list is still a HIT" % route, ro)


def purge_check(gates, n):
    """Lists of both projects by project_id, v1 checked on the first gate,
    v2 on the last (the other instance when two share Redis)."""
    g1, g2 = gates[0], gates[-1]
    pa1 = V1 + "?limit=%d&project_id=%s" % (n, t.PROJ_A)
    pb1 = V1 + "?limit=%d&project_id=%s" % (n, t.PROJ_B)
    pa2 = V2 + "?page_size=%d&project_id=%s" % (n, t.PROJ_A)
    pb2 = V2 + "?page_size=%d&project_id=%s" % (n, t.PROJ_B)
    name = "redis" if len(gates) > 1 else "memory"
    warm(gates, (pa1, pb1, pa2, pb2))
    r = c.admin_post(g1, "/admin/purge?project_id=" + t.PROJ_A)
    tap.ok(r.status == 200 and isinstance(c.js(r), dict)
           and (r.header("content-type") or "").startswith("application/json"),
           "%s: POST /admin/purge?project_id=P on the admin listener answers 200 JSON" % name, r)
    tap.diag("purge answer: %s" % r.body[:300].decode("utf-8", "replace"))
    ra, rb = c.get(g1.port, pa1), c.get(g1.port, pb1)
    tap.ok(c.xc(ra) == "MISS" and c.xc(rb) == "HIT",
           "%s: after it, P's v1 list is a MISS and the other project's stays a HIT" % name,
           (c.xc(ra), c.xc(rb)))
    ra, rb = c.get(g2.port, pa2), c.get(g2.port, pb2)
    tap.ok(c.xc(ra) == "MISS" and c.xc(rb) == "HIT",
           "%s: P's v2 list is a MISS and the other project's stays a HIT%s"
           % (name, " (on the other instance)" if g2 is not g1 else ""), (c.xc(ra), c.xc(rb)))
    warm(gates, (pa1, pb1, pa2, pb2))
    r = c.admin_post(g1, "/admin/purge")
    tap.ok(r.status == 200 and isinstance(c.js(r), dict),
           "%s: POST /admin/purge answers 200 JSON" % name, r)
    rs = [c.get(g1.port, pa1), c.get(g1.port, pb1), c.get(g2.port, pa2), c.get(g2.port, pb2)]
    tap.ok(all(c.xc(r) == "MISS" for r in rs),
           "%s: after it, the lists of every project are MISSes" % name, c.summary(rs))


if ga and gb:
    writes_shared("v1", 11)
    writes_shared("v2", 11)
    purge_check((ga, gb), 13)
if gm:
    writes_memory("v1", 21)
    writes_memory("v2", 21)
    purge_check((gm,), 23)
tap.done(env)
