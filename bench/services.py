#!/usr/bin/env python3
"""services.py: the service proxy at scale.

For each N (services, 2 endpoints each: every service selects the same two netexec pods):
  - program N services from scratch: `minik apply -f` of N Services on a cluster that has
    none (wall time of apply, and the proxy's own figures: render, iptables-restore);
  - one service change with N present (its port changes): the same figures;
  - connect latency from a pod (netexec connect-bench: new TCP connection each time, the
    first packet walks the nat table) to a ClusterIP, and to the pod IP directly.
With FLAT=1 the proxy is told to keep kube-proxy's flat KUBE-SERVICES list
(MINIK_PROXY_FANOUT), to compare the two layouts' lookup cost. With POLICY=Cluster or
POLICY=Local every service is a NodePort with that externalTrafficPolicy (Local makes
each node's rule set its own: the proxy assembles one per node).

Run as root after `make build` (uses .build/release). Prints Markdown rows.
Environment: SIZES (default "100 1000 10000"), CONNECTS (default 2000), MINIK.
"""
import json, os, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MINIK = os.environ.get("MINIK", os.path.join(ROOT, ".build/release/minik"))
SIZES = [int(s) for s in os.environ.get("SIZES", "100 1000 10000").split()]
CONNECTS = int(os.environ.get("CONNECTS", "2000"))
NAME = "bsvc"

CLUSTER = f"""kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
name: {NAME}
nodes: [{{role: control-plane}}, {{role: worker}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: be}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: be}}}}
  template:
    metadata: {{labels: {{app: be}}}}
    spec:
      containers: [{{name: c, image: netexec, ports: [{{name: http, containerPort: 8080}}]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  nodeName: {NAME}-control-plane
  containers: [{{name: c, image: netexec}}]
"""


POLICY = os.environ.get("POLICY", "")


def service(i, port=80, port_name=None):
    named = f"name: {port_name}, " if port_name else ""
    external = f"\n  type: NodePort\n  externalTrafficPolicy: {POLICY}" if POLICY else ""
    return f"""---
apiVersion: v1
kind: Service
metadata: {{name: s{i}}}
spec:{external}
  selector: {{app: be}}
  ports: [{{{named}port: {port}, targetPort: 8080}}]
"""


def run(*args, check=True):
    # Always this cluster (--name after the subcommand), whatever else is up.
    r = subprocess.run([MINIK, args[0], "--name", NAME, *args[1:]], capture_output=True, text=True)
    if check and r.returncode != 0:
        sys.exit(f"minik {' '.join(args)} failed: {r.stderr}")
    return r


def proxy():
    return json.loads(run("get", "proxy", "-o", "json").stdout)


def wait(cond, what, timeout=600):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return
        time.sleep(0.05)
    sys.exit(f"timed out waiting for {what}")


def synced(n_ports, after):
    """Every node synced after `after` (a sync count) with rules for n_ports services."""
    ps = proxy()
    return all(p["syncs"] > after.get(p["node"], 0) for p in ps)


def latency(ip, port):
    r = run("exec", "client", "--", "/netexec", "connect-bench", ip, str(port), str(CONNECTS), check=False)
    fields = dict(kv.split("=") for kv in r.stdout.split())
    return fields.get("p50_us", "?"), fields.get("p99_us", "?")


def main():
    flat = os.environ.get("FLAT") == "1"
    env = dict(os.environ)
    if flat:
        env["MINIK_PROXY_FANOUT"] = "100000000"
    workdir = tempfile.TemporaryDirectory(prefix="minik-bench-")  # removed when main returns
    tmp = workdir.name
    rows = []
    for n in SIZES:
        subprocess.run([MINIK, "down", "--name", NAME], capture_output=True)
        spec = os.path.join(tmp, "cluster.yaml")
        open(spec, "w").write(CLUSTER)
        r = subprocess.run([MINIK, "up", "-q", spec], env=env, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"up failed: {r.stderr}")
        try:
            pods = json.loads(run("get", "pods", "-o", "json").stdout)["items"]
            ips = {p["metadata"]["name"]: p["status"].get("podIP") for p in pods}
            svcs = os.path.join(tmp, "services.yaml")
            open(svcs, "w").write("".join(service(i) for i in range(n)))
            before = {p["node"]: p["syncs"] for p in proxy()}
            t0 = time.time()
            run("apply", "-f", svcs)
            apply_ms = (time.time() - t0) * 1000
            wait(lambda: synced(n, before) and proxy()[0]["rules"] > 6 * n, "the first sync")
            p = proxy()[0]
            full = (p["lastRenderMillis"], p["lastSyncMillis"], p["rules"], p["chains"])
            # One change with n present.
            one = os.path.join(tmp, "one.yaml")
            open(one, "w").write(service(0, port=81))
            before = {p["node"]: p["syncs"] for p in proxy()}
            t0 = time.time()
            run("apply", "-f", one)
            change_ms = (time.time() - t0) * 1000
            wait(lambda: synced(n, before), "the one-service sync")
            p = proxy()[0]
            change = (p["lastRenderMillis"], p["lastSyncMillis"], p["lastChangedChains"])
            o = json.loads(run("get", "svc", f"s{n - 1}", "-o", "json").stdout)
            svc = (o["items"][0] if "items" in o else o)["spec"]["clusterIP"]
            direct = latency(next(ip for name, ip in sorted(ips.items()) if name.startswith("be-")), 8080)
            via = latency(svc, 80)
            rows.append(f"| {n}{' (flat)' if flat else ''}{f', NodePort {POLICY}' if POLICY else ''} | {apply_ms:.0f} | {full[0]:.0f} + {full[1]:.0f} | {full[2]} / {full[3]} "
                        f"| {change_ms:.0f} | {change[0]:.0f} + {change[1]:.0f} ({change[2]} chains) "
                        f"| {via[0]} / {via[1]} | {direct[0]} / {direct[1]} |")
            print(rows[-1], file=sys.stderr)
        finally:
            subprocess.run([MINIK, "down", "--name", NAME], capture_output=True)
    print("| services | `minik apply` of N (ms) | first sync: render + restore (ms) | rules / chains | `minik apply` of 1 change (ms) | change: render + restore (ms) | connect to ClusterIP p50 / p99 (µs) | connect to pod IP p50 / p99 (µs) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(r)


if __name__ == "__main__":
    main()
