#!/usr/bin/env python3
"""The Kubernetes API (run as root after `make build`), with the cluster's own client
certificate over keep-alive HTTPS connections, as kubectl talks to it:
  - GET of one pod, and POST of a Service (and of a Pod), p50/p99, with 300 pods present;
  - LIST of 1,000 pods as JSON and as a Table (kubectl get's form), time and size;
  - watch latency: from SIGKILL of a container to the watch event that shows it not
    ready (the runtime's reaper -> the store's sync -> the watcher's connection);
  - `kubectl apply -f` of one changed Service with 10,000 Services present: kubectl's
    whole run, and the server's time for its PATCH (from kubectl -v=6), against
    `minik apply -f` of the same file;
  - `minik up` of examples/cluster.yaml and of a 300-pod cluster; with OLD_MINIK set to
    an earlier build, the same with it (before the API).
Prints Markdown for BENCHMARKS.md."""
import http.client, json, os, re, signal, ssl, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MINIK = os.environ.get("MINIK", os.path.join(ROOT, ".build/release/minik"))
OLD = os.environ.get("OLD_MINIK")
KUBECTL = os.environ.get("KUBECTL", "kubectl")
NAME = "bapi"
KCFG = f"/tmp/minik-bench-{os.getpid()}.kubeconfig"
ENV = dict(os.environ, KUBECONFIG=KCFG)
# An earlier build copied elsewhere finds the images through this.
ENV.setdefault("MINIK_IMAGES", os.path.join(ROOT, ".build/images"))


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, env=ENV, **kw)


def spec(name, workers=3, replicas=300, services=0):
    nodes = ", ".join(["{role: control-plane}"] + ["{role: worker}"] * workers)
    s = f"""kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
name: {name}
nodes: [{nodes}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: filler}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: filler}}}}
  template:
    metadata: {{labels: {{app: filler}}}}
    spec:
      containers: [{{name: c, image: busybox, command: [sleep, "3600"]}}]
"""
    for i in range(services):
        s += f"---\napiVersion: v1\nkind: Service\nmetadata: {{name: s{i}}}\nspec: {{selector: {{app: s{i}}}, ports: [{{port: 80}}]}}\n"
    return s


def up(binary, text, name):
    f = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    f.write(text)
    f.close()
    run([binary, "down", "--name", name])
    t = time.monotonic()
    r = run([binary, "up", "-q", f.name])
    took = time.monotonic() - t
    os.unlink(f.name)
    if r.returncode != 0:
        sys.exit(f"up failed: {r.stderr}")
    return took


class Client:
    def __init__(self, cluster):
        state = json.load(open(f"/run/minik/{cluster}/state.json"))
        m = re.match(r"https://([\d.]+):(\d+)", state["apiServer"])
        self.host, self.port = m.group(1), int(m.group(2))
        pki = f"/run/minik/{cluster}/pki"
        self.ctx = ssl.create_default_context(cafile=f"{pki}/ca.crt")
        self.ctx.load_cert_chain(f"{pki}/admin.crt", f"{pki}/admin.key")
        self.conn = self.connect()

    def connect(self):
        return http.client.HTTPSConnection(self.host, self.port, context=self.ctx)

    def request(self, method, path, body=None, accept="application/json", ctype="application/json"):
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = ctype
            body = json.dumps(body)
        t = time.perf_counter()
        self.conn.request(method, path, body=body, headers=headers)
        r = self.conn.getresponse()
        data = r.read()
        return time.perf_counter() - t, r.status, data


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def ms(x):
    return f"{x * 1000:.2f} ms"


def main():
    if os.geteuid() != 0:
        sys.exit("run as root")
    out = []
    cpu = open("/proc/cpuinfo").read()
    model = re.search(r"model name\s*:\s*(.*)", cpu).group(1)
    out.append(f"Machine: {os.cpu_count()} cores ({model}), kernel {os.uname().release}; {time.strftime('%Y-%m-%d')}.\n")

    # up: before and after.
    rows = []
    example = open(os.path.join(ROOT, "examples/cluster.yaml")).read()
    for label, binary in [("this build", MINIK)] + ([("before the API", OLD)] if OLD else []):
        for what, text, name in [("examples/cluster.yaml", example, "lab"), ("300 pods, 4 nodes", spec("bup"), "bup")]:
            if name == "lab" and os.path.exists("/run/minik/lab"):
                continue
            times = []
            for _ in range(5):
                times.append(up(binary, text, name))
                run([binary, "down", "--name", name])
            rows.append(f"| `up` {what} | {label} | {ms(statistics.median(times))} (min {ms(min(times))}) |")
    out.append("| what | binary | median of 5 |\n|---|---|---|")
    out += rows

    took = up(MINIK, spec(NAME, workers=5), NAME)
    c = Client(NAME)
    pods = json.loads(c.request("GET", "/api/v1/namespaces/default/pods")[2])["items"]
    assert len(pods) == 300, len(pods)
    res = []
    # GET of one object, 2000 times, over one connection.
    lat = [c.request("GET", f"/api/v1/namespaces/default/pods/{pods[i % 300]['metadata']['name']}")[0] for i in range(2000)]
    res.append(("GET one pod (300 present)", lat))
    lat = [c.request("GET", f"/api/v1/namespaces/default/pods/{pods[i % 300]['metadata']['name']}",
                     accept="application/json;as=Table;v=v1;g=meta.k8s.io")[0] for i in range(1000)]
    res.append(("GET one pod as a Table", lat))
    # Create: Services (a virtual IP and the proxy's rules in every node) and Pods (a sandbox).
    lat = []
    for i in range(200):
        t, status, data = c.request("POST", "/api/v1/namespaces/default/services",
                                    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"bench-{i}"},
                                     "spec": {"selector": {"app": f"bench-{i}"}, "ports": [{"port": 80}]}})
        assert status == 201, data
        lat.append(t)
    res.append(("POST a Service (300 pods present)", lat))
    lat = []
    for i in range(50):
        t, status, data = c.request("POST", "/api/v1/namespaces/default/pods",
                                    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"bench-pod-{i}"},
                                     "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]}})
        assert status == 201, data
        lat.append(t)
    res.append(("POST a Pod (sandbox, veth, IP, container)", lat))
    out.append("\n| request | n | p50 | p99 |\n|---|---|---|---|")
    for what, lat in res:
        out.append(f"| {what} | {len(lat)} | {ms(pct(lat, 50))} | {ms(pct(lat, 99))} |")

    # Watch latency: SIGKILL a container, time the event showing it not ready.
    state = json.load(open(f"/run/minik/{NAME}/state.json"))
    lat = []
    w = c.connect()
    for p in [p for p in state["pods"] if p["name"].startswith("filler-")][:20]:
        rv = json.loads(c.request("GET", "/api/v1/namespaces/default/pods?limit=1")[2])["metadata"]["resourceVersion"]
        w.request("GET", f"/api/v1/namespaces/default/pods?watch=true&resourceVersion={rv}&fieldSelector=metadata.name={p['name']}&timeoutSeconds=10",
                  headers={"Accept": "application/json"})
        r = w.getresponse()
        t = time.perf_counter()
        os.kill(p["containers"][0]["pid"], signal.SIGKILL)
        while True:
            line = r.fp.readline()
            if not line:
                break
            size = line.strip()
            if not size:
                continue
            chunk = r.fp.read(int(size, 16) + 2)
            done = False
            for text in chunk.split(b"\n"):
                if not text.strip():
                    continue
                cs = json.loads(text)["object"]["status"]["containerStatuses"][0]
                if not cs["ready"]:
                    lat.append(time.perf_counter() - t)
                    done = True
                    break
            if done:
                break
        w.close()
        w = c.connect()
    out.append(f"\nWatch: SIGKILL of a container to the MODIFIED event showing it not ready, {len(lat)} pods: "
               f"p50 {ms(pct(lat, 50))}, p99 {ms(pct(lat, 99))}, max {ms(max(lat))}.")

    # LIST of 1,000 pods: scale the filler Deployment to 950 (+50 bench pods).
    t, status, data = c.request("PATCH", "/apis/apps/v1/namespaces/default/deployments/filler/scale", {"spec": {"replicas": 950}},
                                ctype="application/merge-patch+json")
    assert status == 200, data
    out.append(f"\nScale 300 -> 950 pods through `deployments/filler/scale`: {t:.2f} s until the answer.")
    rows = []
    for what, accept in [("JSON", "application/json"), ("Table", "application/json;as=Table;v=v1;g=meta.k8s.io")]:
        lat, size = [], 0
        for _ in range(30):
            t, status, data = c.request("GET", "/api/v1/namespaces/default/pods", accept=accept)
            assert status == 200
            lat.append(t)
            size = len(data)
        n = len(json.loads(data).get("items" if what == "JSON" else "rows"))
        rows.append(f"| LIST {n} pods as {what} | {size / 1e6:.1f} MB | {ms(pct(lat, 50))} | {ms(pct(lat, 99))} |")
    t0 = time.monotonic()
    r = run([KUBECTL, "get", "pods", "-o", "wide"])
    rows.append(f"| `kubectl get pods -o wide` ({len(r.stdout.splitlines()) - 1} rows), whole command | | {ms(time.monotonic() - t0)} | |")
    out.append("\n| request | size | p50 | p99 |\n|---|---|---|---|")
    out += rows
    run([MINIK, "down", "--name", NAME])

    # kubectl apply of one changed Service among 10,000.
    name = "bsvc"
    took = up(MINIK, spec(name, workers=1, replicas=2, services=10000), name)
    out.append(f"\n`up` with 10,000 Services: {took:.1f} s.")
    f = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    f.write("apiVersion: v1\nkind: Service\nmetadata: {name: s42}\nspec: {selector: {app: s42}, ports: [{port: 8080}]}\n")
    f.close()
    rows = []
    for port in [8080, 8081, 8082, 8083, 8084]:
        open(f.name, "w").write(f"apiVersion: v1\nkind: Service\nmetadata: {{name: s42}}\nspec: {{selector: {{app: s42}}, ports: [{{port: {port}}}]}}\n")
        t0 = time.monotonic()
        r = run([KUBECTL, "apply", "-f", f.name, "-v=6"])
        whole = time.monotonic() - t0
        m = re.search(r"(PATCH|POST) https://\S+ (?:\d+ \w+ )?\w* ?in (\d+) milliseconds", r.stderr)
        rows.append((whole, int(m.group(2)) / 1000 if m else float("nan"), r.stdout.strip()))
    minik_times = []
    for port in [9090, 9091, 9092]:
        open(f.name, "w").write(f"apiVersion: v1\nkind: Service\nmetadata: {{name: s42}}\nspec: {{selector: {{app: s42}}, ports: [{{port: {port}}}]}}\n")
        t0 = time.monotonic()
        run([MINIK, "apply", "--name", name, "-f", f.name])
        minik_times.append(time.monotonic() - t0)
    os.unlink(f.name)
    out.append(f"\n`kubectl apply -f` of one changed Service, 10,000 present ({rows[0][2]}): whole command median "
               f"{ms(statistics.median(r[0] for r in rows))}, the server's PATCH median {ms(statistics.median(r[1] for r in rows))} "
               f"(max {ms(max(r[1] for r in rows))}); `minik apply -f` of the same: median {ms(statistics.median(minik_times))}.")
    run([MINIK, "down", "--name", name])
    print("\n".join(out))


if __name__ == "__main__":
    try:
        main()
    finally:
        # The kubeconfig `up` merged into is this script's own: gone whatever happened.
        for path in (KCFG, KCFG + ".lock"):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
