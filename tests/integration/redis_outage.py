"""redis-server killed during a 20 s load of mixed hits and misses: no
client 5xx, and hits resume once it is back."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import lcgtest as t  # noqa: E402

V1 = "/api/v1/beta/batch-processing"
tap = t.Tap()
env = t.Env("lcgate-outage")
mock = env.mock()
redis = env.redis()
port = redis.port
g = env.lcgate({"upstream": {"base_url": mock.url},
                "cache": {"store": "redis", "redis_url": "redis://127.0.0.1:%d" % port,
                          "redis_timeout": "200ms", "ttl": "60s"}},
               env={"LLAMA_CLOUD_API_KEY": t.KEY_A})

stop = time.monotonic() + 20
results = []
lock = threading.Lock()


def worker(n):
    i = 0
    while time.monotonic() < stop:
        # Mostly a small hot set (hits), with a stream of new queries (misses).
        q = "limit=%d" % (1 + (i % 5)) if i % 4 else "limit=%d&offset=%d" % (n + 1, i)
        t0 = time.monotonic()
        try:
            r = g.get(V1 + "?" + q, timeout=10)
            rec = (r.status, r.header("x-cache"), time.monotonic() - t0)
        except Exception as e:
            rec = (0, repr(e), time.monotonic() - t0)
        with lock:
            results.append(rec)
        i += 1


threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
for th in threads:
    th.start()
time.sleep(5)
env.stop(redis, sig=9)
tap.diag("redis-server killed at 5 s")
time.sleep(7)
# An empty server comes back on the same port.
args = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
        "--appendonly", "no", "--daemonize", "no", "--dir", env.dir]
back = env.spawn(args, "redis-back")
t.wait_for(lambda: t.request(g.admin, "GET", "/readyz").json().get("store_state") == "ok",
           15, "lcgate to reconnect to redis")
tap.diag("redis-server back at %.1f s" % (20 - (stop - time.monotonic())))
for th in threads:
    th.join(30)

errors = [r for r in results if r[0] == 0 or r[0] >= 500]
tap.ok(len(results) > 200, "the load ran (%d requests)" % len(results))
tap.ok(not errors, "zero client 5xx or failures while Redis died (%d)" % len(errors),
       errors[:5])
slow = max(r[2] for r in results)
tap.ok(slow < 3.0, "no request took longer than 3 s (max %.2f s)" % slow)
g.get(V1 + "?limit=42")
r = g.get(V1 + "?limit=42")
tap.eq(r.header("x-cache"), "HIT", "hits resume after Redis restarts")
tap.done(env)
