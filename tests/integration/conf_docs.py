"""The documents name exactly the keys of the configuration table, with
its defaults: conf/lcgate.conf, doc/lcgate.conf.5.in and the README's
"Configuration keys" table, read from the source tree, against the table
that lcgate -K prints (src/conf_keys.c). For each document: every key of
the table appears in its section, a key with a default shows that default
as the table spells it, a key without one shows as unset, and no key is
named that the table does not have. lcgate.conf(5) also names each key's
type as the table does, and its RELOADING section, the comments of
lcgate.conf and the README say "restart" for exactly the keys a reload
does not apply, and lcgate.conf(5) gives the bounds of each key that has
some ("More than 0.", "At least 64KiB.")."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import lcgtest as t  # noqa: E402

tap = t.Tap()


def read(*path):
    with open(os.path.join(t.SRCDIR, *path)) as f:
        return f.read()


def table():
    """(section, name) -> {type, default (None: unset), restart}."""
    p = subprocess.run([t.LCGATE, "-K"], capture_output=True, text=True, timeout=20)
    rows = {}
    for line in p.stdout.splitlines():
        sec, name, typ, default, reload, lo, hi, doc = line.split("\t")
        rows[(sec, name)] = {"type": typ, "default": None if default == "-" else default,
                             "restart": reload == "restart", "doc": doc,
                             "min": None if lo == "-" else lo, "max": None if hi == "-" else hi}
    return p.returncode, rows


def section_of(header):
    """[server] -> server; [project "id"] -> project; [client "name"] -> client."""
    m = re.match(r'^\[(\w+)(?: \S.*)?\]$', header.strip())
    return m.group(1) if m else None


def compare(doc, found, rows):
    """found: (section, name) -> {default: str or None, restart: bool or None}.
    The TAP lines of one document."""
    missing = ["[%s] %s" % k for k in rows if k not in found]
    tap.ok(not missing, "%s names every key of the table (%d)" % (doc, len(rows)), missing)
    unknown = ["[%s] %s" % k for k in found if k not in rows]
    tap.ok(not unknown, "%s names no key the table does not have" % doc, unknown)
    wrong = ["[%s] %s: %r, the table %r" % (k + (f["default"], rows[k]["default"]))
             for k, f in sorted(found.items())
             if k in rows and f["default"] != rows[k]["default"]]
    tap.ok(not wrong, "%s gives every default as the table does (unset where it has none)"
           % doc, "\n".join(wrong))
    wrong = ["[%s] %s" % k for k, f in sorted(found.items())
             if k in rows and f.get("restart") is not None and
             f["restart"] != rows[k]["restart"]]
    tap.ok(not wrong, "%s says restart for exactly the keys a reload does not apply" % doc,
           wrong)


def example_conf(rows):
    """conf/lcgate.conf: "key = default" lines, "; key = example" for the
    keys without a default and in the commented [project] and [client]
    examples; "restart" in the comment just above a key that needs one."""
    found, sec, comment = {}, None, []
    for line in read("conf", "lcgate.conf").splitlines():
        m = re.match(r'^(?:;\s*)?(\[.*\])\s*$', line)
        if m:
            sec, comment = section_of(m.group(1)), []
            continue
        m = re.match(r'^(;\s*)?([a-z0-9_]+) = (.*)$', line)
        if m and sec is not None:
            repeating = sec in ("project", "client")
            commented = m.group(1) is not None
            # An uncommented key shows its default; a commented one is unset
            # (the sections that repeat are examples: their keys have none).
            default = None if commented or repeating else m.group(3).strip()
            if commented and not repeating and (sec, m.group(2)) in rows and \
                    rows[(sec, m.group(2))]["default"] is not None:
                default = "(commented out)"
            found[(sec, m.group(2))] = {
                "default": default,
                "restart": None if repeating else any("restart" in c for c in comment)}
            comment = []
            continue
        comment = comment + [line] if line.startswith(";") else []
    return found


def unescape(s):
    return s.replace("\\-", "-").replace("\\&", "").replace("\\%", "")


def man_defaults(text):
    """The default values an entry's text gives: [] for "Not set by
    default" or "Default: none", else the words of "Default:" (one) or
    "Defaults:" (one per key, "X and Y")."""
    if "Not set by default" in text or re.search(r"Default: none\b", text) or \
            re.search(r"^Required\.", text, re.M):
        return []
    m = re.search(r"Defaults?:\n((?:\.BR? \S+.*\n|and\n)+)", text)
    if m is None:
        return None
    return [unescape(line.split()[1]) for line in m.group(1).splitlines()
            if line.startswith(".B")]


def bound_phrase(row):
    """How lcgate.conf(5) words a key's bounds, or None."""
    lo, hi = row["min"], row["max"]
    if lo is None and hi is None:
        return None
    if hi is None:
        return "More than 0." if lo in ("1", "1ms") else "At least %s." % lo
    return "At most %s." % hi if lo is None else "%s to %s" % (lo, hi)


def plain(text):
    """troff text as words: .B/.BR lines joined to the rest."""
    text = re.sub(r"^\.BR? ", "", text, flags=re.M)
    return re.sub(r" ([.,;])", r"\1", " ".join(text.split()))


def man_page(rows):
    """doc/lcgate.conf.5.in: under each .SH [section], entries .TP (.TQ)
    .BI key " type", their defaults and bounds, and the RELOADING
    section's list."""
    found, types, sec, group, text = {}, {}, None, [], ""

    def close():
        defaults = man_defaults(text)
        for i, name in enumerate(group):
            if defaults is None:
                d = "(no default given)"
            elif not defaults:
                d = None
            else:
                d = defaults[i] if len(defaults) == len(group) else "(%s)" % " ".join(defaults)
            found[(sec, name)] = {"default": d, "restart": None, "text": plain(text)}

    src = read("doc", "lcgate.conf.5.in")
    lines = src.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(".SH"):
            if group:
                close()
            group, text = [], ""
            m = re.match(r'^\.SH (\[.*\])$', line.replace("\\(dq", '"'))
            sec = section_of(m.group(1)) if m else None
        elif sec and line in (".TP", ".TQ") and i + 1 < len(lines):
            m = re.match(r'^\.BI ([a-z0-9_]+) " (\w+)"', lines[i + 1])
            if m:
                if line == ".TP" and group:
                    close()
                    group, text = [], ""
                group.append(m.group(1))
                types[(sec, m.group(1))] = m.group(2)
                i += 2
                continue
        elif group:
            text += line + "\n"
        i += 1
    if group:
        close()
    wrong = ["[%s] %s: %s, the table %s" % (k + (typ, rows[k]["type"]))
             for k, typ in sorted(types.items()) if k in rows and typ != rows[k]["type"]]
    m = re.search(r"\n\.SH RELOADING\n(.*?)\n\.SH ", src, re.S)
    after = m.group(1).split("read at start only", 1) if m else ["", ""]
    restart = set(re.findall(r"^\.BR? ([a-z0-9_]+)", after[-1], re.M)) if len(after) == 2 \
        else set()
    for k, f in found.items():
        if k[0] not in ("project", "client"):
            f["restart"] = k[1] in restart
    for k, f in sorted(found.items()):
        phrase = bound_phrase(rows[k]) if k in rows else None
        if phrase is not None and phrase not in f["text"]:
            wrong.append("[%s] %s: does not say %r" % (k + (phrase,)))
    return found, wrong


def readme(rows):
    """README.md, "### Configuration keys": rows | `[section] a` / `b` |
    `default` / unset... | meaning | (one default: the same for each key),
    "restart" in the meaning of a key that needs one."""
    text = read("README.md")
    m = re.search(r"\n### Configuration keys\n(.*?)\n#", text, re.S)
    found = {}
    for line in (m.group(1) if m else "").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`["):
            continue
        names = re.findall(r"`([^`]+)`", cells[0])
        km = re.match(r'^(\[.*\]) (\w+)$', names[0])
        if km is None:
            continue
        sec = section_of(km.group(1))
        keys = [km.group(2)] + names[1:]
        defaults = [d.strip() for d in cells[1].split(" / ")]
        if len(defaults) == 1:
            defaults = defaults * len(keys)  # the same for every key of the row
        elif len(defaults) != len(keys):
            defaults = ["(%s)" % cells[1]] * len(keys)
        for name, d in zip(keys, defaults):
            dm = re.match(r"^`([^`]+)`$", d)
            if dm:
                value = dm.group(1)
            elif re.match(r"^(unset|none|required)\b", d):
                value = None
            else:
                value = "(%s)" % d
            found[(sec, name)] = {"default": value,
                                  "restart": None if sec in ("project", "client")
                                  else "restart" in cells[2]}
    return found


rc, rows = table()
tap.ok(rc == 0 and len(rows) >= 49, "lcgate -K prints the table (%d keys)" % len(rows), rc)
doc_lines = [k for k, r in rows.items() if not r["doc"] or r["type"] == ""]
tap.ok(not doc_lines, "every key has a type and a line of documentation", doc_lines)
compare("conf/lcgate.conf", example_conf(rows), rows)
found, wrong_types = man_page(rows)
compare("lcgate.conf(5)", found, rows)
tap.ok(not wrong_types, "lcgate.conf(5) names each key's type and bounds as the table does",
       "\n".join(wrong_types))
compare("README.md", readme(rows), rows)
tap.done()
