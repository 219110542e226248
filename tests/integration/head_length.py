"""A pass-through HEAD answers the Content-Length the upstream gave it (the
length of the GET's body), not 0; on the main loop and across worker
threads (issue 12)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cache_lib as c  # noqa: E402
import lcgtest as t  # noqa: E402

tap = t.Tap()
env = t.Env("lcgate-head")
mock = env.mock()
auth = {"Authorization": "Bearer " + t.KEY_A}
bid = c.create_direct(mock, "v2")
path = "%s/%s" % (c.V2, bid)
up = t.request(mock.port, "HEAD", path, headers=auth)
tap.ok(up.status == 200 and int(up.header("content-length", "0")) > 0 and up.body == b"",
       "the mock answers HEAD %s with the GET's Content-Length, no body" % path, up)
for workers in ("1", "2"):
    g = c.start_gate(tap, env, c.gate_conf(mock, server={"workers": workers}),
                     name="lcgate-w" + workers)
    if not g:
        continue
    get = g.get(path, headers=auth)
    head = g.req("HEAD", path, headers=auth)
    tap.ok(get.status == 200 and int(get.header("content-length")) == len(get.body) > 0,
           "workers = %s: GET %s: 200 with its body" % (workers, path), get)
    tap.ok(head.status == 200 and head.header("content-length") == get.header("content-length")
           and head.body == b"",
           "workers = %s: HEAD gives the GET's Content-Length (%s), no body"
           % (workers, get.header("content-length")), head)
    # The connection stays usable: the HEAD's Content-Length framed no bytes.
    conn = t.http.client.HTTPConnection("127.0.0.1", g.port, timeout=10)
    r1 = t.send(conn, "HEAD", path, headers=auth)
    r2 = t.send(conn, "GET", path, headers=auth)
    conn.close()
    tap.ok(r1.header("content-length") == get.header("content-length") and r2.status == 200
           and r2.body == get.body,
           "workers = %s: a GET after the HEAD on one connection reads the right answer"
           % workers, (r1, r2))
    g.stop()
tap.done(env)
