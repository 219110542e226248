#!/usr/bin/env python3
"""Self-test of tests/mock/mock_upstream.py (TAP output).

Starts the mock on an ephemeral port in a temporary directory and checks it
over http.client: auth, both list routes (paging, filters, projects), the
exact 422 bodies, query equivalences, writes, /__stats, /__reset and every
fault kind. Exits non-zero if any check fails.
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from urllib.parse import quote

HERE = os.path.dirname(os.path.abspath(__file__))
MOCK = os.path.normpath(os.path.join(HERE, "..", "mock", "mock_upstream.py"))

K1, P1 = "test-key-one", "11111111-1111-4111-8111-111111111111"
K2, P2 = "test-key-two", "22222222-2222-4222-8222-222222222222"
P3 = "33333333-3333-4333-8333-333333333333"
V1 = "/api/v1/beta/batch-processing"
V2 = "/api/v2/batches"

INT_MSG = "Input should be a valid integer, unable to parse string as an integer"
V1_STATUS_EXP = "'pending', 'running', 'dispatched', 'completed', 'failed' or 'cancelled'"
V2_STATUS_EXP = "'PENDING', 'THROTTLED', 'RUNNING', 'COMPLETED', 'FAILED' or 'CANCELLED'"
UUID_X = ("invalid character: expected an optional prefix of `urn:uuid:` followed by [0-9a-fA-F-], "
          "found `x` at 1")


def compact(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


class Mock:
    def __init__(self, tmpdir, name="mock"):
        self.port_file = os.path.join(tmpdir, name + ".port")
        self.log = open(os.path.join(tmpdir, name + ".log"), "wb")
        self.proc = subprocess.Popen(
            [sys.executable, MOCK, "--port-file", self.port_file,
             "--key", "%s=%s" % (K1, P1), "--key", "%s=%s" % (K2, P2)],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        self.port = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("mock exited early with %s" % self.proc.returncode)
            try:
                with open(self.port_file) as f:
                    txt = f.read().strip()
                if txt:
                    self.port = int(txt)
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        if self.port is None:
            self.stop()
            raise RuntimeError("mock did not write its port file within 10 s")

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()
        return self.proc.returncode

    def conn(self, timeout=10):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def req(self, method, path, key=K1, headers=None, body=None, conn=None):
        own = conn is None
        c = conn or self.conn()
        h = dict(headers or {})
        if key is not None:
            h["Authorization"] = "Bearer " + key
        if isinstance(body, (dict, list)):
            body = compact(body).encode("utf-8")
            h.setdefault("Content-Type", "application/json")
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
            return r.status, hdrs, data
        finally:
            if own:
                c.close()

    def get_json(self, path, key=K1):
        st, _, data = self.req("GET", path, key=key)
        if st != 200:
            raise AssertionError("GET %s -> %d %s" % (path, st, data[:300]))
        return json.loads(data)

    def ctl(self, method, path, body=None):
        st, _, data = self.req(method, path, key=None, body=body)
        if st != 200:
            raise AssertionError("%s %s -> %d %s" % (method, path, st, data[:300]))
        return json.loads(data)


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def run(self, name, fn, *a):
        self.n += 1
        try:
            fn(*a)
            print("ok %d - %s" % (self.n, name))
        except Exception as e:  # noqa: BLE001
            self.failed += 1
            print("not ok %d - %s" % (self.n, name))
            where = [f for f in traceback.extract_tb(e.__traceback__) if f.name.startswith("t_")]
            lines = ("%s: %s" % (type(e).__name__, e)).splitlines()
            if where:
                lines.append("at line %d: %s" % (where[-1].lineno, where[-1].line))
            for line in lines:
                print("#   " + line)
        sys.stdout.flush()


def eq(a, b, what=""):
    if a != b:
        ra, rb = repr(a), repr(b)
        raise AssertionError("%s\n  got:      %s\n  expected: %s" % (what, ra[:2000], rb[:2000]))


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def expect_422(m, path, detail, key=K1):
    st, h, data = m.req("GET", path, key=key)
    eq(st, 422, "status of " + path)
    eq(data.decode("utf-8"), compact({"detail": detail}), "422 body of " + path)
    eq(h.get("content-type"), "application/json")


def int_err(loc, value):
    return {"type": "int_parsing", "loc": ["query", loc], "msg": INT_MSG, "input": value}


def all_v1(m, extra="", key=K1):
    return m.get_json(V1 + "?limit=1000" + extra, key=key)


def v2_pages(m, q="", key=K1):
    pages, token = [], None
    for _ in range(1000):
        path = V2 + "?" + q + ("&" if q else "") + ("page_token=" + quote(token) if token else "")
        page = m.get_json(path.rstrip("?&"), key=key)
        pages.append(page)
        token = page["next_page_token"]
        if token is None:
            return pages
    raise AssertionError("v2 paging did not end")


def main():
    tap = Tap()
    tmp = tempfile.TemporaryDirectory(prefix="mock_selftest.")
    try:
        m = Mock(tmp.name)
    except Exception as e:  # noqa: BLE001
        print("not ok 1 - mock starts and writes its port file")
        print("#   %s" % e)
        print("1..1")
        return 1
    print("# mock on port %d" % m.port)
    state = {}

    def t_start():
        check(open(m.port_file).read().strip() == str(m.port), "port file content")
        eq(m.ctl("GET", "/__stats")["requests"], 0, "fresh counters")

    def t_auth():
        body = compact({"detail": "Invalid or missing API key"})
        for key, hdr in ((None, None), ("wrong-key", None), (None, "Basic " + K1), (None, "Bearer")):
            st, h, data = m.req("GET", V1, key=key, headers={"Authorization": hdr} if hdr else None)
            eq((st, data.decode()), (401, body), "401 for key=%r header=%r" % (key, hdr))
        st, _, _ = m.req("GET", V2, key=K2)
        eq(st, 200, "second key accepted")

    def t_not_found():
        for path in ("/api/v3/whatever", "/api", "/nothing", V1 + "/items/x/processing-results"):
            st, h, data = m.req("GET", path)
            eq((st, data), (404, b'{"detail":"Not Found"}'), path)
        st, h, data = m.req("DELETE", V1)
        eq((st, data), (405, b'{"detail":"Method Not Allowed"}'), "405")

    def t_headers():
        st, h, data = m.req("GET", V1 + "?limit=1", headers={"X-Request-Id": "req-123"})
        eq(h.get("x-request-id"), "req-123", "echoed request id")
        eq(h.get("content-type"), "application/json", "content type")
        eq(int(h.get("content-length", -1)), len(data), "content length")
        st, h, data = m.req("GET", V1 + "?limit=1")
        check(len(h.get("x-request-id", "")) >= 16, "generated request id")

    def t_v1_default():
        st, h, data = m.req("GET", V1)
        eq(st, 200)
        page = json.loads(data)
        eq(data.decode("utf-8"), compact(page), "compact JSON")
        eq(list(page), ["items", "next_page_token", "total_size"], "keys")
        eq((len(page["items"]), page["next_page_token"], page["total_size"]), (50, None, 137), "default page")
        it = page["items"][0]
        for k in ("id", "job_type", "project_id", "status", "total_items", "created_at", "directory_id",
                  "updated_at", "completed_at", "started_at", "error_message", "workflow_id"):
            check(k in it, "item has " + k)
        check(it["id"].startswith("bjb-") and it["directory_id"].startswith("dir-"), "id prefixes")
        eq(it["project_id"], P1, "default project of key 1")
        check(it["created_at"].endswith("Z"), "created_at is UTC Z")

    def t_v1_paging():
        full = all_v1(m)
        eq((len(full["items"]), full["total_size"]), (137, 137), "limit=1000 returns all")
        state["v1_full"] = full["items"]
        ids = []
        for off in range(0, 160, 40):
            page = m.get_json(V1 + "?limit=40&offset=%d" % off)
            eq(page["total_size"], 137)
            eq(len(page["items"]), max(0, min(40, 137 - off)), "page size at offset %d" % off)
            ids += [i["id"] for i in page["items"]]
        eq(ids, [i["id"] for i in full["items"]], "pages concatenate to the full list")
        eq(len(set(ids)), 137, "ids unique")
        created = [i["created_at"] for i in full["items"]]
        eq(created, sorted(created, reverse=True), "newest first")
        page = m.get_json(V1 + "?offset=130")
        eq((len(page["items"]), page["total_size"]), (7, 137), "offset=130 tail")

    def t_v1_projects():
        _, _, d1 = m.req("GET", V1)
        _, _, d2 = m.req("GET", V1 + "?project_id=" + P1)
        eq(d2, d1, "explicit default project == no project_id")
        other = m.get_json(V1, key=K2)
        eq({i["project_id"] for i in other["items"]}, {P2}, "key 2 default project")
        check(not ({i["id"] for i in other["items"]} & {i["id"] for i in state["v1_full"]}), "disjoint ids")
        _, _, d3 = m.req("GET", V1 + "?project_id=" + P2)
        _, _, d4 = m.req("GET", V1, key=K2)
        eq(d3, d4, "project_id=P2 with key 1 == key 2's default")
        lazy = m.get_json(V1 + "?project_id=" + P3)
        eq((lazy["total_size"], lazy["items"][0]["project_id"]), (137, P3), "lazily created project")
        hexp = P1.replace("-", "")
        for spelling in (P1.upper(), hexp, "{%s}" % P1, "urn:uuid:" + P1, hexp.upper()):
            _, _, d = m.req("GET", V1 + "?project_id=" + quote(spelling))
            eq(d, d1, "uuid spelling " + spelling)
        _, _, d = m.req("GET", V1 + "?organization_id=" + P3)
        eq(d, d1, "organization_id ignored")

    def t_v1_filters():
        full = state["v1_full"]
        total = 0
        for st in ("pending", "running", "dispatched", "completed", "failed", "cancelled"):
            page = all_v1(m, "&status=" + st)
            want = [i for i in full if i["status"] == st]
            eq(page["items"], want, "status=" + st)
            eq(page["total_size"], len(want))
            total += len(want)
        eq(total, 137, "statuses partition the list")
        for jt in ("parse", "extract", "classify"):
            want = [i for i in full if i["job_type"] == jt]
            check(0 < len(want) < 137, "job_type %s selects a proper subset" % jt)
            eq(all_v1(m, "&job_type=" + jt)["items"], want, "job_type=" + jt)
        dirs = sorted({i["directory_id"] for i in full})
        check(len(dirs) > 1, "several directories")
        want = [i for i in full if i["directory_id"] == dirs[0]]
        eq(all_v1(m, "&directory_id=" + dirs[0])["items"], want, "directory_id filter")
        want = [i for i in full if i["directory_id"] == dirs[1] and i["status"] == "completed"
                and i["job_type"] == "parse"]
        page = m.get_json(V1 + "?directory_id=%s&status=completed&job_type=parse&limit=3" % dirs[1])
        eq((page["items"], page["total_size"]), (want[:3], len(want)), "combined filters + limit")
        eq(all_v1(m, "&directory_id=")["total_size"], 0, "empty directory_id is a filter, not absent")

    def t_v1_equivalences():
        _, _, ref = m.req("GET", V1 + "?limit=10")
        for q in ("limit=010", "limit=%2010", "limit=10%20", "limit=10.0", "limit=1_0", "limit=%2B10",
                  "limit=10.000", "limit=5&limit=10", "unknown=1&limit=10", "limit=10&offset=0",
                  "offset=00&limit=1_0&offset=-0", "lim%69t=10"):
            st, _, d = m.req("GET", V1 + "?" + q)
            eq((st, d), (200, ref), q)
        _, _, d50 = m.req("GET", V1)
        _, _, d = m.req("GET", V1 + "?limit=50")
        eq(d, d50, "limit=50 == default")

    def t_v1_422():
        expect_422(m, V1 + "?limit=ten", [int_err("limit", "ten")])
        for bad in ("10.5", "1e1", "", "1__0", "10.", "0x10"):
            expect_422(m, V1 + "?limit=" + quote(bad), [int_err("limit", bad)])
        expect_422(m, V1 + "?limit=0", [{"type": "greater_than_equal", "loc": ["query", "limit"],
                                         "msg": "Input should be greater than or equal to 1", "input": "0",
                                         "ctx": {"ge": 1}}])
        expect_422(m, V1 + "?limit=1001", [{"type": "less_than_equal", "loc": ["query", "limit"],
                                            "msg": "Input should be less than or equal to 1000",
                                            "input": "1001", "ctx": {"le": 1000}}])
        expect_422(m, V1 + "?offset=-1", [{"type": "greater_than_equal", "loc": ["query", "offset"],
                                           "msg": "Input should be greater than or equal to 0", "input": "-1",
                                           "ctx": {"ge": 0}}])
        for bad in ("x", "PENDING", "", " pending"):
            expect_422(m, V1 + "?status=" + quote(bad),
                       [{"type": "enum", "loc": ["query", "status"], "msg": "Input should be " + V1_STATUS_EXP,
                         "input": bad, "ctx": {"expected": V1_STATUS_EXP}}])
        expect_422(m, V1 + "?project_id=x",
                   [{"type": "uuid_parsing", "loc": ["query", "project_id"],
                     "msg": "Input should be a valid UUID, " + UUID_X, "input": "x", "ctx": {"error": UUID_X}}])
        reason = "invalid group count: expected 5, found 2"
        expect_422(m, V1 + "?project_id=ab-cd",
                   [{"type": "uuid_parsing", "loc": ["query", "project_id"],
                     "msg": "Input should be a valid UUID, " + reason, "input": "ab-cd", "ctx": {"error": reason}}])
        reason = "invalid length: expected length 32 for simple format, found 0"
        expect_422(m, V1 + "?organization_id=",
                   [{"type": "uuid_parsing", "loc": ["query", "organization_id"],
                     "msg": "Input should be a valid UUID, " + reason, "input": "", "ctx": {"error": reason}}])
        jt_exp = "'parse', 'extract' or 'classify'"
        expect_422(m, V1 + "?organization_id=x&project_id=x&directory_id=&job_type=a&status=b&offset=c&limit=d"
                   "&unknown=e",
                   [int_err("limit", "d"), int_err("offset", "c"),
                    {"type": "enum", "loc": ["query", "status"], "msg": "Input should be " + V1_STATUS_EXP,
                     "input": "b", "ctx": {"expected": V1_STATUS_EXP}},
                    {"type": "enum", "loc": ["query", "job_type"], "msg": "Input should be " + jt_exp,
                     "input": "a", "ctx": {"expected": jt_exp}},
                    {"type": "uuid_parsing", "loc": ["query", "project_id"],
                     "msg": "Input should be a valid UUID, " + UUID_X, "input": "x", "ctx": {"error": UUID_X}},
                    {"type": "uuid_parsing", "loc": ["query", "organization_id"],
                     "msg": "Input should be a valid UUID, " + UUID_X, "input": "x", "ctx": {"error": UUID_X}}])
        st, _, _ = m.req("GET", V1 + "?limit=", key="bad")
        eq(st, 401, "auth is checked before validation")

    def t_v2_paging():
        pages = v2_pages(m)
        eq([len(p["items"]) for p in pages], [25, 25, 7], "default page size 25")
        eq({p["total_size"] for p in pages}, {57}, "total_size on every page")
        items = [i for p in pages for i in p["items"]]
        eq(len({i["id"] for i in items}), 57, "every batch exactly once")
        created = [i["created_at"] for i in items]
        eq(created, sorted(created, reverse=True), "newest first")
        check(all(c.startswith("2025-") and c.endswith("Z") for c in created), "2025 dates, UTC")
        it = items[0]
        eq(list(it), ["id", "config", "project_id", "source_directory_id", "status", "created_at", "results",
                      "updated_at"], "v2 item keys")
        check(it["id"].startswith("bat-") and it["config"]["job"]["type"] in ("parse_v2", "extract_v2"), "shape")
        state["v2_full"] = items
        for ps, sizes in (("7", [7] * 8 + [1]), ("1000", [57]), ("0", None), ("5000", [57]), ("-3", None)):
            got = [len(p["items"]) for p in v2_pages(m, "page_size=" + ps)]
            if sizes is None:
                eq(got, [1] * 57, "page_size=%s clamps to 1" % ps)
            else:
                eq(got, sizes, "page_size=" + ps)
        again = [i for p in v2_pages(m, "page_size=7") for i in p["items"]]
        eq(again, items, "same items with another page size")

    def t_v2_token():
        st, _, d = m.req("GET", V2 + "?page_token=not-a-token!")
        eq((st, d), (400, b'{"detail":"Invalid page_token"}'), "bad token")
        st, _, d = m.req("GET", V2 + "?page_token=e30")  # "{}"
        eq(st, 400, "token without offset")
        _, _, ref = m.req("GET", V2)
        _, _, d = m.req("GET", V2 + "?page_token=")
        eq(d, ref, "empty page_token starts at the beginning")
        expect_422(m, V2 + "?page_size=x&page_token=garbage", [int_err("page_size", "x")])

    def t_v2_filters():
        full = state["v2_full"]
        for st in ("PENDING", "THROTTLED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"):
            got = [i for p in v2_pages(m, "status=" + st) for i in p["items"]]
            eq(got, [i for i in full if i["status"] == st], "status=" + st)
        src = full[0]["source_directory_id"]
        page = m.get_json(V2 + "?page_size=1000&source_directory_id=" + src)
        want = [i for i in full if i["source_directory_id"] == src]
        check(0 < len(want) < 57, "source directory selects a subset")
        eq((page["items"], page["total_size"]), (want, len(want)), "source_directory_id filter")
        mid = "2025-07-01T00:00:00.000000Z"
        after = [i for i in full if i["created_at"] >= mid]
        before = [i for i in full if i["created_at"] <= mid]
        check(0 < len(after) < 57, "a July cut splits the year")
        page = m.get_json(V2 + "?page_size=1000&created_at_on_or_after=2025-07-01T00:00:00Z")
        eq(page["items"], after, "created_at_on_or_after")
        page = m.get_json(V2 + "?page_size=1000&created_at_on_or_before=2025-07-01T00:00:00Z")
        eq(page["items"], before, "created_at_on_or_before")
        _, _, ref = m.req("GET", V2 + "?page_size=1000&created_at_on_or_after=2025-07-01T00:00:00Z")
        for spelling in ("2025-07-01T02:00:00%2B02:00", "2025-06-30T20:00-04:00", "1751328000",
                         "1751328000000", "2025-07-01", "2025-07-01T00:00:00.000000z", "2025-07-01%2000:00",
                         "1751328000.0"):
            _, _, d = m.req("GET", V2 + "?page_size=1000&created_at_on_or_after=" + spelling)
            eq(d, ref, "same instant: " + spelling)
        lo, hi = full[40]["created_at"], full[10]["created_at"]
        page = m.get_json(V2 + "?page_size=1000&created_at_on_or_after=%s&created_at_on_or_before=%s" % (lo, hi))
        eq(page["items"], full[10:41], "inclusive bounds on both ends")

    def t_v2_projects_422():
        page = m.get_json(V2 + "?project_id=" + P2)
        eq({i["project_id"] for i in page["items"]}, {P2}, "explicit v2 project")
        _, _, a = m.req("GET", V2 + "?project_id=" + P2)
        _, _, b = m.req("GET", V2, key=K2)
        eq(a, b, "project_id=P2 == key 2 default")
        _, _, c = m.req("GET", V2 + "?organization_id=anything")
        _, _, d = m.req("GET", V2)
        eq(c, d, "organization_id ignored")
        dt = "Input should be a valid datetime or date, "
        expect_422(m, V2 + "?created_at_on_or_after=x",
                   [{"type": "datetime_from_date_parsing", "loc": ["query", "created_at_on_or_after"],
                     "msg": dt + "input is too short", "input": "x", "ctx": {"error": "input is too short"}}])
        r = "unexpected extra characters at the end of the input"
        expect_422(m, V2 + "?created_at_on_or_before=2025-01-01T25:00:00",
                   [{"type": "datetime_from_date_parsing", "loc": ["query", "created_at_on_or_before"],
                     "msg": dt + r, "input": "2025-01-01T25:00:00", "ctx": {"error": r}}])
        r = "invalid character in year"
        expect_422(m, V2 + "?created_at_on_or_before=yesterday!",
                   [{"type": "datetime_from_date_parsing", "loc": ["query", "created_at_on_or_before"],
                     "msg": dt + r, "input": "yesterday!", "ctx": {"error": r}}])
        expect_422(m, V2 + "?status=pending&page_size=&created_at_on_or_after=&source_directory_id=",
                   [int_err("page_size", ""),
                    {"type": "enum", "loc": ["query", "status"], "msg": "Input should be " + V2_STATUS_EXP,
                     "input": "pending", "ctx": {"expected": V2_STATUS_EXP}},
                    {"type": "datetime_from_date_parsing", "loc": ["query", "created_at_on_or_after"],
                     "msg": dt + "input is too short", "input": "", "ctx": {"error": "input is too short"}}])

    def t_determinism():
        m2 = Mock(tmp.name, "second")
        try:
            for path in (V1 + "?limit=1000", V2 + "?page_size=1000", V1 + "?project_id=" + P3):
                eq(m2.req("GET", path)[2], m.req("GET", path)[2], "same data in another process: " + path)
        finally:
            m2.stop()

    def t_v1_writes():
        st, _, d = m.req("POST", V1, body={"directory_id": "dir-created", "job_type": "extract"})
        eq(st, 200, "create status: %s" % d[:200])
        job = json.loads(d)
        check(job["id"].startswith("bjb-") and job["status"] == "pending" and job["project_id"] == P1, "new job")
        page = m.get_json(V1 + "?limit=1")
        eq((page["items"][0], page["total_size"]), (job, 138), "new job on top")
        eq(m.get_json(V1 + "/" + job["id"]), job, "GET by id")
        st, _, d = m.req("POST", V1 + "/" + job["id"] + "/cancel")
        eq((st, json.loads(d)["status"]), (200, "cancelled"), "cancel")
        page = all_v1(m, "&status=cancelled")
        eq(page["items"][0]["id"], job["id"], "cancelled filter sees it")
        st, _, _ = m.req("POST", V1 + "/" + job["id"] + "/cancel")
        eq(st, 400, "second cancel refused")
        st, _, d = m.req("GET", V1 + "/bjb-nope")
        eq(st, 404, "unknown job")
        st, _, d = m.req("POST", V1 + "?project_id=" + P3, body={"directory_id": "d", "job_type": "parse"})
        eq(json.loads(d)["project_id"], P3, "create in an explicit project")
        eq(m.get_json(V1 + "?project_id=" + P3)["total_size"], 138)
        st, _, d = m.req("POST", V1, body={"directory_id": "d", "job_type": "nope"})
        eq(st, 422, "bad job_type in body")
        eq(json.loads(d)["detail"][0]["loc"], ["body", "job_type"])
        st, _, d = m.req("POST", V1, body=b"{not json")
        eq(st, 422, "bad JSON body")

    def t_v2_writes():
        body = {"source_directory_id": "dir-x", "config": {"job": {"configuration_id": "cfg-x",
                                                                   "type": "extract_v2"}}}
        st, _, d = m.req("POST", V2, body=body)
        eq(st, 200, "create batch: %s" % d[:200])
        bat = json.loads(d)
        check(bat["id"].startswith("bat-") and bat["status"] == "PENDING", "new batch")
        page = m.get_json(V2)
        eq((page["items"][0], page["total_size"]), (bat, 58), "new batch on top")
        eq(m.get_json(V2 + "/" + bat["id"]), bat, "GET batch")
        st, _, d = m.req("POST", V2 + "/" + bat["id"] + "/cancel")
        eq((st, json.loads(d)["status"]), (200, "CANCELLED"), "cancel batch")
        st, _, _ = m.req("GET", V2 + "/bat-nope")
        eq(st, 404)

    def t_chunked_keepalive():
        c = m.conn()
        try:
            payload = compact({"directory_id": "dir-chunked", "job_type": "classify", "pad": "x" * 200000})
            data = payload.encode()
            chunks = [data[i:i + 65536] for i in range(0, len(data), 65536)]
            c.putrequest("POST", V1)
            c.putheader("Authorization", "Bearer " + K1)
            c.putheader("Transfer-Encoding", "chunked")
            c.putheader("Content-Type", "application/json")
            c.endheaders()
            for ch in chunks:
                c.send(b"%x\r\n" % len(ch) + ch + b"\r\n")
            c.send(b"0\r\n\r\n")
            r = c.getresponse()
            out = json.loads(r.read())
            eq((r.status, out["directory_id"]), (200, "dir-chunked"), "chunked create")
            sock = c.sock
            for i in range(5):
                st, _, _ = m.req("GET", V2 + "?page_size=%d" % (i + 1), conn=c)
                eq(st, 200)
            st, _, _ = m.req("POST", V1, body={"directory_id": "d2", "job_type": "parse"}, conn=c)
            eq(st, 200)
            check(c.sock is sock, "one connection reused (keep-alive)")
            stats = m.ctl("GET", "/__stats")
            eq(stats["last"][-7]["body_len"], len(data), "body_len of the chunked request")
        finally:
            c.close()

    def t_stats():
        before = m.get_json(V1 + "?limit=1")["total_size"]
        eq(m.ctl("POST", "/__reset"), {"ok": True})
        s = m.ctl("GET", "/__stats")
        eq((s["requests"], s["by_route"], s["last"]), (0, {}, []), "after reset")
        m.req("GET", V2 + "?page_size=3", headers={"X-Test": "A"})
        m.req("GET", V2)
        m.req("GET", V1 + "?limit=1")
        m.req("POST", V1, body={"directory_id": "d", "job_type": "parse"})
        m.req("GET", "/api/nope", key=None)
        s = m.ctl("GET", "/__stats")
        eq(s["requests"], 5, "total")
        eq(s["by_route"], {"GET /api/v2/batches": 2, "GET /api/v1/beta/batch-processing": 1,
                           "POST /api/v1/beta/batch-processing": 1, "GET /api/nope": 1}, "by_route")
        first = s["last"][0]
        eq((first["method"], first["path"], first["query"]), ("GET", V2, "page_size=3"))
        eq(first["headers"].get("x-test"), "A", "lowercased header names")
        eq(first["headers"].get("authorization"), "Bearer " + K1)
        check(s["last"][3]["body_len"] > 0 and first["body_len"] == 0, "body_len")
        m.ctl("GET", "/__stats")
        eq(m.ctl("GET", "/__stats")["requests"], 5, "control endpoints are not counted")
        for _ in range(60):
            m.req("GET", V2)
        eq(len(m.ctl("GET", "/__stats")["last"]), 50, "last keeps 50")
        m.ctl("POST", "/__reset")
        eq(m.get_json(V1 + "?limit=1")["total_size"], before + 1, "reset keeps the data")

    def t_fault_delay():
        m.ctl("POST", "/__fault", {"delay_ms": 400, "count": 1})
        t0 = time.monotonic()
        st, _, _ = m.req("GET", V2)
        dt = time.monotonic() - t0
        check(st == 200 and dt >= 0.38, "delayed answer (%.3fs)" % dt)
        t0 = time.monotonic()
        m.req("GET", V2)
        check(time.monotonic() - t0 < 0.3, "count=1 consumed")
        eq(m.ctl("GET", "/__fault"), {"fault": None}, "fault cleared after count")

    def t_fault_status():
        m.ctl("POST", "/__reset")
        m.ctl("POST", "/__fault", {"status": 503, "count": 2})
        for i in range(2):
            st, h, d = m.req("GET", V1)
            eq((st, d), (503, b'{"detail":"injected"}'), "injected 503 #%d" % i)
            eq(h.get("content-type"), "application/json")
        eq(m.req("GET", V1)[0], 200, "third is normal")
        eq(m.ctl("GET", "/__stats")["requests"], 3, "faulted requests are counted")
        m.ctl("POST", "/__fault", {"status": 429, "headers": {"Retry-After": "2", "retry-after-ms": "1500"},
                                   "count": 1})
        st, h, _ = m.req("GET", V2)
        eq((st, h.get("retry-after"), h.get("retry-after-ms")), (429, "2", "1500"), "429 with hints")
        m.ctl("POST", "/__fault", {"status": 500})
        for _ in range(3):
            eq(m.req("GET", V2)[0], 500, "until cleared")
        m.ctl("POST", "/__fault", {})
        eq(m.req("GET", V2)[0], 200, "cleared by {}")
        st, _, _ = m.req("POST", "/__fault", key=None, body={"bogus": 1})
        eq(st, 400, "unknown fault key refused")

    def t_fault_reset():
        m.ctl("POST", "/__fault", {"reset": True, "count": 1})
        c = m.conn()
        try:
            c.request("GET", V1, headers={"Authorization": "Bearer " + K1})
            try:
                r = c.getresponse()
                r.read()
                raise AssertionError("got an answer %d instead of a reset" % r.status)
            except (ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError,
                    ConnectionAbortedError):
                pass
        finally:
            c.close()
        eq(m.req("GET", V1)[0], 200, "next connection works")

    def t_fault_body():
        m.ctl("POST", "/__fault", {"body": '{"items":[{"id":', "count": 1})
        st, h, d = m.req("GET", V1)
        eq((st, d), (200, b'{"items":[{"id":'), "raw body")
        eq(int(h["content-length"]), len(d))
        m.ctl("POST", "/__fault", {"body": "<html>oops</html>", "status": 502, "count": 1})
        eq(m.req("GET", V1)[:1] + (m.ctl("GET", "/__fault")["fault"],), (502, None), "status + body")
        m.ctl("POST", "/__fault", {"truncate": True, "count": 1})
        c = m.conn()
        try:
            c.request("GET", V1, headers={"Authorization": "Bearer " + K1})
            r = c.getresponse()
            try:
                r.read()
                raise AssertionError("truncated body read completely")
            except http.client.IncompleteRead:
                pass
        finally:
            c.close()

    def t_fault_match():
        m.ctl("POST", "/__fault", {"status": 500, "match": "/api/v2/batches/"})
        eq(m.req("GET", V1)[0], 200, "v1 unaffected")
        eq(m.req("GET", V2 + "/bat-x")[0], 500, "v2 item faulted")
        eq(m.req("GET", V2)[0], 200, "the list path does not contain the match")
        m.ctl("POST", "/__fault", {"status": 504, "match": "page_size=3", "count": 1})
        eq(m.req("GET", V2 + "?page_size=2")[0], 200, "query not matching")
        eq(m.req("GET", V2 + "?page_size=3")[0], 504, "match sees the query too")
        m.ctl("POST", "/__fault", {})
        eq(m.req("GET", V2 + "/bat-x")[0], 404, "cleared")

    def t_redirect():
        st, h, d = m.req("GET", V2 + "/?page_size=2")
        eq(st, 307, "trailing slash redirects like Starlette")
        check(h["location"].endswith(V2 + "?page_size=2"), "location " + h["location"])

    def t_sigterm():
        rc = m.stop()
        eq(rc, 0, "exit status after SIGTERM")
        check(not os.path.exists(m.port_file), "port file removed on exit")

    tests = [
        ("mock starts and writes its port file", t_start),
        ("401 without a valid key", t_auth),
        ("404 and 405 bodies", t_not_found),
        ("X-Request-Id, Content-Type, Content-Length", t_headers),
        ("v1 default page", t_v1_default),
        ("v1 offset paging", t_v1_paging),
        ("v1 default vs explicit project, uuid spellings", t_v1_projects),
        ("v1 filters", t_v1_filters),
        ("v1 integer spellings and repeated params", t_v1_equivalences),
        ("v1 422 bodies", t_v1_422),
        ("v2 token paging returns every batch once", t_v2_paging),
        ("v2 page_token errors", t_v2_token),
        ("v2 filters and date-time spellings", t_v2_filters),
        ("v2 projects and 422 bodies", t_v2_projects_422),
        ("data is deterministic across processes", t_determinism),
        ("v1 create, get, cancel", t_v1_writes),
        ("v2 create, get, cancel", t_v2_writes),
        ("chunked body and keep-alive", t_chunked_keepalive),
        ("/__stats and /__reset", t_stats),
        ("fault: delay", t_fault_delay),
        ("fault: status", t_fault_status),
        ("fault: reset", t_fault_reset),
        ("fault: body and truncate", t_fault_body),
        ("fault: match", t_fault_match),
        ("trailing slash redirect", t_redirect),
        ("SIGTERM stops the mock cleanly", t_sigterm),
    ]
    try:
        for name, fn in tests:
            tap.run(name, fn)
    finally:
        if m.proc.poll() is None:
            m.stop()
        tmp.cleanup()
    print("1..%d" % tap.n)
    if tap.failed:
        print("# %d of %d failed" % (tap.failed, tap.n))
    return 1 if tap.failed else 0


if __name__ == "__main__":
    sys.exit(main())
