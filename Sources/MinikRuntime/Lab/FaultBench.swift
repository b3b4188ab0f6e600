// The fault bench: puts the faults of Faults.swift into the kernel, reads them back and
// removes them. It needs no supervisor: everything it touches is in the cluster's node
// and underlay namespaces, so `down` (which removes those) removes every fault too.
//
// What is there is read from the kernel each time (link state, the fault chains'
// rules with their counters, the root qdiscs); a change is read-modify-write under a
// per-cluster lock file, so two `minik fault` commands do not lose each other's rules.
import Foundation
import MinikNetlink
import MinikSpec

public final class FaultBench {
    public struct Node: Sendable {
        public var name: String
        public var index: Int
        public var netns: String
        public var internalIP: IPv4Address

        public init(name: String, index: Int, netns: String, internalIP: IPv4Address) {
            self.name = name
            self.index = index
            self.netns = netns
            self.internalIP = internalIP
        }
    }

    /// A fault as the kernel holds it, with what it has done so far.
    public struct Active: Sendable, Equatable {
        /// nil for a rule in the fault chains that minik did not write.
        public var fault: Fault?
        /// One node's view (a partition is seen by both of its nodes).
        public var node: String
        /// What `fault list` shows in its FAULT column.
        public var kind: String
        public var detail: String

        init(fault: Fault?, node: String, kind: String? = nil, detail: String) {
            self.fault = fault
            self.node = node
            self.kind = kind ?? fault?.kind ?? "rule"
            self.detail = detail
        }
    }

    let cluster: String
    let nodes: [Node]
    let restore: String
    let save: String

    public init(cluster: String, nodes: [Node]) throws(RuntimeError) {
        self.cluster = cluster
        self.nodes = nodes
        guard let r = Command.which("iptables-restore"), let s = Command.which("iptables-save") else {
            throw .state("iptables-restore and iptables-save are needed for faults (install the iptables package: make deps)")
        }
        restore = r
        save = s
    }

    public func node(_ name: String) throws(RuntimeError) -> Node {
        guard let n = nodes.first(where: { $0.name == name }) else {
            throw .state("node \"\(name)\" not found in cluster \(cluster) (nodes: \(nodes.map(\.name).joined(separator: ", ")))")
        }
        return n
    }

    // MARK: - changes

    /// Puts one fault in place (a loss or rate replaces the node's earlier one).
    public func apply(_ fault: Fault) throws(RuntimeError) {
        for n in fault.nodes { _ = try node(n) }
        try locked { () throws(RuntimeError) in
            switch fault {
            case .linkDown(let n):
                try setUnderlayPort(node: try node(n), up: false)
            case .rate(let n, let bits):
                try shape(node: try node(n), bitsPerSecond: bits)
            case .partition, .loss:
                for name in fault.nodes {
                    let n = try node(name)
                    try rewriteRules(of: n) { faults in
                        if case .loss = fault { faults = faults.filter { if case .loss = $0 { return false } else { return true } } }
                        faults.insert(fault)
                    }
                }
            }
        }
    }

    /// `fault link NODE up`.
    public func linkUp(_ name: String) throws(RuntimeError) {
        let n = try node(name)
        try locked { () throws(RuntimeError) in try setUnderlayPort(node: n, up: true) }
    }

    /// Removes every fault of these nodes (a partition with any of them goes from both
    /// sides). Returns what was removed.
    @discardableResult
    public func clear(_ names: [String]) throws(RuntimeError) -> [Fault] {
        let targets = try names.map { (n: String) throws(RuntimeError) -> Node in try node(n) }
        let set = Set(targets.map(\.name))
        return try locked { () throws(RuntimeError) -> [Fault] in
            var removed = Set<Fault>()
            for n in targets {
                if try !underlayPortUp(n) {
                    try setUnderlayPort(node: n, up: true)
                    removed.insert(.linkDown(node: n.name))
                }
                if let bits = try unshape(node: n) { removed.insert(.rate(node: n.name, bitsPerSecond: bits)) }
            }
            // Rules: the targets' own, and their partitions as the peers hold them.
            for n in nodes {
                try rewriteRules(of: n) { faults in
                    let drop = faults.filter { f in set.contains(n.name) || f.nodes.contains { set.contains($0) } }
                    removed.formUnion(drop)
                    faults.subtract(drop)
                }
            }
            return removed.sorted { $0.description < $1.description }
        }
    }

    // MARK: - reading

    /// Every fault in the kernel, per node, with its counters.
    public func list() throws(RuntimeError) -> [Active] {
        var out: [Active] = []
        for n in nodes {
            if try !underlayPortUp(n) {
                out.append(Active(fault: .linkDown(node: n.name), node: n.name,
                                  detail: "underlay port \(Naming.underlayPort(cluster, nodeIndex: n.index)) is down: eth0 has no carrier"))
            }
            let observed = try observeRules(n)
            for (f, packets) in observed.faults.sorted(by: { $0.key.description < $1.key.description }) {
                switch f {
                case .partition(let a, let b):
                    let peer = a == n.name ? b : a
                    let ip = nodes.first { $0.name == peer }.map { " (\($0.internalIP))" } ?? ""
                    out.append(Active(fault: f, node: n.name, detail: "to and from \(peer)\(ip) dropped: \(packets) packets so far"))
                case .loss(_, let p):
                    out.append(Active(fault: f, node: n.name, detail: "\(FaultRules.percentText(p)) of eth0's packets dropped each way: \(packets) so far"))
                default:
                    break
                }
            }
            for rule in observed.handMade {
                out.append(Active(fault: nil, node: n.name, detail: "in the fault chains, not written by minik: \(rule)"))
            }
            if let (egress, ingress) = try qdiscs(n), let rate = egress.rate ?? ingress?.rate {
                let over = egress.overlimits + (ingress?.overlimits ?? 0), drops = egress.drops + (ingress?.drops ?? 0)
                out.append(Active(fault: .rate(node: n.name, bitsPerSecond: rate * 8), node: n.name,
                                  detail: "tbf on eth0 and on its underlay port: \(over) times over the rate, \(drops) packets dropped"))
            }
        }
        return out
    }

    // MARK: - kernel

    private func locked<T>(_ body: () throws(RuntimeError) -> T) throws(RuntimeError) -> T {
        let path = "\(Naming.clusterDir(cluster))/faults.lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        if fd < 0 { throw .system("open \(path)", errno: errno) }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            if errno != EINTR { throw .system("lock \(path)", errno: errno) }
        }
        return try body()
    }

    private func underlay() throws(RuntimeError) -> NetNamespace { try NetNamespace.open(Naming.underlayNetns(cluster)) }

    private func underlayPort(_ n: Node, in ns: NetNamespace) throws(RuntimeError) -> LinkInfo {
        let name = Naming.underlayPort(cluster, nodeIndex: n.index)
        let sock = try ns.netlink
        guard let link = try nl("\(ns.name): \(name)", { () throws(NetlinkError) in try sock.linkGet(name: name) }) else {
            throw .state("node \(n.name) has no port \(name) on the underlay")
        }
        return link
    }

    private func underlayPortUp(_ n: Node) throws(RuntimeError) -> Bool {
        try underlayPort(n, in: try underlay()).isUp
    }

    private func setUnderlayPort(node n: Node, up: Bool) throws(RuntimeError) {
        let ns = try underlay()
        let link = try underlayPort(n, in: ns)
        let sock = try ns.netlink
        try nl("\(ns.name): \(link.name)") { () throws(NetlinkError) in try sock.linkSetUp(index: link.index, up: up) }
    }

    /// The node's eth0 and its underlay port, each with its namespace's socket.
    private func uplinks(_ n: Node) throws(RuntimeError) -> [(NetlinkSocket, LinkInfo, String)] {
        let node = try NetNamespace.open(n.netns)
        let nsock = try node.netlink
        guard let eth0 = try nl("\(n.netns): eth0", { () throws(NetlinkError) in try nsock.linkGet(name: Naming.nodeUplink) }) else {
            throw .state("node \(n.name) has no \(Naming.nodeUplink)")
        }
        let u = try underlay()
        return [(nsock, eth0, n.netns), (try u.netlink, try underlayPort(n, in: u), u.name)]
    }

    private func shape(node n: Node, bitsPerSecond: UInt64) throws(RuntimeError) {
        let t = FaultRules.tbf(bitsPerSecond: bitsPerSecond)
        for (sock, link, ns) in try uplinks(n) {
            try nl("\(ns): \(link.name)") { () throws(NetlinkError) in
                try sock.qdiscReplaceTBF(index: link.index, TBFSettings(rate: t.rate, burst: t.burst, limit: t.limit))
            }
        }
    }

    /// Removes the node's tbfs; returns the rate they had (nil: there were none).
    private func unshape(node n: Node) throws(RuntimeError) -> UInt64? {
        var rate: UInt64?
        for (sock, link, ns) in try uplinks(n) {
            let q = try nl("\(ns): \(link.name)") { () throws(NetlinkError) in try sock.qdiscList(index: link.index) }
            guard let tbf = q.first(where: { $0.kind == "tbf" }) else { continue }
            rate = rate ?? tbf.rate.map { $0 * 8 }
            try nl("\(ns): \(link.name)") { () throws(NetlinkError) in try sock.qdiscDelRoot(index: link.index) }
        }
        return rate
    }

    /// The tbfs of the node's eth0 (egress) and underlay port (the node's ingress).
    private func qdiscs(_ n: Node) throws(RuntimeError) -> (QdiscInfo, QdiscInfo?)? {
        var found: [QdiscInfo?] = []
        for (sock, link, ns) in try uplinks(n) {
            let q = try nl("\(ns): \(link.name)") { () throws(NetlinkError) in try sock.qdiscList(index: link.index) }
            found.append(q.first { $0.kind == "tbf" })
        }
        if let e = found[0] { return (e, found[1]) }
        if let i = found[1] { return (i, nil) }
        return nil
    }

    private func iptables(_ n: Node, _ argv: [String], input: String? = nil) throws(RuntimeError) -> String {
        let ns = try NetNamespace.open(n.netns)
        let r = try Command.run(argv, joining: [ns.fd], input: input, timeout: 30, outputLimit: 16 << 20)
        guard r.succeeded else {
            throw .state("\(argv.joined(separator: " ")) in node \(n.name) failed: \(r.output.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return r.output
    }

    private func observeRules(_ n: Node) throws(RuntimeError) -> FaultRules.Observed {
        FaultRules.parse(save: try iptables(n, [save, "-c", "-t", FaultRules.table]), node: n.name)
    }

    /// Reads the node's fault rules, lets `change` edit the set, writes the result (rules
    /// someone added by hand to the chains are kept).
    private func rewriteRules(of n: Node, _ change: (inout Set<Fault>) -> Void) throws(RuntimeError) {
        let observed = try observeRules(n)
        var faults = Set(observed.faults.keys)
        let before = faults
        change(&faults)
        guard faults != before else { return }
        let addresses = Dictionary(uniqueKeysWithValues: nodes.map { ($0.name, $0.internalIP) })
        var rules = FaultRules.rules(node: n.name, faults: Array(faults), addresses: addresses)
        for line in observed.handMade {
            let isIn = line.hasPrefix("-A \(FaultRules.inChain) ")
            let rule = String(line.dropFirst("-A \(isIn ? FaultRules.inChain : FaultRules.outChain) ".count))
            if isIn { rules.in.append(rule) } else { rules.out.append(rule) }
        }
        let text = FaultRules.restoreText(rules: rules, uplink: Naming.nodeUplink, hooksPresent: observed.hooksPresent)
        if !text.isEmpty { _ = try iptables(n, [restore, "--noflush"], input: text) }
    }
}
