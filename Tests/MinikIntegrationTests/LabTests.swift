// Root integration tests of the lab bench: faults proven with traffic (pingall, ping
// counts, a timed download through a rate limit) and cleared, pingall's matrix, `down`
// removing a cluster with faults in place; capture read back by tshark; graph rendered
// by Graphviz and checked as Mermaid.
import Foundation
import MinikRuntime
import Testing

extension RootTests {
@Suite("the lab bench: faults, pingall, capture, graph (root)", .serialized)
struct LabTests {
    /// Three nodes; a pod pinned to each (a serves a 2 MB file over HTTP).
    static func yaml(_ name: String) -> String {
        """
        kind: Cluster
        apiVersion: kind.x-k8s.io/v1alpha4
        name: \(name)
        nodes: [{role: control-plane}, {role: worker}, {role: worker}]
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: a}
        spec:
          nodeName: \(name)-worker
          containers:
          - name: c
            image: busybox
            command: [sh, -c, 'mkdir -p /www && head -c 2000000 /dev/zero > /www/big && exec httpd -f -p 8080 -h /www']
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: b}
        spec:
          nodeName: \(name)-worker2
          containers: [{name: c, image: busybox, command: [sleep, infinity]}]
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: c}
        spec:
          nodeName: \(name)-control-plane
          tolerations: [{operator: Exists}]
          containers: [{name: c, image: busybox, command: [sleep, infinity]}]
        """
    }

    /// pingall's JSON: the pairs that failed, as "a->b" with the namespace left out.
    func failedPairs(_ cluster: String) throws -> Set<String> {
        let r = minik(["pingall", "--name", cluster, "-n", "default", "-o", "json"])
        let doc = try json(r.out)
        let rows = try #require(doc["results"] as? [[String: Any]])
        #expect(rows.count == 6, "\(r.out)")
        return Set(rows.filter { ($0["ok"] as? Bool) != true }.map {
            "\(($0["from"] as? String ?? "").dropFirst(8))->\(($0["to"] as? String ?? "").dropFirst(8))"
        })
    }

    func faults(_ cluster: String) throws -> [[String: String]] {
        let r = minik(["fault", "list", "--name", cluster, "-o", "json"])
        #expect(r.code == 0, "\(r.err)")
        return try #require(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [[String: String]])
    }

    /// `ping -c count` from a node to an address: how many replies came back.
    func received(_ cluster: String, from node: String, to ip: String, count: Int) -> Int {
        let r = minik(["node", "exec", "--name", cluster, node, "--", "ping", "-q", "-c", "\(count)", "-i", "0.01", "-W", "1", ip])
        guard let m = r.out.firstMatch(of: /(\d+) received/) else { return -1 }
        return Int(m.1) ?? -1
    }

    @Test("partition, link down, loss and rate: each proven with traffic, listed from the kernel, cleared; down removes the rest")
    func faultsWithTraffic() throws {
        let name = "it-fault"
        try claim(name)
        defer { cleanUp(name) }
        let spec = try SpecFile(Self.yaml(name))
        let up = minik(["up", spec.path])
        try #require(up.code == 0, "up failed: \(up.err)")
        let state = try #require(liveState(name))
        let ip = { (pod: String) in state.pods.first { $0.name == pod }?.ip?.description ?? "" }
        let nodeIP = { (node: String) in state.nodes.first { $0.name == node }?.internalIP.description ?? "" }
        let (w1, w2, cp) = ("\(name)-worker", "\(name)-worker2", "\(name)-control-plane")

        #expect(try failedPairs(name).isEmpty)
        #expect(minik(["fault", "list", "--name", name]).out == "no faults\n")

        // Partition: the two workers' pods cannot reach each other; the control plane's can.
        #expect(minik(["fault", "partition", "--name", name, w1, w2]).code == 0)
        #expect(try failedPairs(name) == ["a->b", "b->a"])
        let part = try faults(name)
        #expect(part.filter { $0["fault"] == "partition" }.map { $0["node"] ?? "" }.sorted() == [w1, w2], "\(part)")
        #expect(part.contains { $0["node"] == w1 && $0["detail"]?.contains("dropped: 0 packets") == false }, "the drop counter moved: \(part)")
        let mangle = minik(["node", "exec", "--name", name, w1, "--", "iptables-save", "-t", "mangle"]).out
        #expect(mangle.contains("-A MINIK-FAULTS-OUT -d \(nodeIP(w2))/32 -m comment --comment \"minik fault: partition \(w1) \(w2)\" -j DROP"), "\(mangle)")
        #expect(minik(["fault", "clear", "--name", name, w2]).out.contains("cleared: partition \(w1) \(w2)"))
        #expect(try failedPairs(name).isEmpty)
        #expect(!minik(["node", "exec", "--name", name, w1, "--", "iptables-save", "-t", "mangle"]).out.contains("MINIK"), "chains and hooks removed")

        // Link down: the worker is cut off (a's pairs fail) and eth0 has no carrier; up heals.
        #expect(minik(["fault", "link", "--name", name, w1, "down"]).code == 0)
        #expect(try failedPairs(name) == ["a->b", "b->a", "a->c", "c->a"])
        #expect(minik(["node", "exec", "--name", name, w1, "--", "ip", "link", "show", "eth0"]).out.contains("NO-CARRIER"))
        #expect(try faults(name).map { $0["spec"] ?? "" } == ["link \(w1) down"])
        #expect(minik(["fault", "link", "--name", name, w1, "up"]).code == 0)
        #expect(try failedPairs(name).isEmpty)

        // Loss: 50% each way leaves a quarter of the round trips (100 pings: 25 on average).
        #expect(minik(["fault", "loss", "--name", name, w1, "50%"]).code == 0)
        let lossy = received(name, from: cp, to: nodeIP(w1), count: 100)
        #expect(lossy >= 5 && lossy <= 55, "\(lossy) of 100 came back through 50% loss each way")
        #expect(minik(["fault", "loss", "--name", name, w1, "0%"]).code != 0, "0% is not a loss")
        #expect(minik(["fault", "clear", "--name", name, w1]).code == 0)
        #expect(received(name, from: cp, to: nodeIP(w1), count: 50) == 50)

        // Rate: 8 Mbit/s each way makes 2 MB take about 2 s (it takes milliseconds without).
        let wget = ["exec", "--name", name, "b", "--", "timeout", "30", "wget", "-q", "-O", "/dev/null", "http://\(ip("a")):8080/big"]
        var started = Date()
        #expect(minik(wget).code == 0)
        let free = Date().timeIntervalSince(started)
        #expect(minik(["fault", "rate", "--name", name, w1, "8mbit"]).code == 0)
        let qdisc = minik(["node", "exec", "--name", name, w1, "--", "tc", "qdisc", "show", "dev", "eth0"]).out
        #expect(qdisc.contains("tbf") && qdisc.contains("rate 8Mbit"), "\(qdisc)")
        started = Date()
        #expect(minik(wget).code == 0)
        let shaped = Date().timeIntervalSince(started)
        #expect(shaped >= 1.5, "2 MB at 8 Mbit/s took \(shaped) s (without the limit: \(free) s)")
        #expect(try faults(name).contains { $0["fault"] == "rate" && $0["detail"]?.contains(" 0 times over") == false })

        // Bad input names what is wrong and changes nothing.
        let bad = minik(["fault", "partition", "--name", name, w1, "nope"])
        #expect(bad.code != 0 && bad.err.contains("node \"nope\" not found"), "\(bad)")
        #expect(minik(["fault", "rate", "--name", name, w1, "fast"]).err.contains("rate \"fast\""))

        // down with faults in place leaves nothing behind.
        #expect(minik(["fault", "partition", "--name", name, cp, w2]).code == 0)
        #expect(minik(["fault", "link", "--name", name, w2, "down"]).code == 0)
        let pids = state.pods.map(\.pid)
        #expect(minik(["down", "--name", name]).code == 0)
        expectNothingLeft(name, pids: pids)
    }

    @Test("capture: a cross-node ping on both nodes' eth0 and the pod's, one pcapng file, read back by tshark with the VXLAN decoded; a pipe; bad filters and targets")
    func capture() throws {
        let name = "it-capture"
        try claim(name)
        defer { cleanUp(name) }
        let spec = try SpecFile(Self.yaml(name))
        let up = minik(["up", spec.path])
        try #require(up.code == 0, "up failed: \(up.err)")
        try #require(shell(["sh", "-c", "command -v tshark"]).code == 0, "tshark is not installed (make deps installs it)")
        let state = try #require(liveState(name))
        let ipB = try #require(state.pods.first { $0.name == "b" }?.ip?.description)
        let (w1, w2) = ("\(name)-worker", "\(name)-worker2")
        let dir = try SpecFile("")
        let file = dir.dir + "/ping.pcapng"

        // One ping, a to b: request and reply on each of the three interfaces.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: minikBinary)
        p.arguments = ["capture", "--name", name, w1, "eth0", w2, "eth0", "pod/b", "-f", "icmp or udp port 8472", "-c", "6", "-w", file]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        defer { if p.isRunning { p.terminate() } }
        // It says what it captures on once every socket is bound.
        let first = String(decoding: err.fileHandleForReading.availableData, as: UTF8.self)
        #expect(first.contains("capturing on \(w1):eth0, \(w2):eth0, default/b:eth0"), "\(first)")
        #expect(minik(["exec", "--name", name, "a", "--", "ping", "-c", "1", "-W", "2", ipB]).code == 0)
        for _ in 0..<100 where p.isRunning { usleep(50_000) }
        #expect(!p.isRunning, "6 packets end the capture")
        let rest = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(rest.contains("6 packets captured") && rest.contains("0 packets dropped by kernel"), "\(rest)")

        let fields = ["-e", "frame.interface_name", "-e", "frame.p2p_dir", "-e", "vxlan.vni", "-e", "ip.src", "-e", "ip.dst", "-e", "icmp.type"]
        let read = shell(["tshark", "-r", file, "-d", "udp.port==8472,vxlan", "-T", "fields"] + fields)
        #expect(read.code == 0, "\(read.err)")
        let rows = read.out.split(separator: "\n").map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
        let ipA = try #require(state.pods.first { $0.name == "a" }?.ip?.description)
        let nodeIP = { (n: String) in state.nodes.first { $0.name == n }!.internalIP.description }
        // On the nodes' eth0: VNI 1, outer underlay addresses, the inner ICMP decoded.
        #expect(rows.contains(["\(w1):eth0", "0", "1", "\(nodeIP(w1)),\(ipA)", "\(nodeIP(w2)),\(ipB)", "8"]), "\(read.out)")
        #expect(rows.contains(["\(w2):eth0", "1", "1", "\(nodeIP(w1)),\(ipA)", "\(nodeIP(w2)),\(ipB)", "8"]), "\(read.out)")
        #expect(rows.contains(["\(w2):eth0", "0", "1", "\(nodeIP(w2)),\(ipB)", "\(nodeIP(w1)),\(ipA)", "0"]), "\(read.out)")
        // In the pod: plain ICMP, the request in, the reply out.
        #expect(rows.contains(["default/b:eth0", "1", "", ipA, ipB, "8"]) && rows.contains(["default/b:eth0", "0", "", ipB, ipA, "0"]), "\(read.out)")
        // In time order: the request leaves w1 before it reaches b.
        #expect(rows.firstIndex { $0.first == "\(w1):eth0" } ?? 9 < rows.firstIndex { $0.first == "default/b:eth0" } ?? 0, "\(read.out)")

        // To a pipe, read live by tshark.
        let piped = Process()
        piped.executableURL = URL(fileURLWithPath: "/bin/sh")
        piped.arguments = ["-c", "'\(minikBinary)' capture --name \(name) pod/b -f icmp -c 2 -w - 2>'\(dir.dir)/pipe.err' | tshark -r - -T fields -e frame.interface_name -e icmp.type 2>/dev/null"]
        let out = Pipe()
        piped.standardOutput = out
        try piped.run()
        for _ in 0..<100 where !((try? String(contentsOfFile: dir.dir + "/pipe.err", encoding: .utf8)) ?? "").contains("capturing on") {
            usleep(50_000)
        }
        #expect(minik(["exec", "--name", name, "a", "--", "ping", "-c", "1", "-W", "2", ipB]).code == 0)
        for _ in 0..<100 where piped.isRunning { usleep(50_000) }
        if piped.isRunning { piped.terminate() }
        #expect(String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) == "default/b:eth0\t8\ndefault/b:eth0\t0\n")

        let badFilter = minik(["capture", "--name", name, "pod/b", "-f", "udp port", "-c", "1", "-w", file])
        #expect(badFilter.code != 0 && badFilter.err.contains("--filter \"udp port\""), "\(badFilter)")
        let badTarget = minik(["capture", "--name", name, w1, "eth7", "-w", file])
        #expect(badTarget.code != 0 && badTarget.err.contains("\"eth7\" is not something to capture on (interfaces of node \(w1): lo, eth0"), "\(badTarget)")
    }

    @Test("graph: DOT that Graphviz renders, SVG, Mermaid that holds together, drawn from the kernel (a deleted FDB entry shows); host-gw routes")
    func graph() throws {
        let name = "it-graph"
        try claim(name)
        defer { cleanUp(name) }
        let spec = try SpecFile(Self.yaml(name) + "\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n")
        try spec.replace("metadata: {name: a}", with: "metadata: {name: a, labels: {app: web}}")
        let up = minik(["up", spec.path])
        try #require(up.code == 0, "up failed: \(up.err)")
        let (w1, w2) = ("\(name)-worker", "\(name)-worker2")

        let dot = minik(["graph", "--name", name])
        #expect(dot.code == 0, "\(dot.err)")
        for pod in ["default/a", "default/b", "default/c"] { #expect(dot.out.contains("label=\"\(pod)\\n10.244."), "\(pod) drawn") }
        #expect(dot.out.contains("label=\"svc default/web\\nClusterIP "), "the service")
        #expect(dot.out.components(separatedBy: "style=dashed, color=blue, dir=both").count - 1 == 3, "three tunnels, both ways: \(dot.out)")
        let rendered = shell(["sh", "-c", "'\(minikBinary)' graph --name \(name) | dot -Tsvg >/dev/null"])
        #expect(rendered.code == 0, "Graphviz accepts it: \(rendered.err)")
        let svg = minik(["graph", "--name", name, "-o", "svg"])
        #expect(svg.code == 0 && svg.out.contains("<svg") && svg.out.contains("default/a"), "\(svg.err)")
        let mermaid = minik(["graph", "--name", name, "-o", "mermaid"])
        #expect(mermaid.code == 0)
        #expect(MermaidCheck.problems("flowchart LR\n  a --- b\n  subgraph x [\"x\"]\n") == [
            "1 subgraphs not closed", "edge a -> b to an undeclared vertex"], "the check finds what is wrong")
        #expect(MermaidCheck.problems(mermaid.out).isEmpty, "\(MermaidCheck.problems(mermaid.out))\n\(mermaid.out)")
        #expect(mermaid.out.contains("<-.->"), "tunnels")

        // A hand-deleted FDB entry: that tunnel is one way, in red, and says why.
        let state = try #require(liveState(name))
        let w2IP = try #require(state.nodes.first { $0.name == w2 }?.internalIP.description)
        let fdb = minik(["node", "exec", "--name", name, w1, "--", "bridge", "fdb", "show", "dev", "flannel.1"]).out
        let mac = try #require(fdb.split(separator: "\n").first { $0.contains("dst \(w2IP) ") }?.split(separator: " ").first)
        #expect(minik(["node", "exec", "--name", name, w1, "--", "bridge", "fdb", "del", String(mac), "dev", "flannel.1", "dst", w2IP]).code == 0)
        let broken = minik(["graph", "--name", name]).out
        #expect(broken.contains("only: no FDB entry back\", style=dashed, color=blue, color=red"), "\(broken)")

        // host-gw: routes between the nodes' eth0 instead of tunnels.
        let hg = "it-graphgw"
        try claim(hg)
        defer { cleanUp(hg) }
        let gwSpec = try SpecFile(smallCluster(hg, pods: 0) + "---\n" + podYAML("p0", node: "\(hg)-control-plane") + "\n---\n"
                                  + podYAML("p1", node: "\(hg)-worker") + "\n---\napiVersion: minik.dev/v1alpha1\nkind: MinikConfig\nnetwork: {backend: host-gw}\n")
        let gwUp = minik(["up", gwSpec.path])
        try #require(gwUp.code == 0, "up failed: \(gwUp.err)")
        let gw = minik(["graph", "--name", hg]).out
        #expect(gw.contains("label=\"host-gw 10.244.1.0/24 via ") && gw.contains("label=\"host-gw 10.244.0.0/24 via "), "\(gw)")
        #expect(!gw.contains("VXLAN"))
        let gwTrace = try trace(hg, ["p0", "p1"])
        #expect(gwTrace.delivered && gwTrace.hops.contains { (($0["detail"] as? String) ?? "").contains(" via 172.18.0.") && ($0["object"] as? String) == "route" && ($0["interface"] as? String) == "eth0" }, "\(gwTrace.text)")
        #expect(!gwTrace.hops.contains { ($0["object"] as? String) == "vxlan" })
    }

    /// `minik trace ... -o json`: the hops (place, object, detail, failed) and the outcome.
    func trace(_ cluster: String, _ args: [String]) throws -> (hops: [[String: Any]], delivered: Bool, failure: String?, dnat: String?, text: String) {
        let r = minik(["trace", "--name", cluster] + args + ["-o", "json"])
        let doc = try json(r.out)
        let result = try #require(doc["result"] as? [String: Any], "\(r.out) \(r.err)")
        let hops = try #require(result["hops"] as? [[String: Any]])
        let delivered = result["delivered"] as? Bool ?? false
        #expect((r.code == 0) == (delivered && result["replyFailure"] == nil), "exit code follows delivery: \(r.code)")
        return (hops, delivered, result["failure"] as? String, result["dnat"] as? String, r.out)
    }

    @Test("trace: same node, across VXLAN, to a service, external to a NodePort; a hand-made DROP, a missing FDB entry, a link down, a partition and an MTU named as the failing hop")
    func traceFromKernelState() throws {
        let name = "it-trace"
        try claim(name)
        defer { cleanUp(name) }
        let extra = """

        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: d}
        spec:
          nodeName: \(name)-worker
          containers: [{name: c, image: busybox, command: [sleep, infinity]}]
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: web}
        spec:
          type: NodePort
          selector: {app: web}
          ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
        """
        let spec = try SpecFile(Self.yaml(name) + extra)
        try spec.replace("metadata: {name: a}", with: "metadata: {name: a, labels: {app: web}}")
        let up = minik(["up", spec.path])
        try #require(up.code == 0, "up failed: \(up.err)")
        let state = try #require(liveState(name))
        let ip = { (pod: String) in state.pods.first { $0.name == pod }?.ip?.description ?? "?" }
        let nodeIP = { (n: String) in state.nodes.first { $0.name == n }?.internalIP.description ?? "?" }
        let (w1, w2) = ("\(name)-worker", "\(name)-worker2")
        func has(_ hops: [[String: Any]], _ place: String, _ object: String, _ text: String) -> Bool {
            hops.contains { ($0["place"] as? String) == place && ($0["object"] as? String) == object && (($0["detail"] as? String) ?? "").contains(text) }
        }

        // Same node, same subnet: straight across cni0 at layer 2.
        let same = try trace(name, ["a", "d", "--port", "8080/TCP"])
        #expect(same.delivered && (same.hops.last?["place"] as? String) == "pod default/d", "\(same.text)")
        #expect(has(same.hops, "node \(w1)", "bridge", "forwarded at layer 2"), "\(same.text)")
        #expect(!same.hops.contains { ($0["object"] as? String) == "route" && ($0["place"] as? String) == "node \(w1)" }, "no routing in the node")

        // Across nodes over VXLAN: the route, the neighbour, the FDB entry, encapsulation, the underlay, decapsulation.
        let across = try trace(name, ["a", "b", "--port", "8080/TCP"])
        #expect(across.delivered && (across.hops.last?["place"] as? String) == "pod default/b", "\(across.text)")
        #expect(has(across.hops, "pod default/a", "route", "default via 10.244.1.1 dev eth0"), "\(across.text)")
        #expect(has(across.hops, "node \(w1)", "route", "10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink"), "\(across.text)")
        #expect(has(across.hops, "node \(w1)", "neighbour", "10.244.2.0 lladdr 02:6d:6b:00:02:01 PERMANENT"), "\(across.text)")
        #expect(has(across.hops, "node \(w1)", "fdb", "02:6d:6b:00:02:01 dst \(nodeIP(w2))"), "\(across.text)")
        #expect(has(across.hops, "node \(w1)", "vxlan", "outer \(nodeIP(w1)) -> \(nodeIP(w2)) port 8472, VNI 1"), "\(across.text)")
        #expect(has(across.hops, "underlay br-\(name)", "bridge", "\(name)-1 -> br-\(name) -> \(name)-2"), "\(across.text)")
        #expect(has(across.hops, "node \(w2)", "vxlan", "decapsulated"), "\(across.text)")
        #expect(has(across.hops, "node \(w2)", "route", "10.244.2.0/24 dev cni0"), "\(across.text)")

        // To the service: kube-proxy's DNAT, the tuple before and after.
        let svc = try trace(name, ["c", "svc/web"])
        let clusterIP = try #require(state.services.first { $0.spec.name == "web" }?.spec.clusterIP?.description)
        #expect(svc.delivered && svc.dnat?.hasPrefix("\(clusterIP):80 -> \(ip("a")):8080 in node \(name)-control-plane") == true, "\(svc.text)")
        #expect(svc.hops.contains { (($0["detail"] as? String) ?? "").contains("\"default/web cluster IP\"") && (($0["detail"] as? String) ?? "").contains("DNAT") }, "\(svc.text)")

        // From outside to the NodePort of the other worker: DNAT there, masquerade, on over VXLAN.
        let ext = try trace(name, ["external", "\(nodeIP(w2)):30080"])
        #expect(ext.delivered && ext.dnat?.hasPrefix("\(nodeIP(w2)):30080 -> \(ip("a")):8080 in node \(w2)") == true, "\(ext.text)")
        #expect(has(ext.hops, "node \(w2)", "netfilter", "masqueraded"), "\(ext.text)")
        #expect((ext.hops.last?["place"] as? String) == "pod default/a")

        // --live: one real probe traced by the kernel; the same rules as the model, along
        // the endpoint the kernel picked.
        let liveRun = minik(["trace", "--name", name, "c", "svc/web", "--live", "-o", "json"])
        #expect(liveRun.code == 0, "\(liveRun.out) \(liveRun.err)")
        let liveDoc = try #require(try json(liveRun.out)["result"] as? [String: Any])
        let live = try #require(liveDoc["live"] as? [String: Any], "\(liveRun.out)")
        let hits = try #require(live["hits"] as? [[String: Any]])
        #expect((live["probe"] as? String) == "connected" && (live["kernelOnly"] as? [Any])?.isEmpty == true
                && (live["modelOnly"] as? [Any])?.isEmpty == true, "\(live)")
        #expect(hits.contains { (($0["rule"] as? String) ?? "").contains("-j DNAT --to-destination \(ip("a")):8080") }, "the kernel's DNAT: \(hits)")
        #expect(Set(hits.compactMap { $0["place"] as? String }) == ["node \(name)-control-plane", "node \(w1)"], "traced where the packet went")
        #expect(minik(["node", "exec", "--name", name, w1, "--", "iptables-save", "-t", "raw"]).out.contains("TRACE") == false, "marking rules removed")

        // A rule the model cannot read (-m length): the kernel drops, the model does not know; --live says so.
        let blind = ["FORWARD", "-d", "\(ip("b"))/32", "-p", "tcp", "-m", "length", "--length", "0:65535", "-m", "comment", "--comment", "lab: blind spot", "-j", "DROP"]
        #expect(minik(["node", "exec", "--name", name, w2, "--", "iptables", "-I"] + blind).code == 0)
        let disagree = minik(["trace", "--name", name, "a", "b", "--port", "8080/TCP", "--live"])
        #expect(disagree.code == 1, "\(disagree.out)")
        #expect(disagree.out.contains("live: the kernel matched, the model did not: node \(w2) filter -A FORWARD -d \(ip("b"))/32 -p tcp -m length --length 0:65535 -m comment --comment \"lab: blind spot\" -j DROP"), "\(disagree.out)")
        #expect(disagree.out.contains("--length is not understood by minik trace"), "\(disagree.out)")
        #expect(minik(["node", "exec", "--name", name, w2, "--", "iptables", "-D"] + blind).code == 0)

        // A DROP rule made by hand is the failing hop, with its comment.
        let rule = ["FORWARD", "-d", "\(ip("b"))/32", "-m", "comment", "--comment", "lab: keep b alone", "-j", "DROP"]
        #expect(minik(["node", "exec", "--name", name, w2, "--", "iptables", "-I"] + rule).code == 0)
        let dropped = try trace(name, ["a", "b", "--port", "8080/TCP"])
        #expect(!dropped.delivered && dropped.failure?.contains("dropped by filter FORWARD: \"lab: keep b alone\"") == true, "\(dropped.text)")
        #expect((dropped.hops.last?["place"] as? String) == "node \(w2)" && (dropped.hops.last?["failed"] as? Bool) == true)
        #expect(minik(["node", "exec", "--name", name, w2, "--", "iptables", "-D"] + rule).code == 0)
        #expect(try trace(name, ["a", "b"]).delivered)

        // Faults: a link down, a partition.
        #expect(minik(["fault", "link", "--name", name, w2, "down"]).code == 0)
        let down = try trace(name, ["a", "b"])
        #expect(down.failure?.contains("\(name)-2, node \(w2)'s port on br-\(name), is down") == true, "\(down.text)")
        #expect(minik(["fault", "link", "--name", name, w2, "up"]).code == 0)
        #expect(minik(["fault", "partition", "--name", name, w1, w2]).code == 0)
        let part = try trace(name, ["a", "b"])
        #expect(part.failure?.contains("\"minik fault: partition \(w1) \(w2)\"") == true, "\(part.text)")
        #expect(minik(["fault", "clear", "--name", name]).code == 0)

        // Too big for the pod's MTU (1450 on VXLAN).
        let big = try trace(name, ["a", "b", "--size", "1460"])
        #expect(big.failure?.contains("eth0's MTU is 1450") == true && (big.hops.last?["place"] as? String) == "pod default/a", "\(big.text)")
        #expect(try trace(name, ["a", "b", "--size", "1450"]).delivered)

        // A deleted FDB entry: the kernel no longer knows where that VTEP is.
        let fdb = minik(["node", "exec", "--name", name, w1, "--", "bridge", "fdb", "show", "dev", "flannel.1"]).out
        let mac = try #require(fdb.split(separator: "\n").first { $0.contains("dst \(nodeIP(w2)) ") }?.split(separator: " ").first)
        #expect(minik(["node", "exec", "--name", name, w1, "--", "bridge", "fdb", "del", String(mac), "dev", "flannel.1", "dst", nodeIP(w2)]).code == 0)
        let noFDB = try trace(name, ["a", "b"])
        #expect(noFDB.failure?.contains("no FDB entry for \(mac) on flannel.1") == true, "\(noFDB.text)")
        #expect((noFDB.hops.last?["place"] as? String) == "node \(w1)")

        let bad = minik(["trace", "--name", name, "a", "nope"])
        #expect(bad.code != 0 && bad.err.contains("\"nope\" is not a running pod"), "\(bad)")
        #expect(minik(["trace", "--name", name, "a", "b", "--port", "80/XTP"]).err.contains("--port \"80/XTP\""))
    }

    @Test("dashboard: 127.0.0.1 only, a token for every request, reads only; headless Chromium draws the pods, follows the watch, traces a deep link (screenshot attached)",
          .enabled(if: shell(["sh", "-c", "command -v chromium"]).code == 0, "chromium is not installed (make deps installs it)"))
    func dashboard() throws {
        let name = "it-dash"
        try claim(name)
        defer { cleanUp(name) }
        let spec = try SpecFile(Self.yaml(name))
        let up = minik(["up", spec.path])
        try #require(up.code == 0, "up failed: \(up.err)")
        let url = minik(["dashboard", "--name", name]).out.trimmingCharacters(in: .whitespacesAndNewlines)
        let m = try #require(url.wholeMatch(of: /http:\/\/127\.0\.0\.1:(\d+)\/\?token=([0-9a-f]+)/), "\(url)")
        let base = "http://127.0.0.1:\(m.1)"
        let dir = try SpecFile("")
        let jar = dir.dir + "/cookies"
        func curl(_ args: [String]) -> Result { shell(["curl", "-s", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}"] + args) }

        // Listening on loopback only, and nothing without the token.
        let ss = shell(["ss", "-Hltn", "sport = :\(m.1)"]).out
        #expect(ss.contains("127.0.0.1:\(m.1)") && !ss.contains("0.0.0.0:\(m.1)") && !ss.contains("*:\(m.1)"), "\(ss)")
        #expect(curl(["\(base)/"]).out == "401")
        #expect(curl(["\(base)/api/v1/pods"]).out == "401")
        #expect(curl(["\(base)/?token=\(String(repeating: "0", count: m.2.count))"]).out == "401", "a wrong token")
        #expect(curl(["-c", jar, url]).out == "303", "the token traded for a cookie")
        let cookies = (try? String(contentsOfFile: jar, encoding: .utf8)) ?? ""
        #expect(cookies.contains("#HttpOnly_127.0.0.1") && cookies.contains("minik-dashboard"), "\(cookies)")
        #expect(curl(["-b", jar, "\(base)/api/v1/pods"]).out == "200")
        #expect(curl(["-b", jar, "-X", "DELETE", "\(base)/api/v1/namespaces/default/pods/a"]).out == "405", "reads only")
        #expect(curl(["-b", jar, "\(base)/minik/graph.svg"]).out == "200")
        #expect(liveState(name)?.pods.contains { $0.name == "a" } == true)

        // The watch through the dashboard sees a pod go.
        let watch = Process()
        watch.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        watch.arguments = ["-s", "-N", "-m", "8", "-b", jar, "\(base)/api/v1/pods?watch=1"]
        let events = Pipe()
        watch.standardOutput = events
        try watch.run()
        usleep(500_000)
        #expect(minik(["delete", "--name", name, "pod", "c"]).code == 0)
        watch.waitUntilExit()
        let seen = String(decoding: events.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(seen.contains("\"type\":\"DELETED\"") && seen.contains("\"name\":\"c\""), "\(seen.prefix(500))")

        // Headless Chromium: the page drawn, the pods coloured, the watch live, a traced path.
        let shot = dir.dir + "/dashboard.png"
        let flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--user-data-dir=\(dir.dir)/chromium",
                     "--window-size=1600,1000", "--virtual-time-budget=6000"]
        let page = url + "#trace=default/a,default/b,8080/TCP"
        let dom = shell(["timeout", "90", "chromium"] + flags + ["--dump-dom", page])
        #expect(dom.out.contains("<svg") && dom.out.contains("v_pod_default_a"), "the drawing: \(dom.out.prefix(300)) \(dom.err.suffix(300))")
        #expect(dom.out.contains("data-pod=\"default/a\" style=\"background:#c8f0c8\""), "a running, ready pod in green")
        #expect(dom.out.contains("class=\"live\">live<"), "the watch is connected")
        #expect(dom.out.contains("<b>delivered</b>") && dom.out.contains("veth pair: eth0 of pod default/a"), "the traced path")
        let png = shell(["timeout", "90", "chromium"] + flags + ["--screenshot=\(shot)", page])
        let image = FileManager.default.contents(atPath: shot) ?? Data()
        #expect(image.count > 10_000 && image.starts(with: [0x89, 0x50, 0x4E, 0x47]), "a PNG screenshot: \(png.err.suffix(300))")
        // `make test` writes it to .build/test-attachments/.
        Attachment.record(image, named: "dashboard.png")
    }
}

/// A structural check of Mermaid flowchart text (no Mermaid parser runs offline): the
/// header, balanced subgraphs, ids, every edge's ends declared, class lines naming
/// declared vertices.
enum MermaidCheck {
    static func problems(_ text: String) -> [String] {
        var problems: [String] = []
        let lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        if lines.first != "flowchart LR" { problems.append("no flowchart header") }
        var depth = 0
        var declared = Set<String>()
        var edges: [(String, String)] = []
        let idPattern = /^[A-Za-z_][A-Za-z0-9_]*$/
        for line in lines.dropFirst() {
            if line.hasPrefix("subgraph ") {
                depth += 1
                let id = String(line.dropFirst(9).prefix { $0 != " " })
                if id.wholeMatch(of: idPattern) == nil { problems.append("subgraph id \(id)") }
                declared.insert(id)
            } else if line == "end" {
                depth -= 1
                if depth < 0 { problems.append("end without subgraph") }
            } else if line.hasPrefix("classDef ") || line.hasPrefix("linkStyle ") {
                continue
            } else if line.hasPrefix("class ") {
                let parts = line.split(separator: " ")
                for id in parts.count > 1 ? parts[1].split(separator: ",") : [] where !declared.contains(String(id)) {
                    problems.append("class names undeclared \(id)")
                }
            } else if let m = line.firstMatch(of: /^([A-Za-z0-9_]+) (---|-\.->|<-\.->|==>)(\|"[^"]*"\|)? ([A-Za-z0-9_]+)$/) {
                edges.append((String(m.1), String(m.4)))
            } else if let m = line.firstMatch(of: /^([A-Za-z0-9_]+)(\["[^"]*"\]|\("[^"]*"\)|\(\["[^"]*"\]\)|\{\{"[^"]*"\}\})$/) {
                declared.insert(String(m.1))
            } else {
                problems.append("not understood: \(line)")
            }
        }
        if depth != 0 { problems.append("\(depth) subgraphs not closed") }
        for (a, b) in edges where !declared.contains(a) || !declared.contains(b) { problems.append("edge \(a) -> \(b) to an undeclared vertex") }
        return problems
    }
}
}
