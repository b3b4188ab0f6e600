#!/usr/bin/env python3
"""minik capture under load (run as root after `make build`): a 400 MB HTTP download
from a pod on one worker to a pod on the other (VXLAN), with and without the underlay
shaped to 1 Gbit/s (`minik fault rate`), captured on four interfaces at once (both
nodes' eth0 and both pods' eth0) into /dev/null, into a file, and with 128-byte
snapshots. Counts the packets the interfaces moved (/proc/net/dev in each namespace)
against what the capture wrote and what the kernel says it dropped.
Prints Markdown for BENCHMARKS.md."""
import os, re, signal, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MINIK = os.environ.get("MINIK", os.path.join(ROOT, ".build/release/minik"))
NAME = "bcap"
SIZE = 400_000_000
SPEC = f"""kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
name: {NAME}
nodes: [{{role: control-plane}}, {{role: worker}}, {{role: worker}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: srv}}
spec:
  nodeName: {NAME}-worker
  containers:
  - name: srv
    image: busybox
    command: [sh, -c, 'mkdir -p /www && head -c {SIZE} /dev/zero > /www/big && exec httpd -f -p 8080 -h /www']
---
apiVersion: v1
kind: Pod
metadata: {{name: cli}}
spec:
  nodeName: {NAME}-worker2
  containers: [{{name: c, image: busybox, command: [sleep, infinity]}}]
"""

def minik(*args, check=True):
    r = subprocess.run([MINIK, *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        sys.exit(f"minik {' '.join(args)}: {r.stderr}")
    return r

def packets(where):
    """eth0's rx+tx packets in a node (node exec) or a pod (exec)."""
    cmd = ["node", "exec", "--name", NAME, where, "--", "cat", "/proc/net/dev"] if where.startswith(NAME) \
        else ["exec", "--name", NAME, where, "--", "cat", "/proc/net/dev"]
    for line in minik(*cmd).stdout.splitlines():
        if line.strip().startswith("eth0:"):
            f = line.split(":", 1)[1].split()
            return int(f[1]) + int(f[9])
    return 0

PLACES = [f"{NAME}-worker", f"{NAME}-worker2", "srv", "cli"]
TARGETS = [f"{NAME}-worker", "eth0", f"{NAME}-worker2", "eth0", "pod/srv", "pod/cli"]

def download(ip):
    t = time.monotonic()
    minik("exec", "--name", NAME, "cli", "--", "wget", "-q", "-O", "/dev/null", f"http://{ip}:8080/big")
    return time.monotonic() - t

def one(ip, out, snaplen=None):
    """A download under capture: (seconds, Mbit/s, interface packets, captured, dropped, file MB)."""
    before = sum(packets(p) for p in PLACES)
    args = [MINIK, "capture", "--name", NAME, *TARGETS, "-w", out]
    if snaplen: args += ["-s", str(snaplen)]
    cap = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    line = cap.stderr.readline()
    if "capturing on" not in line: sys.exit(f"capture: {line}")
    secs = download(ip) if ip else 0
    time.sleep(0.3)
    cap.send_signal(signal.SIGINT)
    err = cap.stderr.read()
    cap.wait()
    after = sum(packets(p) for p in PLACES)
    got = int(re.search(r"(\d+) packets captured", err).group(1))
    dropped = int(re.search(r"(\d+) packets dropped by kernel", err).group(1))
    size = os.path.getsize(out) / 1e6 if out != "/dev/null" else 0
    return secs, SIZE * 8 / secs / 1e6, after - before, got, dropped, size

def main():
    if os.geteuid() != 0: sys.exit("run as root")
    subprocess.run([MINIK, "down", "--name", NAME], capture_output=True)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(SPEC)
    try:
        minik("up", "-q", f.name)
        state = minik("get", "pods", "--name", NAME, "-o", "wide").stdout
        ip = re.search(r"^srv\s+\S+\s+\S+\s+\S+\s+\S+\s+(\S+)", state, re.M).group(1)
        for _ in range(120):  # the server writes its file before it listens
            if minik("exec", "--name", NAME, "cli", "--", "wget", "-q", "-O", "/dev/null", f"http://{ip}:8080/big", check=False).returncode == 0:
                break
            time.sleep(0.5)
        rows = []
        for shaped in (False, True):
            if shaped: minik("fault", "rate", "--name", NAME, f"{NAME}-worker", "1gbit")
            base = min(download(ip) for _ in range(2))
            rows.append((shaped, "no capture", base, SIZE * 8 / base / 1e6, "", "", "", ""))
            for label, out, snap in (("to /dev/null", "/dev/null", None), ("to a file", "/tmp/bcap.pcapng", None),
                                     ("-s 128 to a file", "/tmp/bcap.pcapng", 128)):
                secs, mbit, moved, got, dropped, size = one(ip, out, snap)
                rows.append((shaped, label, secs, mbit, moved, got, dropped, f"{size:.0f}" if size else ""))
            if shaped: minik("fault", "clear", "--name", NAME)
        print(f"| underlay | capture (4 interfaces) | download s | Mbit/s | packets moved | captured | dropped by kernel | file MB |")
        print("|---|---|---|---|---|---|---|---|")
        for shaped, label, secs, mbit, moved, got, dropped, size in rows:
            print(f"| {'1 Gbit/s (tbf)' if shaped else 'unshaped'} | {label} | {secs:.2f} | {mbit:.0f} | {moved} | {got} | {dropped} | {size} |")
    finally:
        subprocess.run([MINIK, "down", "--name", NAME], capture_output=True)
        os.unlink(f.name)
        if os.path.exists("/tmp/bcap.pcapng"): os.unlink("/tmp/bcap.pcapng")

main()
