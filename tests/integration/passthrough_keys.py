"""No key configured: each client's credential is forwarded and is part of
the cache key, so no client ever reads another's answer."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import lcgtest as t  # noqa: E402

V1 = "/api/v1/beta/batch-processing"
V2 = "/api/v2/batches"
tap = t.Tap()
env = t.Env("lcgate-pass")
mock = env.mock()
for store in ("memory", "redis"):
    conf = {"upstream": {"base_url": mock.url}, "cache": {"store": store, "prefetch": "off"}}
    if store == "redis":
        conf["cache"]["redis_url"] = "redis://127.0.0.1:%d" % env.redis().port
    g = env.lcgate(conf, name="lcgate-" + store)
    for path in (V1 + "?limit=3", V2 + "?page_size=3"):
        mock.reset()
        a = b"Bearer " + t.KEY_A.encode()
        want_a = mock.get(path, key=t.KEY_A).body
        want_b = mock.get(path, key=t.KEY_B).body
        tap.ok(want_a != want_b, "%s %s: the two keys' answers differ upstream" % (store, path))
        seen = []
        for i in range(6):
            key = t.KEY_A if i % 2 == 0 else t.KEY_B
            r = g.get(path, headers={"Authorization": "Bearer " + key})
            seen.append((key, r.status, r.body, r.header("x-cache")))
        ok = all(s == 200 and body == (want_a if k == t.KEY_A else want_b)
                 for k, s, body, _ in seen)
        tap.ok(ok, "%s %s: each key always gets its own answer" % (store, path),
               [(k[-4:], s, x) for k, s, _, x in seen])
        tap.ok([x for _, _, _, x in seen] == ["MISS", "MISS", "HIT", "HIT", "HIT", "HIT"],
               "%s %s: each key has its own entry" % (store, path),
               [x for _, _, _, x in seen])
        last = mock.stats()["last"][-1]["headers"]
        tap.ok(last.get("authorization") == "Bearer " + t.KEY_B,
               "%s: the client's Authorization is forwarded unchanged" % store, last)
        del a
    r = g.get(V1 + "?limit=4")
    r2 = g.get(V1 + "?limit=4", headers={"Authorization": "Bearer " + t.KEY_A})
    tap.ok(r.status == 401 and r2.status == 200 and r2.header("x-cache") == "MISS",
           "%s: without a credential the upstream's 401 passes and is not cached" % store,
           (r, r2.headers))
tap.done(env)
