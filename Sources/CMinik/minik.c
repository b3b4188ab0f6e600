#define _GNU_SOURCE
#include "minik.h"
#include "child.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>
#include <sys/statfs.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <termios.h>
#include <linux/seccomp.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- running a job on a throwaway thread ------------------------------------------ */

struct thread_job {
    thread_job_fn fn;
    void *arg;
    int result;
};

static void *thread_job_main(void *p) {
    struct thread_job *job = p;
    job->result = job->fn(job->arg);
    return NULL;
}

/* Runs fn(arg) on a new pthread and joins it. The thread may change namespaces freely:
 * it dies right after, and nothing else ever runs on it. */
int minik_run_on_thread(thread_job_fn fn, void *arg) {
    struct thread_job job = {fn, arg, 0};
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    int rc = pthread_create(&t, &attr, thread_job_main, &job);
    pthread_attr_destroy(&attr);
    if (rc != 0) return -rc;
    pthread_join(t, NULL);
    return job.result;
}

/* ---- network namespaces ------------------------------------------------------------ */

struct netns_create_job {
    const char *pin_path;
    int ns_fd;
};

static int netns_create_job(void *p) {
    struct netns_create_job *job = p;
    if (unshare(CLONE_NEWNET) < 0) return -errno;
    int fd = open(job->pin_path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
    if (fd < 0) return -errno;
    close(fd);
    if (mount("/proc/thread-self/ns/net", job->pin_path, "none", MS_BIND, NULL) < 0) {
        int e = errno;
        unlink(job->pin_path);
        return -e;
    }
    job->ns_fd = open(job->pin_path, O_RDONLY | O_CLOEXEC);
    if (job->ns_fd < 0) {
        int e = errno;
        umount2(job->pin_path, MNT_DETACH);
        unlink(job->pin_path);
        return -e;
    }
    return 0;
}

int minik_netns_create(const char *pin_path, int *ns_fd) {
    struct netns_create_job job = {pin_path, -1};
    int rc = minik_run_on_thread(netns_create_job, &job);
    if (rc == 0) *ns_fd = job.ns_fd;
    return rc;
}

static int dir_is_empty(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int empty = 1;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) { empty = 0; break; }
    }
    closedir(d);
    return empty;
}

int minik_tmpfs_dir_prepare(const char *dir, const char *mode, int shared) {
    int made = 0;
    if (mkdir(dir, 0755) == 0) made |= MINIK_NETNS_DIR_CREATED;
    else if (errno != EEXIST) return -errno;
    /* Already a mount point (MS_SHARED succeeds only on one): use it as it is. */
    if (mount("", dir, "none", (shared ? MS_SHARED : MS_PRIVATE) | MS_REC, NULL) == 0) return made;
    if (errno != EINVAL) return -errno;
    char opts[32];
    snprintf(opts, sizeof opts, "mode=%s", mode);
    if (dir_is_empty(dir)) {
        /* A tmpfs, as /run is on most systems: pins and state never touch a disk. */
        if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) < 0) return -errno;
    } else {
        /* iproute2's recipe when the directory holds pins already: a bind of itself. */
        if (mount(dir, dir, "none", MS_BIND | MS_REC, NULL) < 0) return -errno;
    }
    made |= MINIK_NETNS_DIR_MOUNTED;
    if (shared && mount("", dir, "none", MS_SHARED | MS_REC, NULL) < 0) return -errno;
    return made;
}

int minik_netns_dir_prepare(const char *dir) {
    return minik_tmpfs_dir_prepare(dir, "0755", 1);
}

int minik_netns_dir_release(const char *dir, int made) {
    if ((made & MINIK_NETNS_DIR_MOUNTED) && umount2(dir, MNT_DETACH) < 0 && errno != EINVAL) return -errno;
    if ((made & MINIK_NETNS_DIR_CREATED) && rmdir(dir) < 0 && errno != ENOENT) return -errno;
    return 0;
}

int minik_netns_pin(const char *ns_path, const char *pin_path) {
    int fd = open(pin_path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
    if (fd < 0) return -errno;
    close(fd);
    if (mount(ns_path, pin_path, "none", MS_BIND, NULL) < 0) {
        int e = errno;
        unlink(pin_path);
        return -e;
    }
    return 0;
}

int minik_netns_unpin(const char *pin_path) {
    int gone = 0;
    if (umount2(pin_path, MNT_DETACH) < 0) {
        if (errno == ENOENT) gone = 1;
        else if (errno != EINVAL) return -errno; /* EINVAL: not a mount point */
    }
    if (unlink(pin_path) < 0) {
        if (errno == ENOENT) return 0;
        return -errno;
    }
    (void)gone;
    return 0;
}

struct socket_job {
    int ns_fd, domain, type, protocol;
};

static int socket_job(void *p) {
    struct socket_job *job = p;
    if (setns(job->ns_fd, CLONE_NEWNET) < 0) return -errno;
    int fd = socket(job->domain, job->type | SOCK_CLOEXEC, job->protocol);
    if (fd < 0) return -errno;
    return fd;
}

int minik_socket_in_netns(int ns_fd, int domain, int type, int protocol) {
    struct socket_job job = {ns_fd, domain, type, protocol};
    return minik_run_on_thread(socket_job, &job);
}

struct sysctl_job {
    int ns_fd;
    const char *path, *value;
};

static int sysctl_job(void *p) {
    struct sysctl_job *job = p;
    if (setns(job->ns_fd, 0) < 0) return -errno;
    /* /proc/sys/net (and kernel/shm_*) reflect the namespace of the thread that opens the file. */
    int fd = open(job->path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    size_t len = strlen(job->value);
    ssize_t n = write(fd, job->value, len);
    int e = errno;
    close(fd);
    if (n < 0) return -e;
    return 0;
}

int minik_sysctl_in_netns(int ns_fd, const char *path, const char *value) {
    struct sysctl_job job = {ns_fd, path, value};
    return minik_run_on_thread(sysctl_job, &job);
}

/* ---- gratuitous ARP ----------------------------------------------------------------- */

struct garp_job {
    int ns_fd;
    const char *ifname;
    const uint8_t *mac;
    uint8_t ip[4];
};

static int garp_job(void *p) {
    struct garp_job *j = p;
    if (setns(j->ns_fd, CLONE_NEWNET) < 0) return -errno;
    int ifindex = (int)if_nametoindex(j->ifname);
    if (ifindex == 0) return -errno;
    int fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ARP));
    if (fd < 0) return -errno;
    /* ARP over Ethernet (RFC 826): request, sender and target protocol address the same. */
    uint8_t pkt[28] = {0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01};
    memcpy(pkt + 8, j->mac, 6);
    memcpy(pkt + 14, j->ip, 4);
    memcpy(pkt + 24, j->ip, 4);
    struct sockaddr_ll to;
    memset(&to, 0, sizeof to);
    to.sll_family = AF_PACKET;
    to.sll_protocol = htons(ETH_P_ARP);
    to.sll_ifindex = ifindex;
    to.sll_halen = 6;
    memset(to.sll_addr, 0xff, 6);
    ssize_t n = sendto(fd, pkt, sizeof pkt, 0, (struct sockaddr *)&to, sizeof to);
    int e = errno;
    close(fd);
    return n < 0 ? -e : 0;
}

int minik_send_garp(int ns_fd, const char *ifname, const uint8_t *mac, uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
    struct garp_job j = {ns_fd, ifname, mac, {a, b, c, d}};
    return minik_run_on_thread(garp_job, &j);
}

/* ---- spawning ---------------------------------------------------------------------- */

struct spawn_ctx {
    const struct minik_spawn_attr *attr;
    const char *path;
    char *const *argv;
    char *const *envp;
    volatile int err; /* written by the child; CLONE_VM shares it with the parent */
};

static int spawn_child(void *p) {
    struct spawn_ctx *c = p;
    const struct minik_spawn_attr *a = c->attr;
    /* Only syscalls from here to execve: the child shares the parent's memory. */
    for (int i = 0; i < 3; i++) {
        /* "0" is the writer itself: a command in a container is under its limits too. */
        if (a->cgroup_fds[i] >= 0 && write(a->cgroup_fds[i], "0", 1) != 1) goto fail;
    }
    for (int i = 0; i < 4; i++) {
        if (a->join_fds[i] >= 0 && setns(a->join_fds[i], 0) < 0) goto fail;
    }
    if (a->hostname && sethostname(a->hostname, strlen(a->hostname)) < 0) goto fail;
    if (a->new_session && setsid() < 0) goto fail;
    int fds[3] = {a->stdin_fd, a->stdout_fd, a->stderr_fd};
    int devnull = -1;
    for (int i = 0; i < 3; i++) {
        int fd = fds[i];
        if (fd < 0) {
            if (devnull < 0) devnull = open("/dev/null", O_RDWR);
            if (devnull < 0) goto fail;
            fd = devnull;
        }
        if (fd == i) {
            int flags = fcntl(fd, F_GETFD);
            if (flags >= 0) fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
        } else if (dup2(fd, i) < 0) {
            goto fail;
        }
    }
    if (a->new_session && a->tty && ioctl(0, TIOCSCTTY, 0) < 0) goto fail;
    syscall(SYS_close_range, 3U, ~0U, 0U);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        sigaction(sig, &dfl, NULL); /* ignored signals would stay ignored across exec */
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (a->confine && child_confine(a->capabilities, a->seccomp_filter) < 0) goto fail;
    child_exec(c->path, c->argv, c->envp, a->search_path);
fail:
    c->err = errno ? errno : EINVAL;
    _exit(127);
}

static pid_t spawn_here(const struct minik_spawn_attr *attr, const char *path,
                        char *const argv[], char *const envp[]);

struct spawn_job {
    const struct minik_spawn_attr *attr;
    const char *path;
    char *const *argv, *const *envp;
    pid_t result;
};

static int spawn_job(void *p) {
    struct spawn_job *j = p;
    if (setns(j->attr->pid_ns_fd, CLONE_NEWPID) < 0) return -errno;
    j->result = spawn_here(j->attr, j->path, j->argv, j->envp);
    return 0;
}

pid_t minik_spawn(const struct minik_spawn_attr *attr, const char *path,
                  char *const argv[], char *const envp[]) {
    if (attr->pid_ns_fd < 0) return spawn_here(attr, path, argv, envp);
    /* setns(CLONE_NEWPID) moves the thread's future children: do it on a throwaway one. */
    struct spawn_job j = {attr, path, argv, envp, -EINVAL};
    int rc = minik_run_on_thread(spawn_job, &j);
    return rc < 0 ? rc : j.result;
}

static pid_t spawn_here(const struct minik_spawn_attr *attr, const char *path,
                        char *const argv[], char *const envp[]) {
    const size_t stack_size = 256 * 1024;
    void *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) return -errno;
    struct spawn_ctx ctx = {attr, path, argv, envp, 0};
    /* Block every signal around clone so no handler of ours runs in the child. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = clone(spawn_child, (char *)stack + stack_size,
                      CLONE_VM | CLONE_VFORK | SIGCHLD | attr->clone_flags, &ctx);
    int clone_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    munmap(stack, stack_size);
    if (pid < 0) return -clone_errno;
    if (ctx.err != 0) {
        /* The child failed before execve and exited: reap it and report why. */
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        return -ctx.err;
    }
    return pid;
}

unsigned long long minik_proc_starttime(pid_t pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return 0;
    p++;
    /* fields after the comm: state is field 3; starttime is field 22 */
    int field = 2;
    while (*p && field < 22) {
        if (*p == ' ') field++;
        p++;
    }
    if (field != 22) return 0;
    return strtoull(p, NULL, 10);
}

int minik_memfd(const char *name) {
    int fd = memfd_create(name, MFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

/* ---- pseudo-terminals for exec -t --------------------------------------------------- */

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

struct pty_job {
    int mnt_fd;
    int fd;
};

/* Inside the container's mount namespace (whose root is the container's root, whatever
 * chroot its processes made), /dev/pts/ptmx without following any symlink. */
static int pty_job(void *p) {
    struct pty_job *j = p;
    if (unshare(CLONE_FS) < 0) return -errno; /* setns(CLONE_NEWNS) needs a private fs */
    if (setns(j->mnt_fd, CLONE_NEWNS) < 0) return -errno;
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW;
    how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    int fd = (int)syscall(SYS_openat2, AT_FDCWD, "/dev/pts/ptmx", &how, sizeof how);
    if (fd < 0) return -errno;
    j->fd = fd;
    return 0;
}

int minik_pty_open(int mnt_fd, unsigned short rows, unsigned short cols, int *master, int *slave) {
    struct pty_job j = {mnt_fd, -1};
    int rc = minik_run_on_thread(pty_job, &j);
    if (rc < 0) return rc;
    int m = j.fd;
    struct stat st;
    struct statfs fs;
    /* A devpts multiplexer (5:2) of a devpts instance, nothing else the container made. */
    if (fstat(m, &st) < 0 || !S_ISCHR(st.st_mode) || major(st.st_rdev) != 5 || minor(st.st_rdev) != 2 ||
        fstatfs(m, &fs) < 0 || fs.f_type != DEVPTS_SUPER_MAGIC) {
        close(m);
        return -ENOTTY;
    }
    int unlock = 0;
    if (ioctl(m, TIOCSPTLCK, &unlock) < 0) { int e = errno; close(m); return -e; }
    int s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (s < 0) { int e = errno; close(m); return -e; }
    if (rows > 0 && cols > 0) minik_pty_resize(m, rows, cols);
    *master = m;
    *slave = s;
    return 0;
}

int minik_tty_size(int fd, unsigned short *rows, unsigned short *cols) {
    struct winsize ws;
    if (ioctl(fd, TIOCGWINSZ, &ws) < 0) return -errno;
    *rows = ws.ws_row;
    *cols = ws.ws_col;
    return 0;
}

int minik_pty_resize(int fd, unsigned short rows, unsigned short cols) {
    struct winsize ws = {rows, cols, 0, 0};
    return ioctl(fd, TIOCSWINSZ, &ws) < 0 ? -errno : 0;
}

int minik_recv_fd(int sock) {
    char byte;
    struct iovec iov = {&byte, 1};
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl.space;
    msg.msg_controllen = sizeof ctl.space;
    ssize_t n;
    do { n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT); } while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (n == 0 || !c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) return -EPROTO;
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof fd);
    return fd;
}
