"""Operations: /metrics (Prometheus text that promtool accepts, exact
counts, bounded project labels), the JSON access log, /readyz, SIGHUP
reload (valid and invalid) and SIGTERM drain."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import lcgtest as t  # noqa: E402

V1 = "/api/v1/beta/batch-processing"
tap = t.Tap()
env = t.Env("lcgate-ops")
mock = env.mock()


def metrics(g):
    r = t.request(g.admin, "GET", "/metrics")
    return r, r.body.decode()


def promtool_ok(body):
    p = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                       timeout=30)
    return p.returncode == 0


sample = t.metric_sample


# --- metrics and the access log ---
g = env.lcgate({"upstream": {"base_url": mock.url},
                "cache": {"prefetch": "off"},
                "ratelimit": {"rate": "100000/s", "burst": "100000"}},
               env={"LLAMA_CLOUD_API_KEY": t.KEY_A}, name="lcgate-metrics")
g.get(V1 + "?limit=3")
g.get(V1 + "?limit=3")
g.get(V1 + "?limit=3")
g.get(V1 + "?limit=ten")
g.get("/nowhere")
# Five concurrent misses for one key: one fetch, four coalesced waits.
mock.fault(delay_ms=500, count=1, match="limit=7")
ths = [threading.Thread(target=g.get, args=(V1 + "?limit=7",)) for _ in range(5)]
for th in ths:
    th.start()
for th in ths:
    th.join(10)
r, text = metrics(g)
tap.ok(r.status == 200 and r.header("content-type", "").startswith("text/plain; version=0.0.4"),
       "/metrics answers Prometheus text", r.headers)
tap.eq(sample(text, "lcgate_requests_total", route="v1_batch_jobs", status="200", cache="HIT"),
       2.0, "two hits counted by route, status and cache result")
tap.eq(sample(text, "lcgate_requests_total", route="v1_batch_jobs", status="200", cache="MISS"),
       6.0, "six misses counted (one, then a fetch and its four waiters)")
tap.eq(sample(text, "lcgate_requests_total", route="v1_batch_jobs", status="422", cache="none"),
       1.0, "the 422 counted")
tap.eq(sample(text, "lcgate_requests_total", route="none", status="404", cache="none"), 1.0,
       "the 404 counted")
tap.eq(sample(text, "lcgate_coalesced_waits_total"), 4.0, "four coalesced waits counted")
tap.eq(sample(text, "lcgate_upstream_requests_total", status="200"), 2.0,
       "two upstream requests counted by status")
tap.eq(sample(text, "lcgate_upstream_request_duration_seconds_count"), 2.0,
       "the upstream latency histogram saw them")
tap.ok(sample(text, "lcgate_build_info", version=t.run_version()) == 1.0
       if hasattr(t, "run_version") else "lcgate_build_info{" in text, "build info is exposed")
tap.ok(t.KEY_A not in text, "no key in the metrics")
promtool = subprocess.run(["promtool", "check", "metrics"], input=r.body, capture_output=True,
                          timeout=30)
tap.ok(promtool.returncode == 0, "promtool check metrics accepts the output",
       promtool.stdout.decode() + promtool.stderr.decode())
new = ["lcgate_request_duration_seconds histogram", "lcgate_config_reloads_total counter",
       "lcgate_config_last_reload_success_timestamp_seconds gauge",
       "process_cpu_seconds_total counter", "process_resident_memory_bytes gauge",
       "process_open_fds gauge", "process_max_fds gauge", "process_start_time_seconds gauge"]
tap.ok(all("# TYPE " + n in text for n in new),
       "that output holds the request histogram, the reload and the process_* families",
       [n for n in new if "# TYPE " + n not in text])

g.stop()
lines = [ln for ln in g.log().splitlines() if ln.startswith("{")]
try:
    recs = [json.loads(ln) for ln in lines]
except ValueError as e:
    recs = []
    tap.diag("not JSON: %s" % e)
tap.eq(len(recs), 10, "one JSON access-log line per request")
if recs:
    first = recs[0]
    tap.eq(list(first), ["time", "request_id", "method", "path", "route", "status", "cache",
                         "project", "upstream_status", "upstream_ms", "duration_ms", "bytes",
                         "client", "client_name", "user_agent", "bytes_received", "protocol",
                         "detail"], "an access-log line has every field, in order")
    tap.ok(first.get("protocol") == "HTTP/1.1" and first.get("bytes_received") == 0 and
           first.get("client_name", 0) is None and first.get("detail", 0) is None,
           "protocol HTTP/1.1, no body received, no [client], no detail", first)
    tap.ok(first["status"] == 200 and first["cache"] == "MISS" and
           first["upstream_status"] == 200 and first["route"] == "v1_batch_jobs",
           "the miss's line names its cache result and upstream status", first)
    tap.ok(all("?" not in rec["path"] for rec in recs), "no query string in the access log")
tap.ok(t.KEY_A not in g.log(), "no key in the logs")

# --- project labels stay bounded under a flood of project ids ---
g = env.lcgate({"upstream": {"base_url": mock.url}, "cache": {"prefetch": "off"},
                "server": {"access_log": "off"},
                "ratelimit": {"rate": "1/h", "burst": "1"}},
               env={"LLAMA_CLOUD_API_KEY": t.KEY_A}, name="lcgate-flood")
conn_port = g.port
for i in range(300):
    pid = "flood-%03d" % i
    t.request(conn_port, "GET", "/api/v2/batches?project_id=%s" % pid)
    t.request(conn_port, "GET", "/api/v2/batches?project_id=%s" % pid)
r, text = metrics(g)
series = [ln for ln in text.splitlines() if ln.startswith("lcgate_rate_limited_total{")]
other = sample(text, "lcgate_rate_limited_total", project="other", budget="client")
tap.ok(len(series) <= 201 and other is not None and other >= 100,
       "300 rate-limited projects make at most 201 series, the rest counted as other "
       "(%d series, other=%s)" % (len(series), other))

# --- readyz ---
r = t.request(g.admin, "GET", "/readyz")
tap.ok(r.status == 200 and r.json().get("status") == "ready", "/readyz is 200 ready", r)
g.stop()

# --- stale answers, Redis errors and /readyz degraded ---
redis = env.redis()
g = env.lcgate({"upstream": {"base_url": mock.url},
                "cache": {"prefetch": "off", "ttl": "1s", "stale_while_revalidate": "30s",
                          "store": "redis", "redis_timeout": "100ms",
                          "redis_url": "redis://127.0.0.1:%d" % redis.port}},
               env={"LLAMA_CLOUD_API_KEY": t.KEY_A}, name="lcgate-redis-ops")
g.get(V1 + "?limit=8")
time.sleep(1.2)
r = g.get(V1 + "?limit=8")
tap.eq(r.header("x-cache"), "STALE", "past ttl the answer is stale")
r, text = metrics(g)
tap.eq(sample(text, "lcgate_stale_answers_total", reason="stale-while-revalidate"), 1.0,
       "the stale answer is counted by reason")
tap.eq(sample(text, "lcgate_store_up"), 1.0, "the store is up")
env.stop(redis, sig=signal.SIGKILL)
answers = [g.get(V1 + "?limit=%d" % (20 + i)) for i in range(3)]
tap.ok(all(a.status == 200 for a in answers), "with Redis dead, lists are answered from upstream",
       [a.status for a in answers])
r, text = metrics(g)
tap.ok((sample(text, "lcgate_store_errors_total") or 0) >= 1 and
       sample(text, "lcgate_store_up") == 0.0,
       "Redis errors are counted and the store reported down",
       [ln for ln in text.splitlines() if "store" in ln])
r = t.request(g.admin, "GET", "/readyz")
tap.ok(r.json().get("upstream_last_status") == 200 and r.json().get("store") == "redis",
       "/readyz names the store and the upstream's last answer", r)
tap.ok(r.status == 200 and r.json().get("status") == "degraded",
       "/readyz says degraded (still 200: lcgate serves without Redis)", r)
tap.ok(promtool_ok(r and metrics(g)[0].body), "promtool accepts the metrics with Redis down")
g.stop()

# --- SIGHUP reload ---
g = env.lcgate({"upstream": {"base_url": mock.url}, "cache": {"prefetch": "off"},
                "ratelimit": {"rate": "1/h", "burst": "1"}},
               env={"LLAMA_CLOUD_API_KEY": t.KEY_A}, name="lcgate-reload")
r1, r2 = g.get(V1 + "?limit=4"), g.get(V1 + "?limit=4")
tap.ok(r1.status == 200 and r2.status == 429, "before reload: rate 1/h allows 1", (r1, r2))
conf = open(g.conf_path).read()
with open(g.conf_path, "w") as f:
    f.write(conf.replace("rate = 1/h", "rate = 100000/s").replace("burst = 1\n", "burst = 1000\n"))
mock.fault(delay_ms=800, count=1, match="inflight")
slow = {}
# Its own project, so its own (still unspent) budget.
th = threading.Thread(target=lambda: slow.setdefault(
    "r", g.get("/api/v2/batches?project_id=inflight")))
th.start()
time.sleep(0.2)
os.kill(g.proc.pid, signal.SIGHUP)
t.wait_for(lambda: "configuration reloaded" in g.log(), 5, "reload logged")
th.join(10)
time.sleep(0.05)  # the spent state carries over: at most one period of the new rate
r = g.get(V1 + "?limit=4")
tap.ok(r.status == 200, "after a valid reload the new limits apply", r)
tap.ok(slow.get("r") is not None and slow["r"].status == 200,
       "a request in flight during the reload is answered", slow.get("r"))
with open(g.conf_path, "w") as f:
    f.write(conf + "\n[cache]\nbogus = 1\n")
os.kill(g.proc.pid, signal.SIGHUP)
t.wait_for(lambda: "reload rejected" in g.log(), 5, "rejection logged")
line = [ln for ln in g.log().splitlines() if "reload rejected" in ln][-1]
tap.ok(("%s:" % g.conf_path) in line and "bogus" in line,
       "an invalid reload is rejected with FILE:LINE", line)
r = g.get(V1 + "?limit=4")
tap.ok(r.status == 200 and g.proc.poll() is None, "and the running configuration stays", r)

# --- SIGTERM drain: 50 slow requests in flight ---
mock.reset()  # the count below is then the drain's alone (it was past 50 already)
mock.fault(delay_ms=1500, count=50, match="drain-")
slow = []
lock = threading.Lock()


def one(i):
    r = g.get("/api/v2/batches?project_id=drain-%d" % i, timeout=15)
    with lock:
        slow.append(r.status)


ths = [threading.Thread(target=one, args=(i,)) for i in range(50)]
for th in ths:
    th.start()
t.wait_for(lambda: mock.count() >= 50 or
           sum(1 for e in mock.stats()["last"] if "drain-" in e["query"]) >= 50,
           10, "the 50 requests to reach the upstream")
t0 = time.monotonic()
os.kill(g.proc.pid, signal.SIGTERM)
time.sleep(0.2)
ready = t.request(g.admin, "GET", "/readyz")
tap.ok(ready.status == 503 and ready.json().get("status") == "draining",
       "/readyz is 503 draining during the drain", ready)
refused = False
try:
    socket.create_connection(("127.0.0.1", g.port), timeout=1).close()
except OSError:
    refused = True
tap.ok(refused, "a new connection is refused once draining")
for th in ths:
    th.join(15)
tap.ok(len(slow) == 50 and set(slow) == {200},
       "all 50 requests in flight finish with 200 (%d answered)" % len(slow), sorted(set(slow)))
rc = g.proc.wait(15)
tap.ok(rc == 0 and time.monotonic() - t0 < 5, "then lcgate exits 0 (%.1f s)" %
       (time.monotonic() - t0))
tap.done(env)
