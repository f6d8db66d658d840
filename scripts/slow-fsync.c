/*
 * slow-fsync: makes every fsync/fdatasync of a process take at least
 * SLOW_FSYNC_US microseconds longer, to measure how the benchmarks behave
 * on storage whose flushes are slow (a kiosk's eMMC or SD card: 1-20 ms),
 * on a machine whose disk flushes fast. A simulation: only the flush
 * latency changes, not bandwidth or queueing.
 *
 *   gcc -O2 -shared -fPIC -o target/slow-fsync.so scripts/slow-fsync.c -ldl
 *   SLOW_FSYNC_US=2000 LD_PRELOAD=$PWD/target/slow-fsync.so \
 *       cargo bench --bench checkin
 *
 * With SLOW_FSYNC_LOG=<file>, every flush also appends one line to that
 * file: "fsync <path>" or "fdatasync <path>" (the path of the descriptor),
 * so a benchmark can count and attribute the flushes of each step.
 *
 * See docs/PERFORMANCE.md ("On slow flash", "Photos").
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static long delay_us(void) {
    static long us = -1;
    if (us < 0) {
        const char *s = getenv("SLOW_FSYNC_US");
        us = s ? atol(s) : 0;
    }
    return us;
}

static void pause_after_flush(void) {
    long us = delay_us();
    if (us > 0) {
        struct timespec t = {us / 1000000, (us % 1000000) * 1000};
        while (nanosleep(&t, &t) != 0) {
        }
    }
}

/* Appends "<name> <path of fd>" to SLOW_FSYNC_LOG, if set. One write(2)
 * of one line to an O_APPEND file: lines of concurrent flushes do not mix. */
static void log_flush(const char *name, int fd) {
    static int log_fd = -2;
    if (log_fd == -2) {
        const char *path = getenv("SLOW_FSYNC_LOG");
        log_fd = path ? open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644) : -1;
    }
    if (log_fd < 0) return;
    char link[64], target[512], line[600];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n < 0) n = 0;
    target[n] = 0;
    int len = snprintf(line, sizeof line, "%s %s\n", name, target);
    if (len > (int)sizeof line - 1) len = sizeof line - 1;
    if (write(log_fd, line, len) < 0) {
        /* Nothing to do: the count is a measurement aid. */
    }
}

/* Calls the real `name` (looked up once into *real), then pauses. */
static int flush_then_pause(int (**real)(int), const char *name, int fd) {
    if (!*real) *real = (int (*)(int))dlsym(RTLD_NEXT, name);
    log_flush(name, fd);
    int r = (*real)(fd);
    pause_after_flush();
    return r;
}

int fsync(int fd) {
    static int (*real)(int);
    return flush_then_pause(&real, "fsync", fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    return flush_then_pause(&real, "fdatasync", fd);
}
