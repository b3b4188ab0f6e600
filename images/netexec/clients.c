/*
 * Clients to run inside a pod (the busybox in our images has no UDP client):
 *   netexec udp HOST PORT MESSAGE [--timeout-ms N]
 *       sends MESSAGE in one datagram, prints the one reply and a newline. The socket is
 *       connected, so an ICMP port unreachable shows up at once as "connection refused".
 *   netexec connect-bench HOST PORT COUNT
 *       COUNT blocking TCP connects, each on a new socket closed with SO_LINGER 0 (a reset,
 *       so no TIME_WAIT piles up), then one line:
 *       connects=COUNT p50_us=.. p90_us=.. p99_us=.. min_us=.. max_us=.. failures=N
 *       Failed connects are counted, not timed; "-" stands for a figure with no data.
 *   netexec http HOST PORT PATH [--timeout-ms N]
 *       an HTTP/1.0 GET; prints the response body only, as received.
 *   netexec dns-race SERVER NAME ROUNDS [--timeout-ms N] [--parallel|--sequential]
 *       sends, ROUNDS times, the A and the AAAA query for NAME to SERVER:53 from one UDP
 *       socket (one source port), as glibc's resolver does: two threads, on two CPUs where
 *       there are two, released together, each sending one query, so both packets meet
 *       conntrack at the same moment (the "conntrack race" of UDP DNS). Each round waits
 *       up to N ms (default 1000) for both answers. --sequential sends A, waits for its
 *       answer, then AAAA (resolv.conf's `single-request`); --parallel is the default. Prints:
 *       rounds=.. answered=.. lost=.. (lost: rounds where an answer never came)
 * The timeout (default 2000 ms) covers the whole exchange, name lookup included. Exit
 * status: 0 on success (connect-bench: at least one connect succeeded), 1 on an error, a
 * timeout, an HTTP status other than 2xx/3xx or no successful connect, with the reason on
 * stderr; 2 on bad usage.
 *
 * And agnhost's:
 *   connect HOST:PORT [--timeout=DURATION] [--protocol=tcp|udp] [--udp-data=TEXT]
 *       exit 0 if a TCP connection is made (udp: a reply comes back); otherwise exit 1
 *       with one line on stderr that starts with TIMEOUT, REFUSED, DNS, OTHER or UNKNOWN,
 *       the strings agnhost's callers check. No --timeout (or 0) waits as long as the
 *       kernel does. SCTP is not supported (OTHER).
 */
#include "netexec.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char client_usage[] =
    "usage: netexec udp HOST PORT MESSAGE [--timeout-ms N]\n"
    "       netexec connect-bench HOST PORT COUNT\n"
    "       netexec http HOST PORT PATH [--timeout-ms N]\n"
    "       netexec dns-race SERVER NAME ROUNDS [--timeout-ms N] [--parallel|--sequential]\n";

/* HOST and PORT into an address before deadline: exits 2 on a bad port, 1 on an unknown host. */
static struct sockaddr_in target_addr(const char *mode, const char *host, const char *port, int64_t deadline) {
    struct sockaddr_in a = {.sin_family = AF_INET};
    long p = parse_num(port, 1, 65535);
    if (p < 0) { fprintf(stderr, "netexec %s: bad port \"%s\" (1-65535)\n", mode, port); exit(2); }
    a.sin_port = htons((uint16_t)p);
    if (resolve_ipv4(host, &a.sin_addr, deadline) < 0) {
        fprintf(stderr, "netexec %s: %s: not an IPv4 address, a name in /etc/hosts or a name DNS knows\n", mode, host);
        exit(1);
    }
    return a;
}

/* The arguments after the mode: exactly `want` positionals, and --timeout-ms N (or =N). */
static int client_args(int argc, char **argv, const char **pos, int want, int *timeout_ms) {
    int n = 0;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        if (timeout_ms && strcmp(argv[i], "--timeout-ms") == 0) {
            if (++i == argc) return -1;
            v = argv[i];
        } else if (timeout_ms && strncmp(argv[i], "--timeout-ms=", 13) == 0) {
            v = argv[i] + 13;
        } else {
            if (n == want) return -1;
            pos[n++] = argv[i];
            continue;
        }
        long t = parse_num(v, 1, 24L * 3600 * 1000);
        if (t < 0) return -1;
        *timeout_ms = (int)t;
    }
    return n == want ? 0 : -1;
}

int cmd_udp(int argc, char **argv) {
    const char *pos[3];
    int timeout_ms = 2000;
    if (client_args(argc, argv, pos, 3, &timeout_ms) < 0) { fputs(client_usage, stderr); return 2; }
    int64_t deadline = now_ns() + (int64_t)timeout_ms * 1000000;
    struct sockaddr_in a = target_addr("udp", pos[0], pos[1], deadline);
    static char buf[65536];
    ssize_t n = udp_exchange(&a, pos[2], strlen(pos[2]), deadline, buf, sizeof buf, NULL);
    if (n < 0 && errno == ETIMEDOUT) {
        fprintf(stderr, "netexec udp %s:%s: no reply within %d ms\n", pos[0], pos[1], timeout_ms);
        return 1;
    }
    if (n < 0) {
        fprintf(stderr, "netexec udp %s:%s: %s\n", pos[0], pos[1], strerror(errno));
        return 1;
    }
    fwrite(buf, 1, (size_t)n, stdout);
    putchar('\n');
    return fflush(stdout) == 0 ? 0 : 1;
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* The nearest-rank percentile of sorted v[0..n-1], n > 0. */
static double percentile(const double *v, long n, int pct) {
    long rank = (pct * n + 99) / 100;
    return v[rank > 0 ? rank - 1 : 0];
}

/* One blocking connect on a fresh socket, closed with a reset. Microseconds, or -errno. */
static double timed_connect(const struct sockaddr_in *a) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -errno;
    int64_t start = now_ns();
    int r = connect(fd, (const struct sockaddr *)a, sizeof *a);
    int64_t end = now_ns(); /* clock_gettime leaves errno alone when it succeeds */
    int err = errno;
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    return r < 0 ? -err : (double)(end - start) / 1000.0;
}

int cmd_connect_bench(int argc, char **argv) {
    const char *pos[3];
    if (client_args(argc, argv, pos, 3, NULL) < 0) { fputs(client_usage, stderr); return 2; }
    struct sockaddr_in a = target_addr("connect-bench", pos[0], pos[1], now_ns() + 5000000000LL);
    long count = parse_num(pos[2], 1, 10000000);
    if (count < 0) { fprintf(stderr, "netexec connect-bench: bad COUNT \"%s\" (1-10000000)\n", pos[2]); return 2; }
    double *us = malloc((size_t)count * sizeof *us);
    if (!us) { perror("netexec connect-bench: malloc"); return 1; }
    long ok = 0, failures = 0;
    int first_err = 0;
    for (long i = 0; i < count; i++) {
        double t = timed_connect(&a);
        if (t >= 0) { us[ok++] = t; continue; }
        if (failures++ == 0) first_err = (int)-t;
    }
    printf("connects=%ld", count);
    if (ok > 0) {
        qsort(us, (size_t)ok, sizeof *us, cmp_double);
        printf(" p50_us=%.1f p90_us=%.1f p99_us=%.1f min_us=%.1f max_us=%.1f",
               percentile(us, ok, 50), percentile(us, ok, 90), percentile(us, ok, 99), us[0], us[ok - 1]);
    } else {
        printf(" p50_us=- p90_us=- p99_us=- min_us=- max_us=-");
    }
    printf(" failures=%ld\n", failures);
    fflush(stdout);
    if (failures > 0) {
        fprintf(stderr, "netexec connect-bench %s:%s: %ld of %ld connects failed, the first with: %s\n",
                pos[0], pos[1], failures, count, strerror(first_err));
    }
    free(us);
    return ok > 0 ? 0 : 1;
}

int cmd_http(int argc, char **argv) {
    const char *pos[3];
    int timeout_ms = 2000;
    if (client_args(argc, argv, pos, 3, &timeout_ms) < 0) { fputs(client_usage, stderr); return 2; }
    const char *host = pos[0], *port = pos[1], *path = pos[2];
    if (path[0] != '/') { fprintf(stderr, "netexec http: PATH must start with /, got \"%s\"\n", path); return 2; }
    if (strlen(path) > 3500) { fprintf(stderr, "netexec http: PATH too long\n"); return 2; }
    int64_t deadline = now_ns() + (int64_t)timeout_ms * 1000000;
    struct sockaddr_in a = target_addr("http", host, port, deadline);
    int status = 0;
    char *resp = NULL, *body = NULL;
    size_t blen = 0;
    if (http_get(&a, host, path, deadline, &status, &resp, &body, &blen) < 0) {
        if (errno == ETIMEDOUT) fprintf(stderr, "netexec http %s:%s%s: no answer within %d ms\n", host, port, path, timeout_ms);
        else if (errno == EPROTO) fprintf(stderr, "netexec http %s:%s%s: not an HTTP response\n", host, port, path);
        else fprintf(stderr, "netexec http %s:%s%s: %s\n", host, port, path, strerror(errno));
        return 1;
    }
    if (status < 200 || status > 399) {
        size_t first = strcspn(resp, "\r\n");
        fprintf(stderr, "netexec http %s:%s%s: %.*s\n", host, port, path, (int)first, resp);
        free(resp);
        return 1;
    }
    fwrite(body, 1, blen, stdout);
    free(resp);
    return fflush(stdout) == 0 ? 0 : 1;
}

int cmd_connect(int argc, char **argv) {
    static const char usage_line[] = "connect [--timeout=DURATION] [--protocol=tcp|udp] [--udp-data=TEXT] HOST:PORT";
    const char *dest = NULL, *protocol = "tcp", *udp_data = "hostname", *v;
    long timeout_ms = 0;
    for (int i = 1; i < argc; i++) {
        if ((v = flag_value(argc, argv, &i, "timeout"))) {
            if ((timeout_ms = parse_duration_ms(v)) < 0) {
                fprintf(stderr, "invalid argument \"%s\" for \"--timeout\" flag: not a duration\n", v);
                return 2;
            }
        } else if ((v = flag_value(argc, argv, &i, "protocol"))) protocol = v;
        else if ((v = flag_value(argc, argv, &i, "udp-data"))) udp_data = v;
        else if ((v = flag_value(argc, argv, &i, "sctp-data"))) (void)v;
        else if (argv[i][0] != '-' && !dest) dest = argv[i];
        else bad_usage("connect", argv[i], usage_line);
    }
    if (!dest) { fprintf(stderr, "usage: %s\n", usage_line); return 2; }
    int64_t deadline = timeout_ms > 0 ? now_ns() + (int64_t)timeout_ms * 1000000 : NO_DEADLINE;
    char host[512], err[128];
    const char *colon = strrchr(dest, ':');
    long port = colon ? parse_num(colon + 1, 0, 65535) : -1;
    if (!colon || colon == dest || (size_t)(colon - dest) >= sizeof host || port < 0) {
        fprintf(stderr, "UNKNOWN: address %s: %s\n", dest, colon ? "invalid host or port" : "missing port in address");
        return 1;
    }
    snprintf(host, sizeof host, "%.*s", (int)(colon - dest), dest);
    int tcp = strcmp(protocol, "tcp") == 0 || !*protocol, udp = strcmp(protocol, "udp") == 0;
    if (strcmp(protocol, "sctp") == 0) { fprintf(stderr, "OTHER: SCTP is not supported by this image\n"); return 1; }
    if (!tcp && !udp) { fprintf(stderr, "Unsupported protocol %s\n", protocol); return 1; }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    /* Resolution gets the timeout too, or 5 s without one. */
    if (resolve_ipv4(host, &a.sin_addr, deadline == NO_DEADLINE ? now_ns() + 5000000000LL : deadline) < 0) {
        fprintf(stderr, "DNS: lookup %s: no such host\n", host);
        return 1;
    }
    if (tcp) {
        int fd = connect_before(&a, deadline);
        if (fd >= 0) { close(fd); return 0; }
        if (errno == ETIMEDOUT) fprintf(stderr, "TIMEOUT\n");
        else if (errno == ECONNREFUSED) fprintf(stderr, "REFUSED\n");
        else fprintf(stderr, "OTHER: dial tcp %s: connect: %s\n", dest, go_strerror(errno, err, sizeof err));
        return 1;
    }
    char msg[1024], reply[1024], local[64] = "";
    int mlen = snprintf(msg, sizeof msg, "%s\n", udp_data);
    struct sockaddr_in me = {0};
    ssize_t n = udp_exchange(&a, msg, mlen < (int)sizeof msg ? (size_t)mlen : sizeof msg - 1, deadline,
                             reply, sizeof reply, &me);
    format_addr(&me, local, sizeof local);
    if (n > 0) return 0;
    if (n == 0) {
        fprintf(stderr, "OTHER: No data received from the server. Cannot guarantee the server received the request.\n");
    } else if (errno == ETIMEDOUT) {
        fprintf(stderr, "TIMEOUT: read udp %s->%s: i/o timeout\n", local, dest);
    } else if (errno == ECONNREFUSED) {
        fprintf(stderr, "REFUSED: read udp %s->%s: connection refused\n", local, dest);
    } else {
        fprintf(stderr, "UNKNOWN: read udp %s->%s: %s\n", local, dest, go_strerror(errno, err, sizeof err));
    }
    return 1;
}


struct racer {
    int fd, cpu;
    const unsigned char *query;
    size_t len;
    int *ready, *start;
};

static void *race_send(void *p) {
    struct racer *r = p;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(r->cpu, &set);
    sched_setaffinity(0, sizeof set, &set); /* best effort: one CPU is fine too */
    __atomic_add_fetch(r->ready, 1, __ATOMIC_SEQ_CST);
    while (!__atomic_load_n(r->start, __ATOMIC_ACQUIRE)) { }
    send(r->fd, r->query, r->len, 0);
    return NULL;
}

/* A DNS query for name of type qtype with id: its length in out. */
static size_t dns_query(unsigned char *out, uint16_t id, const char *name, uint16_t qtype) {
    size_t n = 0;
    out[n++] = id >> 8; out[n++] = id & 0xff;
    out[n++] = 0x01; out[n++] = 0x00; /* RD */
    out[n++] = 0; out[n++] = 1; /* QDCOUNT */
    memset(out + n, 0, 6); n += 6;
    for (const char *p = name; *p;) {
        const char *dot = strchr(p, '.');
        size_t l = dot ? (size_t)(dot - p) : strlen(p);
        if (l == 0 || l > 63 || n + l + 6 > 512) break;
        out[n++] = (unsigned char)l;
        memcpy(out + n, p, l); n += l;
        p += l + (dot ? 1 : 0);
        if (!dot) break;
    }
    out[n++] = 0;
    out[n++] = qtype >> 8; out[n++] = qtype & 0xff;
    out[n++] = 0; out[n++] = 1; /* IN */
    return n;
}

/* Waits until the answers with ids want[0..count-1] came, or the deadline: how many came. */
static int await_answers(int fd, const uint16_t *want, int count, int64_t deadline) {
    int got = 0, seen[2] = {0, 0};
    unsigned char buf[1500];
    while (got < count) {
        int left = ms_left(deadline);
        if (left <= 0) break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, left) <= 0) break;
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 2) continue;
        uint16_t id = (uint16_t)(buf[0] << 8 | buf[1]);
        for (int i = 0; i < count; i++) if (id == want[i] && !seen[i]) { seen[i] = 1; got++; }
    }
    return got;
}

int cmd_dns_race(int argc, char **argv) {
    const char *pos[3];
    int timeout_ms = 1000, sequential = 0;
    char *args[16];
    int n = 0;
    for (int i = 0; i < argc && n < 15; i++) {
        if (strcmp(argv[i], "--sequential") == 0) sequential = 1;
        else if (strcmp(argv[i], "--parallel") != 0) args[n++] = argv[i];
    }
    args[n] = NULL;
    if (client_args(n, args, pos, 3, &timeout_ms) < 0) {
        fputs("usage: netexec dns-race SERVER NAME ROUNDS [--timeout-ms N] [--parallel|--sequential]\n", stderr);
        return 2;
    }
    struct sockaddr_in a = target_addr("dns-race", pos[0], "53", now_ns() + 5000000000LL);
    long rounds = parse_num(pos[2], 1, 1000000);
    if (rounds < 0) { fprintf(stderr, "netexec dns-race: bad ROUNDS \"%s\" (1-1000000)\n", pos[2]); return 2; }
    int cpus = sysconf(_SC_NPROCESSORS_ONLN) > 1 ? 2 : 1;
    long answered = 0, lost = 0;
    for (long r = 0; r < rounds; r++) {
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("netexec dns-race"); return 1; }
        unsigned char q[2][512];
        uint16_t ids[2] = {(uint16_t)(2 * r + 1), (uint16_t)(2 * r + 2)};
        size_t len[2] = {dns_query(q[0], ids[0], pos[1], 1), dns_query(q[1], ids[1], pos[1], 28)};
        int got;
        int64_t deadline = now_ns() + (int64_t)timeout_ms * 1000000;
        if (sequential) {
            send(fd, q[0], len[0], 0);
            got = await_answers(fd, ids, 1, deadline);
            send(fd, q[1], len[1], 0);
            got += await_answers(fd, ids + 1, 1, deadline);
        } else {
            int ready = 0, start = 0;
            struct racer rs[2];
            pthread_t t[2];
            for (int i = 0; i < 2; i++) {
                rs[i] = (struct racer){.fd = fd, .cpu = i % cpus, .query = q[i], .len = len[i], .ready = &ready, .start = &start};
                pthread_create(&t[i], NULL, race_send, &rs[i]);
            }
            while (__atomic_load_n(&ready, __ATOMIC_ACQUIRE) < 2) sched_yield();
            __atomic_store_n(&start, 1, __ATOMIC_RELEASE);
            for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
            got = await_answers(fd, ids, 2, deadline);
        }
        if (got == 2) answered++; else lost++;
        close(fd);
    }
    printf("rounds=%ld answered=%ld lost=%ld\n", rounds, answered, lost);
    return fflush(stdout) == 0 ? 0 : 1;
}
