#!/usr/bin/env python3
"""Container benchmarks (run as root after `make build`):
  - `minik up` / `down` of 3 nodes x 30 pods x 2 containers (median/min of RUNS);
  - restart latency at zero back-off: SIGKILL a container's process, then
      supervisor: from the exit being reaped to the new process started (its own clock),
      observed: from the kill to `running` seen on the control socket (polled every 0.2 ms);
  - memory: VmRSS of the pause processes and of the supervisor with 300 pods up.
Prints Markdown for BENCHMARKS.md."""
import json, os, signal, socket, statistics, subprocess, sys, tempfile, time
from datetime import datetime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MINIK = os.environ.get("MINIK", os.path.join(ROOT, ".build/release/minik"))
RUNS = int(os.environ.get("RUNS", "5"))
KILLS = int(os.environ.get("KILLS", "30"))

def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)

def spec(name, nodes, pods, containers, backoff="1"):
    env = dict(os.environ, RESTART_BACKOFF=backoff)
    text = sh(os.path.join(ROOT, "bench/gen-spec.sh"), name, str(nodes), str(pods), "vxlan", str(containers), env=env).stdout
    f = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    f.write(text)
    f.close()
    return f.name

def status(cluster):
    s = socket.socket(socket.AF_UNIX)
    s.connect(f"/run/minik/{cluster}/supervisor.sock")
    s.sendall(b'{"op":"status"}\n')
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        data += chunk
    s.close()
    return json.loads(data)["state"]

def ts(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0

def med_min(xs):
    return f"{statistics.median(xs):.0f} / {min(xs):.0f}"

def up_down():
    path = spec("bench", 3, 30, 2)
    ups, downs = [], []
    for _ in range(RUNS):
        t0 = time.monotonic(); sh(MINIK, "up", "-q", path); t1 = time.monotonic()
        st = status("bench")
        running = sum(1 for p in st["pods"] for c in p["containers"] if c["state"] == "running")
        sh(MINIK, "down", "--name", "bench"); t2 = time.monotonic()
        ups.append((t1 - t0) * 1000); downs.append((t2 - t1) * 1000)
        time.sleep(2)
    print(f"| 3 nodes, 30 pods, 2 containers each ({running} running at return) | {med_min(ups)} | {med_min(downs)} |")

def restart_latency():
    path = spec("bench", 2, 1, 1, backoff="0")
    sh(MINIK, "up", "-q", path)
    inner, outer = [], []
    try:
        for n in range(1, KILLS + 1):
            c = status("bench")["pods"][0]["containers"][0]
            t0 = time.monotonic()
            os.kill(c["pid"], signal.SIGKILL)
            while True:
                c2 = status("bench")["pods"][0]["containers"][0]
                if c2["restartCount"] >= n and c2["state"] == "running":
                    break
                time.sleep(0.0002)
            outer.append((time.monotonic() - t0) * 1000)
            inner.append((ts(c2["startedAt"]) - ts(c2["lastTermination"]["finishedAt"])) * 1000)
    finally:
        sh(MINIK, "down", "--name", "bench")
    print(f"| restart latency, reaped exit to new process (supervisor clock) | {statistics.median(inner):.2f} / {min(inner):.2f} / {max(inner):.2f} |")
    print(f"| restart latency, kill to running seen on the socket | {statistics.median(outer):.2f} / {min(outer):.2f} / {max(outer):.2f} |")

def memory():
    path = spec("bench", 10, 300, 1)
    sh(MINIK, "up", "-q", path)
    try:
        st = status("bench")
        pause = [rss_kib(p["pid"]) for p in st["pods"]]
        sup = rss_kib(st["supervisorPID"])
    finally:
        sh(MINIK, "down", "--name", "bench")
    print(f"| pause process RSS (300 pods) | {statistics.median(pause)} KiB median, {max(pause)} KiB max |")
    print(f"| supervisor RSS with 10 nodes, 300 pods, 300 containers | {sup} KiB |")

if __name__ == "__main__":
    print("| topology | minik up (ms, median / min) | minik down |\n|---|---|---|")
    up_down()
    print("\n| measure | median / min / max (ms) |\n|---|---|")
    restart_latency()
    print("\n| memory | value |\n|---|---|")
    memory()
