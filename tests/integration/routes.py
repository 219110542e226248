"""Routes and pass-through: key injection, headers, bodies, errors."""
import json
import os
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import lcgtest as t  # noqa: E402

V1 = "/api/v1/beta/batch-processing"
V2 = "/api/v2/batches"
tap = t.Tap()
env = t.Env("lcgate-routes")
mock = env.mock()
g = env.lcgate({"upstream": {"base_url": mock.url, "timeout": "1s"},
                "cache": {"prefetch": "off"},
                "server": {"max_body": "64KiB"}},
               env={"LLAMA_CLOUD_API_KEY": t.KEY_A})


def last():
    return mock.stats()["last"][-1]


for path in ("/", "/v1/batches", "/apix", "/healthz", "/admin/purge"):
    r = g.get(path)
    tap.ok(r.status == 404 and r.json() == {"detail": "Not Found"}
           and r.header("content-type") == "application/json",
           "%s is 404 JSON on the client listener" % path, r)

# Key injection on a cached route: the client's credential is replaced.
mock.reset()
r = g.get(V1 + "?limit=2", headers={"Authorization": "Bearer client-secret"})
h = last()["headers"]
tap.ok(r.status == 200 and h.get("authorization") == "Bearer " + t.KEY_A,
       "list route: upstream sees the configured key, not the client's", h)

# Pass-through: create with a body, method and content type kept.
mock.reset()
body = json.dumps({"directory_id": "dir-x", "job_type": "parse"}).encode()
r = g.req("POST", V1, headers={"Content-Type": "application/json",
                               "Authorization": "Bearer client-secret",
                               "X-Custom": "kept", "Connection": "close, X-Drop",
                               "X-Drop": "dropped"}, body=body)
h = last()
tap.ok(r.status == 200 and r.json().get("directory_id") == "dir-x",
       "POST create passes through and answers the upstream's body", r)
tap.ok(h["method"] == "POST" and h["body_len"] == len(body), "method and body reach upstream", h)
tap.ok(h["headers"].get("authorization") == "Bearer " + t.KEY_A,
       "pass-through injects the key", h["headers"])
tap.ok(h["headers"].get("x-custom") == "kept" and "x-drop" not in h["headers"]
       and h["headers"].get("connection", "").lower() != "close, x-drop",
       "end-to-end headers kept, hop-by-hop ones (and those named by Connection) dropped",
       h["headers"])
tap.ok(h["headers"].get("content-type") == "application/json", "content type kept",
       h["headers"])
job = r.json()["id"]
r = g.get(V1 + "/" + job)
tap.ok(r.status == 200 and r.json()["id"] == job and r.header("x-cache") is None,
       "GET of one job passes through uncached", r)
r = g.req("POST", V1 + "/" + job + "/cancel")
tap.ok(r.status == 200, "cancel passes through", r)
r = g.get("/api/v1/unknown/route")
tap.ok(r.status == 404 and r.json() == {"detail": "Not Found"},
       "an unknown /api route gets the upstream's own 404", r)

# X-Request-Id: propagated when sent, generated when not.
mock.reset()
r = g.get(V2 + "?page_size=2", headers={"X-Request-Id": "req-abc-123"})
tap.ok(r.header("x-request-id") == "req-abc-123"
       and last()["headers"].get("x-request-id") == "req-abc-123",
       "a client's X-Request-Id is propagated both ways", (r.headers, last()["headers"]))
r = g.get(V2 + "?page_size=3")
rid = r.header("x-request-id")
tap.ok(rid and len(rid) >= 16 and last()["headers"].get("x-request-id") == rid,
       "an X-Request-Id is generated and sent upstream", (rid, last()["headers"]))

# Upstream connections are reused across requests.
mock.reset()
for i in range(20):
    g.get(V1 + "?limit=%d" % (100 + i))
    g.get(V1 + "/job-%d" % i)
st = mock.stats()
tap.ok(st["requests"] == 40 and st["connections"] <= 2,
       "40 sequential upstream requests reuse connections (%d used)" % st["connections"], st)

# Bodies over max_body: 413.
r = g.req("POST", V1, headers={"Content-Type": "application/json"}, body=b"x" * 70000)
tap.eq(r.status, 413, "a body over max_body gets 413")

# Status, body and content type of upstream answers pass unchanged.
mock.fault(status=418, count=1)
r = g.get(V1 + "/whatever")
tap.ok(r.status == 418 and r.json() == {"detail": "injected"}
       and r.header("content-type") == "application/json",
       "an upstream status passes through unchanged", r)

# Upstream timeout is 504, unreachable is 502, both JSON.
mock.fault(delay_ms=2500, count=1)
r = g.get(V1 + "?limit=77")
tap.ok(r.status == 504 and "detail" in r.json(), "upstream timeout is 504 JSON", r)
mock.fault(reset=True, count=1)
r = g.get(V1 + "?limit=78")
tap.ok(r.status == 502 and "detail" in r.json(), "upstream connection reset is 502 JSON", r)

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
g2 = env.lcgate({"upstream": {"base_url": "http://127.0.0.1:%d" % dead}},
                env={"LLAMA_CLOUD_API_KEY": t.KEY_A}, name="lcgate-dead")
r = g2.get(V1)
tap.ok(r.status == 502 and r.json()["detail"], "unreachable upstream is 502 JSON", r)
r = g2.req("POST", V1, body=b"{}")
tap.ok(r.status == 502, "unreachable upstream on pass-through is 502", r)

# Dot segments never reach the upstream.
mock.reset()
for p in ("/api/../admin", "/api/v2/%2e%2e/x", "/api/./v2/batches"):
    r = g.get(p)
    tap.ok(r.status in (400, 404) and mock.count() == 0, "%s is refused locally" % p, r)
tap.done(env)
