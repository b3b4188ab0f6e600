/*
 * The netexec server, answering like agnhost's `netexec` so the Kubernetes e2e
 * networking checks run against pods unchanged.
 *
 *   netexec [--http-port=N] [--udp-port=N] [--udp-listen-addresses=IP,..]
 *           [--http-override=PATH] [--delay-shutdown=SECONDS]
 *   (a port of 0 or -1 turns that server off; --sctp-port is accepted and ignored)
 *
 * HTTP (--http-port, default 8080); any other path answers like `/`, as agnhost's does:
 *   /                 "NOW: <unix time>"
 *   /hostname         the pod's hostname (also /hostName)
 *   /clientip         the client's address as seen by the server, "ip:port"
 *   /serverport       the HTTP port
 *   /echo?msg=T&code=N   T, with status N (default 200)
 *   /header?key=K     the value of request header K (without a key: every header)
 *   /redirect?location=L&code=N   a redirect to L (default 302)
 *   /dial?request=R&host=H&port=P&protocol=http|udp&tries=N
 *                     asks H:P (an HTTP GET of /R, or R in a datagram) N times, and
 *                     answers {"errors":[..],"responses":[..]} (each list only if not
 *                     empty; "responses" only if the last try got one, as agnhost does)
 *   /shell?cmd=C      runs `sh -c C`: {"output": .., "error": "exit status N"}
 *   /healthz          "ok"
 *   /readyz           "ok", or 503 once SIGTERM came (with --delay-shutdown)
 *   /exit?code=N&wait=D   answers, waits D (a Go duration), exits with status N
 *   /shutdown         answers, then exits 0
 * UDP (--udp-port, default 8081), one datagram in, one out (trimmed, case-insensitive):
 *   "hostname"  "echo TEXT"  "clientip"
 * SIGTERM exits 0 at once, or with --delay-shutdown=N keeps serving N seconds (readyz
 * failing) first. Not here: HTTPS (--tls-cert-file), SCTP, /upload.
 *
 * One thread polls the listening sockets and answers UDP; each HTTP connection gets its
 * own thread, so a /dial that waits (even on this very server) blocks nobody else.
 */
#include "netexec.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char usage_line[] =
    "netexec [--http-port=N] [--udp-port=N] [--udp-listen-addresses=IP,..] [--http-override=PATH] [--delay-shutdown=SECONDS]";

static int http_port = 8080;
static const char *http_override;
static int delay_shutdown;
static volatile sig_atomic_t terminating;

static void on_alarm(int sig) { (void)sig; _exit(0); }

static void on_term(int sig) {
    (void)sig;
    if (delay_shutdown <= 0) _exit(0);
    if (!terminating) {
        terminating = 1;
        static const char msg[] = "netexec: SIGTERM, serving on until --delay-shutdown ends\n";
        (void)!write(2, msg, sizeof msg - 1);
        alarm((unsigned)delay_shutdown);
    }
}

/* ---- HTTP ---- */

struct request {
    int fd;
    struct sockaddr_in peer;
    char head[8192];   /* the request line and headers, NUL-terminated */
    char target[4096]; /* path, then the query after its NUL */
    char *query;       /* NULL without one */
};

static const char *status_text(int status) {
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 412: return "Precondition Failed";
    case 417: return "Expectation Failed";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
    }
}

static void respond_full(int fd, int status, const char *type, const char *extra, const char *body, size_t len) {
    char head[4600];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%sConnection: close\r\n\r\n",
                     status, status_text(status), type, len, extra ? extra : "");
    if (n >= (int)sizeof head) n = (int)sizeof head - 1;
    send_all(fd, head, (size_t)n, now_ns() + 5000000000LL);
    send_all(fd, body, len, now_ns() + 5000000000LL);
}

static void respond(int fd, int status, const char *body) {
    respond_full(fd, status, "text/plain; charset=utf-8", NULL, body, strlen(body));
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

/* The decoded value of key in the query (a private copy), or NULL. */
static const char *param(struct request *r, const char *key, char *out, size_t n) {
    if (!r->query) return NULL;
    size_t klen = strlen(key);
    for (const char *p = r->query; *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
            snprintf(out, n, "%.*s", (int)(len - klen - 1), p + klen + 1);
            url_decode(out);
            return out;
        }
        if (len == klen && strncmp(p, key, klen) == 0) { out[0] = 0; return out; }
        p += len + (amp ? 1 : 0);
    }
    return NULL;
}

/* The value of header key (case-insensitive) into out, or NULL. */
static const char *header(struct request *r, const char *key, char *out, size_t n) {
    size_t klen = strlen(key);
    for (const char *p = strchr(r->head, '\n'); p && p[1]; p = strchr(p + 1, '\n')) {
        const char *line = p + 1;
        if (strncasecmp(line, key, klen) == 0 && line[klen] == ':') {
            const char *v = line + klen + 1;
            while (*v == ' ' || *v == '\t') v++;
            size_t len = strcspn(v, "\r\n");
            snprintf(out, n, "%.*s", (int)len, v);
            return out;
        }
    }
    return NULL;
}

/* Reads the request head (until the blank line, 8 KB, or 5 s): 0, or -1. */
static int read_request(struct request *r) {
    int64_t deadline = now_ns() + 5000000000LL;
    size_t len = 0;
    for (;;) {
        if (!wait_fd(r->fd, POLLIN, deadline)) return -1;
        ssize_t n = recv(r->fd, r->head + len, sizeof r->head - 1 - len, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (n <= 0) return len ? 0 : -1;
        len += (size_t)n;
        r->head[len] = 0;
        if (strstr(r->head, "\r\n\r\n") || strstr(r->head, "\n\n") || len == sizeof r->head - 1) return 0;
    }
}

/* One /dial try over HTTP: 0 with the body in *out, or -1 with the error in *out. */
static int dial_http(const struct sockaddr_in *a, const char *request, struct buf *out) {
    char hostport[64], path[4096];
    format_addr(a, hostport, sizeof hostport);
    /* agnhost asks for "/" + request; spaces would break the request line. */
    size_t n = 0;
    if (request[0] != '/') path[n++] = '/';
    for (const char *s = request; *s && n < sizeof path - 4; s++) {
        if (*s == ' ') { memcpy(path + n, "%20", 3); n += 3; }
        else path[n++] = *s;
    }
    path[n] = 0;
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
    int status;
    char *resp, *body;
    size_t blen;
    if (http_get(a, ip, path, now_ns() + 5000000000LL, &status, &resp, &body, &blen) == 0) {
        buf_add(out, body, blen);
        free(resp);
        return 0;
    }
    char msg[512], err[128];
    go_strerror(errno, err, sizeof err);
    if (errno == ETIMEDOUT) {
        snprintf(msg, sizeof msg, "Get \"http://%s%s\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)", hostport, path);
    } else {
        snprintf(msg, sizeof msg, "Get \"http://%s%s\": dial tcp %s: connect: %s", hostport, path, hostport, err);
    }
    buf_str(out, msg);
    return -1;
}

/* One /dial try over UDP, like dial_http. */
static int dial_udp(const struct sockaddr_in *a, const char *request, struct buf *out) {
    char reply[2048], hostport[64], local[64], msg[512], err[128];
    struct sockaddr_in me = {0};
    ssize_t n = udp_exchange(a, request, strlen(request), now_ns() + 5000000000LL, reply, sizeof reply, &me);
    if (n > 0) { buf_add(out, reply, (size_t)n); return 0; }
    go_strerror(errno, err, sizeof err);
    format_addr(a, hostport, sizeof hostport);
    format_addr(&me, local, sizeof local);
    if (n == 0) snprintf(msg, sizeof msg, "reading from udp connection failed. err:'<nil>'");
    else if (errno == ETIMEDOUT) snprintf(msg, sizeof msg, "reading from udp connection failed. err:'read udp %s->%s: i/o timeout'", local, hostport);
    else snprintf(msg, sizeof msg, "reading from udp connection failed. err:'read udp %s->%s: %s'", local, hostport, err);
    buf_str(out, msg);
    return -1;
}

static void handle_dial(struct request *r) {
    char host[512], port[32], request[2048], protocol[32], tries_s[32], msg[1024];
    const char *h = param(r, "host", host, sizeof host), *p = param(r, "port", port, sizeof port);
    const char *req = param(r, "request", request, sizeof request), *proto = param(r, "protocol", protocol, sizeof protocol);
    const char *t = param(r, "tries", tries_s, sizeof tries_s);
    long tries = 1;
    if (t && *t && (tries = parse_num(t, 0, 10000)) < 0) {
        snprintf(msg, sizeof msg, "tries parameter is invalid. strconv.Atoi: parsing \"%s\": invalid syntax\n", t);
        respond(r->fd, 400, msg);
        return;
    }
    if (!req || !*req) { respond(r->fd, 400, "request parameter not specified. <nil>\n"); return; }
    int udp = 0;
    if (proto && *proto && strcasecmp(proto, "http") != 0) {
        if (strcasecmp(proto, "udp") == 0) udp = 1;
        else {
            snprintf(msg, sizeof msg, "unsupported protocol. %s%s\n", proto,
                     strcasecmp(proto, "sctp") == 0 ? " (this image has no SCTP)" : "");
            respond(r->fd, 400, msg);
            return;
        }
    }
    struct sockaddr_in a = {.sin_family = AF_INET};
    long pn = p ? parse_num(p, 0, 65535) : -1;
    if (pn < 0 || !h || resolve_ipv4(h, &a.sin_addr, now_ns() + 5000000000LL) < 0) {
        snprintf(msg, sizeof msg, "host and/or port param are invalid. lookup %s:%s failed\n", h ? h : "", p ? p : "");
        respond(r->fd, 400, msg);
        return;
    }
    a.sin_port = htons((uint16_t)pn);
    struct buf errors = {0}, responses = {0}, one = {0}, out = {0};
    int last_ok = 0, nerr = 0, nresp = 0;
    for (long i = 0; i < tries; i++) {
        one.len = 0;
        buf_add(&one, "", 0);
        int ok = (udp ? dial_udp(&a, req, &one) : dial_http(&a, req, &one)) == 0;
        struct buf *list = ok ? &responses : &errors;
        buf_str(list, (ok ? nresp++ : nerr++) ? "," : "[");
        buf_json(list, one.p, one.len);
        last_ok = ok && one.len > 0;
    }
    buf_str(&out, "{");
    if (nerr) { buf_str(&out, "\"errors\":"); buf_add(&out, errors.p, errors.len); buf_str(&out, "]"); }
    if (last_ok) {
        buf_str(&out, nerr ? ",\"responses\":" : "\"responses\":");
        buf_add(&out, responses.p, responses.len);
        buf_str(&out, "]");
    }
    buf_str(&out, "}");
    respond_full(r->fd, 200, "text/plain; charset=utf-8", NULL, out.p, out.len);
    free(errors.p); free(responses.p); free(one.p); free(out.p);
}

static void handle_shell(struct request *r) {
    char cmd[2048], script[2200], err[64];
    const char *c = param(r, "shellCommand", cmd, sizeof cmd);
    if (!c || !*c) c = param(r, "cmd", cmd, sizeof cmd);
    snprintf(script, sizeof script, "{ %s\n} 2>&1", c ? c : "");
    struct buf output = {0}, out = {0};
    buf_add(&output, "", 0);
    err[0] = 0;
    FILE *f = popen(script, "r");
    if (!f) {
        snprintf(err, sizeof err, "%s", strerror(errno));
    } else {
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) buf_add(&output, chunk, n);
        int st = pclose(f);
        if (st == -1) snprintf(err, sizeof err, "%s", strerror(errno));
        else if (WIFEXITED(st) && WEXITSTATUS(st)) snprintf(err, sizeof err, "exit status %d", WEXITSTATUS(st));
        else if (WIFSIGNALED(st)) snprintf(err, sizeof err, "signal: %s", strsignal(WTERMSIG(st)));
    }
    buf_str(&out, "{");
    if (err[0]) { buf_str(&out, "\"error\":"); buf_json(&out, err, strlen(err)); }
    if (output.len) { buf_str(&out, err[0] ? ",\"output\":" : "\"output\":"); buf_json(&out, output.p, output.len); }
    buf_str(&out, "}");
    respond_full(r->fd, err[0] ? 417 : 200, "text/plain; charset=utf-8", NULL, out.p, out.len);
    free(output.p); free(out.p);
}

static void handle_http(struct request *r) {
    char method[16] = {0}, value[4096], body[8192];
    if (read_request(r) < 0 || sscanf(r->head, "%15s %4095s", method, r->target) != 2) return;
    if (http_override) snprintf(r->target, sizeof r->target, "%s", http_override);
    r->query = strchr(r->target, '?');
    if (r->query) *r->query++ = 0;
    const char *path = r->target, *v;
    int exit_code = -1;
    long wait_ms = 0;
    if (!strcmp(path, "/hostname") || !strcmp(path, "/hostName")) {
        respond(r->fd, 200, hostname());
    } else if (!strcmp(path, "/clientip")) {
        format_addr(&r->peer, body, sizeof body);
        respond(r->fd, 200, body);
    } else if (!strcmp(path, "/serverport")) {
        snprintf(body, sizeof body, "%d", http_port);
        respond(r->fd, 200, body);
    } else if (!strcmp(path, "/echo")) {
        char code[32];
        const char *msg = param(r, "msg", value, sizeof value), *c = param(r, "code", code, sizeof code);
        long status = 200;
        if (c && *c && (status = parse_num(c, 100, 999)) < 0) {
            snprintf(body, sizeof body, "argument 'code' must be an integer or empty, got \"%s\"\n", c);
            respond(r->fd, 200, body);
        } else {
            respond(r->fd, (int)status, msg ? msg : "");
        }
    } else if (!strcmp(path, "/header")) {
        const char *key = param(r, "key", body, sizeof body);
        if (key && *key) {
            respond(r->fd, 200, (v = header(r, key, value, sizeof value)) ? v : "");
        } else {
            char *first = strchr(r->head, '\n'), *end = strstr(r->head, "\r\n\r\n");
            if (!end) end = strstr(r->head, "\n\n");
            respond_full(r->fd, 200, "text/plain; charset=utf-8", NULL, first ? first + 1 : "",
                         first && end > first ? (size_t)(end - first + 1) : 0);
        }
    } else if (!strcmp(path, "/redirect")) {
        char code[32], extra[4200];
        const char *loc = param(r, "location", value, sizeof value), *c = param(r, "code", code, sizeof code);
        long status = 302;
        if (c && *c && (status = parse_num(c, 300, 399)) < 0) status = 302;
        snprintf(extra, sizeof extra, "Location: %s\r\n", loc ? loc : "/");
        snprintf(body, sizeof body, "<a href=\"%s\">%s</a>.\n\n", loc ? loc : "/", status_text((int)status));
        respond_full(r->fd, (int)status, "text/html; charset=utf-8", extra, body, strlen(body));
    } else if (!strcmp(path, "/dial")) {
        handle_dial(r);
    } else if (!strcmp(path, "/shell")) {
        handle_shell(r);
    } else if (!strcmp(path, "/healthz")) {
        respond(r->fd, 200, "ok");
    } else if (!strcmp(path, "/readyz")) {
        if (terminating) respond(r->fd, 503, "shutting down");
        else respond(r->fd, 200, "ok");
    } else if (!strcmp(path, "/exit") || !strcmp(path, "/shutdown")) {
        char code[32], wait[64];
        const char *c = param(r, "code", code, sizeof code), *w = param(r, "wait", wait, sizeof wait);
        exit_code = c && *c ? (int)parse_num(c, 0, 255) : 0;
        wait_ms = w && *w ? parse_duration_ms(w) : 0;
        if (exit_code < 0 || wait_ms < 0) {
            respond(r->fd, 400, "argument 'code' must be an integer [0-127] and 'wait' a duration, or empty\n");
            return;
        }
        snprintf(body, sizeof body, "exiting with %d", exit_code);
        respond(r->fd, 200, body);
    } else {
        snprintf(body, sizeof body, "NOW: %ld", (long)time(NULL));
        respond(r->fd, 200, body);
    }
    if (exit_code >= 0) {
        close(r->fd);
        fprintf(stderr, "netexec: %s requested, exiting with %d\n", path, exit_code);
        if (wait_ms > 0) nanosleep(&(struct timespec){wait_ms / 1000, (wait_ms % 1000) * 1000000}, NULL);
        exit(exit_code);
    }
}

static void *http_thread(void *arg) {
    struct request *r = arg;
    handle_http(r);
    close(r->fd);
    free(r);
    return NULL;
}

static void accept_http(int lfd, pthread_attr_t *attr) {
    struct request *r = calloc(1, sizeof *r);
    if (!r) return;
    socklen_t plen = sizeof r->peer;
    r->fd = accept4(lfd, (struct sockaddr *)&r->peer, &plen, SOCK_CLOEXEC);
    pthread_t t;
    if (r->fd < 0) { free(r); return; }
    if (pthread_create(&t, attr, http_thread, r) != 0) { close(r->fd); free(r); }
}

/* ---- UDP ---- */

static void serve_udp(int fd) {
    char buf[2048], out[2300];
    struct sockaddr_in peer;
    socklen_t plen = sizeof peer;
    ssize_t n = recvfrom(fd, buf, sizeof buf - 1, 0, (struct sockaddr *)&peer, &plen);
    if (n <= 0) return;
    buf[n] = 0;
    char *s = buf;
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n') s++;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t')) buf[--n] = 0;
    if (strcasecmp(s, "hostname") == 0) snprintf(out, sizeof out, "%s", hostname());
    else if (strncasecmp(s, "echo ", 5) == 0) snprintf(out, sizeof out, "%s", s + 5);
    else if (strcasecmp(s, "clientip") == 0) format_addr(&peer, out, sizeof out);
    else if (!*s) return;
    else snprintf(out, sizeof out, "unknown command: %s", s);
    sendto(fd, out, strlen(out), 0, (struct sockaddr *)&peer, plen);
}

int cmd_netexec(int argc, char **argv) {
    int udp_port = 8081;
    const char *v, *udp_addresses = NULL;
    for (int i = 1; i < argc; i++) {
        if ((v = flag_value(argc, argv, &i, "http-port"))) http_port = atoi(v);
        else if ((v = flag_value(argc, argv, &i, "udp-port"))) udp_port = atoi(v);
        else if ((v = flag_value(argc, argv, &i, "udp-listen-addresses"))) udp_addresses = v;
        else if ((v = flag_value(argc, argv, &i, "http-override"))) http_override = *v ? v : NULL;
        else if ((v = flag_value(argc, argv, &i, "delay-shutdown"))) delay_shutdown = atoi(v);
        else if ((v = flag_value(argc, argv, &i, "sctp-port"))) {
            if (atoi(v) > 0) fprintf(stderr, "netexec: --sctp-port=%s ignored: this image has no SCTP\n", v);
        } else if ((v = flag_value(argc, argv, &i, "tls-cert-file")) || (v = flag_value(argc, argv, &i, "tls-private-key-file"))) {
            if (*v) { fprintf(stderr, "netexec: HTTPS (--tls-cert-file) is not supported by this image\n"); return 1; }
        } else {
            bad_usage("netexec", argv[i], usage_line);
        }
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_term};
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);

    struct pollfd fds[17];
    int nfds = 0;
    if (http_port > 0) fds[nfds++] = (struct pollfd){listen_on(SOCK_STREAM, NULL, http_port), POLLIN, 0};
    if (udp_port > 0) {
        if (!udp_addresses || !*udp_addresses) {
            fds[nfds++] = (struct pollfd){listen_on(SOCK_DGRAM, NULL, udp_port), POLLIN, 0};
        } else {
            char list[1024], *save;
            snprintf(list, sizeof list, "%s", udp_addresses);
            for (char *a = strtok_r(list, ",", &save); a && nfds < 17; a = strtok_r(NULL, ",", &save)) {
                fds[nfds++] = (struct pollfd){listen_on(SOCK_DGRAM, a, udp_port), POLLIN, 0};
            }
        }
    }
    fprintf(stderr, "netexec: serving HTTP on %d, UDP on %d\n", http_port, udp_port);
    for (;;) {
        if (poll(fds, nfds, -1) < 0) continue;
        for (int i = 0; i < nfds; i++) {
            if (!(fds[i].revents & POLLIN)) continue;
            if (http_port > 0 && i == 0) accept_http(fds[i].fd, &attr);
            else serve_udp(fds[i].fd);
        }
    }
}
