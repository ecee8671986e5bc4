/*
 * The job the end-to-end benchmark (benches/e2e.py) runs in every daemon:
 * it reads the clock first, so the reading is as close to the job's first
 * instruction as a program can take it. It then appends "SECONDS.MICROS
 * TICK NAME" to the file named on its command line (TICK is $JOBRUN_TICK,
 * empty for cron and yacron) in a single write(2), which O_APPEND keeps
 * whole when hundreds of jobs write at once.
 *
 * Two builds of the same job (e2e.py picks the first that compiles):
 *
 * - STAMP_FREESTANDING (x86-64 Linux): no C library at all. Its entry point
 *   reads the clock with a raw system call. This is the default since
 *   BENCHMARKS.md change 20: a static glibc program runs glibc's start-up
 *   before main, and on this virtual machine that start-up (the CPUID-based
 *   cache detection, each CPUID a trip to the hypervisor) was most of each
 *   job's CPU time and came before the reading.
 * - otherwise: a plain C program, static when the C library allows it.
 *
 * Usage: stamp NAME FILE.
 */
#ifdef STAMP_FREESTANDING

#if !defined(__x86_64__) || !defined(__linux__)
#error "the freestanding stamp is for x86-64 Linux"
#endif

enum {
    SYS_WRITE = 1,
    SYS_OPEN = 2,
    SYS_CLOSE = 3,
    SYS_CLOCK_GETTIME = 228,
    SYS_EXIT_GROUP = 231,
    CLOCK_REALTIME = 0,
    O_WRONLY = 01,
    O_CREAT = 0100,
    O_APPEND = 02000,
    O_CLOEXEC = 02000000,
};

struct timespec {
    long tv_sec;
    long tv_nsec;
};

static long sys3(long n, long a, long b, long c) {
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c)
                     : "rcx", "r11", "memory");
    return ret;
}

static __attribute__((noreturn)) void quit(int code) {
    for (;;) {
        sys3(SYS_EXIT_GROUP, code, 0, 0);
    }
}

/* Appends the decimal digits of v (at least `width`, zero-padded). */
static char *put_num(char *p, unsigned long v, int width) {
    char digits[24];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n < width) {
        digits[n++] = '0';
    }
    while (n > 0) {
        *p++ = digits[--n];
    }
    return p;
}

/* Appends s, never past end. */
static char *put_str(char *p, const char *end, const char *s) {
    while (*s != '\0' && p < end) {
        *p++ = *s++;
    }
    return p;
}

static const char *tick_of(char **envp) {
    static const char key[] = "JOBRUN_TICK=";
    for (; *envp != 0; envp++) {
        const char *e = *envp;
        int i = 0;
        while (key[i] != '\0' && e[i] == key[i]) {
            i++;
        }
        if (key[i] == '\0') {
            return e + i;
        }
    }
    return "";
}

/* sp: the initial stack (argc, argv..., 0, envp..., 0). */
__attribute__((used, noreturn)) void stamp_main(long *sp) {
    struct timespec now;
    sys3(SYS_CLOCK_GETTIME, CLOCK_REALTIME, (long)&now, 0);
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    char **envp = argv + argc + 1;
    if (argc != 3) {
        static const char usage[] = "usage: stamp NAME FILE\n";
        sys3(SYS_WRITE, 2, (long)usage, sizeof usage - 1);
        quit(2);
    }
    char line[512];
    char *end = line + sizeof line - 1;
    char *p = put_num(line, (unsigned long)now.tv_sec, 1);
    *p++ = '.';
    p = put_num(p, (unsigned long)(now.tv_nsec / 1000), 6);
    *p++ = ' ';
    p = put_str(p, end, tick_of(envp));
    p = put_str(p, end, " ");
    p = put_str(p, end, argv[1]);
    if (p >= end) {
        quit(3);
    }
    *p++ = '\n';
    long fd = sys3(SYS_OPEN, (long)argv[2], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || sys3(SYS_WRITE, fd, (long)line, p - line) != p - line) {
        quit(1);
    }
    quit(sys3(SYS_CLOSE, fd, 0, 0) == 0 ? 0 : 1);
}

/* The entry point: no frame, an aligned stack, straight to stamp_main. */
__asm__(".text\n"
        ".global _start\n"
        "_start:\n"
        "    xor %ebp, %ebp\n"
        "    mov %rsp, %rdi\n"
        "    and $-16, %rsp\n"
        "    call stamp_main\n"
        "    hlt\n");

#else

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

#endif
