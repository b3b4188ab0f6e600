/*
 * netexec: minik's test server, answering the way the Kubernetes e2e netexec image does
 * so the classic networking checks can run against pods.
 *
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
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

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
    if (type == SOCK_STREAM && listen(fd, 128) < 0) { perror("listen"); exit(1); }
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

int main(int argc, char **argv) {
    int http_port = 8080, udp_port = 8081;
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--http-port=", 12) == 0) http_port = atoi(argv[i] + 12);
        else if (strncmp(argv[i], "--udp-port=", 11) == 0) udp_port = atoi(argv[i] + 11);
        else { fprintf(stderr, "usage: netexec [--http-port=N] [--udp-port=N] (0 turns one off)\n"); return 2; }
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
