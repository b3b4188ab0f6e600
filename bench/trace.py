#!/usr/bin/env python3
"""minik trace on a 10-node cluster with 300 pods (bench/gen-spec.sh 10 300) and a
Service in front of all of them (300 endpoints: KUBE-SVC with 300 random rules): the
time of `minik trace` pod to pod across nodes (VXLAN), pod to the service, and external
to its NodePort, from the kernel's state; and with --live (a real probe, the kernel's
trace in every node). 20 runs each, wall time of the whole command.
Prints Markdown for BENCHMARKS.md."""
import os, re, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MINIK = os.environ.get("MINIK", os.path.join(ROOT, ".build/release/minik"))
NAME = "btr"

def minik(*args, check=True):
    r = subprocess.run([MINIK, *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        sys.exit(f"minik {' '.join(args)}: {r.stdout}{r.stderr}")
    return r

def times(args, n=20):
    out = []
    for _ in range(n):
        t = time.monotonic()
        r = subprocess.run([MINIK, *args], capture_output=True, text=True)
        out.append((time.monotonic() - t) * 1000)
        if r.returncode != 0:
            sys.exit(f"minik {' '.join(args)}: {r.stdout}{r.stderr}")
    out.sort()
    return statistics.median(out), out[int(len(out) * 0.95) - 1], r.stdout

def main():
    if os.geteuid() != 0: sys.exit("run as root")
    subprocess.run([MINIK, "down", "--name", NAME], capture_output=True)
    spec = subprocess.run([os.path.join(ROOT, "bench/gen-spec.sh"), NAME, "10", "300"], capture_output=True, text=True, check=True).stdout
    spec += """---
apiVersion: v1
kind: Service
metadata: {name: bench}
spec:
  type: NodePort
  selector: {app: bench}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
"""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(spec)
    try:
        minik("up", "-q", f.name)
        pods = minik("get", "pods", "--name", NAME, "-o", "wide").stdout.splitlines()[1:]
        byNode = {}
        for line in pods:
            w = line.split()
            byNode.setdefault(w[6], []).append((w[0], w[5]))
        nodes = sorted(byNode)
        a, b = byNode[nodes[0]][0][0], byNode[nodes[-1]][0][0]
        state = minik("get", "nodes", "--name", NAME, "-o", "wide").stdout
        nodeIP = re.search(r"^\S+-worker5\s+\S+\s+\S+\s+\S+\s+\S+\s+(\S+)", state, re.M).group(1)
        # The proxy writes the service's 300 endpoints once they are all ready.
        for _ in range(120):
            if minik("trace", "--name", NAME, a, "svc/bench", check=False).returncode == 0: break
            time.sleep(0.5)
        rules = minik("node", "exec", "--name", NAME, nodes[0], "--", "sh", "-c", "iptables-save | wc -l").stdout.strip()
        cases = [("pod to pod, across nodes (VXLAN)", ["trace", "--name", NAME, a, b, "--port", "8080/TCP"]),
                 ("pod to the service (300 endpoints)", ["trace", "--name", NAME, a, "svc/bench"]),
                 ("external to the NodePort", ["trace", "--name", NAME, "external", f"{nodeIP}:30080"]),
                 ("pod to the service, --live", ["trace", "--name", NAME, a, "svc/bench", "--live"])]
        print(f"10 nodes, 300 pods, {rules} lines of iptables-save per node\n")
        print("| trace | p50 ms | p95 ms | hops |")
        print("|---|---|---|---|")
        for label, args in cases:
            p50, p95, out = times(args, n=10 if "--live" in args else 20)
            hops = len([l for l in out.splitlines() if re.match(r"^\d+\s", l)])
            print(f"| {label} | {p50:.0f} | {p95:.0f} | {hops} |")
    finally:
        subprocess.run([MINIK, "down", "--name", NAME], capture_output=True)
        os.unlink(f.name)

main()
