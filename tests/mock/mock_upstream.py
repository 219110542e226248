#!/usr/bin/env python3
"""Mock of the LlamaCloud API's batch routes, for lcgate's tests.

Standard library only (Python 3.11). It answers the two list routes the way
the real FastAPI + pydantic v2 service does (see shared/spec/api-contract.md),
validating queries with its own re-implementation of pydantic-core's rules
(str_as_int from pydantic-core, date-times from speedate, UUIDs from the Rust
uuid crate), so that it can cross-check lcgate's normalizer and validator
without sharing any code with them.

Usage:
  mock_upstream.py --port-file FILE [--host 127.0.0.1] [--port 0]
                   --key KEY=PROJECT_UUID [--key ...]
                   [--jobs 137] [--batches 57] [--v2-default-page-size 25]
                   [--uuid-errors classic|current] [--verbose]

Routes (all need "Authorization: Bearer <key>"):
  GET  /api/v1/beta/batch-processing              list jobs (offset paging)
  POST /api/v1/beta/batch-processing              create a job
  GET  /api/v1/beta/batch-processing/{job_id}
  POST /api/v1/beta/batch-processing/{job_id}/cancel
  GET  /api/v2/batches                            list batches (token paging)
  POST /api/v2/batches                            create a batch
  GET  /api/v2/batches/{batch_id}
  POST /api/v2/batches/{batch_id}/cancel
Test control (no auth, not counted):
  GET /__stats, POST /__reset, GET|POST /__fault
"""

import argparse
import base64
import binascii
import hashlib
import itertools
import json
import math
import os
import random
import re
import signal
import socket
import struct
import sys
import threading
import time
import uuid as uuidlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote

# ---------------------------------------------------------------------------
# JSON helpers (FastAPI's JSONResponse: compact, ensure_ascii=False)


def jdumps(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


# ---------------------------------------------------------------------------
# Integers: pydantic-core str_as_int (src/input/shared.rs) on top of jiter's
# strict JSON integer grammar.

# Rust's str::trim() strips the Unicode White_Space property.
_RUST_WS = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_JSON_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")
_JSON_INT_RUN = re.compile(r"-?[1-9][0-9]*")
_MAX_INT_DIGITS = 4300


class IntParseError(Exception):
    def __init__(self, kind):
        super().__init__(kind)
        self.kind = kind  # "int_parsing" | "int_parsing_size"


def rust_trim(s):
    i, j = 0, len(s)
    while i < j and s[i] in _RUST_WS:
        i += 1
    while j > i and s[j - 1] in _RUST_WS:
        j -= 1
    return s[i:j]


def _strip_underscores(s):
    if s.startswith("_") or s.endswith("_") or "_" not in s or "__" in s:
        return None
    return s.replace("_", "")


def _strip_leading_zeros(s):
    if not s:
        return None
    c0 = s[0]
    if c0 == "0":
        pass
    elif c0 in "123456789-":
        return s
    else:
        return None
    for i in range(1, len(s)):
        c = s[i]
        if c in "0_":
            continue
        if c in "123456789-":
            return s[i:]
        if c == ".":
            return s[i - 1:]
        return None
    return s[-1:]


def _clean_int_str(s):
    len_before = len(s)
    s = rust_trim(s)
    if s.startswith("+"):
        suffix = s[1:]
        if suffix.startswith("-"):
            return None
        s = suffix
    negative = False
    if s.startswith("-"):
        suffix = s[1:]
        if suffix.startswith("-") or suffix.startswith("+"):
            return None
        negative = True
        s = suffix
    s = _strip_leading_zeros(s)
    if s is None:
        return None
    i = s.find(".")
    if i >= 0:
        decimal = s[i + 1:]
        if decimal and all(c == "0" for c in decimal):
            s = s[:i]
    stripped = _strip_underscores(s)
    if stripped is not None:
        return "-" + stripped if negative else stripped
    if len_before == len(s):
        return None
    return "-" + s if negative else s


def _jiter_int(s):
    """jiter NumberInt::try_from: (value | None, out_of_range)."""
    m = _JSON_INT_RUN.match(s)
    if m and m.end() > _MAX_INT_DIGITS:
        return None, True
    if _JSON_INT.fullmatch(s):
        return int(s), False
    return None, False


def str_as_int(s):
    v, too_big = _jiter_int(s)
    if too_big:
        raise IntParseError("int_parsing_size")
    if v is not None:
        return v
    cleaned = _clean_int_str(s)
    if cleaned is not None:
        v, too_big = _jiter_int(cleaned)
        if v is not None:
            return v
    raise IntParseError("int_parsing")


# ---------------------------------------------------------------------------
# UUIDs: the Rust uuid crate's Uuid::parse_str and its error messages.

_HEX = frozenset(b"0123456789abcdefABCDEF")
_UUID_CHAR_MSG = {
    # uuid <= 1.22 (pydantic-core <= 2.41.x and the brief's wording)
    "classic": "invalid character: expected an optional prefix of `urn:uuid:` "
               "followed by [0-9a-fA-F-], found `{}` at {}",
    # uuid >= 1.23 (pydantic-core 2.46)
    "current": "invalid character: found `{}` at {}",
}
UUID_WORDING = "classic"


class UuidParseError(Exception):
    pass


def _uuid_error(b):
    """InvalidUuid::into_err: the message for bytes that did not parse."""
    if len(b) >= 2 and b[0] == 0x7B and b[-1] == 0x7D:
        inner, offset, simple = b[1:-1], 1, False
    elif b.startswith(b"urn:uuid:"):
        inner, offset, simple = b[9:], 9, False
    else:
        inner, offset, simple = b, 0, True
    hyphens = 0
    bounds = [0, 0, 0, 0]
    idx = 0
    for ch in inner.decode("utf-8", "surrogatepass"):
        cp = ord(ch)
        if cp > 255 or not (ch == "-" or cp in _HEX):
            return _UUID_CHAR_MSG[UUID_WORDING].format(ch, idx + offset + 1)
        if ch == "-":
            if hyphens < 4:
                bounds[hyphens] = idx
            hyphens += 1
        idx += 1  # ASCII from here on
    if hyphens == 0 and simple:
        return "invalid length: expected length 32 for simple format, found %d" % len(b)
    if hyphens != 4:
        return "invalid group count: expected 5, found %d" % (hyphens + 1)
    starts = (0, 9, 14, 19, 24)
    expected = (8, 4, 4, 4, 12)
    for i in range(4):
        if bounds[i] != starts[i + 1] - 1:
            return "invalid group length in group %d: expected %d, found %d" % (
                i, expected[i], bounds[i] - starts[i])
    return "invalid group length in group 4: expected 12, found %d" % (len(b) - starts[4])


def parse_uuid(s):
    """Return the canonical hyphenated lowercase form, or raise UuidParseError."""
    b = s.encode("utf-8", "surrogatepass")
    n = len(b)
    if n == 32:
        if all(c in _HEX for c in b):
            return str(uuidlib.UUID(hex=b.decode("ascii")))
        raise UuidParseError(_uuid_error(b))
    if n == 36:
        cand = b
    elif n == 38 and b[0] == 0x7B and b[-1] == 0x7D:
        cand = b[1:-1]
    elif n == 45 and b.startswith(b"urn:uuid:"):
        cand = b[9:]
    else:
        raise UuidParseError(_uuid_error(b))
    ok = all(cand[i] == 0x2D for i in (8, 13, 18, 23)) and all(
        cand[i] in _HEX for i in range(36) if i not in (8, 13, 18, 23))
    if not ok:
        raise UuidParseError(_uuid_error(cand))
    return str(uuidlib.UUID(hex=cand.decode("ascii").replace("-", "")))


# ---------------------------------------------------------------------------
# Date-times: pydantic-core's lax datetime validator = speedate
# DateTime::parse_bytes_with_config, and on failure the date fallback
# (Date::parse_bytes_with_config -> naive midnight), whose error is reported
# as datetime_from_date_parsing.  Results are (epoch microseconds, aware);
# naive values are read as if they were UTC.


class SpeedateError(Exception):
    pass


class YearZero(Exception):
    """speedate accepts year 0000; making a Python datetime of it fails afterwards
    (pydantic: datetime_parsing "Input should be a valid datetime, year 0 is out of range")."""


E_TOO_SHORT = "input is too short"
E_EXTRA = "unexpected extra characters at the end of the input"
E_DT_SEP = "invalid datetime separator, expected `T`, `t`, `_` or space"
E_DATE_SEP = "invalid date separator, expected `-`"
E_NOT_EXACT = "Timestamp is not an exact date"
E_YEAR = "invalid character in year"
E_MONTH = "invalid character in month"
E_DAY = "invalid character in day"
E_TIME_SEP = "invalid time separator, expected `:`"
E_HOUR = "invalid character in hour"
E_MINUTE = "invalid character in minute"
E_SECOND = "invalid character in second"
E_TZ_SIGN = "invalid timezone sign"
E_TZ_HOUR = "invalid timezone hour"
E_TZ_MINUTE = "invalid timezone minute"
E_RANGE_TZ_MINUTE = "timezone minute value is outside expected range of 0-59"
E_RANGE_TZ = "timezone offset must be less than 24 hours"
E_RANGE_MONTH = "month value is outside expected range of 1-12"
E_RANGE_DAY = "day value is outside expected range"
E_RANGE_HOUR = "hour value is outside expected range of 0-23"
E_RANGE_MINUTE = "minute value is outside expected range of 0-59"
E_RANGE_SECOND = "second value is outside expected range of 0-59"
E_FRACTION_MISSING = "second fraction digits missing after `.`"
E_DATE_TOO_SMALL = "dates before 0000 are not supported as unix timestamps"
E_DATE_TOO_LARGE = "dates after 9999 are not supported as unix timestamps"
E_TIME_TOO_LARGE = "numeric times may not exceed 86,399 seconds"

MS_WATERSHED = 20_000_000_000
UNIX_0000 = -62_167_219_200
UNIX_9999 = 253_402_300_799
I64_MIN = -(1 << 63)
I64_MAX = (1 << 63) - 1
U32_MAX = (1 << 32) - 1


def days_from_civil(y, m, d):
    y -= 1 if m <= 2 else 0
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _is_leap(y):
    return y % 400 == 0 if y % 100 == 0 else y % 4 == 0


def _digit(b, i, err):
    if i < len(b) and 48 <= b[i] <= 57:
        return b[i] - 48
    raise SpeedateError(err)


def _date_partial(b):
    if len(b) < 10:
        raise SpeedateError(E_TOO_SHORT)
    year = (_digit(b, 0, E_YEAR) * 1000 + _digit(b, 1, E_YEAR) * 100
            + _digit(b, 2, E_YEAR) * 10 + _digit(b, 3, E_YEAR))
    if b[4] != 0x2D:
        raise SpeedateError(E_DATE_SEP)
    month = _digit(b, 5, E_MONTH) * 10 + _digit(b, 6, E_MONTH)
    if b[7] != 0x2D:
        raise SpeedateError(E_DATE_SEP)
    day = _digit(b, 8, E_DAY) * 10 + _digit(b, 9, E_DAY)
    if month in (1, 3, 5, 7, 8, 10, 12):
        max_days = 31
    elif month in (4, 6, 9, 11):
        max_days = 30
    elif month == 2:
        max_days = 29 if _is_leap(year) else 28
    else:
        raise SpeedateError(E_RANGE_MONTH)
    if day < 1 or day > max_days:
        raise SpeedateError(E_RANGE_DAY)
    return year, month, day


def _time_at(b, off):
    """Time::parse_bytes_offset: (seconds of day, microseconds, tz or None)."""
    if len(b) - off < 5:
        raise SpeedateError(E_TOO_SHORT)
    hour = _digit(b, off, E_HOUR) * 10 + _digit(b, off + 1, E_HOUR)
    if b[off + 2] != 0x3A:
        raise SpeedateError(E_TIME_SEP)
    minute = _digit(b, off + 3, E_MINUTE) * 10 + _digit(b, off + 4, E_MINUTE)
    if hour > 23:
        raise SpeedateError(E_RANGE_HOUR)
    if minute > 59:
        raise SpeedateError(E_RANGE_MINUTE)
    length = 5
    second = micro = 0
    if off + 5 < len(b) and b[off + 5] == 0x3A:
        second = _digit(b, off + 6, E_SECOND) * 10 + _digit(b, off + 7, E_SECOND)
        if second > 59:
            raise SpeedateError(E_RANGE_SECOND)
        length = 8
        if off + 8 < len(b) and b[off + 8] in (0x2E, 0x2C):
            length = 9
            i = 0
            while off + length + i < len(b) and 48 <= b[off + length + i] <= 57:
                if i < 6:  # microseconds_precision = truncate
                    micro = micro * 10 + (b[off + length + i] - 48)
                i += 1
            if i == 0:
                raise SpeedateError(E_FRACTION_MISSING)
            if i < 6:
                micro *= 10 ** (6 - i)
            length += i
    pos = off + length
    tz = None
    if pos < len(b):
        c = b[pos]
        pos += 1
        if c in (0x5A, 0x7A):
            tz = 0
        else:
            if c == 0x2B:
                sign = 1
            elif c == 0x2D:
                sign = -1
            elif c == 226:  # U+2212 MINUS SIGN
                if pos >= len(b) or b[pos] != 136:
                    raise SpeedateError(E_TZ_SIGN)
                if pos + 1 >= len(b) or b[pos + 1] != 146:
                    raise SpeedateError(E_TZ_SIGN)
                pos += 2
                sign = -1
            else:
                raise SpeedateError(E_TZ_SIGN)
            h1 = _digit(b, pos, E_TZ_HOUR)
            h2 = _digit(b, pos + 1, E_TZ_HOUR)
            nxt = b[pos + 2] if pos + 2 < len(b) else None
            if nxt == 0x3A:
                pos += 3
                m1 = _digit(b, pos, E_TZ_MINUTE)
            elif nxt is not None and 48 <= nxt <= 57:
                pos += 2
                m1 = nxt - 48
            else:
                raise SpeedateError(E_TZ_MINUTE)
            m2 = _digit(b, pos + 1, E_TZ_MINUTE)
            minute_seconds = m1 * 600 + m2 * 60
            if minute_seconds >= 3600:
                raise SpeedateError(E_RANGE_TZ_MINUTE)
            tz = sign * (h1 * 36000 + h2 * 3600 + minute_seconds)
            if abs(tz) >= 24 * 3600:
                raise SpeedateError(E_RANGE_TZ)
            pos += 2
    if len(b) > pos:
        raise SpeedateError(E_EXTRA)
    return hour * 3600 + minute * 60 + second, micro, tz


def _wrap_i64(v):
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >= (1 << 63) else v


def _int_parse_internal(b):
    """speedate int_parse_bytes_internal: (value, None) or (None, failing byte|None)."""
    if not b:
        return None, None
    if b[0] == 0x2D and len(b) >= 2:
        neg, first, rest = True, b[1], b[2:]
    elif b[0] == 0x2B and len(b) >= 2:
        neg, first, rest = False, b[1], b[2:]
    else:
        neg, first, rest = False, b[0], b[1:]
    if not 48 <= first <= 57:
        return None, first
    v = first - 48
    for d in rest:
        v = _wrap_i64(v * 10)
        if not 48 <= d <= 57:
            return None, d
        v = _wrap_i64(v + d - 48)
        if v < 0:
            return None, d
    return (-v if neg else v), None


_LEXICAL_FLOAT = re.compile(rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _float_parse(b):
    """speedate float_parse_bytes: ("int", v) | ("float", f) | None."""
    v, bad = _int_parse_internal(b)
    if v is not None:
        return "int", v
    if bad == 0x2E:
        if _LEXICAL_FLOAT.fullmatch(b):
            return "float", float(b.decode("ascii"))
    return None


def _watershed(ts):
    if ts == I64_MIN:
        raise SpeedateError(E_DATE_TOO_SMALL)
    if abs(ts) <= MS_WATERSHED:
        return ts, 0
    q = abs(ts) // 1000
    seconds = q if ts >= 0 else -q
    micro = (ts - seconds * 1000) * 1000
    if micro < 0:
        seconds -= 1
        micro += 1_000_000
    return seconds, micro


def _check_date_range(second):
    if second < UNIX_0000:
        raise SpeedateError(E_DATE_TOO_SMALL)
    if second > UNIX_9999:
        raise SpeedateError(E_DATE_TOO_LARGE)


def _dt_from_timestamp(ts, us):
    second, extra = _watershed(ts)
    total = us + extra
    if total > U32_MAX:
        raise SpeedateError(E_TIME_TOO_LARGE)
    if total >= 1_000_000:
        second += total // 1_000_000
        if second > I64_MAX:
            raise SpeedateError(E_TIME_TOO_LARGE)
        total %= 1_000_000
    _check_date_range(second)
    return second * 1_000_000 + total


def _f64_to_i64(x):
    if x != x:
        return 0
    if x >= 9.223372036854775807e18:
        return I64_MAX
    if x <= -9.223372036854775808e18:
        return I64_MIN
    return int(x)


def _f64_to_u32(x):
    if x != x or x <= 0:
        return 0
    if x >= 4294967295.0:
        return U32_MAX
    return int(x)


def _round_half_away(x):
    if math.isinf(x) or x != x:
        return x
    r = math.floor(x)
    return r + 1 if x - r >= 0.5 else r


def _datetime_strict(b):
    """speedate DateTime::parse_bytes_with_config as pydantic calls it."""
    try:
        y, m, d = _date_partial(b)
        sep = b[10] if len(b) > 10 else None
        if sep not in (0x54, 0x74, 0x20, 0x5F):
            raise SpeedateError(E_DT_SEP)
        secs, micro, tz = _time_at(b, 11)
        if y == 0:
            raise YearZero()
        epoch = days_from_civil(y, m, d) * 86400 + secs - (tz or 0)
        return epoch * 1_000_000 + micro, tz is not None
    except SpeedateError as first_error:
        num = _float_parse(b)
        if num is None:
            raise first_error
        kind, v = num
        if kind == "int":
            return _dt_from_timestamp(v, 0), True
        norm = v / 1000.0 if abs(v) > MS_WATERSHED else v
        fl = math.floor(norm) if not math.isinf(norm) else norm
        seconds = _f64_to_i64(fl)
        micro = _f64_to_u32(_round_half_away((norm - float(seconds)) * 1_000_000.0))
        return _dt_from_timestamp(seconds, micro), True


def _date_fallback(b):
    """speedate Date::parse_bytes_with_config -> naive midnight."""
    try:
        y, m, d = _date_partial(b)
        if len(b) > 10:
            raise SpeedateError(E_EXTRA)
        if y == 0:
            raise YearZero()
        return days_from_civil(y, m, d) * 86400 * 1_000_000
    except SpeedateError as first_error:
        v, _bad = _int_parse_internal(b)
        if v is None:
            raise first_error
        seconds, micro = _watershed(v)
        _check_date_range(seconds)
        if seconds % 86400 != 0 or micro != 0:
            raise SpeedateError(E_NOT_EXACT)
        return seconds * 1_000_000


def parse_datetime(s):
    """Return (epoch_us, aware) or raise SpeedateError with the reported reason."""
    b = s.encode("utf-8", "surrogatepass")
    try:
        return _datetime_strict(b)
    except SpeedateError:
        pass
    return _date_fallback(b), False  # YearZero propagates from either step


# ---------------------------------------------------------------------------
# FastAPI-style query validation

V1_STATUS = ("pending", "running", "dispatched", "completed", "failed", "cancelled")
V1_JOB_TYPE = ("parse", "extract", "classify")
V2_STATUS = ("PENDING", "THROTTLED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED")
V2_JOB_TYPE = ("parse_v2", "extract_v2")


def enum_expected(values):
    q = ["'%s'" % v for v in values]
    return ", ".join(q[:-1]) + " or " + q[-1] if len(q) > 1 else q[0]


def err_entry(etype, loc, msg, value, ctx=None):
    e = {"type": etype, "loc": list(loc), "msg": msg, "input": value}
    if ctx is not None:
        e["ctx"] = ctx
    return e


def check_int(errs, loc, raw, ge=None, le=None):
    try:
        v = str_as_int(raw)
    except IntParseError as e:
        if e.kind == "int_parsing_size":
            errs.append(err_entry("int_parsing_size", loc,
                                  "Unable to parse input string as an integer, exceeded maximum size", raw))
        else:
            errs.append(err_entry("int_parsing", loc,
                                  "Input should be a valid integer, unable to parse string as an integer", raw))
        return None
    if ge is not None and v < ge:
        errs.append(err_entry("greater_than_equal", loc, "Input should be greater than or equal to %d" % ge,
                              raw, {"ge": ge}))
        return None
    if le is not None and v > le:
        errs.append(err_entry("less_than_equal", loc, "Input should be less than or equal to %d" % le,
                              raw, {"le": le}))
        return None
    return v


def check_enum(errs, loc, raw, values):
    if raw in values:
        return raw
    exp = enum_expected(values)
    errs.append(err_entry("enum", loc, "Input should be " + exp, raw, {"expected": exp}))
    return None


def check_uuid(errs, loc, raw):
    try:
        return parse_uuid(raw)
    except UuidParseError as e:
        reason = str(e)
        errs.append(err_entry("uuid_parsing", loc, "Input should be a valid UUID, " + reason, raw,
                              {"error": reason}))
        return None


def check_datetime(errs, loc, raw):
    try:
        return parse_datetime(raw)[0]
    except YearZero:
        reason = "year 0 is out of range"
        errs.append(err_entry("datetime_parsing", loc, "Input should be a valid datetime, " + reason, raw,
                              {"error": reason}))
        return None
    except SpeedateError as e:
        reason = str(e)
        errs.append(err_entry("datetime_from_date_parsing", loc,
                              "Input should be a valid datetime or date, " + reason, raw, {"error": reason}))
        return None


def read_query(query):
    """Starlette: parse_qsl(keep_blank_values=True) of the latin-1 query; last value wins."""
    params = {}
    for k, v in parse_qsl(query, keep_blank_values=True):
        params[k] = v
    return params


# ---------------------------------------------------------------------------
# Data


def _h(*parts):
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()


def det_uuid(*parts):
    return str(uuidlib.UUID(bytes=_h(*parts)[:16], version=4))


def det_rng(*parts):
    return random.Random(int.from_bytes(_h(*parts)[:16], "big"))


EPOCH_2025 = days_from_civil(2025, 1, 1) * 86400 * 1_000_000
EPOCH_2026 = days_from_civil(2026, 1, 1) * 86400 * 1_000_000


def fmt_ts(us):
    """pydantic's serialization of an aware UTC datetime: ...T..[.ffffff]Z"""
    secs, micro = divmod(us, 1_000_000)
    days, sod = divmod(secs, 86400)
    # civil_from_days
    z = days + 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    y += 1 if m <= 2 else 0
    s = "%04d-%02d-%02dT%02d:%02d:%02d" % (y, m, d, sod // 3600, sod % 3600 // 60, sod % 60)
    if micro:
        s += ".%06d" % micro
    return s + "Z"


def now_us():
    return time.time_ns() // 1000


class Rec:
    """One job or batch: its dict, cached compact JSON, and sort/filter keys."""

    __slots__ = ("d", "js", "created_us", "seq")

    def __init__(self, d, created_us, seq):
        self.d = d
        self.created_us = created_us
        self.seq = seq
        self.js = jdumps(d)

    def refresh(self):
        self.js = jdumps(self.d)


def _spread(rng, n, start_us, end_us):
    """n strictly increasing timestamps in [start, end)."""
    if n <= 0:
        return []
    slot = (end_us - start_us) // n
    return [start_us + i * slot + rng.randrange(max(1, slot // 2)) for i in range(n)]


ERROR_MESSAGES = (
    "Directory file could not be read",
    "Worker timed out after 3 attempts",
    "Parse configuration not found",
    "Upstream model returned an invalid response",
)


class Project:
    def __init__(self, pid, n_jobs, n_batches):
        self.pid = pid
        self.dirs = ["dir-" + det_uuid("dir", pid, k) for k in range(5)]
        self.configs = {
            "parse_v2": ["cfg-" + det_uuid("cfg", pid, "parse_v2", k) for k in range(2)],
            "extract_v2": ["cfg-" + det_uuid("cfg", pid, "extract_v2", k) for k in range(2)],
        }
        self.created = 0
        self.jobs = self._seed_jobs(n_jobs)        # newest first
        self.batches = self._seed_batches(n_batches)  # newest first

    # v1 jobs -------------------------------------------------------------
    def _job(self, rng, i, job_id, created, status, job_type, directory_id, total):
        started = completed = error = record = workflow = None
        processed = failed = skipped = 0
        last = created
        if status != "pending":
            workflow = "wf-" + det_uuid("wf", job_id)
        if status in ("running", "completed", "failed", "cancelled"):
            started = created + rng.randrange(1_000_000, 300_000_000)
            record = "jr-" + det_uuid("jr", job_id)
            last = started
        if status == "running":
            processed = rng.randrange(0, total)
            failed = rng.randrange(0, processed // 10 + 1)
        elif status == "completed":
            skipped = rng.randrange(0, total // 20 + 1)
            processed = total - skipped
            failed = rng.randrange(0, processed // 10 + 1)
        elif status == "failed":
            processed = rng.randrange(0, total + 1)
            failed = max(1, processed - rng.randrange(0, processed + 1))
            error = rng.choice(ERROR_MESSAGES)
        elif status == "cancelled":
            processed = rng.randrange(0, total + 1)
        if status in ("completed", "failed"):
            completed = started + rng.randrange(10_000_000, 3_600_000_000)
            last = completed
        updated = last + rng.randrange(0, 5_000_000)
        return {
            "id": job_id,
            "job_type": job_type,
            "project_id": self.pid,
            "status": status,
            "total_items": total,
            "completed_at": fmt_ts(completed) if completed is not None else None,
            "created_at": fmt_ts(created),
            "directory_id": directory_id,
            "effective_at": fmt_ts(created),
            "error_message": error,
            "failed_items": failed,
            "job_record_id": record,
            "processed_items": processed,
            "skipped_items": skipped,
            "started_at": fmt_ts(started) if started is not None else None,
            "updated_at": fmt_ts(updated),
            "workflow_id": workflow,
        }

    def _seed_jobs(self, n):
        rng = det_rng("v1-jobs", self.pid)
        times = _spread(rng, n, EPOCH_2025, EPOCH_2026)
        recs = []
        for i, created in enumerate(times):
            status = rng.choices(V1_STATUS, weights=(12, 10, 8, 45, 15, 10))[0]
            job_type = rng.choices(V1_JOB_TYPE, weights=(50, 30, 20))[0]
            directory = rng.choice(self.dirs)
            total = rng.randint(1, 400)
            d = self._job(rng, i, "bjb-" + det_uuid("job", self.pid, i), created, status, job_type,
                          directory, total)
            recs.append(Rec(d, created, i))
        recs.reverse()
        return recs

    # v2 batches ----------------------------------------------------------
    def _batch(self, rng, batch_id, created, status, jtype, cfg, src):
        updated = created + rng.randrange(0, 3_600_000_000) if status != "PENDING" else created
        return {
            "id": batch_id,
            "config": {"job": {"configuration_id": cfg, "type": jtype}},
            "project_id": self.pid,
            "source_directory_id": src,
            "status": status,
            "created_at": fmt_ts(created),
            "results": [],
            "updated_at": fmt_ts(updated),
        }

    def _seed_batches(self, n):
        rng = det_rng("v2-batches", self.pid)
        times = _spread(rng, n, EPOCH_2025, EPOCH_2026)
        recs = []
        for i, created in enumerate(times):
            status = rng.choices(V2_STATUS, weights=(15, 8, 12, 45, 12, 8))[0]
            jtype = rng.choices(V2_JOB_TYPE, weights=(60, 40))[0]
            cfg = rng.choice(self.configs[jtype])
            src = rng.choice(self.dirs[:4])
            d = self._batch(rng, "bat-" + det_uuid("batch", self.pid, i), created, status, jtype, cfg, src)
            recs.append(Rec(d, created, i))
        recs.reverse()
        return recs


class Store:
    def __init__(self, n_jobs, n_batches):
        self.n_jobs = n_jobs
        self.n_batches = n_batches
        self.lock = threading.RLock()
        self.projects = {}
        self.jobs_by_id = {}
        self.batches_by_id = {}

    def reset(self):
        with self.lock:
            self.projects.clear()
            self.jobs_by_id.clear()
            self.batches_by_id.clear()

    def project(self, pid):
        with self.lock:
            p = self.projects.get(pid)
            if p is None:
                p = Project(pid, self.n_jobs, self.n_batches)
                self.projects[pid] = p
                for r in p.jobs:
                    self.jobs_by_id[r.d["id"]] = r
                for r in p.batches:
                    self.batches_by_id[r.d["id"]] = r
            return p

    def snapshot(self, pid, kind):
        with self.lock:
            p = self.project(pid)
            return list(p.jobs if kind == "jobs" else p.batches)

    def create_job(self, pid, job_type, directory_id):
        with self.lock:
            p = self.project(pid)
            p.created += 1
            created = max(now_us(), (p.jobs[0].created_us + 1) if p.jobs else 0)
            job_id = "bjb-" + det_uuid("created-job", pid, p.created)
            d = p._job(det_rng("created-job", pid, p.created), 0, job_id, created, "pending",
                       job_type, directory_id, 0)
            rec = Rec(d, created, 1_000_000 + p.created)
            p.jobs.insert(0, rec)
            self.jobs_by_id[job_id] = rec
            return rec

    def create_batch(self, pid, jtype, cfg, src):
        with self.lock:
            p = self.project(pid)
            p.created += 1
            created = max(now_us(), (p.batches[0].created_us + 1) if p.batches else 0)
            batch_id = "bat-" + det_uuid("created-batch", pid, p.created)
            d = p._batch(det_rng("created-batch", pid, p.created), batch_id, created, "PENDING",
                         jtype, cfg or p.configs[jtype][0], src)
            rec = Rec(d, created, 1_000_000 + p.created)
            p.batches.insert(0, rec)
            self.batches_by_id[batch_id] = rec
            return rec

    def cancel(self, kind, rec):
        """Returns None on success, else the status that forbids it."""
        with self.lock:
            st = rec.d["status"]
            if kind == "jobs":
                if st in ("completed", "failed", "cancelled"):
                    return st
                rec.d["status"] = "cancelled"
            else:
                if st in ("COMPLETED", "FAILED", "CANCELLED"):
                    return st
                rec.d["status"] = "CANCELLED"
            rec.d["updated_at"] = fmt_ts(max(now_us(), rec.created_us + 1))
            rec.refresh()
            return None


# ---------------------------------------------------------------------------
# Stats and faults


class Control:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.by_route = {}
        self.last = []
        self.conns = set()
        self.fault = None

    def record(self, entry):
        with self.lock:
            self.requests += 1
            route = entry["method"] + " " + entry["path"]
            self.by_route[route] = self.by_route.get(route, 0) + 1
            self.conns.add(entry.pop("conn", None))
            self.last.append(entry)
            if len(self.last) > 50:
                del self.last[0]

    def stats(self):
        with self.lock:
            return {"requests": self.requests, "by_route": dict(self.by_route),
                    "connections": len(self.conns - {None}), "last": list(self.last)}

    def reset(self):
        with self.lock:
            self.requests = 0
            self.by_route = {}
            self.last = []
            self.conns = set()

    def set_fault(self, f):
        with self.lock:
            self.fault = f

    def get_fault(self):
        with self.lock:
            return dict(self.fault) if self.fault else None

    def take_fault(self, target):
        with self.lock:
            f = self.fault
            if not f:
                return None
            m = f.get("match")
            if m and m not in target:
                return None
            if f["count"] > 0:
                f["count"] -= 1
                if f["count"] == 0:
                    self.fault = None
            return dict(f)


FAULT_KEYS = {"delay_ms": int, "status": int, "reset": bool, "body": str, "count": int,
              "match": str, "headers": dict, "truncate": bool}


def parse_fault(obj):
    if not isinstance(obj, dict):
        raise ValueError("fault must be a JSON object")
    if not obj:
        return None
    f = {}
    for k, v in obj.items():
        t = FAULT_KEYS.get(k)
        if t is None:
            raise ValueError("unknown fault key %r" % k)
        if t is int and (isinstance(v, bool) or not isinstance(v, int)):
            raise ValueError("%s must be an integer" % k)
        if t is not int and not isinstance(v, t):
            raise ValueError("%s must be %s" % (k, t.__name__))
        f[k] = v
    if "headers" in f and not all(isinstance(v, str) for v in f["headers"].values()):
        raise ValueError("headers values must be strings")
    if "status" in f and not 100 <= f["status"] <= 599:
        raise ValueError("status must be 100..599")
    f.setdefault("count", -1)
    if f["count"] == 0 or f["count"] < -1:
        raise ValueError("count must be positive or -1")
    return f


# ---------------------------------------------------------------------------
# HTTP


class HttpError(Exception):
    def __init__(self, status, detail, headers=None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


V1_BASE = "/api/v1/beta/batch-processing"
V2_BASE = "/api/v2/batches"
ROUTES = [
    (re.compile(r"/api/v1/beta/batch-processing"), {"GET": "v1_list", "POST": "v1_create"}),
    (re.compile(r"/api/v1/beta/batch-processing/([^/]+)"), {"GET": "v1_get"}),
    (re.compile(r"/api/v1/beta/batch-processing/([^/]+)/cancel"), {"POST": "v1_cancel"}),
    (re.compile(r"/api/v2/batches"), {"GET": "v2_list", "POST": "v2_create"}),
    (re.compile(r"/api/v2/batches/([^/]+)"), {"GET": "v2_get"}),
    (re.compile(r"/api/v2/batches/([^/]+)/cancel"), {"POST": "v2_cancel"}),
]


def match_route(path):
    for rx, methods in ROUTES:
        m = rx.fullmatch(path)
        if m:
            return methods, m.groups()
    return None, ()


CONN_IDS = itertools.count(1)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mock-llamacloud/1"
    sys_version = ""

    def version_string(self):
        return self.server_version

    def setup(self):
        super().setup()
        self.conn_id = next(CONN_IDS)  # one handler per TCP connection
        # Headers and body go out in separate writes: without this, Nagle
        # and the peer's delayed ACK add ~40 ms to some answers.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send_error(self, code, message=None, explain=None):
        """Protocol-level errors (bad request line, URI too long...) as JSON too."""
        self.close_connection = True
        short = self.responses.get(code, ("Error",))[0]
        body = jdumps({"detail": message or short}).encode("utf-8")
        self.send_response(code, short)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Request-Id", getattr(self, "request_id", None) or uuidlib.uuid4().hex)
        self.send_header("Connection", "close")
        self.end_headers()
        if getattr(self, "command", None) != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("mock_upstream: %s - %s\n" % (self.address_string(), fmt % args))

    # every method goes through one dispatcher
    def do_GET(self):
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    # -- plumbing ---------------------------------------------------------
    def _read_body(self):
        te = self.headers.get("Transfer-Encoding")
        if te is not None and "chunked" in te.lower():
            parts = []
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise HttpError(400, "Incomplete chunked body")
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise HttpError(400, "Invalid chunk size")
                if size < 0:
                    raise HttpError(400, "Invalid chunk size")
                if size == 0:
                    while True:
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    break
                data = self.rfile.read(size)
                if len(data) < size:
                    raise HttpError(400, "Incomplete chunked body")
                parts.append(data)
                self.rfile.readline(65537)
            return b"".join(parts)
        cl = self.headers.get("Content-Length")
        if cl is None:
            return b""
        try:
            n = int(cl.strip())
        except ValueError:
            raise HttpError(400, "Invalid Content-Length")
        if n < 0:
            raise HttpError(400, "Invalid Content-Length")
        data = self.rfile.read(n) if n else b""
        if len(data) < n:
            self.close_connection = True
            raise HttpError(400, "Incomplete body")
        return data

    def _send(self, status, body, headers=None):
        if isinstance(body, str):
            body = body.encode("utf-8")
        elif not isinstance(body, (bytes, bytearray)):
            body = jdumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Request-Id", self.request_id)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _abort_reset(self):
        """Close the socket abruptly (RST) without answering."""
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            self.rfile.close()
        except OSError:
            pass
        try:
            self.connection.close()
        except OSError:
            pass
        import io
        self.rfile = io.BytesIO()
        self.wfile = io.BytesIO()
        self.close_connection = True

    def _dispatch(self):
        self.request_id = self.headers.get("X-Request-Id") or uuidlib.uuid4().hex
        raw_path, _, query = self.path.partition("?")
        raw_path = raw_path.partition("#")[0]
        try:
            body = self._read_body()
        except HttpError as e:
            self.close_connection = True
            self._send(e.status, {"detail": e.detail})
            return
        if raw_path.startswith("/__"):
            self._control(raw_path, body)
            return
        path = unquote(raw_path)
        if path != "/api" and not path.startswith("/api/"):
            self._send(404, {"detail": "Not Found"})
            return
        hdrs = {}
        for k, v in self.headers.items():
            lk = k.lower()
            hdrs[lk] = hdrs[lk] + ", " + v if lk in hdrs else v
        self.server.control.record({"method": self.command, "path": raw_path, "query": query,
                                    "headers": hdrs, "body_len": len(body),
                                    "conn": self.conn_id})
        fault = self.server.control.take_fault(raw_path + ("?" + query if query else ""))
        if fault:
            if fault.get("delay_ms", 0) > 0:
                time.sleep(fault["delay_ms"] / 1000.0)
            if fault.get("reset"):
                self._abort_reset()
                return
            extra = fault.get("headers") or {}
            if "status" in fault:
                fb = fault["body"] if "body" in fault else {"detail": "injected"}
                self._finish(fault["status"], fb, extra, fault.get("truncate"))
                return
            if "body" in fault:
                self._finish(200, fault["body"], extra, fault.get("truncate"))
                return
            status, out, h = self._api(path, query, body)
            h.update(extra)
            self._finish(status, out, h, fault.get("truncate"))
            return
        status, out, h = self._api(path, query, body)
        self._send(status, out, h)

    def _finish(self, status, body, headers, truncate):
        if not truncate:
            self._send(status, body, headers)
            return
        if isinstance(body, str):
            body = body.encode("utf-8")
        elif not isinstance(body, (bytes, bytearray)):
            body = jdumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Request-Id", self.request_id)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body[:len(body) // 2])
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    # -- control endpoints ------------------------------------------------
    def _control(self, path, body):
        ctl = self.server.control
        if path == "/__stats" and self.command == "GET":
            self._send(200, ctl.stats())
        elif path == "/__reset" and self.command == "POST":
            ctl.reset()
            opts = {}
            if body.strip():
                try:
                    opts = json.loads(body)
                except ValueError:
                    self._send(400, {"detail": "body must be JSON"})
                    return
            if isinstance(opts, dict) and opts.get("data"):
                self.server.store.reset()
            self._send(200, {"ok": True})
        elif path == "/__fault" and self.command == "POST":
            try:
                obj = json.loads(body) if body.strip() else {}
                f = parse_fault(obj)
            except ValueError as e:
                self._send(400, {"detail": str(e)})
                return
            ctl.set_fault(f)
            self._send(200, {"fault": f})
        elif path == "/__fault" and self.command == "GET":
            self._send(200, {"fault": ctl.get_fault()})
        elif path == "/__health" and self.command == "GET":
            self._send(200, {"ok": True})
        else:
            self._send(404, {"detail": "Not Found"})

    # -- API --------------------------------------------------------------
    def _api(self, path, query, body):
        methods, groups = match_route(path)
        if methods is None:
            if path.endswith("/") and match_route(path.rstrip("/"))[0] is not None:
                host = self.headers.get("Host") or "%s:%d" % self.server.server_address[:2]
                loc = "http://%s%s%s" % (host, path.rstrip("/"), "?" + query if query else "")
                return 307, b"", {"Location": loc}
            return 404, {"detail": "Not Found"}, {}
        # Starlette answers HEAD on every GET route (the GET's headers, no body).
        name = methods.get("GET" if self.command == "HEAD" else self.command)
        if name is None:
            return 405, {"detail": "Method Not Allowed"}, {"Allow": ", ".join(sorted(methods))}
        key = self._auth()
        if key is None:
            return 401, {"detail": "Invalid or missing API key"}, {}
        try:
            return getattr(self, "_" + name)(key, query, body, *groups)
        except HttpError as e:
            return e.status, {"detail": e.detail}, e.headers

    def _auth(self):
        h = self.headers.get("Authorization")
        if not h:
            return None
        scheme, _, cred = h.strip().partition(" ")
        if scheme.lower() != "bearer":
            return None
        cred = cred.strip()
        return cred if cred in self.server.keys else None

    def _default_project(self, key):
        return self.server.keys[key]

    @staticmethod
    def _list_body(recs, token, total):
        return ('{"items":[' + ",".join(r.js for r in recs) + '],"next_page_token":'
                + jdumps(token) + ',"total_size":' + str(total) + "}").encode("utf-8")

    def _v1_list(self, key, query, body):
        p = read_query(query)
        errs = []
        limit, offset = 50, 0
        status = job_type = directory = project = None
        if "limit" in p:
            limit = check_int(errs, ("query", "limit"), p["limit"], ge=1, le=1000)
        if "offset" in p:
            offset = check_int(errs, ("query", "offset"), p["offset"], ge=0)
        if "status" in p:
            status = check_enum(errs, ("query", "status"), p["status"], V1_STATUS)
        if "job_type" in p:
            job_type = check_enum(errs, ("query", "job_type"), p["job_type"], V1_JOB_TYPE)
        if "directory_id" in p:
            directory = p["directory_id"]
        if "project_id" in p:
            project = check_uuid(errs, ("query", "project_id"), p["project_id"])
        if "organization_id" in p:
            check_uuid(errs, ("query", "organization_id"), p["organization_id"])
        if errs:
            return 422, {"detail": errs}, {}
        pid = project or self._default_project(key)
        recs = self.server.store.snapshot(pid, "jobs")
        sel = [r for r in recs
               if (status is None or r.d["status"] == status)
               and (job_type is None or r.d["job_type"] == job_type)
               and (directory is None or r.d["directory_id"] == directory)]
        return 200, self._list_body(sel[offset:offset + limit], None, len(sel)), {}

    @staticmethod
    def _encode_token(offset):
        raw = jdumps({"offset": offset}).encode("ascii")
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    @staticmethod
    def _decode_token(tok):
        try:
            t = tok.strip()
            raw = base64.b64decode(t + "=" * (-len(t) % 4), altchars=b"-_", validate=True)
            obj = json.loads(raw.decode("utf-8"))
            off = obj["offset"]
            if isinstance(off, bool) or not isinstance(off, int) or off < 0 or len(obj) != 1:
                raise ValueError
            return off
        except (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError, AttributeError):
            raise HttpError(400, "Invalid page_token")

    def _v2_list(self, key, query, body):
        p = read_query(query)
        errs = []
        page_size = self.server.v2_default_page_size
        status = after = before = source = None
        if "page_size" in p:
            page_size = check_int(errs, ("query", "page_size"), p["page_size"])
        if "status" in p:
            status = check_enum(errs, ("query", "status"), p["status"], V2_STATUS)
        if "created_at_on_or_after" in p:
            after = check_datetime(errs, ("query", "created_at_on_or_after"), p["created_at_on_or_after"])
        if "created_at_on_or_before" in p:
            before = check_datetime(errs, ("query", "created_at_on_or_before"), p["created_at_on_or_before"])
        if "source_directory_id" in p:
            source = p["source_directory_id"]
        if errs:
            return 422, {"detail": errs}, {}
        page_size = min(max(page_size, 1), 1000)
        offset = self._decode_token(p["page_token"]) if p.get("page_token") else 0
        pid = p.get("project_id") or self._default_project(key)
        recs = self.server.store.snapshot(pid, "batches")
        sel = [r for r in recs
               if (status is None or r.d["status"] == status)
               and (after is None or r.created_us >= after)
               and (before is None or r.created_us <= before)
               and (source is None or r.d["source_directory_id"] == source)]
        end = offset + page_size
        token = self._encode_token(end) if end < len(sel) else None
        return 200, self._list_body(sel[offset:end], token, len(sel)), {}

    # writes and single reads ---------------------------------------------
    @staticmethod
    def _json_body(body):
        try:
            obj = json.loads(body)
        except ValueError as e:
            return None, [err_entry("json_invalid", ("body", getattr(e, "pos", 0)), "JSON decode error",
                                    {}, {"error": getattr(e, "msg", "Invalid JSON")})]
        if not isinstance(obj, dict):
            return None, [err_entry("model_attributes_type", ("body",),
                                    "Input should be a valid dictionary or object to extract fields from", obj)]
        return obj, []

    def _parse_write(self, body):
        if not body.strip():
            return None, [err_entry("missing", ("body",), "Field required", None)]
        return self._json_body(body)

    def _project_for_write(self, key, query, obj, errs, uuid_project):
        p = read_query(query)
        pid = None
        if "project_id" in p:
            pid = check_uuid(errs, ("query", "project_id"), p["project_id"]) if uuid_project \
                else (p["project_id"] or None)
        if "organization_id" in p and uuid_project:
            check_uuid(errs, ("query", "organization_id"), p["organization_id"])
        if pid is None and obj is not None and obj.get("project_id") is not None:
            v = obj["project_id"]
            if not isinstance(v, str):
                errs.append(err_entry("string_type", ("body", "project_id"), "Input should be a valid string", v))
            elif uuid_project:
                pid = check_uuid(errs, ("body", "project_id"), v)
            else:
                pid = v or None
        return pid or self._default_project(key)

    def _v1_create(self, key, query, body):
        obj, errs = self._parse_write(body)
        pid = self._project_for_write(key, query, obj, errs, True)
        if obj is not None:
            if "directory_id" not in obj:
                errs.append(err_entry("missing", ("body", "directory_id"), "Field required", obj))
            elif not isinstance(obj["directory_id"], str):
                errs.append(err_entry("string_type", ("body", "directory_id"), "Input should be a valid string",
                                      obj["directory_id"]))
            if "job_type" not in obj:
                errs.append(err_entry("missing", ("body", "job_type"), "Field required", obj))
            elif obj["job_type"] not in V1_JOB_TYPE:
                exp = enum_expected(V1_JOB_TYPE)
                errs.append(err_entry("enum", ("body", "job_type"), "Input should be " + exp, obj["job_type"],
                                      {"expected": exp}))
        if errs:
            return 422, {"detail": errs}, {}
        rec = self.server.store.create_job(pid, obj["job_type"], obj["directory_id"])
        return 200, rec.js, {}

    def _v2_create(self, key, query, body):
        obj, errs = self._parse_write(body)
        pid = self._project_for_write(key, query, obj, errs, False)
        jtype = cfg = src = None
        if obj is not None:
            src = obj.get("source_directory_id")
            if src is None:
                errs.append(err_entry("missing", ("body", "source_directory_id"), "Field required", obj))
            elif not isinstance(src, str):
                errs.append(err_entry("string_type", ("body", "source_directory_id"),
                                      "Input should be a valid string", src))
            job = obj.get("config", {}).get("job") if isinstance(obj.get("config"), dict) else obj.get("job")
            if job is None:
                job = {}
            if not isinstance(job, dict):
                errs.append(err_entry("model_type", ("body", "config", "job"), "Input should be an object", job))
                job = {}
            jtype = job.get("type", "parse_v2")
            if jtype not in V2_JOB_TYPE:
                exp = enum_expected(V2_JOB_TYPE)
                errs.append(err_entry("enum", ("body", "config", "job", "type"), "Input should be " + exp, jtype,
                                      {"expected": exp}))
            cfg = job.get("configuration_id")
            if cfg is not None and not isinstance(cfg, str):
                errs.append(err_entry("string_type", ("body", "config", "job", "configuration_id"),
                                      "Input should be a valid string", cfg))
        if errs:
            return 422, {"detail": errs}, {}
        rec = self.server.store.create_batch(pid, jtype, cfg, src)
        return 200, rec.js, {}

    def _v1_get(self, key, query, body, job_id):
        rec = self.server.store.jobs_by_id.get(job_id)
        if rec is None:
            raise HttpError(404, "Batch job not found")
        return 200, rec.js, {}

    def _v1_cancel(self, key, query, body, job_id):
        rec = self.server.store.jobs_by_id.get(job_id)
        if rec is None:
            raise HttpError(404, "Batch job not found")
        bad = self.server.store.cancel("jobs", rec)
        if bad:
            raise HttpError(400, "Cannot cancel a batch job in status %s" % bad)
        return 200, rec.js, {}

    def _v2_get(self, key, query, body, batch_id):
        rec = self.server.store.batches_by_id.get(batch_id)
        if rec is None:
            raise HttpError(404, "Batch not found")
        return 200, rec.js, {}

    def _v2_cancel(self, key, query, body, batch_id):
        rec = self.server.store.batches_by_id.get(batch_id)
        if rec is None:
            raise HttpError(404, "Batch not found")
        bad = self.server.store.cancel("batches", rec)
        if bad:
            raise HttpError(400, "Cannot cancel a batch in status %s" % bad)
        return 200, rec.js, {}


class MockServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True
    # Do not join handler threads on close: a client may hold an idle
    # keep-alive connection open forever (e.g. lcgate's connection pool).
    block_on_close = False

    def handle_error(self, request, client_address):
        if self.verbose:
            super().handle_error(request, client_address)


class MockServer6(MockServer):
    address_family = socket.AF_INET6


def write_port_file(path, port):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.replace(tmp, path)


def parse_args(argv):
    ap = argparse.ArgumentParser(description="Mock LlamaCloud batch API for lcgate tests")
    ap.add_argument("--port-file", required=True, help="write the bound port here (atomically)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 = ephemeral")
    ap.add_argument("--key", action="append", default=[], metavar="KEY=PROJECT_UUID",
                    help="an accepted API key and its default project (repeatable)")
    ap.add_argument("--jobs", type=int, default=137, help="v1 jobs seeded per project")
    ap.add_argument("--batches", type=int, default=57, help="v2 batches seeded per project")
    ap.add_argument("--v2-default-page-size", type=int, default=25)
    ap.add_argument("--uuid-errors", choices=("classic", "current"), default="classic",
                    help="wording of uuid_parsing 'invalid character' reasons: classic = uuid crate <= 1.22 "
                         "(pydantic-core <= 2.41), current = uuid >= 1.23")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    keys = {}
    for kv in args.key:
        k, sep, proj = kv.rpartition("=")
        if not sep or not k or not proj:
            ap.error("--key wants KEY=PROJECT_UUID, got %r" % kv)
        try:
            proj = str(uuidlib.UUID(proj))
        except ValueError:
            pass
        keys[k] = proj
    if not keys:
        ap.error("at least one --key KEY=PROJECT_UUID is needed")
    if args.jobs < 0 or args.batches < 0 or args.v2_default_page_size < 1:
        ap.error("--jobs/--batches must be >= 0 and --v2-default-page-size >= 1")
    args.keys = keys
    return args


def main(argv=None):
    global UUID_WORDING
    args = parse_args(sys.argv[1:] if argv is None else argv)
    UUID_WORDING = args.uuid_errors
    cls = MockServer6 if ":" in args.host else MockServer
    server = cls((args.host, args.port), Handler)
    server.verbose = args.verbose
    server.keys = args.keys
    server.v2_default_page_size = args.v2_default_page_size
    server.store = Store(args.jobs, args.batches)
    server.control = Control()

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    t.start()
    port = server.server_address[1]
    write_port_file(args.port_file, port)
    if args.verbose:
        sys.stderr.write("mock_upstream: listening on %s:%d\n" % (args.host, port))
    while not stop.wait(0.2):
        pass
    server.shutdown()
    server.server_close()
    try:
        os.unlink(args.port_file)
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
