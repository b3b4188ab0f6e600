// NetworkPolicy enforcement, rendered as filter-table chains for each node (pure: the
// policies, the pods and the namespaces' labels in, chains out). Each node holds the
// chains of its own pods, as a CNI's policy agent does:
//
//   FORWARD (first rule) -> MINIK-NETPOL
//     replies of allowed connections: RETURN (policies are stateful)
//     -s POD -> MINIK-NP-E-<pod>   the pod's egress, when a policy isolates it for egress
//     -d POD -> MINIK-NP-I-<pod>   the pod's ingress, when a policy isolates it for ingress
//   MINIK-NP-I-<pod>: one rule per allowed (peer, port) of every policy that selects the
//     pod, each RETURN with the policy and rule as its comment; at the end, DROP.
//
// A pod's own chain says everything about it: `iptables-save -t filter | grep <pod>`.
// FORWARD sees pod traffic after a Service's DNAT (so policies see the endpoint, as
// Kubernetes says) and before masquerade; bridged same-node traffic only with bridge
// netfilter on. Traffic from the pod's own node (kubelet's probes) is not forwarded and
// always allowed, as Kubernetes requires.
import MinikSpec

/// A running pod as policies see it.
public struct PolicyPod: Sendable, Equatable {
    public var namespace: String
    public var name: String
    public var labels: [String: String]
    public var ip: IPv4Address
    public var node: String
    /// Its containers' named ports: "name/PROTOCOL" -> number.
    public var namedPorts: [String: Int]

    public init(namespace: String, name: String, labels: [String: String], ip: IPv4Address, node: String,
                namedPorts: [String: Int] = [:]) {
        self.namespace = namespace
        self.name = name
        self.labels = labels
        self.ip = ip
        self.node = node
        self.namedPorts = namedPorts
    }

    public var key: String { "\(namespace)/\(name)" }

    func port(named name: String, proto: String) -> Int? { namedPorts["\(name)/\(proto)"] }
}

public enum PolicyRules {
    /// The chain FORWARD jumps to first.
    public static let chain = "MINIK-NETPOL"

    /// What a node's filter table holds for the policies: MINIK-NETPOL and the chains of
    /// the node's isolated pods.
    public static func render(_ policies: [NetworkPolicySpec], pods: [PolicyPod], namespaceLabels: [String: [String: String]],
                              node: String) -> [String: [String]] {
        var chains: [String: [String]] = [chain: []]
        guard !policies.isEmpty else { return chains }
        func nsLabels(_ ns: String) -> [String: String] { ClusterSpec.labels(ofNamespace: ns, in: namespaceLabels) }
        let byNamespace = Dictionary(grouping: policies, by: \.namespace)
        // Egress checks come before ingress checks: both apply to a packet between two
        // isolated pods of one node.
        var egressJumps: [String] = [], ingressJumps: [String] = []
        for pod in pods.filter({ $0.node == node }).sorted(by: { $0.ip < $1.ip }) {
            let selecting = (byNamespace[pod.namespace] ?? []).filter { $0.podSelector.matches(pod.labels) }.sorted { $0.name < $1.name }
            for ingress in [false, true] {
                let applying = selecting.filter { ingress ? $0.isIngress : $0.isEgress }
                guard !applying.isEmpty else { continue }
                let own = chainName(ingress ? "MINIK-NP-I-" : "MINIK-NP-E-", pod.key)
                var rules: [String] = []
                for p in applying {
                    let list = ingress ? p.ingress : p.egress
                    for (i, rule) in list.enumerated() {
                        let comment = "-m comment --comment \"\(p.key) spec.\(ingress ? "ingress" : "egress")[\(i)]\""
                        for match in matches(rule, of: p, pod: pod, ingress: ingress, pods: pods, nsLabels: nsLabels) {
                            rules.append("-A \(own)\(match.isEmpty ? "" : " " + match) \(comment) -j RETURN")
                        }
                    }
                }
                let names = applying.map(\.key).joined(separator: ", ")
                rules.append("-A \(own) -m comment --comment \"\(pod.key) \(ingress ? "ingress" : "egress") is not allowed by \(names)\" -j DROP")
                chains[own] = rules
                let jump = "-A \(chain) \(ingress ? "-d" : "-s") \(pod.ip)/32 -m comment --comment \"\(pod.key) \(ingress ? "ingress" : "egress")\" -j \(own)"
                if ingress { ingressJumps.append(jump) } else { egressJumps.append(jump) }
            }
        }
        if !egressJumps.isEmpty || !ingressJumps.isEmpty {
            chains[chain] = ["-A \(chain) -m comment --comment \"replies of allowed connections\" -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"]
                + egressJumps + ingressJumps
        }
        return chains
    }

    /// The iptables matches of one rule for one selected pod: one line per allowed
    /// (peer address, port) pair; an empty string matches everything; no lines, nothing.
    static func matches(_ rule: NetworkPolicySpec.Rule, of policy: NetworkPolicySpec, pod: PolicyPod, ingress: Bool,
                        pods: [PolicyPod], nsLabels: (String) -> [String: String]) -> [String] {
        let side = ingress ? "-s" : "-d"
        // The peers as addresses, and (for egress) the pods behind them, whose named ports count.
        let anyone = rule.peers.isEmpty
        var cidrs: [IPv4CIDR] = []
        var peerPods: [PolicyPod] = []
        for peer in rule.peers {
            if let b = peer.ipBlock {
                cidrs += subtract(b.except, from: b.cidr)
                continue
            }
            for other in pods {
                let inNamespace: Bool
                if let nsSel = peer.namespaceSelector {
                    inNamespace = nsSel.matches(nsLabels(other.namespace))
                } else {
                    inNamespace = other.namespace == policy.namespace
                }
                if inNamespace && (peer.podSelector?.matches(other.labels) ?? true) && !peerPods.contains(where: { $0.ip == other.ip }) {
                    peerPods.append(other)
                }
            }
        }
        if anyone && rule.ports.isEmpty { return [""] }
        // Ports: (protocol, port text) for every address they apply to, or per pod when named.
        var out: [String] = []
        func add(_ address: String?, _ proto: String?, _ port: String?) {
            var m: [String] = []
            if let address { m.append("\(side) \(address)") }
            if let proto {
                m.append("-p \(proto.lowercased()) -m \(proto.lowercased())")
                if let port { m.append("--dport \(port)") }
            }
            let line = m.joined(separator: " ")
            if !out.contains(line) { out.append(line) }
        }
        let addresses: [(text: String?, pod: PolicyPod?)] = anyone ? [(nil, nil)]
            : cidrs.map { ("\($0)", nil) } + peerPods.sorted { $0.ip < $1.ip }.map { ("\($0.ip)/32", $0) }
        if addresses.isEmpty { return [] }
        for a in addresses {
            if rule.ports.isEmpty { add(a.text, nil, nil); continue }
            for p in rule.ports {
                switch p.port {
                case nil: add(a.text, p.proto, nil)
                case .number(let n)?: add(a.text, p.proto, p.endPort.map { "\(n):\($0)" } ?? "\(n)")
                case .name(let name)?:
                    if ingress {
                        // The selected pod's own port of that name.
                        if let n = pod.port(named: name, proto: p.proto) { add(a.text, p.proto, "\(n)") }
                    } else if let peerPod = a.pod {
                        if let n = peerPod.port(named: name, proto: p.proto) { add(a.text, p.proto, "\(n)") }
                    } else if a.text == nil {
                        // Anyone: every pod that has a port of that name.
                        for other in pods.sorted(by: { $0.ip < $1.ip }) {
                            if let n = other.port(named: name, proto: p.proto) { add("\(other.ip)/32", p.proto, "\(n)") }
                        }
                    }
                    // An ipBlock has no named ports: nothing matches.
                }
            }
        }
        return out
    }

    /// `cidr` without the `except` blocks, as the fewest CIDRs that cover the rest.
    public static func subtract(_ except: [IPv4CIDR], from cidr: IPv4CIDR) -> [IPv4CIDR] {
        var blocks = [cidr]
        for e in except {
            var next: [IPv4CIDR] = []
            for b in blocks {
                if !b.overlaps(e) { next.append(b); continue }
                if e.prefix <= b.prefix { continue } // b lies inside e
                // Split b down to e: at each level keep the half that does not hold e.
                var cur = b
                while cur.prefix < e.prefix {
                    let half = UInt32(1) << UInt32(31 - cur.prefix)
                    let low = IPv4CIDR(network: cur.network, prefix: cur.prefix + 1)
                    let high = IPv4CIDR(network: IPv4Address(cur.network.value | half), prefix: cur.prefix + 1)
                    if low.contains(e.network) { next.append(high); cur = low } else { next.append(low); cur = high }
                }
            }
            blocks = next
        }
        return blocks.sorted { $0.network.value < $1.network.value }
    }

    /// A chain name for a pod: prefix + 16 base32 characters of a hash of its key.
    static func chainName(_ prefix: String, _ key: String) -> String {
        ProxyRules.chainName(prefix, key)
    }
}
