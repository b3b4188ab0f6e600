#define _GNU_SOURCE
#include "capture.h"

#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/filter.h>
#include <pcap/pcap.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int compile(const char *filter, int snaplen, struct bpf_program *prog, char *err, size_t errlen) {
    pcap_t *p = pcap_open_dead(DLT_EN10MB, snaplen);
    if (!p) {
        snprintf(err, errlen, "libpcap: cannot open a dead handle");
        return -ENOMEM;
    }
    if (pcap_compile(p, prog, filter, 1, PCAP_NETMASK_UNKNOWN) != 0) {
        snprintf(err, errlen, "%s", pcap_geterr(p));
        pcap_close(p);
        return -EINVAL;
    }
    pcap_close(p);
    return 0;
}

int minik_capture_check_filter(const char *filter, int snaplen, char *err, size_t errlen) {
    struct bpf_program prog;
    int rc = compile(filter, snaplen, &prog, err, errlen);
    if (rc == 0) pcap_freecode(&prog);
    return rc;
}

int minik_capture_setup(int fd, int ifindex, const char *filter, int snaplen, int rcvbuf, char *err, size_t errlen) {
    /* Nothing gets in until the socket is bound and filtered. */
    struct sock_filter drop_all = BPF_STMT(BPF_RET | BPF_K, 0);
    struct sock_fprog none = { .len = 1, .filter = &drop_all };
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &none, sizeof none) != 0) return -errno;
    struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL), .sll_ifindex = ifindex };
    if (bind(fd, (struct sockaddr *)&sll, sizeof sll) != 0) return -errno;
    char drain[64];
    while (recv(fd, drain, sizeof drain, MSG_DONTWAIT) >= 0) {}
    if (rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    int on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) != 0) return -errno;
    struct tpacket_stats st;
    socklen_t sl = sizeof st;
    (void)getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &sl); /* reset the counters */
    if (filter && *filter) {
        struct bpf_program prog;
        int rc = compile(filter, snaplen, &prog, err, errlen);
        if (rc != 0) return rc;
        /* libpcap's bpf_insn and the kernel's sock_filter have the same layout. */
        struct sock_fprog fprog = { .len = (unsigned short)prog.bf_len, .filter = (struct sock_filter *)prog.bf_insns };
        rc = setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof fprog) != 0 ? -errno : 0;
        pcap_freecode(&prog);
        return rc;
    }
    int dummy = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_DETACH_FILTER, &dummy, sizeof dummy) != 0) return -errno;
    return 0;
}

ssize_t minik_capture_recv(int fd, void *buf, size_t len, uint64_t *ts_ns, uint32_t *wire_len, int *outgoing) {
    struct sockaddr_ll from;
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    union { char buf[CMSG_SPACE(sizeof(struct timespec))]; struct cmsghdr align; } control;
    struct msghdr msg = {
        .msg_name = &from, .msg_namelen = sizeof from,
        .msg_iov = &iov, .msg_iovlen = 1,
        .msg_control = control.buf, .msg_controllen = sizeof control.buf,
    };
    ssize_t n = recvmsg(fd, &msg, MSG_TRUNC | MSG_DONTWAIT);
    if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno;
    *wire_len = (uint32_t)n;
    *outgoing = from.sll_pkttype == PACKET_OUTGOING;
    *ts_ns = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(c), sizeof ts);
            *ts_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        }
    }
    if (*ts_ns == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        *ts_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    }
    return (size_t)n > len ? (ssize_t)len : n;
}

unsigned minik_capture_drops(int fd) {
    struct tpacket_stats st;
    socklen_t sl = sizeof st;
    if (getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &sl) != 0) return 0;
    return st.tp_drops;
}
