/* query_norm_time: pydantic's datetime for the normalizer
 * (query_norm_int.h), as speedate 0.17 reads it: RFC 3339 and its
 * relaxations, dates alone, and Unix timestamps in seconds or milliseconds;
 * aware values canonical in UTC, with speedate's own error texts. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query_norm_int.h"

/* speedate's ParseError, with its documented texts (what pydantic shows). */
enum dterr {
    DT_OK,
    DT_SHORT,
    DT_EXTRA,
    DT_DT_SEP,
    DT_DATE_SEP,
    DT_NOT_EXACT,
    DT_YEAR,
    DT_MONTH,
    DT_DAY,
    DT_TIME_SEP,
    DT_HOUR,
    DT_MINUTE,
    DT_SECOND,
    DT_TZ_SIGN,
    DT_TZ_HOUR,
    DT_TZ_MINUTE,
    DT_TZ_MINUTE_RANGE,
    DT_TZ_RANGE,
    DT_MONTH_RANGE,
    DT_DAY_RANGE,
    DT_HOUR_RANGE,
    DT_MINUTE_RANGE,
    DT_SECOND_RANGE,
    DT_FRACTION_MISSING,
    DT_TOO_SMALL,
    DT_TOO_LARGE,
    DT_TIME_TOO_LARGE,
};

static const char *const dt_text[] = {
    [DT_SHORT] = "input is too short",
    [DT_EXTRA] = "unexpected extra characters at the end of the input",
    [DT_DT_SEP] = "invalid datetime separator, expected `T`, `t`, `_` or space",
    [DT_DATE_SEP] = "invalid date separator, expected `-`",
    [DT_NOT_EXACT] = "Timestamp is not an exact date",
    [DT_YEAR] = "invalid character in year",
    [DT_MONTH] = "invalid character in month",
    [DT_DAY] = "invalid character in day",
    [DT_TIME_SEP] = "invalid time separator, expected `:`",
    [DT_HOUR] = "invalid character in hour",
    [DT_MINUTE] = "invalid character in minute",
    [DT_SECOND] = "invalid character in second",
    [DT_TZ_SIGN] = "invalid timezone sign",
    [DT_TZ_HOUR] = "invalid timezone hour",
    [DT_TZ_MINUTE] = "invalid timezone minute",
    [DT_TZ_MINUTE_RANGE] = "timezone minute value is outside expected range of 0-59",
    [DT_TZ_RANGE] = "timezone offset must be less than 24 hours",
    [DT_MONTH_RANGE] = "month value is outside expected range of 1-12",
    [DT_DAY_RANGE] = "day value is outside expected range",
    [DT_HOUR_RANGE] = "hour value is outside expected range of 0-23",
    [DT_MINUTE_RANGE] = "minute value is outside expected range of 0-59",
    [DT_SECOND_RANGE] = "second value is outside expected range of 0-59",
    [DT_FRACTION_MISSING] = "second fraction digits missing after `.`",
    [DT_TOO_SMALL] = "dates before 0000 are not supported as unix timestamps",
    [DT_TOO_LARGE] = "dates after 9999 are not supported as unix timestamps",
    [DT_TIME_TOO_LARGE] = "numeric times may not exceed 86,399 seconds",
};

struct dt {
    long long y;
    int mo, d, h, mi, s;
    long us;
    int aware;
    long off; /* seconds east of UTC, when aware */
};

#define MS_WATERSHED 20000000000LL
#define UNIX_0000 (-62167219200LL)
#define UNIX_9999 253402300799LL

static int dig(const char *s, size_t n, size_t i)
{
    return i < n && qn_is_digit(s[i]) ? s[i] - '0' : -1;
}

static int leap(long long y)
{
    return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

/* speedate Date::parse_bytes_partial: YYYY-MM-DD at the start of s. */
static int parse_date(const char *s, size_t n, struct dt *t)
{
    static const int mdays[13] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    static const struct {
        unsigned char at, err;
    } shape[] = {{0, DT_YEAR},     {1, DT_YEAR},  {2, DT_YEAR},     {3, DT_YEAR},
                 {4, DT_DATE_SEP}, {5, DT_MONTH}, {6, DT_MONTH},    {7, DT_DATE_SEP},
                 {8, DT_DAY},      {9, DT_DAY}};
    if (n < 10)
        return DT_SHORT;
    for (size_t i = 0; i < sizeof shape / sizeof shape[0]; i++) {
        int sep = shape[i].err == DT_DATE_SEP;
        if (sep ? s[shape[i].at] != '-' : !qn_is_digit(s[shape[i].at]))
            return shape[i].err;
    }
    t->y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    t->mo = (s[5] - '0') * 10 + (s[6] - '0');
    t->d = (s[8] - '0') * 10 + (s[9] - '0');
    if (t->mo < 1 || t->mo > 12)
        return DT_MONTH_RANGE;
    int max = mdays[t->mo] + (t->mo == 2 && leap(t->y));
    if (t->d < 1 || t->d > max)
        return DT_DAY_RANGE;
    return DT_OK;
}

/* speedate Time::parse_bytes_offset: HH:MM[:SS[.f]][Z|±HH[:]MM] from o. */
static int parse_time(const char *s, size_t n, size_t o, struct dt *t)
{
    int h1, h2, m1, m2;
    size_t len = 5;

    if (n - o < 5)
        return DT_SHORT;
    if ((h1 = dig(s, n, o)) < 0 || (h2 = dig(s, n, o + 1)) < 0)
        return DT_HOUR;
    if (s[o + 2] != ':')
        return DT_TIME_SEP;
    if ((m1 = dig(s, n, o + 3)) < 0 || (m2 = dig(s, n, o + 4)) < 0)
        return DT_MINUTE;
    t->h = h1 * 10 + h2;
    t->mi = m1 * 10 + m2;
    if (t->h > 23)
        return DT_HOUR_RANGE;
    if (t->mi > 59)
        return DT_MINUTE_RANGE;
    t->s = 0;
    t->us = 0;
    if (o + 5 < n && s[o + 5] == ':') {
        int s1 = dig(s, n, o + 6), s2 = dig(s, n, o + 7);
        if (s1 < 0 || s2 < 0)
            return DT_SECOND;
        t->s = s1 * 10 + s2;
        if (t->s > 59)
            return DT_SECOND_RANGE;
        len = 8;
        if (o + 8 < n && (s[o + 8] == '.' || s[o + 8] == ',')) {
            size_t i = 0;
            len = 9;
            /* digits past the sixth are dropped (pydantic's "truncate") */
            while (o + len + i < n && qn_is_digit(s[o + len + i])) {
                if (i < 6)
                    t->us = t->us * 10 + (s[o + len + i] - '0');
                i++;
            }
            if (i == 0)
                return DT_FRACTION_MISSING;
            for (size_t k = i; k < 6; k++)
                t->us *= 10;
            len += i;
        }
    }
    size_t pos = o + len;
    t->aware = 0;
    t->off = 0;
    if (pos < n) {
        char c = s[pos++];
        if (c == 'Z' || c == 'z') {
            t->aware = 1;
        } else {
            int sign, a, b, c1, c2;
            if (c == '+') {
                sign = 1;
            } else if (c == '-') {
                sign = -1;
            } else if ((unsigned char)c == 0xe2) {
                /* U+2212 MINUS SIGN, which ISO 8601 allows */
                if (pos >= n || (unsigned char)s[pos] != 0x88 || pos + 1 >= n ||
                    (unsigned char)s[pos + 1] != 0x92)
                    return DT_TZ_SIGN;
                pos += 2;
                sign = -1;
            } else {
                return DT_TZ_SIGN;
            }
            if ((a = dig(s, n, pos)) < 0 || (b = dig(s, n, pos + 1)) < 0)
                return DT_TZ_HOUR;
            if (pos + 2 < n && s[pos + 2] == ':') {
                pos += 3;
                if ((c1 = dig(s, n, pos)) < 0)
                    return DT_TZ_MINUTE;
            } else if ((c1 = dig(s, n, pos + 2)) >= 0) {
                pos += 2;
            } else {
                return DT_TZ_MINUTE;
            }
            if ((c2 = dig(s, n, pos + 1)) < 0)
                return DT_TZ_MINUTE;
            long mins = c1 * 600 + c2 * 60;
            if (mins >= 3600)
                return DT_TZ_MINUTE_RANGE;
            long off = sign * (a * 36000L + b * 3600L + mins);
            if (off >= 86400 || off <= -86400)
                return DT_TZ_RANGE;
            t->aware = 1;
            t->off = off;
            pos += 2;
        }
    }
    return n > pos ? DT_EXTRA : DT_OK;
}

static int parse_rfc3339(const char *s, size_t n, struct dt *t)
{
    int e = parse_date(s, n, t);
    if (e != DT_OK)
        return e;
    if (n <= 10 || (s[10] != 'T' && s[10] != 't' && s[10] != ' ' && s[10] != '_'))
        return DT_DT_SEP;
    return parse_time(s, n, 11, t);
}

enum { TS_OK, TS_DOT, TS_BAD };

/* speedate's int_parse_bytes, wrapping arithmetic and all: one sign, then
 * digits; TS_DOT when the first bad byte is '.', for the float reader. */
static int ts_int(const char *s, size_t n, long long *out)
{
    size_t i = 0;
    int neg = 0;
    if (n == 0)
        return TS_BAD;
    if (n >= 2 && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        i = 1;
    }
    uint64_t v = 0;
    for (size_t k = i; k < n; k++) {
        if (!qn_is_digit(s[k]))
            return s[k] == '.' ? TS_DOT : TS_BAD;
        v = v * 10 + (uint64_t)(s[k] - '0');
        if (k > i && (int64_t)v < 0)
            return TS_BAD;
    }
    *out = neg ? -(long long)v : (long long)v;
    return TS_OK;
}

/* The float syntax Rust (and lexical's standard format) reads:
 * [+-] digits* . digits* [(e|E) [+-] digits+], with a digit in the mantissa. */
static int float_syntax(const char *s, size_t n)
{
    size_t i = 0, digits = 0;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        i++;
    for (; i < n && qn_is_digit(s[i]); i++)
        digits++;
    if (i >= n || s[i] != '.')
        return 0;
    for (i++; i < n && qn_is_digit(s[i]); i++)
        digits++;
    if (digits == 0)
        return 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t e = 0;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        for (; i < n && qn_is_digit(s[i]); i++)
            e++;
        if (e == 0)
            return 0;
    }
    return i == n;
}

/* floor, round-half-away and Rust's saturating casts, without libm. */
static double dfloor(double x)
{
    if (!(x > -4503599627370496.0 && x < 4503599627370496.0))
        return x;
    double t = (double)(long long)x;
    return t > x ? t - 1 : t;
}

static double dround(double x)
{
    if (!(x > -4503599627370496.0 && x < 4503599627370496.0))
        return x;
    double t = (double)(long long)x, d = x - t;
    return d >= 0.5 ? t + 1 : d <= -0.5 ? t - 1 : t;
}

static long long sat_i64(double x)
{
    if (x != x)
        return 0;
    if (x >= 9223372036854775808.0)
        return LLONG_MAX;
    if (x < -9223372036854775808.0)
        return LLONG_MIN;
    return (long long)x;
}

static uint32_t sat_u32(double x)
{
    if (x != x || x <= 0)
        return 0;
    if (x >= 4294967295.0)
        return UINT32_MAX;
    return (uint32_t)x;
}

static long long days_from_civil(long long y, int m, int d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* t's date and time of day from seconds since the epoch (UTC). */
static void civil(long long sec, struct dt *t)
{
    long long days = sec / 86400, tod = sec % 86400;
    if (tod < 0)
        tod += 86400, days--;
    long long z = days + 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    long long doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153;
    t->d = (int)(doy - (153 * mp + 2) / 5 + 1);
    t->mo = (int)(mp < 10 ? mp + 3 : mp - 9);
    t->y = yoe + era * 400 + (t->mo <= 2);
    t->h = (int)(tod / 3600);
    t->mi = (int)(tod / 60 % 60);
    t->s = (int)(tod % 60);
}

/* speedate's timestamp_watershed: past 2e10, a number is milliseconds. */
static int watershed(long long ts, long long *sec, uint32_t *us)
{
    if (ts == LLONG_MIN)
        return DT_TOO_SMALL;
    if ((ts < 0 ? -ts : ts) <= MS_WATERSHED) {
        *sec = ts;
        *us = 0;
        return DT_OK;
    }
    long long s = ts / 1000, u = ts % 1000 * 1000;
    if (u < 0)
        s--, u += 1000000;
    *sec = s;
    *us = (uint32_t)u;
    return DT_OK;
}

static int in_range(long long sec)
{
    return sec < UNIX_0000 ? DT_TOO_SMALL : sec > UNIX_9999 ? DT_TOO_LARGE : DT_OK;
}

/* speedate DateTime::from_timestamp_with_config, UTC. */
static int from_ts(long long ts, uint32_t us, struct dt *t)
{
    long long sec;
    uint32_t extra;
    int e = watershed(ts, &sec, &extra);
    if (e != DT_OK)
        return e;
    uint64_t total = (uint64_t)us + extra;
    if (total > UINT32_MAX)
        return DT_TIME_TOO_LARGE;
    if (total >= 1000000) {
        long long add = (long long)(total / 1000000);
        if (sec > LLONG_MAX - add)
            return DT_TIME_TOO_LARGE;
        sec += add;
        total %= 1000000;
    }
    if ((e = in_range(sec)) != DT_OK)
        return e;
    civil(sec, t);
    t->us = (long)total;
    t->aware = 1;
    t->off = 0;
    return DT_OK;
}

/* speedate DateTime::parse_bytes_with_config: RFC 3339-ish text, else a
 * unix timestamp (an integer, or a float read as f64). Only success
 * matters: on failure pydantic shows the date parser's reason. */
static int parse_datetime(const char *s, size_t n, struct dt *t)
{
    long long i;
    if (parse_rfc3339(s, n, t) == DT_OK)
        return DT_OK;
    switch (ts_int(s, n, &i)) {
    case TS_OK:
        return from_ts(i, 0, t);
    case TS_DOT:
        if (float_syntax(s, n)) {
            /* s is NUL-terminated and only holds the syntax checked above,
             * read in the C locale */
            double f = strtod(s, NULL);
            double norm = (f < 0 ? -f : f) > (double)MS_WATERSHED ? f / 1000.0 : f;
            long long sec = sat_i64(dfloor(norm));
            uint32_t us = sat_u32(dround((norm - (double)sec) * 1000000.0));
            return from_ts(sec, us, t);
        }
        return DT_SHORT;
    default:
        return DT_SHORT;
    }
}

/* speedate Date::parse_bytes_with_config: exactly YYYY-MM-DD, else an integer
 * timestamp of an exact day. pydantic reports this parser's error when a
 * datetime fails, and takes a date it accepts as a naive midnight. */
static int parse_date_only(const char *s, size_t n, struct dt *t)
{
    long long i, sec;
    uint32_t us;
    int e = parse_date(s, n, t);
    if (e == DT_OK && n > 10)
        e = DT_EXTRA;
    if (e == DT_OK || ts_int(s, n, &i) != TS_OK)
        return e;
    if ((e = watershed(i, &sec, &us)) != DT_OK || (e = in_range(sec)) != DT_OK)
        return e;
    civil(sec, t);
    if (t->h || t->mi || t->s || us)
        return DT_NOT_EXACT;
    return DT_OK;
}

/* One spelling per value pydantic reads: an aware value as its UTC instant
 * with Z, a naive one (a bare date is a naive midnight) as its wall time
 * without; both with .ffffff only for a non-zero fraction. speedate reads
 * either back as the same value, and a naive one never equals an aware. */
int qn_check_datetime(const struct qn_param *p, const char *v, size_t n,
                      char **canon, struct qn_fail *f)
{
    struct dt t = {0}, u;
    char c[128];
    int k;

    if (parse_datetime(v, n, &t) != DT_OK) {
        int e = parse_date_only(v, n, &t);
        if (e != DT_OK)
            return qn_fail_error(f, "datetime_from_date_parsing",
                              "Input should be a valid datetime or date, ",
                              dt_text[e]);
        t.aware = 0; /* a date alone is a naive midnight */
    }
    if (t.y == 0)
        return qn_fail_error(f, "datetime_parsing", "Input should be a valid datetime, ",
                          "year 0 is out of range");
    if (t.aware) {
        long long sec = days_from_civil(t.y, t.mo, t.d) * 86400 + t.h * 3600LL +
                        t.mi * 60LL + t.s - t.off;
        civil(sec, &u);
        /* an instant outside years 1-9999 in UTC cannot be sent as UTC: the
         * upstream would reject it, so it stays as the client wrote it */
        if (u.y < 1 || u.y > 9999) {
            *canon = qn_dupn(v, n);
            return *canon ? 0 : -1;
        }
    } else {
        u = t;
    }
    k = snprintf(c, sizeof c, "%04lld-%02d-%02dT%02d:%02d:%02d", u.y, u.mo, u.d, u.h, u.mi,
                 u.s);
    if (t.us != 0)
        k += snprintf(c + k, sizeof c - (size_t)k, ".%06ld", t.us);
    if (t.aware)
        snprintf(c + k, sizeof c - (size_t)k, "Z");
    *canon = qn_dupn(c, strlen(c));
    return *canon ? 0 : -1;
}
