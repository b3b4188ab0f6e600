/*
 * netexec: minik's test server and network toolbox, answering the way the Kubernetes e2e
 * image agnhost does, so upstream test manifests run against pods unchanged, plus small
 * clients to run inside a pod. One static binary, no dependencies; the image has it as
 * /netexec and as /agnhost (the same file).
 *
 *   netexec [FLAGS]              the server (also `netexec netexec [FLAGS]`): server.c
 *   netexec udp|http|connect-bench|dns-race ...         our clients: clients.c
 *   netexec connect HOST:PORT ...                        agnhost's client: clients.c
 *   netexec serve-hostname|porter|pause|dns-suffix|dns-server-list|etc-hosts: agnhost.c
 *
 * As agnhost, the first argument is always the subcommand: `/agnhost netexec
 * --http-port=8080`; with none it prints the list. As netexec, no subcommand (or a flag
 * first) runs the server, as it always has.
 */
#include "netexec.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int (*run)(int, char **);
    const char *help;
} commands[] = {
    {"netexec", cmd_netexec, "HTTP and UDP test server (/hostname, /clientip, /dial, /echo, /exit...)"},
    {"connect", cmd_connect, "HOST:PORT [--timeout=1s] [--protocol=tcp|udp]: exit 0 if it connects"},
    {"serve-hostname", cmd_serve_hostname, "[--port=9376] [--http|--tcp|--udp]: serves the hostname"},
    {"porter", cmd_porter, "serves $SERVE_PORT_<N> on port N (and SERVE_UDP_PORT_<N>)"},
    {"pause", cmd_pause, "waits for SIGINT/SIGTERM"},
    {"dns-suffix", cmd_dns_suffix, "the search domains of /etc/resolv.conf"},
    {"dns-server-list", cmd_dns_server_list, "the nameservers of /etc/resolv.conf"},
    {"etc-hosts", cmd_etc_hosts, "prints /etc/hosts"},
    {"udp", cmd_udp, "HOST PORT MESSAGE [--timeout-ms N]: one datagram, prints the reply"},
    {"http", cmd_http, "HOST PORT PATH [--timeout-ms N]: one GET, prints the body"},
    {"connect-bench", cmd_connect_bench, "HOST PORT COUNT: TCP connect latency percentiles"},
    {"dns-race", cmd_dns_race, "SERVER NAME ROUNDS [--sequential]: A and AAAA at once from one socket"},
};

static void list_commands(FILE *out, const char *self) {
    fprintf(out, "usage: %s SUBCOMMAND [ARGS]\n", self);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        fprintf(out, "  %-16s %s\n", commands[i].name, commands[i].help);
    }
}

int main(int argc, char **argv) {
    const char *self = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    int as_agnhost = strncmp(self, "agnhost", 7) == 0;
    if (argc < 2 || argv[1][0] == '-') {
        if (!as_agnhost) return cmd_netexec(argc, argv);
        int help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
        list_commands(help ? stdout : stderr, self);
        return help ? 0 : 2;
    }
    if (!strcmp(argv[1], "help")) { list_commands(stdout, self); return 0; }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "%s: unknown subcommand \"%s\"\n", self, argv[1]);
    list_commands(stderr, self);
    return 2;
}
