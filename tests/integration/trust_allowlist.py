"""Who may spend the key: the client's `projects` list, and the key chosen
for a project (issue 12, "What is wrong today", bullets 1 and 2).

Bullet 1: a token limited to project A must not reach project B by any
spelling. lcgate must read a request the way the upstream does (the LAST of
repeated query names, names percent-decoded and case-sensitive, a piece
without '=' is a name, a path that decodes to a list route is that route,
the LAST of duplicate JSON keys, a project in the path) and refuse with 403
before anything goes upstream. Each refused request is checked for the
exact 403 JSON and for the mock having seen no request at all.

Client "a" may use A and "default": the gateway's key is KEY_A, whose
default project (at the mock) is A, so "default" is A too. It is needed to
show the bypasses that make main read no project at all (a query main's
parser rejects, an encoded name, a path project): main then counts the
request as "default".

Bullet 2: [project "A"] api_key_file holds KEY_B (the gateway's key is
KEY_A): A in any spelling goes upstream with KEY_B.
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
A, B = tr.A, tr.B
TOK_A = "lcg-tok-trust-a-3f9d2c7e1b5a48d6a0c2e4f6b8d0a2c4"
DENIED = {"detail": "This client may not use this project"}

tap = t.Tap()
env = t.Env("lcgate-trust-allow")
mock = env.mock()  # KEY_A -> default project A, KEY_B -> default project B
keyfile_b = tr.key_file(env, "key_b", t.KEY_B + "\n")


def names_of(q):
    """A query with the UUIDs shown as A and B (for check names)."""
    return q.replace(A.upper(), "<A upper>").replace(A, "A").replace(B, "B")


# The spellings that name B to the upstream while main reads A or nothing.
SPELLINGS = [
    "project_id=%s&project_id=%s" % (A, B),
    "x&project_id=%s" % B,
    "&project_id=%s" % B,
    "project%%5Fid=%s" % B,
    "PROJECT_ID=%s&project_id=%s" % (A, B),
    "project_id=%s&project%%5Fid=%s" % (A, B),
]
ROUTES = [("POST", V2, "pass-through create"), ("GET", V1, "v1 list"), ("GET", V2, "v2 list")]
BODY = json.dumps(tr.V2_BODY).encode()
DUP_BODY = ('{"source_directory_id":"dir-trust","project_id":"%s","project_id":"%s"}'
            % (A, B)).encode()

refused = []  # (name, method, path, headers, body)
for q in SPELLINGS:
    for method, base, what in ROUTES:
        refused.append(("%s %s?%s (%s): 403, nothing upstream" % (method, base, names_of(q), what),
                        method, base + "?" + q, dict(tr.JH) if method == "POST" else {},
                        BODY if method == "POST" else None))
refused += [
    ("GET /api/v2/%62atches?project_id=A&project_id=B (the v2 list route, encoded): 403, "
     "nothing upstream", "GET", "/api/v2/%%62atches?project_id=%s&project_id=%s" % (A, B),
     {}, None),
    ("POST /api/v2/%62atches?project_id=A&project_id=B: 403, nothing upstream", "POST",
     "/api/v2/%%62atches?project_id=%s&project_id=%s" % (A, B), dict(tr.JH), BODY),
    ('POST /api/v2/batches with body {..."project_id":"A","project_id":"B"} '
     "(application/json): 403, nothing upstream", "POST", V2, dict(tr.JH), DUP_BODY),
    ('POST /api/v2/batches with body {..."project_id":"A","project_id":"B"} '
     "(no Content-Type): 403, nothing upstream", "POST", V2, {}, DUP_BODY),
    ("GET /api/v1/projects/B: 403, nothing upstream", "GET", "/api/v1/projects/" + B, {}, None),
    ("GET /api/v1/projects/B/anything: 403, nothing upstream", "GET",
     "/api/v1/projects/%s/anything" % B, {}, None),
    ("GET /api/v1/projects/A/x/projects/B (a second project in the path): 403, nothing "
     "upstream", "GET", "/api/v1/projects/%s/x/projects/%s" % (A, B), {}, None),
    ("GET /api/v1/projects/%7BB%7D (braces, encoded): 403, nothing upstream", "GET",
     "/api/v1/projects/%%7B%s%%7D" % B.upper(), {}, None),
]
# A raw '#' ends the query for curl (and any URL parser on the way): the
# reader must refuse it, or it would read A while the upstream reads B.
hash_refused = [
    ("POST /api/v2/batches?project_id=B#&project_id=A (a raw '#'): 400, nothing upstream",
     "POST", V2 + "?project_id=%s#&project_id=%s" % (B, A), dict(tr.JH), BODY),
    ("GET /api/v2/batches/x?project_id=B#&project_id=A (a raw '#'): 400, nothing upstream",
     "GET", V2 + "/x?project_id=%s#&project_id=%s" % (B, A), {}, None),
]

allowed = [  # (name, method, path, headers, body, want status, want query at the mock)
    ("control: POST /api/v2/batches?project_id=A: 200, sent upstream", "POST",
     V2 + "?project_id=" + A, dict(tr.JH), BODY, 200),
    ("control: GET v1 list ?project_id=A: 200, sent upstream", "GET",
     V1 + "?project_id=%s&limit=11" % A, {}, None, 200),
    ("control: GET v2 list ?project_id=A: 200, sent upstream", "GET",
     V2 + "?project_id=%s&page_size=11" % A, {}, None, 200),
    ("control: POST /api/v2/batches?project_id=<A upper>: 200, sent upstream", "POST",
     V2 + "?project_id=" + A.upper(), dict(tr.JH), BODY, 200),
    ("control: GET v1 list ?project_id=<A upper>: 200, sent upstream", "GET",
     V1 + "?project_id=%s&limit=12" % A.upper(), {}, None, 200),
    ("control: GET v2 list ?project_id=<A upper>: 200, sent upstream", "GET",
     V2 + "?project_id=%s&page_size=12" % A.upper(), {}, None, 200),
    ("control: GET /api/v1/projects/A: sent upstream (the mock's 404)", "GET",
     "/api/v1/projects/" + A, {}, None, 404),
]

names = ([n for n, *_ in refused] + [n for n, *_ in hash_refused] +
         [n for n, *_ in allowed])
with tr.Scenario(tap, "allow-list (client a: projects = A, default)", names) as sc:
    conf = c.gate_conf(mock)
    conf['client "a"'] = {"token_sha256": hashlib.sha256(TOK_A.encode()).hexdigest(),
                          "projects": "%s, default" % A}
    g = sc.gate(env, conf, name="lcgate-allow", key=t.KEY_A)
    for name, method, path, h, body in refused:
        mock.reset()
        h = dict(h, **tr.bearer(TOK_A))
        r = c.get(g.port, path, method=method, headers=h, body=body)
        n = mock.count()
        last = mock.stats()["last"]
        sc.ok(r.status == 403 and c.js(r) == DENIED and n == 0, name,
              "answer %s\nthe mock saw %d request(s)%s" % (
                  tr.show(r), n, "; last: %s %s?%s" % (last[-1]["method"], last[-1]["path"],
                                                       last[-1]["query"]) if last else ""))
    for name, method, path, h, body in hash_refused:
        mock.reset()
        r = c.get(g.port, path, method=method, headers=dict(h, **tr.bearer(TOK_A)), body=body)
        n = mock.count()
        sc.ok(r.status == 400 and n == 0, name,
              "answer %s\nthe mock saw %d request(s)" % (tr.show(r), n))
    for name, method, path, h, body, want in allowed:
        mock.reset()
        h = dict(h, **tr.bearer(TOK_A))
        r = c.get(g.port, path, method=method, headers=h, body=body)
        n = mock.count()
        sc.ok(r.status == want and n == 1, name,
              "answer %s\nthe mock saw %d request(s)" % (tr.show(r), n))


# --- bullet 2: the project's key, in every spelling of the project ------------
def key_name(auth):
    return {"Bearer " + t.KEY_A: "KEY_A (the gateway's)",
            "Bearer " + t.KEY_B: "KEY_B (project A's)"}.get(auth, repr(auth))


keyed = [  # (name, method, path, body, want status)
    ("pass-through GET ?project_id=<A upper>: sent with project A's key", "GET",
     V2 + "/nonexistent?project_id=" + A.upper(), None, 404),
    ("pass-through GET ?project_id={A}: sent with project A's key", "GET",
     V2 + "/nonexistent?project_id={%s}" % A, None, 404),
    ("pass-through POST ?project_id=<A upper>: sent with project A's key", "POST",
     V2 + "?project_id=" + A.upper(), BODY, 200),
    ("v2 list ?project_id=<A upper>: sent with project A's key", "GET",
     V2 + "?project_id=%s&page_size=13" % A.upper(), None, 200),
    ("v1 list ?project_id=<A upper>: sent with project A's key", "GET",
     V1 + "?project_id=%s&limit=13" % A.upper(), None, 200),
    ("control: pass-through GET ?project_id=A: sent with project A's key", "GET",
     V2 + "/nonexistent?project_id=" + A, None, 404),
]
with tr.Scenario(tap, "project key ([project A] api_key_file = KEY_B)",
                 [k[0] for k in keyed]) as sc:
    conf = c.gate_conf(mock)
    conf['project "%s"' % A] = {"api_key_file": keyfile_b}
    g = sc.gate(env, conf, name="lcgate-keys", key=t.KEY_A)
    for name, method, path, body, want in keyed:
        mock.reset()
        r = c.get(g.port, path, method=method, body=body,
                  headers=dict(tr.JH) if body else None)
        s = mock.stats()
        auth = s["last"][-1]["headers"].get("authorization") if s["last"] else None
        sc.ok(r.status == want and s["requests"] == 1 and auth == "Bearer " + t.KEY_B, name,
              "answer %s\nthe mock saw %d request(s), the last with %s"
              % (tr.show(r), s["requests"], key_name(auth)))

tap.done(env)
