#!/usr/bin/env python3
"""Rolling updates (run as root after `make build`): a Deployment of N pods on 4 workers,
its template changed with `kubectl set env`, timed until `kubectl rollout status` says it
rolled out; with the default strategy (25% / 25%) and pods ready as soon as they run, and
with a readiness probe (httpGet every second) that gates each step. Prints Markdown."""
import os, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MINIK = os.environ.get("MINIK", os.path.join(ROOT, ".build/release/minik"))
KUBECTL = os.environ.get("KUBECTL", "kubectl")
NAME = "broll"
KCFG = f"/tmp/minik-bench-{os.getpid()}.kubeconfig"
ENV = dict(os.environ, KUBECONFIG=KCFG)


def run(args):
    return subprocess.run(args, capture_output=True, text=True, env=ENV)


def cluster(replicas, probe):
    readiness = "\n        readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}" if probe else ""
    return f"""kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
name: {NAME}
nodes: [{{role: control-plane}}, {{role: worker}}, {{role: worker}}, {{role: worker}}, {{role: worker}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: roll}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: roll}}}}
  template:
    metadata: {{labels: {{app: roll}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: busybox
        command: [sh, -c, 'mkdir -p /www; echo ok > /www/index.html; exec httpd -f -p 8080 -h /www']{readiness}
"""


def main():
    if os.geteuid() != 0:
        sys.exit("run as root")
    rows = []
    try:
        for replicas, probe in [(20, False), (100, False), (300, False), (20, True), (100, True)]:
            f = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
            f.write(cluster(replicas, probe))
            f.close()
            run([MINIK, "down", "--name", NAME])
            r = run([MINIK, "up", "-q", f.name])
            os.unlink(f.name)
            if r.returncode != 0:
                sys.exit(f"up failed: {r.stderr}")
            if run([KUBECTL, "rollout", "status", "deployment", "roll", "--timeout=120s"]).returncode != 0:
                sys.exit("the first rollout did not finish")
            times = []
            for i in range(3):
                t = time.monotonic()
                run([KUBECTL, "set", "env", "deployment/roll", f"ROUND={i}"])
                s = run([KUBECTL, "rollout", "status", "deployment", "roll", "--timeout=300s"])
                if s.returncode != 0:
                    sys.exit(f"rollout failed: {s.stdout} {s.stderr}")
                times.append(time.monotonic() - t)
            rows.append(f"| {replicas} | {'httpGet every 1 s' if probe else 'none (ready when running)'} | "
                        f"{statistics.median(times):.2f} s (min {min(times):.2f} s) |")
            run([MINIK, "down", "--name", NAME])
    finally:
        run([MINIK, "down", "--name", NAME])
        if os.path.exists(KCFG):
            os.unlink(KCFG)
    print("| pods | readiness probe | `set env` to `rollout status` done, median of 3 |")
    print("|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
