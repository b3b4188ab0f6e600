// NetworkPolicy (networking.k8s.io/v1): the model, label selectors with matchExpressions,
// and decoding with the apiserver's checks (pkg/apis/networking/validation), each refused
// field named at its place. The defaults are the apiserver's: policyTypes is Ingress, plus
// Egress when there are egress rules; a port's protocol is TCP.
import Foundation

/// A LabelSelector as written in an object: matchLabels and matchExpressions, all of which must hold. Empty
/// selects everything.
public struct LabelSelectorSpec: Codable, Sendable, Equatable {
    public enum Operator: String, Codable, Sendable {
        case `in` = "In", notIn = "NotIn", exists = "Exists", doesNotExist = "DoesNotExist"
    }

    public struct Requirement: Codable, Sendable, Equatable {
        public var key: String
        public var op: Operator
        public var values: [String]

        public init(key: String, op: Operator, values: [String] = []) {
            self.key = key
            self.op = op
            self.values = values
        }
    }

    public var matchLabels: [String: String]
    public var matchExpressions: [Requirement]

    public init(matchLabels: [String: String] = [:], matchExpressions: [Requirement] = []) {
        self.matchLabels = matchLabels
        self.matchExpressions = matchExpressions
    }

    public var isEmpty: Bool { matchLabels.isEmpty && matchExpressions.isEmpty }

    public func matches(_ labels: [String: String]) -> Bool {
        matchLabels.allSatisfy { labels[$0.key] == $0.value } && matchExpressions.allSatisfy { e in
            switch e.op {
            case .in: return labels[e.key].map(e.values.contains) ?? false
            case .notIn: return labels[e.key].map { !e.values.contains($0) } ?? true
            case .exists: return labels[e.key] != nil
            case .doesNotExist: return labels[e.key] == nil
            }
        }
    }
}

/// A NetworkPolicy: which traffic the pods it selects may receive (ingress) and send (egress).
public struct NetworkPolicySpec: Codable, Sendable, Equatable {
    public enum PolicyType: String, Codable, Sendable { case ingress = "Ingress", egress = "Egress" }

    public struct Port: Codable, Sendable, Equatable {
        public var proto: String
        /// nil: every port of the protocol.
        public var port: PortRef?
        /// With a numbered port: the range port...endPort.
        public var endPort: Int?

        public init(proto: String = "TCP", port: PortRef? = nil, endPort: Int? = nil) {
            self.proto = proto
            self.port = port
            self.endPort = endPort
        }
    }

    public struct IPBlock: Codable, Sendable, Equatable {
        public var cidr: IPv4CIDR
        public var except: [IPv4CIDR]

        public init(cidr: IPv4CIDR, except: [IPv4CIDR] = []) {
            self.cidr = cidr
            self.except = except
        }
    }

    /// One peer: pods (podSelector in the policy's namespace, or in the namespaces
    /// namespaceSelector picks), or addresses (ipBlock).
    public struct Peer: Codable, Sendable, Equatable {
        public var podSelector: LabelSelectorSpec?
        public var namespaceSelector: LabelSelectorSpec?
        public var ipBlock: IPBlock?

        public init(podSelector: LabelSelectorSpec? = nil, namespaceSelector: LabelSelectorSpec? = nil, ipBlock: IPBlock? = nil) {
            self.podSelector = podSelector
            self.namespaceSelector = namespaceSelector
            self.ipBlock = ipBlock
        }
    }

    /// An ingress rule (`from`) or egress rule (`to`): traffic to or from any of the
    /// peers (none listed: anyone) on any of the ports (none listed: every port).
    public struct Rule: Codable, Sendable, Equatable {
        public var peers: [Peer]
        public var ports: [Port]

        public init(peers: [Peer] = [], ports: [Port] = []) {
            self.peers = peers
            self.ports = ports
        }
    }

    public var namespace: String
    public var name: String
    public var labels: [String: String] = [:]
    public var annotations: [String: String] = [:]
    public var podSelector = LabelSelectorSpec()
    public var policyTypes: [PolicyType] = [.ingress]
    public var ingress: [Rule] = []
    public var egress: [Rule] = []
    /// When it was first made (kept when it is replaced).
    public var created: Date?
    public var source: SourceLocation

    public init(namespace: String, name: String, source: SourceLocation) {
        self.namespace = namespace
        self.name = name
        self.source = source
    }

    public var key: String { "\(namespace)/\(name)" }
    public var isIngress: Bool { policyTypes.contains(.ingress) }
    public var isEgress: Bool { policyTypes.contains(.egress) }

    /// Same policy, ignoring where it was written.
    public func sameAs(_ other: NetworkPolicySpec) -> Bool {
        var a = self
        a.source = other.source
        a.created = other.created
        return a == other
    }
}

extension ClusterSpec {
    /// The spec without a NetworkPolicy.
    public func removing(networkPolicy name: String, namespace: String) throws(SpecError) -> ClusterSpec {
        guard networkPolicies.contains(where: { $0.name == name && $0.namespace == namespace }) else {
            throw SpecError([SpecProblem(nil, "networkpolicy \"\(name)\" not found in namespace \(namespace)")])
        }
        var out = self
        out.networkPolicies.removeAll { $0.name == name && $0.namespace == namespace }
        return out
    }

    /// A namespace's labels, with the kubernetes.io/metadata.name label every namespace has.
    public func labels(ofNamespace ns: String) -> [String: String] { Self.labels(ofNamespace: ns, in: namespaceLabels) }

    public static func labels(ofNamespace ns: String, in namespaceLabels: [String: [String: String]]) -> [String: String] {
        var l = namespaceLabels[ns] ?? [:]
        l["kubernetes.io/metadata.name"] = ns
        return l
    }
}

extension Builder {
    // MARK: NetworkPolicy

    /// The documents' policies and namespace labels, added to or replacing the spec's.
    func finishNetworkPolicies(into out: inout ClusterSpec) {
        for var p in networkPolicies {
            p.created = out.networkPolicies.first { $0.key == p.key }?.created ?? Date()
            if let i = out.networkPolicies.firstIndex(where: { $0.key == p.key }) { out.networkPolicies[i] = p } else { out.networkPolicies.append(p) }
        }
        for (ns, labels) in namespaceLabels { out.namespaceLabels[ns] = labels.isEmpty ? nil : labels }
    }

    mutating func networkPolicy(_ doc: YNode) {
        guard let f = r.mapping(doc, "NetworkPolicy", known: ["kind", "apiVersion", "metadata", "spec"],
                                ignored: ["status": "status is not input"]) else { return }
        guard let md = f["metadata"], let meta = metadata(md, namespaced: true), !meta.name.isEmpty else {
            if f["metadata"] == nil { r.fail(doc, "metadata.name is required") }
            return
        }
        var p = NetworkPolicySpec(namespace: meta.namespace, name: meta.name, source: r.location(doc))
        p.labels = meta.labels
        p.annotations = meta.annotations
        guard let sy = f["spec"] else {
            r.fail(doc, "spec is required (a NetworkPolicy needs spec.podSelector: {} selects every pod of its namespace)")
            return
        }
        guard let sf = r.mapping(sy, "NetworkPolicy spec", known: ["podSelector", "policyTypes", "ingress", "egress"]) else { return }
        if let y = sf["podSelector"] {
            if let s = selector(y) { p.podSelector = s }
        } else {
            r.fail(sy, "spec.podSelector is required ({} selects every pod of the namespace)")
        }
        p.ingress = rules(sf["ingress"], peersKey: "from", what: "an ingress rule")
        p.egress = rules(sf["egress"], peersKey: "to", what: "an egress rule")
        if let ty = sf["policyTypes"], let items = r.sequence(ty) {
            var types: [NetworkPolicySpec.PolicyType] = []
            for item in items {
                guard let t = r.string(item) else { continue }
                guard let pt = NetworkPolicySpec.PolicyType(rawValue: t) else {
                    r.fail(item, "policyType \"\(t)\" is not valid (use Ingress or Egress)")
                    continue
                }
                if types.contains(pt) { r.fail(item, "policyType \(t) is listed twice") }
                types.append(pt)
            }
            if items.isEmpty { r.fail(ty, "policyTypes is empty (leave it out, or list Ingress, Egress or both)") }
            p.policyTypes = types
        } else {
            p.policyTypes = p.egress.isEmpty ? [.ingress] : [.ingress, .egress]
        }
        if !networkPolicyKeys.insert(p.key).inserted {
            r.fail(md, "networkpolicy \(p.key) is defined twice")
            return
        }
        networkPolicies.append(p)
    }

    /// A LabelSelector: matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist).
    func selector(_ y: YNode) -> LabelSelectorSpec? {
        if y.isNull { return LabelSelectorSpec() }
        guard let f = r.mapping(y, "a label selector", known: ["matchLabels", "matchExpressions"]) else { return nil }
        var s = LabelSelectorSpec()
        if let ml = f["matchLabels"], let m = labels(ml) { s.matchLabels = m }
        for item in r.sequence(f["matchExpressions"]) ?? [] {
            guard let ef = r.mapping(item, "a label selector requirement", known: ["key", "operator", "values"]) else { continue }
            guard let ky = ef["key"], let key = r.string(ky) else { r.fail(item, "a requirement needs a key"); continue }
            if let problem = Names.qualifiedNameProblem(key) { r.fail(ky, "label key \"\(key)\" is not valid: \(problem)") }
            guard let oy = ef["operator"], let opText = r.string(oy) else { r.fail(item, "a requirement needs an operator (In, NotIn, Exists or DoesNotExist)"); continue }
            guard let op = LabelSelectorSpec.Operator(rawValue: opText) else {
                r.fail(oy, "operator \"\(opText)\" is not valid (use In, NotIn, Exists or DoesNotExist)")
                continue
            }
            let values = r.stringList(ef["values"]) ?? []
            switch op {
            case .in, .notIn:
                if values.isEmpty { r.fail(ef["values"] ?? item, "values must be non-empty when operator is \(opText)") }
            case .exists, .doesNotExist:
                if !values.isEmpty { r.fail(ef["values"] ?? item, "values must be empty when operator is \(opText)") }
            }
            for v in values where !Names.isLabelValue(Substring(v)) {
                r.fail(ef["values"] ?? item, "label value \"\(v)\" is not valid: it must be empty or at most 63 characters of A-Z, a-z, 0-9, '-', '_' and '.', starting and ending with a letter or digit")
            }
            s.matchExpressions.append(.init(key: key, op: op, values: values))
        }
        return s
    }

    func rules(_ y: YNode?, peersKey: String, what: String) -> [NetworkPolicySpec.Rule] {
        var out: [NetworkPolicySpec.Rule] = []
        for item in r.sequence(y) ?? [] {
            if item.isNull { out.append(.init()); continue }
            guard let f = r.mapping(item, what, known: [peersKey, "ports"]) else { continue }
            var rule = NetworkPolicySpec.Rule()
            for py in r.sequence(f[peersKey]) ?? [] {
                if let peer = peer(py) { rule.peers.append(peer) }
            }
            for py in r.sequence(f["ports"]) ?? [] {
                if let port = port(py) { rule.ports.append(port) }
            }
            out.append(rule)
        }
        return out
    }

    func peer(_ y: YNode) -> NetworkPolicySpec.Peer? {
        guard let f = r.mapping(y, "a peer", known: ["podSelector", "namespaceSelector", "ipBlock"]) else { return nil }
        var p = NetworkPolicySpec.Peer()
        if let s = f["podSelector"] { p.podSelector = selector(s) ?? LabelSelectorSpec() }
        if let s = f["namespaceSelector"] { p.namespaceSelector = selector(s) ?? LabelSelectorSpec() }
        if let by = f["ipBlock"], let bf = r.mapping(by, "an ipBlock", known: ["cidr", "except"]) {
            if p.podSelector != nil || p.namespaceSelector != nil {
                r.fail(by, "a peer with ipBlock may not have podSelector or namespaceSelector (make them two peers)")
            }
            if let cy = bf["cidr"], let c = cidr(cy) {
                var block = NetworkPolicySpec.IPBlock(cidr: c)
                for ey in r.sequence(bf["except"]) ?? [] {
                    guard let e = cidr(ey) else { continue }
                    if !(e.prefix >= c.prefix && c.contains(e.network)) || e == c {
                        r.fail(ey, "except \(e) must be a strict subset of cidr \(c)")
                    } else {
                        block.except.append(e)
                    }
                }
                p.ipBlock = block
            } else if bf["cidr"] == nil {
                r.fail(by, "an ipBlock needs a cidr")
            }
        } else if f["podSelector"] == nil && f["namespaceSelector"] == nil {
            r.fail(y, "a peer needs podSelector, namespaceSelector or ipBlock (to allow everyone, leave the peer list out)")
            return nil
        }
        return p
    }

    func port(_ y: YNode) -> NetworkPolicySpec.Port? {
        guard let f = r.mapping(y, "a network policy port", known: ["protocol", "port", "endPort"]) else { return nil }
        var p = NetworkPolicySpec.Port()
        if let py = f["protocol"], let proto = r.string(py) {
            switch proto {
            case "TCP", "UDP": p.proto = proto
            case "SCTP": r.fail(py, "protocol SCTP is not supported by minik (TCP or UDP)")
            default: r.fail(py, "protocol \"\(proto)\" is not valid (use TCP or UDP)")
            }
        }
        if let py = f["port"], case .scalar(let sc) = py.node {
            if let n = Int(sc.string), sc.style == .plain {
                if (1...65535).contains(n) { p.port = .number(n) } else { r.fail(py, "port \(n) is out of range (1-65535)") }
            } else if DNS.isPortName(sc.string) {
                p.port = .name(sc.string)
            } else {
                r.fail(py, "port \"\(sc.string)\" is neither a port number nor a port name (at most 15 characters: a-z, 0-9 and '-', with a letter)")
            }
        } else if let py = f["port"] {
            r.fail(py, "port must be a port number or a container port's name")
        }
        if let ey = f["endPort"], let e = r.int(ey) {
            switch p.port {
            case .number(let n)?:
                if e < n || e > 65535 { r.fail(ey, "endPort \(e) must be at least port \(n) and at most 65535") } else { p.endPort = e }
            case .name?: r.fail(ey, "endPort may not be used with a named port")
            case nil: r.fail(ey, "endPort needs a numbered port")
            }
        }
        return p
    }
}
