"""The key appears in no log line, error body, header, cache key or cached
value, even at log_level = debug and through every error path."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import lcgtest as t  # noqa: E402

V1 = "/api/v1/beta/batch-processing"
V2 = "/api/v2/batches"
tap = t.Tap()
env = t.Env("lcgate-secrets")
mock = env.mock()
redis = env.redis()
keyfile = env.path("api_key")
with open(keyfile, "w") as f:
    f.write(t.KEY_A + "\n")
os.chmod(keyfile, 0o600)
g = env.lcgate({"server": {"log_level": "debug"},
                "upstream": {"base_url": mock.url, "api_key_file": keyfile, "timeout": "1s"},
                "cache": {"store": "redis", "redis_url": "redis://127.0.0.1:%d" % redis.port,
                          "prefetch": "off"}})
secret = t.KEY_A.encode()
answers = []
answers.append(g.get(V1 + "?limit=3"))
answers.append(g.get(V1 + "?limit=3"))
answers.append(g.get(V2 + "?page_size=2&status=bad"))
answers.append(g.get(V1 + "?limit=%zz"))
mock.fault(status=401, count=1)
answers.append(g.get(V1 + "?limit=4"))
mock.fault(delay_ms=1500, count=1)
answers.append(g.get(V1 + "?limit=5"))
mock.fault(reset=True, count=1)
answers.append(g.req("POST", V1, body=b"{}"))
answers.append(g.req("POST", V1, headers={"Content-Type": "application/json"},
                     body=b'{"job_type":"parse","directory_id":"d"}'))
answers.append(g.get("/nope"))
statuses = [r.status for r in answers]
tap.ok({200, 422, 400, 401, 504, 502, 404} <= set(statuses),
       "the requests covered hits, misses and every error path", statuses)
leaks = [r for r in answers if secret in r.body or any(secret in v.encode()
                                                        for v in r.headers.values())]
tap.ok(not leaks, "no answer body or header holds the key", leaks[:2])
tap.ok(mock.stats()["last"][-1]["headers"].get("authorization") == "Bearer " + t.KEY_A,
       "while the upstream did receive it")

g.stop()
log = g.log()
tap.ok(len(log.splitlines()) > 5, "lcgate logged at debug (%d lines)" % len(log.splitlines()))
tap.ok(t.KEY_A not in log and t.KEY_A[:20] not in log, "no log line holds the key")

cli = ["redis-cli", "-p", str(redis.port)]
keys = subprocess.run(cli + ["--scan"], capture_output=True, timeout=10).stdout.split()
tap.ok(len(keys) >= 1, "entries were stored in Redis (%d keys)" % len(keys))
tap.ok(all(secret not in k for k in keys), "no cache key holds the key", keys[:3])
dump = b"".join(subprocess.run(cli + ["--no-raw", "get", k], capture_output=True,
                               timeout=10).stdout for k in keys)
tap.ok(secret not in dump, "no cached value holds the key")
tap.done(env)
