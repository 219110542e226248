"""The text log escapes what a request brings: a project id with an encoded
LF cannot print a line of its own (issue 12, "Log lines can be forged")."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cache_lib as c  # noqa: E402
import lcgtest as t  # noqa: E402

tap = t.Tap()
env = t.Env("lcgate-logesc")
mock = env.mock()
g = c.start_gate(tap, env, c.gate_conf(mock))
if g:
    mock.fault(status=429, headers={"Retry-After": "1"})
    r = g.req("POST", c.V2 + "?project_id=x%0Alcgate-forged-line:",
              headers={"Authorization": "Bearer " + t.KEY_A,
                       "Content-Type": "application/json"}, body=b"{}")
    c.clear_fault(mock)
    tap.eq(r.status, 429, "the mock's 429 is passed on")
    t.wait_for(lambda: "upstream answered 429 for project" in g.log(), 5,
               "the hold's log line")
    lines = g.log().splitlines()
    held = [ln for ln in lines if "upstream answered 429 for project" in ln]
    forged = [ln for ln in lines if ln.startswith("lcgate-forged-line")]
    tap.ok(held and not forged, "no log line starts with lcgate-forged-line",
           "\n".join(held + forged))
    tap.ok(held and "x\\x0alcgate-forged-line:" in held[0],
           "the LF is written as \\x0a in the hold's line", "\n".join(held))
tap.done(env)
