/* log: leveled lines to stderr. Never pass a key or a token to these. */
#ifndef LCGATE_LOG_H
#define LCGATE_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

void log_set_level(enum log_level lvl);
/* Under systemd with stderr connected to the journal (JOURNAL_STREAM names
 * stderr's device and inode), each line starts with its sd-daemon(3)
 * priority, <3> error, <4> warn, <6> info, <7> debug, so that journald
 * stores it at that level; otherwise lines are as before. Call once at
 * start, before any thread; again when stderr changes. 1 if so, else 0. */
int log_detect_journal(void);
int log_level_parse(const char *s, enum log_level *out);
/* Lines from the calling thread say "tag: " after the level (a worker's
 * "w1"; NULL: nothing). tag must outlive the thread's logging. */
void log_set_thread_tag(const char *tag);
void log_msg(enum log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
