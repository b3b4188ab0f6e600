/*
 * Helpers shared by the netexec/agnhost commands (see netexec.h). The resolver: an IPv4
 * literal, then /etc/hosts, then an A query over UDP to each nameserver of
 * /etc/resolv.conf for each candidate name (the search list first when the name has fewer
 * dots than ndots, as glibc does). Enough for cluster names ("web", "web.ns.svc"); no
 * TCP fallback, no IPv6.
 */
#include "netexec.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- numbers, flags, durations ---- */

long parse_num(const char *s, long min, long max) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) return -1;
    return v;
}

long parse_duration_ms(const char *s) {
    static const struct { const char *unit; double ms; } units[] = {
        {"ns", 1e-6}, {"us", 1e-3}, {"\xc2\xb5s", 1e-3}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000},
    };
    if (!*s) return -1;
    char *end;
    double v = strtod(s, &end);
    if (end == s || v < 0) return -1;
    if (!*end) return (long)(v * 1000); /* a bare number: seconds */
    double total = 0;
    for (;;) {
        size_t best = 0;
        double ms = -1;
        for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
            size_t n = strlen(units[u].unit);
            if (strncmp(end, units[u].unit, n) == 0 && n > best) { best = n; ms = units[u].ms; }
        }
        if (ms < 0) return -1;
        total += v * ms;
        end += best;
        if (!*end) break;
        const char *start = end;
        v = strtod(start, &end);
        if (end == start || v < 0) return -1;
    }
    return total > 1e12 ? -1 : (long)total;
}

/* argv[i] without its one or two leading dashes, or NULL if it has none. */
static const char *flag_name(const char *arg) {
    if (arg[0] != '-' || !arg[1]) return NULL;
    return arg[1] == '-' ? arg + 2 : arg + 1;
}

const char *flag_value(int argc, char **argv, int *i, const char *name) {
    const char *f = flag_name(argv[*i]);
    size_t n = strlen(name);
    if (!f || strncmp(f, name, n) != 0) return NULL;
    if (f[n] == '=') return f + n + 1;
    if (f[n]) return NULL;
    if (*i + 1 >= argc) {
        fprintf(stderr, "flag needs an argument: --%s\n", name);
        exit(2);
    }
    return argv[++*i];
}

int flag_bool(const char *arg, const char *name, int *out) {
    const char *f = flag_name(arg);
    size_t n = strlen(name);
    if (!f || strncmp(f, name, n) != 0) return 0;
    if (!f[n]) { *out = 1; return 1; }
    if (f[n] != '=') return 0;
    const char *v = f + n + 1;
    if (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "t")) *out = 1;
    else if (!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "f")) *out = 0;
    else { fprintf(stderr, "invalid argument \"%s\" for \"--%s\" flag: want true or false\n", v, name); exit(2); }
    return 1;
}

void bad_usage(const char *cmd, const char *arg, const char *usage_line) {
    if (arg[0] == '-') fprintf(stderr, "%s: unknown flag: %s\n", cmd, arg);
    else fprintf(stderr, "%s: unexpected argument \"%s\"\n", cmd, arg);
    fprintf(stderr, "usage: %s\n", usage_line);
    exit(2);
}

/* ---- time ---- */

int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

int ms_left(int64_t deadline) {
    if (deadline == NO_DEADLINE) return -1;
    int64_t left = (deadline - now_ns() + 999999) / 1000000;
    if (left > 0x7fffffff) return 0x7fffffff;
    return left > 0 ? (int)left : 0;
}

/* ---- addresses ---- */

void format_addr(const struct sockaddr_in *a, char *out, size_t n) {
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
    snprintf(out, n, "%s:%d", ip, ntohs(a->sin_port));
}

static int hosts_lookup(const char *host, struct in_addr *out) {
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

void read_resolv_conf(struct resolv_conf *rc) {
    memset(rc, 0, sizeof *rc);
    rc->ndots = 1;
    FILE *f = fopen("/etc/resolv.conf", "r");
    if (!f) return;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        char *save, *key = strtok_r(line, " \t\r\n", &save);
        if (!key || key[0] == '#' || key[0] == ';') continue;
        if (strcmp(key, "nameserver") == 0) {
            char *v = strtok_r(NULL, " \t\r\n", &save);
            if (v && rc->nservers < 3 && inet_pton(AF_INET, v, &rc->servers[rc->nservers]) == 1) rc->nservers++;
        } else if (strcmp(key, "search") == 0 || strcmp(key, "domain") == 0) {
            rc->nsearch = 0; /* the last one wins, as in glibc */
            for (char *v; (v = strtok_r(NULL, " \t\r\n", &save)) && rc->nsearch < 6;) {
                snprintf(rc->search[rc->nsearch++], sizeof rc->search[0], "%s", v);
            }
        } else if (strcmp(key, "options") == 0) {
            for (char *v; (v = strtok_r(NULL, " \t\r\n", &save));) {
                if (strncmp(v, "ndots:", 6) == 0) rc->ndots = atoi(v + 6);
            }
        }
    }
    fclose(f);
}

/* One A query for name to server: 1 found (*out set), 0 the name has no A record, -1 no
 * usable answer (timeout, error, SERVFAIL). */
static int dns_query(struct in_addr server, const char *name, struct in_addr *out, int64_t deadline) {
    unsigned char q[512], r[1500];
    uint16_t id = (uint16_t)(now_ns() ^ getpid());
    size_t n = 0;
    q[n++] = id >> 8; q[n++] = id & 0xff;
    q[n++] = 0x01; q[n++] = 0x00;           /* RD */
    q[n++] = 0; q[n++] = 1;                 /* one question */
    memset(q + n, 0, 6); n += 6;
    for (const char *p = name; *p;) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        if (len == 0 || len > 63 || n + len + 6 > sizeof q) return -1;
        q[n++] = (unsigned char)len;
        memcpy(q + n, p, len);
        n += len;
        p += len + (dot ? 1 : 0);
    }
    q[n++] = 0;
    q[n++] = 0; q[n++] = 1; /* A */
    q[n++] = 0; q[n++] = 1; /* IN */
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(53), .sin_addr = server};
    int64_t until = now_ns() + 2000000000LL;
    if (until > deadline) until = deadline;
    ssize_t len = udp_exchange(&a, (const char *)q, n, until, (char *)r, sizeof r, NULL);
    if (len < 12 || r[0] != q[0] || r[1] != q[1] || !(r[2] & 0x80)) return -1;
    int rcode = r[3] & 0x0f;
    if (rcode == 3) return 0;  /* NXDOMAIN */
    if (rcode != 0) return -1;
    size_t off = 12;
    int qd = r[4] << 8 | r[5], an = r[6] << 8 | r[7];
    /* Skips a possibly compressed name at off. */
#define SKIP_NAME()                                                       \
    for (;;) {                                                            \
        if (off >= (size_t)len) return -1;                                \
        if ((r[off] & 0xc0) == 0xc0) { off += 2; break; }                 \
        if (r[off] == 0) { off++; break; }                                \
        off += r[off] + 1;                                                \
    }
    for (int i = 0; i < qd; i++) { SKIP_NAME(); off += 4; }
    for (int i = 0; i < an; i++) {
        SKIP_NAME();
        if (off + 10 > (size_t)len) return -1;
        int type = r[off] << 8 | r[off + 1], rdlen = r[off + 8] << 8 | r[off + 9];
        off += 10;
        if (off + rdlen > (size_t)len) return -1;
        if (type == 1 && rdlen == 4) { memcpy(out, r + off, 4); return 1; }
        off += rdlen; /* a CNAME: its target's A record follows in the same answer */
    }
#undef SKIP_NAME
    return 0;
}

int resolve_ipv4(const char *host, struct in_addr *out, int64_t deadline) {
    if (inet_pton(AF_INET, host, out) == 1) return 0;
    if (!*host || strlen(host) > 253) return -1;
    if (hosts_lookup(host, out) == 0) return 0;
    struct resolv_conf rc;
    read_resolv_conf(&rc);
    if (rc.nservers == 0) return -1;
    char names[8][512];
    int nnames = 0, dots = 0;
    size_t hl = strlen(host);
    for (const char *p = host; *p; p++) dots += *p == '.';
    if (host[hl - 1] == '.') {
        snprintf(names[nnames++], sizeof names[0], "%.*s", (int)(hl - 1), host);
    } else {
        if (dots >= rc.ndots) snprintf(names[nnames++], sizeof names[0], "%s", host);
        for (int i = 0; i < rc.nsearch; i++) snprintf(names[nnames++], sizeof names[0], "%s.%s", host, rc.search[i]);
        if (dots < rc.ndots) snprintf(names[nnames++], sizeof names[0], "%s", host);
    }
    for (int i = 0; i < nnames; i++) {
        for (int s = 0; s < rc.nservers; s++) {
            if (ms_left(deadline) == 0) return -1;
            int r = dns_query(rc.servers[s], names[i], out, deadline);
            if (r == 1) return 0;
            if (r == 0) break; /* an answer: this name has none, try the next name */
        }
    }
    return -1;
}

/* ---- sockets ---- */

int listen_on(int type, const char *addr, int port) {
    int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
    if (fd < 0) { perror("socket"); exit(1); }
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY)};
    if (addr && inet_pton(AF_INET, addr, &a.sin_addr) != 1) {
        fprintf(stderr, "invalid address %s\n", addr);
        exit(1);
    }
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        fprintf(stderr, "bind %s port %d: %s\n", type == SOCK_STREAM ? "TCP" : "UDP", port, strerror(errno));
        exit(1);
    }
    if (type == SOCK_STREAM && listen(fd, 4096) < 0) { perror("listen"); exit(1); }
    return fd;
}

int wait_fd(int fd, short events, int64_t deadline) {
    for (;;) {
        struct pollfd p = {fd, events, 0};
        int r = poll(&p, 1, ms_left(deadline));
        if (r > 0) return 1;
        if (r == 0) return 0;
        if (errno != EINTR) return 1; /* let the following call report it */
    }
}

int connect_before(const struct sockaddr_in *a, int64_t deadline) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
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

int send_all(int fd, const char *buf, size_t len, int64_t deadline) {
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

/* ---- one-shot exchanges ---- */

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
        if (n < 0) { int e = errno; free(buf); errno = e; return -1; }
        if (n == 0) break;
        len += (size_t)n;
    }
    buf[len] = 0;
    *resp = buf;
    return (ssize_t)len;
}

int http_get(const struct sockaddr_in *a, const char *host, const char *path, int64_t deadline,
             int *status, char **resp, char **body, size_t *body_len) {
    char req[4096];
    int rlen = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s:%d\r\nUser-Agent: netexec\r\n\r\n",
                        path, host, ntohs(a->sin_port));
    if (rlen < 0 || rlen >= (int)sizeof req) { errno = E2BIG; return -1; }
    int fd = connect_before(a, deadline);
    if (fd < 0) return -1;
    ssize_t len = -1;
    if (send_all(fd, req, (size_t)rlen, deadline) == 0) len = read_response(fd, resp, deadline);
    int err = errno;
    close(fd);
    if (len < 0) { errno = err; return -1; }
    char *b = body_start(*resp, (size_t)len);
    if (sscanf(*resp, "HTTP/%*d.%*d %3d", status) != 1 || !b) {
        free(*resp);
        errno = EPROTO;
        return -1;
    }
    size_t blen = (size_t)(*resp + len - b);
    long cl = content_length(*resp, (size_t)(b - *resp));
    if (cl >= 0 && (size_t)cl < blen) blen = (size_t)cl;
    *body = b;
    *body_len = blen;
    return 0;
}

ssize_t udp_exchange(const struct sockaddr_in *a, const char *msg, size_t len, int64_t deadline,
                     char *buf, size_t cap, struct sockaddr_in *local) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    ssize_t n = -1;
    if (connect(fd, (const struct sockaddr *)a, sizeof *a) == 0) {
        if (local) {
            socklen_t l = sizeof *local;
            getsockname(fd, (struct sockaddr *)local, &l);
        }
        if (send(fd, msg, len, 0) >= 0) {
            if (!wait_fd(fd, POLLIN, deadline)) errno = ETIMEDOUT;
            else n = recv(fd, buf, cap, MSG_DONTWAIT);
        }
    }
    int err = errno;
    close(fd);
    errno = err;
    return n;
}

/* ---- text ---- */

void buf_add(struct buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) { perror("realloc"); exit(1); }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void buf_str(struct buf *b, const char *s) { buf_add(b, s, strlen(s)); }

void buf_json(struct buf *b, const char *s, size_t n) {
    buf_add(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') { esc[0] = '\\'; esc[1] = (char)c; buf_add(b, esc, 2); }
        else if (c == '\n') buf_add(b, "\\n", 2);
        else if (c == '\r') buf_add(b, "\\r", 2);
        else if (c == '\t') buf_add(b, "\\t", 2);
        else if (c < 0x20 || c == '<' || c == '>' || c == '&') { snprintf(esc, sizeof esc, "\\u%04x", c); buf_add(b, esc, 6); }
        else buf_add(b, (const char *)&s[i], 1);
    }
    buf_add(b, "\"", 1);
}

const char *go_strerror(int err, char *out, size_t n) {
    snprintf(out, n, "%s", strerror(err));
    out[0] = (char)tolower((unsigned char)out[0]);
    return out;
}

const char *hostname(void) {
    static __thread char name[256];
    if (gethostname(name, sizeof name - 1) < 0) strcpy(name, "localhost");
    name[sizeof name - 1] = 0;
    return name;
}
