/*
 * The smaller agnhost subcommands e2e manifests run:
 *   serve-hostname [--port=9376] [--http] [--tcp] [--udp] [--close]
 *       the hostname over HTTP (the default; any path), or raw over TCP (written, then
 *       closed) and/or UDP (one datagram back per datagram in). --http cannot go with
 *       --tcp/--udp: give --http=false, as with agnhost.
 *   porter [--json-response]
 *       for each SERVE_PORT_N / SERVE_TCP_PORT_N in the environment, HTTP on port N
 *       answering the variable's value to any request; SERVE_UDP_PORT_N the same over UDP.
 *       SERVE_TLS_PORT_N and SERVE_SCTP_PORT_N are skipped with a note (no TLS, no SCTP).
 *   pause [--delay-shutdown=SECONDS]
 *       prints "Paused" and waits: SIGINT exits 1, SIGTERM 2 (after the delay).
 *   dns-suffix, dns-server-list, etc-hosts
 *       the search domains and nameservers of /etc/resolv.conf (comma-separated), and
 *       /etc/hosts.
 * SIGTERM ends serve-hostname and porter at once (exit 0).
 */
#include "netexec.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

extern char **environ;

static void on_term(int sig) { (void)sig; _exit(0); }

static void exit_on_term(void) {
    struct sigaction sa = {.sa_handler = on_term};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* Answers one HTTP connection with body, whatever was asked: the request head is read
 * (up to 2 s) so the client gets an answer rather than a reset. */
static void answer_http(int lfd, const char *type, const char *body) {
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) return;
    char req[8192];
    size_t len = 0;
    int64_t deadline = now_ns() + 2000000000LL;
    while (len < sizeof req - 1 && wait_fd(fd, POLLIN, deadline)) {
        ssize_t n = recv(fd, req + len, sizeof req - 1 - len, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (n <= 0) break;
        len += (size_t)n;
        req[len] = 0;
        if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n")) break;
    }
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                     type, strlen(body));
    send_all(fd, head, (size_t)n, deadline);
    send_all(fd, body, strlen(body), deadline);
    close(fd);
}

static void answer_udp(int fd, const char *body) {
    char buf[2048];
    struct sockaddr_in peer;
    socklen_t plen = sizeof peer;
    if (recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&peer, &plen) < 0) return;
    sendto(fd, body, strlen(body), 0, (struct sockaddr *)&peer, plen);
}

int cmd_serve_hostname(int argc, char **argv) {
    static const char usage_line[] = "serve-hostname [--port=9376] [--http] [--tcp] [--udp] [--close]";
    int tcp = 0, udp = 0, http = 1, close_conn = 0, port = 9376;
    const char *v;
    for (int i = 1; i < argc; i++) {
        if ((v = flag_value(argc, argv, &i, "port"))) {
            long p = parse_num(v, 1, 65535);
            if (p < 0) { fprintf(stderr, "serve-hostname: bad --port \"%s\"\n", v); return 2; }
            port = (int)p;
        } else if (flag_bool(argv[i], "tcp", &tcp) || flag_bool(argv[i], "udp", &udp) ||
                   flag_bool(argv[i], "http", &http) || flag_bool(argv[i], "close", &close_conn)) {
            continue;
        } else {
            bad_usage("serve-hostname", argv[i], usage_line);
        }
    }
    if (http && (tcp || udp)) {
        fprintf(stderr, "serve-hostname: can't serve TCP/UDP mode and HTTP mode at the same time (give --http=false)\n");
        return 1;
    }
    exit_on_term();
    const char *name = hostname();
    struct pollfd fds[2];
    int kinds[2], nfds = 0; /* 0 HTTP, 1 raw TCP, 2 UDP */
    if (http || tcp) { kinds[nfds] = http ? 0 : 1; fds[nfds++] = (struct pollfd){listen_on(SOCK_STREAM, NULL, port), POLLIN, 0}; }
    if (udp) { kinds[nfds] = 2; fds[nfds++] = (struct pollfd){listen_on(SOCK_DGRAM, NULL, port), POLLIN, 0}; }
    fprintf(stderr, "serve-hostname: serving %s on port %d\n", http ? "HTTP" : tcp && udp ? "TCP and UDP" : tcp ? "TCP" : "UDP", port);
    for (;;) {
        if (poll(fds, (nfds_t)nfds, -1) < 0) continue;
        for (int i = 0; i < nfds; i++) {
            if (!(fds[i].revents & POLLIN)) continue;
            if (kinds[i] == 0) {
                answer_http(fds[i].fd, "text/plain; charset=utf-8", name);
            } else if (kinds[i] == 1) {
                int fd = accept4(fds[i].fd, NULL, NULL, SOCK_CLOEXEC);
                if (fd >= 0) { send_all(fd, name, strlen(name), now_ns() + 2000000000LL); close(fd); }
            } else {
                answer_udp(fds[i].fd, name);
            }
        }
    }
}

int cmd_porter(int argc, char **argv) {
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (!flag_bool(argv[i], "json-response", &json)) bad_usage("porter", argv[i], "porter [--json-response]");
    }
    enum { MAX = 64 };
    struct pollfd fds[MAX];
    char *bodies[MAX];
    int udp[MAX], nfds = 0;
    static const struct { const char *prefix; int kind; } kinds[] = {
        {"SERVE_PORT_", 0}, {"SERVE_TCP_PORT_", 0}, {"SERVE_UDP_PORT_", 1}, {"SERVE_TLS_PORT_", 2}, {"SERVE_SCTP_PORT_", 3},
    };
    for (char **e = environ; *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq) continue;
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
            size_t plen = strlen(kinds[k].prefix);
            if (strncmp(*e, kinds[k].prefix, plen) != 0) continue;
            char port_s[16];
            snprintf(port_s, sizeof port_s, "%.*s", (int)(eq - *e - plen), *e + plen);
            long port = parse_num(port_s, 1, 65535);
            if (kinds[k].kind >= 2 || port < 0 || nfds == MAX) {
                fprintf(stderr, "porter: %.*s skipped: %s\n", (int)(eq - *e), *e,
                        port < 0 ? "not a port" : kinds[k].kind == 2 ? "this image has no TLS" :
                        kinds[k].kind == 3 ? "this image has no SCTP" : "too many ports");
                break;
            }
            const char *value = eq + 1;
            if (json) {
                struct buf b = {0};
                buf_str(&b, "{\"Method\":\"GET\",\"Body\":");
                buf_json(&b, value, strlen(value));
                buf_str(&b, "}");
                bodies[nfds] = b.p;
            } else {
                bodies[nfds] = strdup(value);
            }
            udp[nfds] = kinds[k].kind == 1;
            fds[nfds] = (struct pollfd){listen_on(udp[nfds] ? SOCK_DGRAM : SOCK_STREAM, NULL, (int)port), POLLIN, 0};
            fprintf(stderr, "porter: serving %s on port %ld\n", udp[nfds] ? "UDP" : "HTTP", port);
            nfds++;
            break;
        }
    }
    exit_on_term();
    for (;;) {
        if (poll(fds, (nfds_t)nfds, -1) < 0) continue;
        for (int i = 0; i < nfds; i++) {
            if (!(fds[i].revents & POLLIN)) continue;
            if (udp[i]) answer_udp(fds[i].fd, bodies[i]);
            else answer_http(fds[i].fd, json ? "application/json" : "text/plain; charset=utf-8", bodies[i]);
        }
    }
}

int cmd_pause(int argc, char **argv) {
    int delay = 0;
    const char *v;
    for (int i = 1; i < argc; i++) {
        if ((v = flag_value(argc, argv, &i, "delay-shutdown"))) delay = atoi(v);
        else bad_usage("pause", argv[i], "pause [--delay-shutdown=SECONDS]");
    }
    /* Blocked, so they reach us even as PID 1 of a PID namespace (no handler needed). */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    printf("Paused\n");
    fflush(stdout);
    int sig = 0;
    while (sigwait(&set, &sig) != 0) {}
    int code = sig == SIGINT ? 1 : 2;
    if (delay > 0) {
        printf("Sleeping %d seconds before exit ...", delay);
        fflush(stdout);
        sleep((unsigned)delay);
    }
    printf("exiting %d\n", code);
    return code;
}

int cmd_dns_suffix(int argc, char **argv) {
    (void)argc; (void)argv;
    struct resolv_conf rc;
    read_resolv_conf(&rc);
    for (int i = 0; i < rc.nsearch; i++) printf("%s%s", i ? "," : "", rc.search[i]);
    printf("\n");
    return 0;
}

int cmd_dns_server_list(int argc, char **argv) {
    (void)argc; (void)argv;
    struct resolv_conf rc;
    read_resolv_conf(&rc);
    for (int i = 0; i < rc.nservers; i++) {
        char a[64];
        struct sockaddr_in s = {.sin_addr = rc.servers[i]};
        format_addr(&s, a, sizeof a);
        *strrchr(a, ':') = 0;
        printf("%s%s", i ? "," : "", a);
    }
    printf("\n");
    return 0;
}

int cmd_etc_hosts(int argc, char **argv) {
    (void)argc; (void)argv;
    FILE *f = fopen("/etc/hosts", "r");
    if (!f) { perror("/etc/hosts"); return 1; }
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, n, stdout);
    fclose(f);
    return 0;
}
