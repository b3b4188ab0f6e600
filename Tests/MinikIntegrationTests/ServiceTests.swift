// Root integration tests of services, modelled on the Kubernetes sig-network e2e checks
// (test/e2e/network/service.go, networking.go) with netexec pods: ClusterIP over TCP and
// UDP from pods and nodes, NodePort from a host outside the cluster, an extraPortMapping
// from this machine's loopback, every endpoint reached and only ready ones, endpoints that
// follow deletions, scaling, restarts and readiness, ClientIP affinity, hairpin, REJECT
// without endpoints, the client's source address kept, flushed rules restored.
import Foundation
import MinikRuntime
import MinikSpec
import MinikSupervisor
import Testing

extension RootTests {
@Suite("Services (root)", .serialized)
struct ServiceTests {
    static let name = "it-svc"
    /// The extraPortMapping's port on 127.0.0.1: one nobody else uses (not the example's
    /// 8080, nor one another cluster up on this machine publishes), free for TCP and UDP.
    static let hostPort = PortForwarderTests.freePort(in: 39180..<39280) ?? 39180

    static let yaml = """
    kind: Cluster
    apiVersion: kind.x-k8s.io/v1alpha4
    name: \(name)
    nodes:
    - role: control-plane
      extraPortMappings: [{containerPort: 30080, hostPort: \(hostPort)}, {containerPort: 30081, hostPort: \(hostPort), protocol: UDP}]
    - role: worker
    - role: worker
    ---
    apiVersion: minik.dev/v1alpha1
    kind: MinikConfig
    restartBackoffSeconds: 0
    ---
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web}
    spec:
      replicas: 3
      selector: {matchLabels: {app: web}}
      template:
        metadata: {labels: {app: web}}
        spec:
          containers:
          - name: netexec
            image: netexec
            ports: [{name: http, containerPort: 8080}, {name: udp, containerPort: 8081, protocol: UDP}]
            readinessProbe:
              exec: {command: [sh, -c, "! test -f /tmp/unready"]}
              periodSeconds: 1
              failureThreshold: 1
    ---
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: echo}
    spec:
      replicas: 2
      selector: {matchLabels: {app: echo}}
      template:
        metadata: {labels: {app: echo}}
        spec:
          containers:
          - name: netexec
            image: netexec
            ports: [{name: http, containerPort: 8080}]
            readinessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 1}
            livenessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: client}
    spec:
      nodeName: \(name)-control-plane
      containers: [{name: c, image: netexec}]
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: web}
    spec:
      type: NodePort
      selector: {app: web}
      externalIPs: [192.0.2.10]
      ports:
      - {name: http, port: 80, targetPort: http, nodePort: 30080}
      - {name: udp, port: 81, targetPort: udp, protocol: UDP, nodePort: 30081}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: sticky}
    spec:
      selector: {app: echo}
      sessionAffinity: ClientIP
      ports: [{port: 80, targetPort: 8080}]
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: empty}
    spec:
      selector: {app: nothing}
      ports: [{port: 80, targetPort: 8080}]
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: headless}
    spec:
      clusterIP: None
      selector: {app: web}
    """

    @Test("services: ClusterIP, NodePort, externalIP, extraPortMapping; endpoints follow pods and probes; affinity, hairpin, reject, repair")
    func services() throws {
        let name = Self.name
        let spec = try SpecFile(Self.yaml)
        try claim(name)
        defer { cleanUp(name) }
        let up = minik(["up", spec.path])
        try #require(up.code == 0, "up failed: \(up.err)")

        // get svc, kubectl's columns.
        let table = minik(["get", "--name", Self.name, "svc"]).out
        #expect(table.contains("NAME") && table.contains("CLUSTER-IP") && table.contains("PORT(S)"))
        #expect(table.contains("80:30080/TCP,81:30081/UDP"))
        #expect(table.contains("192.0.2.10"))
        let svcs = try json(minik(["get", "--name", Self.name, "svc", "-o", "json"]).out)["items"] as! [[String: Any]]
        func clusterIP(_ n: String) -> String {
            let s = svcs.first { ($0["metadata"] as! [String: Any])["name"] as? String == n }
            return (s?["spec"] as? [String: Any])?["clusterIP"] as? String ?? ""
        }
        let web = clusterIP("web"), sticky = clusterIP("sticky"), empty = clusterIP("empty")
        #expect(clusterIP("headless") == "None")
        #expect((try? IPv4CIDR.parse("10.96.0.0/12").contains(#require(IPv4Address(web)))) == true)

        let pods = podIPs()
        // The Deployment's pods, in the order they were made.
        let webPods = deploymentPods(name, "web")
        try #require(webPods.count == 3, "\(webPods)")
        try #require(waitFor { readyEndpoints("web").count == 3 }, "web endpoints: \(minik(["get", "--name", Self.name, "ep", "web"]).out)")
        try #require(waitFor { readyEndpoints("sticky").count == 2 }, "sticky endpoints (httpGet probe): \(minik(["get", "--name", Self.name, "ep", "sticky"]).out)")
        #expect(Set(readyEndpoints("web")) == Set(webPods.map { "\(pods[$0]!):8080" }))
        #expect(minik(["get", "--name", Self.name, "ep", "headless"]).out.contains(pods[webPods[0]]!))

        // Pod to ClusterIP, TCP: every endpoint answers, over many connections.
        #expect(hostnames(from: "client", ip: web, port: 80, tries: 30) == Set(webPods))
        // UDP too.
        var udp = Set<String>()
        for _ in 0..<30 {
            let r = minik(["exec", "--name", Self.name, "client", "--", "/netexec", "udp", web, "81", "hostname"])
            if r.code == 0 { udp.insert(r.out.trimmed) }
        }
        #expect(udp == Set(webPods))

        // The client's own address reaches the endpoint: no SNAT inside the cluster.
        let seen = minik(["exec", "--name", Self.name, "client", "--", "/netexec", "http", web, "80", "/clientip"]).out.trimmed
        #expect(seen.hasPrefix("\(pods["client"]!):"), "clientip was \(seen)")

        // Node to ClusterIP (the node's own network namespace).
        let fromNode = minik(["node", "exec", "--name", Self.name, "\(name)-worker", "--", "curl", "-s", "-m", "3", "http://\(web)/hostname"])
        #expect(webPods.contains(fromNode.out.trimmed), "node -> ClusterIP: \(fromNode.out) \(fromNode.err)")

        // External host to the NodePort of every node, and to the externalIP.
        for ip in ["172.18.0.2", "172.18.0.3", "172.18.0.4"] {
            let r = minik(["external", "exec", "--name", Self.name, "--", "curl", "-s", "-m", "3", "http://\(ip):30080/hostname"])
            #expect(webPods.contains(r.out.trimmed), "external -> \(ip):30080: \(r.out) \(r.err)")
        }
        let viaExternalIP = minik(["external", "exec", "--name", Self.name, "--", "curl", "-s", "-m", "3", "http://192.0.2.10/hostname"])
        #expect(webPods.contains(viaExternalIP.out.trimmed), "external -> externalIP: \(viaExternalIP.out) \(viaExternalIP.err)")
        // From outside the source is masqueraded (the reply must come back the same way).
        let outside = minik(["external", "exec", "--name", Self.name, "--", "curl", "-s", "-m", "3", "http://172.18.0.3:30080/clientip"]).out.trimmed
        #expect(!outside.isEmpty && !outside.hasPrefix("172.18.255.254:"), "external clientip: \(outside)")

        // This machine's loopback to the extraPortMapping (TCP and UDP).
        let loop = shell(["curl", "-s", "-m", "3", "http://127.0.0.1:\(Self.hostPort)/hostname"])
        #expect(webPods.contains(loop.out.trimmed), "127.0.0.1:\(Self.hostPort): \(loop.out) \(loop.err)")
        let loopUDP = shell([ImageStore.located().directory + "/netexec/rootfs/netexec", "udp", "127.0.0.1", "\(Self.hostPort)", "hostname"])
        #expect(webPods.contains(loopUDP.out.trimmed), "127.0.0.1:\(Self.hostPort)/udp: \(loopUDP.out) \(loopUDP.err)")
        // ... and only there: nothing listens on another address.
        let listeners = shell(["ss", "-Hltnu"]).out.split(separator: "\n").filter { $0.contains(":\(Self.hostPort) ") }
        #expect(!listeners.isEmpty && listeners.allSatisfy { $0.contains("127.0.0.1:\(Self.hostPort)") }, "\(listeners)")

        // Hairpin: a pod reaches itself through its own service.
        var selfSeen = false
        for _ in 0..<30 where !selfSeen {
            let r = minik(["exec", "--name", Self.name, webPods[0], "--", "/netexec", "http", web, "80", "/hostname"])
            #expect(r.code == 0, "\(webPods[0]) -> its service: \(r.err)")
            if r.out.trimmed == webPods[0] { selfSeen = true }
        }
        #expect(selfSeen)

        // No endpoints: REJECT, so the client is refused at once instead of timing out.
        let refused = minik(["exec", "--name", Self.name, "client", "--", "/netexec", "http", empty, "80", "/", "--timeout-ms", "5000"])
        #expect(refused.code != 0 && refused.err.contains("refused"), "empty service: \(refused.err)")

        // Only ready endpoints: the second pod fails its readiness probe, leaves the endpoints
        // and gets no more traffic; it comes back when the probe passes again.
        #expect(minik(["exec", "--name", Self.name, webPods[1], "--", "touch", "/tmp/unready"]).code == 0)
        #expect(waitFor { !readyEndpoints("web").contains("\(pods[webPods[1]]!):8080") })
        #expect(minik(["describe", "--name", Self.name, "svc", "web"]).out.contains("Not ready"))
        #expect(minik(["get", "--name", Self.name, "pods"]).out.split(separator: "\n").contains { $0.hasPrefix("\(webPods[1]) ") && $0.contains("0/1") })
        #expect(hostnames(from: "client", ip: web, port: 80, tries: 20) == [webPods[0], webPods[2]])
        #expect(minik(["exec", "--name", Self.name, webPods[1], "--", "rm", "/tmp/unready"]).code == 0)
        #expect(waitFor { readyEndpoints("web").count == 3 })

        // A restarted container: out while it is down, back with the same IP after.
        let before = restarts(webPods[2])
        _ = minik(["exec", "--name", Self.name, "client", "--", "/netexec", "http", pods[webPods[2]]!, "8080", "/exit?code=1"])
        #expect(waitFor { restarts(webPods[2]) > before && readyEndpoints("web").contains("\(pods[webPods[2]]!):8080") })

        // ClientIP affinity pins the client to one endpoint...
        let pinned = hostnames(from: "client", ip: sticky, port: 80, tries: 12)
        #expect(pinned.count == 1, "affinity: \(pinned)")
        // ... and turning it off spreads the client again.
        let noAffinity = try SpecFile("apiVersion: v1\nkind: Service\nmetadata: {name: sticky}\nspec:\n  selector: {app: echo}\n  ports: [{port: 80, targetPort: 8080}]\n")
        let applied = minik(["apply", "--name", Self.name, "-f", noAffinity.path])
        #expect(applied.code == 0 && applied.out.contains("service/sticky configured"), "\(applied.out) \(applied.err)")
        #expect(clusterIPNow("sticky") == sticky, "the ClusterIP survives a re-apply")
        #expect(waitFor { hostnames(from: "client", ip: sticky, port: 80, tries: 12).count == 2 })

        // Endpoints follow a scaled deployment (its newest pod goes) and a deleted pod.
        #expect(minik(["scale", "--name", Self.name, "deployment", "web", "--replicas", "2"]).code == 0)
        #expect(waitFor { readyEndpoints("web").count == 2 })
        let kept = deploymentPods(name, "web")
        #expect(kept == Array(webPods.prefix(2)), "\(kept)")
        #expect(hostnames(from: "client", ip: web, port: 80, tries: 20) == Set(kept))
        let solo = try SpecFile("apiVersion: v1\nkind: Pod\nmetadata: {name: solo, labels: {app: web}}\nspec:\n  containers: [{name: c, image: netexec, ports: [{name: http, containerPort: 8080}, {name: udp, containerPort: 8081, protocol: UDP}]}]\n")
        #expect(minik(["apply", "--name", Self.name, "-f", solo.path]).code == 0)
        #expect(waitFor { readyEndpoints("web").count == 3 })
        #expect(minik(["delete", "--name", Self.name, "pod", "solo"]).code == 0)
        #expect(readyEndpoints("web").count == 2)

        // Delete a service: its chains go from every node.
        let svcChain = ProxyRules.chainName("KUBE-SVC-", "default/sticky" + "tcp")
        #expect(natRules("\(name)-worker").contains(svcChain))
        #expect(minik(["delete", "--name", Self.name, "svc", "sticky"]).code == 0)
        #expect(waitFor { !natRules("\(name)-worker").contains(svcChain) })

        // Someone flushes a node's nat table: the proxy puts it back within seconds.
        // (The repair may come before a look at the flushed table could: the proxy's own
        // count of repairs says it happened.)
        let repairs = { liveState(name)?.proxy.first { $0.node == "\(name)-worker2" }?.repairs ?? -1 }
        let repairsBefore = repairs()
        #expect(minik(["node", "exec", "--name", Self.name, "\(name)-worker2", "--", "iptables", "-t", "nat", "-F"]).code == 0)
        #expect(waitFor { repairs() > repairsBefore }, "the flushed table was not noticed")
        #expect(waitFor { natRules("\(name)-worker2").contains("-A KUBE-SERVICES -d \(web)/32") })
        let repaired = minik(["node", "exec", "--name", Self.name, "\(name)-worker2", "--", "curl", "-s", "-m", "3", "http://\(web)/hostname"])
        #expect(kept.contains(repaired.out.trimmed), "\(repaired.out)")

        // down: the rules go with the namespaces; the published port is free again.
        let pids = try ClusterState.load(cluster: name).pods.map(\.pid)
        #expect(minik(["down", "--name", name]).code == 0)
        expectNothingLeft(name, pids: pids)
        #expect(!shell(["ss", "-Hltnu"]).out.contains(":\(Self.hostPort) "))
    }

    // MARK: helpers

    func podIPs() -> [String: String] {
        guard let items = (try? json(minik(["get", "--name", Self.name, "pods", "-o", "json"]).out))?["items"] as? [[String: Any]] else { return [:] }
        var out: [String: String] = [:]
        for p in items {
            let n = (p["metadata"] as! [String: Any])["name"] as! String
            out[n] = (p["status"] as? [String: Any])?["podIP"] as? String
        }
        return out
    }

    func readyEndpoints(_ svc: String) -> [String] {
        // One object named: the object itself, as kubectl prints it.
        guard let ep = try? json(minik(["get", "--name", Self.name, "ep", svc, "-o", "json"]).out),
              let subsets = ep["subsets"] as? [[String: Any]] else { return [] }
        var out: [String] = []
        for s in subsets {
            let port = (s["ports"] as? [[String: Any]])?.first?["port"] as? Int
            guard port == 8080 || (port == nil && subsets.count == 1) else { continue }
            for a in (s["addresses"] as? [[String: Any]]) ?? [] { out.append("\(a["ip"] as! String):\(port ?? 0)") }
        }
        return out
    }

    func clusterIPNow(_ svc: String) -> String? {
        let svc = try? json(minik(["get", "--name", Self.name, "svc", svc, "-o", "json"]).out)
        return (svc?["spec"] as? [String: Any])?["clusterIP"] as? String
    }

    func hostnames(from pod: String, ip: String, port: Int, tries: Int) -> Set<String> {
        var seen = Set<String>()
        for _ in 0..<tries {
            let r = minik(["exec", "--name", Self.name, pod, "--", "/netexec", "http", ip, "\(port)", "/hostname"])
            if r.code == 0 { seen.insert(r.out.trimmed) }
        }
        return seen
    }

    func restarts(_ pod: String) -> Int {
        guard let items = (try? json(minik(["get", "--name", Self.name, "pods", "-o", "json"]).out))?["items"] as? [[String: Any]],
              let p = items.first(where: { ($0["metadata"] as! [String: Any])["name"] as? String == pod }),
              let cs = (p["status"] as? [String: Any])?["containerStatuses"] as? [[String: Any]] else { return -1 }
        return cs.first?["restartCount"] as? Int ?? -1
    }

    func natRules(_ node: String) -> String {
        minik(["node", "exec", "--name", Self.name, node, "--", "iptables-save", "-t", "nat"]).out
    }
}
}

extension String {
    var trimmed: String { trimmingCharacters(in: .whitespacesAndNewlines) }
}
