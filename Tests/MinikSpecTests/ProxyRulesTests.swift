// The service proxy's pure parts: kube-proxy-shaped rules (ProxyRules.render), chain
// names, the dispatch tree for large rule sets, the iptables-restore diff, and the
// endpoints controller. Reuses clusterHeader from SpecTests.swift.
import Foundation
@testable import MinikRuntime
import MinikSpec
import Testing

// MARK: - helpers (private: other test files have their own)

private let clusterCIDR = try! IPv4CIDR.parse("10.244.0.0/16")
private let nodePortsRule = "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"
private let reject = "-j REJECT --reject-with icmp-port-unreachable"
private let nodePortRejectsRule = "-A KUBE-EXTERNAL-SERVICES -m addrtype --dst-type LOCAL -m comment --comment \"node ports without endpoints\" -j KUBE-EXTERNAL-NODEPORTS"
private let baseNat: Set<String> = ["KUBE-MARK-MASQ", "KUBE-POSTROUTING", "MINIK-MASQ-AGENT", "KUBE-NODEPORTS", "KUBE-SERVICES"]

private func addr(_ s: String) -> IPv4Address { IPv4Address(s)! }

/// "ip:port", or "ip:port@node" for an endpoint whose pod runs on node.
private func endpoint(_ s: String) -> ProxyServicePort.Endpoint {
    let at = s.split(separator: "@", omittingEmptySubsequences: false)
    let parts = at[0].split(separator: ":")
    return .init(ip: addr(String(parts[0])), port: Int(parts[1])!, node: at.count > 1 ? String(at[1]) : "")
}

private func web(_ endpoints: [String], nodePort: Int? = nil, externalIPs: [String] = [], affinity: Int? = nil,
                 name: String = "web", portName: String = "http", proto: String = "TCP", ip: String = "10.96.0.50", port: Int = 80) -> ProxyServicePort {
    ProxyServicePort(namespace: "default", service: name, portName: portName, proto: proto, clusterIP: addr(ip), port: port,
                     nodePort: nodePort, externalIPs: externalIPs.map(addr), affinitySeconds: affinity, endpoints: endpoints.map(endpoint))
}

private func render(_ ports: [ProxyServicePort]) -> Ruleset { ProxyRules.render(ports, clusterCIDR: clusterCIDR) }

/// The only chain of `chains` whose name starts with `prefix`.
private func single(_ chains: [String: [String]], _ prefix: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) throws -> String {
    let names = chains.keys.filter { $0.hasPrefix(prefix) }
    try #require(names.count == 1, "chains \(prefix)*: \(names.sorted())", sourceLocation: sourceLocation)
    return names[0]
}

/// The KUBE-SEP chain that DNATs to `ep`.
private func sep(_ rs: Ruleset, _ ep: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) throws -> String {
    let names = rs.nat.filter { $0.key.hasPrefix("KUBE-SEP-") && $0.value.contains { $0.hasSuffix("--to-destination \(ep)") } }.map(\.key)
    try #require(names.count == 1, "SEP chains for \(ep): \(names)", sourceLocation: sourceLocation)
    return names[0]
}

private func isChainName(_ name: String, prefix: String) -> Bool {
    let alphabet = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    return name.hasPrefix(prefix) && name.count == prefix.count + 16 && name.dropFirst(prefix.count).allSatisfy(alphabet.contains)
}

// MARK: a tiny iptables evaluator

private struct Rule {
    var chain = ""
    var dest: IPv4CIDR?
    var proto: String?
    var dport: ClosedRange<Int>?
    var local = false
    var target = ""
}

/// A rule's matches, with the quoted comments left out.
private func parse(_ rule: String) -> Rule {
    let unquoted = rule.split(separator: "\"", omittingEmptySubsequences: false).enumerated().filter { $0.offset % 2 == 0 }.map(\.element).joined(separator: " ")
    let w = unquoted.split(separator: " ").map(String.init)
    var r = Rule()
    var i = 0
    while i < w.count {
        let next = i + 1 < w.count ? w[i + 1] : ""
        switch w[i] {
        case "-A": r.chain = next
        case "-d": r.dest = next.contains("/") ? try? IPv4CIDR.parse(next) : IPv4CIDR(network: addr(next), prefix: 32)
        case "-p": r.proto = next
        case "--dport":
            let b = next.split(separator: ":").map { Int($0)! }
            r.dport = b[0]...(b.count > 1 ? b[1] : b[0])
        case "--dst-type": r.local = next == "LOCAL"
        case "-j": r.target = next
        default: break
        }
        i += 1
    }
    return r
}

/// Follows a packet for `dest` (nil: a local address of the node) through `chains` from
/// `chain` with iptables' jump and return: returns the first rule that sends it somewhere
/// other than a dispatch chain, and counts every rule looked at.
private func walk(_ chains: [String: [String]], from chain: String, dest: IPv4Address?, proto: String, dport: Int,
                  visited: inout Int) -> String? {
    guard let rules = chains[chain] else {
        Issue.record("jump to a missing chain \(chain)")
        return nil
    }
    for rule in rules {
        visited += 1
        let r = parse(rule)
        if r.chain != chain { Issue.record("rule of \(r.chain) in chain \(chain): \(rule)") }
        if let d = r.dest { guard let dest, d.contains(dest) else { continue } }
        if let p = r.proto, p != proto { continue }
        if let range = r.dport, !range.contains(dport) { continue }
        if r.local && dest != nil { continue } // a service address, not one of the node's
        if r.target.hasPrefix("KUBE-SVCS-") || r.target.hasPrefix("KUBE-NPS-") || r.target.hasPrefix("KUBE-XNPS-") {
            if let hit = walk(chains, from: r.target, dest: dest, proto: proto, dport: dport, visited: &visited) { return hit }
            continue
        }
        return rule
    }
    return nil
}

/// 2,000-ish service ports with cluster IPs spread over 10.96.0.0/12 (distinct: an odd
/// multiplier is a bijection on 20 bits).
private func spread(_ n: Int, nodePorts: Bool = false) -> [ProxyServicePort] {
    (0..<n).map { i in
        let offset = (UInt32(i) &* 2_654_435_761) & 0xFFFFF
        let ip = IPv4Address(0x0A60_0000 + offset)
        let np = nodePorts ? 30000 + (i * 1381) % 2768 : nil // 1381 is prime to 2768: distinct
        let proto = nodePorts && i % 5 == 0 ? "UDP" : "TCP"
        let eps = i % 4 == 3 ? [] : [ProxyServicePort.Endpoint(ip: IPv4Address(10, 244, UInt8(i % 200), UInt8(2 + i % 250)), port: 8080)]
        return ProxyServicePort(namespace: "ns\(i % 7)", service: "svc\(i)", portName: "p", proto: proto, clusterIP: ip,
                                port: 80 + i % 3, nodePort: np, endpoints: eps)
    }
}

// MARK: an iptables-restore --noflush simulator

private struct Tables: Equatable {
    var nat: [String: [String]] = [:]
    var filter: [String: [String]] = [:]
    /// Rules appended to built-in chains, as "table -A CHAIN ...".
    var hooks: [String] = []
}

private let builtins: Set<String> = ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"]

/// Applies restore input as iptables-restore --noflush would, recording an issue for
/// anything the kernel would refuse (undeclared chains, deleting a chain in use).
private func restore(_ text: String, onto t: inout Tables, sourceLocation: Testing.SourceLocation = #_sourceLocation) {
    #expect(text.hasSuffix("COMMIT\n"), sourceLocation: sourceLocation)
    var table: String?
    var chains: [String: [String]] = [:]
    for line in text.split(separator: "\n").map(String.init) {
        if line.hasPrefix("*") {
            #expect(table == nil, "\(line) before COMMIT", sourceLocation: sourceLocation)
            table = String(line.dropFirst())
            chains = table == "nat" ? t.nat : t.filter
            continue
        }
        guard let tb = table else {
            Issue.record("line outside a table: \(line)", sourceLocation: sourceLocation)
            continue
        }
        if line == "COMMIT" {
            if tb == "nat" { t.nat = chains } else { t.filter = chains }
            table = nil
            continue
        }
        let words = line.split(separator: " ").map(String.init)
        if line.hasPrefix(":") {
            let name = String(words[0].dropFirst())
            #expect(line == ":\(name) - [0:0]", sourceLocation: sourceLocation)
            chains[name] = [] // declared: created, or flushed
        } else if words.first == "-A", words.count > 2 {
            if builtins.contains(words[1]) {
                t.hooks.append("\(tb) \(line)")
            } else if chains[words[1]] == nil {
                Issue.record("rule for an undeclared chain: \(line)", sourceLocation: sourceLocation)
            } else {
                chains[words[1]]!.append(line)
            }
        } else if words.first == "-X", words.count == 2 {
            let name = words[1]
            #expect(chains[name] == [], "-X of a chain that is missing or not empty: \(name)", sourceLocation: sourceLocation)
            let users = chains.values.joined().filter { $0.hasSuffix("-j \(name)") || $0.contains("-j \(name) ") }
            #expect(users.isEmpty, "-X \(name) while still used by \(users)", sourceLocation: sourceLocation)
            chains[name] = nil
        } else {
            Issue.record("unexpected restore line: \(line)", sourceLocation: sourceLocation)
        }
    }
    #expect(table == nil, "a table without COMMIT", sourceLocation: sourceLocation)
}

// MARK: - rendering

@Suite("Proxy rules: rendering")
struct ProxyRenderTests {
    @Test func oneServiceWithTwoEndpointsIsWrittenAsKubeProxyWritesIt() throws {
        let rs = render([web(["10.244.1.2:8080", "10.244.2.3:8080"])])
        let svc = try single(rs.nat, "KUBE-SVC-")
        let a = try sep(rs, "10.244.1.2:8080"), b = try sep(rs, "10.244.2.3:8080")
        #expect(rs.nat["KUBE-SERVICES"] == [
            "-A KUBE-SERVICES -d 10.96.0.50/32 -p tcp -m comment --comment \"default/web:http cluster IP\" -m tcp --dport 80 -j \(svc)",
            nodePortsRule,
        ])
        #expect(rs.nat[svc] == [
            "-A \(svc) ! -s 10.244.0.0/16 -d 10.96.0.50/32 -p tcp -m comment --comment \"default/web:http cluster IP\" -m tcp --dport 80 -j KUBE-MARK-MASQ",
            "-A \(svc) -m comment --comment \"default/web:http -> 10.244.1.2:8080\" -m statistic --mode random --probability 0.5000000000 -j \(a)",
            "-A \(svc) -m comment --comment \"default/web:http -> 10.244.2.3:8080\" -j \(b)",
        ])
        #expect(rs.nat[a] == [
            "-A \(a) -s 10.244.1.2/32 -m comment --comment \"default/web:http\" -j KUBE-MARK-MASQ",
            "-A \(a) -p tcp -m comment --comment \"default/web:http\" -m tcp -j DNAT --to-destination 10.244.1.2:8080",
        ])
        #expect(rs.nat[b] == [
            "-A \(b) -s 10.244.2.3/32 -m comment --comment \"default/web:http\" -j KUBE-MARK-MASQ",
            "-A \(b) -p tcp -m comment --comment \"default/web:http\" -m tcp -j DNAT --to-destination 10.244.2.3:8080",
        ])
        #expect(Set(rs.nat.keys) == baseNat.union([svc, a, b]))
        #expect(rs.nat["KUBE-NODEPORTS"] == [])
        #expect(rs.nat["KUBE-MARK-MASQ"] == ["-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000"])
        #expect(rs.nat["KUBE-POSTROUTING"] == [
            "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
            "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000",
            "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully",
        ])
        #expect(rs.nat["MINIK-MASQ-AGENT"]?.first?.hasPrefix("-A MINIK-MASQ-AGENT -d 10.244.0.0/16 ") == true)
        #expect(rs.nat["MINIK-MASQ-AGENT"]?.last?.hasPrefix("-A MINIK-MASQ-AGENT -s 10.244.0.0/16 ") == true)
        #expect(rs.nat["MINIK-MASQ-AGENT"]?.last?.hasSuffix("-j MASQUERADE") == true)
        #expect(rs.filter["KUBE-SERVICES"] == [])
        #expect(rs.filter["KUBE-EXTERNAL-SERVICES"] == [])
        #expect(rs.filter["KUBE-FORWARD"]?.count == 3)
        // MINIK-NETPOL, empty without network policies, is there for FORWARD's first rule.
        #expect(Set(rs.filter.keys) == ["KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD", "MINIK-NETPOL"])
        #expect(rs.filter["MINIK-NETPOL"] == [])
        #expect(rs.chainCount == 12)
        #expect(rs.ruleCount == 2 + 3 + 2 + 2 + 1 + 3 + 2 + 3)
        // Every chain a hook or a rule jumps to exists in its table.
        for (table, chains) in [("nat", rs.nat), ("filter", rs.filter)] {
            for h in Ruleset.hooks where h.table == table { #expect(chains[parse(h.rule).target] != nil, "\(h)") }
            for rule in chains.values.joined() {
                let t = parse(rule).target
                if t.hasPrefix("KUBE-") || t.hasPrefix("MINIK-") { #expect(chains[t] != nil, "\(rule)") }
            }
        }
    }

    @Test func threeEndpointsSpreadOneThirdThenOneHalf() throws {
        let rs = render([web(["10.244.1.2:8080", "10.244.2.3:8080", "10.244.3.4:8080"])])
        let svc = try single(rs.nat, "KUBE-SVC-")
        let rules = try #require(rs.nat[svc])
        #expect(rules.count == 4)
        let spread = rules.dropFirst().map { r in r.range(of: "--probability ").map { String(r[$0.upperBound...].prefix(12)) } }
        #expect(spread == ["0.3333333333", "0.5000000000", nil])
        let targets = rules.dropFirst().map { parse($0).target }
        let seps = try [sep(rs, "10.244.1.2:8080"), sep(rs, "10.244.2.3:8080"), sep(rs, "10.244.3.4:8080")]
        #expect(targets == seps)
        #expect(ProxyRules.probability(4) == "0.2500000000")
        // One endpoint: no statistic at all.
        let one = render([web(["10.244.1.2:8080"])])
        let oneSVC = try single(one.nat, "KUBE-SVC-")
        #expect(one.nat[oneSVC]?.contains { $0.contains("statistic") } == false)
    }

    @Test func aServiceWithoutEndpointsIsRejectedInFilterAndAbsentFromNat() throws {
        let rs = render([web([], nodePort: 30080, externalIPs: ["192.0.2.10"])])
        #expect(rs.filter["KUBE-SERVICES"] == [
            "-A KUBE-SERVICES -d 10.96.0.50/32 -p tcp -m comment --comment \"default/web:http has no endpoints\" -m tcp --dport 80 \(reject)",
        ])
        #expect(rs.filter["KUBE-EXTERNAL-SERVICES"] == [
            "-A KUBE-EXTERNAL-SERVICES -d 192.0.2.10/32 -p tcp -m comment --comment \"default/web:http has no endpoints\" -m tcp --dport 80 \(reject)",
            nodePortRejectsRule,
        ])
        #expect(rs.filter["KUBE-EXTERNAL-NODEPORTS"] == [
            "-A KUBE-EXTERNAL-NODEPORTS -p tcp -m comment --comment \"default/web:http has no endpoints\" -m tcp --dport 30080 \(reject)",
        ])
        #expect(rs.nat["KUBE-SERVICES"] == [nodePortsRule])
        #expect(rs.nat["KUBE-NODEPORTS"] == [])
        #expect(Set(rs.nat.keys) == baseNat)
        #expect(!rs.nat.values.joined().contains { $0.contains("default/web") })
    }

    @Test func nodePortGoesThroughAnExternalChain() throws {
        let rs = render([web(["10.244.1.2:8080"], nodePort: 30080)])
        let svc = try single(rs.nat, "KUBE-SVC-"), ext = try single(rs.nat, "KUBE-EXT-")
        #expect(rs.nat["KUBE-NODEPORTS"] == ["-A KUBE-NODEPORTS -p tcp -m comment --comment \"default/web:http\" -m tcp --dport 30080 -j \(ext)"])
        #expect(rs.nat[ext] == [
            "-A \(ext) -m comment --comment \"masquerade traffic for default/web:http external destinations\" -j KUBE-MARK-MASQ",
            "-A \(ext) -j \(svc)",
        ])
        #expect(rs.nat["KUBE-SERVICES"]?.count == 2)
        #expect(rs.nat["KUBE-SERVICES"]?.last == nodePortsRule)
        #expect(rs.filter["KUBE-EXTERNAL-SERVICES"] == [])
        // Without node ports or external IPs there is no external chain.
        #expect(render([web(["10.244.1.2:8080"])]).nat.keys.contains { $0.hasPrefix("KUBE-EXT-") } == false)
    }

    @Test func externalIPsJumpToTheExternalChain() throws {
        let rs = render([web(["10.244.1.2:8080"], externalIPs: ["192.0.2.10"])])
        let svc = try single(rs.nat, "KUBE-SVC-"), ext = try single(rs.nat, "KUBE-EXT-")
        #expect(rs.nat["KUBE-SERVICES"] == [
            "-A KUBE-SERVICES -d 10.96.0.50/32 -p tcp -m comment --comment \"default/web:http cluster IP\" -m tcp --dport 80 -j \(svc)",
            "-A KUBE-SERVICES -d 192.0.2.10/32 -p tcp -m comment --comment \"default/web:http external IP\" -m tcp --dport 80 -j \(ext)",
            nodePortsRule,
        ])
        #expect(rs.nat[ext]?.last == "-A \(ext) -j \(svc)")
        #expect(rs.nat["KUBE-NODEPORTS"] == [])
    }

    @Test func clientIPAffinityUsesRecent() throws {
        let rs = render([web(["10.244.1.2:8080", "10.244.2.3:8080"], affinity: 600)])
        let svc = try single(rs.nat, "KUBE-SVC-")
        let a = try sep(rs, "10.244.1.2:8080"), b = try sep(rs, "10.244.2.3:8080")
        #expect(rs.nat[svc] == [
            "-A \(svc) ! -s 10.244.0.0/16 -d 10.96.0.50/32 -p tcp -m comment --comment \"default/web:http cluster IP\" -m tcp --dport 80 -j KUBE-MARK-MASQ",
            "-A \(svc) -m comment --comment \"default/web:http -> 10.244.1.2:8080\" -m recent --rcheck --seconds 600 --reap --name \(a) --mask 255.255.255.255 --rsource -j \(a)",
            "-A \(svc) -m comment --comment \"default/web:http -> 10.244.2.3:8080\" -m recent --rcheck --seconds 600 --reap --name \(b) --mask 255.255.255.255 --rsource -j \(b)",
            "-A \(svc) -m comment --comment \"default/web:http -> 10.244.1.2:8080\" -m statistic --mode random --probability 0.5000000000 -j \(a)",
            "-A \(svc) -m comment --comment \"default/web:http -> 10.244.2.3:8080\" -j \(b)",
        ])
        #expect(rs.nat[a] == [
            "-A \(a) -s 10.244.1.2/32 -m comment --comment \"default/web:http\" -j KUBE-MARK-MASQ",
            "-A \(a) -p tcp -m comment --comment \"default/web:http\" -m recent --set --name \(a) --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.244.1.2:8080",
        ])
    }

    @Test func udpAndUnnamedPorts() throws {
        let rs = render([web(["10.244.1.2:53"], portName: "", proto: "UDP", port: 53)])
        let svc = try single(rs.nat, "KUBE-SVC-")
        #expect(rs.nat["KUBE-SERVICES"]?.first == "-A KUBE-SERVICES -d 10.96.0.50/32 -p udp -m comment --comment \"default/web cluster IP\" -m udp --dport 53 -j \(svc)")
        let dnsSEP = try sep(rs, "10.244.1.2:53")
        #expect(rs.nat[dnsSEP]?.last?.contains("-p udp -m comment --comment \"default/web\" -m udp -j DNAT") == true)
        // The same port number over TCP and UDP: two services to the proxy, two chains.
        let both = render([web(["10.244.1.2:53"], portName: "dns", proto: "UDP", port: 53), web(["10.244.1.2:53"], portName: "dns-tcp", proto: "TCP", port: 53)])
        #expect(both.nat.keys.filter { $0.hasPrefix("KUBE-SVC-") }.count == 2)
        #expect(both.nat.keys.filter { $0.hasPrefix("KUBE-SEP-") }.count == 2)
    }

    @Test func renderingIsStableAndOrderFree() {
        let ports = spread(200)
        #expect(render(ports) == render(ports))
        #expect(render(ports) == render(Array(ports.reversed())))
        #expect(render(ports) != render(Array(ports.dropLast())))
    }
}

// MARK: - traffic policies

@Suite("Proxy rules: externalTrafficPolicy and internalTrafficPolicy Local")
struct ProxyTrafficPolicyTests {
    /// web with endpoints "ip:port@node".
    func local(_ eps: [String], nodePort: Int? = 30080, externalIPs: [String] = [], externalLocal: Bool = true, internalLocal: Bool = false) -> ProxyServicePort {
        var sp = web([], nodePort: nodePort, externalIPs: externalIPs)
        sp.endpoints = eps.map(endpoint)
        sp.externalLocal = externalLocal
        sp.internalLocal = internalLocal
        return sp
    }

    @Test func aNodeWithALocalEndpointKeepsTheClientAddress() throws {
        let sp = local(["10.244.1.2:8080@lab-worker", "10.244.2.3:8080@lab-worker2"])
        #expect(sp.dependsOnNode)
        let rs = ProxyRules.render([sp], clusterCIDR: clusterCIDR, node: "lab-worker")
        let svc = try single(rs.nat, "KUBE-SVC-"), svl = try single(rs.nat, "KUBE-SVL-"), ext = try single(rs.nat, "KUBE-EXT-")
        let a = try sep(rs, "10.244.1.2:8080")
        // kube-proxy's EXT chain for Local: pods and the node itself go the Cluster way
        // (the node masqueraded), everything else to this node's endpoints, unmasqueraded.
        #expect(rs.nat[ext] == [
            "-A \(ext) -s 10.244.0.0/16 -m comment --comment \"pod traffic for default/web:http external destinations\" -j \(svc)",
            "-A \(ext) -m comment --comment \"masquerade LOCAL traffic for default/web:http external destinations\" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ",
            "-A \(ext) -m comment --comment \"route LOCAL traffic for default/web:http external destinations\" -m addrtype --src-type LOCAL -j \(svc)",
            "-A \(ext) -j \(svl)",
        ])
        #expect(rs.nat[svl] == ["-A \(svl) -m comment --comment \"default/web:http -> 10.244.1.2:8080\" -j \(a)"])
        #expect(!rs.nat[ext]!.contains { $0.hasSuffix("external destinations\" -j KUBE-MARK-MASQ") && !$0.contains("LOCAL") })
        // Cluster IP traffic still goes to every endpoint, and the cluster IP masquerade
        // rule stays in the SVC chain.
        #expect(rs.nat[svc]?.count == 3)
        #expect(rs.nat[svc]?.first?.contains("KUBE-MARK-MASQ") == true)
        #expect(rs.nat["KUBE-SERVICES"]?.first?.hasSuffix("-j \(svc)") == true)
        #expect(rs.filter["KUBE-EXTERNAL-SERVICES"] == [])
    }

    @Test func aNodeWithoutLocalEndpointsDropsOutsideTrafficButNotPods() throws {
        let sp = local(["10.244.2.3:8080@lab-worker2"], externalIPs: ["192.0.2.10"])
        let rs = ProxyRules.render([sp], clusterCIDR: clusterCIDR, node: "lab-worker")
        let svc = try single(rs.nat, "KUBE-SVC-"), ext = try single(rs.nat, "KUBE-EXT-")
        #expect(!rs.nat.keys.contains { $0.hasPrefix("KUBE-SVL-") })
        // The short circuit for pods and the node stays; nothing else falls through.
        #expect(rs.nat[ext]?.count == 3)
        #expect(rs.nat[ext]?.last?.hasSuffix("-j \(svc)") == true)
        #expect(rs.filter["KUBE-EXTERNAL-SERVICES"] == [
            "-A KUBE-EXTERNAL-SERVICES -d 192.0.2.10/32 -p tcp -m comment --comment \"default/web:http has no local endpoints\" -m tcp --dport 80 -j DROP",
            nodePortRejectsRule,
        ])
        #expect(rs.filter["KUBE-EXTERNAL-NODEPORTS"] == [
            "-A KUBE-EXTERNAL-NODEPORTS -p tcp -m comment --comment \"default/web:http has no local endpoints\" -m tcp --dport 30080 -j DROP",
        ])
        // The node ports and external IPs still lead to the EXT chain (pods use them too).
        #expect(rs.nat["KUBE-NODEPORTS"] == ["-A KUBE-NODEPORTS -p tcp -m comment --comment \"default/web:http\" -m tcp --dport 30080 -j \(ext)"])
        // The other node is the one with the endpoint: no DROP there.
        let other = ProxyRules.render([sp], clusterCIDR: clusterCIDR, node: "lab-worker2")
        #expect(other.filter["KUBE-EXTERNAL-SERVICES"] == [])
        #expect(other != rs)
    }

    @Test func internalLocalSendsClusterIPTrafficToTheSendersNodeOnly() throws {
        let sp = local(["10.244.1.2:8080@lab-worker", "10.244.2.3:8080@lab-worker2"], nodePort: nil, externalLocal: false, internalLocal: true)
        #expect(sp.dependsOnNode)
        let rs = ProxyRules.render([sp], clusterCIDR: clusterCIDR, node: "lab-worker")
        let svl = try single(rs.nat, "KUBE-SVL-")
        #expect(!rs.nat.keys.contains { $0.hasPrefix("KUBE-SVC-") || $0.hasPrefix("KUBE-EXT-") })
        #expect(rs.nat["KUBE-SERVICES"]?.first?.hasSuffix("-j \(svl)") == true)
        #expect(rs.nat[svl]?.first?.contains("! -s 10.244.0.0/16 -d 10.96.0.50/32") == true)
        #expect(rs.nat[svl]?.count == 2)
        // Only SEP chains that a chain jumps to are written.
        #expect(rs.nat.keys.filter { $0.hasPrefix("KUBE-SEP-") }.count == 1)
        // A node without any: DROP in filter KUBE-SERVICES, nothing in nat.
        let none = ProxyRules.render([sp], clusterCIDR: clusterCIDR, node: "lab-control-plane")
        #expect(none.filter["KUBE-SERVICES"] == [
            "-A KUBE-SERVICES -d 10.96.0.50/32 -p tcp -m comment --comment \"default/web:http has no local endpoints\" -m tcp --dport 80 -j DROP",
        ])
        #expect(none.nat["KUBE-SERVICES"] == [nodePortsRule])
    }

    @Test func clusterPolicyIsTheSameOnEveryNodeAndAsBefore() throws {
        var sp = local(["10.244.1.2:8080@lab-worker"], externalLocal: false)
        #expect(!sp.dependsOnNode)
        #expect(ProxyRules.render([sp], clusterCIDR: clusterCIDR, node: "lab-worker") == ProxyRules.render([sp], clusterCIDR: clusterCIDR, node: "x"))
        // Local on a service nobody reaches from outside changes nothing.
        sp = local(["10.244.1.2:8080@lab-worker"], nodePort: nil)
        #expect(!sp.dependsOnNode)
        #expect(ProxyRules.render([sp], clusterCIDR: clusterCIDR, node: "lab-worker") == render([web(["10.244.1.2:8080"])]))
    }

    @Test func anAddressThatIsNoPodsIsLocalNowhere() throws {
        let sp = local(["10.244.1.2:8080@"])
        let rs = ProxyRules.render([sp], clusterCIDR: clusterCIDR, node: "")
        #expect(!rs.nat.keys.contains { $0.hasPrefix("KUBE-SVL-") })
        #expect(rs.filter["KUBE-EXTERNAL-NODEPORTS"]?.count == 1)
    }
}

// MARK: - chain names

@Suite("Proxy rules: chain names")
struct ChainNameTests {
    @Test func prefixAndSixteenBase32Characters() {
        for prefix in ["KUBE-SVC-", "KUBE-SEP-", "KUBE-EXT-"] {
            let n = ProxyRules.chainName(prefix, "default/web:httptcp")
            #expect(isChainName(n, prefix: prefix), "\(n)")
            #expect(n.count <= 28)
            #expect(n == ProxyRules.chainName(prefix, "default/web:httptcp"))
        }
        #expect(ProxyRules.chainName("KUBE-SVC-", "").count == 25)
        #expect(isChainName(ProxyRules.chainName("KUBE-SVC-", String(repeating: "x", count: 500)), prefix: "KUBE-SVC-"))
    }

    @Test func differentInputsGiveDifferentNames() {
        #expect(ProxyRules.chainName("KUBE-SVC-", "a") != ProxyRules.chainName("KUBE-SVC-", "b"))
        #expect(ProxyRules.chainName("KUBE-SVC-", "ab") != ProxyRules.chainName("KUBE-SVC-", "ba"))
        #expect(ProxyRules.chainName("KUBE-SVC-", "default/web:httptcp") != ProxyRules.chainName("KUBE-SVC-", "default/web:httpudp"))
        var seen = Set<String>()
        for ns in 0..<20 {
            for svc in 0..<500 {
                seen.insert(ProxyRules.chainName("KUBE-SVC-", "ns\(ns)/svc\(svc):httptcp"))
            }
        }
        #expect(seen.count == 10_000)
        // The last characters vary too (they come from the second hash).
        #expect(Set(seen.map { $0.suffix(4) }).count > 1000)
    }

    @Test func everyRenderedChainIsAValidIptablesName() {
        let rs = render(spread(2000) + spread(300, nodePorts: true).map { var p = $0; p.service += "-np"; return p })
        for name in Array(rs.nat.keys) + Array(rs.filter.keys) {
            #expect(name.count <= 28, "\(name)")
            #expect(name.allSatisfy { $0.isASCII && ($0.isUppercase || $0.isNumber || $0 == "-") }, "\(name)")
        }
    }
}

// MARK: - dispatch tree

@Suite("Proxy rules: dispatch tree")
struct DispatchTreeTests {
    @Test func upToFanOutPortsTheChainIsFlat() {
        let rs = render(spread(ProxyRules.fanOut))
        let withEndpoints = spread(ProxyRules.fanOut).filter { !$0.endpoints.isEmpty }.count
        #expect(rs.nat["KUBE-SERVICES"]?.count == withEndpoints + 1)
        #expect(rs.nat["KUBE-SERVICES"]?.last == nodePortsRule)
        #expect(!rs.nat.keys.contains { $0.hasPrefix("KUBE-SVCS-") })
        let all = (0..<ProxyRules.fanOut).map { web(["10.244.1.2:8080"], name: "s\($0)", ip: "10.96.1.\($0 + 2)") }
        let flat = render(all)
        #expect(flat.nat["KUBE-SERVICES"]?.count == ProxyRules.fanOut + 1)
        #expect(!flat.nat.keys.contains { $0.hasPrefix("KUBE-SVCS-") })
        // One more splits it.
        let split = render(all + [web(["10.244.1.2:8080"], name: "extra", ip: "10.96.1.200")])
        #expect(split.nat.keys.contains { $0.hasPrefix("KUBE-SVCS-") })
        #expect((split.nat["KUBE-SERVICES"]?.count ?? 99) <= 17)
        #expect(split.nat["KUBE-SERVICES"]?.last == nodePortsRule)
    }

    @Test func twoThousandServicesAreFoundInAFewDozenRules() throws {
        let ports = spread(2000)
        let rs = render(ports)
        let bound = max(16, ProxyRules.fanOut) + 1
        for table in [rs.nat, rs.filter] {
            let dispatch = table.filter { $0.key == "KUBE-SERVICES" || $0.key.hasPrefix("KUBE-SVCS-") }
            #expect(dispatch.count > 1)
            for (name, rules) in dispatch { #expect(rules.count <= bound, "\(name) has \(rules.count) rules") }
        }
        #expect(rs.nat["KUBE-SERVICES"]?.last == nodePortsRule)
        // Every service rule is in the tree exactly once.
        let leaves = rs.nat.filter { $0.key == "KUBE-SERVICES" || $0.key.hasPrefix("KUBE-SVCS-") }.values.joined()
            .filter { $0.contains("-j KUBE-SVC-") }
        let served = ports.filter { !$0.endpoints.isEmpty }
        #expect(leaves.count == served.count)
        var worst = 0
        for sp in ports {
            var visited = 0
            let hit = walk(rs.nat, from: "KUBE-SERVICES", dest: sp.clusterIP, proto: "tcp", dport: sp.port, visited: &visited)
            worst = max(worst, visited)
            if sp.endpoints.isEmpty {
                #expect(hit == nil, "\(sp.portKey): \(hit ?? "")")
                var v = 0
                let rejected = walk(rs.filter, from: "KUBE-SERVICES", dest: sp.clusterIP, proto: "tcp", dport: sp.port, visited: &v)
                #expect(rejected?.contains("--comment \"\(sp.portKey) has no endpoints\"") == true, "\(sp.portKey): \(rejected ?? "not found")")
                #expect(rejected?.hasSuffix(reject) == true)
                #expect(v < 100)
            } else {
                let rule = try #require(hit, "\(sp.portKey) at \(sp.clusterIP):\(sp.port) not reached")
                #expect(rule.contains("-d \(sp.clusterIP)/32 -p tcp -m comment --comment \"\(sp.portKey) cluster IP\" -m tcp --dport \(sp.port) -j KUBE-SVC-"), "\(rule)")
                // ...and the chain it jumps to is that service's.
                let svc = parse(rule).target
                #expect(rs.nat[svc]?.first?.contains("-d \(sp.clusterIP)/32") == true)
            }
        }
        #expect(worst < 100, "a lookup walked \(worst) rules; a flat chain would be \(ports.count)")
        // A port or an address that no service has is not sent anywhere.
        var v = 0
        #expect(walk(rs.nat, from: "KUBE-SERVICES", dest: ports[0].clusterIP, proto: "tcp", dport: 9999, visited: &v) == nil)
        #expect(walk(rs.nat, from: "KUBE-SERVICES", dest: addr("10.111.255.254"), proto: "tcp", dport: 80, visited: &v) == nil)
    }

    @Test func theFanOutSettingTradesChainLengthForDepth() throws {
        let ports = spread(300).filter { !$0.endpoints.isEmpty }
        let flat = ProxyRules.render(ports, clusterCIDR: clusterCIDR, fanOut: Int.max)
        #expect(flat.nat["KUBE-SERVICES"]?.count == ports.count + 1)
        #expect(flat.nat["KUBE-SERVICES"]?.last == nodePortsRule)
        #expect(!flat.nat.keys.contains { $0.hasPrefix("KUBE-SVCS-") })
        let narrow = ProxyRules.render(ports, clusterCIDR: clusterCIDR, fanOut: 4)
        for (name, rules) in narrow.nat where name == "KUBE-SERVICES" || name.hasPrefix("KUBE-SVCS-") {
            #expect(rules.count <= 17, "\(name) has \(rules.count) rules")
        }
        #expect(render(ports) == ProxyRules.render(ports, clusterCIDR: clusterCIDR, fanOut: ProxyRules.fanOut))
        var flatWorst = 0, narrowWorst = 0
        for sp in ports {
            var v = 0, w = 0
            let a = walk(flat.nat, from: "KUBE-SERVICES", dest: sp.clusterIP, proto: "tcp", dport: sp.port, visited: &v)
            let b = walk(narrow.nat, from: "KUBE-SERVICES", dest: sp.clusterIP, proto: "tcp", dport: sp.port, visited: &w)
            // The same service rule, in whichever chain it sits.
            let rule = try #require(a).split(separator: " ", maxSplits: 2).last
            #expect(rule != nil && rule == b?.split(separator: " ", maxSplits: 2).last, "\(sp.portKey)")
            flatWorst = max(flatWorst, v)
            narrowWorst = max(narrowWorst, w)
        }
        #expect(flatWorst == ports.count) // the highest address is the last rule of the flat chain
        #expect(narrowWorst < 60, "\(narrowWorst)")
    }

    @Test func externalIPsOutsideTheServiceSubnetAreFoundToo() throws {
        var ports = spread(100).filter { !$0.endpoints.isEmpty }
        ports[0].externalIPs = [addr("192.0.2.10")]
        ports[1].externalIPs = [addr("198.51.100.7")]
        let rs = render(ports)
        for sp in ports.prefix(2) {
            var v = 0
            let hit = try #require(walk(rs.nat, from: "KUBE-SERVICES", dest: sp.externalIPs[0], proto: "tcp", dport: sp.port, visited: &v))
            #expect(hit.contains("--comment \"\(sp.portKey) external IP\""))
            #expect(parse(hit).target.hasPrefix("KUBE-EXT-"))
        }
    }

    @Test func manyNodePortsAreATreeOfPortRanges() throws {
        let ports = spread(2000, nodePorts: true)
        let rs = render(ports)
        let dispatch = rs.nat.filter { $0.key == "KUBE-NODEPORTS" || $0.key.hasPrefix("KUBE-NPS-") }
        #expect(dispatch.count > 10)
        for (name, rules) in dispatch { #expect(rules.count <= max(16, ProxyRules.fanOut), "\(name) has \(rules.count) rules") }
        // Dispatch rules match a protocol and a port range.
        let ranges = dispatch.values.joined().filter { $0.contains("-j KUBE-NPS-") }
        #expect(!ranges.isEmpty)
        #expect(ranges.allSatisfy { $0.range(of: #"-p (tcp|udp) -m (tcp|udp) --dport \d+:\d+ -j KUBE-NPS-"#, options: .regularExpression) != nil })
        var worst = 0
        for sp in ports {
            let np = try #require(sp.nodePort)
            var visited = 0
            let hit = walk(rs.nat, from: "KUBE-NODEPORTS", dest: nil, proto: sp.p, dport: np, visited: &visited)
            worst = max(worst, visited)
            if sp.endpoints.isEmpty {
                #expect(hit == nil)
                // Refused through the filter table's own tree of port ranges.
                var seen = 0
                let reject = walk(rs.filter, from: "KUBE-EXTERNAL-NODEPORTS", dest: nil, proto: sp.p, dport: np, visited: &seen)
                #expect(reject?.contains("--comment \"\(sp.portKey) has no endpoints\"") == true && reject?.hasSuffix("-j REJECT --reject-with icmp-port-unreachable") == true, "\(reject ?? "nothing")")
                #expect(seen < 100, "a refused node port walked \(seen) rules")
            } else {
                let rule = try #require(hit, "\(sp.portKey) node port \(np) not reached")
                #expect(rule.contains("-p \(sp.p) -m comment --comment \"\(sp.portKey)\" -m \(sp.p) --dport \(np) -j KUBE-EXT-"), "\(rule)")
            }
            // The other protocol on that port goes nowhere.
            var v = 0
            #expect(walk(rs.nat, from: "KUBE-NODEPORTS", dest: nil, proto: sp.p == "tcp" ? "udp" : "tcp", dport: np, visited: &v) == nil)
        }
        #expect(worst < 100, "a node port lookup walked \(worst) rules")
        // A few node ports stay a flat list.
        let few = render(spread(ProxyRules.fanOut, nodePorts: true).map { var p = $0; p.endpoints = [endpoint("10.244.1.2:80")]; return p })
        #expect(few.nat["KUBE-NODEPORTS"]?.count == ProxyRules.fanOut)
        #expect(!few.nat.keys.contains { $0.hasPrefix("KUBE-NPS-") })
    }
}

// MARK: - restore text

@Suite("Proxy rules: iptables-restore diffs")
struct RestoreTextTests {
    let api = web(["10.244.5.5:9000"], name: "api", ip: "10.96.0.60")

    @Test func nothingChangesNothingIsWritten() {
        let rs = render([web(["10.244.1.2:8080"]), api])
        #expect(ProxyRules.restoreText(from: rs, to: rs) == nil)
        #expect(ProxyRules.restoreText(from: Ruleset(), to: Ruleset()) == nil)
    }

    @Test func changedEndpointsRewriteOnlyTheirChains() throws {
        let old = render([web(["10.244.1.2:8080", "10.244.2.3:8080"]), api])
        let new = render([web(["10.244.1.2:8080", "10.244.3.4:8080"]), api])
        let svc = try #require(old.nat.keys.first { $0.hasPrefix("KUBE-SVC-") && old.nat[$0]![0].contains("10.96.0.50/32") })
        let kept = try sep(old, "10.244.1.2:8080"), gone = try sep(old, "10.244.2.3:8080"), added = try sep(new, "10.244.3.4:8080")
        #expect(try sep(new, "10.244.1.2:8080") == kept)
        let plan = try #require(ProxyRules.restoreText(from: old, to: new))
        let write = [svc, added].sorted()
        var expected = "*nat\n"
        for c in write + [gone] { expected += ":\(c) - [0:0]\n" }
        for c in write { expected += new.nat[c]!.joined(separator: "\n") + "\n" }
        expected += "-X \(gone)\nCOMMIT\n"
        #expect(plan.text == expected)
        #expect(plan.chains == 3)
        #expect(!plan.text.contains(":\(kept) ") && !plan.text.contains("-A \(kept) "), "the unchanged SEP chain is left alone")
        #expect(!plan.text.contains("*filter"))
        #expect(!plan.text.contains("KUBE-SERVICES"))
        var t = Tables(nat: old.nat, filter: old.filter)
        restore(plan.text, onto: &t)
        #expect(t == Tables(nat: new.nat, filter: new.filter))
    }

    @Test func fromNothingEveryChainIsWritten() throws {
        let rs = render([web(["10.244.1.2:8080"], nodePort: 30080), web([], name: "down", ip: "10.96.0.70")])
        let plan = try #require(ProxyRules.restoreText(from: nil, to: rs))
        #expect(plan.chains == rs.chainCount)
        let lines = plan.text.split(separator: "\n").map(String.init)
        #expect(lines.filter { $0.hasPrefix(":") }.count == rs.chainCount)
        #expect(!lines.contains { $0.hasPrefix("-X") })
        #expect(lines.filter { $0.hasPrefix("-A") }.count == rs.ruleCount)
        #expect(lines.filter { $0.hasPrefix("*") } == ["*nat", "*filter"])
        #expect(lines.filter { $0 == "COMMIT" }.count == 2)
        // Each section ends with its COMMIT.
        let natEnd = try #require(lines.firstIndex(of: "*filter"))
        #expect(lines[natEnd - 1] == "COMMIT")
        #expect(lines.last == "COMMIT")
        // Every chain is declared before any rule jumps to it.
        let firstRule = try #require(lines.firstIndex { $0.hasPrefix("-A") })
        #expect(lines[1..<firstRule].allSatisfy { $0.hasPrefix(":") })
        var t = Tables()
        restore(plan.text, onto: &t)
        #expect(t == Tables(nat: rs.nat, filter: rs.filter))
    }

    @Test func hooksGoToTheBuiltInChains() throws {
        let rs = render([web(["10.244.1.2:8080"])])
        let plan = try #require(ProxyRules.restoreText(from: rs, to: rs, hooks: Ruleset.hooks))
        let nat = Ruleset.hooks.filter { $0.table == "nat" }.map { "-A \($0.chain) \($0.rule)\n" }.joined()
        let filter = Ruleset.hooks.filter { $0.table == "filter" }.map { "-A \($0.chain) \($0.rule)\n" }.joined()
        #expect(plan.text == "*nat\n" + nat + "COMMIT\n*filter\n" + filter + "COMMIT\n")
        #expect(plan.chains == 0)
        #expect(plan.text.contains("-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"))
        // With a full write the hooks come after the chains they jump to are declared.
        let fresh = try #require(ProxyRules.restoreText(from: nil, to: rs, hooks: Ruleset.hooks))
        var t = Tables()
        restore(fresh.text, onto: &t)
        #expect(t.hooks.count == Ruleset.hooks.count)
        #expect(t.hooks.first == "nat -A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES")
    }

    @Test func removeDeletesChainsThatAreNotInTheNewSet() throws {
        let rs = render([web(["10.244.1.2:8080"])])
        var stale = Ruleset()
        stale.nat["KUBE-SVC-AAAAAAAAAAAAAAAA"] = ["-A KUBE-SVC-AAAAAAAAAAAAAAAA -j KUBE-SEP-AAAAAAAAAAAAAAAA"]
        stale.nat["KUBE-SEP-AAAAAAAAAAAAAAAA"] = []
        stale.nat["KUBE-SERVICES"] = [] // in the new set: rewritten, not deleted
        stale.filter["KUBE-EXTERNAL-SERVICES"] = []
        let plan = try #require(ProxyRules.restoreText(from: nil, to: rs, remove: stale))
        #expect(plan.chains == rs.chainCount + 2)
        let lines = plan.text.split(separator: "\n").map(String.init)
        #expect(lines.filter { $0.hasPrefix("-X") } == ["-X KUBE-SEP-AAAAAAAAAAAAAAAA", "-X KUBE-SVC-AAAAAAAAAAAAAAAA"])
        let nat = lines[0..<(try #require(lines.firstIndex(of: "COMMIT")))]
        let lastRule = try #require(nat.lastIndex { $0.hasPrefix("-A") })
        #expect(try #require(nat.firstIndex(of: "-X KUBE-SEP-AAAAAAAAAAAAAAAA")) > lastRule)
        #expect(lines.contains(":KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]"))
        // Applied over tables that still hold those chains (a survey after a restart).
        var t = Tables(nat: stale.nat, filter: stale.filter)
        restore(plan.text, onto: &t)
        #expect(t == Tables(nat: rs.nat, filter: rs.filter))
    }

    @Test func everyDiffTurnsTheOldTablesIntoTheNewOnes() throws {
        let steps: [[ProxyServicePort]] = [
            [],
            [web(["10.244.1.2:8080", "10.244.2.3:8080"]), api],
            [web(["10.244.1.2:8080", "10.244.3.4:8080"]), api],
            [web(["10.244.1.2:8080", "10.244.3.4:8080"], nodePort: 30080, externalIPs: ["192.0.2.10"]), api],
            [web(["10.244.1.2:8080", "10.244.3.4:8080"], nodePort: 30080, externalIPs: ["192.0.2.10"], affinity: 60), web([], name: "api", ip: "10.96.0.60")],
            [web(["10.244.1.2:8080"])],
            spread(500),
            spread(500).filter { !$0.endpoints.isEmpty } + spread(40, nodePorts: true).map { var p = $0; p.service += "-np"; return p },
            spread(20),
            spread(600, nodePorts: true),
            [],
        ]
        var t = Tables()
        var old: Ruleset?
        for (i, ports) in steps.enumerated() {
            let new = render(ports)
            if let plan = ProxyRules.restoreText(from: old, to: new) {
                restore(plan.text, onto: &t)
                #expect(plan.chains <= new.chainCount + (old?.chainCount ?? 0))
            } else {
                #expect(old == new, "step \(i): no plan but the rules differ")
            }
            #expect(t == Tables(nat: new.nat, filter: new.filter), "step \(i)")
            old = new
        }
    }
}

// MARK: - endpoints

private func labelled(_ name: String, ns: String = "default", labels: String, ports: String, containers: [String] = ["server"]) -> String {
    var s = "---\napiVersion: v1\nkind: Pod\nmetadata: {name: \(name), namespace: \(ns), labels: \(labels)}\nspec:\n  containers:\n"
    for (i, c) in containers.enumerated() {
        s += "  - name: \(c)\n    image: busybox\n"
        if i == 0 { s += "    ports: \(ports)\n" }
    }
    return s
}

private func svcDoc(_ name: String, _ spec: String) -> String {
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: \(name)}\nspec: \(spec)\n"
}

private func podState(_ key: String, ip: String?, phase: PodPhase = .running, ready: [String: Bool] = ["server": true],
                      node: String = "lab-worker") -> PodState {
    let parts = key.split(separator: "/").map(String.init)
    let containers = ready.sorted { $0.key < $1.key }.map { name, ok in
        ContainerStatus(name: name, image: "busybox", isInit: false, state: phase == .running ? .running : .waiting,
                        pid: 100, startTime: 1, restartCount: 0, ready: ok)
    }
    return PodState(namespace: parts[0], name: parts[1], node: node, ip: ip.map(addr), netns: "", pid: 1, startTime: 1,
                    hostVeth: "", createdAt: Date(timeIntervalSince1970: 0), phase: phase, labels: [:], containers: containers)
}

@Suite("Endpoints controller")
struct EndpointsTests {
    static let text = clusterHeader
        + labelled("web-0", labels: "{app: web}", ports: "[{name: http, containerPort: 8080}]")
        + labelled("web-1", labels: "{app: web}", ports: "[{name: http, containerPort: 8080}]")
        + labelled("web-2", labels: "{app: web}", ports: "[{name: metrics, containerPort: 9090}]")
        + labelled("web-3", labels: "{app: web}", ports: "[{name: http, containerPort: 8080}]")
        + labelled("web-4", labels: "{app: web, extra: x}", ports: "[{name: http, containerPort: 8081}]", containers: ["server", "side"])
        + labelled("web-5", ns: "shop", labels: "{app: web}", ports: "[{name: http, containerPort: 8080}]")
        + labelled("db", labels: "{app: db}", ports: "[{name: http, containerPort: 8080}]")
        + svcDoc("web", "{selector: {app: web}, ports: [{name: http, port: 80, targetPort: http}]}")
        + svcDoc("ready-or-not", "{publishNotReadyAddresses: true, selector: {app: web}, ports: [{name: http, port: 80, targetPort: http}]}")
        + svcDoc("numbered", "{type: NodePort, sessionAffinity: ClientIP, externalIPs: [192.0.2.10], selector: {app: web}, ports: [{port: 80, targetPort: 8080, nodePort: 30080}]}")
        + svcDoc("headless", "{clusterIP: None, selector: {app: web}}")
        + svcDoc("ext", "{type: ExternalName, externalName: example.com, selector: {app: web}}")
        + svcDoc("manual", "{ports: [{port: 80}]}")

    static let pods: [String: PodState] = [
        "default/web-0": podState("default/web-0", ip: "10.244.1.10"),
        "default/web-1": podState("default/web-1", ip: "10.244.2.11", ready: ["server": false], node: "lab-worker2"),
        "default/web-2": podState("default/web-2", ip: "10.244.1.12"),
        "default/web-3": podState("default/web-3", ip: nil, phase: .pending),
        "default/web-4": podState("default/web-4", ip: "10.244.2.14", ready: ["server": true, "side": false], node: "lab-worker2"),
        "shop/web-5": podState("shop/web-5", ip: "10.244.1.15"),
        "default/db": podState("default/db", ip: "10.244.1.16"),
    ]

    func setup() throws -> ClusterSpec { try SpecLoader.parse(Self.text, file: "c.yaml") }

    func service(_ spec: ClusterSpec, _ name: String) throws -> ServiceSpec {
        try #require(spec.services.first { $0.name == name })
    }

    func ep(_ pod: String, _ ip: String, _ port: Int?, ready: Bool, reason: String? = nil, node: String = "lab-worker",
            name: String = "http") -> Endpoint {
        Endpoint(portName: name, proto: "TCP", ip: addr(ip), port: port, pod: "default/\(pod)", node: node, ready: ready, reason: reason)
    }

    @Test func readyNotReadyAndUndeclaredPorts() throws {
        let spec = try setup()
        let eps = EndpointsController.endpoints(of: try service(spec, "web"), spec: spec, pods: Self.pods)
        #expect(eps == [
            ep("web-0", "10.244.1.10", 8080, ready: true),
            ep("web-1", "10.244.2.11", 8080, ready: false, reason: "containers with unready status: [server]", node: "lab-worker2"),
            ep("web-2", "10.244.1.12", nil, ready: false, reason: "no container of pod web-2 declares a TCP port named \"http\""),
            ep("web-4", "10.244.2.14", 8081, ready: false, reason: "containers with unready status: [side]", node: "lab-worker2"),
        ])
        #expect(eps.map(\.address) == ["10.244.1.10:8080", "10.244.2.11:8080", "10.244.1.12", "10.244.2.14:8081"])
        // Pending (no IP), another namespace, another selector: not endpoints at all.
        #expect(!eps.contains { ["default/web-3", "shop/web-5", "default/db"].contains($0.pod) })
    }

    @Test func onlyReadyEndpointsWithAPortAreProxied() throws {
        let spec = try setup()
        let s = try service(spec, "web")
        let st = ServiceState(spec: s, endpoints: EndpointsController.endpoints(of: s, spec: spec, pods: Self.pods), createdAt: Date())
        #expect(st.serving(s.ports[0]).map(\.pod) == ["default/web-0"])
        let proxied = EndpointsController.proxyPorts([st])
        #expect(proxied == [ProxyServicePort(namespace: "default", service: "web", portName: "http", proto: "TCP", clusterIP: try #require(s.clusterIP),
                                             port: 80, nodePort: nil, externalIPs: [], affinitySeconds: nil,
                                             endpoints: [endpoint("10.244.1.10:8080@lab-worker")])])
        // A pod that becomes ready joins.
        var pods = Self.pods
        pods["default/web-1"] = podState("default/web-1", ip: "10.244.2.11", node: "lab-worker2")
        let later = ServiceState(spec: s, endpoints: EndpointsController.endpoints(of: s, spec: spec, pods: pods), createdAt: Date())
        #expect(EndpointsController.proxyPorts([later]).first?.endpoints == [endpoint("10.244.1.10:8080@lab-worker"), endpoint("10.244.2.11:8080@lab-worker2")])
        // A failed one leaves.
        pods["default/web-0"]?.phase = .failed
        let failed = EndpointsController.endpoints(of: s, spec: spec, pods: pods)
        #expect(!failed.contains { $0.pod == "default/web-0" })
    }

    @Test func publishNotReadyAddressesServesNotReadyPodsThatHaveThePort() throws {
        let spec = try setup()
        let s = try service(spec, "ready-or-not")
        #expect(s.publishNotReadyAddresses)
        let st = ServiceState(spec: s, endpoints: EndpointsController.endpoints(of: s, spec: spec, pods: Self.pods), createdAt: Date())
        #expect(EndpointsController.proxyPorts([st]).first?.endpoints == [
            endpoint("10.244.1.10:8080@lab-worker"), endpoint("10.244.2.11:8080@lab-worker2"), endpoint("10.244.2.14:8081@lab-worker2"),
        ])
    }

    @Test func numericTargetPortAffinityNodePortAndExternalIPsReachTheProxy() throws {
        let spec = try setup()
        let s = try service(spec, "numbered")
        let eps = EndpointsController.endpoints(of: s, spec: spec, pods: Self.pods)
        // A number needs no declaration: web-2 is an endpoint on 8080 too.
        #expect(eps.filter(\.ready).map(\.address) == ["10.244.1.10:8080", "10.244.1.12:8080"])
        #expect(eps.allSatisfy { $0.port == 8080 && $0.portName == "" })
        let p = try #require(EndpointsController.proxyPorts([ServiceState(spec: s, endpoints: eps, createdAt: Date())]).first)
        #expect(p.nodePort == 30080)
        #expect(p.affinitySeconds == 10800)
        #expect(p.externalIPs == [addr("192.0.2.10")])
        #expect(p.portKey == "default/numbered")
        #expect(p.endpoints == [endpoint("10.244.1.10:8080@lab-worker"), endpoint("10.244.1.12:8080@lab-worker")])
    }

    @Test func headlessExternalNameAndSelectorlessServices() throws {
        let spec = try setup()
        let headless = try service(spec, "headless")
        let eps = EndpointsController.endpoints(of: headless, spec: spec, pods: Self.pods)
        #expect(eps.map(\.pod) == ["default/web-0", "default/web-1", "default/web-2", "default/web-4"])
        #expect(eps.allSatisfy { $0.port == nil && $0.portName == "" })
        #expect(eps.map(\.address) == ["10.244.1.10", "10.244.2.11", "10.244.1.12", "10.244.2.14"])
        #expect(EndpointsController.endpoints(of: try service(spec, "ext"), spec: spec, pods: Self.pods).isEmpty)
        #expect(EndpointsController.endpoints(of: try service(spec, "manual"), spec: spec, pods: Self.pods).isEmpty)
        let states = try ["headless", "ext", "manual"].map { name in
            let s = try service(spec, name)
            return ServiceState(spec: s, endpoints: EndpointsController.endpoints(of: s, spec: spec, pods: Self.pods), createdAt: Date())
        }
        // Only a service with a ClusterIP is proxied; "manual" has no endpoints and is rejected.
        let proxied = EndpointsController.proxyPorts(states)
        #expect(proxied.map(\.service) == ["manual"])
        #expect(proxied.first?.endpoints == [])
    }

    @Test func aNamedUDPPortIsLookedUpByProtocol() throws {
        let spec = try SpecLoader.parse(clusterHeader
            + labelled("dns-0", labels: "{app: dns}", ports: "[{name: dns, containerPort: 5353, protocol: UDP}, {name: dns-tcp, containerPort: 5353}]")
            + labelled("dns-1", labels: "{app: dns}", ports: "[{name: dns, containerPort: 53}]")
            + svcDoc("dns", "{selector: {app: dns}, ports: [{name: dns, port: 53, protocol: UDP, targetPort: dns}]}"), file: "c.yaml")
        let s = try service(spec, "dns")
        let pods = ["default/dns-0": podState("default/dns-0", ip: "10.244.1.20"), "default/dns-1": podState("default/dns-1", ip: "10.244.1.21")]
        let eps = EndpointsController.endpoints(of: s, spec: spec, pods: pods)
        #expect(eps.count == 2)
        #expect(eps.first == Endpoint(portName: "dns", proto: "UDP", ip: addr("10.244.1.20"), port: 5353, pod: "default/dns-0",
                                      node: "lab-worker", ready: true, reason: nil))
        #expect(eps.last?.port == nil)
        #expect(eps.last?.ready == false)
        #expect(eps.last?.reason == "no container of pod dns-1 declares a UDP port named \"dns\"")
    }
}
