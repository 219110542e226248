"""TLS to Redis (rediss://), against TLS-only redis-servers (--port 0) with
certificates made here (tests/lib/tlskit.py):

- two instances on rediss:// share entries (a miss on one is a hit on the
  other) and invalidations (a write through one is a miss on the other's
  list, through the event subscription, over TLS too);
- a CA that did not sign Redis's certificate is refused, the log says
  OpenSSL's reason once, and requests are still answered (fail-open);
- the server name is checked: a certificate for another name is refused,
  redis_tls_server_name makes it match;
- a client certificate when Redis requires one (tls-auth-clients yes);
- Redis killed and started again on the same port: lcgate reconnects over
  TLS by itself;
- the configuration's refusals: a TLS key without rediss://, a CA file that
  cannot be read, a certificate without its key (lcgate -t)."""
import os
import signal
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cache_lib as c  # noqa: E402
import lcgtest as t  # noqa: E402
import tlskit  # noqa: E402
import trust as tr  # noqa: E402

V2 = c.V2
tap = t.Tap()
env = t.Env("lcgate-redis-tls")
ca = tlskit.CA(env.path("pki"))
srv = ca.server("redis")
elsewhere = ca.server("elsewhere", san="DNS:redis.elsewhere.test")
client = ca.client("lcgate")
other = tlskit.CA(env.path("pki2"), name="another CA")


def tls_redis(cert, auth_clients="no", port=None):
    """A redis-server that speaks TLS only, on port (a free one if None)."""
    port = port or t.free_port()
    args = ["redis-server", "--bind", "127.0.0.1", "--port", "0", "--tls-port", str(port),
            "--tls-cert-file", cert.cert, "--tls-key-file", cert.key,
            "--tls-ca-cert-file", ca.cert, "--tls-auth-clients", auth_clients,
            "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", env.dir]
    p = env.spawn(args, "redis-tls-%d" % port)

    def ping():
        ctx = ssl.create_default_context(cafile=ca.cert)
        ctx.check_hostname = False
        ctx.load_cert_chain(client.cert, client.key)
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            with ctx.wrap_socket(s) as ss:
                ss.sendall(b"PING\r\n")
                return ss.recv(64).startswith(b"+PONG")
    t.wait_for(ping, 10, "redis-server PING over TLS")
    p.port = port
    return p


def gate(redis, name, **tls):
    cache = {"store": "redis", "redis_url": "rediss://127.0.0.1:%d/0" % redis.port}
    cache.update(tls)
    return env.lcgate(c.gate_conf(mock, cache=cache), env={"LLAMA_CLOUD_API_KEY": t.KEY_A},
                      name=name, wait=False)


def store_state(g):
    try:
        return t.request(g.admin, "GET", "/readyz", timeout=2).json().get("store_state")
    except Exception:
        return None


def until(pred, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def log_lines(g, text):
    return [line for line in g.log().splitlines() if text in line]


mock = env.mock()
ra = tls_redis(srv)

# -- two instances share entries and invalidations over rediss:// --------
g1 = gate(ra, "lcgate1", redis_tls_ca=ca.cert)
g2 = gate(ra, "lcgate2", redis_tls_ca=ca.cert)
tap.ok(until(lambda: store_state(g1) == "ok" and store_state(g2) == "ok", 15),
       "two instances connect to a TLS-only Redis over rediss:// (store ok)",
       g1.log()[-2000:] + g2.log()[-2000:])
LIST = V2 + "?project_id=%s&page_size=5" % t.PROJ_A
mock.reset()
r1, r2 = c.get(g1.port, LIST), c.get(g2.port, LIST)
tap.ok(c.xc(r1) == "MISS" and c.xc(r2) == "HIT" and r1.body == r2.body and mock.count() == 1,
       "a miss on one instance is a hit on the other", (c.xc(r1), c.xc(r2), mock.count()))
w = c.create_via(g1.port, "v2", t.PROJ_A)
r3 = c.get(g2.port, LIST)
tap.ok(w.status == 200 and c.xc(r3) == "MISS" and w.json()["id"] in c.ids(r3),
       "a write through one invalidates the other's list (it is a miss holding the write)",
       (w.status, c.xc(r3)))

# -- a CA that did not sign Redis's certificate --------------------------
g3 = gate(ra, "lcgate3", redis_tls_ca=other.cert)
# OpenSSL's reason: redis-server sends its CA after its certificate (OpenSSL
# builds the chain from its trust store), else the issuer is just unknown.
WHY = ("certificate verify failed: self-signed certificate in certificate chain",
       "certificate verify failed: unable to get local issuer certificate")
tap.ok(until(lambda: log_lines(g3, WHY[0]) or log_lines(g3, WHY[1]), 10),
       "a wrong CA is refused, and the log says why (%s)"
       % "".join(line for line in log_lines(g3, "certificate verify failed")[:1]),
       g3.log()[-2000:])
t.wait_for(lambda: t.request(g3.admin, "GET", "/healthz", timeout=2).status == 200, 10,
           "lcgate3 /healthz")
time.sleep(2)  # several reconnects (100, 200, 400, 800 ms) meanwhile
rs = [c.get(g3.port, V2 + "?project_id=%s&page_size=%d" % (t.PROJ_A, n)) for n in (2, 2, 3)]
tap.ok(all(r.status == 200 and c.xc(r) == "MISS" for r in rs) and store_state(g3) != "ok",
       "requests are still answered: 200, X-Cache MISS, the store not ok (fail-open)",
       [(getattr(r, "status", r), c.xc(r)) for r in rs])
warns = [line for line in log_lines(g3, "certificate verify failed") if "[warn]" in line]
# Each thread with connections of its own logs its two (commands, events).
per = t.by_thread(warns)
tap.ok(len(per) == t.threads_with_redis() and all(1 <= len(v) <= 2 for v in per.values()),
       "the reason is logged once per connection, not at every retry (%d lines: %s)"
       % (len(warns), {k: len(v) for k, v in per.items()}),
       "\n".join(warns))

# -- the server name --------------------------------------------------------
rb = tls_redis(elsewhere)
g4 = gate(rb, "lcgate4", redis_tls_ca=ca.cert)
tap.ok(until(lambda: log_lines(g4, "certificate verify failed: IP address mismatch"), 10),
       "a certificate for another name is refused (IP address mismatch)", g4.log()[-2000:])
g5 = gate(rb, "lcgate5", redis_tls_ca=ca.cert, redis_tls_server_name="redis.elsewhere.test")
tap.ok(until(lambda: store_state(g5) == "ok", 10),
       "redis_tls_server_name = the certificate's name: connected", g5.log()[-2000:])
g6 = gate(rb, "lcgate6", redis_tls_ca=ca.cert, redis_tls_server_name="redis.other.test")
tap.ok(until(lambda: log_lines(g6, "certificate verify failed: hostname mismatch"), 10),
       "redis_tls_server_name = another name: refused (hostname mismatch)", g6.log()[-2000:])

# -- a client certificate ---------------------------------------------------
rc = tls_redis(srv, auth_clients="yes")
g7 = gate(rc, "lcgate7", redis_tls_ca=ca.cert)
tap.ok(until(lambda: log_lines(g7, "redis: down"), 10) and store_state(g7) != "ok",
       "Redis requires a client certificate: without one, the store is down",
       g7.log()[-2000:])
g8 = gate(rc, "lcgate8", redis_tls_ca=ca.cert, redis_tls_cert=client.cert,
          redis_tls_key=client.key)
tap.ok(until(lambda: store_state(g8) == "ok", 10),
       "with redis_tls_cert and redis_tls_key: connected", g8.log()[-2000:])
r1, r2 = c.get(g8.port, LIST + "&x=1"), c.get(g8.port, LIST + "&x=1")
tap.ok(c.xc(r1) == "MISS" and c.xc(r2) == "HIT", "and cached through it",
       (c.xc(r1), c.xc(r2)))

# -- Redis restarted on the same port -----------------------------------------
env.stop(ra, signal.SIGKILL)
tap.ok(until(lambda: store_state(g1) != "ok", 10), "Redis killed: the store is down")
r = c.get(g1.port, LIST + "&y=1")
tap.ok(r.status == 200, "and requests are answered (%s)" % getattr(r, "status", r))
ra = tls_redis(srv, port=ra.port)
tap.ok(until(lambda: store_state(g1) == "ok" and store_state(g2) == "ok", 15),
       "Redis started again on the same port: both instances reconnect over TLS by "
       "themselves", g1.log()[-2000:])
mock.reset()
r1, r2 = c.get(g1.port, LIST + "&z=1"), c.get(g2.port, LIST + "&z=1")
tap.ok(c.xc(r1) == "MISS" and c.xc(r2) == "HIT" and mock.count() == 1,
       "and share entries again", (c.xc(r1), c.xc(r2), mock.count()))

# -- rediss:// with a sentinel: the sentinel over TCP, the primary over TLS ---------
sport = t.free_port()
with open(env.path("sentinel.conf"), "w") as f:
    f.write("port %d\nbind 127.0.0.1\ndir %s\ntls-replication yes\ntls-cert-file %s\n"
            "tls-key-file %s\ntls-ca-cert-file %s\nsentinel monitor lcg 127.0.0.1 %d 1\n"
            % (sport, env.dir, client.cert, client.key, ca.cert, ra.port))
env.spawn(["redis-server", env.path("sentinel.conf"), "--sentinel"], "sentinel-%d" % sport)
g9 = env.lcgate(c.gate_conf(mock, cache={
    "store": "redis", "redis_url": "rediss://127.0.0.1:%d/0" % t.free_port(),
    "redis_tls_ca": ca.cert, "sentinels": "127.0.0.1:%d" % sport, "sentinel_master": "lcg"}),
    env={"LLAMA_CLOUD_API_KEY": t.KEY_A}, name="lcgate9", wait=False)
tap.ok(until(lambda: store_state(g9) == "ok" and t.request(g9.admin, "GET", "/readyz").json()
             .get("redis_primary") == "127.0.0.1:%d" % ra.port, 15),
       "rediss:// with sentinels: the primary they name, over TLS (its certificate checked "
       "against that host), ROLE master", g9.log()[-2000:])
r1, r2 = c.get(g1.port, LIST + "&s=1"), c.get(g9.port, LIST + "&s=1")
tap.ok(c.xc(r1) == "MISS" and c.xc(r2) == "HIT", "and shares the entries of the others",
       (c.xc(r1), c.xc(r2)))


# -- the configuration's refusals (lcgate -t) ---------------------------------
def check_conf(text):
    path = env.path("check-%d.conf" % time.monotonic_ns())
    with open(path, "w") as f:
        f.write(text)
    rc, out, err = tr.run_lcgate(["-t", "-c", path])
    return rc, err.strip(), path


rc_, err, path = check_conf("[cache]\nstore = redis\nredis_url = redis://127.0.0.1:1/0\n"
                            "redis_tls_ca = %s\n" % ca.cert)
tap.ok(rc_ != 0 and "%s:4: redis_tls_ca needs redis_url = rediss://" % path in err,
       "a TLS key without rediss:// is an error at its line (%s)" % err)
missing = env.path("pki", "nonexistent.pem")
rc_, err, path = check_conf("[cache]\nstore = redis\nredis_url = rediss://127.0.0.1:1/0\n"
                            "redis_tls_ca = %s\n" % missing)
tap.ok(rc_ != 0 and "%s:4: redis_tls_ca %s: No such file or directory" % (path, missing) in err,
       "a CA file that cannot be read is an error naming it, with OpenSSL's reason (%s)" % err)
notpem = env.path("pki", "lcgate.ext")
rc_, err, path = check_conf("[cache]\nstore = redis\nredis_url = rediss://127.0.0.1:1/0\n"
                            "redis_tls_cert = %s\nredis_tls_key = %s\n" % (notpem, client.key))
tap.ok(rc_ != 0 and "%s:4: redis_tls_cert %s: " % (path, notpem) in err,
       "a certificate file that holds none is an error naming it (%s)" % err)
rc_, err, path = check_conf("[cache]\nstore = redis\nredis_url = rediss://127.0.0.1:1/0\n"
                            "redis_tls_cert = %s\nredis_tls_key = %s\n" % (client.cert, srv.key))
tap.ok(rc_ != 0 and "%s:5: redis_tls_key %s: key values mismatch" % (path, srv.key) in err,
       "a key that is not the certificate's is an error (%s)" % err)
rc_, err, path = check_conf("[cache]\nstore = redis\nredis_url = rediss://127.0.0.1:1/0\n"
                            "redis_tls_cert = %s\n" % client.cert)
tap.ok(rc_ != 0 and "%s:4: redis_tls_cert and redis_tls_key go together" % path in err,
       "a client certificate without its key is an error (%s)" % err)
rc_, err, path = check_conf("[cache]\nstore = redis\nredis_url = rediss://127.0.0.1:1/0\n"
                            "redis_tls_ca = %s\nredis_tls_cert = %s\nredis_tls_key = %s\n"
                            % (ca.cert, client.cert, client.key))
tap.ok(rc_ == 0, "a complete TLS configuration is valid (%s)" % err)

tap.done(env)
