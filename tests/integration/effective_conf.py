"""lcgate -T: checks the configuration, then prints the effective one
(file, LCGATE_* overrides, defaults) as INI on stdout: every key of the
table appears, an environment override shows (and says so), no secret is
printed (keys, key file contents, the Redis password, token hashes), and
the output is itself a configuration that -t accepts and -T prints the
same, but for the secrets it does not show: the admin token hash and the
Redis password must be put back, and with [client] sections -t refuses
it until their token hashes are."""
import configparser
import hashlib
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import lcgtest as t  # noqa: E402

tap = t.Tap()
env = t.Env("lcgate-effective")
PASSWORD = "s3cr3t-redis-pw"
ADMIN_HASH = hashlib.sha256(b"admin-token-xyz").hexdigest()
CLIENT_HASH = hashlib.sha256(b"client-token-xyz").hexdigest()
PROXY_PASSWORD = "basic-auth-pw"
SECRETS = [t.KEY_A, t.KEY_B, PASSWORD, PROXY_PASSWORD, ADMIN_HASH, CLIENT_HASH]


def run(args, extra_env=None):
    e = {k: v for k, v in os.environ.items()
         if not k.startswith("LCGATE_") or k in ("LCGATE_BIN", "LCGATE_SRCDIR")}
    e.pop("LLAMA_CLOUD_API_KEY", None)
    e.pop("CREDENTIALS_DIRECTORY", None)
    e.update(extra_env or {})
    p = subprocess.run([t.LCGATE] + args, capture_output=True, text=True, env=e, timeout=20)
    return p.returncode, p.stdout, p.stderr


def write(name, text, mode=0o644):
    path = env.path(name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def table_keys():
    """(section, key) of every key of the four sections of the key table
    (src/conf_keys.c), as lcgate -K prints it."""
    rc, out, err = run(["-K"])
    rows = [line.split("\t") for line in out.splitlines()]
    return [(r[0], r[1]) for r in rows if r[0] not in ("project", "client")]


def parse(text):
    """section -> {key: value}, with "; key = ..." lines as key: None."""
    out, sec = {}, None
    for line in text.splitlines():
        m = re.match(r"^\[(.+)\]$", line)
        if m:
            sec = out.setdefault(m.group(1), {})
            continue
        m = re.match(r"^(;\s*)?(\w+) = (.*)$", line)
        if m and sec is not None:
            sec[m.group(2)] = None if m.group(1) else m.group(3)
    return out


key_a = write("key_a", t.KEY_A + "\n", 0o600)
key_b = write("key_b", t.KEY_B + "\n", 0o600)
base = """[server]
listen = 127.0.0.1:18080
admin_token_sha256 = %s
[upstream]
base_url = https://gw:%s@api.example.com/
api_key_file = %s
[cache]
store = redis
redis_url = redis://lcgate:%s@127.0.0.1:6399/2
ttl = 90s
[project "%s"]
rate = 2/min
api_key_file = %s
""" % (ADMIN_HASH, PROXY_PASSWORD, key_a, PASSWORD, t.PROJ_B, key_b)
path = write("base.conf", base)
overrides = {"LCGATE_SERVER_MAX_CONNECTIONS": "1234", "LCGATE_CACHE_TTL": "45s"}
rc, out, err = run(["-T", "-c", path], overrides)
tap.ok(rc == 0 and "configuration is valid" in err, "-T exits 0 and says the file is valid",
       (rc, err))
conf = parse(out)
missing = ["[%s] %s" % sk for sk in table_keys() if sk[1] not in conf.get(sk[0], {})]
tap.ok(len(table_keys()) >= 39 and not missing,
       "every key of the table appears, in its section (%d keys)" % len(table_keys()), missing)
tap.eq(conf.get("server", {}).get("max_connections"), "1234", "an environment override shows")
tap.ok("; from LCGATE_SERVER_MAX_CONNECTIONS\nmax_connections = 1234" in out,
       "and says which variable set it")
tap.eq(conf.get("cache", {}).get("ttl"), "45s", "an override wins over the file (ttl = 90s there)")
tap.eq(conf.get("server", {}).get("listen"), "127.0.0.1:18080", "a value from the file shows")
tap.ok(conf.get("server", {}).get("drain_timeout") == "10s" and conf.get("cache", {}).get("memory_max") == "64MiB" and
       conf.get("ratelimit", {}).get("rate") == "20/s", "defaults show, in the units they are written in")
leaked = [s for s in SECRETS if s in out or s in err]
tap.ok(not leaked, "no secret in the output: keys, the Redis password, token hashes", leaked)
tap.eq(conf.get("cache", {}).get("redis_url"), "redis://lcgate:****@127.0.0.1:6399/2",
       "the Redis password is masked, the rest of the URL shown")
tap.eq(conf.get("upstream", {}).get("base_url"), "https://gw:****@api.example.com",
       "a password in base_url is masked too")
tap.ok("; admin_token_sha256 = (set, not shown)" in out, "the admin token hash is only 'set'")
tap.ok(conf.get("upstream", {}).get("api_key_file") == key_a and
       "api_key_file = %s\n; key: set (from api_key_file)" % key_a in out,
       "the key file's path shows and the key is 'set'")
tap.ok(conf.get('project "%s"' % t.PROJ_B, {}).get("api_key_file") == key_b and
       conf.get('project "%s"' % t.PROJ_B, {}).get("rate") == "2/min",
       "a project's section shows, its key file by path")
tap.ok("; proxy = (unset)" in out and "; allowed_origins = (unset)" in out and
       "; rate = (unset)" in out, "unset keys show as such, commented")
try:
    configparser.ConfigParser(strict=True, interpolation=None).read_string(out)
    tap.ok(True, "the output is INI (Python's configparser reads it)")
except configparser.Error as e:
    tap.ok(False, "the output is INI (Python's configparser reads it)", e)

# Round trip: the output is a configuration that -t accepts and -T prints
# again unchanged (past its first line, which names the file).
again = write("again.conf", out)
rc, out2, err2 = run(["-T", "-c", again])
tap.ok(rc == 0, "-t accepts the output (the masked password is a valid password)", err2)
want = out.partition("\n")[2]
for note, instead in (("; from LCGATE_SERVER_MAX_CONNECTIONS\n", ""),
                      ("; from LCGATE_CACHE_TTL\n", ""),
                      ("; the password is masked: put it back to use this file\n", ""),
                      ("admin_token_sha256 = (set, not shown)", "admin_token_sha256 = (unset)")):
    want = want.replace(note, instead)
tap.eq(out2.partition("\n")[2], want,
       "and -T of it prints the same configuration, but for what was not shown: the admin "
       "token hash (now unset) and the Redis password (now the mask)")

# The key from the environment, pass-through mode, a [client] section.
path = write("env.conf", "[client \"reporting\"]\ntoken_sha256 = %s\nprojects = *\n"
             "rate = 10/s\n" % CLIENT_HASH)
rc, out, err = run(["-T", "-c", path], {"LLAMA_CLOUD_API_KEY": t.KEY_B})
tap.ok(rc == 0 and "; key: set (from LLAMA_CLOUD_API_KEY)" in out and
       "; api_key_file = (unset)" in out,
       "a key from LLAMA_CLOUD_API_KEY is 'set', named by its source", (rc, err))
tap.ok(not [s for s in SECRETS if s in out or s in err], "and neither it nor the token "
       "hash is printed")
tap.ok('[client "reporting"]\n; token_sha256 = (set, not shown)\nprojects = *\nrate = 10/s\n'
       "burst = 10\n" in out, "a client's section shows, its token hash only 'set'", out)
rc, _, err = run(["-t", "-c", write("client-again.conf", out)],
                 {"LLAMA_CLOUD_API_KEY": t.KEY_B})
tap.ok(rc == 1 and "needs token_sha256" in err,
       "with [client] sections the output needs the token hashes put back before -t "
       "accepts it (documented)", err)
rc, out, err = run(["-T", "-c", write("none.conf", "")])
tap.ok(rc == 0 and "; key: unset (pass-through mode)" in out,
       "without a key: 'unset (pass-through mode)'")

rc, out, err = run(["-T", "-c", write("bad.conf", "[cache]\nttl = forever\n")])
tap.ok(rc == 1 and out == "" and "bad.conf:2:" in err,
       "an invalid file: exit 1 with FILE:LINE, nothing on stdout", (rc, out, err))
rc, out, err = run(["-h"])
tap.ok("-T" in out, "-h lists -T")
tap.done()
