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
 * See docs/PERFORMANCE.md ("On slow flash").
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

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

/* Calls the real `name` (looked up once into *real), then pauses. */
static int flush_then_pause(int (**real)(int), const char *name, int fd) {
    if (!*real) *real = (int (*)(int))dlsym(RTLD_NEXT, name);
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
