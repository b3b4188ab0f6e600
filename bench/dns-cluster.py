#!/usr/bin/env python3
"""dns-cluster.py: cluster DNS as pods see it, in a running minik cluster.

  - queries per second and latency through the kube-dns service (10.96.0.10: iptables DNAT
    to the two minik-dns pods) with dnsperf, run in a worker node's namespace, with N
    services in the cluster (A of services, SRV, and search-path misses);
  - update latency: from the moment `minik apply` of a new service returns (and from when
    it was started) to the first answer for its name from 10.96.0.10, polled with dig;
    and the same for `minik delete svc` until NXDOMAIN.

Run as root after `make build` (uses .build/release). Prints Markdown.
Environment: SERVICES (default 1000), SECONDS (dnsperf run, default 10), UPDATES (default 20).
"""
import os, random, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import services as svcbench  # the same cluster (a Deployment "be" of 2 netexec pods) and Service documents

ROOT = svcbench.ROOT
MINIK = svcbench.MINIK
SERVICES = int(os.environ.get("SERVICES", "1000"))
SECONDS = int(os.environ.get("SECONDS", "10"))
UPDATES = int(os.environ.get("UPDATES", "20"))
NAME = svcbench.NAME
NODE_NS = f"minik-{NAME}.{NAME}-worker"


def run(args, check=True, **kw):
    r = subprocess.run(args, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        sys.exit(f"{' '.join(args)}: {r.stderr.strip()}")
    return r


def service(i):
    """Service s<i> with a port named http (so it has an SRV record)."""
    return svcbench.service(i, port_name="http")


def dig(name, qtype="A"):
    r = run(["ip", "netns", "exec", NODE_NS, "dig", "@10.96.0.10", "+short", "+tries=1", "+time=1", name, qtype], check=False)
    return r.stdout.strip()


def main():
    if os.geteuid() != 0:
        sys.exit("run as root")
    run([MINIK, "down", "--name", NAME], check=False)
    spec = svcbench.CLUSTER + "".join(service(i) for i in range(SERVICES))
    workdir = tempfile.TemporaryDirectory(prefix="minik-bench-dns-")  # removed when main returns
    tmp = workdir.name
    path = os.path.join(tmp, "cluster.yaml")
    with open(path, "w") as f:
        f.write(spec)
    try:
        run([MINIK, "up", "-q", path])
        for _ in range(100):
            if dig(f"s{SERVICES - 1}.default.svc.cluster.local") and dig("kube-dns.kube-system.svc.cluster.local"):
                break
            time.sleep(0.1)
        else:
            sys.exit("cluster DNS did not answer")
        # The query mix: 70% A of services, 10% SRV, 20% search-path misses (NXDOMAIN).
        rnd = random.Random(1)
        lines = []
        for _ in range(20000):
            i = rnd.randrange(SERVICES)
            x = rnd.random()
            if x < 0.7:
                lines.append(f"s{i}.default.svc.cluster.local A")
            elif x < 0.8:
                lines.append(f"_http._tcp.s{i}.default.svc.cluster.local SRV")
            else:
                lines.append(f"s{i}.default.svc.cluster.local.svc.cluster.local A")
        qfile = os.path.join(tmp, "queries")
        with open(qfile, "w") as f:
            f.write("\n".join(lines) + "\n")
        print(f"## Cluster DNS through kube-dns ({SERVICES} services, 2 minik-dns pods, dnsperf in node {NAME}-worker)\n")
        print("| load | QPS | avg latency | lost |")
        print("|---|---|---|---|")
        peak = None
        for label, extra in (("peak (-c 10 -q 200)", ["-c", "10", "-q", "200"]), ("half peak", None)):
            if extra is None:
                extra = ["-Q", str(int(peak / 2))]
            r = run(["ip", "netns", "exec", NODE_NS, "dnsperf", "-s", "10.96.0.10", "-d", qfile, "-l", str(SECONDS)] + extra)
            qps = float(next(l for l in r.stdout.splitlines() if "Queries per second" in l).split()[-1])
            avg = next(l for l in r.stdout.splitlines() if "Average Latency" in l).split()[3]
            lost = next(l for l in r.stdout.splitlines() if "Queries lost" in l).split()[2]
            peak = peak or qps
            print(f"| {label} | {qps:,.0f} | {float(avg) * 1e6:.0f} µs | {lost} |")

        # Update latency: apply a new service, poll its name.
        print(f"\n## Update latency ({UPDATES} services applied, then deleted, one at a time)\n")
        after_apply, after_start, gone = [], [], []
        for k in range(UPDATES):
            name = f"slate-{k}"
            sp = os.path.join(tmp, f"{name}.yaml")
            with open(sp, "w") as f:
                f.write(service(f"late-{k}"))
            fqdn = f"{name}.default.svc.cluster.local"
            t0 = time.monotonic()
            run([MINIK, "apply", "--name", NAME, "-f", sp])
            t1 = time.monotonic()
            while not dig(fqdn):
                pass
            t2 = time.monotonic()
            after_start.append((t2 - t0) * 1000)
            after_apply.append((t2 - t1) * 1000)
            t0 = time.monotonic()
            run([MINIK, "delete", "--name", NAME, "svc", name])
            t1 = time.monotonic()
            while dig(fqdn):
                pass
            gone.append((time.monotonic() - t1) * 1000)

        def stats(xs):
            xs = sorted(xs)
            return f"{xs[len(xs) // 2]:.0f} ms median, {xs[-1]:.0f} ms max"
        print("| change | from the command's start | from its return |")
        print("|---|---|---|")
        print(f"| apply a service, until its name answers | {stats(after_start)} | {stats(after_apply)} |")
        print(f"| delete a service, until NXDOMAIN | | {stats(gone)} |")
        print("\n(each dig is a new process in the node's namespace: about 5-10 ms of the figures are the poll itself)")
        # What a reload costs the DNS server itself (its log: parse, index, encode).
        log = run([MINIK, "logs", "--name", NAME, "-n", "kube-system", "minik-dns-0"], check=False).stdout.splitlines()
        loads = sorted(int(l.rsplit(" in ", 1)[1].split()[0]) for l in log if " reloaded: " in l)
        if loads:
            print(f"\nminik-dns reloads of the zone ({len(loads)}): {loads[len(loads) // 2]} ms median, {loads[-1]} ms max; last: "
                  + next(l for l in reversed(log) if "parsed in" in l).split("zone: ", 1)[1])
    finally:
        run([MINIK, "down", "--name", NAME], check=False)
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
