#!/usr/bin/env python3
"""Reliability and the cost of hardening (run as root after `make build`):
  - races, each run N times with random timing inside `up`'s build window, counting what
    must never happen: `up` against `down` (down reports success and something is left),
    the supervisor SIGKILLed during `up` (a pause process or namespace left after `down`),
    Ctrl-C of `up` (anything left after exit 130), `up` SIGKILLed (the cluster not served),
    `up` and a hand-started supervisor against a live cluster without its directory
    (a process killed by the refusal);
  - a re-created sandbox: from `kill -9` of its pause to a peer's HTTP request answered;
  - adoption: `minik up` of a cluster whose supervisor was killed, 3 nodes x 30 pods;
  - container logs through the FIFO: a container writing flat out (dd to stdout) against
    the same dd to /dev/null in the container;
  - `minik exec POD -- true` (pipes copied by minik).
Prints Markdown for BENCHMARKS.md. N: RUNS (default 30)."""
import os, random, signal, statistics, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import containers  # its status() reads a cluster's state from the control socket

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MINIK = os.environ.get("MINIK", os.path.join(ROOT, ".build/release/minik"))
RUNS = int(os.environ.get("RUNS", "30"))
NAME = "bhard"

SPEC = f"""kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
name: {NAME}
nodes: [{{role: control-plane}}, {{role: worker}}, {{role: worker}}]
---
apiVersion: minik.dev/v1alpha1
kind: MinikConfig
restartBackoffSeconds: 0
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 30
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec: {{containers: [{{name: c, image: netexec}}]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec: {{containers: [{{name: c, image: busybox, command: [sleep, infinity]}}]}}
"""

def run(*args, **kw):
    return subprocess.run(args, capture_output=True, text=True, **kw)

def minik(*args):
    return run(MINIK, *args)

def status():
    return containers.status(NAME)

def namespaces():
    d = "/run/netns"
    return [n for n in (os.listdir(d) if os.path.isdir(d) else []) if n.startswith(f"minik-{NAME}.")]

def supervisor():
    out = run("ps", "-eo", "pid=,stat=,args=").stdout.splitlines()
    for line in out:
        f = line.split(None, 2)
        if len(f) == 3 and not f[1].startswith("Z") and f"__supervise --name {NAME} " in f[2] + " ":
            return int(f[0])
    return None

def pauses():
    out = run("ps", "-eo", "pid=,stat=,comm=").stdout.splitlines()
    return {int(f[0]) for f in (l.split() for l in out) if len(f) == 3 and f[2] == "pause" and not f[1].startswith("Z")}

def leftovers():
    left = namespaces()
    if os.path.exists(f"/run/minik/{NAME}"):
        left.append("state directory")
    if supervisor():
        left.append("supervisor")
    return left

def clean():
    if leftovers():
        minik("down", "--name", NAME)

def spec_file():
    f = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    f.write(SPEC)
    f.close()
    return f.name

def start_up(path):
    return subprocess.Popen([MINIK, "up", "-q", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

def race_up_down(path):
    waited = lied = 0
    for _ in range(RUNS):
        up = start_up(path)
        time.sleep(random.uniform(0, 0.4))
        down = minik("down", "--name", NAME)
        up.wait()
        if down.returncode == 0:
            waited += "waiting" in down.stderr
            lied += bool(leftovers())
        clean()
    return f"| `up` and `down` at once (down after 0-400 ms) | {RUNS} | down waited for up: {waited} | down reported deleted, something left: **{lied}** |"

def race_kill_supervisor(path):
    leaked = 0
    for _ in range(RUNS):
        before = pauses()
        up = start_up(path)
        time.sleep(random.uniform(0.02, 0.35))
        pid = supervisor()
        if pid:
            os.kill(pid, signal.SIGKILL)
        up.wait()
        minik("down", "--name", NAME)
        time.sleep(0.1)
        leaked += bool(pauses() - before or leftovers())
    return f"| supervisor SIGKILLed during `up` (20-350 ms), then `down` | {RUNS} | | pause or namespace left: **{leaked}** |"

def race_interrupt(path):
    rolled = left = 0
    for _ in range(RUNS):
        before = pauses()
        up = start_up(path)
        time.sleep(random.uniform(0.01, 0.35))
        up.send_signal(signal.SIGINT)
        up.wait()
        if up.returncode == 130:
            rolled += 1
            left += bool(leftovers() or pauses() - before)
        clean()
    return f"| Ctrl-C of `up` (10-350 ms) | {RUNS} | rolled back (exit 130): {rolled}, the rest finished first | anything left after a rollback: **{left}** |"

def race_kill_up(path):
    unserved = early = 0
    n = max(RUNS // 3, 5)
    for _ in range(n):
        up = start_up(path)
        time.sleep(random.uniform(0.01, 0.3))
        up.kill()
        up.wait()
        time.sleep(0.3)
        if not supervisor() and not namespaces():
            # Killed before it started a supervisor: nothing runs; the next `up` must work
            # (it recovers the directory the killed one may have left).
            early += 1
            minik("up", "-q", path)
        ok = False
        for _ in range(100):
            r = minik("get", "pods", "--name", NAME)
            if r.returncode == 0 and r.stdout.count("Running") >= 31:
                ok = True
                break
            time.sleep(0.1)
        unserved += not ok
        clean()
    return (f"| `up` SIGKILLed (10-300 ms) | {n} | killed before its supervisor started: {early} (the next `up` then built it) "
            f"| cluster not built and served: **{unserved}** |")

def refusals(path):
    n = max(RUNS // 3, 5)
    killed = accepted = 0
    for _ in range(n):
        minik("up", "-q", path)
        st = status()
        os.kill(st["supervisorPID"], signal.SIGKILL)
        time.sleep(0.2)
        run("rm", "-rf", f"/run/minik/{NAME}")
        refused = minik("up", "-q", path).returncode != 0
        refused &= minik("__supervise", "--name", NAME, "--spec", path).returncode != 0
        accepted += not refused
        alive = all(os.path.exists(f"/proc/{p['pid']}") and open(f"/proc/{p['pid']}/stat").read().split(") ")[1][0] != "Z" for p in st["pods"])
        killed += not alive
        minik("down", "--name", NAME)
    return f"| `up` and `__supervise` against a live cluster without its directory | {n} | not refused: **{accepted}** | a process killed: **{killed}** |"

def sandbox_recreation(path):
    minik("up", "-q", path)
    try:
        st = status()
        target = next(p for p in st["pods"] if p["name"] == "web-0")
        ip = target["ip"]
        times = []
        for _ in range(10):
            pid = next(p for p in status()["pods"] if p["name"] == "web-0")["pid"]
            t0 = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            while True:
                r = minik("exec", "--name", NAME, "client", "--", "wget", "-T", "1", "-qO-", f"http://{ip}:8080/hostname")
                if r.stdout == "web-0":
                    break
            times.append((time.monotonic() - t0) * 1000)
            time.sleep(0.5)
    finally:
        minik("down", "--name", NAME)
    return f"| re-created sandbox: pause killed to a peer's request answered (10 runs, each try a `minik exec wget`) | {statistics.median(times):.0f} / {min(times):.0f} / {max(times):.0f} |"

def adoption(path):
    times = []
    for _ in range(5):
        minik("up", "-q", path)
        os.kill(status()["supervisorPID"], signal.SIGKILL)
        time.sleep(0.3)
        t0 = time.monotonic()
        r = minik("up", "-q", path)
        times.append((time.monotonic() - t0) * 1000)
        assert r.returncode == 0, r.stderr
        minik("down", "--name", NAME)
        time.sleep(1)
    return f"| adoption: `minik up` of the killed supervisor's cluster, 3 nodes, 33 pods, 33 containers, proxy resync | {statistics.median(times):.0f} / {min(times):.0f} / {max(times):.0f} |"

def logs_and_exec(path):
    minik("up", "-q", path)
    try:
        def dd(target):
            # busybox dd prints no rate: the exec's wall time, 500 MiB over it.
            t0 = time.monotonic()
            minik("exec", "--name", NAME, "client", "--", "sh", "-c", f"dd if=/dev/zero bs=64k count=8000 > {target} 2>/dev/null")
            return f"{500 / (time.monotonic() - t0):.0f} MiB/s"
        # The container's own stdout is the FIFO: write to it through /proc/1/fd/1.
        fifo = dd("/proc/1/fd/1")
        null = dd("/dev/null")
        t = []
        for _ in range(30):
            t0 = time.monotonic()
            minik("exec", "--name", NAME, "client", "--", "true")
            t.append((time.monotonic() - t0) * 1000)
    finally:
        minik("down", "--name", NAME)
    return (f"| container output through the log FIFO (dd 500 MiB) | {fifo} |\n| the same dd to /dev/null in the container | {null} |\n"
            f"| `minik exec POD -- true` (30 runs, ms) | {statistics.median(t):.1f} / {min(t):.1f} / {max(t):.1f} |")

if __name__ == "__main__":
    path = spec_file()
    clean()
    if sys.argv[1:] == ["logs"]:
        print(logs_and_exec(path))
        sys.exit(0)
    if sys.argv[1:] == ["kill-up"]:
        print(race_kill_up(path))
        sys.exit(0)
    print("| race | runs | outcome | must be 0 |\n|---|---|---|---|")
    for f in (race_up_down, race_kill_supervisor, race_interrupt, race_kill_up, refusals):
        print(f(path), flush=True)
    print("\n| measure | median / min / max (ms) |\n|---|---|")
    print(sandbox_recreation(path), flush=True)
    print(adoption(path), flush=True)
    print(logs_and_exec(path))
    os.unlink(path)
