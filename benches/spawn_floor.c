/*
 * The spawn floor of the end-to-end benchmark (benches/e2e.py): the fastest
 * a scheduler could start N jobs on one tick on this machine. It does nothing
 * a real scheduler must (no claim, no lock, no record, no output capture):
 * everything is prepared before the tick, it sleeps until the tick with an
 * absolute clock_nanosleep, then posix_spawns the N stamp jobs from THREADS
 * threads and reaps them. Its latencies are measured exactly like jobrun's,
 * from the stamps' own clock readings, so the table shows how far above
 * the machine's floor each daemon is.
 *
 * Usage: spawn_floor JOBS EVERY TICKS THREADS STAMP OUT
 *   the ticks are the multiples of EVERY seconds, starting two periods on.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static int jobs, threads;
static char **names;
static char *stamp, *out;
static char **envp;

static void *spawner(void *arg) {
    long t = (long)arg;
    for (int i = (int)t; i < jobs; i += threads) {
        char *argv[] = {stamp, names[i], out, NULL};
        pid_t pid;
        int rc = posix_spawn(&pid, stamp, NULL, NULL, argv, envp);
        if (rc != 0) {
            fprintf(stderr, "spawn_floor: posix_spawn: %s\n", strerror(rc));
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fputs("usage: spawn_floor JOBS EVERY TICKS THREADS STAMP OUT\n", stderr);
        return 2;
    }
    jobs = atoi(argv[1]);
    int every = atoi(argv[2]), ticks = atoi(argv[3]);
    threads = atoi(argv[4]);
    stamp = argv[5];
    out = argv[6];
    if (jobs < 1 || every < 1 || ticks < 1 || threads < 1 || threads > 64) {
        fputs("spawn_floor: JOBS, EVERY, TICKS and THREADS (<= 64) must be positive\n", stderr);
        return 2;
    }
    names = calloc((size_t)jobs, sizeof *names);
    for (int i = 0; i < jobs; i++) {
        if (asprintf(&names[i], "floor-%04d", i) < 0) return 1;
    }
    size_t n_env = 0;
    while (environ[n_env]) n_env++;
    envp = calloc(n_env + 2, sizeof *envp);
    memcpy(envp + 1, environ, n_env * sizeof *envp);
    static char tick_var[64];
    envp[0] = tick_var;

    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    time_t tick = (now.tv_sec / every + 2) * every;
    for (int k = 0; k < ticks; k++, tick += every) {
        struct tm tm;
        gmtime_r(&tick, &tm);
        strftime(tick_var, sizeof tick_var, "JOBRUN_TICK=%Y-%m-%dT%H:%M:%SZ", &tm);
        struct timespec at = {.tv_sec = tick, .tv_nsec = 0};
        while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &at, NULL) != 0) {
        }
        pthread_t tids[64];
        for (long t = 0; t < threads; t++) pthread_create(&tids[t], NULL, spawner, (void *)t);
        for (int t = 0; t < threads; t++) pthread_join(tids[t], NULL);
        while (wait(NULL) > 0) {
        }
    }
    return 0;
}
