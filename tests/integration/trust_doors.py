"""The doors: Host, Origin and Sec-Fetch-Site on the client and admin
listeners, the admin token, and the -t warning (issue 12, "What is wrong
today", bullet 3: "A web page can spend the key of a loopback sidecar").

A page on a DNS-rebinding name pointed at 127.0.0.1 sends `Host:
attacker.example:8080`; a cross-site form POST sends `Origin:
https://evil.example` with `Content-Type: text/plain`. Every refused request
is checked for its status and for the mock having seen no request (the
admin ones: for the cache not having been purged).

Scenarios:
- loopback, defaults (a configuration main accepts): the refusals, and the
  loopback names that pass;
- allowed_hosts = gw.example, allowed_origins = https://ok.example;
- admin_token_sha256;
- lcgate -t with admin_listen = 0.0.0.0:9 (nothing is bound by -t).
"""
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cache_lib as c  # noqa: E402
import lcgtest as t  # noqa: E402
import trust as tr  # noqa: E402

V1, V2 = tr.V1, tr.V2
ADMIN_TOK = "lcg-admin-tok-6b1d8e3a5c7f49e2a4b6c8d0e2f4a6b8"
EVIL = "https://evil.example"
BODY = json.dumps(tr.V2_BODY).encode()
TEXT = {"Content-Type": "text/plain"}

tap = t.Tap()
env = t.Env("lcgate-trust-doors")
mock = env.mock()
_size = [30]


def fresh_list():
    """A v2 list no earlier request asked for (a MISS if admitted)."""
    _size[0] += 1
    return V2 + "?page_size=%d" % _size[0]


def is_json(r):
    return (r.header("content-type") or "").startswith("application/json") and \
        isinstance(c.js(r), dict)


def refused(sc, g, name, status, method, path, headers, body=None):
    mock.reset()
    r = c.get(g.port, path, method=method, headers=headers, body=body)
    n = mock.count()
    sc.ok(r.status == status and is_json(r) and n == 0, name,
          "answer %s\nthe mock saw %d request(s)" % (tr.show(r), n))


def admitted(sc, g, name, status, method, path, headers, body=None):
    mock.reset()
    r = c.get(g.port, path, method=method, headers=headers, body=body)
    n = mock.count()
    sc.ok(r.status == status and n == 1, name,
          "answer %s\nthe mock saw %d request(s)" % (tr.show(r), n))


def purge_check(sc, g, name, status, headers):
    """POST /admin/purge with headers: want `status`, and (unless 200) a
    list cached before still a HIT after."""
    lst = fresh_list()
    warm = tr.warm_hit(g.port, lst)
    r = c.get(g.admin, "/admin/purge", method="POST", body=b"", headers=headers)
    after = c.get(g.port, lst)
    want_xc = "MISS" if status == 200 else "HIT"
    sc.ok(r.status == status and c.xc(warm) == "HIT" and c.xc(after) == want_xc, name,
          "purge answered %s\nthe list before: %s, after: %s (want %s)"
          % (tr.show(r), c.xc(warm), c.xc(after), want_xc))


# --- loopback listener, defaults -----------------------------------------------
checks = [
    "Host: attacker.example:8080 on a v2 list: 421 JSON, nothing upstream",
    "Host: attacker.example:8080 on a pass-through create: 421 JSON, nothing upstream",
    "Host: localhost.attacker.example:<port> on a v2 list: 421 JSON, nothing upstream",
    "Host: localhost:<port> passes",
    "Host: LocalHost:<port> passes",
    "Host: 127.0.0.1:<port> passes",
    "Host: 127.1.2.3:<port> passes",
    "Host: [::1]:<port> passes",
    "no Host header (HTTP/1.0) passes",
    "Origin: https://evil.example, Content-Type: text/plain, POST /api/v2/batches: 403 JSON, "
    "nothing upstream",
    "Origin: https://evil.example on a v2 list: 403 JSON, nothing upstream",
    "Sec-Fetch-Site: cross-site, POST /api/v2/batches: 403 JSON, nothing upstream",
    "Sec-Fetch-Site: same-site, POST /api/v2/batches: 403 JSON, nothing upstream",
    "control: Sec-Fetch-Site: same-origin, POST /api/v2/batches: 200",
    "admin: POST /admin/purge with Origin: https://evil.example: 403, nothing purged",
    "admin: POST /admin/purge with Host: attacker.example: 421, nothing purged",
    "admin: control: POST /admin/purge (no admin token configured): 200, purged",
]
with tr.Scenario(tap, "doors (loopback, defaults)", checks) as sc:
    g = sc.gate(env, c.gate_conf(mock), name="lcgate-doors")
    p = g.port
    refused(sc, g, checks[0], 421, "GET", fresh_list(), {"Host": "attacker.example:8080"})
    refused(sc, g, checks[1], 421, "POST", V2, dict(tr.JH, Host="attacker.example:8080"), BODY)
    refused(sc, g, checks[2], 421, "GET", fresh_list(),
            {"Host": "localhost.attacker.example:%d" % p})
    for name, host in zip(checks[3:8], ("localhost:%d" % p, "LocalHost:%d" % p,
                                        "127.0.0.1:%d" % p, "127.1.2.3:%d" % p,
                                        "[::1]:%d" % p)):
        admitted(sc, g, name, 200, "GET", fresh_list(), {"Host": host})
    mock.reset()
    st, h, body = tr.raw(p, ("GET %s HTTP/1.0\r\n\r\n" % fresh_list()).encode())
    sc.ok(st == 200 and mock.count() == 1, checks[8],
          "status %d %r; the mock saw %d" % (st, body[:160], mock.count()))
    refused(sc, g, checks[9], 403, "POST", V2, dict(TEXT, Origin=EVIL), BODY)
    refused(sc, g, checks[10], 403, "GET", fresh_list(), {"Origin": EVIL})
    refused(sc, g, checks[11], 403, "POST", V2, dict(tr.JH, **{"Sec-Fetch-Site": "cross-site"}),
            BODY)
    refused(sc, g, checks[12], 403, "POST", V2, dict(tr.JH, **{"Sec-Fetch-Site": "same-site"}),
            BODY)
    admitted(sc, g, checks[13], 200, "POST", V2,
             dict(tr.JH, **{"Sec-Fetch-Site": "same-origin"}), BODY)
    purge_check(sc, g, checks[14], 403, {"Origin": EVIL})
    purge_check(sc, g, checks[15], 421, {"Host": "attacker.example"})
    purge_check(sc, g, checks[16], 200, {})

# --- allowed_hosts, allowed_origins --------------------------------------------
checks = [
    "Host: gw.example passes",
    "Host: GW.EXAMPLE:8080 passes (case and port ignored)",
    "Host: attacker.example:8080 is still 421, nothing upstream",
    "Host: localhost:<port> still passes (loopback names always)",
    "Origin: https://ok.example, POST /api/v2/batches: 200, sent upstream",
    "Origin: https://OK.EXAMPLE (case) passes",
    "Origin: https://ok.example with Sec-Fetch-Site: cross-site passes",
    "Origin: https://evil.example is still 403, nothing upstream",
    "Origin: https://ok.example.evil.example: 403, nothing upstream",
    "admin: POST /admin/purge with Origin: https://ok.example: 200",
    "admin: POST /admin/purge with Host: gw.example: 200",
]
with tr.Scenario(tap, "doors (allowed_hosts = gw.example, allowed_origins = "
                 "https://ok.example)", checks) as sc:
    g = sc.gate(env, c.gate_conf(mock, server={"allowed_hosts": "gw.example",
                                               "allowed_origins": "https://ok.example"}),
                name="lcgate-doors-allowed")
    p = g.port
    admitted(sc, g, checks[0], 200, "GET", fresh_list(), {"Host": "gw.example"})
    admitted(sc, g, checks[1], 200, "GET", fresh_list(), {"Host": "GW.EXAMPLE:8080"})
    refused(sc, g, checks[2], 421, "GET", fresh_list(), {"Host": "attacker.example:8080"})
    admitted(sc, g, checks[3], 200, "GET", fresh_list(), {"Host": "localhost:%d" % p})
    admitted(sc, g, checks[4], 200, "POST", V2, dict(TEXT, Origin="https://ok.example"), BODY)
    admitted(sc, g, checks[5], 200, "POST", V2, dict(TEXT, Origin="https://OK.EXAMPLE"), BODY)
    admitted(sc, g, checks[6], 200, "POST", V2,
             dict(TEXT, Origin="https://ok.example", **{"Sec-Fetch-Site": "cross-site"}), BODY)
    refused(sc, g, checks[7], 403, "POST", V2, dict(TEXT, Origin=EVIL), BODY)
    refused(sc, g, checks[8], 403, "POST", V2,
            dict(TEXT, Origin="https://ok.example.evil.example"), BODY)
    purge_check(sc, g, checks[9], 200, {"Origin": "https://ok.example"})
    purge_check(sc, g, checks[10], 200, {"Host": "gw.example"})

# --- admin token ---------------------------------------------------------------
checks = [
    "POST /admin/purge without a token: 401 JSON with WWW-Authenticate: Bearer, nothing purged",
    "POST /admin/purge with a wrong token: 401, nothing purged",
    "POST /admin/purge with the token: 200, purged",
    "GET /metrics without a token: 200",
    "GET /healthz without a token: 200",
    "GET /readyz without a token: 200",
]
with tr.Scenario(tap, "doors (admin_token_sha256)", checks) as sc:
    g = sc.gate(env, c.gate_conf(mock, server={
        "admin_token_sha256": hashlib.sha256(ADMIN_TOK.encode()).hexdigest()}),
        name="lcgate-doors-token")
    lst = fresh_list()
    warm = tr.warm_hit(g.port, lst)
    r = c.get(g.admin, "/admin/purge", method="POST", body=b"")
    after = c.get(g.port, lst)
    sc.ok(r.status == 401 and is_json(r)
          and (r.header("www-authenticate") or "").lower().startswith("bearer")
          and c.xc(warm) == "HIT" and c.xc(after) == "HIT", checks[0],
          "purge answered %s\nthe list before: %s, after: %s" % (tr.show(r), c.xc(warm),
                                                                 c.xc(after)))
    purge_check(sc, g, checks[1], 401, tr.bearer("lcg-admin-tok-wrong"))
    purge_check(sc, g, checks[2], 200, tr.bearer(ADMIN_TOK))
    for name, path in zip(checks[3:], ("/metrics", "/healthz", "/readyz")):
        r = c.get(g.admin, path)
        sc.ok(r.status == 200, name, tr.show(r))

# --- lcgate -t -------------------------------------------------------------------
checks = [
    "admin_listen = 0.0.0.0:9 without admin_token_sha256: exits 0 and warns (a line naming "
    "admin_listen and admin_token_sha256)",
    "admin_listen = 0.0.0.0:9 with admin_token_sha256: exits 0, no such warning",
    "control: admin_listen = 127.0.0.1:9 without a token: exits 0, no such warning",
]


def warned(out):
    return [ln for ln in out.splitlines() if "admin_listen" in ln and "admin_token_sha256" in ln]


with tr.Scenario(tap, "lcgate -t", checks) as sc:
    base = "[server]\nlisten = 127.0.0.1:9\nadmin_listen = %s\n%s" \
           "[upstream]\nbase_url = http://127.0.0.1:9\n"
    tok = "admin_token_sha256 = %s\n" % hashlib.sha256(ADMIN_TOK.encode()).hexdigest()
    for name, admin, extra, want in ((checks[0], "0.0.0.0:9", "", True),
                                     (checks[1], "0.0.0.0:9", tok, False),
                                     (checks[2], "127.0.0.1:9", "", False)):
        path = env.path("t-%d.conf" % checks.index(name))
        with open(path, "w") as f:
            f.write(base % (admin, extra))
        rc, out, err = tr.run_lcgate(["-t", "-c", path])
        w = warned(out + err)
        sc.ok(rc == 0 and bool(w) == want, name,
              "exit %d\nstdout: %s\nstderr: %s" % (rc, out.strip(), err.strip()))

tap.done(env)
