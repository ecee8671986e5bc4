/*
 * The job the end-to-end benchmark (benches/e2e.py) runs in every daemon:
 * its first act is to read the clock, so the reading is the job's first
 * instruction, not the end of an interpreter's start-up. It then appends
 * "SECONDS.MICROS TICK NAME" to the file named on its command line (TICK is
 * $JOBRUN_TICK, empty for cron and yacron) in a single write(2), which
 * O_APPEND keeps whole when hundreds of jobs write at once.
 *
 * Usage: stamp NAME FILE. Built static by e2e.py (cc -O2 -static).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (argc != 3) {
        fputs("usage: stamp NAME FILE\n", stderr);
        return 2;
    }
    const char *tick = getenv("JOBRUN_TICK");
    char line[512];
    int n = snprintf(line, sizeof line, "%lld.%06ld %s %s\n", (long long)now.tv_sec,
                     now.tv_nsec / 1000, tick ? tick : "", argv[1]);
    if (n < 0 || n >= (int)sizeof line) {
        return 3;
    }
    int fd = open(argv[2], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, line, (size_t)n) != n) {
        perror("stamp");
        return 1;
    }
    return close(fd) == 0 ? 0 : 1;
}
