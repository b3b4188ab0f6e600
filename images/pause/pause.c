/*
 * minik-pause: the sandbox process of a pod.
 *
 * It holds the pod's network, UTS and IPC namespaces open for as long as the pod lives,
 * and does nothing else: it sleeps in sigwaitinfo(), exits cleanly on SIGINT/SIGTERM and
 * reaps any child handed to it (it is PID 1 when the pod shares one PID namespace).
 * Built statically (cc -static) so it needs nothing from the image it runs in.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "-v") == 0) {
        puts("minik-pause 1");
        return 0;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&set, &info);
        if (sig == SIGINT || sig == SIGTERM) return 0;
        if (sig == SIGCHLD) {
            while (waitpid(-1, NULL, WNOHANG) > 0) {}
        }
    }
}
