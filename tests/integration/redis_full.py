"""A full Redis under maxmemory-policy noeviction (README, "Redis"):
lcgate's writes fail, and it goes on answering every request from the
upstream as with any other store error, logs the refusal, and caches
again once Redis has room."""
import os
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import lcgtest as t  # noqa: E402

tap = t.Tap()
env = t.Env("lcgate-redis-full")
mock = env.mock()
redis = env.redis(["--maxmemory", "2mb", "--maxmemory-policy", "noeviction"])


def command(sock, *args):
    sock.sendall(("*%d\r\n" % len(args) + "".join("$%d\r\n%s\r\n" % (len(a), a) for a in args))
                 .encode())
    return sock.recv(256)


# Fill it with keys of another program, without expiry, until it refuses.
filler = socket.create_connection(("127.0.0.1", redis.port))
n = 0
while not command(filler, "SET", "other:%d" % n, "x" * 100000).startswith(b"-OOM"):
    n += 1
    assert n < 1000
g = env.lcgate({"upstream": {"base_url": mock.url},
                "cache": {"store": "redis", "redis_url": "redis://127.0.0.1:%d" % redis.port,
                          "prefetch": "off", "l1_ttl": "0s"}},
               env={"LLAMA_CLOUD_API_KEY": t.KEY_A}, name="lcgate-full")
answers = [g.get("/api/v2/batches?limit=2") for _ in range(3)]
tap.ok([a.status for a in answers] == [200] * 3 and
       [a.header("x-cache") for a in answers] == ["MISS"] * 3,
       "Redis full (noeviction): every answer is 200, each a miss",
       [(a.status, a.header("x-cache")) for a in answers])
tap.eq(mock.count(), 3, "each went upstream: nothing could be stored")
tap.ok("OOM command not allowed" in g.log() and g.proc.poll() is None,
       "lcgate logs Redis's refusal and runs on")
for k in range(n):
    command(filler, "DEL", "other:%d" % k)
answers = [g.get("/api/v2/batches?limit=2") for _ in range(2)]
tap.ok([a.header("x-cache") for a in answers] == ["MISS", "HIT"],
       "with room again, answers are cached again",
       [(a.status, a.header("x-cache")) for a in answers])
filler.close()
tap.done(env)
