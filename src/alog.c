#define _GNU_SOURCE             /* memrchr */
#include "alog.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

#define BATCH_MS 200                 /* a file's lines wait at most this */
#define PENDING_MAX (1024 * 1024)    /* held back by a full pipe, at most */
#define RETRY_MS 200                 /* a full pipe is tried again after */
#define CLOSE_WAIT_MS 1000           /* at exit, for a full pipe */

/* Where lines go. */
struct dest {
    int fd;                      /* -1: nowhere */
    int own;                     /* lcgate opened fd: close it when done */
    int stream;                  /* not a regular file: never block (see alog.h) */
    int sock;                    /* a socket: send(MSG_DONTWAIT) */
    int shared;                  /* a pipe's shared descriptor (no /proc):
                                    poll before each piece */
    int is_stderr;               /* the text log's stream too (stderr, or
                                    stdout where it is the same file) */
    char *name;                  /* "stderr", "stdout" or the path */
};

static struct {
    pthread_mutex_t mu;          /* everything here; held across write(2) */
    struct dest d;
    char *pending;               /* what a full pipe refused, whole lines */
    size_t plen;
    int failing;                 /* lines are being lost (logged once) */
    int on;                      /* atomic: d.fd >= 0 */
    int batch;                   /* atomic: d is a regular file (batched) */
} out = {.mu = PTHREAD_MUTEX_INITIALIZER, .d = {.fd = -1}};

static const struct dest nowhere = {.fd = -1};

static uint64_t lost;            /* atomic: lines not written */

/* A thread's lines, written by its own loop. */
struct tbuf {
    struct event_base *base;     /* its loop: the time of the turn, cached */
    char *buf;
    size_t len, cap;
    struct event *flush;         /* active (the end of this loop turn) or
                                    pending (a file: BATCH_MS later) */
    int due;                     /* flush is active or pending */
    struct event *retry;         /* a full pipe, RETRY_MS later */
};

static __thread struct tbuf *tb;

/* What went wrong, to log once the lock is released. */
struct news {
    int err;                     /* the error that began the losses; 0: none */
    int lost;                    /* lines were lost in this write */
    int recovered;               /* writing again after losses */
};

static size_t lines_in(const char *p, size_t n)
{
    size_t k = 0;
    const char *nl;

    while (n > 0 && (nl = memchr(p, '\n', n)) != NULL) {
        k++;
        n -= (size_t)(nl + 1 - p);
        p = nl + 1;
    }
    return k + (n > 0);
}

static void lose(const char *p, size_t n, int err, struct news *nw)
{
    if (n == 0)
        return;
    __atomic_add_fetch(&lost, lines_in(p, n), __ATOMIC_RELAXED);
    nw->lost = 1;
    if (err && !out.failing) {
        out.failing = 1;
        nw->err = err;
    }
}

/* The first piece of p[0..n) for a stream: at most PIPE_BUF bytes ending
 * at a line's end (POSIX: such a write to a pipe is all or nothing), or
 * one line longer than that on its own. */
static size_t piece(const char *p, size_t n)
{
    const char *nl;

    if (n <= PIPE_BUF)
        return n;
    if ((nl = memrchr(p, '\n', PIPE_BUF)) != NULL)
        return (size_t)(nl + 1 - p);
    nl = memchr(p, '\n', n);
    return nl ? (size_t)(nl + 1 - p) : n;
}

/* Writes what it can of p[0..n) to the stream without blocking: the
 * bytes written; *err is 0, EAGAIN (full) or the error. */
static size_t put_stream(const char *p, size_t n, int *err)
{
    size_t done = 0;

    *err = 0;
    while (done < n) {
        size_t k = piece(p + done, n - done);
        ssize_t w;
        if (out.d.shared) {
            struct pollfd pfd = {out.d.fd, POLLOUT, 0};
            if (poll(&pfd, 1, 0) == 0) {
                *err = EAGAIN;
                break;
            }
        }
        w = out.d.sock ? send(out.d.fd, p + done, k, MSG_DONTWAIT | MSG_NOSIGNAL)
                       : write(out.d.fd, p + done, k);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            *err = errno == EWOULDBLOCK ? EAGAIN : errno;
            break;
        }
        done += (size_t)w;
    }
    return done;
}

/* Keeps p[0..n) (whole lines, but for a piece a pipe took part of) for
 * later, as much as PENDING_MAX allows; the lines past it are lost. */
static void keep(const char *p, size_t n, struct news *nw)
{
    size_t fit = n;
    const char *nl;

    if (out.plen + n > PENDING_MAX) {
        fit = PENDING_MAX - out.plen;
        nl = fit ? memrchr(p, '\n', fit) : NULL;
        fit = nl ? (size_t)(nl + 1 - p) : 0;
        lose(p + fit, n - fit, EAGAIN, nw);
    }
    if (fit == 0)
        return;
    if (out.pending == NULL && (out.pending = malloc(PENDING_MAX)) == NULL) {
        lose(p, fit, ENOMEM, nw);
        return;
    }
    memcpy(out.pending + out.plen, p, fit);
    out.plen += fit;
}

/* Under out.mu: what a full pipe held back, as far as it goes now. */
static void retry_pending(struct news *nw)
{
    size_t w;
    int err;

    if (out.plen == 0 || out.d.fd < 0)
        return;
    w = put_stream(out.pending, out.plen, &err);
    if (err && err != EAGAIN) {
        lose(out.pending + w, out.plen - w, err, nw);
        w = out.plen;
    }
    memmove(out.pending, out.pending + w, out.plen - w);
    out.plen -= w;
}

/* Under out.mu: p[0..n), whole lines, after anything held back. */
static void emit(const char *p, size_t n, struct news *nw)
{
    size_t w;
    int err = 0;

    if (out.d.fd < 0 || n == 0)
        return;
    if (!out.d.stream) {
        while (n > 0) {
            ssize_t k = write(out.d.fd, p, n);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0) {
                lose(p, n, k < 0 ? errno : EIO, nw);
                break;
            }
            p += k;
            n -= (size_t)k;
        }
        return;
    }
    retry_pending(nw);
    if (out.plen > 0) {
        keep(p, n, nw);
        return;
    }
    w = put_stream(p, n, &err);
    if (err == EAGAIN)
        keep(p + w, n - w, nw);
    else if (err)
        lose(p + w, n - w, err, nw);
}

static void tell(const struct news *nw, const char *name, int is_stderr)
{
    /* On stderr the text log could not be written either (it would block). */
    if (is_stderr)
        return;
    if (nw->err)
        log_warn("access log %s: %s: dropping lines (counted) until it can be written",
                 name, nw->err == EAGAIN ? "full, nobody reads it" : strerror(nw->err));
    if (nw->recovered)
        log_info("access log %s: writing again (%llu lines lost since start)", name,
                 (unsigned long long)__atomic_load_n(&lost, __ATOMIC_RELAXED));
}

/* Write p[0..n) and learn whether a full pipe still holds some back. */
static int write_out(const char *p, size_t n)
{
    struct news nw = {0, 0, 0};
    char name[512] = "";
    int held, tried, is_stderr = 0;

    pthread_mutex_lock(&out.mu);
    tried = out.d.fd >= 0 && (n > 0 || out.plen > 0);
    if (n > 0)
        emit(p, n, &nw);
    else
        retry_pending(&nw);
    held = out.plen > 0;
    if (out.failing && tried && !nw.lost && !held) {
        out.failing = 0;         /* everything went out this time */
        nw.recovered = 1;
    }
    if (nw.err || nw.recovered) {
        snprintf(name, sizeof(name), "%s", out.d.name ? out.d.name : "");
        is_stderr = out.d.is_stderr;
    }
    pthread_mutex_unlock(&out.mu);
    if (nw.err || nw.recovered)
        tell(&nw, name, is_stderr);
    return held;
}

static void flush_tbuf(struct tbuf *t)
{
    static const struct timeval retry = {0, RETRY_MS * 1000};

    if (write_out(t->buf, t->len) && t->retry && !evtimer_pending(t->retry, NULL))
        evtimer_add(t->retry, &retry);
    t->len = 0;
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    struct tbuf *t = arg;

    t->due = 0;
    flush_tbuf(t);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    flush_tbuf(arg);
}

void alog_attach(struct event_base *base)
{
    struct tbuf *t;

    if (tb != NULL || (t = calloc(1, sizeof(*t))) == NULL)
        return;                  /* ENOMEM: lines are written one by one */
    t->base = base;
    t->flush = event_new(base, -1, 0, on_flush, t);
    t->retry = evtimer_new(base, on_retry, t);
    if (t->flush == NULL || t->retry == NULL) {
        if (t->flush)
            event_free(t->flush);
        free(t);
        return;
    }
    tb = t;
}

void alog_detach(void)
{
    struct tbuf *t = tb;

    if (t == NULL)
        return;
    tb = NULL;
    write_out(t->buf, t->len);
    event_free(t->flush);
    event_free(t->retry);
    free(t->buf);
    free(t);
}

void alog_line(const struct accesslog_entry *e)
{
    struct tbuf *t = tb, one = {.buf = NULL};
    struct accesslog_entry now;
    struct timeval tv;
    size_t before;

    if (!__atomic_load_n(&out.on, __ATOMIC_RELAXED))
        return;
    if (e->time_ms == 0 && t && event_base_gettimeofday_cached(t->base, &tv) == 0) {
        /* The loop's time of this turn: no clock read per line. */
        now = *e;
        now.time_ms = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
        e = &now;
    }
    if (t == NULL) {
        if (accesslog_append(e, &one.buf, &one.len, &one.cap) == 0)
            write_out(one.buf, one.len);
        else
            __atomic_add_fetch(&lost, 1, __ATOMIC_RELAXED);
        free(one.buf);
        return;
    }
    before = t->len;
    if (accesslog_append(e, &t->buf, &t->len, &t->cap) != 0) {
        __atomic_add_fetch(&lost, 1, __ATOMIC_RELAXED);
        return;
    }
    if (t->len > ALOG_FLUSH_AT && before > 0) {
        /* What was there goes now; the new line starts the next write. */
        write_out(t->buf, before);
        memmove(t->buf, t->buf + before, t->len - before);
        t->len -= before;
    }
    if (t->len >= ALOG_FLUSH_AT) {
        flush_tbuf(t);
    } else if (!t->due) {
        static const struct timeval batch = {0, BATCH_MS * 1000};
        t->due = 1;
        if (__atomic_load_n(&out.batch, __ATOMIC_RELAXED))
            event_add(t->flush, &batch);
        else
            event_active(t->flush, 0, 0);
    }
}

uint64_t alog_errors(void)
{
    return __atomic_load_n(&lost, __ATOMIC_RELAXED);
}

/* Open dest into d; -1 with the reason in err. */
static int open_dest(const char *dest, struct dest *d, char *err, size_t errlen)
{
    struct stat st, st2;
    char proc[32];
    int std = strcmp(dest, "stderr") == 0 ? 2 : strcmp(dest, "stdout") == 0 ? 1 : -1;

    memset(d, 0, sizeof(*d));
    d->fd = -1;
    if ((d->name = strdup(dest)) == NULL) {
        snprintf(err, errlen, "access_log %s: out of memory", dest);
        return -1;
    }
    if (std < 0) {
        /* O_NONBLOCK: a FIFO without a reader is an error, not a hang. */
        d->fd = open(dest, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
                     0640);
        if (d->fd < 0 || fstat(d->fd, &st) != 0) {
            snprintf(err, errlen, "cannot open access_log %s: %s", dest, strerror(errno));
            if (d->fd >= 0)
                close(d->fd);
            free(d->name);
            return -1;
        }
        d->own = 1;
        d->stream = !S_ISREG(st.st_mode);
        return 0;
    }
    if (fstat(std, &st) != 0) {
        snprintf(err, errlen, "access_log %s: %s", dest, strerror(errno));
        free(d->name);
        return -1;
    }
    d->is_stderr = std == 2 || (fstat(2, &st2) == 0 && st2.st_dev == st.st_dev &&
                                st2.st_ino == st.st_ino);
    d->fd = std;
    if (S_ISREG(st.st_mode))
        return 0;
    d->stream = 1;
    if (S_ISSOCK(st.st_mode)) {
        d->sock = 1;
        return 0;
    }
    /* A descriptor of its own, so that O_NONBLOCK does not reach the
     * shell or whoever else shares the open pipe or terminal. */
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", std);
    if ((d->fd = open(proc, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)) >= 0) {
        d->own = 1;
    } else {
        d->fd = std;
        d->shared = 1;
    }
    return 0;
}

static void close_dest(struct dest *d)
{
    if (d->own && d->fd >= 0)
        close(d->fd);
    free(d->name);
    d->fd = -1;
    d->name = NULL;
}

/* Under out.mu: d becomes the destination; the old one, to close. */
static struct dest swap_dest(struct dest *d)
{
    struct dest old = out.d;

    out.d = *d;
    out.failing = 0;             /* a new destination: its own first error is news */
    __atomic_store_n(&out.on, out.d.fd >= 0, __ATOMIC_RELAXED);
    __atomic_store_n(&out.batch, out.d.fd >= 0 && !out.d.stream, __ATOMIC_RELAXED);
    return old;
}

int alog_open(struct event_base *base, const char *dest, char *err, size_t errlen)
{
    struct dest d = nowhere;

    if (dest != NULL && open_dest(dest, &d, err, errlen) != 0)
        return -1;
    pthread_mutex_lock(&out.mu);
    d = swap_dest(&d);
    pthread_mutex_unlock(&out.mu);
    close_dest(&d);
    alog_attach(base);
    return 0;
}

int alog_reopen(const char *dest)
{
    struct dest d = nowhere;
    struct news nw = {0, 0, 0};
    char err[512], name[256];

    if (tb)
        flush_tbuf(tb);          /* what came before, where it was going */
    if (dest != NULL && open_dest(dest, &d, err, sizeof(err)) != 0) {
        pthread_mutex_lock(&out.mu);
        snprintf(name, sizeof(name), "%s", out.d.name ? out.d.name : "off");
        pthread_mutex_unlock(&out.mu);
        log_error("%s; the access log stays %s", err, name);
        return -1;
    }
    pthread_mutex_lock(&out.mu);
    retry_pending(&nw);
    d = swap_dest(&d);
    if (out.d.fd < 0) {
        lose(out.pending, out.plen, 0, &nw);
        out.plen = 0;
    }
    pthread_mutex_unlock(&out.mu);
    close_dest(&d);
    return 0;
}

int alog_rotate(void)
{
    char *name;
    int rc;

    pthread_mutex_lock(&out.mu);
    name = out.d.name ? strdup(out.d.name) : NULL;
    pthread_mutex_unlock(&out.mu);
    if (name == NULL)
        return 0;
    if ((rc = alog_reopen(name)) == 0)
        log_info("access log %s reopened", name);
    free(name);
    return rc;
}

void alog_close(void)
{
    struct dest d = nowhere;
    struct news nw = {0, 0, 0};
    int64_t deadline = mono_ms() + CLOSE_WAIT_MS;

    alog_detach();
    pthread_mutex_lock(&out.mu);
    while (out.plen > 0 && out.d.fd >= 0) {
        struct pollfd pfd = {out.d.fd, POLLOUT, 0};
        int64_t left = deadline - mono_ms();
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            break;
        retry_pending(&nw);
    }
    lose(out.pending, out.plen, 0, &nw);
    free(out.pending);
    out.pending = NULL;
    out.plen = 0;
    d = swap_dest(&d);
    pthread_mutex_unlock(&out.mu);
    close_dest(&d);
}
