/* Batched datagram I/O for the DNS server: recvmmsg/sendmmsg (which Swift's Glibc module
 * does not declare: it is built without _GNU_SOURCE) and inotify. */
#ifndef DNSIO_H
#define DNSIO_H
#include <stdint.h>
#include <netinet/in.h>

/* Receives up to `count` datagrams into bufs[i * bufsize], blocking for the first one.
 * lens[i] and addrs[i] are set; returns how many arrived, or -errno. */
int dnsio_recv(int fd, uint8_t *bufs, int bufsize, int count, struct sockaddr_in *addrs, int *lens);

/* Sends `count` datagrams, lens[i] bytes at bufs[i * bufsize] to addrs[i]; returns how many
 * went. */
int dnsio_send(int fd, uint8_t *bufs, int bufsize, const int *lens, const struct sockaddr_in *addrs, int count);

/* A UDP or TCP socket bound to addr:port with SO_REUSEADDR and SO_REUSEPORT; -errno on failure. */
int dnsio_listen(int type, uint32_t addr_be, uint16_t port, int backlog);

/* Sets a receive timeout on a socket. */
int dnsio_rcvtimeo(int fd, int millis);

/* inotify on a directory for files written or moved into it; returns the fd or -errno. */
int dnsio_watch_dir(const char *dir);

/* Reads inotify events; returns 1 if one of them names `file`, 0 if none, -errno. */
int dnsio_watch_read(int fd, const char *file);

int dnsio_cpus(void);

/* accept4 with SOCK_CLOEXEC; the connection or -errno. */
int dnsio_accept(int listener);
#endif
