/*
 * netexec: minik's test server, answering the way the Kubernetes e2e netexec image does
 * so the classic networking checks can run against pods, plus small clients to run
 * inside a pod (the busybox in our images has no UDP client).
 *
 * Server (the default: no arguments, or the first one starts with "--"):
 *   netexec [--http-port=N] [--udp-port=N]       (0 turns one off)
 * HTTP (--http-port, default 8080):
 *   /hostname         the pod's hostname
 *   /clientip         the client's address as seen by the server, "ip:port"
 *   /echo?msg=TEXT    TEXT (URL-decoded)
 *   /healthz          "ok"
 *   /exit?code=N      answers, then exits with status N (default 0)
 *   /shutdown         answers, then exits 0
 *   /                 "NOW: <unix time>"
 * UDP (--udp-port, default 8081), one datagram in, one out:
 *   "hostname"  "echo TEXT"  "clientip"
 * One thread, poll(): enough for tests and workshops, and easy to read.
 *
 * Clients, like the e2e image's /dial but on the command line:
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
 * The timeout (default 2000 ms) covers the whole exchange. Exit status: 0 on success
 * (connect-bench: at least one connect succeeded), 1 on an error, a timeout, an HTTP
 * status other than 2xx/3xx or no successful connect, with the reason on stderr;
 * 2 on bad usage. HOST is an IPv4 address or a name in /etc/hosts: a static binary
 * has no resolver (glibc's getaddrinfo needs its shared NSS modules at run time).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
    "usage: netexec [--http-port=N] [--udp-port=N]      serve (0 turns one off)\n"
    "       netexec udp HOST PORT MESSAGE [--timeout-ms N]\n"
    "       netexec connect-bench HOST PORT COUNT\n"
    "       netexec http HOST PORT PATH [--timeout-ms N]\n";

static int listen_on(int type, int port) {
    int fd = socket(AF_INET, type, 0);
    if (fd < 0) { perror("socket"); exit(1); }
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY)};
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        fprintf(stderr, "netexec: bind port %d: %s\n", port, strerror(errno));
        exit(1);
    }
    if (type == SOCK_STREAM && listen(fd, 4096) < 0) { perror("listen"); exit(1); }
    return fd;
}

static void url_decode(char *s) {
    char *o = s;
    for (; *s; s++) {
        if (*s == '%' && s[1] && s[2]) {
            char hex[3] = {s[1], s[2], 0};
            *o++ = (char)strtol(hex, NULL, 16);
            s += 2;
        } else if (*s == '+') {
            *o++ = ' ';
        } else {
            *o++ = *s;
        }
    }
    *o = 0;
}

static const char *query_value(char *query, const char *key) {
    size_t klen = strlen(key);
    for (char *p = query; p && *p;) {
        char *amp = strchr(p, '&');
        if (amp) *amp = 0;
        if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
            url_decode(p + klen + 1);
            return p + klen + 1;
        }
        p = amp ? amp + 1 : NULL;
    }
    return NULL;
}

static void client_ip(struct sockaddr_in *a, char *out, size_t n) {
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
    snprintf(out, n, "%s:%d", ip, ntohs(a->sin_port));
}

static void respond(int fd, int status, const char *body) {
    char head[256];
    int len = (int)strlen(body);
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
                     status, status == 200 ? "OK" : "Not Found", len);
    (void)!write(fd, head, n);
    (void)!write(fd, body, len);
}

static void serve_http(int lfd) {
    struct sockaddr_in peer;
    socklen_t plen = sizeof peer;
    int fd = accept(lfd, (struct sockaddr *)&peer, &plen);
    if (fd < 0) return;
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char req[4096];
    ssize_t n = read(fd, req, sizeof req - 1);
    if (n <= 0) { close(fd); return; }
    req[n] = 0;
    char method[8] = {0}, target[2048] = {0};
    if (sscanf(req, "%7s %2047s", method, target) != 2) { close(fd); return; }
    char *query = strchr(target, '?');
    if (query) *query++ = 0;
    char body[2300];
    int exit_code = -1;
    if (strcmp(target, "/hostname") == 0) {
        gethostname(body, sizeof body);
    } else if (strcmp(target, "/clientip") == 0) {
        client_ip(&peer, body, sizeof body);
    } else if (strcmp(target, "/echo") == 0) {
        const char *msg = query ? query_value(query, "msg") : NULL;
        snprintf(body, sizeof body, "%s", msg ? msg : "");
    } else if (strcmp(target, "/healthz") == 0) {
        strcpy(body, "ok");
    } else if (strcmp(target, "/exit") == 0 || strcmp(target, "/shutdown") == 0) {
        const char *code = query ? query_value(query, "code") : NULL;
        exit_code = code ? atoi(code) : 0;
        snprintf(body, sizeof body, "exiting with %d", exit_code);
    } else if (strcmp(target, "/") == 0) {
        snprintf(body, sizeof body, "NOW: %ld", (long)time(NULL));
    } else {
        respond(fd, 404, "404 page not found");
        close(fd);
        return;
    }
    respond(fd, 200, body);
    close(fd);
    if (exit_code >= 0) {
        fprintf(stderr, "netexec: %s requested, exiting with %d\n", target, exit_code);
        exit(exit_code);
    }
}

static void serve_udp(int fd) {
    char buf[2048], out[2300];
    struct sockaddr_in peer;
    socklen_t plen = sizeof peer;
    ssize_t n = recvfrom(fd, buf, sizeof buf - 1, 0, (struct sockaddr *)&peer, &plen);
    if (n <= 0) return;
    buf[n] = 0;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = 0;
    if (strcmp(buf, "hostname") == 0) gethostname(out, sizeof out);
    else if (strncmp(buf, "echo ", 5) == 0) snprintf(out, sizeof out, "%s", buf + 5);
    else if (strcmp(buf, "clientip") == 0) client_ip(&peer, out, sizeof out);
    else snprintf(out, sizeof out, "unknown command: %s", buf);
    sendto(fd, out, strlen(out), 0, (struct sockaddr *)&peer, plen);
}

static int serve(int argc, char **argv) {
    int http_port = 8080, udp_port = 8081;
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--http-port=", 12) == 0) http_port = atoi(argv[i] + 12);
        else if (strncmp(argv[i], "--udp-port=", 11) == 0) udp_port = atoi(argv[i] + 11);
        else { fputs(usage, stderr); return 2; }
    }
    signal(SIGPIPE, SIG_IGN);
    struct pollfd fds[2];
    int nfds = 0;
    if (http_port > 0) fds[nfds++] = (struct pollfd){listen_on(SOCK_STREAM, http_port), POLLIN, 0};
    if (udp_port > 0) fds[nfds++] = (struct pollfd){listen_on(SOCK_DGRAM, udp_port), POLLIN, 0};
    fprintf(stderr, "netexec: serving HTTP on %d, UDP on %d\n", http_port, udp_port);
    for (;;) {
        if (poll(fds, nfds, -1) < 0) continue;
        for (int i = 0; i < nfds; i++) {
            if (!(fds[i].revents & POLLIN)) continue;
            if (http_port > 0 && i == 0) serve_http(fds[i].fd);
            else serve_udp(fds[i].fd);
        }
    }
}

/* ---- clients ---- */

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Milliseconds left until deadline (a now_ns() value), never below 0. */
static int ms_left(int64_t deadline) {
    int64_t left = (deadline - now_ns() + 999999) / 1000000;
    return left > 0 ? (int)left : 0;
}

/* A whole decimal number in [min, max], or -1. */
static long parse_num(const char *s, long min, long max) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) return -1;
    return v;
}

/* An IPv4 address, or a name looked up in /etc/hosts. */
static int resolve_ipv4(const char *host, struct in_addr *out) {
    if (inet_pton(AF_INET, host, out) == 1) return 0;
    FILE *f = fopen("/etc/hosts", "r");
    if (!f) return -1;
    char line[1024];
    int found = -1;
    while (found < 0 && fgets(line, sizeof line, f)) {
        char *hash = strchr(line, '#');
        if (hash) *hash = 0;
        char *save, *ip = strtok_r(line, " \t\r\n", &save);
        struct in_addr a;
        if (!ip || inet_pton(AF_INET, ip, &a) != 1) continue;
        for (char *name; (name = strtok_r(NULL, " \t\r\n", &save));) {
            if (strcasecmp(name, host) == 0) { *out = a; found = 0; break; }
        }
    }
    fclose(f);
    return found;
}

/* HOST and PORT into an address: exits 2 on a bad port, 1 on an unknown host. */
static struct sockaddr_in target_addr(const char *mode, const char *host, const char *port) {
    struct sockaddr_in a = {.sin_family = AF_INET};
    long p = parse_num(port, 1, 65535);
    if (p < 0) { fprintf(stderr, "netexec %s: bad port \"%s\" (1-65535)\n", mode, port); exit(2); }
    a.sin_port = htons((uint16_t)p);
    if (resolve_ipv4(host, &a.sin_addr) < 0) {
        fprintf(stderr, "netexec %s: %s: not an IPv4 address or a name in /etc/hosts\n", mode, host);
        exit(1);
    }
    return a;
}

/* The arguments after the mode: exactly `want` positionals, and --timeout-ms N (or =N). */
static int client_args(int argc, char **argv, const char **pos, int want, int *timeout_ms) {
    int n = 0;
    for (int i = 2; i < argc; i++) {
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

/* Waits for events on fd until deadline: 1 ready (or an error to collect), 0 timed out. */
static int wait_fd(int fd, short events, int64_t deadline) {
    for (;;) {
        struct pollfd p = {fd, events, 0};
        int r = poll(&p, 1, ms_left(deadline));
        if (r > 0) return 1;
        if (r == 0) return 0;
        if (errno != EINTR) return 1; /* let the following call report it */
    }
}

static int udp_client(int argc, char **argv) {
    const char *pos[3];
    int timeout_ms = 2000;
    if (client_args(argc, argv, pos, 3, &timeout_ms) < 0) { fputs(usage, stderr); return 2; }
    struct sockaddr_in a = target_addr("udp", pos[0], pos[1]);
    int64_t deadline = now_ns() + (int64_t)timeout_ms * 1000000;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) { perror("netexec udp: socket"); return 1; }
    static char buf[65536];
    ssize_t n = -1;
    /* Connected, so the kernel hands us the ICMP errors for this peer (ECONNREFUSED). */
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 && send(fd, pos[2], strlen(pos[2]), 0) >= 0) {
        if (!wait_fd(fd, POLLIN, deadline)) errno = ETIMEDOUT;
        else n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    }
    int err = errno;
    close(fd);
    if (n < 0 && err == ETIMEDOUT) {
        fprintf(stderr, "netexec udp %s:%s: no reply within %d ms\n", pos[0], pos[1], timeout_ms);
        return 1;
    }
    if (n < 0) {
        fprintf(stderr, "netexec udp %s:%s: %s\n", pos[0], pos[1], strerror(err));
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

static int connect_bench(int argc, char **argv) {
    const char *pos[3];
    if (client_args(argc, argv, pos, 3, NULL) < 0) { fputs(usage, stderr); return 2; }
    struct sockaddr_in a = target_addr("connect-bench", pos[0], pos[1]);
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

/* A non-blocking TCP connection to a, made before deadline; -1 with errno (ETIMEDOUT) if not. */
static int connect_before(const struct sockaddr_in *a, int64_t deadline) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    int err = 0;
    socklen_t elen = sizeof err;
    if (connect(fd, (const struct sockaddr *)a, sizeof *a) == 0) return fd;
    if (errno != EINPROGRESS) err = errno;
    else if (!wait_fd(fd, POLLOUT, deadline)) err = ETIMEDOUT;
    else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0) err = errno;
    if (err == 0) return fd;
    close(fd);
    errno = err;
    return -1;
}

/* Sends all of buf before deadline: 0, or -1 with errno. */
static int send_all(int fd, const char *buf, size_t len, int64_t deadline) {
    while (len > 0) {
        if (!wait_fd(fd, POLLOUT, deadline)) { errno = ETIMEDOUT; return -1; }
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (n < 0) return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Where the body starts (after the blank line ending the head), or NULL while incomplete. */
static char *body_start(char *resp, size_t len) {
    char *crlf = memmem(resp, len, "\r\n\r\n", 4), *lf = memmem(resp, len, "\n\n", 2);
    if (crlf && (!lf || crlf < lf)) return crlf + 4;
    return lf ? lf + 2 : NULL;
}

/* The Content-Length in the head resp[0..head_len-1], or -1 if there is none. */
static long content_length(const char *resp, size_t head_len) {
    const char *p = resp, *end = resp + head_len;
    while (p < end) {
        if (strncasecmp(p, "Content-Length:", 15) == 0) return strtol(p + 15, NULL, 10);
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) break;
        p = nl + 1;
    }
    return -1;
}

/* Reads the response until the peer closes, Content-Length is met, or deadline: its length or -1. */
static ssize_t read_response(int fd, char **resp, int64_t deadline) {
    size_t cap = 16384, len = 0, head_len = 0;
    long cl = -1;
    char *buf = malloc(cap + 1);
    if (!buf) return -1;
    for (;;) {
        if (head_len == 0) {
            char *body = body_start(buf, len);
            if (body) {
                head_len = (size_t)(body - buf);
                cl = content_length(buf, head_len);
            }
        }
        if (cl >= 0 && head_len + (size_t)cl <= len) break;
        if (len == cap) {
            char *bigger = cap < (64u << 20) ? realloc(buf, cap * 2 + 1) : NULL;
            if (!bigger) { free(buf); errno = EFBIG; return -1; }
            buf = bigger;
            cap *= 2;
        }
        if (!wait_fd(fd, POLLIN, deadline)) { free(buf); errno = ETIMEDOUT; return -1; }
        ssize_t n = recv(fd, buf + len, cap - len, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (n < 0) { free(buf); return -1; }
        if (n == 0) break;
        len += (size_t)n;
    }
    buf[len] = 0;
    *resp = buf;
    return (ssize_t)len;
}

static int http_client(int argc, char **argv) {
    const char *pos[3];
    int timeout_ms = 2000;
    if (client_args(argc, argv, pos, 3, &timeout_ms) < 0) { fputs(usage, stderr); return 2; }
    const char *host = pos[0], *port = pos[1], *path = pos[2];
    if (path[0] != '/') { fprintf(stderr, "netexec http: PATH must start with /, got \"%s\"\n", path); return 2; }
    struct sockaddr_in a = target_addr("http", host, port);
    int64_t deadline = now_ns() + (int64_t)timeout_ms * 1000000;
    char req[4096];
    int rlen = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s:%s\r\nUser-Agent: netexec\r\n\r\n",
                        path, host, port);
    if (rlen < 0 || rlen >= (int)sizeof req) { fprintf(stderr, "netexec http: PATH too long\n"); return 2; }
    char *resp = NULL;
    ssize_t len = -1;
    int fd = connect_before(&a, deadline);
    if (fd >= 0 && send_all(fd, req, (size_t)rlen, deadline) == 0) len = read_response(fd, &resp, deadline);
    if (len < 0) {
        if (errno == ETIMEDOUT) fprintf(stderr, "netexec http %s:%s%s: no answer within %d ms\n", host, port, path, timeout_ms);
        else fprintf(stderr, "netexec http %s:%s%s: %s\n", host, port, path, strerror(errno));
        if (fd >= 0) close(fd);
        return 1;
    }
    close(fd);
    int status = 0;
    char *body = body_start(resp, (size_t)len);
    if (sscanf(resp, "HTTP/%*d.%*d %3d", &status) != 1 || !body) {
        fprintf(stderr, "netexec http %s:%s%s: not an HTTP response\n", host, port, path);
        free(resp);
        return 1;
    }
    if (status < 200 || status > 399) {
        size_t first = strcspn(resp, "\r\n");
        fprintf(stderr, "netexec http %s:%s%s: %.*s\n", host, port, path, (int)first, resp);
        free(resp);
        return 1;
    }
    size_t blen = (size_t)(resp + len - body);
    long cl = content_length(resp, (size_t)(body - resp));
    if (cl >= 0 && (size_t)cl < blen) blen = (size_t)cl;
    fwrite(body, 1, blen, stdout);
    free(resp);
    return fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc < 2 || strncmp(argv[1], "--", 2) == 0) return serve(argc, argv);
    if (strcmp(argv[1], "udp") == 0) return udp_client(argc, argv);
    if (strcmp(argv[1], "connect-bench") == 0) return connect_bench(argc, argv);
    if (strcmp(argv[1], "http") == 0) return http_client(argc, argv);
    fprintf(stderr, "netexec: unknown mode \"%s\"\n%s", argv[1], usage);
    return 2;
}
