"""Naive date-times that pydantic reads as one value are one cache entry:
2023-11-15, 2023-11-15T00:00 and 2023-11-15T00:00:00.000 make exactly one
upstream request, whose value the upstream (the mock, which parses as
speedate does) reads back as the same naive datetime. An aware spelling of
the same wall time is another entry (issue 12)."""
import importlib.util
import os
import sys
from urllib.parse import parse_qsl

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cache_lib as c  # noqa: E402
import lcgtest as t  # noqa: E402

spec = importlib.util.spec_from_file_location("mock_upstream", t.MOCK)
mock_mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mock_mod)

NAME = "created_at_on_or_after"
SPELLINGS = ["2023-11-15", "2023-11-15T00:00", "2023-11-15T00:00:00.000",
             "2023-11-15%2000:00:00", "2023-11-15t00:00:00"]

tap = t.Tap()
env = t.Env("lcgate-naive-dt")
mock = env.mock()
g = c.start_gate(tap, env, c.gate_conf(mock))
if g:
    mock.reset()
    rs = [g.get("%s?page_size=3&%s=%s" % (c.V2, NAME, v)) for v in SPELLINGS[:3]]
    tap.ok(all(r.status == 200 for r in rs), "the three spellings are answered 200",
           c.summary(rs))
    tap.eq(c.upstream_gets(mock, c.V2), 1,
           "%s: exactly one upstream request" % ", ".join(SPELLINGS[:3]))
    tap.eq([c.xc(r) for r in rs], ["MISS", "HIT", "HIT"], "then two hits")
    rs2 = [g.get("%s?page_size=3&%s=%s" % (c.V2, NAME, v)) for v in SPELLINGS[3:]]
    tap.ok(all(r.status == 200 and c.xc(r) == "HIT" for r in rs2)
           and c.upstream_gets(mock, c.V2) == 1,
           "a space and a lowercase t separator are hits of the same entry", c.summary(rs2))
    sent = [dict(parse_qsl(q, keep_blank_values=True)).get(NAME)
            for q in c.upstream_queries(mock, c.V2)]
    want = mock_mod.parse_datetime("2023-11-15")
    tap.ok(len(sent) == 1 and sent[0] is not None
           and mock_mod.parse_datetime(sent[0]) == want and want[1] is False,
           "the value sent upstream (%r) reads there as the same naive datetime" % sent,
           (sent, want))
    aware = g.get("%s?page_size=3&%s=2023-11-15T00:00:00Z" % (c.V2, NAME))
    tap.ok(aware.status == 200 and c.xc(aware) == "MISS"
           and c.upstream_gets(mock, c.V2) == 2,
           "the aware 2023-11-15T00:00:00Z is another entry", c.summary([aware]))
tap.done(env)
