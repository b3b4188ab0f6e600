// The service proxy's rules, rendered the way kube-proxy's iptables mode writes them
// (pkg/proxy/iptables): KUBE-SERVICES -> KUBE-SVC-* -> KUBE-SEP-* with `statistic` for an
// equal random spread, `recent` for ClientIP affinity, KUBE-NODEPORTS -> KUBE-EXT-*,
// KUBE-MARK-MASQ / KUBE-POSTROUTING for masquerade, REJECT in the filter table for a
// service without endpoints. Pure: services in, chains out, and the iptables-restore text
// that turns one rule set into another.
//
// One change from kube-proxy, for scale: kube-proxy's KUBE-SERVICES is one rule per
// service port, so the first packet of every connection walks a list as long as the
// number of services. Here a dispatch chain that would hold more than `fanOut` rules is
// split by the next 4 bits of the destination address (ports for KUBE-NODEPORTS) into
// child chains (KUBE-SVCS-0A600000-16 = 10.96.0.0/16): a split chain holds at most 16
// rules (32 for node ports: TCP and UDP), a leaf at most `fanOut`, and a lookup passes
// about log16(N) chains. Small clusters (up to `fanOut` service ports) get exactly
// kube-proxy's flat chain.
import MinikSpec

/// One port of one service, with the endpoints it sends traffic to, as the proxy sees it.
public struct ProxyServicePort: Sendable, Equatable {
    public struct Endpoint: Sendable, Hashable, Comparable {
        public var ip: IPv4Address
        public var port: Int
        /// The node its pod runs on; "" for an address that is no pod's (not local anywhere).
        public var node: String
        public init(ip: IPv4Address, port: Int, node: String = "") {
            self.ip = ip
            self.port = port
            self.node = node
        }
        public static func < (a: Endpoint, b: Endpoint) -> Bool { (a.ip, a.port) < (b.ip, b.port) }
        public var description: String { "\(ip):\(port)" }
    }

    public var namespace: String
    public var service: String
    public var portName: String
    public var proto: String
    public var clusterIP: IPv4Address
    public var port: Int
    public var nodePort: Int?
    public var externalIPs: [IPv4Address]
    /// ClientIP affinity timeout in seconds; nil: no affinity.
    public var affinitySeconds: Int?
    /// Ready endpoints (or every one with publishNotReadyAddresses), sorted.
    public var endpoints: [Endpoint]
    /// externalTrafficPolicy Local: outside traffic goes to the receiving node's endpoints only, unmasqueraded.
    public var externalLocal: Bool
    /// internalTrafficPolicy Local: cluster IP traffic goes to the sender's node's endpoints only.
    public var internalLocal: Bool

    public init(namespace: String, service: String, portName: String, proto: String, clusterIP: IPv4Address, port: Int,
                nodePort: Int? = nil, externalIPs: [IPv4Address] = [], affinitySeconds: Int? = nil, endpoints: [Endpoint],
                externalLocal: Bool = false, internalLocal: Bool = false) {
        self.externalLocal = externalLocal
        self.internalLocal = internalLocal
        self.namespace = namespace
        self.service = service
        self.portName = portName
        self.proto = proto
        self.clusterIP = clusterIP
        self.port = port
        self.nodePort = nodePort
        self.externalIPs = externalIPs
        self.affinitySeconds = affinitySeconds
        self.endpoints = endpoints
    }

    /// kube-proxy's ServicePortName: "ns/svc:port", or "ns/svc" for an unnamed port.
    public var portKey: String { portName.isEmpty ? "\(namespace)/\(service)" : "\(namespace)/\(service):\(portName)" }
    var p: String { proto.lowercased() }
    /// Its KUBE-SVC-* chain (every endpoint: the Cluster traffic policy).
    public var serviceChain: String { ProxyRules.chainName("KUBE-SVC-", portKey + p) }
    /// Its KUBE-SVL-* chain (the node's own endpoints: the Local traffic policy).
    public var localChain: String { ProxyRules.chainName("KUBE-SVL-", portKey + p) }
    /// Its rules differ from node to node (a Local traffic policy).
    public var dependsOnNode: Bool { (externalLocal && isExternallyAccessible) || internalLocal }
    public var isExternallyAccessible: Bool { nodePort != nil || !externalIPs.isEmpty }
}

/// Chains of the nat and filter tables: name -> rules ("-A NAME ..." lines, in order).
public struct Ruleset: Sendable, Equatable {
    public var nat: [String: [String]] = [:]
    public var filter: [String: [String]] = [:]

    public init() {}

    public var ruleCount: Int { nat.values.reduce(0) { $0 + $1.count } + filter.values.reduce(0) { $0 + $1.count } }
    public var chainCount: Int { nat.count + filter.count }

    /// Rules that go into the built-in chains (kube-proxy "ensures" these jump rules rather
    /// than owning PREROUTING and friends), table and chain with each.
    public static let hooks: [(table: String, chain: String, rule: String)] = [
        ("nat", "PREROUTING", "-m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"),
        ("nat", "OUTPUT", "-m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"),
        postroutingJump,
        ("nat", "POSTROUTING", "-m addrtype ! --dst-type LOCAL -m comment --comment \"minik-masq-agent: pod traffic leaving the pod network is masqueraded\" -j MINIK-MASQ-AGENT"),
        ("filter", "INPUT", "-m conntrack --ctstate NEW -m comment --comment \"kubernetes externally visible service portals\" -j KUBE-EXTERNAL-SERVICES"),
        ("filter", "FORWARD", "-m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD"),
        ("filter", "FORWARD", "-m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"),
        ("filter", "FORWARD", "-m conntrack --ctstate NEW -m comment --comment \"kubernetes externally visible service portals\" -j KUBE-EXTERNAL-SERVICES"),
        ("filter", "OUTPUT", "-m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"),
    ]

    /// Rules that go first in their built-in chains: network policies are checked before
    /// KUBE-FORWARD accepts anything.
    public static let firstHooks: [(table: String, chain: String, rule: String)] = [
        ("filter", "FORWARD", "-m comment --comment \"minik network policies\" -j \(PolicyRules.chain)"),
    ]

    /// The jump to KUBE-POSTROUTING; the proxy's check looks for it with the canary.
    public static let postroutingJump = (table: "nat", chain: "POSTROUTING", rule: "-m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING")

    /// The chain whose emptiness or absence tells that someone flushed the tables.
    public static let canary = (table: "nat", chain: "KUBE-MARK-MASQ", rule: "-j MARK --or-mark 0x4000")
}

public enum ProxyRules {
    /// A dispatch chain holds at most this many rules before it is split in 16.
    public static let fanOut = 32
    public static let masqMark = "0x4000"

    /// The whole rule set for a cluster whose pods live in clusterCIDR, as `node` has it.
    public static func render(_ ports: [ProxyServicePort], clusterCIDR: IPv4CIDR, node: String = "", fanOut: Int = ProxyRules.fanOut) -> Ruleset {
        assemble(ports.map { ($0.portKey, $0.proto, fragment($0, clusterCIDR: clusterCIDR, node: node)) }, clusterCIDR: clusterCIDR, fanOut: fanOut)
    }

    /// What one service port contributes: its own chains (SVC, SEP, EXT), REJECT lines for
    /// KUBE-EXTERNAL-SERVICES, and the rules the dispatch chains hold for it. A sync
    /// renders again only the ports that changed (ServiceProxy keeps the fragments).
    public struct Fragment: Sendable {
        var nat: [(String, [String])] = []
        var externalRejects: [String] = []
        var nodePortRejects: [DispatchItem] = []
        var natDispatch: [DispatchItem] = []
        var filterDispatch: [DispatchItem] = []
        var nodePorts: [DispatchItem] = []
    }

    /// `node` is the node the rules are for; it matters only for a Local traffic policy,
    /// whose KUBE-SVL chain holds that node's endpoints (kube-proxy's localPolicyChain).
    public static func fragment(_ sp: ProxyServicePort, clusterCIDR: IPv4CIDR, node: String = "") -> Fragment {
        var f = Fragment()
        let key = sp.portKey
        let p = sp.p
        let svc = sp.serviceChain
        let svl = sp.localChain
        let ext = chainName("KUBE-EXT-", key + p)
        let dport = "-p \(p) -m comment --comment \"\(key) cluster IP\" -m \(p) --dport \(sp.port)"
        guard !sp.endpoints.isEmpty else {
            let reject = "-j REJECT --reject-with icmp-port-unreachable"
            let why = "-m comment --comment \"\(key) has no endpoints\""
            f.filterDispatch.append(DispatchItem(key: sp.clusterIP.value, group: "",
                                                 rule: "-d \(sp.clusterIP)/32 -p \(p) \(why) -m \(p) --dport \(sp.port) \(reject)"))
            (f.externalRejects, f.nodePortRejects) = externalFilter(sp, why: why, target: reject)
            return f
        }
        let local = node.isEmpty ? [] : sp.endpoints.filter { $0.node == node }
        // As kube-proxy: the Cluster chain is needed for cluster IP traffic with the Cluster
        // policy, and for any outside traffic (a Local EXT chain sends pods' and the node's
        // own traffic there: the short circuit); the Local chain when there are local endpoints.
        let externalLocal = sp.externalLocal && sp.isExternallyAccessible
        let usesCluster = !sp.internalLocal || sp.isExternallyAccessible
        let usesLocal = (externalLocal || sp.internalLocal) && !local.isEmpty
        let internalChain = sp.internalLocal ? svl : svc
        let hasInternal = !sp.internalLocal || !local.isEmpty
        let hasExternal = !externalLocal || !local.isEmpty
        var seps: [String: [String]] = [:]
        func endpointRules(_ chain: String, _ endpoints: [ProxyServicePort.Endpoint]) -> [String] {
            var rules: [String] = []
            if chain == internalChain {
                rules.append("-A \(chain) ! -s \(clusterCIDR) -d \(sp.clusterIP)/32 \(dport) -j KUBE-MARK-MASQ")
            }
            let targets = endpoints.map { (ep: $0, chain: chainName("KUBE-SEP-", key + p + $0.description)) }
            if let seconds = sp.affinitySeconds {
                for s in targets {
                    rules.append("-A \(chain) -m comment --comment \"\(key) -> \(s.ep.description)\" -m recent --rcheck --seconds \(seconds) --reap --name \(s.chain) --mask 255.255.255.255 --rsource -j \(s.chain)")
                }
            }
            for (i, s) in targets.enumerated() {
                let left = targets.count - i
                let spread = left > 1 ? " -m statistic --mode random --probability \(probability(left))" : ""
                rules.append("-A \(chain) -m comment --comment \"\(key) -> \(s.ep.description)\"\(spread) -j \(s.chain)")
                let recent = sp.affinitySeconds != nil ? " -m recent --set --name \(s.chain) --mask 255.255.255.255 --rsource" : ""
                seps[s.chain] = [
                    "-A \(s.chain) -s \(s.ep.ip)/32 -m comment --comment \"\(key)\" -j KUBE-MARK-MASQ",
                    "-A \(s.chain) -p \(p) -m comment --comment \"\(key)\"\(recent) -m \(p) -j DNAT --to-destination \(s.ep.description)",
                ]
            }
            return rules
        }
        if hasInternal {
            f.natDispatch.append(DispatchItem(key: sp.clusterIP.value, group: "", rule: "-d \(sp.clusterIP)/32 \(dport) -j \(internalChain)"))
        } else {
            f.filterDispatch.append(DispatchItem(key: sp.clusterIP.value, group: "",
                                                 rule: "-d \(sp.clusterIP)/32 -p \(p) -m comment --comment \"\(key) has no local endpoints\" -m \(p) --dport \(sp.port) -j DROP"))
        }
        if usesCluster { f.nat.append((svc, endpointRules(svc, sp.endpoints))) }
        if usesLocal { f.nat.append((svl, endpointRules(svl, local))) }
        f.nat += seps.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        if sp.isExternallyAccessible {
            if !externalLocal {
                f.nat.append((ext, [
                    "-A \(ext) -m comment --comment \"masquerade traffic for \(key) external destinations\" -j KUBE-MARK-MASQ",
                    "-A \(ext) -j \(svc)",
                ]))
            } else {
                // Pods and the node itself reach the service as if through an outside load
                // balancer, on every endpoint; anything else stays on this node, unmasqueraded.
                var rules = [
                    "-A \(ext) -s \(clusterCIDR) -m comment --comment \"pod traffic for \(key) external destinations\" -j \(svc)",
                    "-A \(ext) -m comment --comment \"masquerade LOCAL traffic for \(key) external destinations\" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ",
                    "-A \(ext) -m comment --comment \"route LOCAL traffic for \(key) external destinations\" -m addrtype --src-type LOCAL -j \(svc)",
                ]
                if hasExternal { rules.append("-A \(ext) -j \(svl)") }
                f.nat.append((ext, rules))
            }
            if !hasExternal {
                (f.externalRejects, f.nodePortRejects) = externalFilter(sp, why: "-m comment --comment \"\(key) has no local endpoints\"", target: "-j DROP")
            }
        }
        for ip in sp.externalIPs {
            f.natDispatch.append(DispatchItem(key: ip.value, group: "",
                                              rule: "-d \(ip)/32 -p \(p) -m comment --comment \"\(key) external IP\" -m \(p) --dport \(sp.port) -j \(ext)"))
        }
        if let np = sp.nodePort {
            f.nodePorts.append(DispatchItem(key: UInt32(np), group: p, rule: "-p \(p) -m comment --comment \"\(key)\" -m \(p) --dport \(np) -j \(ext)"))
        }
        return f
    }

    /// KUBE-EXTERNAL-SERVICES lines for a port's external IPs, and the rule for its node
    /// port (in KUBE-EXTERNAL-NODEPORTS): REJECT when it has no endpoints at all, DROP when
    /// this node has none for a Local policy.
    static func externalFilter(_ sp: ProxyServicePort, why: String, target: String) -> ([String], [DispatchItem]) {
        let p = sp.p
        let ips = sp.externalIPs.map { "-A KUBE-EXTERNAL-SERVICES -d \($0)/32 -p \(p) \(why) -m \(p) --dport \(sp.port) \(target)" }
        let nodePort = sp.nodePort.map { [DispatchItem(key: UInt32($0), group: p, rule: "-p \(p) \(why) -m \(p) --dport \($0) \(target)")] } ?? []
        return (ips, nodePort)
    }

    /// The whole rule set from the service ports' fragments (in any order).
    public static func assemble(_ parts: [(key: String, proto: String, fragment: Fragment)], clusterCIDR: IPv4CIDR,
                                fanOut: Int = ProxyRules.fanOut) -> Ruleset {
        var rs = Ruleset()
        rs.nat["KUBE-MARK-MASQ"] = ["-A KUBE-MARK-MASQ \(Ruleset.canary.rule)"]
        rs.nat["KUBE-POSTROUTING"] = [
            "-A KUBE-POSTROUTING -m mark ! --mark \(masqMark)/\(masqMark) -j RETURN",
            "-A KUBE-POSTROUTING -j MARK --xor-mark \(masqMark)",
            "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully",
        ]
        rs.nat["MINIK-MASQ-AGENT"] = [
            "-A MINIK-MASQ-AGENT -d \(clusterCIDR) -m comment --comment \"minik-masq-agent: pod to pod traffic keeps its source\" -j RETURN",
            "-A MINIK-MASQ-AGENT -s \(clusterCIDR) -m comment --comment \"minik-masq-agent: pod traffic to the underlay is masqueraded (must be last in chain)\" -j MASQUERADE",
        ]
        rs.nat["KUBE-NODEPORTS"] = []
        rs.filter["KUBE-FORWARD"] = [
            "-A KUBE-FORWARD -m conntrack --ctstate INVALID -m comment --comment \"kubernetes forwarding rules\" -j DROP",
            "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark \(masqMark)/\(masqMark) -j ACCEPT",
            "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        ]
        var rejects: [String] = []
        var nodePortRejects: [DispatchItem] = []
        var natServices: [DispatchItem] = []
        var filterServices: [DispatchItem] = []
        var nodePorts: [DispatchItem] = []
        rs.nat.reserveCapacity(parts.count * 3 + 8)
        for part in parts.sorted(by: { ($0.key, $0.proto) < ($1.key, $1.proto) }) {
            let f = part.fragment
            for (chain, rules) in f.nat { rs.nat[chain] = rules }
            rejects += f.externalRejects
            nodePortRejects += f.nodePortRejects
            natServices += f.natDispatch
            filterServices += f.filterDispatch
            nodePorts += f.nodePorts
        }
        rs.filter["KUBE-EXTERNAL-SERVICES"] = rejects
        rs.filter[PolicyRules.chain] = []
        let byAddress = Dispatch(width: 32, fanOut: fanOut, childPrefix: "KUBE-SVCS-",
                                 match: { _, base, len in "-d \(IPv4Address(base))/\(len)" },
                                 label: { _, base, len in String(format: "%08X-%d", base, len) })
        byAddress.build(chain: "KUBE-SERVICES", items: natServices, into: &rs.nat)
        rs.nat["KUBE-SERVICES", default: []].append(
            "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS")
        byAddress.build(chain: "KUBE-SERVICES", items: filterServices, into: &rs.filter)
        let byPort = Dispatch(width: 16, fanOut: fanOut, childPrefix: "KUBE-NPS-",
                              match: { proto, base, len in "-p \(proto) -m \(proto) --dport \(base):\(base + (UInt32(1) << UInt32(16 - len)) - 1)" },
                              label: { proto, base, len in "\(proto.uppercased())-\(base)-\(len)" })
        byPort.build(chain: "KUBE-NODEPORTS", items: nodePorts, into: &rs.nat)
        // Node ports without (local) endpoints: kube-proxy lists them in
        // KUBE-EXTERNAL-SERVICES, which every new forwarded connection walks. Here they are
        // one jump for packets to the node's own addresses, then a tree of port ranges.
        if !nodePortRejects.isEmpty {
            rs.filter["KUBE-EXTERNAL-SERVICES", default: []].append(
                "-A KUBE-EXTERNAL-SERVICES -m addrtype --dst-type LOCAL -m comment --comment \"node ports without endpoints\" -j KUBE-EXTERNAL-NODEPORTS")
            let filterPorts = Dispatch(width: 16, fanOut: fanOut, childPrefix: "KUBE-XNPS-", match: byPort.match, label: byPort.label)
            filterPorts.build(chain: "KUBE-EXTERNAL-NODEPORTS", items: nodePortRejects, into: &rs.filter)
        }
        return rs
    }

    /// kube-proxy's probability for the i-th of n endpoints: 1/(endpoints left).
    static func probability(_ left: Int) -> String { String(format: "%0.10f", 1.0 / Double(left)) }

    /// "KUBE-SVC-" + 16 base32 characters of a hash of what the chain is for, like
    /// kube-proxy's servicePortChainName (which uses SHA-256; any stable hash will do).
    public static func chainName(_ prefix: String, _ of: String) -> String {
        var a: UInt64 = 0xcbf2_9ce4_8422_2325, b: UInt64 = 0x6c62_272e_07bb_0142
        for byte in of.utf8 {
            a = (a ^ UInt64(byte)) &* 0x100_0000_01b3
            b = (b ^ UInt64(byte)) &* 0x100_0000_01b3 ^ (b >> 29)
        }
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        var out = ""
        var bits = a
        for i in 0..<16 {
            if i == 12 { bits = b }
            out.append(alphabet[Int(bits & 31)])
            bits >>= 5
        }
        return prefix + out
    }

    /// The iptables-restore input (for `iptables-restore --noflush`) that turns `old` into
    /// `new`: changed and new chains are declared (which flushes them) and written whole;
    /// chains that are gone, and the `remove` ones, are flushed, then deleted after every
    /// reference to them went. With old nil every chain is written. `hooks` are appended
    /// to the built-in chains. nil when nothing changes.
    public static func restoreText(from old: Ruleset?, to new: Ruleset, hooks: [(table: String, chain: String, rule: String)] = [],
                                   remove: Ruleset = Ruleset()) -> (text: String, chains: Int)? {
        var text = ""
        var changed = 0
        for table in ["nat", "filter"] {
            let o = table == "nat" ? old?.nat : old?.filter
            let n = table == "nat" ? new.nat : new.filter
            let r = table == "nat" ? remove.nat : remove.filter
            let write = n.keys.filter { o == nil || o?[$0] != n[$0] }.sorted()
            let gone = Set((o?.keys.filter { n[$0] == nil } ?? []) + r.keys.filter { n[$0] == nil }).sorted()
            let hookLines = hooks.filter { $0.table == table }.map { "-A \($0.chain) \($0.rule)" }
            if write.isEmpty && gone.isEmpty && hookLines.isEmpty { continue }
            changed += write.count + gone.count
            text += "*\(table)\n"
            for c in write + gone { text += ":\(c) - [0:0]\n" }
            for c in write { for rule in n[c]! { text += rule + "\n" } }
            for line in hookLines { text += line + "\n" }
            for c in gone { text += "-X \(c)\n" }
            text += "COMMIT\n"
        }
        return text.isEmpty ? nil : (text, changed)
    }
}

extension ProxyRules {
    static let builtins = ["nat": ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"], "filter": ["INPUT", "FORWARD", "OUTPUT"]]

    /// Whether a chain is the proxy's (everything else in a node's tables is left alone).
    public static func isOurs(_ chain: String) -> Bool { chain.hasPrefix("KUBE-") || chain.hasPrefix("MINIK-") }

    /// The whole nat and filter tables for `iptables-restore` without --noflush (which
    /// replaces both tables in one transaction): our chains from `new`, and from
    /// `current` (iptables-save output; nil for empty tables) everything that is not ours:
    /// built-in chains' policies and rules in their order, other chains and their rules.
    /// Our jump rules are added to the built-in chains where missing.
    /// iptables-nft-restore --noflush slows down with the square of the chains it creates
    /// (31 s for 30,000 against 2.3 s for a whole-table restore), so big changes use this.
    public static func fullRestoreText(_ new: Ruleset, current: String?) -> String {
        var policies: [String: [String: String]] = [:]
        var foreignChains: [String: [String]] = [:]
        var kept: [String: [String]] = [:]
        var table = ""
        for line in (current ?? "").split(separator: "\n") {
            if line.hasPrefix("*") { table = String(line.dropFirst()); continue }
            guard table == "nat" || table == "filter" else { continue }
            if line.hasPrefix(":") {
                let parts = line.dropFirst().split(separator: " ")
                guard let name = parts.first.map(String.init), !isOurs(name) else { continue }
                if builtins[table]!.contains(name) { policies[table, default: [:]][name] = parts.count > 1 ? String(parts[1]) : "ACCEPT" }
                else { foreignChains[table, default: []].append(name) }
            } else if line.hasPrefix("-A ") {
                let chain = String(line.dropFirst(3).prefix { $0 != " " })
                if !isOurs(chain) { kept[table, default: []].append(String(line)) }
            }
        }
        var text = ""
        for t in ["nat", "filter"] {
            let ours = t == "nat" ? new.nat : new.filter
            text += "*\(t)\n"
            for b in builtins[t]! { text += ":\(b) \(policies[t]?[b] ?? "ACCEPT") [0:0]\n" }
            for c in foreignChains[t] ?? [] { text += ":\(c) - [0:0]\n" }
            for c in ours.keys.sorted() { text += ":\(c) - [0:0]\n" }
            let first = Ruleset.firstHooks.filter { $0.table == t }.map { "-A \($0.chain) \($0.rule)" }
            for line in first { text += line + "\n" }
            let existing = Set(kept[t] ?? [])
            for line in kept[t] ?? [] where !first.contains(line) { text += line + "\n" }
            for h in Ruleset.hooks where h.table == t && !existing.contains("-A \(h.chain) \(h.rule)") {
                text += "-A \(h.chain) \(h.rule)\n"
            }
            for c in ours.keys.sorted() { for rule in ours[c]! { text += rule + "\n" } }
            text += "COMMIT\n"
        }
        return text
    }
}

/// A rule that a dispatch chain holds: the key it dispatches on (address or port), a
/// group that must match too (the protocol, for ports) and the rule without "-A CHAIN".
public struct DispatchItem: Sendable {
    var key: UInt32
    var group: String
    var rule: String
}

/// Writes a dispatch chain, split into a tree of child chains where it would be long.
struct Dispatch {
    var width: Int
    var fanOut: Int
    var childPrefix: String
    var match: (_ group: String, _ base: UInt32, _ len: Int) -> String
    var label: (_ group: String, _ base: UInt32, _ len: Int) -> String

    func build(chain: String, items: [DispatchItem], into chains: inout [String: [String]]) {
        let sorted = items.sorted { ($0.key, $0.group, $0.rule) < ($1.key, $1.group, $1.rule) }
        split(chain: chain, items: sorted, prefix: 0, into: &chains)
    }

    private func split(chain: String, items: [DispatchItem], prefix: Int, into chains: inout [String: [String]]) {
        if items.count <= fanOut || prefix >= width {
            chains[chain, default: []] += items.map { "-A \(chain) \($0.rule)" }
            return
        }
        // The next 4 bits that tell the items apart (levels where all agree are skipped).
        var next = min(prefix + 4, width)
        func bucket(_ i: DispatchItem, _ len: Int) -> UInt32 {
            len == 0 ? 0 : (i.key >> UInt32(width - len)) << UInt32(width - len)
        }
        while next < width, Set(items.map { "\($0.group)/\(bucket($0, next))" }).count == 1 { next = min(next + 4, width) }
        var groups: [(String, UInt32, [DispatchItem])] = []
        for i in items {
            let b = bucket(i, next)
            if let last = groups.indices.last, groups[last].0 == i.group, groups[last].1 == b {
                groups[last].2.append(i)
            } else if let j = groups.firstIndex(where: { $0.0 == i.group && $0.1 == b }) {
                groups[j].2.append(i)
            } else {
                groups.append((i.group, b, [i]))
            }
        }
        var rules = chains[chain] ?? []
        for (group, base, members) in groups {
            if members.count == 1 || next >= width {
                rules += members.map { "-A \(chain) \($0.rule)" }
                continue
            }
            let child = childPrefix + label(group, base, next)
            rules.append("-A \(chain) \(match(group, base, next)) -j \(child)")
            split(chain: child, items: members, prefix: next, into: &chains)
        }
        chains[chain] = rules
    }
}
