#define _GNU_SOURCE
#include "dnsio.h"
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define MAX_BATCH 64

int dnsio_recv(int fd, uint8_t *bufs, int bufsize, int count, struct sockaddr_in *addrs, int *lens) {
    struct mmsghdr msgs[MAX_BATCH];
    struct iovec iov[MAX_BATCH];
    if (count > MAX_BATCH) count = MAX_BATCH;
    memset(msgs, 0, sizeof(struct mmsghdr) * (size_t)count);
    for (int i = 0; i < count; i++) {
        iov[i].iov_base = bufs + (size_t)i * (size_t)bufsize;
        iov[i].iov_len = (size_t)bufsize;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &addrs[i];
        msgs[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in);
    }
    int n;
    do {
        n = recvmmsg(fd, msgs, (unsigned)count, MSG_WAITFORONE, NULL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    for (int i = 0; i < n; i++) {
        /* A datagram larger than the buffer is cut: mark it so it is dropped. */
        lens[i] = (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) ? -1 : (int)msgs[i].msg_len;
    }
    return n;
}

int dnsio_send(int fd, uint8_t *bufs, int bufsize, const int *lens, const struct sockaddr_in *addrs, int count) {
    struct mmsghdr msgs[MAX_BATCH];
    struct iovec iov[MAX_BATCH];
    int sent = 0;
    while (sent < count) {
        int batch = count - sent > MAX_BATCH ? MAX_BATCH : count - sent;
        memset(msgs, 0, sizeof(struct mmsghdr) * (size_t)batch);
        for (int i = 0; i < batch; i++) {
            iov[i].iov_base = bufs + (size_t)(sent + i) * (size_t)bufsize;
            iov[i].iov_len = (size_t)lens[sent + i];
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = (void *)&addrs[sent + i];
            msgs[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in);
        }
        int n = sendmmsg(fd, msgs, (unsigned)batch, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            /* One bad destination must not stop the rest: skip it. */
            sent += 1;
            continue;
        }
        sent += n;
    }
    return sent;
}

int dnsio_listen(int type, uint32_t addr_be, uint16_t port, int backlog) {
    int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (type == SOCK_DGRAM) {
        int size = 4 << 20;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = addr_be;
    sa.sin_port = htons(port);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || (type == SOCK_STREAM && listen(fd, backlog) < 0)) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int dnsio_rcvtimeo(int fd, int millis) {
    struct timeval tv = {millis / 1000, (millis % 1000) * 1000};
    return setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ? -errno : 0;
}

int dnsio_watch_dir(const char *dir) {
    int fd = inotify_init1(IN_CLOEXEC);
    if (fd < 0) return -errno;
    if (inotify_add_watch(fd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int dnsio_watch_read(int fd, const char *file) {
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) return -errno;
    int hit = 0;
    for (char *p = buf; p < buf + n;) {
        struct inotify_event *ev = (struct inotify_event *)p;
        if (ev->len > 0 && strcmp(ev->name, file) == 0) hit = 1;
        p += sizeof(struct inotify_event) + ev->len;
    }
    return hit;
}

int dnsio_cpus(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
    return 1;
}

int dnsio_accept(int listener) {
    int c = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    return c < 0 ? -errno : c;
}
