// Root integration tests of the bug lab: each example under examples/bugs/ brought up
// as it is (the symptom, shown by traffic and named by `minik trace`), then with its
// fix (the line marked "# the fix: VALUE"), and the traffic passes.
import Foundation
import MinikRuntime
import Testing

extension RootTests {
@Suite("the bug lab: each classic shows its symptom and its fix (root)", .serialized)
struct BugLabTests {
    /// An example with its cluster renamed (so a user's cluster of that name is left
    /// alone), as it is or with each "# the fix: V" applied.
    static func example(_ file: String, as name: String, fixed: Bool) throws -> (SpecFile, String) {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        var text = try String(contentsOf: root.appendingPathComponent("examples/bugs/\(file)"), encoding: .utf8)
        let original = try #require(text.firstMatch(of: /\nname: ([a-z0-9-]+)\n/)?.1)
        text = text.replacingOccurrences(of: "name: \(original)\n", with: "name: \(name)\n")
            .replacingOccurrences(of: "\(original)-worker", with: "\(name)-worker")
        if fixed {
            text = text.replacing(/(?m)^(\s*[A-Za-z]+): \S+\s+# the fix: (\S+).*$/) { m in "\(m.1): \(m.2)" }
            // A fix of several lines: "#+ " lines uncommented, the comment that says so gone.
            text = text.replacing(#/(?m)^(\s*)#\+ /#) { m in String(m.1) }
                .replacing(#/(?m)^\s*# the fix.*\n/#) { _ in "" }
        }
        return (try SpecFile(text), text)
    }

    func up(_ file: String, _ name: String, fixed: Bool) throws -> ClusterState {
        try claim(name)
        let (spec, text) = try Self.example(file, as: name, fixed: fixed)
        #expect(text.contains("# the fix") != fixed, "the fix applied: \(fixed)")
        let r = minik(["up", spec.path])
        try #require(r.code == 0, "up \(file): \(r.err)")
        return try #require(liveState(name))
    }

    func exec(_ name: String, _ pod: String, _ command: [String]) -> Result {
        minik(["exec", "--name", name, pod, "--"] + command)
    }

    /// The command's result once it succeeds (a server just started), or its last failure after 5 s.
    func eventually(_ name: String, _ pod: String, _ command: [String]) -> Result {
        var r = exec(name, pod, command)
        for _ in 0..<50 where r.code != 0 {
            usleep(100_000)
            r = exec(name, pod, command)
        }
        return r
    }

    @Test("an MTU black hole: small packets pass, large ones vanish in the underlay; the nodes told the path's MTU")
    func mtuBlackHole() throws {
        let name = "it-bug-mtu"
        defer { cleanUp(name) }
        var state = try up("mtu-black-hole.yaml", name, fixed: false)
        var server = try #require(state.pods.first { $0.name == "server" }?.ip?.description)
        let big = ["timeout", "8", "wget", "-O", "/dev/null", "http://\(server):8080/big"]
        #expect(eventually(name, "client", ["ping", "-c", "1", "-W", "1", "-s", "1000", server]).code == 0, "small packets pass")
        #expect(exec(name, "client", ["ping", "-c", "2", "-W", "1", "-s", "1400", server]).code != 0, "large ones are lost")
        #expect(exec(name, "client", big).code != 0, "a download stalls")
        let trace = minik(["trace", "--name", name, "client", "server", "--size", "1428"])
        #expect(trace.code == 1 && trace.out.contains("the underlay's MTU is 1400") && trace.out.contains("MTU black hole"), "\(trace.out)")
        _ = minik(["down", "--name", name])

        state = try up("mtu-black-hole.yaml", name, fixed: true)
        server = try #require(state.pods.first { $0.name == "server" }?.ip?.description)
        let fixed = eventually(name, "client", big)
        #expect(fixed.code == 0, "with mtu 1400 the download completes: \(fixed.err)")
        #expect(minik(["node", "exec", "--name", name, "\(name)-worker", "--", "ip", "link", "show", "flannel.1"]).out.contains("mtu 1350"))
    }

    @Test("hairpin mode off: a pod cannot reach itself through its Service, others can")
    func hairpinOff() throws {
        let name = "it-bug-hp"
        defer { cleanUp(name) }
        var state = try up("hairpin-off.yaml", name, fixed: false)
        var ip = try #require(state.services.first { $0.spec.name == "web" }?.spec.clusterIP?.description)
        let other = eventually(name, "other", ["timeout", "5", "wget", "-qO-", "http://\(ip)/"])
        #expect(other.out == "hello from server\n", "another pod reaches the service: \(other)")
        #expect(exec(name, "server", ["timeout", "3", "wget", "-qO-", "http://\(ip)/"]).code != 0, "its only endpoint does not")
        let trace = minik(["trace", "--name", name, "server", "svc/web"])
        #expect(trace.code == 1 && trace.out.contains("the port it came in on, and hairpin mode is off there"), "\(trace.out)")
        _ = minik(["down", "--name", name])

        state = try up("hairpin-off.yaml", name, fixed: true)
        ip = try #require(state.services.first { $0.spec.name == "web" }?.spec.clusterIP?.description)
        let me = eventually(name, "server", ["timeout", "3", "wget", "-qO-", "http://\(ip)/"])
        #expect(me.out == "hello from server\n", "with hairpin mode the pod reaches itself: \(me)")
        #expect(minik(["trace", "--name", name, "server", "svc/web"]).code == 0)
    }

    @Test("a NodePort masquerades the client's address; externalTrafficPolicy Local keeps it and drops on a node without an endpoint")
    func nodePortClientIP() throws {
        let name = "it-bug-sip"
        defer { cleanUp(name) }
        let state = try up("nodeport-client-ip.yaml", name, fixed: false)
        let cp = try #require(state.nodes.first { $0.role == .controlPlane }?.internalIP.description)
        let worker = try #require(state.nodes.first { $0.name == "\(name)-worker" }?.internalIP.description)
        let client = "172.18.255.254"
        func clientIP(_ node: String, _ seconds: Int = 3) -> Result {
            minik(["external", "exec", "--name", name, "--", "curl", "-s", "-m", "\(seconds)", "http://\(node):30080/clientip"])
        }
        var seen = clientIP(worker)
        for _ in 0..<50 where seen.code != 0 {
            usleep(100_000)
            seen = clientIP(worker)
        }
        #expect(seen.code == 0 && !seen.out.hasPrefix("\(client):") && seen.out.hasPrefix("10.244."), "Cluster: masqueraded on the pod's node: \(seen)")
        let across = clientIP(cp)
        #expect(across.code == 0 && across.out.hasPrefix("10.244."), "Cluster: masqueraded, from another node: \(across)")
        var trace = minik(["trace", "--name", name, "external", "\(worker):30080"])
        #expect(trace.code == 0 && trace.out.contains("masqueraded: the source \(client) becomes 10.244."), "\(trace.out)")

        // The fix, applied to the running cluster through its API.
        let (_, fixedText) = try Self.example("nodeport-client-ip.yaml", as: name, fixed: true)
        let service = try SpecFile(try #require(fixedText.components(separatedBy: "\n---\n").first { $0.contains("kind: Service") }))
        let apply = minik(["apply", "--name", name, "-f", service.path])
        try #require(apply.code == 0, "apply: \(apply.err)")
        var kept = clientIP(worker)
        for _ in 0..<50 where !kept.out.hasPrefix("\(client):") {
            usleep(100_000)
            kept = clientIP(worker)
        }
        #expect(kept.out.hasPrefix("\(client):"), "Local: the client's own address: \(kept)")
        #expect(clientIP(cp, 2).code != 0, "Local: a node without an endpoint drops it")
        trace = minik(["trace", "--name", name, "external", "\(worker):30080"])
        #expect(trace.code == 0 && !trace.out.contains("masqueraded: the source") && trace.out.contains("from \(client):"), "\(trace.out)")
        trace = minik(["trace", "--name", name, "external", "\(cp):30080"])
        #expect(trace.code == 1 && trace.out.contains("has no local endpoints"), "\(trace.out)")
        let rules = minik(["node", "exec", "--name", name, "\(name)-control-plane", "--", "iptables-save", "-t", "filter"]).out
        #expect(rules.contains("default/whoami has no local endpoints"), "\(rules)")
    }

    @Test("a NetworkPolicy that blocks DNS: the client reaches web by address, not by name; allowing the DNS pods fixes it")
    func networkPolicyBlocksDNS() throws {
        let name = "it-bug-np"
        defer { cleanUp(name) }
        _ = try up("netpol-dns.yaml", name, fixed: false)
        let byAddress = eventually(name, "client", ["timeout", "5", "wget", "-qO-", "http://10.96.0.80/"])
        #expect(byAddress.out == "hello from web\n", "the ClusterIP works: \(byAddress)")
        let byName = exec(name, "client", ["timeout", "5", "wget", "-qO-", "http://web/"])
        #expect(byName.code != 0 && byName.out.isEmpty, "the name does not resolve: \(byName)")
        let trace = minik(["trace", "--name", name, "client", "svc/kube-system/kube-dns", "--port", "53/UDP"])
        #expect(trace.code == 1 && trace.out.contains("default/client egress is not allowed by default/client-egress"), "\(trace.out)")
        _ = minik(["down", "--name", name])

        _ = try up("netpol-dns.yaml", name, fixed: true)
        let fixed = eventually(name, "client", ["timeout", "5", "wget", "-qO-", "http://web/"])
        #expect(fixed.out == "hello from web\n", "with DNS allowed: \(fixed)")
        let other = minik(["trace", "--name", name, "client", "svc/kube-system/kube-dns", "--port", "53/UDP"])
        #expect(other.code == 0 && other.out.contains("default/client-egress spec.egress[1]"), "\(other.out)")
    }

    @Test("the conntrack race of UDP DNS: A and AAAA at once from one socket clash in conntrack (resolved by this kernel); one after the other, never")
    func dnsConntrackRace() throws {
        let name = "it-bug-race"
        defer { cleanUp(name) }
        /// The racer's result line once it is done, and the worker's conntrack statistics.
        func race() throws -> (result: String, clashes: Int, failed: Int) {
            var logs = ""
            for _ in 0..<300 where !logs.hasPrefix("rounds=") {
                usleep(100_000)
                logs = minik(["logs", "--name", name, "racer"]).out
            }
            let stats = minik(["node", "exec", "--name", name, "\(name)-worker", "--", "conntrack", "-S"]).out
            func total(_ field: String) -> Int {
                stats.split(whereSeparator: \.isWhitespace).filter { $0.hasPrefix("\(field)=") }
                    .reduce(0) { $0 + (Int($1.dropFirst(field.count + 1)) ?? 0) }
            }
            return (logs.trimmed, total("clash_resolve"), total("insert_failed"))
        }
        _ = try up("dns-conntrack-race.yaml", name, fixed: false)
        let parallel = try race()
        let lost = Int(parallel.result.firstMatch(of: /lost=([0-9]+)/)?.1 ?? "") ?? -1
        #expect(parallel.result.hasPrefix("rounds=3000 ") && (0...30).contains(lost), "\(parallel.result)")
        #expect(parallel.clashes > 0, "both queries of a round met conntrack at once: \(parallel)")
        #expect(parallel.failed == 0, "this kernel resolves the clash instead of dropping a packet: \(parallel)")
        _ = minik(["down", "--name", name])

        _ = try up("dns-conntrack-race.yaml", name, fixed: true)
        let sequential = try race()
        #expect(sequential.result.hasPrefix("rounds=3000 "), "\(sequential.result)")
        #expect(sequential.clashes == 0, "one query after the other never clash: \(sequential)")
    }

    @Test("bridge netfilter off: a Service fails for a client on its endpoint's node, works from another node")
    func bridgeNetfilterOff() throws {
        let name = "it-bug-brnf"
        defer { cleanUp(name) }
        var state = try up("bridge-netfilter-off.yaml", name, fixed: false)
        var ip = try #require(state.services.first { $0.spec.name == "web" }?.spec.clusterIP?.description)
        let far = eventually(name, "far", ["timeout", "5", "wget", "-qO-", "http://\(ip)/"])
        #expect(far.out == "hello from server\n", "from another node: \(far)")
        #expect(exec(name, "near", ["timeout", "3", "wget", "-qO-", "http://\(ip)/"]).code != 0, "from the server's node")
        let trace = minik(["trace", "--name", name, "near", "svc/web"])
        #expect(trace.code == 1 && trace.out.contains("net.bridge.bridge-nf-call-iptables is 0 there: conntrack never sees it"), "\(trace.out)")
        _ = minik(["down", "--name", name])

        state = try up("bridge-netfilter-off.yaml", name, fixed: true)
        ip = try #require(state.services.first { $0.spec.name == "web" }?.spec.clusterIP?.description)
        let near = eventually(name, "near", ["timeout", "3", "wget", "-qO-", "http://\(ip)/"])
        #expect(near.out == "hello from server\n", "with bridge netfilter on: \(near)")
    }

    @Test("a stale ARP entry: a re-created sandbox with a new MAC, announced to nobody, unreachable from its peer; pinned MACs and gratuitous ARPs")
    func staleARP() throws {
        let name = "it-bug-arp"
        defer { cleanUp(name) }
        for fixed in [false, true] {
            let state = try up("stale-arp.yaml", name, fixed: fixed)
            let a = try #require(state.pods.first { $0.name == "a" })
            let ip = try #require(a.ip?.description)
            let get = ["timeout", "3", "wget", "-qO-", "http://\(ip):8080/"]
            #expect(eventually(name, "b", get).out == "hello from a\n", "b reaches a, and caches its MAC")
            let macBefore = exec(name, "a", ["cat", "/sys/class/net/eth0/address"]).out
            #expect(kill(a.pid, SIGKILL) == 0, "the sandbox dies")
            #expect(waitFor { (liveState(name)?.pods.first { $0.name == "a" }).map { $0.pid != a.pid && $0.phase == .running } == true },
                    "a new sandbox")
            let macAfter = exec(name, "a", ["cat", "/sys/class/net/eth0/address"]).out
            if fixed {
                #expect(macAfter == macBefore, "the MAC comes from the IP")
                #expect(eventually(name, "b", get).out == "hello from a\n", "the gratuitous ARP updates b at once")
            } else {
                #expect(macAfter != macBefore, "a new random MAC")
                #expect(exec(name, "b", get).code != 0 && exec(name, "b", get).code != 0, "b still sends to the old MAC")
                let trace = minik(["trace", "--name", name, "b", "a", "--port", "8080/TCP"])
                #expect(trace.code == 1 && trace.out.contains("stale: \(ip) is cached as \(macBefore.trimmingCharacters(in: .whitespacesAndNewlines))"), "\(trace.out)")
            }
            _ = minik(["down", "--name", name])
        }
    }
}
}
