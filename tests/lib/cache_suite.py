"""Cache behaviour checks shared by the memory and the Redis store."""
import lcgtest as t

V1 = "/api/v1/beta/batch-processing"
V2 = "/api/v2/batches"


def run(tap, env, gate_conf):
    mock = env.mock()
    conf = {"upstream": {"base_url": mock.url}, "cache": {"ttl": "60s", "prefetch": "off"}}
    for sec, kv in gate_conf.items():
        conf.setdefault(sec, {}).update(kv)
    g = env.lcgate(conf, env={"LLAMA_CLOUD_API_KEY": t.KEY_A})
    store = conf["cache"].get("store", "memory")

    mock.reset()
    bodies = set()
    statuses = []
    xcache = []
    for _ in range(100):
        r = g.get(V1 + "?limit=5")
        statuses.append(r.status)
        bodies.add(r.body)
        xcache.append(r.header("x-cache"))
    tap.eq(mock.count(), 1, "%s: 100 sequential identical requests cost 1 upstream request"
           % store)
    tap.ok(set(statuses) == {200} and len(bodies) == 1,
           "%s: all 100 answers are 200 with the same body" % store, (set(statuses), len(bodies)))
    tap.ok(xcache[0] == "MISS" and set(xcache[1:]) == {"HIT"},
           "%s: first is MISS, the rest HIT" % store, xcache[:3])
    direct = mock.get(V1 + "?limit=5")
    tap.ok(direct.body in bodies, "%s: the body is byte-identical to the upstream's" % store)

    # Spellings that the upstream reads the same way share the entry.
    mock.reset()
    same = [V1 + "?limit=05", V1 + "?limit=5.0&offset=0", V1 + "?offset=0&limit=5",
            V1 + "?limit=%35", V1 + "?limit=1_0&limit=5", V1 + "?limit=+5"]
    res = [g.get(p) for p in same]
    tap.ok(all(r.status == 200 and r.header("x-cache") == "HIT" for r in res)
           and mock.count() == 0,
           "%s: equivalent spellings are hits" % store,
           [(p, r.status, r.header("x-cache")) for p, r in zip(same, res)])

    # Headers of a hit.
    r = g.get(V1 + "?limit=5")
    cs = r.header("cache-status", "")
    tap.ok(cs.startswith("lcgate; hit; ttl=") and r.header("age") is not None
           and r.header("content-type") == "application/json",
           "%s: a hit carries Cache-Status, Age and the upstream's Content-Type" % store,
           r.headers)
    r = g.get(V2 + "?page_size=3")
    tap.eq(r.header("cache-status"), "lcgate; fwd=uri-miss; fwd-status=200; stored",
           "%s: a miss says fwd=uri-miss; stored" % store)

    # Defaults are only equal where documented: v2 page_size has none.
    mock.reset()
    g.get(V2)
    g.get(V2 + "?page_size=20")
    tap.eq(mock.count(), 2, "%s: v2 page_size=20 and no page_size are different keys" % store)

    # Error answers are passed on and never stored.
    mock.reset()
    mock.fault(status=503, count=1)
    r1 = g.get(V1 + "?limit=7")
    r2 = g.get(V1 + "?limit=7")
    tap.ok(r1.status == 503 and r2.status == 200 and mock.count() == 2,
           "%s: a 503 passes through and is not stored" % store, (r1, r2))
    mock.reset()
    mock.fault(body='{"items": [', count=1)
    r1 = g.get(V1 + "?limit=8")
    r2 = g.get(V1 + "?limit=8")
    tap.ok(r1.status == 502 and r1.json()["detail"] == "Upstream sent an invalid answer"
           and r2.status == 200 and r2.header("x-cache") == "MISS" and mock.count() == 2,
           "%s: a 200 that is not JSON is an invalid answer (502), not stored" % store,
           (r1, r2))

    # Cache-Control from the client.
    mock.reset()
    r = g.get(V1 + "?limit=5", headers={"Cache-Control": "no-cache"})
    tap.ok(r.status == 200 and mock.count() == 1 and
           r.header("cache-status", "").startswith("lcgate; fwd=request"),
           "%s: no-cache refetches" % store, r.headers)
    r = g.get(V1 + "?limit=9", headers={"Cache-Control": "no-store"})
    r2 = g.get(V1 + "?limit=9")
    tap.ok(r.header("x-cache") == "BYPASS" and r2.header("x-cache") == "MISS",
           "%s: no-store neither reads nor writes" % store, (r.headers, r2.headers))
    return mock, g
