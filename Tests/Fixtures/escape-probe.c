/*
 * escape-probe: tries, from inside a container, the escapes minik's confinement closes,
 * and prints what happened, one word a line, for the root tests:
 *   escape-probe tiocsti TEXT   push TEXT into the terminal on fds 0-2 and /dev/tty
 *                               ("injected" or "blocked")
 *   escape-probe clone-newuser  clone(CLONE_NEWUSER|CLONE_NEWNET) ("ok" or the errno name)
 *   escape-probe clone3         clone3 with CLONE_NEWUSER ("ok" or the errno name)
 * Built static by the tests and copied into the container through `minik exec -i`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *name(int e) {
    switch (e) {
    case EPERM: return "EPERM";
    case ENOSYS: return "ENOSYS";
    case EINVAL: return "EINVAL";
    case ENOTTY: return "ENOTTY";
    default: return strerror(e);
    }
}

static void report(long rc) {
    if (rc < 0) { printf("%s\n", name(errno)); return; }
    if (rc == 0) _exit(0); /* the child */
    waitpid((pid_t)rc, NULL, 0);
    printf("ok\n");
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "tiocsti")) {
        int fds[4] = {0, 1, 2, open("/dev/tty", O_RDWR | O_NOCTTY)};
        int injected = 0;
        for (int i = 0; i < 4; i++) {
            if (fds[i] < 0) continue;
            int ok = 1;
            for (const char *c = argv[2]; *c; c++) {
                if (ioctl(fds[i], TIOCSTI, c) < 0) { ok = 0; break; }
            }
            injected |= ok && argv[2][0];
        }
        fprintf(stderr, "%s\n", injected ? "injected" : "blocked");
        return 0;
    }
    if (argc == 2 && !strcmp(argv[1], "clone-newuser")) {
        report(syscall(SYS_clone, CLONE_NEWUSER | CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0));
        return 0;
    }
    if (argc == 2 && !strcmp(argv[1], "clone3")) {
        struct clone_args a;
        memset(&a, 0, sizeof a);
        a.flags = CLONE_NEWUSER;
        a.exit_signal = SIGCHLD;
        report(syscall(SYS_clone3, &a, sizeof a));
        return 0;
    }
    fprintf(stderr, "usage: escape-probe tiocsti TEXT | clone-newuser | clone3\n");
    return 2;
}
