"""Who may spend the key: client tokens, and per-project keys.

Issue 5, done when:
- "Tokens: no token 401, wrong token 401, right token other project 403,
  right token right project 200; the token and the API key appear in no
  log line."
In scope 7 and 8: [project "id"] api_key_file selects the key injected for
that project's requests; with [client] sections, 401 and 403 (JSON) come
before any cache or upstream work and before the budget is spent; a
project_id in a write's JSON body counts; the token is replaced by the
upstream key; lcgate -t refuses [client] sections without an upstream key.

Gate K: no [client]; [upstream] api_key_file = key A, [project B]
api_key_file = key B. Gate C: key A from LLAMA_CLOUD_API_KEY, [project B]
api_key_file = key B, clients alice (A, R, default), bob (*), carol (B);
[project R] rate = 1/min, burst = 3. Both at log_level = debug.
"""
import base64
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cache_lib as c  # noqa: E402
import lcgtest as t  # noqa: E402
import ratelimit_lib as rlib  # noqa: E402

V1, V2 = c.V1, c.V2
A, B = t.PROJ_A, t.PROJ_B
R = rlib.project("cl-budget")
TOK_ALICE = "lcg-tok-alice-7c1e0b5d9a3f48e2b6d4c8a0f2e4b6d8"
TOK_BOB = "lcg-tok-bob-19d0c3e7a5b24f6e8d1c3b5a7f9e0d2c"
TOK_CAROL = "lcg-tok-carol-5e8a2c4f6b0d49a1b3c5d7e9f1a3b5c7"
TOK_WRONG = "lcg-tok-wrong-0f1e2d3c4b5a69788796a5b4c3d2e1f0"

tap = t.Tap()
env = t.Env("lcgate-clients")
mock = env.mock()  # knows KEY_A (default project A) and KEY_B (default project B)
keyfile_a = rlib.key_file(env, "key_a", t.KEY_A + "\n")
keyfile_b = rlib.key_file(env, "key_b", "  " + t.KEY_B + " \n")


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


SEEN = []  # every request the mock got from gate C, kept across resets


def reset():
    SEEN.extend(mock.stats()["last"])
    mock.reset()


def last_entry():
    s = mock.stats()["last"]
    return s[-1] if s else {}


JH = {"Content-Type": "application/json"}
V1_BODY = {"directory_id": "dir-cl", "job_type": "parse"}
V2_BODY = {"source_directory_id": "dir-cl"}

# --- per-project keys, no clients ---------------------------------------------
confk = c.gate_conf(mock, server={"log_level": "debug"}, upstream={"api_key_file": keyfile_a})
confk[rlib.proj_section(B)] = {"api_key_file": keyfile_b}
gk = c.start_gate(tap, env, confk, name="lcgate-keys")
if gk:
    cases = [
        ("GET", V1 + "?project_id=%s&limit=3" % A, None, None, t.KEY_A, "v1 list of project A"),
        ("GET", V1 + "?project_id=%s&limit=3" % B, None, None, t.KEY_B, "v1 list of project B"),
        ("GET", V2 + "?project_id=%s&page_size=3" % B, None, None, t.KEY_B, "v2 list of project B"),
        ("GET", V1 + "?limit=3", None, None, t.KEY_A, "v1 list without project_id"),
        ("GET", V1 + "?project_id=%s&limit=4" % B.upper(), None, None, t.KEY_B,
         "v1 list of project B spelled in UPPERCASE"),
        ("POST", V1 + "?project_id=%s" % B, JH, json.dumps(V1_BODY).encode(), t.KEY_B,
         "pass-through POST for project B"),
        ("GET", V1 + "?project_id=%s&limit=5" % B, bearer("llx-client-own-credential"), None,
         t.KEY_B, "v1 list of project B sent with the client's own Authorization"),
    ]
    for method, path, h, body, want, what in cases:
        if not rlib.running(tap, gk, "keys: " + what):
            break
        mock.reset()
        r = c.get(gk.port, path, method=method, headers=h, body=body, timeout=10)
        e = last_entry()
        tap.ok(r.status == 200 and mock.count() == 1
               and rlib.mock_auth(e) == "Bearer " + want,
               "keys: %s: the mock got Authorization: Bearer <key %s>"
               % (what, "A" if want == t.KEY_A else "B"),
               "%s\nmock saw %d; last: %s %s auth=%r" % (
                   rlib.hdrs(r), mock.count(), e.get("method"), e.get("path"),
                   (rlib.mock_auth(e) or "")[:24]))

# --- client tokens ------------------------------------------------------------
confc = c.gate_conf(mock, server={"log_level": "debug"})
confc[rlib.proj_section(B)] = {"api_key_file": keyfile_b}
confc[rlib.proj_section(R)] = {"rate": "1/min", "burst": "3"}
confc[rlib.client_section("alice")] = {"token_sha256": rlib.sha256hex(TOK_ALICE),
                                      "projects": "%s, %s, default" % (A, R)}
confc[rlib.client_section("bob")] = {"token_sha256": rlib.sha256hex(TOK_BOB), "projects": "*"}
confc[rlib.client_section("carol")] = {"token_sha256": rlib.sha256hex(TOK_CAROL), "projects": B}
gc = c.start_gate(tap, env, confc, name="lcgate-clients", key=t.KEY_A)


def problems_refused(r, status):
    p = []
    if r.status != status:
        p.append("status %d, want %d" % (r.status, status))
    js = c.js(r)
    if not (isinstance(js, dict) and isinstance(js.get("detail"), str) and js["detail"]):
        p.append("body is not JSON {\"detail\": \"...\"}: %r" % r.body[:120])
    if not (r.header("content-type") or "").startswith("application/json"):
        p.append("Content-Type %r" % r.header("content-type"))
    if status == 401 and not (r.header("www-authenticate") or "").lower().startswith("bearer"):
        p.append("WWW-Authenticate %r, want a Bearer challenge" % r.header("www-authenticate"))
    return p


if gc:
    port = gc.port
    mock.reset()
    pa = V1 + "?project_id=%s&limit=3" % A
    basic = "Basic " + base64.b64encode(("alice:" + TOK_ALICE).encode()).decode()
    cases401 = [
        ("no Authorization", {}),
        ("a wrong token", bearer(TOK_WRONG)),
        ("alice's token_sha256 sent as the token", bearer(rlib.sha256hex(TOK_ALICE))),
        ("alice's token as Basic credentials", {"Authorization": basic}),
        ("alice's token without the Bearer scheme", {"Authorization": TOK_ALICE}),
        ("the upstream API key itself", bearer(t.KEY_A)),
    ]
    for what, h in cases401:
        if not rlib.running(tap, gc, "tokens: " + what):
            break
        r = c.get(port, pa, headers=h)
        p = problems_refused(r, 401)
        tap.ok(not p, "tokens: %s: 401 JSON with a Bearer WWW-Authenticate" % what,
               "%s\n%s" % (p, rlib.hdrs(r)))
    cases403 = [
        ("alice, v1 list of project B", "GET", V1 + "?project_id=%s&limit=3" % B, TOK_ALICE, None),
        ("alice, v2 list of project B", "GET", V2 + "?project_id=%s&page_size=3" % B, TOK_ALICE,
         None),
        ("carol (projects = B), no project_id (default is not hers)", "GET", V1 + "?limit=3",
         TOK_CAROL, None),
        ("carol, v1 list of project A", "GET", pa, TOK_CAROL, None),
        ("alice, pass-through GET of project B", "GET", V1 + "/some-job?project_id=" + B,
         TOK_ALICE, None),
        ("alice, v1 POST with \"project_id\": B in the JSON body", "POST", V1, TOK_ALICE,
         dict(V1_BODY, project_id=B)),
        ("alice, v2 POST with \"project_id\": B in the JSON body", "POST", V2, TOK_ALICE,
         dict(V2_BODY, project_id=B)),
    ]
    for what, method, path, tok, body in cases403:
        if not rlib.running(tap, gc, "tokens: " + what):
            break
        h = bearer(tok)
        if body is not None:
            h.update(JH)
        r = c.get(port, path, method=method, headers=h,
                  body=json.dumps(body).encode() if body is not None else None)
        p = problems_refused(r, 403)
        tap.ok(not p, "tokens: %s: 403 JSON" % what, "%s\n%s" % (p, rlib.hdrs(r)))
    tap.eq(mock.count(), 0, "tokens: none of the %d refused requests reached the upstream"
           % (len(cases401) + len(cases403)))

if rlib.running(tap, gc, "tokens: the admitted requests"):
    r = c.get(port, pa, headers=bearer(TOK_ALICE))
    e = last_entry()
    tap.ok(r.status == 200 and c.xc(r) == "MISS" and mock.count() == 1
           and rlib.mock_auth(e) == "Bearer " + t.KEY_A,
           "tokens: alice, project A: 200, and the upstream got the API key in place of "
           "the token", "%s\nauth=%r" % (rlib.hdrs(r), (rlib.mock_auth(e) or "")[:24]))
    r2 = c.get(port, pa)
    tap.ok(r2.status == 401 and mock.count() == 1 and c.xc(r2) != "HIT",
           "tokens: the same (now cached) list without a token is 401, not a hit",
           rlib.hdrs(r2))
    r3 = c.get(port, pa, headers=bearer(TOK_WRONG))
    tap.ok(r3.status == 401 and c.xc(r3) != "HIT", "tokens: and with a wrong token, 401",
           rlib.hdrs(r3))
    r = c.get(port, V1 + "?limit=3", headers=bearer(TOK_ALICE))
    tap.ok(r.status == 200, "tokens: alice without project_id (\"default\" is in her list): 200",
           rlib.hdrs(r))
    reset()
    r = c.get(port, V1, method="POST", headers=dict(bearer(TOK_ALICE), **JH),
              body=json.dumps(dict(V1_BODY, project_id=A)).encode())
    e = last_entry()
    tap.ok(r.status == 200 and e.get("method") == "POST"
           and rlib.mock_auth(e) == "Bearer " + t.KEY_A,
           "tokens: alice, POST with \"project_id\": A in the body: 200, sent upstream with the "
           "key", "%s\n%s %r" % (rlib.hdrs(r), e.get("method"), (rlib.mock_auth(e) or "")[:24]))
    reset()
    r = c.get(port, V1 + "?project_id=%s&limit=3" % B, headers=bearer(TOK_BOB))
    e = last_entry()
    tap.ok(r.status == 200 and rlib.mock_auth(e) == "Bearer " + t.KEY_B,
           "tokens: bob (projects = *), project B: 200, with project B's own key upstream",
           "%s\nauth=%r" % (rlib.hdrs(r), (rlib.mock_auth(e) or "")[:24]))
    r = c.get(port, V1 + "?project_id=%s&limit=3" % rlib.project("cl-any"),
              headers=bearer(TOK_BOB))
    tap.ok(r.status == 200, "tokens: bob, any other project: 200", rlib.hdrs(r))
    r = c.get(port, V1 + "?project_id=%s&limit=4" % B, headers=bearer(TOK_CAROL))
    tap.ok(r.status == 200, "tokens: carol, project B: 200", rlib.hdrs(r))

if rlib.running(tap, gc, "tokens: refusals and the budget"):
    # Refusals spend no budget: R allows 3 requests a minute.
    pr = V1 + "?project_id=%s&limit=3" % R
    seq = [c.get(port, pr) for _ in range(3)]
    seq += [c.get(port, pr, headers=bearer(TOK_CAROL)) for _ in range(3)]
    seq += [c.get(port, pr, headers=bearer(TOK_ALICE)) for _ in range(4)]
    tap.eq([r.status for r in seq], [401] * 3 + [403] * 3 + [200] * 3 + [429],
           "tokens: 3 401s and 3 403s for project R (rate 1/min, burst 3) leave its budget "
           "whole: alice then gets 3 200s, and a 429")
    p = rlib.problems_429(seq[-1], R, q=3, w=180, r_zero=True)
    tap.ok(not p, "tokens: that 429 is the contract's, naming R", "%s\n%s" % (p, rlib.hdrs(seq[-1])))

if gc:
    reset()
    entries = SEEN
    seen = [e for e in entries
            if any(tok in v for v in e.get("headers", {}).values()
                   for tok in (TOK_ALICE, TOK_BOB, TOK_CAROL))]
    tap.ok(len(entries) >= 3 and not seen,
           "tokens: no client token ever reached the upstream, in any header (%d requests)"
           % len(entries), [(e["method"], e["path"]) for e in seen[:3]])

# --- logs ---------------------------------------------------------------------
secrets = [TOK_ALICE, TOK_BOB, TOK_CAROL, TOK_WRONG, t.KEY_A, t.KEY_B,
           base64.b64encode(("alice:" + TOK_ALICE).encode()).decode()]
for g in (gk, gc):
    if g is None:
        continue
    g.stop()
    log = g.log()
    name = os.path.basename(g.proc.logpath)
    tap.ok(len(log.splitlines()) > 5, "%s logged at debug (%d lines)"
           % (name, len(log.splitlines())))
    lk = rlib.leaks(log, secrets)
    tap.ok(not lk, "%s: no log line holds a token (right or wrong) or an API key" % name, lk)


# --- lcgate -t: [client] needs an upstream key ------------------------------------
def run(args, extra_env=None, timeout=20):
    e = {k: v for k, v in os.environ.items()
         if not k.startswith("LCGATE_") or k in ("LCGATE_BIN", "LCGATE_SRCDIR")}
    e.pop("LLAMA_CLOUD_API_KEY", None)
    e.update(extra_env or {})
    p = subprocess.run([t.LCGATE] + args, capture_output=True, text=True, env=e,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def conf_file(name, text):
    path = env.path(name)
    with open(path, "w") as f:
        f.write(text)
    return path


client = '[client "ops"]\ntoken_sha256 = %s\nprojects = *\n' % rlib.sha256hex(TOK_BOB)
base = "[server]\nlisten = 127.0.0.1:%d\nadmin_listen = 127.0.0.1:%d\n" \
       "[upstream]\nbase_url = %s\n" % (t.free_port(), t.free_port(), mock.url)
nokey = conf_file("client-nokey.conf", base + client)
rc, out, err = run(["-t", "-c", nokey])
tap.ok(rc == 1 and err.startswith(nokey + ":") and err[len(nokey) + 1:].split(":")[0].isdigit(),
       "-t: [client] without any upstream key exits 1 with FILE:LINE: ...", (rc, out, err))
rc, out, err = run(["-t", "-c", nokey], {"LLAMA_CLOUD_API_KEY": t.KEY_A})
tap.ok(rc == 0, "-t: the same with LLAMA_CLOUD_API_KEY set passes", (rc, out, err))
withkey = conf_file("client-keyfile.conf",
                    base.replace("[upstream]\n", "[upstream]\napi_key_file = %s\n" % keyfile_a)
                    + client)
rc, out, err = run(["-t", "-c", withkey])
tap.ok(rc == 0, "-t: the same with [upstream] api_key_file passes", (rc, out, err))
badsha = conf_file("client-badsha.conf", base.replace(
    "[upstream]\n", "[upstream]\napi_key_file = %s\n" % keyfile_a)
    + '[client "ops"]\ntoken_sha256 = %s\nprojects = *\n' % TOK_BOB)
rc, out, err = run(["-t", "-c", badsha])
tap.ok(rc == 1 and err.startswith(badsha + ":"),
       "-t: a token_sha256 that is not 64 hex digits exits 1 with FILE:LINE", (rc, out, err))
# Started for real without a key, it refuses to run.
p = env.spawn([t.LCGATE, "-c", nokey], "lcgate-nokey")
try:
    p.wait(5)
except subprocess.TimeoutExpired:
    pass
code = p.poll()
if code is None:
    env.stop(p)
with open(p.logpath, "rb") as f:
    nk_log = f.read().decode("utf-8", "replace")
tap.ok(code is not None and code != 0,
       "lcgate -c with [client] and no upstream key exits non-zero at once", (code, nk_log[-500:]))

tap.done(env)
