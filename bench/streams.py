#!/usr/bin/env python3
"""exec and port-forward through the API (run as root after `make build`):
  - port-forward throughput, one connection, against a direct connection to the pod
    from its node's network namespace (the same client, the same servers in the pod):
    a 200 MB download from busybox httpd, and 100 MB echoed both ways through
    `nc -e cat`; through kubectl port-forward (SPDY tunnelled in WebSocket, kubectl's
    default), kubectl port-forward over SPDY, and minik port-forward;
  - 20 connections at once echoing 10 MB each through kubectl port-forward;
  - exec round trip, `kubectl exec POD -- true` (WebSocket; and SPDY) against
    `minik exec POD -- true`, with `kubectl get pod` as kubectl's own fixed cost.
Prints Markdown for BENCHMARKS.md."""
import os, re, socket, statistics, subprocess, sys, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MINIK = os.environ.get("MINIK", os.path.join(ROOT, ".build/release/minik"))
KUBECTL = os.environ.get("KUBECTL", "kubectl")
NAME = "bstr"
KCFG = f"/tmp/minik-bench-{os.getpid()}.kubeconfig"
ENV = dict(os.environ, KUBECONFIG=KCFG)

SPEC = f"""kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
name: {NAME}
nodes: [{{role: control-plane}}, {{role: worker}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: srv}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {NAME}-worker}}
  containers:
  - name: srv
    image: busybox
    command: [sh, -c, 'mkdir -p /www && head -c 200000000 /dev/zero > /www/big && (nc -ll -p 9000 -e cat &) && exec httpd -f -p 8080 -h /www']
"""

# The client: run here (through a port-forward) or in the node's namespace (direct).
CLIENT = r'''
import socket, sys, time, threading, hashlib, os
host, mode, port, n, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
def download():
    s = socket.create_connection((host, port))
    s.sendall(b"GET /big HTTP/1.0\r\n\r\n")
    got, t = 0, time.time()
    while True:
        b = s.recv(1 << 20)
        if not b: break
        got += len(b)
    return got, time.time() - t
def echo(size):
    data = os.urandom(1 << 20) * (size >> 20)
    s = socket.create_connection((host, port))
    back = []
    def reader():
        while True:
            b = s.recv(1 << 20)
            if not b: break
            back.append(b)
    t0 = time.time()
    r = threading.Thread(target=reader); r.start()
    s.sendall(data); s.shutdown(socket.SHUT_WR); r.join()
    ok = hashlib.sha256(b"".join(back)).digest() == hashlib.sha256(data).digest()
    return ok, time.time() - t0
if mode == "down":
    got, dt = download()
    print("%d %.4f" % (got, dt))
else:
    res = [None] * n
    def one(i): res[i] = echo(size)
    t0 = time.time()
    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    [t.start() for t in ts]; [t.join() for t in ts]
    print("%d %.4f" % (sum(1 for r in res if r[0]), time.time() - t0))
'''


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, env=ENV, **kw)


def client(prefix, host, mode, port, n=1, size=0):
    out = run(prefix + ["python3", "-c", CLIENT, host, mode, str(port), str(n), str(size)], timeout=600).stdout.split()
    return int(out[0]), float(out[1])


def times(argv, n=20, env=None):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        r = subprocess.run(argv, capture_output=True, env=env or ENV)
        out.append((time.perf_counter() - t) * 1000)
        if r.returncode != 0:
            sys.exit(f"{argv}: {r.stderr}")
    out.sort()
    return statistics.median(out), out[int(len(out) * 0.95) - 1]


def main():
    spec = f"/tmp/minik-bench-{os.getpid()}.yaml"
    open(spec, "w").write(SPEC)
    if run([MINIK, "up", spec, "-q"]).returncode != 0:
        sys.exit("up failed")
    try:
        time.sleep(3)
        state = run([MINIK, "get", "pods", "--name", NAME, "-o", "wide"]).stdout
        ip = re.search(r"srv\s+\S+\s+\S+\s+\S+\s+\S+\s+(\d+\.\d+\.\d+\.\d+)", state).group(1)
        node = [MINIK, "node", "exec", "--name", NAME, f"{NAME}-worker", "--"]
        rows = []
        direct_down = client(node, ip, "down", 8080)
        direct_echo = client(node, ip, "echo", 9000, 1, 100 << 20)
        rows.append(("direct, from the node's namespace to the pod", direct_down, direct_echo))
        ways = [
            ("kubectl port-forward (SPDY in WebSocket)", [KUBECTL, "port-forward", "pod/srv", ":8080", ":9000"], None),
            ("kubectl port-forward (SPDY)", [KUBECTL, "port-forward", "pod/srv", ":8080", ":9000"], dict(ENV, KUBECTL_PORT_FORWARD_WEBSOCKETS="false")),
        ]
        many = None
        for label, argv, env in ways:
            p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env or ENV)
            ports = []
            while len(ports) < 2:
                m = re.search(r"127\.0\.0\.1:(\d+)", p.stdout.readline())
                if m:
                    ports.append(int(m.group(1)))
            rows.append((label, client([], "127.0.0.1", "down", ports[0]), client([], "127.0.0.1", "echo", ports[1], 1, 100 << 20)))
            if env is None:
                many = client([], "127.0.0.1", "echo", ports[1], 20, 10 << 20)
            p.kill()
            p.wait()
        p = subprocess.Popen([MINIK, "port-forward", "--name", NAME, "srv", "28580:8080", "28590:9000"], stdout=subprocess.PIPE, text=True)
        p.stdout.readline(); p.stdout.readline()
        rows.append(("minik port-forward", client([], "127.0.0.1", "down", 28580), client([], "127.0.0.1", "echo", 28590, 1, 100 << 20)))
        p.terminate()
        p.wait()

        print("| path | download 200 MB | vs direct | echo 100 MB both ways | vs direct |")
        print("|---|---|---|---|---|")
        d0 = direct_down[0] / direct_down[1]
        e0 = 2 * (100 << 20) / direct_echo[1]
        for label, (got, dt), (ok, et) in rows:
            d = got / dt
            e = 2 * (100 << 20) / et
            print(f"| {label} | {d / 1e6:.0f} MB/s | {d / d0:.0%} | {e / 1e6:.0f} MB/s{'' if ok == 1 else ' (checksum failed)'} | {e / e0:.0%} |")
        ok, dt = many
        print(f"\n20 connections at once through kubectl port-forward, 10 MiB echoed by each: {ok}/20 intact, "
              f"{dt:.2f} s, {20 * 2 * (10 << 20) / dt / 1e6:.0f} MB/s together.\n")

        print("| command | p50 | p95 |")
        print("|---|---|---|")
        for label, argv, env in [
            ("kubectl get pod srv (kubectl's own cost)", [KUBECTL, "get", "pod", "srv", "-o", "name"], None),
            ("kubectl exec srv -- true (WebSocket)", [KUBECTL, "exec", "srv", "--", "true"], None),
            ("kubectl exec srv -- true (SPDY)", [KUBECTL, "exec", "srv", "--", "true"], dict(ENV, KUBECTL_REMOTE_COMMAND_WEBSOCKETS="false")),
            ("minik exec srv -- true", [MINIK, "exec", "--name", NAME, "srv", "--", "true"], None),
        ]:
            p50, p95 = times(argv, env=env)
            print(f"| `{label}` | {p50:.0f} ms | {p95:.0f} ms |")
    finally:
        run([MINIK, "down", "--name", NAME])
        for f in (spec, KCFG):
            try:
                os.unlink(f)
            except OSError:
                pass


if __name__ == "__main__":
    main()
