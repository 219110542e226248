"""Log lines cannot be forged (issue 12, "What is wrong today", bullet 6).

A project id with `%0A` reached the text log raw: while the upstream
answers 429, lcgate logs "upstream answered 429 for project <id>: holding
its upstream requests for N ms", so `project_id=x%0Alcgate-forged-line:...`
printed a line of the attacker's choosing. Every byte of a request must be
escaped in the text log: control bytes and DEL as \\xNN, a backslash as \\\\.

Each case sends one request whose upstream answer is a 429 (the mock's
fault, for that request only) and then reads lcgate's log (the text log
and the JSON access log share it; the access log escapes already). A line
is what a terminal shows: split on LF and on CR too.
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cache_lib as c  # noqa: E402
import lcgtest as t  # noqa: E402
import trust as tr  # noqa: E402

V1, V2 = tr.V1, tr.V2
tap = t.Tap()
env = t.Env("lcgate-trust-logs")
mock = env.mock()
HOLD = "upstream answered 429 for project "


def lines_of(log):
    return re.split(r"\r\n|\r|\n", log)


def case(sc, g, names, path, match, marker, escaped_rx):
    """names: (reached, no forged line, escaped)."""
    mock.reset()
    mock.fault(status=429, match=match, count=1, headers={"Retry-After": "1"})
    before = g.log().count(HOLD)
    r = c.get(g.port, path)
    n = mock.count()
    c.clear_fault(mock)
    sc.ok(r.status == 429 and n == 1, names[0], "answer %s; the mock saw %d" % (tr.show(r), n))
    deadline = time.monotonic() + 3
    while g.log().count(HOLD) <= before and time.monotonic() < deadline:
        time.sleep(0.05)
    log = g.log()
    forged = [ln for ln in lines_of(log) if ln.startswith(marker)]
    sc.ok(log.count(HOLD) > before and not forged, names[1],
          "lines starting with %r: %r\nlog lines mentioning 429: %r" % (
              marker, forged[:3], [ln for ln in lines_of(log) if "429" in ln][-4:]))
    hold = [ln for ln in log.splitlines() if HOLD in ln]
    sc.ok(any(re.search(escaped_rx, ln) for ln in hold), names[2],
          "want a line matching %r; the hold lines:\n%s" % (
              escaped_rx, "\n".join(repr(ln) for ln in hold[-4:])))


CASES = [
    ("pass-through GET, %0A in project_id",
     V2 + "/forge-pt?project_id=x%0Alcgate-forged-line-pt:%20holding", "/api/v2/batches/forge-pt",
     "lcgate-forged-line-pt", r"project x\\x0[aA]lcgate-forged-line-pt: holding",
     "logged as x\\x0alcgate-forged-line-pt"),
    ("v2 list (cached route), %0A in project_id",
     V2 + "?project_id=y%0Alcgate-forged-line-list:%20cached&page_size=3", "/api/v2/batches?",
     "lcgate-forged-line-list", r"project y\\x0[aA]lcgate-forged-line-list: cached",
     "logged as y\\x0alcgate-forged-line-list"),
    ("pass-through GET, ESC and CR in project_id",
     V2 + "/forge-cr?project_id=z%1B%5B2K%0Dlcgate-forged-line-cr", "/api/v2/batches/forge-cr",
     "lcgate-forged-line-cr", r"project z\\x1[bB]\[2K\\x0[dD]lcgate-forged-line-cr",
     "logged as z\\x1b[2K\\x0dlcgate-forged-line-cr"),
    ("pass-through GET, a backslash in project_id",
     V2 + "/forge-bs?project_id=q%5Cx0alcgate-forged-line-bs", "/api/v2/batches/forge-bs",
     "lcgate-forged-line-bs", r"project q\\\\x0alcgate-forged-line-bs",
     "the backslash logged doubled (q\\\\x0a...)"),
]
names = []
for what, _, _, marker, _, esc in CASES:
    names.append([
        "%s: control: sent upstream, its 429 answered" % what,
        "%s: %sno log line starts with %s" % (what, "control: " if "backslash" in what else "",
                                              marker),
        "%s: %s" % (what, esc),
    ])
with tr.Scenario(tap, "logs", [n for ns in names for n in ns]) as sc:
    g = sc.gate(env, c.gate_conf(mock, server={"log_level": "info"}), name="lcgate-logs")
    for (what, path, match, marker, rx, _), ns in zip(CASES, names):
        case(sc, g, ns, path, match, marker, rx)

tap.done(env)
