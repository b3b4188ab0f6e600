/*
 * What the netexec/agnhost files share: numbers, flags, durations, clocks, addresses
 * (with a small DNS stub resolver: a static glibc binary has none), socket helpers and
 * one-shot HTTP and UDP exchanges used by both the clients and the server's /dial.
 */
#ifndef NETEXEC_H
#define NETEXEC_H

#define _GNU_SOURCE
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- numbers, flags, durations ---- */

/* A whole decimal number in [min, max], or -1. */
long parse_num(const char *s, long min, long max);

/* A Go-style duration ("1s", "500ms", "1m30s", "1.5s"; a bare number is seconds) in
 * milliseconds, or -1. */
long parse_duration_ms(const char *s);

/* Flags the way agnhost's (spf13/pflag) are given: --name=value or --name value (one
 * leading dash works too). If argv[*i] is flag `name`, returns its value (advancing *i
 * past a separate value) or exits 2 when the value is missing; otherwise NULL. */
const char *flag_value(int argc, char **argv, int *i, const char *name);

/* A boolean flag: --name, --name=true|false|1|0. 1 if argv[i] is that flag (storing the
 * value in *out), 0 if not; exits 2 on a bad value. */
int flag_bool(const char *arg, const char *name, int *out);

/* An unknown flag or argument: prints it with the usage line and exits 2. */
void bad_usage(const char *cmd, const char *arg, const char *usage_line);

/* ---- time ---- */

int64_t now_ns(void);
/* Milliseconds left until deadline (a now_ns() value), never below 0. */
int ms_left(int64_t deadline);
#define NO_DEADLINE INT64_MAX

/* ---- addresses ---- */

/* An IPv4 address, a name in /etc/hosts, or a name the nameservers of /etc/resolv.conf
 * know (A records, with its search list and ndots), before deadline. 0, or -1. */
int resolve_ipv4(const char *host, struct in_addr *out, int64_t deadline);

/* The nameservers (IPv4) and search domains of /etc/resolv.conf. */
struct resolv_conf {
    struct in_addr servers[3];
    int nservers;
    char search[6][256];
    int nsearch;
    int ndots;
};
void read_resolv_conf(struct resolv_conf *rc);

/* "ip:port". */
void format_addr(const struct sockaddr_in *a, char *out, size_t n);

/* ---- sockets ---- */

/* A socket bound to addr:port (INADDR_ANY if addr is NULL), listening if a stream one;
 * exits 1 with the reason if it cannot. */
int listen_on(int type, const char *addr, int port);

/* Waits for events on fd until deadline: 1 ready (or an error to collect), 0 timed out. */
int wait_fd(int fd, short events, int64_t deadline);

/* A TCP connection to a, made before deadline; -1 with errno (ETIMEDOUT) if not. */
int connect_before(const struct sockaddr_in *a, int64_t deadline);

/* Sends all of buf before deadline: 0, or -1 with errno. */
int send_all(int fd, const char *buf, size_t len, int64_t deadline);

/* ---- one-shot exchanges ---- */

/* An HTTP/1.0 GET of path from a (Host: host). On success 0, the status, and the
 * response in *resp (malloc'd, NUL-terminated) with its body at *body, *body_len bytes.
 * On failure -1 with errno (ETIMEDOUT for the deadline, EPROTO for a non-HTTP answer). */
int http_get(const struct sockaddr_in *a, const char *host, const char *path, int64_t deadline,
             int *status, char **resp, char **body, size_t *body_len);

/* Sends msg in one datagram on a connected socket (so an ICMP port unreachable shows up
 * as ECONNREFUSED) and reads one reply into buf. Its length, or -1 with errno. */
ssize_t udp_exchange(const struct sockaddr_in *a, const char *msg, size_t len, int64_t deadline,
                     char *buf, size_t cap, struct sockaddr_in *local);

/* ---- text ---- */

/* A growable string. */
struct buf {
    char *p;
    size_t len, cap;
};
void buf_add(struct buf *b, const char *s, size_t n);
void buf_str(struct buf *b, const char *s);
/* s as a JSON string literal, quotes included. */
void buf_json(struct buf *b, const char *s, size_t n);

/* strerror with a lower-case first letter, as Go prints syscall errors. */
const char *go_strerror(int err, char *out, size_t n);

/* The hostname (the pod's name in a pod). */
const char *hostname(void);

/* ---- the commands ---- */

int cmd_netexec(int argc, char **argv);        /* server.c */
int cmd_udp(int argc, char **argv);            /* clients.c */
int cmd_http(int argc, char **argv);
int cmd_connect_bench(int argc, char **argv);
int cmd_dns_race(int argc, char **argv);
int cmd_connect(int argc, char **argv);
int cmd_serve_hostname(int argc, char **argv); /* agnhost.c */
int cmd_porter(int argc, char **argv);
int cmd_pause(int argc, char **argv);
int cmd_dns_suffix(int argc, char **argv);
int cmd_dns_server_list(int argc, char **argv);
int cmd_etc_hosts(int argc, char **argv);

#endif
