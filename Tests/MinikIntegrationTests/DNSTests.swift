// Root integration tests of cluster DNS, modelled on the Kubernetes e2e DNS checks
// (test/e2e/network/dns.go): from pods, with busybox nslookup against the kube-dns
// service, the records of services (A, SRV, headless with hostnames), partial names
// through the search path, pod names, PTR, ExternalName as a CNAME that becomes an A
// record when the service turns ClusterIP, names outside the cluster through an upstream,
// live updates as services and pods change, the DNS pods restarting, and resolv.conf for
// each dnsPolicy.
import Foundation
import MinikRuntime
import MinikSpec
import Testing

extension RootTests {
@Suite("Cluster DNS (root)", .serialized)
struct DNSTests {
    static let name = "it-dns"

    static let yaml = """
    kind: Cluster
    apiVersion: kind.x-k8s.io/v1alpha4
    name: \(name)
    nodes: [{role: control-plane}, {role: worker}, {role: worker}]
    ---
    apiVersion: minik.dev/v1alpha1
    kind: MinikConfig
    restartBackoffSeconds: 0
    dns:
      upstream: [10.96.200.53]
    ---
    apiVersion: v1
    kind: Namespace
    metadata: {name: other}
    ---
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web}
    spec:
      replicas: 2
      selector: {matchLabels: {app: web}}
      template:
        metadata: {labels: {app: web}}
        spec:
          containers: [{name: c, image: netexec, ports: [{name: http, containerPort: 8080}]}]
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: web}
    spec:
      selector: {app: web}
      ports: [{name: http, port: 80, targetPort: http}]
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: web2, namespace: other}
    spec:
      selector: {app: web}
      ports: [{port: 80}]
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: hl}
    spec:
      clusterIP: None
      selector: {app: pet}
      ports: [{name: http, port: 8080}]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: pet-a, labels: {app: pet}}
    spec:
      hostname: pet-a
      subdomain: hl
      containers: [{name: c, image: busybox, command: [sleep, infinity]}]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: pet-b, labels: {app: pet}}
    spec:
      hostname: pet-b
      subdomain: hl
      containers: [{name: c, image: busybox, command: [sleep, infinity]}]
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: ext}
    spec:
      type: ExternalName
      externalName: www.example.test
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: upstream, labels: {app: upstream}}
    spec:
      containers:
      - name: dns
        image: minik-dns
        args: [--domain, example.test, --record, www.example.test=192.0.2.10, --record, other.example.test=192.0.2.11]
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: upstream}
    spec:
      clusterIP: 10.96.200.53
      selector: {app: upstream}
      ports: [{name: dns, port: 53, protocol: UDP}, {name: dns-tcp, port: 53}]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: client}
    spec:
      nodeName: \(name)-worker2
      containers: [{name: c, image: busybox, command: [sleep, infinity]}]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: by-default}
    spec:
      dnsPolicy: Default
      containers: [{name: c, image: busybox, command: [sleep, infinity]}]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: by-none}
    spec:
      dnsPolicy: None
      dnsConfig:
        nameservers: [10.96.0.10]
        searches: [example.test]
        options: [{name: ndots, value: "2"}, {name: edns0}]
      containers: [{name: c, image: busybox, command: [sleep, infinity]}]
    """

    /// busybox nslookup in a pod: the addresses (or names) it printed after the server's.
    struct Lookup {
        var code: Int32
        var out: String
        /// The server said the name does not exist.
        var nxdomain: Bool { code != 0 && out.contains("NXDOMAIN") }
        /// The server answered, with nothing of the type asked (busybox exits 0, prints no address).
        var nodata: Bool { code == 0 && out.contains("Server:") && !out.contains("NXDOMAIN") && addresses.isEmpty }
        /// "Address: x" lines after the first Name: line.
        var addresses: [String] {
            var seenName = false
            var out: [String] = []
            for line in self.out.split(separator: "\n") {
                if line.hasPrefix("Name:") { seenName = true }
                if seenName, line.hasPrefix("Address:") {
                    out.append(line.dropFirst("Address:".count).trimmingCharacters(in: .whitespaces))
                }
            }
            return out
        }
    }

    func nslookup(_ name: String, type: String? = nil, from pod: String = "client") -> Lookup {
        var args = ["exec", "--name", Self.name, pod, "--", "nslookup"]
        if let type { args.append("-type=\(type)") }
        args.append(name)
        let r = minik(args)
        return Lookup(code: r.code, out: r.out + r.err)
    }

    /// The address the C library's resolver (getaddrinfo: search path, ndots) gives a
    /// name in a pod, as busybox ping prints it: "PING name (10.96.1.2): 56 data bytes".
    /// (busybox nslookup applies the search path only to names without a dot.)
    func resolve(_ name: String, from pod: String = "client") -> String? {
        let out = minik(["exec", "--name", Self.name, pod, "--", "ping", "-c", "1", "-W", "1", name]).out
        guard let first = out.split(separator: "\n").first, first.hasPrefix("PING "),
              let open = first.firstIndex(of: "("), let close = first.firstIndex(of: ")") else { return nil }
        return String(first[first.index(after: open)..<close])
    }

    /// Restarts of the DNS container in each DNS pod.
    func dnsRestarts() -> [Int] {
        let items = (try? json(minik(["get", "--name", Self.name, "pods", "-n", "kube-system", "-o", "json"]).out)["items"] as? [[String: Any]]) ?? []
        return items.compactMap { i in
            ((i["status"] as? [String: Any])?["containerStatuses"] as? [[String: Any]])?.first?["restartCount"] as? Int
        }
    }

    func clusterIP(_ svc: String, ns: String = "default") -> String {
        let items = (try? json(minik(["get", "--name", Self.name, "svc", "-n", ns, "-o", "json"]).out)["items"] as? [[String: Any]]) ?? []
        let s = items.first { ($0["metadata"] as? [String: Any])?["name"] as? String == svc }
        return (s?["spec"] as? [String: Any])?["clusterIP"] as? String ?? ""
    }

    func podIP(_ pod: String, ns: String = "default") -> String {
        let items = (try? json(minik(["get", "--name", Self.name, "pods", "-n", ns, "-o", "json"]).out)["items"] as? [[String: Any]]) ?? []
        let p = items.first { ($0["metadata"] as? [String: Any])?["name"] as? String == pod }
        return (p?["status"] as? [String: Any])?["podIP"] as? String ?? ""
    }

    /// Ready addresses of a service's endpoints.
    func readyAddresses(_ svc: String, ns: String = "default") -> [String] {
        // One object named: the object itself, as kubectl prints it.
        guard let ep = try? json(minik(["get", "--name", Self.name, "ep", svc, "-n", ns, "-o", "json"]).out),
              let subsets = ep["subsets"] as? [[String: Any]] else { return [] }
        return Array(Set(subsets.flatMap { ($0["addresses"] as? [[String: Any]] ?? []).compactMap { $0["ip"] as? String } }))
    }

    /// The pid of the DNS server in a DNS pod, from the cluster's state.
    func dnsServerPID(_ pod: String) -> Int32? {
        guard let data = FileManager.default.contents(atPath: Naming.stateFile(Self.name)),
              let state = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let pods = state["pods"] as? [[String: Any]],
              let p = pods.first(where: { $0["name"] as? String == pod && $0["namespace"] as? String == "kube-system" }),
              let containers = p["containers"] as? [[String: Any]],
              let c = containers.first(where: { $0["name"] as? String == "dns" }), let pid = c["pid"] as? Int, pid > 0
        else { return nil }
        return Int32(pid)
    }

    @Test("cluster DNS: kube-dns answers the Kubernetes DNS schema from pods, follows changes, survives restarts")
    func clusterDNS() throws {
        let name = Self.name
        let spec = try SpecFile(Self.yaml)
        try claim(name)
        defer { cleanUp(name) }
        let up = minik(["up", spec.path])
        try #require(up.code == 0, "up failed: \(up.err)")

        // The DNS pods and the kube-dns service, as kubectl shows them in kind.
        let system = minik(["get", "--name", Self.name, "pods", "-n", "kube-system"]).out
        let dnsPods = deploymentPods(Self.name, "minik-dns", namespace: "kube-system")
        try #require(dnsPods.count == 2, "\(dnsPods)")
        #expect(dnsPods.allSatisfy { system.contains($0) }, "\(system)")
        #expect(clusterIP("kube-dns", ns: "kube-system") == "10.96.0.10")
        try #require(waitFor { readyAddresses("kube-dns", ns: "kube-system").count == 2 },
                     "kube-dns endpoints: \(minik(["get", "--name", Self.name, "ep", "-n", "kube-system"]).out) \(minik(["get", "--name", Self.name, "pods", "-A"]).out)")
        try #require(waitFor { readyAddresses("upstream").count == 1 })

        // resolv.conf as kubelet writes it, per dnsPolicy.
        let resolv = minik(["exec", "--name", Self.name, "client", "--", "cat", "/etc/resolv.conf"]).out
        #expect(resolv.contains("nameserver 10.96.0.10\n"), "\(resolv)")
        #expect(resolv.contains("search default.svc.cluster.local svc.cluster.local cluster.local\n"), "\(resolv)")
        #expect(resolv.contains("options ndots:5"), "\(resolv)")
        let none = minik(["exec", "--name", Self.name, "by-none", "--", "cat", "/etc/resolv.conf"]).out
        #expect(none.contains("nameserver 10.96.0.10") && none.contains("search example.test") && none.contains("ndots:2")
                && none.contains("edns0") && !none.contains("svc.cluster.local"), "\(none)")
        let byDefault = minik(["exec", "--name", Self.name, "by-default", "--", "cat", "/etc/resolv.conf"]).out
        #expect(byDefault.contains("nameserver 10.96.200.53") && !byDefault.contains("10.96.0.10"), "\(byDefault)")

        let web = clusterIP("web"), web2 = clusterIP("web2", ns: "other")
        // A for a ClusterIP service: the full name, and partial names through the search path.
        for n in ["web.default.svc.cluster.local", "web"] {
            let l = nslookup(n)
            #expect(l.addresses == [web], "\(n): \(l.out)")
        }
        for n in ["web", "web.default", "web.default.svc", "web.default.svc.cluster.local"] {
            #expect(resolve(n) == web, "\(n)")
        }
        #expect(minik(["exec", "--name", Self.name, "client", "--", "wget", "-q", "-O", "-", "http://web.default/hostname"]).out.hasPrefix("web-"))
        #expect(resolve("web2.other") == web2)
        #expect(nslookup("web2.other.svc.cluster.local").addresses == [web2])
        // Not in the client's namespace: the resolver finds nothing (busybox: "bad address").
        let web2Here = minik(["exec", "--name", Self.name, "client", "--", "ping", "-c", "1", "-W", "1", "web2"])
        #expect(web2Here.code != 0 && web2Here.err.contains("bad address 'web2'"), "\(web2Here.out) \(web2Here.err)")
        #expect(resolve("kubernetes.default") == "10.96.0.1")
        #expect(nslookup("kubernetes.default.svc.cluster.local").addresses == ["10.96.0.1"])
        // SRV for a named port; none for an unnamed one.
        let srv = nslookup("_http._tcp.web.default.svc.cluster.local", type: "srv")
        #expect(srv.out.contains("0 100 80 web.default.svc.cluster.local"), "\(srv.out)")
        // PTR for the ClusterIP.
        let ptr = nslookup(web)
        #expect(ptr.out.contains("web.default.svc.cluster.local"), "\(ptr.out)")
        // The schema version.
        #expect(nslookup("dns-version.cluster.local", type: "txt").out.contains("1.1.0"))

        // Headless: every ready endpoint, and the pods by hostname.subdomain.
        let petA = podIP("pet-a"), petB = podIP("pet-b")
        try #require(waitFor { Set(nslookup("hl").addresses) == [petA, petB] }, "\(nslookup("hl").out)")
        #expect(resolve("pet-a.hl") == petA)
        #expect(nslookup("pet-a.hl.default.svc.cluster.local").addresses == [petA])
        #expect(nslookup("pet-b.hl.default.svc.cluster.local").addresses == [petB])
        let hlSRV = nslookup("_http._tcp.hl.default.svc.cluster.local", type: "srv").out
        #expect(hlSRV.contains("8080 pet-a.hl.default.svc.cluster.local") && hlSRV.contains("8080 pet-b.hl.default.svc.cluster.local"), "\(hlSRV)")
        #expect(nslookup(petA).out.contains("pet-a.hl.default.svc.cluster.local"))
        // The pod's own /etc/hosts carries its FQDN, as kubelet writes it.
        #expect(minik(["exec", "--name", Self.name, "pet-a", "--", "cat", "/etc/hosts"]).out.contains("pet-a.hl.default.svc.cluster.local"))

        // Pod records: a-b-c-d.<ns>.pod.<zone>, and PTR for a pod.
        let clientIP = podIP("client")
        let dashed = clientIP.replacingOccurrences(of: ".", with: "-")
        #expect(nslookup("\(dashed).default.pod.cluster.local").addresses == [clientIP])
        #expect(nslookup(clientIP).out.contains("\(dashed).default.pod.cluster.local"))

        // NXDOMAIN, and NODATA for a type an existing name does not have.
        #expect(nslookup("nothing.default.svc.cluster.local").nxdomain)
        let aaaa = nslookup("web.default.svc.cluster.local", type: "aaaa")
        #expect(aaaa.nodata, "AAAA of an existing name is NODATA: \(aaaa.out)")

        // Outside the cluster: the upstream (itself a minik-dns pod behind a service).
        #expect(nslookup("www.example.test").addresses == ["192.0.2.10"])
        // ExternalName: a CNAME, followed through the upstream...
        let cname = nslookup("ext", type: "cname")
        #expect(cname.out.contains("canonical name = www.example.test"), "\(cname.out)")
        #expect(nslookup("ext.default.svc.cluster.local").addresses == ["192.0.2.10"])
        // ... that follows an apply to another name, then to a ClusterIP service (an A record).
        let extOther = try SpecFile("apiVersion: v1\nkind: Service\nmetadata: {name: ext}\nspec: {type: ExternalName, externalName: other.example.test}\n")
        #expect(minik(["apply", "--name", Self.name, "-f", extOther.path]).code == 0)
        #expect(waitFor { nslookup("ext", type: "cname").out.contains("other.example.test") })
        let extIP = try SpecFile("apiVersion: v1\nkind: Service\nmetadata: {name: ext}\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n")
        let applied = minik(["apply", "--name", Self.name, "-f", extIP.path])
        #expect(applied.code == 0, "\(applied.err)")
        let extCluster = clusterIP("ext")
        #expect(!extCluster.isEmpty && extCluster != "None")
        #expect(waitFor { nslookup("ext").addresses == [extCluster] }, "\(nslookup("ext").out)")
        let noCNAME = nslookup("ext.default.svc.cluster.local", type: "cname")
        #expect(noCNAME.nodata && !noCNAME.out.contains("canonical name"), "\(noCNAME.out)")

        // Live: a new service resolves at once; a deleted one is gone; a deleted pod leaves
        // its headless service.
        let late = try SpecFile(svcYAML("selector: {app: web}", name: "late"))
        #expect(minik(["apply", "--name", Self.name, "-f", late.path]).code == 0)
        let lateIP = clusterIP("late")
        let started = Date()
        #expect(waitFor { nslookup("late").addresses == [lateIP] })
        let took = Date().timeIntervalSince(started)
        #expect(minik(["delete", "--name", Self.name, "svc", "web"]).code == 0)
        #expect(waitFor { nslookup("web.default.svc.cluster.local").nxdomain }, "\(nslookup("web").out)")
        #expect(minik(["delete", "--name", Self.name, "pod", "pet-b"]).code == 0)
        #expect(waitFor { nslookup("hl").addresses == [petA] })
        #expect(waitFor { nslookup("pet-b.hl.default.svc.cluster.local").nxdomain })

        // The DNS pods' servers die: they are restarted and the same service IP answers.
        let pids = dnsPods.compactMap(dnsServerPID)
        #expect(pids.count == 2)
        for pid in pids { kill(pid, SIGKILL) }
        #expect(waitFor { dnsRestarts() == [1, 1] }, "\(dnsRestarts())")
        #expect(waitFor { nslookup("late").addresses == [lateIP] }, "\(nslookup("late").out)")
        #expect(waitFor { readyAddresses("kube-dns", ns: "kube-system").count == 2 })
        #expect(minik(["exec", "--name", Self.name, "client", "--", "cat", "/etc/resolv.conf"]).out.contains("nameserver 10.96.0.10"))
        print("dns: a new service resolved \(Int(took * 1000)) ms after apply returned (including one nslookup)")

        #expect(minik(["down", "--name", name]).code == 0)
        expectNothingLeft(name, pids: pids)
    }

    @Test("cluster DNS off: no DNS pods, resolv.conf of the node's resolvers")
    func dnsDisabled() throws {
        let name = "it-nodns"
        let spec = try SpecFile("""
        kind: Cluster
        apiVersion: kind.x-k8s.io/v1alpha4
        name: \(name)
        ---
        apiVersion: minik.dev/v1alpha1
        kind: MinikConfig
        dns: {enabled: false}
        ---
        \(podYAML("p0"))
        """)
        try claim(name)
        defer { cleanUp(name) }
        let up = minik(["up", spec.path])
        try #require(up.code == 0, "up failed: \(up.err)")
        #expect(!minik(["get", "--name", name, "pods", "-A"]).out.contains("minik-dns"))
        let resolv = minik(["exec", "--name", name, "p0", "--", "cat", "/etc/resolv.conf"]).out
        #expect(resolv.contains(ResolvConf.noResolverComment) && !resolv.contains("nameserver"), "\(resolv)")
        #expect(!FileManager.default.fileExists(atPath: Naming.dnsDir(name)))
        #expect(minik(["down", "--name", name]).code == 0)
    }
}
}
