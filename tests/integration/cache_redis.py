"""The Redis store: the same behaviour as memory, shared between instances."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cache_suite  # noqa: E402
import lcgtest as t  # noqa: E402

tap = t.Tap()
env = t.Env("lcgate-redis")
redis = env.redis()
url = "redis://127.0.0.1:%d/0" % redis.port
mock, g1 = cache_suite.run(tap, env, {"cache": {"store": "redis", "redis_url": url}})

# A second instance on the same Redis: a miss on the first is a hit there.
g2 = env.lcgate({"upstream": {"base_url": mock.url},
                 "cache": {"store": "redis", "redis_url": url, "ttl": "60s", "prefetch": "off"}},
                env={"LLAMA_CLOUD_API_KEY": t.KEY_A}, name="lcgate2")
mock.reset()
r1 = g1.get(cache_suite.V2 + "?status=RUNNING&page_size=4")
r2 = g2.get(cache_suite.V2 + "?page_size=4&status=RUNNING")
tap.ok(r1.header("x-cache") == "MISS" and r2.header("x-cache") == "HIT"
       and r1.body == r2.body and mock.count() == 1,
       "a miss on one instance is a hit on the other", (r1.headers, r2.headers))

keys = subprocess.run(["redis-cli", "-p", str(redis.port), "--scan"], capture_output=True,
                      text=True, timeout=10).stdout.split()
tap.ok(len(keys) > 0 and all(k.startswith("lcg:1:") for k in keys),
       "entries live in Redis under lcg:1:", keys[:5])
entries = [k for k in keys if k.startswith("lcg:1:v")]
ttls = [subprocess.run(["redis-cli", "-p", str(redis.port), "pttl", k], capture_output=True,
                       text=True, timeout=10).stdout.strip() for k in entries]
tap.ok(entries and all(v.isdigit() and 0 < int(v) <= (60 + 600) * 1000 for v in ttls),
       "entries carry their own expiry in Redis (ttl + the longer stale window)",
       list(zip(entries, ttls)))
others = [k for k in keys if not k.startswith("lcg:1:v")]
ttls = [subprocess.run(["redis-cli", "-p", str(redis.port), "pttl", k], capture_output=True,
                       text=True, timeout=10).stdout.strip() for k in others]
tap.ok(all(v.isdigit() and int(v) > 0 for v in ttls),
       "so does everything else lcgate wrote (generations, leases, budgets)",
       list(zip(others, ttls)))
tap.done(env)
