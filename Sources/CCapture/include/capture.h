/*
 * CCapture: packet sockets for `minik capture`, and capture filters compiled by libpcap.
 *
 * A packet socket (AF_PACKET, SOCK_RAW, ETH_P_ALL) is opened by the caller inside the
 * namespace it captures in; here it is bound to one interface without a moment of
 * foreign traffic (a drop-all filter first, the queue drained, then the real filter),
 * given a large receive buffer and kernel timestamps. libpcap only compiles the filter
 * (pcap_open_dead): the kernel runs it, so what the filter drops is never copied.
 */
#ifndef MINIK_CAPTURE_H
#define MINIK_CAPTURE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Binds fd to ifindex, with the BPF program compiled from `filter` (NULL or "" for
 * none) for an Ethernet link, and a receive buffer of rcvbuf bytes. Returns 0, or -errno;
 * a filter that does not compile returns -EINVAL with libpcap's message in err. */
int minik_capture_setup(int fd, int ifindex, const char *filter, int snaplen, int rcvbuf, char *err, size_t errlen);

/* Checks a filter expression; 0 when it compiles, else -EINVAL with the message. */
int minik_capture_check_filter(const char *filter, int snaplen, char *err, size_t errlen);

/* One packet: its bytes (up to len), the kernel's timestamp in ns since the epoch, its
 * length on the wire, and whether it was outgoing (1) or incoming (0). Returns the
 * captured length, 0 when nothing is waiting (non-blocking), or -errno. */
ssize_t minik_capture_recv(int fd, void *buf, size_t len, uint64_t *ts_ns, uint32_t *wire_len, int *outgoing);

/* Packets the kernel dropped for this socket (its buffer was full) since the last call. */
unsigned minik_capture_drops(int fd);

#endif
