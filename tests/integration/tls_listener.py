"""TLS on the client listener ([server] tls_cert and tls_key), with
workers = 1 and workers = 2:

- curl --cacert gets a miss then a hit over one kept-alive TLS connection;
- answers larger than a TLS record (80 KB) arrive whole; 300 pipelined
  requests from a client that reads slowly (a 4 KiB receive buffer) get
  their 300 answers whole; 1000 pipelined requests for a 12 KB answer
  (12 MB, more than the socket buffers hold) from a client that reads
  only after a pause: 1000 whole answers (the writes that would block are
  finished by the bufferevent);
- TLS 1.1 is refused, 1.2 and 1.3 are spoken (openssl s_client); ALPN
  selects http/1.1, and a client that offers only h2 is refused;
- a session resumes: TLS 1.2 (s_client -reconnect) and TLS 1.3 (a ticket);
- a plain HTTP request to the TLS port gets a 400 with a JSON detail, the
  connection is closed, and the 400 is counted and logged;
- a client that opens a connection and says nothing (or only starts a
  handshake) is closed after header_timeout, like an idle plain one;
- certificate files replaced, then SIGHUP: new connections are served the
  new certificate (its serial), a connection opened before still works on
  the old one; a broken file at reload keeps the running certificate;
- bad configurations are refused by lcgate -t and at start, naming the key,
  the file and the reason: one key without the other, an unreadable file,
  a key that does not match the certificate.

curl and openssl are needed (Debian packages curl and openssl): without
them the test fails and says so.
"""
import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cache_lib as c  # noqa: E402
import lcgtest as t  # noqa: E402
import tlskit  # noqa: E402

tap = t.Tap()
env = t.Env("lcgate-tls")
missing = [tool for tool in ("curl", "openssl") if shutil.which(tool) is None]
if missing:
    tap.ok(False, "curl and openssl are installed (the Debian packages curl and openssl): "
           "this test talks TLS with them", "missing: " + ", ".join(missing))
    tap.done(env)

ca = tlskit.CA(env.path("pki"))
cert_a = ca.server("gate-a")
cert_b = ca.server("gate-b")
other_ca = tlskit.CA(env.path("pki-other"), name="another CA")
mismatched = other_ca.server("stranger")
# What lcgate is configured with: copies, replaced in place at reload.
live_cert, live_key = env.path("live.pem"), env.path("live.key")


def install(pair):
    shutil.copy(pair.chain, live_cert)
    shutil.copy(pair.key, live_key)


def serial_of(pem):
    p = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", pem],
                       capture_output=True, text=True, timeout=30)
    return int(p.stdout.strip().split("=", 1)[1], 16)


SERIAL_A, SERIAL_B = serial_of(cert_a.cert), serial_of(cert_b.cert)
mock = env.mock()
PATH = c.V1 + "?limit=5"


def client_ctx():
    ctx = ssl.create_default_context(cafile=ca.cert)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def tls_conn(port, ctx=None, session=None):
    """A verified TLS connection (an ssl.SSLSocket)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return (ctx or client_ctx()).wrap_socket(raw, server_hostname="localhost",
                                              session=session)


def served_serial(port):
    with tls_conn(port) as s:
        der = s.getpeercert(binary_form=True)
    p = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"],
                       input=der, capture_output=True, timeout=30)
    return int(p.stdout.decode().strip().split("=", 1)[1], 16)


def https_get(conn, path=PATH):
    conn.request("GET", path)
    r = conn.getresponse()
    return r.status, r.read()


def s_client(port, *args, stdin=b""):
    p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                        "-CAfile", ca.cert, "-servername", "localhost"] + list(args),
                       input=stdin, capture_output=True, timeout=30)
    return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")


def metric(g, name, labels=""):
    text = t.request(g.admin, "GET", "/metrics").body.decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and labels in line)


def read_all(s, timeout=5):
    """Everything until the server closes; None if it does not within timeout."""
    s.settimeout(timeout)
    got = b""
    try:
        while True:
            b = s.recv(4096)
            if not b:
                return got
            got += b
    except (socket.timeout, ConnectionResetError):
        return None


def check_curl(g, w):
    url = "https://localhost:%d%s" % (g.port, PATH)
    p = subprocess.run(["curl", "-sS", "--cacert", ca.cert, "--resolve",
                        "localhost:%d:127.0.0.1" % g.port, "-o", "/dev/null",
                        "-w", "%{http_code} %{num_connects} %{http_version} %header{x-cache}\\n",
                        url, "-o", "/dev/null", url], capture_output=True, text=True, timeout=60)
    lines = p.stdout.split("\n")
    tap.ok(p.returncode == 0 and lines[0].startswith("200 1 1.1") and
           lines[1] == "200 0 1.1 HIT",
           "workers=%d: curl --cacert: a 200, then a hit on the same kept-alive TLS "
           "connection (HTTP/1.1)" % w, (p.returncode, p.stdout, p.stderr[-500:]))


def parse_answers(data):
    """[(status, body)] of a stream of HTTP/1.1 answers with Content-Length."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("a truncated head: %r" % data[:200])
        m = re.search(rb"\r\nContent-Length: (\d+)", head)
        n = int(m.group(1)) if m else 0
        out.append((int(head.split(b" ", 2)[1]), rest[:n]))
        if len(rest) < n:
            raise ValueError("a truncated body")
        data = rest[n:]
    return out


def check_large(g, w):
    conn = http.client.HTTPSConnection("localhost", g.port, context=client_ctx(), timeout=10)
    conn.sock = tls_conn(g.port)
    big = c.V1 + "?limit=1000"
    first, again = https_get(conn, big), https_get(conn, big)
    conn.close()
    tap.ok(first[0] == 200 and len(first[1]) > 65536 and again == first,
           "workers=%d: an 80 KB answer (many TLS records) arrives whole, miss and hit, on one "
           "connection" % w, (first[0], len(first[1]), again[0], len(again[1])))
    for n, path in ((300, PATH), (1000, c.V1 + "?limit=20")):
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.settimeout(10)
        raw.connect(("127.0.0.1", g.port))
        s = client_ctx().wrap_socket(raw, server_hostname="localhost")
        one = b"GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % path.encode()
        s.sendall(one * (n - 1) + one.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        time.sleep(0.5)                   # the server's writes meet a full window
        got = read_all(s, timeout=30)
        s.close()
        try:
            answers = parse_answers(got or b"")
        except ValueError as e:
            answers = [("unparsable", str(e))]
        tap.ok(len(answers) == n and all(a == (200, answers[0][1]) for a in answers),
               "workers=%d: %d pipelined requests (%d-byte answers) from a slow reader: %d "
               "whole answers" % (w, n, len(answers[0][1]) if answers else 0, n),
               (len(answers), answers[-1:]))


def check_protocols(g, w):
    rc, out = s_client(g.port, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    tap.ok(rc != 0 and "protocol version" in out,
           "workers=%d: TLS 1.1 is refused (protocol version alert)" % w, out[-600:])
    for flag, name in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
        rc, out = s_client(g.port, flag)
        tap.ok(rc == 0 and re.search(r"^New, %s," % re.escape(name), out, re.M) and
               "Verify return code: 0 (ok)" in out,
               "workers=%d: %s is spoken, with the certificate verified" % (w, name), out[-600:])
    rc, out = s_client(g.port, "-alpn", "h2,http/1.1")
    tap.ok(rc == 0 and "ALPN protocol: http/1.1" in out,
           "workers=%d: ALPN: http/1.1 is selected (client offers h2,http/1.1)" % w, out[-600:])
    rc, out = s_client(g.port, "-alpn", "h2")
    tap.ok(rc != 0 and "no application protocol" in out,
           "workers=%d: a client that offers only h2 is refused (no_application_protocol)" % w,
           out[-600:])
    with tls_conn(g.port, ctx=ssl.create_default_context(cafile=ca.cert)) as s:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                  % PATH.encode())
        got = read_all(s) or b""
        tap.ok(s.selected_alpn_protocol() is None and got.startswith(b"HTTP/1.1 200"),
               "workers=%d: a client without ALPN is served" % w, got[:200])


def check_resumption(g, w):
    rc, out = s_client(g.port, "-tls1_2", "-reconnect")
    tap.ok(rc == 0 and re.search(r"^Reused, TLSv1\.2", out, re.M),
           "workers=%d: a TLS 1.2 session resumes (s_client -reconnect)" % w, out[-800:])
    ctx = client_ctx()
    first = http.client.HTTPSConnection("localhost", g.port, context=ctx, timeout=10)
    first.sock = tls_conn(g.port, ctx)
    status, _ = https_get(first)           # reading the answer reads the tickets too
    session = first.sock.session
    first.close()
    with tls_conn(g.port, ctx, session=session) as s:
        reused, version = s.session_reused, s.version()
    tap.ok(status == 200 and reused and version == "TLSv1.3",
           "workers=%d: a TLS 1.3 session resumes (ticket)" % w, (status, reused, version))


def check_plain(g, w):
    before = metric(g, "lcgate_requests_total", 'status="400"')
    s = socket.create_connection(("127.0.0.1", g.port), timeout=5)
    s.sendall(b"GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % PATH.encode())
    got = read_all(s)
    s.close()
    head, _, body = (got or b"").partition(b"\r\n\r\n")
    tap.ok(got is not None and head.startswith(b"HTTP/1.1 400 ") and
           b"Connection: close" in head and
           re.match(rb'^\{"detail":"[^"]*plain HTTP request[^"]*TLS port[^"]*"\}$', body),
           "workers=%d: a plain HTTP request to the TLS port: 400, a JSON detail, closed" % w,
           got)
    counted = t.wait_for(lambda: metric(g, "lcgate_requests_total", 'status="400"') >= before + 1
                         and re.search(r'"status":400', g.log()), 5, "the 400 counted")
    tap.ok(counted and metric(g, "lcgate_requests_total", 'status="400"') == before + 1,
           "workers=%d: that 400 is counted and logged once" % w)


def check_silent(g, w):
    for what, send in (("says nothing", b""), ("sends half a handshake", b"\x16\x03\x01")):
        s = socket.create_connection(("127.0.0.1", g.port), timeout=5)
        t0 = time.monotonic()
        if send:
            s.sendall(send)
        got = read_all(s, timeout=8)
        took = time.monotonic() - t0
        s.close()
        tap.ok(got == b"" and 0.8 <= took < 5,
               "workers=%d: a client that %s is closed after header_timeout (1s), without "
               "an answer" % (w, what), (got, round(took, 2)))


def check_reload(g, w):
    old = http.client.HTTPSConnection("localhost", g.port, context=client_ctx(), timeout=10)
    old.sock = tls_conn(g.port)
    first = https_get(old)
    old_serial = served_serial(g.port)
    install(cert_b)
    os.kill(g.proc.pid, signal.SIGHUP)
    swapped = t.wait_for(lambda: served_serial(g.port) == SERIAL_B, 10, "the new certificate")
    second = https_get(old)
    tap.ok(old_serial == SERIAL_A and swapped,
           "workers=%d: after the files are replaced and SIGHUP, new connections get the new "
           "certificate (serial %d, was %d)" % (w, SERIAL_B, SERIAL_A))
    tap.ok(first[0] == 200 and second == (200, first[1]) and
           t.wait_for(lambda: old.sock.getpeercert()["serialNumber"], 1, "serial")
           == "%02X" % SERIAL_A,
           "workers=%d: a connection opened before the reload keeps working, on the old "
           "certificate" % w, (first[0], second[0]))
    old.close()
    with open(live_key, "w") as f:
        f.write("not a key\n")
    os.kill(g.proc.pid, signal.SIGHUP)
    t.wait_for(lambda: "reload rejected" in g.log(), 10, "the reload refused")
    line = [x for x in g.log().splitlines() if "reload rejected" in x]
    tap.ok(line and live_key in line[-1] and served_serial(g.port) == SERIAL_B,
           "workers=%d: a broken key at reload is logged and the running certificate stays"
           % w, line[-1:])
    install(cert_a)


def run(workers):
    install(cert_a)
    conf = c.gate_conf(mock, server={"workers": str(workers), "tls_cert": live_cert,
                                     "tls_key": live_key, "header_timeout": "1s"})
    g = c.start_gate(tap, env, conf, name="lcgate-w%d" % workers)
    if g is None:
        return
    for check in (check_curl, check_large, check_protocols, check_resumption, check_plain, check_silent,
                  check_reload):
        try:
            check(g, workers)
        except Exception as e:
            tap.ok(False, "workers=%d: %s runs" % (workers, check.__name__), repr(e))
    g.stop()


def check_refused(conf_extra, want, name):
    base = open(env.path("base.conf")).read()
    path = env.path("bad.conf")
    with open(path, "w") as f:
        f.write(base + conf_extra)
    p = subprocess.run([t.LCGATE, "-t", "-c", path], capture_output=True, text=True, timeout=30)
    tap.ok(p.returncode == 1 and re.search(want, p.stderr),
           "lcgate -t refuses %s: %s" % (name, want), p.stderr)
    return path


for w in (1, 2):
    run(w)

with open(env.path("base.conf"), "w") as f:
    f.write("[upstream]\nbase_url = %s\n[server]\nlisten = 127.0.0.1:%d\n"
            "admin_listen = 127.0.0.1:%d\n" % (mock.url, t.free_port(), t.free_port()))
check_refused("tls_cert = %s\n" % cert_a.chain,
              r"bad\.conf:6: tls_cert and tls_key go together", "tls_cert without tls_key")
check_refused("tls_key = %s\n" % cert_a.key,
              r"bad\.conf:6: tls_cert and tls_key go together", "tls_key without tls_cert")
check_refused("tls_cert = %s\ntls_key = %s\n" % (env.path("nowhere.pem"), cert_a.key),
              r"tls_cert \S+nowhere\.pem: cannot read: No such file or directory",
              "a missing certificate file")
check_refused("tls_cert = %s\ntls_key = %s\n" % (cert_a.key, cert_a.key),
              r"tls_cert \S+gate-a\.key: not a PEM certificate \(chain\): no start line",
              "a certificate file that holds no certificate")
check_refused("tls_cert = %s\ntls_key = %s\n" % (env.path("pki"), cert_a.key),
              r"tls_cert \S+pki: cannot read: not a regular file", "a directory for a certificate")
check_refused("tls_cert = %s\ntls_key = %s\n" % (cert_a.chain, cert_a.cert),
              r"tls_key \S+gate-a\.pem: not a PEM private key", "a key file that holds no key")
bad = check_refused("tls_cert = %s\ntls_key = %s\n" % (cert_a.chain, mismatched.key),
                    r"tls_key \S+stranger\.key: does not match tls_cert: key values mismatch",
                    "a key that does not match the certificate")
p = env.spawn([t.LCGATE, "-c", bad], "lcgate-bad")
rc = p.wait(30)
log = open(p.logpath).read()
tap.ok(rc == 1 and "key values mismatch" in log and "stranger.key" in log,
       "lcgate does not start with a mismatched key, and says why", log[-600:])
tap.done(env)
