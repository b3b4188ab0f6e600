/*
 * CMinik: the small C layer under minik.
 *
 * What lives here is what Swift cannot do safely or at all:
 *  - namespace syscalls that Glibc's Swift module hides (setns, unshare, CLONE_NEW*),
 *    always run on a throwaway pthread so no Swift concurrency thread ever changes
 *    namespace (a network namespace belongs to an OS thread);
 *  - process spawning with clone(): between clone and execve the child runs only
 *    syscalls (setns, sethostname, setsid, dup2, execve), never Swift code;
 *  - static inline wrappers for the function-like netlink macros that do not import.
 */
#ifndef MINIK_H
#define MINIK_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <net/if.h>
#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/if_link.h>
#include <linux/if_addr.h>
#include <linux/if_ether.h>
#include <linux/neighbour.h>
#include <linux/veth.h>
#include <linux/filter.h>
#include <linux/pkt_sched.h>
#include <linux/gen_stats.h>

#define MINIK_CLONE_NEWNET 0x40000000
#define MINIK_CLONE_NEWUTS 0x04000000
#define MINIK_CLONE_NEWIPC 0x08000000
#define MINIK_CLONE_NEWPID 0x20000000
#define MINIK_CLONE_NEWNS 0x00020000

#define MINIK_MNL_SOCKET_BUFFER_SIZE 8192

/* Netlink helpers for macros that do not import into Swift. */
static inline uint32_t minik_nlmsg_len(const struct nlmsghdr *nlh) { return nlh->nlmsg_len; }
static inline int minik_nlmsg_error_code(const struct nlmsghdr *nlh) {
    const struct nlmsgerr *err = (const struct nlmsgerr *)mnl_nlmsg_get_payload(nlh);
    return err->error;
}

/* Namespaces. Each call runs its namespace work on a fresh pthread, so the caller's
 * thread never changes namespace. Return 0 or -errno. */

/* Create a new network namespace and pin it by bind-mounting it on pin_path (the file is
 * created). On success *ns_fd is an O_CLOEXEC fd of the namespace. */
int minik_netns_create(const char *pin_path, int *ns_fd);

/* Make sure dir (e.g. /run/netns) exists and is a shared mount of itself, as iproute2
 * does, so pins made under it propagate like `ip netns add` pins. Returns what it had to
 * do (MINIK_NETNS_DIR_* bits) or -errno. */
#define MINIK_NETNS_DIR_CREATED 1
#define MINIK_NETNS_DIR_MOUNTED 2
int minik_netns_dir_prepare(const char *dir);

/* Make dir a mount point: as it is if it is one; a tmpfs (mode) if it is empty; a bind
 * mount of itself otherwise. shared: make it a shared mount. Returns MINIK_NETNS_DIR_*
 * bits of what it did, or -errno. */
int minik_tmpfs_dir_prepare(const char *dir, const char *mode, int shared);

/* Undo what minik_netns_dir_prepare or minik_tmpfs_dir_prepare reported it did. */
int minik_netns_dir_release(const char *dir, int made);

/* Bind-mount the namespace file ns_path (e.g. /proc/PID/ns/net) on pin_path. */
int minik_netns_pin(const char *ns_path, const char *pin_path);

/* Unmount (lazily) and unlink a pin. Returns 0 if it was gone already. */
int minik_netns_unpin(const char *pin_path);

/* Open a socket inside the network namespace ns_fd. Returns the fd or -errno. */
int minik_socket_in_netns(int ns_fd, int domain, int type, int protocol);

/* Write value to a /proc/sys file inside the namespace ns_fd (network, or IPC). */
int minik_sysctl_in_netns(int ns_fd, const char *path, const char *value);

/* Sends a gratuitous ARP request (sender = target = a.b.c.d, from mac) out of ifname in
 * the network namespace ns_fd. Returns 0 or -errno. */
int minik_send_garp(int ns_fd, const char *ifname, const uint8_t *mac, uint8_t a, uint8_t b, uint8_t c, uint8_t d);

/* Process spawning. */
struct sock_fprog;
struct minik_spawn_attr {
    int clone_flags;          /* MINIK_CLONE_NEW* for new namespaces */
    int join_fds[4];          /* namespace fds to setns() into first, -1 unused */
    const char *hostname;     /* sethostname in the child (needs a new UTS ns), or NULL */
    int stdin_fd, stdout_fd, stderr_fd; /* -1: /dev/null */
    int new_session;          /* setsid() in the child */
    int pid_ns_fd;            /* a PID namespace the child is born in, or -1 */
    const char *search_path;  /* PATH to search when path has no '/', or NULL */
    int confine;              /* apply capabilities, no_new_privs and seccomp_filter */
    unsigned long long capabilities; /* with confine: bit n set keeps capability n */
    const struct sock_fprog *seccomp_filter; /* with confine: or NULL */
    int tty;                  /* with new_session: stdin is a terminal to make the controlling one */
    int cgroup_fds[3];        /* cgroup.procs files the child joins first; -1 unused */
};

/* Spawn path with argv/envp. Returns the pid, or -errno of the failing step in the child
 * (or of clone itself). The child's signal mask is cleared and every fd above 2 that is
 * not a stdio fd is closed (close_range) before execve. */
pid_t minik_spawn(const struct minik_spawn_attr *attr, const char *path,
                  char *const argv[], char *const envp[]);

/* Containers (container.c). */
struct sock_fprog;
struct minik_container_attr {
    int join_fds[4];             /* the sandbox's net, uts, ipc namespaces; -1 unused */
    int base_mnt_fd;             /* mount namespace to copy for the container, or -1: ours */
    int share_pid_fd;            /* the sandbox's PID namespace to join, or -1 for a new one */
    const char *merged;          /* where the overlay is mounted (becomes /) */
    const char *overlay_options; /* "lowerdir=...,upperdir=...,workdir=..." */
    const char *rw_dir;          /* a tmpfs (rw_options, e.g. "size=...") is mounted here, in the */
    const char *rw_options;      /* container's own mount namespace, for upperdir rw_upper and */
    const char *rw_upper, *rw_work; /* workdir rw_work to be made in; NULL: no tmpfs */
    const char *hosts, *hostname, *resolv; /* files bind-mounted on /etc/..., or NULL */
    const char *dir_source, *dir_target; /* a host directory bind-mounted at dir_target, or NULL */
    int dir_readonly;
    /* The pod's service account directory (token, ca.crt, namespace), bind-mounted
     * read-only at /var/run/secrets/kubernetes.io/serviceaccount, or NULL. */
    const char *secrets_source;
    const char *workdir;         /* chdir after pivot_root, or NULL */
    const char *search_path;     /* PATH for a command without '/' */
    unsigned long long capabilities; /* bit n set: keep capability n in the bounding set */
    int privileged;              /* keep every capability, no seccomp, no no_new_privs */
    const struct sock_fprog *seccomp_filter; /* or NULL */
    int stdin_fd, stdout_fd, stderr_fd; /* -1: /dev/null */
    int tty;                     /* stdin is a terminal to make the controlling one */
    int cgroup_fds[3];           /* cgroup.procs files the child joins before execve; -1 unused */
    /* -1, or a Unix socket: the container gets a new terminal of its own devpts as stdin,
     * stdout and stderr (its controlling one), and the terminal's master is sent over this
     * socket (SCM_RIGHTS) before the exec, as runc's console socket does. */
    int console_socket;
};

/* Receives one file descriptor sent with SCM_RIGHTS on a Unix socket; the fd or -errno. */
int minik_recv_fd(int sock);

/* Starts a container; returns its pid, or -errno with *failed_step naming what failed
 * (e.g. "exec" with -ENOENT for a command not in the image). */
pid_t minik_spawn_container(const struct minik_container_attr *attr, char *const argv[], char *const envp[],
                            const char **failed_step);

/* A small mount namespace to copy containers' from: private, without /run/netns (whose
 * hundreds of pins every new mount namespace would otherwise copy). *fd is its fd. */
int minik_container_base_mntns(const char *netns_dir, int *fd);

/* A seccomp filter that allows everything but the listed syscalls, which fail with
 * errno_value. With restrict_clone, as Docker's default profile without CAP_SYS_ADMIN:
 * clone with any namespace flag fails with EPERM and clone3 with ENOSYS (so the C
 * library falls back to clone, whose flags a filter can see). out->filter is malloc'ed.
 * Returns 0 or a negative errno. */
int minik_seccomp_build(const char *const *denied, int count, int errno_value, int restrict_clone,
                        struct sock_fprog *out);

/* A new pseudo-terminal in a container's own devpts: /dev/pts/ptmx of the mount namespace
 * mnt_fd, opened on a throwaway thread inside it without following symlinks (never
 * through /proc/PID/root, which a process's chroot moves), checked to be a devpts 5:2.
 * *master and *slave are O_CLOEXEC fds, the slave opened through the master
 * (TIOCGPTPEER). rows/cols > 0 set the window size. Returns 0 or -errno. */
int minik_pty_open(int mnt_fd, unsigned short rows, unsigned short cols, int *master, int *slave);

/* The terminal's window size (TIOCGWINSZ) into *rows/*cols; set it with minik_pty_resize. */
int minik_tty_size(int fd, unsigned short *rows, unsigned short *cols);
int minik_pty_resize(int fd, unsigned short rows, unsigned short cols);

/* An anonymous in-memory file (O_CLOEXEC), e.g. a child's stdin. Returns the fd or -errno. */
int minik_memfd(const char *name);

/* Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat), or 0. */
unsigned long long minik_proc_starttime(pid_t pid);

#endif
