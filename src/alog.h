/* alog: where the access log's lines go (accesslog.h makes them), and when.
 *
 * A line goes into its thread's buffer: no lock, no system call. Each
 * thread that logs runs an event loop (the main loop, each worker) and
 * writes its own buffer with one write(2) at once when it holds
 * ALOG_FLUSH_AT (256 KiB), else, to a file, BATCH_MS (200 ms) after its
 * first line, and to a stream (stderr, a pipe, journald) at the end of
 * the loop turn that filled it (an event that the turn's first line
 * activates, which runs after the callbacks already due), so that its
 * lines keep their place beside the text log's.
 *
 * Why so much a write: to a file, under load, the kernel's cost a byte
 * falls with the size of the write, by a third from a write a loop turn
 * to 64 KiB, and by another 40% from 64 to 256 KiB (ext4 puts the aligned
 * parts of a large write in large page-cache folios: 0.44 against 0.25 ms
 * a MiB of 400-byte lines, measured). With 64 KiB the log to a file cost
 * a hit about 4.5% of its CPU, with 256 KiB about 3% (bench/run).
 * Past 256 KiB it falls no further. A buffer holds at most ALOG_FLUSH_AT
 * and one line (its allocation, twice that at most). The
 * writes of all threads take one lock, which also orders them against a
 * reopen: lines never interleave, and each goes to exactly one file.
 *
 * The destination is a file, opened O_APPEND|O_CREAT (mode 0640) and
 * opened again on alog_reopen (logrotate renames it, then SIGUSR1), or
 * stderr, or stdout. A regular file is written whole. Anything else (a
 * pipe, journald's socket, a terminal) is written without ever blocking:
 * a socket with MSG_DONTWAIT, a pipe or a terminal through a descriptor of
 * lcgate's own opened O_NONBLOCK from /proc/self/fd (the shared one keeps
 * its flags), in pieces of at most PIPE_BUF that end at a line's end, each
 * written whole or not at all, so lines stay whole even beside the text
 * log. What a full pipe refuses waits, up to 1 MiB, for the next write or
 * a retry 200 ms later; past that, lines are dropped.
 *
 * Every line that could not be written (dropped at a full pipe, ENOSPC,
 * EIO, a closed pipe) is counted (alog_errors). An answer never waits for
 * its line. */
#ifndef LCGATE_ALOG_H
#define LCGATE_ALOG_H

#include <stddef.h>
#include <stdint.h>

#include "accesslog.h"

#define ALOG_FLUSH_AT (256 * 1024)   /* a thread's buffer is written at this */

struct event_base;

/* At start, on the main loop's thread, whose buffer base's loop flushes:
 * log to dest ("stderr", "stdout" or an absolute path; NULL: nowhere until
 * an alog_reopen names one). 0, or -1 with the path and the reason in err. */
int alog_open(struct event_base *base, const char *dest, char *err, size_t errlen);

/* A reload (SIGHUP), on the main thread: the lines buffered so far go out,
 * then dest is opened: a file again even if its path is unchanged, so one
 * that was moved away is created anew; NULL stops logging. If dest cannot
 * be opened, the error is logged and the old destination stays. 0 or -1. */
int alog_reopen(const char *dest);

/* SIGUSR1 (logrotate's postrotate): alog_reopen of the destination in use,
 * logged. */
int alog_rotate(void);

/* The calling thread's lines are buffered and flushed by base's loop (a
 * worker, at its start); alog_detach writes them and must come before
 * base is freed. A thread that never attaches writes each line at once. */
void alog_attach(struct event_base *base);
void alog_detach(void);

/* e's line, from any thread. */
void alog_line(const struct accesslog_entry *e);

/* Lines lost since start (lcgate_access_log_errors_total); any thread. */
uint64_t alog_errors(void);

/* At exit, on the main thread, once every other thread has detached: its
 * lines and any a full pipe held back are written (waiting up to 1 s for
 * the pipe), then the destination is closed. */
void alog_close(void);

#endif
