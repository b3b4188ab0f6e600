/* Steps shared by every child minik starts (minik.c, container.c). They run between
 * clone() and execve() in memory shared with the parent: syscalls only, no allocation. */
#ifndef MINIK_CHILD_H
#define MINIK_CHILD_H

#include <errno.h>
#include <linux/seccomp.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Drops every capability not in keep from the bounding set (so root's execve gets only
 * those), sets no_new_privs and loads the seccomp filter. 0 or -1 with errno. */
static inline int child_confine(unsigned long long keep, const struct sock_fprog *filter) {
    for (int cap = 0; cap < 64; cap++) {
        if (keep & (1ULL << cap)) continue;
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) return -1;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return -1;
    if (filter && syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, filter) < 0) return -1;
    return 0;
}

/* execve, searching search_path (colon-separated) when file has no '/'. Returns only on
 * failure, with errno ENOENT (nowhere) or EACCES (found, not executable). */
static inline void child_exec(const char *file, char *const argv[], char *const envp[], const char *search_path) {
    if (strchr(file, '/') || !search_path) {
        execve(file, argv, envp);
        return;
    }
    char full[4096];
    size_t flen = strlen(file);
    int saw_eacces = 0;
    const char *dirs = search_path;
    while (*dirs) {
        const char *end = strchr(dirs, ':');
        size_t dlen = end ? (size_t)(end - dirs) : strlen(dirs);
        if (dlen + flen + 2 < sizeof full) {
            memcpy(full, dirs, dlen);
            full[dlen] = '/';
            memcpy(full + dlen + 1, file, flen + 1);
            execve(full, argv, envp);
            if (errno == EACCES) saw_eacces = 1;
        }
        if (!end) break;
        dirs = end + 1;
    }
    errno = saw_eacces ? EACCES : ENOENT;
}

#endif
