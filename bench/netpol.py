#!/usr/bin/env python3
"""netpol.py: what network policies cost.

A 2-node cluster: R backend pods (app=be, netexec, spread over both nodes) and a netexec
client pod. For each R:
  - connect latency from the client to one backend pod's address (netexec connect-bench:
    a new TCP connection each time), with no policy;
  - `allow-client`: the backends accept only the client on 8080. Apply it with
    `minik apply -f`, and read the proxy's figures for that sync (render, restore,
    rules), then the connect latency again;
  - `mesh`: the backends also accept each other (every backend a peer of every other:
    R rules in each backend's chain, R*R in all). The same figures.
The first packet of every connection walks MINIK-NETPOL (one rule per isolated pod of
the node) and the backend's own chain; replies and later packets return at the first rule.

Run as root after `make build` (uses .build/release). Prints Markdown rows.
Environment: SIZES (default "20 100"), CONNECTS (default 1000), MINIK.
"""
import json, os, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MINIK = os.environ.get("MINIK", os.path.join(ROOT, ".build/release/minik"))
SIZES = [int(s) for s in os.environ.get("SIZES", "20 100").split()]
CONNECTS = int(os.environ.get("CONNECTS", "1000"))
NAME = "bnp"


def cluster(replicas):
    return f"""kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
name: {NAME}
nodes: [{{role: control-plane}}, {{role: worker}}, {{role: worker}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: be}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: be}}}}
  template:
    metadata: {{labels: {{app: be}}}}
    spec:
      containers: [{{name: c, image: netexec, ports: [{{name: http, containerPort: 8080}}]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: client, labels: {{app: client}}}}
spec:
  nodeName: {NAME}-control-plane
  containers: [{{name: c, image: netexec}}]
"""


ALLOW = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-client}
spec:
  podSelector: {matchLabels: {app: be}}
  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}], ports: [{port: http}]}]
"""

MESH = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: mesh}
spec:
  podSelector: {matchLabels: {app: be}}
  ingress: [{from: [{podSelector: {matchLabels: {app: be}}}]}]
"""


def run(*args, check=True):
    r = subprocess.run([MINIK, args[0], "--name", NAME, *args[1:]], capture_output=True, text=True)
    if check and r.returncode != 0:
        sys.exit(f"minik {' '.join(args)} failed: {r.stderr}")
    return r


def proxy():
    return json.loads(run("get", "proxy", "-o", "json").stdout)


def latency(ip):
    r = run("exec", "client", "--", "/netexec", "connect-bench", ip, "8080", str(CONNECTS), check=False)
    fields = dict(kv.split("=") for kv in r.stdout.split() if "=" in kv)
    return fields.get("p50_us", "?"), fields.get("p99_us", "?")


def apply(tmp, text):
    path = os.path.join(tmp, "policy.yaml")
    open(path, "w").write(text)
    before = {p["node"]: p["syncs"] for p in proxy()}
    t0 = time.time()
    run("apply", "-f", path)
    ms = (time.time() - t0) * 1000
    end = time.time() + 120
    while time.time() < end:
        ps = proxy()
        # The workers (the backends' nodes) change; the control-plane may have nothing to do.
        workers = [p for p in ps if "-worker" in p["node"]]
        if all(p["syncs"] > before.get(p["node"], 0) for p in workers):
            return ms, max(workers, key=lambda p: p["lastSyncMillis"])
        time.sleep(0.05)
    sys.exit("timed out waiting for the sync")


def rules(node):
    out = subprocess.run([MINIK, "node", "exec", "--name", NAME, f"{NAME}-{node}", "--", "iptables-save", "-t", "filter"],
                         capture_output=True, text=True).stdout
    return sum(1 for line in out.splitlines() if line.startswith("-A MINIK-N"))


def main():
    workdir = tempfile.TemporaryDirectory(prefix="minik-bench-")  # removed when main returns
    tmp = workdir.name
    rows = []
    for r in SIZES:
        subprocess.run([MINIK, "down", "--name", NAME], capture_output=True)
        spec = os.path.join(tmp, "cluster.yaml")
        open(spec, "w").write(cluster(r))
        up = subprocess.run([MINIK, "up", "-q", spec], capture_output=True, text=True)
        if up.returncode != 0:
            sys.exit(f"up failed: {up.stderr}")
        try:
            pods = json.loads(run("get", "pods", "-o", "json").stdout)["items"]
            target = next(p["status"]["podIP"] for p in pods if p["metadata"]["name"].startswith("be-"))
            base = latency(target)
            for name, text in (("allow-client", ALLOW), ("mesh", MESH)):
                ms, p = apply(tmp, text)
                lat = latency(target)
                rows.append(f"| {r} | {name} | {ms:.0f} | {p['lastRenderMillis']:.0f} + {p['lastSyncMillis']:.0f} "
                            f"| {rules('worker')} | {base[0]} / {base[1]} | {lat[0]} / {lat[1]} |")
                print(rows[-1], file=sys.stderr)
        finally:
            subprocess.run([MINIK, "down", "--name", NAME], capture_output=True)
    print("| backends | policies | `minik apply` (ms) | sync: render + restore (ms) | policy rules on a worker | connect p50 / p99 without (µs) | connect p50 / p99 with (µs) |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
