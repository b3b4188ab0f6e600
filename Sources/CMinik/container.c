/*
 * Containers: a process that joins its pod sandbox's network, UTS and IPC namespaces and
 * gets its own mount namespace (and PID namespace, unless the pod shares one), whose root
 * is the image through overlayfs (its writable layer on a size-limited tmpfs of that
 * mount namespace's own), with its own /proc, a minimal /dev, the pod's
 * /etc/hosts, /etc/hostname and /etc/resolv.conf, a reduced capability bounding set,
 * no_new_privs and a seccomp filter.
 *
 * Everything between clone() and execve() is syscalls only, on memory the parent
 * prepared (CLONE_VM|CLONE_VFORK): no allocation, no locks, no Swift. The clone itself
 * runs on a throwaway thread so that joining the sandbox's PID namespace
 * (setns(CLONE_NEWPID) changes the namespace of the thread's future children) never
 * touches a thread anyone else uses.
 */
#define _GNU_SOURCE
#include "minik.h"
#include "child.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

struct cctx {
    const struct minik_container_attr *a;
    char *const *argv;
    char *const *envp;
    volatile int err;
    const char *volatile step;
    pid_t pid;
};

#define FAIL(s) do { c->step = (s); goto fail; } while (0)

/* Sends fd over a Unix socket (SCM_RIGHTS); syscalls only (it runs in the child). */
static int send_fd(int sock, int fd) {
    char byte = 0;
    struct iovec iov = {&byte, 1};
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int))];
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl.space;
    msg.msg_controllen = sizeof ctl.space;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    return sendmsg(sock, &msg, MSG_NOSIGNAL) < 0 ? -1 : 0;
}

static int bind_file(const char *source, const char *target) {
    int fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) close(fd);
    return mount(source, target, NULL, MS_BIND, NULL);
}

/* mkdir -p of a relative path, with syscalls only (the child shares our memory). */
static int mkdir_p(const char *path) {
    char buf[256];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return -1;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        char saved = buf[i];
        buf[i] = 0;
        if (mkdir(buf, 0755) < 0 && errno != EEXIST) return -1;
        buf[i] = saved;
    }
    return 0;
}

/* Docker's defaults (moby oci/defaults.go, applied by runc): kernel settings read-only,
 * kernel memory, keys and timers hidden. A container's root could otherwise write
 * /proc/sys/kernel/core_pattern ("|/prog" runs prog as host root on any crash) or
 * /proc/sysrq-trigger. Paths are relative to the new root, before pivot_root. */
static const char *const readonly_paths[] = {
    "proc/bus", "proc/fs", "proc/irq", "proc/sys", "proc/sysrq-trigger",
};
static const char *const masked_paths[] = {
    "proc/acpi", "proc/asound", "proc/interrupts", "proc/kcore", "proc/keys", "proc/latency_stats",
    "proc/timer_list", "proc/timer_stats", "proc/sched_debug", "proc/scsi", "sys/firmware",
    "sys/devices/virtual/powercap",
};

static int mask_kernel_paths(void) {
    const unsigned long locked = MS_NOSUID | MS_NODEV | MS_NOEXEC;
    for (unsigned i = 0; i < sizeof readonly_paths / sizeof readonly_paths[0]; i++) {
        const char *p = readonly_paths[i];
        if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0) {
            if (errno == ENOENT) continue;
            return -1;
        }
        if (mount(p, p, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC | locked, NULL) < 0) return -1;
    }
    for (unsigned i = 0; i < sizeof masked_paths / sizeof masked_paths[0]; i++) {
        const char *p = masked_paths[i];
        struct stat st;
        if (stat(p, &st) < 0) continue; /* not on this kernel */
        int rc = S_ISDIR(st.st_mode) ? mount("tmpfs", p, "tmpfs", MS_RDONLY | locked, "mode=555")
                                     : mount("dev/null", p, NULL, MS_BIND, NULL);
        if (rc < 0) return -1;
    }
    return 0;
}

static int container_child(void *p) {
    struct cctx *c = p;
    const struct minik_container_attr *a = c->a;
    for (int i = 0; i < 3; i++) {
        /* "0" is the writer itself: the limits hold from the first instruction on. */
        if (a->cgroup_fds[i] >= 0 && write(a->cgroup_fds[i], "0", 1) != 1) FAIL("join the container's cgroup");
    }
    for (int i = 0; i < 4; i++) {
        if (a->join_fds[i] >= 0 && setns(a->join_fds[i], 0) < 0) FAIL("join the pod's namespaces");
    }
    if (a->base_mnt_fd >= 0 && setns(a->base_mnt_fd, CLONE_NEWNS) < 0) FAIL("enter the base mount namespace");
    if (unshare(CLONE_NEWNS) < 0) FAIL("new mount namespace");
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) FAIL("make mounts private");
    /* Unprivileged: device nodes made in the container's own filesystems do not work
     * (the devices cgroup refuses to make them too; this holds where it is missing). The
     * nodes /dev holds are bind mounts, which keep their own flags. */
    const unsigned long nodev = a->privileged ? 0 : MS_NODEV;
    if (a->rw_dir) {
        /* The writable layer, bounded: a tmpfs only this mount namespace sees, gone with it. */
        if (mount("tmpfs", a->rw_dir, "tmpfs", MS_NOSUID | nodev, a->rw_options) < 0) FAIL("mount the writable layer (tmpfs)");
        if (mkdir(a->rw_upper, 0755) < 0 || mkdir(a->rw_work, 0755) < 0) FAIL("make the writable layer");
    }
    if (mount("overlay", a->merged, "overlay", nodev, a->overlay_options) < 0) FAIL("mount the image (overlayfs)");
    if (chdir(a->merged) < 0) FAIL("enter the root filesystem");
    mkdir("proc", 0555);
    if (mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) FAIL("mount /proc");
    mkdir("dev", 0755);
    if (mount("tmpfs", "dev", "tmpfs", MS_NOSUID | MS_STRICTATIME | nodev, "mode=755,size=65536k") < 0) FAIL("mount /dev");
    static const char *const devices[][2] = {
        {"/dev/null", "dev/null"}, {"/dev/zero", "dev/zero"}, {"/dev/full", "dev/full"},
        {"/dev/random", "dev/random"}, {"/dev/urandom", "dev/urandom"}, {"/dev/tty", "dev/tty"},
    };
    for (unsigned i = 0; i < sizeof devices / sizeof devices[0]; i++) {
        if (bind_file(devices[i][0], devices[i][1]) < 0) FAIL("populate /dev");
    }
    mkdir("dev/pts", 0755);
    if (mount("devpts", "dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620") < 0) FAIL("mount /dev/pts");
    symlink("pts/ptmx", "dev/ptmx");
    symlink("/proc/self/fd", "dev/fd");
    symlink("/proc/self/fd/0", "dev/stdin");
    symlink("/proc/self/fd/1", "dev/stdout");
    symlink("/proc/self/fd/2", "dev/stderr");
    mkdir("dev/shm", 01777);
    mount("shm", "dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k");
    mkdir("sys", 0555);
    mount("sysfs", "sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL); /* best effort */
    if (!a->privileged && mask_kernel_paths() < 0) FAIL("mask /proc and /sys paths");
    mkdir("etc", 0755);
    if (a->hosts && bind_file(a->hosts, "etc/hosts") < 0) FAIL("mount /etc/hosts");
    if (a->hostname && bind_file(a->hostname, "etc/hostname") < 0) FAIL("mount /etc/hostname");
    if (a->resolv && bind_file(a->resolv, "etc/resolv.conf") < 0) FAIL("mount /etc/resolv.conf");
    if (a->dir_source && a->dir_target) {
        /* dir_target is absolute; inside the new root it is relative to ".". */
        const char *target = a->dir_target[0] == '/' ? a->dir_target + 1 : a->dir_target;
        if (mkdir_p(target) < 0 || mount(a->dir_source, target, NULL, MS_BIND | MS_REC, NULL) < 0) FAIL("mount a cluster directory");
        if (a->dir_readonly && mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
            FAIL("make a cluster directory read-only");
    }
    if (a->secrets_source) {
        const char *target = "var/run/secrets/kubernetes.io/serviceaccount";
        if (mkdir_p(target) < 0 || mount(a->secrets_source, target, NULL, MS_BIND, NULL) < 0) FAIL("mount the service account token");
        if (mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
            FAIL("make the service account token read-only");
    }
    /* pivot_root(".", "."): the old root ends up stacked on the new one; detach it. */
    if (syscall(SYS_pivot_root, ".", ".") < 0) FAIL("pivot_root");
    if (umount2(".", MNT_DETACH) < 0) FAIL("detach the old root");
    if (chdir("/") < 0) FAIL("chdir /");
    if (setsid() < 0) FAIL("setsid");
    int fds[3] = {a->stdin_fd, a->stdout_fd, a->stderr_fd};
    int console = -1;
    if (a->console_socket >= 0) {
        /* A terminal of the container's own devpts, so `tty` inside says /dev/pts/0: the
         * master goes to the caller, the slave becomes stdin, stdout and stderr. */
        int m = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (m < 0) FAIL("open the container's /dev/ptmx");
        int unlock = 0;
        unsigned int n = 0;
        if (ioctl(m, TIOCSPTLCK, &unlock) < 0 || ioctl(m, TIOCGPTN, &n) < 0) FAIL("unlock a terminal");
        char path[32] = "/dev/pts/";
        char digits[12];
        int len = 0;
        do { digits[len++] = (char)('0' + n % 10); n /= 10; } while (n && len < 11);
        for (int i = 0; i < len; i++) path[9 + i] = digits[len - 1 - i];
        path[9 + len] = 0;
        console = open(path, O_RDWR | O_NOCTTY);
        if (console < 0) FAIL("open the terminal");
        if (send_fd(a->console_socket, m) < 0) FAIL("hand the terminal's master over");
        close(m);
        fds[0] = fds[1] = fds[2] = console;
    }
    for (int i = 0; i < 3; i++) {
        int fd = fds[i] >= 0 ? fds[i] : open("/dev/null", O_RDWR);
        if (fd < 0) FAIL("open /dev/null");
        if (fd != i && dup2(fd, i) < 0) FAIL("set up stdio");
        if (fd == i) fcntl(i, F_SETFD, 0);
    }
    if ((a->tty || console >= 0) && ioctl(0, TIOCSCTTY, 0) < 0) FAIL("take the terminal");
    if (a->workdir && a->workdir[0] && chdir(a->workdir) < 0) FAIL("chdir to workingDir");
    syscall(SYS_close_range, 3U, ~0U, 0U);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, NULL);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (!a->privileged && child_confine(a->capabilities, a->seccomp_filter) < 0) FAIL("confine (capabilities, no_new_privs, seccomp)");
    c->step = "exec";
    child_exec(c->argv[0], c->argv, c->envp,
               a->search_path ? a->search_path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
fail:
    c->err = errno ? errno : EINVAL;
    _exit(127);
}

static void *container_thread(void *p) {
    struct cctx *c = p;
    const struct minik_container_attr *a = c->a;
    if (a->share_pid_fd >= 0 && setns(a->share_pid_fd, CLONE_NEWPID) < 0) {
        c->err = errno;
        c->step = "join the pod's PID namespace";
        c->pid = -1;
        return NULL;
    }
    const size_t stack_size = 256 * 1024;
    void *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) {
        c->err = errno;
        c->step = "allocate a stack";
        c->pid = -1;
        return NULL;
    }
    int flags = CLONE_VM | CLONE_VFORK | SIGCHLD | (a->share_pid_fd >= 0 ? 0 : CLONE_NEWPID);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = clone(container_child, (char *)stack + stack_size, flags, c);
    int clone_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    munmap(stack, stack_size);
    if (pid < 0) {
        c->err = clone_errno;
        c->step = "clone";
        c->pid = -1;
        return NULL;
    }
    if (c->err != 0) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        c->pid = -1;
        return NULL;
    }
    c->pid = pid;
    return NULL;
}

pid_t minik_spawn_container(const struct minik_container_attr *attr, char *const argv[], char *const envp[],
                            const char **failed_step) {
    struct cctx c = {attr, argv, envp, 0, NULL, -1};
    pthread_t t;
    int rc = pthread_create(&t, NULL, container_thread, &c);
    if (rc != 0) {
        *failed_step = "start a thread";
        return -rc;
    }
    pthread_join(t, NULL);
    if (c.pid < 0) {
        *failed_step = c.step;
        return -c.err;
    }
    *failed_step = NULL;
    return c.pid;
}

struct base_job {
    const char *netns_dir;
    int fd;
};

static int base_job(void *p) {
    struct base_job *j = p;
    if (unshare(CLONE_NEWNS) < 0) return -errno;
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) return -errno;
    umount2(j->netns_dir, MNT_DETACH); /* not mounted: nothing to hide */
    j->fd = open("/proc/thread-self/ns/mnt", O_RDONLY | O_CLOEXEC);
    return j->fd < 0 ? -errno : 0;
}

int minik_container_base_mntns(const char *netns_dir, int *fd) {
    struct base_job j = {netns_dir, -1};
    int rc = minik_run_on_thread(base_job, &j);
    if (rc == 0) *fd = j.fd;
    return rc;
}

/* ---- seccomp ------------------------------------------------------------------------ */

/* The namespace flags of clone(2): CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER,
 * NEWPID, NEWNET (CLONE_NEWTIME exists only for clone3 and unshare, both denied). */
static const unsigned long long clone_ns_flags[] = {
    0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000,
};

int minik_seccomp_build(const char *const *denied, int count, int errno_value, int restrict_clone,
                        struct sock_fprog *out) {
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx) return -ENOMEM;
    for (int i = 0; i < count; i++) {
        int nr = seccomp_syscall_resolve_name(denied[i]);
        if (nr == __NR_SCMP_ERROR) continue; /* not on this architecture */
        int rc = seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO(errno_value), nr, 0, NULL);
        if (rc < 0) { seccomp_release(ctx); return rc; }
    }
    if (restrict_clone) {
        /* One rule per flag: a filter compares masked values for equality only. */
        for (unsigned i = 0; i < sizeof clone_ns_flags / sizeof clone_ns_flags[0]; i++) {
            struct scmp_arg_cmp cmp = {0, SCMP_CMP_MASKED_EQ, clone_ns_flags[i], clone_ns_flags[i]};
            int rc = seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1, &cmp);
            if (rc < 0) { seccomp_release(ctx); return rc; }
        }
        int rc = seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0, NULL);
        if (rc < 0) { seccomp_release(ctx); return rc; }
    }
    int fd = memfd_create("minik-seccomp", MFD_CLOEXEC);
    if (fd < 0) { seccomp_release(ctx); return -errno; }
    int rc = seccomp_export_bpf(ctx, fd);
    seccomp_release(ctx);
    if (rc < 0) { close(fd); return rc; }
    off_t size = lseek(fd, 0, SEEK_END);
    if (size <= 0 || size % sizeof(struct sock_filter) != 0) { close(fd); return -EINVAL; }
    struct sock_filter *prog = malloc(size);
    if (!prog) { close(fd); return -ENOMEM; }
    if (pread(fd, prog, size, 0) != size) { free(prog); close(fd); return -EIO; }
    close(fd);
    out->len = (unsigned short)(size / sizeof(struct sock_filter));
    out->filter = prog;
    return 0;
}
