/* fuzz_conf: libFuzzer target for the configuration loader (conf_load in
 * src/conf.c, with libinih and src/log.c).
 *
 * The input is written to one anonymous file (memfd, else an unlinked
 * mkstemp file), reused for every run and opened by conf_load through
 * /proc/self/fd/N. The LCGATE_* overrides, LLAMA_CLOUD_API_KEY and
 * CREDENTIALS_DIRECTORY are unset first so that only the input matters.
 *
 * api_key_file in the input may name any file. read_key reads at most
 * 4 KiB, but opening a FIFO or a terminal would block: the build links
 * with -Wl,--wrap=fopen, and __wrap_fopen below refuses (ENOENT) anything
 * that is not a regular file.
 *
 * Invariants checked: conf_load gives either a conf or an error; a conf
 * is within every key row's bounds (conf_keys.h) and satisfies the
 * cross-key rules check_across() enforces; an error message is
 * non-empty and begins with "PATH:" (the input's path). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "conf_keys.h"
#include "log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
FILE *__real_fopen(const char *path, const char *mode);
FILE *__wrap_fopen(const char *path, const char *mode);

#define FUZZ_NAME "fuzz_conf"
#include "fuzz.h"

static int conf_fd = -1;
static char conf_path[64];

FILE *__wrap_fopen(const char *path, const char *mode)
{
    struct stat st;

    if (path == NULL || stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        errno = ENOENT;
        return NULL;
    }
    return __real_fopen(path, mode);
}

static void unset_env(void)
{
    extern char **environ;
    char name[256];
    int again = 1;

    unsetenv("LLAMA_CLOUD_API_KEY");
    unsetenv("CREDENTIALS_DIRECTORY");
    while (again) {
        again = 0;
        for (char **e = environ; e && *e; e++) {
            const char *eq = strchr(*e, '=');
            size_t n = eq ? (size_t)(eq - *e) : strlen(*e);
            if (strncmp(*e, "LCGATE_", 7) == 0 && n < sizeof name) {
                memcpy(name, *e, n);
                name[n] = '\0';
                unsetenv(name);
                again = 1;
                break;
            }
        }
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    unset_env();
    log_set_level(LOG_ERROR); /* no "readable by every user" warnings */
    conf_fd = memfd_create("lcgate-fuzz-conf", 0);
    if (conf_fd < 0) {
        const char *dir = getenv("TMPDIR");
        char tmpl[4096];
        snprintf(tmpl, sizeof tmpl, "%s/lcgate-fuzz-conf.XXXXXX", dir && *dir ? dir : "/tmp");
        conf_fd = mkstemp(tmpl);
        if (conf_fd < 0) {
            perror("fuzz_conf: mkstemp");
            abort();
        }
        unlink(tmpl); /* still reachable as /proc/self/fd/N */
    }
    snprintf(conf_path, sizeof conf_path, "/proc/self/fd/%d", conf_fd);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[1024];
    struct conf *c;
    size_t plen = strlen(conf_path), off = 0;

    if (ftruncate(conf_fd, 0) != 0)
        abort();
    while (off < size) {
        ssize_t w = pwrite(conf_fd, data + off, size - off, (off_t)off);
        if (w <= 0)
            abort();
        off += (size_t)w;
    }

    memset(err, 0x55, sizeof err);
    err[0] = '\0';
    c = conf_load(conf_path, err, sizeof err);
    CHECK(memchr(err, '\0', sizeof err) != NULL, "error message not terminated");
    if (c != NULL) {
        CHECK(c->path && strcmp(c->path, conf_path) == 0, "path '%s'", c->path);
        CHECK(c->listen && c->admin_listen && c->log_level && c->redis_url, "unset strings");
        CHECK(c->base_url && (strncmp(c->base_url, "http://", 7) == 0 ||
                              strncmp(c->base_url, "https://", 8) == 0),
              "base_url '%s'", c->base_url ? c->base_url : "(null)");
        CHECK(c->ttl_ms > 0 && c->memory_max >= 64 * 1024 && c->timeout_ms > 0 &&
                  c->connect_timeout_ms > 0 && c->lock_lease_ms >= 100 &&
                  c->redis_timeout_ms > 0,
              "bound broken");
        for (size_t i = 0; i < conf_nkeys; i++)
            CHECK(conf_key_in_bounds(&conf_keys[i], c), "[%s] %s out of bounds",
                  conf_keys[i].section, conf_keys[i].name);
        CHECK(c->max_header_size >= c->max_request_line && c->max_inflight_bytes >= c->max_body,
              "cross-key rule broken");
        CHECK(c->rate.count > 0 && c->upstream_rate.count > 0 && c->burst >= 1 &&
                  c->upstream_burst >= 1,
              "rate limits out of range");
        CHECK(c->nclients == 0 || c->api_key != NULL, "clients without an upstream key");
        for (size_t i = 0; i < c->nclients; i++)
            CHECK(c->clients[i].name && (c->clients[i].all_projects || c->clients[i].nprojects > 0),
                  "client %zu without projects", i);
        for (size_t i = 0; i < c->nprojects; i++) {
            CHECK(c->projects[i].id != NULL, "project %zu without id", i);
            CHECK(c->projects[i].api_key_file == NULL || c->projects[i].api_key != NULL,
                  "project %zu key file not read", i);
            (void)conf_project(c, c->projects[i].id);
            (void)conf_api_key(c, c->projects[i].id);
        }
        (void)conf_api_key(c, NULL);
        conf_free(c);
    } else {
        CHECK(err[0] != '\0', "conf_load failed without a message");
        CHECK(strncmp(err, conf_path, plen) == 0 && err[plen] == ':',
              "error does not begin with '%s:': %s", conf_path, err);
    }
    return 0;
}
